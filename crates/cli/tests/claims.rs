//! Issue #15: no two live runs of a journal on the same hosts. A second `rollcall run`
//! over hosts or clusters a live run holds refuses to start (naming that run, its
//! operator and the hosts) or, with `--wait`, waits for it to end; runs started at the
//! same instant from two processes: exactly one starts; runs over other hosts go side
//! by side.

use rollcall_testkit::{Bin, Kill, TmpDir};
use std::process::Output;
use std::time::{Duration, Instant};

const RC: Bin = rollcall_testkit::bin!();

/// A fleet sharing no host and no cluster with examples/xsa-108.toml.
const LAB: &str = r#"
host = [
  { id = "lab-1", region = "lab", zone = "a" },
  { id = "lab-2", region = "lab", zone = "b" },
  { id = "lab-3", region = "lab", zone = "c" },
]

[fleet]
name = "lab"

[defaults]
durations = { elasticsearch = "10m" }

[maintenance]
name = "lab-reboots"
start = "2026-01-05T00:00:00Z"
notice_lead = "10m"
regions = ["lab"]

[[cluster]]
id = "lab-search"
kind = "elasticsearch"
members = ["lab-1", "lab-2", "lab-3"]
max_unavailable = 1
"#;

/// `rollcall run FLEET --db DB --run-id ID --time-scale SCALE --quiet EXTRA…`.
fn run_args<'a>(fleet: &'a str, db: &'a str, id: &'a str, scale: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        fleet,
        "--db",
        db,
        "--run-id",
        id,
        "--time-scale",
        scale,
        "--quiet",
    ]
}

fn status(db: &str, run: &str) -> serde_json::Value {
    let out = RC.run(&["status", run, "--db", db, "--json", "--check"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Until the run is in the journal and live, at most 60 s.
fn await_running(db: &str, run: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        let out = RC.run(&["status", run, "--db", db, "--json"]);
        if let Ok(st) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && st["run"]["status"] == "running"
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("run {run} did not start");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn wait(mut k: Kill, limit: Duration, what: &str) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = k.try_wait().unwrap() {
            return st;
        }
        assert!(t.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Completed, and `status --check` finds no broken rule and no host rebooted twice.
fn assert_clean_completion(db: &str, run: &str) {
    let st = status(db, run);
    assert_eq!(st["run"]["status"], "completed", "{run}: {st}");
    assert_eq!(
        st["violations"].as_array().map(Vec::len),
        Some(0),
        "{run}: {}",
        st["violations"]
    );
    assert_eq!(st["leader"]["hosts_held"], 0, "{run}: claims released");
}

/// The new user's case: while `rollcall run examples/xsa-108.toml` runs, a second one on
/// the same fleet and journal is refused, naming the first run, its operator and the
/// hosts; `--wait` starts it once the first run ends (aborted here), and it completes.
#[test]
fn a_second_run_over_held_hosts_is_refused_or_waits() {
    let d = TmpDir::new("claims-second");
    let db = d.join("j.db");
    let db = db.to_str().unwrap();
    let fleet = "examples/xsa-108.toml";
    // slow enough to be running for the whole test
    let first = RC.spawn(&run_args(fleet, db, "first", "20"));
    await_running(db, "first");
    let st = status(db, "first");
    assert!(st["leader"]["hosts_held"].as_u64().unwrap() >= 372, "{st}");
    assert!(st["leader"]["epoch"].as_i64().unwrap() >= 1, "{st}");

    let refused = RC.run(&run_args(fleet, db, "second", "3000"));
    assert!(!refused.status.success());
    let msg = stderr(&refused);
    assert!(
        msg.contains("cannot start run \"second\": run first (started by ")
            && msg.contains(", running) holds 377 host(s) (dfw-es-001, ")
            && msg.contains(" and 369 more) and 66 cluster(s) (")
            && msg.contains("--wait"),
        "{msg}"
    );
    assert!(
        RC.run(&["status", "second", "--db", db]).status.code() != Some(0),
        "the refused run was not stored"
    );

    let mut args = run_args(fleet, db, "second", "3000");
    args.push("--wait");
    let second = RC.spawn(&args);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        RC.run(&["status", "second", "--db", db]).status.code() != Some(0),
        "it waits"
    );
    assert!(RC.run(&["abort", "first", "--db", db]).status.success());
    let st = wait(first, Duration::from_secs(120), "first did not stop");
    assert_eq!(st.code(), Some(4), "first: {st} (aborted: hosts not done)");
    assert_eq!(status(db, "first")["run"]["status"], "aborted");
    let st = wait(second, Duration::from_secs(240), "second did not finish");
    assert!(st.success(), "second: {st}");
    assert_clean_completion(db, "second");
}

/// Two processes start runs over the same fleet at the same instant, five times: exactly
/// one starts each time (the other is refused, naming it); a run over other hosts (the
/// imported example) goes beside it, and both complete with clean journals.
#[test]
fn overlapping_runs_started_at_once_exactly_one_starts_and_others_go_beside() {
    let d = TmpDir::new("claims-race");
    let db = d.join("j.db");
    let db = db.to_str().unwrap();
    let fleet = "examples/xsa-108.toml";
    for round in 0..5 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let mut ka = RC.spawn_output(&run_args(fleet, db, &a, "20"));
        let mut kb = RC.spawn_output(&run_args(fleet, db, &b, "20"));
        // the loser exits at once; the winner runs until aborted
        let t = Instant::now();
        let (loser, winner) = loop {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "round {round}: nobody lost"
            );
            if ka.has_exited() {
                break (ka, (kb, b.clone()));
            }
            if kb.has_exited() {
                break (kb, (ka, a.clone()));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = loser.output();
        assert!(!out.status.success(), "round {round}: both started");
        let msg = stderr(&out);
        assert!(
            msg.contains(&format!("run {} (started by ", winner.1)),
            "round {round}: {msg}"
        );
        await_running(db, &winner.1);
        assert!(RC.run(&["abort", &winner.1, "--db", db]).status.success());
        let out = winner.0.output();
        // an aborted run ends with hosts not done: exit code 4, not a crash
        assert_eq!(
            out.status.code(),
            Some(4),
            "round {round}: {}",
            stderr(&out)
        );
        assert_eq!(status(db, &winner.1)["run"]["status"], "aborted");
    }
    // other hosts and clusters: side by side
    let lab = d.join("lab.toml");
    std::fs::write(&lab, LAB).unwrap();
    let lab = lab.to_str().unwrap();
    let x = RC.spawn_output(&run_args(fleet, db, "xsa", "3000"));
    let y = RC.spawn_output(&run_args(lab, db, "lab", "300"));
    for (k, id) in [(x, "xsa"), (y, "lab")] {
        let out = k.output();
        assert!(
            out.status.success(),
            "{id}: {}: {}\n{}",
            out.status,
            stderr(&out),
            status(db, id)
        );
        assert_clean_completion(db, id);
    }
}
