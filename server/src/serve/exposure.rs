//! Safe defaults: Vigil refuses to listen beyond loopback without authentication, because
//! anyone who can reach an unauthenticated listener can publish readings for any patient
//! and read every alert. `--insecure` overrides it for lab use, loudly.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::settings::Settings;

/// How often a server started with `--insecure` says so again.
pub const INSECURE_WARNING_EVERY: Duration = Duration::from_secs(60);

/// A listener that would be reachable from other machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    pub listener: &'static str,
    pub addr: SocketAddr,
}

impl std::fmt::Display for Exposed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.listener, self.addr)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "refusing to listen beyond loopback without authentication: {}. Anyone who can reach \
     these addresses could publish readings for any patient and read every alert. Turn on \
     authentication (`[auth] enabled = true` in the configuration file, with [[tokens]] for \
     gRPC clients and [[devices]] for MQTT devices: see docs/operations.md, Authentication), or listen \
     on 127.0.0.1 (the default), or, for a lab network only, start with --insecure",
    list(.0)
)]
pub struct ExposureRefused(pub Vec<Exposed>);

fn list(exposed: &[Exposed]) -> String {
    exposed
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The listeners of `settings` that are not on a loopback address and not protected:
/// with authentication on, MQTT asks devices for credentials and confines them to their
/// patient's topics, gRPC asks for tokens, and metrics carry no patient data.
pub fn exposed(settings: &Settings, auth_enabled: bool) -> Vec<Exposed> {
    [
        ("MQTT", settings.mqtt_addr, auth_enabled),
        ("gRPC", settings.grpc_addr, auth_enabled),
        ("metrics", settings.metrics_addr, auth_enabled),
        ("HTTP", settings.http_addr, auth_enabled),
    ]
    .into_iter()
    .filter(|(_, addr, protected)| !addr.ip().is_loopback() && !protected)
    .map(|(listener, addr, _)| Exposed { listener, addr })
    .collect()
}

/// Refuses exposed, unprotected listeners unless `insecure`; with it, returns what is
/// exposed so the caller can keep warning.
pub fn check(
    settings: &Settings,
    auth_enabled: bool,
    insecure: bool,
) -> Result<Vec<Exposed>, ExposureRefused> {
    let exposed = exposed(settings, auth_enabled);
    if exposed.is_empty() || insecure {
        Ok(exposed)
    } else {
        Err(ExposureRefused(exposed))
    }
}

/// Logs a warning now and every [`INSECURE_WARNING_EVERY`] until `stop`.
pub fn keep_warning(exposed: Vec<Exposed>, stop: CancellationToken) {
    if exposed.is_empty() {
        return;
    }
    let what = list(&exposed);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(INSECURE_WARNING_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => warn!(
                    listeners = %what,
                    "running with --insecure: these listeners accept anyone who can reach them, \
                     without authentication; for lab use only"
                ),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mqtt: &str, grpc: &str, metrics: &str) -> Settings {
        Settings {
            mqtt_addr: mqtt.parse().unwrap(),
            grpc_addr: grpc.parse().unwrap(),
            metrics_addr: metrics.parse().unwrap(),
            ..Settings::default()
        }
    }

    #[test]
    fn loopback_listeners_are_fine() {
        let s = settings("127.0.0.1:1883", "[::1]:50051", "127.0.0.2:0");
        assert_eq!(check(&s, false, false), Ok(vec![]));
    }

    #[test]
    fn any_listener_beyond_loopback_is_refused_unless_insecure() {
        let s = settings("0.0.0.0:1883", "127.0.0.1:50051", "10.0.0.5:9464");
        let err = check(&s, false, false).unwrap_err();
        assert_eq!(
            err.0,
            vec![
                Exposed {
                    listener: "MQTT",
                    addr: "0.0.0.0:1883".parse().unwrap()
                },
                Exposed {
                    listener: "metrics",
                    addr: "10.0.0.5:9464".parse().unwrap()
                }
            ]
        );
        let message = err.to_string();
        assert!(message.contains("MQTT on 0.0.0.0:1883, metrics on 10.0.0.5:9464"));
        assert!(message.contains("--insecure") && message.contains("127.0.0.1"));
        assert_eq!(check(&s, false, true).unwrap().len(), 2);
        assert_eq!(
            check(
                &settings("[::]:1", "127.0.0.1:2", "127.0.0.1:3"),
                false,
                false
            )
            .unwrap_err()
            .0
            .len(),
            1
        );
        // With authentication on, every listener may face the network.
        let s = settings("0.0.0.0:1883", "0.0.0.0:50051", "10.0.0.5:9464");
        assert_eq!(check(&s, true, false), Ok(vec![]));
        assert_eq!(check(&s, false, false).unwrap_err().0.len(), 3);
    }

    #[test]
    fn the_console_listener_follows_the_same_rule() {
        let s = Settings {
            http_addr: "0.0.0.0:8080".parse().unwrap(),
            ..Settings::default()
        };
        let err = check(&s, false, false).unwrap_err();
        assert_eq!(
            err.0,
            vec![Exposed {
                listener: "HTTP",
                addr: "0.0.0.0:8080".parse().unwrap()
            }]
        );
        assert_eq!(check(&s, true, false), Ok(vec![]));
    }
}
