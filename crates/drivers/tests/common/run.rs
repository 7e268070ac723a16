//! The engine, its journal in memory and a virtual clock, driving a real driver one
//! command at a time (what the runtime does), with a crash staged at the first send:
//! shared by the tests of the exec and ec2 drivers (`#[path]`-included, so the test
//! binaries that do not drive whole runs do not compile it).

// each test binary that includes it uses part of it
#![allow(dead_code)]

use rollcall_core::Fleet;
use rollcall_core::engine::{Command, Engine, EngineConfig, Output, Phase};
use rollcall_core::plan::plan;
use rollcall_drivers::Driver;
use std::sync::Arc;

/// The engine, its journal (in memory) and a virtual clock: what the runtime does,
/// one command at a time.
pub struct Run {
    pub engine: Engine,
    pub journal: Vec<Output>,
    pub now: i64,
    /// Real time between two steps, for drivers whose hosts change on their own (a
    /// reboot that takes effect a moment after the API answered).
    pub pace: std::time::Duration,
}

impl Run {
    pub fn new(fleet: &Arc<Fleet>) -> Run {
        let p = plan(fleet);
        Run {
            engine: Engine::new(fleet.clone(), &p, EngineConfig::default()),
            journal: Vec::new(),
            now: fleet.maintenance.start,
            pace: std::time::Duration::ZERO,
        }
    }

    /// Journal the engine's outputs; the commands to run.
    pub fn step(&mut self) -> Vec<Command> {
        self.engine.step(self.now);
        let out = self.engine.drain_outputs();
        self.journal.extend(out.iter().cloned());
        out.into_iter()
            .filter_map(|o| match o {
                Output::Command { command, .. } => Some(command),
                _ => None,
            })
            .collect()
    }

    /// Run until the run is over, or until the orchestrator dies at the first send (the
    /// action: journalled, and carried out or not, its answer lost).
    pub async fn go<D: Driver>(&mut self, drv: &D, crash: Option<Crash>) {
        for _ in 0..500 {
            if self.engine.state().is_over() {
                return;
            }
            for cmd in self.step() {
                if let Some(crash) = crash
                    && matches!(cmd, Command::Reboot { .. })
                {
                    if crash == Crash::AfterTheSendRan {
                        drv.execute(cmd, self.now).await;
                    }
                    return;
                }
                let ev = drv.execute(cmd, self.now).await;
                self.engine.handle(self.now, ev);
            }
            tokio::time::sleep(self.pace).await;
            if let Some(t) = self.engine.next_wakeup(self.now) {
                self.now = t.max(self.now + 1);
            }
        }
        panic!("the run did not end: {:?}", self.engine.state());
    }

    /// The orchestrator restarts: a new engine from the journal.
    pub fn restore(&mut self, fleet: &Arc<Fleet>) {
        let p = plan(fleet);
        self.engine =
            Engine::restore(fleet.clone(), &p, EngineConfig::default(), &self.journal).unwrap();
    }

    pub fn phases(&self) -> Vec<(Phase, Phase)> {
        self.journal
            .iter()
            .filter_map(|o| match o {
                Output::Transition(t) => Some((t.from, t.to)),
                _ => None,
            })
            .collect()
    }
}

/// Where the orchestrator dies: after journalling the action's intent, before or after
/// the driver carried it out (its answer is lost either way).
#[derive(Clone, Copy, PartialEq)]
pub enum Crash {
    BeforeTheSendRan,
    AfterTheSendRan,
}
