//! Cluster mode: each notifier runs on one node at a time (the holder of its lease), so a
//! receiver gets each alert once, not once per node; when the holder dies another node
//! takes the notifier over from where it stood in the alert stream.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use common::cluster::*;
use common::{eventually, Server};
use parking_lot::Mutex;
use serde_json::Value;

/// An Alertmanager webhook receiver on 127.0.0.1 that records every body.
async fn receiver() -> (Arc<Mutex<Vec<Value>>>, String) {
    async fn record(State(seen): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> &'static str {
        seen.lock()
            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        "ok"
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/hook", post(record))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, url)
}

/// Messages received per patient.
fn per_patient(seen: &Mutex<Vec<Value>>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for body in seen.lock().iter() {
        if let Some(p) = body["groupLabels"]["patient"].as_str() {
            *out.entry(p.to_string()).or_default() += 1;
        }
    }
    out
}

/// Waits until every one of `patients` has had a message.
async fn wait_notified(seen: &Mutex<Vec<Value>>, patients: &[String]) {
    eventually(
        Duration::from_secs(60),
        "every patient's alert notified",
        || async {
            let got = per_patient(seen);
            patients.iter().all(|p| got.contains_key(p)).then_some(())
        },
    )
    .await;
}

async fn held(node: &Server) -> f64 {
    node.metric("vigil_cluster_notifiers_held").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notifier_runs_on_one_node_and_moves_when_that_node_dies() {
    let dir = tempfile::tempdir().unwrap();
    let (seen, url) = receiver().await;
    let notifier =
        format!("\n[[notifiers]]\nid = \"ward-hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n");
    let (_nats, _urls, a, b) = two_nodes(dir.path(), |node, urls| {
        node_config_with(node, urls, 1, &notifier)
    })
    .await;
    let holder = eventually(
        Duration::from_secs(30),
        "one node runs the notifier",
        || async {
            match (held(&a).await, held(&b).await) {
                (1.0, 0.0) => Some('a'),
                (0.0, 1.0) => Some('b'),
                _ => None,
            }
        },
    )
    .await;
    let (mut holder, other) = if holder == 'a' { (a, b) } else { (b, a) };

    // Alerts raised through both nodes: each notified once, by the holder alone.
    let before: Vec<String> = (0..6).map(|i| format!("before-{i}")).collect();
    for (i, p) in before.iter().enumerate() {
        let node = if i % 2 == 0 { &holder } else { &other };
        heart_rate(node, p, 135.0).await;
    }
    wait_notified(&seen, &before).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = per_patient(&seen);
    for p in &before {
        assert_eq!(got[p], 1, "{p}: notified {} times: {got:?}", got[p]);
    }

    // The holder dies: the other node takes the notifier over and notifies what comes next.
    holder.kill9();
    eventually(
        Duration::from_secs(30),
        "the other node runs the notifier",
        || async { (held(&other).await == 1.0).then_some(()) },
    )
    .await;
    let after: Vec<String> = (0..6).map(|i| format!("after-{i}")).collect();
    for p in &after {
        heart_rate(&other, p, 135.0).await;
    }
    wait_notified(&seen, &after).await;
    // A little longer: a second copy sent late would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = per_patient(&seen);
    for p in &after {
        assert_eq!(got[p], 1, "{p}: notified {} times: {got:?}", got[p]);
    }
    for p in &before {
        // Again only if the holder died between sending and writing its position.
        assert!(got[p] <= 2, "{p}: {got:?}");
    }
}
