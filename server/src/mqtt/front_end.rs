//! What every MQTT session shares: the pipeline, authentication, the router, the limits,
//! and the registry of sessions by client id and device (the connection limit, the
//! per-device session limit, client-id takeover).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::broker::EmbeddedBroker;
use super::bus::Bus;
use crate::app::ingest::Pipeline;
use crate::auth::Auth;
use crate::settings::MqttLimits;

/// What every session shares.
pub struct FrontEnd {
    pub pipeline: Arc<Pipeline>,
    pub auth: Arc<Auth>,
    pub broker: EmbeddedBroker,
    /// Publishes outside `vitals/`, persistent sessions, retained messages.
    pub bus: Arc<Bus>,
    pub limits: MqttLimits,
    pub shutdown: CancellationToken,
    /// TLS on the listener, when `[tls]` is configured.
    pub tls: Option<TlsAcceptor>,
    connections: AtomicUsize,
    numbers: AtomicU64,
    sessions: Mutex<Registry>,
}

/// The sessions that hold a client id, and how many each device holds.
#[derive(Default)]
struct Registry {
    /// Client id → the session holding it: a new CONNECT of the same identity with the
    /// same client id ends the old session (MQTT 3.1.1 §3.1.4).
    held: HashMap<String, Held>,
    /// Device id → its sessions (authenticated sessions only).
    per_device: HashMap<Arc<str>, usize>,
}

struct Held {
    number: u64,
    takeover: CancellationToken,
    /// The authenticated device, `None` without authentication.
    device: Option<Arc<str>>,
}

/// Why a session could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The device already holds `max_sessions_per_device` sessions.
    SessionLimit,
    /// Another identity's session holds the client id.
    ClientIdTaken,
}

/// A registered session: the token that ends it on takeover, its number, and whether it
/// took the client id over from an earlier session.
pub struct Registration {
    pub takeover: CancellationToken,
    pub number: u64,
    pub took_over: bool,
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
        bus: Arc<Bus>,
        limits: MqttLimits,
        shutdown: CancellationToken,
        tls: Option<TlsAcceptor>,
    ) -> FrontEnd {
        FrontEnd {
            pipeline,
            auth,
            broker,
            bus,
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

    /// Registers a session of `device` (`None` without authentication) under `client_id`.
    /// A client id held by the same identity is taken over (the earlier session ends); one
    /// held by another identity is refused, and the holder stays. A device holding
    /// `max_sessions_per_device` sessions gets no more (a takeover replaces one, so it is
    /// not counted).
    pub fn register(&self, client_id: &str, device: Option<&str>) -> Result<Registration, Refused> {
        let mut registry = self.sessions.lock().expect("session registry");
        let number = self.next_connection_number();
        let takeover = CancellationToken::new();
        if let Some(held) = registry.held.get_mut(client_id) {
            if held.device.as_deref() != device {
                return Err(Refused::ClientIdTaken);
            }
            held.takeover.cancel();
            held.number = number;
            held.takeover = takeover.clone();
            return Ok(Registration {
                takeover,
                number,
                took_over: true,
            });
        }
        let device = device.map(Arc::<str>::from);
        if let Some(device) = &device {
            let held = registry.per_device.entry(device.clone()).or_insert(0);
            if *held >= self.limits.max_sessions_per_device {
                return Err(Refused::SessionLimit);
            }
            *held += 1;
        }
        registry.held.insert(
            client_id.to_string(),
            Held {
                number,
                takeover: takeover.clone(),
                device,
            },
        );
        Ok(Registration {
            takeover,
            number,
            took_over: false,
        })
    }

    /// Removes the registration, unless a newer session has taken the client id.
    pub fn unregister(&self, client_id: &str, number: u64) {
        let mut registry = self.sessions.lock().expect("session registry");
        if registry
            .held
            .get(client_id)
            .is_none_or(|h| h.number != number)
        {
            return;
        }
        let held = registry.held.remove(client_id).expect("checked above");
        if let Some(device) = held.device {
            if let Some(count) = registry.per_device.get_mut(&device) {
                *count -= 1;
                if *count == 0 {
                    registry.per_device.remove(&device);
                }
            }
        }
    }
}
