//! Trend rules and measurement adherence against the real server, with real clients:
//! a falling SpO2 series over MQTT raises the built-in `spo2_trend` before the built-in
//! `below 92` threshold; an adherence rule fires for a patient measured on 10 of the last
//! 30 days and not for one measured on 20, with the readings uploaded late (a device's
//! memory) and counted on the day they were taken in the patient's time zone, as
//! `Patients.GetPatient` shows.

mod common;

use common::*;
use vigil_proto::v1;
use vigil_proto::v1::patients_client::PatientsClient;

/// Built-in rules (no `[[rules]]`): `spo2_trend` applies to patients with the condition
/// `respiratory`.
const RESPIRATORY: &str = r#"
[[patients]]
id = "p-resp"
consent = true
conditions = ["respiratory"]
"#;

/// Waits for a RAISED event, skipping others.
async fn next_raised(stream: &mut tonic::Streaming<v1::AlertEvent>) -> v1::Alert {
    loop {
        let e = next_event(stream).await;
        if e.kind == v1::EventKind::Raised as i32 {
            return e.alert.unwrap();
        }
    }
}

fn series(from_ms: i64, values: impl Iterator<Item = (i64, f64)>) -> String {
    let items: Vec<String> = values
        .map(|(minute, v)| {
            format!(
                r#"{{"metric":"spo2","value":{v:.1},"ts":{}}}"#,
                from_ms + minute * 60_000
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[tokio::test]
async fn a_falling_spo2_raises_the_trend_before_the_threshold() {
    let server = Server::start(Some(RESPIRATORY));
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut oximeter = server.device("oximeter-1").await;
    let start = now_ms() - 40 * 60_000;
    // One reading a minute, 97 % falling 0.2 a minute: still 93.2 % after 19 minutes.
    oximeter
        .publish(
            "vitals/p-resp",
            series(start, (0..20).map(|i| (i, 97.0 - 0.2 * i as f64))),
        )
        .await;
    let trend = next_raised(&mut stream).await;
    assert_eq!(trend.rule_id, "spo2_trend");
    // Raised by the 10th reading (min_samples 10): 95.2 %, the line 30 min on at 89.2 %.
    assert!((trend.value - 89.2).abs() < 1e-6, "{}", trend.value);
    assert_eq!(trend.observed_at_ms, start + 9 * 60_000);
    let open: Vec<String> = server
        .open_alerts()
        .await
        .into_iter()
        .map(|a| a.rule_id)
        .collect();
    assert_eq!(open, vec!["spo2_trend".to_string()], "no threshold yet");
    // The fall goes on below 92 % for minutes: now the threshold fires too.
    oximeter
        .publish(
            "vitals/p-resp",
            series(start, (20..=30).map(|i| (i, 97.0 - 0.2 * i as f64))),
        )
        .await;
    let low = next_raised(&mut stream).await;
    assert_eq!(low.rule_id, "low_spo2");
    assert!(low.value < 92.0);
}

/// The server's clock at 10:00 in Beijing on 2026-12-04 (02:00 UTC); readings up to 31
/// days old are accepted (a meter's memory uploaded late).
const ADHERENCE: &str = r#"
[server]
clock_start = "2026-12-04T02:00:00Z"
timezone = "UTC"
max_reading_age = "31d"

[[patients]]
id = "p-10"
consent = true
timezone = "Asia/Shanghai"

[[patients]]
id = "p-20"
consent = true
timezone = "Asia/Shanghai"

[[patients]]
id = "p-utc"
consent = true

[[rules]]
id = "bp_adherence"
kind = "adherence"
metric = "systolic_bp"
days = 30
min_days = 16
severity = "low"
"#;

const DAY: i64 = 86_400_000;

fn ts(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// A meter's memory: systolic readings taken at `times`, uploaded at once.
fn memory(times: &[i64]) -> String {
    let items: Vec<String> = times
        .iter()
        .map(|t| format!(r#"{{"metric":"systolic_bp","value":128,"ts":{t}}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

async fn patients_client(server: &Server) -> PatientsClient<tonic::transport::Channel> {
    PatientsClient::connect(server.grpc_url())
        .await
        .expect("connect patients")
}

async fn adherence(
    patients: &mut PatientsClient<tonic::transport::Channel>,
    id: &str,
) -> v1::MetricAdherence {
    let p = patients
        .get_patient(v1::GetPatientRequest {
            patient_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    p.adherence
        .into_iter()
        .find(|a| a.metric == "systolic_bp")
        .unwrap_or_else(|| panic!("{id}: systolic_bp measured"))
}

// Multi-threaded: the clients' connections close while the test waits for the graceful
// exit, which waits for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adherence_counts_late_readings_on_their_day_in_the_patients_time_zone() {
    let mut server = Server::start(Some(ADHERENCE));
    let mut patients = patients_client(&server).await;
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut meter = server.device("meter-1").await;
    // 07:30 on 2026-12-04 in Beijing, still 2026-12-03 in UTC.
    let morning = ts("2026-12-03T23:30:00Z");
    // Measuring since 2026-11-03 (outside the 30 days counted, 2026-11-05 to 12-04).
    let first = ts("2026-11-03T14:00:00Z");
    let eight_am = |days_before: i64| ts("2026-12-04T00:00:00Z") - days_before * DAY;
    let ten: Vec<i64> = [first, morning]
        .into_iter()
        .chain((1..10).map(|k| eight_am(3 * k)))
        .collect();
    let twenty: Vec<i64> = [first, morning]
        .into_iter()
        .chain((1..20).map(eight_am))
        .collect();
    // In this order on one connection: once p-10's alert is out, all three are in.
    meter.publish("vitals/p-utc", memory(&[morning])).await;
    meter.publish("vitals/p-20", memory(&twenty)).await;
    meter.publish("vitals/p-10", memory(&ten)).await;

    let alert = next_raised(&mut stream).await;
    assert_eq!(
        (
            alert.rule_id.as_str(),
            alert.patient_id.as_str(),
            alert.unit.as_str()
        ),
        ("bp_adherence", "p-10", "d")
    );
    assert_eq!(alert.value, 10.0);
    assert!(
        alert.message.contains("10 of the last 30 days"),
        "{}",
        alert.message
    );

    let ten = adherence(&mut patients, "p-10").await;
    assert_eq!((ten.days_measured, ten.today.as_str()), (10, "2026-12-04"));
    assert_eq!(ten.first_day, "2026-11-03");
    let every_third = (0..10).fold(0u32, |bits, k| bits | 1 << (3 * k));
    assert_eq!(ten.recent_days, every_third, "{:b}", ten.recent_days);
    let twenty = adherence(&mut patients, "p-20").await;
    assert_eq!(twenty.days_measured, 20);
    assert_eq!(twenty.recent_days, (1 << 20) - 1);
    // The same 23:30 UTC reading, for a patient counted in UTC: yesterday.
    let utc = adherence(&mut patients, "p-utc").await;
    assert_eq!((utc.recent_days, utc.today.as_str()), (0b10, "2026-12-04"));

    // p-20 never fires (p-utc has measured for less than 30 days): one alert in all.
    let open: Vec<(String, String)> = server
        .open_alerts()
        .await
        .into_iter()
        .map(|a| (a.rule_id, a.patient_id))
        .collect();
    assert_eq!(open, vec![("bp_adherence".to_string(), "p-10".to_string())]);

    // After a restart the days are still known (window snapshots), and the first hourly
    // sweep counts p-10 below the rule.
    drop((stream, meter, patients));
    let status = server.terminate(std::time::Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "graceful exit");
    let server = server.restart();
    server
        .wait_metric(
            r#"vigil_patients_below_adherence{rule="bp_adherence"}"#,
            1.0,
        )
        .await;
    let mut patients = patients_client(&server).await;
    let again = adherence(&mut patients, "p-10").await;
    assert_eq!((again.days_measured, again.recent_days), (10, every_third));
    assert_eq!(server.open_alerts().await.len(), 1, "not raised twice");
}
