//! The Prometheus scrape endpoint (`GET /metrics`, text format) and a liveness probe
//! (`GET /healthz`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Updates the gauges that are read, not pushed, just before a scrape.
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    refresh: Refresh,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The exporter needs periodic upkeep to fold histogram samples.
    let upkeep = handle.clone();
    let upkeep_stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = upkeep_stop.cancelled() => return,
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    });
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                let refresh = refresh.clone();
                async move {
                    refresh();
                    ([(CONTENT_TYPE, TEXT_FORMAT)], handle.render())
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
