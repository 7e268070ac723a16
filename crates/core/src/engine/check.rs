//! The journal checker: re-derives the engine's rules from a journal with counts of its
//! own, independent of the engine's (it must catch the engine's mistakes, not repeat them).

use super::host::{counts_out, holds_slot};
use super::wire::*;
use crate::model::{
    Budget, Fleet, Host, HostIx, OnMissing, RegionIx, RegionMode, fmt_time, survivors_fit,
};
use crate::plan::Plan;
use std::collections::{BTreeSet, HashMap};

/// Check the engine's rules over a journal: budgets and survivor load (counting
/// missing and failed-out hosts), concurrency, region order, lead time, transitions
/// that follow the state machine, and completion notices right after a region's last host.
pub fn check_journal(fleet: &Fleet, plan: &Plan, records: &[Record]) -> Vec<String> {
    let mut c = Checker::new(fleet, plan);
    for r in records {
        match r {
            Output::Transition(t) => c.transition(t),
            Output::Notice(n) => c.notice(n),
            _ => {}
        }
    }
    c.finish()
}

/// The state machine's edges.
fn allowed(from: Phase, to: Phase) -> bool {
    use Phase::*;
    matches!(
        (from, to),
        (Pending, Announced)
            | (Announced, Preflight)
            | (Preflight, Draining)
            | (Preflight, Failed)
            | (Draining, Rebooting)
            | (Draining, Failed)
            | (Rebooting, Returning)
            | (Returning, Verifying)
            | (Returning, Missing)
            | (Returning, Failed)
            | (Returning, Rebooting)
            | (Missing, Verifying)
            | (Missing, Restoring)
            | (Verifying, Restoring)
            | (Verifying, Failed)
            | (Restoring, Healthy)
            | (Restoring, Replaced)
            | (Restoring, Failed)
    )
}

/// What the journal says so far, and the rules it broke.
struct Checker<'a> {
    fleet: &'a Fleet,
    v: Vec<String>,
    phase: Vec<Phase>,
    failed_out: Vec<bool>,
    /// Members out per cluster, in all and per zone.
    out: Vec<u32>,
    zones: Vec<HashMap<&'a str, u32>>,
    /// Missing members per cluster.
    missing: Vec<u32>,
    announced: HashMap<RegionIx, i64>,
    region_done_at: HashMap<RegionIx, i64>,
    last_final: HashMap<RegionIx, i64>,
    active_set: BTreeSet<HostIx>,
    /// Hosts that were missing, or held back by a missing cluster member, may finish
    /// late, in another region's turn.
    was_missing: Vec<bool>,
    /// Serial mode: regions in the order their first host started.
    first_start: Vec<RegionIx>,
    active_global: i64,
    active_region: Vec<i64>,
}

impl<'a> Checker<'a> {
    fn new(fleet: &'a Fleet, plan: &Plan) -> Checker<'a> {
        let mut phase = vec![Phase::Skipped; fleet.hosts.len()];
        for s in &plan.steps {
            phase[s.host as usize] = Phase::Pending;
        }
        Checker {
            fleet,
            v: Vec::new(),
            phase,
            failed_out: vec![false; fleet.hosts.len()],
            out: vec![0; fleet.clusters.len()],
            zones: vec![HashMap::new(); fleet.clusters.len()],
            missing: vec![0; fleet.clusters.len()],
            announced: HashMap::new(),
            region_done_at: HashMap::new(),
            last_final: HashMap::new(),
            active_set: BTreeSet::new(),
            was_missing: vec![false; fleet.hosts.len()],
            first_start: Vec::new(),
            active_global: 0,
            active_region: vec![0; fleet.regions.len()],
        }
    }

    fn transition(&mut self, t: &Transition) {
        let h = t.host as usize;
        if h >= self.fleet.hosts.len() {
            self.v
                .push(format!("transition for unknown host index {h}"));
            return;
        }
        let host = &self.fleet.hosts[h];
        let from = self.phase[h];
        if from != t.from || !allowed(t.from, t.to) {
            self.v.push(format!(
                "{}: illegal transition {} → {} (was {})",
                host.id,
                t.from.name(),
                t.to.name(),
                from.name()
            ));
        }
        if t.to == Phase::Preflight {
            self.check_start(host, t.at);
        }
        let was = counts_out(from, self.failed_out[h]);
        let now_out = counts_out(t.to, t.out);
        if holds_slot(from) != holds_slot(t.to) {
            self.count_slot(host, t, if holds_slot(t.to) { 1 } else { -1 });
        }
        self.count_missing(host, t);
        self.failed_out[h] = t.to == Phase::Failed && t.out;
        if was != now_out {
            self.count_out(host, t, now_out);
        }
        if t.to.is_final() {
            self.last_final.insert(host.region, t.at);
        }
    }

    /// A host starts: after the lead time, and in serial mode while no other region is
    /// at work.
    fn check_start(&mut self, host: &Host, at: i64) {
        let m = &self.fleet.maintenance;
        match self.announced.get(&host.region) {
            Some(&a) if at >= a + m.notice_lead => {}
            Some(&a) => self.v.push(format!(
                "{} started at {} before the lead time after the announcement at {}",
                host.id,
                fmt_time(at),
                fmt_time(a)
            )),
            None => self.v.push(format!(
                "{} started before its region was announced",
                host.id
            )),
        }
        // Under `continue`, hosts held back by a missing member are finished
        // late, possibly during another region's turn (documented); budgets
        // and concurrency still hold and are checked below.
        if m.region_mode != RegionMode::Serial || m.on_missing == OnMissing::Continue {
            return;
        }
        if let Some(b) = self.busy_elsewhere(host) {
            let other = &self.fleet.hosts[b as usize];
            self.v.push(format!(
                "{} started while {} in region {} was {}",
                host.id,
                other.id,
                self.fleet.regions[other.region as usize],
                self.phase[b as usize].name()
            ));
        }
        if !self.first_start.contains(&host.region) {
            self.first_start.push(host.region);
        }
    }

    /// A host of another region at work (one back and waiting for a cluster that has a
    /// missing member does not count, nor one that was missing).
    fn busy_elsewhere(&self, host: &Host) -> Option<HostIx> {
        self.active_set.iter().copied().find(|&o| {
            let o = o as usize;
            let p = self.phase[o];
            let held = self.fleet.hosts[o]
                .clusters
                .iter()
                .any(|&c| self.missing[c as usize] > 0);
            self.fleet.hosts[o].region != host.region
                && p.is_active()
                && !(p == Phase::Restoring && held)
                && !self.was_missing[o]
        })
    }

    /// Concurrency: `d` more slots held, in all and in the host's region.
    fn count_slot(&mut self, host: &Host, t: &Transition, d: i64) {
        let m = &self.fleet.maintenance;
        let r = host.region as usize;
        self.active_global += d;
        self.active_region[r] += d;
        if let Some(g) = m.max_concurrent
            && self.active_global > g as i64
        {
            self.v.push(format!(
                "{} hosts active at {} over max_concurrent {g}",
                self.active_global,
                fmt_time(t.at)
            ));
        }
        if let Some(g) = m.max_concurrent_per_region
            && self.active_region[r] > g as i64
        {
            self.v.push(format!(
                "{} hosts active in {} over max_concurrent_per_region {g}",
                self.active_region[r], self.fleet.regions[r]
            ));
        }
    }

    /// Missing members per cluster, hosts at work, and hosts that may finish late; the
    /// host enters `t.to`.
    fn count_missing(&mut self, host: &Host, t: &Transition) {
        let h = t.host as usize;
        if (self.phase[h] == Phase::Missing) != (t.to == Phase::Missing) {
            let d: i64 = if t.to == Phase::Missing { 1 } else { -1 };
            for &c in &host.clusters {
                let n = &mut self.missing[c as usize];
                *n = (*n as i64 + d).max(0) as u32;
            }
        }
        if t.to.is_active() {
            self.active_set.insert(t.host);
        } else {
            self.active_set.remove(&t.host);
        }
        self.phase[h] = t.to;
        self.was_missing[h] |= t.to == Phase::Missing;
        // members held back by a missing host may finish late too
        if t.to == Phase::Missing {
            for &c in &host.clusters {
                for &mbr in &self.fleet.clusters[c as usize].members {
                    self.was_missing[mbr as usize] |= self.phase[mbr as usize] == Phase::Restoring;
                }
            }
        }
        if t.to == Phase::Restoring && host.clusters.iter().any(|&c| self.missing[c as usize] > 0) {
            self.was_missing[h] = true;
        }
    }

    /// The host goes out (`now_out`) or comes back: its clusters' budgets and survivor
    /// load hold.
    fn count_out(&mut self, host: &'a Host, t: &Transition, now_out: bool) {
        let d: i64 = if now_out { 1 } else { -1 };
        for &c in &host.clusters {
            let ci = c as usize;
            self.out[ci] = (self.out[ci] as i64 + d) as u32;
            let z = self.zones[ci].entry(host.zone.as_str()).or_default();
            *z = (*z as i64 + d) as u32;
            if now_out {
                self.check_budget(ci, host, t);
            }
        }
    }

    fn check_budget(&mut self, ci: usize, host: &Host, t: &Transition) {
        let cl = &self.fleet.clusters[ci];
        let n = cl.members.len() as u32;
        let out = self.out[ci];
        let bad_budget = match cl.budget {
            Budget::Nodes(b) => out > b,
            Budget::Zones(z) => self.zones[ci].values().filter(|&&x| x > 0).count() as u32 > z,
        };
        let bad_load = !cl.allow_outage && !survivors_fit(n, out, cl.load, cl.max_load);
        if bad_budget || bad_load {
            self.v.push(format!(
                "{}: {} of {} members out at {} ({} entered {})",
                cl.id,
                out,
                n,
                fmt_time(t.at),
                host.id,
                t.to.name()
            ));
        }
    }

    fn notice(&mut self, n: &Notice) {
        match n.kind {
            NoticeKind::Scheduled => {
                self.announced.entry(n.region).or_insert(n.at);
            }
            NoticeKind::Completed => {
                self.region_done_at.insert(n.region, n.at);
            }
            _ => {}
        }
    }

    /// The rules over the whole journal: region order, completion notices.
    fn finish(mut self) -> Vec<String> {
        self.check_region_order();
        let fleet = self.fleet;
        for (r, done) in self.region_done_at {
            if let Some(&last) = self.last_final.get(&r)
                && done != last
            {
                self.v.push(format!(
                    "region {} completion notice at {} but its last host finished at {}",
                    fleet.regions[r as usize],
                    fmt_time(done),
                    fmt_time(last)
                ));
            }
        }
        self.v
    }

    /// Serial regions took their turns in the configured order.
    fn check_region_order(&mut self) {
        let m = &self.fleet.maintenance;
        let expected: Vec<RegionIx> = m
            .region_order
            .iter()
            .copied()
            .filter(|r| self.first_start.contains(r))
            .collect();
        if m.region_mode != RegionMode::Serial
            || m.on_missing == OnMissing::Continue
            || expected == self.first_start
        {
            return;
        }
        let names = |l: &[RegionIx]| {
            l.iter()
                .map(|&r| self.fleet.regions[r as usize].as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = format!(
            "regions started in the order {} instead of {}",
            names(&self.first_start),
            names(&expected)
        );
        self.v.push(text);
    }
}
