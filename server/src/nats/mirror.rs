//! Every node's copy of the cluster's alert stream: events as the partitions' owners wrote
//! them, numbered with the stream's sequence, in a log that `Subscribe`, reminders and the
//! console read exactly as they read a single node's engine log. So a subscriber on any
//! node sees the same events in the same order, and `after_seq` means the same everywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use vigil_alerting::AlertLog;

use super::cluster::Cluster;
use super::wire;

/// Follows the alert stream into `log` until `shutdown`, starting with the newest
/// `retained` events; resumes after the last one copied when the consumer breaks. Sets
/// `caught_up` once the copy holds every event the stream held when it started.
pub async fn run(
    cluster: Arc<Cluster>,
    log: Arc<AlertLog>,
    retained: u64,
    caught_up: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut next: Option<u64> = None;
    loop {
        let copied = tokio::select! {
            () = shutdown.cancelled() => return,
            copied = follow(&cluster, &log, retained, &mut next, &caught_up) => copied,
        };
        if let Err(e) = copied {
            warn!(error = %e, "the copy of the cluster's alert stream stopped; resuming");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn follow(
    cluster: &Cluster,
    log: &AlertLog,
    retained: u64,
    next: &mut Option<u64>,
    caught_up: &AtomicBool,
) -> anyhow::Result<()> {
    let mut stream = cluster.alerts().await?;
    let start = match *next {
        Some(seq) => seq,
        None => {
            let last = stream.info().await?.state.last_sequence;
            let start = last.saturating_sub(retained).max(1);
            log.mirror_from(start);
            if last == 0 {
                caught_up.store(true, Ordering::Release);
            }
            start
        }
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: cluster.subjects.all_alerts(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let (seq, pending) = {
            let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            (info.stream_sequence, info.pending)
        };
        *next = Some(seq + 1);
        if !wire::is_marker(message.headers.as_ref()) {
            match wire::decode_event(&message.payload, seq) {
                Some(event) => {
                    log.insert_numbered(event);
                }
                None => debug!(seq, "a message on the alert stream is not an alert event"),
            }
        }
        if pending == 0 {
            caught_up.store(true, Ordering::Release);
        }
    }
    anyhow::bail!("the alert stream's consumer ended")
}
