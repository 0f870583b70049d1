//! The command-line tools beside `serve`: following the alert stream, the simulated ward and
//! the demo, rules over gRPC, validating a configuration, creating credentials.

pub mod credentials;
pub mod demo;
pub mod feed;
pub mod grpc_client;
pub mod notifiers;
pub mod rules;
pub mod rules_check;
pub mod rules_diff;
pub mod simulate;
pub mod tail;
pub mod ward;
