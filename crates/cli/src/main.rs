//! The `rollcall` command: one module per command under `cmd/`, each an `Args` struct with
//! its own `exec`; this file only lists them.

mod bench_load;
mod bench_oracle;
mod bench_serve;
mod cmd;
mod drift;
mod guard;
mod replan;
mod run;
mod serve;
mod undone;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Any error as a report (its Display); fleet-file errors go through `run::config_report`.
pub(crate) fn err(e: impl std::fmt::Display) -> miette::Report {
    miette::miette!("{e}")
}

/// Exit status of a command that failed (bad input, a dependency down): its error on stderr.
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "Carry a fleet through maintenance reboots without breaking its clusters"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Plan the maintenance of a fleet: waves, makespan, lower bound and risk report.
    Plan(cmd::plan::Args),
    /// Check a fleet file and report every error with file, line and field.
    Validate(cmd::validate::Args),
    /// Write a synthetic fleet file (TOML) to stdout.
    Gen(cmd::fleetgen::Args),
    /// Run the maintenance: announce, then carry every host through its reboot,
    /// journalling each step (sim driver: simulated hosts on a scaled clock).
    Run(cmd::run::Args),
    /// Serve the status page, JSON API, feeds and metrics of the latest run (or --run).
    Serve(cmd::serve::Args),
    /// Status page tokens: secret tenant links and admin bearer tokens (stored hashed).
    Token {
        #[command(subcommand)]
        what: cmd::token::Args,
    },
    /// Continue a run: after a crash or Ctrl-C, or ask a running orchestrator to resume.
    Resume(cmd::resume::Args),
    /// Stand by for a run: take it over when its orchestrator's lease expires (a crash,
    /// a lost machine or network), and drive it on from the journal.
    Follow(cmd::follow::Args),
    /// Watch the providers' maintenance notices (AWS, Azure, GCP) and reboot the hosts they
    /// name ahead of the provider's windows, within their clusters' budgets.
    Guard(cmd::guard::Args),
    /// The providers' maintenance notices for the fleet's hosts.
    Notices {
        #[command(subcommand)]
        what: cmd::notices::Args,
    },
    /// The operator's answers to a region held by a subscriber its announcement does not
    /// reach: release the region, or drop the subscriber (both recorded in the journal).
    Notify {
        #[command(subcommand)]
        what: cmd::notify::Args,
    },
    /// Ask a running orchestrator to stop starting hosts (in-flight hosts finish).
    Pause(cmd::control::Args),
    /// Stop the run for good once in-flight hosts finish.
    Abort(cmd::control::Args),
    /// A run's state, per region, and the hosts that need attention (default: the latest run).
    Status(cmd::status::Args),
    /// Runs in the journal, newest first.
    History(cmd::history::Args),
    /// Simulate the maintenance many times with each strategy and compare them.
    Simulate(cmd::simulate::Args),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: cmd::bench::Args,
    },
    /// Print the manual page (roff) to stdout.
    Man(cmd::man::Args),
    /// Print shell completions to stdout.
    Completions(cmd::completions::Args),
}

impl Cmd {
    fn exec(self) -> miette::Result<ExitCode> {
        match self {
            Cmd::Plan(a) => a.exec(),
            Cmd::Validate(a) => a.exec(),
            Cmd::Gen(a) => a.exec(),
            Cmd::Run(a) => a.exec(),
            Cmd::Serve(a) => a.exec(),
            Cmd::Token { what } => what.exec(),
            Cmd::Resume(a) => a.exec(),
            Cmd::Follow(a) => a.exec(),
            Cmd::Guard(a) => a.exec(),
            Cmd::Notices { what } => what.exec(),
            Cmd::Notify { what } => what.exec(),
            Cmd::Pause(a) => a.pause(),
            Cmd::Abort(a) => a.abort(),
            Cmd::Status(a) => a.exec(),
            Cmd::History(a) => a.exec(),
            Cmd::Simulate(a) => a.exec(),
            Cmd::Bench { what } => what.exec(),
            Cmd::Man(a) => a.exec(),
            Cmd::Completions(a) => a.exec(),
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().cmd.exec() {
        Ok(code) => code,
        Err(e) => {
            use std::io::IsTerminal;
            if std::io::stderr().is_terminal() {
                eprintln!("{e:?}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
