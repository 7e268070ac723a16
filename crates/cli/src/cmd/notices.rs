//! `rollcall notices pull FLEET`: read every notice source of the fleet file once and print
//! what the providers have scheduled, per host. A host that cannot be read is said, and
//! the exit status is 1: its maintenance is unknown, never "none".

use super::run::DriverArg;
use super::{Db, block_on, print_json};
use crate::err;
use crate::guard::book::Book;
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
    /// What a guard has recorded: every event per host, the run that dealt with it and how
    /// it left the host, and (--log) every change with its time.
    List(List),
}

#[derive(clap::Args, Debug)]
pub struct List {
    #[command(flatten)]
    db: Db,
    /// The guard (default: the only one in the journal).
    #[arg(long)]
    guard: Option<String>,
    /// Every change, oldest first, instead of the events.
    #[arg(long)]
    log: bool,
    #[arg(long)]
    json: bool,
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
            Args::List(l) => block_on(l.exec()),
        }
    }
}

impl Pull {
    fn exec(self) -> miette::Result<ExitCode> {
        let name = self.fleet.display().to_string();
        let text = rollcall_fleet::limits::read_input(&self.fleet)
            .map_err(|e| miette::miette!("{name}: {e}"))?;
        let base = self
            .fleet
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
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

impl List {
    async fn exec(self) -> miette::Result<ExitCode> {
        let store = self.db.open().await?;
        let guard = match self.guard {
            Some(g) => g,
            None => only_guard(&store).await?,
        };
        let book = Book::open(&store, &guard).await.map_err(err)?;
        if self.log {
            let log = book.changes().await.map_err(err)?;
            match self.json {
                true => print_json(&log)?,
                false => {
                    for (at, c) in log {
                        println!(
                            "{}  {}  {}  {} ({})  {} – {}",
                            fmt_time(at),
                            c.host,
                            c.key,
                            c.what,
                            c.state,
                            time(c.not_before),
                            time(c.not_after)
                        );
                    }
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut known: Vec<_> = book.known().await.map_err(err)?.into_values().collect();
        known.sort_by(|a, b| (a.not_before, &a.host, &a.key).cmp(&(b.not_before, &b.host, &b.key)));
        match self.json {
            true => print_json(&known)?,
            false => {
                for k in known {
                    println!(
                        "{}  {}  {}  {}  {} – {}  run {}  {}",
                        k.host,
                        k.key,
                        k.code,
                        k.state,
                        time(k.not_before),
                        time(k.not_after),
                        k.run.as_deref().unwrap_or("-"),
                        k.outcome.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The one guard of the journal; an error naming them when there are several.
async fn only_guard(store: &rollcall_store::Store) -> miette::Result<String> {
    let any = Book::open(store, "").await.map_err(err)?;
    let names = any.guards().await.map_err(err)?;
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(miette::miette!(
            "this journal has no guard yet (rollcall guard FLEET)"
        )),
        many => Err(miette::miette!(
            "this journal has several guards: {}; choose one with --guard",
            many.join(", ")
        )),
    }
}
