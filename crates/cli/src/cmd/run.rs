//! `rollcall run FLEET`: the maintenance, host by host, journalled.

use super::{Db, LeaseTtl, OnMissingArg, SimFaults, Talking, block_on, share};
use crate::run::RunOpts;
use crate::serve::parse_addr;
use rollcall_runtime::DriverKind;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--driver`.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub(crate) enum DriverArg {
    /// Simulated hosts that survive the orchestrator, on a scaled clock.
    Sim,
    /// Real hosts over SSH ([ssh] and [remote] in the fleet file).
    Ssh,
    /// Real hosts through a local command template ([exec] command).
    Exec,
    /// EC2 instances ([aws]): SSH, with reboots through the EC2 API, status checks beside
    /// the boot id, and replacement of instances that do not return (on_missing = replace).
    Ec2,
}

impl From<DriverArg> for DriverKind {
    fn from(d: DriverArg) -> DriverKind {
        match d {
            DriverArg::Sim => DriverKind::Sim,
            DriverArg::Ssh => DriverKind::Ssh,
            DriverArg::Exec => DriverKind::Exec,
            DriverArg::Ec2 => DriverKind::Ec2,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The fleet file (TOML).
    fleet: PathBuf,
    #[command(flatten)]
    db: Db,
    /// Host driver. Real drivers run on the wall clock.
    #[arg(long, value_enum, default_value = "sim")]
    driver: DriverArg,
    /// Simulated seconds per real second, or `auto` (the whole maintenance in about a minute).
    #[arg(long, default_value = "auto")]
    time_scale: String,
    #[command(flatten)]
    talking: Talking,
    /// Choose the run id (default: generated).
    #[arg(long)]
    run_id: Option<String>,
    #[command(flatten)]
    faults: SimFaults,
    /// Sim: share of preflight checks that fail.
    #[arg(long, default_value_t = 0.0)]
    preflight_fail_rate: f64,
    /// Override the fleet's on_missing policy.
    #[arg(long, value_enum)]
    on_missing: Option<OnMissingArg>,
    /// Serve the status page for this run at this address while it runs (e.g.
    /// 127.0.0.1:8080); it keeps serving after the run until Ctrl-C.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    /// Base URL of the status page in feeds (default http://ADDR).
    #[arg(long, requires = "serve")]
    public_url: Option<String>,
    /// The status page's id (`page.id` in its Statuspage documents, and its feeds' ids);
    /// default: an id drawn once per journal and kept in it.
    #[arg(long, requires = "serve")]
    page_id: Option<String>,
    #[command(flatten)]
    lease: LeaseTtl,
    /// When another live run of this journal holds some of the fleet's hosts or clusters,
    /// wait for it to end instead of refusing to start.
    #[arg(long)]
    wait: bool,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let serve = self
            .serve
            .as_deref()
            .map(|a| parse_addr("--serve", a))
            .transpose()?;
        let mut sim = self.faults.params()?;
        sim.preflight_fail_rate = share("--preflight-fail-rate", self.preflight_fail_rate)?;
        let opts = RunOpts {
            fleet: self.fleet,
            text: None,
            db: self.db.path(),
            driver: self.driver.into(),
            time_scale: self.time_scale,
            talk: self.talking.talk(),
            run_id: self.run_id,
            sim,
            on_missing: self.on_missing.map(Into::into),
            serve,
            public_url: self.public_url,
            page_id: self.page_id,
            lease_ttl: self.lease.lease_ttl,
            wait: self.wait,
        };
        block_on(crate::run::run(opts))
    }
}
