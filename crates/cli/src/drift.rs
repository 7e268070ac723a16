//! `resume`: the fleet files on disk against the ones stored with the run. A run always
//! goes on with its stored fleet; this only tells the operator what changed since.

use rollcall_core::Fleet;
use rollcall_fleet::LoadOptions;
use rollcall_fleet::sources::{HostDiff, diff_hosts, digest, read_fleet_text};
use rollcall_store::RunRow;
use std::path::Path;

/// What is on disk now, compared with the stored fleet.
pub enum Drift {
    /// The fleet file and every import are byte for byte the stored ones.
    Same,
    /// The fleet file cannot be read any more.
    Unreadable(String),
    /// The files changed and no longer load.
    Invalid(String),
    /// The files changed; the hosts that differ (possibly none).
    Changed(HostDiff),
}

/// Compare the files on disk with what run `row` stored; `stored` is its fleet.
pub fn drift(row: &RunRow, stored: &Fleet, start: Option<i64>) -> Drift {
    let path = Path::new(&row.fleet_path);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Drift::Unreadable(format!("{}: {e}", path.display())),
    };
    let stored_digest = match rollcall_runtime::stored_imports(row) {
        Ok(Some(s)) => s.digest,
        _ => digest(&row.fleet_text, &Default::default()),
    };
    let opts = match start {
        Some(now) => LoadOptions { now },
        None => LoadOptions::default(),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    match read_fleet_text(&row.fleet_path, text, base, &opts) {
        Ok((_, files)) if files.digest() == stored_digest => Drift::Same,
        Ok((now, _)) => Drift::Changed(diff_hosts(stored, &now)),
        Err(e) => Drift::Invalid(e.listing()),
    }
}

/// The operator's message for a drift, or `None` when nothing changed.
pub fn describe(run: &str, d: &Drift) -> Option<String> {
    let head =
        format!("run {run}: the fleet files on disk differ from the ones stored with the run");
    let tail = format!(
        "going on with the stored fleet (to adopt the files on disk: rollcall resume {run} --replan)"
    );
    let body = match d {
        Drift::Same => return None,
        Drift::Unreadable(why) => {
            return Some(format!(
                "run {run}: the fleet file cannot be read ({why}); going on with the stored fleet"
            ));
        }
        Drift::Invalid(why) => format!("  they no longer load:\n{why}"),
        Drift::Changed(h) if h.is_empty() => "  no host differs".to_string(),
        Drift::Changed(h) => host_lines(h),
    };
    Some(format!("{head}\n{body}\n  {tail}"))
}

fn host_lines(h: &HostDiff) -> String {
    let mut out = Vec::new();
    for id in &h.added {
        out.push(format!("  + {id} (added)"));
    }
    for id in &h.removed {
        out.push(format!("  - {id} (removed)"));
    }
    for (id, what) in &h.changed {
        out.push(format!("  ~ {id}: {what}"));
    }
    out.join("\n")
}
