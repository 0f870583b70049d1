//! `vigil notifiers test ID --config FILE`: one clearly marked test message through one
//! notifier of a configuration, and the receiver's answer. No server is needed.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use vigil_alerting::AlertEvent;

use crate::app::notifiers::{self, delivery, robots::Answer};
use crate::clock::now_ms;
use crate::config;

pub async fn test(id: &str, file: &Path, external_url: Option<String>) -> anyhow::Result<()> {
    let (file_config, compiled) = config::load_file(file)
        .map_err(|d| anyhow!("invalid configuration:\n{}", config::render(file, &d)))?;
    let spec = compiled
        .notifiers
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| {
            let known: Vec<&str> = compiled.notifiers.iter().map(|n| n.id.as_str()).collect();
            anyhow!(
                "no notifier '{id}' in {} (it has: {})",
                file.display(),
                known.join(", ")
            )
        })?;
    let external_url = external_url
        .or(file_config.server.external_url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
    let event = test_event()?;
    let render = notifiers::Render {
        external_url,
        zone: crate::clock::zone(
            file_config
                .server
                .timezone
                .as_deref()
                .unwrap_or(&crate::clock::host_timezone()),
        ),
    };
    let body = notifiers::body(spec, &[&event], &render, None);
    let client = delivery::client()?;
    match delivery::attempt(&client, spec, &body).await {
        Answer::Delivered => {
            println!("notifier '{id}': delivered (a test message, marked as such)");
            Ok(())
        }
        Answer::Retry(why) => bail!("notifier '{id}': not delivered, worth retrying: {why}"),
        Answer::Failed(why) => bail!("notifier '{id}': refused for good: {why}"),
    }
}

/// An event about no patient, whose every text says it is a test.
fn test_event() -> anyhow::Result<AlertEvent> {
    let now = now_ms();
    serde_json::from_value(serde_json::json!({
        "seq": 0,
        "kind": "raised",
        "at_ms": now,
        "by": "",
        "note": "",
        "alert": {
            "id": format!("vigil-test-{now:x}"),
            "patient_id": "TEST",
            "rule_id": "vigil_notifier_test",
            "severity": "low",
            "metric": "heart_rate",
            "unit": "/min",
            "value": 0.0,
            "message": "TEST: a test message from Vigil (vigil notifiers test); no patient is concerned",
            "patient_message": null,
            "state": "active",
            "care_team": "test",
            "observed_at_ms": now,
            "raised_at_ms": now,
            "acknowledged": null,
            "resolved": null,
        }
    }))
    .context("building the test event")
}
