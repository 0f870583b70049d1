//! The `webhook` kind: Prometheus Alertmanager's webhook payload, version "4", so that a
//! receiver written for Alertmanager works unchanged. One alert per message; Vigil adds the
//! label `event` and the annotation `seq`.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use vigil_alerting::{AlertEvent, AlertState};

use super::spec::{event_name, NotifierSpec};

/// Alertmanager's "not ended" time.
const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| NOT_ENDED.to_string())
}

pub fn body(spec: &NotifierSpec, event: &AlertEvent, external_url: &str, link: &str) -> Value {
    let a = &event.alert;
    let resolved = a.state == AlertState::Resolved;
    let status = if resolved { "resolved" } else { "firing" };
    let labels = json!({
        "alertname": a.rule_id,
        "patient": a.patient_id,
        "care_team": a.care_team,
        "severity": a.severity.as_str(),
        "metric": a.metric,
        "event": event_name(event.kind),
    });
    let annotations = json!({
        "summary": a.message,
        "value": a.value.to_string(),
        "unit": a.unit,
        "seq": event.seq.to_string(),
    });
    let ends = match (&a.resolved, resolved) {
        (Some(stamp), true) => rfc3339(stamp.at_ms),
        (None, true) => rfc3339(event.at_ms),
        _ => NOT_ENDED.to_string(),
    };
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\", patient=\"{}\"}}", a.rule_id, a.patient_id),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": spec.id,
        "groupLabels": { "alertname": a.rule_id, "patient": a.patient_id },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(a.observed_at_ms),
            "endsAt": ends,
            "generatorURL": link,
            "fingerprint": a.id,
        }],
    })
}
