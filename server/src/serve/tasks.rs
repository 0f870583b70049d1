//! What runs beside the listeners: the MQTT listener's own runtime, the clock that raises
//! `absent` alerts, the summaries of repeated refusals, and the gauges read at a scrape.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::state::{Loaded, State};
use crate::clock::now_ms;
use crate::http::metrics::Refresh;
use crate::mqtt;
use crate::mqtt::broker::EmbeddedBroker;
use crate::mqtt::bus::{self, Bus};
use crate::mqtt::front_end::FrontEnd;
use crate::mqtt::persistent::SessionLimits;
use crate::mqtt::retained::RetainLimits;
use crate::telemetry::Bounds;

/// How often `absent` deadlines are checked.
const ABSENCE_TICK: Duration = Duration::from_millis(250);
/// How often repeated refusals of an ended minute are summed up.
const REFUSAL_SUMMARY_TICK: Duration = Duration::from_secs(10);

/// The MQTT listener on its runtime.
pub struct Mqtt {
    pub runtime: SideRuntime,
    pub task: JoinHandle<()>,
    /// Persistent sessions and retained messages, saved at shutdown.
    pub bus: Arc<Bus>,
}

/// Starts the embedded router, the bus (persistent sessions and retained messages, loaded
/// from the data directory) and the MQTT listener; returns them and the bus reminders are
/// published on. Device sessions run on worker
/// threads of their own: a flood of readings queues behind other readings, never in front
/// of alert delivery to care teams (gRPC).
pub fn start_mqtt(
    state: &State,
    loaded: &Loaded,
    listener: TcpListener,
    shutdown: &CancellationToken,
) -> anyhow::Result<Mqtt> {
    let settings = &loaded.settings;
    let limits = &settings.mqtt;
    let broker = EmbeddedBroker::start(limits);
    let bus_link = broker
        .link("vigil-bus")
        .map_err(|e| anyhow::anyhow!("cannot open the router's link for publishing: {e}"))?;
    let bus = Arc::new(Bus::new(
        bus_link,
        SessionLimits {
            max_sessions: limits.max_persistent_sessions,
            max_queued: limits.max_queued_messages,
            max_bytes: limits.max_queued_bytes,
            max_inflight: limits.max_inflight,
            expiry: limits.session_expiry,
        },
        RetainLimits {
            max_messages: limits.max_retained_messages,
            max_bytes: limits.max_retained_bytes,
        },
        state.telemetry.clone(),
        Some(&settings.data_dir),
    ));
    let tls = loaded.tls.as_ref();
    let front_end = Arc::new(FrontEnd::new(
        state.app.ingest.clone(),
        state.app.auth.clone(),
        broker,
        bus.clone(),
        settings.mqtt.clone(),
        shutdown.clone(),
        tls.map(|t| tokio_rustls::TlsAcceptor::from(t.mqtt.clone())),
    ));
    let runtime = SideRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("vigil-mqtt")
            .enable_all()
            .build()
            .context("cannot start the MQTT runtime")?,
    ));
    let addr = listener.local_addr()?;
    let task = runtime
        .handle()
        .spawn(mqtt::listener::serve(listener, front_end));
    info!(
        addr = %addr,
        tls = tls.is_some(),
        client_certificates = tls.is_some_and(|t| t.client_certificates),
        "MQTT listening (MQTT 3.1.1, QoS 0, 1 and 2)"
    );
    runtime
        .handle()
        .spawn(bus_upkeep(bus.clone(), shutdown.clone()));
    Ok(Mqtt { runtime, task, bus })
}

/// Expires persistent sessions and saves what changed, every [`bus::SAVE_EVERY`].
async fn bus_upkeep(bus: Arc<Bus>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(bus::SAVE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let bus = bus.clone();
                let _ = tokio::task::spawn_blocking(move || bus.upkeep(now_ms())).await;
            }
        }
    }
}

/// A runtime beside the main one, shut down without blocking when dropped: dropping a
/// runtime normally waits for its tasks, which panics on the main runtime's threads — on
/// every return from `run`, an early error included.
pub struct SideRuntime(Option<tokio::runtime::Runtime>);

impl SideRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle()
    }
}

impl Drop for SideRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Raises `absent` alerts as their deadlines pass (server clock).
pub async fn absence_ticker(state: Arc<State>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ABSENCE_TICK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let outcome = state.engine.tick(now_ms());
                state.telemetry.outcome(&outcome);
            }
        }
    }
}

/// Sums up repeated refusals once their minute has ended, even when no further refusal
/// comes to do it.
pub async fn refusal_summaries(state: Arc<State>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REFUSAL_SUMMARY_TICK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => state.app.auth.failures.flush(),
        }
    }
}

/// The gauges that are read, not pushed, updated just before a scrape.
pub fn refresh(state: &Arc<State>) -> Refresh {
    let state = state.clone();
    Arc::new(move || {
        let (t, app) = (&state.telemetry, &state.app);
        t.refresh(&state.engine);
        t.journal_errors(&state.journal);
        t.bounds(Bounds {
            throttled_addresses: app.auth.logins.throttle.tracked(),
            password_checks: app.auth.logins.slow.admitted(),
            dedup: app.ingest.dedup_stats(),
        });
        for (team, reached) in app.reach.teams() {
            t.care_team_reached(team, reached);
        }
    })
}

/// Cluster mode: the copy of the alert stream subscribers read, and the rounds that take
/// and keep this node's share of the partitions.
pub struct ClusterTasks {
    /// Set once the first share is taken (for readiness).
    pub settled: Arc<std::sync::atomic::AtomicBool>,
    /// Ends after shutdown, once every partition is given up (its owner stopped, a last
    /// snapshot published, its lease freed for the other nodes).
    pub ownership: JoinHandle<()>,
}

/// Starts the notifiers: on a single node all of them, positions in the journal; in
/// cluster mode each on the node that holds its lease, positions in the cluster (the task
/// returned stops them and frees their leases after shutdown).
pub fn start_notifiers(
    state: &State,
    notifiers: Option<crate::app::notifiers::Notifiers>,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    use crate::app::alert_feed::Positions;
    let Some(notifiers) = notifiers else {
        return Ok(None);
    };
    let Some(clustered) = state.clustered.as_ref() else {
        let journal: Arc<dyn Positions> = state.journal.clone();
        notifiers.start_all(&journal, &shutdown)?;
        return Ok(None);
    };
    let cluster = clustered.cluster.clone();
    let positions = cluster.positions.clone();
    let mirrored = clustered.mirrored.clone();
    tokio::spawn(positions.clone().run(shutdown.clone()));
    let ids = notifiers.ids();
    let notifiers = Arc::new(notifiers);
    let start: crate::nats::holders::Start = Arc::new(move |id, stop| {
        let (notifiers, positions) = (notifiers.clone(), positions.clone());
        let mirrored = mirrored.clone();
        Box::pin(async move {
            // Its feed reads this node's copy of the alert stream: complete first.
            while !mirrored.load(std::sync::atomic::Ordering::Acquire) {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            if let Err(e) = positions.load(&notifiers.positions_of(&id)).await {
                tracing::warn!(notifier = %id, error = %e, "notifier not started: its position is not readable");
                return;
            }
            let store: Arc<dyn Positions> = positions.clone();
            match notifiers.start(&id, &store, &stop) {
                Ok(tasks) => {
                    for task in tasks {
                        let _ = task.await;
                    }
                }
                Err(e) => tracing::warn!(notifier = %id, error = %e, "notifier not started"),
            }
            positions.flush().await;
        })
    });
    let telemetry = state.telemetry.clone();
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = crate::nats::holders::hold(cluster, ids, start, telemetry, shutdown).await {
            tracing::error!(error = %e, "notifier leases not held: this node runs no notifier");
        }
    })))
}

/// Cluster mode: applies the cluster catalog (rules, patients, silences, devices) on this
/// node, then follows it; returns once what it held at the call is applied.
pub async fn follow_catalog(state: &State, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(clustered) = state.clustered.as_ref() else {
        return Ok(());
    };
    let app = state.app.clone();
    clustered
        .cluster
        .catalog
        .follow(move |change| app.apply_catalog(change), shutdown)
        .await?;
    Ok(())
}

pub fn start_cluster(
    state: &State,
    loaded: &Loaded,
    shutdown: CancellationToken,
) -> Option<ClusterTasks> {
    let settings = &loaded.settings;
    let clustered = state.clustered.as_ref()?;
    tokio::spawn(crate::nats::mirror::run(
        clustered.cluster.clone(),
        crate::nats::mirror::Copy {
            log: clustered.alerts.clone(),
            open: clustered.open.clone(),
            retained: settings.retained_events as u64,
        },
        clustered.mirrored.clone(),
        shutdown.clone(),
    ));
    let settled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ownership = crate::nats::ownership::Ownership {
        cluster: clustered.cluster.clone(),
        template: clustered.template.clone(),
        telemetry: state.telemetry.clone(),
        settled: settled.clone(),
        rebuilding: state.app.rebuilding.clone(),
        fingerprints: Arc::new(crate::config::fingerprint::of(&loaded.compiled)),
    };
    let ownership = tokio::spawn(async move {
        if let Err(e) = ownership.run(shutdown).await {
            tracing::error!(error = %e, "cluster ownership stopped: this node evaluates no partition");
        }
    });
    Some(ClusterTasks { settled, ownership })
}
