//! Provider windows that would take a cluster below its budget ([`crate::guard::collisions`]),
//! said once when a run starts: to the operator in the journal, and to the cluster's
//! tenant and the region's subscribers through notify. Each says whether the plan gets
//! every member done ahead of the first window, and the remedy when it does not.

use super::{Engine, NoticeKind};
use crate::guard::{Collision, collisions};
use crate::model::*;
use crate::plan::Plan;

/// One collision, ready to be said.
#[derive(Debug, Clone)]
pub(super) struct Risk {
    pub region: RegionIx,
    /// The first member of the collision: the notice's host.
    pub host: HostIx,
    pub text: String,
}

/// The collisions of the fleet's provider notices, with what the plan does about them.
pub(super) fn risks(fleet: &Fleet, plan: &Plan) -> Vec<Risk> {
    collisions(fleet)
        .into_iter()
        .map(|c| Risk {
            region: fleet.hosts[c.hosts[0] as usize].region,
            host: c.hosts[0],
            text: describe(fleet, plan, &c),
        })
        .collect()
}

/// "provider windows take 2 of cache's 3 members out together (…) from … to …; it may
/// lose 1 at once: " and what the plan does.
fn describe(fleet: &Fleet, plan: &Plan, c: &Collision) -> String {
    let cl = &fleet.clusters[c.cluster as usize];
    let names: Vec<&str> = c
        .hosts
        .iter()
        .map(|&h| fleet.hosts[h as usize].id.as_str())
        .collect();
    let unit = if c.zones { "zone(s)" } else { "member(s)" };
    let head = format!(
        "provider windows take {} of {}'s {} members out together ({}) from {} to {}; it may lose {} {unit} at once",
        c.hosts.len(),
        cl.id,
        cl.members.len(),
        names.join(", "),
        fmt_time(c.from),
        fmt_time(c.until),
        c.limit,
    );
    let ends: Vec<Option<i64>> = c
        .hosts
        .iter()
        .map(|&h| plan.steps.iter().find(|s| s.host == h).map(|s| s.end))
        .collect();
    let behind: Vec<&str> = c
        .hosts
        .iter()
        .zip(&ends)
        .filter(|(h, e)| e.is_none_or(|e| e > deadline(fleet, **h).unwrap_or(i64::MAX)))
        .map(|(h, _)| fleet.hosts[*h as usize].id.as_str())
        .collect();
    if behind.is_empty() {
        let done = ends.iter().flatten().max().copied().unwrap_or(c.from);
        format!(
            "{head}: rebooting them ahead within the budget, the last done by {} ({} before the first window)",
            fmt_time(done),
            fmt_duration(c.from - done)
        )
    } else {
        format!(
            "{head}: {} cannot be done ahead of their windows: fail over or add a node before {}, or ask the provider to move a window",
            behind.join(", "),
            fmt_time(c.from)
        )
    }
}

fn deadline(fleet: &Fleet, h: HostIx) -> Option<i64> {
    fleet.hosts[h as usize].deadline
}

impl Engine {
    /// Say the provider risks not said yet (the first step; a restored run has said them).
    pub(super) fn say_risks(&mut self, now: i64) {
        for r in std::mem::take(&mut self.risks) {
            self.notice(
                now,
                NoticeKind::ProviderRisk,
                r.region,
                Some(r.host),
                r.text,
            );
        }
    }
}
