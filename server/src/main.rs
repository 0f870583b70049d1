//! The `vigil` binary: parses the command line and runs the chosen command. Errors are
//! reported here, at the edge, with their context chain.

/// mimalloc instead of glibc's malloc: windows grow their rings by doubling, and glibc can
/// leave the outgrown buffers as holes that double the resident memory per sample;
/// mimalloc's size-class pages are reused and returned. Its v2 line (the workspace's
/// `v2` feature), not v3: v3 keeps the memory of the patient map's outgrown tables
/// committed and unused, about a hundred bytes a patient at a million patients
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::ToSocketAddrs;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rumqttc::QoS;
use tokio_util::sync::CancellationToken;

use vigil::cli::{AlertsCommand, Cli, Command, NotifiersCommand, RulesCommand, SimulateArgs};
use vigil::cmd::{
    credentials as credentials_cmd, notifiers as notifiers_cmd, rules as rules_cmd, rules_check,
    rules_diff, simulate, tail,
};
use vigil::process::{data_dir, huge_pages, logging};
use vigil::serve;

fn main() {
    // First, before the heap grows: huge-page faults stall ingest (`huge_pages`).
    huge_pages::disable();
    // Before any file is created: health data on disk is the service's alone.
    data_dir::restrict_umask();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let code = match cli.command {
        Command::Rules {
            command: RulesCommand::Check { file },
        } => rules_check::run(&file),
        Command::Rules {
            command: RulesCommand::Diff { before, after },
        } => rules_diff::run(&before, &after),
        Command::Token { command } => report(credentials_cmd::token(command)),
        Command::Device { command } => report(credentials_cmd::device(command)),
        command => run_async(command),
    };
    std::process::exit(code);
}

fn run_async(command: Command) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve::run(args).await,
            Command::Simulate(args) => simulate_cmd(args).await,
            Command::Alerts {
                command: AlertsCommand::Tail(args),
            } => tail::run(args).await,
            Command::Rules { command } => rules_cmd::run(command).await,
            Command::Notifiers {
                command:
                    NotifiersCommand::Test {
                        id,
                        config,
                        external_url,
                    },
            } => notifiers_cmd::test(&id, &config, external_url).await,
            Command::Token { .. } | Command::Device { .. } => {
                unreachable!("credential commands run without a runtime")
            }
        }
    });
    // Blocking threads (the MQTT consumer) have been joined or are past caring.
    runtime.shutdown_timeout(Duration::from_millis(500));
    report(result)
}

/// The exit code of a synchronous command, with its error chain on stderr.
fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            1
        }
    }
}

async fn simulate_cmd(args: SimulateArgs) -> anyhow::Result<()> {
    let broker = args
        .mqtt
        .to_socket_addrs()
        .with_context(|| format!("--mqtt '{}' is not host:port", args.mqtt))?
        .next()
        .with_context(|| format!("--mqtt '{}' did not resolve", args.mqtt))?;
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let cfg = simulate::SimConfig {
        broker,
        patients: (1..=args.patients)
            .map(|i| format!("{}-{i:04}", args.prefix))
            .collect(),
        deteriorating: args.deteriorating,
        rate_hz: args.rate,
        backfill_s: 0,
        qos: if args.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        duration: args.duration.map(Duration::from_secs_f64),
        seed: 2026,
    };
    simulate::run(cfg, stop).await
}
