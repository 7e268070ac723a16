//! Property tests: for random fleets the plan never exceeds a budget or survivor
//! load, never breaks concurrency, windows or region order, accounts for every host,
//! and its makespan is at least the lower bound. The auditor recomputes every rule
//! from the fleet; the mutation tests below prove it catches each kind of violation.

use proptest::prelude::*;
use rollcall_core::audit::audit;
use rollcall_core::generate::{GenParams, Rng, generate};
use rollcall_core::plan::{Severity, Step, plan};
use rollcall_core::*;

#[derive(Debug, Clone)]
struct Shape {
    seed: u64,
    hosts: usize,
    regions: usize,
    zones: usize,
    clusters: usize,
    share_hosts: bool,
    windows: u8,
    deadlines: bool,
    scope: bool,
    gmax: Option<u32>,
    rmax: Option<u32>,
    parallel: bool,
}

prop_compose! {
    fn shapes()(
        seed in any::<u64>(),
        hosts in 1usize..80,
        regions in 1usize..5,
        zones in 1usize..4,
        clusters in 0usize..20,
        share_hosts in any::<bool>(),
        windows in 0u8..3,
        deadlines in any::<bool>(),
        scope in any::<bool>(),
        gmax in prop::option::of(1u32..12),
        rmax in prop::option::of(1u32..8),
        parallel in any::<bool>()
    ) -> Shape {
        Shape { seed, hosts, regions, zones, clusters, share_hosts, windows, deadlines, scope, gmax, rmax, parallel }
    }
}

const T0: i64 = 1_411_675_200;

/// A random fleet with every feature the planner handles: shared hosts, zone
/// budgets, tight loads, allow_outage, windows, deadlines, scopes, limits.
fn random_fleet(s: &Shape) -> Fleet {
    let mut rng = Rng::new(s.seed);
    let regions: Vec<String> = (0..s.regions).map(|i| format!("r{i}")).collect();
    let mut hosts: Vec<Host> = (0..s.hosts)
        .map(|i| {
            let r = rng.below(s.regions as u64) as u32;
            Host {
                id: format!("h{i}"),
                address: format!("h{i}"),
                region: r,
                zone: format!("r{r}-z{}", rng.below(s.zones as u64)),
                provider: "p".into(),
                tags: vec![],
                duration: 60 * rng.range(1, 40) as i64,
                clusters: vec![],
                in_scope: !s.scope || rng.chance(0.85),
                deadline: None,
            }
        })
        .collect();
    let mut clusters = Vec::new();
    let mut free: Vec<usize> = (0..s.hosts).collect();
    for ci in 0..s.clusters {
        let n = rng.range(1, 8) as usize;
        let mut members: Vec<HostIx> = Vec::new();
        for _ in 0..n {
            let pick = if s.share_hosts && rng.chance(0.3) {
                Some(rng.below(s.hosts as u64) as usize)
            } else if !free.is_empty() {
                Some(free.swap_remove(rng.below(free.len() as u64) as usize))
            } else {
                None
            };
            if let Some(h) = pick
                && !members.contains(&(h as HostIx))
            {
                members.push(h as HostIx);
            }
        }
        if members.is_empty() {
            continue;
        }
        let cix = clusters.len() as ClusterIx;
        for &h in &members {
            hosts[h as usize].clusters.push(cix);
        }
        let budget = if rng.chance(0.3) {
            Budget::Zones(rng.range(1, 2) as u32)
        } else {
            Budget::Nodes(rng.range(1, 3) as u32)
        };
        clusters.push(Cluster {
            id: format!("c{ci}"),
            kind: Kind::Elasticsearch,
            tenant: None,
            members,
            budget,
            load: (rng.unit() * 0.9 * 100.0).round() / 100.0,
            max_load: 0.5 + (rng.unit() * 0.5 * 100.0).round() / 100.0,
            allow_outage: rng.chance(0.1),
            replicas: None,
            return_timeout: 900,
            gate_timeout: 3600,
        });
    }
    let lead = 60 * rng.range(0, 90) as i64;
    let mut windows: Vec<Option<Vec<Interval>>> = vec![None; s.regions];
    if s.windows > 0 {
        for (r, w) in windows.iter_mut().enumerate() {
            if s.windows == 2 && r % 2 == 1 {
                continue; // some regions always open
            }
            let mut list = Vec::new();
            let mut t = T0 + 60 * rng.range(0, 120) as i64;
            for _ in 0..rng.range(1, 30) {
                let len = 60 * rng.range(10, 240) as i64;
                list.push(Interval {
                    start: t,
                    end: t + len,
                });
                t += len + 60 * rng.range(0, 600) as i64;
            }
            *w = Some(list);
        }
    }
    if s.deadlines {
        for h in hosts.iter_mut() {
            if rng.chance(0.3) {
                h.deadline = Some(T0 + lead + 60 * rng.range(0, 600) as i64);
            }
        }
    }
    let order: Vec<RegionIx> = {
        let mut o: Vec<RegionIx> = (0..s.regions as u32).collect();
        for i in (1..o.len()).rev() {
            o.swap(i, rng.below(i as u64 + 1) as usize);
        }
        o
    };
    Fleet {
        name: "prop".into(),
        regions,
        hosts,
        clusters,
        tenants: vec![],
        maintenance: Maintenance {
            name: "m".into(),
            action: Action::Reboot,
            start: T0,
            notice_lead: lead,
            region_order: order,
            region_mode: if s.parallel {
                RegionMode::Parallel
            } else {
                RegionMode::Serial
            },
            max_concurrent: s.gmax,
            max_concurrent_per_region: s.rmax,
            on_missing: OnMissing::Pause,
            windows,
            horizon: T0 + 30 * 86400,
            effort: None,
        },
        notices: vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn plans_of_random_fleets_break_no_rule(s in shapes()) {
        let f = random_fleet(&s);
        let p = plan(&f);
        let v = audit(&f, &p);
        prop_assert!(v.is_empty(), "violations: {:#?}", v);
        // every in-scope host is scheduled or named by a blocking risk
        let scheduled: std::collections::HashSet<HostIx> = p.steps.iter().map(|s| s.host).collect();
        for (h, host) in f.hosts.iter().enumerate() {
            if host.in_scope && !scheduled.contains(&(h as HostIx)) {
                prop_assert!(p.risks.iter().any(|r| r.severity == Severity::Blocked && r.hosts.contains(&(h as HostIx))));
            }
        }
        prop_assert!(p.makespan >= p.lower_bound);
        // a cluster the planner refuses is one whose survivors really cannot take a loss
        for (ci, c) in f.clusters.iter().enumerate() {
            let n = c.members.len() as u32;
            if p.limits[ci].nodes == 0 {
                prop_assert!(!c.allow_outage);
                prop_assert!(!survivors_fit(n, 1, c.load, c.max_load));
            }
        }
    }

    #[test]
    fn generated_fleets_plan_within_5_percent_of_the_bound(seed in any::<u64>(), hosts in 200usize..3000, per in 4usize..10, parallel in any::<bool>()) {
        let mut gp = GenParams::new(hosts, hosts / per, seed);
        if parallel { gp.region_mode = RegionMode::Parallel; }
        let f = generate(&gp);
        let p = plan(&f);
        prop_assert!(audit(&f, &p).is_empty());
        prop_assert!(p.ratio() <= 1.05, "ratio {} (makespan {} lb {})", p.ratio(), p.makespan, p.lower_bound);
    }
}

// ---- the auditor catches each kind of violation (so the properties can fail)

fn simple_fleet() -> Fleet {
    let shape = Shape {
        seed: 7,
        hosts: 30,
        regions: 2,
        zones: 3,
        clusters: 6,
        share_hosts: false,
        windows: 0,
        deadlines: false,
        scope: false,
        gmax: Some(4),
        rmax: Some(3),
        parallel: false,
    };
    let mut f = random_fleet(&shape);
    for c in f.clusters.iter_mut() {
        c.load = 0.3;
        c.max_load = 0.9;
        c.budget = Budget::Nodes(1);
        c.allow_outage = false;
    }
    f
}

#[test]
fn auditor_accepts_the_real_plan() {
    let f = simple_fleet();
    let p = plan(&f);
    assert!(audit(&f, &p).is_empty());
    assert!(!p.steps.is_empty());
}

#[test]
fn auditor_catches_a_budget_violation() {
    let f = simple_fleet();
    let mut p = plan(&f);
    // move every member of the first multi-node cluster to start together
    let c = f
        .clusters
        .iter()
        .find(|c| c.members.len() >= 2)
        .expect("a multi-node cluster");
    let t = p
        .steps
        .iter()
        .find(|s| s.host == c.members[0])
        .unwrap()
        .start;
    for s in p.steps.iter_mut() {
        if c.members.contains(&s.host) {
            let d = s.end - s.start;
            s.start = t;
            s.end = t + d;
        }
    }
    let v = audit(&f, &p);
    assert!(v.iter().any(|m| m.contains("over budget")), "{v:?}");
}

#[test]
fn auditor_catches_survivor_overload_dropped_hosts_and_region_overlap() {
    let mut f = simple_fleet();
    let p = plan(&f);
    // raising the load after planning makes the same plan overload survivors
    let big = f
        .clusters
        .iter()
        .position(|c| c.members.len() >= 3)
        .unwrap();
    f.clusters[big].load = 0.85;
    f.clusters[big].max_load = 0.86;
    let v = audit(&f, &p);
    assert!(v.iter().any(|m| m.contains("max_load")), "{v:?}");

    let f = simple_fleet();
    let mut p = plan(&f);
    p.steps.pop();
    let v = audit(&f, &p);
    assert!(
        v.iter()
            .any(|m| m.contains("neither scheduled nor reported")),
        "{v:?}"
    );

    let f = simple_fleet();
    let mut p = plan(&f);
    let last_region = *f.maintenance.region_order.last().unwrap();
    let first = p.steps[0];
    for s in p.steps.iter_mut() {
        if f.hosts[s.host as usize].region == last_region {
            let d = s.end - s.start;
            *s = Step {
                start: first.start,
                end: first.start + d,
                ..*s
            };
            break;
        }
    }
    let v = audit(&f, &p);
    assert!(v.iter().any(|m| m.contains("before region")), "{v:?}");
}

#[test]
fn auditor_catches_windows_concurrency_and_lead_time() {
    let mut f = simple_fleet();
    let p = plan(&f);
    // a window that closes before the plan runs
    f.maintenance.windows = vec![
        Some(vec![Interval {
            start: T0,
            end: T0 + 60
        }]);
        2
    ];
    let v = audit(&f, &p);
    assert!(
        v.iter().any(|m| m.contains("outside every window")),
        "{v:?}"
    );

    let mut f = simple_fleet();
    let p = plan(&f);
    f.maintenance.max_concurrent = Some(1);
    let v = audit(&f, &p);
    assert!(v.iter().any(|m| m.contains("max_concurrent")), "{v:?}");

    let f = simple_fleet();
    let mut p = plan(&f);
    let d = p.steps[0].end - p.steps[0].start;
    p.steps[0].start = f.maintenance.start - 10;
    p.steps[0].end = p.steps[0].start + d;
    let v = audit(&f, &p);
    assert!(v.iter().any(|m| m.contains("notice lead")), "{v:?}");
}

#[test]
fn serial_regions_follow_the_order_and_parallel_regions_overlap() {
    let mut f = generate(&GenParams::new(600, 100, 3));
    f.maintenance.region_order.reverse();
    let p = plan(&f);
    assert!(audit(&f, &p).is_empty());
    let starts: Vec<i64> = p.regions.iter().map(|r| r.start.unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    assert_eq!(
        p.regions[0].region, 5,
        "the first region planned is the first in the order"
    );

    f.maintenance.region_mode = RegionMode::Parallel;
    f.maintenance.max_concurrent = None;
    let p2 = plan(&f);
    assert!(audit(&f, &p2).is_empty());
    assert!(
        p2.regions
            .iter()
            .all(|r| r.start == Some(p2.earliest_start))
    );
    assert!(p2.makespan < p.makespan);
}

#[test]
fn deadlines_come_first_and_misses_are_reported() {
    let mut f = generate(&GenParams::new(300, 50, 11));
    f.maintenance.region_mode = RegionMode::Parallel;
    let victim = f.clusters[3].members[2];
    let es = f.maintenance.start + f.maintenance.notice_lead;
    f.hosts[victim as usize].deadline = Some(es + f.hosts[victim as usize].duration);
    let p = plan(&f);
    let s = p.steps.iter().find(|s| s.host == victim).unwrap();
    assert_eq!(s.start, es, "the host with a deadline goes first");
    assert!(p.risks.iter().all(|r| r.code != "deadline"));

    // an impossible deadline (before the lead time allows) is reported, with the reason
    f.hosts[victim as usize].deadline = Some(f.maintenance.start);
    let p = plan(&f);
    let r = p
        .risks
        .iter()
        .find(|r| r.code == "deadline")
        .expect("deadline risk");
    assert_eq!(r.severity, Severity::Late);
    assert!(r.hosts.contains(&victim));
    assert!(r.remedy.contains("announce earlier"), "{}", r.remedy);
}
