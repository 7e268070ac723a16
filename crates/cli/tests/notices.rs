//! `rollcall notices pull` and `rollcall guard --once` with the real binary, without root:
//! the notice sources read directly from the tests' metadata server (Azure's and GCP's
//! documented payloads; no emulator of either runs here), the guard's run on simulated
//! hosts. The testbed test (`guard.rs`) does the same over SSH with real hosts.

use rollcall_testkit::metadata::{GcpWindow, MetaServer};
use rollcall_testkit::{TmpDir, text};
use serde_json::Value;
use std::path::{Path, PathBuf};

const RC: rollcall_testkit::Bin = rollcall_testkit::bin!();

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Hosts a, b, c in one cluster (one member at a time) of tenant acme; a and b on Azure,
/// c on GCP, read directly from `meta`.
fn fleet(dir: &Path, meta: &MetaServer) -> PathBuf {
    let mut t = String::from(
        r#"[fleet]
name = "guarded"

[defaults.durations]
redis-cluster = "20s"

[[tenant]]
id = "acme"

[[cluster]]
id = "cache"
kind = "redis-cluster"
tenant = "acme"
members = ["a", "b", "c"]
max_unavailable = 1

[maintenance]
notice_lead = "0s"

"#,
    );
    for h in ["a", "b", "c"] {
        t += &format!("[[host]]\nid = \"{h}\"\nregion = \"lab\"\n\n");
    }
    t += "[azure]\nvia = \"direct\"\n";
    for h in ["a", "b"] {
        t += &format!("[azure.host.{h}]\nendpoint = \"{}\"\n", meta.endpoint(h));
    }
    t += &format!(
        "[gcp]\nvia = \"direct\"\n[gcp.host.c]\nendpoint = \"{}\"\n",
        meta.endpoint("c")
    );
    let p = dir.join("fleet.toml");
    std::fs::write(&p, t).unwrap();
    p
}

#[test]
fn notices_pull_prints_every_hosts_events_and_an_unread_host_fails_it() {
    let dir = TmpDir::new("notices-pull");
    let meta = MetaServer::start();
    let t = now();
    meta.azure_schedule("a", "ev-a", "Reboot", t + 3600);
    let w = GcpWindow {
        start: t + 7200,
        end: t + 7800,
        latest_start: t + 9000,
        ongoing: false,
    };
    meta.gcp_window("c", Some(w));
    let f = fleet(&dir, &meta);
    let out = RC.run(&["notices", "pull", f.to_str().unwrap()]);
    let so = text(&out.stdout);
    assert!(out.status.success(), "{so}{}", text(&out.stderr));
    assert!(so.contains("a  azure  ev-a  Reboot  scheduled"), "{so}");
    assert!(so.contains("b  azure  no events"), "{so}");
    assert!(so.contains("c  gcp  window-"), "{so}");
    // b answers garbage: its maintenance is unknown, and the pull says so and fails
    meta.garbage("b", true);
    let out = RC.run(&["notices", "pull", f.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "b")
        .unwrap();
    assert!(b["error"].as_str().unwrap().contains("b"), "{b}");
    assert!(b.get("events").is_none());
}

#[test]
fn a_fleet_without_sources_or_with_a_bad_one_is_refused_with_its_line() {
    let dir = TmpDir::new("notices-bad");
    let p = dir.join("f.toml");
    std::fs::write(&p, "[[host]]\nid = \"a\"\nregion = \"lab\"\n").unwrap();
    let out = RC.run(&["notices", "pull", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no notice source"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(
        &p,
        "[[host]]\nid = \"a\"\nregion = \"lab\"\n[azure]\nvia = \"carrier-pigeon\"\n[azure.host.zz]\n",
    )
    .unwrap();
    let out = RC.run(&["notices", "pull", p.to_str().unwrap()]);
    let e = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(e.contains("f.toml:5") && e.contains("azure.via"), "{e}");
    assert!(e.contains("no host `zz`"), "{e}");
}

#[test]
fn guard_once_reboots_the_noticed_hosts_ahead_says_the_collision_and_not_twice() {
    let dir = TmpDir::new("guard-once");
    let meta = MetaServer::start();
    let t = now();
    // a and b in windows that overlap: a collision in cache (one member at a time)
    meta.azure_schedule("a", "ev-a", "Reboot", t + 7200);
    meta.azure_schedule("b", "ev-b", "Reboot", t + 7300);
    let f = fleet(&dir, &meta);
    let db = dir.db();
    let guard = |extra: &[&str]| {
        let mut args = vec!["guard", f.to_str().unwrap(), "--driver", "sim", "--once"];
        args.extend(["--time-scale", "60", "--json", "--db", db.to_str().unwrap()]);
        args.extend(extra);
        RC.run(&args)
    };
    let out = guard(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: Vec<Value> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let risks: Vec<&Value> = j.iter().filter(|r| r["kind"] == "provider_risk").collect();
    assert_eq!(risks.len(), 1, "{}", text(&out.stdout));
    assert!(
        risks[0]["text"]
            .as_str()
            .unwrap()
            .contains("2 of cache's 3 members")
    );
    let healthy: Vec<&str> = j
        .iter()
        .filter(|r| r["type"] == "transition" && r["to"] == "healthy")
        .filter_map(|r| r["host_id"].as_str())
        .collect();
    assert_eq!(healthy, ["a", "b"], "only the noticed hosts, each once");
    let book = RC.run(&["notices", "list", "--json", "--db", db.to_str().unwrap()]);
    let b: Vec<Value> = serde_json::from_slice(&book.stdout).unwrap();
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|e| e["outcome"] == "done"), "{b:?}");
    // a second round: nothing due, no second run
    let out = guard(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).trim().is_empty(), "{}", text(&out.stdout));
    let runs = RC.run(&["history", "--db", db.to_str().unwrap()]);
    assert_eq!(
        text(&runs.stdout).matches("guard-guarded-").count(),
        1,
        "{}",
        text(&runs.stdout)
    );
}
