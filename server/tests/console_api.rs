//! The console's HTTP API against the real server: the listener and probes, bad input and
//! its reasons, sign-in and care-team scope, CSRF and origin checks, the live event stream's
//! resume without gap or duplicate, and review marks that survive a restart.

mod common;

use std::time::Duration;

use common::web::{EventReader, Web};
use common::*;
use reqwest::header::{HOST, ORIGIN, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vigil_proto::v1;

const WARD: &str = r#"
[[care_teams]]
id = "cardiology"
[[care_teams]]
id = "renal"
home = true

[[patients]]
id = "p1"
care_team = "cardiology"
consent = true
conditions = ["heart_failure"]
tier = "A"
[[patients]]
id = "p2"
care_team = "renal"
consent = true

[[rules]]
id = "bp_high"
metric = "systolic_bp"
above = 180
clear = 160
severity = "high"
"#;

async fn publish(server: &Server, token: Option<&str>, readings: Vec<v1::Reading>) {
    let mut ingest =
        vigil_proto::v1::ingest_client::IngestClient::new(channel(server, token).await);
    let ack = ingest
        .publish_batch(v1::ReadingBatch { readings })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.rejected, 0, "{ack:?}");
}

/// Raises `bp_high` for `patient` and waits until the board lists it; returns its id.
async fn raise(server: &Server, web: &Web, token: Option<&str>, patient: &str) -> String {
    publish(server, token, vec![reading(patient, "systolic_bp", 200.0)]).await;
    eventually(
        Duration::from_secs(10),
        "the alert is on the board",
        || async {
            web.alerts()
                .await
                .into_iter()
                .find(|a| a["patient_id"] == patient && a["state"] == "active")
                .map(|a| a["id"].as_str().unwrap().to_string())
        },
    )
    .await
}

#[tokio::test]
async fn the_listener_serves_probes_pages_and_the_api() {
    let server = Server::start(Some(WARD));
    let ports: Value =
        serde_json::from_str(&std::fs::read_to_string(server.data().join("ports.json")).unwrap())
            .unwrap();
    assert_eq!(ports["http"], server.http.to_string());
    let web = Web::open(server.http).await;
    assert_eq!(web.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(web.get("/readyz").await.status(), StatusCode::OK);
    let page = web.get("/?board").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-page="board""#) && html.contains(r#"lang="en""#));
    // Chinese from the browser's languages.
    let zh = web
        .request(Method::GET, "/patients")
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(zh.contains(r#"lang="zh-CN""#) && zh.contains(r#"data-page="worklist""#));
    for asset in [
        "board.js",
        "common.js",
        "i18n.js",
        "console.css",
        "chart.js",
    ] {
        assert_eq!(
            web.get(&format!("/assets/{asset}")).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        web.get("/assets/nope.js").await.status(),
        StatusCode::NOT_FOUND
    );
    let session = web.get_json("/api/session").await;
    assert_eq!(session["auth"], false);
    assert_eq!(session["name"], "console");
    assert!(session["timezone"].as_str().is_some_and(|t| !t.is_empty()));

    // The board and its actions: `by` is "console" without authentication.
    let id = raise(&server, &web, None, "p1").await;
    let alert = web
        .alerts()
        .await
        .into_iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap();
    assert_eq!(alert["board_state"], "active");
    assert_eq!(alert["rule_id"], "bp_high");
    // Which rules raised it: the version in force, the same the board's footer names.
    let rule_set = web.get_json("/api/rule-set").await;
    assert_eq!(rule_set["number"], 1);
    assert_eq!(alert["rule_set_version"], 1);
    assert_eq!(alert["rule_set_hash"], rule_set["hash"]);
    let acked: Value = web
        .post(
            &format!("/api/alerts/{id}/acknowledge"),
            json!({"note": "called"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged"]["by"], "console");
    let mut alerts = server.alerts().await;
    let listed = alerts
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.alerts[0].state, v1::AlertState::Acknowledged as i32);
    let snoozed = web
        .post(&format!("/api/alerts/{id}/snooze"), json!({"minutes": 15}))
        .await;
    assert_eq!(snoozed.status(), StatusCode::OK);
    let history = web.get_json(&format!("/api/alerts/{id}/history")).await;
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["raised", "acknowledged", "snoozed"]);
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["alert"]["rule_set_version"] == 1),
        "{history}"
    );
    // Resolving says what the alert led to.
    let refused = web
        .post(&format!("/api/alerts/{id}/resolve"), json!({}))
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let resolved = web
        .post(
            &format!("/api/alerts/{id}/resolve"),
            json!({"disposition": "no_action_needed"}),
        )
        .await;
    assert_eq!(resolved.status(), StatusCode::OK);
    assert!(web.alerts().await.is_empty());
    let session = web.get_json("/api/session").await;
    assert_eq!(session["dispositions"].as_array().unwrap().len(), 7);
    let report = web.get_json("/api/dispositions?days=7").await;
    let rules = report["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{report}");
    assert_eq!(rules[0]["counts"]["no_action_needed"], 1);
    assert_eq!(rules[0]["nothing_to_do"], 1.0);
    let res = web.get("/api/dispositions?days=90").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Silences: create, list, delete.
    let silence: Value = web
        .post(
            "/api/silences",
            json!({"patient_id": "p1", "minutes": 60, "comment": "transfer"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let sid = silence["id"].as_str().unwrap().to_string();
    let listed = web.get_json("/api/silences").await;
    assert_eq!(listed["silences"][0]["reason"], "transfer");
    let deleted = web
        .request(Method::DELETE, &format!("/api/silences/{sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(web.get_json("/api/silences").await["silences"]
        .as_array()
        .unwrap()
        .is_empty());
    let audit = std::fs::read_to_string(server.data().join("audit.log")).unwrap();
    for action in ["acknowledge", "snooze", "resolve", "silence_delete"] {
        assert!(
            audit.contains(action),
            "{action} missing from the audit log:\n{audit}"
        );
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason() {
    let server = Server::start(Some(WARD));
    let web = Web::open(server.http).await;
    let error = |res: reqwest::Response| async move {
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        (status, body["error"].as_str().unwrap_or("").to_string())
    };
    // An unknown alert.
    let (status, why) = error(web.post("/api/alerts/nope/acknowledge", json!({})).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{why}");
    assert!(why.contains("nope"), "{why}");
    // A malformed body.
    let res = web
        .request(Method::POST, "/api/alerts/nope/acknowledge")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = web.post("/api/silences", json!({"minutes": "soon"})).await;
    assert!(res.status().is_client_error(), "{}", res.status());
    // A snooze longer than the console offers; an action that does not exist.
    let id = raise(&server, &web, None, "p1").await;
    let (status, why) = error(
        web.post(
            &format!("/api/alerts/{id}/snooze"),
            json!({"minutes": 100000}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
    let res = web
        .post(&format!("/api/alerts/{id}/delete"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // No CSRF token: refused, and the alert is untouched.
    let res = web
        .http
        .post(format!("{}/api/alerts/{id}/acknowledge", web.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, why) = error(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(why.contains("CSRF"), "{why}");
    // Another origin, even with the token.
    let res = web
        .request(Method::POST, &format!("/api/alerts/{id}/acknowledge"))
        .header(ORIGIN, "http://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A name that rebinds to loopback (DNS rebinding) does not reach an open console.
    let res = web
        .request(Method::GET, "/api/alerts")
        .header(HOST, "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(web.alerts().await[0]["state"], "active");
    // An unknown patient; a bad severity filter; a review too long.
    let res = web.get("/api/patients/nobody").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = web.get("/api/alerts?severity=urgent").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = web
        .post("/api/patients/p1/review", json!({"hours": 10000}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Signing in to an open console.
    let res = web.sign_in("vigil_anything").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sign_in_gives_a_scoped_session_and_everything_is_audited() {
    let (gateway, gateway_entry) = token_create("gw", "gateway", &[]).await;
    let (cardio, cardio_entry) = token_create("cardio-nurse", "care_team:cardiology", &[]).await;
    let (renal, renal_entry) = token_create("renal-nurse", "care_team:renal", &[]).await;
    let (wall, wall_entry) = token_create("renal-wall", "viewer:renal", &[]).await;
    let (admin, admin_entry) = token_create("ops", "admin", &[]).await;
    let config = format!(
        "[auth]\nenabled = true\n\n{gateway_entry}\n{cardio_entry}\n{renal_entry}\n{wall_entry}\n{admin_entry}\n{WARD}"
    );
    let server = Server::start(Some(&config));
    let anonymous = Web::new(server.http);
    // Probes and the sign-in page are open; everything else needs a credential.
    assert_eq!(anonymous.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(anonymous.get("/signin").await.status(), StatusCode::OK);
    assert_eq!(
        anonymous.get("/api/alerts").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let page = anonymous.get("/").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/signin");
    // A wrong token.
    let res = anonymous.sign_in("vigil_0000").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The right one: an HttpOnly, SameSite=Strict cookie.
    let res = anonymous.sign_in(&cardio).await;
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let nurse = Web::signed_in(server.http, &cardio).await;
    let me = nurse.get_json("/api/session").await;
    assert_eq!(
        (me["name"].as_str(), me["care_team"].as_str()),
        (Some("cardio-nurse"), Some("cardiology"))
    );

    let id = raise(&server, &nurse, Some(&gateway), "p1").await;
    // Another team's nurse and the other team's wall display do not see it...
    let other = Web::signed_in(server.http, &renal).await;
    assert!(other.alerts().await.is_empty());
    let display = Web::signed_in(server.http, &wall).await;
    assert!(display.alerts().await.is_empty());
    // ...and cannot act on it, even by hand with a valid CSRF token.
    let res = other
        .post(&format!("/api/alerts/{id}/acknowledge"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = display
        .post(&format!("/api/alerts/{id}/resolve"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Nor asking for the other team's alerts or patient.
    let res = other.get("/api/alerts?care_team=cardiology").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = other.get("/api/patients/p1").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let worklist = other.get_json("/api/patients").await;
    let ids: Vec<&str> = worklist["patients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["profile"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p2"]);
    // A home team opens on the worklist; a ward team on the board.
    let res = other.get("/").await;
    assert_eq!(res.headers()["location"], "/patients");
    assert_eq!(nurse.get("/").await.status(), StatusCode::OK);
    // The gateway may not use the console's alerts; the admin may read patients, not alerts.
    let gw = Web::signed_in(server.http, &gateway).await;
    assert_eq!(gw.get("/api/alerts").await.status(), StatusCode::FORBIDDEN);
    let ops = Web::signed_in(server.http, &admin).await;
    assert_eq!(ops.get("/api/alerts").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(ops.get("/api/patients/p1").await.status(), StatusCode::OK);
    // A bearer header works without a session (and needs no CSRF token).
    let res = Web::new(server.http)
        .http
        .post(format!("{}/api/alerts/{id}/acknowledge", nurse.base))
        .bearer_auth(&cardio)
        .json(&json!({"note": "seen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let alert: Value = res.json().await.unwrap();
    assert_eq!(alert["acknowledged"]["by"], "cardio-nurse");
    // The nurse's session without its CSRF token is refused.
    let mut no_csrf = Web::signed_in(server.http, &cardio).await;
    no_csrf.csrf = None;
    let res = no_csrf
        .post(&format!("/api/alerts/{id}/resolve"), json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Signed out: the cookie no longer works.
    let res = nurse.post("/api/session/signout", json!({})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        nurse.get("/api/alerts").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut forged = Web::new(server.http);
    forged.cookie = Some(format!("vigil_session={}", "ab".repeat(32)));
    let res = forged.get("/api/alerts").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let why: Value = res.json().await.unwrap();
    assert!(why["error"].as_str().unwrap().contains("sign in again"));

    let audit = std::fs::read_to_string(server.data().join("audit.log")).unwrap();
    for needle in [
        "console_sign_in",
        "console_sign_out",
        "token cardio-nurse",
        "acknowledge",
    ] {
        assert!(audit.contains(needle), "{needle} missing:\n{audit}");
    }
    assert!(server.scrape().await.contains("vigil_console_sessions"));
}

#[tokio::test]
async fn the_event_stream_resumes_without_gap_or_duplicate() {
    let server = Server::start(Some(WARD));
    let web = Web::open(server.http).await;
    let start = web.get_json("/api/alerts").await["seq"].as_u64().unwrap();
    let mut events = EventReader::open(&web, Some(start), None).await;
    publish(&server, None, vec![reading("p1", "systolic_bp", 200.0)]).await;
    let first = events
        .next(Duration::from_secs(10))
        .await
        .expect("raised event");
    let raised: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(raised["kind"], "raised");
    assert_eq!(raised["alert"]["board_state"], "active");
    let last_seen = first.id.unwrap();
    drop(events);
    // While no board is connected: one alert resolves, another is raised.
    publish(&server, None, vec![reading("p1", "systolic_bp", 120.0)]).await;
    publish(&server, None, vec![reading("p2", "systolic_bp", 210.0)]).await;
    // A reconnect sends the last id it saw: everything after it, once, in order.
    let mut events = EventReader::open(&web, Some(start), Some(last_seen)).await;
    let a = events.next(Duration::from_secs(10)).await.unwrap();
    let b = events.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(a.id, Some(last_seen + 1));
    assert_eq!(b.id, Some(last_seen + 2));
    let (a, b): (Value, Value) = (
        serde_json::from_str(&a.data).unwrap(),
        serde_json::from_str(&b.data).unwrap(),
    );
    assert_eq!(
        (a["kind"].as_str(), a["alert"]["patient_id"].as_str()),
        (Some("resolved"), Some("p1"))
    );
    assert_eq!(
        (b["kind"].as_str(), b["alert"]["patient_id"].as_str()),
        (Some("raised"), Some("p2"))
    );
    assert!(events.next(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn review_marks_are_journaled_audited_and_survive_a_restart() {
    let server = Server::start(Some(WARD));
    let web = Web::open(server.http).await;
    publish(
        &server,
        None,
        vec![
            reading("p1", "heart_rate", 70.0),
            reading("p1", "systolic_bp", 120.0),
            reading("p1", "weight", 81.5),
        ],
    )
    .await;
    let page = web.get_json("/api/patients/p1").await;
    assert_eq!(page["profile"]["conditions"][0], "heart_failure");
    let metrics: Vec<&str> = page["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["heart_rate", "systolic_bp", "weight"]);
    let bp = &page["series"][1];
    assert_eq!(bp["lines"][0]["rule_id"], "bp_high");
    assert_eq!(bp["lines"][0]["level"], 180.0);
    assert_eq!(bp["samples"][0][1], 120.0);

    let before = web.get_json("/api/patients").await;
    assert_eq!(before["patients"][0]["needs_review"], true);
    let res = web
        .post(
            "/api/patients/p1/review",
            json!({"hours": 24, "note": "weights stable"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let list = web.get_json("/api/patients").await;
    let p1 = list["patients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"]["id"] == "p1")
        .unwrap()
        .clone();
    assert_eq!(p1["needs_review"], false);
    assert_eq!(p1["review"]["note"], "weights stable");
    assert_eq!(p1["review"]["by"], "console");
    // The unreviewed patient is listed first.
    assert_eq!(list["patients"][0]["profile"]["id"], "p2");
    let server = server.restart();
    let web = Web::open(server.http).await;
    let page = web.get_json("/api/patients/p1").await;
    assert_eq!(page["review"]["note"], "weights stable");
    let audit = std::fs::read_to_string(server.data().join("audit.log")).unwrap();
    assert!(audit.contains("review"), "{audit}");
}

#[tokio::test]
async fn chart_history_keeps_readings_for_the_patient_page() {
    let config = format!("[server]\nchart_history = \"2h\"\n{WARD}");
    let server = Server::start(Some(&config));
    let web = Web::open(server.http).await;
    let readings = (0..30)
        .map(|m| {
            let mut r = reading("p1", "heart_rate", 60.0 + m as f64);
            r.ts_ms = now_ms() - (30 - m) * 60_000;
            r
        })
        .collect();
    publish(&server, None, readings).await;
    let page = web.get_json("/api/patients/p1").await;
    let samples = page["series"][0]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 30, "every reading of the last two hours");
    assert_eq!(samples[0][1], 60.0);
    assert_eq!(samples[29][1], 89.0);
}
