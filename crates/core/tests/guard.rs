//! Provider notices against budgets: collisions are found, said once as a `provider_risk`
//! notice by the engine (never again after a restore), and the plan gets the members of a
//! colliding cluster done ahead of the provider's windows when it can.

use rollcall_core::budget::cluster_limit;
use rollcall_core::engine::*;
use rollcall_core::guard::{add_notice, collisions};
use rollcall_core::model::{self, ClusterIx, Fleet, HostIx};
use rollcall_core::plan::plan;
use rollcall_core::simworld::{SimParams, VirtualRun, World};
use rollcall_fleet::{LoadOptions, load_file};
use std::path::Path;
use std::sync::Arc;

fn example() -> Fleet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/xsa-108.toml");
    load_file(&path, &LoadOptions { now: 0 }).unwrap()
}

/// A cluster of at least three members that may lose one at a time, none of them named by
/// the example's own notice.
fn one_at_a_time(f: &Fleet) -> ClusterIx {
    let noticed = |h: &HostIx| f.notices.iter().any(|n| n.hosts.contains(h));
    let c = f
        .clusters
        .iter()
        .position(|c| {
            c.members.len() >= 3
                && cluster_limit(c).nodes == 1
                && c.members.iter().all(|&h| f.hosts[h as usize].in_scope)
                && !c.members.iter().any(noticed)
        })
        .expect("the example has a cluster of 3+ that may lose one member");
    c as ClusterIx
}

/// The provider's window for `hosts`, starting `after` seconds after the maintenance starts.
fn notice(f: &mut Fleet, id: &str, hosts: Vec<HostIx>, after: i64) -> i64 {
    let nb = f.maintenance.start + after;
    add_notice(
        f,
        model::Notice {
            id: id.into(),
            code: "system-reboot".into(),
            source: Some("aws-ec2".into()),
            hosts,
            not_before: nb,
            not_after: Some(nb + 2 * 3600),
        },
    );
    nb
}

fn risks(j: &[Output]) -> Vec<&Notice> {
    j.iter()
        .filter_map(|o| match o {
            Output::Notice(n) if n.kind == NoticeKind::ProviderRisk => Some(n),
            _ => None,
        })
        .collect()
}

#[test]
fn overlapping_windows_beyond_the_budget_are_a_collision_and_separate_ones_are_not() {
    let mut f = example();
    let c = one_at_a_time(&f);
    let m = f.clusters[c as usize].members.clone();
    // separate windows: one member at a time is within the budget
    notice(&mut f, "a", vec![m[0]], 3 * 86400);
    notice(&mut f, "b", vec![m[1]], 4 * 86400);
    let theirs = collisions(&f);
    assert!(theirs.iter().all(|x| x.cluster != c), "{theirs:?}");
    // a third window overlapping the first
    notice(&mut f, "c", vec![m[2]], 3 * 86400 + 3600);
    let got: Vec<_> = collisions(&f)
        .into_iter()
        .filter(|x| x.cluster == c)
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].cluster, c);
    assert_eq!(got[0].hosts, {
        let mut v = vec![m[0], m[2]];
        v.sort();
        v
    });
    assert_eq!(got[0].limit, 1);
    assert_eq!(got[0].from, f.maintenance.start + 3 * 86400 + 3600);
}

#[test]
fn the_engine_says_a_collision_once_and_gets_the_members_done_ahead() {
    let mut f = example();
    let c = one_at_a_time(&f);
    let m = f.clusters[c as usize].members.clone();
    let nb = notice(&mut f, "w", vec![m[0], m[1]], 3 * 86400);
    let f = Arc::new(f);
    let p = plan(&f);
    let engine = Engine::new(f.clone(), &p, EngineConfig::default());
    let world = World::new(f.clone(), SimParams::default());
    let mut run = VirtualRun::new(engine, world, f.maintenance.start);
    run.run_until(i64::MAX);
    assert_eq!(run.engine.state(), RunState::Completed);
    let cid = &f.clusters[c as usize].id;
    let said: Vec<_> = risks(&run.journal)
        .into_iter()
        .filter(|n| n.text.contains(&format!("of {cid}'s")))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0].at, f.maintenance.start, "said when the run starts");
    assert!(
        said[0].text.contains("ahead within the budget"),
        "{}",
        said[0].text
    );
    for h in [m[0], m[1]] {
        let s = p.steps.iter().find(|s| s.host == h).unwrap();
        assert!(
            s.end <= nb,
            "{} planned to end after the window",
            f.hosts[h as usize].id
        );
    }
    assert!(check_journal(&f, &p, &run.journal).is_empty());
}

#[test]
fn a_restored_run_does_not_say_its_collisions_again() {
    let mut f = example();
    let c = one_at_a_time(&f);
    let m = f.clusters[c as usize].members.clone();
    notice(&mut f, "w", vec![m[0], m[1]], 3 * 86400);
    let f = Arc::new(f);
    let p = plan(&f);
    let mut e = Engine::new(f.clone(), &p, EngineConfig::default());
    e.step(f.maintenance.start);
    let first = e.drain_outputs();
    assert!(!risks(&first).is_empty());
    let mut back = Engine::restore(f.clone(), &p, EngineConfig::default(), &first).unwrap();
    back.step(f.maintenance.start + 1);
    assert!(risks(&back.drain_outputs()).is_empty());
}

#[test]
fn a_collision_the_plan_cannot_get_ahead_of_names_the_remedy() {
    let mut f = example();
    let c = one_at_a_time(&f);
    let m = f.clusters[c as usize].members.clone();
    // the window opens before the notice lead lets anything start
    notice(&mut f, "soon", vec![m[0], m[1]], 60);
    let f_id = f.clusters[c as usize].id.clone();
    let p = plan(&f);
    let mut e = Engine::new(Arc::new(f), &p, EngineConfig::default());
    e.step(0);
    let out = e.drain_outputs();
    let cid = &f_id;
    let said: Vec<_> = risks(&out)
        .into_iter()
        .filter(|n| n.text.contains(&format!("of {cid}'s")))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].text.contains("cannot be done ahead"),
        "{}",
        said[0].text
    );
    assert!(
        said[0].text.contains("fail over or add a node"),
        "{}",
        said[0].text
    );
}
