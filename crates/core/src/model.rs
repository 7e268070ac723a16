//! The validated fleet model. Everything here has passed validation: ids are unique,
//! references resolve, numbers are in range. Times are Unix seconds (UTC), durations seconds.

use serde::Serialize;

pub type HostIx = u32;
pub type ClusterIx = u32;
pub type RegionIx = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Elasticsearch,
    Opensearch,
    RedisCluster,
    Etcd,
    Http,
    Command,
    None,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Elasticsearch,
        Kind::Opensearch,
        Kind::RedisCluster,
        Kind::Etcd,
        Kind::Http,
        Kind::Command,
        Kind::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Elasticsearch => "elasticsearch",
            Kind::Opensearch => "opensearch",
            Kind::RedisCluster => "redis-cluster",
            Kind::Etcd => "etcd",
            Kind::Http => "http",
            Kind::Command => "command",
            Kind::None => "none",
        }
    }

    /// Default time a rebooted host may take to come back (boot id changed) before it
    /// is declared missing, in seconds.
    pub fn default_return_timeout(self) -> i64 {
        match self {
            Kind::Elasticsearch | Kind::Opensearch => 15 * 60,
            _ => 10 * 60,
        }
    }

    /// Default time the cluster may take to report healthy after a member returns
    /// (Elasticsearch shard recovery can be long), in seconds.
    pub fn default_gate_timeout(self) -> i64 {
        match self {
            Kind::Elasticsearch | Kind::Opensearch => 60 * 60,
            _ => 15 * 60,
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Default estimate of one host's maintenance time (drain + reboot + return +
    /// verify + cluster back to healthy), in seconds. Elasticsearch includes shard
    /// recovery, which dominates.
    pub fn default_duration(self) -> i64 {
        match self {
            Kind::Elasticsearch | Kind::Opensearch => 20 * 60,
            Kind::RedisCluster => 6 * 60,
            Kind::Etcd => 4 * 60,
            Kind::Http | Kind::Command | Kind::None => 5 * 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// At most this many member hosts out at once.
    Nodes(u32),
    /// At most this many zones with member hosts out at once.
    Zones(u32),
}

impl Budget {
    /// How many members (or zones) may be out at once.
    pub fn count(self) -> u32 {
        match self {
            Budget::Nodes(k) | Budget::Zones(k) => k,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionMode {
    Serial,
    Parallel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    Pause,
    Replace,
    Continue,
}

impl OnMissing {
    pub fn parse(s: &str) -> Option<OnMissing> {
        match s {
            "pause" => Some(OnMissing::Pause),
            "replace" => Some(OnMissing::Replace),
            "continue" => Some(OnMissing::Continue),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub id: String,
    pub address: String,
    pub region: RegionIx,
    pub zone: String,
    pub provider: String,
    pub tags: Vec<String>,
    /// Estimated time this host is out (seconds), resolved from overrides and kinds.
    pub duration: i64,
    /// Clusters this host belongs to.
    pub clusters: Vec<ClusterIx>,
    /// Whether the maintenance covers this host.
    pub in_scope: bool,
    /// Latest end time allowed (from deadlines and provider notices), Unix seconds.
    pub deadline: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub id: String,
    pub kind: Kind,
    pub tenant: Option<String>,
    pub members: Vec<HostIx>,
    pub budget: Budget,
    /// Share of the cluster's capacity in use (0..=1).
    pub load: f64,
    /// Highest share survivors may carry while members are out.
    pub max_load: f64,
    /// The operator accepts an outage of this cluster (e.g. single-node dev clusters).
    pub allow_outage: bool,
    /// Elasticsearch/OpenSearch: the fewest replicas any index of the cluster has (`None`
    /// for other kinds). A budget above it could take every copy of a shard down at once.
    pub replicas: Option<u32>,
    /// How long a rebooted member may take to come back before it counts as missing.
    pub return_timeout: i64,
    /// How long the cluster may take to be healthy again after a member returns.
    pub gate_timeout: i64,
}

impl Cluster {
    /// Largest number of members that may be out while survivors stay at or under
    /// `max_load`: the largest k < n with load·n/(n−k) ≤ max_load.
    pub fn load_limit(&self) -> u32 {
        survivor_limit(self.members.len() as u32, self.load, self.max_load)
    }
}

/// Largest k < n such that load·n/(n−k) ≤ max_load (0 when even one is too many).
pub fn survivor_limit(n: u32, load: f64, max_load: f64) -> u32 {
    if n == 0 {
        return 0;
    }
    let mut k = 0;
    while k + 1 < n && survivors_fit(n, k + 1, load, max_load) {
        k += 1;
    }
    k
}

/// Whether survivors of n members with k out carry at most max_load.
pub fn survivors_fit(n: u32, k: u32, load: f64, max_load: f64) -> bool {
    if k >= n {
        return false;
    }
    load * n as f64 / (n - k) as f64 <= max_load + 1e-9
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub contact: Option<String>,
}

/// What is done to each host (`[maintenance] action`). The engine carries every action
/// through the same phases; the host driver does the action and probes its marker (the
/// boot id, the services' invocation ids, or the patch check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Reboot the host.
    Reboot,
    /// Restart these services (in this order) instead of the host.
    Restart { services: Vec<String> },
    /// Run `command` where `check` (exit 0 = applied) says the patch is missing;
    /// then reboot if `then_reboot`.
    Command {
        command: String,
        check: String,
        then_reboot: bool,
    },
}

impl Action {
    /// The keyword in the fleet file.
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::Reboot => "reboot",
            Action::Restart { .. } => "restart",
            Action::Command { .. } => "command",
        }
    }
    /// Whether the host itself goes down (its boot id changes).
    pub fn reboots(&self) -> bool {
        matches!(
            self,
            Action::Reboot
                | Action::Command {
                    then_reboot: true,
                    ..
                }
        )
    }
    /// What one host undergoes, as a noun for people: "reboot", "restart of opensearch",
    /// "patch", "patch and reboot".
    pub fn noun(&self) -> String {
        match self {
            Action::Reboot => "reboot".into(),
            Action::Restart { services } => format!("restart of {}", services.join(", ")),
            Action::Command {
                then_reboot: false, ..
            } => "patch".into(),
            Action::Command { .. } => "patch and reboot".into(),
        }
    }
    /// The past participle for people: "rebooted", "restarted", "patched".
    pub fn past(&self) -> &'static str {
        match self {
            Action::Reboot => "rebooted",
            Action::Restart { .. } => "restarted",
            Action::Command {
                then_reboot: false, ..
            } => "patched",
            Action::Command { .. } => "patched and rebooted",
        }
    }
    /// One line for `rollcall validate`: what is done and how it is never done twice.
    pub fn describe(&self) -> String {
        match self {
            Action::Reboot => "reboot each host (done when its boot id changes)".into(),
            Action::Restart { services } => format!(
                "restart {} on each host, no reboot (done when each service's run id changes)",
                services.join(", ")
            ),
            Action::Command {
                command,
                check,
                then_reboot,
            } => format!(
                "run `{command}` on each host unless `{check}` exits 0 (done when it does){}",
                if *then_reboot {
                    ", then reboot (and the boot id changes)"
                } else {
                    ""
                }
            ),
        }
    }
    /// The plural for people: "reboots", "restarts", "patches".
    pub fn plural(&self) -> &'static str {
        match self {
            Action::Reboot => "reboots",
            Action::Restart { .. } => "restarts",
            Action::Command { .. } => "patches",
        }
    }
    /// What is done to hosts, as a verb phrase: "reboot hosts", "restart opensearch on
    /// hosts", "patch hosts", "patch and reboot hosts".
    pub fn verb_phrase(&self) -> String {
        match self {
            Action::Restart { services } => format!("restart {} on hosts", services.join(", ")),
            _ => format!("{} hosts", self.noun()),
        }
    }
}

/// An opening in which maintenance may run: `[start, end)` Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Maintenance {
    pub name: String,
    pub action: Action,
    /// When announcements go out (the plan's epoch), Unix seconds.
    pub start: i64,
    /// Notice lead time: no region starts before `start + notice_lead`.
    pub notice_lead: i64,
    /// Region order (indices into `Fleet::regions`).
    pub region_order: Vec<RegionIx>,
    pub region_mode: RegionMode,
    pub max_concurrent: Option<u32>,
    pub max_concurrent_per_region: Option<u32>,
    pub on_missing: OnMissing,
    /// Windows per region, merged and sorted; `None` means always open.
    pub windows: Vec<Option<Vec<Interval>>>,
    /// How far ahead windows were expanded (Unix seconds).
    pub horizon: i64,
    /// The planner's improvement effort (`[maintenance] effort`); `None`: the default.
    /// Every plan of the fleet (`plan`, `run`, `simulate`) uses it.
    pub effort: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub id: String,
    pub code: String,
    /// Where it came from: `None` for the fleet file's own, else the provider source
    /// (`aws-ec2`, `aws-imds`, `azure`, `gcp`) that `rollcall guard` read it from.
    pub source: Option<String>,
    pub hosts: Vec<HostIx>,
    pub not_before: i64,
    pub not_after: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub name: String,
    pub regions: Vec<String>,
    pub hosts: Vec<Host>,
    pub clusters: Vec<Cluster>,
    pub tenants: Vec<Tenant>,
    pub maintenance: Maintenance,
    pub notices: Vec<Notice>,
}

impl Fleet {
    pub fn region_name(&self, r: RegionIx) -> &str {
        &self.regions[r as usize]
    }
}

/// Format seconds as a short human duration: `1h20m`, `45m`, `30s`.
pub fn fmt_duration(secs: i64) -> String {
    let neg = secs < 0;
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if d > 0 {
        out.push_str(&format!("{d}d"));
    }
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() || out == "-" {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// Format Unix seconds as RFC 3339 UTC.
pub fn fmt_time(t: i64) -> String {
    match jiff::Timestamp::from_second(t) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("@{t}"),
    }
}

/// Sort and merge overlapping or touching intervals.
pub fn merge_intervals(mut v: Vec<Interval>) -> Vec<Interval> {
    v.sort_by_key(|i| (i.start, i.end));
    let mut out: Vec<Interval> = Vec::with_capacity(v.len());
    for i in v {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => out.push(i),
        }
    }
    out
}

/// Parse a duration: friendly (`90s`, `20m`, `1h30m`, `2 hours`) or ISO 8601 (`PT1H`).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    match t.parse::<jiff::SignedDuration>() {
        Ok(d) => Ok(d.as_secs()),
        Err(e) => Err(format!("invalid duration `{s}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survivor_limit_matches_the_formula() {
        // 3 nodes at 0.5: losing one puts 0.75 on survivors (ok at 0.85), two: 1.5.
        assert_eq!(survivor_limit(3, 0.5, 0.85), 1);
        // 2 nodes at 0.6: losing one puts 1.2 on the survivor.
        assert_eq!(survivor_limit(2, 0.6, 0.85), 0);
        // 6 nodes at 0.4: k=2 gives 0.6, k=3 gives 0.8, k=4 gives 1.2
        assert_eq!(survivor_limit(6, 0.4, 0.85), 3);
        assert_eq!(survivor_limit(1, 0.0, 0.85), 0);
        assert_eq!(survivor_limit(0, 0.1, 0.85), 0);
    }

    #[test]
    fn durations_format() {
        assert_eq!(fmt_duration(0), "0s");
        assert_eq!(fmt_duration(4800), "1h20m");
        assert_eq!(fmt_duration(90061), "1d1h1m1s");
        assert_eq!(fmt_duration(-60), "-1m");
    }
}
