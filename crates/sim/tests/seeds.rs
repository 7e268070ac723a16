//! Thousands of seeded simulations with faults; any broken engine rule fails the test
//! and names the seed to replay (`rollcall simulate FLEET --strategy rollcall --seed S --runs 1`).

use rollcall_core::generate::{GenParams, generate};
use rollcall_core::plan::plan;
use rollcall_core::simworld::SimParams;
use rollcall_core::*;
use rollcall_fleet::{LoadOptions, load_file};
use rollcall_sim::{SimOptions, Strategy, simulate};
use std::path::Path;
use std::sync::Arc;

fn example() -> Fleet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/xsa-108.toml");
    load_file(&path, &LoadOptions { now: 0 }).unwrap()
}

fn faults(seed: u64) -> SimOptions {
    SimOptions {
        params: SimParams {
            seed,
            missing_rate: 0.1,
            missing_for: if seed % 5 == 0 {
                None
            } else {
                Some(3600 + (seed % 4) as i64 * 1800)
            },
            flap_rate: 0.05,
            preflight_fail_rate: 0.02,
            ..SimParams::default()
        },
        ..SimOptions::default()
    }
}

fn policy(seed: u64) -> OnMissing {
    match seed % 3 {
        0 => OnMissing::Pause,
        1 => OnMissing::Replace,
        _ => OnMissing::Continue,
    }
}

#[test]
fn two_thousand_seeds_with_faults_break_no_rule() {
    let base = example();
    let mut fleets: Vec<(Arc<Fleet>, rollcall_core::plan::Plan)> = Vec::new();
    for p in [OnMissing::Pause, OnMissing::Replace, OnMissing::Continue] {
        let mut f = base.clone();
        f.maintenance.on_missing = p;
        let f = Arc::new(f);
        let pl = plan(&f);
        fleets.push((f, pl));
    }
    // two threads (the machine has two cores); each takes every other seed
    let runs: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let fleets = &fleets;
                scope.spawn(move || {
                    let mut n = 0;
                    for seed in (t..2000u64).step_by(2) {
                        let (f, p) = &fleets[seed as usize % 3];
                        assert_eq!(f.maintenance.on_missing, policy(seed));
                        let o = simulate(f, p, &Strategy::Rollcall, seed, &faults(seed));
                        assert!(
                            o.violations.is_empty(),
                            "seed {seed} ({:?}): {:?}",
                            policy(seed),
                            o.violations
                        );
                        assert_eq!(
                            o.red_cluster_minutes, 0.0,
                            "seed {seed}: rollcall made a cluster red"
                        );
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a seed failed"))
            .sum()
    });
    assert_eq!(runs, 2000);
}

#[test]
fn generated_fleets_in_parallel_mode_with_faults_break_no_rule() {
    for seed in 0..300u64 {
        let mut gp = GenParams::new(
            150 + (seed as usize % 7) * 60,
            30 + (seed as usize % 5) * 8,
            seed,
        );
        if seed % 2 == 0 {
            gp.region_mode = RegionMode::Parallel;
        }
        let mut f = generate(&gp);
        f.maintenance.on_missing = policy(seed);
        let f = Arc::new(f);
        let p = plan(&f);
        let o = simulate(&f, &p, &Strategy::Rollcall, seed, &faults(seed));
        assert!(
            o.violations.is_empty(),
            "generated seed {seed}: {:?}",
            o.violations
        );
    }
}

#[test]
fn the_baselines_lose_clusters_and_rollcall_does_not() {
    let f = Arc::new(example());
    let p = plan(&f);
    let o = SimOptions {
        params: SimParams {
            missing_rate: 0.2,
            ..SimParams::default()
        },
        ..SimOptions::default()
    };
    let at_once = simulate(&f, &p, &Strategy::RegionAtOnce, 1, &o);
    let rollcall = simulate(&f, &p, &Strategy::Rollcall, 1, &o);
    assert!(at_once.clusters_lost_availability > 50, "{at_once:?}");
    assert_eq!(rollcall.clusters_lost_availability, 0);
    assert!(rollcall.violations.is_empty());
    assert_eq!(rollcall.notices_on_time, 6);
    // kured's one-host-per-hour takes weeks for a few hundred hosts
    let serial = simulate(&f, &p, &Strategy::GlobalSerial { period: 3600 }, 1, &o);
    assert!(serial.makespan.unwrap() > 300 * 3600);
    // a host that never returns stalls kured forever
    let never = SimOptions {
        params: SimParams {
            missing_rate: 0.2,
            missing_for: None,
            ..SimParams::default()
        },
        ..SimOptions::default()
    };
    assert!(!simulate(&f, &p, &Strategy::GlobalSerial { period: 3600 }, 1, &never).finished);
}

#[test]
fn seeds_replay_exactly() {
    let f = Arc::new(example());
    let p = plan(&f);
    let a = simulate(&f, &p, &Strategy::Rollcall, 42, &faults(42));
    let b = simulate(&f, &p, &Strategy::Rollcall, 42, &faults(42));
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn guard_mode_reboots_ahead_of_the_provider() {
    let f = Arc::new(example());
    let p = plan(&f);
    let o = SimOptions::default();
    let provider = simulate(&f, &p, &Strategy::Provider, 3, &o);
    let guard = simulate(&f, &p, &Strategy::RollcallGuard, 3, &o);
    assert!(guard.violations.is_empty(), "{:?}", guard.violations);
    assert!(provider.provider_reboots > 300);
    assert!(
        guard.provider_reboots < provider.provider_reboots / 4,
        "guard left {} hosts to the provider",
        guard.provider_reboots
    );
    assert!(guard.unavailable_cluster_minutes < provider.unavailable_cluster_minutes);
}

#[test]
fn strategy_names_parse_and_bad_ones_are_explained() {
    assert_eq!(Strategy::parse_list("all").unwrap().len(), 4);
    assert_eq!(
        Strategy::parse_list("batch:5,batch:20%").unwrap()[1].name(),
        "batch:20%"
    );
    let e = Strategy::parse_list("batch:0").unwrap_err();
    assert!(e.contains("positive"), "{e}");
    let e = Strategy::parse_list("yolo").unwrap_err();
    assert!(e.contains("unknown strategy `yolo`"), "{e}");
}
