//! Attacks on a running Vigil, as an attacker would run them, with raw sockets and real
//! clients. The hardening tests run them against a server they start; `cargo run -p vigil
//! --example attack -- --help` runs them against a deployment (see README.md here).

#![allow(dead_code)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::future::join_all;
use rumqttc::mqttbytes::v4::{Connect, Login, Packet, Publish};
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// CONNACK return codes (MQTT 3.1.1 §3.2.2.3).
pub const ACCEPTED: u8 = 0;
pub const IDENTIFIER_REJECTED: u8 = 2;
pub const SERVER_UNAVAILABLE: u8 = 3;
pub const NOT_AUTHORIZED: u8 = 5;

/// What one CONNECT says.
#[derive(Debug, Clone, Default)]
pub struct Hello {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Seconds; 0 turns keep-alive off (the session is never dropped for silence).
    pub keep_alive: u16,
}

impl Hello {
    pub fn device(client_id: &str, username: &str, password: &str) -> Hello {
        Hello {
            client_id: client_id.to_string(),
            username: Some(username.to_string()),
            password: Some(password.to_string()),
            keep_alive: 0,
        }
    }
}

/// Connects to `addr` from `source` (a loopback alias such as 127.0.0.7 stands for another
/// host), sends CONNECT and returns the stream with the CONNACK's return code.
pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    hello: &Hello,
) -> io::Result<(TcpStream, u8)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let mut stream = socket.connect(addr).await?;
    let mut connect = Connect::new(hello.client_id.clone());
    connect.keep_alive = hello.keep_alive;
    if let Some(user) = &hello.username {
        connect.login = Some(Login::new(
            user.clone(),
            hello.password.clone().unwrap_or_default(),
        ));
    }
    let mut out = BytesMut::new();
    Packet::Connect(connect)
        .write(&mut out, usize::MAX)
        .map_err(io::Error::other)?;
    stream.write_all(&out).await?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut connack))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no CONNACK within 30 s"))??;
    if connack[0] != 0x20 {
        return Err(io::Error::other(format!("not a CONNACK: {connack:?}")));
    }
    Ok((stream, connack[3]))
}

/// Whether the session on `stream` answers a PINGREQ within 10 s.
pub async fn answers_ping(stream: &mut TcpStream) -> bool {
    // PINGREQ is two fixed bytes (MQTT 3.1.1 §3.12).
    if stream.write_all(&[0xc0, 0x00]).await.is_err() {
        return false;
    }
    let mut resp = [0u8; 2];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut resp)).await,
        Ok(Ok(_)) if resp == [0xd0, 0x00]
    )
}

/// Whether the server closed `stream` within `limit` (reads until EOF or an error).
pub async fn is_closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// One credential opens `n` sessions at once, each with its own client id and keep-alive
/// off. Returns every CONNACK code and the sessions the server accepted (kept open).
pub async fn session_flood(
    addr: SocketAddr,
    username: &str,
    password: &str,
    n: usize,
) -> (Vec<u8>, Vec<TcpStream>) {
    let attempts = (0..n).map(|i| {
        let hello = Hello::device(&format!("flood-{i}"), username, password);
        async move { connect(addr, None, &hello).await }
    });
    let mut codes = Vec::new();
    let mut open = Vec::new();
    for result in join_all(attempts).await {
        match result {
            Ok((stream, code)) => {
                codes.push(code);
                if code == ACCEPTED {
                    open.push(stream);
                }
            }
            Err(_) => codes.push(u8::MAX),
        }
    }
    (codes, open)
}

/// CONNECTs with `username` and a wrong password, all at once, one from each of
/// `sources`. Returns each CONNACK code (`u8::MAX` where the connection failed).
pub async fn wrong_password_storm(addr: SocketAddr, username: &str, sources: &[IpAddr]) -> Vec<u8> {
    let attempts = sources.iter().enumerate().map(|(i, ip)| {
        let hello = Hello::device(&format!("guess-{i}"), username, "not-the-secret-0000");
        async move { connect(addr, Some(*ip), &hello).await }
    });
    join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.map_or(u8::MAX, |(_, code)| code))
        .collect()
}

/// CONNECTs whose username is `len` bytes long, one from each of `sources`. Returns each
/// CONNACK code.
pub async fn long_username_connects(addr: SocketAddr, len: usize, sources: &[IpAddr]) -> Vec<u8> {
    let mut codes = Vec::new();
    for (i, ip) in sources.iter().enumerate() {
        let hello = Hello {
            client_id: format!("long-{i}"),
            username: Some(format!("{i:02}-{}", "u".repeat(len))),
            password: Some("whatever-password".into()),
            keep_alive: 0,
        };
        codes.push(
            connect(addr, Some(*ip), &hello)
                .await
                .map_or(u8::MAX, |(_, c)| c),
        );
    }
    codes
}

/// A device publishes `n` QoS 1 messages to topics of `len` bytes it may not publish to,
/// then waits for their PUBACKs (a denied publish is acknowledged and dropped).
pub async fn denied_long_topics(stream: &mut TcpStream, n: usize, len: usize) -> io::Result<()> {
    let topic = format!("notify/{}", "t".repeat(len));
    let mut out = BytesMut::new();
    for i in 0..n {
        let mut publish = Publish::new(topic.clone(), QoS::AtLeastOnce, b"{}".to_vec());
        publish.pkid = u16::try_from(i % 60_000 + 1).expect("fits");
        Packet::Publish(publish)
            .write(&mut out, usize::MAX)
            .map_err(io::Error::other)?;
    }
    stream.write_all(&out).await?;
    let mut acks = vec![0u8; 4 * n];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut acks))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "PUBACKs within 30 s"))??;
    Ok(())
}

/// The resident set of process `pid` in KiB (Linux), if it can be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples [`rss_kib`] of `pid` every 10 ms while `work` runs; returns its output and the
/// highest sample.
pub async fn peak_rss_during<T>(pid: u32, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let mut peak = rss_kib(pid).unwrap_or(0);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return (out, peak.max(rss_kib(pid).unwrap_or(0))),
            () = tokio::time::sleep(Duration::from_millis(10)) => {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
            }
        }
    }
}

/// How long, at the median of `rounds`, a CONNECT with a wrong password takes to be
/// answered for `username` (timing is what an attacker probes ids with).
pub async fn median_refusal_time(
    addr: SocketAddr,
    source: IpAddr,
    username: &str,
    rounds: usize,
) -> Duration {
    let mut times = Vec::new();
    for i in 0..rounds {
        let hello = Hello::device(&format!("probe-{i}"), username, "not-the-secret-0000");
        let started = Instant::now();
        if connect(addr, Some(source), &hello).await.is_ok() {
            times.push(started.elapsed());
        }
    }
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
