//! `/auth/login` and `/auth/callback`: console sign-in through the hospital's OpenID
//! Connect provider. The state travels both in the provider's round trip and in a
//! short-lived cookie, so that a callback only completes the sign-in this browser began.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::{HttpError, HttpResult};
use super::session::cookie_value;
use super::Console;
use crate::auth::failure::AuthFailure;
use crate::auth::oidc::Oidc;

const STATE_COOKIE: &str = "vigil_oidc";

fn oidc(console: &Console) -> HttpResult<&Oidc> {
    console.oidc.as_deref().ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "this server has no [auth.oidc]: sign in with an access token",
        )
    })
}

/// `GET /auth/providers`: how people may sign in (public, for the sign-in page).
pub async fn providers(State(console): State<Arc<Console>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "token": true, "oidc": console.oidc.is_some() }))
}

pub async fn login(State(console): State<Arc<Console>>) -> HttpResult<Response> {
    let (url, state) = oidc(&console)?
        .begin()
        .await
        .map_err(|e| HttpError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    // Lax: the cookie must come back on the provider's top-level redirect to us.
    let cookie = format!(
        "{STATE_COOKIE}={state}; Path=/auth/callback; HttpOnly; SameSite=Lax; Max-Age=600{}",
        super::signin::secure_attribute(&console)
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response())
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn callback(
    State(console): State<Arc<Console>>,
    ConnectInfo(super::Peer(peer)): ConnectInfo<super::Peer>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> HttpResult<Response> {
    let oidc = oidc(&console)?;
    let auth = &console.app.auth;
    let refuse = |why: String| {
        auth.failures.record(
            AuthFailure::BadToken,
            &peer.ip().to_string(),
            &peer.to_string(),
            "console sign-in (OpenID Connect)",
        );
        HttpError::unauthorized(why)
    };
    if let Some(e) = q.error {
        return Err(refuse(format!(
            "the identity provider refused the sign-in ({})",
            crate::untrusted::clip(&e)
        )));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(HttpError::bad_request(
            "a callback needs `code` and `state`",
        ));
    };
    let bound = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| cookie_value(c, STATE_COOKIE))
        == Some(state.as_str());
    if !bound {
        return Err(refuse(
            "this sign-in was not started in this browser: start again".into(),
        ));
    }
    let (person, role) = oidc
        .finish(&state, &code)
        .await
        .map_err(|e| refuse(e.to_string()))?;
    let principal = Arc::new(Oidc::principal(&person, role));
    let (_, session) = super::signin::open_session(
        &console,
        &principal,
        &format!("person {}", principal.name),
        &peer.to_string(),
        &format!("OpenID Connect, role {}", principal.role),
    )?;
    let secure = super::signin::secure_attribute(&console);
    let clear =
        format!("{STATE_COOKIE}=; Path=/auth/callback; HttpOnly; SameSite=Lax; Max-Age=0{secure}");
    // A page of our own that moves on to the board: the session cookie (SameSite=Strict)
    // is then sent, as the navigation starts here rather than at the provider.
    let page = Html(
        "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url=/\"><title>Vigil</title><p>Signed in. <a href=\"/\">Continue</a></p>",
    );
    let mut response = page.into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        session
            .parse()
            .map_err(|_| HttpError::bad_request("cookie"))?,
    );
    h.append(
        header::SET_COOKIE,
        clear
            .parse()
            .map_err(|_| HttpError::bad_request("cookie"))?,
    );
    Ok(response)
}
