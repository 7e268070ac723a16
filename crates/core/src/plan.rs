//! The planner: list scheduling of host reboots over cluster budgets, survivor load,
//! global and per-region concurrency, region order, windows and deadlines.
//!
//! Every in-scope host is either scheduled or named in a risk with a reason and a
//! remedy; nothing is scheduled that breaks a budget, survivor load, concurrency
//! limit, window or region order. Priority: earliest deadline, then the longest
//! remaining critical path (remaining work of a cluster divided by its budget).

pub use crate::budget::{Limit, cluster_limit, earliest_fit};
use crate::budget::{OutCount, intern_zones};
use crate::generate::Rng;
use crate::model::*;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// How hard the planner works on plan quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Improvement effort: 0 = list scheduling only; each unit allows up to 200 more
    /// list-scheduling passes in perturbed orders and 5,000 host placements in all (so
    /// at effort 1 a 20-host fleet gets 200 passes, a 1,000-host one 5, a 100,000-host
    /// one none: `--effort 100` gives it 5).
    pub effort: u32,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { effort: 1 }
    }
}

impl PlanOptions {
    /// The fleet's own: `[maintenance] effort`, else the default.
    pub fn of(fleet: &Fleet) -> PlanOptions {
        let effort = fleet.maintenance.effort;
        PlanOptions {
            effort: effort.unwrap_or(PlanOptions::default().effort),
        }
    }
}

/// One host's reboot in the plan. Times are Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Step {
    pub host: HostIx,
    pub start: i64,
    pub end: i64,
    /// Index of the distinct start instant (0-based): hosts with the same wave start together.
    pub wave: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The hosts named are not scheduled.
    Blocked,
    /// The hosts are scheduled but finish after their deadline.
    Late,
    /// Scheduled; something the operator should know.
    Warning,
}

#[derive(Debug, Clone, Serialize)]
pub struct Risk {
    pub severity: Severity,
    /// Stable machine-readable code: `single-node`, `overloaded`, `survivor-load`,
    /// `budget-tightened`, `outage-accepted`, `no-window`, `deadline`, `unplaceable`.
    pub code: &'static str,
    pub cluster: Option<ClusterIx>,
    pub region: Option<RegionIx>,
    pub hosts: Vec<HostIx>,
    pub reason: String,
    pub remedy: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionPlan {
    pub region: RegionIx,
    pub hosts: usize,
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// The latest time the region's announcement may go out (start − lead).
    pub announce_by: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// When announcements go out (maintenance start).
    pub announce_at: i64,
    /// The first moment a reboot may begin (announce_at + notice lead).
    pub earliest_start: i64,
    pub steps: Vec<Step>,
    pub regions: Vec<RegionPlan>,
    pub risks: Vec<Risk>,
    pub limits: Vec<Limit>,
    pub unscheduled: Vec<HostIx>,
    /// Seconds from `earliest_start` to the end of the last step (0 when nothing is scheduled).
    pub makespan: i64,
    /// A lower bound on any valid plan's makespan for the scheduled hosts.
    pub lower_bound: i64,
}

impl Plan {
    /// makespan / lower bound (1.0 when both are 0).
    pub fn ratio(&self) -> f64 {
        if self.lower_bound <= 0 {
            if self.makespan <= 0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            self.makespan as f64 / self.lower_bound as f64
        }
    }
    pub fn end(&self) -> Option<i64> {
        self.steps.iter().map(|s| s.end).max()
    }
    pub fn waves(&self) -> u32 {
        self.steps.iter().map(|s| s.wave + 1).max().unwrap_or(0)
    }
}

/// Smallest number of nodes to add so that one member may be out under max_load.
fn nodes_to_add(c: &Cluster) -> u32 {
    let n = c.members.len() as u32;
    let mut a = 0;
    while a < 10_000 && !survivors_fit(n + a, 1, c.load * n as f64 / (n + a) as f64, c.max_load) {
        a += 1;
    }
    a
}

fn cluster_risks(fleet: &Fleet, ci: usize, lim: &Limit, hosts: Vec<HostIx>, risks: &mut Vec<Risk>) {
    let c = &fleet.clusters[ci];
    let n = c.members.len();
    let cluster = Some(ci as ClusterIx);
    if lim.nodes == 0 {
        let (code, reason, remedy) = if n == 1 {
            (
                "single-node",
                format!("{}: 1 node: rebooting it is an outage of the cluster", c.id),
                "add a node first, or set allow_outage = true to accept the outage".to_string(),
            )
        } else if c.load > c.max_load + 1e-9 {
            (
                "overloaded",
                format!(
                    "{}: load {:.2} is already above max_load {:.2}: survivors cannot absorb any loss",
                    c.id, c.load, c.max_load
                ),
                format!("add {} node(s) first", nodes_to_add(c)),
            )
        } else {
            let need = c.load * n as f64 / (n - 1) as f64;
            let add = nodes_to_add(c);
            let mut remedy = format!("add {add} node(s) first");
            if need <= 1.0 + 1e-9 {
                remedy.push_str(&format!(
                    ", or raise max_load to {:.2}",
                    (need * 100.0).ceil() / 100.0
                ));
            }
            (
                "survivor-load",
                format!(
                    "{}: {} nodes at load {:.2} cannot lose one under max_load {:.2} (survivors would carry {:.2})",
                    c.id, n, c.load, c.max_load, need
                ),
                remedy,
            )
        };
        risks.push(Risk {
            severity: Severity::Blocked,
            code,
            cluster,
            region: None,
            hosts,
            reason,
            remedy,
        });
        return;
    }
    if lim.load_limit == 0 && c.allow_outage {
        risks.push(Risk {
            severity: Severity::Warning,
            code: "outage-accepted",
            cluster,
            region: None,
            hosts: Vec::new(),
            reason: format!(
                "{}: cannot stay available while a member is out; allow_outage = true, so it is scheduled anyway",
                c.id
            ),
            remedy: "tell the tenant, or add a node first".into(),
        });
        return;
    }
    if let Budget::Nodes(b) = c.budget
        && lim.nodes < b
    {
        let k = lim.nodes + 1;
        risks.push(Risk {
            severity: Severity::Warning,
            code: "budget-tightened",
            cluster,
            region: None,
            hosts: Vec::new(),
            reason: format!(
                "{}: budget {} tightened to {} by load {:.2} ({} out would put {:.2} on survivors, over max_load {:.2})",
                c.id,
                b,
                lim.nodes,
                c.load,
                k,
                c.load * n as f64 / (n as f64 - k as f64),
                c.max_load
            ),
            remedy: "none needed; add capacity to go faster".into(),
        });
    }
}

#[derive(Clone)]
struct Group {
    region: RegionIx,
    hosts: Vec<HostIx>,
    next: usize,
    taken: Vec<bool>,
    remaining: usize,
    rem_work: i64,
    cap: i64,
    deadline: i64,
    version: u32,
    /// Per-mille weight of the group's critical path in its key (1000 = as computed;
    /// the improvement phase perturbs it).
    bias: i64,
}

type Key = (Reverse<i64>, i64, Reverse<u32>);

impl Group {
    /// With its hosts in: sort them (deadline, then longest first) and set the counts.
    fn fill(&mut self, fleet: &Fleet) {
        self.hosts.sort_by_key(|&h| {
            let host = &fleet.hosts[h as usize];
            (host.deadline.unwrap_or(i64::MAX), Reverse(host.duration), h)
        });
        self.count(fleet);
    }

    /// The same hosts in a perturbed order: deadline, then duration scaled by a random
    /// factor in [1 − noise, 1 + noise] (noise ≥ 1: any order); the group's key weight too.
    fn perturb(&mut self, fleet: &Fleet, rng: &mut Rng, noise: f64) {
        let mut keyed: Vec<(i64, Reverse<i64>, HostIx)> = self
            .hosts
            .iter()
            .map(|&h| {
                let host = &fleet.hosts[h as usize];
                let f = 1.0 + noise * (2.0 * rng.unit() - 1.0);
                let d = (host.duration as f64 * f.max(0.0)) as i64;
                (host.deadline.unwrap_or(i64::MAX), Reverse(d), h)
            })
            .collect();
        keyed.sort_unstable();
        self.hosts = keyed.into_iter().map(|k| k.2).collect();
        self.bias = (1000.0 * (1.0 + noise * 0.5 * (2.0 * rng.unit() - 1.0))) as i64;
        self.next = 0;
        self.version = 0;
        self.count(fleet);
    }

    /// Nothing taken yet: the counts, remaining work and earliest deadline.
    fn count(&mut self, fleet: &Fleet) {
        self.taken = vec![false; self.hosts.len()];
        self.remaining = self.hosts.len();
        self.rem_work = self
            .hosts
            .iter()
            .map(|&h| fleet.hosts[h as usize].duration)
            .sum();
        self.deadline = self
            .hosts
            .iter()
            .map(|&h| fleet.hosts[h as usize].deadline.unwrap_or(i64::MAX))
            .min()
            .unwrap_or(i64::MAX);
    }

    fn key(&self) -> Key {
        (
            Reverse(self.deadline),
            self.rem_work * self.bias / self.cap.max(1),
            Reverse(0),
        )
    }
}

enum Pick {
    Start(usize),
    Wait {
        cluster: Option<ClusterIx>,
        until: Option<i64>,
    },
}

/// Plan the fleet's maintenance with its own effort ([`PlanOptions::of`]).
pub fn plan(fleet: &Fleet) -> Plan {
    plan_with(fleet, PlanOptions::of(fleet))
}

/// Plan the fleet's maintenance: list scheduling, then an improvement phase bounded by
/// `opts.effort` whose best schedule is kept only if the auditor passes it.
pub fn plan_with(fleet: &Fleet, opts: PlanOptions) -> Plan {
    let m = &fleet.maintenance;
    let earliest_start = m.start.saturating_add(m.notice_lead);
    let limits: Vec<Limit> = fleet.clusters.iter().map(cluster_limit).collect();
    let mut risks: Vec<Risk> = Vec::new();
    // which hosts can be scheduled at all
    let mut blocked = cluster_blocks(fleet, &limits, &mut risks);
    window_blocks(fleet, earliest_start, &mut blocked, &mut risks);
    let groups = make_groups(fleet, &limits, &blocked);
    let passes = improvement_passes(&groups, opts.effort);
    if passes == 0 {
        let base = schedule(fleet, &limits, groups, earliest_start);
        return assemble(fleet, limits, blocked, risks, base);
    }
    let base = schedule(fleet, &limits, groups.clone(), earliest_start);
    let floor = earliest_start + lower_bound(fleet, &limits, &blocked, earliest_start);
    let Some(better) = improve(
        fleet,
        &limits,
        &groups,
        (earliest_start, floor),
        &base,
        passes,
    ) else {
        return assemble(fleet, limits, blocked, risks, base);
    };
    let p = assemble(
        fleet,
        limits.clone(),
        blocked.clone(),
        risks.clone(),
        better,
    );
    if crate::audit::audit(fleet, &p).is_empty() {
        return p;
    }
    assemble(fleet, limits, blocked, risks, base)
}

/// Passes the improvement phase may make at `effort`: 200 per unit, and 5,000 host
/// placements per unit in all.
fn improvement_passes(groups: &[Group], effort: u32) -> usize {
    let hosts = groups.iter().map(|g| g.hosts.len()).sum::<usize>().max(1);
    (effort as usize * 200).min(effort as usize * 5_000 / hosts)
}

/// One list-scheduling pass: the groups as left, the steps, the groups left over.
struct Run {
    groups: Vec<Group>,
    steps: Vec<Step>,
    leftover: Vec<usize>,
}

impl Run {
    /// What the improvement phase minimises: hosts not placed, seconds late, makespan.
    fn score(&self, fleet: &Fleet) -> (usize, i64, i64) {
        let unplaced = self
            .leftover
            .iter()
            .map(|&gi| self.groups[gi].taken.iter().filter(|t| !**t).count())
            .sum();
        let late = self
            .steps
            .iter()
            .filter_map(|s| {
                fleet.hosts[s.host as usize]
                    .deadline
                    .map(|d| (s.end - d).max(0))
            })
            .sum();
        let end = self.steps.iter().map(|s| s.end).max().unwrap_or(0);
        (unplaced, late, end)
    }
}

fn schedule(fleet: &Fleet, limits: &[Limit], groups: Vec<Group>, t: i64) -> Run {
    let mut sched = Scheduler::new(fleet, limits, groups, t);
    sched.run();
    Run {
        groups: sched.groups,
        steps: sched.steps,
        leftover: sched.leftover,
    }
}

/// Iterated greedy: list scheduling again with host orders and group weights perturbed
/// (more noise as passes go), keeping the best-scoring run; it stops early at `floor`
/// (the lower bound's end). None: nothing beat `base`.
fn improve(
    fleet: &Fleet,
    limits: &[Limit],
    groups: &[Group],
    (t, floor): (i64, i64),
    base: &Run,
    passes: usize,
) -> Option<Run> {
    let hosts = groups.iter().map(|g| g.hosts.len()).sum::<usize>();
    let mut best_score = base.score(fleet);
    let mut best: Option<Run> = None;
    let mut rng = Rng::new(0x5eed ^ hosts as u64);
    for pass in 0..passes {
        if best_score.0 == 0 && best_score.1 == 0 && best_score.2 <= floor {
            break;
        }
        let noise = [0.15, 0.3, 0.6, 1.0][pass % 4];
        let mut gs = groups.to_vec();
        for g in gs.iter_mut() {
            g.perturb(fleet, &mut rng, noise);
        }
        let run = schedule(fleet, limits, gs, t);
        let score = run.score(fleet);
        if score < best_score {
            best_score = score;
            best = Some(run);
        }
    }
    best
}

/// The plan of one run: risks for what it could not place, waves, regions, figures.
fn assemble(
    fleet: &Fleet,
    limits: Vec<Limit>,
    mut blocked: Vec<bool>,
    mut risks: Vec<Risk>,
    run: Run,
) -> Plan {
    let m = &fleet.maintenance;
    let earliest_start = m.start.saturating_add(m.notice_lead);
    let Run {
        groups,
        mut steps,
        leftover,
    } = run;
    unplaceable_risks(fleet, &groups, leftover, &mut blocked, &mut risks);
    // waves, regions, deadlines
    assign_waves(&mut steps);
    let regions = region_plans(fleet, &steps);
    deadline_risks(fleet, &steps, earliest_start, &mut risks);
    let unscheduled: Vec<HostIx> = (0..fleet.hosts.len())
        .filter(|&h| fleet.hosts[h].in_scope && blocked[h])
        .map(|h| h as HostIx)
        .collect();
    let makespan = steps
        .iter()
        .map(|s| s.end)
        .max()
        .map_or(0, |e| e - earliest_start);
    let lower_bound = lower_bound(fleet, &limits, &blocked, earliest_start);
    Plan {
        announce_at: m.start,
        earliest_start,
        steps,
        regions,
        risks,
        limits,
        unscheduled,
        makespan,
        lower_bound,
    }
}

/// Hosts of clusters that cannot safely lose a member are blocked; every cluster's
/// risks are reported.
fn cluster_blocks(fleet: &Fleet, limits: &[Limit], risks: &mut Vec<Risk>) -> Vec<bool> {
    let mut blocked = vec![false; fleet.hosts.len()];
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let in_scope: Vec<HostIx> = c
            .members
            .iter()
            .copied()
            .filter(|&h| fleet.hosts[h as usize].in_scope)
            .collect();
        if limits[ci].nodes == 0 {
            for &h in &in_scope {
                blocked[h as usize] = true;
            }
        }
        if !in_scope.is_empty() {
            cluster_risks(fleet, ci, &limits[ci], in_scope, risks);
        }
    }
    blocked
}

/// Hosts whose maintenance fits in no window before the horizon are blocked, one risk
/// per region.
fn window_blocks(fleet: &Fleet, earliest_start: i64, blocked: &mut [bool], risks: &mut Vec<Risk>) {
    let m = &fleet.maintenance;
    let mut no_window: HashMap<RegionIx, Vec<HostIx>> = HashMap::new();
    for (h, host) in fleet.hosts.iter().enumerate() {
        if host.in_scope && !blocked[h] {
            let w = m.windows[host.region as usize].as_deref();
            if earliest_fit(w, earliest_start, host.duration).is_none() {
                blocked[h] = true;
                no_window.entry(host.region).or_default().push(h as HostIx);
            }
        }
    }
    let mut nw: Vec<_> = no_window.into_iter().collect();
    nw.sort_by_key(|(r, _)| *r);
    for (r, hosts) in nw {
        let longest = hosts
            .iter()
            .map(|&h| fleet.hosts[h as usize].duration)
            .max()
            .unwrap_or(0);
        risks.push(Risk {
            severity: Severity::Blocked,
            code: "no-window",
            cluster: None,
            region: Some(r),
            reason: format!(
                "{} host(s) in {} need up to {} but no window that long opens between {} and the horizon {}",
                hosts.len(),
                fleet.region_name(r),
                fmt_duration(longest),
                fmt_time(earliest_start),
                fmt_time(m.horizon)
            ),
            hosts,
            remedy: "lengthen the window, add windows, or extend maintenance.horizon".into(),
        });
    }
}

/// Groups: (primary cluster, region); hosts with no cluster are singletons. Each
/// group's hosts in order of deadline, then longest first.
fn make_groups(fleet: &Fleet, limits: &[Limit], blocked: &[bool]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of: HashMap<(ClusterIx, RegionIx), usize> = HashMap::new();
    for (h, host) in fleet.hosts.iter().enumerate() {
        if !host.in_scope || blocked[h] {
            continue;
        }
        let primary = host
            .clusters
            .iter()
            .copied()
            .min_by_key(|&c| (limits[c as usize].nodes, c));
        let gi = match primary {
            Some(c) => *group_of.entry((c, host.region)).or_insert_with(|| {
                groups.push(new_group(host.region, capacity(fleet, limits, c)));
                groups.len() - 1
            }),
            None => {
                groups.push(new_group(host.region, 1));
                groups.len() - 1
            }
        };
        groups[gi].hosts.push(h as HostIx);
    }
    for g in groups.iter_mut() {
        g.fill(fleet);
    }
    groups
}

/// The list scheduler: simulated time `t`, what is out, and per region a priority
/// queue of groups (entries carry the group's version; older ones are stale).
struct Scheduler<'a> {
    fleet: &'a Fleet,
    limits: &'a [Limit],
    host_zone: Vec<u32>,
    groups: Vec<Group>,
    gmax: u32,
    rmax: u32,
    /// Concurrency a region can have at most (for its own critical path).
    rcap: i64,
    live: OutCount,
    region_out: Vec<u32>,
    global_out: u32,
    heaps: Vec<BinaryHeap<(Key, usize, u32)>>,
    /// Per cluster: groups waiting for a member of it to come back.
    waiting: Vec<Vec<(usize, u32)>>,
    /// Groups waiting for a window to open.
    wakeups: BinaryHeap<Reverse<(i64, usize, u32)>>,
    /// Hosts out, by end time.
    running: BinaryHeap<Reverse<(i64, HostIx)>>,
    steps: Vec<Step>,
    region_work: Vec<i64>,
    by_region: Vec<Vec<usize>>,
    /// Groups with hosts that could not be placed.
    leftover: Vec<usize>,
    t: i64,
}

impl<'a> Scheduler<'a> {
    fn new(fleet: &'a Fleet, limits: &'a [Limit], groups: Vec<Group>, t: i64) -> Self {
        let m = &fleet.maintenance;
        let nregions = fleet.regions.len();
        let gmax = m.max_concurrent.unwrap_or(u32::MAX);
        let rmax = m.max_concurrent_per_region.unwrap_or(u32::MAX);
        let mut region_work = vec![0i64; nregions];
        let mut by_region: Vec<Vec<usize>> = vec![Vec::new(); nregions];
        for (gi, g) in groups.iter().enumerate() {
            region_work[g.region as usize] += g.rem_work;
            by_region[g.region as usize].push(gi);
        }
        Scheduler {
            fleet,
            limits,
            host_zone: intern_zones(fleet),
            groups,
            gmax,
            rmax,
            rcap: (gmax.min(rmax) as i64).clamp(1, 1 << 40),
            live: OutCount::new(fleet.clusters.len()),
            region_out: vec![0; nregions],
            global_out: 0,
            heaps: (0..nregions).map(|_| BinaryHeap::new()).collect(),
            waiting: vec![Vec::new(); fleet.clusters.len()],
            wakeups: BinaryHeap::new(),
            running: BinaryHeap::new(),
            steps: Vec::with_capacity(fleet.hosts.len()),
            region_work,
            by_region,
            leftover: Vec::new(),
            t,
        }
    }

    /// Serial regions one phase each, in order; parallel regions all in one phase.
    fn run(&mut self) {
        let m = &self.fleet.maintenance;
        let phases: Vec<Vec<RegionIx>> = match m.region_mode {
            RegionMode::Serial => m.region_order.iter().map(|&r| vec![r]).collect(),
            RegionMode::Parallel => vec![m.region_order.clone()],
        };
        for phase in &phases {
            self.run_phase(phase);
        }
    }

    fn run_phase(&mut self, phase: &[RegionIx]) {
        for &r in phase {
            for &gi in &self.by_region[r as usize] {
                let g = &self.groups[gi];
                self.heaps[r as usize].push((g.key(), gi, g.version));
            }
        }
        loop {
            self.start_all(phase);
            if !self.advance() {
                break;
            }
        }
        // anything still waiting in this phase could not be placed
        for &r in phase {
            for &gi in &self.by_region[r as usize] {
                if self.groups[gi].remaining > 0 && !self.leftover.contains(&gi) {
                    self.leftover.push(gi);
                }
            }
        }
    }

    /// Start everything that may start at `t`, most urgent group first.
    fn start_all(&mut self, phase: &[RegionIx]) {
        while self.global_out < self.gmax {
            let Some(ri) = self.most_urgent(phase) else {
                break;
            };
            let Some((_, gi, _)) = self.heaps[ri].pop() else {
                break;
            };
            let (f, lim) = (self.fleet, self.limits);
            match pick(
                f,
                lim,
                &self.live,
                &self.host_zone,
                &self.groups[gi],
                self.t,
            ) {
                Pick::Start(idx) => self.start(ri, gi, idx),
                Pick::Wait { cluster, until } => self.wait(gi, cluster, until),
            }
        }
    }

    /// The region whose top group is most urgent: the longer of that group's critical
    /// path and the region's own remaining work over its concurrency.
    fn most_urgent(&mut self, phase: &[RegionIx]) -> Option<usize> {
        let mut best: Option<(Key, usize)> = None;
        for &r in phase {
            let ri = r as usize;
            if self.region_out[ri] >= self.rmax {
                continue;
            }
            while let Some(&(_, gi, v)) = self.heaps[ri].peek() {
                if self.groups[gi].version != v || self.groups[gi].remaining == 0 {
                    self.heaps[ri].pop();
                } else {
                    break;
                }
            }
            if let Some(&(k, _, _)) = self.heaps[ri].peek() {
                let region_path = self.region_work[ri] * 1000 / self.rcap;
                let k = (k.0, k.1.max(region_path), k.2);
                if best.is_none_or(|(bk, _)| k > bk) {
                    best = Some((k, ri));
                }
            }
        }
        best.map(|(_, ri)| ri)
    }

    /// Host `idx` of group `gi` (region `ri`) starts at `t`.
    fn start(&mut self, ri: usize, gi: usize, idx: usize) {
        let g = &mut self.groups[gi];
        let h = g.hosts[idx];
        let host = &self.fleet.hosts[h as usize];
        g.taken[idx] = true;
        g.remaining -= 1;
        g.rem_work -= host.duration;
        while g.next < g.hosts.len() && g.taken[g.next] {
            g.next += 1;
        }
        g.version += 1;
        if g.remaining > 0 {
            self.heaps[ri].push((g.key(), gi, g.version));
        }
        for &c in &host.clusters {
            self.live.add(c as usize, self.host_zone[h as usize], 1);
        }
        self.region_out[ri] += 1;
        self.region_work[ri] -= host.duration;
        self.global_out += 1;
        let end = self.t + host.duration;
        self.running.push(Reverse((end, h)));
        self.steps.push(Step {
            host: h,
            start: self.t,
            end,
            wave: 0,
        });
    }

    /// Group `gi` waits for a member of `cluster` to come back, or until a window opens;
    /// with neither, it cannot be placed.
    fn wait(&mut self, gi: usize, cluster: Option<ClusterIx>, until: Option<i64>) {
        let g = &mut self.groups[gi];
        g.version += 1;
        if let Some(c) = cluster {
            self.waiting[c as usize].push((gi, g.version));
        }
        if let Some(w) = until {
            self.wakeups.push(Reverse((w, gi, g.version)));
        }
        if cluster.is_none() && until.is_none() {
            self.leftover.push(gi);
        }
    }

    /// Advance to the next end or wake-up and let what it frees queue again. False:
    /// nothing more will happen.
    fn advance(&mut self) -> bool {
        let next_end = self.running.peek().map(|r| r.0.0);
        let next_wake = self.wakeups.peek().map(|w| w.0.0);
        let next = match (next_end, next_wake) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        self.t = self.t.max(next);
        while let Some(&Reverse((end, h))) = self.running.peek() {
            if end > self.t {
                break;
            }
            self.running.pop();
            self.end(h);
        }
        while let Some(&Reverse((w, gi, v))) = self.wakeups.peek() {
            if w > self.t {
                break;
            }
            self.wakeups.pop();
            requeue(&mut self.groups, &mut self.heaps, gi, v);
        }
        true
    }

    /// Host `h`'s maintenance ends: groups waiting for its clusters queue again.
    fn end(&mut self, h: HostIx) {
        let host = &self.fleet.hosts[h as usize];
        for &c in &host.clusters {
            self.live.add(c as usize, self.host_zone[h as usize], -1);
            for (gi, v) in std::mem::take(&mut self.waiting[c as usize]) {
                requeue(&mut self.groups, &mut self.heaps, gi, v);
            }
        }
        self.region_out[host.region as usize] -= 1;
        self.global_out -= 1;
    }
}

/// Hosts of the groups left over are blocked, one risk per group.
fn unplaceable_risks(
    fleet: &Fleet,
    groups: &[Group],
    leftover: Vec<usize>,
    blocked: &mut [bool],
    risks: &mut Vec<Risk>,
) {
    for gi in leftover {
        let g = &groups[gi];
        let hosts: Vec<HostIx> = g
            .hosts
            .iter()
            .zip(&g.taken)
            .filter(|(_, tk)| !**tk)
            .map(|(h, _)| *h)
            .collect();
        if hosts.is_empty() {
            continue;
        }
        for &h in &hosts {
            blocked[h as usize] = true;
        }
        risks.push(Risk {
            severity: Severity::Blocked,
            code: "unplaceable",
            cluster: None,
            region: Some(g.region),
            reason: format!(
                "{} host(s) in {} could not be placed before the horizon {} (windows too short or too few for their duration under the budgets)",
                hosts.len(),
                fleet.region_name(g.region),
                fmt_time(fleet.maintenance.horizon)
            ),
            hosts,
            remedy: "lengthen or add windows, or extend maintenance.horizon".into(),
        });
    }
}

/// Steps in start order, numbered by distinct start instant.
fn assign_waves(steps: &mut [Step]) {
    steps.sort_by_key(|s| (s.start, s.host));
    let mut wave = 0u32;
    for i in 0..steps.len() {
        if i > 0 && steps[i].start != steps[i - 1].start {
            wave += 1;
        }
        steps[i].wave = wave;
    }
}

/// Each region's hosts, start, end and latest announcement, in region order.
fn region_plans(fleet: &Fleet, steps: &[Step]) -> Vec<RegionPlan> {
    let m = &fleet.maintenance;
    let mut regions: Vec<RegionPlan> = m
        .region_order
        .iter()
        .map(|&r| RegionPlan {
            region: r,
            hosts: 0,
            start: None,
            end: None,
            announce_by: None,
        })
        .collect();
    let pos: HashMap<RegionIx, usize> = m
        .region_order
        .iter()
        .enumerate()
        .map(|(i, &r)| (r, i))
        .collect();
    for s in steps {
        let r = fleet.hosts[s.host as usize].region;
        if let Some(&i) = pos.get(&r) {
            let rp = &mut regions[i];
            rp.hosts += 1;
            rp.start = Some(rp.start.map_or(s.start, |x| x.min(s.start)));
            rp.end = Some(rp.end.map_or(s.end, |x| x.max(s.end)));
        }
    }
    for rp in &mut regions {
        rp.announce_by = rp.start.map(|s| s - m.notice_lead);
    }
    regions
}

fn new_group(region: RegionIx, cap: i64) -> Group {
    Group {
        region,
        hosts: Vec::new(),
        next: 0,
        taken: Vec::new(),
        remaining: 0,
        rem_work: 0,
        cap,
        deadline: i64::MAX,
        version: 0,
        bias: 1000,
    }
}

fn requeue(groups: &mut [Group], heaps: &mut [BinaryHeap<(Key, usize, u32)>], gi: usize, v: u32) {
    let g = &mut groups[gi];
    if g.version != v || g.remaining == 0 {
        return;
    }
    g.version += 1;
    heaps[g.region as usize].push((g.key(), gi, g.version));
}

/// How many hosts of cluster c can be out at once, at most.
fn capacity(fleet: &Fleet, limits: &[Limit], c: ClusterIx) -> i64 {
    let lim = &limits[c as usize];
    match lim.zones {
        None => lim.nodes as i64,
        Some(z) => {
            let mut counts: HashMap<&str, i64> = HashMap::new();
            for &h in &fleet.clusters[c as usize].members {
                *counts
                    .entry(fleet.hosts[h as usize].zone.as_str())
                    .or_default() += 1;
            }
            let mut v: Vec<i64> = counts.into_values().collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            (v.iter().take(z as usize).sum::<i64>())
                .min(lim.nodes as i64)
                .max(1)
        }
    }
}

fn pick(
    fleet: &Fleet,
    limits: &[Limit],
    live: &OutCount,
    host_zone: &[u32],
    g: &Group,
    t: i64,
) -> Pick {
    let windows = fleet.maintenance.windows[g.region as usize].as_deref();
    let mut wait_cluster = None;
    let mut wait_until: Option<i64> = None;
    for idx in g.next..g.hosts.len() {
        if g.taken[idx] {
            continue;
        }
        let h = g.hosts[idx];
        let host = &fleet.hosts[h as usize];
        if let Some(&c) = host
            .clusters
            .iter()
            .find(|&&c| !live.fits(c as usize, &limits[c as usize], host_zone[h as usize]))
        {
            wait_cluster.get_or_insert(c);
            continue;
        }
        match earliest_fit(windows, t, host.duration) {
            Some(s) if s == t => return Pick::Start(idx),
            Some(s) => wait_until = Some(wait_until.map_or(s, |w| w.min(s))),
            None => {}
        }
    }
    Pick::Wait {
        cluster: wait_cluster,
        until: wait_until,
    }
}

fn deadline_risks(fleet: &Fleet, steps: &[Step], earliest_start: i64, risks: &mut Vec<Risk>) {
    // one risk per (cluster or region) with late hosts
    type LateKey = (Option<ClusterIx>, RegionIx);
    let mut late: Vec<(LateKey, Vec<(HostIx, i64)>)> = Vec::new();
    let mut idx: HashMap<LateKey, usize> = HashMap::new();
    for s in steps {
        let host = &fleet.hosts[s.host as usize];
        if let Some(d) = host.deadline
            && s.end > d
        {
            let key = (host.clusters.first().copied(), host.region);
            let i = *idx.entry(key).or_insert_with(|| {
                late.push((key, Vec::new()));
                late.len() - 1
            });
            late[i].1.push((s.host, s.end - d));
        }
    }
    for ((cluster, region), hosts) in late {
        let worst = hosts.iter().map(|x| x.1).max().unwrap_or(0);
        let impossible = hosts.iter().any(|&(h, _)| {
            let host = &fleet.hosts[h as usize];
            host.deadline
                .is_some_and(|d| earliest_start + host.duration > d)
        });
        let what = match cluster {
            Some(c) => fleet.clusters[c as usize].id.clone(),
            None => fleet.region_name(region).to_string(),
        };
        let remedy = if impossible {
            "the deadline falls before the notice lead time allows a reboot: announce earlier (maintenance.start), shorten notice_lead, or ask the provider to move the event".to_string()
        } else {
            "raise max_concurrent / max_concurrent_per_region, use region_mode = \"parallel\", open more windows, or move the deadline".to_string()
        };
        risks.push(Risk {
            severity: Severity::Late,
            code: "deadline",
            cluster,
            region: Some(region),
            reason: format!(
                "{what}: {} host(s) finish after their deadline (latest by {})",
                hosts.len(),
                fmt_duration(worst)
            ),
            hosts: hosts.into_iter().map(|x| x.0).collect(),
            remedy,
        });
    }
}

/// Lower bound on the makespan (from `earliest_start`) of any plan for the hosts
/// not blocked. See docs/ARCHITECTURE.md for the derivation.
pub fn lower_bound(fleet: &Fleet, limits: &[Limit], blocked: &[bool], earliest_start: i64) -> i64 {
    let m = &fleet.maintenance;
    let nregions = fleet.regions.len();
    let g = m.max_concurrent.map_or(i64::MAX, |x| x as i64);
    let r = m.max_concurrent_per_region.map_or(i64::MAX, |x| x as i64);
    let scheduled = |h: HostIx| fleet.hosts[h as usize].in_scope && !blocked[h as usize];

    // per region: its hosts' durations under the region's concurrency
    let mut durs: Vec<Vec<i64>> = vec![Vec::new(); nregions];
    for (h, host) in fleet.hosts.iter().enumerate() {
        if scheduled(h as HostIx) {
            durs[host.region as usize].push(host.duration);
        }
    }
    let conc = g.min(r);
    let mut region_lb: Vec<i64> = durs.iter().map(|d| slots_bound(d, conc)).collect();
    let mut global_cluster_lb = 0i64;
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let lim = &limits[ci];
        if lim.nodes == 0 {
            continue;
        }
        let mut per_region: HashMap<RegionIx, Vec<&Host>> = HashMap::new();
        let mut all: Vec<&Host> = Vec::new();
        for &h in &c.members {
            if scheduled(h) {
                let host = &fleet.hosts[h as usize];
                per_region.entry(host.region).or_default().push(host);
                all.push(host);
            }
        }
        for (reg, hs) in per_region {
            let b = machine_bound(&hs, lim);
            let x = &mut region_lb[reg as usize];
            *x = (*x).max(b);
        }
        global_cluster_lb = global_cluster_lb.max(machine_bound(&all, lim));
    }
    let lb_work = match m.region_mode {
        RegionMode::Serial => region_lb.iter().sum::<i64>().max(global_cluster_lb),
        RegionMode::Parallel => {
            let all: Vec<i64> = durs.concat();
            region_lb
                .iter()
                .copied()
                .max()
                .unwrap_or(0)
                .max(slots_bound(&all, g))
                .max(global_cluster_lb)
        }
    };
    window_bound(fleet, earliest_start, lb_work)
}

/// With windows, the work must fit in open time after `earliest_start`: the time at
/// which `lb_work` of open window time has passed.
fn window_bound(fleet: &Fleet, earliest_start: i64, lb_work: i64) -> i64 {
    let m = &fleet.maintenance;
    if lb_work == 0 || m.windows.iter().any(|w| w.is_none()) || m.windows.is_empty() {
        return lb_work;
    }
    let mut union: Vec<Interval> = m.windows.iter().flatten().flatten().copied().collect();
    union = crate::model::merge_intervals(union);
    let mut need = lb_work;
    for iv in union {
        let a = iv.start.max(earliest_start);
        if iv.end <= a {
            continue;
        }
        let open = iv.end - a;
        if open >= need {
            return a + need - earliest_start;
        }
        need -= open;
    }
    lb_work
}

/// Bound for hosts sharing one cluster limit: [`slots_bound`] at the cluster's capacity,
/// and with a zone budget of z zones: the zones' own bounds add up, over z (at any
/// moment at most z zones have members out, so the time each zone is busy sums to at
/// most z × the makespan, and a zone is busy at least its own bound).
fn machine_bound(hs: &[&Host], lim: &Limit) -> i64 {
    let d: Vec<i64> = hs.iter().map(|h| h.duration).collect();
    let Some(z) = lim.zones else {
        return slots_bound(&d, (lim.nodes as i64).max(1));
    };
    let mut by_zone: HashMap<&str, Vec<i64>> = HashMap::new();
    for h in hs {
        by_zone.entry(h.zone.as_str()).or_default().push(h.duration);
    }
    let mut sizes: Vec<i64> = by_zone.values().map(|d| d.len() as i64).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let cap = sizes
        .iter()
        .take(z as usize)
        .sum::<i64>()
        .min(lim.nodes as i64)
        .max(1);
    let zones: i64 = by_zone
        .values()
        .map(|d| slots_bound(d, (lim.nodes as i64).max(1)))
        .sum();
    slots_bound(&d, cap).max(div_ceil(zones, (z as i64).max(1)))
}

/// Bound for hosts of which at most `k` are out at once (unit demands: as on k
/// machines): the work over k, the longest host, and for each m ≥ 1 the m + 1 shortest
/// of the m·k + 1 longest hosts (some slot runs m + 1 of them one after another; with
/// m = ⌈n/k⌉ − 1 this covers the ⌈n/k⌉ shortest hosts run in sequence).
fn slots_bound(d: &[i64], k: i64) -> i64 {
    let mut d = d.to_vec();
    d.sort_unstable_by(|a, b| b.cmp(a));
    let longest = d.first().copied().unwrap_or(0);
    let n = d.len() as i64;
    if k <= 0 || k >= n {
        return longest;
    }
    let total: i64 = d.iter().sum();
    let mut prefix = Vec::with_capacity(d.len() + 1);
    prefix.push(0i64);
    for x in &d {
        prefix.push(prefix.last().copied().unwrap_or(0) + x);
    }
    let mut best = longest.max(div_ceil(total, k));
    let mut mm = 1i64;
    while mm * k < n {
        // hosts mk−m+1 .. mk+1 (1-based) of the longest first
        let hi = (mm * k + 1) as usize;
        let lo = hi - (mm as usize + 1);
        best = best.max(prefix[hi] - prefix[lo]);
        mm += 1;
    }
    best
}

fn div_ceil(a: i64, b: i64) -> i64 {
    if b == i64::MAX || b <= 0 {
        // unlimited concurrency: this term bounds nothing
        return 0;
    }
    (a + b - 1) / b
}
