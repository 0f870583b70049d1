//! HTTP clients for the console's API: plain (authentication off, with the console's CSRF
//! token) or signed in with a token (session cookie and CSRF token), and a reader of the
//! server-sent alert events.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// A console API client as a page would be: its cookie and CSRF token.
pub struct Web {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Web {
    pub fn new(addr: SocketAddr) -> Web {
        // reqwest is built without a default TLS provider (Vigil uses rustls with ring
        // throughout): give it one, even though these clients only speak plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Web {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            cookie: None,
            csrf: None,
        }
    }

    /// The open console (authentication off): its CSRF token from `/api/session`.
    pub async fn open(addr: SocketAddr) -> Web {
        let mut web = Web::new(addr);
        let session = web.get_json("/api/session").await;
        web.csrf = session["csrf"].as_str().map(str::to_string);
        web
    }

    /// Signs in with `token`; panics unless it works.
    pub async fn signed_in(addr: SocketAddr, token: &str) -> Web {
        let mut web = Web::new(addr);
        let res = web.sign_in(token).await;
        assert_eq!(res.status(), StatusCode::OK);
        let cookie = res
            .headers()
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        web.cookie = Some(cookie.split(';').next().unwrap().to_string());
        let body: Value = res.json().await.unwrap();
        web.csrf = body["csrf"].as_str().map(str::to_string);
        web
    }

    pub async fn sign_in(&self, token: &str) -> Response {
        self.http
            .post(format!("{}/api/session", self.base))
            .json(&json!({ "token": token }))
            .send()
            .await
            .unwrap()
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        if method != Method::GET {
            if let Some(t) = &self.csrf {
                req = req.header("x-csrf-token", t);
            }
        }
        req
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The open alerts on the board.
    pub async fn alerts(&self) -> Vec<Value> {
        self.get_json("/api/alerts").await["alerts"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

/// Reads `/api/events` as a browser's EventSource would.
pub struct EventReader {
    response: Response,
    buffer: String,
}

impl EventReader {
    pub async fn open(web: &Web, after: Option<u64>, last_event_id: Option<u64>) -> EventReader {
        let path = match after {
            Some(a) => format!("/api/events?after={a}"),
            None => "/api/events".to_string(),
        };
        let mut req = web.request(Method::GET, &path);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.timeout(Duration::from_secs(3600)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        EventReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event of kind `alert` or `reset` (comments and retry lines skipped),
    /// within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut sse = Sse {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        sse.id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        sse.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        sse.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if sse.event == "alert" || sse.event == "reset" {
                    return Some(sse);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
