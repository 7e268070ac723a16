//! Per-host state of a run. What only one phase needs lives in that phase's variant of
//! [`Stage`] (as rustls gives each handshake state its own struct): a host that is not
//! returning has no reboot time, one that is not restoring has no gates pending.

use super::wire::{Hold, Phase};
use crate::model::{Fleet, Host, Kind};

/// Whether a host in this phase holds one of the fleet's and its region's concurrency
/// slots: while active, and while missing (it may come back and need work).
pub fn holds_slot(phase: Phase) -> bool {
    phase.is_active() || phase == Phase::Missing
}

/// Whether a host in this phase counts against its clusters' budgets.
pub fn counts_out(phase: Phase, failed_out: bool) -> bool {
    phase.is_active() || phase == Phase::Missing || (phase == Phase::Failed && failed_out)
}

/// A host's phase, with the data that only matters while it lasts.
#[derive(Debug, Clone)]
pub(super) enum Stage {
    Skipped,
    Pending,
    Announced,
    Preflight,
    Draining,
    Rebooting,
    Returning(Returning),
    Verifying,
    Restoring(Restoring),
    Healthy,
    /// `out`: it still counts against its clusters' budgets (it failed after it was
    /// disrupted).
    Failed {
        out: bool,
    },
    Missing,
    Replaced,
}

/// Waiting for the host to come back from its reboot.
#[derive(Debug, Clone)]
pub(super) struct Returning {
    /// When the reboot was sent (or taken as sent): the return timeout and the grace
    /// before a re-send count from here.
    pub reboot_at: i64,
    /// The last probe showed the old boot id while reachable.
    pub same_boot_seen: bool,
    /// Restored with a journalled reboot intent that was never acknowledged (the
    /// orchestrator died between journalling the reboot and hearing back): the first
    /// probe decides. Reachable on the old boot id means the reboot never took (a host
    /// that got it is down or on a new boot id), so it is sent again at once instead of
    /// after `reboot_grace`.
    pub unacked: bool,
}

/// Back and verified: undo the drain, then wait for every cluster's gate.
#[derive(Debug, Clone, Default)]
pub(super) struct Restoring {
    /// Restore done; waiting for gates.
    pub undrained: bool,
    /// Gate answers still to come for the round in flight.
    pub gates_pending: u32,
    /// A gate of this round answered unhealthy.
    pub gates_bad: bool,
}

impl Stage {
    /// The stage a host enters at `now` (`failed_out`: for `failed`, whether it still
    /// counts as out).
    pub fn enter(to: Phase, now: i64, failed_out: bool) -> Stage {
        match to {
            Phase::Skipped => Stage::Skipped,
            Phase::Pending => Stage::Pending,
            Phase::Announced => Stage::Announced,
            Phase::Preflight => Stage::Preflight,
            Phase::Draining => Stage::Draining,
            Phase::Rebooting => Stage::Rebooting,
            Phase::Returning => Stage::Returning(Returning {
                reboot_at: now,
                same_boot_seen: false,
                unacked: false,
            }),
            Phase::Verifying => Stage::Verifying,
            Phase::Restoring => Stage::Restoring(Restoring::default()),
            Phase::Healthy => Stage::Healthy,
            Phase::Failed => Stage::Failed { out: failed_out },
            Phase::Missing => Stage::Missing,
            Phase::Replaced => Stage::Replaced,
        }
    }

    pub fn phase(&self) -> Phase {
        match self {
            Stage::Skipped => Phase::Skipped,
            Stage::Pending => Phase::Pending,
            Stage::Announced => Phase::Announced,
            Stage::Preflight => Phase::Preflight,
            Stage::Draining => Phase::Draining,
            Stage::Rebooting => Phase::Rebooting,
            Stage::Returning(_) => Phase::Returning,
            Stage::Verifying => Phase::Verifying,
            Stage::Restoring(_) => Phase::Restoring,
            Stage::Healthy => Phase::Healthy,
            Stage::Failed { .. } => Phase::Failed,
            Stage::Missing => Phase::Missing,
            Stage::Replaced => Phase::Replaced,
        }
    }
}

/// One host of the run: its stage and what spans phases.
#[derive(Debug, Clone)]
pub(super) struct HostRun {
    pub stage: Stage,
    /// When it entered its phase (moved forward when waits restart).
    pub since: i64,
    /// The boot id before the reboot (from preflight on).
    pub boot_id: Option<String>,
    /// Reboots sent since it started.
    pub attempt: u32,
    /// A command for this host is in flight.
    pub inflight: bool,
    pub next_check: i64,
    /// A replacement was ordered: it ends `replaced` rather than `healthy`.
    pub replaced: bool,
    /// Restored from a journal: the first step re-checks before any timeout applies
    /// (time passed while no orchestrator was watching).
    pub fresh: bool,
    pub return_timeout: i64,
    pub gate_timeout: i64,
    pub note: Option<String>,
    /// What this host's drain changed and has not been put back yet.
    pub holds: Vec<Hold>,
    /// A failed release was announced already (say it loudly once, then retry quietly).
    pub release_warned: bool,
}

impl HostRun {
    /// A host not in the plan (`skipped`). A cluster member waits as long as its
    /// clusters allow (the longest of them); a host in no cluster gets the defaults.
    pub fn new(fleet: &Fleet, host: &Host) -> HostRun {
        let (mut rt, mut gt) = if host.clusters.is_empty() {
            (
                Kind::None.default_return_timeout(),
                Kind::None.default_gate_timeout(),
            )
        } else {
            (0, 0)
        };
        for &c in &host.clusters {
            rt = rt.max(fleet.clusters[c as usize].return_timeout);
            gt = gt.max(fleet.clusters[c as usize].gate_timeout);
        }
        HostRun {
            stage: Stage::Skipped,
            since: 0,
            boot_id: None,
            attempt: 0,
            inflight: false,
            next_check: 0,
            replaced: false,
            fresh: false,
            return_timeout: rt,
            gate_timeout: gt,
            note: None,
            holds: Vec::new(),
            release_warned: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.stage.phase()
    }

    /// Failed after it was disrupted: still counts against its clusters' budgets.
    pub fn failed_out(&self) -> bool {
        matches!(self.stage, Stage::Failed { out: true })
    }

    /// Counts against its clusters' budgets now.
    pub fn counts_out(&self) -> bool {
        counts_out(self.phase(), self.failed_out())
    }

    /// Active, missing, or holding a drain's change: the engine watches it.
    pub fn has_work(&self) -> bool {
        let p = self.phase();
        p.is_active() || p == Phase::Missing || !self.holds.is_empty()
    }
}
