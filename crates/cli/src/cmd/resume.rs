//! `rollcall resume RUN`: after a crash or Ctrl-C, or ask a running orchestrator to resume.

use super::{Db, block_on};
use crate::run::Talk;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    run: String,
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
    #[arg(long)]
    quiet: bool,
    /// Adopt the fleet files on disk: a new run takes over, hosts matched by id,
    /// finished hosts never touched again, the rest planned afresh.
    #[arg(long)]
    replan: bool,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let talk = Talk::new(self.json, self.quiet);
        block_on(crate::run::resume(
            &self.db.path(),
            &self.run,
            talk,
            self.replan,
        ))
    }
}
