//! `vigil-bench suite`: every measurement the report needs, Vigil and its peers back to
//! back on the same machine, each repeated and summarised by its median, then written to
//! `report.md`, `results.json`, `throughput.svg` and `latency.svg`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;

use crate::fsync_floor::{self, FsyncProbe};
use crate::grpc_load::GrpcLoad;
use crate::measure::{self, Throughput};
use crate::memory;
use crate::mqtt_load::MqttLoad;
use crate::peers::{self, Broker, PeerKind, Vigil};
use crate::probe::{self, ProbePlan};
use crate::prometheus::{quantile_between, share_within, Scrape};
use crate::report::{self, LatencyRun, LatencySummary, Machine, SuiteResults, SweepPoint};
use crate::scale::{self, ScaleOptions};
use crate::tag;
use crate::tonic_ceiling::Ceiling;

const ALERT_LATENCY: &str = "vigil_alert_latency_seconds";
const ALERT_RAISE_LATENCY: &str = "vigil_alert_raise_latency_seconds";
const JOURNAL_WRITE: &str = "vigil_journal_write_seconds";
/// Between two appends of the fsync probe: a few hundred fsyncs per run, a small load next
/// to the journal's own.
const FSYNC_EVERY: Duration = Duration::from_millis(4);
/// gRPC gateway connections (one HTTP/2 stream each). With 2, throughput stopped at
/// ~1.6 M readings/s with a third of the two cores idle (each stream's batches are decoded
/// and processed one after another, and the generator waits on its side); 4 keep both
/// cores busy, as several gateways would.
const GRPC_CONNECTIONS: usize = 4;

#[derive(Args, Debug, Clone)]
pub struct SuiteOptions {
    /// The `vigil` binary (default: next to this one; build both with --release).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Repetitions of each headline measurement (the report gives their median).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of load per throughput run.
    #[arg(long, default_value_t = 4.0)]
    secs: f64,
    /// MQTT connections (one per simulated device).
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Patients spread over the devices (and over the gRPC batches).
    #[arg(long, default_value_t = 10_000)]
    patients: usize,
    /// Offered MQTT readings/s of the headline runs (open loop; QoS 0 has no flow
    /// control, so a closed loop would only measure how much a broker can buffer). Above
    /// the 400 k/s target: a run offered exactly the target cannot show it processed, since
    /// the last readings drain after the schedule ends.
    #[arg(long, default_value_t = 500_000.0)]
    offered: f64,
    /// Latency probes per second.
    #[arg(long, default_value_t = 200.0)]
    probes: f64,
    /// Patients in the memory measurement (each 9 metrics × one hour at 1 Hz).
    #[arg(long, default_value_t = 500)]
    memory_patients: usize,
    /// Patients of the scale run (`vigil-bench scale`: home-monitoring steady state,
    /// live ingest under snapshots, shutdown and restart); 0 leaves it out. A million
    /// takes about 5 minutes and 4 GB of memory.
    #[arg(long, default_value_t = 1_000_000)]
    scale_patients: usize,
    /// Seconds of the scale run's live phase.
    #[arg(long, default_value_t = 60.0)]
    scale_live_secs: f64,
    /// A small, fast configuration for checking that the suite works (not for figures).
    #[arg(long)]
    quick: bool,
}

impl SuiteOptions {
    fn parameters(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("runs".into(), self.runs.to_string()),
            (
                "offered MQTT readings/s (headline runs)".into(),
                self.offered.to_string(),
            ),
            ("secs per throughput run".into(), self.secs.to_string()),
            (
                "MQTT devices (connections)".into(),
                self.devices.to_string(),
            ),
            ("patients".into(), self.patients.to_string()),
            ("latency probes/s".into(), self.probes.to_string()),
            ("latency run secs".into(), (2.0 * self.secs).to_string()),
            ("memory patients".into(), self.memory_patients.to_string()),
            ("scale patients".into(), self.scale_patients.to_string()),
            ("scale live secs".into(), self.scale_live_secs.to_string()),
            ("gRPC connections".into(), GRPC_CONNECTIONS.to_string()),
            ("gRPC batch".into(), "1000".into()),
            ("gRPC consecutive readings per patient".into(), "9".into()),
            ("QoS 1 inflight per device".into(), "64".into()),
        ];
        if self.quick {
            p.push(("quick".into(), "yes (not for figures)".into()));
        }
        p
    }
}

fn machine(vigil_bin: &std::path::Path, mosquitto: &str, nats: Option<String>) -> Machine {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let mut commit = git(&["rev-parse", "--short=12", "HEAD"]);
    if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        commit.push_str(" (with uncommitted changes)");
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    Machine {
        commit,
        date_utc: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        mosquitto: mosquitto.into(),
        nats,
        vigil_bin: vigil_bin.display().to_string(),
    }
}

pub async fn run(mut o: SuiteOptions) -> anyhow::Result<()> {
    if o.quick {
        o.runs = 1;
        o.secs = o.secs.min(1.0);
        o.devices = o.devices.min(10);
        o.patients = o.patients.min(100);
        o.probes = o.probes.min(50.0);
        o.memory_patients = o.memory_patients.min(5);
        o.scale_patients = o.scale_patients.min(1000);
        o.scale_live_secs = o.scale_live_secs.min(3.0);
    }
    anyhow::ensure!(
        o.runs > 0 && o.secs > 0.0,
        "--runs and --secs must be positive"
    );
    let began = Instant::now();
    let bin = o.vigil.clone().unwrap_or_else(peers::default_vigil_bin);
    let vigil = Vigil::start(&bin)?;
    // Each relay run starts its own peer (`on_peer`). NATS is the optional second peer:
    // without it the report says so.
    let version = PeerKind::Mosquitto.version()?;
    let nats = match PeerKind::Nats.version() {
        Ok(version) => Some(version),
        Err(e) => {
            eprintln!("{e:#}: no second peer");
            None
        }
    };
    let with_nats = nats.is_some();
    let peer: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut r = SuiteResults {
        machine: machine(&bin, &version, nats),
        parameters: o.parameters(),
        ..Default::default()
    };
    let grpc_url = vigil.grpc_url();
    // Installed once, before any run, so every run evaluates the same rule set.
    probe::install_rule(&grpc_url).await?;
    let secs = Duration::from_secs_f64(o.secs);
    let mqtt = |broker, rate: f64, qos: u8, batch: usize, name: &str| MqttLoad {
        broker,
        devices: o.devices,
        patients: o.patients,
        rate,
        batch,
        qos,
        inflight: 64,
        duration: secs,
        tag: tag(name),
    };
    let grpc = |streaming: bool, rate: f64| GrpcLoad {
        url: grpc_url.clone(),
        connections: GRPC_CONNECTIONS,
        batch: 1000,
        streaming,
        patients: o.patients,
        per_patient: 9,
        rate,
        duration: secs,
        tag: tag("g"),
    };

    for i in 0..o.runs {
        eprintln!(
            "run {}/{}: MQTT QoS 0, {:.0} readings/s offered, Vigil then its peers",
            i + 1,
            o.runs,
            o.offered
        );
        r.mqtt_vigil
            .push(on_vigil(&vigil, Some(&mqtt(vigil.mqtt, o.offered, 0, 1, "v")), None).await?);
        r.mqtt_mosquitto
            .push(on_peer(PeerKind::Mosquitto, mqtt(peer, o.offered, 0, 1, "r")).await?);
        if with_nats {
            r.mqtt_nats
                .push(on_peer(PeerKind::Nats, mqtt(peer, o.offered, 0, 1, "n")).await?);
        }
    }
    eprintln!("QoS 1 and batched payloads");
    r.mqtt_qos1_vigil
        .push(on_vigil(&vigil, Some(&mqtt(vigil.mqtt, 0.0, 1, 1, "v")), None).await?);
    r.mqtt_qos1_mosquitto
        .push(on_peer(PeerKind::Mosquitto, mqtt(peer, 0.0, 1, 1, "r")).await?);
    if with_nats {
        r.mqtt_qos1_nats
            .push(on_peer(PeerKind::Nats, mqtt(peer, 0.0, 1, 1, "n")).await?);
    }
    r.mqtt_batched_vigil
        .push(on_vigil(&vigil, Some(&mqtt(vigil.mqtt, o.offered, 0, 7, "v")), None).await?);
    for i in 0..o.runs {
        eprintln!(
            "run {}/{}: MQTT QoS 1, {} readings/publish, Vigil then Mosquitto",
            i + 1,
            o.runs,
            report::QOS1_BATCH
        );
        let batched = |broker, name| mqtt(broker, 0.0, 1, report::QOS1_BATCH, name);
        r.mqtt_qos1_batched_vigil
            .push(on_vigil(&vigil, Some(&batched(vigil.mqtt, "v")), None).await?);
        r.mqtt_qos1_batched_mosquitto
            .push(on_peer(PeerKind::Mosquitto, batched(peer, "r")).await?);
    }

    let peak = report::median_rate(&r.mqtt_vigil);
    for f in [0.25, 0.5, 0.75, 1.0, 1.25] {
        let offered = (o.offered * f).round();
        eprintln!("sweep: {offered:.0} readings/s offered");
        let v = on_vigil(&vigil, Some(&mqtt(vigil.mqtt, offered, 0, 1, "v")), None).await?;
        let m = on_peer(PeerKind::Mosquitto, mqtt(peer, offered, 0, 1, "r")).await?;
        let n = if with_nats {
            Some(on_peer(PeerKind::Nats, mqtt(peer, offered, 0, 1, "n")).await?)
        } else {
            None
        };
        r.sweep.push(SweepPoint {
            offered,
            vigil: v,
            mosquitto: m,
            nats: n,
        });
    }

    // Background for a latency run: MQTT QoS 0 at `fraction` of the peak, twice as long as
    // a throughput run.
    let background = |fraction: f64| MqttLoad {
        duration: secs * 2,
        ..mqtt(vigil.mqtt, (peak * fraction).round(), 0, 1, "v")
    };
    eprintln!("fsync floor of the journal's disk, idle");
    let fsyncs = if o.quick { 50 } else { 500 };
    r.fsync_idle = Some(fsync_floor::measure(
        vigil.dir.path(),
        fsyncs,
        FSYNC_EVERY / 2,
    )?);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for i in 0..o.runs {
        eprintln!("run {}/{}: latency probes at half of peak", i + 1, o.runs);
        let (run, probes) = latency_run(&vigil, &grpc_url, &background(0.5), o.probes).await?;
        all.add(&probes.latency_us)?;
        r.latency.push(run);
    }
    r.latency_curve = report::curve(&all);
    eprintln!("latency probes at a quarter of peak");
    r.latency_quarter = Some(
        latency_run(&vigil, &grpc_url, &background(0.25), o.probes)
            .await?
            .0,
    );

    let ceiling = Ceiling::start()?;
    for i in 0..o.runs {
        eprintln!(
            "run {}/{}: gRPC streaming, Vigil then the bare tonic ceiling",
            i + 1,
            o.runs
        );
        r.grpc_stream
            .push(on_vigil(&vigil, None, Some(&grpc(true, 0.0))).await?);
        r.grpc_ceiling.push(ceiling.run(&grpc(true, 0.0)).await?);
    }
    drop(ceiling);
    eprintln!("gRPC unary, then mixed");
    r.grpc_unary
        .push(on_vigil(&vigil, None, Some(&grpc(false, 0.0))).await?);
    r.mixed.push(
        on_vigil(
            &vigil,
            Some(&mqtt(vigil.mqtt, (peak * 0.5).round(), 0, 1, "v")),
            Some(&grpc(true, 0.0)),
        )
        .await?,
    );
    drop(vigil);

    eprintln!(
        "memory: {} patients × 9 metrics × 1 h at 1 Hz",
        o.memory_patients
    );
    r.memory = Some(memory::measure(&bin, o.memory_patients).await?);
    if o.scale_patients > 0 {
        eprintln!("scale: {} patients", o.scale_patients);
        r.scale = Some(
            scale::run(&ScaleOptions {
                bin: bin.clone(),
                patients: o.scale_patients,
                live: Duration::from_secs_f64(o.scale_live_secs),
            })
            .await?,
        );
    }
    r.wall_secs = began.elapsed().as_secs_f64();

    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    std::fs::write(
        o.out.join("results.json"),
        serde_json::to_string_pretty(&r)?,
    )?;
    std::fs::write(o.out.join("report.md"), report::markdown(&r))?;
    report::throughput_svg(&r, &o.out.join("throughput.svg"))?;
    report::latency_svg(&r, &o.out.join("latency.svg"))?;
    if let Some(s) = &r.scale {
        report::scale_svg(s, &o.out.join("scale.svg"))?;
    }
    eprintln!(
        "wrote {} in {:.0} s",
        o.out.join("report.md").display(),
        r.wall_secs
    );
    print!("{}", report::markdown(&r));
    Ok(())
}

async fn on_vigil(
    vigil: &Vigil,
    mqtt: Option<&MqttLoad>,
    grpc: Option<&GrpcLoad>,
) -> anyhow::Result<Throughput> {
    on_vigil_with(vigil, mqtt, grpc, 0).await
}

/// `on_vigil` while `also` readings arrive from elsewhere (the latency probes).
/// Latency probes at `probes` per second while `background` runs, for as long as it does.
async fn latency_run(
    vigil: &Vigil,
    grpc_url: &str,
    background: &MqttLoad,
    probes: f64,
) -> anyhow::Result<(LatencyRun, probe::ProbeResult)> {
    let plan = ProbePlan {
        broker: vigil.mqtt,
        grpc: grpc_url.to_string(),
        rate: probes,
        duration: background.duration,
        tag: tag("l"),
    };
    let before = Scrape::take(vigil.metrics).await?;
    let fsyncs = FsyncProbe::start(vigil.dir.path(), FSYNC_EVERY)?;
    let (bg, result) = tokio::join!(
        on_vigil_with(vigil, Some(background), None, plan.count() as u64),
        probe::run(&plan)
    );
    let fsync = fsyncs.finish()?;
    let (bg, result) = (bg?, result?);
    let after = Scrape::take(vigil.metrics).await?;
    let p99 = |name: &str| {
        quantile_between(&before.buckets(name), &after.buckets(name), 0.99).map(|s| s * 1e6)
    };
    let run = LatencyRun {
        background: bg,
        client: LatencySummary::of(&result),
        server_p99_us: p99(ALERT_LATENCY),
        server_within_1ms: share_within(
            &before.buckets(ALERT_LATENCY),
            &after.buckets(ALERT_LATENCY),
            0.001,
        ),
        raise_p99_us: p99(ALERT_RAISE_LATENCY),
        journal_p99_us: p99(JOURNAL_WRITE),
        fsync: Some(fsync),
    };
    Ok((run, result))
}

async fn on_vigil_with(
    vigil: &Vigil,
    mqtt: Option<&MqttLoad>,
    grpc: Option<&GrpcLoad>,
    also: u64,
) -> anyhow::Result<Throughput> {
    let cpu = vigil.cpu()?;
    let mut t = measure::vigil_run(vigil.metrics, mqtt, grpc, also).await?;
    t.server_cpu_secs = Some((vigil.cpu()? - cpu).as_secs_f64());
    Ok(t)
}

/// A fresh peer per run: a backlog left by one run (Mosquitto buffers without bound) must
/// not slow the next.
async fn on_peer(kind: PeerKind, mut load: MqttLoad) -> anyhow::Result<Throughput> {
    let m = Broker::start(kind)?;
    load.broker = m.addr;
    let cpu = m.cpu()?;
    let mut t = measure::relay_run(m.addr, &load).await?;
    t.server_cpu_secs = Some((m.cpu()? - cpu).as_secs_f64());
    Ok(t)
}

/// The same gRPC load against a fresh Vigil and the bare tonic ceiling, alternated
/// (`vigil-bench grpc-ceiling`).
#[derive(Debug, serde::Serialize)]
pub struct CeilingComparison {
    pub vigil: Vec<Throughput>,
    pub ceiling: Vec<Throughput>,
    /// Median of Vigil's runs over the median of the ceiling's.
    pub ratio: f64,
}

pub async fn grpc_against_ceiling(
    bin: &std::path::Path,
    load: impl Fn(String) -> GrpcLoad,
    runs: usize,
) -> anyhow::Result<CeilingComparison> {
    let vigil = Vigil::start(bin)?;
    let ceiling = Ceiling::start()?;
    let (mut v, mut c) = (Vec::new(), Vec::new());
    for i in 0..runs.max(1) {
        eprintln!("run {}/{}: Vigil, then the ceiling", i + 1, runs.max(1));
        v.push(on_vigil(&vigil, None, Some(&load(vigil.grpc_url()))).await?);
        c.push(ceiling.run(&load(ceiling.url())).await?);
    }
    let ratio = report::median_rate(&v) / report::median_rate(&c);
    Ok(CeilingComparison {
        vigil: v,
        ceiling: c,
        ratio,
    })
}
