//! Structured logs on stderr (`tracing`): human-readable by default, JSON on request,
//! filtered by `RUST_LOG` (default `info`). Reading values never appear above `debug`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// What is logged when `RUST_LOG` does not say.
const DEFAULT: &str = "info,h2=warn,tower=warn,fjall=warn,lsm_tree=warn";
/// rumqttd names every topic it routes at INFO (a patient id in each reminder's topic):
/// it logs at WARN unless `RUST_LOG` names it.
const ROUTER: &str = "rumqttd=warn";

/// The filter for `RUST_LOG`: the default (the journal's store, fjall and lsm_tree,
/// narrates every recovery step at INFO; Vigil logs the outcome itself), and the router
/// held at WARN unless the variable asks for it by name.
fn directives(rust_log: Option<&str>) -> String {
    let asked = rust_log.map(str::trim).filter(|v| !v.is_empty());
    match asked {
        Some(v) if v.contains("rumqttd") => v.to_string(),
        Some(v) => format!("{v},{ROUTER}"),
        None => format!("{DEFAULT},{ROUTER}"),
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::new(directives(std::env::var("RUST_LOG").ok().as_deref()));
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

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn the_router_logs_at_warn_unless_asked_by_name() {
        assert!(directives(None).ends_with(",rumqttd=warn"));
        assert_eq!(directives(Some("info")), "info,rumqttd=warn");
        assert_eq!(directives(Some("  ")), directives(None));
        assert_eq!(directives(Some("debug,rumqttd=info")), "debug,rumqttd=info");
    }
}
