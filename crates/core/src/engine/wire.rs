//! The journal's wire types: what the engine journals ([`Output`] and what it carries)
//! and what it is fed ([`Event`]). Their serialized form is the journal format, version
//! [`WIRE_VERSION`]; `tests/wire.rs` pins it byte for byte.

use crate::model::*;
use serde::{Deserialize, Serialize};

/// Version of the journal's wire format: the serialized form of [`Output`] (and of the
/// [`Command`], [`Transition`], [`Notice`], [`RunState`] and [`Hold`] it carries) and of
/// [`Event`]. Records carry no version field; version 1 is every journal written so far.
/// A change that old journals could not load, or would load with another meaning, needs
/// a new version and a reader for the old one. Adding an optional field
/// (`#[serde(default)]`, skipped when empty) is not such a change.
pub const WIRE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Refused by the plan (see its risk report); never touched.
    Skipped,
    Pending,
    Announced,
    Preflight,
    Draining,
    Rebooting,
    Returning,
    Verifying,
    Restoring,
    Healthy,
    Failed,
    Missing,
    Replaced,
}

impl Phase {
    pub const ALL: [Phase; 13] = [
        Phase::Skipped,
        Phase::Pending,
        Phase::Announced,
        Phase::Preflight,
        Phase::Draining,
        Phase::Rebooting,
        Phase::Returning,
        Phase::Verifying,
        Phase::Restoring,
        Phase::Healthy,
        Phase::Failed,
        Phase::Missing,
        Phase::Replaced,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Phase::Skipped => "skipped",
            Phase::Pending => "pending",
            Phase::Announced => "announced",
            Phase::Preflight => "preflight",
            Phase::Draining => "draining",
            Phase::Rebooting => "rebooting",
            Phase::Returning => "returning",
            Phase::Verifying => "verifying",
            Phase::Restoring => "restoring",
            Phase::Healthy => "healthy",
            Phase::Failed => "failed",
            Phase::Missing => "missing",
            Phase::Replaced => "replaced",
        }
    }
    /// Work on the host is over (it is no longer watched).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Skipped | Phase::Healthy | Phase::Failed | Phase::Replaced
        )
    }
    /// Between start and healthy: holds a concurrency slot.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Preflight
                | Phase::Draining
                | Phase::Rebooting
                | Phase::Returning
                | Phase::Verifying
                | Phase::Restoring
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Send the region's maintenance announcement.
    Announce { region: RegionIx },
    /// Checks before touching the host; answers with the current boot id. `with`: the
    /// other members of its clusters that are out or start together with it (a shard
    /// whose every copy sits on them and this host would go offline).
    Preflight {
        host: HostIx,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        with: Vec<HostIx>,
    },
    /// Prepare the host's clusters (fail over masters, move leaders, stop allocation).
    Drain { host: HostIx },
    /// Reboot. `boot_id` is the id before the reboot.
    Reboot {
        host: HostIx,
        boot_id: String,
        attempt: u32,
    },
    /// Read the boot id (read-only).
    Probe { host: HostIx },
    /// Services on the host are up (read-only).
    Verify { host: HostIx },
    /// Undo the drain (after the host came back).
    Restore { host: HostIx },
    /// Undo what a drain still holds on a host that will not come back through
    /// `restoring` (missing, failed): put it back now, without waiting for the host.
    Release { host: HostIx },
    /// Is the cluster healthy with this host back? (read-only)
    Gate { host: HostIx, cluster: ClusterIx },
    /// Replace a missing host (on_missing = replace).
    Replace { host: HostIx },
}

impl Command {
    pub fn host(&self) -> Option<HostIx> {
        match self {
            Command::Announce { .. } => None,
            Command::Preflight { host, .. }
            | Command::Drain { host }
            | Command::Reboot { host, .. }
            | Command::Probe { host }
            | Command::Verify { host }
            | Command::Restore { host }
            | Command::Release { host }
            | Command::Gate { host, .. }
            | Command::Replace { host } => Some(*host),
        }
    }
    /// Commands that change something: their intent is journalled before they run.
    pub fn mutates(&self) -> bool {
        matches!(
            self,
            Command::Announce { .. }
                | Command::Drain { .. }
                | Command::Reboot { .. }
                | Command::Restore { .. }
                | Command::Release { .. }
                | Command::Replace { .. }
        )
    }
}

pub type Outcome = Result<(), String>;

/// Something a drain changed in a cluster that must be put back (Elasticsearch's shard
/// allocation): journalled before the reboot is sent, so a restore after a crash, an
/// abort or a host that never returns knows it is there and what it was before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub cluster: ClusterIx,
    /// The driver's record of the value before the drain (opaque to the engine).
    pub undo: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Announced {
        region: RegionIx,
        result: Outcome,
    },
    Preflight {
        host: HostIx,
        result: Result<String, String>,
    },
    Drained {
        host: HostIx,
        result: Outcome,
        /// What the drain changed and holds, also when it failed part-way.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        holds: Vec<Hold>,
    },
    RebootSent {
        host: HostIx,
        result: Outcome,
    },
    /// `None`: unreachable (any error counts as unreachable).
    Probed {
        host: HostIx,
        boot_id: Option<String>,
    },
    Verified {
        host: HostIx,
        result: Outcome,
    },
    Restored {
        host: HostIx,
        result: Outcome,
    },
    /// Any error, timeout or garbage answer must arrive as `healthy: false`.
    Gate {
        host: HostIx,
        cluster: ClusterIx,
        healthy: bool,
        detail: String,
    },
    Replaced {
        host: HostIx,
        result: Outcome,
    },
    Control {
        control: Control,
    },
}

impl Event {
    /// The host the event is about (`None`: an announcement or a control).
    pub fn host(&self) -> Option<HostIx> {
        match self {
            Event::Preflight { host, .. }
            | Event::Drained { host, .. }
            | Event::RebootSent { host, .. }
            | Event::Probed { host, .. }
            | Event::Verified { host, .. }
            | Event::Restored { host, .. }
            | Event::Gate { host, .. }
            | Event::Replaced { host, .. } => Some(*host),
            Event::Announced { .. } | Event::Control { .. } => None,
        }
    }

    /// The event for a command that could not be carried out at all.
    pub fn failed(cmd: &Command, why: String) -> Event {
        match *cmd {
            Command::Announce { region } => Event::Announced {
                region,
                result: Err(why),
            },
            Command::Preflight { host, .. } => Event::Preflight {
                host,
                result: Err(why),
            },
            Command::Drain { host } => Event::Drained {
                host,
                result: Err(why),
                holds: Vec::new(),
            },
            Command::Reboot { host, .. } => Event::RebootSent {
                host,
                result: Err(why),
            },
            Command::Probe { host } => Event::Probed {
                host,
                boot_id: None,
            },
            Command::Verify { host } => Event::Verified {
                host,
                result: Err(why),
            },
            Command::Restore { host } | Command::Release { host } => Event::Restored {
                host,
                result: Err(why),
            },
            Command::Gate { host, cluster } => Event::Gate {
                host,
                cluster,
                healthy: false,
                detail: why,
            },
            Command::Replace { host } => Event::Replaced {
                host,
                result: Err(why),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Pause,
    Resume,
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    Operator,
    /// on_missing = pause and a host is missing.
    Missing,
    /// A host failed after it was disrupted: an operator must look.
    Escalation,
    /// The orchestrator was interrupted (Ctrl-C) and stopped cleanly.
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    Running,
    Paused {
        reason: PauseReason,
    },
    /// No new hosts start; hosts in flight finish.
    Aborting,
    Completed,
    Aborted,
}

impl RunState {
    pub fn is_over(self) -> bool {
        matches!(self, RunState::Completed | RunState::Aborted)
    }
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused { .. } => "paused",
            RunState::Aborting => "aborting",
            RunState::Completed => "completed",
            RunState::Aborted => "aborted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Region announced (sent at least the lead time before its first reboot).
    Scheduled,
    /// First reboot in the region.
    Started,
    /// Last host of the region is done.
    Completed,
    /// A host did not come back in time.
    HostMissing,
    /// A missing host came back.
    HostReturned,
    /// A missing host was replaced.
    HostReplaced,
    /// Something needs an operator.
    Escalation,
    /// The provider's own windows would take more members of a cluster out together than
    /// its budget allows (said once, when the run starts; `host` is one of them).
    ProviderRisk,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub region: RegionIx,
    pub host: Option<HostIx>,
    pub at: i64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub host: HostIx,
    pub from: Phase,
    pub to: Phase,
    pub at: i64,
    /// The boot id before the reboot (set from preflight on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// For `failed`: whether the host still counts against its clusters' budgets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Everything the engine asks the runtime to do or record, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    Transition(Transition),
    Command {
        at: i64,
        command: Command,
    },
    Notice(Notice),
    State {
        at: i64,
        state: RunState,
    },
    /// A drain of `host` holds these changes (journalled before the reboot is sent).
    Held {
        at: i64,
        host: HostIx,
        holds: Vec<Hold>,
    },
    /// What `host`'s drain held is put back.
    Released {
        at: i64,
        host: HostIx,
    },
}

impl Output {
    /// When it happened (run clock).
    pub fn at(&self) -> i64 {
        match self {
            Output::Transition(t) => t.at,
            Output::Notice(n) => n.at,
            Output::Command { at, .. }
            | Output::State { at, .. }
            | Output::Held { at, .. }
            | Output::Released { at, .. } => *at,
        }
    }
}

/// What a journal holds, replayed by [`Engine::restore`](super::Engine::restore): the engine's own outputs.
pub type Record = Output;
