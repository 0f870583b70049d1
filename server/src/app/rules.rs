//! Rules in force, changed live without a restart and without losing window state:
//! validate, journal (cluster mode: the cluster catalog), apply, audit.

use tracing::info;
use vigil_alerting::{Rule, RuleSpec};

use super::{App, AppError, Caller};
use crate::clock::now_ms;

impl App {
    /// Adds or replaces a rule; invalid ones are refused with `rules check`'s messages.
    pub async fn put_rule(&self, caller: &Caller, spec: RuleSpec) -> Result<Rule, AppError> {
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
                cluster.catalog.put_rule(&spec).await?;
            }
            None => {
                self.journal.put_rule(&spec)?;
                self.engine.put_rule(rule.clone());
            }
        }
        info!(rule_id = %rule.id, kind = rule.kind_name(), "rule put");
        self.audit.record(
            &caller.audit_actor(""),
            "rule_put",
            &spec.id,
            rule.kind_name(),
        );
        Ok(rule)
    }

    /// Removes a rule and resolves its open alerts; returns how many.
    pub async fn delete_rule(&self, caller: &Caller, id: &str) -> Result<usize, AppError> {
        super::fields::required_id("id", id)?;
        let missing = || AppError::NotFound(format!("no rule with id '{id}'"));
        let resolved = match self.shared() {
            Some(cluster) => {
                if self.engine.rules().get(id).is_none() {
                    return Err(missing());
                }
                let open = self.open_matching(|a| &*a.rule_id == id);
                cluster.catalog.delete_rule(id).await?;
                open
            }
            None => {
                if self.engine.rules().get(id).is_some() {
                    self.journal.delete_rule(id)?;
                }
                self.engine.delete_rule(id, now_ms()).ok_or_else(missing)?
            }
        };
        info!(rule_id = %id, resolved, "rule deleted");
        let detail = format!("alerts resolved: {resolved}");
        self.audit
            .record(&caller.audit_actor(""), "rule_delete", id, &detail);
        Ok(resolved)
    }
}
