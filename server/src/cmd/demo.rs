//! `vigil serve --demo`: a simulated ward of 20 patients (5 deteriorating) publishing over
//! the embedded MQTT broker, and a live, human-readable alert feed on stdout.

use std::net::SocketAddr;
use std::sync::Arc;

use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use tracing::error;
use vigil_alerting::{AlertFilter, Engine, PatientProfile};

use crate::app::alert_feed::{AlertFeed, Lag};
use crate::cmd::feed::Feed;
use crate::cmd::simulate::{self, SimConfig};
use crate::grpc::convert;

/// The demo ward: id, care team, whether the patient deteriorates.
const WARD: [(&str, &str, bool); 20] = [
    ("ward-03", "respiratory", true),
    ("ward-07", "cardiology", true),
    ("ward-12", "cardiology", true),
    ("ward-16", "diabetes", true),
    ("ward-19", "respiratory", true),
    ("ward-01", "cardiology", false),
    ("ward-02", "cardiology", false),
    ("ward-04", "respiratory", false),
    ("ward-05", "cardiology", false),
    ("ward-06", "diabetes", false),
    ("ward-08", "cardiology", false),
    ("ward-09", "respiratory", false),
    ("ward-10", "diabetes", false),
    ("ward-11", "cardiology", false),
    ("ward-13", "respiratory", false),
    ("ward-14", "cardiology", false),
    ("ward-15", "diabetes", false),
    ("ward-17", "respiratory", false),
    ("ward-18", "cardiology", false),
    ("ward-20", "diabetes", false),
];

/// Seconds of history the demo devices upload first, so `for` rules can judge at once.
const BACKFILL_S: u64 = 120;

/// Enrols the demo ward with its care teams, conditions and risk tiers (consent given).
/// How much history the demo's windows keep for the console's charts.
pub const CHART_HISTORY: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn enroll(engine: &Engine) {
    for (id, team, deteriorating) in WARD {
        let conditions: &[&str] = match team {
            "cardiology" => &["heart_failure", "hypertension"],
            "diabetes" => &["diabetes"],
            _ => &["copd", "respiratory"],
        };
        engine.enroll(
            PatientProfile {
                id: id.into(),
                care_team: team.into(),
                consent: true,
                overrides: Vec::new(),
                conditions: conditions.iter().map(|c| (*c).into()).collect(),
                tier: Some(if deteriorating { "A" } else { "B" }.into()),
                spo2_scale: 1,
                responsible: None,
                timezone: None,
            },
            0,
        );
    }
}

/// Starts the feed printer and the simulator; both stop with `shutdown`.
pub fn start(engine: Arc<Engine>, mqtt: SocketAddr, grpc: SocketAddr, shutdown: CancellationToken) {
    let deteriorating = WARD.iter().filter(|(_, _, d)| *d).count();
    println!(
        "Vigil demo: {} simulated patients ({} deteriorating) publishing over MQTT to {mqtt}.",
        WARD.len(),
        deteriorating
    );
    println!("Live alert feed below. In another terminal: vigil alerts tail --grpc {grpc}\n");
    // A consumer of the alert stream that never falls behind for good: it resumes.
    let mut alerts = AlertFeed::open(
        engine.log().clone(),
        AlertFilter::default(),
        None,
        Lag::Resume,
    );
    let feed_stop = shutdown.clone();
    tokio::spawn(async move {
        let feed = Feed::for_stdout();
        loop {
            tokio::select! {
                _ = feed_stop.cancelled() => return,
                event = alerts.next() => match event {
                    Ok(e) => println!("{}", feed.line(&convert::event(&e))),
                    Err(_) => return,
                }
            }
        }
    });
    let cfg = SimConfig {
        broker: mqtt,
        patients: WARD.iter().map(|(id, _, _)| id.to_string()).collect(),
        deteriorating,
        rate_hz: 1.0,
        backfill_s: BACKFILL_S,
        qos: QoS::AtLeastOnce,
        duration: None,
        seed: 2026,
    };
    tokio::spawn(async move {
        if let Err(e) = simulate::run(cfg, shutdown).await {
            error!(error = %e, "demo simulator stopped");
        }
    });
}
