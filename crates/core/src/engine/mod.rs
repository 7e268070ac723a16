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
mod counts;
mod events;
mod host;
mod restore;
mod risk;
mod schedule;
mod watch;
mod wire;

pub use check::check_journal;
pub use host::{counts_out, holds_slot};
pub use wire::{
    Command, Control, Event, Hold, Notice, NoticeKind, Outcome, Output, PauseReason, Phase, Record,
    RunState, Transition, WIRE_VERSION,
};

use crate::budget::{Limit, intern_zones};
use crate::model::*;
use crate::plan::Plan;
use counts::Counts;
use host::{HostRun, Stage};
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
    counts: Counts,
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
    /// Provider windows that collide in a cluster, not yet said: said by the first step.
    risks: Vec<risk::Risk>,
}

impl Engine {
    pub fn new(fleet: Arc<Fleet>, plan: &Plan, cfg: EngineConfig) -> Engine {
        let nregions = fleet.regions.len();
        let mut hosts: Vec<HostRun> = fleet
            .hosts
            .iter()
            .map(|h| HostRun::new(&fleet, h))
            .collect();
        let mut region_hosts = vec![Vec::new(); nregions];
        for s in &plan.steps {
            let h = s.host as usize;
            hosts[h].stage = Stage::Pending;
            region_hosts[fleet.hosts[h].region as usize].push(s.host);
        }
        let region_unfinished = region_hosts.iter().map(|l| l.len() as u32).collect();
        Engine {
            limits: plan.limits.clone(),
            region_hosts,
            region_cursor: vec![0; nregions],
            region_order: fleet.maintenance.region_order.clone(),
            serial_pos: 0,
            regions: vec![RegionRun::default(); nregions],
            hosts,
            host_zone: intern_zones(&fleet),
            counts: Counts::new(fleet.clusters.len(), region_unfinished),
            held: 0,
            last: BTreeSet::new(),
            region_all_announced: vec![false; nregions],
            watched: BTreeSet::new(),
            state: RunState::Running,
            out: VecDeque::new(),
            risks: risk::risks(&fleet, plan),
            fleet,
            cfg,
        }
    }

    pub fn state(&self) -> RunState {
        self.state
    }
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }
    pub fn phase(&self, h: HostIx) -> Phase {
        self.hosts[h as usize].phase()
    }
    pub fn cluster_out(&self, c: ClusterIx) -> u32 {
        self.counts.out.out(c as usize)
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

    /// Enter phase `to` at `now` and update the counts (no output).
    fn set_phase(&mut self, h: HostIx, to: Phase, now: i64, failed_out: bool) {
        let hi = h as usize;
        let (from, was_out) = (self.hosts[hi].phase(), self.hosts[hi].counts_out());
        let outs = (was_out, counts_out(to, failed_out));
        let (host, zone) = (&self.fleet.hosts[hi], self.host_zone[hi]);
        self.counts.apply(host, zone, from, to, outs);
        let hr = &mut self.hosts[hi];
        hr.stage = Stage::enter(to, now, failed_out);
        hr.since = now;
        hr.inflight = false;
        hr.next_check = now;
        self.rewatch(h);
    }

    /// Hosts with work left are watched: active, missing, or holding a drain's change.
    fn rewatch(&mut self, h: HostIx) {
        if self.hosts[h as usize].has_work() {
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
        let from = self.hosts[h as usize].phase();
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
        self.say_risks(now);
        self.announce_regions(now);
        self.announce_hosts(now);
        // watched hosts: timeouts and periodic work
        let watched: Vec<HostIx> = self.watched.iter().copied().collect();
        for h in watched {
            self.step_host(h, now);
        }
        // auto-pause lifts when nothing is missing any more
        if let RunState::Paused {
            reason: PauseReason::Missing,
        } = self.state
            && self.counts.missing_total == 0
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
            let (timeout, check) = self.host_wakeup(h);
            timeout.into_iter().chain(check).for_each(&mut consider);
        }
        if matches!(self.state, RunState::Running) {
            for &r in &self.region_order {
                if let Some(t) = self.region_wakeup(r, now) {
                    consider(t);
                }
            }
        }
        best
    }

    /// When a watched host's wait runs out, and when it is next checked (if no command
    /// of it is in flight).
    fn host_wakeup(&self, h: HostIx) -> (Option<i64>, Option<i64>) {
        let hr = &self.hosts[h as usize];
        let timeout = match &hr.stage {
            Stage::Preflight | Stage::Rebooting => Some(hr.since + self.cfg.command_timeout),
            Stage::Returning(r) => {
                Some((r.reboot_at + hr.return_timeout).min(if r.same_boot_seen {
                    r.reboot_at + self.cfg.reboot_grace
                } else {
                    i64::MAX
                }))
            }
            Stage::Draining | Stage::Verifying | Stage::Restoring(_) => {
                Some(hr.since + hr.gate_timeout)
            }
            _ => None,
        };
        let timeout = timeout.filter(|&t| t < i64::MAX);
        (timeout, (!hr.inflight).then_some(hr.next_check))
    }

    /// When region `r` may next start a host: its lead time runs out, or its next
    /// window opens.
    fn region_wakeup(&self, r: RegionIx, now: i64) -> Option<i64> {
        let m = &self.fleet.maintenance;
        let ri = r as usize;
        let at = self.regions[ri].announced_at?;
        if self.region_cursor[ri] >= self.region_hosts[ri].len() {
            return None;
        }
        let open = (at + m.notice_lead).max(m.start + m.notice_lead);
        if open > now {
            return Some(open);
        }
        // the next window opening, if closed now
        let w = m.windows[ri].as_ref()?;
        w.iter()
            .find(|iv| iv.end > now)
            .map(|iv| iv.start.max(now + 1))
    }

    pub fn progress(&self) -> Progress {
        let mut counts: HashMap<Phase, usize> = HashMap::new();
        for h in &self.hosts {
            *counts.entry(h.phase()).or_default() += 1;
        }
        let phases = Phase::ALL
            .iter()
            .filter_map(|p| counts.get(p).map(|&n| (*p, n)))
            .collect();
        let regions = self
            .region_order
            .iter()
            .map(|&r| self.region_progress(r))
            .collect();
        let total: usize = self.region_hosts.iter().map(|l| l.len()).sum();
        let done = self
            .region_hosts
            .iter()
            .flatten()
            .filter(|&&h| self.phase(h).is_final())
            .count();
        Progress {
            state: self.state,
            phases,
            regions,
            total,
            done,
        }
    }

    fn region_progress(&self, r: RegionIx) -> RegionProgress {
        let list = &self.region_hosts[r as usize];
        let count = |f: &dyn Fn(Phase) -> bool| list.iter().filter(|&&h| f(self.phase(h))).count();
        let run = &self.regions[r as usize];
        RegionProgress {
            region: r,
            hosts: list.len(),
            done: count(&|p| p.is_final()),
            active: count(&|p| p.is_active()),
            missing: count(&|p| p == Phase::Missing),
            failed: count(&|p| p == Phase::Failed),
            announced_at: run.announced_at,
            started: run.started,
            completed: run.completed,
        }
    }

    /// Whether the host counts against its clusters' budgets now (at work, missing, or
    /// failed after it was disrupted).
    pub fn is_out(&self, h: HostIx) -> bool {
        self.hosts[h as usize].counts_out()
    }

    /// Note shown for a host (last failure reason, etc.).
    pub fn note(&self, h: HostIx) -> Option<&str> {
        self.hosts[h as usize].note.as_deref()
    }
}
