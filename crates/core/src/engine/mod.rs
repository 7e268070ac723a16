//! The engine: a sans-IO state machine that carries each host of a plan through
//! `pending → announced → preflight → draining → rebooting → returning → verifying →
//! restoring → healthy` (or `failed` / `missing → replaced`).
//!
//! Events (results of commands, operator controls) go in with the time they happened;
//! outputs (state transitions to journal, commands to execute, notices) come out. The
//! engine never does I/O and never reads a clock, so the same code runs against real
//! hosts (tokio runtime, wall clock) and in simulation (virtual clock).
//!
//! Crash safety: the runtime journals every output of a step (transitions, command
//! intents, notices) before executing its commands. [`Engine::restore`] rebuilds the
//! state from those records; a host whose reboot intent was journalled is probed
//! (boot id) before anything is sent again, so nothing is rebooted twice.

mod check;
mod host;
mod wire;

pub use check::check_journal;
pub use host::{counts_out, holds_slot};
pub use wire::{
    Command, Control, Event, Hold, Notice, NoticeKind, Outcome, Output, PauseReason, Phase, Record,
    RunState, Transition, WIRE_VERSION,
};

use crate::budget::{Limit, earliest_fit, intern_zones, zone_allows, zone_count_add};
use crate::model::*;
use crate::plan::Plan;
use host::HostRun;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often a returning host is probed (seconds).
    pub probe_interval: i64,
    /// How often a missing host is probed.
    pub missing_probe_interval: i64,
    /// How often cluster gates are re-checked while unhealthy.
    pub gate_interval: i64,
    /// Time allowed for preflight, drain acknowledgement, reboot acknowledgement, verify, restore.
    pub command_timeout: i64,
    /// After a reboot intent, how long a host may keep its old boot id and stay
    /// reachable before rollcall concludes the reboot never happened and sends it again.
    pub reboot_grace: i64,
    /// Reboot attempts per host (a retry happens only when the first provably did not reboot).
    pub max_reboot_attempts: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            probe_interval: 10,
            missing_probe_interval: 60,
            gate_interval: 10,
            command_timeout: 300,
            reboot_grace: 300,
            max_reboot_attempts: 2,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct RegionRun {
    announced_at: Option<i64>,
    announcing: bool,
    started: bool,
    completed: bool,
}

/// Counts per phase and region, for status displays.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub state: RunState,
    pub phases: Vec<(Phase, usize)>,
    pub regions: Vec<RegionProgress>,
    pub total: usize,
    pub done: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionProgress {
    pub region: RegionIx,
    pub hosts: usize,
    pub done: usize,
    pub active: usize,
    pub missing: usize,
    pub failed: usize,
    pub announced_at: Option<i64>,
    pub started: bool,
    pub completed: bool,
}

pub struct Engine {
    fleet: Arc<Fleet>,
    cfg: EngineConfig,
    limits: Vec<Limit>,
    /// Hosts of the run in plan order, per region (region order of the maintenance).
    region_hosts: Vec<Vec<HostIx>>,
    /// Position in `region_hosts[r]` before which every host has started.
    region_cursor: Vec<usize>,
    region_order: Vec<RegionIx>,
    /// Serial mode: index into `region_order` of the region whose turn it is.
    serial_pos: usize,
    regions: Vec<RegionRun>,
    hosts: Vec<HostRun>,
    host_zone: Vec<u32>,
    cluster_out: Vec<u32>,
    cluster_zone_out: Vec<Vec<(u32, u32)>>,
    /// Missing members per cluster (under on_missing = continue the cluster starts no new host).
    cluster_missing: Vec<u32>,
    /// Members per cluster that are back and waiting for the cluster to be healthy.
    cluster_settling: Vec<u32>,
    /// Concurrency slots held (active or missing hosts), per region and in all.
    region_active: Vec<u32>,
    global_active: u32,
    /// Hosts in an active phase (not missing).
    working: u32,
    /// Hosts of the run not yet final, per region and in all.
    region_unfinished: Vec<u32>,
    unfinished: u32,
    missing_total: u32,
    /// Hosts whose drain holds something not yet put back.
    held: u32,
    /// Hosts that go last among their clusters' members when the order allows (an
    /// Elasticsearch cluster's elected manager: one election instead of several).
    last: BTreeSet<HostIx>,
    /// Every host of the region has been moved to `announced`.
    region_all_announced: Vec<bool>,
    watched: BTreeSet<HostIx>,
    state: RunState,
    out: VecDeque<Output>,
}

impl Engine {
    pub fn new(fleet: Arc<Fleet>, plan: &Plan, cfg: EngineConfig) -> Engine {
        let nregions = fleet.regions.len();
        let host_zone = intern_zones(&fleet);
        let mut hosts: Vec<HostRun> = fleet
            .hosts
            .iter()
            .map(|h| {
                // a cluster member waits as long as its clusters allow (the longest of
                // them); a host in no cluster gets the defaults
                let (mut rt, mut gt) = if h.clusters.is_empty() {
                    (
                        Kind::None.default_return_timeout(),
                        Kind::None.default_gate_timeout(),
                    )
                } else {
                    (0, 0)
                };
                for &c in &h.clusters {
                    rt = rt.max(fleet.clusters[c as usize].return_timeout);
                    gt = gt.max(fleet.clusters[c as usize].gate_timeout);
                }
                HostRun {
                    phase: Phase::Skipped,
                    since: 0,
                    boot_id: None,
                    attempt: 0,
                    inflight: false,
                    next_check: 0,
                    undrained: false,
                    gates_pending: 0,
                    gates_bad: false,
                    failed_out: false,
                    same_boot_seen: false,
                    reboot_at: 0,
                    replaced: false,
                    fresh: false,
                    unacked: false,
                    return_timeout: rt,
                    gate_timeout: gt,
                    note: None,
                    holds: Vec::new(),
                    release_warned: false,
                }
            })
            .collect();
        let mut region_hosts = vec![Vec::new(); nregions];
        for s in &plan.steps {
            let h = s.host as usize;
            hosts[h].phase = Phase::Pending;
            region_hosts[fleet.hosts[h].region as usize].push(s.host);
        }
        let region_unfinished: Vec<u32> = region_hosts
            .iter()
            .map(|l: &Vec<HostIx>| l.len() as u32)
            .collect();
        Engine {
            limits: plan.limits.clone(),
            region_hosts,
            region_cursor: vec![0; nregions],
            region_order: fleet.maintenance.region_order.clone(),
            serial_pos: 0,
            regions: vec![RegionRun::default(); nregions],
            hosts,
            host_zone,
            cluster_out: vec![0; fleet.clusters.len()],
            cluster_zone_out: vec![Vec::new(); fleet.clusters.len()],
            cluster_missing: vec![0; fleet.clusters.len()],
            cluster_settling: vec![0; fleet.clusters.len()],
            region_active: vec![0; nregions],
            global_active: 0,
            working: 0,
            region_unfinished,
            unfinished: plan.steps.len() as u32,
            missing_total: 0,
            held: 0,
            last: BTreeSet::new(),
            region_all_announced: vec![false; nregions],
            watched: BTreeSet::new(),
            state: RunState::Running,
            out: VecDeque::new(),
            fleet,
            cfg,
        }
    }

    /// Rebuild an engine from its journal. Call [`Engine::step`] afterwards: hosts
    /// in the middle of a step get their command again, except a journalled reboot,
    /// which is never re-sent without a probe proving it did not happen.
    pub fn restore<'a>(
        fleet: Arc<Fleet>,
        plan: &Plan,
        cfg: EngineConfig,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Engine, String> {
        let mut e = Engine::new(fleet, plan, cfg);
        let mut reboot_intent: HashMap<HostIx, (i64, u32)> = HashMap::new();
        for r in records {
            match r {
                Output::Transition(t) => {
                    let Some(h) = e.hosts.get(t.host as usize) else {
                        return Err(format!(
                            "journal names host index {} not in this fleet",
                            t.host
                        ));
                    };
                    if h.phase != t.from {
                        return Err(format!(
                            "journal does not match the fleet: host {} is {} but the journal moves it from {}",
                            e.fleet.hosts[t.host as usize].id,
                            h.phase.name(),
                            t.from.name()
                        ));
                    }
                    e.set_phase(t.host, t.to, t.at, t.out);
                    let h = &mut e.hosts[t.host as usize];
                    if t.boot_id.is_some() {
                        h.boot_id = t.boot_id.clone();
                    }
                    h.note = t.note.clone();
                    if t.to == Phase::Returning {
                        h.reboot_at = t.at;
                    }
                    if t.to == Phase::Preflight || t.to == Phase::Pending {
                        reboot_intent.remove(&t.host);
                    }
                }
                Output::Command {
                    at,
                    command: Command::Reboot { host, attempt, .. },
                } => {
                    reboot_intent.insert(*host, (*at, *attempt));
                }
                Output::Command {
                    command: Command::Replace { host },
                    ..
                } => {
                    if let Some(h) = e.hosts.get_mut(*host as usize) {
                        h.replaced = true;
                    }
                }
                Output::Command { .. } => {}
                Output::Notice(n) => {
                    let Some(reg) = e.regions.get_mut(n.region as usize) else {
                        return Err(format!(
                            "journal names region index {} not in this fleet",
                            n.region
                        ));
                    };
                    match n.kind {
                        NoticeKind::Scheduled => reg.announced_at = Some(n.at),
                        NoticeKind::Started => reg.started = true,
                        NoticeKind::Completed => reg.completed = true,
                        _ => {}
                    }
                }
                Output::State { state, .. } => e.state = *state,
                Output::Held { host, holds, .. } => match e.hosts.get_mut(*host as usize) {
                    Some(h) => h.holds = holds.clone(),
                    None => {
                        return Err(format!("journal names host index {host} not in this fleet"));
                    }
                },
                Output::Released { host, .. } => {
                    if let Some(h) = e.hosts.get_mut(*host as usize) {
                        h.holds.clear();
                    }
                }
            }
        }
        e.held = e.hosts.iter().filter(|h| !h.holds.is_empty()).count() as u32;
        for h in 0..e.hosts.len() {
            e.rewatch(h as HostIx);
        }
        // hosts caught between steps
        for h in 0..e.hosts.len() {
            let hx = h as HostIx;
            e.hosts[h].inflight = false;
            e.hosts[h].gates_pending = 0;
            let intent = reboot_intent.get(&hx).copied();
            if e.hosts[h].phase == Phase::Rebooting
                && let Some((at, attempt)) = intent
            {
                // The reboot may or may not have been sent: watch the boot id, and
                // journal that decision so the next restore replays it.
                e.transition(
                    hx,
                    Phase::Returning,
                    at,
                    false,
                    Some(
                        "restored after a crash: reboot intent journalled, watching the boot id"
                            .into(),
                    ),
                );
                let hr = &mut e.hosts[h];
                hr.reboot_at = at;
                hr.attempt = attempt;
                hr.unacked = true;
            }
            let hr = &mut e.hosts[h];
            hr.fresh = hr.phase.is_active() || hr.phase == Phase::Missing;
            if hr.phase == Phase::Returning || hr.phase == Phase::Missing {
                hr.attempt = hr.attempt.max(intent.map_or(1, |x| x.1));
            }
        }
        // cursors: every host before the first not-yet-started one
        for r in 0..e.region_hosts.len() {
            let list = &e.region_hosts[r];
            let mut c = 0;
            while c < list.len()
                && !matches!(
                    e.hosts[list[c] as usize].phase,
                    Phase::Pending | Phase::Announced
                )
            {
                c += 1;
            }
            e.region_cursor[r] = c;
        }
        Ok(e)
    }

    pub fn state(&self) -> RunState {
        self.state
    }
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }
    pub fn phase(&self, h: HostIx) -> Phase {
        self.hosts[h as usize].phase
    }
    pub fn cluster_out(&self, c: ClusterIx) -> u32 {
        self.cluster_out[c as usize]
    }

    /// Take the next output; the runtime journals them all, then runs the commands.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        self.out.drain(..).collect()
    }

    fn emit_state(&mut self, now: i64, s: RunState) {
        if self.state != s {
            self.state = s;
            self.out.push_back(Output::State { at: now, state: s });
        }
    }

    fn command(&mut self, now: i64, c: Command) {
        if let Some(h) = c.host() {
            self.hosts[h as usize].inflight = true;
        }
        self.out.push_back(Output::Command {
            at: now,
            command: c,
        });
    }

    fn notice(
        &mut self,
        now: i64,
        kind: NoticeKind,
        region: RegionIx,
        host: Option<HostIx>,
        text: String,
    ) {
        self.out.push_back(Output::Notice(Notice {
            kind,
            region,
            host,
            at: now,
            text,
        }));
    }

    /// Update counters for a phase change (no output).
    fn set_phase(&mut self, h: HostIx, to: Phase, now: i64, failed_out: bool) {
        let hi = h as usize;
        let (from, was_out) = {
            let hr = &self.hosts[hi];
            (hr.phase, counts_out(hr.phase, hr.failed_out))
        };
        let now_out = counts_out(to, failed_out);
        let host = &self.fleet.hosts[hi];
        let zone = self.host_zone[hi];
        if was_out != now_out {
            let d: i32 = if now_out { 1 } else { -1 };
            for &c in &host.clusters {
                let ci = c as usize;
                self.cluster_out[ci] = (self.cluster_out[ci] as i64 + d as i64) as u32;
                zone_count_add(&mut self.cluster_zone_out[ci], zone, d);
            }
        }
        if holds_slot(from) != holds_slot(to) {
            let d: i64 = if holds_slot(to) { 1 } else { -1 };
            let r = host.region as usize;
            self.region_active[r] = (self.region_active[r] as i64 + d) as u32;
            self.global_active = (self.global_active as i64 + d) as u32;
        }
        if from.is_active() != to.is_active() {
            self.working = (self.working as i64 + if to.is_active() { 1 } else { -1 }) as u32;
        }
        if (from == Phase::Missing) != (to == Phase::Missing) {
            let d: i64 = if to == Phase::Missing { 1 } else { -1 };
            for &c in &host.clusters {
                let b = &mut self.cluster_missing[c as usize];
                *b = (*b as i64 + d).max(0) as u32;
            }
        }
        let settling = |p: Phase| matches!(p, Phase::Verifying | Phase::Restoring);
        if settling(from) != settling(to) {
            let d: i64 = if settling(to) { 1 } else { -1 };
            for &c in &host.clusters {
                let b = &mut self.cluster_settling[c as usize];
                *b = (*b as i64 + d).max(0) as u32;
            }
        }
        if from.is_final() != to.is_final() && from != Phase::Skipped && to != Phase::Skipped {
            let d: i64 = if to.is_final() { -1 } else { 1 };
            let r = host.region as usize;
            self.region_unfinished[r] = (self.region_unfinished[r] as i64 + d) as u32;
            self.unfinished = (self.unfinished as i64 + d) as u32;
        }
        if (from == Phase::Missing) != (to == Phase::Missing) {
            let d: i64 = if to == Phase::Missing { 1 } else { -1 };
            self.missing_total = (self.missing_total as i64 + d) as u32;
        }
        let hr = &mut self.hosts[hi];
        hr.phase = to;
        hr.since = now;
        hr.failed_out = to == Phase::Failed && failed_out;
        hr.inflight = false;
        hr.next_check = now;
        hr.gates_pending = 0;
        hr.gates_bad = false;
        if to == Phase::Restoring {
            hr.undrained = false;
        }
        self.rewatch(h);
    }

    /// Hosts with work left are watched: active, missing, or holding a drain's change.
    fn rewatch(&mut self, h: HostIx) {
        let hr = &self.hosts[h as usize];
        if hr.phase.is_active() || hr.phase == Phase::Missing || !hr.holds.is_empty() {
            self.watched.insert(h);
        } else {
            self.watched.remove(&h);
        }
    }

    /// Record what a drain of `h` holds (journalled) or, with `None`, that it was put back.
    fn set_holds(&mut self, h: HostIx, now: i64, holds: Option<Vec<Hold>>) {
        let hr = &mut self.hosts[h as usize];
        let was = !hr.holds.is_empty();
        match holds {
            Some(holds) => {
                hr.holds = holds.clone();
                self.out.push_back(Output::Held {
                    at: now,
                    host: h,
                    holds,
                });
            }
            None if was => {
                hr.holds.clear();
                hr.release_warned = false;
                self.out.push_back(Output::Released { at: now, host: h });
            }
            None => {}
        }
        let is = !self.hosts[h as usize].holds.is_empty();
        self.held = (self.held as i64 + is as i64 - was as i64) as u32;
        self.rewatch(h);
    }

    /// Let `hosts` go last among the members of their clusters: each starts only when no
    /// other member is still waiting to start. Replaces what was said before.
    pub fn prefer_last(&mut self, hosts: &[HostIx]) {
        self.last = hosts
            .iter()
            .copied()
            .filter(|&h| (h as usize) < self.hosts.len())
            .collect();
    }

    /// `h` goes last and another member of its clusters has not started yet.
    fn waits_for_others(&self, h: HostIx) -> bool {
        self.last.contains(&h)
            && self.fleet.hosts[h as usize].clusters.iter().any(|&c| {
                self.fleet.clusters[c as usize].members.iter().any(|&m| {
                    m != h
                        && matches!(
                            self.hosts[m as usize].phase,
                            Phase::Pending | Phase::Announced
                        )
                })
            })
    }

    /// Every drain change not yet put back, by host (for a driver taking over a run).
    pub fn holds(&self) -> Vec<(HostIx, Hold)> {
        self.hosts
            .iter()
            .enumerate()
            .flat_map(|(h, hr)| hr.holds.iter().map(move |x| (h as HostIx, x.clone())))
            .collect()
    }

    fn transition(
        &mut self,
        h: HostIx,
        to: Phase,
        now: i64,
        failed_out: bool,
        note: Option<String>,
    ) {
        let from = self.hosts[h as usize].phase;
        self.set_phase(h, to, now, failed_out);
        let hr = &mut self.hosts[h as usize];
        hr.note = note.clone();
        let boot_id = if to == Phase::Draining {
            hr.boot_id.clone()
        } else {
            None
        };
        self.out.push_back(Output::Transition(Transition {
            host: h,
            from,
            to,
            at: now,
            boot_id,
            out: to == Phase::Failed && failed_out,
            note,
        }));
        // a region's completion notice goes out at the very moment its last host is done
        if to.is_final() {
            self.finish_regions(now);
        }
    }

    fn escalate(&mut self, h: HostIx, now: i64, why: String) {
        let region = self.fleet.hosts[h as usize].region;
        let text = format!(
            "{}: {}; an operator must look",
            self.fleet.hosts[h as usize].id, why
        );
        self.transition(h, Phase::Failed, now, true, Some(why));
        self.notice(now, NoticeKind::Escalation, region, Some(h), text);
        self.pause_for_escalation(now);
    }

    /// An escalation pause overrides running and automatic (missing) pauses; only an
    /// operator's resume lifts it.
    fn pause_for_escalation(&mut self, now: i64) {
        if matches!(
            self.state,
            RunState::Running
                | RunState::Paused {
                    reason: PauseReason::Missing
                }
        ) {
            self.emit_state(
                now,
                RunState::Paused {
                    reason: PauseReason::Escalation,
                },
            );
        }
    }

    /// Feed one event that happened at `now`.
    pub fn handle(&mut self, now: i64, ev: Event) {
        if let Event::Control { control } = ev {
            self.control(now, control);
            return;
        }
        if let Event::Announced { region, result } = ev {
            let Some(r) = self.regions.get_mut(region as usize) else {
                return;
            };
            r.announcing = false;
            if result.is_ok() && r.announced_at.is_none() {
                // The clock has whole seconds and the delivery finished at an instant in
                // [now, now + 1): count the announcement from now + 1, so the lead after
                // the last subscriber was told is never short by a fraction of a second.
                // A failed delivery leaves the region unannounced: it is asked again and
                // its start moves later; no host of it starts before announced_at + lead.
                let now = now + 1;
                r.announced_at = Some(now);
                let name = self.fleet.region_name(region).to_string();
                let lead = self.fleet.maintenance.notice_lead;
                self.notice(
                    now,
                    NoticeKind::Scheduled,
                    region,
                    None,
                    format!(
                        "maintenance {} in {name}: {} begin no earlier than {}",
                        self.fleet.maintenance.name,
                        self.fleet.maintenance.action.plural(),
                        fmt_time(now + lead)
                    ),
                );
            }
            return;
        }
        let h = match &ev {
            Event::Preflight { host, .. }
            | Event::Drained { host, .. }
            | Event::RebootSent { host, .. }
            | Event::Probed { host, .. }
            | Event::Verified { host, .. }
            | Event::Restored { host, .. }
            | Event::Gate { host, .. }
            | Event::Replaced { host, .. } => *host,
            Event::Announced { .. } | Event::Control { .. } => return,
        };
        if h as usize >= self.hosts.len() {
            return;
        }
        // whatever phase the host is in by now: a change a drain made is recorded
        if let Event::Drained { holds, .. } = &ev
            && !holds.is_empty()
        {
            self.set_holds(h, now, Some(holds.clone()));
        }
        let phase = self.hosts[h as usize].phase;
        match (phase, ev) {
            (Phase::Preflight, Event::Preflight { result, .. }) => match result {
                Ok(boot) if !boot.trim().is_empty() => {
                    self.hosts[h as usize].boot_id = Some(boot);
                    self.transition(h, Phase::Draining, now, false, None);
                }
                Ok(_) => self.transition(
                    h,
                    Phase::Failed,
                    now,
                    false,
                    Some("preflight: empty boot id".into()),
                ),
                // untouched: the host is skipped, the run goes on
                Err(why) => self.transition(
                    h,
                    Phase::Failed,
                    now,
                    false,
                    Some(format!("preflight: {why}")),
                ),
            },
            (Phase::Draining, Event::Drained { result, .. }) => match result {
                Ok(()) => self.transition(h, Phase::Rebooting, now, false, None),
                Err(why) => self.escalate(h, now, format!("drain failed: {why}")),
            },
            (Phase::Rebooting, Event::RebootSent { result, .. }) => {
                let note = result
                    .err()
                    .map(|w| format!("reboot not acknowledged: {w}; watching the boot id"));
                self.transition(h, Phase::Returning, now, false, note);
                self.hosts[h as usize].reboot_at = now;
            }
            (Phase::Returning | Phase::Missing, Event::Probed { boot_id, .. }) => {
                let hr = &mut self.hosts[h as usize];
                hr.inflight = false;
                hr.fresh = false;
                let unacked = std::mem::take(&mut hr.unacked);
                let interval = if phase == Phase::Missing {
                    self.cfg.missing_probe_interval
                } else {
                    self.cfg.probe_interval
                };
                hr.next_check = now + interval;
                match boot_id {
                    Some(b) if Some(&b) != hr.boot_id.as_ref() => {
                        hr.same_boot_seen = false;
                        if phase == Phase::Missing {
                            let region = self.fleet.hosts[h as usize].region;
                            let text = format!("{} is back", self.fleet.hosts[h as usize].id);
                            self.notice(now, NoticeKind::HostReturned, region, Some(h), text);
                        }
                        self.transition(
                            h,
                            Phase::Verifying,
                            now,
                            false,
                            Some(format!("new boot id {b}")),
                        );
                    }
                    Some(_) => {
                        hr.same_boot_seen = true;
                        if unacked && phase == Phase::Returning {
                            self.resend_unacked(h, now);
                        }
                    }
                    None => hr.same_boot_seen = false,
                }
            }
            (Phase::Verifying, Event::Verified { result, .. }) => {
                let hr = &mut self.hosts[h as usize];
                hr.inflight = false;
                match result {
                    Ok(()) => self.transition(h, Phase::Restoring, now, false, None),
                    Err(why) => {
                        hr.next_check = now + self.cfg.gate_interval;
                        hr.note = Some(why);
                    }
                }
            }
            (Phase::Restoring, Event::Restored { result, .. }) => {
                let hr = &mut self.hosts[h as usize];
                hr.inflight = false;
                match result {
                    Ok(()) => {
                        hr.undrained = true;
                        hr.next_check = now;
                        self.set_holds(h, now, None);
                    }
                    Err(why) => {
                        hr.next_check = now + self.cfg.gate_interval;
                        hr.note = Some(format!("restore: {why}"));
                    }
                }
            }
            (
                Phase::Restoring,
                Event::Gate {
                    healthy, detail, ..
                },
            ) => {
                let hr = &mut self.hosts[h as usize];
                if hr.gates_pending == 0 {
                    return;
                }
                hr.gates_pending -= 1;
                if !healthy {
                    hr.gates_bad = true;
                    hr.note = Some(detail);
                }
                if hr.gates_pending == 0 {
                    hr.inflight = false;
                    if hr.gates_bad {
                        hr.gates_bad = false;
                        hr.next_check = now + self.cfg.gate_interval;
                    } else {
                        let to = if hr.replaced {
                            Phase::Replaced
                        } else {
                            Phase::Healthy
                        };
                        self.transition(h, to, now, false, None);
                    }
                }
            }
            (Phase::Missing, Event::Replaced { result, .. }) => {
                let hr = &mut self.hosts[h as usize];
                hr.inflight = false;
                match result {
                    Ok(()) => {
                        let region = self.fleet.hosts[h as usize].region;
                        let text = format!("{} was replaced", self.fleet.hosts[h as usize].id);
                        self.notice(now, NoticeKind::HostReplaced, region, Some(h), text);
                        self.transition(
                            h,
                            Phase::Restoring,
                            now,
                            false,
                            Some("replacement joined".into()),
                        );
                        let hr = &mut self.hosts[h as usize];
                        hr.replaced = true;
                        hr.undrained = true;
                    }
                    Err(why) => {
                        hr.note = Some(format!("replace failed: {why}"));
                        let region = self.fleet.hosts[h as usize].region;
                        let text = format!(
                            "{}: replacement failed: {why}",
                            self.fleet.hosts[h as usize].id
                        );
                        self.notice(now, NoticeKind::Escalation, region, Some(h), text);
                        self.pause_for_escalation(now);
                    }
                }
            }
            (Phase::Missing | Phase::Failed, Event::Restored { result, .. }) => {
                self.released(h, now, result)
            }
            // stale or unexpected: a late answer for a phase the host has left
            (_, Event::Gate { .. }) | (_, Event::Probed { .. }) => {}
            (_, _) => {
                self.hosts[h as usize].inflight = false;
            }
        }
    }

    fn control(&mut self, now: i64, c: Control) {
        match (c, self.state) {
            (_, s) if s.is_over() => {}
            (Control::Pause, RunState::Running) => self.emit_state(
                now,
                RunState::Paused {
                    reason: PauseReason::Operator,
                },
            ),
            (Control::Resume, RunState::Paused { .. }) => self.emit_state(now, RunState::Running),
            (Control::Abort, _) => self.emit_state(now, RunState::Aborting),
            _ => {}
        }
    }

    /// Interrupted (Ctrl-C): stop starting hosts; the caller lets in-flight work settle.
    pub fn interrupt(&mut self, now: i64) {
        if matches!(self.state, RunState::Running) {
            self.emit_state(
                now,
                RunState::Paused {
                    reason: PauseReason::Interrupted,
                },
            );
        }
    }

    /// Advance to `now`: announcements, timeouts, probes, gates, new starts.
    pub fn step(&mut self, now: i64) {
        if self.state.is_over() {
            return;
        }
        let m_start = self.fleet.maintenance.start;
        // announcements: every region with hosts, as soon as the maintenance starts
        if now >= m_start && !matches!(self.state, RunState::Aborting) {
            for i in 0..self.region_order.len() {
                let r = self.region_order[i];
                let rr = &self.regions[r as usize];
                if rr.announced_at.is_none()
                    && !rr.announcing
                    && !self.region_hosts[r as usize].is_empty()
                {
                    self.regions[r as usize].announcing = true;
                    self.command(now, Command::Announce { region: r });
                }
            }
        }
        // announced hosts
        for r in 0..self.regions.len() {
            if self.regions[r].announced_at.is_some() && !self.region_all_announced[r] {
                self.region_all_announced[r] = true;
                for i in self.region_cursor[r]..self.region_hosts[r].len() {
                    let h = self.region_hosts[r][i];
                    if self.hosts[h as usize].phase == Phase::Pending {
                        self.transition(h, Phase::Announced, now, false, None);
                    }
                }
            }
        }
        // watched hosts: timeouts and periodic work
        let watched: Vec<HostIx> = self.watched.iter().copied().collect();
        for h in watched {
            self.step_host(h, now);
        }
        // auto-pause lifts when nothing is missing any more
        if let RunState::Paused {
            reason: PauseReason::Missing,
        } = self.state
            && self.missing_total == 0
        {
            self.emit_state(now, RunState::Running);
        }
        if self.fleet.maintenance.region_mode == RegionMode::Serial {
            self.advance_serial();
        }
        if matches!(self.state, RunState::Running) {
            self.start_hosts(now);
            self.detect_stall(now);
        }
        self.finish_regions(now);
        self.finish_run(now);
    }

    /// A restored host whose journalled reboot was never acknowledged answers on its old
    /// boot id: the reboot never reached it (one that did would have taken it down), so
    /// it is sent again now, within the attempt limit.
    fn resend_unacked(&mut self, h: HostIx, now: i64) {
        let hr = &self.hosts[h as usize];
        if hr.attempt >= self.cfg.max_reboot_attempts {
            return;
        }
        let note = format!(
            "restored: the journalled reboot never took (still on boot id {}); sending it again",
            hr.boot_id.clone().unwrap_or_default()
        );
        self.transition(h, Phase::Rebooting, now, false, Some(note));
        self.hosts[h as usize].same_boot_seen = false;
    }

    fn step_host(&mut self, h: HostIx, now: i64) {
        let hr = &mut self.hosts[h as usize];
        if hr.fresh {
            match hr.phase {
                // look at the host before judging how long it has been away
                Phase::Returning if hr.inflight => return,
                Phase::Returning => {
                    self.command(now, Command::Probe { host: h });
                    return;
                }
                // waits restart from now: nobody was watching while we were down
                _ => {
                    hr.since = hr.since.max(now);
                    hr.fresh = false;
                }
            }
        }
        let hr = &self.hosts[h as usize];
        let (phase, since, inflight) = (hr.phase, hr.since, hr.inflight);
        if !hr.holds.is_empty() && matches!(phase, Phase::Missing | Phase::Failed) {
            // it will not come back through `restoring` (not soon, or not at all): put
            // back what its drain holds now, before anything else
            if !inflight && now >= hr.next_check {
                self.command(now, Command::Release { host: h });
            }
            return;
        }
        let ct = self.cfg.command_timeout;
        match phase {
            Phase::Preflight => {
                if now >= since + ct {
                    self.transition(
                        h,
                        Phase::Failed,
                        now,
                        false,
                        Some("preflight timed out".into()),
                    );
                } else if !inflight {
                    let with = self.out_with(h);
                    self.command(now, Command::Preflight { host: h, with });
                }
            }
            Phase::Draining => {
                if now >= since + hr.gate_timeout {
                    self.escalate(h, now, "drain timed out".into());
                } else if !inflight {
                    self.command(now, Command::Drain { host: h });
                }
            }
            Phase::Rebooting => {
                if now >= since + ct {
                    self.transition(
                        h,
                        Phase::Returning,
                        now,
                        false,
                        Some("reboot not acknowledged in time; watching the boot id".into()),
                    );
                    self.hosts[h as usize].reboot_at = now;
                } else if !inflight {
                    let hr = &mut self.hosts[h as usize];
                    hr.attempt += 1;
                    let cmd = Command::Reboot {
                        host: h,
                        boot_id: hr.boot_id.clone().unwrap_or_default(),
                        attempt: hr.attempt,
                    };
                    self.command(now, cmd);
                }
            }
            Phase::Returning => {
                let hr = &self.hosts[h as usize];
                if now >= hr.reboot_at + hr.return_timeout {
                    if hr.same_boot_seen {
                        self.escalate(
                            h,
                            now,
                            "the host never rebooted (same boot id, still reachable)".into(),
                        );
                    } else {
                        self.go_missing(h, now);
                    }
                } else if hr.same_boot_seen
                    && !inflight
                    && now >= hr.reboot_at + self.cfg.reboot_grace
                    && hr.attempt < self.cfg.max_reboot_attempts
                {
                    // provably not rebooted: reachable with the old boot id long after the intent
                    let note = format!(
                        "still on boot id {} after {}; sending the reboot again",
                        hr.boot_id.clone().unwrap_or_default(),
                        fmt_duration(now - hr.reboot_at)
                    );
                    self.transition(h, Phase::Rebooting, now, false, Some(note));
                    self.hosts[h as usize].same_boot_seen = false;
                } else if !inflight && now >= hr.next_check {
                    self.command(now, Command::Probe { host: h });
                }
            }
            Phase::Missing => {
                let hr = &self.hosts[h as usize];
                if !inflight && now >= hr.next_check {
                    if self.fleet.maintenance.on_missing == OnMissing::Replace && !hr.replaced {
                        self.hosts[h as usize].replaced = true;
                        self.command(now, Command::Replace { host: h });
                    } else {
                        self.command(now, Command::Probe { host: h });
                    }
                }
            }
            Phase::Verifying => {
                if now >= since + hr.gate_timeout {
                    self.escalate(h, now, "services did not verify in time".into());
                } else if !inflight && now >= hr.next_check {
                    self.command(now, Command::Verify { host: h });
                }
            }
            Phase::Restoring => {
                let member_missing = self.fleet.hosts[h as usize]
                    .clusters
                    .iter()
                    .any(|&c| self.cluster_missing[c as usize] > 0);
                if member_missing {
                    // the cluster cannot be healthy while a member is missing: the clock
                    // starts again when it is back (or replaced)
                    self.hosts[h as usize].since = now;
                }
                let hr = &self.hosts[h as usize];
                if now >= hr.since + hr.gate_timeout {
                    let why = hr
                        .note
                        .clone()
                        .unwrap_or_else(|| "cluster not healthy".into());
                    self.escalate(h, now, format!("cluster not healthy in time: {why}"));
                } else if !inflight && now >= hr.next_check {
                    if !hr.undrained {
                        self.command(now, Command::Restore { host: h });
                    } else {
                        let clusters = self.fleet.hosts[h as usize].clusters.clone();
                        if clusters.is_empty() {
                            let to = if hr.replaced {
                                Phase::Replaced
                            } else {
                                Phase::Healthy
                            };
                            self.transition(h, to, now, false, None);
                        } else {
                            self.hosts[h as usize].gates_pending = clusters.len() as u32;
                            self.hosts[h as usize].gates_bad = false;
                            for c in clusters {
                                self.command(
                                    now,
                                    Command::Gate {
                                        host: h,
                                        cluster: c,
                                    },
                                );
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The answer to a [`Command::Release`]: put back, or said loudly (once) and retried.
    fn released(&mut self, h: HostIx, now: i64, result: Outcome) {
        let hr = &mut self.hosts[h as usize];
        hr.inflight = false;
        match result {
            Ok(()) => {
                hr.next_check = now;
                self.set_holds(h, now, None);
            }
            Err(why) => {
                hr.next_check = now + self.cfg.gate_interval;
                let first = !std::mem::replace(&mut hr.release_warned, true);
                let host = &self.fleet.hosts[h as usize];
                let clusters: Vec<&str> = hr
                    .holds
                    .iter()
                    .map(|x| self.fleet.clusters[x.cluster as usize].id.as_str())
                    .collect();
                let text = format!(
                    "{}: what its drain changed in {} could not be put back: {why}; retrying every {}",
                    host.id,
                    clusters.join(", "),
                    fmt_duration(self.cfg.gate_interval)
                );
                hr.note = Some(text.clone());
                if first {
                    self.notice(now, NoticeKind::Escalation, host.region, Some(h), text);
                }
            }
        }
    }

    fn go_missing(&mut self, h: HostIx, now: i64) {
        let host = &self.fleet.hosts[h as usize];
        let region = host.region;
        let policy = self.fleet.maintenance.on_missing;
        let text = format!(
            "{} did not come back within {} of its reboot; on_missing = {}",
            host.id,
            fmt_duration(self.hosts[h as usize].return_timeout),
            match policy {
                OnMissing::Pause =>
                    "pause: no new work starts until it returns or an operator resumes",
                OnMissing::Replace => "replace: a replacement is being made",
                OnMissing::Continue => "continue: its clusters wait, the rest goes on",
            }
        );
        self.transition(h, Phase::Missing, now, false, None);
        self.hosts[h as usize].next_check = now;
        self.notice(now, NoticeKind::HostMissing, region, Some(h), text);
        if policy == OnMissing::Pause && matches!(self.state, RunState::Running) {
            self.emit_state(
                now,
                RunState::Paused {
                    reason: PauseReason::Missing,
                },
            );
        }
    }

    /// The regions that may start hosts now.
    fn open_regions(&self) -> Vec<RegionIx> {
        match self.fleet.maintenance.region_mode {
            RegionMode::Parallel => self.region_order.clone(),
            RegionMode::Serial => {
                if let Some(&r) = self.region_order.get(self.serial_pos) {
                    return vec![r];
                }
                // every region had its turn: hosts that were held back (by a missing
                // member under `continue`) are done now, one region at a time
                // at work and not merely held by a missing member
                let working = |h: HostIx| {
                    self.hosts[h as usize].phase.is_active() && !self.region_may_move_on(h)
                };
                let waiting = |h: HostIx| {
                    matches!(
                        self.hosts[h as usize].phase,
                        Phase::Pending | Phase::Announced
                    ) && !self.region_may_move_on(h)
                };
                for pick in [&working as &dyn Fn(HostIx) -> bool, &waiting] {
                    for &r in &self.region_order {
                        if self.region_hosts[r as usize].iter().any(|&h| pick(h)) {
                            return vec![r];
                        }
                    }
                }
                Vec::new()
            }
        }
    }

    /// Serial mode: move to the next region once this one may hand over.
    fn advance_serial(&mut self) {
        while let Some(&r) = self.region_order.get(self.serial_pos) {
            let ri = r as usize;
            // without missing hosts a region hands over exactly when all its hosts are final
            let done = if self.missing_total == 0 {
                self.region_unfinished[ri] == 0
            } else {
                self.region_hosts[ri]
                    .iter()
                    .all(|&h| self.region_may_move_on(h))
            };
            if done {
                self.serial_pos += 1;
            } else {
                break;
            }
        }
    }

    /// A serialized region may hand over to the next when each of its hosts is done,
    /// missing, or held by a missing member of its cluster (back and waiting for the
    /// cluster, or not started under `continue`).
    fn region_may_move_on(&self, h: HostIx) -> bool {
        let p = self.hosts[h as usize].phase;
        let held = || {
            self.fleet.hosts[h as usize]
                .clusters
                .iter()
                .any(|&c| self.cluster_missing[c as usize] > 0)
        };
        // under `pause` a missing host holds the region until it returns or an
        // operator resumes the run
        let missing_ok = self.fleet.maintenance.on_missing != OnMissing::Pause
            || matches!(self.state, RunState::Running);
        p.is_final()
            || (p == Phase::Missing && missing_ok)
            || (p == Phase::Restoring && held())
            || (matches!(p, Phase::Pending | Phase::Announced)
                && self.fleet.maintenance.on_missing == OnMissing::Continue
                && held())
    }

    /// Start what may start now; their preflights go out once every host starting at
    /// this instant is known (each names the others of its clusters).
    fn start_hosts(&mut self, now: i64) {
        let mut started = Vec::new();
        self.pick_hosts(now, &mut started);
        for h in started {
            self.step_host(h, now);
        }
    }

    /// The other members of `h`'s clusters that count as out now (active, missing,
    /// failed and out).
    fn out_with(&self, h: HostIx) -> Vec<HostIx> {
        let mut with: Vec<HostIx> = self.fleet.hosts[h as usize]
            .clusters
            .iter()
            .flat_map(|&c| self.fleet.clusters[c as usize].members.iter().copied())
            .filter(|&m| m != h)
            .filter(|&m| {
                let r = &self.hosts[m as usize];
                counts_out(r.phase, r.failed_out)
            })
            .collect();
        with.sort_unstable();
        with.dedup();
        with
    }

    fn pick_hosts(&mut self, now: i64, started: &mut Vec<HostIx>) {
        let m = &self.fleet.maintenance;
        let (gmax, rmax) = (
            m.max_concurrent.unwrap_or(u32::MAX),
            m.max_concurrent_per_region.unwrap_or(u32::MAX),
        );
        let lead = m.notice_lead;
        if now < m.start + lead {
            return;
        }
        for r in self.open_regions() {
            let ri = r as usize;
            let Some(at) = self.regions[ri].announced_at else {
                continue;
            };
            if now < at + lead {
                continue;
            }
            let windows = self.fleet.maintenance.windows[ri].clone();
            // advance the cursor past hosts that have started
            while self.region_cursor[ri] < self.region_hosts[ri].len()
                && !matches!(
                    self.hosts[self.region_hosts[ri][self.region_cursor[ri]] as usize].phase,
                    Phase::Pending | Phase::Announced
                )
            {
                self.region_cursor[ri] += 1;
            }
            let mut i = self.region_cursor[ri];
            while i < self.region_hosts[ri].len() {
                if self.global_active >= gmax || self.region_active[ri] >= rmax {
                    return;
                }
                let h = self.region_hosts[ri][i];
                i += 1;
                if self.hosts[h as usize].phase != Phase::Announced
                    || !self.fits(h)
                    || self.waits_for_others(h)
                {
                    continue;
                }
                let d = self.fleet.hosts[h as usize].duration;
                if earliest_fit(windows.as_deref(), now, d) != Some(now) {
                    continue;
                }
                if !self.regions[ri].started {
                    self.regions[ri].started = true;
                    let text = format!(
                        "maintenance {} started in {}",
                        self.fleet.maintenance.name,
                        self.fleet.region_name(r)
                    );
                    self.notice(now, NoticeKind::Started, r, None, text);
                }
                self.hosts[h as usize].attempt = 0;
                self.transition(h, Phase::Preflight, now, false, None);
                started.push(h);
            }
        }
    }

    /// Running, nothing in flight, and every host left is held by a budget that only an
    /// operator can free (failed hosts count as out): say so instead of waiting forever.
    fn detect_stall(&mut self, now: i64) {
        if self.global_active > 0 || self.missing_total > 0 {
            return;
        }
        let open = self.open_regions();
        let mut left = 0;
        for &r in &open {
            for &h in &self.region_hosts[r as usize][self.region_cursor[r as usize]..] {
                if matches!(
                    self.hosts[h as usize].phase,
                    Phase::Pending | Phase::Announced
                ) {
                    if self.fits(h) {
                        return;
                    }
                    left += 1;
                }
            }
        }
        if left > 0 {
            let region = open[0];
            let text = format!(
                "{left} host(s) in {} cannot start: their clusters' budgets are held by failed hosts",
                self.fleet.region_name(region)
            );
            self.notice(now, NoticeKind::Escalation, region, None, text);
            self.pause_for_escalation(now);
        }
    }

    /// Whether taking `h` out now keeps every cluster of it within its limits.
    fn fits(&self, h: HostIx) -> bool {
        let zone = self.host_zone[h as usize];
        self.fleet.hosts[h as usize].clusters.iter().all(|&c| {
            let ci = c as usize;
            let lim = &self.limits[ci];
            if self.cluster_out[ci] >= lim.nodes {
                return false;
            }
            // a cluster with a missing member starts nothing new under `continue`
            // (under `pause` the whole run waits; the member counts as out anyway)
            if self.cluster_missing[ci] > 0
                && self.fleet.maintenance.on_missing == OnMissing::Continue
            {
                return false;
            }
            // members that are back wait for the cluster to be healthy before the
            // next one goes: hosts that go together form a wave, waves do not overlap
            if self.cluster_settling[ci] > 0 {
                return false;
            }
            if let Some(z) = lim.zones
                && !zone_allows(&self.cluster_zone_out[ci], zone, z)
            {
                return false;
            }
            true
        })
    }

    fn finish_regions(&mut self, now: i64) {
        for i in 0..self.region_order.len() {
            let r = self.region_order[i];
            let ri = r as usize;
            if self.regions[ri].completed || !self.regions[ri].started {
                continue;
            }
            let list = &self.region_hosts[ri];
            if self.region_unfinished[ri] == 0 {
                let (mut ok, mut failed, mut replaced) = (0, 0, 0);
                for &h in list {
                    match self.hosts[h as usize].phase {
                        Phase::Healthy => ok += 1,
                        Phase::Failed => failed += 1,
                        Phase::Replaced => replaced += 1,
                        _ => {}
                    }
                }
                self.regions[ri].completed = true;
                let text = format!(
                    "maintenance {} completed in {}: {ok} healthy, {replaced} replaced, {failed} failed",
                    self.fleet.maintenance.name,
                    self.fleet.region_name(r)
                );
                self.notice(now, NoticeKind::Completed, r, None, text);
            }
        }
    }

    fn finish_run(&mut self, now: i64) {
        match self.state {
            // never over while a drain's change is still held
            _ if self.held > 0 => {}
            RunState::Aborting if self.working == 0 => self.emit_state(now, RunState::Aborted),
            RunState::Running if self.unfinished == 0 => self.emit_state(now, RunState::Completed),
            _ => {}
        }
    }

    /// The next time the engine wants [`Engine::step`] called without an event.
    pub fn next_wakeup(&self, now: i64) -> Option<i64> {
        if self.state.is_over() {
            return None;
        }
        let mut best: Option<i64> = None;
        // strictly after `now`: whatever was due at `now` was handled by `step(now)`
        let mut consider = |t: i64| {
            let t = t.max(now + 1);
            best = Some(best.map_or(t, |b: i64| b.min(t)));
        };
        let m = &self.fleet.maintenance;
        if now < m.start {
            consider(m.start);
        }
        for &h in &self.watched {
            let hr = &self.hosts[h as usize];
            let timeout = match hr.phase {
                Phase::Preflight | Phase::Rebooting => hr.since + self.cfg.command_timeout,
                Phase::Returning => (hr.reboot_at + hr.return_timeout).min(if hr.same_boot_seen {
                    hr.reboot_at + self.cfg.reboot_grace
                } else {
                    i64::MAX
                }),
                Phase::Draining | Phase::Verifying | Phase::Restoring => hr.since + hr.gate_timeout,
                _ => i64::MAX,
            };
            if timeout < i64::MAX {
                consider(timeout);
            }
            if !hr.inflight {
                consider(hr.next_check);
            }
        }
        if matches!(self.state, RunState::Running) {
            for &r in &self.region_order {
                let ri = r as usize;
                if let Some(at) = self.regions[ri].announced_at
                    && self.region_cursor[ri] < self.region_hosts[ri].len()
                {
                    let open = (at + m.notice_lead).max(m.start + m.notice_lead);
                    if open > now {
                        consider(open);
                    } else if let Some(w) = &m.windows[ri] {
                        // the next window opening, if closed now
                        if let Some(iv) = w.iter().find(|iv| iv.end > now) {
                            consider(iv.start.max(now + 1));
                        }
                    }
                }
            }
        }
        best
    }

    pub fn progress(&self) -> Progress {
        let mut counts: HashMap<Phase, usize> = HashMap::new();
        for h in &self.hosts {
            *counts.entry(h.phase).or_default() += 1;
        }
        let phases = Phase::ALL
            .iter()
            .filter_map(|p| counts.get(p).map(|&n| (*p, n)))
            .collect();
        let regions = self
            .region_order
            .iter()
            .map(|&r| {
                let list = &self.region_hosts[r as usize];
                let count = |f: &dyn Fn(Phase) -> bool| {
                    list.iter()
                        .filter(|&&h| f(self.hosts[h as usize].phase))
                        .count()
                };
                RegionProgress {
                    region: r,
                    hosts: list.len(),
                    done: count(&|p| p.is_final()),
                    active: count(&|p| p.is_active()),
                    missing: count(&|p| p == Phase::Missing),
                    failed: count(&|p| p == Phase::Failed),
                    announced_at: self.regions[r as usize].announced_at,
                    started: self.regions[r as usize].started,
                    completed: self.regions[r as usize].completed,
                }
            })
            .collect();
        let total: usize = self.region_hosts.iter().map(|l| l.len()).sum();
        let done = self
            .region_hosts
            .iter()
            .flatten()
            .filter(|&&h| self.hosts[h as usize].phase.is_final())
            .count();
        Progress {
            state: self.state,
            phases,
            regions,
            total,
            done,
        }
    }

    /// Whether the host counts against its clusters' budgets now (at work, missing, or
    /// failed after it was disrupted).
    pub fn is_out(&self, h: HostIx) -> bool {
        let hr = &self.hosts[h as usize];
        counts_out(hr.phase, hr.failed_out)
    }

    /// Note shown for a host (last failure reason, etc.).
    pub fn note(&self, h: HostIx) -> Option<&str> {
        self.hosts[h as usize].note.as_deref()
    }
}
