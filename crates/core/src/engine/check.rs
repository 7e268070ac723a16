//! The journal checker: re-derives the engine's rules from a journal, independently of
//! the engine's own counters.

use super::host::{counts_out, holds_slot};
use super::wire::*;
use crate::model::*;
use crate::plan::Plan;
use std::collections::{BTreeSet, HashMap};

/// Check the engine's rules over a journal: budgets and survivor load (counting
/// missing and failed-out hosts), concurrency, region order, lead time, transitions
/// that follow the state machine, and completion notices right after a region's last host.
pub fn check_journal(fleet: &Fleet, plan: &Plan, records: &[Record]) -> Vec<String> {
    let mut v = Vec::new();
    let m = &fleet.maintenance;
    let mut phase: Vec<Phase> = vec![Phase::Skipped; fleet.hosts.len()];
    for s in &plan.steps {
        phase[s.host as usize] = Phase::Pending;
    }
    let mut failed_out = vec![false; fleet.hosts.len()];
    let mut out: Vec<u32> = vec![0; fleet.clusters.len()];
    let mut zones: Vec<HashMap<&str, u32>> = vec![HashMap::new(); fleet.clusters.len()];
    let mut announced: HashMap<RegionIx, i64> = HashMap::new();
    let mut region_done_at: HashMap<RegionIx, i64> = HashMap::new();
    let mut last_final: HashMap<RegionIx, i64> = HashMap::new();
    let mut missing: Vec<u32> = vec![0; fleet.clusters.len()];
    let mut active_set: BTreeSet<HostIx> = BTreeSet::new();
    // hosts that were missing, or held back by a missing cluster member, may finish late,
    // in another region's turn
    let mut was_missing = vec![false; fleet.hosts.len()];
    let mut first_start: Vec<RegionIx> = Vec::new();
    let mut active_global = 0i64;
    let mut active_region = vec![0i64; fleet.regions.len()];
    let allowed = |from: Phase, to: Phase| -> bool {
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
    };
    for r in records {
        match r {
            Output::Transition(t) => {
                let h = t.host as usize;
                if h >= fleet.hosts.len() {
                    v.push(format!("transition for unknown host index {h}"));
                    continue;
                }
                let host = &fleet.hosts[h];
                if phase[h] != t.from || !allowed(t.from, t.to) {
                    v.push(format!(
                        "{}: illegal transition {} → {} (was {})",
                        host.id,
                        t.from.name(),
                        t.to.name(),
                        phase[h].name()
                    ));
                }
                if t.to == Phase::Preflight {
                    match announced.get(&host.region) {
                        Some(&a) if t.at >= a + m.notice_lead => {}
                        Some(&a) => v.push(format!(
                            "{} started at {} before the lead time after the announcement at {}",
                            host.id,
                            fmt_time(t.at),
                            fmt_time(a)
                        )),
                        None => v.push(format!(
                            "{} started before its region was announced",
                            host.id
                        )),
                    }
                    // Under `continue`, hosts held back by a missing member are finished
                    // late, possibly during another region's turn (documented); budgets
                    // and concurrency still hold and are checked below.
                    if m.region_mode == RegionMode::Serial && m.on_missing != OnMissing::Continue {
                        // no other region has a host at work (one back and waiting for a
                        // cluster that has a missing member does not count)
                        let busy = active_set.iter().find(|&&o| {
                            let o = o as usize;
                            let p = phase[o];
                            let held = fleet.hosts[o]
                                .clusters
                                .iter()
                                .any(|&c| missing[c as usize] > 0);
                            fleet.hosts[o].region != host.region
                                && p.is_active()
                                && !(p == Phase::Restoring && held)
                                && !was_missing[o]
                        });
                        if let Some(&b) = busy {
                            v.push(format!(
                                "{} started while {} in region {} was {}",
                                host.id,
                                fleet.hosts[b as usize].id,
                                fleet.regions[fleet.hosts[b as usize].region as usize],
                                phase[b as usize].name()
                            ));
                        }
                        if !first_start.contains(&host.region) {
                            first_start.push(host.region);
                        }
                    }
                }
                let was = counts_out(phase[h], failed_out[h]);
                let now_out = counts_out(t.to, t.out);
                if holds_slot(phase[h]) != holds_slot(t.to) {
                    let d = if holds_slot(t.to) { 1 } else { -1 };
                    active_global += d;
                    active_region[host.region as usize] += d;
                    if let Some(g) = m.max_concurrent
                        && active_global > g as i64
                    {
                        v.push(format!(
                            "{active_global} hosts active at {} over max_concurrent {g}",
                            fmt_time(t.at)
                        ));
                    }
                    if let Some(g) = m.max_concurrent_per_region
                        && active_region[host.region as usize] > g as i64
                    {
                        v.push(format!(
                            "{} hosts active in {} over max_concurrent_per_region {g}",
                            active_region[host.region as usize],
                            fleet.regions[host.region as usize]
                        ));
                    }
                }
                if (phase[h] == Phase::Missing) != (t.to == Phase::Missing) {
                    let d: i64 = if t.to == Phase::Missing { 1 } else { -1 };
                    for &c in &host.clusters {
                        missing[c as usize] = (missing[c as usize] as i64 + d).max(0) as u32;
                    }
                }
                if t.to.is_active() {
                    active_set.insert(t.host);
                } else {
                    active_set.remove(&t.host);
                }
                phase[h] = t.to;
                was_missing[h] |= t.to == Phase::Missing;
                // members held back by a missing host may finish late too
                if t.to == Phase::Missing {
                    for &c in &host.clusters {
                        for &mbr in &fleet.clusters[c as usize].members {
                            was_missing[mbr as usize] |= phase[mbr as usize] == Phase::Restoring;
                        }
                    }
                }
                if t.to == Phase::Restoring
                    && host.clusters.iter().any(|&c| missing[c as usize] > 0)
                {
                    was_missing[h] = true;
                }
                failed_out[h] = t.to == Phase::Failed && t.out;
                if was != now_out {
                    let d: i64 = if now_out { 1 } else { -1 };
                    for &c in &host.clusters {
                        let ci = c as usize;
                        out[ci] = (out[ci] as i64 + d) as u32;
                        *zones[ci].entry(host.zone.as_str()).or_default() =
                            (*zones[ci].entry(host.zone.as_str()).or_default() as i64 + d) as u32;
                        if now_out {
                            let cl = &fleet.clusters[ci];
                            let n = cl.members.len() as u32;
                            let bad_budget = match cl.budget {
                                Budget::Nodes(b) => out[ci] > b,
                                Budget::Zones(z) => {
                                    zones[ci].values().filter(|&&x| x > 0).count() as u32 > z
                                }
                            };
                            let bad_load = !cl.allow_outage
                                && !survivors_fit(n, out[ci], cl.load, cl.max_load);
                            if bad_budget || bad_load {
                                v.push(format!(
                                    "{}: {} of {} members out at {} ({} entered {})",
                                    cl.id,
                                    out[ci],
                                    n,
                                    fmt_time(t.at),
                                    host.id,
                                    t.to.name()
                                ));
                            }
                        }
                    }
                }
                if t.to.is_final() {
                    last_final.insert(host.region, t.at);
                }
            }
            Output::Notice(n) => match n.kind {
                NoticeKind::Scheduled => {
                    announced.entry(n.region).or_insert(n.at);
                }
                NoticeKind::Completed => {
                    region_done_at.insert(n.region, n.at);
                }
                _ => {}
            },
            _ => {}
        }
    }
    // regions took their turns in the configured order
    let expected: Vec<RegionIx> = m
        .region_order
        .iter()
        .copied()
        .filter(|r| first_start.contains(r))
        .collect();
    if m.region_mode == RegionMode::Serial
        && m.on_missing != OnMissing::Continue
        && expected != first_start
    {
        let names = |l: &[RegionIx]| {
            l.iter()
                .map(|&r| fleet.regions[r as usize].as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        v.push(format!(
            "regions started in the order {} instead of {}",
            names(&first_start),
            names(&expected)
        ));
    }
    for (r, done) in region_done_at {
        if let Some(&last) = last_final.get(&r)
            && done != last
        {
            v.push(format!(
                "region {} completion notice at {} but its last host finished at {}",
                fleet.regions[r as usize],
                fmt_time(done),
                fmt_time(last)
            ));
        }
    }
    v
}
