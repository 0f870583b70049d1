//! `vigil serve`: builds the state from configuration, binds every listener, starts each
//! listener and consumer, writes `ports.json`, runs until SIGINT/SIGTERM, then shuts down
//! gracefully. `run` reads as the table of contents: a new capability adds one line.

pub mod exposure;
pub mod listeners;
pub mod recovery;
pub mod shutdown;
pub mod state;
pub mod tasks;
pub mod upkeep;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

use self::listeners::{loopback, Listeners};
use self::shutdown::Running;
use crate::app::notifiers;
use crate::cli::ServeArgs;
use crate::cmd::demo;
use crate::grpc;
use crate::http;
use crate::http::metrics as metrics_http;
use crate::mqtt::reminders;
use crate::process::huge_pages;

/// How long the cluster's streams keep readings (long enough to rebuild every window a
/// rule needs, and at least a day) and alert events (the journal's retention).
fn cluster_retention(loaded: &state::Loaded) -> crate::nats::cluster::Retention {
    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);
    let longest = loaded
        .compiled
        .rules
        .iter()
        .map(|r| r.window_ms(None))
        .max()
        .unwrap_or(0);
    let longest = std::time::Duration::from_millis(u64::try_from(longest).unwrap_or(0));
    crate::nats::cluster::Retention {
        readings: (longest + DAY).max(loaded.settings.chart_history + DAY),
        alerts: loaded.settings.retention,
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    huge_pages::log_outcome();
    let loaded = state::load(&args)?;
    let cluster = match &loaded.compiled.cluster {
        Some(settings) => Some(Arc::new(
            crate::nats::cluster::Cluster::connect(settings, cluster_retention(&loaded)).await?,
        )),
        None => None,
    };
    let state = Arc::new(state::build(&loaded, args.demo, cluster)?);
    let shutdown = CancellationToken::new();
    // Cluster mode: what was changed while this node was away applies before it admits a
    // reading or takes a partition.
    tasks::follow_catalog(&state, shutdown.clone()).await?;
    exposure::keep_warning(loaded.exposed.clone(), shutdown.clone());
    let listeners = Listeners::bind(&loaded.settings)?;
    let addresses = listeners.addresses()?;
    let settings = &loaded.settings;

    // The listeners, then every consumer and clock, one line each.
    let mqtt = tasks::start_mqtt(&state, &loaded, listeners.mqtt, &shutdown)?;
    let grpc_tls = loaded.tls.as_ref().map(|t| t.grpc.clone());
    let grpc = tokio::spawn(grpc::serve(
        listeners.grpc,
        state.app.clone(),
        grpc_tls,
        shutdown.clone(),
    ));
    let external_url = settings
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", loopback(addresses.http)));
    let mut console = http::Console::new(
        state.app.clone(),
        settings.timezone.clone(),
        loaded.compiled.home_teams.clone(),
        loaded.tls.is_some(),
        shutdown.clone(),
    )?;
    if let Some(oidc) = &loaded.compiled.auth.oidc {
        let redirect = format!("{}/auth/callback", external_url.trim_end_matches('/'));
        console.oidc = Some(Arc::new(crate::auth::oidc::Oidc::new(
            oidc.clone(),
            redirect,
        )?));
    }
    let console = Arc::new(console);
    if let Some(tokens) = &state.app.auth.access_tokens {
        tokio::spawn(
            tokens
                .clone()
                .keep_keys(crate::auth::oidc::http_client()?, shutdown.clone()),
        );
    }
    let http = tokio::spawn(http::serve(
        listeners.http,
        console.clone(),
        loaded.tls.as_ref().map(|t| t.http.clone()),
        shutdown.clone(),
    ));
    let metrics = tokio::spawn(metrics_http::serve(
        listeners.metrics,
        state.prometheus.clone(),
        tasks::refresh(&state),
        shutdown.clone(),
    ));
    upkeep::spawn(
        state.engine.clone(),
        state.journal.clone(),
        settings,
        state.telemetry.clone(),
        state.snapshots.clone(),
        shutdown.clone(),
    );
    reminders::spawn(&state.app, mqtt.bus.clone(), shutdown.clone())?;
    let notifiers = notifiers::prepare(
        &state.app,
        loaded.compiled.notifiers.clone(),
        &loaded.compiled.fallbacks,
        notifiers::Render {
            external_url,
            zone: crate::clock::zone(&settings.timezone),
        },
    )?;
    let notifying = tasks::start_notifiers(&state, notifiers, shutdown.clone())?;
    tokio::spawn(tasks::absence_ticker(state.clone(), shutdown.clone()));
    let cluster = tasks::start_cluster(&state, &loaded, shutdown.clone());
    tokio::spawn(tasks::refusal_summaries(state.clone(), shutdown.clone()));

    listeners::write_ports(&settings.data_dir, addresses)?;
    if let Some(c) = &cluster {
        // Ready once this node has taken its first share of the partitions.
        while !c.settled.load(Ordering::Acquire) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    console.ready.store(true, Ordering::Release);
    info!(mqtt = %addresses.mqtt, grpc = %addresses.grpc, metrics = %addresses.metrics, http = %addresses.http, data_dir = %settings.data_dir.display(), "Vigil ready");
    if args.demo {
        demo::start(
            state.engine.clone(),
            loopback(addresses.mqtt),
            loopback(addresses.grpc),
            shutdown.clone(),
        );
        println!(
            "Console: http://{}/  (live alert board, patient worklist and charts)",
            loopback(addresses.http)
        );
    }
    let running = Running {
        grpc,
        metrics,
        http,
        mqtt,
        cluster: cluster.map(|c| c.ownership),
        notifying,
    };
    shutdown::wait_then_stop(state, running, settings.shutdown_grace, shutdown).await
}
