//! One device connection (MQTT 3.1.1) once CONNECT is accepted (`connect.rs`): PUBLISH on
//! `vitals/` straight into the pipeline (acknowledged once processed), SUBSCRIBE through a
//! local link to the embedded router, keep-alive, takeover by client id, revocation, and
//! the last will.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::acl;
use super::connect::{
    authenticate, connack, connack_code, read_connect, register, Identity, PeerCertificate,
};
use super::front_end::FrontEnd;
use super::persistent::{AttachRefused, Message};
use super::read_size::ReadSize;
use super::session_end::SessionEnd;
use super::subscriptions::Subscriptions;
use super::wire::{flush, kind, write_packet};
use crate::auth::AuthFailure;
use crate::nats::wire::StreamReading;
use crate::telemetry::ConnectRefusal;

/// Room for the topic and header on top of the payload limit.
const HEADER_ALLOWANCE: usize = 512;

/// Serves one connection until it ends.
pub async fn run<S>(
    mut stream: S,
    peer: SocketAddr,
    front: Arc<FrontEnd>,
    certificate: PeerCertificate,
) -> SessionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max_in = front.limits.max_payload_size + HEADER_ALLOWANCE;
    let mut rbuf = BytesMut::with_capacity(4096);
    let mut wbuf = BytesMut::with_capacity(4096);
    let refuse = |refusal: ConnectRefusal| {
        front.pipeline.telemetry().mqtt_refused(refusal);
        connack_code(refusal)
    };
    let connect = match read_connect(&mut stream, &mut rbuf, max_in, &front).await {
        Ok(c) => c,
        Err(SessionEnd::Refused(code)) => {
            refuse(ConnectRefusal::ProtocolVersion);
            let _ = connack(&mut stream, &mut wbuf, code, false).await;
            return SessionEnd::Refused(code);
        }
        Err(end) => return end,
    };
    let Some(_slot) = front.admit() else {
        let code = refuse(ConnectRefusal::MaxConnections);
        let _ = connack(&mut stream, &mut wbuf, code, false).await;
        return SessionEnd::Refused(code);
    };
    let registered = match authenticate(&connect, peer, &front, certificate).await {
        Ok(identity) => register(&front, identity, peer),
        Err(refusal) => Err(refusal),
    };
    let (identity, registration) = match registered {
        Ok(registered) => registered,
        Err(refusal) => {
            let code = refuse(refusal);
            let _ = connack(&mut stream, &mut wbuf, code, false).await;
            return SessionEnd::Refused(code);
        }
    };
    let owner = identity.device.as_ref().map(|(device, _)| device.clone());
    let attached = front.bus.update(|sessions| {
        if connect.clean_session {
            // A clean session ends the client's persistent one (MQTT-3.1.2-6).
            sessions.discard(&identity.client_id, owner.as_deref());
            Ok((false, None))
        } else {
            sessions
                .attach(&identity.client_id, owner.as_deref())
                .map(|(present, wake)| (present, Some(wake)))
        }
    });
    let (present, persistent) = match attached {
        Ok(attached) => attached,
        Err(refused) => {
            let code = refuse(match refused {
                AttachRefused::Full => ConnectRefusal::PersistentSessions,
                AttachRefused::NotOwner => ConnectRefusal::ClientIdTaken,
            });
            let _ = connack(&mut stream, &mut wbuf, code, false).await;
            front.unregister(&identity.client_id, registration.number);
            return SessionEnd::Refused(code);
        }
    };
    let will = connect.last_will.clone();
    let mut session = Session {
        front: front.clone(),
        identity,
        persistent,
        link: None,
        next_pkid: 0,
        incoming_qos2: Vec::new(),
        granted: Subscriptions::default(),
        keep_alive: Duration::from_secs(u64::from(connect.keep_alive)),
        to_store: Vec::new(),
        held_acks: Vec::new(),
    };
    let end = match connack(&mut stream, &mut wbuf, ConnectReturnCode::Success, present).await {
        Ok(()) => {
            session
                .serve(
                    &mut stream,
                    &mut rbuf,
                    &mut wbuf,
                    max_in,
                    registration.takeover,
                )
                .await
        }
        Err(e) => SessionEnd::Io(e),
    };
    if end.publishes_will() {
        if let Some(will) = will {
            session.publish_will(&will.topic, will.message, will.qos, will.retain);
            let readings = std::mem::take(&mut session.to_store);
            if let Err(e) = front.pipeline.store(readings).await {
                debug!(error = %e, "a last will's readings were not stored");
            }
        }
    }
    if let Some(wake) = &session.persistent {
        front.bus.update(|sessions| {
            sessions.detach(&session.identity.client_id, wake, crate::clock::now_ms())
        });
    }
    front.unregister(&session.identity.client_id, registration.number);
    end
}

struct Session {
    front: Arc<FrontEnd>,
    identity: Identity,
    /// Clean session 0: what wakes this connection when the session's store queues a
    /// message (its subscriptions and messages live there, not in the router).
    persistent: Option<Arc<Notify>>,
    /// Clean session 1: the local link to the router, opened on the first subscription.
    link: Option<(LinkTx, LinkRx)>,
    /// Clean session 1: the QoS granted per filter subscribed through the router (what
    /// the router forwards is sent at the highest grant among the filters it matches).
    granted: Subscriptions,
    next_pkid: u16,
    /// QoS 2 packet ids received and processed, awaiting PUBREL.
    incoming_qos2: Vec<u16>,
    keep_alive: Duration,
    /// Cluster mode: readings accepted from this connection's packets, not yet stored in
    /// the readings stream...
    to_store: Vec<StreamReading>,
    /// ...and the acknowledgements that wait for them, in the order of their PUBLISHes.
    held_acks: Vec<Packet>,
}

impl Session {
    async fn serve<S>(
        &mut self,
        stream: &mut S,
        rbuf: &mut BytesMut,
        wbuf: &mut BytesMut,
        max_in: usize,
        takeover: CancellationToken,
    ) -> SessionEnd
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Whatever can end the session is registered once, for the session's life: created
        // anew at every packet, the keep-alive timer (the runtime's timer wheel, under its
        // lock), the two cancellation waiters and the revocation receiver are a visible
        // share of the MQTT threads' time under load.
        let shutdown = self.front.shutdown.clone();
        let shutdown = shutdown.cancelled();
        let takeover = takeover.cancelled();
        let revocations = next_revocation(self.front.auth.devices.changes());
        tokio::pin!(shutdown, takeover, revocations);
        // Keep-alive: 1.5 × the client's interval without a packet ends the session. The
        // timer is armed for that long; when it fires, it moves to what the last packet set.
        let grace = self.keep_alive + self.keep_alive / 2;
        let mut last_heard = tokio::time::Instant::now();
        let silence = tokio::time::sleep(grace);
        tokio::pin!(silence);
        let mut read_size = ReadSize::default();
        loop {
            // Everything already buffered is processed before the next read.
            if let Err(end) = self.drain(rbuf, wbuf, max_in) {
                let _ = flush(stream, wbuf).await;
                return end;
            }
            read_size.shrink(rbuf);
            if let Err(end) = self.store(wbuf).await {
                let _ = flush(stream, wbuf).await;
                return end;
            }
            self.pump(wbuf);
            if let Err(e) = flush(stream, wbuf).await {
                return SessionEnd::Io(e);
            }
            read_size.prepare(rbuf);
            tokio::select! {
                // In this order: no random draw per poll, and a device that never stops
                // sending is still shut down, taken over or revoked.
                biased;
                _ = &mut shutdown => return SessionEnd::Shutdown,
                _ = &mut takeover => return SessionEnd::TakenOver,
                (changed, receiver) = &mut revocations => {
                    if self.is_revoked(changed) {
                        return SessionEnd::Revoked;
                    }
                    revocations.set(next_revocation(receiver));
                }
                read = stream.read_buf(rbuf) => match read {
                    Ok(0) => return SessionEnd::Closed,
                    Ok(n) => {
                        read_size.read(n);
                        last_heard = tokio::time::Instant::now();
                    }
                    Err(e) => return SessionEnd::Io(e),
                },
                forwarded = next_forward(&mut self.link) => {
                    if let Some(publish) = forwarded {
                        self.forward(publish, wbuf);
                    }
                }
                // Queued in the persistent session: written by `pump` at the loop's top.
                () = woken(&self.persistent) => {}
                () = &mut silence, if !self.keep_alive.is_zero() => {
                    let deadline = last_heard + grace;
                    if tokio::time::Instant::now() >= deadline {
                        return SessionEnd::KeepAlive;
                    }
                    silence.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Processes every complete packet in `rbuf`, writing replies into `wbuf`.
    fn drain(
        &mut self,
        rbuf: &mut BytesMut,
        wbuf: &mut BytesMut,
        max_in: usize,
    ) -> Result<(), SessionEnd> {
        loop {
            let packet = match Packet::read(rbuf, max_in) {
                Ok(p) => p,
                Err(CodecError::InsufficientBytes(_)) => return Ok(()),
                Err(e) => return Err(SessionEnd::Protocol(e.to_string())),
            };
            match packet {
                Packet::Publish(p) => self.publish(p, wbuf),
                Packet::PubRel(rel) => {
                    self.incoming_qos2.retain(|id| *id != rel.pkid);
                    write_packet(wbuf, Packet::PubComp(PubComp::new(rel.pkid)));
                }
                Packet::Subscribe(sub) => {
                    let codes: Vec<SubscribeReasonCode> = sub
                        .filters
                        .iter()
                        .map(|f| self.subscribe(&f.path, f.qos))
                        .collect();
                    write_packet(wbuf, Packet::SubAck(SubAck::new(sub.pkid, codes.clone())));
                    // Then what is retained on the filters granted (MQTT-3.3.1-6).
                    for (filter, code) in sub.filters.iter().zip(codes) {
                        if let SubscribeReasonCode::Success(qos) = code {
                            self.send_retained(&filter.path, qos as u8, wbuf);
                        }
                    }
                }
                Packet::Unsubscribe(unsub) => {
                    if self.persistent.is_some() {
                        self.front.bus.update(|sessions| {
                            for topic in &unsub.topics {
                                sessions.unsubscribe(&self.identity.client_id, topic);
                            }
                        });
                    } else if let Some((tx, _)) = &mut self.link {
                        for topic in unsub.topics {
                            self.granted.remove(&topic);
                            let _ = tx.unsubscribe(topic);
                        }
                    }
                    write_packet(wbuf, Packet::UnsubAck(UnsubAck::new(unsub.pkid)));
                }
                Packet::PingReq => write_packet(wbuf, Packet::PingResp),
                // A persistent session's QoS 1 message is delivered: it is not sent again.
                Packet::PubAck(ack) => {
                    if self.persistent.is_some() {
                        self.front
                            .bus
                            .update(|sessions| sessions.ack(&self.identity.client_id, ack.pkid));
                    }
                }
                // Nothing is sent with QoS 2 (subscriptions are granted QoS 1 at most).
                Packet::PubRec(_) | Packet::PubComp(_) => {}
                Packet::Disconnect => return Err(SessionEnd::Disconnected),
                other => {
                    return Err(SessionEnd::Protocol(format!(
                        "unexpected {} from a client",
                        kind(&other)
                    )))
                }
            }
        }
    }

    fn publish(&mut self, p: Publish, wbuf: &mut BytesMut) {
        let allowed = self.may_publish(&p.topic);
        if let (false, Some((device, _))) = (allowed, &self.identity.device) {
            self.front.auth.failures.record(
                AuthFailure::PublishDenied,
                device,
                &format!("device {device}"),
                &p.topic,
            );
        }
        // A QoS 2 retransmission of a publish already processed is acknowledged only.
        let repeat = p.qos == QoS::ExactlyOnce && self.incoming_qos2.contains(&p.pkid);
        if allowed && !repeat {
            self.deliver(&p.topic, p.payload, p.qos as u8, p.retain);
        }
        // A denied publish is acknowledged and dropped (as Mosquitto does): MQTT 3.1.1 has
        // no negative acknowledgement, and a device retrying forever helps nobody.
        let ack = match p.qos {
            QoS::AtMostOnce => return,
            QoS::AtLeastOnce => Packet::PubAck(PubAck::new(p.pkid)),
            QoS::ExactlyOnce => {
                if !repeat {
                    self.incoming_qos2.push(p.pkid);
                }
                Packet::PubRec(PubRec::new(p.pkid))
            }
        };
        // In cluster mode an acknowledgement waits for the readings before it (of this
        // packet or an earlier one) to be stored; acknowledgements keep their order.
        if self.to_store.is_empty() && self.held_acks.is_empty() {
            write_packet(wbuf, ack);
        } else {
            self.held_acks.push(ack);
        }
    }

    /// Cluster mode: stores the readings taken from the packets just processed, then
    /// releases the acknowledgements that waited for them.
    async fn store(&mut self, wbuf: &mut BytesMut) -> Result<(), SessionEnd> {
        if !self.to_store.is_empty() {
            let readings = std::mem::take(&mut self.to_store);
            self.front
                .pipeline
                .store(readings)
                .await
                .map_err(SessionEnd::Unstored)?;
        }
        for ack in self.held_acks.drain(..) {
            write_packet(wbuf, ack);
        }
        Ok(())
    }

    /// Clean session 0: writes what the session's store has for this connection.
    fn pump(&mut self, wbuf: &mut BytesMut) {
        let Some(wake) = &self.persistent else {
            return;
        };
        let out = {
            let mut sessions = self.front.bus.sessions.lock();
            let out = sessions.next_out(&self.identity.client_id, wake);
            if !out.is_empty() {
                self.front.bus.changed(&sessions);
            }
            out
        };
        for o in out {
            let m = &o.message;
            let packet = publish_packet(m.topic(), m.payload(), m.qos, o.pkid, o.dup, m.retain);
            write_packet(wbuf, Packet::Publish(packet));
        }
    }

    /// The retained messages matching a filter just granted `granted`: queued in a
    /// persistent session, written at once otherwise.
    fn send_retained(&mut self, filter: &str, granted: u8, wbuf: &mut BytesMut) {
        let retained = self.front.bus.retained_for(filter);
        if retained.is_empty() {
            return;
        }
        if self.persistent.is_some() {
            self.front.bus.update(|sessions| {
                for (topic, r) in retained {
                    let message = Message::new(&topic, &r.payload, r.qos.min(granted), true);
                    sessions.enqueue(&self.identity.client_id, message);
                }
            });
            return;
        }
        for (topic, r) in retained {
            let qos = r.qos.min(granted);
            let pkid = if qos == 0 { 0 } else { self.next_pkid() };
            let packet = publish_packet(&topic, r.payload, qos, pkid, false, true);
            write_packet(wbuf, Packet::Publish(packet));
        }
    }

    fn next_pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }

    fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        if let Some((device, patient)) = &self.identity.device {
            if !acl::may_subscribe(patient, filter) {
                self.front.auth.failures.record(
                    AuthFailure::SubscribeDenied,
                    device,
                    &format!("device {device}"),
                    filter,
                );
                return SubscribeReasonCode::Failure;
            }
        }
        // Delivered at most with QoS 1 (QoS 2 downgraded, as the spec allows).
        let granted = match qos {
            QoS::AtMostOnce => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        };
        if self.persistent.is_some() {
            let mut sessions = self.front.bus.sessions.lock();
            if !sessions.subscribe(&self.identity.client_id, filter, granted as u8) {
                return SubscribeReasonCode::Failure;
            }
            self.front.bus.changed(&sessions);
            return SubscribeReasonCode::Success(granted);
        }
        let Some((tx, _)) = self.link() else {
            return SubscribeReasonCode::Failure;
        };
        match tx.subscribe(filter) {
            Ok(_) => {
                self.granted.set(filter, granted as u8, usize::MAX);
                SubscribeReasonCode::Success(granted)
            }
            Err(_) => SubscribeReasonCode::Failure,
        }
    }

    /// The session's link, opened on first use.
    fn link(&mut self) -> Option<&mut (LinkTx, LinkRx)> {
        if self.link.is_none() {
            // rumqttd refuses '#', '+' and '/' in link names and logs them at info: a
            // number keeps client ids (which may name a patient) out of its log.
            let name = format!("session-{}", self.front.next_connection_number());
            match self.front.broker.link(&name) {
                Ok(link) => self.link = Some(link),
                Err(e) => debug!(error = %e, "cannot open a router link"),
            }
        }
        self.link.as_mut()
    }

    /// A publish from the router to this device, at the QoS its subscription was granted
    /// (never above it, MQTT-3.8.4-6; QoS 1 is not retried: clean session).
    fn forward(&mut self, publish: rumqttd::protocol::Publish, wbuf: &mut BytesMut) {
        let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
            return;
        };
        let qos = self.granted.grant(&topic).unwrap_or(1);
        let pkid = if qos == 0 { 0 } else { self.next_pkid() };
        let packet = publish_packet(&topic, publish.payload, qos, pkid, false, false);
        write_packet(wbuf, Packet::Publish(packet));
    }

    fn publish_will(&mut self, topic: &str, message: bytes::Bytes, qos: QoS, retain: bool) {
        if self.may_publish(topic) {
            self.deliver(topic, message, qos as u8, retain);
        }
    }

    /// Whether this connection may publish to `topic` (anything, without authentication).
    fn may_publish(&self, topic: &str) -> bool {
        self.identity
            .device
            .as_ref()
            .is_none_or(|(_, patient)| acl::may_publish(patient, topic))
    }

    /// An allowed publish: readings to the pipeline (a retain flag there changes nothing),
    /// anything else to the bus.
    fn deliver(&mut self, topic: &str, payload: bytes::Bytes, qos: u8, retain: bool) {
        if topic.starts_with("vitals/") {
            let accepted =
                self.front
                    .pipeline
                    .mqtt_publish(topic.as_bytes(), &payload, Instant::now());
            self.to_store.extend(accepted);
        } else {
            self.front.bus.publish(topic, payload, qos, retain);
        }
    }

    fn is_revoked(
        &self,
        changed: Result<String, tokio::sync::broadcast::error::RecvError>,
    ) -> bool {
        let Some((device, _)) = &self.identity.device else {
            return false;
        };
        match changed {
            Ok(id) => id == *device,
            // Missed some changes: end unless the device is still bound to this patient.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                self.front.auth.devices.patient_of(device).as_ref()
                    != self.identity.device.as_ref().map(|(_, p)| p)
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
        }
    }
}

/// The next publish the router forwards to this session's link (pending forever without
/// a link).
async fn next_forward(link: &mut Option<(LinkTx, LinkRx)>) -> Option<rumqttd::protocol::Publish> {
    let Some((_, rx)) = link else {
        return std::future::pending().await;
    };
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(f))) => return Some(f.publish),
            Ok(Some(Notification::Unschedule)) => {
                let _ = rx.wake().await;
            }
            Ok(_) => {}
            Err(_) => return std::future::pending().await,
        }
    }
}

/// Resolves when the persistent session's store has queued something (never for a clean
/// session).
async fn woken(persistent: &Option<Arc<Notify>>) {
    match persistent {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
    }
}

/// A PUBLISH to this client at `qos` 0 or 1 (`pkid` 0 with QoS 0).
fn publish_packet(
    topic: &str,
    payload: bytes::Bytes,
    qos: u8,
    pkid: u16,
    dup: bool,
    retain: bool,
) -> Publish {
    let qos = if qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let mut p = Publish::new(topic, qos, Vec::new());
    p.payload = payload;
    p.pkid = pkid;
    p.dup = dup;
    p.retain = retain;
    p
}

/// The next device id whose credentials changed, and the receiver to wait for the one
/// after (owned, so that one registration lasts from change to change). Never ends once
/// the device book is gone (no more changes can come).
async fn next_revocation(
    mut changes: tokio::sync::broadcast::Receiver<String>,
) -> (
    Result<String, tokio::sync::broadcast::error::RecvError>,
    tokio::sync::broadcast::Receiver<String>,
) {
    match changes.recv().await {
        Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending().await,
        changed => (changed, changes),
    }
}
