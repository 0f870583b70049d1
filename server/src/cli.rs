//! The command line (docs/cli.md), declared with clap derive.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "Streaming vital-signs ingestion and alerting server"
)]
pub struct Cli {
    /// Log format on stderr. Filter with RUST_LOG (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: embedded MQTT broker, gRPC API, Prometheus metrics.
    Serve(ServeArgs),
    /// Publish realistic vitals over MQTT, as a fleet of devices would.
    Simulate(SimulateArgs),
    /// Alert stream tools.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Configuration and rules tools.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Create a gRPC bearer token: prints the token (once) and its [[tokens]] entry.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Create MQTT device credentials: prints the secret (once) and its [[devices]] entry.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Notifier tools.
    Notifiers {
        #[command(subcommand)]
        command: NotifiersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifiersCommand {
    /// Send one clearly marked test message through a notifier of a configuration file and
    /// report the receiver's answer (exit 1 unless delivered).
    Test {
        /// The notifier's id.
        id: String,
        #[arg(long)]
        config: PathBuf,
        /// The console's address for the message's link (default: `[server] external_url`).
        #[arg(long)]
        external_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// A new random token for the configuration file.
    Create {
        /// Who holds it (recorded as the actor in the audit log).
        #[arg(long)]
        name: String,
        /// gateway, admin, care_team:<id>, or viewer:<id> (a care team's alerts, read only).
        #[arg(long)]
        role: String,
        /// Gateway only: patient ids it may publish for start with this (repeatable).
        #[arg(long = "patient-prefix")]
        patient_prefixes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Credentials for one device bound to one patient, for the configuration file (the
    /// `Devices` gRPC service provisions devices on a running server instead).
    Add {
        /// The device id (its MQTT username).
        #[arg(long)]
        id: String,
        /// The only patient it may publish for.
        #[arg(long)]
        patient: String,
        /// Its secret (at least 16 characters); default: 192 random bits.
        #[arg(long, env = "VIGIL_DEVICE_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, embedded defaults and the built-in rules.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (default ./vigil-data); `ports.json` is written here.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// MQTT listener (default 127.0.0.1:1883; port 0 picks a free port).
    #[arg(long)]
    pub mqtt_addr: Option<SocketAddr>,
    /// gRPC listener (default 127.0.0.1:50051; port 0 picks a free port).
    #[arg(long)]
    pub grpc_addr: Option<SocketAddr>,
    /// Prometheus metrics listener (default 127.0.0.1:9464; port 0 picks a free port).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Care-team console, probes and HTTP API (default 127.0.0.1:8080; port 0 picks a free
    /// port).
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Also run a simulated ward and print a live alert feed on stdout.
    #[arg(long)]
    pub demo: bool,
    /// Allow listeners beyond loopback although Vigil has no authentication yet (lab use;
    /// a warning is logged every minute).
    #[arg(long)]
    pub insecure: bool,
    /// Start although the data directory is readable by group or others (lab use; a
    /// warning is logged). Without it such a directory is refused.
    #[arg(long)]
    pub allow_shared_data_dir: bool,
    /// Cluster mode: this node's id, instead of `[cluster] node_id` (one configuration
    /// file for every node).
    #[arg(long)]
    pub node_id: Option<String>,
    /// Cluster mode: NATS server URLs (comma-separated), instead of `[cluster] nats_urls`.
    #[arg(long, value_delimiter = ',')]
    pub nats: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// MQTT broker address (host:port).
    #[arg(long)]
    pub mqtt: String,
    /// Number of simulated patients.
    #[arg(long, default_value_t = 20)]
    pub patients: usize,
    /// Payloads per second per patient (each payload carries one reading of each vital).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// How many of the patients deteriorate.
    #[arg(long, default_value_t = 0)]
    pub deteriorating: usize,
    /// Patient id prefix (ids are PREFIX-0001, PREFIX-0002, ...).
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    /// MQTT QoS for publishes (0 or 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Follow the alert stream in a terminal; resumes after disconnects without gaps.
    Tail(TailArgs),
}

/// Who approves a rule change (recorded in the rule-set version it makes).
#[derive(Debug, Clone, Default, Args)]
pub struct RuleApprovers {
    /// Who approves the change (default: the file's `[rule_set] approved_by`, for `put`).
    /// With authentication the token's name is recorded, and this name beside it.
    #[arg(long)]
    pub approved_by: Option<String>,
    /// A second person who approved the change (required by a server with
    /// `[rule_set] require_second_approver`).
    #[arg(long)]
    pub second_approver: Option<String>,
}

/// Where a client command reaches the server, and with which credentials.
#[derive(Debug, Clone, Args)]
pub struct GrpcTarget {
    /// gRPC address (host:port, http://host:port, or https://host:port).
    #[arg(long)]
    pub grpc: String,
    /// Bearer token, when the server requires authentication.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate to verify a TLS server with (turns TLS on).
    #[arg(long, env = "VIGIL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Name the server's certificate must carry, when it differs from the address's host.
    #[arg(long, requires = "ca_cert")]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub target: GrpcTarget,
    /// Only these care teams (repeatable).
    #[arg(long = "care-team")]
    pub care_teams: Vec<String>,
    /// Only these patients (repeatable).
    #[arg(long = "patient")]
    pub patients: Vec<String>,
    /// Minimum severity: low, medium or high.
    #[arg(long)]
    pub min_severity: Option<String>,
    /// Replay retained events after this seq first (0 = everything retained).
    #[arg(long)]
    pub after_seq: Option<u64>,
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many events (default: follow forever).
    #[arg(long)]
    pub count: Option<u64>,
}

/// `vigil rules check --help`: every rule kind and key.
const RULES_HELP: &str = "Validate a configuration/rules file; report every error with its line.

Every [[rules]] table takes: id, kind (default threshold), severity (low | medium | high,
default medium), message and patient_message (placeholders {value} {unit} {threshold}
{metric}), care_team (route alerts to this team), conditions = [...] and tiers = [\"A\",
\"B\", \"C\"] (apply only to those patients), supersedes = [...] (rules this one
replaces for the same patient while its alert is open). Kinds and their keys:

  threshold  metric, above | below (strict), for (held in event time), clear
  rise, fall metric, window, by (fires when the change over [newest - window, newest]
             reaches by), clear (resolves below it; default by)
  avg, min,  metric, window, above | below (strict), min_samples (default 1), clear,
  max        min_days (readings on at least this many days, in the patient's time zone);
             over readings with ts in (newest - window, newest]
  trend      metric, window, horizon, above | below (strict), min_samples (default 5),
             clear: the least-squares line through the window's readings, projected
             horizon past the newest reading, is past the level
  adherence  metric, days (1-30), min_days: readings on fewer than min_days of the last
             days days (the patient's timezone); judged hourly and on each reading once
             the first reading is days old
  absent     metric, after (no reading for this long on the server clock; resolves on the
             next reading)
  news2      at_least (aggregate score), any_parameter_at_least (1-3), window (default 1h),
             clear (resolve below this whole score; default at_least);
             RCP NEWS2 2017; patients may set spo2_scale = 2; metric on_oxygen scores 2

[[patients]] take id, care_team, consent, conditions, tier, spo2_scale, timezone and
overrides = { rule_id = { numeric keys of that rule's kind } }.
Durations are humane strings: \"30s\", \"15m\", \"3d\".";

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate a configuration/rules file; report every error with its line.
    #[command(long_about = RULES_HELP)]
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// What changed between two rule files: rules added, removed, and each changed key
    /// with its old and new value. Exit 0: no change, 1: changes, 2: a file cannot be read.
    Diff {
        /// The rules before (a file without `[[rules]]` stands for the built-in set).
        before: PathBuf,
        /// The rules after.
        after: PathBuf,
    },
    /// List the rules a running server uses.
    List {
        #[command(flatten)]
        target: GrpcTarget,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Add or replace the `[[rules]]` of FILE on a running server (validated first).
    Put {
        /// A TOML file of `[[rules]]` tables.
        file: PathBuf,
        #[command(flatten)]
        approvers: RuleApprovers,
        #[command(flatten)]
        target: GrpcTarget,
    },
    /// Delete a rule from a running server; its open alerts are resolved.
    Delete {
        /// The rule id.
        id: String,
        #[command(flatten)]
        approvers: RuleApprovers,
        #[command(flatten)]
        target: GrpcTarget,
    },
}
