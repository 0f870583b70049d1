//! Sending one notification: the HTTP request for the notifier's kind, its answer classified,
//! and retries with capped exponential backoff and jitter (backon) for as long as the answer
//! says retrying can help. The URL is never logged (the robots' keys are in it).

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;
use tracing::debug;

use super::robots::{classify, dingtalk_signed, Answer};
use super::spec::{Kind, NotifierSpec};
use crate::clock::now_ms;

/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// An HTTPS client with the system's trusted roots ([`crate::tls::native_roots_client`]).
pub fn client() -> anyhow::Result<reqwest::Client> {
    let tls = crate::tls::native_roots_client()?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A notifier's request budget (`rate_per_minute`), shared by its lanes: every attempt,
/// retries included, waits for a token, so a robot is never sent more than it accepts.
pub type Limiter = governor::DefaultDirectRateLimiter;

pub fn limiter(spec: &NotifierSpec) -> Option<Arc<Limiter>> {
    spec.rate_per_minute.map(|n| {
        Arc::new(governor::RateLimiter::direct(governor::Quota::per_minute(
            n,
        )))
    })
}

/// One attempt: the answer, or why the request did not get one.
pub async fn attempt(client: &reqwest::Client, spec: &NotifierSpec, body: &Value) -> Answer {
    let url = match (&spec.kind, &spec.secret) {
        (Kind::Dingtalk, Some(secret)) => match dingtalk_signed(&spec.url, secret, now_ms()) {
            Ok(url) => url,
            Err(e) => return Answer::Failed(format!("cannot sign the request: {e}")),
        },
        _ => spec.url.clone(),
    };
    let sent = client
        .post(url)
        .timeout(spec.timeout)
        .json(body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            classify(spec.kind, status, &bytes)
        }
        // Neither the error's text (it may carry the URL) nor the body is kept.
        Err(e) if e.is_timeout() => Answer::Retry("timed out".into()),
        Err(e) if e.is_connect() => Answer::Retry("connection failed".into()),
        Err(_) => Answer::Retry("request failed".into()),
    }
}

/// Sends `body` until it is delivered or fails for good; `on_retry` hears of each retry.
pub async fn deliver(
    client: &reqwest::Client,
    spec: &NotifierSpec,
    limiter: Option<&Limiter>,
    body: &Value,
    on_retry: impl Fn(&str),
) -> Result<(), String> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(MIN_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_jitter()
        .without_max_times();
    let once = || async {
        if let Some(limiter) = limiter {
            limiter.until_ready().await;
        }
        match attempt(client, spec, body).await {
            Answer::Delivered => Ok(()),
            other => Err(other),
        }
    };
    once.retry(backoff)
        .when(|answer| matches!(answer, Answer::Retry(_)))
        .notify(|answer, wait| {
            if let Answer::Retry(why) = answer {
                debug!(notifier = %spec.id, why, ?wait, "notification will be retried");
                on_retry(why);
            }
        })
        .await
        .map_err(|answer| match answer {
            Answer::Failed(why) | Answer::Retry(why) => why,
            Answer::Delivered => String::new(),
        })
}
