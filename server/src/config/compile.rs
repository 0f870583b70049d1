//! Semantic checks of a parsed configuration and its translation into the engine's
//! domain types: rules validated, ids unique, references resolved, every error with its line.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use vigil_alerting::hours::{AfterHours, Hours};
use vigil_alerting::patient_check::{problems, RuleLookup};
use vigil_alerting::{
    builtin_rules, EscalationPolicy, PatientProfile, Rule, RuleOverride, RuleSpec, Severity,
    TeamPolicy, DEFAULT_CARE_TEAM,
};

use super::{Diagnostic, FileConfig, OverrideEntry, PatientEntry, RuleEntry};
use crate::app::dispositions::Disposition;
use crate::app::notifiers::spec::{
    event_kind, Content, Kind, Language, NotifierSpec, DEFAULT_EVENTS, DEFAULT_TIMEOUT,
    ROBOT_RATE_PER_MINUTE,
};
use crate::auth::device::{self, DeviceRecord};
use crate::auth::token::Digest;
use crate::auth::{Principal, Role};
use crate::tls::TlsFiles;

/// What the engine needs from the file.
#[derive(Debug)]
pub struct Compiled {
    pub rules: Vec<Rule>,
    /// True when the file has no `[[rules]]` and the built-in clinical set applies.
    pub builtin_rules: bool,
    /// `[rule_set]`: who approved the rules, and what a run-time change needs.
    pub rule_set: super::RuleSetSection,
    pub patients: Vec<PatientProfile>,
    /// True when the file has no `[[patients]]`: everyone is accepted, team `default`.
    pub open_enrollment: bool,
    pub care_teams: Vec<String>,
    /// The care teams marked `home = true`.
    pub home_teams: Vec<String>,
    /// Escalation and re-notification per care team.
    pub escalation: EscalationPolicy,
    pub auth: CompiledAuth,
    /// `[tls]`, when present.
    pub tls: Option<TlsFiles>,
    pub notifiers: Vec<NotifierSpec>,
    /// (care team, notifier id): where a team's undeliverable notifications go.
    pub fallbacks: Vec<(String, String)>,
    /// What an alert may be recorded as having led to, in the file's order.
    pub dispositions: Vec<Disposition>,
    /// `[cluster]`, checked.
    pub cluster: Option<ClusterSettings>,
}

/// `[rule_set]` with a blank name read as no name, so that every reader of it (the
/// version a changed file makes, `rules check`) treats "" as nobody named.
fn rule_set(section: &super::RuleSetSection) -> super::RuleSetSection {
    let named = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    super::RuleSetSection {
        approved_by: named(&section.approved_by),
        second_approver: named(&section.second_approver),
        require_second_approver: section.require_second_approver,
    }
}

/// `[cluster]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub nats_urls: Vec<String>,
    pub node_id: String,
    pub partitions: u32,
    pub namespace: String,
    pub replicas: u8,
    pub snapshot_every: std::time::Duration,
}

/// `[auth]`, `[[tokens]]` and `[[devices]]`, checked.
#[derive(Debug, Default, Clone)]
pub struct CompiledAuth {
    pub enabled: bool,
    pub tokens: Vec<(Digest, Principal)>,
    pub devices: Vec<DeviceRecord>,
    pub oidc: Option<crate::auth::oidc::OidcSettings>,
}

/// Checks and translates `cfg`. Returns every problem found, sorted by line.
pub fn compile(cfg: &FileConfig) -> Result<Compiled, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut err = |line: usize, message: String| diags.push(Diagnostic { line, message });
    let teams = compile_teams(cfg, &mut err);
    let escalation = escalation(cfg, &teams, &mut err);
    let (rules, builtin) = compile_rules(cfg, &teams, &mut err);
    let patients = compile_patients(cfg, &rules, builtin, &teams, &mut err);
    let auth = compile_auth(cfg, &mut err);
    let tls = compile_tls(cfg, &mut err);
    let notifiers = compile_notifiers(cfg, &teams, &mut err);
    let fallbacks = compile_fallbacks(cfg, &mut err);
    let dispositions = compile_dispositions(cfg, &mut err);
    let cluster = compile_cluster(cfg, &mut err);
    if diags.is_empty() {
        Ok(Compiled {
            rules,
            builtin_rules: builtin,
            rule_set: rule_set(&cfg.rule_set),
            open_enrollment: cfg.patients.is_empty(),
            patients,
            care_teams: cfg.care_teams.iter().map(|t| t.value.id.clone()).collect(),
            home_teams: cfg
                .care_teams
                .iter()
                .filter(|t| t.value.home)
                .map(|t| t.value.id.clone())
                .collect(),
            escalation,
            auth,
            tls,
            notifiers,
            fallbacks,
            dispositions,
            cluster,
        })
    } else {
        diags.sort();
        Err(diags)
    }
}

/// Checks `[[care_teams]]` and returns their ids.
fn compile_teams(cfg: &FileConfig, err: &mut impl FnMut(usize, String)) -> HashSet<String> {
    let mut teams = HashSet::new();
    for t in &cfg.care_teams {
        if t.value.id.is_empty() {
            err(t.line, "care team `id` must not be empty".into());
        } else if !teams.insert(t.value.id.clone()) {
            err(t.line, format!("duplicate care team id '{}'", t.value.id));
        }
        for (key, value) in [
            ("escalate_after", t.value.escalate_after),
            ("renotify_after", t.value.renotify_after),
        ] {
            if value == Some(Duration::ZERO) {
                err(
                    t.line,
                    format!("care team '{}': `{key}` must be longer than 0", t.value.id),
                );
            }
        }
    }
    for t in &cfg.care_teams {
        let Some(to) = &t.value.escalate_to else {
            continue;
        };
        if !teams.contains(to) {
            err(
                t.line,
                format!(
                    "care team '{}': `escalate_to` names '{to}', which is not defined in [[care_teams]]",
                    t.value.id
                ),
            );
        } else if t.value.escalate_after.is_none() {
            err(
                t.line,
                format!(
                    "care team '{}': `escalate_to` needs `escalate_after` (when to escalate)",
                    t.value.id
                ),
            );
        }
    }
    teams
}

/// `[cluster]`: NATS URLs, a node id, partitions (1 to 65 536), a namespace that is one
/// subject token, replicas 1 to 5.
fn compile_cluster(
    cfg: &FileConfig,
    err: &mut impl FnMut(usize, String),
) -> Option<ClusterSettings> {
    let at = cfg.cluster.as_ref()?;
    let c = &at.value;
    let mut ok = true;
    let mut bad = |m: String| {
        ok = false;
        err(at.line, format!("[cluster]: {m}"));
    };
    if c.nats_urls.is_empty() {
        bad("`nats_urls` needs at least one nats:// URL".into());
    }
    for u in &c.nats_urls {
        if let Err(m) = nats_url_ok(u) {
            bad(format!("`nats_urls`: {m}"));
        }
    }
    if let Err(m) = node_id_ok(&c.node_id) {
        bad(format!("`node_id` {m}"));
    }
    let namespace = c.namespace.clone().unwrap_or_else(|| "vigil".into());
    if !token(&namespace) {
        bad("`namespace` must be 1 to 64 letters, digits, - or _ (one subject token)".into());
    }
    let partitions = c
        .partitions
        .unwrap_or(crate::nats::partition::DEFAULT_PARTITIONS);
    if !(1..=65_536).contains(&partitions) {
        bad("`partitions` must be from 1 to 65536".into());
    }
    let replicas = c.replicas.unwrap_or(1);
    if !(1..=5).contains(&replicas) {
        bad("`replicas` must be from 1 to 5 (JetStream's limit)".into());
    }
    let snapshot_every = c
        .snapshot_every
        .unwrap_or(std::time::Duration::from_secs(60));
    if snapshot_every < std::time::Duration::from_secs(1) {
        bad("`snapshot_every` must be at least 1s".into());
    }
    ok.then(|| ClusterSettings {
        nats_urls: c.nats_urls.clone(),
        node_id: c.node_id.clone(),
        partitions,
        namespace,
        replicas,
        snapshot_every,
    })
}

/// One subject token: what node ids and namespaces must be.
fn token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
}

fn node_id_ok(id: &str) -> Result<(), String> {
    if token(id) {
        Ok(())
    } else {
        Err("must be 1 to 64 letters, digits, - or _".into())
    }
}

fn nats_url_ok(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "nats" | "tls") && url.host_str().is_some() => Ok(()),
        _ => Err(format!(
            "'{}' is not a nats:// (or tls://) URL",
            u.escape_default()
        )),
    }
}

/// `--node-id` and `--nats` over `[cluster]`, checked as the file's values are.
pub fn cluster_flags(
    cluster: &mut ClusterSettings,
    node_id: Option<&str>,
    nats: &[String],
) -> anyhow::Result<()> {
    if let Some(id) = node_id {
        node_id_ok(id).map_err(|m| anyhow::anyhow!("--node-id {m}"))?;
        cluster.node_id = id.to_string();
    }
    if !nats.is_empty() {
        for u in nats {
            nats_url_ok(u).map_err(|m| anyhow::anyhow!("--nats: {m}"))?;
        }
        cluster.nats_urls = nats.to_vec();
    }
    Ok(())
}

/// `[[dispositions]]`, or the default list when the file has none.
fn compile_dispositions(cfg: &FileConfig, err: &mut impl FnMut(usize, String)) -> Vec<Disposition> {
    if cfg.dispositions.is_empty() {
        return crate::app::dispositions::defaults();
    }
    let mut out: Vec<Disposition> = Vec::new();
    for d in &cfg.dispositions {
        let id = &d.value.id;
        if let Err(e) = crate::app::fields::required_id("id", id) {
            err(d.line, format!("disposition: {e}"));
        } else if out.iter().any(|o| o.id == *id) {
            err(d.line, format!("duplicate disposition '{id}'"));
        } else {
            out.push(Disposition {
                id: id.clone(),
                label: d.value.label.clone().unwrap_or_else(|| id.clone()),
            });
        }
    }
    out
}

/// `[[care_teams]] fallback`: each must name a notifier.
fn compile_fallbacks(
    cfg: &FileConfig,
    err: &mut impl FnMut(usize, String),
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in &cfg.care_teams {
        let Some(id) = &t.value.fallback else {
            continue;
        };
        if cfg.notifiers.iter().any(|n| n.value.id == *id) {
            out.push((t.value.id.clone(), id.clone()));
        } else {
            err(
                t.line,
                format!(
                    "care team '{}': `fallback` names '{}', which is not defined in [[notifiers]]",
                    t.value.id,
                    id.escape_default()
                ),
            );
        }
    }
    out
}

/// Escalation, re-notification and hours per care team.
fn escalation(
    cfg: &FileConfig,
    teams: &HashSet<String>,
    err: &mut impl FnMut(usize, String),
) -> EscalationPolicy {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as i64);
    let zone = cfg
        .server
        .timezone
        .clone()
        .unwrap_or_else(crate::clock::host_timezone);
    let mut policy = EscalationPolicy::default();
    for t in &cfg.care_teams {
        let e = &t.value;
        let hours = e.hours.as_ref().and_then(|h| {
            Hours::parse(
                h.timezone.as_deref().unwrap_or(&zone),
                &h.days,
                &h.from,
                &h.to,
                &e.holidays,
            )
            .map_err(|why| err(t.line, format!("care team '{}': `hours`: {why}", e.id)))
            .ok()
        });
        if e.hours.is_none() && (e.after_hours.is_some() || !e.holidays.is_empty()) {
            err(
                t.line,
                format!(
                    "care team '{}': `after_hours` and `holidays` need `hours`",
                    e.id
                ),
            );
        }
        let after_hours = match e.after_hours.as_deref() {
            None => None,
            Some("hold") => Some(AfterHours::Hold),
            Some(other) if other != e.id && teams.contains(other) => {
                Some(AfterHours::Team(Arc::from(other)))
            }
            Some(other) => {
                err(
                    t.line,
                    format!(
                        "care team '{}': `after_hours` must be \"hold\" or another care team of [[care_teams]], not '{}'",
                        e.id,
                        other.escape_default()
                    ),
                );
                None
            }
        };
        policy.teams.insert(
            Arc::from(e.id.as_str()),
            TeamPolicy {
                escalate_after_ms: ms(e.escalate_after),
                escalate_to: e.escalate_to.as_deref().map(Arc::from),
                renotify_after_ms: ms(e.renotify_after),
                hours,
                after_hours,
            },
        );
    }
    policy
}

/// The rules of `[[rules]]`, checked, or the built-in set when there are none; and
/// whether they are the built-in set.
fn compile_rules(
    cfg: &FileConfig,
    teams: &HashSet<String>,
    err: &mut impl FnMut(usize, String),
) -> (Vec<Rule>, bool) {
    let Some(entries) = &cfg.rules else {
        return (builtin_rules(), true);
    };
    let mut rules = Vec::new();
    let mut ids = HashSet::new();
    for e in entries {
        match rule_from_entry(&e.value) {
            Ok(rule) => {
                if !ids.insert(rule.id.clone()) {
                    err(e.line, format!("duplicate rule id '{}'", rule.id));
                }
                if let Some(team) = &rule.care_team {
                    if !teams.is_empty() && !teams.contains(&**team) {
                        err(
                            e.line,
                            format!(
                                "rule '{}': care team '{team}' is not defined in [[care_teams]]",
                                rule.id
                            ),
                        );
                    }
                }
                rules.push(rule);
            }
            Err(messages) => {
                for m in messages {
                    err(e.line, format!("rule '{}': {m}", e.value.id));
                }
            }
        }
    }
    for e in entries {
        for s in e
            .value
            .supersedes
            .iter()
            .filter(|s| !ids.contains(s.as_str()))
        {
            err(
                e.line,
                format!(
                    "rule '{}': `supersedes` names '{s}', which is not a rule in this file",
                    e.value.id
                ),
            );
        }
    }
    (rules, false)
}

/// The patients of `[[patients]]`, each checked like an enrolment over gRPC.
fn compile_patients(
    cfg: &FileConfig,
    rules: &[Rule],
    builtin: bool,
    teams: &HashSet<String>,
    err: &mut impl FnMut(usize, String),
) -> Vec<PatientProfile> {
    let lookup = RuleLookup {
        get: |id: &str| rules.iter().find(|r| &*r.id == id),
        source: if builtin {
            "the built-in rule set"
        } else {
            "[[rules]]"
        },
    };
    let mut patients = Vec::new();
    let mut ids = HashSet::new();
    for p in &cfg.patients {
        let profile = profile_from_entry(&p.value);
        if !ids.insert(p.value.id.clone()) {
            err(p.line, format!("duplicate patient id '{}'", p.value.id));
        }
        for problem in problems(&profile, &lookup, teams) {
            err(p.line, format!("patient '{}': {problem}", p.value.id));
        }
        patients.push(profile);
    }
    patients
}

/// A `[[patients]]` entry as the engine's profile (checked by [`problems`]).
fn profile_from_entry(entry: &PatientEntry) -> PatientProfile {
    PatientProfile {
        id: entry.id.as_str().into(),
        care_team: entry
            .care_team
            .as_deref()
            .unwrap_or(DEFAULT_CARE_TEAM)
            .into(),
        consent: entry.consent,
        overrides: entry
            .overrides
            .iter()
            .map(|(rule_id, o)| (rule_id.as_str().into(), override_from_entry(o)))
            .collect(),
        conditions: entry.conditions.iter().map(|c| c.as_str().into()).collect(),
        tier: entry.tier.as_deref().map(Into::into),
        spo2_scale: entry.spo2_scale.unwrap_or(1),
        responsible: entry.responsible.as_deref().map(Arc::from),
        timezone: entry.timezone.as_deref().map(Arc::from),
    }
}

/// Checks tokens and devices; they are refused unless `[auth] enabled = true`, so that a
/// forgotten switch cannot leave credentials configured and the server open.
fn compile_auth(cfg: &FileConfig, err: &mut impl FnMut(usize, String)) -> CompiledAuth {
    let enabled = cfg.auth.enabled;
    let tokens = compile_tokens(cfg, err);
    let client_certificates = cfg
        .tls
        .as_ref()
        .is_some_and(|t| t.value.client_ca.is_some());
    let mut devices: Vec<DeviceRecord> = Vec::new();
    for d in &cfg.devices {
        let e = &d.value;
        if !enabled {
            err(d.line, "[[devices]] needs `[auth] enabled = true` (otherwise devices are not asked for credentials)".into());
        }
        let checks = device::check_id(&e.id)
            .and_then(|()| device::check_patient(&e.patient))
            .and_then(|()| e.secret_hash.as_deref().map_or(Ok(()), device::check_hash));
        if e.secret_hash.is_none() && !client_certificates {
            err(
                d.line,
                format!(
                    "device '{}' has no `secret_hash` and `[tls] client_ca` is not set: it \
                     could never log in",
                    e.id
                ),
            );
        }
        if let Err(m) = checks {
            err(d.line, format!("device '{}': {m}", e.id));
        } else if devices.iter().any(|x| x.id == e.id) {
            err(d.line, format!("duplicate device id '{}'", e.id));
        } else {
            devices.push(DeviceRecord {
                id: e.id.clone(),
                patient_id: e.patient.clone(),
                secret_hash: e.secret_hash.clone().unwrap_or_default(),
                from_config: true,
                created_ms: 0,
            });
        }
    }
    let oidc = compile_oidc(cfg, err);
    CompiledAuth {
        enabled,
        tokens,
        devices,
        oidc,
    }
}

/// `[auth.oidc]`, checked: it needs `[auth] enabled` (sign-in only means something then),
/// an http(s) issuer (https except on loopback), and a known role for every group.
fn compile_oidc(
    cfg: &FileConfig,
    err: &mut impl FnMut(usize, String),
) -> Option<crate::auth::oidc::OidcSettings> {
    let o = cfg.auth.oidc.as_ref()?;
    let line = cfg.auth_line;
    let before = std::cell::Cell::new(0usize);
    let mut bad = |m: String| {
        before.set(before.get() + 1);
        err(line, format!("[auth.oidc]: {m}"));
    };
    if !cfg.auth.enabled {
        bad("needs `enabled = true` in [auth]".into());
    }
    match reqwest::Url::parse(&o.issuer) {
        Ok(u) if u.scheme() == "https" => {}
        Ok(u)
            if u.scheme() == "http"
                && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => {}
        _ => bad("`issuer` must be an https:// URL (http:// on loopback only)".into()),
    }
    if o.client_id.is_empty() {
        bad("`client_id` must not be empty".into());
    }
    let mut groups = Vec::new();
    for (group, role) in &o.groups {
        match Role::parse(role, Vec::new()) {
            Ok(Role::Gateway { .. }) | Err(_) => bad(format!(
                "group '{}': role must be care_team:<id>, viewer:<id> or admin, not '{}'",
                group.escape_default(),
                role.escape_default()
            )),
            Ok(r) => groups.push((group.clone(), r)),
        }
    }
    if o.groups.is_empty() {
        bad("`groups` must map at least one group to a role".into());
    }
    (before.get() == 0).then(|| crate::auth::oidc::OidcSettings {
        issuer: o.issuer.clone(),
        client_id: o.client_id.clone(),
        client_secret: o.client_secret.clone(),
        groups_claim: o.groups_claim.clone().unwrap_or_else(|| "groups".into()),
        groups,
        redirect_url: o.redirect_url.clone(),
    })
}

/// Checks `[[tokens]]`: names unique, digests well-formed and distinct, roles known.
fn compile_tokens(
    cfg: &FileConfig,
    err: &mut impl FnMut(usize, String),
) -> Vec<(Digest, Principal)> {
    let enabled = cfg.auth.enabled;
    let mut tokens = Vec::new();
    let mut names = HashSet::new();
    for t in &cfg.tokens {
        let e = &t.value;
        if !enabled {
            err(
                t.line,
                "[[tokens]] needs `[auth] enabled = true` (otherwise nobody is asked for a token)"
                    .into(),
            );
        }
        if e.name.is_empty() {
            err(t.line, "token `name` must not be empty".into());
        } else if !names.insert(e.name.clone()) {
            err(t.line, format!("duplicate token name '{}'", e.name));
        }
        let digest = Digest::from_hex(&e.sha256)
            .map_err(|m| err(t.line, format!("token '{}': {m}", e.name)));
        let role = Role::parse(&e.role, e.patient_prefixes.clone())
            .map_err(|m| err(t.line, format!("token '{}': {m}", e.name)));
        if let (Ok(digest), Ok(role)) = (digest, role) {
            if tokens.iter().any(|(d, _)| *d == digest) {
                err(
                    t.line,
                    format!("token '{}' has the same sha256 as another token", e.name),
                );
            }
            tokens.push((
                digest,
                Principal {
                    name: e.name.clone(),
                    role,
                },
            ));
        }
    }
    tokens
}

/// Checks `[tls]`: a certificate needs its key, and client certificates are credentials,
/// so they need authentication on. The files themselves are read when the server starts.
/// Checks `[[notifiers]]`: a known kind, a URL Vigil can send to, the keys that go with
/// the kind, defined care teams. Messages never show the URL (robot keys are in it).
fn compile_notifiers(
    cfg: &FileConfig,
    teams: &HashSet<String>,
    err: &mut impl FnMut(usize, String),
) -> Vec<NotifierSpec> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for n in &cfg.notifiers {
        let (line, e) = (n.line, &n.value);
        let name = format!("notifier '{}'", e.id);
        let before = out.len();
        let mut bad = |message: String| err(line, format!("{name}: {message}"));
        if e.id.is_empty() {
            bad("`id` must not be empty".into());
        } else if !ids.insert(e.id.clone()) {
            bad("duplicate notifier id".into());
        }
        let Some(kind) = Kind::parse(&e.kind) else {
            bad(format!(
                "unknown kind '{}'; expected webhook, wecom, dingtalk or slack",
                e.kind.escape_default()
            ));
            continue;
        };
        match reqwest::Url::parse(&e.url) {
            Err(_) => bad("`url` is not a URL (expected http:// or https://...)".into()),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                bad("`url` must be http:// or https://".into())
            }
            Ok(u)
                if kind == Kind::Dingtalk
                    && u.scheme() != "https"
                    && !matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) =>
            {
                bad("a dingtalk robot is reached over https:// only".into())
            }
            Ok(_) => {}
        }
        if e.secret.is_some() && kind != Kind::Dingtalk {
            bad("`secret` applies to kind dingtalk only".into());
        }
        for t in &e.care_teams {
            if !teams.is_empty() && !teams.contains(t) {
                bad(format!("care team '{t}' is not defined in [[care_teams]]"));
            }
        }
        let min_severity = match e.min_severity.as_deref() {
            None => Some(Severity::Low),
            Some(s) => Severity::parse(s).or_else(|| {
                bad(format!(
                    "`min_severity` must be low, medium or high, not '{}'",
                    s.escape_default()
                ));
                None
            }),
        };
        let events: Vec<_> = match &e.events {
            None => DEFAULT_EVENTS.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(|k| {
                    event_kind(k).or_else(|| {
                        bad(format!(
                            "unknown event '{}'; expected raised, acknowledged, escalated, resolved, renotified, snoozed or assigned",
                            k.escape_default()
                        ));
                        None
                    })
                })
                .collect(),
        };
        let language = match e.language.as_deref() {
            None if kind.is_group_robot() => Some(Language::ZhCn),
            None | Some("en") => Some(Language::En),
            Some("zh-CN") => Some(Language::ZhCn),
            Some(other) => {
                bad(format!(
                    "`language` must be en or zh-CN, not '{}'",
                    other.escape_default()
                ));
                None
            }
        };
        let content = match e.content.as_deref() {
            None if kind.is_group_robot() => Some(Content::Minimal),
            None | Some("full") => Some(Content::Full),
            Some("minimal") => Some(Content::Minimal),
            Some(other) => {
                bad(format!(
                    "`content` must be full or minimal, not '{}'",
                    other.escape_default()
                ));
                None
            }
        };
        let rate_per_minute = match e.rate_per_minute {
            Some(0) => {
                bad("`rate_per_minute` must be at least 1".into());
                None
            }
            Some(n) => std::num::NonZeroU32::new(n),
            None if kind.is_group_robot() => std::num::NonZeroU32::new(ROBOT_RATE_PER_MINUTE),
            None => None,
        };
        if e.heartbeat.is_some_and(|h| h < Duration::from_secs(1)) {
            bad("`heartbeat` must be at least 1s".into());
        }
        if e.timeout == Some(Duration::ZERO) {
            bad("`timeout` must be longer than 0".into());
        }
        if let (Some(min_severity), Some(language), Some(content)) =
            (min_severity, language, content)
        {
            if out.len() == before {
                out.push(NotifierSpec {
                    id: e.id.clone(),
                    kind,
                    url: e.url.clone(),
                    care_teams: e.care_teams.clone(),
                    min_severity,
                    events,
                    secret: e.secret.clone(),
                    rate_per_minute,
                    language,
                    content,
                    timeout: e.timeout.unwrap_or(DEFAULT_TIMEOUT),
                    heartbeat: e.heartbeat,
                });
            }
        }
    }
    out
}

fn compile_tls(cfg: &FileConfig, err: &mut impl FnMut(usize, String)) -> Option<TlsFiles> {
    let at = cfg.tls.as_ref()?;
    let t = &at.value;
    if t.client_ca.is_some() && !cfg.auth.enabled {
        err(
            at.line,
            "`[tls] client_ca` needs `[auth] enabled = true` (client certificates are device \
             credentials)"
                .into(),
        );
    }
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: t.client_ca.clone(),
        }),
        _ => {
            err(
                at.line,
                "[tls] needs both `cert` (PEM certificate chain) and `key` (PEM private key)"
                    .into(),
            );
            None
        }
    }
}

/// Validates one `[[rules]]` entry; the messages are the ones `rules check` prints and
/// `Rules.PutRule` returns.
pub fn rule_from_entry(e: &RuleEntry) -> Result<Rule, Vec<String>> {
    spec_from_entry(e)
        .validate()
        .map_err(|errors| errors.into_iter().map(|e| e.to_string()).collect())
}

/// The entry as a [`RuleSpec`].
pub fn spec_from_entry(e: &RuleEntry) -> RuleSpec {
    RuleSpec {
        id: e.id.clone(),
        kind: e.kind.clone(),
        metric: e.metric.clone(),
        above: e.above,
        below: e.below,
        hold_ms: e.hold.map(duration_ms),
        clear: e.clear,
        window_ms: e.window.map(duration_ms),
        by: e.by,
        min_samples: e.min_samples,
        after_ms: e.after.map(duration_ms),
        at_least: e.at_least,
        any_parameter_at_least: e.any_parameter_at_least,
        horizon_ms: e.horizon.map(duration_ms),
        min_days: e.min_days,
        days: e.days,
        severity: e.severity.clone(),
        message: e.message.clone(),
        patient_message: e.patient_message.clone(),
        care_team: e.care_team.clone(),
        conditions: e.conditions.clone(),
        tiers: e.tiers.clone(),
        supersedes: e.supersedes.clone(),
    }
}

fn override_from_entry(o: &OverrideEntry) -> RuleOverride {
    RuleOverride {
        above: o.above,
        below: o.below,
        clear: o.clear,
        hold_ms: o.hold.map(duration_ms),
        by: o.by,
        window_ms: o.window.map(duration_ms),
        min_samples: o.min_samples,
        after_ms: o.after.map(duration_ms),
        at_least: o.at_least,
        any_parameter_at_least: o.any_parameter_at_least,
        horizon_ms: o.horizon.map(duration_ms),
        min_days: o.min_days,
        days: o.days,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn diags(text: &str) -> Vec<Diagnostic> {
        compile(&parse(text).unwrap()).unwrap_err()
    }

    #[test]
    fn credentials_are_checked_and_need_auth_enabled() {
        let hash = crate::auth::secret::hash_chosen("0123456789abcdef").unwrap();
        let sha = crate::auth::token::digest("vigil_x").to_hex();
        let entries = format!(
            r#"[[tokens]]
name = "ward"
role = "care_team:cardiology"
sha256 = "{sha}"

[[tokens]]
name = "ward"
role = "root"
sha256 = "abc"

[[devices]]
id = "cuff 1"
patient = "p1"
secret_hash = "{hash}"

[[devices]]
id = "cuff-2"
patient = "p1"
secret_hash = "plain-text"
"#
        );
        let d = diags(&entries);
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert!(text.contains(&"line 1: [[tokens]] needs `[auth] enabled = true` (otherwise nobody is asked for a token)".to_string()), "{text:?}");
        assert!(text
            .iter()
            .any(|m| m.starts_with("line 6: duplicate token name 'ward'")));
        assert!(text
            .iter()
            .any(|m| m.starts_with("line 6: token 'ward': `sha256` must be 64 hex digits")));
        assert!(text
            .iter()
            .any(|m| m.starts_with("line 6: token 'ward': unknown role 'root'")));
        assert!(text
            .iter()
            .any(|m| m.starts_with("line 11: device 'cuff 1': device id must be")));
        assert!(text.iter().any(|m| m.starts_with(
            "line 16: device 'cuff-2': `secret_hash` is not a keyed digest or an Argon2 PHC string"
        )));

        let ok = format!(
            "[auth]\nenabled = true\n\n[[tokens]]\nname = \"gw\"\nrole = \"gateway\"\nsha256 = \"{sha}\"\npatient_prefixes = [\"w3-\"]\n\n[[devices]]\nid = \"cuff-1\"\npatient = \"p1\"\nsecret_hash = \"{hash}\"\n"
        );
        let c = compile(&parse(&ok).unwrap()).unwrap();
        assert!(c.auth.enabled);
        assert_eq!(c.auth.tokens.len(), 1);
        assert_eq!(c.auth.tokens[0].1.name, "gw");
        assert_eq!(c.auth.devices[0].patient_id, "p1");
        assert!(c.auth.devices[0].from_config);
    }

    #[test]
    fn tls_needs_cert_and_key_and_client_ca_needs_auth() {
        let text = "[tls]\ncert = \"server.crt\"\nclient_ca = \"ca.crt\"\n";
        let text: Vec<String> = diags(text).iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "line 1: [tls] needs both `cert` (PEM certificate chain) and `key` (PEM private key)",
                "line 1: `[tls] client_ca` needs `[auth] enabled = true` (client certificates are device credentials)",
            ]
        );
        // A device without a secret can only use a certificate.
        let no_secret =
            "[auth]\nenabled = true\n\n[[devices]]\nid = \"patch-1\"\npatient = \"p1\"\n";
        let d = diags(no_secret);
        assert_eq!(d[0].line, 4);
        assert!(d[0]
            .message
            .contains("has no `secret_hash` and `[tls] client_ca` is not set"));
        let ok = format!(
            "{no_secret}\n[tls]\ncert = \"s.crt\"\nkey = \"s.key\"\nclient_ca = \"ca.crt\"\n"
        );
        let c = compile(&parse(&ok).unwrap()).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, std::path::PathBuf::from("s.crt"));
        assert_eq!(tls.client_ca, Some(std::path::PathBuf::from("ca.crt")));
        assert_eq!(c.auth.devices[0].secret_hash, "");
    }

    #[test]
    fn no_rules_means_builtin_and_no_patients_means_open() {
        let c = compile(&parse("").unwrap()).unwrap();
        assert!(c.builtin_rules && c.open_enrollment);
        assert!(c.rules.iter().any(|r| &*r.id == "tachycardia"));
    }

    #[test]
    fn a_blank_approver_is_nobody_named() {
        let text = "[rule_set]\napproved_by = \"  \"\nsecond_approver = \"n.zhang\"\n";
        let c = compile(&parse(text).unwrap()).unwrap();
        assert_eq!(c.rule_set.approved_by, None);
        assert_eq!(c.rule_set.second_approver.as_deref(), Some("n.zhang"));
    }

    #[test]
    fn semantic_errors_each_with_their_line() {
        let text = r#"[[care_teams]]
id = "cardiology"

[[patients]]
id = "p1"
care_team = "oncology"
consent = true
overrides = { "nope" = { above = 1 } }

[[rules]]
id = "r1"
metric = "pulse"
above = 100

[[rules]]
id = "r1"
metric = "heart_rate"
above = 100
below = 50
"#;
        let d = diags(text);
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![4, 4, 10, 15], "{d:?}");
        assert!(d[2].message.contains("unknown metric 'pulse'"), "{}", d[2]);
        assert!(d[3].message.contains("not both"), "{}", d[3]);
    }

    #[test]
    fn escalation_chains_are_checked_and_compiled() {
        let text = "[[care_teams]]\nid = \"ward\"\nescalate_after = \"5m\"\nescalate_to = \"charge\"\nrenotify_after = \"30m\"\n\n[[care_teams]]\nid = \"charge\"\nescalate_to = \"nobody\"\n";
        let d = diags(text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, 7);
        assert!(
            d[0].message.contains("'nobody', which is not defined"),
            "{}",
            d[0]
        );
        let ok = text.replace("escalate_to = \"nobody\"\n", "");
        let c = compile(&parse(&ok).unwrap()).unwrap();
        let ward = &c.escalation.teams["ward"];
        assert_eq!(
            (
                ward.escalate_after_ms,
                ward.escalate_to.as_deref(),
                ward.renotify_after_ms
            ),
            (Some(300_000), Some("charge"), Some(1_800_000))
        );
        let no_after = "[[care_teams]]\nid = \"a\"\nescalate_to = \"a\"\n";
        assert!(diags(no_after)[0]
            .message
            .contains("needs `escalate_after`"));
    }

    #[test]
    fn notifiers_are_checked_with_their_lines_and_never_echo_a_url() {
        let text = r#"[[care_teams]]
id = "ward"

[[notifiers]]
id = "a"
kind = "pager"
url = "https://x.example/hook"

[[notifiers]]
id = "b"
kind = "dingtalk"
url = "http://oapi.example/robot/send?access_token=SECRET-TOKEN"
care_teams = ["nowhere"]

[[notifiers]]
id = "c"
kind = "slack"
url = "not a url SECRET-TOKEN"
secret = "x"
min_severity = "urgent"
events = ["raised", "exploded"]
"#;
        let d = diags(text);
        let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
        assert_eq!(lines, [4, 9, 9, 15, 15, 15, 15], "{d:?}");
        let all: String = d.iter().map(|d| d.message.clone() + "\n").collect();
        for needle in [
            "unknown kind 'pager'",
            "https:// only",
            "care team 'nowhere'",
            "`url` is not a URL",
            "`secret` applies to kind dingtalk only",
            "`min_severity` must be",
            "unknown event 'exploded'",
        ] {
            assert!(all.contains(needle), "{needle} missing from:\n{all}");
        }
        assert!(!all.contains("SECRET-TOKEN"), "{all}");
        let ok = "[[notifiers]]\nid = \"w\"\nkind = \"wecom\"\nurl = \"https://qyapi.example/send?key=k\"\n";
        let c = compile(&parse(ok).unwrap()).unwrap();
        let n = &c.notifiers[0];
        assert_eq!(
            (n.kind, n.language, n.content),
            (Kind::Wecom, Language::ZhCn, Content::Minimal)
        );
        assert_eq!(n.events, DEFAULT_EVENTS);
        assert_eq!(n.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn cluster_settings_are_checked_with_their_line() {
        let text = "[cluster]\nnats_urls = [\"http://x\"]\nnode_id = \"a b\"\npartitions = 0\nnamespace = \"h.1\"\nreplicas = 7\nsnapshot_every = \"10ms\"\n";
        let d = diags(text);
        assert_eq!(d.len(), 6, "{d:?}");
        assert!(d.iter().all(|d| d.line == 1));
        let ok = "[cluster]\nnats_urls = [\"nats://127.0.0.1:4222\"]\nnode_id = \"vigil-1\"\n";
        let c = compile(&parse(ok).unwrap()).unwrap().cluster.unwrap();
        assert_eq!(
            (c.partitions, c.namespace.as_str(), c.replicas),
            (256, "vigil", 1)
        );
        assert_eq!(c.snapshot_every, std::time::Duration::from_secs(60));
        let mut flagged = c.clone();
        cluster_flags(
            &mut flagged,
            Some("vigil-2"),
            &["nats://10.0.0.2:4222".into()],
        )
        .unwrap();
        assert_eq!(flagged.node_id, "vigil-2");
        assert_eq!(flagged.nats_urls, vec!["nats://10.0.0.2:4222".to_string()]);
        assert!(cluster_flags(&mut flagged, Some("a.b"), &[]).is_err());
        assert!(cluster_flags(&mut flagged, None, &["http://x".into()]).is_err());
    }

    #[test]
    fn oidc_needs_auth_a_safe_issuer_and_known_roles() {
        let text = "[auth]\nenabled = false\n\n[auth.oidc]\nissuer = \"http://sso.example.org\"\nclient_id = \"vigil\"\nclient_secret = \"SECRET\"\ngroups = { nurses = \"care_team:ward\", ops = \"gateway\" }\n";
        let d = diags(text);
        let all: String = d.iter().map(|d| d.message.clone() + "\n").collect();
        for needle in [
            "needs `enabled = true`",
            "must be an https:// URL",
            "group 'ops'",
        ] {
            assert!(all.contains(needle), "{needle} missing from {all}");
        }
        assert!(
            d.iter().all(|d| d.line == 1) && !all.contains("SECRET"),
            "{all}"
        );
        let ok = "[auth]\nenabled = true\n\n[auth.oidc]\nissuer = \"https://sso.example.org\"\nclient_id = \"vigil\"\ngroups = { nurses = \"care_team:ward\" }\n";
        let c = compile(&parse(ok).unwrap()).unwrap();
        let o = c.auth.oidc.unwrap();
        assert_eq!((o.groups_claim.as_str(), o.groups.len()), ("groups", 1));
    }

    #[test]
    fn dispositions_default_to_the_clinical_list_and_may_be_replaced() {
        let c = compile(&parse("").unwrap()).unwrap();
        assert_eq!(c.dispositions.len(), 7);
        assert_eq!(c.dispositions[0].id, "contacted_patient");
        let text = "[[dispositions]]\nid = \"called\"\nlabel = \"Called\"\n\n[[dispositions]]\nid = \"called\"\n";
        let d = diags(text);
        assert_eq!((d.len(), d[0].line), (1, 5), "{d:?}");
        assert!(d[0].message.contains("duplicate disposition 'called'"));
        let c = compile(&parse("[[dispositions]]\nid = \"called\"\n").unwrap()).unwrap();
        assert_eq!(c.dispositions[0].label, "called");
    }

    #[test]
    fn a_care_teams_fallback_must_name_a_notifier() {
        let hook =
            "[[notifiers]]\nid = \"oncall\"\nkind = \"webhook\"\nurl = \"https://x.example/h\"\n";
        let text = format!("{hook}\n[[care_teams]]\nid = \"ward\"\nfallback = \"pager\"\n");
        let d = diags(&text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, 6);
        assert!(d[0].message.contains("`fallback` names 'pager'"), "{d:?}");
        let text = format!("{hook}\n[[care_teams]]\nid = \"ward\"\nfallback = \"oncall\"\n");
        let c = compile(&parse(&text).unwrap()).unwrap();
        assert_eq!(c.fallbacks, [("ward".to_string(), "oncall".to_string())]);
    }

    #[test]
    fn supersedes_must_name_a_rule_of_the_file() {
        let text = "[[rules]]\nid = \"l1\"\nmetric = \"glucose\"\nbelow = 3.9\n\n[[rules]]\nid = \"l2\"\nmetric = \"glucose\"\nbelow = 3.0\nsupersedes = [\"l1\", \"l0\"]\n";
        let d = diags(text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, 6);
        assert!(d[0].message.contains("names 'l0'"), "{}", d[0]);
        let ok = compile(&parse(&text.replace(", \"l0\"", "")).unwrap()).unwrap();
        assert_eq!(&*ok.rules[1].supersedes[0], "l1");
    }

    #[test]
    fn overrides_are_checked_against_the_rule() {
        let text = "[[patients]]\nid = \"p1\"\nconsent = true\noverrides = { \"tachycardia\" = { below = 50 } }\n";
        let d = diags(text);
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("cannot override `below`"), "{}", d[0]);
    }
}
