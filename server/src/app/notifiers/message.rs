//! The words of a notification, for people in a chat: English or Chinese, full (patient,
//! value, rule message) or minimal (severity, care team, a reference and the link: nothing
//! that identifies a patient or shows a reading, for group chats).

use vigil_alerting::{AlertEvent, EventKind, Severity};

use super::spec::{Content, Language, NotifierSpec};

/// A short reference to the alert that names no patient: the end of the alert's random id.
pub fn reference(alert_id: &str) -> String {
    let tail: String = alert_id.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    tail[tail.len().saturating_sub(8)..].to_ascii_uppercase()
}

fn severity_word(s: Severity, lang: Language) -> &'static str {
    match (s, lang) {
        (Severity::High, Language::En) => "HIGH",
        (Severity::Medium, Language::En) => "MEDIUM",
        (Severity::Low, Language::En) => "LOW",
        (Severity::High, Language::ZhCn) => "高危",
        (Severity::Medium, Language::ZhCn) => "中危",
        (Severity::Low, Language::ZhCn) => "低危",
    }
}

fn event_word(k: EventKind, lang: Language) -> &'static str {
    match (k, lang) {
        (EventKind::Raised, Language::En) => "raised",
        (EventKind::Acknowledged, Language::En) => "acknowledged",
        (EventKind::Escalated, Language::En) => "escalated",
        (EventKind::Resolved, Language::En) => "resolved",
        (EventKind::Renotified, Language::En) => "still open",
        (EventKind::Snoozed, Language::En) => "snoozed",
        (EventKind::Assigned, Language::En) => "assigned",
        (EventKind::Raised, Language::ZhCn) => "新告警",
        (EventKind::Acknowledged, Language::ZhCn) => "告警已确认",
        (EventKind::Escalated, Language::ZhCn) => "告警已升级",
        (EventKind::Resolved, Language::ZhCn) => "告警已解除",
        (EventKind::Renotified, Language::ZhCn) => "告警仍未处理",
        (EventKind::Snoozed, Language::ZhCn) => "告警已暂缓",
        (EventKind::Assigned, Language::ZhCn) => "告警已指派",
    }
}

/// Where a message links to: the patient's page (full) or the board (minimal, whose link
/// must not name the patient).
pub fn link(spec: &NotifierSpec, external_url: &str, event: &AlertEvent) -> String {
    let base = external_url.trim_end_matches('/');
    match spec.content {
        Content::Full => format!("{base}/patients/{}", encode(&event.alert.patient_id)),
        Content::Minimal => format!("{base}/?board"),
    }
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A one-line title and a markdown body.
pub struct Text {
    pub title: String,
    pub body: String,
}

/// Why a message comes through this notifier although another one was chosen: that one
/// refused it for good, and this is its care team's `fallback`.
pub struct FallbackFor<'a> {
    pub notifier: &'a str,
    pub why: &'a str,
}

/// The message for a group of one patient's events (one event, or several pending ones).
/// `observed` formats an observation time for the reader.
pub fn render(
    spec: &NotifierSpec,
    group: &[&AlertEvent],
    observed: &dyn Fn(i64) -> String,
    link: &str,
    fallback: Option<&FallbackFor>,
) -> Text {
    let lang = spec.language;
    let mut text = match group {
        [event] => one(spec, event, &observed(event.alert.observed_at_ms), link),
        _ => several(spec, group, observed, link),
    };
    if let Some(f) = fallback {
        let note = match lang {
            Language::En => format!(
                "_Notifier {} could not deliver this ({}); sent here as the care team's fallback._\n\n",
                f.notifier, f.why
            ),
            Language::ZhCn => format!(
                "_通知渠道 {} 无法送达（{}），现经护理团队的备用渠道发送。_\n\n",
                f.notifier, f.why
            ),
        };
        text.body.insert_str(0, &note);
    }
    text
}

fn escalation(level: u32, lang: Language) -> String {
    match (level, lang) {
        (0, _) => String::new(),
        (n, Language::En) => format!(" (escalation level {n})"),
        (n, Language::ZhCn) => format!("（第 {n} 级升级）"),
    }
}

/// The message for one event.
fn one(spec: &NotifierSpec, event: &AlertEvent, observed: &str, link: &str) -> Text {
    let a = &event.alert;
    let lang = spec.language;
    let sev = severity_word(a.severity, lang);
    let what = event_word(event.kind, lang);
    let reference = reference(&a.id);
    let level = escalation(a.escalation_level, lang);
    match (spec.content, lang) {
        (Content::Full, Language::En) => Text {
            title: format!("[{sev}] {} {what}: {}", a.patient_id, a.rule_id),
            body: format!(
                "**[{sev}] {what}{level}**\n\nPatient: {}  \nCare team: {}  \nRule: {}  \n{}  \nValue: {} {}  \nObserved: {observed}\n\n[Open in Vigil]({link})",
                a.patient_id, a.care_team, a.rule_id, a.message, fmt(a.value), a.unit
            ),
        },
        (Content::Full, Language::ZhCn) => Text {
            title: format!("【{sev}】{} {what}：{}", a.patient_id, a.rule_id),
            body: format!(
                "**【{sev}】{what}{level}**\n\n患者：{}  \n护理团队：{}  \n规则：{}  \n{}  \n数值：{} {}  \n测量时间：{observed}\n\n[在 Vigil 中查看]({link})",
                a.patient_id, a.care_team, a.rule_id, a.message, fmt(a.value), a.unit
            ),
        },
        (Content::Minimal, Language::En) => Text {
            title: format!("[{sev}] alert {what} for {}", a.care_team),
            body: format!(
                "**[{sev}] alert {what}{level}**\n\nCare team: {}  \nReference: {reference}\n\n[Open in Vigil]({link})",
                a.care_team
            ),
        },
        (Content::Minimal, Language::ZhCn) => Text {
            title: format!("【{sev}】{} {what}", a.care_team),
            body: format!(
                "**【{sev}】{what}{level}**\n\n护理团队：{}  \n编号：{reference}\n\n[在 Vigil 中查看]({link})",
                a.care_team
            ),
        },
    }
}

/// The message for several pending events of one patient: a heading with the highest
/// severity among them, then one line per event, oldest first.
fn several(
    spec: &NotifierSpec,
    group: &[&AlertEvent],
    observed: &dyn Fn(i64) -> String,
    link: &str,
) -> Text {
    let lang = spec.language;
    let first = &group[0].alert;
    let top = group
        .iter()
        .map(|e| e.alert.severity)
        .max()
        .unwrap_or(Severity::Low);
    let sev = severity_word(top, lang);
    let n = group.len();
    let lines: Vec<String> = group
        .iter()
        .map(|e| {
            let a = &e.alert;
            let what = event_word(e.kind, lang);
            let level = escalation(a.escalation_level, lang);
            let s = severity_word(a.severity, lang);
            match spec.content {
                Content::Full => format!(
                    "- [{s}] {what}{level}: {} — {}, {} {}, {}",
                    a.rule_id,
                    a.message,
                    fmt(a.value),
                    a.unit,
                    observed(a.observed_at_ms)
                ),
                Content::Minimal => format!("- [{s}] {what}{level}: {}", reference(&a.id)),
            }
        })
        .collect();
    let lines = lines.join("\n");
    match (spec.content, lang) {
        (Content::Full, Language::En) => Text {
            title: format!("[{sev}] {n} alert events for {}", first.patient_id),
            body: format!(
                "**[{sev}] {n} alert events**\n\nPatient: {}  \nCare team: {}\n\n{lines}\n\n[Open in Vigil]({link})",
                first.patient_id, first.care_team
            ),
        },
        (Content::Full, Language::ZhCn) => Text {
            title: format!("【{sev}】{} 的 {n} 条告警事件", first.patient_id),
            body: format!(
                "**【{sev}】{n} 条告警事件**\n\n患者：{}  \n护理团队：{}\n\n{lines}\n\n[在 Vigil 中查看]({link})",
                first.patient_id, first.care_team
            ),
        },
        (Content::Minimal, Language::En) => Text {
            title: format!("[{sev}] {n} alert events for {}", first.care_team),
            body: format!(
                "**[{sev}] {n} alert events**\n\nCare team: {}\n\n{lines}\n\n[Open in Vigil]({link})",
                first.care_team
            ),
        },
        (Content::Minimal, Language::ZhCn) => Text {
            title: format!("【{sev}】{} {n} 条告警事件", first.care_team),
            body: format!(
                "**【{sev}】{n} 条告警事件**\n\n护理团队：{}\n\n{lines}\n\n[在 Vigil 中查看]({link})",
                first.care_team
            ),
        },
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
