//! Per-host state of a run.

use super::wire::{Hold, Phase};

/// Whether a host in this phase holds one of the fleet's and its region's concurrency
/// slots: while active, and while missing (it may come back and need work).
pub fn holds_slot(phase: Phase) -> bool {
    phase.is_active() || phase == Phase::Missing
}

/// Whether a host in this phase counts against its clusters' budgets.
pub fn counts_out(phase: Phase, failed_out: bool) -> bool {
    phase.is_active() || phase == Phase::Missing || (phase == Phase::Failed && failed_out)
}

#[derive(Debug, Clone)]
pub(super) struct HostRun {
    pub(super) phase: Phase,
    pub(super) since: i64,
    pub(super) boot_id: Option<String>,
    pub(super) attempt: u32,
    /// A command for this host is in flight.
    pub(super) inflight: bool,
    pub(super) next_check: i64,
    /// Restore done; waiting for gates.
    pub(super) undrained: bool,
    pub(super) gates_pending: u32,
    pub(super) gates_bad: bool,
    pub(super) failed_out: bool,
    /// The last probe showed the old boot id while reachable.
    pub(super) same_boot_seen: bool,
    pub(super) reboot_at: i64,
    pub(super) replaced: bool,
    /// Restored from a journal: the first step re-checks before any timeout applies
    /// (time passed while no orchestrator was watching).
    pub(super) fresh: bool,
    /// Restored with a journalled reboot intent that was never acknowledged (the
    /// orchestrator died between journalling the reboot and hearing back): the first
    /// probe decides. Reachable on the old boot id means the reboot never took (a host
    /// that got it is down or on a new boot id), so it is sent again at once instead of
    /// after `reboot_grace`.
    pub(super) unacked: bool,
    pub(super) return_timeout: i64,
    pub(super) gate_timeout: i64,
    pub(super) note: Option<String>,
    /// What this host's drain changed and has not been put back yet.
    pub(super) holds: Vec<Hold>,
    /// A failed release was announced already (say it loudly once, then retry quietly).
    pub(super) release_warned: bool,
}
