//! `rollcall pause RUN` and `rollcall abort RUN`: controls for the orchestrator running it.

use super::{Db, block_on};
use crate::err;
use crate::run::find_run;
use rollcall_runtime::wall_ms;
use rollcall_store::{RunControl, Store};
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    run: String,
    #[command(flatten)]
    db: Db,
}

impl Args {
    /// `pause`: stop starting hosts (in-flight hosts finish).
    pub fn pause(self) -> miette::Result<ExitCode> {
        block_on(control(&self.db.path(), &self.run, RunControl::Pause))
    }

    /// `abort`: stop the run for good once in-flight hosts finish.
    pub fn abort(self) -> miette::Result<ExitCode> {
        block_on(control(&self.db.path(), &self.run, RunControl::Abort))
    }
}

async fn control(db: &Path, id: &str, what: RunControl) -> miette::Result<ExitCode> {
    let store = Store::connect(db).await.map_err(err)?;
    let row = find_run(&store, Some(id)).await?;
    if row.status.is_ended() {
        return Err(miette::miette!("run {id} is already {}", row.status));
    }
    store.set_control(id, Some(what)).await.map_err(err)?;
    let live = row.lease_until.is_some_and(|t| t > wall_ms());
    if live {
        eprintln!("asked run {id} to {what}");
    } else {
        eprintln!(
            "no orchestrator is running {id} now; `{what}` applies when it is resumed (rollcall resume {id})"
        );
    }
    Ok(ExitCode::SUCCESS)
}
