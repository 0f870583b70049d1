//! The three listeners, bound before anything is served (so that a port already taken
//! stops the start), and `ports.json`, written once all of them are bound.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket};

use crate::settings::Settings;

pub struct Listeners {
    pub mqtt: TcpListener,
    pub grpc: TcpListener,
    pub metrics: TcpListener,
    pub http: TcpListener,
}

/// The addresses the listeners got (port 0 picks a free one).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub mqtt: SocketAddr,
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    pub http: SocketAddr,
}

impl Listeners {
    pub fn bind(settings: &Settings) -> anyhow::Result<Listeners> {
        Ok(Listeners {
            grpc: bind(settings.grpc_addr, settings.listen_backlog, "gRPC")?,
            metrics: bind(settings.metrics_addr, settings.listen_backlog, "metrics")?,
            http: bind(settings.http_addr, settings.listen_backlog, "HTTP")?,
            mqtt: bind(settings.mqtt_addr, settings.mqtt.listen_backlog, "MQTT")?,
        })
    }

    pub fn addresses(&self) -> anyhow::Result<Addresses> {
        Ok(Addresses {
            mqtt: self.mqtt.local_addr()?,
            grpc: self.grpc.local_addr()?,
            metrics: self.metrics.local_addr()?,
            http: self.http.local_addr()?,
        })
    }
}

/// Listens on `addr` with room for `backlog` pending connections (the kernel caps it at
/// `net.core.somaxconn`).
fn bind(addr: SocketAddr, backlog: u32, what: &str) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    };
    socket
        .and_then(|s| {
            // As TcpListener::bind does: a restarted server rebinds at once.
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(backlog)
        })
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Writes `ports.json` atomically (temporary file, then rename).
pub fn write_ports(dir: &Path, a: Addresses) -> anyhow::Result<()> {
    let body = json!({ "mqtt": a.mqtt.to_string(), "grpc": a.grpc.to_string(), "metrics": a.metrics.to_string(), "http": a.http.to_string() });
    let tmp = dir.join("ports.json.tmp");
    std::fs::write(&tmp, format!("{body}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("ports.json")).context("cannot publish ports.json")?;
    Ok(())
}

/// A wildcard listen address is reached through loopback by local clients.
pub fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}
