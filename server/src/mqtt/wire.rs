//! Packets on a device connection: encoding into the write buffer, flushing it, and a
//! packet's type for messages.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::Packet;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::debug;

/// Outgoing packets are never larger than a reminder or a relayed publish.
const MAX_OUTGOING: usize = 1 << 20;

/// A packet's type, for messages (never its content: it may carry health data).
pub fn kind(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

pub fn write_packet(wbuf: &mut BytesMut, packet: Packet) {
    if let Err(e) = packet.write(wbuf, MAX_OUTGOING) {
        debug!(error = %e, "cannot encode an outgoing packet");
    }
}

pub async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    wbuf: &mut BytesMut,
) -> std::io::Result<()> {
    if wbuf.is_empty() {
        return Ok(());
    }
    stream.write_all(wbuf).await?;
    wbuf.clear();
    Ok(())
}
