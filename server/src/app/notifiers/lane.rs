//! One lane of one notifier: a durable consumer of the alert stream that keeps the events
//! it selects in a queue, sends them one group at a time (see `group.rs`), hands what the
//! receiver refuses for good to the care team's fallback, and journals where it stands
//! after each group. It keeps taking events while a message is on its way, so the backlog
//! gauge is current while a receiver is down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::warn;
use vigil_alerting::event_log::DEFAULT_RETAINED_EVENTS;
use vigil_alerting::{AlertEvent, AlertFilter, Severity};

use super::group::Pending;
use super::spec::NotifierSpec;
use super::{body, delivery, fallback, Route, Shared};
use crate::app::alert_feed::{AlertFeed, PositionError, Positions};
use crate::telemetry::Telemetry;

/// The most events a lane holds in its queue; beyond it they wait in the alert log's
/// retained events (`[server] retained_events`) and are replayed from there.
const MAX_QUEUED: usize = DEFAULT_RETAINED_EVENTS;

/// A notifier's events travel in two lanes, each with its own journaled position: HIGH
/// alerts in one, never queued behind lower severities, the rest in the other. An alert's
/// severity never changes, so the events of one alert stay in one lane, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    High,
    Other,
}

impl Lane {
    pub fn of(spec: &NotifierSpec) -> Vec<Lane> {
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

    pub fn consumer_name(self, spec: &NotifierSpec) -> String {
        match self {
            Lane::High => format!("{}:high", spec.consumer_name()),
            Lane::Other => spec.consumer_name(),
        }
    }
}

/// A notifier's backlog (`vigil_notifier_backlog`): the selected events its lanes hold and
/// have not had confirmed.
pub struct Backlog {
    notifier: String,
    lanes: [AtomicUsize; 2],
    telemetry: Arc<Telemetry>,
}

impl Backlog {
    pub fn new(notifier: &str, telemetry: Arc<Telemetry>) -> Backlog {
        telemetry.notifier_backlog(notifier, 0);
        Backlog {
            notifier: notifier.to_string(),
            lanes: [AtomicUsize::new(0), AtomicUsize::new(0)],
            telemetry,
        }
    }

    fn set(&self, lane: Lane, n: usize) {
        self.lanes[lane as usize].store(n, Ordering::Relaxed);
        let total: usize = self.lanes.iter().map(|l| l.load(Ordering::Relaxed)).sum();
        self.telemetry.notifier_backlog(&self.notifier, total);
    }
}

pub struct Consumer {
    route: Arc<Route>,
    lane: Lane,
    feed: AlertFeed,
    backlog: Arc<Backlog>,
}

impl Consumer {
    pub fn open(
        shared: &Shared,
        route: Arc<Route>,
        lane: Lane,
        backlog: Arc<Backlog>,
        positions: Arc<dyn Positions>,
    ) -> Result<Consumer, PositionError> {
        let filter = AlertFilter {
            care_teams: route.spec.care_teams.clone(),
            patient_ids: Vec::new(),
            min_severity: Some(lane.min_severity(&route.spec)),
        };
        let feed = AlertFeed::durable(
            shared.app.alert_log.clone(),
            positions,
            &lane.consumer_name(&route.spec),
            filter,
        )?;
        Ok(Consumer {
            route,
            lane,
            feed,
            backlog,
        })
    }

    pub async fn run(self, shared: Arc<Shared>, shutdown: CancellationToken) {
        let Consumer {
            route,
            lane,
            mut feed,
            backlog,
        } = self;
        let spec = &route.spec;
        let telemetry = shared.app.telemetry.clone();
        let selects =
            |e: &AlertEvent| lane.carries(e.alert.severity) && spec.selects(e.kind, &e.alert);
        let mut pending = Pending::default();
        loop {
            while pending.queued() < MAX_QUEUED {
                match feed.try_next() {
                    Some(e) if selects(&e) => pending.push(e),
                    Some(_) => {}
                    None => break,
                }
            }
            backlog.set(lane, pending.backlog());
            let group = pending.take_group();
            if group.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = feed.next() => match next {
                        Ok(e) if selects(&e) => pending.push(e),
                        Ok(_) => {}
                        Err(_) => return,
                    },
                }
                continue;
            }
            let events: Vec<&AlertEvent> = group.iter().map(|e| &**e).collect();
            let payload = body(spec, &events, &shared.render, None);
            let send = delivery::deliver(
                &shared.client,
                spec,
                route.limiter.as_deref(),
                &payload,
                |_| telemetry.notification(&spec.id, "retried"),
            );
            tokio::pin!(send);
            // Not confirmed when shutdown comes first: sent again after the restart.
            let outcome = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    outcome = &mut send => break outcome,
                    next = feed.next(), if pending.queued() < MAX_QUEUED => match next {
                        Ok(e) if selects(&e) => {
                            pending.push(e);
                            backlog.set(lane, pending.backlog());
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    },
                }
            };
            match outcome {
                Ok(()) => {
                    let now = crate::clock::now_ms();
                    for e in &events {
                        telemetry.notification(&spec.id, "sent");
                        let ms = now.saturating_sub(e.at_ms).max(0);
                        telemetry.notification_latency(&spec.id, ms as f64 / 1000.0);
                    }
                }
                Err(why) => {
                    for e in &events {
                        telemetry.notification(&spec.id, "failed");
                        warn!(notifier = %spec.id, seq = e.seq, why, "notification refused for good; handed to the care team's fallback");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        () = fallback::hand_over(&shared, spec, &events, &why) => {}
                    }
                }
            }
            let progress = pending.finish(&group, feed.position());
            backlog.set(lane, pending.backlog());
            if let Err(e) = feed.commit_progress(&progress) {
                warn!(notifier = %spec.id, error = %e, "could not journal the notifier's position");
            }
        }
    }
}
