//! An MQTT connection's opening: reading CONNECT (MQTT 3.1.1 only), checking the client
//! certificate or the device's credentials, registering the session under its client id,
//! and every refusal's CONNACK and count.

use std::net::SocketAddr;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use rumqttc::mqttbytes::Error as CodecError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::front_end::{FrontEnd, Refused, Registration};
use super::session_end::SessionEnd;
use super::wire::{flush, kind, write_packet};
use crate::auth::throttle::Throttled;
use crate::auth::{AuthFailure, LoginRefusal};
use crate::telemetry::ConnectRefusal;

/// The longest client id accepted (MQTT 3.1.1 §3.1.3.1 asks for 23 at least; ids are kept
/// for the session's life, so they are bounded like every other id).
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// The client certificate the TLS handshake verified, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCertificate {
    /// Plain TCP, or TLS without a client certificate: credentials come from CONNECT.
    None,
    /// A verified certificate whose Common Name is this (the device id).
    Device(String),
    /// A verified certificate without a Common Name: it names no device.
    Unnamed,
}

/// Who is connected, after CONNECT.
pub struct Identity {
    pub client_id: String,
    /// The device id and its patient, when authentication is on.
    pub device: Option<(String, String)>,
}

/// The CONNACK return code of a refusal.
pub fn connack_code(refusal: ConnectRefusal) -> ConnectReturnCode {
    match refusal {
        ConnectRefusal::ProtocolVersion => ConnectReturnCode::RefusedProtocolVersion,
        ConnectRefusal::BadClientId | ConnectRefusal::ClientIdTaken => {
            ConnectReturnCode::BadClientId
        }
        ConnectRefusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
        ConnectRefusal::MaxConnections
        | ConnectRefusal::SessionLimit
        | ConnectRefusal::Throttled
        | ConnectRefusal::LockedOut
        | ConnectRefusal::ChecksBusy
        | ConnectRefusal::PersistentSessions => ConnectReturnCode::ServiceUnavailable,
    }
}

/// Registers the session under its client id (see [`FrontEnd::register`]); a refusal or a
/// takeover by an authenticated device is recorded.
pub fn register(
    front: &FrontEnd,
    identity: Identity,
    peer: SocketAddr,
) -> Result<(Identity, Registration), ConnectRefusal> {
    let device = identity.device.as_ref().map(|(d, _)| d.as_str());
    match front.register(&identity.client_id, device) {
        Ok(registration) => {
            if registration.took_over {
                front.pipeline.telemetry().mqtt_takeover();
                if let Some(device) = device {
                    front.auth.failures.takeover(device, &identity.client_id);
                }
            }
            Ok((identity, registration))
        }
        Err(refused) => {
            let (failure, refusal) = match refused {
                Refused::SessionLimit => (AuthFailure::SessionLimit, ConnectRefusal::SessionLimit),
                Refused::ClientIdTaken => {
                    (AuthFailure::ClientIdTaken, ConnectRefusal::ClientIdTaken)
                }
            };
            let device = device.unwrap_or("unauthenticated");
            front.auth.failures.record(
                failure,
                device,
                &format!("device {device} from {peer}"),
                &identity.client_id,
            );
            Err(refusal)
        }
    }
}

pub async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    max_in: usize,
    front: &FrontEnd,
) -> Result<Connect, SessionEnd> {
    let deadline = tokio::time::Instant::now() + front.limits.connection_timeout;
    loop {
        // Only MQTT 3.1.1 (level 4): answer anything else with CONNACK 1 (§3.1.2.2) before
        // the 3.1.1 codec misreads an MQTT 5 property block.
        if matches!(protocol_level(rbuf), Some(level) if level != 4) {
            return Err(SessionEnd::Refused(
                ConnectReturnCode::RefusedProtocolVersion,
            ));
        }
        match Packet::read(rbuf, max_in) {
            Ok(Packet::Connect(c)) => return Ok(c),
            Ok(other) => {
                return Err(SessionEnd::Protocol(format!(
                    "first packet must be CONNECT, got {}",
                    kind(&other)
                )))
            }
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(e) => return Err(SessionEnd::Protocol(e.to_string())),
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(rbuf))
            .await
            .map_err(|_| SessionEnd::ConnectTimeout)??;
        if read == 0 {
            return Err(SessionEnd::Closed);
        }
    }
}

/// Checks the client certificate or the CONNECT's credentials; without authentication,
/// anyone is admitted.
pub async fn authenticate(
    connect: &Connect,
    peer: SocketAddr,
    front: &FrontEnd,
    certificate: PeerCertificate,
) -> Result<Identity, ConnectRefusal> {
    if connect.client_id.len() > MAX_CLIENT_ID_BYTES {
        return Err(ConnectRefusal::BadClientId);
    }
    let client_id = if connect.client_id.is_empty() {
        if !connect.clean_session {
            return Err(ConnectRefusal::BadClientId);
        }
        format!("vigil-anon-{}", front.next_connection_number())
    } else {
        connect.client_id.clone()
    };
    if !front.auth.enabled {
        return Ok(Identity {
            client_id,
            device: None,
        });
    }
    let failures = &front.auth.failures;
    let source = peer.ip().to_string();
    // Who the client claims to be, the patient that claim checks out to, and how a failed
    // claim is reported.
    let (device, patient, reason, claim) = match certificate {
        PeerCertificate::Unnamed => {
            failures.record(
                AuthFailure::BadCertificate,
                &source,
                &format!("certificate without a Common Name from {peer}"),
                "MQTT CONNECT",
            );
            return Err(ConnectRefusal::NotAuthorized);
        }
        // A verified certificate: the device must be provisioned, and a CONNECT username,
        // if given, must be the same device (the password is not needed).
        PeerCertificate::Device(device) => {
            let username = connect.login.as_ref().map(|l| l.username.as_str());
            let patient = match username {
                Some(name) if !name.is_empty() && name != device => None,
                _ => front.auth.devices.patient_of(&device),
            };
            (
                device,
                patient,
                AuthFailure::BadCertificate,
                "certificate of device",
            )
        }
        PeerCertificate::None => {
            let (device, patient) = password_login(connect, peer, front).await?;
            (device, patient, AuthFailure::BadCredentials, "device")
        }
    };
    match patient {
        Some(patient) => Ok(Identity {
            client_id,
            device: Some((device, patient)),
        }),
        None => {
            failures.record(
                reason,
                &source,
                &format!("{claim} {device} from {peer}"),
                "MQTT CONNECT",
            );
            Err(ConnectRefusal::NotAuthorized)
        }
    }
}

/// A device's username and password: the device id and, if the secret is its, its patient.
/// A refusal before the check (no credentials, a throttled address, a full Argon2 pool)
/// is recorded and returned.
async fn password_login(
    connect: &Connect,
    peer: SocketAddr,
    front: &FrontEnd,
) -> Result<(String, Option<String>), ConnectRefusal> {
    let failures = &front.auth.failures;
    let source = peer.ip().to_string();
    let Some(login) = connect.login.as_ref().filter(|l| !l.username.is_empty()) else {
        failures.record(
            AuthFailure::MissingCredentials,
            &source,
            &format!("unauthenticated {peer}"),
            "MQTT CONNECT",
        );
        return Err(ConnectRefusal::NotAuthorized);
    };
    let device = &login.username;
    let checked = front
        .auth
        .login_device(peer.ip(), device, login.password.as_bytes())
        .await;
    let patient = match checked {
        Ok(patient) => Some(patient),
        Err(LoginRefusal::BadCredentials) => None,
        Err(LoginRefusal::Throttled(why)) => {
            failures.record(
                AuthFailure::Throttled,
                &source,
                &format!("device {device} from {peer}"),
                why.as_str(),
            );
            return Err(match why {
                Throttled::Waiting => ConnectRefusal::Throttled,
                Throttled::LockedOut => ConnectRefusal::LockedOut,
            });
        }
        Err(LoginRefusal::Busy) => return Err(ConnectRefusal::ChecksBusy),
    };
    Ok((device.clone(), patient))
}

/// Writes CONNACK `code`; `session_present` only with success (MQTT-3.2.2-4).
pub async fn connack<S: AsyncWrite + Unpin>(
    stream: &mut S,
    wbuf: &mut BytesMut,
    code: ConnectReturnCode,
    session_present: bool,
) -> std::io::Result<()> {
    let present = session_present && code == ConnectReturnCode::Success;
    write_packet(wbuf, Packet::ConnAck(ConnAck::new(code, present)));
    flush(stream, wbuf).await
}

/// The protocol level of a CONNECT at the start of `buf` (`MQTT` level byte; 3 for the
/// 3.1 name `MQIsdp`), once enough bytes are there; `None` for anything else.
fn protocol_level(buf: &[u8]) -> Option<u8> {
    if buf.first()? >> 4 != 1 {
        return None;
    }
    // Skip the remaining-length varint (1 to 4 bytes).
    let mut i = 1;
    while *buf.get(i)? & 0x80 != 0 {
        i += 1;
        if i > 4 {
            return None;
        }
    }
    let name_len = usize::from(u16::from_be_bytes([*buf.get(i + 1)?, *buf.get(i + 2)?]));
    let name = buf.get(i + 3..i + 3 + name_len)?;
    let level = *buf.get(i + 3 + name_len)?;
    match name {
        b"MQTT" => Some(level),
        _ => Some(3),
    }
}

#[cfg(test)]
mod tests {
    use super::protocol_level;

    #[test]
    fn the_protocol_level_is_read_before_the_codec_runs() {
        let v311 = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
        assert_eq!(protocol_level(&v311), Some(4));
        let v5 = [0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05];
        assert_eq!(protocol_level(&v5), Some(5));
        let v31 = [
            0x10, 0x10, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03,
        ];
        assert_eq!(protocol_level(&v31), Some(3));
        assert_eq!(protocol_level(&v311[..6]), None, "not enough bytes yet");
        assert_eq!(protocol_level(&[0x30, 0x02]), None, "not a CONNECT");
        let long = [0x10, 0x80, 0x01, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04];
        assert_eq!(protocol_level(&long), Some(4), "two-byte remaining length");
    }
}
