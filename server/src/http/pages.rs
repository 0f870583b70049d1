//! The console's pages and assets, embedded in the binary at build time (plain HTML, CSS
//! and JavaScript: no build step, nothing fetched from elsewhere), and the probes. Every
//! page is the same shell naming its script; the language comes from the `vigil_lang`
//! cookie (the page's switch), else `Accept-Language`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;

use super::access::Access;
use super::session::cookie_value;
use super::signin::home;
use super::Console;

const SHELL: &str = include_str!("../../console/page.html");

/// Name → (content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/console.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/common.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/i18n.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/chart.js"),
    ),
    (
        "board.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/board.js"),
    ),
    (
        "worklist.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/worklist.js"),
    ),
    (
        "patient.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/patient.js"),
    ),
    (
        "silences.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/silences.js"),
    ),
    (
        "handover.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/handover.js"),
    ),
    (
        "dispositions.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/dispositions.js"),
    ),
    (
        "signin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/signin.js"),
    ),
];

/// The languages of the console.
pub const LANGUAGES: [&str; 2] = ["en", "zh-CN"];

/// `zh-CN` when the cookie says so, else when the browser prefers any Chinese over
/// English; otherwise `en`.
pub fn language(headers: &HeaderMap) -> &'static str {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie_value(h, "vigil_lang"));
    if let Some(chosen) = cookie.and_then(|c| LANGUAGES.iter().find(|l| **l == c)) {
        return chosen;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut best = ("en", -1.0f32);
    for part in accept.split(',') {
        let mut pieces = part.trim().split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok()))
            .unwrap_or(1.0);
        let lang = if tag.starts_with("zh") {
            "zh-CN"
        } else if tag.starts_with("en") {
            "en"
        } else {
            continue;
        };
        if q > best.1 {
            best = (lang, q);
        }
    }
    best.0
}

fn page(headers: &HeaderMap, script: &str) -> Response {
    Html(
        SHELL
            .replace("{{lang}}", language(headers))
            .replace("{{page}}", script),
    )
    .into_response()
}

#[derive(Deserialize, Default)]
pub struct BoardQuery {
    /// Show the board even to a home team.
    board: Option<String>,
}

pub async fn board(
    State(console): State<Arc<Console>>,
    Extension(access): Extension<Access>,
    Query(q): Query<BoardQuery>,
    headers: HeaderMap,
) -> Response {
    let team = access
        .caller
        .principal
        .as_deref()
        .and_then(|p| p.care_team());
    if q.board.is_none() && home(&console, team) {
        return Redirect::to("/patients").into_response();
    }
    page(&headers, "board")
}

pub async fn worklist(headers: HeaderMap) -> Response {
    page(&headers, "worklist")
}

pub async fn patient(headers: HeaderMap, Path(_id): Path<String>) -> Response {
    page(&headers, "patient")
}

pub async fn silences(headers: HeaderMap) -> Response {
    page(&headers, "silences")
}

pub async fn handover(headers: HeaderMap) -> Response {
    page(&headers, "handover")
}

pub async fn dispositions(headers: HeaderMap) -> Response {
    page(&headers, "dispositions")
}

pub async fn sign_in(headers: HeaderMap) -> Response {
    page(&headers, "signin")
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 once every listener is bound and the journal is open, 503 before; in cluster mode
/// also 503 while a partition this node took over is being rebuilt.
pub async fn readyz(State(console): State<Arc<Console>>) -> Response {
    let rebuilding = console.app.rebuilding.load(Ordering::Acquire);
    if !console.ready.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    } else if rebuilding > 0 {
        let body = format!("rebuilding {rebuilding} partitions\n");
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn the_language_follows_the_browser_then_the_switch() {
        assert_eq!(language(&HeaderMap::new()), "en");
        assert_eq!(language(&accept("zh-CN,zh;q=0.9,en;q=0.8")), "zh-CN");
        assert_eq!(language(&accept("en-US,en;q=0.9,zh;q=0.5")), "en");
        assert_eq!(language(&accept("fr-FR, zh-TW;q=0.7")), "zh-CN");
        let mut h = accept("zh-CN");
        h.insert(header::COOKIE, HeaderValue::from_static("vigil_lang=en"));
        assert_eq!(language(&h), "en");
    }

    #[test]
    fn every_page_script_is_an_asset() {
        for script in ["board", "worklist", "patient", "silences", "signin"] {
            let name = format!("{script}.js");
            assert!(ASSETS.iter().any(|(n, _, _)| *n == name), "{name}");
        }
    }
}
