//! `cargo run -p vigil --example attack`: the hardening tests' attacks, against a
//! deployment you are responsible for (see README.md in this folder).

#[path = "mod.rs"]
mod attacks;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use vigil_proto::v1;
use vigil_proto::v1::alerts_client::AlertsClient;

#[derive(Parser)]
#[command(about = "Attacks on a Vigil server you are responsible for")]
struct Cli {
    #[command(subcommand)]
    attack: Attack,
}

/// A device's credential on a server's MQTT listener.
#[derive(Args)]
struct DeviceLogin {
    #[arg(long)]
    mqtt: SocketAddr,
    #[arg(long)]
    device: String,
    #[arg(long, env = "VIGIL_DEVICE_SECRET")]
    secret: String,
}

#[derive(Subcommand)]
enum Attack {
    /// One device credential opens many sessions with distinct client ids.
    Sessions {
        #[command(flatten)]
        login: DeviceLogin,
        #[arg(long, default_value_t = 50)]
        count: usize,
    },
    /// A device's credential claims a client id another session holds.
    Takeover {
        #[command(flatten)]
        login: DeviceLogin,
        #[arg(long)]
        client_id: String,
    },
    /// Wrong-password CONNECTs at once, from consecutive source addresses.
    Guess {
        #[arg(long)]
        mqtt: SocketAddr,
        #[arg(long)]
        device: String,
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// First source address (consecutive ones follow); default: the system's choice.
        #[arg(long)]
        sources: Option<std::net::Ipv4Addr>,
        /// The server's pid on this machine, to sample its RSS during the attack.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// The median time to refuse a wrong password for a known and an unknown device id.
    Timing {
        #[arg(long)]
        mqtt: SocketAddr,
        #[arg(long)]
        known: String,
        #[arg(long)]
        unknown: String,
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Source address of the probes (vary it to stay clear of the throttle).
        #[arg(long, default_value = "127.0.0.1")]
        source: IpAddr,
    },
    /// CONNECTs with very long usernames.
    LongNames {
        #[arg(long)]
        mqtt: SocketAddr,
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 60_000)]
        bytes: usize,
        #[arg(long)]
        sources: Option<std::net::Ipv4Addr>,
    },
    /// Opens and closes many alert subscriptions.
    Subscribers {
        #[arg(long)]
        grpc: SocketAddr,
        #[arg(long, env = "VIGIL_TOKEN")]
        token: Option<String>,
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().attack {
        Attack::Sessions { login, count } => {
            let (codes, open) =
                attacks::session_flood(login.mqtt, &login.device, &login.secret, count).await;
            println!("CONNACK codes: {:?}", tally(&codes));
            println!("{} sessions open; closing them", open.len());
        }
        Attack::Takeover { login, client_id } => {
            let hello = attacks::Hello::device(&client_id, &login.device, &login.secret);
            let (_, code) = attacks::connect(login.mqtt, None, &hello).await?;
            println!("CONNACK {code} (2: refused, the holder stays; 0: taken over)");
        }
        Attack::Guess {
            mqtt,
            device,
            count,
            sources,
            pid,
        } => {
            let hosts = consecutive(sources, count);
            let storm = attacks::wrong_password_storm(mqtt, &device, &hosts);
            let started = Instant::now();
            let codes = match pid {
                Some(pid) => {
                    let before = attacks::rss_kib(pid).unwrap_or(0);
                    let (codes, peak) = attacks::peak_rss_during(pid, storm).await;
                    println!("RSS {} MiB before, peak {} MiB", before / 1024, peak / 1024);
                    codes
                }
                None => storm.await,
            };
            println!(
                "CONNACK codes: {:?} in {:?}",
                tally(&codes),
                started.elapsed()
            );
        }
        Attack::Timing {
            mqtt,
            known,
            unknown,
            rounds,
            source,
        } => {
            for id in [known, unknown] {
                let median = attacks::median_refusal_time(mqtt, source, &id, rounds).await;
                println!("{id}: median refusal {median:?} over {rounds} rounds");
            }
        }
        Attack::LongNames {
            mqtt,
            count,
            bytes,
            sources,
        } => {
            let hosts = consecutive(sources, count);
            let codes = attacks::long_username_connects(mqtt, bytes, &hosts).await;
            println!("CONNACK codes: {:?}", tally(&codes));
        }
        Attack::Subscribers { grpc, token, count } => {
            let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))?
                .connect()
                .await?;
            let header: Option<tonic::metadata::MetadataValue<_>> =
                token.map(|t| format!("Bearer {t}").parse()).transpose()?;
            let mut client =
                AlertsClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
                    if let Some(h) = &header {
                        req.metadata_mut().insert("authorization", h.clone());
                    }
                    Ok(req)
                });
            let started = Instant::now();
            let mut streams = Vec::with_capacity(count);
            for _ in 0..count {
                let stream = client
                    .subscribe(v1::SubscribeRequest {
                        patient_ids: vec!["nobody".into()],
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                streams.push(stream);
            }
            println!(
                "{count} subscriptions opened in {:?}; closing",
                started.elapsed()
            );
            drop(streams);
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!("closed; check vigil_alert_subscribers on the metrics endpoint");
        }
    }
    Ok(())
}

/// `n` consecutive IPv4 addresses from `first`, or `n` times the system's choice.
fn consecutive(first: Option<std::net::Ipv4Addr>, n: usize) -> Vec<IpAddr> {
    match first {
        Some(first) => (0..n as u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(u32::from(first) + i)))
            .collect(),
        None => vec![IpAddr::from([0, 0, 0, 0]); n],
    }
}

/// How many times each code was seen (`255`: no CONNACK).
fn tally(codes: &[u8]) -> BTreeMap<u8, usize> {
    let mut tally = BTreeMap::new();
    for code in codes {
        *tally.entry(*code).or_default() += 1;
    }
    tally
}
