//! Cluster mode on one machine: three Vigil nodes on a nats-server (JetStream, loopback).
//!
//! - **ingest**: closed-loop gRPC batches into the three nodes at once, against the same load
//!   into a single node without `[cluster]`, runs alternated; readings/s acknowledged, and
//!   CPU per reading of every process involved (the nodes and nats-server), so the cost of
//!   the NATS hop shows beside the single node's;
//! - **takeover**: `patients` patients with a reading each, then repeated kill -9 of one node:
//!   from the kill to the first alert raised by the partition's new owner for a reading sent
//!   right after the kill through a surviving node; the rebuild time per partition the new
//!   owners report (`vigil_cluster_rebuild_seconds`), per 10 000 patients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio_stream::StreamExt;
use vigil_proto::v1;
use vigil_proto::v1::alerts_client::AlertsClient;
use vigil_proto::v1::ingest_client::IngestClient;

use crate::grpc_load::{self, GrpcLoad};
use crate::peers::Vigil;
use crate::prometheus::Scrape;
use crate::report::median;

const NAMESPACE: &str = "bench";
/// How often owners publish their partitions' snapshots; the kills start two periods after
/// the history is in, so that takeovers restore snapshots and replay little.
const SNAPSHOT_SECS: u64 = 5;

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The nats-server binary (2.10 or later).
    pub nats_server: PathBuf,
    pub partitions: u32,
    /// Patients with history when the kills start.
    pub patients: usize,
    pub kills: usize,
    pub runs: usize,
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterResult {
    pub nats_server: String,
    /// None with `--runs 0`.
    pub ingest: Option<IngestComparison>,
    pub takeover: Takeovers,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestComparison {
    /// Acknowledged readings/s per run.
    pub single: Vec<f64>,
    pub cluster: Vec<f64>,
    /// CPU time of every process involved per acknowledged reading (µs), per run.
    pub single_cpu_us: Vec<f64>,
    pub cluster_cpu_us: Vec<f64>,
    /// Of the cluster's: nats-server's share (µs per reading), per run.
    pub nats_cpu_us: Vec<f64>,
    /// After each cluster run, how long until every owner had judged every reading (s).
    pub cluster_drain_secs: Vec<f64>,
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Takeovers {
    pub patients: usize,
    pub partitions: u32,
    /// Kill → the new owner's alert for a reading sent after the kill, per kill (ms).
    pub kill_to_alert_ms: Vec<f64>,
    pub median_ms: f64,
    pub max_ms: f64,
    /// Mean rebuild of one partition after the kills (ms), and per 10 000 patients.
    pub rebuild_per_partition_ms: f64,
    pub rebuild_per_10k_patients_ms: f64,
}

/// A nats-server process, killed on drop.
struct NatsServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NatsServer {
    async fn start(bin: &Path) -> anyhow::Result<NatsServer> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\nserver_name: bench\njetstream {{ store_dir: {:?} }}\n",
                dir.path().join("js")
            ),
        )?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let url = format!("nats://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while async_nats::connect(&url).await.is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not answer at {url}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(NatsServer {
            child,
            url,
            _dir: dir,
        })
    }

    fn cpu(&self) -> anyhow::Result<Duration> {
        crate::peers::cpu_of(self.child.id())
    }
}

fn node_config(node: &str, url: &str, partitions: u32) -> String {
    format!(
        "[cluster]\nnats_urls = [\"{url}\"]\nnode_id = \"{node}\"\npartitions = {partitions}\n\
         namespace = \"{NAMESPACE}\"\nreplicas = 1\nsnapshot_every = \"{SNAPSHOT_SECS}s\"\n\n\
         [[rules]]\nid = \"bench_hr\"\nmetric = \"heart_rate\"\nabove = 140\nseverity = \"high\"\n"
    )
}

async fn scrape_sum(node: &Vigil, name: &str) -> f64 {
    match Scrape::take(node.metrics).await {
        Ok(s) => s.sum(name),
        Err(_) => 0.0,
    }
}

/// Waits until the nodes together own every partition, each some.
async fn balanced(nodes: &[&Vigil], partitions: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut each = Vec::new();
        for n in nodes {
            each.push(scrape_sum(n, "vigil_cluster_partitions_owned").await);
        }
        if each.iter().sum::<f64>() == f64::from(partitions) && each.iter().all(|&o| o > 0.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("partitions not balanced within 120 s: {each:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(bin: &Path, o: &ClusterOptions) -> anyhow::Result<ClusterResult> {
    let version = Command::new(&o.nats_server)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    let ingest = if o.runs > 0 {
        Some(ingest(bin, o).await?)
    } else {
        None
    };
    let takeover = takeovers(bin, o).await?;
    Ok(ClusterResult {
        nats_server: version,
        ingest,
        takeover,
    })
}

fn load(url: String, patients: usize, duration: Duration, tag: &str) -> GrpcLoad {
    GrpcLoad {
        url,
        connections: 1,
        batch: 1000,
        streaming: false,
        patients,
        per_patient: 1,
        rate: 0.0,
        duration,
        tag: tag.to_string(),
    }
}

async fn ingest(bin: &Path, o: &ClusterOptions) -> anyhow::Result<IngestComparison> {
    let nats = NatsServer::start(&o.nats_server).await?;
    let nodes: Vec<Vigil> = (0..3)
        .map(|i| {
            Vigil::start_with(
                bin,
                Some(&node_config(&format!("n{i}"), &nats.url, o.partitions)),
            )
        })
        .collect::<anyhow::Result<_>>()?;
    balanced(&nodes.iter().collect::<Vec<_>>(), o.partitions).await?;
    let mut r = IngestComparison {
        single: Vec::new(),
        cluster: Vec::new(),
        single_cpu_us: Vec::new(),
        cluster_cpu_us: Vec::new(),
        nats_cpu_us: Vec::new(),
        cluster_drain_secs: Vec::new(),
        ratio: 0.0,
    };
    for run in 0..o.runs {
        eprintln!("run {}/{}: single node", run + 1, o.runs);
        let single = Vigil::start(bin)?;
        let before = single.cpu()?;
        let sent = grpc_load::run(&GrpcLoad {
            connections: 3,
            ..load(single.grpc_url(), 16_000, o.duration, &format!("s{run}"))
        })
        .await?;
        let cpu = single.cpu()? - before;
        let secs = sent.elapsed.as_secs_f64().max(1e-9);
        r.single.push(sent.accepted as f64 / secs);
        r.single_cpu_us
            .push(cpu.as_secs_f64() * 1e6 / sent.accepted.max(1) as f64);
        drop(single);

        eprintln!("run {}/{}: three nodes", run + 1, o.runs);
        let before: Vec<Duration> = nodes
            .iter()
            .map(|n| n.cpu())
            .collect::<anyhow::Result<_>>()?;
        let nats_before = nats.cpu()?;
        let loads: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                grpc_load::run_owned(load(
                    n.grpc_url(),
                    16_000 / 3,
                    o.duration,
                    &format!("c{run}n{i}"),
                ))
            })
            .collect();
        let results = futures_util::future::join_all(loads).await;
        let mut accepted = 0u64;
        let mut elapsed: f64 = 0.0;
        for sent in results {
            let sent = sent?;
            accepted += sent.accepted;
            elapsed = elapsed.max(sent.elapsed.as_secs_f64());
        }
        let drained = Instant::now();
        let deadline = drained + Duration::from_secs(300);
        loop {
            let mut lag = 0.0;
            for n in &nodes {
                lag += scrape_sum(n, "vigil_cluster_partition_lag_readings").await;
            }
            if lag == 0.0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        r.cluster_drain_secs.push(drained.elapsed().as_secs_f64());
        let mut cpu = nats.cpu()? - nats_before;
        let nats_cpu = cpu;
        for (n, b) in nodes.iter().zip(before) {
            cpu += n.cpu()? - b;
        }
        r.cluster.push(accepted as f64 / elapsed.max(1e-9));
        r.cluster_cpu_us
            .push(cpu.as_secs_f64() * 1e6 / accepted.max(1) as f64);
        r.nats_cpu_us
            .push(nats_cpu.as_secs_f64() * 1e6 / accepted.max(1) as f64);
    }
    r.ratio = median(r.cluster.clone()) / median(r.single.clone()).max(1e-9);
    Ok(r)
}

/// (seconds, count) of partition rebuilds the nodes `which` report.
async fn rebuilds(nodes: &[Vigil], which: [usize; 2]) -> (f64, f64) {
    let mut out = (0.0, 0.0);
    for i in which {
        out.0 += scrape_sum(&nodes[i], "vigil_cluster_rebuild_seconds_sum").await;
        out.1 += scrape_sum(&nodes[i], "vigil_cluster_rebuild_seconds_count").await;
    }
    out
}

/// The node holding each partition's lease.
async fn owners(url: &str, partitions: u32) -> anyhow::Result<Vec<Option<String>>> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await?);
    let kv = js.get_key_value(format!("{NAMESPACE}-leases")).await?;
    let mut out = Vec::new();
    for p in 0..partitions {
        out.push(
            kv.get(format!("p{p}"))
                .await?
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
        );
    }
    Ok(out)
}

async fn takeovers(bin: &Path, o: &ClusterOptions) -> anyhow::Result<Takeovers> {
    let nats = NatsServer::start(&o.nats_server).await?;
    let config = |i: usize| node_config(&format!("n{i}"), &nats.url, o.partitions);
    let mut nodes: Vec<Vigil> = (0..3)
        .map(|i| Vigil::start_with(bin, Some(&config(i))))
        .collect::<anyhow::Result<_>>()?;
    balanced(&nodes.iter().collect::<Vec<_>>(), o.partitions).await?;
    eprintln!("history: {} patients", o.patients);
    let mut ingest = IngestClient::connect(nodes[0].grpc_url()).await?;
    for chunk in (0..o.patients).collect::<Vec<_>>().chunks(1000) {
        let readings = chunk
            .iter()
            .map(|i| v1::Reading {
                patient_id: format!("h{i}"),
                metric: "heart_rate".into(),
                value: 72.0,
                ..Default::default()
            })
            .collect();
        ingest
            .publish_batch(v1::ReadingBatch { readings })
            .await
            .context("history")?;
    }
    tokio::time::sleep(Duration::from_secs(2 * SNAPSHOT_SECS)).await;
    let mut times = Vec::new();
    let (mut rebuilt_sum, mut rebuilt_count) = (0.0, 0.0);
    for k in 0..o.kills {
        let victim = k % 3;
        let owners = owners(&nats.url, o.partitions).await?;
        let name = format!("n{victim}");
        let patient = (0..)
            .map(|j| format!("probe{k}-{j}"))
            .find(|p| {
                let part = vigil::nats::partition::partition(p, o.partitions) as usize;
                owners[part].as_deref() == Some(name.as_str())
            })
            .context("a patient of the victim")?;
        let others = [(victim + 1) % 3, (victim + 2) % 3];
        let mut alerts = AlertsClient::connect(nodes[others[0]].grpc_url()).await?;
        let mut stream = alerts
            .subscribe(v1::SubscribeRequest::default())
            .await?
            .into_inner();
        let mut ingest = IngestClient::connect(nodes[others[0]].grpc_url()).await?;
        let before = rebuilds(&nodes, others).await;

        let killed = Instant::now();
        nodes[victim].kill9();
        ingest
            .publish_batch(v1::ReadingBatch {
                readings: vec![v1::Reading {
                    patient_id: patient.clone(),
                    metric: "heart_rate".into(),
                    value: 150.0,
                    ..Default::default()
                }],
            })
            .await?;
        let deadline = Duration::from_secs(60);
        let took = tokio::time::timeout(deadline, async {
            while let Some(event) = stream.next().await {
                let event = event?;
                if event
                    .alert
                    .as_ref()
                    .is_some_and(|a| a.patient_id == patient)
                {
                    return Ok::<_, anyhow::Error>(killed.elapsed());
                }
            }
            bail!("the subscription ended")
        })
        .await
        .context("no alert within 60 s of the kill")??;
        times.push(took.as_secs_f64() * 1000.0);
        eprintln!(
            "kill {}/{}: {:.0} ms",
            k + 1,
            o.kills,
            took.as_secs_f64() * 1000.0
        );
        let after = rebuilds(&nodes, others).await;
        rebuilt_sum += after.0 - before.0;
        rebuilt_count += after.1 - before.1;
        nodes[victim] = Vigil::start_with(bin, Some(&config(victim)))?;
        balanced(&nodes.iter().collect::<Vec<_>>(), o.partitions).await?;
    }
    let per_partition_ms = rebuilt_sum / rebuilt_count.max(1.0) * 1000.0;
    let patients_per_partition = o.patients as f64 / f64::from(o.partitions);
    Ok(Takeovers {
        patients: o.patients,
        partitions: o.partitions,
        median_ms: median(times.clone()),
        max_ms: times.iter().copied().fold(0.0, f64::max),
        kill_to_alert_ms: times,
        rebuild_per_partition_ms: per_partition_ms,
        rebuild_per_10k_patients_ms: per_partition_ms / patients_per_partition.max(1.0) * 10_000.0,
    })
}
