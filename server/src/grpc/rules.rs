//! `vigil.v1.Rules`: the rules in force, changed live without a restart and without
//! losing window state. Invalid rules are INVALID_ARGUMENT with `rules check`'s messages.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vigil_proto::v1::{self, rules_server::Rules};

use super::guard::caller;
use super::{convert, status};
use crate::app::rules::Approvers;
use crate::app::{fields, App};

pub struct RulesService {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl Rules for RulesService {
    async fn put_rule(&self, request: Request<v1::Rule>) -> Result<Response<v1::Rule>, Status> {
        let r = request.get_ref();
        check(r).map_err(status)?;
        let approvers = Approvers {
            by: r.approved_by.clone(),
            second: r.second_approver.clone(),
        };
        let (rule, version) = self
            .app
            .put_rule(&caller(&request), convert::rule_spec(r), &approvers)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::Rule {
            rule_set: Some(convert::rule_set(&version)),
            ..convert::rule(&rule)
        }))
    }

    async fn delete_rule(
        &self,
        request: Request<v1::DeleteRuleRequest>,
    ) -> Result<Response<v1::DeleteRuleResponse>, Status> {
        let r = request.get_ref();
        let approvers = Approvers {
            by: r.approved_by.clone(),
            second: r.second_approver.clone(),
        };
        let (resolved, version) = self
            .app
            .delete_rule(&caller(&request), &r.id, &approvers)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::DeleteRuleResponse {
            deleted: true,
            alerts_resolved: resolved as u32,
            rule_set: Some(convert::rule_set(&version)),
        }))
    }

    async fn list_rules(
        &self,
        _request: Request<v1::ListRulesRequest>,
    ) -> Result<Response<v1::ListRulesResponse>, Status> {
        let rules = self.app.engine.rules();
        Ok(Response::new(v1::ListRulesResponse {
            rules: rules.rules().iter().map(convert::rule).collect(),
            rule_set: Some(convert::rule_set(rules.version())),
        }))
    }
}

/// The message's strings, bounded before the rule is built from them.
fn check(r: &v1::Rule) -> Result<(), crate::app::AppError> {
    fields::required_id("id", &r.id)?;
    fields::id("care_team", &r.care_team)?;
    fields::id("kind", &r.kind)?;
    fields::id("metric", &r.metric)?;
    fields::ids("conditions", &r.conditions)?;
    fields::ids("tiers", &r.tiers)?;
    fields::ids("supersedes", &r.supersedes)?;
    fields::text("message", &r.message)?;
    fields::text("patient_message", &r.patient_message)
}
