//! Vigil's MQTT listener: accepts device connections (plain TCP, or TLS with optional
//! client certificates), runs one session task each, and stops gracefully, letting every
//! session finish what it has read.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::connect::PeerCertificate;
use super::front_end::FrontEnd;
use super::session;
use super::session_end::SessionEnd;
use crate::auth::AuthFailure;

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
                    &peer.ip().to_string(),
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
