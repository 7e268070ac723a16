//! `rollcall follow [RUN]`: a standby orchestrator. It waits while another orchestrator
//! holds the run's lease, takes the run over once that lease expires (its holder crashed,
//! lost its machine or its network), and drives it on from the journal as `resume` does.

use super::{Db, LeaseTtl, Talking, block_on};
use crate::run::Resume;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run to stand by for (default: the latest live run of the journal; waits for
    /// one to be started).
    run: Option<String>,
    #[command(flatten)]
    db: Db,
    #[command(flatten)]
    talking: Talking,
    #[command(flatten)]
    lease: LeaseTtl,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let talk = self.talking.talk();
        let db = self.db.path();
        let ttl = self.lease.lease_ttl;
        block_on(async move {
            let run = match self.run {
                Some(run) => run,
                None => crate::run::await_live_run(&db, ttl).await?,
            };
            crate::run::resume(Resume {
                db,
                run,
                talk,
                replan: false,
                standby: true,
                lease_ttl: ttl,
            })
            .await
        })
    }
}
