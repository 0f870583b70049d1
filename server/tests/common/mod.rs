//! Test harness: starts the real `vigil` binary on port 0 in a temporary data directory
//! and gives tests real clients (rumqttc, tonic, plain HTTP) to talk to it.

#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod nats;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_proto::v1;
use vigil_proto::v1::alerts_client::AlertsClient;
use vigil_proto::v1::ingest_client::IngestClient;

pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// `serve` flags for every listener on a free loopback port.
pub const LOOPBACK_PORTS: [&str; 8] = [
    "--mqtt-addr",
    "127.0.0.1:0",
    "--grpc-addr",
    "127.0.0.1:0",
    "--metrics-addr",
    "127.0.0.1:0",
    "--http-addr",
    "127.0.0.1:0",
];

/// Whether stock `mosquitto_pub` is installed (under CI it must be).
pub fn mosquitto_pub_available() -> bool {
    let found = Command::new("mosquitto_pub").arg("--help").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install mosquitto-clients"
        );
        eprintln!("mosquitto_pub not installed; skipping (apt-get install mosquitto-clients)");
    }
    found
}

/// Connects with `options` and waits for the CONNACK; `Err` carries why the connection
/// was refused.
pub async fn connack(options: MqttOptions) -> Result<Device, String> {
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
            .await
            .expect("an answer within 10 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                return Ok(Device { client, eventloop });
            }
            Ok(_) => {}
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}

/// A running `vigil serve`, killed on drop.
pub struct Server {
    child: Option<Child>,
    /// The flags it was started with, for a restart.
    extra: Vec<String>,
    /// Environment variables it was started with, for a restart.
    env: Vec<(String, String)>,
    /// A command the server runs under (empty: none), for a restart.
    wrapper: Vec<String>,
    pub dir: tempfile::TempDir,
    pub mqtt: SocketAddr,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    pub http: SocketAddr,
}

impl Server {
    /// Starts with the given configuration file text (or none: embedded defaults).
    pub fn start(config: Option<&str>) -> Server {
        Server::start_with(config, &[])
    }

    pub fn start_with(config: Option<&str>, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(text) = config {
            std::fs::write(dir.path().join("vigil.toml"), text).unwrap();
        }
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Server::launch(dir, extra, Vec::new(), Vec::new())
    }

    /// Starts with `config` and a data directory on a file system of its own of
    /// `size_mib` MiB (a tmpfs in a private mount namespace, through `unshare`), so that a
    /// test can fill it. The test sees the data directory at [`Server::data`].
    pub fn start_on_small_disk(config: Option<&str>, size_mib: u32) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(text) = config {
            std::fs::write(dir.path().join("vigil.toml"), text).unwrap();
        }
        let mount = format!(
            "mount -t tmpfs -o size={size_mib}m,mode=0700 tmpfs \"$1\" && shift && exec \"$@\""
        );
        let mut wrapper: Vec<String> = vec!["unshare".into()];
        // As root a mount namespace suffices; otherwise a user namespace makes one.
        // SAFETY: getuid(2) cannot fail.
        if unsafe { libc::getuid() } != 0 {
            wrapper.push("--map-root-user".into());
        }
        wrapper.extend(
            [
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                &mount,
                "sh",
            ]
            .map(String::from),
        );
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        wrapper.push(data.to_str().unwrap().to_string());
        Server::launch(dir, Vec::new(), Vec::new(), wrapper)
    }

    /// The server's data directory as this process sees it (through `/proc/PID/root` when
    /// the server runs in a mount namespace of its own).
    pub fn data(&self) -> PathBuf {
        let data = self.dir.path().join("data");
        match (&self.child, self.wrapper.is_empty()) {
            (Some(child), false) => Path::new(&format!("/proc/{}/root", child.id()))
                .join(data.strip_prefix("/").unwrap()),
            _ => data,
        }
    }

    /// Starts with embedded defaults and these environment variables.
    pub fn start_env(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Server::launch(dir, Vec::new(), env, Vec::new())
    }

    /// Kills the process with SIGKILL (no shutdown work at all) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data directory, configuration and flags
    /// (killing it first if it still runs).
    pub fn restart(mut self) -> Server {
        self.kill9();
        let _ = std::fs::remove_file(self.dir.path().join("data").join("ports.json"));
        let log = self.dir.path().join("stderr.log");
        let previous = std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::write(self.dir.path().join("stderr.previous.log"), previous).unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        Server::launch(
            dir,
            std::mem::take(&mut self.extra),
            std::mem::take(&mut self.env),
            std::mem::take(&mut self.wrapper),
        )
    }

    fn launch(
        dir: tempfile::TempDir,
        extra: Vec<String>,
        env: Vec<(String, String)>,
        wrapper: Vec<String>,
    ) -> Server {
        let data = dir.path().join("data");
        // VIGIL_TEST_BIN runs the harness against another build (a release one, for the
        // console's measurements).
        let bin = std::env::var("VIGIL_TEST_BIN").unwrap_or_else(|_| VIGIL.to_string());
        let mut cmd = match wrapper.split_first() {
            None => Command::new(&bin),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&bin);
                cmd
            }
        };
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(LOOPBACK_PORTS)
            .args(&extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
            ));
        let config = dir.path().join("vigil.toml");
        if config.exists() {
            cmd.arg("--config").arg(config);
        }
        let child = cmd.spawn().expect("spawn vigil");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut server = Server {
            child: Some(child),
            extra,
            env,
            wrapper,
            dir,
            mqtt: "0.0.0.0:0".parse().unwrap(),
            grpc: "0.0.0.0:0".parse().unwrap(),
            metrics: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
        };
        let ports = server.data().join("ports.json");
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                let v: serde_json::Value = serde_json::from_str(&text).expect("ports.json is JSON");
                server.mqtt = v["mqtt"].as_str().unwrap().parse().unwrap();
                server.grpc = v["grpc"].as_str().unwrap().parse().unwrap();
                server.metrics = v["metrics"].as_str().unwrap().parse().unwrap();
                server.http = v["http"].as_str().unwrap().parse().unwrap();
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("vigil exited early ({status}): {}", server.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "vigil did not write ports.json: {}",
                server.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on a pid we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub async fn alerts(&self) -> AlertsClient<tonic::transport::Channel> {
        AlertsClient::connect(self.grpc_url())
            .await
            .expect("connect alerts")
    }

    pub async fn ingest(&self) -> IngestClient<tonic::transport::Channel> {
        IngestClient::connect(self.grpc_url())
            .await
            .expect("connect ingest")
    }

    /// A connected MQTT device.
    pub async fn device(&self, client_id: &str) -> Device {
        Device::connect(self.mqtt, client_id).await
    }

    /// The Prometheus exposition text.
    /// Every open alert, over gRPC (`ListActive` without a filter).
    pub async fn open_alerts(&self) -> Vec<v1::Alert> {
        self.alerts()
            .await
            .list_active(v1::ListActiveRequest::default())
            .await
            .unwrap()
            .into_inner()
            .alerts
    }

    pub async fn scrape(&self) -> String {
        http_get(self.metrics, "/metrics").await
    }

    /// The value of one sample (`name{labels}`), 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.scrape().await, series)
    }

    /// Waits until `series` reaches at least `want`.
    pub async fn wait_metric(&self, series: &str, want: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.metric(series).await;
            if v >= want || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect metrics");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// An MQTT client that publishes with QoS 1 and waits for each PUBACK.
pub struct Device {
    pub client: AsyncClient,
    pub eventloop: EventLoop,
}

impl Device {
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Device {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(1 << 21, 1 << 21);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                Ok(Ok(_)) => {}
                other => {
                    assert!(Instant::now() < deadline, "MQTT connect failed: {other:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Device { client, eventloop }
    }

    /// Publishes with QoS 1 and returns once the broker acknowledged it.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), self.eventloop.poll())
                .await
                .expect("MQTT poll timed out")
                .expect("MQTT connection failed");
            if let Event::Incoming(Packet::PubAck(_)) = event {
                return;
            }
            assert!(Instant::now() < deadline, "no PUBACK");
        }
    }

    /// Polls until the connection fails (or `limit` passes); true if it failed.
    pub async fn is_disconnected_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let polled =
                tokio::time::timeout(Duration::from_millis(200), self.eventloop.poll()).await;
            if let Ok(Err(_)) = polled {
                return true;
            }
        }
        false
    }
}

type Bearer =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
/// A gRPC channel that sends a bearer token with every call.
pub type Authed =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

/// A channel that sends `token` (or no header at all).
pub async fn channel(server: &Server, token: Option<&str>) -> Authed {
    let channel = tonic::transport::Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let header: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> =
        token.map(|t| format!("Bearer {t}").parse().unwrap());
    let bearer: Bearer = Box::new(move |mut req: tonic::Request<()>| {
        if let Some(h) = &header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    });
    tonic::service::interceptor::InterceptedService::new(channel, bearer)
}

/// Polls `check` every 20 ms until it gives `Some`; panics with `what` after `limit`. Each
/// attempt is bounded too, so a check that hangs cannot hang the test.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        // A check that never answers (a read racing a writer that replaces what it reads)
        // counts as not yet, and is asked again: the limit holds whatever the check does.
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(left.min(ATTEMPT).max(MIN_ATTEMPT), check()).await;
        if let Ok(Some(done)) = attempt {
            return done;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The longest one attempt of [`eventually`]'s check may take before it is asked again.
const ATTEMPT: Duration = Duration::from_secs(5);
/// The least time one attempt gets, even past the limit (so the last one can answer).
const MIN_ATTEMPT: Duration = Duration::from_millis(500);

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A reading message for gRPC.
pub fn reading(patient: &str, metric: &str, value: f64) -> v1::Reading {
    v1::Reading {
        patient_id: patient.into(),
        metric: metric.into(),
        value,
        ..Default::default()
    }
}

/// Receives the next event from a stream within 10 s.
pub async fn next_event(stream: &mut tonic::Streaming<v1::AlertEvent>) -> v1::AlertEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no alert event within 10 s")
        .expect("stream error")
        .expect("stream ended")
}

/// Subscribes with the given request.
pub async fn subscribe(
    server: &Server,
    req: v1::SubscribeRequest,
) -> tonic::Streaming<v1::AlertEvent> {
    server
        .alerts()
        .await
        .subscribe(req)
        .await
        .expect("subscribe")
        .into_inner()
}

/// A TCP port free on 127.0.0.1 a moment ago (for a process that takes its port as a
/// flag or configuration).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `vigil ARGS` to completion off the async runtime and asserts it succeeded.
pub async fn run_cli(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out =
        tokio::task::spawn_blocking(move || Command::new(VIGIL).args(&args).output().unwrap())
            .await
            .unwrap();
    assert!(
        out.status.success(),
        "vigil {:?} failed: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A token and its `[[tokens]]` entry, made by the real `vigil token create`.
pub async fn token_create(name: &str, role: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["token", "create", "--name", name, "--role", role];
    args.extend_from_slice(extra);
    let out = run_cli(&args).await;
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("# vigil_"))
        .map(|t| format!("vigil_{t}"))
        .expect("the token is printed");
    let entry = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    (token, entry)
}

/// A device's `[[devices]]` entry (with comment lines), made by the real `vigil device add`.
pub async fn device_add(id: &str, patient: &str, secret: &str) -> String {
    let out = run_cli(&[
        "device",
        "add",
        "--id",
        id,
        "--patient",
        patient,
        "--secret",
        secret,
    ])
    .await;
    String::from_utf8(out.stdout).unwrap()
}

/// A device's `[[devices]]` entry and the secret `vigil device add` generated for it.
pub async fn device_add_generated(id: &str, patient: &str) -> (String, String) {
    let out = run_cli(&["device", "add", "--id", id, "--patient", patient]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    let secret = text
        .lines()
        .nth(1)
        .and_then(|l| l.strip_prefix("# "))
        .expect("the secret is printed on the second line")
        .to_string();
    (text, secret)
}
