//! The status view model: what the journal of one run says about regions, clusters,
//! maintenances and updates, kept up to date incrementally as the journal grows.
//!
//! [`Tracker`] folds journal records (engine outputs) into per-host phases and counters;
//! [`View`] is the full, unfiltered picture built from a tracker plus the admin-created
//! notices and maintenances; [`View::audience`] cuts it down to what one audience may see
//! (public, one tenant, admin). Every output (HTML, JSON, feeds) is made from an
//! [`AudienceView`], so privacy is decided in one place.
//!
//! # Status mapping
//!
//! A cluster's status, from its members' phases ("out" = between preflight and healthy,
//! missing, or failed while still counting against the budget):
//!
//! | condition (first match wins)                                   | status                 |
//! |----------------------------------------------------------------|------------------------|
//! | every member out                                               | `major_outage`         |
//! | more members out than the cluster's budget (survivor load too) | `partial_outage`       |
//! | a member missing (did not return) or failed                    | `degraded_performance` |
//! | a member out within budget                                     | `under_maintenance`    |
//! | otherwise                                                      | `operational`          |
//!
//! A region's status: `major_outage` if every host of the region in the run is out;
//! else `partial_outage` if one of its clusters is in partial or major outage; else
//! `degraded_performance` if a host of the region is missing or failed; else
//! `under_maintenance` while a host of the region is out or its maintenance is in
//! progress; else `operational`.

use rollcall_core::engine::{Command, NoticeKind, Output, Phase, RunState, counts_out};
use rollcall_core::plan::Plan;
use rollcall_core::{Action, Fleet};
use rollcall_core::{RegionIx, fmt_time};
use rollcall_store::RunStatus;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Operational,
    UnderMaintenance,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Operational => "operational",
            Status::UnderMaintenance => "under_maintenance",
            Status::DegradedPerformance => "degraded_performance",
            Status::PartialOutage => "partial_outage",
            Status::MajorOutage => "major_outage",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Status::Operational => "Operational",
            Status::UnderMaintenance => "Under maintenance",
            Status::DegradedPerformance => "Degraded performance",
            Status::PartialOutage => "Partial outage",
            Status::MajorOutage => "Major outage",
        }
    }
    pub const ALL: [Status; 5] = [
        Status::Operational,
        Status::UnderMaintenance,
        Status::DegradedPerformance,
        Status::PartialOutage,
        Status::MajorOutage,
    ];
}

/// The run-independent facts a view needs from the run row.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: String,
    pub fleet_name: String,
    pub maintenance: String,
    /// The run row's status.
    pub status: RunStatus,
}

/// Folds a run's journal into the state the status page shows.
pub struct Tracker {
    pub run: RunInfo,
    pub fleet: Arc<Fleet>,
    pub plan: Plan,
    pub phase: Vec<Phase>,
    failed_out: Vec<bool>,
    /// Run clock of each host's last transition.
    host_changed: Vec<i64>,
    /// Run clock when each host left pending/announced (its actual start), if it did.
    pub started: Vec<Option<i64>>,
    /// Run clock when each host became healthy, replaced or failed, if it did.
    pub finished: Vec<Option<i64>>,
    pub last_seq: i64,
    pub state: RunState,
    /// Run clock of the newest record.
    pub last_at: i64,
    pub notices: Vec<(i64, rollcall_core::engine::Notice)>,
    pub reboots: u64,
    pub gate_checks: u64,
    gate_rounds: u64,
    gate_passes: u64,
    /// (host, at) of the last gate command: commands of one round share both.
    last_gate: HashMap<u32, i64>,
    pub commands: u64,
    pub transitions: u64,
    /// Region index → (started_at, completed_at, announced_at).
    pub region_times: Vec<(Option<i64>, Option<i64>, Option<i64>)>,
    /// Hosts of the run (in the plan) per region.
    pub region_hosts: Vec<Vec<u32>>,
}

impl Tracker {
    pub fn new(run: RunInfo, fleet: Arc<Fleet>, plan: Plan) -> Tracker {
        let n = fleet.hosts.len();
        let mut phase = vec![Phase::Skipped; n];
        let mut region_hosts = vec![Vec::new(); fleet.regions.len()];
        for s in &plan.steps {
            phase[s.host as usize] = Phase::Pending;
            region_hosts[fleet.hosts[s.host as usize].region as usize].push(s.host);
        }
        Tracker {
            run,
            region_times: vec![(None, None, None); fleet.regions.len()],
            region_hosts,
            fleet,
            plan,
            phase,
            failed_out: vec![false; n],
            host_changed: vec![0; n],
            started: vec![None; n],
            finished: vec![None; n],
            last_seq: 0,
            state: RunState::Running,
            last_at: 0,
            notices: Vec::new(),
            reboots: 0,
            gate_checks: 0,
            gate_rounds: 0,
            gate_passes: 0,
            last_gate: HashMap::new(),
            commands: 0,
            transitions: 0,
        }
    }

    /// Gate rounds that did not pass: gate answers are not journalled, but the engine
    /// only starts another round for a host after an unhealthy answer, and a round that
    /// passes moves the host to healthy (or replaced).
    pub fn gate_failures(&self) -> u64 {
        let open = self
            .last_gate
            .keys()
            .filter(|&&h| self.phase[h as usize] == Phase::Restoring)
            .count() as u64;
        self.gate_rounds
            .saturating_sub(self.gate_passes)
            .saturating_sub(open)
    }

    /// Apply records in journal order. Host indexes out of range are ignored (the view
    /// shows what it can; `rollcall status --check` is where a broken journal is judged).
    pub fn apply(&mut self, seq: i64, o: &Output) {
        self.last_seq = self.last_seq.max(seq);
        match o {
            Output::Transition(t) => {
                let h = t.host as usize;
                if h >= self.phase.len() {
                    return;
                }
                self.transitions += 1;
                if t.from == Phase::Restoring
                    && matches!(t.to, Phase::Healthy | Phase::Replaced)
                    && self.last_gate.contains_key(&t.host)
                {
                    self.gate_passes += 1;
                }
                self.phase[h] = t.to;
                self.failed_out[h] = t.out;
                self.mark_times(h, t.to, t.at);
                self.host_changed[h] = t.at;
                self.last_at = self.last_at.max(t.at);
            }
            Output::Command { at, command } => {
                self.commands += 1;
                self.last_at = self.last_at.max(*at);
                match command {
                    Command::Reboot { .. } => self.reboots += 1,
                    Command::Gate { host, .. } => {
                        self.gate_checks += 1;
                        if self.last_gate.get(host) != Some(at) {
                            self.gate_rounds += 1;
                            self.last_gate.insert(*host, *at);
                        }
                    }
                    _ => {}
                }
            }
            Output::Notice(n) => {
                self.last_at = self.last_at.max(n.at);
                if let Some(rt) = self.region_times.get_mut(n.region as usize) {
                    match n.kind {
                        NoticeKind::Scheduled => rt.2 = Some(n.at),
                        NoticeKind::Started => rt.0 = Some(n.at),
                        NoticeKind::Completed => rt.1 = Some(n.at),
                        _ => {}
                    }
                }
                self.notices.push((seq, n.clone()));
            }
            Output::State { at, state } => {
                self.last_at = self.last_at.max(*at);
                self.state = *state;
            }
            Output::Held { at, .. } | Output::Released { at, .. } => {
                self.last_at = self.last_at.max(*at);
            }
        }
    }

    /// Actual start and end of host `h` as the timeline draws them.
    fn mark_times(&mut self, h: usize, to: Phase, at: i64) {
        match to {
            Phase::Skipped | Phase::Pending | Phase::Announced => {}
            Phase::Healthy | Phase::Replaced | Phase::Failed => {
                self.started[h].get_or_insert(at);
                self.finished[h] = Some(at);
            }
            _ => {
                self.started[h].get_or_insert(at);
                self.finished[h] = None;
            }
        }
    }

    /// Whether host `h` counts against its clusters' budgets now.
    pub fn is_out(&self, h: u32) -> bool {
        self.out(h)
    }

    fn out(&self, h: u32) -> bool {
        counts_out(self.phase[h as usize], self.failed_out[h as usize])
    }
}

/// An admin-created notice (web_notices).
#[derive(Debug, Clone, Serialize)]
pub struct AdminNotice {
    pub id: String,
    pub at: i64,
    pub title: String,
    pub body: String,
    pub region: Option<String>,
    pub tenant: Option<String>,
}

/// An admin-created maintenance (web_maintenances).
#[derive(Debug, Clone, Serialize)]
pub struct AdminMaintenance {
    pub id: String,
    pub title: String,
    pub body: String,
    pub region: Option<String>,
    pub tenant: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    /// `scheduled` (status follows the clock), `completed` or `cancelled`.
    pub state: String,
    pub sequence: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub id: String,
    pub kind: &'static str,
    pub tenant: Option<String>,
    pub region: String,
    pub status: Status,
    pub members: usize,
    pub out: usize,
    pub missing: usize,
    pub budget: u32,
    pub hosts: Vec<String>,
    /// When the page first showed it (the run's announcement).
    pub created_at: i64,
    pub updated_at: i64,
    /// The plan refuses to roll it: why, in customer terms.
    pub excluded: Option<Excluded>,
}

/// A cluster the plan leaves out of the maintenance, said to its tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    /// Why, e.g. "2 nodes at load 0.60: it cannot lose a node without overloading the other".
    pub why: String,
    /// What happens if the provider reboots it anyway.
    pub risk: String,
    /// What the tenant can do.
    pub remedy: String,
}

impl Excluded {
    /// The tenant-facing text of the plan's refusal of cluster `ci` (`None`: not refused).
    pub fn of(f: &Fleet, plan: &Plan, ci: usize) -> Option<Excluded> {
        let r = plan.risks.iter().find(|r| {
            r.severity == rollcall_core::plan::Severity::Blocked && r.cluster == Some(ci as u32)
        })?;
        let c = &f.clusters[ci];
        let n = c.members.len();
        let others = if n == 2 { "the other" } else { "the others" };
        // the plan's remedy starts with "add N node(s) first" where it has one
        let add = r
            .remedy
            .split(" first")
            .next()
            .filter(|a| a.starts_with("add "))
            .map(|a| format!("A{}", &a[1..]))
            .unwrap_or_else(|| "Add a node".into());
        let (why, risk, remedy) = match r.code {
            "single-node" => (
                "1 node: restarting it takes the cluster down".to_string(),
                "If the provider reboots it anyway, the cluster is unavailable until the node is back.".to_string(),
                format!("{add} to it, or accept a short outage while it restarts."),
            ),
            "overloaded" => (
                format!(
                    "{n} nodes at load {:.2}, already above the safe {:.2}: it cannot lose a node",
                    c.load, c.max_load
                ),
                format!("If the provider reboots a node anyway, {others} are overloaded until it is back: slow or failed requests."),
                format!("{add} to it, or accept a short outage while each node restarts."),
            ),
            "survivor-load" => (
                format!("{n} nodes at load {:.2}: it cannot lose a node without overloading {others}", c.load),
                format!(
                    "If the provider reboots a node anyway, {others} would carry load {:.2} (safe: {:.2}) until it is back: slow or failed requests.",
                    c.load * n as f64 / (n.max(2) - 1) as f64,
                    c.max_load
                ),
                format!("{add} to it, or accept a short outage while each node restarts."),
            ),
            _ => (
                "no maintenance window fits it in time".to_string(),
                "If the provider reboots it anyway, it restarts outside a planned window.".to_string(),
                "Widen its maintenance windows.".to_string(),
            ),
        };
        Some(Excluded { why, risk, remedy })
    }

    /// One sentence for a component description or a notice.
    pub fn text(&self, cluster: &str) -> String {
        format!(
            "{cluster} is not part of this maintenance: {}. {} {}",
            self.why, self.risk, self.remedy
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionView {
    pub name: String,
    pub status: Status,
    pub hosts: usize,
    pub done: usize,
    pub out: usize,
    pub missing: usize,
    /// When the page first showed it (the run's announcement).
    pub created_at: i64,
    pub updated_at: i64,
    /// Indices into `View::clusters`.
    #[serde(skip)]
    pub clusters: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintStatus {
    Scheduled,
    InProgress,
    Completed,
    Cancelled,
}

impl MaintStatus {
    pub fn name(self) -> &'static str {
        match self {
            MaintStatus::Scheduled => "scheduled",
            MaintStatus::InProgress => "in_progress",
            MaintStatus::Completed => "completed",
            MaintStatus::Cancelled => "cancelled",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            MaintStatus::Scheduled => "Scheduled",
            MaintStatus::InProgress => "In progress",
            MaintStatus::Completed => "Completed",
            MaintStatus::Cancelled => "Cancelled",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MaintView {
    pub id: String,
    pub name: String,
    pub body: String,
    /// Region name, if the maintenance is about one region.
    pub region: Option<String>,
    /// Only this tenant sees it (admin maintenances for one tenant).
    pub tenant: Option<String>,
    pub status: MaintStatus,
    /// The announced window (run clock): the plan's, moved while it has not started
    /// when the run is late; never the actual start or end (`started_at`,
    /// `completed_at`).
    pub scheduled_for: i64,
    pub scheduled_until: i64,
    pub announced_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// iCalendar SEQUENCE (bumped when the window moves or it is cancelled).
    pub sequence: u32,
    /// `engine` (a region of the run) or `admin`.
    pub source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpdateView {
    /// Stable: `<run>.<journal seq>` for engine notices, the admin notice id otherwise.
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub region: Option<String>,
    pub title: String,
    /// What everyone may read.
    pub body: String,
    /// The fuller text for tenants in `tenants` (names hosts and their clusters).
    pub private_body: Option<String>,
    /// Tenants whose clusters the update is about.
    pub tenants: Vec<String>,
    /// Only this tenant sees the update at all (admin notice for one tenant).
    pub only_tenant: Option<String>,
    /// Clusters (ids) the update is about; shown only to their tenants.
    pub clusters: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub id: String,
    pub region: String,
    pub host: String,
    pub clusters: Vec<String>,
    pub tenants: Vec<String>,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    /// Update ids (engine notices) of this incident, oldest first.
    pub updates: Vec<String>,
}

/// The whole picture of one run, unfiltered.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// The deployment's page id (`page.id`; stable across runs), set by the server.
    pub page_id: String,
    pub run_id: String,
    pub page_name: String,
    pub maintenance: String,
    pub run_status: String,
    pub state: String,
    /// Run clock "now" the view was made at.
    pub now: i64,
    pub updated_at: i64,
    pub hosts_total: usize,
    pub hosts_done: usize,
    pub phases: Vec<(Phase, usize)>,
    pub regions: Vec<RegionView>,
    pub clusters: Vec<ClusterView>,
    pub maintenances: Vec<MaintView>,
    /// Newest first.
    pub updates: Vec<UpdateView>,
    pub incidents: Vec<IncidentView>,
    pub tenants: Vec<(String, String)>,
    pub reboots: u64,
    pub gate_checks: u64,
    pub gate_failures: u64,
    pub notices_by_kind: Vec<(String, u64)>,
    pub admin_notices: u64,
}

/// Sequence numbers remembered for engine maintenances (web_ical), by uid.
/// A published iCalendar event of an engine maintenance, as stored (`web_ical`): its
/// window, status and SEQUENCE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcalEvent {
    pub start: i64,
    pub end: i64,
    pub status: String,
    pub sequence: u32,
}

/// The stored iCalendar events by uid.
pub type IcalSeq = HashMap<String, IcalEvent>;

fn notice_kind_name(k: NoticeKind) -> &'static str {
    match k {
        NoticeKind::Scheduled => "scheduled",
        NoticeKind::Started => "started",
        NoticeKind::Completed => "completed",
        NoticeKind::HostMissing => "host_missing",
        NoticeKind::HostReturned => "host_returned",
        NoticeKind::HostReplaced => "host_replaced",
        NoticeKind::Escalation => "escalation",
        NoticeKind::ProviderRisk => "provider_risk",
    }
}

/// Each cluster's view, and the clusters of each region (a cluster belongs to the region
/// of most of its members).
fn cluster_views(t: &Tracker) -> (Vec<ClusterView>, Vec<Vec<usize>>) {
    let f = &*t.fleet;
    let mut clusters = Vec::with_capacity(f.clusters.len());
    let mut region_clusters: Vec<Vec<usize>> = vec![Vec::new(); f.regions.len()];
    for (ci, c) in f.clusters.iter().enumerate() {
        let n = c.members.len();
        let out = c.members.iter().filter(|&&h| t.out(h)).count();
        let missing = c
            .members
            .iter()
            .filter(|&&h| matches!(t.phase[h as usize], Phase::Missing | Phase::Failed))
            .count();
        let budget = t.plan.limits.get(ci).map(|l| l.nodes).unwrap_or(0);
        let status = if n > 0 && out == n {
            Status::MajorOutage
        } else if out as u32 > budget {
            Status::PartialOutage
        } else if missing > 0 {
            Status::DegradedPerformance
        } else if out > 0 {
            Status::UnderMaintenance
        } else {
            Status::Operational
        };
        // a cluster belongs to the region of most of its members
        let mut count: HashMap<u32, usize> = HashMap::new();
        for &h in &c.members {
            *count.entry(f.hosts[h as usize].region).or_default() += 1;
        }
        let region = count
            .into_iter()
            .max_by_key(|&(r, n)| (n, std::cmp::Reverse(r)))
            .map(|(r, _)| r)
            .unwrap_or(0);
        if let Some(rc) = region_clusters.get_mut(region as usize) {
            rc.push(ci);
        }
        clusters.push(ClusterView {
            id: c.id.clone(),
            kind: c.kind.name(),
            tenant: c.tenant.clone(),
            region: f.regions.get(region as usize).cloned().unwrap_or_default(),
            status,
            members: n,
            out,
            missing,
            budget,
            hosts: c
                .members
                .iter()
                .map(|&h| f.hosts[h as usize].id.clone())
                .collect(),
            created_at: t.plan.announce_at,
            updated_at: c
                .members
                .iter()
                .map(|&h| t.host_changed[h as usize])
                .max()
                .unwrap_or(0)
                .max(t.plan.announce_at),
            excluded: Excluded::of(f, &t.plan, ci),
        });
    }
    (clusters, region_clusters)
}

fn region_views(
    t: &Tracker,
    clusters: &[ClusterView],
    region_clusters: &[Vec<usize>],
) -> Vec<RegionView> {
    let f = &*t.fleet;
    let mut regions = Vec::new();
    for (ri, name) in f.regions.iter().enumerate() {
        let hosts = &t.region_hosts[ri];
        let out = hosts.iter().filter(|&&h| t.out(h)).count();
        let missing = hosts
            .iter()
            .filter(|&&h| matches!(t.phase[h as usize], Phase::Missing | Phase::Failed))
            .count();
        let done = hosts
            .iter()
            .filter(|&&h| t.phase[h as usize].is_final())
            .count();
        let (started, completed, _) = t.region_times[ri];
        let worst = region_clusters[ri]
            .iter()
            .map(|&c| clusters[c].status)
            .max()
            .unwrap_or(Status::Operational);
        let status = if !hosts.is_empty() && out == hosts.len() {
            Status::MajorOutage
        } else if worst >= Status::PartialOutage {
            Status::PartialOutage
        } else if missing > 0 {
            Status::DegradedPerformance
        } else if out > 0 || (started.is_some() && completed.is_none()) {
            Status::UnderMaintenance
        } else {
            Status::Operational
        };
        regions.push(RegionView {
            name: name.clone(),
            status,
            hosts: hosts.len(),
            done,
            out,
            missing,
            created_at: t.plan.announce_at,
            updated_at: hosts
                .iter()
                .map(|&h| t.host_changed[h as usize])
                .max()
                .unwrap_or(0)
                .max(t.plan.announce_at),
            clusters: region_clusters[ri].clone(),
        });
    }
    regions
}

/// One maintenance per region of the run, its window predicted from the plan and the run.
fn engine_maintenances(t: &Tracker, now: i64, ical: &IcalSeq) -> Vec<MaintView> {
    let f = &*t.fleet;
    let mut maintenances = Vec::new();
    for rp in &t.plan.regions {
        let (Some(ps), Some(pe)) = (rp.start, rp.end) else {
            continue;
        };
        let ri = rp.region as usize;
        let (started, completed, announced) = t.region_times[ri];
        let status = if completed.is_some() {
            MaintStatus::Completed
        } else if started.is_some() {
            MaintStatus::InProgress
        } else {
            MaintStatus::Scheduled
        };
        const STEP: i64 = 900;
        // a start up to one step late is on time (the first reboot waits for its gates)
        let late = |by: i64| {
            if by > STEP {
                (by + STEP - 1) / STEP * STEP
            } else {
                0
            }
        };
        // the announced window: the plan's, moved by a late start in 15-minute steps
        // while it has not started (each move is a reschedule: SEQUENCE goes up), then
        // kept as it was when it started; the actual start and end are `started_at` and
        // `completed_at`, so an overrun shows
        let shift = match started {
            Some(s) => late(s - ps),
            None if completed.is_none() => late(now - ps),
            None => 0,
        };
        let (start, end) = (ps + shift, pe + shift);
        // when the window last moved (the first instant the shift reached its value)
        let moved_at = (shift > 0).then(|| ps + shift - STEP + 1);
        let id = format!("{}.{}", t.run.id, f.regions[ri]);
        let seq = ical.get(&id).map(|x| x.sequence).unwrap_or(0);
        maintenances.push(MaintView {
            name: format!("{} in {}", f.maintenance.name, f.regions[ri]),
            body: format!(
                "Rolling {} {} {} servers in {} ({}). Clusters stay available: members are {} a few at a time, within each cluster's budget.",
                f.maintenance.action.noun(),
                if matches!(f.maintenance.action, Action::Restart { .. }) { "on" } else { "of" },
                rp.hosts,
                f.regions[ri],
                f.maintenance.action.keyword(),
                f.maintenance.action.past(),
            ),
            region: Some(f.regions[ri].clone()),
            tenant: None,
            status,
            scheduled_for: start,
            scheduled_until: end.max(start),
            announced_at: announced,
            started_at: started,
            completed_at: completed,
            created_at: t.plan.announce_at,
            updated_at: [announced, started, completed, moved_at]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(t.plan.announce_at),
            sequence: seq,
            source: "engine",
            id,
        });
    }
    maintenances
}

/// A maintenance created through the admin API.
fn admin_maintenance(m: &AdminMaintenance, now: i64) -> MaintView {
    let status = match m.state.as_str() {
        "cancelled" => MaintStatus::Cancelled,
        "completed" => MaintStatus::Completed,
        _ if now >= m.ends_at => MaintStatus::Completed,
        _ if now >= m.starts_at => MaintStatus::InProgress,
        _ => MaintStatus::Scheduled,
    };
    MaintView {
        id: m.id.clone(),
        name: m.title.clone(),
        body: m.body.clone(),
        region: m.region.clone(),
        tenant: m.tenant.clone(),
        status,
        scheduled_for: m.starts_at,
        scheduled_until: m.ends_at,
        announced_at: Some(m.created_at),
        started_at: (status != MaintStatus::Scheduled && status != MaintStatus::Cancelled)
            .then_some(m.starts_at),
        completed_at: (status == MaintStatus::Completed).then_some(m.ends_at.min(now)),
        created_at: m.created_at,
        updated_at: m.updated_at,
        sequence: m.sequence,
        source: "admin",
    }
}

/// What the engine's notices counted, by kind.
type ByKind = HashMap<&'static str, u64>;

/// The public title and body of an engine notice in `region` (`on_host`: about one server).
fn notice_text(
    f: &Fleet,
    n: &rollcall_core::engine::Notice,
    region: &str,
    on_host: bool,
) -> (String, String) {
    let m = &f.maintenance.name;
    let (noun, plural) = (f.maintenance.action.noun(), f.maintenance.action.plural());
    match (n.kind, on_host) {
        (NoticeKind::Scheduled, _) => (
            format!("Maintenance {m} scheduled in {region}"),
            n.text.clone(),
        ),
        (NoticeKind::Started, _) => (
            format!("Maintenance {m} started in {region}"),
            n.text.clone(),
        ),
        (NoticeKind::Completed, _) => (
            format!("Maintenance {m} completed in {region}"),
            n.text.clone(),
        ),
        (NoticeKind::HostMissing, _) => (
            format!("A server in {region} did not come back"),
            format!(
                "A server in {region} did not come back in time after its {noun}. Its clusters keep running on their other members; we are watching it."
            ),
        ),
        (NoticeKind::HostReturned, _) => (
            format!("A server in {region} is back"),
            format!("A server in {region} that had not come back after its {noun} is back."),
        ),
        (NoticeKind::HostReplaced, _) => (
            format!("A server in {region} was replaced"),
            format!("A server in {region} that did not come back was replaced."),
        ),
        (NoticeKind::Escalation, true) => (
            format!("Maintenance in {region} is waiting for an operator"),
            format!(
                "A server in {region} needs an operator; new {plural} wait until it is looked at."
            ),
        ),
        (NoticeKind::Escalation, false) => (
            format!("Maintenance in {region} is waiting for an operator"),
            n.text.clone(),
        ),
        // the operator's text names hosts and other tenants' clusters: never public
        (NoticeKind::ProviderRisk, _) => (
            format!("Provider maintenance in {region} would overlap on one cluster"),
            format!(
                "The cloud provider has scheduled maintenance in {region} that would take several servers of one cluster down together. We will restart them ahead of the provider's windows, a few at a time."
            ),
        ),
    }
}

/// The engine's notices as updates, the incidents of hosts that did not return, and the
/// count of notices by kind.
fn notice_updates(t: &Tracker) -> (Vec<UpdateView>, Vec<IncidentView>, ByKind) {
    let f = &*t.fleet;
    let mut updates = Vec::new();
    let mut incidents: Vec<IncidentView> = Vec::new();
    let mut by_kind: HashMap<&'static str, u64> = HashMap::new();
    for (seq, n) in &t.notices {
        *by_kind.entry(notice_kind_name(n.kind)).or_default() += 1;
        let region = f
            .regions
            .get(n.region as usize)
            .cloned()
            .unwrap_or_default();
        let host = n.host.and_then(|h| f.hosts.get(h as usize));
        let (hclusters, htenants): (Vec<String>, Vec<String>) = match host {
            Some(h) => {
                let cl: Vec<String> = h
                    .clusters
                    .iter()
                    .map(|&c| f.clusters[c as usize].id.clone())
                    .collect();
                let tn: BTreeSet<String> = h
                    .clusters
                    .iter()
                    .filter_map(|&c| f.clusters[c as usize].tenant.clone())
                    .collect();
                (cl, tn.into_iter().collect())
            }
            None => (Vec::new(), Vec::new()),
        };
        let (title, body) = notice_text(f, n, &region, host.is_some());
        let private_body = host.map(|_| {
            format!(
                "{} (cluster{}: {})",
                n.text,
                if hclusters.len() == 1 { "" } else { "s" },
                hclusters.join(", ")
            )
        });
        let id = format!("{}.{}", t.run.id, seq);
        if let (NoticeKind::HostMissing, Some(h)) = (n.kind, host) {
            incidents.push(IncidentView {
                id: id.clone(),
                region: region.clone(),
                host: h.id.clone(),
                clusters: hclusters.clone(),
                tenants: htenants.clone(),
                created_at: n.at,
                resolved_at: None,
                updates: vec![id.clone()],
            });
        }
        if let (NoticeKind::HostReturned | NoticeKind::HostReplaced, Some(h)) = (n.kind, host)
            && let Some(inc) = incidents
                .iter_mut()
                .rev()
                .find(|i| i.host == h.id && i.resolved_at.is_none())
        {
            inc.resolved_at = Some(n.at);
            inc.updates.push(id.clone());
        }
        updates.push(UpdateView {
            id,
            at: n.at,
            kind: notice_kind_name(n.kind).to_string(),
            region: Some(region),
            title,
            body,
            private_body,
            tenants: htenants,
            only_tenant: None,
            clusters: hclusters,
        });
    }
    (updates, incidents, by_kind)
}

/// A notice created through the admin API.
fn admin_update(a: &AdminNotice) -> UpdateView {
    UpdateView {
        id: a.id.clone(),
        at: a.at,
        kind: "notice".into(),
        region: a.region.clone(),
        title: a.title.clone(),
        body: a.body.clone(),
        private_body: None,
        tenants: a.tenant.iter().cloned().collect(),
        only_tenant: a.tenant.clone(),
        clusters: Vec::new(),
    }
}

/// A notice per cluster the plan refuses, to its tenant only (at the announcement).
fn excluded_updates(t: &Tracker, clusters: &[ClusterView]) -> Vec<UpdateView> {
    clusters
        .iter()
        .filter_map(|c| {
            let x = c.excluded.as_ref()?;
            Some(UpdateView {
                id: format!("{}.excluded.{}", t.run.id, c.id),
                at: t.plan.announce_at,
                kind: "excluded".into(),
                region: Some(c.region.clone()),
                title: format!("{} is not part of this maintenance", c.id),
                body: x.text(&c.id),
                private_body: Some(x.text(&c.id)),
                tenants: c.tenant.iter().cloned().collect(),
                only_tenant: c.tenant.clone(),
                clusters: vec![c.id.clone()],
            })
        })
        .collect()
}

impl View {
    /// An empty view: no run in the journal yet.
    pub fn empty(now: i64) -> View {
        View {
            page_id: String::new(),
            run_id: String::new(),
            page_name: "rollcall".into(),
            maintenance: String::new(),
            run_status: "none".into(),
            state: "none".into(),
            now,
            updated_at: now,
            hosts_total: 0,
            hosts_done: 0,
            phases: Vec::new(),
            regions: Vec::new(),
            clusters: Vec::new(),
            maintenances: Vec::new(),
            updates: Vec::new(),
            incidents: Vec::new(),
            tenants: Vec::new(),
            reboots: 0,
            gate_checks: 0,
            gate_failures: 0,
            notices_by_kind: Vec::new(),
            admin_notices: 0,
        }
    }

    /// Build the view. `ical` holds the stored SEQUENCE of engine maintenances; the
    /// caller bumps and stores it when the window of a maintenance moves (see
    /// [`View::ical_changes`]).
    pub fn build(
        t: &Tracker,
        now: i64,
        notices: &[AdminNotice],
        maints: &[AdminMaintenance],
        ical: &IcalSeq,
    ) -> View {
        let f = &*t.fleet;
        let (clusters, region_clusters) = cluster_views(t);
        let regions = region_views(t, &clusters, &region_clusters);
        // maintenances: one per region of the run, then the admin ones
        let mut maintenances = engine_maintenances(t, now, ical);
        maintenances.extend(maints.iter().map(|m| admin_maintenance(m, now)));
        // updates: engine notices and admin notices, newest first
        let (mut updates, incidents, by_kind) = notice_updates(t);
        updates.extend(notices.iter().map(admin_update));
        updates.extend(excluded_updates(t, &clusters));
        // newest first; ties: the later record first
        updates.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
        let phases: Vec<(Phase, usize)> = Phase::ALL
            .iter()
            .map(|&p| (p, t.phase.iter().filter(|&&x| x == p).count()))
            .collect();
        let mut notices_by_kind: Vec<(String, u64)> = by_kind
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        notices_by_kind.sort();
        View {
            page_id: String::new(),
            run_id: t.run.id.clone(),
            page_name: f.name.clone(),
            maintenance: f.maintenance.name.clone(),
            run_status: t.run.status.name().to_string(),
            state: t.state.name().to_string(),
            now,
            updated_at: t.last_at.max(
                notices
                    .iter()
                    .map(|n| n.at)
                    .chain(maints.iter().map(|m| m.updated_at))
                    .max()
                    .unwrap_or(0),
            ),
            hosts_total: t.plan.steps.len(),
            hosts_done: t
                .plan
                .steps
                .iter()
                .filter(|s| t.phase[s.host as usize].is_final())
                .count(),
            phases,
            regions,
            clusters,
            maintenances,
            updates,
            incidents,
            tenants: f
                .tenants
                .iter()
                .map(|t| (t.id.clone(), t.name.clone()))
                .collect(),
            reboots: t.reboots,
            gate_checks: t.gate_checks,
            gate_failures: t.gate_failures(),
            notices_by_kind,
            admin_notices: notices.len() as u64,
        }
    }

    /// Engine maintenances whose window or status differs from what is stored for its
    /// iCalendar event, with the event to store (SEQUENCE up by one; 0 for a new one).
    pub fn ical_changes(&self, stored: &IcalSeq) -> Vec<(String, IcalEvent)> {
        self.maintenances
            .iter()
            .filter(|m| m.source == "engine")
            .filter_map(|m| {
                let now = IcalEvent {
                    start: m.scheduled_for,
                    end: m.scheduled_until,
                    status: ical_status(m.status).to_string(),
                    sequence: 0,
                };
                let sequence = match stored.get(&m.id) {
                    Some(old)
                        if IcalEvent {
                            sequence: old.sequence,
                            ..now.clone()
                        } == *old =>
                    {
                        return None;
                    }
                    Some(old) => old.sequence + 1,
                    None => 0,
                };
                Some((m.id.clone(), IcalEvent { sequence, ..now }))
            })
            .collect()
    }

    /// What one audience may see.
    pub fn audience(&self, a: &Audience) -> AudienceView<'_> {
        let cluster_visible = |c: &ClusterView| match a {
            Audience::Admin => true,
            // clusters of no tenant are the operator's own: public
            Audience::Public => c.tenant.is_none(),
            Audience::Tenant(t) => c.tenant.is_none() || c.tenant.as_deref() == Some(t),
        };
        let tenant = match a {
            Audience::Tenant(t) => Some(t.as_str()),
            _ => None,
        };
        let regions = self
            .regions
            .iter()
            .map(|r| {
                let clusters = r
                    .clusters
                    .iter()
                    .map(|&c| &self.clusters[c])
                    .filter(|c| cluster_visible(c))
                    .collect();
                (r, clusters)
            })
            .collect();
        let maintenances = self
            .maintenances
            .iter()
            .filter(|m| match (&m.tenant, a) {
                (None, _) => true,
                (Some(_), Audience::Admin) => true,
                (Some(mt), Audience::Tenant(t)) => mt == t,
                (Some(_), Audience::Public) => false,
            })
            .collect();
        let updates = self
            .updates
            .iter()
            .filter(|u| match (&u.only_tenant, a) {
                (None, _) => true,
                (Some(_), Audience::Admin) => true,
                (Some(ut), Audience::Tenant(t)) => ut == t,
                (Some(_), Audience::Public) => false,
            })
            .map(|u| {
                let mine = matches!(a, Audience::Admin)
                    || tenant.is_some_and(|t| u.tenants.iter().any(|x| x == t));
                let (body, clusters) = match (&u.private_body, mine) {
                    (Some(p), true) => {
                        let cl: Vec<&str> = u
                            .clusters
                            .iter()
                            .filter(|c| {
                                self.clusters
                                    .iter()
                                    .find(|x| &x.id == *c)
                                    .is_some_and(&cluster_visible)
                            })
                            .map(String::as_str)
                            .collect();
                        // a shared host may also serve another tenant's cluster: name only
                        // the clusters this audience may see
                        let body = if cl.len() == u.clusters.len() {
                            p.clone()
                        } else {
                            format!(
                                "{} Your clusters affected: {}.",
                                u.body,
                                if cl.is_empty() {
                                    "none".to_string()
                                } else {
                                    cl.join(", ")
                                }
                            )
                        };
                        (body, cl)
                    }
                    _ => (u.body.clone(), Vec::new()),
                };
                AudUpdate { u, body, clusters }
            })
            .collect();
        let incidents = self
            .incidents
            .iter()
            .map(|i| {
                let mine = matches!(a, Audience::Admin)
                    || tenant.is_some_and(|t| i.tenants.iter().any(|x| x == t));
                let full = mine
                    && i.clusters.iter().all(|c| {
                        self.clusters
                            .iter()
                            .find(|x| &x.id == c)
                            .is_some_and(&cluster_visible)
                    });
                AudIncident { i, full }
            })
            .collect();
        AudienceView {
            view: self,
            audience: a.clone(),
            regions,
            maintenances,
            updates,
            incidents,
        }
    }
}

pub fn ical_status(s: MaintStatus) -> &'static str {
    match s {
        MaintStatus::Cancelled => "CANCELLED",
        _ => "CONFIRMED",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Audience {
    Public,
    Tenant(String),
    Admin,
}

pub struct AudUpdate<'a> {
    pub u: &'a UpdateView,
    pub body: String,
    pub clusters: Vec<&'a str>,
}

pub struct AudIncident<'a> {
    pub i: &'a IncidentView,
    /// The audience may see the host and its clusters.
    pub full: bool,
}

pub struct AudienceView<'a> {
    pub view: &'a View,
    pub audience: Audience,
    pub regions: Vec<(&'a RegionView, Vec<&'a ClusterView>)>,
    pub maintenances: Vec<&'a MaintView>,
    pub updates: Vec<AudUpdate<'a>>,
    pub incidents: Vec<AudIncident<'a>>,
}

impl AudienceView<'_> {
    /// The worst status over visible components.
    pub fn overall(&self) -> Status {
        self.regions
            .iter()
            .flat_map(|(r, cs)| std::iter::once(r.status).chain(cs.iter().map(|c| c.status)))
            .max()
            .unwrap_or(Status::Operational)
    }
    pub fn tenant_name(&self) -> Option<&str> {
        match &self.audience {
            Audience::Tenant(t) => self
                .view
                .tenants
                .iter()
                .find(|(id, _)| id == t)
                .map(|(_, n)| n.as_str()),
            _ => None,
        }
    }
}

/// RFC 3339 UTC.
pub fn ts(t: i64) -> String {
    fmt_time(t)
}

/// The region index by name.
pub fn region_ix(f: &Fleet, name: &str) -> Option<RegionIx> {
    f.regions.iter().position(|r| r == name).map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::engine::{Output, Transition};

    const FLEET: &str = r#"
host = [
  { id = "a1", address = "a1", region = "r1", zone = "z1" },
  { id = "a2", address = "a2", region = "r1", zone = "z2" },
  { id = "a3", address = "a3", region = "r1", zone = "z3" },
  { id = "a4", address = "a4", region = "r1", zone = "z1" },
  { id = "b1", address = "b1", region = "r2", zone = "z1" },
]

[fleet]
name = "t"

[maintenance]
name = "m"
start = "2014-09-25T20:00:00Z"
regions = ["r1", "r2"]

[[tenant]]
id = "ta"
name = "Ta"

[[cluster]]
id = "ca"
kind = "etcd"
tenant = "ta"
members = ["a1", "a2", "a3", "a4"]
max_unavailable = 1
load = 0.2
"#;

    fn tracker() -> Tracker {
        let f = rollcall_fleet::load_str(
            "t.toml",
            FLEET,
            std::path::Path::new("."),
            &rollcall_fleet::LoadOptions::default(),
        )
        .expect("fleet loads");
        let f = Arc::new(f);
        let p = rollcall_core::plan::plan(&f);
        Tracker::new(
            RunInfo {
                id: "r".into(),
                fleet_name: "t".into(),
                maintenance: "m".into(),
                status: RunStatus::Running,
            },
            f,
            p,
        )
    }

    fn mv(t: &mut Tracker, seq: i64, host: u32, to: Phase) {
        let from = t.phase[host as usize];
        t.apply(
            seq,
            &Output::Transition(Transition {
                host,
                from,
                to,
                at: 100 + seq,
                boot_id: None,
                out: to == Phase::Failed,
                note: None,
            }),
        );
    }

    fn statuses(t: &Tracker) -> (Status, Status, Status) {
        let v = View::build(t, 1000, &[], &[], &HashMap::new());
        (
            v.clusters[0].status,
            v.regions[0].status,
            v.regions[1].status,
        )
    }

    #[test]
    fn cluster_and_region_statuses_follow_the_documented_mapping() {
        let mut t = tracker();
        assert_eq!(
            statuses(&t),
            (
                Status::Operational,
                Status::Operational,
                Status::Operational
            )
        );
        mv(&mut t, 1, 0, Phase::Rebooting);
        assert_eq!(
            statuses(&t),
            (
                Status::UnderMaintenance,
                Status::UnderMaintenance,
                Status::Operational
            ),
            "one member out within a budget of 1"
        );
        mv(&mut t, 2, 0, Phase::Missing);
        assert_eq!(
            statuses(&t),
            (
                Status::DegradedPerformance,
                Status::DegradedPerformance,
                Status::Operational
            ),
            "a missing member"
        );
        mv(&mut t, 3, 1, Phase::Rebooting);
        assert_eq!(
            statuses(&t),
            (
                Status::PartialOutage,
                Status::PartialOutage,
                Status::Operational
            ),
            "two out, budget 1"
        );
        mv(&mut t, 4, 2, Phase::Draining);
        mv(&mut t, 5, 3, Phase::Failed);
        assert_eq!(
            statuses(&t),
            (
                Status::MajorOutage,
                Status::MajorOutage,
                Status::Operational
            ),
            "every member out (failed counts while out)"
        );
        for (s, h) in [(6, 0), (7, 1), (8, 2), (9, 3)] {
            mv(&mut t, s, h, Phase::Healthy);
        }
        assert_eq!(
            statuses(&t),
            (
                Status::Operational,
                Status::Operational,
                Status::Operational
            )
        );
    }

    #[test]
    fn the_public_sees_no_tenant_cluster_and_the_tenant_sees_its_own() {
        let t = tracker();
        let v = View::build(&t, 1000, &[], &[], &HashMap::new());
        let public = v.audience(&Audience::Public);
        assert!(public.regions.iter().all(|(_, cs)| cs.is_empty()));
        let ta = v.audience(&Audience::Tenant("ta".into()));
        assert_eq!(ta.regions[0].1.len(), 1);
        let other = v.audience(&Audience::Tenant("tb".into()));
        assert!(other.regions.iter().all(|(_, cs)| cs.is_empty()));
    }
}
