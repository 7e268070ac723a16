//! `rollcall resume RUN`: after a crash or Ctrl-C, or ask a running orchestrator to resume.

use super::{Db, LeaseTtl, Talking, block_on};
use crate::run::Resume;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    run: String,
    #[command(flatten)]
    db: Db,
    #[command(flatten)]
    talking: Talking,
    /// Adopt the fleet files on disk: a new run takes over, hosts matched by id,
    /// finished hosts never touched again, the rest planned afresh.
    #[arg(long)]
    replan: bool,
    #[command(flatten)]
    lease: LeaseTtl,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let talk = self.talking.talk();
        block_on(crate::run::resume(Resume {
            db: self.db.path(),
            run: self.run,
            talk,
            replan: self.replan,
            standby: false,
            lease_ttl: self.lease.lease_ttl,
        }))
    }
}
