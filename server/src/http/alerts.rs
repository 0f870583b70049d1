//! `/api/alerts`: the open alerts the caller may see (with the stream position they were
//! read at, so a board can follow `/api/events` from there without a gap), one alert's
//! history, and acknowledge, resolve and snooze, through the same operations as gRPC.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_alerting::{Alert, AlertEvent, AlertState, Severity};

use super::access::Access;
use super::error::{HttpError, HttpResult};
use super::Console;
use crate::app::care::AlertQuery;
use crate::auth::role::Service;

/// The longest snooze the console offers (its buttons: 15 min, 1 h, 4 h).
pub const MAX_SNOOZE_MINUTES: u64 = 240;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    care_team: Option<String>,
    severity: Option<String>,
}

/// How the board shows an alert's state: an active alert past its first escalation is
/// `escalated`.
pub fn board_state(alert: &Alert) -> &'static str {
    match alert.state {
        AlertState::Active if alert.escalation_level > 0 => "escalated",
        AlertState::Active => "active",
        AlertState::Acknowledged => "acknowledged",
        AlertState::Resolved => "resolved",
        AlertState::Held => "held",
    }
}

/// An alert as the console reads it: the journal's JSON plus `board_state`.
pub fn alert_json(alert: &Alert) -> Value {
    let mut v = serde_json::to_value(alert).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("board_state".into(), board_state(alert).into());
    }
    v
}

pub fn event_json(event: &AlertEvent) -> Value {
    json!({
        "seq": event.seq,
        "kind": event.kind,
        "at_ms": event.at_ms,
        "by": event.by,
        "note": event.note,
        "alert": alert_json(&event.alert),
    })
}

pub(super) fn query(care_team: Option<String>, severity: Option<&str>) -> HttpResult<AlertQuery> {
    let min_severity = match severity.filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Severity::parse(s).ok_or_else(|| {
            HttpError::bad_request(format!(
                "severity must be low, medium or high, not '{}'",
                crate::untrusted::clip(s)
            ))
        })?),
    };
    Ok(AlertQuery {
        care_teams: care_team.filter(|t| !t.is_empty()).into_iter().collect(),
        patient_ids: Vec::new(),
        min_severity,
    })
}

pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Query(q): Query<ListQuery>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let query = query(q.care_team, q.severity.as_deref())?;
    // Read the position first: an event after it is replayed, and applying it again to
    // an alert already listed in that state changes nothing.
    let seq = console.app.alert_log.stats().last_seq;
    let mut alerts = console.app.list_active(&access.caller, query)?;
    alerts.sort_by(|a, b| {
        (b.severity as u8, b.raised_at_ms).cmp(&(a.severity as u8, a.raised_at_ms))
    });
    Ok(Json(json!({
        "seq": seq,
        "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
        "rule_set": rule_set_json(&console.app.engine.rules_version()),
    })))
}

/// The version of the rules in force ([`vigil_alerting::RuleSetVersion`]), for the
/// board's footer.
pub async fn rule_set(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    Ok(Json(rule_set_json(&console.app.engine.rules_version())))
}

pub fn rule_set_json(v: &vigil_alerting::RuleSetVersion) -> Value {
    json!({
        "number": v.number,
        "hash": v.hash,
        "approved_by": v.approval.by,
        "second_approver": v.approval.second,
        "approved_at_ms": v.approval.at_ms,
        "change": v.approval.change,
    })
}

pub async fn history(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let events = console.app.history(&access.caller, &id).await?;
    Ok(Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    #[serde(default)]
    note: String,
    /// `snooze` only: 15, 60 or 240 (0 cancels a snooze).
    #[serde(default)]
    minutes: Option<u64>,
    /// What the alert led to: optional to acknowledge, required to resolve.
    #[serde(default)]
    disposition: String,
    /// `assign` only: who answers for the alert from now on (`""`: nobody).
    #[serde(default)]
    assignee: String,
}

/// `POST /api/alerts/{id}/acknowledge|resolve|snooze|claim|assign`, body `{"note": "...", "minutes": 15,
/// "disposition": "contacted_patient", "assignee": "nurse.kim"}` (`minutes` for snooze only;
/// `disposition` required to resolve; `assignee` for assign).
pub async fn act(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<ActBody>>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let (app, caller, by) = (&console.app, &access.caller, access.by());
    let alert = match action.as_str() {
        "acknowledge" => {
            app.acknowledge(caller, &id, by, &body.note, &body.disposition)
                .await?
        }
        "resolve" => {
            app.resolve(caller, &id, by, &body.note, &body.disposition)
                .await?
        }
        "claim" => app.claim(caller, &id, by, &body.note).await?,
        "assign" => {
            app.assign(caller, &id, &body.assignee, by, &body.note)
                .await?
        }
        "snooze" => {
            let minutes = body.minutes.ok_or_else(|| {
                HttpError::bad_request("snooze needs `minutes` (15, 60 or 240; 0 cancels)")
            })?;
            if minutes > MAX_SNOOZE_MINUTES {
                return Err(HttpError::bad_request(format!(
                    "the console snoozes for at most {MAX_SNOOZE_MINUTES} minutes"
                )));
            }
            app.snooze(caller, &id, minutes * 60_000, by, &body.note)
                .await?
        }
        _ => {
            return Err(HttpError::new(
                axum::http::StatusCode::NOT_FOUND,
                "unknown action: acknowledge, resolve, snooze, claim or assign",
            ))
        }
    };
    Ok(Json(alert_json(&alert)))
}
