//! `vigil serve`: builds the engine from configuration, binds every listener, writes
//! `ports.json`, runs until SIGINT/SIGTERM, then shuts down gracefully.

pub mod exposure;
pub mod recovery;
pub mod upkeep;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil_alerting::{Engine, EngineConfig};
use vigil_ingest::Validator;

use crate::audit::AuditLog;
use crate::auth::slow_checks::SlowChecks;
use crate::auth::throttle::AddressThrottle;
use crate::auth::{Auth, DeviceBook, FailureLog, Logins};
use crate::cli::ServeArgs;
use crate::config::FileConfig;

use crate::app::ingest::Pipeline;
use crate::clock::now_ms;
use crate::cmd::demo;
use crate::http::metrics as metrics_http;
use crate::mqtt::broker::EmbeddedBroker;
use crate::mqtt::front_end::FrontEnd;
use crate::mqtt::reminders;
use crate::process::data_dir;
use crate::process::huge_pages::{self, Outcome};
use crate::settings::Settings;
use crate::telemetry::{Bounds, Telemetry};
use crate::{config, grpc, mqtt};

use self::upkeep as journal_upkeep;

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    log_huge_pages(huge_pages::outcome());
    let (file, compiled) = match &args.config {
        Some(path) => config::load_file(path)
            .map_err(|d| anyhow::anyhow!("invalid configuration:\n{}", config::render(path, &d)))?,
        None => {
            let file = FileConfig::default();
            let compiled = config::compile(&file)
                .map_err(|d| anyhow::anyhow!("built-in configuration: {d:?}"))?;
            (file, compiled)
        }
    };
    if args.demo && compiled.auth.enabled {
        bail!(
            "--demo runs a simulated ward without credentials; start it without `[auth] enabled` \
             (it listens on loopback only)"
        );
    }
    if args.demo && compiled.tls.is_some() {
        bail!(
            "--demo's simulated devices and care-team client speak plain TCP; start it without \
             `[tls]` (it listens on loopback only)"
        );
    }
    let tls = compiled
        .tls
        .as_ref()
        .map(crate::tls::load)
        .transpose()
        .context("[tls]")?;
    let settings = Settings::resolve(&file, &args);
    let exposed = exposure::check(&settings, compiled.auth.enabled, args.insecure)?;
    data_dir::prepare(&settings.data_dir, args.allow_shared_data_dir)?;

    // The recorder first: the audit log and the failure log register their metrics.
    let (telemetry, prometheus) = Telemetry::install()?;
    let telemetry = Arc::new(telemetry);
    let audit = Arc::new(
        AuditLog::open(&settings.data_dir, settings.audit).with_context(|| {
            format!(
                "cannot open the audit log in {}",
                settings.data_dir.display()
            )
        })?,
    );
    let auth = Arc::new(Auth::new(
        compiled.auth.enabled,
        compiled.auth.tokens.clone(),
        DeviceBook::load(compiled.auth.devices.clone(), &settings.data_dir)?,
        FailureLog::new(audit.clone()),
        Logins {
            throttle: AddressThrottle::new(settings.auth.throttle),
            slow: SlowChecks::new(settings.auth.check_workers, settings.auth.check_queue),
        },
    ));
    if auth.enabled {
        info!(
            tokens = auth.token_count(),
            devices = auth.devices.len(),
            "authentication on: gRPC calls need a bearer token"
        );
    }
    let restored = recovery::restore(&settings, &compiled)?;
    let journal = restored.journal.clone();
    let engine = Arc::new(Engine::new(
        EngineConfig {
            rules: restored.rules,
            patients: restored.patients,
            open_enrollment: compiled.open_enrollment,
            escalation: compiled.escalation.clone(),
        },
        restored.log,
    ));
    {
        // vigil_alert_latency_seconds: reading received → alert durable and delivered.
        let delivered = telemetry.clone();
        engine
            .log()
            .on_delivered(Box::new(move |_, origin| delivered.alert_delivered(origin)));
        // vigil_journal_write_seconds: the fsync every alert waits for.
        let written = telemetry.clone();
        journal.on_write(Box::new(move |took| written.journal_written(took)));
    }
    engine.restore_open_alerts(restored.open_alerts);
    for silence in restored.silences {
        engine.add_silence(silence);
    }
    recovery::restore_windows(&engine, &journal);
    info!(
        rules = engine.rules().rules().len(),
        builtin_rules = compiled.builtin_rules,
        patients = engine.patients_tracked(),
        open_enrollment = compiled.open_enrollment,
        "engine ready"
    );
    if args.demo {
        demo::enroll(&engine);
    }
    let validator = Validator::new(settings.max_reading_age, settings.max_future_skew);
    let pipeline = Arc::new(Pipeline::new(
        engine.clone(),
        validator,
        settings.dedup,
        telemetry.clone(),
    ));
    let shutdown = CancellationToken::new();
    exposure::keep_warning(exposed, shutdown.clone());

    let grpc_listener = bind(settings.grpc_addr, settings.listen_backlog, "gRPC")?;
    let metrics_listener = bind(settings.metrics_addr, settings.listen_backlog, "metrics")?;
    let mqtt_listener = bind(settings.mqtt_addr, settings.mqtt.listen_backlog, "MQTT")?;
    let mqtt_addr = mqtt_listener.local_addr()?;
    let broker = EmbeddedBroker::start(&settings.mqtt);
    let reminder_link = broker
        .link("vigil-notifier")
        .map_err(|e| anyhow::anyhow!("cannot open the router's link for reminders: {e}"))?;
    let front_end = Arc::new(FrontEnd::new(
        pipeline.clone(),
        auth.clone(),
        broker,
        settings.mqtt.clone(),
        shutdown.clone(),
        tls.as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.mqtt.clone())),
    ));
    // Device sessions run on worker threads of their own: a flood of readings queues
    // behind other readings, never in front of alert delivery to care teams (gRPC).
    let mqtt_runtime = SideRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("vigil-mqtt")
            .enable_all()
            .build()
            .context("cannot start the MQTT runtime")?,
    ));
    let mqtt_task = mqtt_runtime
        .handle()
        .spawn(mqtt::listener::serve(mqtt_listener, front_end));
    info!(
        addr = %mqtt_addr,
        tls = tls.is_some(),
        client_certificates = tls.as_ref().is_some_and(|t| t.client_certificates),
        "MQTT listening (MQTT 3.1.1, QoS 0, 1 and 2)"
    );

    let grpc_addr = grpc_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    journal_upkeep::spawn(
        engine.clone(),
        journal.clone(),
        &settings,
        telemetry.clone(),
        shutdown.clone(),
    );
    tokio::spawn(refusal_summaries(auth.clone(), shutdown.clone()));
    let refresh: metrics_http::Refresh = {
        let (engine, journal, auth, pipeline, telemetry) = (
            engine.clone(),
            journal.clone(),
            auth.clone(),
            pipeline.clone(),
            telemetry.clone(),
        );
        Arc::new(move || {
            telemetry.refresh(&engine);
            telemetry.journal_errors(&journal);
            telemetry.bounds(Bounds {
                throttled_addresses: auth.logins.throttle.tracked(),
                password_checks: auth.logins.slow.admitted(),
                dedup: pipeline.dedup_stats(),
            });
        })
    };
    let mut grpc_task = tokio::spawn(grpc::serve(
        grpc_listener,
        grpc::Shared {
            max_subscribers: settings.max_subscribers,
            mute_limits: grpc::MuteLimits {
                care_team: settings.auth.max_silence,
                other: settings.retention,
            },
            engine: engine.clone(),
            journal: journal.clone(),
            audit,
            auth,
            pipeline,
            telemetry: telemetry.clone(),
        },
        tls.map(|t| t.grpc),
        shutdown.clone(),
    ));
    reminders::spawn(
        engine.clone(),
        reminder_link,
        telemetry.clone(),
        shutdown.clone(),
    );
    tokio::spawn(absence_ticker(
        engine.clone(),
        telemetry.clone(),
        shutdown.clone(),
    ));
    let final_telemetry = telemetry.clone();
    let metrics_task = tokio::spawn(metrics_http::serve(
        metrics_listener,
        prometheus,
        refresh,
        shutdown.clone(),
    ));

    write_ports(&settings.data_dir, mqtt_addr, grpc_addr, metrics_addr)?;
    info!(mqtt = %mqtt_addr, grpc = %grpc_addr, metrics = %metrics_addr, data_dir = %settings.data_dir.display(), "Vigil ready");

    if args.demo {
        demo::start(
            engine.clone(),
            loopback(mqtt_addr),
            loopback(grpc_addr),
            shutdown.clone(),
        );
    }

    tokio::select! {
        signal = wait_for_signal() => info!(signal, "shutting down: draining received readings"),
        // The gRPC server only ends on its own if it fails.
        ended = &mut grpc_task => match ended {
            Ok(Ok(())) => bail!("gRPC server stopped: the server task ended"),
            Ok(Err(e)) => bail!("gRPC server stopped: {e:#}"),
            Err(e) => bail!("gRPC server stopped: {e}"),
        },
    }
    shutdown.cancel();
    let final_snapshot = engine.clone();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = grpc_task.await;
        let _ = metrics_task.await;
        // Every session has processed what it read (and acknowledged it).
        let _ = mqtt_task.await;
        // Everything received is in the windows now: keep it for the next start.
        let _ = tokio::task::spawn_blocking(move || {
            // Alert events still queued for the journal's writer go to disk first.
            final_snapshot.log().flush();
            journal_upkeep::snapshot(
                &final_snapshot,
                &journal,
                &final_telemetry,
                journal_upkeep::Pace::AtOnce,
            );
            if let Err(e) = journal.mark_clean() {
                warn!(error = %e, "could not mark the journal cleanly closed");
            }
        })
        .await;
    })
    .await;
    drop(mqtt_runtime);
    match drained {
        Ok(()) => info!("stopped"),
        Err(_) => warn!("shutdown grace period of {SHUTDOWN_GRACE:?} elapsed; exiting"),
    }
    Ok(())
}

/// A runtime beside the main one, shut down without blocking when dropped: dropping a
/// runtime normally waits for its tasks, which panics on the main runtime's threads — on
/// every return from `run`, an early error included.
struct SideRuntime(Option<tokio::runtime::Runtime>);

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

/// How often `absent` deadlines are checked.
const ABSENCE_TICK: Duration = Duration::from_millis(250);

/// Raises `absent` alerts as their deadlines pass (server clock).
async fn absence_ticker(
    engine: Arc<Engine>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(ABSENCE_TICK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let outcome = engine.tick(now_ms());
                telemetry.outcome(&outcome);
            }
        }
    }
}

/// Sums up repeated refusals once their minute has ended, even when no further refusal
/// comes to do it.
async fn refusal_summaries(auth: Arc<Auth>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => auth.failures.flush(),
        }
    }
}

/// Says at startup whether the process runs without transparent huge pages.
fn log_huge_pages(outcome: Option<&Outcome>) {
    let Some(outcome) = outcome else {
        return;
    };
    match outcome {
        Outcome::Disabled | Outcome::AlreadyDisabled => {
            info!("transparent huge pages off for this process (MIMALLOC_ALLOW_THP=1 keeps them)")
        }
        Outcome::LeftToAllocator if huge_pages::disabled() == Some(true) => {
            info!("transparent huge pages off for this process, as MIMALLOC_ALLOW_THP says")
        }
        Outcome::LeftToAllocator => info!(
            "transparent huge pages on, as MIMALLOC_ALLOW_THP says: their faults can stall \
             ingest for milliseconds"
        ),
        Outcome::Unavailable(why) => {
            info!(reason = %why, "transparent huge pages left as they are")
        }
    }
}

/// Listens on `addr` with room for `backlog` pending connections (the kernel caps it at
/// `net.core.somaxconn`).
fn bind(addr: SocketAddr, backlog: u32, what: &str) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    };
    socket
        .and_then(|s| {
            // As TcpListener::bind does: a restarted server rebinds at once.
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(backlog)
        })
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Writes `ports.json` atomically (temporary file, then rename).
fn write_ports(
    dir: &Path,
    mqtt: SocketAddr,
    grpc: SocketAddr,
    metrics: SocketAddr,
) -> anyhow::Result<()> {
    let body = json!({ "mqtt": mqtt.to_string(), "grpc": grpc.to_string(), "metrics": metrics.to_string() });
    let tmp = dir.join("ports.json.tmp");
    std::fs::write(&tmp, format!("{body}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("ports.json")).context("cannot publish ports.json")?;
    Ok(())
}

/// A wildcard listen address is reached through loopback by local clients.
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
