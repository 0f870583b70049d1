//! The configuration file (TOML, docs/configuration.md): its sections as typed structs, parsed
//! element by element so that every error is reported with its line.

mod compile;
pub mod fingerprint;
mod parse;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use compile::{
    cluster_flags, compile, rule_from_entry, spec_from_entry, ClusterSettings, Compiled,
};
#[cfg(test)]
pub use parse::parse;
pub use parse::{parse_partial, Diagnostic};

/// Loads and validates a configuration file: syntax, keys, types, then semantics.
pub fn load_file(path: &Path) -> Result<(FileConfig, Compiled), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        }]
    })?;
    load_str(&text)
}

/// Formats diagnostics as `FILE:LINE: message`, one per line.
pub fn render(path: &Path, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("{}:{}: {}", path.display(), d.line, d.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses and checks a whole file: every structural and semantic problem, sorted by line.
/// Semantic checks run on the entries that parsed, so one bad key does not hide the rest.
pub fn load_str(text: &str) -> Result<(FileConfig, Compiled), Vec<Diagnostic>> {
    // After a syntax error `file` is empty, and compiles without further findings.
    let (file, mut diags) = parse_partial(text);
    match compile(&file) {
        Ok(compiled) if diags.is_empty() => return Ok((file, compiled)),
        Ok(_) => {}
        Err(more) => diags.extend(more),
    }
    diags.sort();
    diags.dedup();
    Err(diags)
}

/// `[server]`: the same settings as the `serve` flags, plus ingest and stream limits.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub mqtt_addr: Option<SocketAddr>,
    pub grpc_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    /// The care-team console, probes and HTTP API (default 127.0.0.1:8080).
    pub http_addr: Option<SocketAddr>,
    /// IANA time zone the console shows times in (default: the host's).
    pub timezone: Option<String>,
    /// For drills and tests only: the server's clock starts at this instant (RFC 3339)
    /// and runs at real speed from there.
    pub clock_start: Option<String>,
    /// The console's address as people reach it (links in notifications; default
    /// `http://` + `http_addr`).
    pub external_url: Option<String>,
    /// History every window keeps at least, for the console's charts (default 0: only
    /// what the rules need).
    #[serde(default, with = "humantime_serde")]
    pub chart_history: Option<Duration>,
    pub data_dir: Option<PathBuf>,
    /// Readings older than this are rejected as `too_old` (default 7 days).
    #[serde(default, with = "humantime_serde")]
    pub max_reading_age: Option<Duration>,
    /// Readings further in the future than this are rejected as `in_future` (default 5 min).
    #[serde(default, with = "humantime_serde")]
    pub max_future_skew: Option<Duration>,
    /// Alert events kept in memory for `after_seq` replay (default 100 000).
    pub retained_events: Option<usize>,
    /// Live events buffered per subscriber before it is cut off (default 4096).
    pub subscriber_buffer: Option<usize>,
    /// Alert subscriptions (`Subscribe` streams) open at once; beyond, RESOURCE_EXHAUSTED
    /// (default 10 000).
    pub max_subscribers: Option<NonZeroUsize>,
    /// Alert events older than this are compacted out of the journal (default 30 days).
    /// Open alerts are always kept.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// How often changed windows are snapshotted to the journal (default 10 s; also at
    /// graceful shutdown).
    #[serde(default, with = "humantime_serde")]
    pub snapshot_interval: Option<Duration>,
    /// How long a graceful shutdown may take in all (default: 4 s to drain the listeners,
    /// then what the final window snapshot needs at the measured write rate).
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    /// Pending connections each listener lets the kernel queue (default 1 024; the
    /// kernel caps it at `net.core.somaxconn`). `[mqtt] listen_backlog` overrides it for MQTT.
    pub listen_backlog: Option<NonZeroU32>,
    /// Devices whose recent `seq` numbers are remembered for duplicate suppression, in all
    /// (default 200 000; the oldest is forgotten first).
    pub dedup_devices: Option<NonZeroUsize>,
    /// The same, per patient (default 16).
    pub dedup_devices_per_patient: Option<NonZeroUsize>,
}

/// `[mqtt]`: limits of the embedded broker.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// Largest PUBLISH payload accepted, bytes (default 65 536).
    pub max_payload_size: Option<usize>,
    /// Most simultaneous client connections (default 10 000).
    pub max_connections: Option<usize>,
    /// Most packets read from one connection per batch before the broker serves other
    /// connections (rumqttd's `max_inflight_count`; default 100).
    pub max_inflight: Option<usize>,
    /// How long a new connection has to send CONNECT (default 5 s).
    #[serde(default, with = "humantime_serde")]
    pub connection_timeout: Option<Duration>,
    /// Sessions one authenticated device may hold at once (default 4); beyond, its CONNECT
    /// is answered CONNACK 3 (server unavailable).
    pub max_sessions_per_device: Option<NonZeroUsize>,
    /// Pending connections the kernel may queue for the MQTT listener (default: `[server]
    /// listen_backlog`).
    pub listen_backlog: Option<NonZeroU32>,
    /// Persistent sessions (clean session 0) kept at most (default 10 000; 0: refuse clean
    /// session 0); beyond, such a CONNECT is answered CONNACK 3.
    pub max_persistent_sessions: Option<usize>,
    /// Messages a persistent session holds while its client is away (default 100; the
    /// oldest is dropped).
    pub max_queued_messages: Option<NonZeroUsize>,
    /// Bytes all persistent sessions hold together (default 64 MiB).
    pub max_queued_bytes: Option<usize>,
    /// A persistent session whose client stays away longer is removed (default 7 days).
    #[serde(default, with = "humantime_serde")]
    pub session_expiry: Option<Duration>,
    /// Retained messages kept at most (default 10 000; 0: none kept).
    pub max_retained_messages: Option<usize>,
    /// Bytes of all retained messages together (default 16 MiB).
    pub max_retained_bytes: Option<usize>,
}

/// `[auth]`: whether callers must authenticate.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Require bearer tokens on gRPC and device credentials on MQTT (default false; then
    /// only loopback listeners are allowed).
    #[serde(default)]
    pub enabled: bool,
    /// The longest silence or snooze a care-team token may set (default 24 h); other
    /// callers are bounded by `[server] retention`.
    #[serde(default, with = "humantime_serde")]
    pub max_silence: Option<Duration>,
    /// The wait after a source address's first failed device login before its next one is
    /// checked; doubled with each further failure, up to 10 s (default 100 ms).
    #[serde(default, with = "humantime_serde")]
    pub failure_delay: Option<Duration>,
    /// Failed logins that lock a source address out (default 20; 0: never).
    pub max_failures: Option<u32>,
    /// How long a locked-out address is refused, and how long failures are remembered
    /// (default 5 min).
    #[serde(default, with = "humantime_serde")]
    pub lockout: Option<Duration>,
    /// Argon2 checks of chosen device secrets running at once (default 2; 19 MiB each).
    pub password_check_workers: Option<NonZeroUsize>,
    /// Argon2 checks waiting for a worker; beyond, CONNACK 3 at once (default 32).
    pub password_check_queue: Option<usize>,
    /// Staff sign in to the console through the hospital's OpenID Connect provider.
    pub oidc: Option<OidcSection>,
}

/// `[auth.oidc]`: console sign-in by OpenID Connect (authorization code flow with PKCE).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The provider's issuer URL (its discovery document is `/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// A secret: never logged.
    pub client_secret: Option<String>,
    /// The ID token claim that lists the person's groups (default `groups`).
    pub groups_claim: Option<String>,
    /// Group → role (`care_team:<id>`, `viewer:<id>`, `admin`); a person in no listed group
    /// is refused.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, String>,
    /// Where the provider sends the browser back (default `[server] external_url` +
    /// `/auth/callback`); register it with the provider.
    pub redirect_url: Option<String>,
}

/// `[audit]`: the audit log's rotation.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The audit log is rotated once it would grow past this (default 64 MiB).
    pub max_file_bytes: Option<NonZeroU64>,
    /// Rotated files kept beside the current one (`audit.log.1` is the newest; default 9).
    pub keep_files: Option<usize>,
}

/// `[fhir]`: FHIR R4 Observations on the HTTP listener.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirSection {
    /// The largest request body accepted (default 1 MiB); beyond it, 413.
    pub max_body_bytes: Option<NonZeroU64>,
    /// `subject.identifier.system` whose `value` is a Vigil patient id (default: only
    /// `Patient/{id}` references are read).
    pub patient_identifier_system: Option<String>,
}

/// `[tls]`: TLS on the MQTT and gRPC listeners.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain, server certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM CA certificates: MQTT devices may authenticate with a client certificate signed
    /// by one of them, whose Common Name is the device id (needs `[auth] enabled`).
    pub client_ca: Option<PathBuf>,
}

/// `[[tokens]]`: a gRPC bearer token, by its SHA-256 (`vigil token create` prints both).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds it (the audit log's actor).
    pub name: String,
    /// `gateway`, `admin`, `care_team:<id>` or `viewer:<id>`.
    pub role: String,
    pub sha256: String,
    /// Gateway only: patient ids it may publish for start with one of these.
    #[serde(default)]
    pub patient_prefixes: Vec<String>,
}

/// `[[devices]]`: an MQTT device bound to one patient (`vigil device add` prints one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// The MQTT username the device connects with.
    pub id: String,
    pub patient: String,
    /// Argon2 PHC string of the device's secret (its MQTT password). Without it the device
    /// can only log in with a client certificate (`[tls] client_ca`).
    pub secret_hash: Option<String>,
}

/// `[[care_teams]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareTeamEntry {
    pub id: String,
    /// An alert nobody acknowledges escalates this long after it became active.
    #[serde(default, with = "humantime_serde")]
    pub escalate_after: Option<Duration>,
    /// The team that also receives an escalated alert (its own `escalate_after` then times
    /// the next level).
    pub escalate_to: Option<String>,
    /// An acknowledged alert still open this long after the acknowledgement is re-notified
    /// (ACTIVE again).
    #[serde(default, with = "humantime_serde")]
    pub renotify_after: Option<Duration>,
    /// A team that follows patients at home: its console opens on the patient worklist
    /// instead of the alert board (default false).
    #[serde(default)]
    pub home: bool,
    /// The notifier that receives what this team's notifiers could not deliver for good.
    pub fallback: Option<String>,
    /// Working hours: outside them MEDIUM and LOW alerts go to `after_hours`, and
    /// escalation deadlines count working time only.
    pub hours: Option<HoursEntry>,
    /// A team that also receives MEDIUM and LOW alerts raised outside the hours, or `hold`.
    pub after_hours: Option<String>,
    /// Dates (YYYY-MM-DD) outside the hours all day.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// `[[care_teams]] hours = { timezone = "Asia/Shanghai", days = "mon-fri", from = "08:00", to = "18:00" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursEntry {
    /// Default: `[server] timezone`.
    pub timezone: Option<String>,
    pub days: String,
    pub from: String,
    pub to: String,
}

/// `[[patients]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientEntry {
    pub id: String,
    pub care_team: Option<String>,
    /// Readings of a patient without `consent = true` are rejected (`no_consent`).
    #[serde(default)]
    pub consent: bool,
    /// Conditions rules may restrict themselves to (`heart_failure`, `copd`, ...).
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Risk tier: `A` (high), `B`, `C`.
    pub tier: Option<String>,
    /// NEWS2 SpO2 scale, 1 (default) or 2.
    pub spo2_scale: Option<u8>,
    /// The clinician responsible for the patient: the default assignee of its alerts.
    pub responsible: Option<String>,
    /// The IANA time zone the patient's days are counted in (adherence, `min_days`);
    /// default `[server] timezone`.
    pub timezone: Option<String>,
    /// Per-patient thresholds, by rule id.
    #[serde(default)]
    pub overrides: BTreeMap<String, OverrideEntry>,
}

/// One per-patient override: the numeric keys of the rule's kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideEntry {
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub clear: Option<f64>,
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub hold: Option<Duration>,
    pub by: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub window: Option<Duration>,
    pub min_samples: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub after: Option<Duration>,
    pub at_least: Option<u32>,
    pub any_parameter_at_least: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub horizon: Option<Duration>,
    pub min_days: Option<u32>,
    pub days: Option<u32>,
}

/// `[[rules]]`: every key of every kind; which apply is checked per kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    pub id: String,
    /// threshold (default), rise, fall, avg, min, max, absent, news2, trend, adherence.
    pub kind: Option<String>,
    pub metric: Option<String>,
    pub above: Option<f64>,
    pub below: Option<f64>,
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub hold: Option<Duration>,
    pub clear: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    pub window: Option<Duration>,
    pub by: Option<f64>,
    pub min_samples: Option<i64>,
    #[serde(default, with = "humantime_serde")]
    pub after: Option<Duration>,
    pub at_least: Option<i64>,
    pub any_parameter_at_least: Option<i64>,
    #[serde(default, with = "humantime_serde")]
    pub horizon: Option<Duration>,
    pub min_days: Option<i64>,
    pub days: Option<i64>,
    pub severity: Option<String>,
    pub message: Option<String>,
    pub patient_message: Option<String>,
    pub care_team: Option<String>,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Rules this one supersedes for the same patient.
    #[serde(default)]
    pub supersedes: Vec<String>,
}

/// A value and the line it was written on.
#[derive(Debug, Clone)]
pub struct AtLine<T> {
    pub line: usize,
    pub value: T,
}

/// The whole file, structurally valid.
#[derive(Debug, Default, Clone)]
pub struct FileConfig {
    pub server: ServerSection,
    pub mqtt: MqttSection,
    pub auth: AuthSection,
    /// Where `[auth]` starts (0: absent).
    pub auth_line: usize,
    pub audit: AuditSection,
    pub fhir: FhirSection,
    pub tls: Option<AtLine<TlsSection>>,
    pub tokens: Vec<AtLine<TokenEntry>>,
    pub devices: Vec<AtLine<DeviceEntry>>,
    pub care_teams: Vec<AtLine<CareTeamEntry>>,
    pub patients: Vec<AtLine<PatientEntry>>,
    /// `None` when the file has no `[[rules]]`: the built-in set applies.
    pub rules: Option<Vec<AtLine<RuleEntry>>>,
    /// `[rule_set]`: the approval of the rules above.
    pub rule_set: RuleSetSection,
    pub notifiers: Vec<AtLine<NotifierEntry>>,
    /// `[cluster]`: many nodes on NATS JetStream.
    pub cluster: Option<AtLine<ClusterSection>>,
    /// Empty: the default list ([`crate::app::dispositions::DEFAULT`]).
    pub dispositions: Vec<AtLine<DispositionEntry>>,
}

/// `[rule_set]`: who approved the rules of this file, and whether a change at run time
/// (`PutRule`, `DeleteRule`) needs a second approver.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetSection {
    /// Recorded in the rule-set version a changed file makes.
    pub approved_by: Option<String>,
    pub second_approver: Option<String>,
    /// Run-time rule changes must name a second approver, someone other than the caller.
    #[serde(default)]
    pub require_second_approver: bool,
}

/// `[cluster]`: many Vigil nodes on NATS JetStream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub nats_urls: Vec<String>,
    /// Unique per node.
    pub node_id: String,
    /// Patients are hashed to this many partitions, fixed for the cluster's life (256).
    pub partitions: Option<u32>,
    /// Prefix of every subject, stream and bucket (`vigil`).
    pub namespace: Option<String>,
    /// JetStream replicas of Vigil's streams (1 for a single nats-server).
    pub replicas: Option<u8>,
    /// How often each partition's owner publishes its windows (60s): a takeover replays
    /// only the readings after the last one.
    #[serde(default, with = "humantime_serde")]
    pub snapshot_every: Option<Duration>,
}

/// `[[dispositions]]`: what an alert may be recorded as having led to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispositionEntry {
    pub id: String,
    /// What the console shows (default: the id).
    pub label: Option<String>,
}

/// `[[notifiers]]`: where alerts are pushed to people.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierEntry {
    pub id: String,
    /// `webhook` (Alertmanager's format), `wecom`, `dingtalk` or `slack`.
    pub kind: String,
    /// The full URL (for the robots, with their key: a secret).
    pub url: String,
    /// Only these care teams' alerts (absent: every team).
    #[serde(default)]
    pub care_teams: Vec<String>,
    /// `low` (default), `medium` or `high`.
    pub min_severity: Option<String>,
    /// Event kinds (default raised, escalated, resolved).
    pub events: Option<Vec<String>>,
    /// dingtalk only: the robot's signing secret.
    pub secret: Option<String>,
    /// Requests a minute at most (default 20 for wecom and dingtalk, whose robots throttle
    /// above that; unlimited otherwise). Events beyond it wait, none is dropped.
    pub rate_per_minute: Option<u32>,
    /// `en` or `zh-CN` (default zh-CN for wecom and dingtalk, else en).
    pub language: Option<String>,
    /// `full` or `minimal` (default minimal for wecom and dingtalk, else full).
    pub content: Option<String>,
    /// How long one delivery may take (default 10 s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Send a "Vigil is alive" message this often, so that a silent channel is noticed.
    #[serde(default, with = "humantime_serde")]
    pub heartbeat: Option<Duration>,
}
