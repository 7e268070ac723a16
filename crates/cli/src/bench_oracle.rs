//! `rollcall bench plan --oracle N`: plan quality against the exact optimum. N small dense
//! fleets (`GenParams::oracle`, the same as `rollcall gen --oracle --seed S`) and the
//! hand-made ones in crates/core/tests/oracle/fleets are planned as `rollcall plan --json`
//! would, and OR-Tools CP-SAT (crates/core/tests/oracle/oracle.py, in the venv
//! `scripts/test` installs) proves each optimum and judges the plan and its lower bound.

use crate::cmd::load;
use rollcall_core::generate::{GenParams, generate};
use rollcall_core::plan::{PlanOptions, plan_with};
use rollcall_core::{Fleet, report};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The oracle's OR-Tools version (as `scripts/test` installs it).
const ORTOOLS_VERSION: &str = "9.15.6755";

/// Where the oracle's python and script are, and how long it may work on one fleet.
pub struct Oracle {
    pub fleets: u64,
    pub time_limit: f64,
    pub effort: u32,
}

/// The venv's python: `$ROLLCALL_ORTOOLS_VENV`, or `~/.cache/rollcall/ortools-<version>`.
fn python() -> miette::Result<PathBuf> {
    let venv = match std::env::var_os("ROLLCALL_ORTOOLS_VENV") {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(format!(".cache/rollcall/ortools-{ORTOOLS_VERSION}")),
    };
    let py = venv.join("bin/python");
    match py.exists() {
        true => Ok(py),
        false => Err(miette::miette!(
            "OR-Tools is not installed: {} is missing (scripts/test installs ortools=={ORTOOLS_VERSION}; or set ROLLCALL_ORTOOLS_VENV)",
            py.display()
        )),
    }
}

/// crates/core/tests/oracle in the source tree this binary was built from.
fn oracle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/oracle")
}

/// Plan `f` and write its plan document to DIR/NAME.json.
fn write_plan(f: &Fleet, effort: u32, dir: &Path, name: &str) -> miette::Result<PathBuf> {
    let p = plan_with(f, PlanOptions { effort });
    let path = dir.join(format!("{name}.json"));
    let doc = serde_json::to_string(&report::plan_doc(f, &p)).map_err(crate::err)?;
    std::fs::write(&path, doc)
        .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The plan documents of the set, in `dir`.
fn plans(o: &Oracle, dir: &Path) -> miette::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for seed in 0..o.fleets {
        let f = generate(&GenParams::oracle(seed));
        v.push(write_plan(&f, o.effort, dir, &format!("gen-{seed}"))?);
    }
    let fixed = oracle_dir().join("fleets");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixed)
        .map_err(|e| miette::miette!("cannot read {}: {e}", fixed.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    for path in names {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        v.push(write_plan(
            &load(&path)?,
            o.effort,
            dir,
            &format!("fixed-{stem}"),
        )?);
    }
    Ok(v)
}

/// Run the oracle over the set: its summary, with the wall time it took.
pub fn bench_oracle(o: &Oracle) -> miette::Result<serde_json::Value> {
    let t0 = Instant::now();
    let dir = std::env::temp_dir().join(format!("rollcall-bench-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| miette::miette!("cannot create {}: {e}", dir.display()))?;
    let plans = plans(o, &dir)?;
    let out = Command::new(python()?)
        .arg(oracle_dir().join("oracle.py"))
        .args(["--time-limit", &o.time_limit.to_string()])
        .args(&plans)
        .output()
        .map_err(|e| miette::miette!("cannot run the oracle: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if !out.status.success() {
        return Err(miette::miette!(
            "the oracle failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("{}");
    let v: serde_json::Value = serde_json::from_str(last).map_err(crate::err)?;
    let mut s = v["summary"].clone();
    s["seconds"] = serde_json::json!(t0.elapsed().as_secs_f64());
    Ok(s)
}
