//! What [`Engine::step`] does for each watched host: the phase's command when none is
//! in flight, its periodic checks, and its timeout. Normal flow and recovery are the
//! same code: a restored host simply has no command in flight.

use super::Engine;
use super::host::Stage;
use super::wire::*;
use crate::model::*;

impl Engine {
    pub(super) fn step_host(&mut self, h: HostIx, now: i64) {
        if self.hosts[h as usize].fresh && self.look_first(h, now) {
            return;
        }
        let hr = &self.hosts[h as usize];
        let phase = hr.phase();
        if !hr.holds.is_empty() && matches!(phase, Phase::Missing | Phase::Failed) {
            // it will not come back through `restoring` (not soon, or not at all): put
            // back what its drain holds now, before anything else
            if !hr.inflight && now >= hr.next_check {
                self.command(now, Command::Release { host: h });
            }
            return;
        }
        match phase {
            Phase::Preflight => self.step_preflight(h, now),
            Phase::Draining => self.step_draining(h, now),
            Phase::Rebooting => self.step_rebooting(h, now),
            Phase::Returning => self.step_returning(h, now),
            Phase::Missing => self.step_missing(h, now),
            Phase::Verifying => self.step_verifying(h, now),
            Phase::Restoring => self.step_restoring(h, now),
            _ => {}
        }
    }

    /// A restored host's first step. A returning host is looked at (probed) before its
    /// absence is judged; other waits restart from now, since nobody was watching while
    /// the orchestrator was down. True: nothing more to do for it in this step.
    fn look_first(&mut self, h: HostIx, now: i64) -> bool {
        let hr = &mut self.hosts[h as usize];
        match hr.phase() {
            Phase::Returning if hr.inflight => true,
            Phase::Returning => {
                self.command(now, Command::Probe { host: h });
                true
            }
            _ => {
                hr.since = hr.since.max(now);
                hr.fresh = false;
                false
            }
        }
    }

    fn step_preflight(&mut self, h: HostIx, now: i64) {
        let hr = &self.hosts[h as usize];
        if now >= hr.since + self.cfg.command_timeout {
            let note = Some("preflight timed out".into());
            self.transition(h, Phase::Failed, now, false, note);
        } else if !hr.inflight {
            let with = self.out_with(h);
            self.command(now, Command::Preflight { host: h, with });
        }
    }

    fn step_draining(&mut self, h: HostIx, now: i64) {
        let hr = &self.hosts[h as usize];
        if now >= hr.since + hr.gate_timeout {
            self.escalate(h, now, "drain timed out".into());
        } else if !hr.inflight {
            self.command(now, Command::Drain { host: h });
        }
    }

    fn step_rebooting(&mut self, h: HostIx, now: i64) {
        let hr = &mut self.hosts[h as usize];
        if now >= hr.since + self.cfg.command_timeout {
            // the return timeout counts from now (`Returning::reboot_at`)
            let note = Some("reboot not acknowledged in time; watching the boot id".into());
            self.transition(h, Phase::Returning, now, false, note);
        } else if !hr.inflight {
            hr.attempt += 1;
            let cmd = Command::Reboot {
                host: h,
                boot_id: hr.boot_id.clone().unwrap_or_default(),
                attempt: hr.attempt,
            };
            self.command(now, cmd);
        }
    }

    fn step_returning(&mut self, h: HostIx, now: i64) {
        let hr = &self.hosts[h as usize];
        let Stage::Returning(r) = &hr.stage else {
            return;
        };
        if now >= r.reboot_at + hr.return_timeout {
            if r.same_boot_seen {
                let why = "the host never rebooted (same boot id, still reachable)";
                self.escalate(h, now, why.into());
            } else {
                self.go_missing(h, now);
            }
        } else if r.same_boot_seen
            && !hr.inflight
            && now >= r.reboot_at + self.cfg.reboot_grace
            && hr.attempt < self.cfg.max_reboot_attempts
        {
            // provably not rebooted: reachable with the old boot id long after the intent
            let note = format!(
                "still on boot id {} after {}; sending the reboot again",
                hr.boot_id.clone().unwrap_or_default(),
                fmt_duration(now - r.reboot_at)
            );
            self.transition(h, Phase::Rebooting, now, false, Some(note));
        } else if !hr.inflight && now >= hr.next_check {
            self.command(now, Command::Probe { host: h });
        }
    }

    fn step_missing(&mut self, h: HostIx, now: i64) {
        let hr = &mut self.hosts[h as usize];
        if hr.inflight || now < hr.next_check {
            return;
        }
        if self.fleet.maintenance.on_missing == OnMissing::Replace && !hr.replaced {
            hr.replaced = true;
            self.command(now, Command::Replace { host: h });
        } else {
            self.command(now, Command::Probe { host: h });
        }
    }

    fn step_verifying(&mut self, h: HostIx, now: i64) {
        let hr = &self.hosts[h as usize];
        if now >= hr.since + hr.gate_timeout {
            self.escalate(h, now, "services did not verify in time".into());
        } else if !hr.inflight && now >= hr.next_check {
            self.command(now, Command::Verify { host: h });
        }
    }

    /// Undo the drain, then ask every cluster of the host whether it is healthy.
    fn step_restoring(&mut self, h: HostIx, now: i64) {
        if self.counts.member_missing(&self.fleet.hosts[h as usize]) {
            // the cluster cannot be healthy while a member is missing: the clock
            // starts again when it is back (or replaced)
            self.hosts[h as usize].since = now;
        }
        let hr = &self.hosts[h as usize];
        let Stage::Restoring(r) = &hr.stage else {
            return;
        };
        if now >= hr.since + hr.gate_timeout {
            let why = hr.note.as_deref().unwrap_or("cluster not healthy");
            let why = format!("cluster not healthy in time: {why}");
            self.escalate(h, now, why);
        } else if !hr.inflight && now >= hr.next_check {
            if r.undrained {
                self.ask_gates(h, now);
            } else {
                self.command(now, Command::Restore { host: h });
            }
        }
    }

    /// One round of gate checks, one per cluster of the host (none: it is done).
    fn ask_gates(&mut self, h: HostIx, now: i64) {
        let clusters = self.fleet.hosts[h as usize].clusters.clone();
        if clusters.is_empty() {
            return self.finish_host(h, now);
        }
        if let Stage::Restoring(r) = &mut self.hosts[h as usize].stage {
            r.gates_pending = clusters.len() as u32;
            r.gates_bad = false;
        }
        for c in clusters {
            self.command(
                now,
                Command::Gate {
                    host: h,
                    cluster: c,
                },
            );
        }
    }

    fn go_missing(&mut self, h: HostIx, now: i64) {
        let host = &self.fleet.hosts[h as usize];
        let region = host.region;
        let policy = self.fleet.maintenance.on_missing;
        let text = format!(
            "{} did not come back within {} of its reboot; on_missing = {}",
            host.id,
            fmt_duration(self.hosts[h as usize].return_timeout),
            match policy {
                OnMissing::Pause =>
                    "pause: no new work starts until it returns or an operator resumes",
                OnMissing::Replace => "replace: a replacement is being made",
                OnMissing::Continue => "continue: its clusters wait, the rest goes on",
            }
        );
        self.transition(h, Phase::Missing, now, false, None);
        self.hosts[h as usize].next_check = now;
        self.notice(now, NoticeKind::HostMissing, region, Some(h), text);
        if policy == OnMissing::Pause && matches!(self.state, RunState::Running) {
            self.emit_state(
                now,
                RunState::Paused {
                    reason: PauseReason::Missing,
                },
            );
        }
    }
}
