//! `rollcall man`: the manual page (roff), generated from the same definitions as `--help`.

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let cmd = <crate::Cli as clap::CommandFactory>::command();
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| miette::miette!("cannot write the manual page: {e}"))?;
        Ok(ExitCode::SUCCESS)
    }
}
