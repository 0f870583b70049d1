//! `/api/silences`: the silences in force the caller may see, a new one (by patient and/or
//! rule, for a duration, with a comment), and deleting one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::Access;
use super::error::{HttpError, HttpResult};
use super::Console;
use crate::app::silences::SilenceRequest;
use crate::auth::role::Service;
use crate::clock::now_ms;

pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let silences = console.app.list_silences(&access.caller);
    Ok(Json(json!({ "silences": silences })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    rule_id: String,
    #[serde(default)]
    care_team: String,
    minutes: u64,
    #[serde(default)]
    comment: String,
}

pub async fn create(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Json(body): Json<NewSilence>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    if body.minutes == 0 {
        return Err(HttpError::bad_request("minutes must be at least 1"));
    }
    let ends = i64::try_from(body.minutes.saturating_mul(60_000))
        .ok()
        .and_then(|ms| now_ms().checked_add(ms))
        .ok_or_else(|| HttpError::bad_request("minutes is too large"))?;
    let silence = console
        .app
        .silence(
            &access.caller,
            SilenceRequest {
                patient_id: body.patient_id,
                rule_id: body.rule_id,
                care_team: body.care_team,
                ends_at_ms: ends,
                reason: body.comment,
                by: access.by().to_string(),
            },
        )
        .await?;
    Ok(Json(json!(silence)))
}

pub async fn remove(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> HttpResult<Json<Value>> {
    access.require(&console, Service::Alerts)?;
    let silence = console.app.delete_silence(&access.caller, &id).await?;
    Ok(Json(json!(silence)))
}
