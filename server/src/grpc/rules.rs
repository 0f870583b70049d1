//! `vigil.v1.Rules`: the rules in force. Live changes (PutRule, DeleteRule) are not in
//! this version: they answer UNIMPLEMENTED and say how to change rules today.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vigil_alerting::Engine;
use vigil_proto::v1::{self, rules_server::Rules};

use super::convert;

pub struct RulesService {
    pub engine: Arc<Engine>,
}

const LIVE_CHANGES: &str =
    "live rule changes are not supported by this version: edit [[rules]] in the configuration file and restart";

#[tonic::async_trait]
impl Rules for RulesService {
    async fn put_rule(&self, _request: Request<v1::Rule>) -> Result<Response<v1::Rule>, Status> {
        Err(Status::unimplemented(LIVE_CHANGES))
    }

    async fn delete_rule(
        &self,
        _request: Request<v1::DeleteRuleRequest>,
    ) -> Result<Response<v1::DeleteRuleResponse>, Status> {
        Err(Status::unimplemented(LIVE_CHANGES))
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
