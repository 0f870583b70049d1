//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`; CI
//! installs them), and a TCP proxy that can cut a browser's connections to the server and
//! refuse new ones for a while, to test what a page does when its network drops.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A chromedriver process (in its own process group, so its browsers die with it) and a
/// WebDriver session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The driver's and its browsers' temporary directory (Chromium's profile and
    /// singleton socket): a killed browser cannot remove them itself, so they go with it.
    _scratch: tempfile::TempDir,
}

/// Whether chromedriver is installed (under CI it must be).
pub fn chromedriver_available() -> bool {
    let found = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver"
        );
        eprintln!(
            "chromedriver not installed; skipping (apt-get install chromium chromium-driver)"
        );
    }
    found
}

impl Browser {
    /// A headless Chromium with a 1366×768 window.
    pub async fn start() -> Browser {
        let port = super::free_port();
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let driver = std::os::unix::process::CommandExt::process_group(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .env("TMPDIR", scratch.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=en-US",
                "--autoplay-policy=no-user-gesture-required"] }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Browser {
            client,
            driver,
            _scratch: scratch,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.expect("script")
    }

    /// Polls `script` every 20 ms until it returns something other than null/false.
    pub async fn until(
        &self,
        limit: Duration,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.js(script, args.clone()).await;
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Clicks the element matched by `css` (a real WebDriver click), retrying while the
    /// board re-renders it.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if el.click().await.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "could not click {css}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Chooses `value` in the `<select>` matched by `css` (a real WebDriver choice, which
    /// fires `change`), retrying while the board re-renders it.
    pub async fn select(&self, css: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if el.select_by_value(value).await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "could not choose {value} in {css}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(path, png).unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill();
    }

    fn kill(&mut self) {
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forwards TCP connections to `target`; [`Proxy::cut`] drops every open one and refuses
/// new ones until [`Proxy::restore`].
pub struct Proxy {
    pub addr: SocketAddr,
    generation: Arc<parking_lot::Mutex<CancellationToken>>,
    refusing: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let generation = Arc::new(parking_lot::Mutex::new(CancellationToken::new()));
        let refusing = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let (gen, refuse, halt) = (generation.clone(), refusing.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    _ = halt.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                if refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = gen.lock().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            generation,
            refusing,
            stop,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        let mut g = self.generation.lock();
        g.cancel();
        *g = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
