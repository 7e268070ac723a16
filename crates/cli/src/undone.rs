//! Why hosts were left undone: printed at the end of a run and when it pauses, so that a
//! run whose hosts all fail preflight does not end with a bare count and exit 0.

use rollcall_core::HostIx;
use rollcall_core::engine::{Engine, Phase};
use rollcall_core::plan::{Plan, Severity};
use rollcall_runtime::Observer;

/// Exit code of `run` and `resume` when hosts in scope were left undone (docs/running.md).
pub const EXIT_UNDONE: u8 = 4;

/// One host of the maintenance that is not done, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Undone {
    pub host: String,
    pub phase: &'static str,
    pub reason: String,
}

/// Scheduled hosts that failed, are missing, or (`all`) were never finished; and
/// hosts in scope the planner refused (`skipped`, with the planner's reason and remedy).
pub fn undone(engine: &Engine, plan: &Plan, all: bool) -> Vec<Undone> {
    let fleet = engine.fleet();
    let mut out = Vec::new();
    for s in &plan.steps {
        let ph = engine.phase(s.host);
        let bad = matches!(ph, Phase::Failed | Phase::Missing) || (all && !ph.is_final());
        if bad {
            out.push(Undone {
                host: fleet.hosts[s.host as usize].id.clone(),
                phase: ph.name(),
                reason: engine
                    .note(s.host)
                    .map(str::to_string)
                    .unwrap_or_else(|| "not reached before the run ended".into()),
            });
        }
    }
    // a run stopped (Ctrl-C, lost lease) with a drain's change still in place
    for (h, hold) in engine.holds() {
        out.push(Undone {
            host: fleet.hosts[h as usize].id.clone(),
            phase: "held",
            reason: format!(
                "its drain still holds a change to {} (before it: {}): `rollcall resume` puts it back",
                fleet.clusters[hold.cluster as usize].id,
                hold.undo
            ),
        });
    }
    for &h in &plan.unscheduled {
        if fleet.hosts[h as usize].in_scope {
            out.push(Undone {
                host: fleet.hosts[h as usize].id.clone(),
                phase: Phase::Skipped.name(),
                reason: blocked_reason(plan, h),
            });
        }
    }
    out
}

/// Failed and missing hosts right now (what a pause or an escalation is about).
pub fn failed_or_missing(engine: &Engine) -> Vec<Undone> {
    let fleet = engine.fleet();
    (0..fleet.hosts.len() as HostIx)
        .filter(|&h| matches!(engine.phase(h), Phase::Failed | Phase::Missing))
        .map(|h| Undone {
            host: fleet.hosts[h as usize].id.clone(),
            phase: engine.phase(h).name(),
            reason: engine.note(h).unwrap_or("no reason recorded").to_string(),
        })
        .collect()
}

fn blocked_reason(plan: &Plan, h: HostIx) -> String {
    plan.risks
        .iter()
        .find(|r| r.severity == Severity::Blocked && r.hosts.contains(&h))
        .map(|r| format!("{} ({}); remedy: {}", r.reason, r.code, r.remedy))
        .unwrap_or_else(|| "not scheduled by the planner".into())
}

/// The lines an operator reads.
pub fn lines(list: &[Undone]) -> Vec<String> {
    list.iter()
        .map(|u| format!("  {} {}: {}", u.phase.to_uppercase(), u.host, u.reason))
        .collect()
}

/// Passes everything on to `inner` and keeps, at the end, what was left undone.
pub struct Tail<'a> {
    pub inner: &'a mut dyn Observer,
    pub plan: &'a Plan,
    pub undone: Vec<Undone>,
    /// Scheduled hosts not finished (failed, missing or never reached).
    pub scheduled_undone: usize,
}

impl Observer for Tail<'_> {
    fn on_outputs(&mut self, outputs: &[rollcall_core::engine::Output], engine: &Engine) {
        self.inner.on_outputs(outputs, engine);
    }
    fn on_idle(&mut self, engine: &Engine) {
        self.inner.on_idle(engine);
    }
    fn on_end(&mut self, engine: &Engine) {
        self.inner.on_end(engine);
        self.undone = undone(engine, self.plan, engine.state().is_over());
        self.scheduled_undone = self.undone.iter().filter(|u| u.phase != "skipped").count();
    }
}
