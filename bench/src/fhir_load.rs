//! FHIR ingest against gRPC, the same readings in the same run: C connections each posting
//! `batch` Bundles of B Observations over HTTP/1.1 keep-alive (one request in flight, as
//! an EHR interface engine does), then the same readings as `ReadingBatch`es of B through
//! `Ingest.PublishBatch` on C gRPC connections (one call in flight each). Readings/s are
//! what the server counted as ingested, per source, over each phase.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use vigil_proto::v1;
use vigil_proto::v1::ingest_client::IngestClient;

use crate::peers::Vigil;
use crate::prometheus::Scrape;
use crate::readings::METRICS;

pub struct FhirOptions {
    pub connections: usize,
    /// Observations per Bundle (readings per gRPC batch).
    pub bundle: usize,
    pub patients: usize,
    pub duration: Duration,
    pub runs: usize,
}

#[derive(Debug, Serialize)]
pub struct FhirResult {
    pub connections: usize,
    pub bundle: usize,
    pub runs: usize,
    pub fhir_readings_per_s: Vec<f64>,
    pub grpc_readings_per_s: Vec<f64>,
    pub fhir_median: f64,
    pub grpc_median: f64,
    /// FHIR's median over gRPC's.
    pub ratio: f64,
}

/// The LOINC code of each of the load's metrics that FHIR can carry (consciousness has none).
fn loinc(metric: &str) -> Option<&'static str> {
    Some(match metric {
        "heart_rate" => "8867-4",
        "spo2" => "59408-5",
        "resp_rate" => "9279-1",
        "systolic_bp" => "8480-6",
        "diastolic_bp" => "8462-4",
        "temperature" => "8310-5",
        "weight" => "29463-7",
        "glucose" => "2339-0",
        _ => return None,
    })
}

/// (patient, metric, value, UCUM unit) of connection `c`'s readings, a Bundle's worth;
/// patient ids start with `prefix` (each phase has patients of its own: the other's
/// windows would make its readings late ones).
fn readings(
    c: usize,
    o: &FhirOptions,
    prefix: &str,
) -> Vec<(String, &'static str, f64, &'static str)> {
    let units = [
        "/min", "%", "/min", "mm[Hg]", "mm[Hg]", "Cel", "kg", "mmol/L",
    ];
    (0..o.bundle)
        .map(|i| {
            let m = i % units.len();
            let (name, lo, hi) = METRICS[m];
            let patient = (c + i / units.len() * o.connections) % o.patients.max(1);
            let value = lo + (hi - lo) * ((i * 7) % 16) as f64 / 15.0;
            (format!("{prefix}{patient}"), name, value, units[m])
        })
        .collect()
}

fn bundle_body(readings: &[(String, &'static str, f64, &'static str)], when: &str) -> Vec<u8> {
    let entries: Vec<serde_json::Value> = readings
        .iter()
        .map(|(patient, metric, value, unit)| {
            serde_json::json!({"resource": {
                "resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": loinc(metric)}]},
                "subject": {"reference": format!("Patient/{patient}")},
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
            }, "request": {"method": "POST", "url": "Observation"}})
        })
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"resourceType": "Bundle", "type": "batch", "entry": entries}),
    )
    .expect("a bundle serializes")
}

/// Posts `body` to `/fhir` on one keep-alive connection until `end`; requests answered.
async fn post_loop(addr: SocketAddr, body: Vec<u8>, end: Instant) -> anyhow::Result<u64> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let head = format!(
        "POST /fhir HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    let (mut answered, mut line, mut sink) = (0u64, String::new(), Vec::new());
    while Instant::now() < end {
        stream.get_mut().write_all(&request).await?;
        line.clear();
        stream.read_line(&mut line).await?;
        if !line.starts_with("HTTP/1.1 200") {
            bail!("the server answered {}", line.trim());
        }
        let mut length = 0usize;
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let l = line.trim();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().context("content-length")?;
                }
            }
        }
        sink.resize(length, 0);
        stream.read_exact(&mut sink).await?;
        answered += 1;
    }
    Ok(answered)
}

/// Sends connection `c`'s readings as one `ReadingBatch` until `end`.
async fn grpc_loop(url: String, batch: v1::ReadingBatch, end: Instant) -> anyhow::Result<u64> {
    let mut client = IngestClient::connect(url)
        .await?
        .max_encoding_message_size(64 << 20);
    let mut calls = 0;
    while Instant::now() < end {
        client.publish_batch(batch.clone()).await?;
        calls += 1;
    }
    Ok(calls)
}

async fn ingested(vigil: &Vigil, source: &str) -> anyhow::Result<f64> {
    let scrape = Scrape::take(vigil.metrics).await?;
    Ok(scrape
        .samples("vigil_readings_ingested_total")
        .filter(|(labels, _)| labels.contains(&format!("source=\"{source}\"")))
        .map(|(_, v)| v)
        .sum())
}

/// One phase: readings/s the server counted for `source` while `load` ran.
async fn phase<F, Fut>(vigil: &Vigil, source: &str, load: F) -> anyhow::Result<f64>
where
    F: FnOnce(Instant) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let before = ingested(vigil, source).await?;
    let started = Instant::now();
    load(started).await?;
    let took = started.elapsed().as_secs_f64();
    let after = ingested(vigil, source).await?;
    Ok((after - before) / took)
}

pub async fn run(bin: &Path, o: &FhirOptions) -> anyhow::Result<FhirResult> {
    anyhow::ensure!(
        o.connections > 0 && o.bundle > 0,
        "connections and bundle must be positive"
    );
    let (mut fhir, mut grpc) = (Vec::new(), Vec::new());
    for run in 0..o.runs {
        let vigil = Vigil::start(bin)?;
        // Both phases send the same readings, taken at the same time, each to patients of
        // its own.
        let (when, when_ms) = now();
        let bodies: Vec<Vec<u8>> = (0..o.connections)
            .map(|c| bundle_body(&readings(c, o, "fhir-"), &when))
            .collect();
        let per_connection: Vec<_> = (0..o.connections)
            .map(|c| readings(c, o, "grpc-"))
            .collect();
        let batches: Vec<v1::ReadingBatch> = per_connection
            .iter()
            .map(|r| v1::ReadingBatch {
                readings: r
                    .iter()
                    .map(|(patient, metric, value, _)| v1::Reading {
                        patient_id: patient.clone(),
                        metric: metric.to_string(),
                        value: *value,
                        ts_ms: when_ms,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        let fhir_phase = |start: Instant| {
            let bodies = bodies.clone();
            let addr = vigil.http;
            let end = start + o.duration;
            async move {
                let tasks: Vec<_> = bodies
                    .into_iter()
                    .map(|b| tokio::spawn(post_loop(addr, b, end)))
                    .collect();
                for t in tasks {
                    t.await??;
                }
                Ok(())
            }
        };
        let grpc_phase = |start: Instant| {
            let batches = batches.clone();
            let url = format!("http://{}", vigil.grpc);
            let end = start + o.duration;
            async move {
                let tasks: Vec<_> = batches
                    .into_iter()
                    .map(|b| tokio::spawn(grpc_loop(url.clone(), b, end)))
                    .collect();
                for t in tasks {
                    t.await??;
                }
                Ok(())
            }
        };
        // Alternate which goes first, so neither always meets a fresher server.
        if run % 2 == 0 {
            fhir.push(phase(&vigil, "fhir", fhir_phase).await?);
            grpc.push(phase(&vigil, "grpc", grpc_phase).await?);
        } else {
            grpc.push(phase(&vigil, "grpc", grpc_phase).await?);
            fhir.push(phase(&vigil, "fhir", fhir_phase).await?);
        }
        eprintln!(
            "run {}: fhir {:.0} readings/s, grpc {:.0} readings/s",
            run + 1,
            fhir[run],
            grpc[run]
        );
    }
    let (fhir_median, grpc_median) = (median(&fhir), median(&grpc));
    Ok(FhirResult {
        connections: o.connections,
        bundle: o.bundle,
        runs: o.runs,
        ratio: fhir_median / grpc_median,
        fhir_readings_per_s: fhir,
        grpc_readings_per_s: grpc,
        fhir_median,
        grpc_median,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// Now, to the second: as RFC 3339 and as Unix epoch milliseconds.
fn now() -> (String, i64) {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let text = now
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time formats");
    (text, (now.unix_timestamp_nanos() / 1_000_000) as i64)
}
