//! The Vigil server as a library: configuration, the MQTT listener, the gRPC API, auth,
//! TLS, metrics and the CLI's commands. The `vigil` binary (`main.rs`) only dispatches to
//! it; the library exists so that fuzz targets (`server/fuzz/`) reach the configuration
//! parser the binary uses.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod cpu_priority;
pub mod credentials_cmd;
pub mod data_dir;
pub mod demo;
pub mod exposure;
pub mod feed;
pub mod grpc;
pub mod grpc_client;
pub mod huge_pages;
pub mod journal_upkeep;
pub mod logging;
pub mod metrics_http;
pub mod mqtt;
pub mod notify;
pub mod pipeline;
pub mod recovery;
pub mod repeat_limit;
pub mod rules_check;
pub mod rules_cmd;
pub mod serve;
pub mod settings;
pub mod simulate;
pub mod tail;
pub mod telemetry;
pub mod tls;
pub mod untrusted;
pub mod ward;
