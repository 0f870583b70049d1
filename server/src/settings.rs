//! Effective server settings: embedded defaults, overridden by the configuration file,
//! overridden by command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vigil_alerting::event_log::{DEFAULT_RETAINED_EVENTS, DEFAULT_SUBSCRIBER_BUFFER};
use vigil_ingest::validate::{DEFAULT_MAX_FUTURE_SKEW, DEFAULT_MAX_READING_AGE};

use vigil_ingest::dedup::DedupLimits;

use crate::auth::slow_checks;
use crate::auth::throttle::ThrottlePolicy;
use crate::cli::ServeArgs;
use crate::config::FileConfig;

/// Limits of the embedded MQTT broker.
#[derive(Debug, Clone)]
pub struct MqttLimits {
    pub max_payload_size: usize,
    pub max_connections: usize,
    pub max_inflight: usize,
    pub connection_timeout: Duration,
    /// Sessions one authenticated device may hold at once.
    pub max_sessions_per_device: usize,
    pub listen_backlog: u32,
    /// Persistent sessions (clean session 0) kept at most, connected or not.
    pub max_persistent_sessions: usize,
    /// Messages one persistent session holds at most while its client is away (the
    /// oldest is dropped).
    pub max_queued_messages: usize,
    /// Topic and payload bytes all persistent sessions hold at most together.
    pub max_queued_bytes: usize,
    /// A persistent session whose client stays away longer is removed.
    pub session_expiry: Duration,
    pub max_retained_messages: usize,
    /// Topic and payload bytes of all retained messages together.
    pub max_retained_bytes: usize,
}

impl Default for MqttLimits {
    fn default() -> Self {
        MqttLimits {
            max_payload_size: 64 * 1024,
            max_connections: 10_000,
            max_inflight: 100,
            connection_timeout: Duration::from_secs(5),
            max_sessions_per_device: 4,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            max_persistent_sessions: 10_000,
            max_queued_messages: 100,
            max_queued_bytes: 64 * 1024 * 1024,
            session_expiry: Duration::from_secs(7 * 24 * 3600),
            max_retained_messages: 10_000,
            max_retained_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Pending connections a listener lets the kernel queue: a fleet reconnecting after a
/// restart arrives in bursts of thousands, and the kernel's usual 128 stalls them for a
/// second (SYN retransmission) beyond it.
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

/// Limits on what callers may ask of authentication (`[auth]`).
#[derive(Debug, Clone)]
pub struct AuthLimits {
    /// The longest silence or snooze a care-team token may set.
    pub max_silence: Duration,
    pub throttle: ThrottlePolicy,
    pub check_workers: usize,
    pub check_queue: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            max_silence: Duration::from_secs(24 * 3600),
            throttle: ThrottlePolicy::default(),
            check_workers: slow_checks::DEFAULT_WORKERS,
            check_queue: slow_checks::DEFAULT_QUEUE,
        }
    }
}

/// Rotation of the audit log (`[audit]`).
#[derive(Debug, Clone, Copy)]
pub struct AuditLimits {
    pub max_file_bytes: u64,
    pub keep_files: usize,
}

impl Default for AuditLimits {
    fn default() -> Self {
        AuditLimits {
            max_file_bytes: 64 << 20,
            keep_files: 9,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mqtt_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The IANA time zone the console shows times in.
    pub timezone: String,
    /// The console's address in links sent to people (default: `http://` + the HTTP listener).
    pub external_url: Option<String>,
    /// History every window keeps at least, for charts (0: what the rules need).
    pub chart_history: Duration,
    pub data_dir: PathBuf,
    pub max_reading_age: Duration,
    pub max_future_skew: Duration,
    pub retained_events: usize,
    pub subscriber_buffer: usize,
    /// Open alert subscriptions at most.
    pub max_subscribers: usize,
    /// Journal retention of alert events.
    pub retention: Duration,
    /// How often changed windows are snapshotted.
    pub snapshot_interval: Duration,
    /// How long a graceful shutdown may take (`None`: sized by the data at shutdown).
    pub shutdown_grace: Option<Duration>,
    /// Pending connections the gRPC and metrics listeners let the kernel queue.
    pub listen_backlog: u32,
    pub dedup: DedupLimits,
    pub mqtt: MqttLimits,
    pub auth: AuthLimits,
    pub audit: AuditLimits,
    pub fhir: FhirSettings,
}

/// FHIR ingest on the HTTP listener (`[fhir]`).
#[derive(Debug, Clone)]
pub struct FhirSettings {
    pub max_body_bytes: usize,
    pub mapping: vigil_ingest::fhir::Mapping,
}

impl Default for FhirSettings {
    fn default() -> Self {
        FhirSettings {
            max_body_bytes: 1 << 20,
            mapping: vigil_ingest::fhir::Mapping::default(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mqtt_addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            timezone: crate::clock::host_timezone(),
            chart_history: Duration::ZERO,
            external_url: None,
            data_dir: PathBuf::from("vigil-data"),
            max_reading_age: DEFAULT_MAX_READING_AGE,
            max_future_skew: DEFAULT_MAX_FUTURE_SKEW,
            retained_events: DEFAULT_RETAINED_EVENTS,
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            max_subscribers: 10_000,
            retention: Duration::from_secs(30 * 86_400),
            snapshot_interval: Duration::from_secs(10),
            shutdown_grace: None,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            dedup: DedupLimits::default(),
            mqtt: MqttLimits::default(),
            auth: AuthLimits::default(),
            audit: AuditLimits::default(),
            fhir: FhirSettings::default(),
        }
    }
}

impl Settings {
    /// Defaults ← file ← flags.
    pub fn resolve(file: &FileConfig, args: &ServeArgs) -> Settings {
        let d = Settings::default();
        let s = &file.server;
        let m = &file.mqtt;
        let a = &file.auth;
        let listen_backlog = s.listen_backlog.map_or(d.listen_backlog, |n| n.get());
        Settings {
            mqtt_addr: args.mqtt_addr.or(s.mqtt_addr).unwrap_or(d.mqtt_addr),
            grpc_addr: args.grpc_addr.or(s.grpc_addr).unwrap_or(d.grpc_addr),
            metrics_addr: args
                .metrics_addr
                .or(s.metrics_addr)
                .unwrap_or(d.metrics_addr),
            http_addr: args.http_addr.or(s.http_addr).unwrap_or(d.http_addr),
            timezone: s.timezone.clone().unwrap_or(d.timezone),
            chart_history: s.chart_history.unwrap_or(d.chart_history),
            external_url: s.external_url.clone(),
            data_dir: args
                .data_dir
                .clone()
                .or(s.data_dir.clone())
                .unwrap_or(d.data_dir),
            max_reading_age: s.max_reading_age.unwrap_or(d.max_reading_age),
            max_future_skew: s.max_future_skew.unwrap_or(d.max_future_skew),
            retained_events: s.retained_events.unwrap_or(d.retained_events),
            subscriber_buffer: s.subscriber_buffer.unwrap_or(d.subscriber_buffer),
            max_subscribers: s.max_subscribers.map_or(d.max_subscribers, |n| n.get()),
            retention: s.retention.unwrap_or(d.retention),
            snapshot_interval: s
                .snapshot_interval
                .filter(|d| !d.is_zero())
                .unwrap_or(d.snapshot_interval),
            shutdown_grace: s.shutdown_grace.filter(|d| !d.is_zero()),
            listen_backlog,
            dedup: DedupLimits {
                devices: s.dedup_devices.map_or(d.dedup.devices, |n| n.get()),
                per_patient: s
                    .dedup_devices_per_patient
                    .map_or(d.dedup.per_patient, |n| n.get()),
            },
            mqtt: MqttLimits {
                max_payload_size: m.max_payload_size.unwrap_or(d.mqtt.max_payload_size),
                max_connections: m.max_connections.unwrap_or(d.mqtt.max_connections),
                max_inflight: m.max_inflight.unwrap_or(d.mqtt.max_inflight),
                connection_timeout: m.connection_timeout.unwrap_or(d.mqtt.connection_timeout),
                max_sessions_per_device: m
                    .max_sessions_per_device
                    .map_or(d.mqtt.max_sessions_per_device, |n| n.get()),
                listen_backlog: m.listen_backlog.map_or(listen_backlog, |n| n.get()),
                max_persistent_sessions: m
                    .max_persistent_sessions
                    .unwrap_or(d.mqtt.max_persistent_sessions),
                max_queued_messages: m
                    .max_queued_messages
                    .map_or(d.mqtt.max_queued_messages, |n| n.get()),
                max_queued_bytes: m.max_queued_bytes.unwrap_or(d.mqtt.max_queued_bytes),
                session_expiry: m.session_expiry.unwrap_or(d.mqtt.session_expiry),
                max_retained_messages: m
                    .max_retained_messages
                    .unwrap_or(d.mqtt.max_retained_messages),
                max_retained_bytes: m.max_retained_bytes.unwrap_or(d.mqtt.max_retained_bytes),
            },
            auth: AuthLimits {
                max_silence: a.max_silence.unwrap_or(d.auth.max_silence),
                throttle: ThrottlePolicy {
                    failure_delay: a.failure_delay.unwrap_or(d.auth.throttle.failure_delay),
                    max_failures: a.max_failures.unwrap_or(d.auth.throttle.max_failures),
                    lockout: a.lockout.unwrap_or(d.auth.throttle.lockout),
                },
                check_workers: a
                    .password_check_workers
                    .map_or(d.auth.check_workers, |n| n.get()),
                check_queue: a.password_check_queue.unwrap_or(d.auth.check_queue),
            },
            audit: AuditLimits {
                max_file_bytes: file
                    .audit
                    .max_file_bytes
                    .map_or(d.audit.max_file_bytes, |n| n.get()),
                keep_files: file.audit.keep_files.unwrap_or(d.audit.keep_files),
            },
            fhir: FhirSettings {
                max_body_bytes: file.fhir.max_body_bytes.map_or(d.fhir.max_body_bytes, |n| {
                    usize::try_from(n.get()).unwrap_or(usize::MAX)
                }),
                mapping: vigil_ingest::fhir::Mapping {
                    patient_identifier_system: file.fhir.patient_identifier_system.clone(),
                },
            },
        }
    }
}
