//! Patient reminders: when a rule with a `patient_message` raises, publish
//! `{"alert_id", "rule_id", "message", "ts"}` with QoS 1 on `notify/{patient_id}` through
//! the embedded broker, so the patient's app or device gets it.
//!
//! rumqttd's local link can only publish at QoS 0, so reminders go through an MQTT client
//! connected to the broker over loopback; readings still arrive on the local link.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
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
    broker: SocketAddr,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new(
        format!("vigil-notifier-{}", std::process::id()),
        broker.ip().to_string(),
        broker.port(),
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                event = eventloop.poll() => if let Err(e) = event {
                    warn!(error = %e, "reminder publisher lost its broker connection; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut after: Option<u64> = None;
        loop {
            let mut sub = engine.subscribe(AlertFilter::default(), after);
            after = Some(after.unwrap_or(sub.last_seq));
            for event in std::mem::take(&mut sub.replay) {
                publish(&client, &event, &telemetry).await;
                after = Some(event.seq);
            }
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = sub.live.recv() => match event {
                        Some(event) => {
                            publish(&client, &event, &telemetry).await;
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

async fn publish(client: &AsyncClient, event: &vigil_alerting::AlertEvent, telemetry: &Telemetry) {
    let a = &event.alert;
    let (EventKind::Raised, Some(message)) = (event.kind, &a.patient_message) else {
        return;
    };
    let body = json!({ "alert_id": &*a.id, "rule_id": &*a.rule_id, "message": message, "ts": a.raised_at_ms });
    match client
        .publish(
            topic(&a.patient_id),
            QoS::AtLeastOnce,
            false,
            body.to_string(),
        )
        .await
    {
        Ok(()) => telemetry.reminder_sent(),
        Err(e) => warn!(error = %e, alert_id = %a.id, "could not queue a patient reminder"),
    }
}
