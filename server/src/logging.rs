//! Structured logs on stderr (`tracing`): human-readable by default, JSON on request,
//! filtered by `RUST_LOG` (default `info`). Reading values never appear above `debug`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat) {
    // rumqttd logs ordinary client disconnects at ERROR; its logs are opt-in
    // (RUST_LOG=info,rumqttd=warn) so they do not drown out Vigil's own.
    // The journal's store (fjall, lsm_tree) narrates every recovery step at INFO; Vigil
    // logs the recovery's outcome itself.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,rumqttd=off,h2=warn,tower=warn,fjall=warn,lsm_tree=warn")
    });
    // Colours only on a terminal: a log file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
