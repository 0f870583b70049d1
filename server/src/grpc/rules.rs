//! `vigil.v1.Rules`: the rules in force, changed live without a restart and without
//! losing window state. Invalid rules are INVALID_ARGUMENT with `rules check`'s messages.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::info;
use vigil_alerting::{Engine, Journal};
use vigil_proto::v1::{self, rules_server::Rules};

use super::{convert, fields};
use crate::audit::{self, AuditLog};
use crate::auth::grpc_guard::caller;
use crate::clock::now_ms;

pub struct RulesService {
    pub engine: Arc<Engine>,
    pub journal: Arc<Journal>,
    pub audit: Arc<AuditLog>,
}

#[tonic::async_trait]
impl Rules for RulesService {
    async fn put_rule(&self, request: Request<v1::Rule>) -> Result<Response<v1::Rule>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let r = request.get_ref();
        fields::required_id("id", &r.id)?;
        fields::id("care_team", &r.care_team)?;
        fields::id("kind", &r.kind)?;
        fields::id("metric", &r.metric)?;
        fields::ids("conditions", &r.conditions)?;
        fields::ids("tiers", &r.tiers)?;
        fields::ids("supersedes", &r.supersedes)?;
        fields::text("message", &r.message)?;
        fields::text("patient_message", &r.patient_message)?;
        let spec = convert::rule_spec(r);
        let rule = spec.validate().map_err(|errors| {
            let lines: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
            Status::invalid_argument(format!("rule '{}': {}", spec.id, lines.join("; ")))
        })?;
        let reply = convert::rule(&rule);
        self.journal
            .put_rule(&spec)
            .map_err(super::journal_unavailable)?;
        info!(rule_id = %rule.id, kind = rule.kind_name(), "rule put");
        self.audit.record(
            &audit::actor("", peer, who.as_deref()),
            "rule_put",
            &spec.id,
            rule.kind_name(),
        );
        self.engine.put_rule(rule);
        Ok(Response::new(reply))
    }

    async fn delete_rule(
        &self,
        request: Request<v1::DeleteRuleRequest>,
    ) -> Result<Response<v1::DeleteRuleResponse>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let id = request.into_inner().id;
        fields::required_id("id", &id)?;
        if self.engine.rules().get(&id).is_some() {
            self.journal
                .delete_rule(&id)
                .map_err(super::journal_unavailable)?;
        }
        match self.engine.delete_rule(&id, now_ms()) {
            Some(resolved) => {
                info!(rule_id = %id, resolved, "rule deleted");
                let detail = format!("alerts resolved: {resolved}");
                self.audit.record(
                    &audit::actor("", peer, who.as_deref()),
                    "rule_delete",
                    &id,
                    &detail,
                );
                Ok(Response::new(v1::DeleteRuleResponse {
                    deleted: true,
                    alerts_resolved: resolved as u32,
                }))
            }
            None => Err(Status::not_found(format!("no rule with id '{id}'"))),
        }
    }

    async fn list_rules(
        &self,
        _request: Request<v1::ListRulesRequest>,
    ) -> Result<Response<v1::ListRulesResponse>, Status> {
        let rules = self
            .engine
            .rules()
            .rules()
            .iter()
            .map(convert::rule)
            .collect();
        Ok(Response::new(v1::ListRulesResponse { rules }))
    }
}
