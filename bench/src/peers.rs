//! The processes a run measures: the real `vigil serve` binary and, as peers, a
//! Mosquitto broker or NATS with its MQTT gateway, each started on free loopback ports in
//! a temporary directory and stopped on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child process, killed and reaped on drop.
/// A child process, killed and reaped when dropped.
pub struct Process(pub Child);

impl Process {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `vigil serve`.
pub struct Vigil {
    child: Process,
    pub dir: tempfile::TempDir,
    pub mqtt: SocketAddr,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    /// The console's listener (and FHIR's).
    pub http: SocketAddr,
}

impl Vigil {
    /// Starts `bin serve` on port 0 with its embedded defaults (built-in rules, open
    /// enrolment) and its default log filter, logging to a file in its directory.
    pub fn start(bin: &Path) -> anyhow::Result<Vigil> {
        Vigil::start_with(bin, None)
    }

    /// As [`Vigil::start`], with a configuration file of this text.
    pub fn start_with(bin: &Path, config: Option<&str>) -> anyhow::Result<Vigil> {
        let dir = tempfile::tempdir()?;
        if let Some(text) = config {
            std::fs::write(dir.path().join("vigil.toml"), text)?;
        }
        let (child, [mqtt, grpc, metrics, http]) = Vigil::launch(bin, dir.path())?;
        Ok(Vigil {
            child,
            dir,
            mqtt,
            grpc,
            metrics,
            http,
        })
    }

    /// Starts `bin serve` on `dir` (its `data` directory, its `vigil.toml` if there is
    /// one, logging to the end of its `vigil.log`) and waits for `ports.json`: the
    /// server is ready (windows restored, listeners open).
    fn launch(bin: &Path, dir: &Path) -> anyhow::Result<(Process, [SocketAddr; 4])> {
        let data = dir.join("data");
        let ports = data.join("ports.json");
        let _ = std::fs::remove_file(&ports);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("vigil.log"))?;
        let mut command = Command::new(bin);
        command.arg("serve");
        let file = dir.join("vigil.toml");
        if file.exists() {
            command.arg("--config").arg(file);
        }
        let child = command
            .arg("--data-dir")
            .arg(&data)
            .args(["--mqtt-addr", "127.0.0.1:0"])
            .args(["--grpc-addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            // The operator's default log filter: what production runs.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut child = Process(child);
        let log = || std::fs::read_to_string(dir.join("vigil.log")).unwrap_or_default();
        // Restoring a million patients' windows takes a while before the listeners open.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                let v: serde_json::Value = serde_json::from_str(&text)?;
                let addr = |k: &str| -> anyhow::Result<SocketAddr> {
                    v[k].as_str()
                        .with_context(|| format!("ports.json has no {k}"))?
                        .parse()
                        .context("ports.json address")
                };
                let addrs = [
                    addr("mqtt")?,
                    addr("grpc")?,
                    addr("metrics")?,
                    addr("http")?,
                ];
                return Ok((child, addrs));
            }
            if let Some(status) = child.0.try_wait()? {
                bail!("vigil exited early ({status}): {}", log());
            }
            if Instant::now() > deadline {
                bail!("vigil did not write ports.json in 300 s: {}", log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit: how long it took, and whether
    /// the exit status was success.
    pub fn terminate(&mut self, limit: Duration) -> anyhow::Result<(Duration, bool)> {
        let started = Instant::now();
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                return Ok((started.elapsed(), status.success()));
            }
            if started.elapsed() > limit {
                bail!("vigil did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts `bin` again on the same directory; returns the time from spawn to ready.
    pub fn restart(&mut self, bin: &Path) -> anyhow::Result<Duration> {
        self.kill9();
        let started = Instant::now();
        let (child, [mqtt, grpc, metrics, http]) = Vigil::launch(bin, self.dir.path())?;
        let took = started.elapsed();
        (self.child, self.mqtt, self.grpc, self.metrics, self.http) =
            (child, mqtt, grpc, metrics, http);
        Ok(took)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vigil.log")).unwrap_or_default()
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the server has used so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_of(self.child.id())
    }

    /// Kills the server with SIGKILL (no shutdown work at all) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}

/// A peer MQTT broker the same load is relayed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerKind {
    /// Debian's `mosquitto` (single-threaded, the reference peer).
    Mosquitto,
    /// Debian's `nats-server` with its MQTT gateway (multi-threaded; MQTT sessions on
    /// JetStream, here in a temporary directory).
    Nats,
}

impl PeerKind {
    fn binary(self) -> &'static str {
        match self {
            PeerKind::Mosquitto => "mosquitto",
            PeerKind::Nats => "nats-server",
        }
    }

    /// The configuration file's text for a broker whose MQTT listener is on `port`.
    fn config(self, port: u16, dir: &Path) -> anyhow::Result<String> {
        Ok(match self {
            PeerKind::Mosquitto => format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest none\nmax_keepalive 3600\n"
            ),
            // The NATS client port is needed but unused; MQTT needs JetStream and a name.
            PeerKind::Nats => format!(
                "listen: 127.0.0.1:{}\nserver_name: vigil_bench\n\
                 jetstream {{ store_dir: {:?} }}\nmqtt {{ listen: 127.0.0.1:{port} }}\n",
                free_port()?,
                dir.join("jetstream")
            ),
        })
    }

    /// The installed binary; an error says how to install it.
    fn bin(self) -> anyhow::Result<PathBuf> {
        which(self.binary()).with_context(|| {
            format!(
                "{} is not installed (Debian: apt-get install {}); it is a peer the report \
                 compares Vigil with",
                self.binary(),
                self.binary()
            )
        })
    }

    /// The version line the installed binary prints; an error says how to install it.
    pub fn version(self) -> anyhow::Result<String> {
        let arg = match self {
            PeerKind::Mosquitto => "-h",
            PeerKind::Nats => "--version",
        };
        let out = Command::new(self.bin()?).arg(arg).output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string())
    }
}

/// A running peer broker.
pub struct Broker {
    child: Process,
    _dir: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Broker {
    /// Starts the peer on a free loopback port; an error says how to install it.
    pub fn start(kind: PeerKind) -> anyhow::Result<Broker> {
        let bin = kind.bin()?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let conf = dir.path().join("broker.conf");
        std::fs::write(&conf, kind.config(port, dir.path())?)?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", kind.binary()))?;
        let mut broker = Broker {
            child: Process(child),
            _dir: dir,
            addr: ([127, 0, 0, 1], port).into(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(broker.addr).is_err() {
            if let Some(status) = broker.child.0.try_wait()? {
                bail!("{} exited early ({status})", kind.binary());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {} within 10 s",
                    kind.binary(),
                    broker.addr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_of(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kb * 1024)
}

pub fn cpu_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

/// The `vigil` binary next to this one (the same cargo profile), or `VIGIL_BIN`.
pub fn default_vigil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return p.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("vigil")))
        .unwrap_or_else(|| "vigil".into())
}
