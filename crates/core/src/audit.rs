//! An independent checker for plans: recomputes every rule from the fleet itself
//! (not from the planner's derived limits) and returns each violation it finds.
//! Used by the property tests, `rollcall plan --audit` and the benchmark.

use crate::model::*;
use crate::plan::{Plan, Severity};
use std::collections::{HashMap, HashSet};

/// Check a plan against the fleet. An empty list means the plan is valid.
pub fn audit(fleet: &Fleet, plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let m = &fleet.maintenance;
    let earliest = m.start + m.notice_lead;
    if plan.earliest_start != earliest {
        v.push(format!(
            "earliest_start {} != start + lead {}",
            plan.earliest_start, earliest
        ));
    }

    // 1. steps are well formed, each host at most once
    let mut seen: HashSet<HostIx> = HashSet::new();
    for s in &plan.steps {
        let Some(host) = fleet.hosts.get(s.host as usize) else {
            v.push(format!("step names host index {} out of range", s.host));
            continue;
        };
        if !host.in_scope {
            v.push(format!(
                "{} is scheduled but outside the maintenance scope",
                host.id
            ));
        }
        if !seen.insert(s.host) {
            v.push(format!("{} is scheduled twice", host.id));
        }
        if s.end - s.start != host.duration {
            v.push(format!(
                "{} step lasts {}s, estimate is {}s",
                host.id,
                s.end - s.start,
                host.duration
            ));
        }
        if s.start < earliest {
            v.push(format!(
                "{} starts at {} before the notice lead time allows ({})",
                host.id,
                fmt_time(s.start),
                fmt_time(earliest)
            ));
        }
        if let Some(w) = m.windows[host.region as usize].as_deref()
            && !w.iter().any(|iv| iv.start <= s.start && s.end <= iv.end)
        {
            v.push(format!(
                "{} runs {}..{} outside every window",
                host.id,
                fmt_time(s.start),
                fmt_time(s.end)
            ));
        }
    }

    // 2. every in-scope host is scheduled or reported
    let unsched: HashSet<HostIx> = plan.unscheduled.iter().copied().collect();
    let blocked_in_risks: HashSet<HostIx> = plan
        .risks
        .iter()
        .filter(|r| r.severity == Severity::Blocked)
        .flat_map(|r| r.hosts.iter().copied())
        .collect();
    for (h, host) in fleet.hosts.iter().enumerate() {
        let h = h as HostIx;
        if !host.in_scope {
            continue;
        }
        match (seen.contains(&h), unsched.contains(&h)) {
            (true, true) => v.push(format!("{} is both scheduled and unscheduled", host.id)),
            (false, false) => v.push(format!("{} is neither scheduled nor reported", host.id)),
            (false, true) if !blocked_in_risks.contains(&h) => v.push(format!(
                "{} is unscheduled but no blocking risk names it",
                host.id
            )),
            _ => {}
        }
    }

    // 3. sweep: budgets, survivor load, zones, concurrency
    let mut events: Vec<(i64, i32, HostIx)> = Vec::with_capacity(plan.steps.len() * 2);
    for s in &plan.steps {
        if (s.host as usize) < fleet.hosts.len() {
            events.push((s.start, 1, s.host));
            events.push((s.end, -1, s.host));
        }
    }
    // ends before starts at the same instant
    events.sort_by_key(|&(t, d, h)| (t, d, h));
    let mut out: HashMap<ClusterIx, u32> = HashMap::new();
    let mut zones: HashMap<ClusterIx, HashMap<&str, u32>> = HashMap::new();
    let mut region_out = vec![0u32; fleet.regions.len()];
    let mut global = 0u32;
    let mut reported: HashSet<(ClusterIx, &'static str)> = HashSet::new();
    for (t, d, h) in events {
        let host = &fleet.hosts[h as usize];
        let r = host.region as usize;
        if d < 0 {
            global -= 1;
            region_out[r] -= 1;
            for &c in &host.clusters {
                *out.entry(c).or_default() -= 1;
                *zones
                    .entry(c)
                    .or_default()
                    .entry(host.zone.as_str())
                    .or_default() -= 1;
            }
            continue;
        }
        global += 1;
        region_out[r] += 1;
        if let Some(g) = m.max_concurrent
            && global > g
        {
            v.push(format!(
                "{} hosts out at {} over max_concurrent {g}",
                global,
                fmt_time(t)
            ));
        }
        if let Some(rm) = m.max_concurrent_per_region
            && region_out[r] > rm
        {
            v.push(format!(
                "{} hosts out in {} at {} over max_concurrent_per_region {rm}",
                region_out[r],
                fleet.regions[r],
                fmt_time(t)
            ));
        }
        for &c in &host.clusters {
            let cl = &fleet.clusters[c as usize];
            let n = cl.members.len() as u32;
            let o = out.entry(c).or_default();
            *o += 1;
            let o = *o;
            let zc = zones.entry(c).or_default();
            *zc.entry(host.zone.as_str()).or_default() += 1;
            let zones_out = zc.values().filter(|&&x| x > 0).count() as u32;
            let mut bad = |what: &'static str, msg: String| {
                if reported.insert((c, what)) {
                    v.push(msg);
                }
            };
            match cl.budget {
                Budget::Nodes(b) if o > b => bad(
                    "budget",
                    format!(
                        "{}: {o} members out at {} over budget {b}",
                        cl.id,
                        fmt_time(t)
                    ),
                ),
                Budget::Zones(z) if zones_out > z => bad(
                    "zones",
                    format!(
                        "{}: {zones_out} zones out at {} over zone budget {z}",
                        cl.id,
                        fmt_time(t)
                    ),
                ),
                _ => {}
            }
            if !cl.allow_outage
                && (o >= n || cl.load * n as f64 / (n - o) as f64 > cl.max_load + 1e-9)
            {
                bad(
                    "load",
                    format!(
                        "{}: {o} of {n} out at {} puts survivors over max_load {:.2} (load {:.2})",
                        cl.id,
                        fmt_time(t),
                        cl.max_load,
                        cl.load
                    ),
                );
            }
        }
    }

    // 4. region order when serialized
    if m.region_mode == RegionMode::Serial {
        let mut spans: HashMap<RegionIx, (i64, i64)> = HashMap::new();
        for s in &plan.steps {
            let r = fleet.hosts[s.host as usize].region;
            let e = spans.entry(r).or_insert((s.start, s.end));
            e.0 = e.0.min(s.start);
            e.1 = e.1.max(s.end);
        }
        let mut prev: Option<(RegionIx, i64)> = None;
        for &r in &m.region_order {
            if let Some(&(a, b)) = spans.get(&r) {
                if let Some((pr, pend)) = prev
                    && a < pend
                {
                    v.push(format!(
                        "region {} starts at {} before region {} ends at {}",
                        fleet.regions[r as usize],
                        fmt_time(a),
                        fleet.regions[pr as usize],
                        fmt_time(pend)
                    ));
                }
                prev = Some((r, b));
            }
        }
    }

    // 5. figures
    let last = plan.steps.iter().map(|s| s.end).max();
    let mk = last.map_or(0, |e| e - earliest);
    if plan.makespan != mk {
        v.push(format!(
            "makespan {} != last end - earliest start {}",
            plan.makespan, mk
        ));
    }
    if plan.makespan < plan.lower_bound {
        v.push(format!(
            "makespan {} below the lower bound {}",
            plan.makespan, plan.lower_bound
        ));
    }
    for rp in &plan.regions {
        if let Some(a) = rp.announce_by
            && a < m.start
        {
            v.push(format!(
                "region {} must be announced at {} before the maintenance start",
                fleet.regions[rp.region as usize],
                fmt_time(a)
            ));
        }
    }
    v
}
