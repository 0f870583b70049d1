//! Rules in force, changed live without a restart and without losing window state:
//! validate, journal (cluster mode: the cluster catalog), apply, audit.

use std::sync::Arc;

use tracing::info;
use vigil_alerting::{Approval, Rule, RuleSetVersion, RuleSpec};

use super::{fields, App, AppError, Caller};
use crate::clock::now_ms;

/// Who a rule change names as approving it: the caller (`by`; with authentication the
/// token's name is recorded, a different name given is kept beside it) and, optionally or
/// as `[rule_set] require_second_approver` says, a second person.
#[derive(Debug, Clone, Default)]
pub struct Approvers {
    pub by: String,
    pub second: String,
}

impl App {
    /// Adds or replaces a rule; invalid ones are refused with `rules check`'s messages.
    /// Returns the rule and the rule-set version the change made.
    pub async fn put_rule(
        &self,
        caller: &Caller,
        spec: RuleSpec,
        approvers: &Approvers,
    ) -> Result<(Rule, Arc<RuleSetVersion>), AppError> {
        let approval = self.approval(caller, approvers, format!("rule '{}' put", spec.id))?;
        let rule = spec.validate().map_err(|errors| {
            let lines: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
            AppError::Invalid(format!("rule '{}': {}", spec.id, lines.join("; ")))
        })?;
        match self.shared() {
            Some(cluster) => {
                let window = std::time::Duration::from_millis(
                    u64::try_from(rule.window_ms(None)).unwrap_or(0),
                );
                if window > cluster.retention.readings {
                    return Err(AppError::Precondition(format!(
                        "rule '{}' looks back {} s, longer than the cluster's readings stream \
                         keeps readings ({} s): a node taking a partition over could not \
                         rebuild its window; add the rule to every node's configuration file \
                         and restart them (the stream's retention follows the longest window)",
                        spec.id,
                        window.as_secs(),
                        cluster.retention.readings.as_secs()
                    )));
                }
                cluster.catalog.put_rule(&spec, &approval).await?;
            }
            None => {
                let _one_at_a_time = self.rule_changes.lock().unwrap_or_else(|e| e.into_inner());
                let next = self
                    .engine
                    .rules()
                    .with_rule(rule.clone(), approval.clone());
                self.journal.put_rule(&spec, next.version())?;
                self.engine.put_rule(rule.clone(), approval);
            }
        }
        let version = self.engine.rules_version();
        info!(
            rule_id = %rule.id,
            kind = rule.kind_name(),
            rule_set = version.number,
            "rule put"
        );
        self.audit.record(
            &caller.audit_actor(""),
            "rule_put",
            &spec.id,
            &version_detail(rule.kind_name(), &version),
        );
        Ok((rule, version))
    }

    /// Removes a rule and resolves its open alerts; returns how many, and the rule-set
    /// version the change made.
    pub async fn delete_rule(
        &self,
        caller: &Caller,
        id: &str,
        approvers: &Approvers,
    ) -> Result<(usize, Arc<RuleSetVersion>), AppError> {
        fields::required_id("id", id)?;
        let approval = self.approval(caller, approvers, format!("rule '{id}' deleted"))?;
        let missing = || AppError::NotFound(format!("no rule with id '{id}'"));
        let resolved = match self.shared() {
            Some(cluster) => {
                if self.engine.rules().get(id).is_none() {
                    return Err(missing());
                }
                let open = self.open_matching(|a| &*a.rule_id == id);
                cluster.catalog.delete_rule(id, &approval).await?;
                open
            }
            None => {
                let _one_at_a_time = self.rule_changes.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(next) = self.engine.rules().without(id, approval.clone()) {
                    self.journal.delete_rule(id, next.version())?;
                }
                self.engine
                    .delete_rule(id, approval, now_ms())
                    .ok_or_else(missing)?
            }
        };
        let version = self.engine.rules_version();
        info!(rule_id = %id, resolved, rule_set = version.number, "rule deleted");
        let detail = version_detail(&format!("alerts resolved: {resolved}"), &version);
        self.audit
            .record(&caller.audit_actor(""), "rule_delete", id, &detail);
        Ok((resolved, version))
    }

    /// The approval of a rule change `change` the caller asks for, checked.
    fn approval(
        &self,
        caller: &Caller,
        approvers: &Approvers,
        change: String,
    ) -> Result<Approval, AppError> {
        fields::id("approved_by", &approvers.by)?;
        fields::id("second_approver", &approvers.second)?;
        let (by, stated) = caller.attribution(approvers.by.trim(), "");
        let by = if stated.is_empty() {
            by
        } else {
            format!("{by} ({stated})")
        };
        let second = approvers.second.trim();
        if second.is_empty() && self.require_second_approver {
            return Err(AppError::Precondition(
                "this server requires a second approver for rule changes ([rule_set] \
                 require_second_approver): name one in second_approver, someone other \
                 than you"
                    .into(),
            ));
        }
        let token = caller.principal.as_deref().map_or("", |p| p.name.as_str());
        let caller_names = [by.as_str(), approvers.by.trim(), token];
        if !second.is_empty() && caller_names.contains(&second) {
            return Err(AppError::Invalid(
                "second_approver must be someone other than the caller".into(),
            ));
        }
        Ok(Approval {
            by,
            second: (!second.is_empty()).then(|| second.to_string()),
            at_ms: now_ms(),
            change,
            number: None,
        })
    }
}

/// The audit record's detail: what happened and the rule-set version it made.
fn version_detail(what: &str, version: &RuleSetVersion) -> String {
    format!(
        "{what}; rule set v{} {}",
        version.number,
        version.short_hash()
    )
}
