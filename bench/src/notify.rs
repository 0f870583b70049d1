//! Notifiers under load, against webhook receivers run here on 127.0.0.1:
//!
//! - **latency**: reading → notification received, at a background MQTT load (a quarter of
//!   peak by default), from each latency probe's *intended* send time (its reading's `ts`)
//!   to the receiver's clock when the message arrived, beside the same probes' gRPC figure;
//! - **throughput**: alerts of distinct patients raised at once over gRPC, and the rate at
//!   which a notifier gets them confirmed by a receiver that answers at once;
//! - **backlog**: the server's resident memory after a backlog of N events piled up behind a
//!   receiver that never answers, beside the same alerts raised on a server without
//!   notifier;
//! - **dead receiver**: MQTT ingest and gRPC latency of the server with that dead receiver
//!   and its backlog, beside the server without notifier, runs alternated.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use vigil_proto::v1;
use vigil_proto::v1::ingest_client::IngestClient;

use crate::measure::{self, Throughput};
use crate::mqtt_load::MqttLoad;
use crate::peers::Vigil;
use crate::probe::{self, ProbePlan, ProbeResult};
use crate::prometheus::Scrape;
use crate::report::{median, LatencySummary};
use crate::tag;

#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// Background MQTT readings/s during the latency runs.
    pub background: f64,
    /// MQTT readings/s offered during the dead-receiver runs (peak).
    pub peak: f64,
    pub probes: f64,
    pub duration: Duration,
    pub runs: usize,
    /// Alerts raised at once for the throughput figure.
    pub events: usize,
    /// Events held behind the dead receiver.
    pub backlog: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifyResult {
    pub background_rate: f64,
    pub probe_rate: f64,
    /// Reading → notification received, per latency run.
    pub notification: Vec<NotificationLatency>,
    /// The same runs' reading → gRPC `Subscribe` latency.
    pub grpc: Vec<LatencySummary>,
    pub throughput: NotifierThroughput,
    pub backlog: BacklogMemory,
    pub dead_receiver: DeadReceiver,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationLatency {
    pub probes: u64,
    pub received: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifierThroughput {
    pub events: usize,
    /// From the first alert published to the last notification received.
    pub secs: f64,
    pub events_per_sec: f64,
    /// Messages received in that time (every rule's alerts: the readings also trip
    /// built-in rules).
    pub messages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BacklogMemory {
    pub events: usize,
    /// Resident memory growth while the alerts were raised, with the dead receiver's
    /// notifier holding them, and on the server without notifier.
    pub rss_growth_with_notifier: u64,
    pub rss_growth_without: u64,
    /// (with − without) / events held.
    pub bytes_per_backlog_event: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadReceiver {
    pub offered: f64,
    /// MQTT readings/s processed at `offered`, per run.
    pub ingest_with_dead: Vec<f64>,
    pub ingest_without: Vec<f64>,
    /// gRPC probe p99 (µs) at the background load, per run.
    pub grpc_p99_with_dead_us: Vec<u64>,
    pub grpc_p99_without_us: Vec<u64>,
    /// Median ingest with / without.
    pub ingest_ratio: f64,
    /// Median gRPC p99 with / without.
    pub grpc_p99_ratio: f64,
}

/// What a receiver does with a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers 200 at once.
    Fast,
    /// Holds the request and never answers.
    Dead,
}

#[derive(Clone)]
struct Receiver {
    mode: Mode,
    /// (arrival, Unix µs; patient) per probe-rule alert received (other rules' alerts of
    /// the same readings, such as the built-in tachycardia rule's, are not counted).
    alerts: Arc<Mutex<Vec<(i64, String)>>>,
    messages: Arc<AtomicU64>,
}

impl Receiver {
    async fn start(mode: Mode) -> anyhow::Result<(Receiver, SocketAddr)> {
        let r = Receiver {
            mode,
            alerts: Arc::default(),
            messages: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok((r, addr))
    }

    fn received(&self) -> usize {
        self.alerts.lock().unwrap().len()
    }
}

fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

async fn receive(State(r): State<Receiver>, body: Bytes) -> &'static str {
    if r.mode == Mode::Dead {
        std::future::pending::<()>().await;
    }
    let at = unix_us();
    r.messages.fetch_add(1, Ordering::Relaxed);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(alerts) = v["alerts"].as_array() {
        let mut seen = r.alerts.lock().unwrap();
        for a in alerts {
            if a["labels"]["alertname"] != probe::PROBE_RULE {
                continue;
            }
            if let Some(p) = a["labels"]["patient"].as_str() {
                seen.push((at, p.to_string()));
            }
        }
    }
    ""
}

fn config(receiver: Option<SocketAddr>) -> Option<String> {
    receiver.map(|addr| {
        format!("[[notifiers]]\nid = \"bench\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n")
    })
}

pub async fn run(bin: &Path, o: &NotifyOptions) -> anyhow::Result<NotifyResult> {
    let (fast, fast_addr) = Receiver::start(Mode::Fast).await?;
    let (_dead, dead_addr) = Receiver::start(Mode::Dead).await?;
    let live = Vigil::start_with(bin, config(Some(fast_addr)).as_deref())?;
    let mut notification = Vec::new();
    let mut grpc = Vec::new();
    for i in 0..o.runs {
        eprintln!("run {}/{}: notification latency", i + 1, o.runs);
        let (n, g) = latency_run(&live, &fast, o).await?;
        notification.push(n);
        grpc.push(g);
    }
    eprintln!("notifier throughput, {} alerts at once", o.events);
    let throughput = throughput(&live, &fast, o.events).await?;
    drop(live);

    eprintln!("a backlog of {} events behind a dead receiver", o.backlog);
    let dead = Vigil::start_with(bin, config(Some(dead_addr)).as_deref())?;
    let bare = Vigil::start_with(bin, None)?;
    let (with, held) = raise_and_measure(&dead, o.backlog).await?;
    let (without, _) = raise_and_measure(&bare, o.backlog).await?;
    let backlog = BacklogMemory {
        events: held as usize,
        rss_growth_with_notifier: with,
        rss_growth_without: without,
        bytes_per_backlog_event: (with as f64 - without as f64) / held.max(1) as f64,
    };

    let mut d = DeadReceiver {
        offered: o.peak,
        ingest_with_dead: Vec::new(),
        ingest_without: Vec::new(),
        grpc_p99_with_dead_us: Vec::new(),
        grpc_p99_without_us: Vec::new(),
        ingest_ratio: 0.0,
        grpc_p99_ratio: 0.0,
    };
    for i in 0..o.runs {
        eprintln!(
            "run {}/{}: beside a dead receiver, and without",
            i + 1,
            o.runs
        );
        // Alternate which server goes first, so that a drift over the runs is shared.
        let order = if i % 2 == 0 {
            [(&dead, true), (&bare, false)]
        } else {
            [(&bare, false), (&dead, true)]
        };
        for (server, is_dead) in order {
            let (t, _) = load_run(server, o.peak, o).await?;
            let (_, p) = load_run(server, o.background, o).await?;
            if is_dead {
                d.ingest_with_dead.push(t.rate);
                d.grpc_p99_with_dead_us.push(p.p99_us);
            } else {
                d.ingest_without.push(t.rate);
                d.grpc_p99_without_us.push(p.p99_us);
            }
        }
    }
    d.ingest_ratio = median(d.ingest_with_dead.clone()) / median(d.ingest_without.clone());
    let p99 = |v: &[u64]| median(v.iter().map(|&x| x as f64).collect());
    d.grpc_p99_ratio = p99(&d.grpc_p99_with_dead_us) / p99(&d.grpc_p99_without_us);
    Ok(NotifyResult {
        background_rate: o.background,
        probe_rate: o.probes,
        notification,
        grpc,
        throughput,
        backlog,
        dead_receiver: d,
    })
}

fn background(broker: SocketAddr, rate: f64, duration: Duration) -> MqttLoad {
    MqttLoad {
        broker,
        devices: 200,
        patients: 10_000,
        rate,
        batch: 1,
        qos: 0,
        inflight: 64,
        duration,
        tag: tag("n"),
    }
}

/// MQTT load at `rate` with latency probes on `vigil`: the load's figures, the probes', and
/// the patient id prefix the probes used.
async fn probed_run(
    vigil: &Vigil,
    rate: f64,
    o: &NotifyOptions,
) -> anyhow::Result<(Throughput, ProbeResult, String)> {
    let load = background(vigil.mqtt, rate, o.duration);
    let plan = ProbePlan {
        broker: vigil.mqtt,
        grpc: vigil.grpc_url(),
        rate: o.probes,
        duration: o.duration,
        tag: tag("l"),
    };
    let (t, p) = tokio::join!(
        measure::vigil_run(vigil.metrics, Some(&load), None, plan.count() as u64),
        probe::run(&plan)
    );
    Ok((t?, p?, plan.patient_prefix()))
}

/// [`probed_run`], summarised.
async fn load_run(
    vigil: &Vigil,
    rate: f64,
    o: &NotifyOptions,
) -> anyhow::Result<(Throughput, LatencySummary)> {
    let (t, p, _) = probed_run(vigil, rate, o).await?;
    Ok((t, LatencySummary::of(&p)))
}

/// One latency run: probes at `o.probes`/s over background load; each probe's alert is
/// timed to its notification's arrival.
async fn latency_run(
    vigil: &Vigil,
    receiver: &Receiver,
    o: &NotifyOptions,
) -> anyhow::Result<(NotificationLatency, LatencySummary)> {
    let (_, p, prefix) = probed_run(vigil, o.background, o).await?;
    // Notifications of the probes that raised an alert.
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = p.samples.len();
    let arrivals = loop {
        let arrivals: Vec<(i64, usize)> = receiver
            .alerts
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(at, patient)| {
                Some((*at, patient.strip_prefix(&prefix)?.parse::<usize>().ok()?))
            })
            .collect();
        if arrivals.len() >= want || Instant::now() > deadline {
            break arrivals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let sent_ms: std::collections::HashMap<usize, i64> =
        p.samples.iter().map(|s| (s.probe, s.sent_ms)).collect();
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for (at_us, n) in &arrivals {
        if let Some(ms) = sent_ms.get(n) {
            h.saturating_record((at_us - ms * 1000).max(1) as u64);
        }
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Ok((
        NotificationLatency {
            probes: p.sent,
            received: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        },
        LatencySummary::of(&p),
    ))
}

/// Raises `n` alerts of distinct patients over gRPC (batches of 1 000) at once.
async fn raise(vigil: &Vigil, n: usize, name: &str) -> anyhow::Result<()> {
    probe::install_rule(&vigil.grpc_url()).await?;
    let mut ingest = IngestClient::connect(vigil.grpc_url())
        .await
        .context("connecting to gRPC")?;
    let now = unix_us() / 1000;
    let tag = tag(name);
    for start in (0..n).step_by(1000) {
        let readings = (start..(start + 1000).min(n))
            .map(|i| v1::Reading {
                patient_id: format!("{tag}{i}"),
                metric: "heart_rate".into(),
                value: 280.0,
                ts_ms: now,
                ..Default::default()
            })
            .collect();
        ingest
            .publish_batch(v1::ReadingBatch { readings })
            .await
            .context("Ingest.PublishBatch")?;
    }
    Ok(())
}

async fn throughput(
    vigil: &Vigil,
    receiver: &Receiver,
    events: usize,
) -> anyhow::Result<NotifierThroughput> {
    let before = receiver.received();
    let messages_before = receiver.messages.load(Ordering::Relaxed);
    let started = Instant::now();
    raise(vigil, events, "t").await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while receiver.received() < before + events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let got = receiver.received() - before;
    anyhow::ensure!(got >= events, "{got} of {events} notifications in 600 s");
    Ok(NotifierThroughput {
        events,
        secs,
        events_per_sec: events as f64 / secs,
        messages: receiver.messages.load(Ordering::Relaxed) - messages_before,
    })
}

/// Resident memory growth while about `n` alert events are made on `vigil` by 1 000
/// patients whose heart rate goes up and down (so that patient state does not grow), and
/// the events a notifier then holds (its backlog; 0 without notifier).
async fn raise_and_measure(vigil: &Vigil, n: usize) -> anyhow::Result<(u64, u64)> {
    const PATIENTS: usize = 1000;
    probe::install_rule(&vigil.grpc_url()).await?;
    let ingest = IngestClient::connect(vigil.grpc_url())
        .await
        .context("connecting to gRPC")?;
    let tag = tag("m");
    let base = unix_us() / 1000 - 600_000;
    let send = |cycle: usize| {
        let readings: Vec<v1::Reading> = (0..PATIENTS)
            .flat_map(|p| {
                [(280.0, 0), (70.0, 1)].map(|(value, step)| v1::Reading {
                    patient_id: format!("{tag}{p}"),
                    metric: "heart_rate".into(),
                    value,
                    ts_ms: base + (cycle * 2 + step) as i64,
                    ..Default::default()
                })
            })
            .collect();
        let mut ingest = ingest.clone();
        async move {
            ingest
                .publish_batch(v1::ReadingBatch { readings })
                .await
                .context("Ingest.PublishBatch")
        }
    };
    let events = || async {
        let s = Scrape::take(vigil.metrics).await?;
        anyhow::Ok(s.sum("vigil_alert_last_seq") as u64)
    };
    // Warm-up: every patient exists, a few events are retained.
    for c in 0..5 {
        send(c).await?;
    }
    measure::settle(events, u64::MAX, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = vigil.rss()?;
    let start = events().await?;
    let mut cycle = 5;
    while (events().await? - start) < n as u64 {
        send(cycle).await?;
        cycle += 1;
    }
    measure::settle(events, u64::MAX, Duration::from_secs(60)).await?;
    let backlog = || async {
        let s = Scrape::take(vigil.metrics).await?;
        anyhow::Ok(s.sum("vigil_notifier_backlog") as u64)
    };
    let (held, _) = measure::settle(backlog, u64::MAX, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok((vigil.rss()?.saturating_sub(before), held))
}
