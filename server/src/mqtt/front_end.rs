//! Vigil's MQTT listener: accepts device connections (plain TCP, or TLS with optional
//! client certificates) and runs one session task each, with the connection limit,
//! client-id takeover, and a graceful stop that lets every session finish what it has read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::broker::EmbeddedBroker;
use super::session::{self, PeerCertificate, SessionEnd};
use crate::auth::{Auth, AuthFailure};
use crate::pipeline::Pipeline;
use crate::settings::MqttLimits;

/// What every session shares.
pub struct FrontEnd {
    pub pipeline: Arc<Pipeline>,
    pub auth: Arc<Auth>,
    pub broker: EmbeddedBroker,
    pub limits: MqttLimits,
    pub shutdown: CancellationToken,
    /// TLS on the listener, when `[tls]` is configured.
    pub tls: Option<TlsAcceptor>,
    connections: AtomicUsize,
    numbers: AtomicU64,
    /// Client id → (connection number, token that ends it): a new CONNECT with the same
    /// client id ends the old connection (MQTT 3.1.1 §3.1.4).
    sessions: Mutex<HashMap<String, (u64, CancellationToken)>>,
}

/// A connection slot, released on drop.
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FrontEnd {
    pub fn new(
        pipeline: Arc<Pipeline>,
        auth: Arc<Auth>,
        broker: EmbeddedBroker,
        limits: MqttLimits,
        shutdown: CancellationToken,
        tls: Option<TlsAcceptor>,
    ) -> FrontEnd {
        FrontEnd {
            pipeline,
            auth,
            broker,
            limits,
            shutdown,
            tls,
            connections: AtomicUsize::new(0),
            numbers: AtomicU64::new(0),
            sessions: Mutex::default(),
        }
    }

    /// A slot for one more connection, unless `max_connections` are open.
    pub fn admit(&self) -> Option<Slot<'_>> {
        let max = self.limits.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(&self.connections))
    }

    pub fn next_connection_number(&self) -> u64 {
        self.numbers.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a session under `client_id`, ending any earlier one. Returns the token
    /// that ends this one and its registration number.
    pub fn register(&self, client_id: &str) -> (CancellationToken, u64) {
        let token = CancellationToken::new();
        let number = self.next_connection_number();
        let previous = self
            .sessions
            .lock()
            .expect("session registry")
            .insert(client_id.to_string(), (number, token.clone()));
        if let Some((_, old)) = previous {
            old.cancel();
        }
        (token, number)
    }

    /// Removes the registration, unless a newer session has taken the client id.
    pub fn unregister(&self, client_id: &str, number: u64) {
        let mut sessions = self.sessions.lock().expect("session registry");
        if sessions.get(client_id).is_some_and(|(n, _)| *n == number) {
            sessions.remove(client_id);
        }
    }
}

/// Accepts connections until `front.shutdown`, then waits for the sessions to end.
pub async fn serve(listener: TcpListener, front: Arc<FrontEnd>) {
    let sessions = TaskTracker::new();
    loop {
        tokio::select! {
            _ = front.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Acknowledgements and reminders are small writes that must leave now.
                    let _ = stream.set_nodelay(true);
                    let front = front.clone();
                    sessions.spawn(async move {
                        let end = match front.tls.clone() {
                            None => session::run(stream, peer, front, PeerCertificate::None).await,
                            Some(acceptor) => tls_session(acceptor, stream, peer, front).await,
                        };
                        log_end(peer, &end);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    warn!(error = %e, "MQTT accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
    sessions.close();
    sessions.wait().await;
    info!("MQTT listener stopped");
}

/// The TLS handshake (within the connection timeout), then the session over it.
async fn tls_session(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    front: Arc<FrontEnd>,
) -> SessionEnd {
    let accepted =
        tokio::time::timeout(front.limits.connection_timeout, acceptor.accept(stream)).await;
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            front.pipeline.telemetry().tls_handshake_failed();
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            if let Some(rustls::Error::InvalidCertificate(_)) = rustls_error {
                front.auth.failures.record(
                    AuthFailure::BadCertificate,
                    &format!("unauthenticated {peer}"),
                    "MQTT TLS handshake",
                );
            }
            return SessionEnd::Handshake(e.to_string());
        }
        Err(_) => {
            front.pipeline.telemetry().tls_handshake_failed();
            return SessionEnd::ConnectTimeout;
        }
    };
    // rustls verified the chain against `client_ca`; the Common Name names the device.
    let certificate = match tls.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => match crate::tls::common_name(leaf) {
            Some(cn) => PeerCertificate::Device(cn),
            None => PeerCertificate::Unnamed,
        },
        _ => PeerCertificate::None,
    };
    session::run(tls, peer, front, certificate).await
}

fn log_end(peer: SocketAddr, end: &SessionEnd) {
    match end {
        SessionEnd::Protocol(_)
        | SessionEnd::KeepAlive
        | SessionEnd::ConnectTimeout
        | SessionEnd::Handshake(_) => {
            info!(%peer, reason = %end, "MQTT connection ended")
        }
        _ => debug!(%peer, reason = %end, "MQTT connection ended"),
    }
}
