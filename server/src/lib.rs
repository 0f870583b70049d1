//! The Vigil server as a library: configuration, the MQTT listener, the gRPC API, auth,
//! TLS, metrics and the CLI's commands. The `vigil` binary (`main.rs`) only dispatches to
//! it; the library exists so that fuzz targets (`server/fuzz/`) reach the configuration
//! parser the binary uses.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod grpc;
pub mod http;
pub mod mqtt;
pub mod nats;
pub mod process;
pub mod serve;
pub mod settings;
pub mod telemetry;
pub mod tls;
pub mod untrusted;
