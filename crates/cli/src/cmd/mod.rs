//! One module per command: each an `Args` struct (its flags, as clap reads them) with its
//! own `exec`. What several commands share is defined here once: the journal (`--db`),
//! the simulated world's faults, loading a fleet file, starting the async runtime.

pub mod bench;
pub mod completions;
pub mod control;
pub mod fleetgen;
pub mod follow;
pub mod guard;
pub mod history;
pub mod man;
pub mod notices;
pub mod notify;
pub mod plan;
pub mod resume;
pub mod run;
pub mod serve;
pub mod simulate;
pub mod status;
pub mod token;
pub mod validate;

use rollcall_core::simworld::SimParams;
use rollcall_core::{Fleet, OnMissing};
use rollcall_fleet::{LoadOptions, load_file};
use rollcall_store::Store;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--db`: the journal, shared by every command that reads or writes runs.
#[derive(clap::Args, Debug, Clone)]
pub struct Db {
    /// The journal: an SQLite file, or a PostgreSQL database as a `postgres://` URL.
    /// Default: $ROLLCALL_DB, else $XDG_DATA_HOME/rollcall/rollcall.db.
    #[arg(long, env = "ROLLCALL_DB", value_name = "PATH|URL")]
    db: Option<PathBuf>,
}

impl Db {
    /// The file path or URL, as given (see [`Store::connect`]).
    pub fn path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(default_db)
    }

    /// Opens the store it names: SQLite file or PostgreSQL.
    pub async fn open(&self) -> miette::Result<Store> {
        Store::connect(self.path()).await.map_err(crate::err)
    }
}

/// `--json` / `--quiet`: how a command that drives a run talks on the terminal.
#[derive(clap::Args, Debug, Clone)]
pub struct Talking {
    /// Print the journal as JSON lines instead of progress bars.
    #[arg(long)]
    json: bool,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

impl Talking {
    pub fn talk(&self) -> crate::run::Talk {
        crate::run::Talk::new(self.json, self.quiet)
    }
}

/// `--lease-ttl`: how long an orchestrator's hold on a run lasts without renewal.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaseTtl {
    /// How long this orchestrator's lease on the run lasts without renewal (renewed every
    /// fifth of it): a standby (`rollcall follow`) takes the run over this long after the
    /// leader stopped, and a leader that cannot renew for half of it starts nothing new.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_ttl)]
    pub lease_ttl: std::time::Duration,
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let secs = rollcall_core::model::parse_duration(s)?;
    if !(1..=3600).contains(&secs) {
        return Err(format!("expected 1s to 1h, got {s}"));
    }
    Ok(std::time::Duration::from_secs(secs as u64))
}

/// Where the journal is without `--db` or `$ROLLCALL_DB`.
fn default_db() -> PathBuf {
    data_dir().join("rollcall.db")
}

/// rollcall's local data: $XDG_DATA_HOME/rollcall, else ~/.local/share/rollcall.
pub fn data_dir() -> PathBuf {
    let base = std::env::var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|_| PathBuf::from("."));
    base.join("rollcall")
}

/// The simulated world's faults (`run --driver sim` and `simulate`).
#[derive(clap::Args, Debug, Clone)]
pub struct SimFaults {
    /// Sim: seed of the simulated world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sim: share of reboots that do not come back on time (2014: about 0.2).
    #[arg(long, default_value_t = 0.0)]
    pub missing_rate: f64,
    /// Sim: how long such hosts stay away (e.g. 3h), or `never`.
    #[arg(long, default_value = "3h")]
    pub missing_for: String,
    /// Sim: share of gate checks that flap to unhealthy.
    #[arg(long, default_value_t = 0.0)]
    pub flap_rate: f64,
}

impl SimFaults {
    /// The faults as simulation parameters (the rest default), checked.
    pub fn params(&self) -> miette::Result<SimParams> {
        let missing_for = match self.missing_for.as_str() {
            "never" => None,
            s => Some(
                rollcall_core::parse_duration(s)
                    .map_err(|e| miette::miette!("--missing-for: {e}"))?,
            ),
        };
        share("--missing-rate", self.missing_rate)?;
        share("--flap-rate", self.flap_rate)?;
        Ok(SimParams {
            seed: self.seed,
            missing_rate: self.missing_rate,
            missing_for,
            flap_rate: self.flap_rate,
            ..SimParams::default()
        })
    }
}

/// A share (0..=1) given on the command line, checked.
pub fn share(flag: &str, v: f64) -> miette::Result<f64> {
    if !(0.0..=1.0).contains(&v) {
        return Err(miette::miette!("{flag} must be between 0 and 1, got {v}"));
    }
    Ok(v)
}

/// `--on-missing`: what to do about a host that does not come back.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum OnMissingArg {
    /// Pause the run for the operator.
    Pause,
    /// Replace the host (the driver provisions a new one).
    Replace,
    /// Go on without it, within the cluster's budget.
    Continue,
}

impl From<OnMissingArg> for OnMissing {
    fn from(a: OnMissingArg) -> OnMissing {
        match a {
            OnMissingArg::Pause => OnMissing::Pause,
            OnMissingArg::Replace => OnMissing::Replace,
            OnMissingArg::Continue => OnMissing::Continue,
        }
    }
}

/// A fleet file loaded and validated; errors listed with file, line and field (one line
/// each when stderr is not a terminal).
pub fn load(path: &Path) -> miette::Result<Fleet> {
    load_file(path, &LoadOptions::default()).map_err(crate::run::config_report)
}

/// Run an async command on a runtime of its own.
pub fn block_on<F: std::future::Future<Output = miette::Result<ExitCode>>>(
    f: F,
) -> miette::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| miette::miette!("cannot start the runtime: {e}"))?
        .block_on(f)
}

/// This process's RSS figure `field` (`VmRSS:`, `VmHWM:`) in KiB.
pub fn rss_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Pretty JSON on stdout.
pub fn print_json(v: &impl serde::Serialize) -> miette::Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| miette::miette!("{e}"))?;
    println!("{s}");
    Ok(())
}
