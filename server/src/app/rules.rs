//! Rules in force, changed live without a restart and without losing window state:
//! validate, journal, apply, audit.

use tracing::info;
use vigil_alerting::{Rule, RuleSpec};

use super::{App, AppError, Caller};
use crate::clock::now_ms;

impl App {
    /// Adds or replaces a rule; invalid ones are refused with `rules check`'s messages.
    pub fn put_rule(&self, caller: &Caller, spec: RuleSpec) -> Result<Rule, AppError> {
        self.single_node_only("Rules/PutRule")?;
        let rule = spec.validate().map_err(|errors| {
            let lines: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
            AppError::Invalid(format!("rule '{}': {}", spec.id, lines.join("; ")))
        })?;
        self.journal.put_rule(&spec)?;
        info!(rule_id = %rule.id, kind = rule.kind_name(), "rule put");
        self.audit.record(
            &caller.audit_actor(""),
            "rule_put",
            &spec.id,
            rule.kind_name(),
        );
        self.engine.put_rule(rule.clone());
        Ok(rule)
    }

    /// Removes a rule and resolves its open alerts; returns how many.
    pub fn delete_rule(&self, caller: &Caller, id: &str) -> Result<usize, AppError> {
        self.single_node_only("Rules/DeleteRule")?;
        super::fields::required_id("id", id)?;
        if self.engine.rules().get(id).is_some() {
            self.journal.delete_rule(id)?;
        }
        let Some(resolved) = self.engine.delete_rule(id, now_ms()) else {
            return Err(AppError::NotFound(format!("no rule with id '{id}'")));
        };
        info!(rule_id = %id, resolved, "rule deleted");
        let detail = format!("alerts resolved: {resolved}");
        self.audit
            .record(&caller.audit_actor(""), "rule_delete", id, &detail);
        Ok(resolved)
    }
}
