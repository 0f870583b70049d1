//! The consumer of `vitals/#` on the broker's local link: one thread that decodes and
//! processes every PUBLISH in arrival order, and drains what it has on shutdown.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::Notification;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::pipeline::Pipeline;

/// How long the consumer waits for data before checking for shutdown.
const POLL: Duration = Duration::from_millis(50);
/// Longest drain after shutdown while publishers keep sending.
const MAX_DRAIN: Duration = Duration::from_secs(2);

/// Spawns the consumer thread. It exits after `cancel` once the link is quiet (or after
/// [`MAX_DRAIN`]), having processed everything it received.
pub fn spawn(
    link_tx: LinkTx,
    mut link_rx: LinkRx,
    pipeline: Arc<Pipeline>,
    cancel: CancellationToken,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("mqtt-ingest".into())
        .spawn(move || {
            // The link must outlive the loop: dropping LinkTx disconnects it from the router.
            let _link_tx = link_tx;
            let mut drain_deadline: Option<Instant> = None;
            loop {
                if drain_deadline.is_none() && cancel.is_cancelled() {
                    drain_deadline = Some(Instant::now() + MAX_DRAIN);
                }
                if drain_deadline.is_some_and(|d| Instant::now() > d) {
                    break;
                }
                match link_rx.recv_deadline(Instant::now() + POLL) {
                    Ok(Some(Notification::Forward(forward))) => {
                        let p = &forward.publish;
                        pipeline.mqtt_publish(&p.topic, &p.payload, Instant::now());
                    }
                    // The router paused us because our outgoing buffer filled: we have drained
                    // it, so ask for more (see NOTES.md: without this the link stalls).
                    Ok(Some(Notification::Unschedule)) => {
                        if let Err(e) = link_rx.ready() {
                            error!(error = %e, "cannot resume the MQTT local link");
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(LinkError::RecvTimeout(_)) => {
                        if drain_deadline.is_some() {
                            break;
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "MQTT local link closed");
                        break;
                    }
                }
            }
            info!("MQTT consumer stopped");
        })
}
