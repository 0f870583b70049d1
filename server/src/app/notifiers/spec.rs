//! A notifier as configured (`[[notifiers]]`), checked: where it sends, which events, and
//! how its messages read.

use std::time::Duration;

use vigil_alerting::{Alert, EventKind, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Prometheus Alertmanager's webhook format, version "4".
    Webhook,
    /// 企业微信 group robot (markdown).
    Wecom,
    /// 钉钉 custom robot (markdown, optionally signed).
    Dingtalk,
    /// Slack incoming webhook.
    Slack,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "webhook" => Kind::Webhook,
            "wecom" => Kind::Wecom,
            "dingtalk" => Kind::Dingtalk,
            "slack" => Kind::Slack,
            _ => return None,
        })
    }

    /// Whether its messages land in group chats (so default to minimal content, in Chinese).
    pub fn is_group_robot(self) -> bool {
        matches!(self, Kind::Wecom | Kind::Dingtalk)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    ZhCn,
}

/// How much of an alert a message shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Patient, value, message.
    Full,
    /// Severity, care team, a pseudonymous reference and the console link: no values or names.
    Minimal,
}

/// The events a notifier sends by default.
pub const DEFAULT_EVENTS: [EventKind; 3] =
    [EventKind::Raised, EventKind::Escalated, EventKind::Resolved];

/// The robots' own limit, requests a minute.
pub const ROBOT_RATE_PER_MINUTE: u32 = 20;

/// How long one delivery may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct NotifierSpec {
    pub id: String,
    pub kind: Kind,
    /// Holds the robots' keys: never logged.
    pub url: String,
    pub care_teams: Vec<String>,
    pub min_severity: Severity,
    pub events: Vec<EventKind>,
    pub secret: Option<String>,
    /// Requests a minute at most (`None`: unlimited).
    pub rate_per_minute: Option<std::num::NonZeroU32>,
    pub language: Language,
    pub content: Content,
    pub timeout: Duration,
    /// How often a "Vigil is alive" message goes out (`None`: never).
    pub heartbeat: Option<Duration>,
}

impl NotifierSpec {
    /// Whether this notifier sends `kind` of `alert`.
    pub fn selects(&self, kind: EventKind, alert: &Alert) -> bool {
        self.events.contains(&kind)
            && alert.severity >= self.min_severity
            && (self.care_teams.is_empty()
                || self.care_teams.iter().any(|t| {
                    **t == *alert.care_team || alert.escalated_to.iter().any(|e| **e == **t)
                }))
    }

    /// The name its position is journaled under.
    pub fn consumer_name(&self) -> String {
        format!("notifier:{}", self.id)
    }
}

/// Parses an event kind as written in configuration.
pub fn event_kind(text: &str) -> Option<EventKind> {
    Some(match text {
        "raised" => EventKind::Raised,
        "acknowledged" => EventKind::Acknowledged,
        "escalated" => EventKind::Escalated,
        "resolved" => EventKind::Resolved,
        "renotified" => EventKind::Renotified,
        "snoozed" => EventKind::Snoozed,
        "assigned" => EventKind::Assigned,
        _ => return None,
    })
}

pub fn event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Raised => "raised",
        EventKind::Acknowledged => "acknowledged",
        EventKind::Escalated => "escalated",
        EventKind::Resolved => "resolved",
        EventKind::Renotified => "renotified",
        EventKind::Snoozed => "snoozed",
        EventKind::Assigned => "assigned",
    }
}
