//! Vigil's patient → partition function agrees with a real nats-server's
//! `{{partition(n, wildcard)}}` subject mapping, so readings mapped by the server (devices on
//! nats-server's MQTT gateway) and readings Vigil publishes itself reach the same partition.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use vigil::nats::partition::{partition, Subjects};

struct NatsServer(Child);

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nats_server_bin() -> &'static str {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("nats-server is not installed (apt-get install nats-server; .ci/run does)")
}

#[tokio::test]
async fn patients_map_to_the_partition_nats_server_maps_them_to() {
    const PARTITIONS: u32 = 16;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nmappings: {{\n  \"h1.in.*\": \"h1.readings.{{{{partition({PARTITIONS},1)}}}}.{{{{wildcard(1)}}}}\"\n}}\n"
        ),
    )
    .unwrap();
    let _server = NatsServer(
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
    let client = loop {
        match async_nats::connect(&url).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "nats-server: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
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
