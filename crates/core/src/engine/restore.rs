//! Rebuilding an engine from its journal ([`Engine::restore`]).

use super::host::Stage;
use super::wire::*;
use super::{Engine, EngineConfig};
use crate::model::{Fleet, HostIx};
use crate::plan::Plan;
use std::collections::HashMap;
use std::sync::Arc;

/// Journalled reboot intents not yet followed by a new start: host → (when, attempt).
type Intents = HashMap<HostIx, (i64, u32)>;

fn unknown_host(h: HostIx) -> String {
    format!("journal names host index {h} not in this fleet")
}

impl Engine {
    /// Rebuild an engine from its journal. Call [`Engine::step`] afterwards: hosts
    /// in the middle of a step get their command again, except a journalled reboot,
    /// which is never re-sent without a probe proving it did not happen.
    pub fn restore<'a>(
        fleet: Arc<Fleet>,
        plan: &Plan,
        cfg: EngineConfig,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Engine, String> {
        let mut e = Engine::new(fleet, plan, cfg);
        let mut intents = Intents::new();
        for r in records {
            e.replay(r, &mut intents)?;
        }
        e.held = e.hosts.iter().filter(|h| !h.holds.is_empty()).count() as u32;
        for h in 0..e.hosts.len() {
            e.rewatch(h as HostIx);
        }
        // hosts caught between steps
        for h in 0..e.hosts.len() {
            let hx = h as HostIx;
            e.resume_host(hx, intents.get(&hx).copied());
        }
        for r in 0..e.region_hosts.len() {
            e.advance_cursor(r);
        }
        Ok(e)
    }

    fn replay(&mut self, r: &Record, intents: &mut Intents) -> Result<(), String> {
        match r {
            Output::Transition(t) => self.replay_transition(t, intents)?,
            Output::Command {
                at,
                command: Command::Reboot { host, attempt, .. },
            } => {
                intents.insert(*host, (*at, *attempt));
            }
            Output::Command {
                command: Command::Replace { host },
                ..
            } => {
                if let Some(h) = self.hosts.get_mut(*host as usize) {
                    h.replaced = true;
                }
            }
            Output::Command { .. } => {}
            Output::Notice(n) => self.replay_notice(n)?,
            Output::State { state, .. } => self.state = *state,
            Output::Held { host, holds, .. } => {
                let h = self.hosts.get_mut(*host as usize);
                h.ok_or_else(|| unknown_host(*host))?.holds = holds.clone();
            }
            Output::Released { host, .. } => {
                if let Some(h) = self.hosts.get_mut(*host as usize) {
                    h.holds.clear();
                }
            }
        }
        Ok(())
    }

    /// A journalled transition, checked against the phase the replay has for the host
    /// (a foreign journal is refused).
    fn replay_transition(&mut self, t: &Transition, intents: &mut Intents) -> Result<(), String> {
        let Some(h) = self.hosts.get(t.host as usize) else {
            return Err(unknown_host(t.host));
        };
        if h.phase() != t.from {
            return Err(format!(
                "journal does not match the fleet: host {} is {} but the journal moves it from {}",
                self.fleet.hosts[t.host as usize].id,
                h.phase().name(),
                t.from.name()
            ));
        }
        // entering `returning` at t.at: its return timeout counts from then
        self.set_phase(t.host, t.to, t.at, t.out);
        let h = &mut self.hosts[t.host as usize];
        if t.boot_id.is_some() {
            h.boot_id = t.boot_id.clone();
        }
        h.note = t.note.clone();
        if t.to == Phase::Preflight || t.to == Phase::Pending {
            intents.remove(&t.host);
        }
        Ok(())
    }

    fn replay_notice(&mut self, n: &Notice) -> Result<(), String> {
        let Some(reg) = self.regions.get_mut(n.region as usize) else {
            return Err(format!(
                "journal names region index {} not in this fleet",
                n.region
            ));
        };
        match n.kind {
            NoticeKind::Scheduled => reg.announced_at = Some(n.at),
            NoticeKind::Started => reg.started = true,
            NoticeKind::Completed => reg.completed = true,
            NoticeKind::ProviderRisk => self.risks.retain(|r| Some(r.host) != n.host),
            _ => {}
        }
        Ok(())
    }

    /// A host as the journal left it: nothing is in flight any more. One caught with a
    /// journalled reboot intent may or may not have been rebooted: watch its boot id.
    fn resume_host(&mut self, h: HostIx, intent: Option<(i64, u32)>) {
        let hr = &mut self.hosts[h as usize];
        hr.inflight = false;
        if let Stage::Restoring(r) = &mut hr.stage {
            r.gates_pending = 0;
        }
        if hr.phase() == Phase::Rebooting
            && let Some((at, attempt)) = intent
        {
            // journal that decision so the next restore replays it
            let note = "restored after a crash: reboot intent journalled, watching the boot id";
            self.transition(h, Phase::Returning, at, false, Some(note.into()));
            let hr = &mut self.hosts[h as usize];
            hr.attempt = attempt;
            if let Stage::Returning(r) = &mut hr.stage {
                r.unacked = true;
            }
        }
        let hr = &mut self.hosts[h as usize];
        let phase = hr.phase();
        hr.fresh = phase.is_active() || phase == Phase::Missing;
        if phase == Phase::Returning || phase == Phase::Missing {
            hr.attempt = hr.attempt.max(intent.map_or(1, |x| x.1));
        }
    }
}
