//! Which hosts start, and when regions and the run are done: announcements, the serial
//! regions' turns, budgets (through [`crate::budget`], shared with the planner),
//! windows, "go last" hints, stalls, completion.

use super::Engine;
use super::wire::*;
use crate::budget::earliest_fit;
use crate::model::*;

/// Not started yet.
fn waiting(p: Phase) -> bool {
    matches!(p, Phase::Pending | Phase::Announced)
}

impl Engine {
    /// Announcements: every region with hosts, as soon as the maintenance starts.
    pub(super) fn announce_regions(&mut self, now: i64) {
        if now < self.fleet.maintenance.start || matches!(self.state, RunState::Aborting) {
            return;
        }
        for i in 0..self.region_order.len() {
            let r = self.region_order[i];
            let rr = &self.regions[r as usize];
            if rr.announced_at.is_none()
                && !rr.announcing
                && !self.region_hosts[r as usize].is_empty()
            {
                self.regions[r as usize].announcing = true;
                self.command(now, Command::Announce { region: r });
            }
        }
    }

    /// Hosts of an announced region move to `announced` (once per region).
    pub(super) fn announce_hosts(&mut self, now: i64) {
        for r in 0..self.regions.len() {
            if self.regions[r].announced_at.is_none() || self.region_all_announced[r] {
                continue;
            }
            self.region_all_announced[r] = true;
            for i in self.region_cursor[r]..self.region_hosts[r].len() {
                let h = self.region_hosts[r][i];
                if self.phase(h) == Phase::Pending {
                    self.transition(h, Phase::Announced, now, false, None);
                }
            }
        }
    }

    /// `h` goes last and another member of its clusters has not started yet.
    fn waits_for_others(&self, h: HostIx) -> bool {
        self.last.contains(&h)
            && self.fleet.hosts[h as usize].clusters.iter().any(|&c| {
                self.fleet.clusters[c as usize]
                    .members
                    .iter()
                    .any(|&m| m != h && waiting(self.phase(m)))
            })
    }

    /// The regions that may start hosts now.
    fn open_regions(&self) -> Vec<RegionIx> {
        match self.fleet.maintenance.region_mode {
            RegionMode::Parallel => self.region_order.clone(),
            RegionMode::Serial => match self.region_order.get(self.serial_pos) {
                Some(&r) => vec![r],
                None => self.late_region().into_iter().collect(),
            },
        }
    }

    /// Serial mode after every region had its turn: hosts that were held back (by a
    /// missing member under `continue`) are done now, one region at a time, first the
    /// regions with hosts at work (and not merely held by a missing member), then those
    /// with hosts waiting.
    fn late_region(&self) -> Option<RegionIx> {
        let working = |h: HostIx| self.phase(h).is_active() && !self.region_may_move_on(h);
        let waiting = |h: HostIx| waiting(self.phase(h)) && !self.region_may_move_on(h);
        for pick in [&working as &dyn Fn(HostIx) -> bool, &waiting] {
            for &r in &self.region_order {
                if self.region_hosts[r as usize].iter().any(|&h| pick(h)) {
                    return Some(r);
                }
            }
        }
        None
    }

    /// Serial mode: move to the next region once this one may hand over.
    pub(super) fn advance_serial(&mut self) {
        while let Some(&r) = self.region_order.get(self.serial_pos) {
            let ri = r as usize;
            // without missing hosts a region hands over exactly when all its hosts are final
            let done = if self.counts.missing_total == 0 {
                self.counts.region_unfinished[ri] == 0
            } else {
                self.region_hosts[ri]
                    .iter()
                    .all(|&h| self.region_may_move_on(h))
            };
            if !done {
                break;
            }
            self.serial_pos += 1;
        }
    }

    /// A serialized region may hand over to the next when each of its hosts is done,
    /// missing, or held by a missing member of its cluster (back and waiting for the
    /// cluster, or not started under `continue`).
    fn region_may_move_on(&self, h: HostIx) -> bool {
        let p = self.phase(h);
        let held = || self.counts.member_missing(&self.fleet.hosts[h as usize]);
        let m = &self.fleet.maintenance;
        // under `pause` a missing host holds the region until it returns or an
        // operator resumes the run
        let missing_ok =
            m.on_missing != OnMissing::Pause || matches!(self.state, RunState::Running);
        p.is_final()
            || (p == Phase::Missing && missing_ok)
            || (p == Phase::Restoring && held())
            || (waiting(p) && m.on_missing == OnMissing::Continue && held())
    }

    /// Start what may start now; their preflights go out once every host starting at
    /// this instant is known (each names the others of its clusters).
    pub(super) fn start_hosts(&mut self, now: i64) {
        let mut started = Vec::new();
        self.pick_hosts(now, &mut started);
        for h in started {
            self.step_host(h, now);
        }
    }

    /// The other members of `h`'s clusters that count as out now (active, missing,
    /// failed and out).
    pub(super) fn out_with(&self, h: HostIx) -> Vec<HostIx> {
        let mut with: Vec<HostIx> = self.fleet.hosts[h as usize]
            .clusters
            .iter()
            .flat_map(|&c| self.fleet.clusters[c as usize].members.iter().copied())
            .filter(|&m| m != h && self.hosts[m as usize].counts_out())
            .collect();
        with.sort_unstable();
        with.dedup();
        with
    }

    fn pick_hosts(&mut self, now: i64, started: &mut Vec<HostIx>) {
        let m = &self.fleet.maintenance;
        if now < m.start + m.notice_lead {
            return;
        }
        for r in self.open_regions() {
            if !self.pick_in_region(r, now, started) {
                return;
            }
        }
    }

    /// Start what fits in region `r`, in plan order. False: a concurrency limit is full.
    fn pick_in_region(&mut self, r: RegionIx, now: i64, started: &mut Vec<HostIx>) -> bool {
        let ri = r as usize;
        let m = &self.fleet.maintenance;
        let gmax = m.max_concurrent.unwrap_or(u32::MAX);
        let rmax = m.max_concurrent_per_region.unwrap_or(u32::MAX);
        match self.regions[ri].announced_at {
            Some(at) if now >= at + m.notice_lead => {}
            _ => return true,
        }
        let windows = m.windows[ri].clone();
        self.advance_cursor(ri);
        for i in self.region_cursor[ri]..self.region_hosts[ri].len() {
            if self.counts.global_active >= gmax || self.counts.region_active[ri] >= rmax {
                return false;
            }
            let h = self.region_hosts[ri][i];
            if self.phase(h) != Phase::Announced || !self.fits(h) || self.waits_for_others(h) {
                continue;
            }
            let d = self.fleet.hosts[h as usize].duration;
            if earliest_fit(windows.as_deref(), now, d) == Some(now) {
                self.start_host(r, h, now);
                started.push(h);
            }
        }
        true
    }

    /// Move region `ri`'s cursor past hosts that have started.
    pub(super) fn advance_cursor(&mut self, ri: usize) {
        let list = &self.region_hosts[ri];
        let mut c = self.region_cursor[ri];
        while c < list.len() && !waiting(self.hosts[list[c] as usize].phase()) {
            c += 1;
        }
        self.region_cursor[ri] = c;
    }

    fn start_host(&mut self, r: RegionIx, h: HostIx, now: i64) {
        let ri = r as usize;
        if !self.regions[ri].started {
            self.regions[ri].started = true;
            let text = format!(
                "maintenance {} started in {}",
                self.fleet.maintenance.name,
                self.fleet.region_name(r)
            );
            self.notice(now, NoticeKind::Started, r, None, text);
        }
        self.hosts[h as usize].attempt = 0;
        self.transition(h, Phase::Preflight, now, false, None);
    }

    /// Running, nothing in flight, and every host left is held by a budget that only an
    /// operator can free (failed hosts count as out): say so instead of waiting forever.
    pub(super) fn detect_stall(&mut self, now: i64) {
        if self.counts.global_active > 0 || self.counts.missing_total > 0 {
            return;
        }
        let open = self.open_regions();
        let mut left = 0;
        for &r in &open {
            for &h in &self.region_hosts[r as usize][self.region_cursor[r as usize]..] {
                if waiting(self.phase(h)) {
                    if self.fits(h) {
                        return;
                    }
                    left += 1;
                }
            }
        }
        if left > 0 {
            let region = open[0];
            let text = format!(
                "{left} host(s) in {} cannot start: their clusters' budgets are held by failed hosts",
                self.fleet.region_name(region)
            );
            self.notice(now, NoticeKind::Escalation, region, None, text);
            self.pause_for_escalation(now);
        }
    }

    /// Whether taking `h` out now keeps every cluster of it within its limits.
    fn fits(&self, h: HostIx) -> bool {
        let zone = self.host_zone[h as usize];
        let on_missing = self.fleet.maintenance.on_missing;
        self.fleet.hosts[h as usize].clusters.iter().all(|&c| {
            let ci = c as usize;
            // a cluster with a missing member starts nothing new under `continue`
            // (under `pause` the whole run waits; the member counts as out anyway);
            // members that are back wait for the cluster to be healthy before the
            // next one goes: hosts that go together form a wave, waves do not overlap
            self.counts.out.fits(ci, &self.limits[ci], zone)
                && !(self.counts.cluster_missing[ci] > 0 && on_missing == OnMissing::Continue)
                && self.counts.cluster_settling[ci] == 0
        })
    }

    /// Completion notices of regions whose last host is done.
    pub(super) fn finish_regions(&mut self, now: i64) {
        for i in 0..self.region_order.len() {
            let r = self.region_order[i];
            let ri = r as usize;
            if self.regions[ri].completed
                || !self.regions[ri].started
                || self.counts.region_unfinished[ri] > 0
            {
                continue;
            }
            let (mut ok, mut failed, mut replaced) = (0, 0, 0);
            for &h in &self.region_hosts[ri] {
                match self.phase(h) {
                    Phase::Healthy => ok += 1,
                    Phase::Failed => failed += 1,
                    Phase::Replaced => replaced += 1,
                    _ => {}
                }
            }
            self.regions[ri].completed = true;
            let text = format!(
                "maintenance {} completed in {}: {ok} healthy, {replaced} replaced, {failed} failed",
                self.fleet.maintenance.name,
                self.fleet.region_name(r)
            );
            self.notice(now, NoticeKind::Completed, r, None, text);
        }
    }

    pub(super) fn finish_run(&mut self, now: i64) {
        match self.state {
            // never over while a drain's change is still held
            _ if self.held > 0 => {}
            RunState::Aborting if self.counts.working == 0 => {
                self.emit_state(now, RunState::Aborted)
            }
            RunState::Running if self.counts.unfinished == 0 => {
                self.emit_state(now, RunState::Completed)
            }
            _ => {}
        }
    }
}
