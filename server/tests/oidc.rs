//! Staff sign-in through a real OpenID Connect provider (panva/oidc-provider under node,
//! installed by `.ci/run` into `server/tests/oidc/node_modules`), in headless Chromium:
//! a nurse of a mapped group signs in and her actions carry her name; a person in no mapped
//! group is refused; an ID token that has expired by the server's clock is refused. Over
//! gRPC, the provider's JWT access token is accepted, and one from another issuer refused.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::browser::Browser;
use common::*;
use serde_json::json;
use vigil_proto::v1;

/// The provider, killed when dropped.
struct Provider(Child);

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn provider(port: u16, redirects: &[String]) -> Provider {
    let dir = repo_root().join("server/tests/oidc");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "the test OpenID provider is not installed: run `npm ci --prefix server/tests/oidc` (.ci/run does)"
    );
    let child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .arg(port.to_string())
        .arg(redirects.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let p = Provider(child);
    eventually(Duration::from_secs(30), "the provider listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    p
}

async fn open_alerts(server: &Server, token: &str) -> Vec<v1::Alert> {
    vigil_proto::v1::alerts_client::AlertsClient::new(channel(server, Some(token)).await)
        .list_active(v1::ListActiveRequest::default())
        .await
        .map(|r| r.into_inner().alerts)
        .unwrap_or_default()
}

fn config(provider_port: u16, tokens: &str, extra: &str) -> String {
    format!(
        r#"{extra}
[auth]
enabled = true

[auth.oidc]
issuer = "http://127.0.0.1:{provider_port}"
client_id = "vigil"
client_secret = "vigil-test-secret"
groups = {{ "cardio-nurses" = "care_team:cardiology" }}

{tokens}

[[care_teams]]
id = "cardiology"

[[patients]]
id = "p1"
care_team = "cardiology"
consent = true

[[rules]]
id = "bp_high"
metric = "systolic_bp"
above = 180
severity = "high"
"#
    )
}

/// Signs in at `base` as `login` through the provider's login form; returns the page's text
/// once it settled (the board, or the refusal).
async fn sign_in(browser: &Browser, base: &str, login: &str) {
    browser.goto(&format!("{base}/signin")).await;
    browser
        .until(
            Duration::from_secs(15),
            "the sign-in page offers the hospital account",
            "const a = document.getElementById('oidc'); return a !== null && a.offsetParent !== null;",
            vec![],
        )
        .await;
    browser.click("#oidc").await;
    browser
        .until(
            Duration::from_secs(15),
            "the provider's login form",
            "return document.querySelector('input[name=login]') !== null;",
            vec![],
        )
        .await;
    browser
        .js(
            "document.querySelector('input[name=login]').value = arguments[0];
             document.querySelector('input[name=password]').value = 'any';
             document.querySelector('form').submit(); return true;",
            vec![json!(login)],
        )
        .await;
}

#[tokio::test]
async fn staff_sign_in_through_the_hospitals_provider_and_their_actions_carry_their_name() {
    let (reader, reader_entry) = token_create("ward-app", "care_team:cardiology", &[]).await;
    let (gateway, gateway_entry) = token_create("gateway", "gateway", &[]).await;
    let tokens = format!("{reader_entry}\n{gateway_entry}");
    let port = common::free_port();
    // The same configuration, and one whose clock runs three hours ahead: every ID token
    // the provider issues (valid for an hour) has expired by that server's clock.
    let server = Server::start(Some(&config(port, &tokens, "")));
    let ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(3);
    let late = Server::start(Some(&config(
        port,
        &tokens,
        &format!("[server]\nclock_start = \"{ahead}\"\n"),
    )));
    let bases = [
        format!("http://127.0.0.1:{}", server.http.port()),
        format!("http://127.0.0.1:{}", late.http.port()),
    ];
    let redirects: Vec<String> = bases.iter().map(|b| format!("{b}/auth/callback")).collect();
    let _provider = provider(port, &redirects).await;

    // A nurse of a mapped group: signed in, on the board, as herself.
    let browser = Browser::start().await;
    sign_in(&browser, &bases[0], "kim").await;
    browser
        .until(
            Duration::from_secs(15),
            "the board, signed in as Kim Li",
            "const w = document.getElementById('who'); return w !== null && w.textContent.includes('Kim Li');",
            vec![],
        )
        .await;
    // What she does carries her name.
    let mut ingest =
        vigil_proto::v1::ingest_client::IngestClient::new(channel(&server, Some(&gateway)).await);
    ingest
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading("p1", "systolic_bp", 200.0)],
        })
        .await
        .unwrap();
    let id = eventually(Duration::from_secs(15), "the alert", || async {
        open_alerts(&server, &reader)
            .await
            .first()
            .map(|a| a.id.clone())
    })
    .await;
    browser
        .click(&format!(
            "[data-alert-id='{id}'] [data-action='acknowledge']"
        ))
        .await;
    let acked_by = eventually(Duration::from_secs(15), "the acknowledgement", || async {
        let a = open_alerts(&server, &reader)
            .await
            .into_iter()
            .find(|a| a.id == id)?;
        (!a.acknowledged_by.is_empty()).then_some(a.acknowledged_by)
    })
    .await;
    assert_eq!(acked_by, "Kim Li (kim)");
    let audit = std::fs::read_to_string(server.data().join("audit.log")).unwrap_or_default();
    assert!(
        audit.contains("Kim Li (kim)"),
        "the sign-in is audited: {audit}"
    );
    browser.close().await;

    // A person in no mapped group is refused.
    let browser = Browser::start().await;
    sign_in(&browser, &bases[0], "lee").await;
    browser
        .until(
            Duration::from_secs(15),
            "the refusal",
            "return document.body.innerText.includes('no group that this Vigil gives a role to');",
            vec![],
        )
        .await;
    browser.close().await;

    // An ID token expired by the server's clock is refused.
    let browser = Browser::start().await;
    sign_in(&browser, &bases[1], "kim").await;
    browser
        .until(
            Duration::from_secs(15),
            "the expired token refused",
            "return document.body.innerText.includes('ID token') && document.body.innerText.toLowerCase().includes('expired');",
            vec![],
        )
        .await;
    browser.close().await;

    // A care-team application calls gRPC with the provider's JWT access token.
    let jwt = client_credentials(port).await;
    assert!(jwt.starts_with("eyJ"), "a JWT access token");
    let seen = eventually(Duration::from_secs(20), "the JWT accepted", || async {
        let open = open_alerts(&server, &jwt).await;
        (!open.is_empty()).then_some(open)
    })
    .await;
    assert_eq!(seen[0].care_team, "cardiology");
    // One from another issuer (another provider, its own keys) is refused.
    let other_port = common::free_port();
    let _other = provider(other_port, &redirects).await;
    let foreign = client_credentials(other_port).await;
    let refused =
        vigil_proto::v1::alerts_client::AlertsClient::new(channel(&server, Some(&foreign)).await)
            .list_active(v1::ListActiveRequest::default())
            .await
            .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("access token is refused"),
        "{}",
        refused.message()
    );
    drop(late);
}

/// A JWT access token for the `ward-app` client, from the provider on `port`.
async fn client_credentials(port: u16) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/token"))
        .basic_auth("ward-app", Some("ward-app-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "alerts")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {answer}"))
        .to_string()
}
