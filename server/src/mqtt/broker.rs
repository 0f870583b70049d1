//! The embedded rumqttd broker: its configuration (explicit limits), start-up on its own
//! threads, and the in-process local link Vigil reads `vitals/#` from.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, SegmentConfig, ServerSettings};
use tracing::info;

use crate::settings::MqttLimits;

/// The filter Vigil consumes.
pub const VITALS_FILTER: &str = "vitals/#";
/// Commit-log budget for `vitals/#`: 16 MiB × 4 segments. A consumer that falls further
/// behind than this loses the oldest readings (rumqttd's design), so it is sized for
/// seconds of peak load, not minutes.
const VITALS_SEGMENT_SIZE: usize = 16 * 1024 * 1024;
const VITALS_SEGMENT_COUNT: usize = 4;
/// Budget for any other filter a client subscribes to.
const OTHER_SEGMENT_SIZE: usize = 1024 * 1024;
const OTHER_SEGMENT_COUNT: usize = 4;
/// Packets queued towards one connection before the router pauses it.
const MAX_OUTGOING_PACKETS: u64 = 100_000;

/// A started broker: where it listens and the local link to consume from.
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    pub link_tx: LinkTx,
    pub link_rx: LinkRx,
}

/// The rumqttd configuration for `addr` with `limits`.
pub fn broker_config(addr: SocketAddr, limits: &MqttLimits) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: u16::try_from(limits.connection_timeout.as_millis())
            .unwrap_or(u16::MAX),
        max_payload_size: limits.max_payload_size,
        max_inflight_count: limits.max_inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "vigil-mqtt".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let mut segments = HashMap::new();
    segments.insert(
        VITALS_FILTER.to_string(),
        SegmentConfig {
            max_segment_size: VITALS_SEGMENT_SIZE,
            max_segment_count: VITALS_SEGMENT_COUNT,
        },
    );
    Config {
        id: 0,
        router: RouterConfig {
            // Two slots are Vigil's own: the local link and the reminder publisher.
            max_connections: limits.max_connections + 2,
            max_outgoing_packet_count: MAX_OUTGOING_PACKETS,
            max_segment_size: OTHER_SEGMENT_SIZE,
            max_segment_count: OTHER_SEGMENT_COUNT,
            custom_segment: Some(segments),
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4".to_string(), server)])),
        ..Config::default()
    }
}

/// Starts the broker on `addr` (port 0: a free port is chosen) and subscribes the local
/// link to `vitals/#`. Returns once the listener accepts MQTT connections.
pub fn start(addr: SocketAddr, limits: &MqttLimits) -> anyhow::Result<EmbeddedBroker> {
    // rumqttd binds its own listener and does not report the port, so check the address
    // is free (and resolve port 0) with a listener of our own first.
    let probe =
        TcpListener::bind(addr).with_context(|| format!("MQTT address {addr} is not available"))?;
    let addr = probe.local_addr()?;
    drop(probe);

    let mut broker = Broker::new(broker_config(addr, limits));
    let (mut link_tx, link_rx) = broker
        .link("vigil-ingest")
        .map_err(|e| anyhow::anyhow!("cannot open the broker's local link: {e}"))?;
    link_tx
        .subscribe(VITALS_FILTER)
        .map_err(|e| anyhow::anyhow!("cannot subscribe the local link to {VITALS_FILTER}: {e}"))?;
    let handle = thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })?;
    wait_until_listening(addr, &handle)?;
    info!(%addr, "MQTT broker listening (MQTT 3.1.1, QoS 0 and 1)");
    Ok(EmbeddedBroker {
        addr,
        link_tx,
        link_rx,
    })
}

/// Waits until an MQTT client can connect, or fails if the broker thread ended.
fn wait_until_listening(addr: SocketAddr, handle: &thread::JoinHandle<()>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if handle.is_finished() {
            bail!("the embedded MQTT broker failed to listen on {addr} (see the log above)");
        }
        if probe_connect(addr) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the embedded MQTT broker did not start listening on {addr} within 10 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One MQTT CONNECT/CONNACK round trip (a bare TCP probe would make the broker log a
/// failed handshake).
fn probe_connect(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    // CONNECT, MQTT 3.1.1, clean session, keep-alive 5 s, client id "vigil-probe".
    let client_id = b"vigil-probe";
    let mut packet = vec![0x10, (10 + 2 + client_id.len()) as u8];
    packet.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x05]);
    packet.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    packet.extend_from_slice(client_id);
    if stream.write_all(&packet).is_err() {
        return false;
    }
    let mut connack = [0u8; 4];
    let ok = stream.read_exact(&mut connack).is_ok() && connack[0] == 0x20 && connack[3] == 0;
    let _ = stream.write_all(&[0xE0, 0x00]); // DISCONNECT
    ok
}
