//! MQTT: Vigil's own listener and device sessions (readings on `vitals/` go straight to the
//! pipeline), topic access rules, and the embedded rumqttd router for subscriptions.

pub mod acl;
pub mod broker;
pub mod connect;
pub mod front_end;
pub mod listener;
pub mod reminders;
pub mod session;
pub mod session_end;
pub mod wire;
