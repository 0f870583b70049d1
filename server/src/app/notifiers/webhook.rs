//! The `webhook` kind: Prometheus Alertmanager's webhook payload, version "4", so that a
//! receiver written for Alertmanager works unchanged. A message is one group: a patient's
//! pending alerts (`groupLabels` = `patient`), each alert once, as of its newest event; Vigil
//! adds the label `event` and the annotation `seq`.

use serde_json::{json, Map, Value};
use vigil_alerting::{AlertEvent, AlertState};

use super::spec::{event_name, NotifierSpec};
use crate::clock::rfc3339;

/// Alertmanager's "not ended" time.
pub const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// One alert of a payload.
pub struct AmAlert {
    pub firing: bool,
    pub labels: Value,
    pub annotations: Value,
    pub starts_at: String,
    pub ends_at: String,
    pub generator_url: String,
    pub fingerprint: String,
}

/// The version 4 payload of a group of alerts: `firing` while any of them fires; common
/// labels and annotations are those every alert of the group has, with the same value.
pub fn envelope(
    receiver: &str,
    external_url: &str,
    group_labels: Value,
    alerts: Vec<AmAlert>,
) -> Value {
    let status = |firing: bool| if firing { "firing" } else { "resolved" };
    let group_key = group_labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let common = |pick: fn(&AmAlert) -> &Value| {
        let mut shared = pick(&alerts[0]).as_object().cloned().unwrap_or_default();
        for a in &alerts[1..] {
            let theirs = pick(a).as_object();
            shared.retain(|k, v| theirs.and_then(|m| m.get(k)) == Some(v));
        }
        Value::Object(shared)
    };
    let (common_labels, common_annotations) = if alerts.is_empty() {
        (Value::Object(Map::new()), Value::Object(Map::new()))
    } else {
        (common(|a| &a.labels), common(|a| &a.annotations))
    };
    let firing = alerts.iter().any(|a| a.firing);
    let listed: Vec<Value> = alerts
        .into_iter()
        .map(|a| {
            json!({
                "status": status(a.firing),
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at,
                "endsAt": a.ends_at,
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{{group_key}}}"),
        "truncatedAlerts": 0,
        "status": status(firing),
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": listed,
    })
}

fn time_or_not_ended(ms: i64) -> String {
    rfc3339(ms).unwrap_or_else(|| NOT_ENDED.to_string())
}

/// The payload of a group of one patient's events. `fallback_for` names the notifier that
/// could not deliver them, when this one sends them as its care team's fallback.
pub fn body(
    spec: &NotifierSpec,
    group: &[&AlertEvent],
    external_url: &str,
    link: &str,
    fallback_for: Option<&str>,
) -> Value {
    // Each alert once, as of its newest event in the group, in the order first seen.
    let mut newest: Vec<&AlertEvent> = Vec::new();
    for e in group {
        match newest.iter_mut().find(|n| n.alert.id == e.alert.id) {
            Some(n) => *n = e,
            None => newest.push(e),
        }
    }
    let alerts = newest
        .into_iter()
        .map(|event| {
            let a = &event.alert;
            let resolved = a.state == AlertState::Resolved;
            let ends_at = match (&a.resolved, resolved) {
                (Some(stamp), true) => time_or_not_ended(stamp.at_ms),
                (None, true) => time_or_not_ended(event.at_ms),
                _ => NOT_ENDED.to_string(),
            };
            let mut annotations = json!({
                "summary": a.message,
                "value": a.value.to_string(),
                "unit": a.unit,
                "seq": event.seq.to_string(),
            });
            if let Some(id) = fallback_for {
                annotations["fallback_for"] = json!(id);
            }
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
                annotations,
                starts_at: time_or_not_ended(a.observed_at_ms),
                ends_at,
                generator_url: link.to_string(),
                fingerprint: a.id.to_string(),
            }
        })
        .collect();
    let patient = group.first().map(|e| &*e.alert.patient_id).unwrap_or("");
    envelope(
        &spec.id,
        external_url,
        json!({ "patient": patient }),
        alerts,
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
            vec![alert],
        );
        assert_eq!(v["groupKey"], r#"{}:{alertname="bp_high", patient="p1"}"#);
        assert_eq!(v["status"], "resolved");
        assert_eq!(v["alerts"][0]["status"], "resolved");
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }
}
