//! Patient reminders, a consumer of the alert stream: when a rule with a
//! `patient_message` raises, publish `{"alert_id", "rule_id", "message", "ts"}` on
//! `notify/{patient_id}` with QoS 1 on the bus, which hands it to every session subscribed
//! there (a persistent session keeps it while its client is away). The consumer's position
//! is journaled after each reminder, so a restart neither skips nor repeats one.

use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use vigil_alerting::{AlertEvent, AlertFilter, EventKind};

use crate::app::alert_feed::AlertFeed;
use crate::app::App;
use crate::mqtt::bus::Bus;
use crate::telemetry::Telemetry;

/// The name the reminder publisher's position is journaled under.
pub const CONSUMER: &str = "patient-reminders";

/// The topic a patient's reminders are published on.
pub fn topic(patient_id: &str) -> String {
    format!("notify/{patient_id}")
}

/// Runs until `shutdown`: follows the alert stream from its journaled position and
/// publishes reminders.
pub fn spawn(app: &Arc<App>, bus: Arc<Bus>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut feed = AlertFeed::durable(
        app.alert_log.clone(),
        app.journal.clone(),
        CONSUMER,
        AlertFilter::default(),
    )?;
    let telemetry = app.telemetry.clone();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = feed.next() => match next {
                    Ok(event) => event,
                    Err(_) => return,
                },
            };
            if publish(&bus, &event, &telemetry) {
                if let Err(e) = feed.commit() {
                    warn!(error = %e, "could not journal the reminder publisher's position");
                }
            }
        }
    });
    Ok(())
}

/// Publishes the reminder an event calls for, if any; true if it did.
fn publish(bus: &Bus, event: &AlertEvent, telemetry: &Telemetry) -> bool {
    let a = &event.alert;
    let (EventKind::Raised, Some(message)) = (event.kind, &a.patient_message) else {
        return false;
    };
    let body = json!({ "alert_id": &*a.id, "rule_id": &*a.rule_id, "message": message, "ts": a.raised_at_ms });
    bus.publish(&topic(&a.patient_id), body.to_string().into(), 1, false);
    telemetry.reminder_sent();
    true
}
