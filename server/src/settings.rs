//! Effective server settings: embedded defaults, overridden by the configuration file,
//! overridden by command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vigil_alerting::event_log::{DEFAULT_RETAINED_EVENTS, DEFAULT_SUBSCRIBER_BUFFER};
use vigil_ingest::validate::{DEFAULT_MAX_FUTURE_SKEW, DEFAULT_MAX_READING_AGE};

use crate::cli::ServeArgs;
use crate::config::FileConfig;

/// Limits of the embedded MQTT broker.
#[derive(Debug, Clone)]
pub struct MqttLimits {
    pub max_payload_size: usize,
    pub max_connections: usize,
    pub max_inflight: usize,
    pub connection_timeout: Duration,
}

impl Default for MqttLimits {
    fn default() -> Self {
        MqttLimits {
            max_payload_size: 64 * 1024,
            max_connections: 10_000,
            max_inflight: 100,
            connection_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mqtt_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub max_reading_age: Duration,
    pub max_future_skew: Duration,
    pub retained_events: usize,
    pub subscriber_buffer: usize,
    /// Journal retention of alert events.
    pub retention: Duration,
    /// How often changed windows are snapshotted.
    pub snapshot_interval: Duration,
    pub mqtt: MqttLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mqtt_addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            data_dir: PathBuf::from("vigil-data"),
            max_reading_age: DEFAULT_MAX_READING_AGE,
            max_future_skew: DEFAULT_MAX_FUTURE_SKEW,
            retained_events: DEFAULT_RETAINED_EVENTS,
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            retention: Duration::from_secs(30 * 86_400),
            snapshot_interval: Duration::from_secs(10),
            mqtt: MqttLimits::default(),
        }
    }
}

impl Settings {
    /// Defaults ← file ← flags.
    pub fn resolve(file: &FileConfig, args: &ServeArgs) -> Settings {
        let d = Settings::default();
        let s = &file.server;
        let m = &file.mqtt;
        Settings {
            mqtt_addr: args.mqtt_addr.or(s.mqtt_addr).unwrap_or(d.mqtt_addr),
            grpc_addr: args.grpc_addr.or(s.grpc_addr).unwrap_or(d.grpc_addr),
            metrics_addr: args
                .metrics_addr
                .or(s.metrics_addr)
                .unwrap_or(d.metrics_addr),
            data_dir: args
                .data_dir
                .clone()
                .or(s.data_dir.clone())
                .unwrap_or(d.data_dir),
            max_reading_age: s.max_reading_age.unwrap_or(d.max_reading_age),
            max_future_skew: s.max_future_skew.unwrap_or(d.max_future_skew),
            retained_events: s.retained_events.unwrap_or(d.retained_events),
            subscriber_buffer: s.subscriber_buffer.unwrap_or(d.subscriber_buffer),
            retention: s.retention.unwrap_or(d.retention),
            snapshot_interval: s
                .snapshot_interval
                .filter(|d| !d.is_zero())
                .unwrap_or(d.snapshot_interval),
            mqtt: MqttLimits {
                max_payload_size: m.max_payload_size.unwrap_or(d.mqtt.max_payload_size),
                max_connections: m.max_connections.unwrap_or(d.mqtt.max_connections),
                max_inflight: m.max_inflight.unwrap_or(d.mqtt.max_inflight),
                connection_timeout: m.connection_timeout.unwrap_or(d.mqtt.connection_timeout),
            },
        }
    }
}
