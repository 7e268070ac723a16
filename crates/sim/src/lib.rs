//! The simulator: the same engine (`rollcall`) and the strategies of 2014 on simulated
//! hosts and a virtual clock, measured the same way.
//!
//! Strategies:
//! - `region-at-once`: the provider reboots every host of a region together, regions one
//!   after another (Rackspace / AWS, 2014); it waits for hosts to boot, not for clusters,
//!   and not for hosts that do not come back.
//! - `global-serial`: kured's defaults: one host at a time, at most one per period (1 h);
//!   the lock is held until the host is back, forever if it never is.
//! - `batch:N` / `batch:N%`: Ansible `serial`: N hosts at a time in inventory order; the
//!   reboot module waits up to 600 s for each, then the next batch goes.
//! - `rollcall`: the planner and the engine.
//! - `provider` / `rollcall-guard` (guard mode): the provider reboots every host at a random
//!   time inside its notice window; with `rollcall-guard` rollcall plans with the windows'
//!   starts as deadlines and reboots hosts itself ahead of the provider; the provider still
//!   reboots whatever rollcall has not touched by then.
//!
//! The model (see docs/simulator.md for the assumptions): a host is *down* from its reboot until it
//! is reachable again and *recovering* until its clusters have re-replicated its data. A
//! cluster is *red* (data unavailable) when at least one member is down and more members are
//! down or recovering than its budget tolerates; it is *overloaded* (unresponsive) when
//! `load·n/(n − down) > 1`. Customer-visible downtime is the union of the two.

use rollcall_core::engine::{Engine, EngineConfig, NoticeKind, Output, RunState, check_journal};
use rollcall_core::plan::{Plan, plan};
use rollcall_core::simworld::{SimParams, VirtualRun, World};
use rollcall_core::*;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Strategy {
    RegionAtOnce,
    GlobalSerial {
        period: i64,
    },
    Batch {
        count: Option<usize>,
        percent: Option<f64>,
    },
    Rollcall,
    Provider,
    RollcallGuard,
}

impl Strategy {
    pub fn name(&self) -> String {
        match self {
            Strategy::RegionAtOnce => "region-at-once".into(),
            Strategy::GlobalSerial { .. } => "global-serial".into(),
            Strategy::Batch { count: Some(n), .. } => format!("batch:{n}"),
            Strategy::Batch {
                percent: Some(p), ..
            } => format!("batch:{p}%"),
            Strategy::Batch { .. } => "batch".into(),
            Strategy::Rollcall => "rollcall".into(),
            Strategy::Provider => "provider".into(),
            Strategy::RollcallGuard => "rollcall-guard".into(),
        }
    }

    /// `all`, or a comma-separated list of names (`batch:5`, `batch:10%`).
    pub fn parse_list(s: &str) -> Result<Vec<Strategy>, String> {
        if s == "all" {
            return Ok(vec![
                Strategy::RegionAtOnce,
                Strategy::GlobalSerial { period: 3600 },
                Strategy::Batch {
                    count: None,
                    percent: Some(10.0),
                },
                Strategy::Rollcall,
            ]);
        }
        if s == "guard" {
            return Ok(vec![Strategy::Provider, Strategy::RollcallGuard]);
        }
        s.split(',')
            .map(|x| match x.trim() {
                "region-at-once" => Ok(Strategy::RegionAtOnce),
                "global-serial" => Ok(Strategy::GlobalSerial { period: 3600 }),
                "rollcall" => Ok(Strategy::Rollcall),
                "provider" => Ok(Strategy::Provider),
                "rollcall-guard" => Ok(Strategy::RollcallGuard),
                b if b.starts_with("batch:") => {
                    let v = &b[6..];
                    if let Some(p) = v.strip_suffix('%') {
                        match p.parse::<f64>() {
                            Ok(p) if p > 0.0 && p <= 100.0 => Ok(Strategy::Batch { count: None, percent: Some(p) }),
                            _ => Err(format!("`{b}`: the percentage must be in (0, 100]")),
                        }
                    } else {
                        match v.parse::<usize>() {
                            Ok(n) if n > 0 => Ok(Strategy::Batch { count: Some(n), percent: None }),
                            _ => Err(format!("`{b}`: the batch size must be a positive number or a percentage")),
                        }
                    }
                }
                other => Err(format!(
                    "unknown strategy `{other}`: use all, guard, region-at-once, global-serial, batch:N, batch:N%, rollcall, provider, rollcall-guard"
                )),
            })
            .collect()
    }
}

/// What one simulated run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub strategy: String,
    pub seed: u64,
    /// Every host the strategy meant to reboot was rebooted and is back.
    pub finished: bool,
    /// Seconds from the first possible start (announcement + lead) to the last host back
    /// (healthy, for rollcall); `None` if the strategy never finished.
    pub makespan: Option<i64>,
    pub red_cluster_minutes: f64,
    pub overloaded_cluster_minutes: f64,
    pub unavailable_cluster_minutes: f64,
    /// Clusters that were red at some point.
    pub clusters_lost_availability: usize,
    pub regions: usize,
    /// Regions whose first reboot came at least the notice lead after their announcement.
    pub notices_on_time: usize,
    pub hosts_rebooted: usize,
    pub hosts_missing: usize,
    /// Guard mode: hosts the provider rebooted itself.
    pub provider_reboots: usize,
    /// Engine rule violations found in the journal (rollcall strategies).
    pub violations: Vec<String>,
    /// (seconds from the first possible start, unavailable clusters) at each change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<(i64, u32)>,
}

/// Options for a comparison.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub params: SimParams,
    /// Record the timeline of unavailable clusters (for charts).
    pub timeline: bool,
    /// Engine probe and gate intervals in simulation (seconds).
    pub probe_interval: i64,
    pub gate_interval: i64,
    /// Guard mode: length of each region's provider window and the gap between regions' windows.
    pub guard_window: i64,
    pub guard_spacing: i64,
    /// How often the engine probes a missing host in simulation (seconds).
    pub missing_probe_interval: i64,
    /// A simulated run stops this long after the first possible start (seconds); a strategy
    /// still busy then counts as unfinished.
    pub max_duration: i64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            params: SimParams::default(),
            timeline: false,
            probe_interval: 20,
            gate_interval: 30,
            guard_window: 4 * 3600,
            guard_spacing: 6 * 3600,
            missing_probe_interval: 300,
            max_duration: 5 * 86400,
        }
    }
}

/// The provider's windows in guard mode: region i (in maintenance order) gets
/// `[start + lead + spacing·(i+1), + window]`; the provider reboots each host at a random
/// time inside (a pure function of seed and host).
pub fn provider_schedule(fleet: &Fleet, seed: u64, o: &SimOptions) -> Vec<(i64, HostIx)> {
    let m = &fleet.maintenance;
    let es = m.start + m.notice_lead;
    let mut out = Vec::new();
    for (i, &r) in m.region_order.iter().enumerate() {
        let nb = es + o.guard_spacing * (i as i64 + 1);
        for (h, host) in fleet.hosts.iter().enumerate() {
            if host.region == r && host.in_scope {
                let u = generate::Rng::new(seed ^ 0x5EED ^ ((h as u64) << 20)).unit();
                out.push((nb + (u * o.guard_window as f64) as i64, h as HostIx));
            }
        }
    }
    out
}

/// The provider's window starts as deadlines: what rollcall plans against in guard mode.
pub fn guard_fleet(fleet: &Fleet, o: &SimOptions) -> Fleet {
    let mut f = fleet.clone();
    let m = &fleet.maintenance;
    let es = m.start + m.notice_lead;
    for (i, &r) in m.region_order.iter().enumerate() {
        let nb = es + o.guard_spacing * (i as i64 + 1);
        let hosts = (0..f.hosts.len() as HostIx)
            .filter(|&h| f.hosts[h as usize].region == r)
            .collect();
        let notice = Notice {
            id: format!("provider-{}", f.region_name(r)),
            code: "system-reboot".into(),
            source: Some("sim".into()),
            hosts,
            not_before: nb,
            not_after: Some(nb + o.guard_window),
        };
        rollcall_core::guard::add_notice(&mut f, notice);
    }
    f.maintenance.region_mode = RegionMode::Parallel;
    f
}

/// What playing a strategy through left: the world, and what is measured beside it.
struct Played {
    world: World,
    finished: bool,
    /// When the last host was back (run clock).
    end: i64,
    notices_on_time: usize,
    violations: Vec<String>,
    provider_reboots: usize,
}

impl Played {
    fn new(world: World, es: i64) -> Played {
        Played {
            world,
            finished: true,
            end: es,
            notices_on_time: 0,
            violations: Vec::new(),
            provider_reboots: 0,
        }
    }

    /// Host `h` rebooted: the end moves to its return, or the run never finishes.
    fn back(&mut self, h: HostIx) {
        match self.world.up_at(h) {
            Some(u) => self.end = self.end.max(u),
            None => self.finished = false,
        }
    }
}

/// The hosts in scope, region by region in the fleet's order.
fn in_order(fleet: &Fleet) -> Vec<HostIx> {
    let m = &fleet.maintenance;
    m.region_order
        .iter()
        .flat_map(|&r| region_hosts(fleet, r))
        .collect()
}

fn region_hosts(fleet: &Fleet, r: RegionIx) -> impl Iterator<Item = HostIx> + '_ {
    (0..fleet.hosts.len() as HostIx).filter(move |&h| {
        let x = &fleet.hosts[h as usize];
        x.in_scope && x.region == r
    })
}

/// The provider's way in 2014: a whole region at once, announced an hour ahead, the next
/// region when the last host that comes back is back.
fn region_at_once(fleet: &Fleet, world: World, es: i64) -> Played {
    let mut p = Played::new(world, es);
    let mut t = es;
    for &r in &fleet.maintenance.region_order {
        let hosts: Vec<HostIx> = region_hosts(fleet, r).collect();
        if hosts.is_empty() {
            continue;
        }
        p.notices_on_time += 1; // the provider announced each region an hour ahead
        for &h in &hosts {
            p.world.reboot(h, t);
        }
        let w = &p.world;
        let back = hosts
            .iter()
            .filter_map(|&h| (!w.goes_missing(h, 1)).then(|| w.up_at(h)).flatten())
            .max()
            .unwrap_or(t);
        for &h in &hosts {
            p.back(h);
        }
        t = back;
    }
    p
}

/// A global reboot lock (locksmith-style): one host at a time, the next check a period later.
fn global_serial(fleet: &Fleet, world: World, es: i64, period: i64) -> Played {
    let mut p = Played::new(world, es);
    let mut t = es;
    for h in in_order(fleet) {
        p.world.reboot(h, t);
        match p.world.up_at(h) {
            // the lock is released when the node is back; the next check is a period later
            Some(u) => {
                p.end = p.end.max(u);
                t = (t + period).max(u);
            }
            None => {
                p.finished = false; // lock held forever
                break;
            }
        }
    }
    p
}

/// Ansible-style batches (`serial: N` or `N%`), each waiting up to 600 s for its hosts.
fn batches(fleet: &Fleet, world: World, es: i64, n: usize) -> Played {
    let mut p = Played::new(world, es);
    let mut t = es;
    for batch in in_order(fleet).chunks(n.max(1)) {
        let mut batch_end = t;
        for &h in batch {
            p.world.reboot(h, t);
            // the reboot module waits up to 600 s, then marks the host failed
            let waited = p.world.up_at(h).map_or(600, |u| (u - t).min(600));
            batch_end = batch_end.max(t + waited);
            p.back(h);
        }
        t = batch_end;
    }
    p
}

/// rollcall's engine on the virtual clock; with the provider's own reboots (`Provider`,
/// `RollcallGuard`), on the guard's fleet.
fn engine_run(
    fleet: &Arc<Fleet>,
    plan0: &Plan,
    strategy: &Strategy,
    seed: u64,
    o: &SimOptions,
    params: SimParams,
) -> Played {
    let m = &fleet.maintenance;
    let es = m.start + m.notice_lead;
    let rollcall = matches!(strategy, Strategy::Rollcall);
    let provider = matches!(strategy, Strategy::Provider);
    let run_fleet = match rollcall {
        true => fleet.clone(),
        false => Arc::new(guard_fleet(fleet, o)),
    };
    let run_plan = match rollcall {
        true => plan0.clone(),
        false => plan(&run_fleet),
    };
    let cfg = EngineConfig {
        probe_interval: o.probe_interval,
        gate_interval: o.gate_interval,
        missing_probe_interval: o.missing_probe_interval,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(run_fleet.clone(), &run_plan, cfg);
    if provider {
        // rollcall stands aside: the provider does everything
        let control = rollcall_core::engine::Control::Abort;
        engine.handle(m.start, rollcall_core::engine::Event::Control { control });
    }
    let mut vr = VirtualRun::new(engine, World::new(run_fleet.clone(), params), m.start);
    if !rollcall {
        vr = vr.with_provider_reboots(provider_schedule(fleet, seed, o));
    }
    vr.run_until(m.horizon.min(es + o.max_duration));
    vr.apply_remaining_forced();
    let finished = vr.engine.state() == RunState::Completed || provider;
    let mut p = Played::new(vr.world, es);
    p.provider_reboots = vr.provider_reboots.len();
    p.finished = finished;
    if !provider {
        p.violations = check_journal(&run_fleet, &run_plan, &vr.journal);
        p.notices_on_time = notices_on_time(&vr.journal, m.notice_lead);
    }
    p.end = match finished && !provider {
        true => vr.now,
        false => es,
    };
    for h in 0..fleet.hosts.len() {
        if !p.world.hosts[h].reboots.is_empty() {
            p.back(h as HostIx);
        }
    }
    p
}

/// Regions whose start came at least `lead` after their announcement.
fn notices_on_time(journal: &[Output], lead: i64) -> usize {
    let mut sched: HashMap<RegionIx, i64> = HashMap::new();
    let mut on_time = 0;
    for out in journal {
        let Output::Notice(n) = out else { continue };
        match n.kind {
            NoticeKind::Scheduled => {
                sched.insert(n.region, n.at);
            }
            NoticeKind::Started if sched.get(&n.region).is_some_and(|&a| n.at >= a + lead) => {
                on_time += 1
            }
            _ => {}
        }
    }
    on_time
}

/// Simulate one run of a strategy.
pub fn simulate(
    fleet: &Arc<Fleet>,
    p: &Plan,
    strategy: &Strategy,
    seed: u64,
    o: &SimOptions,
) -> Outcome {
    let params = SimParams {
        seed,
        ..o.params.clone()
    };
    let m = &fleet.maintenance;
    let es = m.start + m.notice_lead;
    let world = World::new(fleet.clone(), params.clone());
    let played = match strategy {
        Strategy::RegionAtOnce => region_at_once(fleet, world, es),
        Strategy::GlobalSerial { period } => global_serial(fleet, world, es, *period),
        Strategy::Batch { count, percent } => {
            let all = in_order(fleet).len();
            let n = match (count, percent) {
                (Some(n), _) => *n,
                (None, Some(pc)) => ((all as f64 * pc / 100.0).ceil() as usize).max(1),
                _ => 1,
            };
            batches(fleet, world, es, n)
        }
        Strategy::Rollcall | Strategy::Provider | Strategy::RollcallGuard => {
            engine_run(fleet, p, strategy, seed, o, params)
        }
    };
    let Played {
        world,
        finished,
        end,
        notices_on_time,
        violations,
        provider_reboots,
    } = played;
    let mut out = measure(fleet, &world, es, o.timeline);
    out.strategy = strategy.name();
    out.seed = seed;
    out.finished = finished;
    out.makespan = finished.then_some(end - es);
    // the chart shows each strategy until it is done
    if let (Some(mk), Some(&(x, y))) = (out.makespan, out.timeline.last())
        && mk > x
    {
        out.timeline.push((mk, y));
    }
    out.notices_on_time = notices_on_time;
    out.violations = violations;
    out.provider_reboots = provider_reboots;
    out
}

/// Downtime figures from the world's reboot history.
/// The end of what is known about a world: its last finite event.
fn known_until(world: &World, es: i64) -> i64 {
    let mut horizon = es;
    for (h, sh) in world.hosts.iter().enumerate() {
        if let Some(&t) = sh.reboots.last() {
            horizon = horizon.max(t);
            if let Some(r) = world.recovered_at(h as HostIx) {
                horizon = horizon.max(r);
            }
        }
    }
    horizon
}

/// What one cluster went through: seconds red, overloaded and unavailable, and its
/// unavailable intervals as (+1 at the start, -1 at the end) events.
#[derive(Default)]
struct ClusterSpans {
    red_s: i64,
    over_s: i64,
    unavail_s: i64,
    was_red: bool,
    intervals: Vec<(i64, i32)>,
}

/// Each member's (time, Δdown, Δrecovering, member) events, in time order.
fn member_events(c: &Cluster, world: &World, horizon: i64) -> Vec<(i64, i32, i32, u32)> {
    let down = |h: HostIx| -> Option<(i64, i64)> {
        let t = *world.hosts[h as usize].reboots.last()?;
        Some((t, world.up_at(h).unwrap_or(horizon).max(t)))
    };
    let mut ev = Vec::new();
    for (i, &h) in c.members.iter().enumerate() {
        let Some((a, b)) = down(h) else { continue };
        if b > a {
            ev.push((a, 1, 0, i as u32));
            ev.push((b, -1, 0, i as u32));
        }
        let r = world.recovered_at(h).unwrap_or(b).max(b);
        if r > b {
            ev.push((b, 0, 1, i as u32));
            ev.push((r, 0, -1, i as u32));
        }
    }
    ev.sort_by_key(|e| (e.0, e.1 + e.2));
    ev
}

/// More members unsafe (down or recovering) than the budget allows.
fn over_budget(c: &Cluster, unsafe_m: &[i32], zone_of: &[&str]) -> bool {
    let unsafe_count = unsafe_m.iter().filter(|&&x| x > 0).count() as u32;
    match c.budget {
        Budget::Nodes(b) => unsafe_count > b,
        Budget::Zones(z) => {
            let mut zs: Vec<&str> = unsafe_m
                .iter()
                .enumerate()
                .filter(|(_, x)| **x > 0)
                .map(|(j, _)| zone_of[j])
                .collect();
            zs.sort_unstable();
            zs.dedup();
            zs.len() as u32 > z
        }
    }
}

fn cluster_spans(fleet: &Fleet, c: &Cluster, world: &World, horizon: i64) -> ClusterSpans {
    let n = c.members.len() as u32;
    let zone_of: Vec<&str> = c
        .members
        .iter()
        .map(|&h| fleet.hosts[h as usize].zone.as_str())
        .collect();
    let mut out = ClusterSpans::default();
    let mut unsafe_m = vec![0i32; c.members.len()];
    let (mut d, mut prev_t, mut state) = (0i32, i64::MIN, (false, false));
    let mut unavail_since: Option<i64> = None;
    for (t, dd, dr, i) in member_events(c, world, horizon) {
        if prev_t != i64::MIN {
            let span = t - prev_t;
            out.red_s += if state.0 { span } else { 0 };
            out.over_s += if state.1 { span } else { 0 };
            out.unavail_s += if state.0 || state.1 { span } else { 0 };
        }
        d += dd;
        unsafe_m[i as usize] += dd + dr;
        let red = d > 0 && over_budget(c, &unsafe_m, &zone_of);
        let over = d > 0 && (d as u32 >= n || c.load * n as f64 / (n - d as u32) as f64 > 1.0);
        out.was_red |= red;
        let unavailable = red || over;
        if unavailable && unavail_since.is_none() {
            unavail_since = Some(t);
        } else if !unavailable && let Some(a) = unavail_since.take() {
            out.intervals.push((a, 1));
            out.intervals.push((t, -1));
        }
        state = (red, over);
        prev_t = t;
    }
    if let Some(a) = unavail_since {
        out.intervals.push((a, 1));
        out.intervals.push((horizon.max(a), -1));
    }
    out
}

/// Unavailable clusters over time (from the start `es`), from every cluster's intervals.
fn timeline_of(mut intervals: Vec<(i64, i32)>, es: i64) -> Vec<(i64, u32)> {
    intervals.sort_unstable();
    let mut cur = 0i32;
    let mut tl = vec![(0, 0)];
    for (t, d) in intervals {
        cur += d;
        let x = t - es;
        match tl.last_mut() {
            Some(last) if last.0 == x => last.1 = cur.max(0) as u32,
            _ => tl.push((x, cur.max(0) as u32)),
        }
    }
    tl
}

fn measure(fleet: &Fleet, world: &World, es: i64, timeline: bool) -> Outcome {
    let horizon = known_until(world, es);
    let mut all = ClusterSpans::default();
    let mut lost = 0;
    for c in &fleet.clusters {
        let cs = cluster_spans(fleet, c, world, horizon);
        all.red_s += cs.red_s;
        all.over_s += cs.over_s;
        all.unavail_s += cs.unavail_s;
        lost += cs.was_red as usize;
        all.intervals.extend(cs.intervals);
    }
    let tl = match timeline {
        true => timeline_of(all.intervals, es),
        false => Vec::new(),
    };
    let rebooted = world.hosts.iter().filter(|h| !h.reboots.is_empty()).count();
    let missing = world
        .hosts
        .iter()
        .enumerate()
        .filter(|(h, sh)| {
            !sh.reboots.is_empty() && world.goes_missing(*h as HostIx, sh.reboots.len())
        })
        .count();
    Outcome {
        strategy: String::new(),
        seed: 0,
        finished: true,
        makespan: None,
        red_cluster_minutes: all.red_s as f64 / 60.0,
        overloaded_cluster_minutes: all.over_s as f64 / 60.0,
        unavailable_cluster_minutes: all.unavail_s as f64 / 60.0,
        clusters_lost_availability: lost,
        regions: fleet.maintenance.region_order.len(),
        notices_on_time: 0,
        hosts_rebooted: rebooted,
        hosts_missing: missing,
        provider_reboots: 0,
        violations: Vec::new(),
        timeline: tl,
    }
}

/// Percentiles of one figure across runs.
#[derive(Debug, Clone, Serialize)]
pub struct Dist {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn dist(mut v: Vec<f64>) -> Dist {
    if v.is_empty() {
        return Dist {
            mean: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            max: 0.0,
        };
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |x: f64| v[((v.len() as f64 - 1.0) * x).round() as usize];
    Dist {
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        max: q(1.0),
    }
}

/// One strategy across many runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub strategy: String,
    pub runs: usize,
    pub unfinished: usize,
    pub makespan_hours: Dist,
    pub unavailable_cluster_minutes: Dist,
    pub red_cluster_minutes: Dist,
    pub overloaded_cluster_minutes: Dist,
    pub clusters_lost_availability: Dist,
    pub notices_on_time: Dist,
    pub regions: usize,
    pub hosts_rebooted: Dist,
    pub hosts_missing: Dist,
    pub provider_reboots: Dist,
    pub violations: usize,
    /// The first violation and its seed, to replay.
    pub first_violation: Option<(u64, String)>,
}

pub fn summarize(strategy: &str, outs: &[Outcome]) -> Summary {
    let f = |g: &dyn Fn(&Outcome) -> f64| dist(outs.iter().map(g).collect());
    Summary {
        strategy: strategy.to_string(),
        runs: outs.len(),
        unfinished: outs.iter().filter(|o| !o.finished).count(),
        makespan_hours: dist(
            outs.iter()
                .filter_map(|o| o.makespan)
                .map(|m| m as f64 / 3600.0)
                .collect(),
        ),
        unavailable_cluster_minutes: f(&|o| o.unavailable_cluster_minutes),
        red_cluster_minutes: f(&|o| o.red_cluster_minutes),
        overloaded_cluster_minutes: f(&|o| o.overloaded_cluster_minutes),
        clusters_lost_availability: f(&|o| o.clusters_lost_availability as f64),
        notices_on_time: f(&|o| o.notices_on_time as f64),
        regions: outs.first().map_or(0, |o| o.regions),
        hosts_rebooted: f(&|o| o.hosts_rebooted as f64),
        hosts_missing: f(&|o| o.hosts_missing as f64),
        provider_reboots: f(&|o| o.provider_reboots as f64),
        violations: outs.iter().map(|o| o.violations.len()).sum(),
        first_violation: outs
            .iter()
            .find_map(|o| o.violations.first().map(|v| (o.seed, v.clone()))),
    }
}

/// Run `runs` seeds of each strategy on `threads` threads. Deterministic: the same
/// seeds give the same outcomes whatever the thread count.
pub fn compare(
    fleet: &Arc<Fleet>,
    strategies: &[Strategy],
    runs: u64,
    seed: u64,
    threads: usize,
    o: &SimOptions,
) -> Vec<Vec<Outcome>> {
    let p = plan(fleet);
    let threads = threads.max(1);
    strategies
        .iter()
        .map(|s| {
            let mut outs: Vec<Outcome> = Vec::with_capacity(runs as usize);
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (p, s) = (&p, s);
                        scope.spawn(move || {
                            (0..runs)
                                .filter(|i| (*i as usize) % threads == t)
                                .map(|i| {
                                    let mut opts = o.clone();
                                    opts.timeline = o.timeline && i == 0;
                                    simulate(fleet, p, s, seed.wrapping_add(i), &opts)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                for h in handles {
                    outs.extend(h.join().unwrap_or_default());
                }
            });
            outs.sort_by_key(|o| o.seed);
            outs
        })
        .collect()
}

/// A chart of unavailable clusters over time, one line per strategy (SVG, no dependencies).
pub fn svg_chart(title: &str, series: &[(String, Vec<(i64, u32)>)]) -> String {
    let (w, h, ml, mr, mt, mb) = (960.0, 420.0, 60.0, 240.0, 40.0, 50.0);
    // a series far longer than the others (kured's one host per hour) is clipped, noted
    let mut ends: Vec<i64> = series
        .iter()
        .map(|(_, s)| s.last().map_or(0, |p| p.0))
        .collect();
    ends.sort_unstable();
    let longest = ends.last().copied().unwrap_or(3600);
    let second = if ends.len() > 1 {
        ends[ends.len() - 2]
    } else {
        longest
    };
    let clip = if longest > 2 * second.max(3600) {
        (second.max(3600) as f64 * 1.3) as i64
    } else {
        longest
    };
    let max_x = clip.max(3600) as f64;
    let max_y = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let sx = |x: f64| ml + (x / max_x) * (w - ml - mr);
    let sy = |y: f64| h - mb - (y / max_y) * (h - mt - mb);
    let colors = [
        "#d62728", "#ff7f0e", "#9467bd", "#2ca02c", "#1f77b4", "#8c564b",
    ];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{ml}\" y=\"24\" font-size=\"15\">{}</text>\n",
        xml(title)
    );
    // axes and ticks
    s.push_str(&format!(
        "<line x1=\"{ml}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - mb,
        w - mr,
        h - mb
    ));
    s.push_str(&format!(
        "<line x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - mb
    ));
    let hours = (max_x / 3600.0).ceil() as i64;
    let step = ((hours as f64 / 12.0).ceil() as i64).max(1);
    for hr in (0..=hours).step_by(step as usize) {
        let x = sx(hr as f64 * 3600.0);
        s.push_str(&format!("<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#ccc\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{hr}h</text>\n", h - mb, h - mb + 5.0, h - mb + 20.0));
    }
    let ystep = ((max_y / 8.0).ceil() as u32).max(1);
    for y in (0..=max_y as u32).step_by(ystep as usize) {
        let yy = sy(y as f64);
        s.push_str(&format!("<line x1=\"{}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{y}</text>\n", ml, w - mr, ml - 6.0, yy + 4.0));
    }
    s.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">hours after the first possible start</text>\n", (ml + w - mr) / 2.0, h - 12.0));
    s.push_str(&format!("<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">unavailable clusters</text>\n", (mt + h - mb) / 2.0, (mt + h - mb) / 2.0));
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        let mut d = String::new();
        let mut prev_y = 0u32;
        let clipped = pts.last().is_some_and(|p| p.0 as f64 > max_x);
        let pts: Vec<(i64, u32)> = pts
            .iter()
            .copied()
            .filter(|p| p.0 as f64 <= max_x)
            .collect();
        for (j, &(x, y)) in pts.iter().enumerate() {
            let (px, py) = (sx(x as f64), sy(y as f64));
            if j == 0 {
                d.push_str(&format!("M{px:.1},{py:.1}"));
            } else {
                d.push_str(&format!(
                    " L{px:.1},{:.1} L{px:.1},{py:.1}",
                    sy(prev_y as f64)
                ));
            }
            prev_y = y;
        }
        s.push_str(&format!(
            "<path d=\"{d}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.8\"/>\n"
        ));
        let ly = mt + 20.0 * i as f64;
        let label = if clipped {
            format!("{name} (to {}h →)", longest / 3600)
        } else {
            name.clone()
        };
        s.push_str(&format!("<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"3\"/><text x=\"{}\" y=\"{}\">{}</text>\n", w - mr + 12.0, w - mr + 32.0, w - mr + 38.0, ly + 4.0, xml(&label)));
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
