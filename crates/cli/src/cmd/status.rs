//! `rollcall status [RUN]`: a run's state per region, the hosts that need attention, its
//! notices; with `--check`, the journal against the engine's rules and the sim world.

use super::{Db, block_on, print_json};
use crate::err;
use crate::run::{Restored, find_run, restore};
use rollcall_core::engine::{Engine, Phase, Progress, RunState, check_journal};
use rollcall_core::{Fleet, fmt_time};
use rollcall_drivers::sim::read_log;
use rollcall_notify::DeliveryStatus;
use rollcall_runtime::{StoredRun, wall_ms};
use rollcall_store::{RunRow, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run (default: the latest).
    run: Option<String>,
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
    /// Check the journal against the engine's rules and the sim world (exit 1 on a violation).
    #[arg(long)]
    check: bool,
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    run: &'a RunRow,
    state: RunState,
    progress: Progress,
    regions: Vec<String>,
    attention: Vec<HostNote>,
    violations: Option<Vec<String>>,
    /// Customer notices delivered (notify outbox).
    notices: rollcall_notify::Summary,
    leader: Leader,
}

/// Who leads the run: the lease's holder, its epoch, the last takeover, what it holds.
#[derive(Serialize)]
struct Leader {
    /// The lease's holder while the lease is live; `None` when no orchestrator runs it.
    owner: Option<String>,
    epoch: i64,
    /// Unix ms.
    lease_until: Option<i64>,
    /// Unix ms of the last takeover, and from whom.
    taken_at: Option<i64>,
    taken_from: Option<String>,
    operator: Option<String>,
    /// The run's claims: hosts and clusters it holds in this journal.
    hosts_held: usize,
    clusters_held: usize,
}

impl Leader {
    async fn of(store: &Store, row: &RunRow) -> miette::Result<Leader> {
        let claims = store.claims(&row.id).await.map_err(err)?;
        let live = row.lease_until.is_some_and(|t| t > wall_ms());
        Ok(Leader {
            owner: row.owner.clone().filter(|_| live),
            epoch: row.epoch,
            lease_until: row.lease_until,
            taken_at: row.taken_at,
            taken_from: row.taken_from.clone(),
            operator: row.operator.clone(),
            hosts_held: claims.iter().filter(|k| k.starts_with("host:")).count(),
            clusters_held: claims.iter().filter(|k| k.starts_with("cluster:")).count(),
        })
    }

    fn print(&self) {
        let who = self.owner.as_deref().unwrap_or("none running");
        println!("  orchestrator: {who} (lease epoch {})", self.epoch);
        if let (Some(at), Some(from)) = (self.taken_at, &self.taken_from) {
            let at = jiff::Timestamp::from_millisecond(at)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| at.to_string());
            println!("  last takeover: {at} from {from}");
        }
        println!(
            "  started by {}; holds {} host(s) and {} cluster(s) in this journal",
            self.operator.as_deref().unwrap_or("(not recorded)"),
            self.hosts_held,
            self.clusters_held
        );
    }
}

#[derive(Serialize)]
struct HostNote {
    host: String,
    phase: Phase,
    note: Option<String>,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        block_on(self.status())
    }

    async fn status(self) -> miette::Result<ExitCode> {
        let store = self.db.open().await?;
        let row = find_run(&store, self.run.as_deref()).await?;
        let r = restore(&store, &row).await?;
        let violations = match self.check {
            true => Some(violations(&r)?),
            false => None,
        };
        let bad = violations.as_ref().is_some_and(|v| !v.is_empty());
        let notices = rollcall_notify::summary(&store, &row.id)
            .await
            .map_err(err)?;
        let (fleet, engine) = (&r.run.fleet, &r.engine);
        let pr = engine.progress();
        let doc = StatusDoc {
            run: &row,
            state: engine.state(),
            regions: pr
                .regions
                .iter()
                .map(|x| fleet.region_name(x.region).to_string())
                .collect(),
            progress: pr,
            attention: attention(fleet, engine),
            violations,
            notices,
            leader: Leader::of(&store, &row).await?,
        };
        match self.json {
            true => print_json(&doc)?,
            false => print_text(&doc, fleet),
        }
        Ok(match bad {
            true => ExitCode::from(1),
            false => ExitCode::SUCCESS,
        })
    }
}

/// Missing and failed hosts, with the engine's note on each.
fn attention(fleet: &Fleet, engine: &Engine) -> Vec<HostNote> {
    (0..fleet.hosts.len())
        .filter(|&h| matches!(engine.phase(h as u32), Phase::Missing | Phase::Failed))
        .map(|h| HostNote {
            host: fleet.hosts[h].id.clone(),
            phase: engine.phase(h as u32),
            note: engine.note(h as u32).map(str::to_string),
        })
        .collect()
}

/// The journal against the engine's rules, and (sim runs) no host rebooted twice in the
/// simulated world.
fn violations(r: &Restored) -> miette::Result<Vec<String>> {
    let mut v = check_journal(&r.run.fleet, &r.plan, &r.outs);
    v.extend(rebooted_twice(&r.run)?);
    Ok(v)
}

fn rebooted_twice(run: &StoredRun) -> miette::Result<Vec<String>> {
    let Some(world) = &run.params.world else {
        return Ok(Vec::new());
    };
    let mut count: HashMap<String, usize> = HashMap::new();
    for e in read_log(world).map_err(err)? {
        if e.action == "reboot" {
            *count.entry(e.host).or_default() += 1;
        }
    }
    Ok(count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(h, n)| format!("{h} was rebooted {n} times"))
        .collect())
}

fn print_text(doc: &StatusDoc, fleet: &Fleet) {
    let (row, pr) = (doc.run, &doc.progress);
    let paused = match doc.state {
        RunState::Paused { reason } => format!(" ({reason:?})").to_lowercase(),
        _ => String::new(),
    };
    println!(
        "run {}  {} / {}  state {}{paused}  ({}/{} hosts done)",
        row.id,
        row.fleet_name,
        row.maintenance,
        doc.state.name(),
        pr.done,
        pr.total
    );
    doc.leader.print();
    print_regions(pr, fleet);
    for a in &doc.attention {
        println!(
            "  {} {}: {}",
            a.phase.name().to_uppercase(),
            a.host,
            a.note.clone().unwrap_or_default()
        );
    }
    print_notices(&doc.notices, &doc.run.id);
    if let Some(v) = &doc.violations {
        if v.is_empty() {
            println!("  check: journal keeps every rule; no host rebooted twice");
        }
        for x in v {
            println!("  VIOLATION: {x}");
        }
    }
}

fn print_regions(pr: &Progress, fleet: &Fleet) {
    println!(
        "  {:<8} {:>6} {:>6} {:>7} {:>8} {:>7}  ANNOUNCED",
        "REGION", "HOSTS", "DONE", "ACTIVE", "MISSING", "FAILED"
    );
    for r in &pr.regions {
        println!(
            "  {:<8} {:>6} {:>6} {:>7} {:>8} {:>7}  {}{}",
            fleet.region_name(r.region),
            r.hosts,
            r.done,
            r.active,
            r.missing,
            r.failed,
            r.announced_at.map(fmt_time).unwrap_or_else(|| "-".into()),
            if r.completed { "  completed" } else { "" }
        );
    }
    let phases: Vec<String> = pr
        .phases
        .iter()
        .map(|(ph, n)| format!("{} {n}", ph.name()))
        .collect();
    println!("  hosts: {}", phases.join(", "));
}

fn print_notices(notices: &rollcall_notify::Summary, run: &str) {
    if notices.counts.is_empty() {
        return;
    }
    let dropped = notices.count(None, DeliveryStatus::Dropped);
    println!(
        "  notices: {} sent, {} pending, {} unsubscribed (410){}",
        notices.count(None, DeliveryStatus::Sent),
        notices.count(None, DeliveryStatus::Pending),
        notices.count(None, DeliveryStatus::Gone),
        match dropped {
            0 => String::new(),
            n => format!(", {n} dropped by the operator"),
        }
    );
    print_holds(notices, run);
    for u in &notices.undelivered {
        println!(
            "  UNDELIVERED {} to {} after {} attempts: {}",
            u.notice,
            u.subscriber,
            u.attempts,
            u.last_error.clone().unwrap_or_default()
        );
    }
}

/// Regions held by an unreached subscriber, and the operator's decisions.
fn print_holds(notices: &rollcall_notify::Summary, run: &str) {
    for h in &notices.holds {
        println!("  ANNOUNCEMENT {}", rollcall_notify::escalate::describe(h));
    }
    if notices.holds.iter().any(|h| !h.released) {
        println!(
            "    release a region: rollcall notify release REGION --run {run}; or drop a subscriber: rollcall notify drop SUBSCRIBER --run {run}"
        );
    }
    for d in &notices.decisions {
        println!(
            "  DECISION {} {} by {} at {}{}",
            d.action.name(),
            d.target,
            d.by,
            rollcall_core::fmt_time(d.at_ms / 1000),
            d.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
}
