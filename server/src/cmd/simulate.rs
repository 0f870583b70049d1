//! `vigil simulate` (and the demo's ward): publishes simulated vitals over MQTT with
//! rumqttc, one connection per device up to a cap, optionally back-filling history as a
//! device uploading stored readings late would.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, EventLoop, MqttOptions, QoS};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::now_ms;
use crate::cmd::ward::SimPatient;

/// Most MQTT connections one simulator opens; beyond it patients share connections.
const MAX_CONNECTIONS: usize = 200;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub broker: SocketAddr,
    pub patients: Vec<String>,
    /// How many of `patients` (the first ones) deteriorate.
    pub deteriorating: usize,
    /// Payloads per second per patient.
    pub rate_hz: f64,
    /// Seconds of history each patient uploads first (event time in the past).
    pub backfill_s: u64,
    pub qos: QoS,
    pub duration: Option<Duration>,
    pub seed: u64,
}

/// Runs until `stop` is cancelled or `duration` elapses.
pub async fn run(cfg: SimConfig, stop: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.rate_hz > 0.0 && cfg.rate_hz.is_finite(),
        "--rate must be a positive number"
    );
    let connections = cfg.patients.len().clamp(1, MAX_CONNECTIONS);
    let mut groups: Vec<Vec<SimPatient>> = (0..connections).map(|_| Vec::new()).collect();
    for (i, id) in cfg.patients.iter().enumerate() {
        groups[i % connections].push(SimPatient::new(
            id.clone(),
            i,
            i < cfg.deteriorating,
            cfg.seed,
        ));
    }
    info!(
        patients = cfg.patients.len(),
        deteriorating = cfg.deteriorating.min(cfg.patients.len()),
        rate_hz = cfg.rate_hz,
        broker = %cfg.broker,
        "simulator publishing"
    );
    let stop = match cfg.duration {
        Some(d) => {
            let child = stop.child_token();
            let timer = child.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                timer.cancel();
            });
            child
        }
        None => stop,
    };
    let mut tasks = JoinSet::new();
    for (n, group) in groups.into_iter().enumerate() {
        let mut options = MqttOptions::new(
            format!("vigil-sim-{}-{n}", std::process::id()),
            cfg.broker.ip().to_string(),
            cfg.broker.port(),
        );
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, eventloop) = AsyncClient::new(options, 256);
        tasks.spawn(drive(eventloop, stop.clone()));
        tasks.spawn(publish(client, group, cfg.clone(), stop.clone()));
    }
    while let Some(result) = tasks.join_next().await {
        result.context("simulator task panicked")??;
    }
    Ok(())
}

/// Publishes a group's payloads: back-fill first, then live at the configured rate.
async fn publish(
    client: AsyncClient,
    mut group: Vec<SimPatient>,
    cfg: SimConfig,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let start_ms = now_ms();
    let step_s = 1.0 / cfg.rate_hz;
    // Back-fill in 5 s steps of event time, oldest first.
    let mut t = -(cfg.backfill_s as f64);
    while t < 0.0 && !stop.is_cancelled() {
        for p in &mut group {
            let ts = start_ms + (t * 1000.0) as i64;
            let payload = p.payload(t, ts);
            client
                .publish(format!("vitals/{}", p.id), cfg.qos, false, payload)
                .await?;
        }
        t += 5.0;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(step_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                let now = now_ms();
                let t = (now - start_ms) as f64 / 1000.0;
                for p in &mut group {
                    let payload = p.payload(t, now);
                    client.publish(format!("vitals/{}", p.id), cfg.qos, false, payload).await?;
                }
            }
        }
    }
    let _ = client.disconnect().await;
    Ok(())
}

/// Polls a connection's event loop (rumqttc sends nothing unless polled); reconnects.
async fn drive(mut eventloop: EventLoop, stop: CancellationToken) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                // Let the disconnect and in-flight acks go out.
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    while eventloop.poll().await.is_ok() {}
                }).await;
                return Ok(());
            }
            event = eventloop.poll() => match event {
                Ok(e) => debug!(?e, "simulator MQTT event"),
                Err(e) => {
                    warn!(error = %e, "simulator MQTT connection error; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
