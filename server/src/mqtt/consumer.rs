//! The consumer of `vitals/#` on the broker's local link: one thread that decodes and
//! processes every PUBLISH in arrival order, and drains what it has on shutdown.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::Notification;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::pipeline::Pipeline;

/// How long the consumer waits for data before checking for shutdown.
const POLL: Duration = Duration::from_millis(50);
/// Longest drain after shutdown while publishers keep sending.
const MAX_DRAIN: Duration = Duration::from_secs(2);

/// Notices publishes the broker dropped: its commit log for `vitals/#` numbers every
/// publish, and when the consumer falls further behind than the log's budget the router
/// moves the read cursor past what it discarded. The jump is the loss.
#[derive(Debug, Default)]
pub struct GapCounter {
    next: Option<u64>,
    /// Lost since the last warning, and when that was (a continuing loss is logged at
    /// most every [`LOSS_LOG_EVERY`]).
    unlogged: u64,
    logged_at: Option<Instant>,
}

/// How often a continuing loss is logged.
const LOSS_LOG_EVERY: Duration = Duration::from_secs(10);

impl GapCounter {
    /// Records the offset of a forwarded publish; returns how many were skipped before it.
    pub fn see(&mut self, offset: u64) -> u64 {
        let lost = match self.next {
            Some(next) if offset > next => offset - next,
            _ => 0,
        };
        self.next = Some(offset + 1);
        lost
    }

    /// Counts a loss and logs it, at most every [`LOSS_LOG_EVERY`].
    fn report(&mut self, lost: u64, pipeline: &Pipeline) {
        pipeline.mqtt_lost(lost);
        self.unlogged += lost;
        if self.logged_at.is_none_or(|t| t.elapsed() >= LOSS_LOG_EVERY) {
            warn!(
                lost = self.unlogged,
                "MQTT ingest fell behind: the broker dropped vitals payloads from its \
                 buffer (vigil_mqtt_payloads_lost_total)"
            );
            self.unlogged = 0;
            self.logged_at = Some(Instant::now());
        }
    }
}

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
            let mut gaps = GapCounter::default();
            loop {
                if drain_deadline.is_none() && cancel.is_cancelled() {
                    drain_deadline = Some(Instant::now() + MAX_DRAIN);
                }
                if drain_deadline.is_some_and(|d| Instant::now() > d) {
                    break;
                }
                match link_rx.recv_deadline(Instant::now() + POLL) {
                    Ok(Some(Notification::Forward(forward))) => {
                        match forward.cursor.map(|(_, offset)| gaps.see(offset)) {
                            Some(lost) if lost > 0 => gaps.report(lost, &pipeline),
                            _ => {}
                        }
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

#[cfg(test)]
mod tests {
    use super::GapCounter;

    #[test]
    fn gaps_in_offsets_are_losses() {
        let mut g = GapCounter::default();
        assert_eq!(g.see(100), 0, "the first offset is a baseline");
        assert_eq!(g.see(101), 0);
        assert_eq!(g.see(105), 3);
        assert_eq!(g.see(106), 0);
        assert_eq!(g.see(50), 0, "a restarted log is not a loss");
        assert_eq!(g.see(51), 0);
    }
}
