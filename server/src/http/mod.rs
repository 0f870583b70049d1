//! HTTP: the care-team console (pages, its JSON API and live alert events), the probes, and
//! the Prometheus scrape endpoint on its own listener. Each file holds one group of routes;
//! a handler only translates between HTTP and the application layer (`crate::app`).
//!
//! | file | what |
//! | --- | --- |
//! | `access.rs` | who asks (bearer, session cookie, open), CSRF and origin checks |
//! | `session.rs` | sign-in sessions and their CSRF tokens |
//! | `signin.rs` | `/api/session`: sign in, who am I, sign out |
//! | `alerts.rs` | `/api/alerts`: the board's alerts and the actions on them |
//! | `events.rs` | `/api/events`: the live alert stream (server-sent events) |
//! | `patients.rs` | `/api/patients`: the worklist, a patient's page, review marks |
//! | `silences.rs` | `/api/silences` |
//! | `fhir.rs` | `/fhir`: Observations and Bundles from EHRs and gateways, the CapabilityStatement |
//! | `pages.rs` | the pages, embedded assets, `/healthz` and `/readyz` |
//! | `listeners.rs` | plain and TLS connections (`TCP_NODELAY`, bounded handshakes) |
//! | `metrics.rs` | `/metrics` on the metrics listener |

pub mod access;
pub mod alerts;
pub mod dispositions;
pub mod error;
pub mod events;
pub mod fhir;
pub mod handover;
pub mod listeners;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod patients;
pub mod session;
pub mod signin;
pub mod silences;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::http::{header, HeaderValue};
use axum::routing::{delete, get, post};
use axum::serve::IncomingStream;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::session::Sessions;
use crate::app::App;
use crate::auth::token::hex;

/// What the console's handlers share.
pub struct Console {
    pub app: Arc<App>,
    pub sessions: Sessions,
    /// IANA name the pages show times in.
    pub timezone: String,
    /// Care teams whose console opens on the worklist.
    pub home_teams: Vec<String>,
    /// Cookies carry `Secure` (the listener speaks TLS).
    pub secure_cookies: bool,
    /// Every listener is bound and the journal is open.
    pub ready: Arc<AtomicBool>,
    /// The CSRF token of the open console (authentication off).
    pub open_csrf: String,
    /// Cancelled at shutdown: live event streams end with it.
    pub shutdown: CancellationToken,
    /// Staff sign-in through the hospital's OpenID Connect provider, when configured.
    pub oidc: Option<Arc<crate::auth::oidc::Oidc>>,
}

impl Console {
    pub fn new(
        app: Arc<App>,
        timezone: String,
        home_teams: Vec<String>,
        secure_cookies: bool,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Console> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Console {
            app,
            sessions: Sessions::new(session::DEFAULT_MAX_SESSIONS),
            timezone,
            home_teams,
            secure_cookies,
            ready: Arc::new(AtomicBool::new(false)),
            open_csrf: hex(&bytes),
            shutdown,
            oidc: None,
        })
    }
}

/// Every route of the HTTP listener.
pub fn router(console: Arc<Console>) -> Router {
    let api = Router::new()
        .route("/api/session", get(signin::whoami).post(signin::sign_in))
        .route("/api/session/signout", post(signin::sign_out))
        .route("/api/alerts", get(alerts::list))
        .route("/api/alerts/{id}/history", get(alerts::history))
        .route("/api/rule-set", get(alerts::rule_set))
        .route("/api/alerts/{id}/{action}", post(alerts::act))
        .route("/api/events", get(events::stream))
        .route("/api/dispositions", get(dispositions::report))
        .route(
            "/api/handover",
            get(handover::view).post(handover::hand_over),
        )
        .route("/api/patients", get(patients::worklist))
        .route("/api/patients/{id}", get(patients::page))
        .route("/api/patients/{id}/review", post(patients::review))
        .route("/api/silences", get(silences::list).post(silences::create))
        .route("/api/silences/{id}", delete(silences::remove));
    let pages = Router::new()
        .route("/", get(pages::board))
        .route("/patients", get(pages::worklist))
        .route("/patients/{id}", get(pages::patient))
        .route("/silences", get(pages::silences))
        .route("/dispositions", get(pages::dispositions))
        .route("/handover", get(pages::handover))
        .route("/signin", get(pages::sign_in))
        .route("/auth/login", get(oidc::login))
        .route("/auth/providers", get(oidc::providers))
        .route("/auth/callback", get(oidc::callback))
        .route("/assets/{name}", get(pages::asset))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz));
    api.merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            access::check,
        ))
        // FHIR clients are servers with bearer tokens, not browsers with sessions: their
        // routes answer OperationOutcomes and check their own callers.
        .merge(
            Router::new()
                .route("/fhir", post(fhir::post_bundle))
                .route("/fhir/Observation", post(fhir::post_observation))
                .route("/fhir/metadata", get(fhir::metadata)),
        )
        .route_layer(axum::middleware::from_fn(timed))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// Records how long each request took to answer, by route (its pattern, so patient ids
/// stay out of the labels) and status: `vigil_http_request_duration_seconds`.
async fn timed(
    matched: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = matched.as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::telemetry::http_request(&route, response.status().as_u16(), started.elapsed());
    response
}

/// Headers every answer carries: nothing from elsewhere runs in a page, no page is framed,
/// and nothing with patient data is cached.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CACHE_CONTROL, "no-store");
    response
}

/// The address a request came from, over plain TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, listeners::PlainListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, listeners::PlainListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, listeners::TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, listeners::TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// Serves until `shutdown` is cancelled, over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    console: Arc<Console>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(console).into_make_service_with_connect_info::<Peer>();
    match tls {
        None => {
            axum::serve(listeners::PlainListener(listener), app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await?
        }
        Some(config) => {
            let listener = listeners::TlsListener::new(listener, config, shutdown.clone())?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await?
        }
    }
    Ok(())
}
