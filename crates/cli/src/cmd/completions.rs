//! `rollcall completions SHELL`: shell completions, generated from the same definitions as
//! `--help` (e.g. `rollcall completions bash > /etc/bash_completion.d/rollcall`).

use clap_complete::Shell;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// bash, elvish, fish, powershell or zsh.
    #[arg(value_enum)]
    shell: Shell,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let mut cmd = <crate::Cli as clap::CommandFactory>::command();
        clap_complete::generate(self.shell, &mut cmd, "rollcall", &mut std::io::stdout());
        Ok(ExitCode::SUCCESS)
    }
}
