//! Who runs a run: the lease in the store, its owners, and the one way a run starts
//! ([`start_run`]: stored, then leased, before anything acts).

use rollcall_core::Fleet;
use rollcall_fleet::sources::FleetFiles;
use rollcall_store::{Fence, Journal, NewRun, RunRow};
use std::path::Path;
use std::sync::Arc;

use crate::{RunParams, RuntimeError, StoredRun, imports_value, wall_ms};

/// How long a lease lasts without renewal, unless configured (`--lease-ttl`): a standby
/// on another machine takes a run over this long after its leader stopped renewing.
pub const LEASE_TTL_MS: i64 = 15_000;

/// This process's hold on a run: only the holder of the live lease acts for it, and every
/// write it makes is fenced by the lease's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub fence: Fence,
}

/// What [`Lease::take`] found.
#[derive(Debug)]
pub enum Taken {
    /// Ours now (free, expired, or its owner's process is gone).
    Ours(Lease),
    /// A live orchestrator holds it.
    HeldBy(String),
}

impl Lease {
    /// Take run `row`'s lease for `ttl_ms`: when it is free or expired, or when its holder
    /// is a process on this machine that is gone (killed, crashed), at once.
    pub async fn take(
        store: &impl Journal,
        row: &RunRow,
        ttl_ms: i64,
    ) -> Result<Taken, RuntimeError> {
        let me = owner();
        let err = RuntimeError::Store;
        if let Some(fence) = store
            .acquire_lease(&row.id, &me, wall_ms(), ttl_ms)
            .await
            .map_err(err)?
        {
            return Ok(Taken::Ours(Lease { fence }));
        }
        let holder = row.owner.clone().unwrap_or_default();
        if !owner_is_dead(&holder) {
            return Ok(Taken::HeldBy(holder));
        }
        let taken = store
            .take_over_lease(&row.id, &holder, &me, wall_ms(), ttl_ms)
            .await
            .map_err(err)?;
        Ok(match taken {
            Some(fence) => Taken::Ours(Lease { fence }),
            None => Taken::HeldBy(holder),
        })
    }

    /// The run this lease is for.
    pub fn run(&self) -> &str {
        &self.fence.run
    }

    /// Give the lease up (the run can be resumed at once, by anyone).
    pub async fn release(&self, store: &impl Journal) -> Result<(), RuntimeError> {
        store
            .release_lease(&self.fence)
            .await
            .map_err(RuntimeError::Store)
    }

    /// Hold `fleet`'s hosts and clusters for this run (those it holds already are kept):
    /// a resumed run claims what it drives, also when it was stored before claims.
    pub async fn claim(&self, store: &impl Journal, fleet: &Fleet) -> Result<(), RuntimeError> {
        store
            .claim(&self.fence, &claims_of(fleet))
            .await
            .map_err(RuntimeError::Store)
    }
}

/// What a run over `fleet` holds exclusively in its store: each host, and each cluster
/// (whose budget two runs over different hosts would otherwise both spend).
pub fn claims_of(fleet: &Fleet) -> Vec<String> {
    let hosts = fleet.hosts.iter().map(|h| format!("host:{}", h.id));
    let clusters = fleet.clusters.iter().map(|c| format!("cluster:{}", c.id));
    hosts.chain(clusters).collect()
}

/// Who starts a run: `user@host`.
pub fn operator() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(user_of_uid)
        .unwrap_or_else(|| "unknown".to_string());
    format!("{user}@{}", hostname())
}

/// This process's user name from its uid (`/proc/self/status`, `/etc/passwd`), when
/// the environment does not say (services, cron).
fn user_of_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let name = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2) == Some(&uid.as_str())).then(|| f[0].to_string())
    });
    Some(name.unwrap_or(format!("uid {uid}")))
}

/// A run about to start: what [`start_run`] stores.
#[derive(Clone)]
pub struct NewRunSpec<'a> {
    pub id: String,
    /// The fleet file as the operator named it (stored canonical).
    pub fleet_path: &'a Path,
    /// The fleet, loaded from `files`, with `params`' overrides applied
    /// ([`RunParams::apply`]).
    pub fleet: Arc<Fleet>,
    pub files: &'a FleetFiles,
    pub params: RunParams,
    /// `resume --replan`: the run this one replaces (its claims pass to this one).
    pub supersedes: Option<String>,
    pub lease_ttl_ms: i64,
}

/// Store a new run (its fleet text, imports and parameters) with its claims, and take its
/// lease: the one way a run starts. Refused ([`rollcall_store::StoreError::Claimed`]) while another live
/// run of the store holds one of its hosts or clusters. The run comes back as [`StoredRun::load`] would rebuild it.
pub async fn start_run(
    store: &impl Journal,
    spec: NewRunSpec<'_>,
) -> Result<(StoredRun, Lease), RuntimeError> {
    let NewRunSpec {
        id,
        fleet_path,
        fleet,
        files,
        params,
        supersedes,
        lease_ttl_ms,
    } = spec;
    let path = std::fs::canonicalize(fleet_path).unwrap_or_else(|_| fleet_path.to_path_buf());
    let row = store
        .create_run(&NewRun {
            id: id.clone(),
            fleet_path: path.display().to_string(),
            fleet_name: fleet.name.clone(),
            maintenance: fleet.maintenance.name.clone(),
            params: serde_json::to_value(&params)
                .map_err(|e| RuntimeError::Journal(e.to_string()))?,
            fleet_text: files.text.clone(),
            fleet_imports: imports_value(files),
            operator: operator(),
            claims: claims_of(&fleet),
            supersedes,
        })
        .await
        .map_err(RuntimeError::Store)?;
    let lease = match Lease::take(store, &row, lease_ttl_ms).await? {
        Taken::Ours(l) => l,
        Taken::HeldBy(holder) => return Err(RuntimeError::Taken { run: id, holder }),
    };
    let run = StoredRun { row, params, fleet };
    Ok((run, lease))
}

/// A new run id: `rYYYYMMDD-HHMMSS-xxxx`.
pub fn new_run_id() -> String {
    let ts = jiff::Timestamp::now();
    let nanos = ts.as_nanosecond() as u64;
    let mut z = nanos ^ ((std::process::id() as u64) << 32);
    z = (z ^ (z >> 33)).wrapping_mul(0xff51afd7ed558ccd);
    format!(
        "r{}-{:04x}",
        ts.strftime("%Y%m%d-%H%M%S"),
        (z >> 48) & 0xffff
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// This process as a lease owner: `host:pid:started-ms`.
pub fn owner() -> String {
    format!("{}:{}:{}", hostname(), std::process::id(), wall_ms())
}

/// An owner on this machine whose process is gone (killed, crashed) holds its lease
/// until it expires; it can be taken over at once. Owners elsewhere cannot be judged.
pub fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(h), Some(pid)) = (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) else {
        return false;
    };
    if h != hostname() || pid == std::process::id() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // a zombie is dead too
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}
