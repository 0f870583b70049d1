//! The suite's results: summaries, the Markdown report and the SVG plots, all generated
//! from the measured runs (nothing here is typed in by hand).

mod markdown;
mod plots;

pub use markdown::markdown;
pub use plots::{latency_svg, scale_svg, throughput_svg};

use std::fmt::Write as _;
use std::path::Path;

use anyhow::anyhow;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::fsync_floor::FsyncSummary;
use crate::measure::Throughput;
use crate::memory::MemoryResult;
use crate::probe::ProbeResult;

/// Client-observed latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LatencySummary {
    pub probes: u64,
    pub received: u64,
    pub missing: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// From intended send to the server raising the alert (its `raised_at_ms`), p50 and
    /// p99 in milliseconds.
    pub raised_p50_ms: u64,
    pub raised_p99_ms: u64,
    /// From intended send to the probe's write returning, p99 in microseconds.
    pub send_late_p99_us: u64,
}

impl LatencySummary {
    pub fn of(p: &ProbeResult) -> LatencySummary {
        let h = &p.latency_us;
        LatencySummary {
            probes: p.sent,
            received: h.len(),
            missing: p.missing,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            raised_p50_ms: p.to_raised_ms.value_at_quantile(0.50),
            raised_p99_ms: p.to_raised_ms.value_at_quantile(0.99),
            send_late_p99_us: p.send_late_us.value_at_quantile(0.99),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    pub background: Throughput,
    pub client: LatencySummary,
    /// p99 of the server's own `vigil_alert_latency_seconds` over the run (bucket upper
    /// bound), in microseconds.
    pub server_p99_us: Option<f64>,
    /// Share (0–1) of the run's `vigil_alert_latency_seconds` observations within 1 ms, the
    /// target's bound (p99 ≤ 1 ms means at least 0.99).
    pub server_within_1ms: Option<f64>,
    /// p99 of the server's `vigil_alert_raise_latency_seconds` (receipt → raised, before
    /// the journal) over the run (bucket upper bound), in microseconds.
    pub raise_p99_us: Option<f64>,
    /// p99 of the server's `vigil_journal_write_seconds` (write and fsync of a batch of
    /// alert events) over the run (bucket upper bound), in microseconds.
    pub journal_p99_us: Option<f64>,
    /// A 200-byte append and fdatasync every 4 ms on the journal's disk during the run.
    pub fsync: Option<FsyncSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub offered: f64,
    pub vigil: Throughput,
    pub mosquitto: Throughput,
    /// NATS's MQTT gateway, when `nats-server` is installed.
    pub nats: Option<Throughput>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    pub commit: String,
    pub date_utc: String,
    pub cores: usize,
    pub cpu: String,
    pub mosquitto: String,
    /// `nats-server`'s version, when installed (the optional second peer).
    pub nats: Option<String>,
    pub vigil_bin: String,
}

/// Readings per publish of the batched QoS 1 loads (a gateway or a device uploading a
/// backlog).
pub const QOS1_BATCH: usize = 20;

#[derive(Debug, Clone, Serialize, Default)]
pub struct SuiteResults {
    pub machine: Machine,
    /// Every parameter of the run, as given on the command line.
    pub parameters: Vec<(String, String)>,
    pub mqtt_vigil: Vec<Throughput>,
    pub mqtt_mosquitto: Vec<Throughput>,
    pub mqtt_qos1_vigil: Vec<Throughput>,
    pub mqtt_qos1_mosquitto: Vec<Throughput>,
    /// The same loads through NATS's MQTT gateway (empty without `nats-server`).
    pub mqtt_nats: Vec<Throughput>,
    pub mqtt_qos1_nats: Vec<Throughput>,
    pub mqtt_batched_vigil: Vec<Throughput>,
    /// QoS 1, [`QOS1_BATCH`] readings per publish, closed loop: Vigil and Mosquitto's relay,
    /// alternated.
    pub mqtt_qos1_batched_vigil: Vec<Throughput>,
    pub mqtt_qos1_batched_mosquitto: Vec<Throughput>,
    pub sweep: Vec<SweepPoint>,
    pub latency: Vec<LatencyRun>,
    /// One run at a quarter of the peak, for comparison with the half-peak runs.
    pub latency_quarter: Option<LatencyRun>,
    /// The journal disk's fsync floor before the latency runs, the server idle.
    pub fsync_idle: Option<FsyncSummary>,
    /// (percentile, microseconds) of every latency run's probes together.
    pub latency_curve: Vec<(f64, u64)>,
    pub grpc_stream: Vec<Throughput>,
    /// The same load as `grpc_stream` against the bare tonic ceiling, alternated with it.
    pub grpc_ceiling: Vec<Throughput>,
    pub grpc_unary: Vec<Throughput>,
    pub mixed: Vec<Throughput>,
    pub memory: Option<MemoryResult>,
    /// The scale run (`vigil-bench scale`), unless left out.
    pub scale: Option<crate::scale::ScaleResult>,
    pub wall_secs: f64,
}

pub use crate::measure::median;

pub fn median_rate(runs: &[Throughput]) -> f64 {
    median(runs.iter().map(|t| t.rate).collect())
}

/// The percentile curve of a histogram, at the usual HdrHistogram steps.
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    [
        0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
    ]
    .iter()
    .map(|&p| (p, h.value_at_percentile(p)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_runs() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.0);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn report_and_plots_from_results() {
        let t = |rate: f64| Throughput {
            rate,
            offered: rate,
            ..Default::default()
        };
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 100..2000 {
            h.record(v).unwrap();
        }
        let r = SuiteResults {
            mqtt_vigil: vec![t(450_000.0), t(300_000.0), t(500_000.0)],
            mqtt_mosquitto: vec![t(200_000.0)],
            mqtt_nats: vec![t(400_000.0)],
            sweep: vec![SweepPoint {
                offered: 100_000.0,
                vigil: t(100_000.0),
                mosquitto: t(99_000.0),
                nats: Some(t(98_000.0)),
            }],
            latency_curve: curve(&h),
            ..Default::default()
        };
        let md = markdown(&r);
        assert!(md.contains("| 450 k/s | met |"), "{md}");
        assert!(md.contains("2.25 ×"), "{md}");
        assert!(
            md.contains("to the same counting subscriber: 400 k/s"),
            "{md}"
        );
        assert!(md.contains("Vigil processes 1.12 × that"), "{md}");
        assert!(
            md.contains("| 100 k/s | 100 k/s | 99 k/s | 98 k/s |"),
            "{md}"
        );
        let dir = tempfile::tempdir().unwrap();
        throughput_svg(&r, &dir.path().join("t.svg")).unwrap();
        latency_svg(&r, &dir.path().join("l.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("t.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Vigil"));
        assert!(svg.contains("NATS relay"), "the second peer's line");
    }

    #[test]
    fn without_the_second_peer_the_report_says_none() {
        let r = SuiteResults::default();
        let md = markdown(&r);
        assert!(
            md.contains("second peer none (nats-server not installed)"),
            "{md}"
        );
        assert!(!md.contains("Second peer (no target)"), "{md}");
    }
}
