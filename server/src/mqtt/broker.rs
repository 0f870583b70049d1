//! The embedded rumqttd router: the publish/subscribe core behind Vigil's own MQTT
//! listener. Every device session that subscribes (or publishes outside `vitals/`) gets a
//! local link to it; patient reminders are published into it. Readings on `vitals/` never
//! pass through it: sessions hand them straight to the pipeline.

use std::collections::HashMap;

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, RouterConfig};

use crate::settings::MqttLimits;

/// Commit-log budget per subscription filter (reminders and device-to-device topics are
/// small and rare).
const SEGMENT_SIZE: usize = 1024 * 1024;
const SEGMENT_COUNT: usize = 4;
/// Packets queued towards one link before the router pauses it.
const MAX_OUTGOING_PACKETS: u64 = 1000;

/// The router configuration for `limits`: no network servers (Vigil's listener owns the
/// sockets), one link per device session plus Vigil's own.
pub fn router_config(limits: &MqttLimits) -> Config {
    Config {
        id: 0,
        router: RouterConfig {
            // One slot is Vigil's own: the reminder publisher.
            max_connections: limits.max_connections + 1,
            max_outgoing_packet_count: MAX_OUTGOING_PACKETS,
            max_segment_size: SEGMENT_SIZE,
            max_segment_count: SEGMENT_COUNT,
            custom_segment: Some(HashMap::new()),
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        ..Config::default()
    }
}

/// A running router (its thread is started by `Broker::new`).
pub struct EmbeddedBroker {
    broker: Broker,
}

impl EmbeddedBroker {
    pub fn start(limits: &MqttLimits) -> EmbeddedBroker {
        EmbeddedBroker {
            broker: Broker::new(router_config(limits)),
        }
    }

    /// A new local link named `name`.
    pub fn link(&self, name: &str) -> Result<(LinkTx, LinkRx), String> {
        self.broker.link(name).map_err(|e| e.to_string())
    }
}
