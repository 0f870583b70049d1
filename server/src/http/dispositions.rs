//! `/api/dispositions?days=7|30`: what alerts led to, per rule, over recent days (no patient
//! in it), and the list a person chooses from.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::Access;
use super::error::{HttpError, HttpResult};
use super::Console;
use crate::app::dispositions::REPORT_DAYS;
use crate::auth::role::Service;

#[derive(Deserialize, Default)]
pub struct ReportQuery {
    days: Option<i64>,
}

pub async fn report(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Query(q): Query<ReportQuery>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let days = q.days.unwrap_or(7);
    if !(1..=REPORT_DAYS).contains(&days) {
        return Err(HttpError::bad_request(format!(
            "days must be from 1 to {REPORT_DAYS}"
        )));
    }
    let d = &console.app.dispositions;
    Ok(Json(json!({
        "days": days,
        "dispositions": d.list(),
        "rules": d.report(days, crate::clock::now_ms()),
    })))
}
