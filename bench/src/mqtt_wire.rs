//! MQTT 3.1.1 on the wire, as cheaply as a load generator can: PUBLISH packets are encoded
//! straight into the connection's write buffer (no per-message allocation), CONNECT and
//! SUBSCRIBE go through rumqttc's codec, and incoming frames are split by their fixed
//! header so a subscriber can count PUBLISH packets without parsing them.

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use rumqttc::mqttbytes::v4::{Connect, Packet, Subscribe};
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest packet the generator accepts from a broker.
const MAX_INCOMING: usize = 1 << 20;

/// Appends one PUBLISH (QoS 0 when `pkid` is 0, else QoS 1 with that packet id).
pub fn put_publish(buf: &mut BytesMut, topic: &[u8], payload: &[u8], pkid: u16) {
    let id_len = if pkid == 0 { 0 } else { 2 };
    let remaining = 2 + topic.len() + id_len + payload.len();
    buf.reserve(5 + remaining);
    buf.extend_from_slice(&[if pkid == 0 { 0x30 } else { 0x32 }]);
    put_remaining_length(buf, remaining);
    buf.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    buf.extend_from_slice(topic);
    if pkid != 0 {
        buf.extend_from_slice(&pkid.to_be_bytes());
    }
    buf.extend_from_slice(payload);
}

fn put_remaining_length(buf: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.extend_from_slice(&[byte]);
        if len == 0 {
            return;
        }
    }
}

/// One frame's packet type (high nibble of the first byte) and its total length, or
/// `None` if `buf` does not hold a whole frame yet.
pub fn frame(buf: &[u8]) -> anyhow::Result<Option<(u8, usize)>> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            let total = 2 + i + len;
            if total > MAX_INCOMING {
                bail!("broker sent a {total}-byte packet");
            }
            return Ok((buf.len() >= total).then_some((first >> 4, total)));
        }
    }
    bail!("malformed remaining length from the broker")
}

/// Connects, sends CONNECT (clean session, long keep-alive: runs are short and the
/// generator sends no PINGREQ) and waits for a successful CONNACK.
pub async fn connect(addr: std::net::SocketAddr, client_id: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to MQTT at {addr}"))?;
    stream.set_nodelay(true)?;
    let mut connect = Connect::new(client_id);
    connect.keep_alive = 3600;
    connect.clean_session = true;
    let mut buf = BytesMut::new();
    Packet::Connect(connect).write(&mut buf, MAX_INCOMING)?;
    stream.write_all(&buf).await?;
    match read_packet(&mut stream, &mut BytesMut::new()).await? {
        Packet::ConnAck(ack) if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => {
            Ok(stream)
        }
        other => bail!("broker refused CONNECT of {client_id}: {other:?}"),
    }
}

/// Subscribes to `filter` and waits for the SUBACK.
pub async fn subscribe(stream: &mut TcpStream, filter: &str, qos: QoS) -> anyhow::Result<()> {
    let mut buf = BytesMut::new();
    let mut sub = Subscribe::new(filter, qos);
    sub.pkid = 1;
    Packet::Subscribe(sub).write(&mut buf, MAX_INCOMING)?;
    stream.write_all(&buf).await?;
    match read_packet(stream, &mut BytesMut::new()).await? {
        Packet::SubAck(_) => Ok(()),
        other => bail!("expected SUBACK, got {other:?}"),
    }
}

async fn read_packet(stream: &mut TcpStream, buf: &mut BytesMut) -> anyhow::Result<Packet> {
    loop {
        if let Some((_, len)) = frame(buf)? {
            let mut whole = buf.split_to(len);
            return Ok(Packet::read(&mut whole, MAX_INCOMING)?);
        }
        if stream.read_buf(buf).await? == 0 {
            bail!("broker closed the connection");
        }
    }
}

/// Packet type numbers the generator looks at.
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;

/// Splits whole frames off the front of `buf`, calling `each(type, frame)` for every one.
pub fn drain_frames(buf: &mut BytesMut, mut each: impl FnMut(u8, &[u8])) -> anyhow::Result<()> {
    while let Some((kind, len)) = frame(buf)? {
        each(kind, &buf[..len]);
        buf.advance(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trips_through_rumqttc() {
        for (payload_len, pkid) in [(10, 0), (200, 7), (20_000, 65535)] {
            let payload = vec![b'x'; payload_len];
            let mut buf = BytesMut::new();
            put_publish(&mut buf, b"vitals/p1", &payload, pkid);
            let (kind, len) = frame(&buf).unwrap().unwrap();
            assert_eq!((kind, len), (PUBLISH, buf.len()));
            let Packet::Publish(p) = Packet::read(&mut buf, MAX_INCOMING).unwrap() else {
                panic!("not a publish");
            };
            assert_eq!(p.topic, "vitals/p1");
            assert_eq!(p.payload.len(), payload_len);
            assert_eq!(p.pkid, pkid);
            assert_eq!(
                p.qos,
                if pkid == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                }
            );
        }
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut buf = BytesMut::new();
        put_publish(&mut buf, b"t", &[0; 300], 0);
        assert!(frame(&buf[..1]).unwrap().is_none());
        assert!(frame(&buf[..2]).unwrap().is_none());
        assert!(frame(&buf[..buf.len() - 1]).unwrap().is_none());
        assert!(frame(&[0x30, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
