//! `/api/patients`: the worklist (the caller's patients by risk), one patient's page
//! (profile, readings per metric with rule levels, open and recent alerts), and review marks.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use vigil_alerting::engine::{MetricSeries, PatientSummary};
use vigil_alerting::{PatientProfile, Review};

use super::access::Access;
use super::alerts::{alert_json, event_json};
use super::error::{HttpError, HttpResult};
use super::Console;
use crate::clock::now_ms;

fn profile_json(p: &PatientProfile) -> Value {
    json!({
        "id": p.id,
        "care_team": p.care_team,
        "consent": p.consent,
        "conditions": p.conditions,
        "tier": p.tier,
        "spo2_scale": p.spo2_scale,
        "overrides": p.overrides.iter().map(|(rule, o)| json!({"rule_id": rule, "override": o})).collect::<Vec<_>>(),
    })
}

fn review_json(r: &Option<Review>) -> Value {
    r.as_ref().map_or(Value::Null, |r| {
        serde_json::to_value(r).unwrap_or(Value::Null)
    })
}

fn summary_json(s: &PatientSummary) -> Value {
    json!({
        "profile": profile_json(&s.profile),
        "last_reading_ms": s.last_reading_ms,
        "news2": s.news2.map(|n| n.total),
    })
}

fn series_json(s: &MetricSeries) -> Value {
    json!({
        "metric": s.metric.name(),
        "unit": s.metric.canonical_unit(),
        "samples": s.samples.iter().map(|x| [x.ts_ms as f64, x.value]).collect::<Vec<_>>(),
        "lines": s.lines.iter().map(|l| json!({
            "rule_id": l.rule_id,
            "direction": l.direction.word(),
            "level": l.level,
            "severity": l.severity.as_str(),
        })).collect::<Vec<_>>(),
    })
}

pub async fn worklist(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
) -> HttpResult<Json<Value>> {
    access.require_patients(&console)?;
    let app = console.app.clone();
    let summaries = app.patient_summaries(&access.caller).await?;
    // Sorts every patient: off the async workers.
    let list = tokio::task::spawn_blocking(move || app.worklist(summaries))
        .await
        .map_err(|e| {
            HttpError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })?;
    let now = now_ms();
    Ok(Json(json!({
        "now_ms": now,
        "patients": list.iter().map(|e| {
            let mut v = summary_json(&e.summary);
            v["open"] = json!({"low": e.open[0], "medium": e.open[1], "high": e.open[2]});
            v["review"] = review_json(&e.review);
            v["needs_review"] = e.needs_review.into();
            v
        }).collect::<Vec<_>>(),
    })))
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> HttpResult<Json<Value>> {
    access.require_patients(&console)?;
    let page = console.app.patient_page(&access.caller, &id).await?;
    Ok(Json(json!({
        "profile": profile_json(&page.view.profile),
        "last_reading_ms": page.view.last_reading_ms,
        "news2": page.view.news2.map(|n| json!({"total": n.total, "max_parameter": n.max_parameter, "as_of_ms": n.as_of_ms})),
        "series": page.view.series.iter().map(series_json).collect::<Vec<_>>(),
        "today": page.view.today,
        "adherence": page.view.adherence.iter().map(|a| json!({
            "metric": a.metric.name(),
            "days_measured": a.days_measured,
            "recent_days": a.recent,
            "first_day": a.first_day,
        })).collect::<Vec<_>>(),
        "open_alerts": page.open_alerts.iter().map(alert_json).collect::<Vec<_>>(),
        "recent_events": page.recent.iter().map(|e| event_json(e)).collect::<Vec<_>>(),
        "review": review_json(&page.review),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// Reviewed for this many hours from now (0 clears the mark).
    hours: u32,
    #[serde(default)]
    note: String,
}

pub async fn review(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> HttpResult<Json<Value>> {
    access.require_patients(&console)?;
    let until = match body.hours {
        0 => 0,
        h => now_ms() + i64::from(h) * 3_600_000,
    };
    let review = console
        .app
        .review(&access.caller, &id, until, access.by(), &body.note)
        .await?;
    Ok(Json(review_json(&Some(review))))
}
