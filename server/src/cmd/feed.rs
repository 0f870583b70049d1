//! Human-readable and JSON renderings of alert events, for the demo's live feed and
//! `vigil alerts tail`.

use std::io::IsTerminal;

use serde_json::json;
use time::macros::format_description;
use time::OffsetDateTime;
use vigil_proto::v1;

/// Formats events as one line each.
pub struct Feed {
    color: bool,
}

impl Feed {
    /// Colours when stdout is a terminal.
    pub fn for_stdout() -> Feed {
        Feed {
            color: std::io::stdout().is_terminal(),
        }
    }

    pub fn line(&self, e: &v1::AlertEvent) -> String {
        let a = e.alert.clone().unwrap_or_default();
        let kind = match v1::EventKind::try_from(e.kind).unwrap_or(v1::EventKind::Unspecified) {
            v1::EventKind::Raised => "RAISED",
            v1::EventKind::Acknowledged => "ACKED",
            v1::EventKind::Escalated => "ESCALATED",
            v1::EventKind::Resolved => "RESOLVED",
            v1::EventKind::Renotified => "RENOTIFIED",
            v1::EventKind::Snoozed => "SNOOZED",
            v1::EventKind::Assigned => "ASSIGNED",
            v1::EventKind::Unspecified => "EVENT",
        };
        let severity = match v1::Severity::try_from(a.severity).unwrap_or(v1::Severity::Unspecified)
        {
            v1::Severity::High => "HIGH",
            v1::Severity::Medium => "MEDIUM",
            v1::Severity::Low => "LOW",
            v1::Severity::Unspecified => "-",
        };
        let (on, off) = match (self.color, kind, severity) {
            (false, _, _) => ("", ""),
            (true, "RESOLVED", _) => ("\x1b[32m", "\x1b[0m"),
            (true, "ACKED", _) => ("\x1b[36m", "\x1b[0m"),
            (true, _, "HIGH") => ("\x1b[1;31m", "\x1b[0m"),
            (true, _, "MEDIUM") => ("\x1b[33m", "\x1b[0m"),
            (true, _, _) => ("", ""),
        };
        let mut line = format!(
            "{}  #{:<5} {on}{kind:<9} {severity:<6}{off} {:<10} {:<12} {:<30} {}",
            clock(e.at_ms),
            e.seq,
            a.patient_id,
            a.care_team,
            a.rule_id,
            if kind == "RAISED" {
                a.message.as_str()
            } else {
                e.note.as_str()
            },
        );
        // A late upload is judged by when the reading was taken: say so.
        if kind == "RAISED" && a.raised_at_ms - a.observed_at_ms > 60_000 {
            line.push_str(&format!("  (observed {})", clock(a.observed_at_ms)));
        }
        if !e.by.is_empty() {
            line.push_str(&format!("  by {}", e.by));
        }
        line
    }
}

/// One JSON object per event.
pub fn json_line(e: &v1::AlertEvent) -> String {
    let a = e.alert.clone().unwrap_or_default();
    json!({
        "seq": e.seq,
        "kind": v1::EventKind::try_from(e.kind).map(|k| k.as_str_name()).unwrap_or("EVENT_KIND_UNSPECIFIED"),
        "at_ms": e.at_ms,
        "by": e.by,
        "note": e.note,
        "alert": {
            "id": a.id,
            "patient_id": a.patient_id,
            "rule_id": a.rule_id,
            "severity": v1::Severity::try_from(a.severity).map(|s| s.as_str_name()).unwrap_or("SEVERITY_UNSPECIFIED"),
            "metric": a.metric,
            "value": a.value,
            "unit": a.unit,
            "message": a.message,
            "state": v1::AlertState::try_from(a.state).map(|s| s.as_str_name()).unwrap_or("ALERT_STATE_UNSPECIFIED"),
            "care_team": a.care_team,
            "observed_at_ms": a.observed_at_ms,
            "raised_at_ms": a.raised_at_ms,
        }
    })
    .to_string()
}

/// `HH:MM:SS` in UTC.
fn clock(ms: i64) -> String {
    let fmt = format_description!("[hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "--:--:--".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_essentials() {
        let e = v1::AlertEvent {
            seq: 7,
            kind: v1::EventKind::Raised as i32,
            at_ms: 1_763_892_000_000,
            alert: Some(v1::Alert {
                patient_id: "p-001".into(),
                rule_id: "low_spo2".into(),
                severity: v1::Severity::High as i32,
                message: "SpO2 88%".into(),
                care_team: "cardiology".into(),
                raised_at_ms: 1_763_892_000_000,
                observed_at_ms: 1_763_891_000_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let line = Feed { color: false }.line(&e);
        for part in [
            "10:00:00",
            "#7",
            "RAISED",
            "HIGH",
            "p-001",
            "cardiology",
            "low_spo2",
            "SpO2 88%",
            "observed 09:43:20",
        ] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
        let json: serde_json::Value = serde_json::from_str(&json_line(&e)).unwrap();
        assert_eq!(json["kind"], "EVENT_KIND_RAISED");
        assert_eq!(json["alert"]["severity"], "SEVERITY_HIGH");
    }
}
