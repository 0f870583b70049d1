//! Persistent MQTT sessions: N clients (clean session 0) each subscribed to its own
//! `notify/` topic, half of them then away; reminders published to every one; then the
//! away half reconnects. Measures how long the reminders take to reach the connected half,
//! how long the reconnecting half takes to receive everything queued for it, and the
//! server's resident set growth per queued message. The same run against Mosquitto (its
//! persistent clients, in memory) gives the peer's figures.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde::Serialize;

use crate::peers::{rss_of, Broker, PeerKind, Vigil};

#[derive(Debug, Clone, Serialize)]
pub struct SessionsResult {
    /// `vigil` or `mosquitto`.
    pub server: &'static str,
    pub sessions: usize,
    pub away: usize,
    pub messages_per_session: usize,
    /// First publish → every connected session has its messages.
    pub fan_out_secs: f64,
    /// Reconnects start → every reconnected session has everything queued for it.
    pub drain_secs: f64,
    /// Messages queued for the away half (two rounds of `messages_per_session`).
    pub queued: u64,
    /// Resident set after the first round, and after the second (the growth over the
    /// second round's messages is `bytes_per_queued`).
    pub rss_before: u64,
    pub rss_queued: u64,
    pub bytes_per_queued: f64,
}

/// A reminder-sized payload (the JSON a patient reminder carries).
fn payload(i: usize, k: usize) -> Vec<u8> {
    format!(
        r#"{{"alert_id":"0193a1b2-c3d4-7e5f-8a9b-{i:012}","rule_id":"hf_weight_gain","message":"Your weight rose 2.5 kg in 3 days: please rest; your nurse will call.","ts":{k}}}"#
    )
    .into_bytes()
}

async fn connect(
    addr: std::net::SocketAddr,
    id: &str,
    clean: bool,
) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_clean_session(clean);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    loop {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, eventloop)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("{id}: {e}"),
            Err(_) => bail!("{id}: no CONNACK in 30 s"),
        }
    }
}

/// Publishes message `k` of every round in `rounds` to every session in `sessions`, QoS 1,
/// a round at a time.
async fn publish_rounds(
    publisher: &AsyncClient,
    sessions: std::ops::Range<usize>,
    rounds: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    for k in rounds {
        for i in sessions.clone() {
            publisher
                .publish(
                    format!("notify/s-{i}"),
                    QoS::AtLeastOnce,
                    false,
                    payload(i, k),
                )
                .await?;
        }
    }
    Ok(())
}

/// Polls until the connection ends, counting publishes received.
fn count_into(mut eventloop: EventLoop, received: Arc<AtomicU64>) {
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = event {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

async fn wait_for(counter: &AtomicU64, want: u64, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while counter.load(Ordering::Relaxed) < want {
        if Instant::now() > deadline {
            bail!(
                "{what}: {} of {want} in 300 s",
                counter.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// One run against Vigil (bounds raised to hold the load).
pub async fn vigil(
    bin: &Path,
    sessions: usize,
    per_session: usize,
) -> anyhow::Result<SessionsResult> {
    let config = format!(
        "[mqtt]\nmax_connections = {}\nmax_persistent_sessions = {}\nmax_queued_messages = {}\nmax_queued_bytes = 1073741824\n",
        sessions + 16,
        sessions,
        2 * per_session.max(1)
    );
    let vigil = Vigil::start_with(bin, Some(&config))?;
    run("vigil", vigil.mqtt, vigil.pid(), sessions, per_session).await
}

/// One run against Mosquitto with its defaults (in-memory persistent clients, 1 000
/// queued messages each, no expiry).
pub async fn mosquitto(sessions: usize, per_session: usize) -> anyhow::Result<SessionsResult> {
    let broker = Broker::start(PeerKind::Mosquitto)?;
    run(
        "mosquitto",
        broker.addr,
        broker.pid(),
        sessions,
        per_session,
    )
    .await
}

async fn run(
    server: &'static str,
    addr: std::net::SocketAddr,
    pid: u32,
    sessions: usize,
    per_session: usize,
) -> anyhow::Result<SessionsResult> {
    let away = sessions / 2;
    // Listeners and the like: the sockets that are not client connections.
    let baseline = sockets_of(pid)?;
    let live = Arc::new(AtomicU64::new(0));
    let back = Arc::new(AtomicU64::new(0));
    let mut leaving = Vec::new();
    // Clients stay alive (their event loops end when they are dropped).
    let mut keep = Vec::new();
    for i in 0..sessions {
        let id = format!("s-{i}");
        let (client, mut eventloop) = connect(addr, &id, false).await?;
        client
            .subscribe(format!("notify/{id}"), QoS::AtLeastOnce)
            .await?;
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
                break;
            }
        }
        if i < away {
            leaving.push((client, eventloop));
        } else {
            count_into(eventloop, live.clone());
            keep.push(client);
        }
    }
    for (client, mut eventloop) in leaving {
        client.disconnect().await?;
        while eventloop.poll().await.is_ok() {}
    }
    // The server has closed every departed connection before anything is published.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sockets_of(pid)? > baseline + sessions - away {
        if Instant::now() > deadline {
            bail!("the server did not see {away} sessions go away");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (publisher, eventloop) = connect(addr, "publisher", true).await?;
    let acked = Arc::new(AtomicU64::new(0));
    {
        let acked = acked.clone();
        let mut eventloop = eventloop;
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(Packet::PubAck(_)) = event {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let total = (sessions * per_session) as u64;
    let start = Instant::now();
    publish_rounds(&publisher, 0..sessions, 0..per_session).await?;
    wait_for(&acked, total, "publishes acknowledged").await?;
    let live_want = ((sessions - away) * per_session) as u64;
    wait_for(&live, live_want, "reminders to connected sessions").await?;
    let fan_out = start.elapsed();
    // Memory: as many messages again, to the away half only. Measured from here, not from
    // before the fan-out: the buffers of the connections that left are reused first.
    let rss_before = settled_rss(pid).await?;
    publish_rounds(&publisher, 0..away, per_session..2 * per_session).await?;
    let second = (away * per_session) as u64;
    wait_for(&acked, total + second, "second publishes acknowledged").await?;
    let rss_queued = settled_rss(pid).await?;
    let queued = 2 * second;

    let start = Instant::now();
    for i in 0..away {
        let (client, eventloop) = connect(addr, &format!("s-{i}"), false).await?;
        count_into(eventloop, back.clone());
        keep.push(client);
    }
    wait_for(&back, queued, "queued reminders after reconnecting").await?;
    let drain = start.elapsed();
    drop(keep);
    Ok(SessionsResult {
        server,
        sessions,
        away,
        messages_per_session: per_session,
        fan_out_secs: fan_out.as_secs_f64(),
        drain_secs: drain.as_secs_f64(),
        queued,
        rss_before,
        rss_queued,
        bytes_per_queued: (rss_queued as f64 - rss_before as f64) / second.max(1) as f64,
    })
}

/// The server's resident set once it stops shrinking (the allocator returns freed memory
/// with a delay).
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut last = rss_of(pid)?;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_of(pid)?;
        if now.abs_diff(last) < last / 200 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Open sockets of process `pid` (its connections and listeners).
fn sockets_of(pid: u32) -> anyhow::Result<usize> {
    let mut n = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        if std::fs::read_link(fd?.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        {
            n += 1;
        }
    }
    Ok(n)
}
