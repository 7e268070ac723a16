//! `rollcall notify release REGION` and `rollcall notify drop SUBSCRIBER`: the operator's
//! answers to a region held because its announcement does not reach every subscriber
//! (see `rollcall_notify::escalate`). Each is recorded in the journal's
//! `notify_decisions` (who, when, why) and taken in by the orchestrator at its next
//! announcement round.

use super::{Db, block_on};
use crate::err;
use crate::run::find_run;
use rollcall_notify::escalate::{Action, Decision, decide};
use rollcall_runtime::{StoredRun, wall_ms};
use rollcall_store::Store;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Args {
    /// Start a held region without waiting for every subscriber to accept its
    /// announcement (deliveries go on in the background). Recorded in the journal.
    Release(Decide),
    /// Stop sending this run's notices to a subscriber (its pending deliveries are marked
    /// dropped, and it no longer holds any region). Recorded in the journal.
    Drop(Decide),
}

#[derive(clap::Args, Debug)]
pub struct Decide {
    /// The region (release) or the subscriber id (drop).
    target: String,
    /// The run (default: the latest).
    #[arg(long)]
    run: Option<String>,
    /// Why, recorded with the decision.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    db: Db,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        match self {
            Args::Release(d) => block_on(d.exec(Action::Release)),
            Args::Drop(d) => block_on(d.exec(Action::Drop)),
        }
    }
}

impl Decide {
    async fn exec(self, action: Action) -> miette::Result<ExitCode> {
        let store = self.db.open().await?;
        let row = find_run(&store, self.run.as_deref()).await?;
        if row.status.is_ended() {
            return Err(miette::miette!("run {} is already {}", row.id, row.status));
        }
        let run = StoredRun::load(row.clone()).map_err(err)?;
        match action {
            Action::Release => check_region(&run, &self.target)?,
            Action::Drop => check_subscriber(&store, &row.id, &self.target).await?,
        }
        let d = Decision {
            action,
            target: self.target.clone(),
            at_ms: wall_ms(),
            by: operator_name(),
            reason: self.reason.clone(),
        };
        let new = decide(&store, &row.id, &d).await.map_err(err)?;
        let what = match action {
            Action::Release => format!("region {} released", self.target),
            Action::Drop => format!("subscriber {} dropped", self.target),
        };
        match new {
            true => eprintln!("{what} in run {} (recorded)", row.id),
            false => eprintln!("{what} in run {} already", row.id),
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn check_region(run: &StoredRun, region: &str) -> miette::Result<()> {
    match run.fleet.regions.iter().any(|r| r == region) {
        true => Ok(()),
        false => Err(miette::miette!(
            "no region `{region}` in run {} (regions: {})",
            run.row.id,
            run.fleet.regions.join(", ")
        )),
    }
}

/// A subscriber can be dropped when the run has deliveries for it.
async fn check_subscriber(store: &Store, run: &str, sub: &str) -> miette::Result<()> {
    let known = rollcall_notify::subscribers_of(store, run)
        .await
        .map_err(err)?;
    match known.iter().any(|s| s == sub) {
        true => Ok(()),
        false if known.is_empty() => Err(miette::miette!(
            "run {run} has no deliveries to any subscriber yet"
        )),
        false => Err(miette::miette!(
            "no deliveries to `{sub}` in run {run} (subscribers: {})",
            known.join(", ")
        )),
    }
}

/// Who decided: `$USER`, else "operator".
fn operator_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".into())
}
