//! The `webhook` kind: Prometheus Alertmanager's webhook payload, version "4", so that a
//! receiver written for Alertmanager works unchanged. One alert per message; Vigil adds the
//! label `event` and the annotation `seq`.

use serde_json::{json, Value};
use vigil_alerting::{AlertEvent, AlertState};

use super::spec::{event_name, NotifierSpec};
use crate::clock::rfc3339;

/// Alertmanager's "not ended" time.
pub const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// The one alert of a payload.
pub struct AmAlert {
    pub firing: bool,
    pub labels: Value,
    pub annotations: Value,
    pub starts_at: String,
    pub ends_at: String,
    pub generator_url: String,
    pub fingerprint: String,
}

/// The version 4 payload of one alert: grouped by `group_labels`, labels and annotations
/// common to the group being the alert's own.
pub fn envelope(receiver: &str, external_url: &str, group_labels: Value, alert: AmAlert) -> Value {
    let status = if alert.firing { "firing" } else { "resolved" };
    let group_key = group_labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{{group_key}}}"),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": alert.labels,
        "commonAnnotations": alert.annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": alert.starts_at,
            "endsAt": alert.ends_at,
            "generatorURL": alert.generator_url,
            "fingerprint": alert.fingerprint,
        }],
    })
}

fn time_or_not_ended(ms: i64) -> String {
    rfc3339(ms).unwrap_or_else(|| NOT_ENDED.to_string())
}

pub fn body(spec: &NotifierSpec, event: &AlertEvent, external_url: &str, link: &str) -> Value {
    let a = &event.alert;
    let resolved = a.state == AlertState::Resolved;
    let ends_at = match (&a.resolved, resolved) {
        (Some(stamp), true) => time_or_not_ended(stamp.at_ms),
        (None, true) => time_or_not_ended(event.at_ms),
        _ => NOT_ENDED.to_string(),
    };
    envelope(
        &spec.id,
        external_url,
        json!({ "alertname": a.rule_id, "patient": a.patient_id }),
        AmAlert {
            firing: !resolved,
            labels: json!({
                "alertname": a.rule_id,
                "patient": a.patient_id,
                "care_team": a.care_team,
                "severity": a.severity.as_str(),
                "metric": a.metric,
                "event": event_name(event.kind),
            }),
            annotations: json!({
                "summary": a.message,
                "value": a.value.to_string(),
                "unit": a.unit,
                "seq": event.seq.to_string(),
            }),
            starts_at: time_or_not_ended(a.observed_at_ms),
            ends_at,
            generator_url: link.to_string(),
            fingerprint: a.id.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_key_names_the_group_labels_as_alertmanager_does() {
        let alert = AmAlert {
            firing: false,
            labels: json!({}),
            annotations: json!({}),
            starts_at: String::new(),
            ends_at: NOT_ENDED.into(),
            generator_url: String::new(),
            fingerprint: "f".into(),
        };
        let v = envelope(
            "r",
            "",
            json!({ "alertname": "bp_high", "patient": "p1" }),
            alert,
        );
        assert_eq!(v["groupKey"], r#"{}:{alertname="bp_high", patient="p1"}"#);
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["alerts"][0]["status"], "resolved");
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }
}
