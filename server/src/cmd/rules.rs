//! `vigil rules list | put FILE | delete ID`: operators change a running server's rules
//! over gRPC. `put` validates the file locally first and reports errors with their lines.

use std::path::Path;

use anyhow::{bail, Context};
use vigil_proto::v1::{self, rules_client::RulesClient};

use crate::cli::{GrpcTarget, RuleApprovers, RulesCommand};
use crate::cmd::grpc_client::{self, AuthedChannel};
use crate::config::{self, rule_from_entry};
use crate::grpc::convert;

async fn client(target: &GrpcTarget) -> anyhow::Result<RulesClient<AuthedChannel>> {
    Ok(RulesClient::new(grpc_client::connect(target).await?))
}

pub async fn run(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Check { .. } | RulesCommand::Diff { .. } => {
            unreachable!("`rules check` and `rules diff` run without a runtime")
        }
        RulesCommand::List { target, json } => list(&target, json).await,
        RulesCommand::Put {
            file,
            approvers,
            target,
        } => put(&file, approvers, &target).await,
        RulesCommand::Delete {
            id,
            approvers,
            target,
        } => {
            let reply = client(&target)
                .await?
                .delete_rule(v1::DeleteRuleRequest {
                    id: id.clone(),
                    approved_by: approvers.approved_by.unwrap_or_default(),
                    second_approver: approvers.second_approver.unwrap_or_default(),
                })
                .await?
                .into_inner();
            println!(
                "deleted rule '{id}'; {} open alert(s) resolved; {}",
                reply.alerts_resolved,
                version_line(reply.rule_set.as_ref())
            );
            Ok(())
        }
    }
}

async fn list(target: &GrpcTarget, json: bool) -> anyhow::Result<()> {
    let reply = client(target)
        .await?
        .list_rules(v1::ListRulesRequest {})
        .await?
        .into_inner();
    if !json {
        println!("# {}", version_line(reply.rule_set.as_ref()));
    }
    for r in reply.rules {
        if json {
            println!("{}", rule_json(&r));
        } else {
            let sev = v1::Severity::try_from(r.severity)
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("SEVERITY_")
                        .to_lowercase()
                })
                .unwrap_or_default();
            let target = if r.metric.is_empty() {
                "news2".to_string()
            } else {
                r.metric.clone()
            };
            println!(
                "{:<32} {:<9} {:<13} {:<7} {}",
                r.id,
                r.kind,
                target,
                sev,
                describe(&r)
            );
        }
    }
    Ok(())
}

/// The numeric keys that are set, for the listing.
fn describe(r: &v1::Rule) -> String {
    let mut parts = Vec::new();
    let mut num = |k: &str, v: Option<f64>| {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    };
    num("above", r.above);
    num("below", r.below);
    num("by", r.by);
    num("clear", r.clear);
    num("at_least", r.at_least.map(f64::from));
    num(
        "any_parameter_at_least",
        r.any_parameter_at_least.map(f64::from),
    );
    num("min_samples", r.min_samples.map(f64::from));
    num("days", r.days.map(f64::from));
    num("min_days", r.min_days.map(f64::from));
    for (k, v) in [
        ("for", Some(r.for_ms).filter(|v| *v > 0)),
        ("window", r.window_ms),
        ("horizon", r.horizon_ms),
        ("after", r.after_ms),
    ] {
        if let Some(ms) = v {
            parts.push(format!(
                "{k}={}",
                humantime::format_duration(std::time::Duration::from_millis(ms))
            ));
        }
    }
    if !r.conditions.is_empty() {
        parts.push(format!("conditions={}", r.conditions.join(",")));
    }
    if !r.tiers.is_empty() {
        parts.push(format!("tiers={}", r.tiers.join(",")));
    }
    parts.join(" ")
}

fn rule_json(r: &v1::Rule) -> String {
    serde_json::json!({
        "id": r.id, "kind": r.kind, "metric": r.metric, "above": r.above, "below": r.below,
        "for_ms": r.for_ms, "clear": r.clear, "window_ms": r.window_ms, "by": r.by,
        "min_samples": r.min_samples, "after_ms": r.after_ms, "at_least": r.at_least,
        "any_parameter_at_least": r.any_parameter_at_least,
        "horizon_ms": r.horizon_ms, "min_days": r.min_days, "days": r.days,
        "severity": v1::Severity::try_from(r.severity).map(|s| s.as_str_name()).unwrap_or("SEVERITY_UNSPECIFIED"),
        "message": r.message, "patient_message": r.patient_message, "care_team": r.care_team,
        "conditions": r.conditions, "tiers": r.tiers,
    })
    .to_string()
}

/// `rule set v4 3f2a9c01b4de, approved by dr.li and n.wang at 2026-12-04T10:00:00Z
/// (rule 'x' put)`.
fn version_line(v: Option<&v1::RuleSetVersion>) -> String {
    let Some(v) = v else {
        return "rule set version not reported (an older server)".into();
    };
    let mut line = format!(
        "rule set v{} {}, {}",
        v.number,
        &v.hash[..v.hash.len().min(12)],
        approved_by(&v.approved_by, &v.second_approver)
    );
    if let Ok(at) = jiff::Timestamp::from_millisecond(v.approved_at_ms) {
        if v.approved_at_ms > 0 {
            line.push_str(&format!(
                " at {}",
                at.round(jiff::Unit::Second).unwrap_or(at)
            ));
        }
    }
    if !v.change.is_empty() {
        line.push_str(&format!(" ({})", v.change));
    }
    line
}

/// `approved by dr.li and n.wang`; "" is nobody named.
pub fn approved_by(by: &str, second: &str) -> String {
    match (by, second) {
        ("", _) => "approved by nobody named".into(),
        (by, "") => format!("approved by {by}"),
        (by, second) => format!("approved by {by} and {second}"),
    }
}

async fn put(file: &Path, approvers: RuleApprovers, target: &GrpcTarget) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (parsed, mut diags) = config::parse_partial(&text);
    let entries = parsed.rules.unwrap_or_default();
    if entries.is_empty() && diags.is_empty() {
        bail!("{}: no [[rules]] tables", file.display());
    }
    let mut rules = Vec::new();
    for e in &entries {
        match rule_from_entry(&e.value) {
            Ok(rule) => rules.push(rule),
            Err(messages) => diags.extend(messages.into_iter().map(|m| config::Diagnostic {
                line: e.line,
                message: format!("rule '{}': {m}", e.value.id),
            })),
        }
    }
    if !diags.is_empty() {
        diags.sort();
        bail!(
            "invalid rules, nothing was sent:\n{}",
            config::render(file, &diags)
        );
    }
    let approved_by = approvers
        .approved_by
        .or(parsed.rule_set.approved_by)
        .unwrap_or_default();
    let second_approver = approvers
        .second_approver
        .or(parsed.rule_set.second_approver)
        .unwrap_or_default();
    let mut rpc = client(target).await?;
    for rule in &rules {
        let reply = rpc
            .put_rule(v1::Rule {
                approved_by: approved_by.clone(),
                second_approver: second_approver.clone(),
                ..convert::rule(rule)
            })
            .await
            .with_context(|| format!("PutRule '{}'", rule.id))?
            .into_inner();
        println!(
            "put rule '{}' ({}); {}",
            rule.id,
            rule.kind_name(),
            version_line(reply.rule_set.as_ref())
        );
    }
    Ok(())
}
