//! End-to-end tests of the `rollcall` binary.

use rollcall_testkit::{Bin, TmpDir, text};
use std::path::PathBuf;
use std::process::Output;

const RC: Bin = rollcall_testkit::bin!();

fn rollcall(args: &[&str]) -> Output {
    RC.run(args)
}

/// Write `text` to `dir/name` and run `rollcall validate` on it: (the file, the output).
fn validate(dir: &TmpDir, name: &str, text: impl AsRef<str>) -> (PathBuf, Output) {
    let f = dir.join(name);
    std::fs::write(&f, text.as_ref()).unwrap();
    let out = rollcall(&["validate", f.to_str().unwrap()]);
    (f, out)
}

#[test]
fn plan_prints_makespan_bound_regions_and_risks() {
    let out = rollcall(&["plan", "examples/xsa-108.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("lower bound"), "{s}");
    for r in ["dfw", "ord", "iad", "lon", "syd", "hkg"] {
        assert!(
            s.lines().any(|l| l.starts_with(r)),
            "region {r} row missing"
        );
    }
    assert!(s.contains("BLOCKED survivor-load    acme-search: 2 nodes at load 0.60 cannot lose one under max_load 0.85"));
    assert!(s.contains("remedy: add 1 node(s) first"));
    // --strict turns blocked hosts into a failing exit code
    let strict = rollcall(&["plan", "--strict", "examples/xsa-108.toml"]);
    assert_eq!(strict.status.code(), Some(3));
}

#[test]
fn plan_json_follows_the_documented_schema() {
    let out = rollcall(&["plan", "--json", "examples/xsa-108.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["schema"], "rollcall.plan/v1");
    for key in [
        "fleet",
        "maintenance",
        "region_mode",
        "notice_lead_s",
        "announce_at",
        "earliest_start",
        "end",
        "makespan_s",
        "lower_bound_s",
        "ratio",
        "hosts",
        "regions",
        "clusters",
        "steps",
        "risks",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let steps = v["steps"].as_array().unwrap();
    let hosts = &v["hosts"];
    assert_eq!(steps.len() as u64, hosts["scheduled"].as_u64().unwrap());
    assert_eq!(
        hosts["scheduled"].as_u64().unwrap() + hosts["unscheduled"].as_u64().unwrap(),
        hosts["in_scope"].as_u64().unwrap()
    );
    let blocked: u64 = v["risks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["severity"] == "blocked")
        .map(|r| r["hosts"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(blocked, hosts["unscheduled"].as_u64().unwrap());
    assert!(v["makespan_s"].as_i64().unwrap() >= v["lower_bound_s"].as_i64().unwrap());
    let c = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "acme-search")
        .unwrap();
    assert_eq!(c["budget"]["nodes"], 1);
    assert_eq!(c["limit"], 0);
    assert!(steps[0]["start"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn validate_reports_file_line_and_field() {
    let dir = TmpDir::new("cli");
    let (bad, out) = validate(
        &dir,
        "bad.toml",
        "[[host]]\nid = \"a\"\nregion = \"r\"\n\n[[cluster]]\nid = \"c\"\nkind = \"etcd\"\nmembers = [\"a\", \"b\"]\nload = 2\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let name = bad.display().to_string();
    assert!(
        err.contains(&format!("{name}:8:17: cluster[0].members[1]")),
        "{err}"
    );
    assert!(err.contains("unknown host `b`"), "{err}");
    assert!(
        err.contains(&format!("{name}:9:8: cluster[0].load")),
        "{err}"
    );

    let ok = rollcall(&["validate", "examples/xsa-108.toml"]);
    assert!(ok.status.success());
    assert!(text(&ok.stdout).contains("377 hosts"));
}

#[test]
fn generated_fleets_plan() {
    let out = rollcall(&["gen", "--hosts", "300", "--clusters", "50", "--seed", "9"]);
    assert!(out.status.success());
    let dir = TmpDir::new("gen");
    let f = dir.join("g.toml");
    std::fs::write(&f, &out.stdout).unwrap();
    let p = rollcall(&["plan", "--json", f.to_str().unwrap()]);
    assert!(p.status.success(), "{}", text(&p.stderr));
    let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(v["hosts"]["total"], 300);
}

#[test]
fn bench_runs_and_reports_figures() {
    let out = rollcall(&[
        "bench",
        "plan",
        "--hosts",
        "2000",
        "--clusters",
        "300",
        "--runs",
        "1",
        "--quality-seeds",
        "5",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["violations"], 0);
    assert!(v["plan_s"]["median"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0);
}

#[test]
fn validate_names_the_maintenance_action_and_points_at_a_bad_one() {
    let dir = TmpDir::new("cli-action");
    let host = "[[host]]\nid = \"o1\"\nregion = \"r\"\n";
    let (ok, out) = validate(
        &dir,
        "ok.toml",
        format!("[maintenance]\naction = \"restart\"\nservices = [\"opensearch\"]\n\n{host}"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("action: restart opensearch on each host, no reboot (done when each service's run id changes)"),
        "{s}"
    );
    let plan = rollcall(&["plan", ok.to_str().unwrap()]);
    assert!(text(&plan.stdout).contains("first restart of opensearch no earlier than"));

    let (bad, out) = validate(
        &dir,
        "bad.toml",
        format!(
            "[maintenance]\naction = \"command\"\ncommand = \"apt-get install -y bash\"\n\n{host}"
        ),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2:10: maintenance.action: action = \"command\" needs `check`",
            bad.display()
        )),
        "{err}"
    );
}

#[test]
fn validate_describes_the_native_search_gate_and_points_at_bad_gate_settings() {
    let dir = TmpDir::new("cli-gates");
    let hosts = "[[host]]\nid = \"o1\"\naddress = \"10.0.0.1\"\nregion = \"r\"\nzone = \"a\"\n\
                 [[host]]\nid = \"o2\"\naddress = \"10.0.0.2\"\nregion = \"r\"\nzone = \"b\"\n\
                 [[host]]\nid = \"o3\"\naddress = \"10.0.0.3\"\nregion = \"r\"\nzone = \"c\"\n";
    let (_, out) = validate(
        &dir,
        "ok.toml",
        format!(
            "{hosts}\n[[cluster]]\nid = \"search\"\nkind = \"opensearch\"\nmembers = [\"o1\", \"o2\", \"o3\"]\n"
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains(
            "1 clusters (search): elasticsearch/opensearch gate on http://{address}:9200 (no auth)"
        ),
        "{s}"
    );
    assert!(s.contains("drain: allocation primaries + flush"), "{s}");

    let (bad, out) = validate(
        &dir,
        "bad.toml",
        format!(
            "{hosts}\n[[cluster]]\nid = \"search\"\nkind = \"elasticsearch\"\nmembers = [\"o1\", \"o2\", \"o3\"]\ngate = {{ url = \"https://{{address}}:9200\", auth = {{ api_key_env = \"RC_CLI_TEST_NO_SUCH_KEY\" }} }}\n"
        ),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:21:65: cluster[0].gate.auth.api_key_env: the environment variable RC_CLI_TEST_NO_SUCH_KEY is not set",
            bad.display()
        )),
        "{err}"
    );
}

#[test]
fn plan_html_writes_one_self_contained_page() {
    let dir = TmpDir::new("plan-html");
    let file = dir.0.join("plan.html");
    let out = rollcall(&[
        "plan",
        "--html",
        file.to_str().unwrap(),
        "examples/xsa-108.toml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Makespan"),
        "the table is still printed"
    );
    let page = std::fs::read_to_string(&file).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(
        page.contains("script-src 'sha256-"),
        "strict CSP with the script's hash"
    );
    for external in ["src=\"http", "href=\"http", "<link", "@import"] {
        assert!(!page.contains(external), "no external asset: {external}");
    }
    assert!(page.contains("\"rollcall.timeline/v1\"") && page.contains("acme-search-dfw"));
    let bad = rollcall(&[
        "plan",
        "--html",
        "/nonexistent-dir/x.html",
        "examples/xsa-108.toml",
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("/nonexistent-dir/x.html"),
        "{}",
        text(&bad.stderr)
    );
}

/// `[maintenance] effort` is the effort of every plan of the fleet (`plan`, and `run` and
/// `simulate`, which plan through the same call); `plan --effort` overrides it. The
/// hand-made limit-2 oracle fleet shows it: list scheduling alone (effort 0) falls into
/// the longest-first trap, the default effort does not. A bad value is pointed at.
#[test]
fn the_fleet_files_effort_is_the_plans_and_a_bad_one_is_pointed_at() {
    let dir = TmpDir::new("cli-effort");
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/oracle/fleets/limit2-mixed.toml"
    ))
    .unwrap();
    let with = |name: &str, line: &str| {
        let p = dir.join(name);
        std::fs::write(
            &p,
            src.replacen("[maintenance]\n", &format!("[maintenance]\n{line}"), 1),
        )
        .unwrap();
        p.display().to_string()
    };
    let makespan = |args: &[&str]| {
        let out = rollcall(&[&["plan", "--json"], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["makespan_s"].as_i64().unwrap()
    };
    let plain = with("plain.toml", "");
    let zero = with("zero.toml", "effort = 0\n");
    let default = makespan(&[&plain]);
    let trapped = makespan(&["--effort", "0", &plain]);
    assert!(trapped > default, "{trapped} > {default}: the trap");
    assert_eq!(makespan(&[&zero]), trapped, "the file's effort 0");
    assert_eq!(
        makespan(&["--effort", "1", &zero]),
        default,
        "--effort wins"
    );

    let (bad, out) = validate(
        &dir,
        "bad.toml",
        src.replacen("[maintenance]\n", "[maintenance]\neffort = -3\n", 1),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}:6:10: maintenance.effort", bad.display()))
            && err.contains("effort must be 0 to 1000, got -3"),
        "{err}"
    );
}
