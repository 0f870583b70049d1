//! Patient reminders: when a rule with a `patient_message` raises, publish
//! `{"alert_id", "rule_id", "message", "ts"}` on `notify/{patient_id}` into the embedded
//! router, which hands it to every session subscribed there; sessions deliver it to the
//! device with QoS 1.

use std::sync::Arc;

use rumqttd::local::{LinkRx, LinkTx};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use vigil_alerting::{AlertFilter, Engine, EventKind};

use crate::telemetry::Telemetry;

/// The topic a patient's reminders are published on.
pub fn topic(patient_id: &str) -> String {
    format!("notify/{patient_id}")
}

/// Runs until `shutdown`: follows the alert stream and publishes reminders. Resumes from
/// the last seen event if it ever falls behind, so no reminder is skipped.
pub fn spawn(
    engine: Arc<Engine>,
    (mut link, link_rx): (LinkTx, LinkRx),
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        // The receiving half stays open for as long as the link is used.
        let _link_rx = link_rx;
        let mut after: Option<u64> = None;
        loop {
            let mut sub = engine.subscribe(AlertFilter::default(), after);
            after = Some(after.unwrap_or(sub.last_seq));
            for event in std::mem::take(&mut sub.replay) {
                publish(&mut link, &event, &telemetry);
                after = Some(event.seq);
            }
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = sub.live.recv() => match event {
                        Some(event) => {
                            publish(&mut link, &event, &telemetry);
                            after = Some(event.seq);
                        }
                        None => break,
                    }
                }
            }
            debug!(?after, "reminder publisher resubscribing");
        }
    });
}

fn publish(link: &mut LinkTx, event: &vigil_alerting::AlertEvent, telemetry: &Telemetry) {
    let a = &event.alert;
    let (EventKind::Raised, Some(message)) = (event.kind, &a.patient_message) else {
        return;
    };
    let body = json!({ "alert_id": &*a.id, "rule_id": &*a.rule_id, "message": message, "ts": a.raised_at_ms });
    match link.publish(topic(&a.patient_id), body.to_string()) {
        Ok(_) => telemetry.reminder_sent(),
        Err(e) => warn!(error = %e, alert_id = %a.id, "could not queue a patient reminder"),
    }
}
