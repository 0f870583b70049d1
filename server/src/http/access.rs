//! Who is asking, for every console page and API call: a bearer token, a session cookie, or
//! nobody (authentication off, loopback only). Refuses what the caller may not do before a
//! handler runs: no credentials (401, or the sign-in page for a browser), a state change
//! without the session's CSRF token or from another origin (403), and with authentication
//! off a `Host` that is not an address or `localhost` (DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::error::{HttpError, HttpResult};
use super::session::{cookie_value, COOKIE};
use super::Console;
use crate::app::Caller;
use crate::auth::role::Service;
use crate::auth::{AuthFailure, Role};

/// The header a state change carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who it is.
#[derive(Debug, Clone)]
pub enum Via {
    /// Authentication is off.
    Open,
    /// An `Authorization: Bearer` header: not ambient, so no CSRF token is needed.
    Bearer,
    /// A session cookie.
    Session { cookie: String, csrf: String },
}

/// The checked caller, in each request's extensions.
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Caller,
    pub via: Via,
}

impl Access {
    /// Refuses a caller whose role may not call `service` (as gRPC does).
    pub fn require(&self, console: &Console, service: Service) -> HttpResult<()> {
        self.require_role(console, service.name(), |r| r.may_call(service))
    }

    /// Refuses a caller who may not see patients: care-team and viewer tokens (their own
    /// team's) and admin tokens may.
    pub fn require_patients(&self, console: &Console) -> HttpResult<()> {
        self.require_role(console, "patients", |r| {
            matches!(r, Role::CareTeam(_) | Role::Viewer(_) | Role::Admin)
        })
    }

    fn require_role(
        &self,
        console: &Console,
        what: &str,
        allowed: impl Fn(&Role) -> bool,
    ) -> HttpResult<()> {
        match self.caller.principal.as_deref() {
            Some(p) if !allowed(&p.role) => {
                console
                    .app
                    .auth
                    .failures
                    .record(AuthFailure::WrongRole, &p.name, &p.name, what);
                Err(HttpError::forbidden(format!(
                    "token '{}' has role {}, which may not use the console's {what}",
                    p.name, p.role
                )))
            }
            _ => Ok(()),
        }
    }

    /// The name recorded for an action: `console` without authentication (the token's
    /// name otherwise, filled in by the application layer).
    pub fn by(&self) -> &'static str {
        match self.via {
            Via::Open => "console",
            _ => "",
        }
    }
}

/// Paths served to anyone: probes, the sign-in page and its assets.
fn public(method: &Method, path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/signin" | "/auth/login" | "/auth/callback" | "/auth/providers"
    ) || path.starts_with("/assets/")
        || (path == "/api/session" && method == Method::POST)
}

pub async fn check(
    State(console): State<Arc<Console>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    mut request: Request,
    next: Next,
) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let headers = request.headers();
    if !console.app.auth.enabled && !host_is_address(headers) {
        return HttpError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "without [auth] the console answers only requests addressed to an IP address or \
             localhost",
        )
        .into_response();
    }
    if method != Method::GET && method != Method::HEAD && !same_origin(headers) {
        return HttpError::forbidden("cross-origin request refused").into_response();
    }
    if public(&method, &path) {
        return next.run(request).await;
    }
    let access = match identify(&console, headers, peer) {
        Ok(access) => access,
        Err(e) if method == Method::GET && !path.starts_with("/api/") => {
            let _ = e;
            return Redirect::to("/signin").into_response();
        }
        Err(e) => return e.into_response(),
    };
    if method != Method::GET && method != Method::HEAD {
        let expected = match &access.via {
            Via::Bearer => None,
            Via::Open => Some(console.open_csrf.as_str()),
            Via::Session { csrf, .. } => Some(csrf.as_str()),
        };
        if let Some(expected) = expected {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if sent != Some(expected) {
                return HttpError::forbidden(format!(
                    "a state change needs the session's CSRF token in the `{CSRF_HEADER}` header \
                     (GET /api/session returns it)"
                ))
                .into_response();
            }
        }
    }
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// The caller: a bearer token, else a session cookie; with authentication off, nobody.
fn identify(console: &Console, headers: &HeaderMap, peer: SocketAddr) -> HttpResult<Access> {
    let anonymous = Caller {
        principal: None,
        peer: Some(peer),
    };
    let auth = &console.app.auth;
    if !auth.enabled {
        return Ok(Access {
            caller: anonymous,
            via: Via::Open,
        });
    }
    let (source, peer_text) = (peer.ip().to_string(), peer.to_string());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::token::bearer);
    if let Some(token) = bearer {
        let Some(principal) = auth.token(token.trim()) else {
            auth.failures
                .record(AuthFailure::BadToken, &source, &peer_text, "console");
            return Err(HttpError::unauthorized(
                "the bearer token is not valid on this server (revoked, mistyped, or from \
                 another installation)",
            ));
        };
        return Ok(Access {
            caller: Caller {
                principal: Some(principal),
                peer: Some(peer),
            },
            via: Via::Bearer,
        });
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_value(h, COOKIE));
    let Some(cookie) = cookie else {
        return Err(HttpError::unauthorized(
            "sign in first: POST /api/session with a token, or send `Authorization: Bearer <token>`",
        ));
    };
    let Some(session) = console.sessions.find(cookie, Instant::now()) else {
        return Err(HttpError::unauthorized(
            "the session has expired or was signed out: sign in again",
        ));
    };
    Ok(Access {
        caller: Caller {
            principal: Some(session.principal),
            peer: Some(peer),
        },
        via: Via::Session {
            cookie: cookie.to_string(),
            csrf: session.csrf,
        },
    })
}

/// The `Host` header names an IP address or `localhost` (with any port).
fn host_is_address(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// An `Origin` header, when a browser sends one, names the host the request went to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_addresses_and_localhost_reach_an_open_console() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "10.0.0.1",
            "LOCALHOST",
        ] {
            assert!(host_is_address(&with(&[(header::HOST, ok)])), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1.evil.example", "[evil]:80"] {
            assert!(!host_is_address(&with(&[(header::HOST, bad)])), "{bad}");
        }
        assert!(!host_is_address(&HeaderMap::new()));
    }

    #[test]
    fn a_foreign_origin_is_refused() {
        let h = |origin: &str| with(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, origin)]);
        assert!(same_origin(&h("http://127.0.0.1:8080")));
        assert!(same_origin(&h("https://127.0.0.1:8080")));
        assert!(!same_origin(&h("http://evil.example")));
        assert!(!same_origin(&h("null")));
        assert!(same_origin(&with(&[(header::HOST, "x")])));
    }
}
