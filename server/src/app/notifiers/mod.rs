//! Notifiers: alerts pushed to people where they already are (an Alertmanager webhook
//! receiver, WeCom and DingTalk group robots, Slack). Each notifier is a durable consumer of
//! the alert stream: it sends the events it selects one at a time, in `seq` order, and
//! journals its position after each confirmed delivery, so a restart (kill -9 included)
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

pub mod delivery;
pub mod message;
pub mod robots;
pub mod spec;
pub mod webhook;

use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil_alerting::{AlertEvent, AlertFilter};

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
        let filter = AlertFilter {
            care_teams: spec.care_teams.clone(),
            patient_ids: Vec::new(),
            min_severity: Some(spec.min_severity),
        };
        let feed = AlertFeed::durable(
            app.engine.clone(),
            app.journal.clone(),
            &spec.consumer_name(),
            filter,
        )?;
        info!(notifier = %spec.id, kind = ?spec.kind, "notifier started");
        tokio::spawn(run(
            app.clone(),
            spec,
            feed,
            client.clone(),
            external_url.clone(),
            shutdown.clone(),
        ));
    }
    Ok(())
}

async fn run(
    app: Arc<App>,
    spec: NotifierSpec,
    mut feed: AlertFeed,
    client: reqwest::Client,
    external_url: String,
    shutdown: CancellationToken,
) {
    let telemetry = app.telemetry.clone();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = feed.next() => match next {
                Ok(event) => event,
                Err(_) => return,
            },
        };
        if !spec.selects(event.kind, &event.alert) {
            continue;
        }
        let body = body(&spec, &event, &external_url);
        let delivered = tokio::select! {
            // Not confirmed: sent again after the restart.
            _ = shutdown.cancelled() => return,
            d = delivery::deliver(&client, &spec, &body, |_| telemetry.notification(&spec.id, "retried")) => d,
        };
        match delivered {
            Ok(()) => telemetry.notification(&spec.id, "sent"),
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

/// The request body of `event` for the notifier's kind.
pub fn body(spec: &NotifierSpec, event: &AlertEvent, external_url: &str) -> serde_json::Value {
    let link = message::link(spec, external_url, event);
    match spec.kind {
        Kind::Webhook => webhook::body(spec, event, external_url, &link),
        kind => {
            let observed = OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(event.alert.observed_at_ms) * 1_000_000,
            )
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
            robots::body(kind, &message::render(spec, event, &observed, &link))
        }
    }
}
