//! `rollcall guard FLEET`: watch the providers' maintenance notices and reboot the hosts
//! they name ahead of the provider's windows, within their clusters' budgets.

use super::run::DriverArg;
use super::{Db, LeaseTtl, Talking, block_on};
use crate::guard::GuardOpts;
use crate::serve::parse_addr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The fleet file (TOML), with the notice sources: [aws], [aws.imds], [azure], [gcp].
    fleet: PathBuf,
    #[command(flatten)]
    db: Db,
    /// Host driver of the guard's runs (ssh or exec: real hosts; sim: simulated ones).
    #[arg(long, value_enum, default_value = "ssh")]
    driver: DriverArg,
    /// The guard's name in the journal (default: the fleet's name).
    #[arg(long)]
    name: Option<String>,
    /// How often the sources are read.
    #[arg(long, default_value = "60s", value_parser = parse_poll)]
    poll: std::time::Duration,
    /// Sim driver: simulated seconds per real second (to try guard mode on simulated hosts).
    #[arg(long, default_value = "1")]
    time_scale: String,
    /// One round (and the run it starts, if any), then stop.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    talking: Talking,
    /// Serve the status page of the journal's latest run (the guard's runs as they come) at
    /// this address, for as long as the guard runs.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    /// Base URL of the status page in feeds (default http://ADDR).
    #[arg(long, requires = "serve")]
    public_url: Option<String>,
    #[command(flatten)]
    lease: LeaseTtl,
}

fn parse_poll(s: &str) -> Result<std::time::Duration, String> {
    let secs = rollcall_core::model::parse_duration(s)?;
    if !(1..=86400).contains(&secs) {
        return Err(format!("expected 1s to 1d, got {s}"));
    }
    Ok(std::time::Duration::from_secs(secs as u64))
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let serve = self
            .serve
            .as_deref()
            .map(|a| parse_addr("--serve", a))
            .transpose()?;
        let o = GuardOpts {
            fleet: self.fleet,
            db: self.db.path(),
            driver: self.driver.into(),
            name: self.name,
            poll: self.poll,
            time_scale: self.time_scale,
            once: self.once,
            talk: self.talking.talk(),
            serve,
            public_url: self.public_url,
            lease_ttl: self.lease.lease_ttl,
        };
        block_on(crate::guard::guard(o))
    }
}
