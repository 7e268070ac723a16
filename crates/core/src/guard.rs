//! Provider notices against cluster budgets, shared by `rollcall guard` and the simulator's
//! guard strategy: a notice makes its hosts' window start a deadline ([`add_notice`]), and
//! windows that would take more members of a cluster out together than its budget allows
//! are found at once ([`collisions`]), before any plan is made.

use crate::budget::cluster_limit;
use crate::model::*;
use serde::Serialize;

/// Add a provider notice: its hosts must be done before its window starts.
pub fn add_notice(fleet: &mut Fleet, notice: Notice) {
    for &h in &notice.hosts {
        let d = &mut fleet.hosts[h as usize].deadline;
        *d = Some(d.map_or(notice.not_before, |x| x.min(notice.not_before)));
    }
    fleet.notices.push(notice);
}

/// Members of one cluster whose provider windows overlap, more of them (or of their zones)
/// than the cluster may lose at once: left to the provider, they would go down together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collision {
    pub cluster: ClusterIx,
    /// The members out together at the worst moment, in host order.
    pub hosts: Vec<HostIx>,
    /// When that overlap begins and ends (Unix seconds).
    pub from: i64,
    pub until: i64,
    /// How many members (or zones, for a zone budget) the cluster may lose at once.
    pub limit: u32,
    /// Whether the limit counts zones.
    pub zones: bool,
}

/// One host's provider window: `[not_before, not_after]`, or the host's own duration when
/// the provider gives no end.
fn windows(fleet: &Fleet) -> Vec<(HostIx, i64, i64)> {
    let mut w = Vec::new();
    for n in &fleet.notices {
        for &h in &n.hosts {
            let d = fleet.hosts[h as usize].duration.max(1);
            let end = n
                .not_after
                .unwrap_or(n.not_before + d)
                .max(n.not_before + 1);
            w.push((h, n.not_before, end));
        }
    }
    w
}

/// Every cluster whose members' provider windows overlap beyond its limit, with the
/// largest such overlap.
pub fn collisions(fleet: &Fleet) -> Vec<Collision> {
    let w = windows(fleet);
    let mut out = Vec::new();
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let mine: Vec<_> = w
            .iter()
            .filter(|(h, ..)| c.members.contains(h))
            .copied()
            .collect();
        if let Some(x) = worst_overlap(fleet, c, &mine) {
            out.push(Collision {
                cluster: ci as ClusterIx,
                ..x
            });
        }
    }
    out
}

/// The moment most members of `c` are inside their windows, if that is beyond the limit.
fn worst_overlap(fleet: &Fleet, c: &Cluster, w: &[(HostIx, i64, i64)]) -> Option<Collision> {
    let lim = cluster_limit(c);
    let mut worst: Option<Collision> = None;
    // the number out only rises at a window's start: look at each start
    for &(_, t, _) in w {
        let mut hosts: Vec<HostIx> = w
            .iter()
            .filter(|(_, s, e)| *s <= t && t < *e)
            .map(|(h, ..)| *h)
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        let (count, limit, zones) = match lim.zones {
            Some(z) => (zone_count(fleet, &hosts), z, true),
            None => (hosts.len() as u32, lim.nodes, false),
        };
        let beyond = count > limit || (zones && hosts.len() as u32 > lim.nodes);
        if !beyond || worst.as_ref().is_some_and(|x| x.hosts.len() >= hosts.len()) {
            continue;
        }
        let until = w
            .iter()
            .filter(|(h, s, e)| hosts.contains(h) && *s <= t && t < *e)
            .map(|(.., e)| *e)
            .min()
            .unwrap_or(t);
        worst = Some(Collision {
            cluster: 0,
            hosts,
            from: t,
            until,
            limit,
            zones,
        });
    }
    worst
}

fn zone_count(fleet: &Fleet, hosts: &[HostIx]) -> u32 {
    let mut z: Vec<&str> = hosts
        .iter()
        .map(|&h| fleet.hosts[h as usize].zone.as_str())
        .collect();
    z.sort_unstable();
    z.dedup();
    z.len() as u32
}
