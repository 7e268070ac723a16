//! The engine's answers to events: one handler per kind. An answer for a phase the host
//! has already left is stale: it only frees the host for its next command (a late gate
//! or probe answer not even that).

use super::Engine;
use super::host::Stage;
use super::wire::*;
use crate::model::*;

impl Engine {
    /// Feed one event that happened at `now`.
    pub fn handle(&mut self, now: i64, ev: Event) {
        match ev {
            Event::Control { control } => self.control(now, control),
            Event::Announced { region, result } => self.on_announced(now, region, result),
            ev => {
                if let Some(h) = ev.host()
                    && (h as usize) < self.hosts.len()
                {
                    self.on_host_event(h, now, ev);
                }
            }
        }
    }

    fn on_host_event(&mut self, h: HostIx, now: i64, ev: Event) {
        match ev {
            Event::Preflight { result, .. } => self.on_preflight(h, now, result),
            Event::Drained { result, holds, .. } => self.on_drained(h, now, result, holds),
            Event::RebootSent { result, .. } => self.on_reboot_sent(h, now, result),
            Event::Probed { boot_id, .. } => self.on_probed(h, now, boot_id),
            Event::Verified { result, .. } => self.on_verified(h, now, result),
            Event::Restored { result, .. } => self.on_restored(h, now, result),
            Event::Gate {
                healthy, detail, ..
            } => self.on_gate(h, now, healthy, detail),
            Event::Replaced { result, .. } => self.on_replaced(h, now, result),
            Event::Announced { .. } | Event::Control { .. } => {}
        }
    }

    /// A late answer for a phase the host has left: its command is over.
    fn stale(&mut self, h: HostIx) {
        self.hosts[h as usize].inflight = false;
    }

    fn on_announced(&mut self, now: i64, region: RegionIx, result: Outcome) {
        let Some(r) = self.regions.get_mut(region as usize) else {
            return;
        };
        r.announcing = false;
        if result.is_err() || r.announced_at.is_some() {
            return;
        }
        // The clock has whole seconds and the delivery finished at an instant in
        // [now, now + 1): count the announcement from now + 1, so the lead after
        // the last subscriber was told is never short by a fraction of a second.
        // A failed delivery leaves the region unannounced: it is asked again and
        // its start moves later; no host of it starts before announced_at + lead.
        let now = now + 1;
        r.announced_at = Some(now);
        let name = self.fleet.region_name(region).to_string();
        let m = &self.fleet.maintenance;
        let text = format!(
            "maintenance {} in {name}: {} begin no earlier than {}",
            m.name,
            m.action.plural(),
            fmt_time(now + m.notice_lead)
        );
        self.notice(now, NoticeKind::Scheduled, region, None, text);
    }

    fn on_preflight(&mut self, h: HostIx, now: i64, result: Result<String, String>) {
        if self.phase(h) != Phase::Preflight {
            return self.stale(h);
        }
        match result {
            Ok(boot) if !boot.trim().is_empty() => {
                self.hosts[h as usize].boot_id = Some(boot);
                self.transition(h, Phase::Draining, now, false, None);
            }
            Ok(_) => self.transition(
                h,
                Phase::Failed,
                now,
                false,
                Some("preflight: empty boot id".into()),
            ),
            // untouched: the host is skipped, the run goes on
            Err(why) => self.transition(
                h,
                Phase::Failed,
                now,
                false,
                Some(format!("preflight: {why}")),
            ),
        }
    }

    fn on_drained(&mut self, h: HostIx, now: i64, result: Outcome, holds: Vec<Hold>) {
        // whatever phase the host is in by now: a change a drain made is recorded
        if !holds.is_empty() {
            self.set_holds(h, now, Some(holds));
        }
        if self.phase(h) != Phase::Draining {
            return self.stale(h);
        }
        match result {
            Ok(()) => self.transition(h, Phase::Rebooting, now, false, None),
            Err(why) => self.escalate(h, now, format!("drain failed: {why}")),
        }
    }

    fn on_reboot_sent(&mut self, h: HostIx, now: i64, result: Outcome) {
        if self.phase(h) != Phase::Rebooting {
            return self.stale(h);
        }
        let note = result
            .err()
            .map(|w| format!("reboot not acknowledged: {w}; watching the boot id"));
        // the return timeout counts from now (`Returning::reboot_at`)
        self.transition(h, Phase::Returning, now, false, note);
    }

    /// A probe of a returning or missing host: a new boot id means it is back.
    fn on_probed(&mut self, h: HostIx, now: i64, boot_id: Option<String>) {
        let phase = self.phase(h);
        let interval = match phase {
            Phase::Missing => self.cfg.missing_probe_interval,
            Phase::Returning => self.cfg.probe_interval,
            _ => return,
        };
        let hr = &mut self.hosts[h as usize];
        hr.inflight = false;
        hr.fresh = false;
        hr.next_check = now + interval;
        let returning = match &mut hr.stage {
            Stage::Returning(r) => Some(r),
            _ => None,
        };
        match boot_id {
            Some(b) if Some(&b) != hr.boot_id.as_ref() => {
                if phase == Phase::Missing {
                    let region = self.fleet.hosts[h as usize].region;
                    let text = format!("{} is back", self.fleet.hosts[h as usize].id);
                    self.notice(now, NoticeKind::HostReturned, region, Some(h), text);
                }
                let note = Some(format!("new boot id {b}"));
                self.transition(h, Phase::Verifying, now, false, note);
            }
            Some(_) => {
                if let Some(r) = returning {
                    r.same_boot_seen = true;
                    if std::mem::take(&mut r.unacked) {
                        self.resend_unacked(h, now);
                    }
                }
            }
            None => {
                if let Some(r) = returning {
                    r.same_boot_seen = false;
                    r.unacked = false;
                }
            }
        }
    }

    /// A restored host whose journalled reboot was never acknowledged answers on its old
    /// boot id: the reboot never reached it (one that did would have taken it down), so
    /// it is sent again now, within the attempt limit.
    fn resend_unacked(&mut self, h: HostIx, now: i64) {
        let hr = &self.hosts[h as usize];
        if hr.attempt >= self.cfg.max_reboot_attempts {
            return;
        }
        let note = format!(
            "restored: the journalled reboot never took (still on boot id {}); sending it again",
            hr.boot_id.clone().unwrap_or_default()
        );
        self.transition(h, Phase::Rebooting, now, false, Some(note));
    }

    fn on_verified(&mut self, h: HostIx, now: i64, result: Outcome) {
        if self.phase(h) != Phase::Verifying {
            return self.stale(h);
        }
        let hr = &mut self.hosts[h as usize];
        hr.inflight = false;
        match result {
            Ok(()) => self.transition(h, Phase::Restoring, now, false, None),
            Err(why) => {
                hr.next_check = now + self.cfg.gate_interval;
                hr.note = Some(why);
            }
        }
    }

    /// The answer to a [`Command::Restore`] (restoring) or [`Command::Release`] (missing,
    /// failed).
    fn on_restored(&mut self, h: HostIx, now: i64, result: Outcome) {
        match self.phase(h) {
            Phase::Restoring => self.restored(h, now, result),
            Phase::Missing | Phase::Failed => self.released(h, now, result),
            _ => self.stale(h),
        }
    }

    fn restored(&mut self, h: HostIx, now: i64, result: Outcome) {
        let gate_interval = self.cfg.gate_interval;
        let hr = &mut self.hosts[h as usize];
        hr.inflight = false;
        match result {
            Ok(()) => {
                if let Stage::Restoring(r) = &mut hr.stage {
                    r.undrained = true;
                }
                hr.next_check = now;
                self.set_holds(h, now, None);
            }
            Err(why) => {
                hr.next_check = now + gate_interval;
                hr.note = Some(format!("restore: {why}"));
            }
        }
    }

    /// The answer to a [`Command::Release`]: put back, or said loudly (once) and retried.
    fn released(&mut self, h: HostIx, now: i64, result: Outcome) {
        let hr = &mut self.hosts[h as usize];
        hr.inflight = false;
        let why = match result {
            Ok(()) => {
                hr.next_check = now;
                return self.set_holds(h, now, None);
            }
            Err(why) => why,
        };
        hr.next_check = now + self.cfg.gate_interval;
        let first = !std::mem::replace(&mut hr.release_warned, true);
        let host = &self.fleet.hosts[h as usize];
        let clusters: Vec<&str> = hr
            .holds
            .iter()
            .map(|x| self.fleet.clusters[x.cluster as usize].id.as_str())
            .collect();
        let text = format!(
            "{}: what its drain changed in {} could not be put back: {why}; retrying every {}",
            host.id,
            clusters.join(", "),
            fmt_duration(self.cfg.gate_interval)
        );
        hr.note = Some(text.clone());
        if first {
            self.notice(now, NoticeKind::Escalation, host.region, Some(h), text);
        }
    }

    /// One cluster's gate answer; the round ends with the last one: healthy, or another
    /// round after `gate_interval`.
    fn on_gate(&mut self, h: HostIx, now: i64, healthy: bool, detail: String) {
        let gate_interval = self.cfg.gate_interval;
        let hr = &mut self.hosts[h as usize];
        let Stage::Restoring(r) = &mut hr.stage else {
            return;
        };
        if r.gates_pending == 0 {
            return;
        }
        r.gates_pending -= 1;
        if !healthy {
            r.gates_bad = true;
            hr.note = Some(detail);
        }
        if r.gates_pending > 0 {
            return;
        }
        hr.inflight = false;
        if r.gates_bad {
            r.gates_bad = false;
            hr.next_check = now + gate_interval;
        } else {
            self.finish_host(h, now);
        }
    }

    /// Done: `replaced` if a replacement was ordered, else `healthy`.
    pub(super) fn finish_host(&mut self, h: HostIx, now: i64) {
        let to = if self.hosts[h as usize].replaced {
            Phase::Replaced
        } else {
            Phase::Healthy
        };
        self.transition(h, to, now, false, None);
    }

    fn on_replaced(&mut self, h: HostIx, now: i64, result: Outcome) {
        if self.phase(h) != Phase::Missing {
            return self.stale(h);
        }
        self.hosts[h as usize].inflight = false;
        let region = self.fleet.hosts[h as usize].region;
        let id = &self.fleet.hosts[h as usize].id;
        match result {
            Ok(()) => {
                let text = format!("{id} was replaced");
                self.notice(now, NoticeKind::HostReplaced, region, Some(h), text);
                let note = Some("replacement joined".into());
                self.transition(h, Phase::Restoring, now, false, note);
                let hr = &mut self.hosts[h as usize];
                hr.replaced = true;
                // the replacement joined without a drain to undo
                if let Stage::Restoring(r) = &mut hr.stage {
                    r.undrained = true;
                }
            }
            Err(why) => {
                let text = format!("{id}: replacement failed: {why}");
                self.hosts[h as usize].note = Some(format!("replace failed: {why}"));
                self.notice(now, NoticeKind::Escalation, region, Some(h), text);
                self.pause_for_escalation(now);
            }
        }
    }
}
