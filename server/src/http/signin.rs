//! `/api/session`: exchanging a token for a session cookie (throttled per address like
//! device logins), who the caller is (with the CSRF token its page must echo), and signing
//! out. Sign-ins and sign-outs are audited.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::access::{Access, Via};
use super::error::{HttpError, HttpResult};
use super::session::{Issued, SessionError, COOKIE, LIFETIME};
use super::Console;
use crate::auth::AuthFailure;

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

pub async fn sign_in(
    State(console): State<Arc<Console>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    Json(body): Json<SignIn>,
) -> HttpResult<Response> {
    let auth = &console.app.auth;
    if !auth.enabled {
        return Err(HttpError::bad_request(
            "this server runs without [auth]: the console is open, there is nothing to sign in to",
        ));
    }
    let now = Instant::now();
    let throttle = &auth.logins.throttle;
    if let Err(why) = throttle.check(peer.ip(), now) {
        auth.failures.record(
            AuthFailure::Throttled,
            &peer.ip().to_string(),
            &peer.to_string(),
            "console sign-in",
        );
        return Err(HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed sign-ins from this address ({}); wait and retry",
                why.as_str()
            ),
        ));
    }
    let Some(principal) = auth.token(body.token.trim()) else {
        throttle.failed(peer.ip(), now);
        auth.failures.record(
            AuthFailure::BadToken,
            &peer.ip().to_string(),
            &peer.to_string(),
            "console sign-in",
        );
        return Err(HttpError::unauthorized(
            "the token is not valid on this server (revoked, mistyped, or from another installation)",
        ));
    };
    let (issued, cookie) = open_session(
        &console,
        &principal,
        &format!("token {}", principal.name),
        &peer.to_string(),
        "",
    )?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({
            "name": principal.name,
            "role": principal.role.to_string(),
            "csrf": issued.csrf,
        })),
    )
        .into_response())
}

/// Opens a console session for `principal` (signed in by a token or by the hospital's
/// provider), counts and audits it (`actor`, `from`, `detail`), and returns it with its
/// `Set-Cookie` value.
pub fn open_session(
    console: &Console,
    principal: &Arc<crate::auth::Principal>,
    actor: &str,
    from: &str,
    detail: &str,
) -> HttpResult<(Issued, String)> {
    let issued = console
        .sessions
        .open(principal.clone(), Instant::now())
        .map_err(|e| match e {
            SessionError::Full(_) => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            SessionError::Random(_) => {
                HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        })?;
    console
        .app
        .telemetry
        .console_sessions(console.sessions.len());
    console
        .app
        .audit
        .record(actor, "console_sign_in", from, detail);
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        issued.cookie,
        LIFETIME.as_secs(),
        secure_attribute(console)
    );
    Ok((issued, cookie))
}

/// `; Secure` when the console is served over TLS.
pub fn secure_attribute(console: &Console) -> &'static str {
    if console.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

/// Who the caller is, what the pages need to know, and the CSRF token to send back.
pub async fn whoami(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
) -> Json<serde_json::Value> {
    let p = access.caller.principal.as_deref();
    let team = p.and_then(|p| p.care_team());
    let csrf = match &access.via {
        Via::Open => Some(console.open_csrf.clone()),
        Via::Session { csrf, .. } => Some(csrf.clone()),
        Via::Bearer => None,
    };
    Json(json!({
        "auth": console.app.auth.enabled,
        "name": p.map_or("console", |p| p.name.as_str()),
        "role": p.map(|p| p.role.to_string()),
        "care_team": team,
        "may_act": p.is_none_or(|p| p.may_act()),
        "home": home(&console, team),
        "care_teams": console.app.care_teams,
        "csrf": csrf,
        "timezone": console.timezone,
        "dispositions": console.app.dispositions.list(),
        "oidc": console.oidc.is_some(),
    }))
}

/// Whether the caller's console opens on the worklist: its team is a `home` team; without
/// a team (open console), when every configured team is.
pub fn home(console: &Console, team: Option<&str>) -> bool {
    match team {
        Some(t) => console.home_teams.iter().any(|h| h == t),
        None => {
            !console.home_teams.is_empty()
                && console.home_teams.len() == console.app.care_teams.len()
        }
    }
}

pub async fn sign_out(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    headers: HeaderMap,
) -> Response {
    let _ = headers;
    if let Via::Session { cookie, .. } = &access.via {
        console.sessions.close(cookie);
        console
            .app
            .telemetry
            .console_sessions(console.sessions.len());
        console
            .app
            .audit
            .record(&access.caller.audit_actor(""), "console_sign_out", "", "");
    }
    let clear = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attribute(&console)
    );
    ([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response()
}
