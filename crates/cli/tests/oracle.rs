//! Plan quality against the exact optimum: OR-Tools CP-SAT (the venv `scripts/test`
//! installs, `rollcall_testkit::peers`) proves the optimal makespan of small dense fleets
//! under the planner's rules (crates/core/tests/oracle/oracle.py) and judges rollcall's
//! plans, as a user makes them: `rollcall gen --oracle --seed N`, then `rollcall plan
//! --json`. The set: 120 generated fleets and the hand-made shapes in
//! crates/core/tests/oracle/fleets (limit 2–3 with mixed durations, a limit tightened by
//! load, a zone budget over unequal zones, hosts shared by two clusters, binding
//! per-region concurrency, serial regions).

use rollcall_testkit::{Bin, TmpDir, peers, repo, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const RC: Bin = rollcall_testkit::bin!();

/// Generated fleets in the set.
const GENERATED: u64 = 120;
/// Seconds CP-SAT may spend on one solve (most prove in well under a second here; the margin
/// is for a machine loaded by the rest of CI).
const TIME_LIMIT: &str = "30";

/// `rollcall plan --json FLEET [ARGS]` into DIR/NAME.json.
fn plan_json(fleet: &Path, dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let mut a = vec!["plan", "--json", fleet.to_str().unwrap()];
    a.extend_from_slice(args);
    let o = RC.run(&a);
    assert!(o.status.success(), "plan {name}: {}", text(&o.stderr));
    let out = dir.join(format!("{name}.json"));
    std::fs::write(&out, &o.stdout).unwrap();
    out
}

/// The oracle set's plans: generated fleets, then the hand-made ones.
fn plans(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for seed in 0..GENERATED {
        let o = RC.run(&["gen", "--oracle", "--seed", &seed.to_string()]);
        assert!(o.status.success(), "gen seed {seed}: {}", text(&o.stderr));
        let fleet = dir.join(format!("gen-{seed}.toml"));
        std::fs::write(&fleet, &o.stdout).unwrap();
        v.push(plan_json(&fleet, dir, &format!("gen-{seed}"), &[]));
    }
    v.extend(fixed_plans(dir, &[]));
    v
}

/// The hand-made fleets' plans (`rollcall plan --json FLEET ARGS`).
fn fixed_plans(dir: &Path, args: &[&str]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let fixed = repo().join("crates/core/tests/oracle/fleets");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixed)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for f in names {
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        v.push(plan_json(&f, dir, &format!("fixed-{stem}"), args));
    }
    v
}

/// The oracle's verdicts, one per plan, and its summary.
fn oracle(plans: &[PathBuf]) -> (Vec<Value>, Value) {
    let script = repo().join("crates/core/tests/oracle/oracle.py");
    let o = Command::new(peers::ortools_python())
        .arg(script)
        .args(["--time-limit", TIME_LIMIT])
        .args(plans)
        .output()
        .expect("run the oracle");
    assert!(o.status.success(), "oracle: {}", text(&o.stderr));
    let mut lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("oracle prints JSON lines"))
        .collect();
    let summary = lines.pop().expect("a summary line")["summary"].clone();
    (lines, summary)
}

#[test]
fn rollcall_plans_are_feasible_near_optimal_and_bounded_below_the_optimum() {
    let dir = TmpDir::new("oracle");
    let plans = plans(&dir);
    let (each, sum) = oracle(&plans);
    eprintln!("oracle summary: {sum}");
    for r in &each {
        eprintln!(
            "  {:<28} hosts {:>2}  makespan {:>6}  optimum {:>6}  bound {:>6}  ratio {}  bound/opt {}",
            r["fleet"],
            r["hosts"],
            r["makespan_s"],
            r["optimum_s"],
            r["lower_bound_s"],
            r["ratio"],
            r["bound_ratio"]
        );
    }
    assert_eq!(each.len(), plans.len());
    assert!(
        each.len() >= 100 + 7,
        "the set has {} instances",
        each.len()
    );
    // every schedule satisfies the model, every optimum is proven, no bound exceeds it
    assert_eq!(sum["infeasible"], Value::Array(vec![]), "{sum}");
    assert_eq!(sum["proven"], sum["instances"], "{sum}");
    assert_eq!(sum["bound_above_optimum"], Value::Array(vec![]), "{sum}");
    // what the planner reaches on the set (README, docs/benchmarks.md): every plan
    // optimal (issue 12 asked for p99 <= 1.02, worst <= 1.05), the bound at the optimum
    // at the median (asked: >= 0.95) and never below 0.85 of it
    let f = |k: &str| sum[k].as_f64().unwrap_or(f64::NAN);
    assert_eq!(sum["optimal"], sum["instances"], "{sum}");
    assert!(f("ratio_worst") <= 1.0, "{sum}");
    assert!(f("bound_median") >= 0.95, "{sum}");
    assert!(f("bound_worst") >= 0.85, "{sum}");
}

/// Without the improvement phase (`--effort 0`) list scheduling falls into the
/// longest-first trap the hand-made fleets set (the oracle can tell), and still keeps
/// to the rules and stays above its bound.
#[test]
fn without_the_improvement_phase_longest_first_misses_the_optimum() {
    let dir = TmpDir::new("oracle-effort0");
    let plans = fixed_plans(&dir, &["--effort", "0"]);
    let (each, sum) = oracle(&plans);
    show(&each, &sum);
    assert_eq!(sum["infeasible"], Value::Array(vec![]), "{sum}");
    assert_eq!(sum["bound_above_optimum"], Value::Array(vec![]), "{sum}");
    let ratio = |name: &str| {
        each.iter().find(|r| r["fleet"] == name).expect(name)["ratio"]
            .as_f64()
            .unwrap()
    };
    // 30m,30m,20m,20m,20m under a limit of 2: 70m longest-first, 60m optimal
    assert!((ratio("limit2-mixed") - 70.0 / 60.0).abs() < 1e-3);
    // 50,50,40,40,30,30,30 m under a limit of 3: 110m longest-first, 90m optimal
    assert!((ratio("limit3-mixed") - 110.0 / 90.0).abs() < 1e-3);
}

/// Each verdict on stderr (seen with --nocapture or on failure).
fn show(each: &[Value], sum: &Value) {
    eprintln!("oracle summary: {sum}");
    for r in each {
        eprintln!(
            "  {:<28} hosts {:>2}  makespan {:>6}  optimum {:>6}  proven {}  bound {:>6}  ratio {}  bound/opt {}",
            r["fleet"],
            r["hosts"],
            r["makespan_s"],
            r["optimum_s"],
            r["proven"],
            r["lower_bound_s"],
            r["ratio"],
            r["bound_ratio"]
        );
    }
}
