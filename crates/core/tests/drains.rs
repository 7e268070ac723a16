//! The engine with clusters that are drained (Elasticsearch/OpenSearch):
//! - what a drain changes (shard allocation) is journalled as a hold and always put back:
//!   after the host returns, when it never returns, when it fails, on abort (which waits
//!   for it), and after a crash (the restored engine knows);
//! - the elected manager goes last among its cluster's members;
//! - each preflight names the members out or starting with it.

use rollcall_core::engine::Notice;
use rollcall_core::engine::*;
use rollcall_core::plan::plan;
use rollcall_core::*;
use rollcall_fleet::{LoadOptions, load_str};
use std::path::Path;
use std::sync::Arc;

const ES3: &str = r#"
[maintenance]
name = "t"
start = "2014-09-25T20:00:00Z"
notice_lead = "1m"
on_missing = "continue"

[[host]]
id = "es1"
region = "dfw"
[[host]]
id = "es2"
region = "dfw"
[[host]]
id = "es3"
region = "dfw"

[[cluster]]
id = "search"
kind = "elasticsearch"
members = ["es1", "es2", "es3"]
return_timeout = "5m"
"#;

const UNDO: &str = r#"{"persistent":"all","transient":null}"#;

/// A hand-driven world: `es1` (the first host the plan takes) never comes back when
/// `lost`; releases fail `release_fails` times first.
struct Hand {
    engine: Engine,
    journal: Vec<Output>,
    now: i64,
    lost: Option<HostIx>,
    release_fails: u32,
    rebooted: Vec<HostIx>,
}

impl Hand {
    fn new(lost: bool, release_fails: u32) -> Hand {
        let fleet =
            Arc::new(load_str("t.toml", ES3, Path::new("."), &LoadOptions { now: 0 }).unwrap());
        let p = plan(&fleet);
        let now = fleet.maintenance.start;
        Hand {
            lost: lost.then_some(p.steps[0].host),
            engine: Engine::new(fleet, &p, EngineConfig::default()),
            journal: Vec::new(),
            now,
            release_fails,
            rebooted: Vec::new(),
        }
    }

    fn answer(&mut self, cmd: &Command) -> Event {
        match *cmd {
            Command::Announce { region } => Event::Announced {
                region,
                result: Ok(()),
            },
            Command::Preflight { host, .. } => Event::Preflight {
                host,
                result: Ok(format!("boot-{host}-0")),
            },
            Command::Drain { host } => Event::Drained {
                host,
                result: Ok(()),
                holds: vec![Hold {
                    cluster: 0,
                    undo: UNDO.into(),
                }],
            },
            Command::Reboot { host, .. } => {
                self.rebooted.push(host);
                Event::RebootSent {
                    host,
                    result: Ok(()),
                }
            }
            Command::Probe { host } => Event::Probed {
                host,
                boot_id: (self.lost != Some(host)).then(|| format!("boot-{host}-1")),
            },
            Command::Verify { host } => Event::Verified {
                host,
                result: Ok(()),
            },
            Command::Restore { host } => Event::Restored {
                host,
                result: Ok(()),
            },
            Command::Release { host } if self.release_fails > 0 => {
                self.release_fails -= 1;
                Event::Restored {
                    host,
                    result: Err("no member answers".into()),
                }
            }
            Command::Release { host } => Event::Restored {
                host,
                result: Ok(()),
            },
            Command::Gate { host, cluster } => Event::Gate {
                host,
                cluster,
                healthy: true,
                detail: "green".into(),
            },
            Command::Replace { host } => Event::Replaced {
                host,
                result: Err("no".into()),
            },
        }
    }

    /// One step at `now`, every command answered at once; then the clock moves on.
    fn turn(&mut self) {
        self.engine.step(self.now);
        let mut outs = self.engine.drain_outputs();
        while !outs.is_empty() {
            let cmds: Vec<Command> = outs
                .iter()
                .filter_map(|o| match o {
                    Output::Command { command, .. } => Some(command.clone()),
                    _ => None,
                })
                .collect();
            self.journal.extend(outs);
            for c in cmds {
                let ev = self.answer(&c);
                self.engine.handle(self.now, ev);
            }
            outs = self.engine.drain_outputs();
        }
        self.now = self
            .engine
            .next_wakeup(self.now)
            .unwrap_or(self.now + 1)
            .max(self.now + 1);
    }

    fn until(&mut self, what: &str, done: impl Fn(&Hand) -> bool) {
        for _ in 0..10_000 {
            if done(self) {
                return;
            }
            self.turn();
        }
        panic!("never {what}: state {:?}", self.engine.state());
    }

    fn pos(&self, f: impl Fn(&Output) -> bool) -> Option<usize> {
        self.journal.iter().position(f)
    }
}

fn held(h: HostIx) -> impl Fn(&Output) -> bool {
    move |o| matches!(o, Output::Held { host, holds, .. } if *host == h && holds[0].undo == UNDO)
}
fn released(h: HostIx) -> impl Fn(&Output) -> bool {
    move |o| matches!(o, Output::Released { host, .. } if *host == h)
}
fn command(f: impl Fn(&Command) -> bool) -> impl Fn(&Output) -> bool {
    move |o| matches!(o, Output::Command { command, .. } if f(command))
}

#[test]
fn a_hold_is_journalled_before_the_reboot_and_released_after_the_host_returns() {
    let mut hand = Hand::new(false, 0);
    hand.until("completed", |h| h.engine.state() == RunState::Completed);
    for h in 0..3 {
        let held_at = hand.pos(held(h)).expect("held journalled");
        let reboot_at = hand
            .pos(command(
                |c| matches!(c, Command::Reboot { host, .. } if *host == h),
            ))
            .unwrap();
        let released_at = hand.pos(released(h)).expect("released journalled");
        assert!(held_at < reboot_at && reboot_at < released_at);
    }
    assert!(hand.engine.holds().is_empty());
    assert!(
        hand.pos(command(|c| matches!(c, Command::Release { .. })))
            .is_none(),
        "hosts that came back are restored, not released"
    );
}

#[test]
fn a_host_that_never_returns_has_its_hold_released_loudly_and_abort_waits_for_it() {
    let mut hand = Hand::new(true, 2);
    let lost = hand.lost.unwrap();
    hand.until("missing", |h| h.engine.phase(lost) == Phase::Missing);
    hand.engine.handle(
        hand.now,
        Event::Control {
            control: Control::Abort,
        },
    );
    // the first release fails: said once, loudly; the abort does not finish meanwhile
    hand.until("a failed release", |h| h.release_fails < 2);
    assert_eq!(hand.engine.state(), RunState::Aborting);
    assert_eq!(hand.engine.holds().len(), 1);
    hand.until("aborted", |h| h.engine.state() == RunState::Aborted);
    let warnings: Vec<&Notice> = hand
        .journal
        .iter()
        .filter_map(|o| match o {
            Output::Notice(n) if n.text.contains("could not be put back") => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "said once, retried quietly");
    assert!(warnings[0].text.contains("search") && warnings[0].text.contains("no member answers"));
    let rel = hand.pos(released(lost)).expect("released at last");
    let aborted = hand
        .pos(|o| {
            matches!(
                o,
                Output::State {
                    state: RunState::Aborted,
                    ..
                }
            )
        })
        .unwrap();
    assert!(rel < aborted, "aborted only after the release");
    assert!(hand.engine.holds().is_empty());
    assert_eq!(
        hand.rebooted,
        [lost],
        "nothing else started after the abort"
    );
}

#[test]
fn a_restored_engine_knows_what_is_held_and_what_was_put_back() {
    let mut hand = Hand::new(true, 0);
    let lost = hand.lost.unwrap();
    hand.until("rebooting", |h| h.engine.phase(lost) == Phase::Returning);
    let fleet = hand.engine.fleet().clone();
    let p = plan(&fleet);
    let e = Engine::restore(fleet.clone(), &p, EngineConfig::default(), &hand.journal).unwrap();
    assert_eq!(
        e.holds(),
        [(
            lost,
            Hold {
                cluster: 0,
                undo: UNDO.into()
            }
        )]
    );
    hand.until("released", |h| h.pos(released(lost)).is_some());
    let e = Engine::restore(fleet, &p, EngineConfig::default(), &hand.journal).unwrap();
    assert!(e.holds().is_empty());
    // and a restored engine with a hold on a missing host releases it on its first steps
    let mut j = hand.journal.clone();
    let r = j.iter().position(released(lost)).unwrap();
    j.truncate(r);
    let mut e = Engine::restore(
        hand.engine.fleet().clone(),
        &plan(hand.engine.fleet()),
        EngineConfig::default(),
        &j,
    )
    .unwrap();
    e.step(hand.now);
    let outs = e.drain_outputs();
    assert!(
        outs.iter()
            .any(command(|c| *c == Command::Release { host: lost })),
        "{outs:?}"
    );
}

#[test]
fn the_elected_manager_goes_last_and_preflights_name_who_is_out() {
    let mut hand = Hand::new(false, 0);
    let fleet = hand.engine.fleet().clone();
    let first = plan(&fleet).steps[0].host;
    hand.engine.prefer_last(&[first]);
    hand.until("completed", |h| h.engine.state() == RunState::Completed);
    assert_eq!(hand.rebooted.len(), 3);
    assert_eq!(hand.rebooted[2], first, "{:?}", hand.rebooted);
    // budget 1: nobody else is out when a preflight goes
    for o in &hand.journal {
        if let Output::Command {
            command: Command::Preflight { with, .. },
            ..
        } = o
        {
            assert!(with.is_empty(), "{o:?}");
        }
    }
}

#[test]
fn preflights_of_hosts_starting_together_name_each_other() {
    let text = ES3.replace(
        "return_timeout = \"5m\"",
        "return_timeout = \"5m\"\nmax_unavailable = 2\nreplicas = 2\nload = 0.2",
    );
    let fleet =
        Arc::new(load_str("t.toml", &text, Path::new("."), &LoadOptions { now: 0 }).unwrap());
    let p = plan(&fleet);
    let mut e = Engine::new(fleet.clone(), &p, EngineConfig::default());
    let mut now = fleet.maintenance.start;
    let mut pre = Vec::new();
    for _ in 0..100 {
        e.step(now);
        for o in e.drain_outputs() {
            match o {
                Output::Command {
                    command: Command::Announce { region },
                    ..
                } => e.handle(
                    now,
                    Event::Announced {
                        region,
                        result: Ok(()),
                    },
                ),
                Output::Command {
                    command: Command::Preflight { host, with },
                    ..
                } => pre.push((host, with)),
                _ => {}
            }
        }
        if pre.len() >= 2 {
            break;
        }
        now = e.next_wakeup(now).unwrap_or(now + 1);
    }
    assert_eq!(pre.len(), 2, "two start together: {pre:?}");
    let (a, b) = (pre[0].0, pre[1].0);
    assert_eq!(pre[0].1, [b]);
    assert_eq!(pre[1].1, [a]);
}
