//! Budgets shared by the planner and the engine: a cluster's effective limits, the
//! zone counters a zone budget is checked against, and where a host's maintenance fits
//! in its region's windows. Written once; `plan` and `engine` both count with it.

use crate::model::*;
use serde::Serialize;
use std::collections::HashMap;

/// The effective limits the planner uses for one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// Most members out at once (budget tightened by survivor load). 0 = cannot be done safely.
    pub nodes: u32,
    /// Most zones with members out at once, for zone budgets.
    pub zones: Option<u32>,
    /// What survivor load alone allows.
    pub load_limit: u32,
}

/// Effective limits for a cluster, from its budget, size, load and max_load.
pub fn cluster_limit(c: &Cluster) -> Limit {
    let n = c.members.len() as u32;
    let load_limit = c.load_limit();
    let (mut nodes, zones) = match c.budget {
        Budget::Nodes(b) => (b.min(load_limit), None),
        Budget::Zones(z) => (load_limit, Some(z)),
    };
    if nodes == 0 && c.allow_outage {
        nodes = match c.budget {
            Budget::Nodes(b) => b.min(n),
            Budget::Zones(_) => n,
        };
    }
    Limit {
        nodes,
        zones,
        load_limit,
    }
}

/// First start ≥ t at which [s, s+d) fits inside one window; None if never before the horizon.
pub fn earliest_fit(windows: Option<&[Interval]>, t: i64, d: i64) -> Option<i64> {
    let Some(w) = windows else { return Some(t) };
    let first = w.partition_point(|iv| iv.end <= t);
    for iv in &w[first..] {
        let s = t.max(iv.start);
        if s + d <= iv.end {
            return Some(s);
        }
    }
    None
}

/// Each host's zone as a small integer (zones numbered in order of first appearance).
pub fn intern_zones(fleet: &Fleet) -> Vec<u32> {
    let mut zone_ix: HashMap<&str, u32> = HashMap::new();
    fleet
        .hosts
        .iter()
        .map(|h| {
            let n = zone_ix.len() as u32;
            *zone_ix.entry(h.zone.as_str()).or_insert(n)
        })
        .collect()
}

/// With members out per zone in `zs`, may one more member in `zone` go out under a budget
/// of `z` zones? (Yes if its zone is already out, or fewer than `z` zones are.)
fn zone_allows(zs: &[(u32, u32)], zone: u32, z: u32) -> bool {
    let already = zs.iter().any(|&(zz, n)| zz == zone && n > 0);
    let busy = zs.iter().filter(|&&(_, n)| n > 0).count() as u32;
    already || busy < z
}

/// Add `delta` members out in `zone` to the per-zone counts `zs`.
fn zone_count_add(zs: &mut Vec<(u32, u32)>, zone: u32, delta: i32) {
    match zs.iter_mut().find(|(z, _)| *z == zone) {
        Some((_, n)) => *n = (*n as i64 + delta as i64) as u32,
        None => zs.push((zone, delta.max(0) as u32)),
    }
}

/// Members out per cluster, in all and per zone: what each cluster's [`Limit`] is
/// checked against. The planner counts its schedule with it, the engine its run.
#[derive(Debug, Clone)]
pub struct OutCount {
    out: Vec<u32>,
    /// Per cluster: (zone, members out in it), zones in order of first use.
    zone_out: Vec<Vec<(u32, u32)>>,
}

impl OutCount {
    /// Nothing out, for `clusters` clusters.
    pub fn new(clusters: usize) -> OutCount {
        OutCount {
            out: vec![0; clusters],
            zone_out: vec![Vec::new(); clusters],
        }
    }

    /// Members of cluster `c` out now.
    pub fn out(&self, c: usize) -> u32 {
        self.out[c]
    }

    /// May one more member of cluster `c`, in `zone`, go out within `lim`?
    pub fn fits(&self, c: usize, lim: &Limit, zone: u32) -> bool {
        if self.out[c] >= lim.nodes {
            return false;
        }
        if let Some(z) = lim.zones
            && !zone_allows(&self.zone_out[c], zone, z)
        {
            return false;
        }
        true
    }

    /// `delta` more members of cluster `c` out, in `zone`.
    pub fn add(&mut self, c: usize, zone: u32, delta: i32) {
        self.out[c] = (self.out[c] as i64 + delta as i64) as u32;
        zone_count_add(&mut self.zone_out[c], zone, delta);
    }
}
