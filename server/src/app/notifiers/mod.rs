//! Notifiers: alerts pushed to people where they already are (an Alertmanager webhook
//! receiver, WeCom and DingTalk group robots, Slack). Each notifier is a durable consumer of
//! the alert stream in two lanes (HIGH alerts, and the rest: see [`Lane`]): each lane sends
//! the events it selects one at a time, in `seq` order, and journals its position after each
//! confirmed delivery, so a restart (kill -9 included)
//! resumes with every selected event not yet confirmed. A slow or dead receiver holds only
//! its own notifier: ingest, gRPC subscribers and other notifiers never wait for it.
//!
//! | file | what |
//! | --- | --- |
//! | `spec.rs` | a notifier as configured, and which events it selects |
//! | `message.rs` | the words of a chat message (en, zh-CN; full or minimal) |
//! | `webhook.rs` | Alertmanager's webhook payload, version 4 |
//! | `robots.rs` | WeCom, DingTalk (signed) and Slack bodies; what an answer means |
//! | `delivery.rs` | the HTTP request and its retries |
//! | `heartbeat.rs` | the periodic "Vigil is alive" message |

pub mod delivery;
pub mod heartbeat;
pub mod message;
pub mod robots;
pub mod spec;
pub mod webhook;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil_alerting::{AlertEvent, AlertFilter, Severity};

use self::spec::{Kind, NotifierSpec};
use super::alert_feed::AlertFeed;
use super::App;

/// Starts one consumer per notifier.
pub fn spawn(
    app: &Arc<App>,
    specs: Vec<NotifierSpec>,
    external_url: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if specs.is_empty() {
        return Ok(());
    }
    let client = delivery::client()?;
    for spec in specs {
        let spec = Arc::new(spec);
        let limiter = delivery::limiter(&spec);
        for lane in Lane::of(&spec) {
            let filter = AlertFilter {
                care_teams: spec.care_teams.clone(),
                patient_ids: Vec::new(),
                min_severity: Some(lane.min_severity(&spec)),
            };
            let feed = AlertFeed::durable(
                app.engine.clone(),
                app.journal.clone(),
                &lane.consumer_name(&spec),
                filter,
            )?;
            let consumer = Consumer {
                spec: spec.clone(),
                lane,
                feed,
                limiter: limiter.clone(),
                client: client.clone(),
                external_url: external_url.clone(),
            };
            tokio::spawn(consumer.run(app.clone(), shutdown.clone()));
        }
        if let Some(every) = spec.heartbeat {
            tokio::spawn(heartbeat::run(
                app.clone(),
                spec.clone(),
                every,
                limiter.clone(),
                client.clone(),
                shutdown.clone(),
            ));
        }
        info!(notifier = %spec.id, kind = ?spec.kind, "notifier started");
    }
    Ok(())
}

/// A notifier's events travel in two lanes, each with its own journaled position: HIGH
/// alerts in one, never queued behind lower severities, the rest in the other. An alert's
/// severity never changes, so the events of one alert stay in one lane, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    High,
    Other,
}

impl Lane {
    fn of(spec: &NotifierSpec) -> Vec<Lane> {
        if spec.min_severity >= Severity::High {
            vec![Lane::High]
        } else {
            vec![Lane::High, Lane::Other]
        }
    }

    fn min_severity(self, spec: &NotifierSpec) -> Severity {
        match self {
            Lane::High => Severity::High,
            Lane::Other => spec.min_severity,
        }
    }

    fn carries(self, severity: Severity) -> bool {
        (self == Lane::High) == (severity == Severity::High)
    }

    fn consumer_name(self, spec: &NotifierSpec) -> String {
        match self {
            Lane::High => format!("{}:high", spec.consumer_name()),
            Lane::Other => spec.consumer_name(),
        }
    }
}

/// One lane of one notifier.
struct Consumer {
    spec: Arc<NotifierSpec>,
    lane: Lane,
    feed: AlertFeed,
    limiter: Option<Arc<delivery::Limiter>>,
    client: reqwest::Client,
    external_url: String,
}

impl Consumer {
    async fn run(self, app: Arc<App>, shutdown: CancellationToken) {
        let Consumer {
            spec,
            lane,
            mut feed,
            limiter,
            client,
            external_url,
        } = self;
        let telemetry = app.telemetry.clone();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = feed.next() => match next {
                    Ok(event) => event,
                    Err(_) => return,
                },
            };
            if !lane.carries(event.alert.severity) || !spec.selects(event.kind, &event.alert) {
                continue;
            }
            let body = body(&spec, &event, &external_url);
            let delivered = tokio::select! {
                // Not confirmed: sent again after the restart.
                _ = shutdown.cancelled() => return,
                d = delivery::deliver(&client, &spec, limiter.as_deref(), &body, |_| telemetry.notification(&spec.id, "retried")) => d,
            };
            match delivered {
                Ok(()) => {
                    telemetry.notification(&spec.id, "sent");
                    let ms = crate::clock::now_ms().saturating_sub(event.at_ms).max(0);
                    telemetry.notification_latency(&spec.id, ms as f64 / 1000.0);
                }
                Err(why) => {
                    telemetry.notification(&spec.id, "failed");
                    warn!(notifier = %spec.id, seq = event.seq, why, "notification failed for good; skipped");
                }
            }
            if let Err(e) = feed.commit() {
                warn!(notifier = %spec.id, error = %e, "could not journal the notifier's position");
            }
        }
    }
}

/// The request body of `event` for the notifier's kind.
pub fn body(spec: &NotifierSpec, event: &AlertEvent, external_url: &str) -> serde_json::Value {
    let link = message::link(spec, external_url, event);
    match spec.kind {
        Kind::Webhook => webhook::body(spec, event, external_url, &link),
        kind => {
            let observed = crate::clock::rfc3339(event.alert.observed_at_ms).unwrap_or_default();
            robots::body(kind, &message::render(spec, event, &observed, &link))
        }
    }
}
