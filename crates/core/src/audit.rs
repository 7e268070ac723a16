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
    let seen = check_steps(fleet, plan, earliest, &mut v);
    check_accounted(fleet, plan, &seen, &mut v);
    Sweep::new(fleet).run(plan, &mut v);
    if m.region_mode == RegionMode::Serial {
        check_region_order(fleet, plan, &mut v);
    }
    check_figures(fleet, plan, earliest, &mut v);
    v
}

/// 1. Steps are well formed, each host at most once. Returns the hosts scheduled.
fn check_steps(fleet: &Fleet, plan: &Plan, earliest: i64, v: &mut Vec<String>) -> HashSet<HostIx> {
    let m = &fleet.maintenance;
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
    seen
}

/// 2. Every in-scope host is scheduled or reported.
fn check_accounted(fleet: &Fleet, plan: &Plan, seen: &HashSet<HostIx>, v: &mut Vec<String>) {
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
}

/// 3. A sweep over step starts and ends: budgets, survivor load, zones, concurrency.
struct Sweep<'a> {
    fleet: &'a Fleet,
    out: HashMap<ClusterIx, u32>,
    zones: HashMap<ClusterIx, HashMap<&'a str, u32>>,
    region_out: Vec<u32>,
    global: u32,
    /// A cluster's rule is reported once.
    reported: HashSet<(ClusterIx, &'static str)>,
}

impl<'a> Sweep<'a> {
    fn new(fleet: &'a Fleet) -> Self {
        Sweep {
            fleet,
            out: HashMap::new(),
            zones: HashMap::new(),
            region_out: vec![0; fleet.regions.len()],
            global: 0,
            reported: HashSet::new(),
        }
    }

    fn run(mut self, plan: &Plan, v: &mut Vec<String>) {
        let mut events: Vec<(i64, i32, HostIx)> = Vec::with_capacity(plan.steps.len() * 2);
        for s in &plan.steps {
            if (s.host as usize) < self.fleet.hosts.len() {
                events.push((s.start, 1, s.host));
                events.push((s.end, -1, s.host));
            }
        }
        // ends before starts at the same instant
        events.sort_by_key(|&(t, d, h)| (t, d, h));
        for (t, d, h) in events {
            if d < 0 {
                self.end(h);
            } else {
                self.start(t, h, v);
            }
        }
    }

    fn end(&mut self, h: HostIx) {
        let host = &self.fleet.hosts[h as usize];
        self.global -= 1;
        self.region_out[host.region as usize] -= 1;
        for &c in &host.clusters {
            *self.out.entry(c).or_default() -= 1;
            *self
                .zones
                .entry(c)
                .or_default()
                .entry(host.zone.as_str())
                .or_default() -= 1;
        }
    }

    fn start(&mut self, t: i64, h: HostIx, v: &mut Vec<String>) {
        let m = &self.fleet.maintenance;
        let host = &self.fleet.hosts[h as usize];
        let r = host.region as usize;
        self.global += 1;
        self.region_out[r] += 1;
        if let Some(g) = m.max_concurrent
            && self.global > g
        {
            v.push(format!(
                "{} hosts out at {} over max_concurrent {g}",
                self.global,
                fmt_time(t)
            ));
        }
        if let Some(rm) = m.max_concurrent_per_region
            && self.region_out[r] > rm
        {
            v.push(format!(
                "{} hosts out in {} at {} over max_concurrent_per_region {rm}",
                self.region_out[r],
                self.fleet.regions[r],
                fmt_time(t)
            ));
        }
        for &c in &host.clusters {
            self.cluster_out(t, c, host, v);
        }
    }

    /// One more member of cluster `c` out at `t`: its budget and survivor load.
    fn cluster_out(&mut self, t: i64, c: ClusterIx, host: &'a Host, v: &mut Vec<String>) {
        let cl = &self.fleet.clusters[c as usize];
        let n = cl.members.len() as u32;
        let o = self.out.entry(c).or_default();
        *o += 1;
        let o = *o;
        let zc = self.zones.entry(c).or_default();
        *zc.entry(host.zone.as_str()).or_default() += 1;
        let zones_out = zc.values().filter(|&&x| x > 0).count() as u32;
        let reported = &mut self.reported;
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
        if !cl.allow_outage && (o >= n || cl.load * n as f64 / (n - o) as f64 > cl.max_load + 1e-9)
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

/// 4. Serialized regions do not overlap and go in order.
fn check_region_order(fleet: &Fleet, plan: &Plan, v: &mut Vec<String>) {
    let mut spans: HashMap<RegionIx, (i64, i64)> = HashMap::new();
    for s in &plan.steps {
        let r = fleet.hosts[s.host as usize].region;
        let e = spans.entry(r).or_insert((s.start, s.end));
        e.0 = e.0.min(s.start);
        e.1 = e.1.max(s.end);
    }
    let mut prev: Option<(RegionIx, i64)> = None;
    for &r in &fleet.maintenance.region_order {
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

/// 5. The plan's figures: makespan, lower bound, announcements.
fn check_figures(fleet: &Fleet, plan: &Plan, earliest: i64, v: &mut Vec<String>) {
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
            && a < fleet.maintenance.start
        {
            v.push(format!(
                "region {} must be announced at {} before the maintenance start",
                fleet.regions[rp.region as usize],
                fmt_time(a)
            ));
        }
    }
}
