//! `heartbeat`: a periodic "Vigil is alive" message through a notifier, so that people
//! notice a channel that went silent (Alertmanager's Watchdog). For a webhook it is an
//! always-firing alert named `VigilHeartbeat`; for the chat kinds a short line.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::delivery::{self, Limiter};
use super::message::Text;
use super::robots;
use super::spec::{Kind, Language, NotifierSpec};
use super::webhook::{envelope, AmAlert, NOT_ENDED};
use super::App;
use crate::clock::{now_ms, rfc3339};

/// The alert name of the webhook kind's heartbeat.
pub const ALERT_NAME: &str = "VigilHeartbeat";

pub async fn run(
    app: Arc<App>,
    spec: Arc<NotifierSpec>,
    every: Duration,
    limiter: Option<Arc<Limiter>>,
    client: reqwest::Client,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first beat one period after start
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let body = body(&spec);
        let sent = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = delivery::deliver(&client, &spec, limiter.as_deref(), &body, |_| {}) => s,
        };
        match sent {
            Ok(()) => app.telemetry.notification(&spec.id, "heartbeat"),
            Err(why) => {
                app.telemetry.notification(&spec.id, "failed");
                warn!(notifier = %spec.id, why, "heartbeat not delivered");
            }
        }
    }
}

pub fn body(spec: &NotifierSpec) -> Value {
    let at = now_ms();
    match spec.kind {
        Kind::Webhook => envelope(
            &spec.id,
            "",
            json!({ "alertname": ALERT_NAME }),
            AmAlert {
                firing: true,
                labels: json!({ "alertname": ALERT_NAME, "severity": "none", "event": "heartbeat" }),
                annotations: json!({ "summary": "Vigil is alive: this notifier works" }),
                starts_at: rfc3339(at).unwrap_or_default(),
                ends_at: NOT_ENDED.to_string(),
                generator_url: String::new(),
                fingerprint: ALERT_NAME.to_string(),
            },
        ),
        kind => {
            let at = rfc3339(at).unwrap_or_default();
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
