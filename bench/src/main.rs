//! `vigil-bench`: the load generator. Each mode measures one thing against a real server;
//! `suite` runs them all, with Mosquitto (and NATS's MQTT gateway) as peers, and writes the
//! report.

mod cluster;
mod fhir_load;
mod fsync_floor;
mod grpc_load;
mod measure;
mod memory;
mod mqtt_load;
mod mqtt_wire;
mod notify;
mod peers;
mod probe;
mod prometheus;
mod readings;
mod relay;
mod report;
mod scale;
mod sessions;
mod suite;
mod tonic_ceiling;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::grpc_load::GrpcLoad;
use crate::mqtt_load::MqttLoad;
use crate::peers::{Broker, PeerKind, Vigil};

#[derive(Parser)]
#[command(
    name = "vigil-bench",
    about = "Load generator and benchmark suite for Vigil"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// MQTT devices publishing to Vigil; optional latency probes.
    Mqtt {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        mqtt: MqttArgs,
        /// Latency probes per second (0: none). Needs the gRPC address.
        #[arg(long, default_value_t = 0.0)]
        probes: f64,
        /// Write every probe (send time, latency, sent → raised) to this CSV file.
        #[arg(long, requires = "probes")]
        probe_log: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// gRPC gateways publishing batches to Vigil.
    Grpc {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        grpc: GrpcArgs,
        #[arg(long)]
        json: bool,
    },
    /// The same gRPC load against Vigil and against the bare tonic ceiling (a server
    /// with Vigil's Ingest service and batch decoding that only counts), alternated;
    /// prints each run, the medians and their ratio.
    GrpcCeiling {
        #[command(flatten)]
        grpc: GrpcArgs,
        /// Runs of each, alternated.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The `vigil` binary (default: next to this one).
        #[arg(long)]
        vigil: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Serves the bare tonic ceiling on --listen, printing the bound address (started by
    /// `grpc-ceiling` and the suite).
    TonicCeiling {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// MQTT devices and gRPC gateways at the same time.
    Mixed {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        mqtt: MqttArgs,
        #[command(flatten)]
        grpc: GrpcArgs,
        #[arg(long)]
        json: bool,
    },
    /// The same MQTT load through a peer broker to a subscriber that only counts.
    Relay {
        /// An MQTT broker to use instead of starting the peer.
        #[arg(long)]
        broker: Option<SocketAddr>,
        /// The peer to start: Debian's mosquitto, or nats-server with its MQTT gateway.
        #[arg(long, value_enum, default_value_t = PeerKind::Mosquitto)]
        peer: PeerKind,
        #[command(flatten)]
        mqtt: MqttArgs,
        #[arg(long)]
        json: bool,
    },
    /// Memory per retained sample: a fresh server filled with PATIENTS × 9 metrics × one
    /// hour of 1 Hz samples; RSS growth divided by the samples.
    Memory {
        #[arg(long, default_value_t = 500)]
        patients: usize,
        /// The `vigil` binary (default: next to this one).
        #[arg(long)]
        vigil: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Cluster mode: three nodes on a nats-server against one node (ingest, CPU per
    /// reading), and kill -9 takeovers (kill → first alert of the new owner).
    Cluster {
        /// The nats-server binary (2.10 or later; default: the tests' pinned one).
        #[arg(long, default_value = "server/tests/nats/pkg/bin/nats-server")]
        nats_server: PathBuf,
        #[arg(long, default_value_t = 256)]
        partitions: u32,
        /// Patients with history when the kills start.
        #[arg(long, default_value_t = 100_000)]
        patients: usize,
        #[arg(long, default_value_t = 10)]
        kills: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value = "8s", value_parser = parse_duration)]
        duration: Duration,
        /// The `vigil` binary (default: next to this one).
        #[arg(long)]
        vigil: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// FHIR R4 ingest: batch Bundles over HTTP/1.1 keep-alive against the same readings
    /// through gRPC PublishBatch, in the same run.
    Fhir {
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Observations per Bundle (readings per gRPC batch).
        #[arg(long, default_value_t = 1000)]
        bundle: usize,
        #[arg(long, default_value_t = 10_000)]
        patients: usize,
        #[arg(long, default_value = "8s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The `vigil` binary (default: next to this one).
        #[arg(long)]
        vigil: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Notifiers: reading → notification latency at a background load, throughput with a
    /// fast receiver, memory of a backlog behind a dead one, and ingest beside it.
    Notify {
        /// Background MQTT readings/s during the latency runs (default: a quarter of the
        /// 500 000 the suite offers).
        #[arg(long, default_value_t = 125_000.0)]
        background: f64,
        /// MQTT readings/s offered beside the dead receiver.
        #[arg(long, default_value_t = 500_000.0)]
        peak: f64,
        #[arg(long, default_value_t = 200.0)]
        probes: f64,
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        #[arg(long, default_value_t = 100_000)]
        backlog: usize,
        #[arg(long)]
        vigil: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Persistent MQTT sessions: reminders to N sessions, half of them away, then the
    /// away half reconnecting (delivery times, memory per queued message); Vigil and
    /// Mosquitto alternated.
    Sessions {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// Reminders published to each session.
        #[arg(long, default_value_t = 10)]
        per_session: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        vigil: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Everything, median of several runs, Vigil and its peers back to back; writes
    /// report.md, results.json and SVG plots.
    Suite(suite::SuiteOptions),
    /// A remote-monitoring programme of PATIENTS on one node: the home steady state (four
    /// vitals a minute with 1 h kept, blood pressure and weight twice a day with 7 days)
    /// built over gRPC; memory per patient and per sample, ingest per second with the
    /// window snapshots marked, the shutdown's final snapshot and the restart. Writes
    /// scale.json and scale.svg to --out.
    Scale {
        #[arg(long, default_value_t = 100_000)]
        patients: usize,
        /// Wall time of the live phase.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        live: Duration,
        #[arg(long)]
        vigil: Option<PathBuf>,
        /// Where scale.json and scale.svg go.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Which Vigil to measure: addresses of a running one, or none to start `--vigil`.
#[derive(Args, Clone)]
struct Target {
    #[arg(long)]
    mqtt_addr: Option<SocketAddr>,
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// The `vigil` binary to start when no addresses are given (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct MqttArgs {
    #[arg(long, default_value_t = 200)]
    devices: usize,
    #[arg(long, default_value_t = 10_000)]
    patients: usize,
    /// Offered readings per second in all; 0 = closed loop (as fast as TCP takes).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Readings per publish.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Unacknowledged QoS 1 publishes per device.
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
}

#[derive(Args, Clone)]
struct GrpcArgs {
    #[arg(long, default_value_t = 2)]
    connections: usize,
    #[arg(long = "grpc-batch", default_value_t = 1000)]
    grpc_batch: usize,
    /// Use unary PublishBatch instead of the client-streaming Publish.
    #[arg(long)]
    unary: bool,
    #[arg(long = "grpc-patients", default_value_t = 10_000)]
    grpc_patients: usize,
    /// Consecutive readings of one patient in a batch (9: all its vitals, as a gateway
    /// forwards a device upload; 1: every reading a different patient).
    #[arg(long, default_value_t = 9)]
    per_patient: usize,
    /// Offered readings per second over gRPC; 0 = closed loop.
    #[arg(long = "grpc-rate", default_value_t = 0.0)]
    grpc_rate: f64,
    #[arg(long = "grpc-duration", default_value = "5s", value_parser = parse_duration)]
    grpc_duration: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 5s, 500ms, 2m)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("`{s}` must be positive"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// A unique prefix for ids, so runs against one server never share patients.
pub fn tag(name: &str) -> String {
    format!("{name}{:x}-", fastrand::u32(..))
}

impl MqttArgs {
    fn load(&self, broker: SocketAddr, tag: String) -> MqttLoad {
        MqttLoad {
            broker,
            devices: self.devices,
            patients: self.patients,
            rate: self.rate,
            batch: self.batch,
            qos: self.qos,
            inflight: self.inflight,
            duration: self.duration,
            tag,
        }
    }
}

impl GrpcArgs {
    fn load(&self, url: String, tag: String) -> GrpcLoad {
        GrpcLoad {
            url,
            connections: self.connections,
            batch: self.grpc_batch,
            streaming: !self.unary,
            patients: self.grpc_patients,
            per_patient: self.per_patient,
            rate: self.grpc_rate,
            duration: self.grpc_duration,
            tag,
        }
    }
}

/// A server to measure: started here (and stopped at the end) or given by address.
struct Server {
    _owned: Option<Vigil>,
    mqtt: SocketAddr,
    grpc: String,
    metrics: SocketAddr,
}

impl Target {
    fn server(&self) -> anyhow::Result<Server> {
        match (self.mqtt_addr, self.grpc_addr, self.metrics_addr) {
            (Some(mqtt), Some(grpc), Some(metrics)) => Ok(Server {
                _owned: None,
                mqtt,
                grpc: format!("http://{grpc}"),
                metrics,
            }),
            (None, None, None) => {
                let bin = self.vigil.clone().unwrap_or_else(peers::default_vigil_bin);
                let v = Vigil::start(&bin)?;
                Ok(Server {
                    mqtt: v.mqtt,
                    grpc: v.grpc_url(),
                    metrics: v.metrics,
                    _owned: Some(v),
                })
            }
            _ => anyhow::bail!(
                "give all of --mqtt-addr, --grpc-addr and --metrics-addr, or none to start a server"
            ),
        }
    }
}

fn print<T: serde::Serialize + std::fmt::Debug>(json: bool, what: &str, value: &T) {
    if json {
        println!(
            "{}",
            serde_json::to_string(value).expect("results serialize")
        );
    } else {
        println!("{what}: {value:#?}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Mqtt {
            target,
            mqtt,
            probes,
            probe_log,
            json,
        } => {
            let server = target.server()?;
            let load = mqtt.load(server.mqtt, tag("m"));
            let probe = (probes > 0.0).then(|| probe::ProbePlan {
                broker: server.mqtt,
                grpc: server.grpc.clone(),
                rate: probes,
                duration: mqtt.duration,
                tag: tag("l"),
            });
            let (t, p) = tokio::join!(
                measure::vigil_run(
                    server.metrics,
                    Some(&load),
                    None,
                    probe.as_ref().map_or(0, |p| p.count() as u64)
                ),
                async {
                    match &probe {
                        Some(plan) => probe::run(plan).await.map(Some),
                        None => Ok(None),
                    }
                }
            );
            print(json, "throughput", &t?);
            if let Some(p) = p? {
                print(json, "latency", &report::LatencySummary::of(&p));
                if let Some(path) = probe_log {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .with_context(|| format!("creating {}", path.display()))?,
                    );
                    p.write_csv(&mut file)
                        .and_then(|()| std::io::Write::flush(&mut file))
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
        }
        Command::Grpc { target, grpc, json } => {
            let server = target.server()?;
            let load = grpc.load(server.grpc.clone(), tag("g"));
            let t = measure::vigil_run(server.metrics, None, Some(&load), 0).await?;
            print(json, "throughput", &t);
        }
        Command::GrpcCeiling {
            grpc,
            runs,
            vigil,
            json,
        } => {
            let r = suite::grpc_against_ceiling(
                &vigil.unwrap_or_else(peers::default_vigil_bin),
                |url| grpc.load(url, tag("g")),
                runs,
            )
            .await?;
            print(json, "grpc_ceiling", &r);
        }
        Command::TonicCeiling { listen } => tonic_ceiling::serve(listen).await?,
        Command::Mixed {
            target,
            mqtt,
            grpc,
            json,
        } => {
            let server = target.server()?;
            let m = mqtt.load(server.mqtt, tag("m"));
            let g = grpc.load(server.grpc.clone(), tag("g"));
            let t = measure::vigil_run(server.metrics, Some(&m), Some(&g), 0).await?;
            print(json, "throughput", &t);
        }
        Command::Relay {
            broker,
            peer,
            mqtt,
            json,
        } => {
            let owned = match broker {
                Some(_) => None,
                None => Some(Broker::start(peer)?),
            };
            let addr = broker
                .or(owned.as_ref().map(|m| m.addr))
                .context("no broker")?;
            let t = measure::relay_run(addr, &mqtt.load(addr, tag("r"))).await?;
            print(json, "throughput", &t);
        }
        Command::Memory {
            patients,
            vigil,
            json,
        } => {
            let bin = vigil.unwrap_or_else(peers::default_vigil_bin);
            print(json, "memory", &memory::measure(&bin, patients).await?);
        }
        Command::Scale {
            patients,
            live,
            vigil,
            out,
            json,
        } => {
            let options = scale::ScaleOptions {
                bin: vigil.unwrap_or_else(peers::default_vigil_bin),
                patients,
                live,
            };
            let r = scale::run(&options).await?;
            if let Some(dir) = out {
                scale::save(&r, &dir)?;
                report::scale_svg(&r, &dir.join("scale.svg"))?;
            }
            print(json, "scale", &r);
        }
        Command::Sessions {
            sessions,
            per_session,
            runs,
            vigil,
            json,
        } => {
            let bin = vigil.unwrap_or_else(peers::default_vigil_bin);
            // Alternated, so that both see the machine in the same state.
            for _ in 0..runs {
                let v = sessions::vigil(&bin, sessions, per_session).await?;
                print(json, "sessions", &v);
                let m = sessions::mosquitto(sessions, per_session).await?;
                print(json, "sessions", &m);
            }
        }
        Command::Notify {
            background,
            peak,
            probes,
            duration,
            runs,
            events,
            backlog,
            vigil,
            json,
        } => {
            let bin = vigil.unwrap_or_else(peers::default_vigil_bin);
            let options = notify::NotifyOptions {
                background,
                peak,
                probes,
                duration,
                runs,
                events,
                backlog,
            };
            print(json, "notifiers", &notify::run(&bin, &options).await?);
        }
        Command::Fhir {
            connections,
            bundle,
            patients,
            duration,
            runs,
            vigil,
            json,
        } => {
            let bin = vigil.unwrap_or_else(peers::default_vigil_bin);
            let options = fhir_load::FhirOptions {
                connections,
                bundle,
                patients,
                duration,
                runs,
            };
            print(json, "fhir", &fhir_load::run(&bin, &options).await?);
        }
        Command::Cluster {
            nats_server,
            partitions,
            patients,
            kills,
            runs,
            duration,
            vigil,
            json,
        } => {
            let bin = vigil.unwrap_or_else(peers::default_vigil_bin);
            let options = cluster::ClusterOptions {
                nats_server,
                partitions,
                patients,
                kills,
                runs,
                duration,
            };
            print(json, "cluster", &cluster::run(&bin, &options).await?);
        }
        Command::Suite(options) => suite::run(options).await?,
    }
    Ok(())
}
