//! The engine's running counts, kept in step with every phase change so that no
//! decision scans the fleet: members out per cluster (and per zone, against its
//! budget), missing and settling members per cluster, concurrency slots per region and
//! in all, hosts at work, hosts not yet final, hosts missing.

use super::host::holds_slot;
use super::wire::Phase;
use crate::budget::OutCount;
use crate::model::Host;

#[derive(Debug, Clone)]
pub(super) struct Counts {
    /// Members out per cluster and zone (active, missing, failed and out).
    pub out: OutCount,
    /// Missing members per cluster (under on_missing = continue the cluster starts no new host).
    pub cluster_missing: Vec<u32>,
    /// Members per cluster that are back and waiting for the cluster to be healthy.
    pub cluster_settling: Vec<u32>,
    /// Concurrency slots held (active or missing hosts), per region and in all.
    pub region_active: Vec<u32>,
    pub global_active: u32,
    /// Hosts in an active phase (not missing).
    pub working: u32,
    /// Hosts of the run not yet final, per region and in all.
    pub region_unfinished: Vec<u32>,
    pub unfinished: u32,
    pub missing_total: u32,
}

/// `x + d`, as the counters always did (a count that would go below zero wraps: it never does).
fn add(x: &mut u32, d: i64) {
    *x = (*x as i64 + d) as u32;
}

/// `x + d`, never below zero.
fn add_floor(x: &mut u32, d: i64) {
    *x = (*x as i64 + d).max(0) as u32;
}

/// +1 when `now` holds and `before` did not, −1 the other way, `None` when unchanged.
fn delta(before: bool, now: bool) -> Option<i64> {
    (before != now).then_some(if now { 1 } else { -1 })
}

fn settling(p: Phase) -> bool {
    matches!(p, Phase::Verifying | Phase::Restoring)
}

impl Counts {
    /// Nothing started yet; `region_unfinished[r]` hosts of the run in region `r`.
    pub fn new(clusters: usize, region_unfinished: Vec<u32>) -> Counts {
        let nregions = region_unfinished.len();
        Counts {
            out: OutCount::new(clusters),
            cluster_missing: vec![0; clusters],
            cluster_settling: vec![0; clusters],
            region_active: vec![0; nregions],
            global_active: 0,
            working: 0,
            unfinished: region_unfinished.iter().sum(),
            region_unfinished,
            missing_total: 0,
        }
    }

    /// Count `host` (its zone interned as `zone`) moving from `from` to `to`; `outs`:
    /// whether it counts against its clusters' budgets before and after.
    pub fn apply(&mut self, host: &Host, zone: u32, from: Phase, to: Phase, outs: (bool, bool)) {
        if let Some(d) = delta(outs.0, outs.1) {
            for &c in &host.clusters {
                self.out.add(c as usize, zone, d as i32);
            }
        }
        let r = host.region as usize;
        if let Some(d) = delta(holds_slot(from), holds_slot(to)) {
            add(&mut self.region_active[r], d);
            add(&mut self.global_active, d);
        }
        if let Some(d) = delta(from.is_active(), to.is_active()) {
            add(&mut self.working, d);
        }
        let missing = |p: Phase| p == Phase::Missing;
        if let Some(d) = delta(missing(from), missing(to)) {
            for &c in &host.clusters {
                add_floor(&mut self.cluster_missing[c as usize], d);
            }
            add(&mut self.missing_total, d);
        }
        if let Some(d) = delta(settling(from), settling(to)) {
            for &c in &host.clusters {
                add_floor(&mut self.cluster_settling[c as usize], d);
            }
        }
        // skipped hosts are not part of the run
        if from != Phase::Skipped
            && to != Phase::Skipped
            && let Some(d) = delta(from.is_final(), to.is_final())
        {
            add(&mut self.region_unfinished[r], -d);
            add(&mut self.unfinished, -d);
        }
    }

    /// Whether a member of one of `host`'s clusters is missing.
    pub fn member_missing(&self, host: &Host) -> bool {
        host.clusters
            .iter()
            .any(|&c| self.cluster_missing[c as usize] > 0)
    }
}
