//! `/api/handover`: a care team's open alerts with who answers for each and its newest note
//! (GET), and handing one person's alerts to another in one action (POST).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::Access;
use super::alerts::alert_json;
use super::error::HttpResult;
use super::Console;
use crate::auth::role::Service;

#[derive(Deserialize, Default)]
pub struct TeamQuery {
    care_team: Option<String>,
}

/// The team asked for, else the caller's own.
fn team(access: &Access, asked: Option<String>) -> String {
    asked
        .filter(|t| !t.is_empty())
        .or_else(|| {
            access
                .caller
                .principal
                .as_deref()
                .and_then(|p| p.care_team().map(str::to_string))
        })
        .unwrap_or_default()
}

pub async fn view(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Query(q): Query<TeamQuery>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let team = team(&access, q.care_team);
    let items = console.app.handover_view(&access.caller, &team).await?;
    let alerts: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "alert": alert_json(&i.alert),
                "last_note": i.last_note.as_ref().map(|e| json!({
                    "note": e.note, "by": e.by, "at_ms": e.at_ms, "kind": e.kind,
                })),
            })
        })
        .collect();
    let claimed = items.iter().filter(|i| i.alert.assignee.is_some()).count();
    Ok(Json(json!({
        "care_team": team,
        "claimed": claimed,
        "unclaimed": items.len() - claimed,
        "alerts": alerts,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverBody {
    #[serde(default)]
    care_team: Option<String>,
    from: String,
    to: String,
    #[serde(default)]
    note: String,
}

pub async fn hand_over(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Json(body): Json<HandoverBody>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let team = team(&access, body.care_team);
    let moved = console
        .app
        .handover(
            &access.caller,
            &team,
            &body.from,
            &body.to,
            access.by(),
            &body.note,
        )
        .await?;
    Ok(Json(json!({
        "handed_over": moved.len(),
        "alerts": moved.iter().map(alert_json).collect::<Vec<_>>(),
    })))
}
