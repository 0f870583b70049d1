//! Why a device session ended: logged per connection, and whether the last will goes out.

use rumqttc::mqttbytes::v4::ConnectReturnCode;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("connection closed by the client")]
    Closed,
    #[error("client sent DISCONNECT")]
    Disconnected,
    #[error("no CONNECT within the connection timeout")]
    ConnectTimeout,
    #[error("no packet within 1.5 × keep-alive")]
    KeepAlive,
    #[error("refused at CONNECT: {0:?}")]
    Refused(ConnectReturnCode),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("another connection took over the client id")]
    TakenOver,
    #[error("the device's credentials were revoked")]
    Revoked,
    #[error("server shutting down")]
    Shutdown,
    /// Cluster mode: readings could not be stored in the readings stream; the device gets
    /// no acknowledgement and sends them again on its next connection.
    #[error("readings not stored in the cluster: {0}")]
    Unstored(String),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

impl SessionEnd {
    /// Whether the last will is published (an unexpected end, MQTT 3.1.1 §3.1.2.5).
    pub fn publishes_will(&self) -> bool {
        !matches!(
            self,
            SessionEnd::Disconnected
                | SessionEnd::Refused(_)
                | SessionEnd::ConnectTimeout
                | SessionEnd::Handshake(_)
        )
    }
}
