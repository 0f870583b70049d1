//! The server's state, built from the configuration: the metrics recorder, the audit log,
//! authentication, the journal and the engine restored from it, the ingest pipeline, and
//! the application layer over them.

use std::sync::Arc;

use anyhow::{bail, Context};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::info;
use vigil_alerting::{AlertLog, Engine, EngineConfig, Journal};
use vigil_ingest::Validator;

use super::exposure::{self, Exposed};
use super::recovery;
use crate::app::{App, AppLimits, MuteLimits, Pipeline};
use crate::audit::AuditLog;
use crate::auth::slow_checks::SlowChecks;
use crate::auth::throttle::AddressThrottle;
use crate::auth::{Auth, DeviceBook, FailureLog, Logins};
use crate::cli::ServeArgs;
use crate::cmd::demo;
use crate::config::{self, Compiled, FileConfig};
use crate::nats::cluster::Cluster;
use crate::nats::owner::Template;
use crate::process::data_dir;
use crate::settings::Settings;
use crate::telemetry::Telemetry;
use crate::tls::Tls;

/// The configuration, checked, with the settings it resolves to.
pub struct Loaded {
    pub compiled: Compiled,
    pub settings: Settings,
    pub tls: Option<Tls>,
    /// Listeners beyond loopback without authentication (`--insecure`).
    pub exposed: Vec<Exposed>,
}

/// Everything the listeners and background tasks share.
pub struct State {
    pub telemetry: Arc<Telemetry>,
    pub prometheus: PrometheusHandle,
    pub journal: Arc<Journal>,
    pub engine: Arc<Engine>,
    /// Window snapshots: one at a time, and the rate they write at.
    pub snapshots: Arc<super::upkeep::Snapshots>,
    pub app: Arc<App>,
    /// Cluster mode: what each owned partition's engine starts from, and the copy of the
    /// alert stream that subscribers read.
    pub clustered: Option<Clustered>,
}

pub struct Clustered {
    pub cluster: Arc<Cluster>,
    pub template: Arc<Template>,
    pub alerts: Arc<AlertLog>,
    /// Every open alert of the cluster (kept apart from `alerts`' retention).
    pub open: Arc<crate::nats::mirror::OpenAlerts>,
    /// Set once `alerts` holds what the alert stream held when this node started.
    pub mirrored: Arc<std::sync::atomic::AtomicBool>,
}

/// Reads and checks the configuration (or the embedded defaults), the flags that cannot go
/// with it, the listeners' exposure and the data directory.
pub fn load(args: &ServeArgs) -> anyhow::Result<Loaded> {
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
    let mut compiled = compiled;
    if let Some(cluster) = compiled.cluster.as_mut() {
        crate::config::cluster_flags(cluster, args.node_id.as_deref(), &args.nats)?;
    } else if args.node_id.is_some() || !args.nats.is_empty() {
        bail!("--node-id and --nats need a [cluster] section in the configuration file");
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
    let settings = Settings::resolve(&file, args);
    if let Some(problem) = crate::clock::timezone_problem(&settings.timezone) {
        bail!("[server] timezone: {problem}");
    }
    if let Some(start) = &file.server.clock_start {
        let at = crate::clock::start_at(start)
            .map_err(|e| anyhow::anyhow!("[server] clock_start: {e}"))?;
        tracing::warn!(clock_start = %start, at_ms = at, "the server's clock does not show the real time: [server] clock_start is for drills and tests only");
    }
    let exposed = exposure::check(&settings, compiled.auth.enabled, args.insecure)?;
    data_dir::prepare(&settings.data_dir, args.allow_shared_data_dir)?;
    Ok(Loaded {
        compiled,
        settings,
        tls,
        exposed,
    })
}

/// Builds the state: the recorder first (the audit and failure logs register metrics),
/// then authentication, the engine restored from the journal, and the application.
pub fn build(loaded: &Loaded, demo: bool, cluster: Option<Arc<Cluster>>) -> anyhow::Result<State> {
    let settings = &loaded.settings;
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
    let auth = open_auth(loaded, audit.clone())?;
    // The demo's ward is small: an hour of charts costs little and shows more.
    let chart_history = if demo {
        settings.chart_history.max(demo::CHART_HISTORY)
    } else {
        settings.chart_history
    };
    let (engine, journal, template) = open_engine(loaded, &telemetry, chart_history)?;
    if demo {
        demo::enroll(&engine);
    }
    let validator = Validator::new(settings.max_reading_age, settings.max_future_skew);
    let mut pipeline = Pipeline::new(engine.clone(), validator, settings.dedup, telemetry.clone());
    let clustered = cluster.map(|cluster| Clustered {
        cluster,
        template: Arc::new(template),
        alerts: Arc::new(AlertLog::new(
            settings.retained_events,
            settings.subscriber_buffer,
            1,
        )),
        open: Arc::default(),
        mirrored: Arc::default(),
    });
    if let Some(c) = &clustered {
        pipeline = pipeline.forwarding_to(c.cluster.clone());
    }
    let pipeline = Arc::new(pipeline);
    let app = App::new(
        engine.clone(),
        journal.clone(),
        audit,
        auth,
        pipeline,
        telemetry.clone(),
        AppLimits {
            mute: MuteLimits {
                care_team: settings.auth.max_silence,
                other: settings.retention,
            },
            max_subscribers: settings.max_subscribers,
            care_teams: loaded.compiled.care_teams.clone(),
            reviews: journal
                .reviews()
                .context("cannot read the review marks from the journal")?,
            dispositions: loaded.compiled.dispositions.clone(),
            fhir: settings.fhir.clone(),
            require_second_approver: loaded.compiled.rule_set.require_second_approver,
        },
    );
    let app = Arc::new(match &clustered {
        Some(c) => app.clustered(c.alerts.clone(), c.open.clone(), c.cluster.clone()),
        None => app,
    });
    let since = crate::clock::now_ms() - crate::app::dispositions::REPORT_DAYS * 86_400_000;
    let recorded = journal
        .events_since(since, |e| crate::app::dispositions::recorded(e).is_some())
        .context("cannot read the recorded dispositions from the journal")?;
    app.dispositions.restore(&recorded);
    Ok(State {
        telemetry,
        prometheus,
        journal,
        snapshots: Arc::default(),
        engine,
        app,
        clustered,
    })
}

/// Tokens, devices (configured and provisioned), the failure log and the login budget.
fn open_auth(loaded: &Loaded, audit: Arc<AuditLog>) -> anyhow::Result<Arc<Auth>> {
    let (compiled, settings) = (&loaded.compiled, &loaded.settings);
    let mut auth = Auth::new(
        compiled.auth.enabled,
        compiled.auth.tokens.clone(),
        DeviceBook::load(compiled.auth.devices.clone(), &settings.data_dir)?,
        FailureLog::new(audit),
        Logins {
            throttle: AddressThrottle::new(settings.auth.throttle),
            slow: SlowChecks::new(settings.auth.check_workers, settings.auth.check_queue),
        },
    );
    auth.access_tokens = compiled
        .auth
        .oidc
        .clone()
        .map(|o| Arc::new(crate::auth::access_token::AccessTokens::new(o)));
    let auth = Arc::new(auth);
    if auth.enabled {
        info!(
            tokens = auth.token_count(),
            devices = auth.devices.len(),
            "authentication on: gRPC calls need a bearer token"
        );
    }
    Ok(auth)
}

/// The journal and the engine restored from it: rules, patients, open alerts, silences
/// and windows; its latency and write metrics hooked in. With it, what a cluster
/// partition's engine starts from (the rules, patients and silences in force there).
fn open_engine(
    loaded: &Loaded,
    telemetry: &Arc<Telemetry>,
    chart_history: std::time::Duration,
) -> anyhow::Result<(Arc<Engine>, Arc<Journal>, Template)> {
    let compiled = &loaded.compiled;
    let restored = recovery::restore(&loaded.settings, compiled)?;
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
    engine.set_rules_version(restored.rules_version);
    // Before the windows are restored, so that they keep that history too, and count
    // their days in the server's time zone.
    engine.set_timezone(crate::clock::zone(&loaded.settings.timezone));
    engine.keep_history(i64::try_from(chart_history.as_millis()).unwrap_or(i64::MAX));
    // vigil_alert_latency_seconds: reading received → alert durable and delivered.
    let delivered = telemetry.clone();
    engine
        .log()
        .on_delivered(Box::new(move |_, origin| delivered.alert_delivered(origin)));
    // vigil_journal_write_seconds: the fsync every alert waits for.
    let written = telemetry.clone();
    journal.on_write(Box::new(move |took| written.journal_written(took)));
    engine.restore_open_alerts(restored.open_alerts);
    for silence in restored.silences {
        engine.add_silence(silence);
    }
    recovery::restore_windows(&engine, &journal);
    let template = Template {
        front: engine.clone(),
        open_enrollment: compiled.open_enrollment,
        escalation: compiled.escalation.clone(),
        min_history_ms: i64::try_from(chart_history.as_millis()).unwrap_or(i64::MAX),
    };
    info!(
        rules = engine.rules().rules().len(),
        builtin_rules = compiled.builtin_rules,
        patients = engine.patients_tracked(),
        open_enrollment = compiled.open_enrollment,
        "engine ready"
    );
    Ok((engine, journal, template))
}
