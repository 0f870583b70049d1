//! Cluster mode against real nats-server processes and real Vigil nodes: the building blocks
//! (Vigil's patient → partition function agrees with the server's `{{partition(n,
//! wildcard)}}` mapping; leases are exclusive, renewed only by their holder, fenced by
//! revision and taken over when they expire), then whole clusters: every node streams the
//! same events, a node killed with SIGKILL is taken over with no alert lost or raised
//! twice, a NATS server killed costs nothing, a node that rejoins takes its share back, and
//! a node paused past its lease writes nothing when it wakes up.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::cluster::*;
use common::nats::NatsServer;
use common::{eventually, Device, Server};
use futures_util::StreamExt;
use vigil::nats::lease::Leases;
use vigil::nats::partition::{partition, Subjects};
use vigil_proto::v1;

/// One nats-server with JetStream (its store in `dir`) and `extra` configuration; a client.
async fn nats(dir: &std::path::Path, extra: &str) -> (NatsServer, async_nats::Client) {
    let server = common::nats::start(dir, "solo", extra);
    let client = common::nats::client(&server.url()).await;
    (server, client)
}

#[tokio::test]
async fn a_partition_lease_is_exclusive_fenced_by_revision_and_taken_over_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = nats(dir.path(), "").await;
    let js = async_nats::jetstream::new(client);
    let ttl = Duration::from_secs(2);
    let a = Leases::open(&js, "h1", "node-a", 1, ttl).await.unwrap();
    let b = Leases::open(&js, "h1", "node-b", 1, ttl).await.unwrap();

    let held = a.acquire(3).await.unwrap().expect("a free partition");
    assert_eq!(b.acquire(3).await.unwrap(), None, "held by a");
    assert_eq!(a.owner(3).await.unwrap().as_deref(), Some("node-a"));
    let renewed = a
        .renew(held)
        .await
        .unwrap()
        .expect("a renews its own lease");
    assert!(renewed.revision > held.revision);
    assert_eq!(
        a.renew(held).await.unwrap(),
        None,
        "a stale revision is fenced off"
    );

    // a stops renewing (paused, or dead): once the lease expired, b takes the partition.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let taken = loop {
        if let Some(lease) = b.acquire(3).await.unwrap() {
            break lease;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "b never took the partition"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(b.owner(3).await.unwrap().as_deref(), Some("node-b"));
    assert_eq!(a.renew(renewed).await.unwrap(), None, "a wakes up fenced");
    // b leaves cleanly: the partition is free at once.
    b.release(taken).await.unwrap();
    assert!(a.acquire(3).await.unwrap().is_some());
}

#[tokio::test]
async fn patients_map_to_the_partition_nats_server_maps_them_to() {
    const PARTITIONS: u32 = 16;
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = nats(
        dir.path(),
        &format!(
            "mappings: {{\n  \"h1.in.*\": \"h1.readings.{{{{partition({PARTITIONS},1)}}}}.{{{{wildcard(1)}}}}\"\n}}\n"
        ),
    )
    .await;
    let mut sub = client.subscribe("h1.readings.>").await.unwrap();
    client.flush().await.unwrap();
    let patients: Vec<String> = (0..300).map(|i| format!("patient-{i}")).collect();
    for p in &patients {
        client
            .publish(format!("h1.in.{p}"), "reading".into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let subjects = Subjects::new("h1");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..patients.len() {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("a mapped message")
            .unwrap();
        let subject = msg.subject.to_string();
        let (prefix, patient) = subject.rsplit_once('.').unwrap();
        let mapped: u32 = prefix.rsplit('.').next().unwrap().parse().unwrap();
        assert_eq!(mapped, partition(patient, PARTITIONS), "{subject}");
        assert_eq!(prefix, subjects.readings(mapped));
        seen.insert(mapped);
    }
    assert!(
        seen.len() > 12,
        "300 patients spread over the partitions: {seen:?}"
    );
}

/// (patient → raised count, patient → resolved count) of the stream's events.
fn counts(events: &[(String, String, String)]) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let mut raised = BTreeMap::new();
    let mut resolved = BTreeMap::new();
    for (kind, patient, _) in events {
        let per = if kind == "raised" {
            &mut raised
        } else if kind == "resolved" {
            &mut resolved
        } else {
            continue;
        };
        *per.entry(patient.clone()).or_insert(0) += 1;
    }
    (raised, resolved)
}

/// Waits until the stream holds `raised` RAISED and `resolved` RESOLVED events, then says
/// whether any patient has more than one of a kind.
async fn wait_stream(url: &str, want_raised: &BTreeSet<String>, want_resolved: &BTreeSet<String>) {
    let (raised, resolved) = eventually(
        Duration::from_secs(60),
        "the expected alert events",
        || async {
            let (raised, resolved) = counts(&stream_events(url).await?);
            let done = want_raised.iter().all(|p| raised.contains_key(p))
                && want_resolved.iter().all(|p| resolved.contains_key(p));
            done.then_some((raised, resolved))
        },
    )
    .await;
    // A little longer: a duplicate written late would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = eventually(Duration::from_secs(30), "the alert stream readable", || {
        stream_events(url)
    })
    .await;
    let (raised_again, resolved_again) = counts(&again);
    assert_eq!(raised, raised_again, "events kept arriving");
    assert_eq!(resolved, resolved_again, "events kept arriving");
    for (p, n) in raised.iter().chain(resolved.iter()) {
        assert_eq!(*n, 1, "patient {p}: an episode's event written {n} times");
    }
    assert_eq!(
        raised.keys().cloned().collect::<BTreeSet<_>>(),
        *want_raised
    );
    assert_eq!(
        resolved.keys().cloned().collect::<BTreeSet<_>>(),
        *want_resolved
    );
}

/// (seq, kind, alert id) of the first `n` events a subscriber of `node` receives from the
/// beginning.
async fn subscribed(node: &Server, n: usize) -> Vec<(u64, i32, String)> {
    let mut stream = common::subscribe(
        node,
        v1::SubscribeRequest {
            after_seq: Some(0),
            ..Default::default()
        },
    )
    .await;
    let mut out = Vec::new();
    while out.len() < n {
        let e = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("events within 30 s")
            .unwrap()
            .expect("stream open");
        out.push((e.seq, e.kind, e.alert.map(|a| a.id).unwrap_or_default()));
    }
    out
}

fn patients(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_three_nats_servers_survive_a_killed_node_and_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = common::nats::start_three(dir.path());
    let urls: Vec<String> = nats.iter().map(NatsServer::url).collect();
    common::nats::wait_for_jetstream(&urls[0], 3).await;
    let mut nodes: Vec<Server> = (0..3)
        .map(|i| start_node(&format!("vigil-{i}"), &urls, 3))
        .collect();
    wait_balanced(&nodes.iter().collect::<Vec<_>>()).await;
    for n in &nodes {
        let web = common::web::Web::new(n.http);
        eventually(Duration::from_secs(30), "the node ready", || async {
            (web.get("/readyz").await.status() == 200).then_some(())
        })
        .await;
    }

    // Deteriorations spread over the nodes: each is raised once, by its partition's owner,
    // whichever node the device spoke to.
    let first = patients("early", 18);
    for (i, p) in first.iter().enumerate() {
        heart_rate(&nodes[i % 3], p, 135.0).await;
    }
    let raised: BTreeSet<String> = first.iter().cloned().collect();
    wait_stream(&urls[1], &raised, &BTreeSet::new()).await;
    // A subscriber on each node sees the same events in the same order, numbered alike.
    let seen: Vec<_> =
        futures_util::future::join_all(nodes.iter().map(|n| subscribed(n, 18))).await;
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[1], seen[2]);
    assert!(seen[0]
        .iter()
        .all(|(_, kind, _)| *kind == v1::EventKind::Raised as i32));

    // kill -9 one node while those episodes are open. Readings sent meanwhile (through the
    // others) are judged once its partitions are taken over: the open episodes clear once
    // and are not raised again; new ones are raised once.
    nodes[0].kill9();
    let second = patients("late", 12);
    for (i, p) in first.iter().enumerate() {
        heart_rate(&nodes[1 + i % 2], p, 80.0).await;
    }
    for (i, p) in second.iter().enumerate() {
        heart_rate(&nodes[1 + i % 2], p, 140.0).await;
    }
    let raised: BTreeSet<String> = first.iter().chain(second.iter()).cloned().collect();
    let resolved: BTreeSet<String> = first.iter().cloned().collect();
    wait_stream(&urls[2], &raised, &resolved).await;
    wait_balanced(&[&nodes[1], &nodes[2]]).await;

    // kill -9 one NATS server (replicas 3): ingest and alerting go on.
    nats[0].kill9();
    let third = patients("after-nats", 9);
    for (i, p) in third.iter().enumerate() {
        heart_rate(&nodes[1 + i % 2], p, 150.0).await;
    }
    let raised: BTreeSet<String> = raised.iter().chain(third.iter()).cloned().collect();
    wait_stream(&urls[1], &raised, &resolved).await;

    // The killed node comes back: partitions rebalance to it, and nothing is raised twice.
    let back = nodes.remove(0).restart();
    nodes.insert(0, back);
    wait_balanced(&nodes.iter().collect::<Vec<_>>()).await;
    let fourth = patients("rejoined", 9);
    for (i, p) in fourth.iter().enumerate() {
        heart_rate(&nodes[i % 3], p, 150.0).await;
    }
    let raised: BTreeSet<String> = raised.iter().chain(fourth.iter()).cloned().collect();
    wait_stream(&urls[2], &raised, &resolved).await;
    nats[0].restart();
}

/// An `absent` rule: raised by each owner's clock, at its own time, so an episode raised by
/// two owners would have two ids and be written twice. Only fencing prevents it.
const SILENT_OXIMETER: &str = r#"
[[rules]]
id = "spo2_silent"
kind = "absent"
metric = "spo2"
after = "12s"
severity = "low"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_paused_past_its_lease_writes_nothing_when_it_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, urls, a, b) = two_nodes(dir.path(), |node, urls| {
        node_config_with(node, urls, 1, SILENT_OXIMETER)
    })
    .await;

    // Open episodes on every partition, and oximeters that then fall silent; then pause a
    // (SIGSTOP) for longer than a lease, before the silence is long enough to raise.
    let first = patients("before", 24);
    for p in &first {
        heart_rate(&b, p, 135.0).await;
    }
    let quiet = patients("quiet", 8);
    for p in &quiet {
        let mut device = Device::connect(b.mqtt, &format!("{p}-oximeter")).await;
        device
            .publish(&format!("vitals/{p}/spo2"), r#"{"value": 96}"#)
            .await;
        let _ = device.client.disconnect().await;
    }
    wait_stream(&urls[0], &first.iter().cloned().collect(), &BTreeSet::new()).await;
    // SAFETY: kill(2) on a child process of this test.
    unsafe { libc::kill(a.pid() as i32, libc::SIGSTOP) };
    eventually(
        Duration::from_secs(30),
        "b owns every partition",
        || async { (owned(&[&b]).await == f64::from(PARTITIONS)).then_some(()) },
    )
    .await;
    // While a sleeps, b judges everything: clears the episodes, raises new ones, and its
    // clock raises the silent oximeters.
    let second = patients("during", 12);
    for p in &first {
        heart_rate(&b, p, 80.0).await;
    }
    for p in &second {
        heart_rate(&b, p, 140.0).await;
    }
    let raised: BTreeSet<String> = first
        .iter()
        .chain(second.iter())
        .chain(quiet.iter())
        .cloned()
        .collect();
    let resolved: BTreeSet<String> = first.iter().cloned().collect();
    wait_stream(&urls[0], &raised, &resolved).await;
    // a wakes up with readings to judge and silences overdue on its clock: whatever it had
    // in hand, it writes nothing (every episode once), and it takes a share again.
    // SAFETY: as above.
    unsafe { libc::kill(a.pid() as i32, libc::SIGCONT) };
    wait_balanced(&[&a, &b]).await;
    wait_stream(&urls[0], &raised, &resolved).await;
    let third = patients("after", 12);
    for (i, p) in third.iter().enumerate() {
        heart_rate(if i % 2 == 0 { &a } else { &b }, p, 150.0).await;
    }
    let raised: BTreeSet<String> = raised.iter().chain(third.iter()).cloned().collect();
    wait_stream(&urls[0], &raised, &resolved).await;
}

/// Nurses act on alerts through whichever node they reach: the owner of the patient's
/// partition applies the action and writes its event, every node shows the result; after a
/// takeover the new owner knows what was done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledging_and_resolving_work_through_any_node_and_survive_a_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, urls, mut a, b) =
        two_nodes(dir.path(), |node, urls| node_config(node, urls, 1)).await;

    let sick = patients("sick", 10);
    for p in &sick {
        heart_rate(&a, p, 135.0).await;
    }
    let open = eventually(
        Duration::from_secs(30),
        "every alert listed on b",
        || async {
            let open = b.open_alerts().await;
            (open.len() == sick.len()).then_some(open)
        },
    )
    .await;
    // Acknowledge every alert through b: about half are owned by a.
    let mut alerts = b.alerts().await;
    for alert in &open {
        let acked = alerts
            .acknowledge(v1::AcknowledgeRequest {
                alert_id: alert.id.clone(),
                by: "nurse.kim".into(),
                note: "calling".into(),
                disposition: String::new(),
            })
            .await
            .expect("acknowledged through any node")
            .into_inner();
        assert_eq!(acked.state, v1::AlertState::Acknowledged as i32);
    }
    eventually(
        Duration::from_secs(30),
        "a lists them acknowledged",
        || async {
            let listed = a.open_alerts().await;
            (listed.len() == sick.len()
                && listed
                    .iter()
                    .all(|x| x.state == v1::AlertState::Acknowledged as i32))
            .then_some(())
        },
    )
    .await;
    // Claiming and assigning go through the owner too.
    alerts
        .claim(v1::ClaimRequest {
            alert_id: open[0].id.clone(),
            by: "nurse.kim".into(),
            note: "mine".into(),
        })
        .await
        .expect("claimed through any node");
    alerts
        .assign(v1::AssignRequest {
            alert_id: open[1].id.clone(),
            assignee: "dr.ode".into(),
            by: "nurse.kim".into(),
            note: String::new(),
        })
        .await
        .expect("assigned through any node");
    eventually(Duration::from_secs(30), "a shows who answers", || async {
        let listed = a.open_alerts().await;
        let who = |id: &str| {
            listed
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.assignee.clone())
        };
        (who(&open[0].id).as_deref() == Some("nurse.kim")
            && who(&open[1].id).as_deref() == Some("dr.ode"))
        .then_some(())
    })
    .await;
    // A shift handover moves dr.ode's alerts to dr.lin, whichever node owns them.
    let handed = alerts
        .handover(v1::HandoverRequest {
            care_team: "default".into(),
            from: "dr.ode".into(),
            to: "dr.lin".into(),
            by: "nurse.kim".into(),
            note: "night shift".into(),
        })
        .await
        .expect("handover through any node")
        .into_inner()
        .alerts;
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].assignee, "dr.lin");
    // An unknown alert is refused as such.
    let unknown = alerts
        .acknowledge(v1::AcknowledgeRequest {
            alert_id: "no-such-alert".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // a dies; b takes its partitions over and knows the acknowledgements: acknowledging
    // again is refused, resolving works, once.
    a.kill9();
    eventually(
        Duration::from_secs(30),
        "b owns every partition",
        || async { (owned(&[&b]).await == f64::from(PARTITIONS)).then_some(()) },
    )
    .await;
    for alert in &open {
        let again = alerts
            .acknowledge(v1::AcknowledgeRequest {
                alert_id: alert.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(again.code(), tonic::Code::FailedPrecondition, "{again:?}");
        alerts
            .resolve(v1::ResolveRequest {
                alert_id: alert.id.clone(),
                by: "dr.ode".into(),
                note: "treated".into(),
                disposition: "contacted_patient".into(),
            })
            .await
            .expect("resolved by the new owner");
    }
    let all: BTreeSet<String> = sick.iter().cloned().collect();
    wait_stream(&urls[0], &all, &all).await;
    let events = stream_events(&urls[0]).await.unwrap();
    let acks = events
        .iter()
        .filter(|(k, _, _)| k == "acknowledged")
        .count();
    assert_eq!(acks, sick.len(), "one acknowledgement each");
    assert!(b.open_alerts().await.is_empty());
    // History on any node: raised, acknowledged, claimed, resolved.
    let history = alerts
        .history(v1::HistoryRequest {
            alert_id: open[0].id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let kinds: Vec<i32> = history.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            v1::EventKind::Raised as i32,
            v1::EventKind::Acknowledged as i32,
            v1::EventKind::Assigned as i32,
            v1::EventKind::Resolved as i32
        ]
    );
}

/// A fever judged on the mean of five readings: four before a node dies, one after.
const FEVER: &str = r#"
[[rules]]
id = "fever_mean"
kind = "avg"
metric = "temperature"
window = "1h"
above = 38
min_samples = 5
severity = "medium"
"#;

/// Partitions whose lease `node` holds.
async fn partitions_of(url: &str, node: &str) -> Vec<u32> {
    let js = async_nats::jetstream::new(common::nats::client(url).await);
    let kv = js.get_key_value("ward-leases").await.unwrap();
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        if kv.get(format!("p{p}")).await.unwrap().as_deref() == Some(node.as_bytes()) {
            out.push(p);
        }
    }
    out
}

/// Whether every partition in `partitions` that has readings has a snapshot covering its
/// newest reading.
async fn snapshots_cover(url: &str, partitions: &[u32]) -> bool {
    let js = async_nats::jetstream::new(common::nats::client(url).await);
    let Ok(readings) = js.get_stream("ward-readings").await else {
        return false;
    };
    let Ok(store) = js.get_object_store("ward-snapshots").await else {
        return false;
    };
    for &p in partitions {
        let Ok(last) = readings
            .get_last_raw_message_by_subject(&format!("ward.readings.{p}"))
            .await
        else {
            continue;
        };
        let Ok(mut object) = store.get(format!("p{p}")).await else {
            return false;
        };
        let mut body = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut object, &mut body)
            .await
            .unwrap();
        let snapshot: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if snapshot["readings_seq"].as_u64().unwrap() < last.sequence {
            return false;
        }
    }
    true
}

/// A new owner rebuilds a partition from its owner's last snapshot and replays nothing
/// older: the windows come back whole (a mean over readings from before the kill fires on
/// the first reading after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_takeover_restores_the_partition_snapshot_instead_of_replaying() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, urls, mut a, b) = two_nodes(dir.path(), |node, urls| {
        node_config_with(node, urls, 1, FEVER)
            .replace("replicas = 1\n", "replicas = 1\nsnapshot_every = \"1s\"\n")
    })
    .await;

    let febrile = patients("febrile", 16);
    let t0 = common::now_ms() - 60_000;
    for p in &febrile {
        let mut device = Device::connect(b.mqtt, &format!("{p}-thermometer")).await;
        for k in 0..4 {
            device
                .publish(
                    &format!("vitals/{p}/temperature"),
                    format!(r#"{{"value": 39.0, "ts": {}}}"#, t0 + k * 1000),
                )
                .await;
        }
        let _ = device.client.disconnect().await;
    }
    eventually(
        Duration::from_secs(30),
        "a's partitions snapshotted",
        || async {
            let of_a = partitions_of(&urls[0], "vigil-a").await;
            snapshots_cover(&urls[0], &of_a).await.then_some(())
        },
    )
    .await;
    assert!(
        b.open_alerts().await.is_empty(),
        "four readings: no mean yet"
    );
    // What b replayed so far (partitions handed over while the readings came in).
    let before = b.metric("vigil_cluster_replayed_readings_total").await;

    a.kill9();
    eventually(
        Duration::from_secs(30),
        "b owns every partition",
        || async { (owned(&[&b]).await == f64::from(PARTITIONS)).then_some(()) },
    )
    .await;
    assert_eq!(
        b.metric("vigil_cluster_replayed_readings_total").await,
        before,
        "the snapshots covered every reading"
    );
    for p in &febrile {
        let mut device = Device::connect(b.mqtt, &format!("{p}-thermometer")).await;
        device
            .publish(
                &format!("vitals/{p}/temperature"),
                format!(r#"{{"value": 39.0, "ts": {}}}"#, t0 + 5000),
            )
            .await;
        let _ = device.client.disconnect().await;
    }
    let raised: BTreeSet<String> = febrile.iter().cloned().collect();
    wait_stream(&urls[0], &raised, &BTreeSet::new()).await;
}

#[tokio::test]
async fn a_node_of_a_cluster_without_nats_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let file = dir.path().join("vigil.toml");
    std::fs::write(
        &file,
        node_config("vigil-1", &[format!("nats://127.0.0.1:{port}")], 1),
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::VIGIL)
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("cannot connect to NATS"), "{text}");
}

/// deploy/cluster: the Vigil configuration passes `rules check` and each nats-server
/// configuration passes the pinned nats-server's own check.
#[test]
fn the_three_node_deploy_example_is_valid() {
    let dir = common::repo_root().join("deploy/cluster");
    let out = std::process::Command::new(common::VIGIL)
        .args(["rules", "check"])
        .arg(dir.join("vigil.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 1..=3 {
        let out = std::process::Command::new(common::nats::nats_server_bin())
            .arg("-t")
            .arg("-c")
            .arg(dir.join(format!("nats-{i}.conf")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nats-{i}.conf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A node stopped with SIGTERM hands its partitions over before it exits: a last snapshot
/// each, and its leases freed, so the others take them at once (not when leases expire).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_gracefully_frees_its_partitions_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, urls, mut a, b) =
        two_nodes(dir.path(), |node, urls| node_config(node, urls, 1)).await;
    let sick = patients("graceful", 12);
    for p in &sick {
        heart_rate(&b, p, 135.0).await;
    }
    let raised: BTreeSet<String> = sick.iter().cloned().collect();
    wait_stream(&urls[0], &raised, &BTreeSet::new()).await;
    assert!(!partitions_of(&urls[0], "vigil-a").await.is_empty());

    let status = a.terminate(Duration::from_secs(30)).expect("a exits");
    assert!(status.success(), "{status:?}");
    assert!(
        partitions_of(&urls[0], "vigil-a").await.is_empty(),
        "a left leases behind"
    );
    eventually(
        Duration::from_secs(30),
        "b owns every partition",
        || async { (owned(&[&b]).await == f64::from(PARTITIONS)).then_some(()) },
    )
    .await;
    // Its open episodes are b's now: clearing them resolves each once.
    for p in &sick {
        heart_rate(&b, p, 80.0).await;
    }
    wait_stream(&urls[0], &raised, &raised).await;
}
