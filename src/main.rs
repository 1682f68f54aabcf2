//! `raum`: parse the command line, run the chosen component, report errors on one line.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use raum::cli::{Cli, Command};

fn main() -> ExitCode {
    // Run as `kubectl-raum` (by `kubectl raum ...`), the binary is the plugin.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == raum::plugin::PLUGIN_NAME);
    if invoked {
        args[0] = "kubectl raum".into();
        args.insert(1, "kubectl".into());
    }
    let cli = Cli::parse_from(args);
    raum::telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Crd(args) => match args.out_dir {
            Some(dir) => match raum::crd::write_dir(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("cannot write CRDs to {}: {e}", dir.display())),
            },
            None => {
                let mut out = std::io::stdout().lock();
                match out.write_all(raum::crd::stream().as_bytes()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&format!("cannot write to stdout: {e}")),
                }
            }
        },
        Command::Operator(args) => match raum::operator::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Gateway(args) => match raum::gateway::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Prune(args) => match raum::prune_job::run(args).await {
            Ok(code) => code,
            Err(e) => fail(&e),
        },
        Command::Sfu(args) => match raum::sfu::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Turn(args) => match raum::turn::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Loadtest(args) => match raum::loadtest::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Standalone(args) => match raum::standalone::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Command::Kubectl(args) => match raum::plugin::run(args).await {
            Ok(code) => code,
            Err(e) => fail(&e),
        },
    }
}

/// Prints an error on one line. Some parsers add a multi-line source excerpt after
/// their first line (which already says what and where); that excerpt is dropped.
fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    let msg = err.to_string();
    eprintln!("error: {}", msg.lines().next().unwrap_or_default());
    ExitCode::FAILURE
}
