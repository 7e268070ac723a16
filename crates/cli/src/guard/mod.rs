//! `rollcall guard FLEET`: read the providers' maintenance notices live, and get the hosts
//! they name rebooted ahead of the provider's windows, within their clusters' budgets.
//!
//! A round: pull every source ([`sources`]), record what changed in the guard's book
//! ([`book`], in the run store), and when scheduled events are due, start a guard run: an
//! ordinary stored run of the operator's fleet file edited to cover those hosts, starting
//! now, with each event a `[[notice]]` ([`derive`]). The planner makes each window start a
//! deadline; the engine says at once, when the run starts, which provider windows would
//! take a cluster below its budget (`provider_risk`, to the operator and through notify to
//! the tenants); an Azure event is approved early instead of rebooting the host
//! ([`approve`]). A guard that stops (Ctrl-C, a crash) resumes its unfinished run when it
//! starts again.

pub mod approve;
pub mod book;
pub mod derive;
pub mod sources;

use crate::err;
use crate::run::{RunOpts, Talk};
use book::{Book, Change};
use derive::Due;
use rollcall_core::{Fleet, fmt_time};
use rollcall_providers::Pulled;
use rollcall_runtime::DriverKind;
use rollcall_store::{RunStatus, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `rollcall guard`, as the command line asks for it.
pub struct GuardOpts {
    pub fleet: PathBuf,
    pub db: PathBuf,
    pub driver: DriverKind,
    /// The guard's name in the book (default: the fleet's name).
    pub name: Option<String>,
    pub poll: Duration,
    /// The sim driver's simulated seconds per real second (real drivers: the wall clock).
    pub time_scale: String,
    /// One round, then stop (after its run, if one was started).
    pub once: bool,
    pub talk: Talk,
    pub serve: Option<std::net::SocketAddr>,
    pub public_url: Option<String>,
    pub lease_ttl: Duration,
}

/// What a guard works with: the operator's fleet, its sources, its book.
struct Guard {
    o: GuardOpts,
    name: String,
    text: String,
    sources: sources::Sources,
    store: Store,
    book: Book,
}

fn wall_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub async fn guard(o: GuardOpts) -> miette::Result<ExitCode> {
    let g = Guard::open(o).await?;
    // one status page for the guard's life, following the journal's latest run
    let web = match g.o.serve {
        Some(addr) => {
            Some(crate::serve::start_page(&g.o.db, addr, None, g.o.public_url.clone(), None).await?)
        }
        None => None,
    };
    let code = g.watch().await;
    if let Some(w) = web {
        w.stop().await;
    }
    code
}

impl Guard {
    /// Rounds until Ctrl-C (or one, with `--once`).
    async fn watch(&self) -> miette::Result<ExitCode> {
        let g = self;
        loop {
            if g.finish_left_runs().await? == Went::Stopped {
                return Ok(ExitCode::SUCCESS);
            }
            if g.round().await? == Went::Stopped || g.o.once {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                _ = tokio::time::sleep(g.o.poll) => {}
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Went {
    On,
    /// A run was interrupted (Ctrl-C): the guard stops; it resumes the run when started again.
    Stopped,
}

impl Guard {
    async fn open(o: GuardOpts) -> miette::Result<Guard> {
        let name = o.fleet.display().to_string();
        let text = rollcall_fleet::limits::read_input(&o.fleet)
            .map_err(|e| miette::miette!("{name}: {e}"))?;
        let base = o.fleet.parent().map(Path::to_path_buf).unwrap_or_default();
        let (fleet, _) = crate::run::load_fleet(&name, &text, &base)?;
        crate::run::check_notify(&name, &text, &fleet)?;
        let sources = sources::Sources::load(o.driver, &name, &text, &base, &fleet)?;
        let store = Store::connect(&o.db).await.map_err(err)?;
        let guard_name = o.name.clone().unwrap_or_else(|| fleet.name.clone());
        let book = Book::open(&store, &guard_name).await.map_err(err)?;
        if o.talk == Talk::Bars {
            eprintln!(
                "guard {guard_name}: watching {} host(s) through {}; every {}s",
                sources.hosts(),
                sources.describe(),
                o.poll.as_secs()
            );
        }
        Ok(Guard {
            o,
            name: guard_name,
            text,
            sources,
            store,
            book,
        })
    }

    /// One round: pull, record, and act on what is due.
    async fn round(&self) -> miette::Result<Went> {
        let now = wall_now();
        let pulled = self.sources.pull().await;
        self.say_unread(&pulled);
        let due = match self.record(&pulled, now).await {
            Ok(due) => due,
            // the journal does not answer: nothing was recorded, the next round reads again
            Err(e) if rollcall_store::is_transient_sqlx(&e) => {
                eprintln!(
                    "guard {}: the journal does not answer ({e}); trying again next round",
                    self.name
                );
                return Ok(Went::On);
            }
            Err(e) => return Err(err(e)),
        };
        if due.is_empty() {
            return Ok(Went::On);
        }
        self.run_ahead(&due, now).await
    }

    /// Record a round's reads; the events due.
    async fn record(&self, pulled: &[Pulled], now: i64) -> Result<Vec<Due>, book::BookError> {
        let changes = self.book.record(pulled, now).await?;
        self.say_changes(&changes);
        self.book.due(now).await
    }

    /// Start and drive a guard run for the events due.
    async fn run_ahead(&self, due: &[Due], now: i64) -> miette::Result<Went> {
        let text = derive::guard_text(&self.text, due, now)
            .map_err(|e| miette::miette!("{}: {e}", self.o.fleet.display()))?;
        let id = format!("guard-{}-{now}", self.name);
        if self.o.talk == Talk::Bars {
            eprintln!(
                "guard {}: {} event(s) due on {} host(s): run {id}",
                self.name,
                due.len(),
                due.iter()
                    .map(|d| &d.host)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            );
        }
        if !self.book.started(&id, due, now).await.map_err(err)? {
            eprintln!(
                "guard {}: another guard of this journal took some of these events first; leaving them to it",
                self.name
            );
            return Ok(Went::On);
        }
        let opts = self.run_opts(id.clone(), text);
        crate::run::run(opts).await?;
        self.settle(&id).await
    }

    fn run_opts(&self, id: String, text: String) -> RunOpts {
        RunOpts {
            fleet: self.o.fleet.clone(),
            text: Some(text),
            db: self.o.db.clone(),
            driver: self.o.driver,
            time_scale: self.o.time_scale.clone(),
            talk: self.o.talk,
            run_id: Some(id),
            sim: Default::default(),
            on_missing: None,
            // the guard serves its own page for its whole life
            serve: None,
            public_url: None,
            page_id: None,
            lease_ttl: self.o.lease_ttl,
            wait: true,
        }
    }

    /// After a guard run returned: record how it left each host, or say it stopped.
    async fn settle(&self, id: &str) -> miette::Result<Went> {
        let Some(row) = self.store.run(id).await.map_err(err)? else {
            return Ok(Went::On);
        };
        if !row.status.is_ended() {
            eprintln!(
                "guard {}: run {id} is {}; `rollcall guard` again resumes it",
                self.name, row.status
            );
            return Ok(Went::Stopped);
        }
        let r = crate::run::restore(&self.store, &row).await?;
        let outcome = outcomes(&r.run.fleet, &r.engine);
        self.book.finished(id, &outcome).await.map_err(err)?;
        Ok(Went::On)
    }

    /// Guard runs a previous guard process left: a run never stored gives its events back;
    /// a live one is resumed (once its old lease expires); an ended one is settled.
    async fn finish_left_runs(&self) -> miette::Result<Went> {
        let known = self.book.known().await.map_err(err)?;
        for id in self.book.runs().await.map_err(err)? {
            let unsettled = known
                .values()
                .any(|k| k.run.as_deref() == Some(id.as_str()) && k.outcome.is_none());
            if !unsettled {
                continue;
            }
            match self.store.run(&id).await.map_err(err)? {
                None => self.book.give_back(&id).await.map_err(err)?,
                Some(row) if row.status.is_live() => {
                    eprintln!("guard {}: resuming its run {id}", self.name);
                    crate::run::resume(self.resume_opts(&id)).await?;
                    if self.settle(&id).await? == Went::Stopped {
                        return Ok(Went::Stopped);
                    }
                }
                Some(row) if row.status == RunStatus::Replanned => {
                    self.book.give_back(&id).await.map_err(err)?
                }
                Some(_) => {
                    self.settle(&id).await?;
                }
            }
        }
        Ok(Went::On)
    }

    fn resume_opts(&self, id: &str) -> crate::run::Resume {
        crate::run::Resume {
            db: self.o.db.clone(),
            run: id.to_string(),
            talk: self.o.talk,
            replan: false,
            standby: true,
            lease_ttl: self.o.lease_ttl,
        }
    }

    fn say_unread(&self, pulled: &[Pulled]) {
        for p in pulled {
            if let Err(e) = &p.events {
                eprintln!(
                    "guard {}: {} ({}): cannot read its notices, so its maintenance is unknown: {e}",
                    self.name,
                    p.host,
                    p.source.as_str()
                );
            }
        }
    }

    fn say_changes(&self, changes: &[Change]) {
        if self.o.talk == Talk::Quiet {
            return;
        }
        for c in changes {
            let window = match (c.not_before, c.not_after) {
                (Some(a), Some(b)) => format!(" {} – {}", fmt_time(a), fmt_time(b)),
                (Some(a), None) => format!(" from {}", fmt_time(a)),
                _ => String::new(),
            };
            eprintln!(
                "{}  notice {} {}: {} ({}){window}",
                fmt_time(wall_now()),
                c.key,
                c.host,
                c.what,
                c.state
            );
        }
    }
}

/// How a finished run left each host it covered: `done`, or the phase it stopped in.
fn outcomes(fleet: &Fleet, engine: &rollcall_core::engine::Engine) -> HashMap<String, String> {
    use rollcall_core::engine::Phase;
    fleet
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.in_scope)
        .map(|(i, h)| {
            let p = engine.phase(i as rollcall_core::HostIx);
            let o = match p {
                Phase::Healthy | Phase::Replaced => "done".to_string(),
                p => p.name().to_string(),
            };
            (h.id.clone(), o)
        })
        .collect()
}
