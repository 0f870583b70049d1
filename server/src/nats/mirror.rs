//! Every node's copy of the cluster's alert stream: events as the partitions' owners wrote
//! them, numbered with the stream's sequence, in a log that `Subscribe`, reminders and the
//! console read exactly as they read a single node's engine log. So a subscriber on any
//! node sees the same events in the same order, and `after_seq` means the same everywhere.
//! The log keeps the newest `[server] retained_events`; the open alerts are kept apart from
//! it, built from the whole stream, so an alert raised long ago is listed and can be acted
//! on from any node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use vigil_alerting::{Alert, AlertEvent, AlertFilter, AlertLog};

use super::cluster::Cluster;
use super::wire;

/// Every open alert of the cluster as its newest event in the alert stream has it, however
/// old: what `ListActive`, the worklist's counts and people's actions read.
#[derive(Default)]
pub struct OpenAlerts(Mutex<HashMap<Arc<str>, Alert>>);

impl OpenAlerts {
    pub fn apply(&self, event: &AlertEvent) {
        let mut open = self.0.lock();
        if event.alert.resolved.is_some() {
            open.remove(&event.alert.id);
        } else {
            open.insert(event.alert.id.clone(), event.alert.clone());
        }
    }

    /// Those `filter` matches, oldest raised first.
    pub fn list(&self, filter: &AlertFilter) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = self
            .0
            .lock()
            .values()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect();
        alerts.sort_by(|a, b| a.raised_at_ms.cmp(&b.raised_at_ms).then(a.id.cmp(&b.id)));
        alerts
    }

    pub fn get(&self, alert_id: &str) -> Option<Alert> {
        self.0.lock().get(alert_id).cloned()
    }
}

/// Where the copy is kept: the retained events, and the open alerts.
pub struct Copy {
    pub log: Arc<AlertLog>,
    pub open: Arc<OpenAlerts>,
    /// How many of the newest events `log` keeps.
    pub retained: u64,
}

/// Follows the alert stream into `log` until `shutdown`, starting with the newest
/// `retained` events; resumes after the last one copied when the consumer breaks. Sets
/// `caught_up` once the copy holds every event the stream held when it started.
pub async fn run(
    cluster: Arc<Cluster>,
    copy: Copy,
    caught_up: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut next: Option<u64> = None;
    loop {
        let copied = tokio::select! {
            () = shutdown.cancelled() => return,
            copied = follow(&cluster, &copy, &mut next, &caught_up) => copied,
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
    copy: &Copy,
    next: &mut Option<u64>,
    caught_up: &AtomicBool,
) -> anyhow::Result<()> {
    let mut stream = cluster.alerts().await?;
    // The first time, the whole stream is read for the open alerts; the log keeps the
    // newest `retained` events from `keep_from` on.
    let (start, keep_from) = match *next {
        Some(seq) => (seq, seq),
        None => {
            let last = stream.info().await?.state.last_sequence;
            let keep_from = last.saturating_sub(copy.retained).max(1);
            copy.log.mirror_from(keep_from);
            if last == 0 {
                caught_up.store(true, Ordering::Release);
            }
            (1, keep_from)
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
                    copy.open.apply(&event);
                    if seq >= keep_from {
                        copy.log.insert_numbered(event);
                    }
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
