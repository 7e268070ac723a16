//! The engine against a simulated world on a virtual clock: complete runs, every
//! on-missing policy, gate failures, and crash/restore at many points without a
//! second reboot or a budget breach.

use rollcall_core::engine::*;
use rollcall_core::generate::{GenParams, Rng, generate};
use rollcall_core::plan::plan;
use rollcall_core::simworld::{SimParams, VirtualRun, World};
use rollcall_core::*;
use rollcall_fleet::{LoadOptions, load_file};
use std::path::Path;
use std::sync::Arc;

fn example() -> Fleet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/xsa-108.toml");
    load_file(&path, &LoadOptions { now: 0 }).unwrap()
}

fn start(fleet: Fleet, params: SimParams) -> VirtualRun {
    let fleet = Arc::new(fleet);
    let p = plan(&fleet);
    let engine = Engine::new(fleet.clone(), &p, EngineConfig::default());
    let world = World::new(fleet.clone(), params);
    let now = fleet.maintenance.start;
    VirtualRun::new(engine, world, now)
}

/// Hosts not done, with their phase and note (for failure messages).
fn stuck(run: &VirtualRun) -> String {
    let fleet = run.engine.fleet().clone();
    let mut out = format!("at {} state {:?}:", fmt_time(run.now), run.engine.state());
    for o in &run.journal {
        if let Output::Notice(n) = o
            && n.kind == NoticeKind::Escalation
        {
            out.push_str(&format!("\n  escalation at {}: {}", fmt_time(n.at), n.text));
        }
    }
    for h in 0..fleet.hosts.len() {
        let ph = run.engine.phase(h as HostIx);
        if !ph.is_final() || ph == Phase::Failed {
            out.push_str(&format!(
                "\n  {} {} {:?} reboots {:?} up_at {:?}",
                fleet.hosts[h].id,
                ph.name(),
                run.engine.note(h as HostIx),
                run.world.hosts[h].reboots,
                run.world.up_at(h as HostIx)
            ));
        }
    }
    out
}

fn assert_clean(run: &VirtualRun) {
    let fleet = run.engine.fleet().clone();
    let p = plan(&fleet);
    let v = check_journal(&fleet, &p, &run.journal);
    assert!(v.is_empty(), "rule violations: {v:#?}");
    for (h, sh) in run.world.hosts.iter().enumerate() {
        assert!(
            sh.reboots.len() <= 1,
            "{} rebooted {} times",
            fleet.hosts[h].id,
            sh.reboots.len()
        );
    }
}

/// Run to the end; the run must complete and keep every rule.
fn complete(fleet: Fleet, params: SimParams) -> VirtualRun {
    let mut run = start(fleet, params);
    run.run_until(i64::MAX);
    assert_eq!(run.engine.state(), RunState::Completed, "{}", stuck(&run));
    assert_clean(&run);
    run
}

#[test]
fn a_full_maintenance_completes_and_keeps_every_rule() {
    let f = example();
    let planned = plan(&f);
    let run = complete(f, SimParams::default());
    let fleet = run.engine.fleet().clone();
    for s in &planned.steps {
        assert_eq!(
            run.engine.phase(s.host),
            Phase::Healthy,
            "{}",
            fleet.hosts[s.host as usize].id
        );
        assert_eq!(run.world.hosts[s.host as usize].reboots.len(), 1);
    }
    for &h in &planned.unscheduled {
        assert_eq!(run.engine.phase(h), Phase::Skipped);
        assert!(
            run.world.hosts[h as usize].reboots.is_empty(),
            "a refused host was rebooted"
        );
    }
    // every region: announced, started no earlier than lead after, completed notice
    let notices: Vec<&rollcall_core::engine::Notice> = run
        .journal
        .iter()
        .filter_map(|o| {
            if let Output::Notice(n) = o {
                Some(n)
            } else {
                None
            }
        })
        .collect();
    for &r in &fleet.maintenance.region_order {
        let sched = notices
            .iter()
            .find(|n| n.region == r && n.kind == NoticeKind::Scheduled)
            .unwrap();
        let started = notices
            .iter()
            .find(|n| n.region == r && n.kind == NoticeKind::Started)
            .unwrap();
        assert!(started.at >= sched.at + fleet.maintenance.notice_lead);
        assert!(
            notices
                .iter()
                .any(|n| n.region == r && n.kind == NoticeKind::Completed)
        );
    }
    // the engine finishes close to the plan's prediction (plan estimates include recovery)
    let end = run.now - planned.earliest_start;
    let ratio = end as f64 / planned.makespan as f64;
    assert!(
        (0.7..1.3).contains(&ratio),
        "engine took {end}s, plan said {}s",
        planned.makespan
    );
}

#[test]
fn pause_policy_stops_new_work_until_the_missing_host_returns() {
    let mut f = example();
    f.maintenance.on_missing = OnMissing::Pause;
    let params = SimParams {
        missing_rate: 0.05,
        missing_for: Some(2 * 3600),
        seed: 3,
        ..SimParams::default()
    };
    let run = complete(f, params);
    // while paused for a missing host, no host started
    let mut paused = false;
    let mut saw_pause = false;
    for o in &run.journal {
        match o {
            Output::State {
                state:
                    RunState::Paused {
                        reason: PauseReason::Missing,
                    },
                ..
            } => {
                paused = true;
                saw_pause = true;
            }
            Output::State {
                state: RunState::Running,
                ..
            } => paused = false,
            Output::Transition(t) if t.to == Phase::Preflight => {
                assert!(!paused, "a host started while paused")
            }
            _ => {}
        }
    }
    assert!(saw_pause, "some host went missing with 5% missing rate");
    let missing: Vec<&Output> = run
        .journal
        .iter()
        .filter(|o| matches!(o, Output::Notice(n) if n.kind == NoticeKind::HostMissing))
        .collect();
    assert!(!missing.is_empty());
    assert!(
        run.journal
            .iter()
            .any(|o| matches!(o, Output::Notice(n) if n.kind == NoticeKind::HostReturned))
    );
}

#[test]
fn replace_policy_replaces_hosts_that_never_return() {
    let mut f = example();
    f.maintenance.on_missing = OnMissing::Replace;
    let params = SimParams {
        missing_rate: 0.05,
        missing_for: None,
        seed: 5,
        ..SimParams::default()
    };
    let run = complete(f, params);
    let replaced = (0..run.world.hosts.len())
        .filter(|&h| run.engine.phase(h as HostIx) == Phase::Replaced)
        .count();
    let sent = run
        .world
        .hosts
        .iter()
        .filter(|h| h.replaced_at.is_some())
        .count();
    assert!(
        replaced > 0 && replaced == sent,
        "replaced {replaced}, replacements made {sent}"
    );
}

#[test]
fn continue_policy_holds_the_cluster_and_finishes_the_rest() {
    let mut f = example();
    f.maintenance.on_missing = OnMissing::Continue;
    let params = SimParams {
        missing_rate: 0.05,
        missing_for: None,
        seed: 5,
        ..SimParams::default()
    };
    let mut run = start(f, params);
    run.run_until(run.now + 3 * 86400);
    assert_clean(&run);
    let fleet = run.engine.fleet().clone();
    let missing: Vec<HostIx> = (0..fleet.hosts.len() as HostIx)
        .filter(|&h| run.engine.phase(h) == Phase::Missing)
        .collect();
    assert!(!missing.is_empty());
    assert_ne!(
        run.engine.state(),
        RunState::Completed,
        "a host is still missing"
    );
    let held: std::collections::HashSet<ClusterIx> = missing
        .iter()
        .flat_map(|&h| fleet.hosts[h as usize].clusters.clone())
        .collect();
    let p = plan(&fleet);
    for s in &p.steps {
        let host = &fleet.hosts[s.host as usize];
        let ph = run.engine.phase(s.host);
        if host.clusters.iter().any(|c| held.contains(c)) {
            // back but waiting for a cluster that cannot be healthy without its missing member
            assert!(
                matches!(
                    ph,
                    Phase::Healthy | Phase::Missing | Phase::Announced | Phase::Restoring
                ),
                "{} is {}",
                host.id,
                ph.name()
            );
        } else if ph != Phase::Missing {
            assert_eq!(ph, Phase::Healthy, "{} outside held clusters", host.id);
        }
    }
}

#[test]
fn flapping_gates_slow_but_never_break_the_run() {
    let f = example();
    let params = SimParams {
        flap_rate: 0.3,
        seed: 9,
        ..SimParams::default()
    };
    complete(f, params);
}

#[test]
fn a_cluster_that_never_recovers_escalates_and_keeps_its_budget() {
    let mut f = example();
    // members take 10x their estimate to recover: the gate times out
    f.clusters[0].gate_timeout = 120;
    let c0: Vec<HostIx> = f.clusters[0].members.clone();
    let mut run = start(f, SimParams::default());
    run.run_until(i64::MAX);
    assert_clean(&run);
    assert_eq!(
        run.engine.state(),
        RunState::Paused {
            reason: PauseReason::Escalation
        }
    );
    let failed: Vec<HostIx> = c0
        .iter()
        .copied()
        .filter(|&h| run.engine.phase(h) == Phase::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "only one member was touched");
    assert_eq!(
        run.engine.cluster_out(0),
        1,
        "the failed member still counts against the budget"
    );
    assert!(
        run.journal
            .iter()
            .any(|o| matches!(o, Output::Notice(n) if n.kind == NoticeKind::Escalation))
    );
    // an operator resumes: other clusters go on, this one stays held by its budget
    run.engine.handle(
        run.now,
        Event::Control {
            control: Control::Resume,
        },
    );
    run.run_until(i64::MAX);
    assert_clean(&run);
    assert!(
        c0.iter()
            .filter(|&&h| run.engine.phase(h) == Phase::Healthy)
            .count()
            == 0
    );
}

#[test]
fn preflight_failures_skip_the_host_untouched() {
    let f = example();
    let params = SimParams {
        preflight_fail_rate: 0.1,
        seed: 4,
        ..SimParams::default()
    };
    let run = complete(f, params);
    let fleet = run.engine.fleet().clone();
    let mut failed = 0;
    for h in 0..fleet.hosts.len() {
        if run.engine.phase(h as HostIx) == Phase::Failed {
            failed += 1;
            assert!(
                run.world.hosts[h].reboots.is_empty(),
                "a host that failed preflight was rebooted"
            );
        }
    }
    assert!(failed > 0);
}

#[test]
fn pause_resume_and_abort() {
    let f = example();
    let mut run = start(f, SimParams::default());
    run.run_until(run.now + 3 * 3600);
    run.engine.handle(
        run.now,
        Event::Control {
            control: Control::Pause,
        },
    );
    let started_before = run
        .journal
        .iter()
        .filter(|o| matches!(o, Output::Transition(t) if t.to == Phase::Preflight))
        .count();
    run.run_until(run.now + 3600);
    let started_after = run
        .journal
        .iter()
        .filter(|o| matches!(o, Output::Transition(t) if t.to == Phase::Preflight))
        .count();
    assert_eq!(started_before, started_after, "no host starts while paused");
    assert!(matches!(
        run.engine.state(),
        RunState::Paused {
            reason: PauseReason::Operator
        }
    ));
    run.engine.handle(
        run.now,
        Event::Control {
            control: Control::Abort,
        },
    );
    run.run_until(i64::MAX);
    assert_eq!(run.engine.state(), RunState::Aborted);
    assert_clean(&run);
    let fleet = run.engine.fleet().clone();
    for h in 0..fleet.hosts.len() {
        assert!(
            !run.engine.phase(h as HostIx).is_active(),
            "nothing left half-done after abort"
        );
    }
}

/// Kill the engine at many random points (losing everything in flight, or just
/// after journalling and before acting), restore it from the journal, go on.
fn crash_and_resume(
    fleet: Fleet,
    params: SimParams,
    seed: u64,
    crashes: usize,
) -> (VirtualRun, usize) {
    let fleet = Arc::new(fleet);
    let p = plan(&fleet);
    let mut rng = Rng::new(seed);
    let world = World::new(fleet.clone(), params);
    let mut run = VirtualRun::new(
        Engine::new(fleet.clone(), &p, EngineConfig::default()),
        world,
        fleet.maintenance.start,
    );
    let mut done = 0;
    while done < crashes && !run.engine.state().is_over() {
        for _ in 0..rng.range(1, 60) {
            if !run.advance() {
                break;
            }
        }
        let (world, journal, now) = if rng.chance(0.5) {
            run.crash()
        } else {
            run.crash_before_execute()
        };
        let engine =
            Engine::restore(fleet.clone(), &p, EngineConfig::default(), &journal).expect("restore");
        run = VirtualRun::new(engine, world, now);
        run.journal = journal;
        done += 1;
    }
    run.run_until(i64::MAX);
    (run, done)
}

/// [`crash_and_resume`], then the run must be completed with every rule kept; the number
/// of crashes.
fn crashed_run_completes(fleet: Fleet, params: SimParams, seed: u64, n: usize) -> usize {
    let sim_seed = params.seed;
    let (run, crashes) = crash_and_resume(fleet, params, seed, n);
    assert_eq!(
        run.engine.state(),
        RunState::Completed,
        "seed {sim_seed}: {}",
        stuck(&run)
    );
    assert_clean(&run);
    crashes
}

#[test]
fn crashes_at_many_points_never_reboot_twice_or_break_a_budget() {
    for seed in 0..8 {
        let params = SimParams {
            seed,
            missing_rate: 0.02,
            missing_for: Some(3600),
            flap_rate: 0.05,
            ..SimParams::default()
        };
        let crashes = crashed_run_completes(example(), params, seed, 200);
        assert!(crashes >= 50, "only {crashes} crashes");
    }
}

#[test]
fn crashes_on_generated_fleets_in_parallel_mode() {
    for seed in 0..6 {
        let mut gp = GenParams::new(400, 60, seed);
        gp.region_mode = RegionMode::Parallel;
        let params = SimParams {
            seed,
            missing_rate: 0.03,
            missing_for: Some(1800),
            ..SimParams::default()
        };
        crashed_run_completes(generate(&gp), params, seed + 100, 100);
    }
}

/// Killed between journalling a reboot and sending it: on restore the host is probed at
/// once, and since it still answers on its old boot id (a host that got the reboot would
/// be down or on a new boot id), the reboot is sent again right away, not after
/// `reboot_grace` counted from the old intent (issue #13: 314 s instead of 45 s).
#[test]
fn a_journalled_reboot_that_never_ran_is_sent_again_at_once_after_a_probe() {
    let f = example();
    let fleet = Arc::new(f);
    let p = plan(&fleet);
    let mut run = VirtualRun::new(
        Engine::new(fleet.clone(), &p, EngineConfig::default()),
        World::new(fleet.clone(), SimParams::default()),
        fleet.maintenance.start,
    );
    // advance until the first reboot intent is about to be journalled, then crash before it runs
    loop {
        run.advance();
        if run.engine.phase(p.steps[0].host) == Phase::Rebooting {
            break;
        }
    }
    let h = p.steps[0].host;
    let (world, journal, now) = run.crash_before_execute();
    assert!(journal.iter().any(
        |o| matches!(o, Output::Command { command: Command::Reboot { host, .. }, .. } if *host == h)
    ));
    assert!(
        world.hosts[h as usize].reboots.is_empty(),
        "the reboot never ran"
    );
    let engine = Engine::restore(fleet.clone(), &p, EngineConfig::default(), &journal).unwrap();
    assert_eq!(
        engine.phase(h),
        Phase::Returning,
        "restored as 'reboot may have happened'"
    );
    let mut run = VirtualRun::new(engine, world, now);
    run.journal = journal;
    run.run_until(i64::MAX);
    assert_eq!(run.engine.state(), RunState::Completed, "{}", stuck(&run));
    assert_eq!(run.world.hosts[h as usize].reboots.len(), 1);
    let first = run.world.hosts[h as usize].reboots[0];
    assert!(
        first <= now + EngineConfig::default().probe_interval,
        "re-sent at once after the first probe, not after the grace: sent {}s after the restore",
        first - now
    );
    let resent = run.journal.iter().any(|o| {
        matches!(o, Output::Transition(t) if t.host == h && t.from == Phase::Returning
            && t.to == Phase::Rebooting
            && t.note.as_deref().is_some_and(|n| n.contains("never took")))
    });
    assert!(resent, "the resend is journalled with its reason");
    assert_clean(&run);
}

/// Killed after the reboot was sent but before it was acknowledged: the restored host is
/// down (or back on a new boot id) at the first probe, so nothing is sent again.
#[test]
fn a_journalled_reboot_that_ran_is_never_sent_again_after_a_restore() {
    let fleet = Arc::new(example());
    let p = plan(&fleet);
    let mut run = VirtualRun::new(
        Engine::new(fleet.clone(), &p, EngineConfig::default()),
        World::new(fleet.clone(), SimParams::default()),
        fleet.maintenance.start,
    );
    let h = p.steps[0].host;
    while run.engine.phase(h) != Phase::Rebooting {
        run.advance();
    }
    // the next step journals the reboot and executes it; then the orchestrator dies
    // (results in flight are lost)
    run.advance();
    assert_eq!(
        run.world.hosts[h as usize].reboots.len(),
        1,
        "the reboot ran"
    );
    let (world, journal, now) = run.crash();
    let engine = Engine::restore(fleet.clone(), &p, EngineConfig::default(), &journal).unwrap();
    let mut run = VirtualRun::new(engine, world, now);
    run.journal = journal;
    run.run_until(i64::MAX);
    assert_eq!(run.engine.state(), RunState::Completed, "{}", stuck(&run));
    assert!(run.world.hosts[h as usize].reboots.len() <= 1);
    assert_clean(&run);
}

#[test]
fn foreign_journals_are_refused() {
    let f = Arc::new(example());
    let p = plan(&f);
    let bad = vec![Output::Transition(Transition {
        host: 99_999,
        from: Phase::Pending,
        to: Phase::Announced,
        at: 0,
        boot_id: None,
        out: false,
        note: None,
    })];
    let e = Engine::restore(f.clone(), &p, EngineConfig::default(), &bad)
        .err()
        .unwrap();
    assert!(e.contains("not in this fleet"), "{e}");
    let h = p.steps[0].host;
    let bad = vec![Output::Transition(Transition {
        host: h,
        from: Phase::Restoring,
        to: Phase::Healthy,
        at: 0,
        boot_id: None,
        out: false,
        note: None,
    })];
    let e = Engine::restore(f, &p, EngineConfig::default(), &bad)
        .err()
        .unwrap();
    assert!(e.contains("does not match"), "{e}");
}

#[test]
fn journal_checker_catches_a_budget_breach() {
    let f = example();
    let mut run = start(f, SimParams::default());
    run.run_until(i64::MAX);
    let fleet = run.engine.fleet().clone();
    let p = plan(&fleet);
    // forge: a second member of a budget-1 cluster starts while the first is out
    let c = fleet
        .clusters
        .iter()
        .enumerate()
        .position(|(ci, c)| {
            c.budget == Budget::Nodes(1) && c.members.len() >= 3 && p.limits[ci].nodes == 1
        })
        .expect("a budget-1 cluster");
    let cl = &fleet.clusters[c];
    let (a, b) = (cl.members[0], cl.members[1]);
    let mut forged: Vec<Output> = run
        .journal
        .iter()
        .filter(|o| !matches!(o, Output::Transition(t) if t.host == b))
        .cloned()
        .collect();
    let pos = forged
        .iter()
        .position(|o| matches!(o, Output::Transition(t) if t.host == a && t.to == Phase::Draining))
        .unwrap();
    let at = if let Output::Transition(t) = &forged[pos] {
        t.at
    } else {
        0
    };
    for (i, (from, to)) in [
        (Phase::Pending, Phase::Announced),
        (Phase::Announced, Phase::Preflight),
    ]
    .into_iter()
    .enumerate()
    {
        forged.insert(
            pos + 1 + i,
            Output::Transition(Transition {
                host: b,
                from,
                to,
                at,
                boot_id: None,
                out: false,
                note: None,
            }),
        );
    }
    let v = check_journal(&fleet, &p, &forged);
    assert!(
        v.iter()
            .any(|m| m.contains(&cl.id) && m.contains("members out")),
        "{v:?}"
    );
}

/// A late or failed announcement moves the region's start later: no host of the region
/// starts before (the second after) the delivery that succeeded + the lead time.
#[test]
fn a_failed_announcement_holds_the_region_and_a_late_one_moves_its_start() {
    let mut f = example();
    f.maintenance.region_mode = RegionMode::Parallel;
    let fleet = Arc::new(f);
    let p = plan(&fleet);
    let lead = fleet.maintenance.notice_lead;
    let mut e = Engine::new(fleet.clone(), &p, EngineConfig::default());
    let t0 = fleet.maintenance.start;
    let r0 = fleet.maintenance.region_order[0];
    // region 0's deliveries fail for 3h; the others succeed at once
    let ok_from = t0 + 3 * 3600;
    let mut journal = Vec::new();
    let mut asks = 0;
    let mut t = t0;
    while t < t0 + 6 * 3600 {
        e.step(t);
        let outs = e.drain_outputs();
        for o in &outs {
            if let Output::Command {
                command: Command::Announce { region },
                ..
            } = o
            {
                let result = if *region == r0 {
                    asks += 1;
                    if t >= ok_from {
                        Ok(())
                    } else {
                        Err("sink down".into())
                    }
                } else {
                    Ok(())
                };
                e.handle(
                    t + 30,
                    Event::Announced {
                        region: *region,
                        result,
                    },
                );
            }
        }
        journal.extend(outs);
        journal.extend(e.drain_outputs());
        t += 60;
    }
    assert!(asks > 100, "a failed announcement is asked again ({asks})");
    let sched: Vec<&rollcall_core::engine::Notice> = journal
        .iter()
        .filter_map(|o| match o {
            Output::Notice(n) if n.kind == NoticeKind::Scheduled && n.region == r0 => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(sched.len(), 1);
    // the delivery that worked ended at ok_from + 30 (within that second)
    assert_eq!(sched[0].at, ok_from + 30 + 1);
    let first_start = journal
        .iter()
        .filter_map(|o| match o {
            Output::Transition(tr)
                if tr.to == Phase::Preflight && fleet.hosts[tr.host as usize].region == r0 =>
            {
                Some(tr.at)
            }
            _ => None,
        })
        .min()
        .expect("region 0 started once announced");
    assert!(
        first_start >= ok_from + 30 + 1 + lead,
        "started at {first_start}, announced {}",
        ok_from + 31
    );
    // the other regions were not held by region 0
    let other = journal.iter().any(|o| {
        matches!(o, Output::Transition(tr) if tr.to == Phase::Preflight
            && fleet.hosts[tr.host as usize].region != r0 && tr.at < ok_from)
    });
    assert!(other, "other regions started on their own announcements");
}
