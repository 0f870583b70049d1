//! Reading → alert latency, as a care-team application sees it: a probe device publishes
//! readings that cross a threshold on an open-loop schedule (one new patient per probe, so
//! each raises its own alert), and a gRPC `Subscribe` stream waits for the alerts. Latency
//! is measured from the probe's *intended* send time, so a generator or broker that stalls
//! is charged for the stall (no coordinated omission).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use hdrhistogram::Histogram;
use std::io::Write;
use tokio_stream::StreamExt;
use vigil_proto::v1;
use vigil_proto::v1::alerts_client::AlertsClient;
use vigil_proto::v1::rules_client::RulesClient;

use crate::mqtt_load::{now_wall, wall_ms};
use crate::mqtt_wire;

/// The rule the probes trip; installed with `Rules.PutRule` (a running server keeps its
/// own rules otherwise).
pub const PROBE_RULE: &str = "bench_probe";
const PROBE_VALUE: &str = "280";

#[derive(Debug, Clone)]
pub struct ProbePlan {
    pub broker: SocketAddr,
    pub grpc: String,
    /// Probes per second.
    pub rate: f64,
    pub duration: Duration,
    pub tag: String,
}

/// What the probes saw.
pub struct ProbeResult {
    /// Microseconds from intended send to the alert's arrival.
    pub latency_us: Histogram<u64>,
    /// Milliseconds from intended send to the alert's `raised_at_ms` (the server's clock,
    /// the same machine's): the part of the latency spent before the rule fired (network,
    /// scheduling, ingest); the rest is the journal's fsync and delivery.
    pub to_raised_ms: Histogram<u64>,
    /// Microseconds from intended send to the probe's write returning: how late the load
    /// generator's own machine let the probe go (counted in `latency_us` too).
    pub send_late_us: Histogram<u64>,
    pub sent: u64,
    /// Probes whose alert never came within 5 s of the end.
    pub missing: u64,
    /// Every probe whose alert came, in order of arrival.
    pub samples: Vec<ProbeSample>,
}

/// One probe, for `--probe-log`: when each slow probe was sent shows whether slow probes
/// come alone or in stalls, and lines them up with the server's own logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSample {
    pub probe: usize,
    /// Intended send time, Unix milliseconds (the reading's `ts`).
    pub sent_ms: i64,
    pub latency_us: u64,
    /// The alert's `raised_at_ms` minus `sent_ms` (the server's clock, same machine).
    pub to_raised_ms: i64,
}

impl ProbeResult {
    /// The samples as CSV, a header line first.
    pub fn write_csv(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "probe,sent_unix_ms,latency_us,sent_to_raised_ms")?;
        for s in &self.samples {
            writeln!(
                out,
                "{},{},{},{}",
                s.probe, s.sent_ms, s.latency_us, s.to_raised_ms
            )?;
        }
        Ok(())
    }
}

/// Installs the probe rule: heart rate above 250/min, high severity, no delay.
pub async fn install_rule(grpc: &str) -> anyhow::Result<()> {
    let mut rules = RulesClient::connect(grpc.to_string())
        .await
        .with_context(|| format!("connecting to gRPC at {grpc}"))?;
    rules
        .put_rule(v1::Rule {
            id: PROBE_RULE.into(),
            kind: "threshold".into(),
            metric: "heart_rate".into(),
            above: Some(250.0),
            severity: v1::Severity::High as i32,
            message: "vigil-bench latency probe".into(),
            ..Default::default()
        })
        .await
        .context("installing the probe rule")?;
    Ok(())
}

impl ProbePlan {
    /// The prefix of the probes' patient ids (each probe is patient `{prefix}{n}`).
    pub fn patient_prefix(&self) -> String {
        format!("{}probe-", self.tag)
    }

    /// How many probes the plan sends.
    pub fn count(&self) -> usize {
        (self.rate * self.duration.as_secs_f64()).ceil() as usize
    }
}

/// Runs the probes on two threads of their own (a blocking sender that sleeps precisely to
/// each intended send time, and a receiver with its own runtime), so the load generator's
/// device tasks neither delay a probe nor the reading of its alert.
pub async fn run(plan: &ProbePlan) -> anyhow::Result<ProbeResult> {
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || run_blocking(&plan)).await?
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run_blocking(plan: &ProbePlan) -> anyhow::Result<ProbeResult> {
    let prefix = plan.patient_prefix();
    let total = plan.count();
    let intended: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    ));
    let raised = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000, 3).expect("valid bounds"),
    ));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(total)));

    let receiver_rt = runtime()?;
    let mut events = receiver_rt.block_on(async {
        install_rule(&plan.grpc).await?;
        let mut alerts = AlertsClient::connect(plan.grpc.clone()).await?;
        anyhow::Ok(
            alerts
                .subscribe(v1::SubscribeRequest {
                    min_severity: v1::Severity::High as i32,
                    ..Default::default()
                })
                .await
                .context("subscribing to alerts")?
                .into_inner(),
        )
    })?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let receiver = {
        let (intended, prefix, hist, raised, samples) = (
            intended.clone(),
            prefix.clone(),
            hist.clone(),
            raised.clone(),
            samples.clone(),
        );
        std::thread::Builder::new()
            .name("probe-receiver".into())
            .spawn(move || {
                receiver_rt.block_on(async move {
                    loop {
                        let event = tokio::select! {
                            _ = &mut stopped => return,
                            e = events.next() => match e {
                                Some(Ok(e)) => e,
                                _ => return,
                            },
                        };
                        let arrived = Instant::now();
                        let Some(alert) = event.alert else { continue };
                        if event.kind != v1::EventKind::Raised as i32 || alert.rule_id != PROBE_RULE
                        {
                            continue;
                        }
                        let Some(n) = alert
                            .patient_id
                            .strip_prefix(&prefix)
                            .and_then(|n| n.parse::<usize>().ok())
                        else {
                            continue;
                        };
                        let at = intended.lock().unwrap().get_mut(n).and_then(Option::take);
                        if let Some(at) = at {
                            let us = arrived.duration_since(at).as_micros() as u64;
                            hist.lock().unwrap().saturating_record(us);
                            let ms = alert.raised_at_ms.saturating_sub(alert.observed_at_ms);
                            raised.lock().unwrap().saturating_record(ms.max(0) as u64);
                            samples.lock().unwrap().push(ProbeSample {
                                probe: n,
                                sent_ms: alert.observed_at_ms,
                                latency_us: us,
                                to_raised_ms: ms,
                            });
                        }
                    }
                })
            })?
    };

    let mut stream = runtime()?
        .block_on(mqtt_wire::connect(
            plan.broker,
            &format!("{}prober", plan.tag),
        ))?
        .into_std()?;
    stream.set_nonblocking(false)?;
    let reference = now_wall();
    let start = Instant::now();
    let mut buf = BytesMut::new();
    let mut send_late_us =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for n in 0..total {
        let at = start + Duration::from_secs_f64(n as f64 / plan.rate);
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        intended.lock().unwrap()[n] = Some(at);
        let payload = format!(
            r#"{{"metric":"heart_rate","value":{PROBE_VALUE},"ts":{}}}"#,
            wall_ms(reference, at)
        );
        buf.clear();
        mqtt_wire::put_publish(
            &mut buf,
            format!("vitals/{prefix}{n}").as_bytes(),
            payload.as_bytes(),
            0,
        );
        stream.write_all(&buf).context("probe connection")?;
        send_late_us.saturating_record(at.elapsed().as_micros() as u64);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && intended.lock().unwrap().iter().any(Option::is_some) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stream.write_all(&[0xe0, 0x00]);
    let _ = stop.send(());
    let _ = receiver.join();
    let latency_us = hist.lock().unwrap().clone();
    let to_raised_ms = raised.lock().unwrap().clone();
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let missing = intended
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.is_some())
        .count() as u64;
    Ok(ProbeResult {
        latency_us,
        to_raised_ms,
        send_late_us,
        sent: total as u64,
        missing,
        samples,
    })
}
