//! `heartbeat`: a periodic "Vigil is alive" message through a notifier, so that people
//! notice a channel that went silent (Alertmanager's Watchdog). For a webhook it is an
//! always-firing alert named `VigilHeartbeat`; for the chat kinds a short line.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::delivery;
use super::message::Text;
use super::robots;
use super::spec::{Kind, Language, NotifierSpec};
use super::webhook::{envelope, AmAlert, NOT_ENDED};
use super::{Route, Shared};
use crate::clock::{local_time, now_ms, rfc3339};

/// The alert name of the webhook kind's heartbeat.
pub const ALERT_NAME: &str = "VigilHeartbeat";

pub async fn run(
    shared: Arc<Shared>,
    route: Arc<Route>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let (spec, telemetry) = (&route.spec, &shared.app.telemetry);
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first beat one period after start
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let body = body(spec, &shared.render.zone);
        let sent = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = delivery::deliver(&shared.client, spec, route.limiter.as_deref(), &body, |_| {}) => s,
        };
        match sent {
            Ok(()) => telemetry.notification(&spec.id, "heartbeat"),
            Err(why) => {
                telemetry.notification(&spec.id, "failed");
                warn!(notifier = %spec.id, why, "heartbeat not delivered");
            }
        }
    }
}

pub fn body(spec: &NotifierSpec, zone: &jiff::tz::TimeZone) -> Value {
    let at = now_ms();
    match spec.kind {
        Kind::Webhook => envelope(
            &spec.id,
            "",
            json!({ "alertname": ALERT_NAME }),
            vec![AmAlert {
                firing: true,
                labels: json!({ "alertname": ALERT_NAME, "severity": "none", "event": "heartbeat" }),
                annotations: json!({ "summary": "Vigil is alive: this notifier works" }),
                starts_at: rfc3339(at).unwrap_or_default(),
                ends_at: NOT_ENDED.to_string(),
                generator_url: String::new(),
                fingerprint: ALERT_NAME.to_string(),
            }],
        ),
        kind => {
            let at = local_time(at, zone).unwrap_or_default();
            let text = match spec.language {
                Language::En => Text {
                    title: "Vigil is alive".into(),
                    body: format!(
                        "**Vigil is alive**: notifications through this channel work ({at})."
                    ),
                },
                Language::ZhCn => Text {
                    title: "Vigil 运行正常".into(),
                    body: format!("**Vigil 运行正常**：本通道的告警通知可以送达（{at}）。"),
                },
            };
            robots::body(kind, &text)
        }
    }
}
