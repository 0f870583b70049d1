//! MQTT: Vigil's own listener and device sessions (readings on `vitals/` go straight to the
//! pipeline), topic access rules, the embedded rumqttd router for clean sessions'
//! subscriptions, persistent sessions and retained messages (the bus).

pub mod acl;
pub mod broker;
pub mod bus;
pub mod connect;
pub mod front_end;
pub mod listener;
pub mod persistent;
pub mod read_size;
pub mod reminders;
pub mod retained;
pub mod session;
pub mod session_end;
pub mod subscriptions;
pub mod wire;
