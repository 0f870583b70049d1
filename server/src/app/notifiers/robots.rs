//! The chat kinds' request bodies (WeCom and DingTalk robots, Slack), DingTalk's request
//! signature, and what every kind's answer means: delivered, worth retrying, or a permanent
//! failure.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::message::Text;
use super::spec::Kind;

/// The most bytes a WeCom robot accepts in a markdown message.
pub const WECOM_MAX_BYTES: usize = 4096;
/// The most bytes sent to a DingTalk robot (its documented limit is 20 000).
pub const DINGTALK_MAX_BYTES: usize = 20_000;

/// What an answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Delivered,
    /// Connection errors, timeouts, 5xx, 408, 429 and the robots' rate-limit errcodes.
    Retry(String),
    /// Anything else (a rotated robot key, a malformed message): retrying cannot help.
    Failed(String),
}

/// The robots' errcodes that mean "too fast" or "busy": WeCom 45009 (frequency limit), -1
/// (system busy); DingTalk 130101 (sending too fast), 130102.
const RETRY_ERRCODES: [i64; 4] = [45009, -1, 130101, 130102];

pub fn classify(kind: Kind, status: u16, body: &[u8]) -> Answer {
    match status {
        200..=299 => {}
        408 | 429 | 500..=599 => return Answer::Retry(format!("HTTP {status}")),
        _ => return Answer::Failed(format!("HTTP {status}")),
    }
    if !kind.is_group_robot() {
        return Answer::Delivered;
    }
    // The robots answer 200 either way; the verdict is in errcode.
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errcode").and_then(Value::as_i64));
    match code {
        Some(0) => Answer::Delivered,
        Some(c) if RETRY_ERRCODES.contains(&c) => Answer::Retry(format!("errcode {c}")),
        Some(c) => Answer::Failed(format!("errcode {c}")),
        None => Answer::Failed("answer without errcode".into()),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, marked when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    const MARK: &str = "…";
    let mut end = max - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

pub fn body(kind: Kind, text: &Text) -> Value {
    match kind {
        Kind::Wecom => json!({
            "msgtype": "markdown",
            "markdown": { "content": clip(&text.body, WECOM_MAX_BYTES) },
        }),
        Kind::Dingtalk => json!({
            "msgtype": "markdown",
            "markdown": { "title": text.title, "text": clip(&text.body, DINGTALK_MAX_BYTES) },
        }),
        Kind::Slack | Kind::Webhook => json!({ "text": format!("{}\n{}", text.title, text.body) }),
    }
}

/// DingTalk's signature: the URL gains `timestamp` (epoch ms) and `sign` =
/// base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret)), URL-encoded.
pub fn dingtalk_signed(url: &str, secret: &str, now_ms: i64) -> Result<String, String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{now_ms}\n{secret}").as_bytes());
    let sign = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    parsed
        .query_pairs_mut()
        .append_pair("timestamp", &now_ms.to_string())
        .append_pair("sign", &sign);
    Ok(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(Kind::Webhook, 200, b""), Answer::Delivered);
        assert_eq!(
            classify(Kind::Slack, 503, b""),
            Answer::Retry("HTTP 503".into())
        );
        assert_eq!(
            classify(Kind::Webhook, 429, b""),
            Answer::Retry("HTTP 429".into())
        );
        assert_eq!(
            classify(Kind::Webhook, 400, b""),
            Answer::Failed("HTTP 400".into())
        );
        assert_eq!(
            classify(Kind::Wecom, 200, br#"{"errcode":0}"#),
            Answer::Delivered
        );
        assert_eq!(
            classify(Kind::Wecom, 200, br#"{"errcode":45009,"errmsg":"freq"}"#),
            Answer::Retry("errcode 45009".into())
        );
        assert_eq!(
            classify(Kind::Dingtalk, 200, br#"{"errcode":310000}"#),
            Answer::Failed("errcode 310000".into())
        );
        assert!(matches!(
            classify(Kind::Dingtalk, 200, b"<html>"),
            Answer::Failed(_)
        ));
    }

    #[test]
    fn long_messages_are_clipped_at_a_character() {
        let text = "心".repeat(2000); // 6 000 bytes
        let clipped = clip(&text, WECOM_MAX_BYTES);
        assert!(clipped.len() <= WECOM_MAX_BYTES && clipped.ends_with('…'));
        assert_eq!(clip("short", 10), "short");
    }

    #[test]
    fn dingtalk_requests_are_signed() {
        let url = dingtalk_signed(
            "https://oapi.dingtalk.com/robot/send?access_token=T",
            "SEC1",
            1_700_000_000_000,
        )
        .unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        let pairs: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(pairs["access_token"], "T");
        assert_eq!(pairs["timestamp"], "1700000000000");
        // Known answer, computed with Python's hmac and base64.
        assert_eq!(
            pairs["sign"],
            "ukR4+WoOOBTGaOauYqugxVrMSFyr92q4hPxJxuOkiio="
        );
        // In the URL itself, '+' and '=' are percent-encoded.
        assert!(
            url.contains("sign=ukR4%2BWoOOBTGaOauYqugxVrMSFyr92q4hPxJxuOkiio%3D"),
            "{url}"
        );
    }
}
