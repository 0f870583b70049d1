//! The suite's results: summaries, the Markdown report and the SVG plots, all generated
//! from the measured runs (nothing here is typed in by hand).

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
    pub sweep: Vec<SweepPoint>,
    pub latency: Vec<LatencyRun>,
    /// One run at a quarter of the peak, for comparison with the half-peak runs.
    pub latency_quarter: Option<LatencyRun>,
    /// The journal disk's fsync floor before the latency runs, the server idle.
    pub fsync_idle: Option<FsyncSummary>,
    /// (percentile, microseconds) of every latency run's probes together.
    pub latency_curve: Vec<(f64, u64)>,
    pub grpc_stream: Vec<Throughput>,
    pub grpc_unary: Vec<Throughput>,
    pub mixed: Vec<Throughput>,
    pub memory: Option<MemoryResult>,
    pub wall_secs: f64,
}

/// The median of `xs` (the lower middle for an even count); NaN when empty.
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[(xs.len() - 1) / 2]
}

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

fn k(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{:.0} k", x / 1000.0)
    }
}

fn ms(us: f64) -> String {
    if us.is_nan() {
        "–".into()
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// A share (0–1) as a percentage with one decimal.
fn percent(share: f64) -> String {
    if share.is_nan() {
        "–".into()
    } else {
        format!("{:.1} %", share * 100.0)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

fn runs_line(runs: &[Throughput]) -> String {
    runs.iter()
        .map(|t| k(t.rate))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn markdown(r: &SuiteResults) -> String {
    let mut o = String::new();
    let m = &r.machine;
    let _ = writeln!(o, "# Vigil benchmark report\n");
    let _ = writeln!(
        o,
        "Generated by `vigil-bench suite` on {}, commit `{}`, {} cores ({}), peer {}, second \
         peer {}. Load generator, Vigil and the peers share the same cores. Suite wall time \
         {:.0} s.\n",
        m.date_utc,
        m.commit,
        m.cores,
        m.cpu,
        m.mosquitto,
        m.nats
            .as_deref()
            .unwrap_or("none (nats-server not installed)"),
        r.wall_secs
    );
    let _ = writeln!(o, "## Parameters\n");
    for (key, value) in &r.parameters {
        let _ = writeln!(o, "- `{key}` = {value}");
    }

    let vigil = median_rate(&r.mqtt_vigil);
    let mosq = median_rate(&r.mqtt_mosquitto);
    let grpc = median_rate(&r.grpc_stream);
    let client_p99 = median(r.latency.iter().map(|l| l.client.p99_us as f64).collect());
    let server_p99 = median(r.latency.iter().filter_map(|l| l.server_p99_us).collect());
    let server_within = median(
        r.latency
            .iter()
            .filter_map(|l| l.server_within_1ms)
            .collect(),
    );
    let fsync_p99 = median(
        r.latency
            .iter()
            .filter_map(|l| l.fsync.as_ref().map(|f| f.p99_us as f64))
            .collect(),
    );
    let _ = writeln!(o, "\n## Targets (medians of {} runs)\n", r.mqtt_vigil.len());
    let _ = writeln!(o, "| target | measured | verdict |\n| --- | --- | --- |");
    let _ = writeln!(
        o,
        "| MQTT, 1 reading/publish, QoS 0: ≥ 400 k readings/s processed | {}/s | {} |",
        k(vigil),
        verdict(vigil >= 400_000.0)
    );
    let _ = writeln!(
        o,
        "| … and ≥ 1.0 × Mosquitto's pure relay ({}/s) | {:.2} × | {} |",
        k(mosq),
        vigil / mosq,
        verdict(vigil >= mosq)
    );
    let _ = writeln!(
        o,
        "| gRPC streaming, batches of 1 000: ≥ 2 000 k readings/s | {}/s | {} |",
        k(grpc),
        verdict(grpc >= 2_000_000.0)
    );
    let _ = writeln!(
        o,
        "| reading → alert p99 at 50 % of peak, client-observed: ≤ 5 ms | {} | {} |",
        ms(client_p99),
        verdict(client_p99 <= 5000.0)
    );
    let _ = writeln!(
        o,
        "| server `vigil_alert_latency_seconds` p99: ≤ 1 ms | ≤ {}; {} of alerts within 1 ms (the disk's own fsync p99 meanwhile: {}) | {} |",
        ms(server_p99),
        percent(server_within),
        ms(fsync_p99),
        verdict(server_p99 <= 1000.0)
    );
    if let Some(mem) = &r.memory {
        let _ = writeln!(
            o,
            "| memory: ≤ 24 bytes per retained sample | {:.1} B | {} |",
            mem.bytes_per_sample,
            verdict(mem.bytes_per_sample <= 24.0)
        );
    }
    if !r.mqtt_nats.is_empty() {
        let nats = median_rate(&r.mqtt_nats);
        let _ = writeln!(
            o,
            "\nSecond peer (no target): the same MQTT QoS 0 load through NATS's MQTT gateway \
             (multi-threaded, unlike Mosquitto) to the same counting subscriber: {}/s; Vigil \
             processes {:.2} × that.",
            k(nats),
            vigil / nats
        );
    }

    let _ = writeln!(o, "\n## Throughput (readings/s processed)\n");
    let _ = writeln!(o, "| load | runs | median |\n| --- | --- | --- |");
    for (name, runs) in [
        (
            "MQTT QoS 0, 1 reading/publish → Vigil (open loop)",
            &r.mqtt_vigil,
        ),
        (
            "MQTT QoS 0, 1 reading/publish → Mosquitto → counting subscriber",
            &r.mqtt_mosquitto,
        ),
        (
            "MQTT QoS 0, 1 reading/publish → NATS MQTT gateway → counting subscriber",
            &r.mqtt_nats,
        ),
        (
            "MQTT QoS 1 → Vigil (closed loop, 64 in flight per device)",
            &r.mqtt_qos1_vigil,
        ),
        (
            "MQTT QoS 1 → Mosquitto → counting subscriber",
            &r.mqtt_qos1_mosquitto,
        ),
        (
            "MQTT QoS 1 → NATS MQTT gateway → counting subscriber",
            &r.mqtt_qos1_nats,
        ),
        (
            "MQTT QoS 0, 7 readings/publish → Vigil",
            &r.mqtt_batched_vigil,
        ),
        (
            "gRPC `Publish` stream, batches of 1 000 (closed loop)",
            &r.grpc_stream,
        ),
        ("gRPC unary `PublishBatch`, batches of 1 000", &r.grpc_unary),
        ("mixed: MQTT at half peak + gRPC stream", &r.mixed),
    ] {
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "| {name} | {} | {}/s |",
            runs_line(runs),
            k(median_rate(runs))
        );
    }
    let _ = writeln!(
        o,
        "\nProcessed = counted by the server's `vigil_readings_ingested_total` (Vigil) or by \
         the subscriber (the peers), divided by the time from the first send until that count \
         stopped growing. Sent, delivered and lost per run:\n"
    );
    let _ = writeln!(
        o,
        "| load | offered/s | sent | delivered | rejected | lost | send s | processed s | server CPU s |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let all: [(&str, &Vec<Throughput>); 10] = [
        ("MQTT→Vigil", &r.mqtt_vigil),
        ("MQTT→Mosquitto", &r.mqtt_mosquitto),
        ("MQTT→NATS", &r.mqtt_nats),
        ("QoS 1→Vigil", &r.mqtt_qos1_vigil),
        ("QoS 1→Mosquitto", &r.mqtt_qos1_mosquitto),
        ("QoS 1→NATS", &r.mqtt_qos1_nats),
        ("MQTT×7→Vigil", &r.mqtt_batched_vigil),
        ("gRPC stream", &r.grpc_stream),
        ("gRPC unary", &r.grpc_unary),
        ("mixed", &r.mixed),
    ];
    for (name, runs) in all {
        for t in runs {
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
                if t.offered > 0.0 {
                    k(t.offered)
                } else {
                    "max".into()
                },
                t.sent,
                t.delivered,
                t.rejected,
                t.lost,
                t.send_secs,
                t.processed_secs,
                t.server_cpu_secs.map_or("–".into(), |c| format!("{c:.2}"))
            );
        }
    }

    if !r.sweep.is_empty() {
        let _ = writeln!(
            o,
            "\n## Offered vs processed (MQTT QoS 0, one run per point)\n"
        );
        let _ = writeln!(o, "![throughput](throughput.svg)\n");
        let _ = writeln!(
            o,
            "| offered | Vigil | Mosquitto relay | NATS relay |\n| --- | --- | --- | --- |"
        );
        for p in &r.sweep {
            let _ = writeln!(
                o,
                "| {}/s | {}/s | {}/s | {} |",
                k(p.offered),
                k(p.vigil.rate),
                k(p.mosquitto.rate),
                p.nats
                    .as_ref()
                    .map_or("–".into(), |n| format!("{}/s", k(n.rate)))
            );
        }
    }

    if !r.latency.is_empty() {
        let _ = writeln!(o, "\n## Reading → alert latency\n");
        let _ = writeln!(
            o,
            "Probes: a fresh patient's heart rate of 280/min published over MQTT QoS 0 on an \
             open-loop schedule; latency from the intended send time to the RAISED event on a \
             gRPC `Subscribe` stream (coordinated omission corrected). Background: MQTT QoS 0 \
             at half the median peak above (runs 1–3; the targets) and at a quarter of it (¼). \
             *Probe write late* is how long after its intended send time the probe's \
             `write` returned: the generator's own share of the latency (its thread waiting \
             for a core). *Sent → raised* is the part before the rule fired: from the intended send time \
             to the alert's `raised_at_ms` (the server's clock, same machine, millisecond \
             resolution); the rest is the journal's fsync and delivery. *Journal p99* is the \
             server's `vigil_journal_write_seconds` (one batch of alert events written and \
             fsynced); *server raise p99* its `vigil_alert_raise_latency_seconds` (receipt of \
             the reading → alert raised, before the journal); *disk fsync* is the bench's own 200-byte append and fdatasync every \
             4 ms on the same disk, during the run.\n"
        );
        let _ = writeln!(o, "![latency](latency.svg)\n");
        let _ = writeln!(
            o,
            "| run | background | probes (missing) | p50 | p90 | p99 | p99.9 | max | probe write late p99 | sent → raised p50 / p99 | server p99 ≤ | server ≤ 1 ms | server raise p99 ≤ | journal p99 ≤ | disk fsync p50 / p99 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        let runs = r
            .latency
            .iter()
            .enumerate()
            .map(|(i, l)| ((i + 1).to_string(), l));
        for (name, l) in runs.chain(r.latency_quarter.iter().map(|l| ("¼".to_string(), l))) {
            let c = &l.client;
            let _ = writeln!(
                o,
                "| {} | {}/s | {} ({}) | {} | {} | {} | {} | {} | {} | {} / {} ms | {} | {} | {} | {} | {} |",
                name,
                k(l.background.rate),
                c.received,
                c.missing,
                ms(c.p50_us as f64),
                ms(c.p90_us as f64),
                ms(c.p99_us as f64),
                ms(c.p999_us as f64),
                ms(c.max_us as f64),
                ms(c.send_late_p99_us as f64),
                c.raised_p50_ms,
                c.raised_p99_ms,
                l.server_p99_us.map_or("–".into(), ms),
                l.server_within_1ms.map_or("–".into(), percent),
                l.raise_p99_us.map_or("–".into(), ms),
                l.journal_p99_us.map_or("–".into(), ms),
                l.fsync.as_ref().map_or("–".into(), |f| format!(
                    "{} / {}",
                    ms(f.p50_us as f64),
                    ms(f.p99_us as f64)
                ))
            );
        }
        if let Some(idle) = &r.fsync_idle {
            let _ = writeln!(
                o,
                "\nThe floor under the server's figure: an alert reaches subscribers only after \
                 its journal write is fsynced (a raised alert is never lost), so the server's \
                 p99 cannot be below the disk's. On this machine a 200-byte append and \
                 fdatasync took p50 {} / p90 {} / p99 {} / max {} with the machine idle \
                 ({} fsyncs before the runs), and p99 {} (median of runs 1–{}) under the \
                 latency runs' load.",
                ms(idle.p50_us as f64),
                ms(idle.p90_us as f64),
                ms(idle.p99_us as f64),
                ms(idle.max_us as f64),
                idle.count,
                ms(fsync_p99),
                r.latency.len()
            );
        }
    }

    if let Some(mem) = &r.memory {
        let _ = writeln!(o, "\n## Memory per retained sample\n");
        let _ = writeln!(
            o,
            "{} patients × {} metrics × 3 600 samples (one hour at 1 Hz, event time in order, \
             over gRPC) = {} samples. RSS {:.1} MiB → {:.1} MiB: **{:.1} bytes per sample** \
             (fill took {:.1} s). The issue's 100 000 patients would hold {:.1} GiB at this rate; \
             the figure is per sample, so a smaller fleet measures it.",
            mem.patients,
            mem.metrics,
            mem.samples,
            mem.rss_before as f64 / (1 << 20) as f64,
            mem.rss_after as f64 / (1 << 20) as f64,
            mem.bytes_per_sample,
            mem.fill_secs,
            100_000.0 * 9.0 * 3600.0 * mem.bytes_per_sample / (1u64 << 30) as f64
        );
    }
    o
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// Offered vs processed, Vigil and its peers, with the ideal diagonal.
pub fn throughput_svg(r: &SuiteResults, path: &Path) -> anyhow::Result<()> {
    let pts = |f: &dyn Fn(&SweepPoint) -> f64| -> Vec<(f64, f64)> {
        r.sweep
            .iter()
            .map(|p| (p.offered / 1e3, f(p) / 1e3))
            .collect()
    };
    let vigil = pts(&|p| p.vigil.rate);
    let mosq = pts(&|p| p.mosquitto.rate);
    let nats: Vec<(f64, f64)> = r
        .sweep
        .iter()
        .filter_map(|p| p.nats.as_ref().map(|n| (p.offered / 1e3, n.rate / 1e3)))
        .collect();
    let xmax = vigil.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let ymax = vigil
        .iter()
        .chain(&mosq)
        .chain(&nats)
        .map(|p| p.1)
        .fold(xmax, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "MQTT QoS 0, one reading per publish: processed vs offered",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("offered (thousand readings/s)")
        .y_desc("processed (thousand readings/s)")
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (xmax, xmax)], BLACK.mix(0.3)))
        .map_err(plot_err)?
        .label("offered")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
    let series = [
        ("Vigil", &vigil, BLUE),
        ("Mosquitto relay", &mosq, RED),
        ("NATS relay", &nats, GREEN),
    ];
    for (name, points, color) in series.into_iter().filter(|(_, p, _)| !p.is_empty()) {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The latency percentile curve (x: percentile on a "nines" scale, y: milliseconds).
pub fn latency_svg(r: &SuiteResults, path: &Path) -> anyhow::Result<()> {
    let nines = |p: f64| -> f64 { -(1.0 - (p / 100.0).min(0.99999)).log10() };
    let points: Vec<(f64, f64)> = r
        .latency_curve
        .iter()
        .map(|&(p, us)| (nines(p), us as f64 / 1000.0))
        .collect();
    let ymax = points.iter().map(|p| p.1).fold(0.1, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Reading → alert latency, client-observed, at half of peak load",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..5.0, 0f64..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("milliseconds")
        .x_labels(6)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => "99.999%".into(),
        })
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(plot_err)?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
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
