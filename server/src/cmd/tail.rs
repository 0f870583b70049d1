//! `vigil alerts tail`: follows the alert stream, printing one line per event, and
//! resumes from the last seq after a disconnect or a slow-subscriber cut-off.

use std::time::Duration;

use anyhow::{bail, Context};
use tonic::Code;
use vigil_proto::v1::{self, alerts_client::AlertsClient};

use crate::cli::TailArgs;
use crate::cmd::feed::{json_line, Feed};
use crate::cmd::grpc_client;

pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let endpoint = grpc_client::endpoint(&args.target);
    let min_severity = match args.min_severity.as_deref() {
        None => v1::Severity::Unspecified,
        Some("low") => v1::Severity::Low,
        Some("medium") => v1::Severity::Medium,
        Some("high") => v1::Severity::High,
        Some(other) => bail!("--min-severity '{other}' is not one of low, medium, high"),
    };
    let feed = Feed::for_stdout();
    let mut after_seq = args.after_seq;
    let mut printed = 0u64;
    let mut backoff = Duration::from_millis(250);
    loop {
        let mut client = match grpc_client::connect(&args.target).await {
            Ok(c) => AlertsClient::new(c),
            Err(e) => {
                eprintln!(
                    "vigil alerts tail: cannot connect to {endpoint}: {e}; retrying in {backoff:?}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        let request = v1::SubscribeRequest {
            care_teams: args.care_teams.clone(),
            patient_ids: args.patients.clone(),
            min_severity: min_severity as i32,
            after_seq,
        };
        let mut stream = match client.subscribe(request).await {
            Ok(r) => {
                // A live-only tail remembers where live started, to resume without a gap.
                if after_seq.is_none() {
                    after_seq = r
                        .metadata()
                        .get("vigil-last-seq")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                }
                r.into_inner()
            }
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(status) => return Err(status).context("subscribe failed"),
        };
        backoff = Duration::from_millis(250);
        loop {
            match stream.message().await {
                Ok(Some(event)) => {
                    after_seq = Some(event.seq);
                    if args.json {
                        println!("{}", json_line(&event));
                    } else {
                        println!("{}", feed.line(&event));
                    }
                    printed += 1;
                    if args.count.is_some_and(|n| printed >= n) {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    eprintln!(
                        "vigil alerts tail: stream ended: {}; resuming after seq {}",
                        status.message(),
                        after_seq.unwrap_or(0)
                    );
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}
