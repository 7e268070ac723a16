//! `rollcall resume RUN --replan`: adopt the fleet files as they are on disk now.
//!
//! A run's journal refers to hosts by index into the fleet it started with, so a changed
//! fleet is never slipped under it. Instead the run is closed (status `replanned`, with
//! the host changes in its summary) and a new run takes over with the files on disk:
//! hosts are matched by id, every host the old run finished (healthy, replaced, failed)
//! is out of the new run's scope and never touched again (`params.replan.done`), and the
//! rest is planned afresh under the same rules. Only a run with no host out of its
//! clusters (at work, missing, or failed after a disruption) can be replanned: such a
//! host holds budget that a new plan could not see.

use crate::err;
use crate::run::{Restored, checked_plan, config_report, restore};
use rollcall_core::HostIx;
use rollcall_core::engine::Phase;
use rollcall_drivers::sim::read_log;
use rollcall_fleet::sources::{diff_hosts, read_fleet_text};
use rollcall_runtime::{Lease, NewRunSpec, Replan, RunParams, start_run};
use rollcall_store::{RunRow, RunStatus, Store};
use std::path::Path;
use std::sync::Arc;

/// Close run `row` and create the run that replaces it; its id.
pub async fn replan(
    store: &Store,
    row: &RunRow,
    lease: &Lease,
    quiet: bool,
) -> miette::Result<String> {
    let Restored { run, engine, .. } = restore(store, row).await?;
    let (fleet, params) = (&run.fleet, &run.params);
    let out: Vec<&str> = (0..fleet.hosts.len() as HostIx)
        .filter(|&h| engine.is_out(h))
        .map(|h| fleet.hosts[h as usize].id.as_str())
        .collect();
    if !out.is_empty() {
        return Err(miette::miette!(
            "run {id}: cannot replan while hosts are out of their clusters ({}); resume it \
             without --replan, `rollcall pause {id}` once they are back, then --replan",
            out.join(", "),
            id = row.id
        ));
    }
    let held: Vec<&str> = engine
        .holds()
        .iter()
        .map(|(h, _)| fleet.hosts[*h as usize].id.as_str())
        .collect();
    if !held.is_empty() {
        return Err(miette::miette!(
            "run {id}: cannot replan while drains of {} still hold a change to their clusters \
             (shard allocation not put back); resume it without --replan until they are \
             released, then --replan",
            held.join(", "),
            id = row.id
        ));
    }
    let mut done = params.done_before().to_vec();
    for h in 0..fleet.hosts.len() as HostIx {
        let ph = engine.phase(h);
        if ph.is_final() && ph != Phase::Skipped {
            done.push(fleet.hosts[h as usize].id.clone());
        }
    }
    let path = Path::new(&row.fleet_path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| miette::miette!("{}: cannot read: {e}", path.display()))?;
    let opts = params.load_options();
    let base = path.parent().unwrap_or(Path::new("."));
    let (mut new, files) =
        read_fleet_text(&row.fleet_path, text, base, &opts).map_err(config_report)?;
    let diff = diff_hosts(fleet, &new);
    let id = next_id(store, &row.id).await?;
    let mut np: RunParams = params.clone();
    if let (Some(old), Some(dir)) = (
        &params.world,
        params.world.as_ref().and_then(|w| w.parent()),
    ) {
        let world = dir.join(format!("{id}.log"));
        carry_world(old, &world, &new)?;
        np.world = Some(world);
    }
    np.replan = Some(Replan {
        from: row.id.clone(),
        done: done.clone(),
        diff: diff.clone(),
    });
    np.apply(&mut new);
    let p = checked_plan(&new)?;
    let spec = NewRunSpec {
        id: id.clone(),
        fleet_path: path,
        fleet: Arc::new(new),
        files: &files,
        params: np,
        // the old run's claims pass to the new one
        supersedes: Some(row.id.clone()),
        lease_ttl_ms: rollcall_runtime::LEASE_TTL_MS,
    };
    // the new run is resumed by whoever resumes it: its lease is given up at once
    let (_, new_lease) = start_run(store, spec).await.map_err(err)?;
    new_lease.release(store).await.map_err(err)?;
    let summary = serde_json::json!({ "replanned_into": id, "diff": diff });
    store
        .set_status(&lease.fence, RunStatus::Replanned, &summary)
        .await
        .map_err(err)?;
    if !quiet {
        eprintln!(
            "run {} replanned into run {id}: {} host(s) done and kept out, {} added, {} removed, {} changed; {} host(s) to go",
            row.id,
            done.len(),
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len(),
            p.steps.len()
        );
    }
    Ok(id)
}

/// `RUN-replan1`, `RUN-replan2`, ...: the first id not taken.
async fn next_id(store: &Store, old: &str) -> miette::Result<String> {
    let stem = old.split("-replan").next().unwrap_or(old);
    for n in 1.. {
        let id = format!("{stem}-replan{n}");
        if store.run(&id).await.map_err(err)?.is_none() {
            return Ok(id);
        }
    }
    unreachable!("an unbounded range always yields")
}

/// The simulated world goes on: what happened to hosts of the new fleet carries over.
fn carry_world(old: &Path, new: &Path, fleet: &rollcall_core::Fleet) -> miette::Result<()> {
    let keep: std::collections::HashSet<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
    let mut text = String::new();
    for e in read_log(old).map_err(err)? {
        if keep.contains(e.host.as_str()) {
            text.push_str(&format!("{} {} {}\n", e.action, e.host, e.at));
        }
    }
    std::fs::write(new, text).map_err(|e| miette::miette!("{}: {e}", new.display()))
}
