//! `rollcall notices pull FLEET`: read every notice source of the fleet file once and print
//! what the providers have scheduled, per host. A host that cannot be read is said, and
//! the exit status is 1: its maintenance is unknown, never "none".

use super::run::DriverArg;
use super::{block_on, print_json};
use crate::guard::book::state_name;
use crate::guard::sources::Sources;
use rollcall_core::fmt_time;
use rollcall_providers::Pulled;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Args {
    /// Read the sources once and print their events.
    Pull(Pull),
}

#[derive(clap::Args, Debug)]
pub struct Pull {
    /// The fleet file (TOML), with the notice sources: [aws], [aws.imds], [azure], [gcp].
    fleet: PathBuf,
    /// How metadata read on the host is reached (ssh or exec: the fleet's transport).
    #[arg(long, value_enum, default_value = "ssh")]
    driver: DriverArg,
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        match self {
            Args::Pull(p) => p.exec(),
        }
    }
}

impl Pull {
    fn exec(self) -> miette::Result<ExitCode> {
        let name = self.fleet.display().to_string();
        let text = rollcall_fleet::limits::read_input(&self.fleet)
            .map_err(|e| miette::miette!("{name}: {e}"))?;
        let base = self.fleet.parent().map(Path::to_path_buf).unwrap_or_default();
        let (fleet, _) = crate::run::load_fleet(&name, &text, &base)?;
        let sources = Sources::load(self.driver.into(), &name, &text, &base, &fleet)?;
        let json = self.json;
        block_on(async move {
            let pulled = sources.pull().await;
            match json {
                true => print_json(&pulled_json(&pulled))?,
                false => print_table(&pulled),
            }
            Ok(match pulled.iter().any(|p| p.events.is_err()) {
                true => ExitCode::from(1),
                false => ExitCode::SUCCESS,
            })
        })
    }
}

fn time(t: Option<i64>) -> String {
    t.map(fmt_time).unwrap_or_else(|| "-".into())
}

fn print_table(pulled: &[Pulled]) {
    for p in pulled {
        match &p.events {
            Err(e) => println!("{}  {}  unread: {e}", p.host, p.source.as_str()),
            Ok(ev) if ev.is_empty() => println!("{}  {}  no events", p.host, p.source.as_str()),
            Ok(ev) => {
                for e in ev {
                    println!(
                        "{}  {}  {}  {}  {}  {} – {}  {}",
                        p.host,
                        p.source.as_str(),
                        e.id,
                        e.code,
                        state_name(e.state),
                        time(e.not_before),
                        time(e.not_after),
                        e.description
                    );
                }
            }
        }
    }
}

fn pulled_json(pulled: &[Pulled]) -> serde_json::Value {
    let hosts: Vec<_> = pulled
        .iter()
        .map(|p| match &p.events {
            Ok(ev) => json!({"host": p.host, "source": p.source, "events": ev}),
            Err(e) => json!({"host": p.host, "source": p.source, "error": e.to_string()}),
        })
        .collect();
    json!({ "hosts": hosts })
}
