//! End to end on the testbed: `rollcall guard` reads live provider notices for the Redis
//! Cluster and etcd hosts (Azure Scheduled Events read on the host over SSH, GCP
//! `upcoming-maintenance` read directly, both served by the tests' own metadata server
//! with the documented payloads: no emulator of either runs here; EC2 scheduled events
//! from the EC2 API, moto's server with the event injected), reports the windows
//! that would take two members of one cluster at once, tells each tenant with the notice
//! lead, reboots ahead within the budgets (Azure: approves the event once the host is
//! drained, and the provider reboots it), survives a SIGKILL mid-run, and follows the
//! events afterwards (completed, moved) without rebooting anything twice.
//!
//! Figures: `target/testbed-figures/guard.json` (notice-to-plan latency, how far ahead of
//! each window its host was done).

use rollcall_providers::aws::credentials::Credentials;
use rollcall_providers::aws::ec2::{Ec2Client, Launch};
use rollcall_testkit::metadata::{GcpWindow, MetaServer};
use rollcall_testkit::moto::{Ev, Moto};
use rollcall_testkit::testbed::*;
use rollcall_testkit::webhook::Sink;
use rollcall_testkit::{Kill, repo};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const RC: rollcall_testkit::Bin = rollcall_testkit::bin!();
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The notice lead of the guard's runs: tenants hear of a reboot at least this long before.
const LEAD_S: i64 = 15;
static SERIAL: Mutex<()> = Mutex::new(());

fn bed() -> Option<(MutexGuard<'static, ()>, &'static Testbed)> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip_unless_root() {
        return None;
    }
    let up = Up {
        reboot_delay: 3,
        opensearch: false,
        orchestrators: false,
    };
    Some((g, Testbed::shared("guard", &up)))
}

fn wall_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

const REGION: &str = "us-east-1";

/// One instance in moto's EC2, launched through rollcall's own client.
fn launch(moto: &Moto) -> String {
    let creds = Credentials {
        access_key_id: "AKIDGUARDTEST".into(),
        secret_access_key: "guard-test-secret".into(),
        session_token: None,
    };
    let c = Ec2Client::new(
        &moto.endpoint(),
        REGION,
        creds,
        std::sync::Arc::new(rollcall_providers::http::Direct::default()),
    );
    let l = Launch {
        image: Some("ami-12c6146b".into()),
        instance_type: Some("t3.micro".into()),
        client_token: "guard-r4".into(),
        ..Launch::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(c.run_instance(&l)).expect("RunInstances")
}

/// The testbed's fleet with tenants (acme: cache, beta: kv), the notice lead, webhook
/// subscribers per tenant and for the public, and the notice sources (r4 an EC2 instance).
fn fleet(tb: &Testbed, meta: &MetaServer, sink: &Sink, moto: &Moto, r4: &str) -> PathBuf {
    let extra = format!(
        r#"[[tenant]]
id = "acme"
[[tenant]]
id = "beta"

[[subscriber]]
id = "acme-ops"
tenant = "acme"
components = ["cache"]
webhook = "{acme}"
secret_env = "GUARD_WEBHOOK_SECRET"

[[subscriber]]
id = "beta-ops"
tenant = "beta"
components = ["kv"]
webhook = "{beta}"
secret_env = "GUARD_WEBHOOK_SECRET"

[[subscriber]]
id = "public"
components = ["lab"]
webhook = "{public}"
secret_env = "GUARD_WEBHOOK_SECRET"

[azure]
via = "ssh"
[azure.host.r1]
endpoint = "{r1}"
[azure.host.r2]
endpoint = "{r2}"

[gcp]
via = "direct"
[gcp.host.e1]
endpoint = "{e1}"

[aws]
region = "{REGION}"
endpoint = "{ec2}"
[aws.host.r4]
instance = "{r4}"
"#,
        ec2 = moto.endpoint(),
        acme = sink.url("/acme"),
        beta = sink.url("/beta"),
        public = sink.url("/public"),
        r1 = meta.endpoint("r1"),
        r2 = meta.endpoint("r2"),
        e1 = meta.endpoint("e1"),
    );
    let p = roll_fleet(tb, "guard", &extra, "pause");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("id = \"cache\"\n", "id = \"cache\"\ntenant = \"acme\"\n")
        .replace("id = \"kv\"\n", "id = \"kv\"\ntenant = \"beta\"\n")
        .replace(
            "notice_lead = \"0s\"",
            &format!("notice_lead = \"{LEAD_S}s\""),
        );
    std::fs::write(&p, text).unwrap();
    p
}

/// A `rollcall guard` process, its output in files.
struct GuardProc {
    _child: Kill,
    stdout: PathBuf,
}

fn start_guard(tb: &Testbed, fleet: &Path, db: &Path, n: u32) -> GuardProc {
    let stdout = tb.dir.join(format!("guard-{n}.out"));
    let stderr = tb.dir.join(format!("guard-{n}.err"));
    let child = Kill::spawn(
        RC.cmd()
            .arg("guard")
            .arg(fleet)
            .args(["--driver", "ssh", "--name", "lab", "--poll", "2s", "--json"])
            .args(["--lease-ttl", "4s", "--db"])
            .arg(db)
            .env("GUARD_WEBHOOK_SECRET", SECRET)
            .env("AWS_ACCESS_KEY_ID", "AKIDGUARDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "guard-test-secret")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap()),
        "rollcall guard",
    );
    GuardProc {
        _child: child,
        stdout,
    }
}

/// `rollcall notices list` as JSON (`--log`: the changes).
fn book(db: &Path, log: bool) -> Vec<Value> {
    let mut c = RC.cmd();
    c.args(["notices", "list", "--guard", "lab", "--json", "--db"])
        .arg(db);
    if log {
        c.arg("--log");
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn event<'a>(b: &'a [Value], host: &str) -> &'a Value {
    b.iter()
        .find(|e| e["host"] == host && e["state"] != "canceled")
        .unwrap_or_else(|| panic!("no event of {host}: {b:?}"))
}

/// The run clock (Unix s) of `host`'s first transition into `phase`.
fn entered(j: &[Value], host: &str, phase: &str) -> Option<i64> {
    j.iter()
        .find(|r| r["type"] == "transition" && r["host_id"] == host && r["to"] == phase)
        .and_then(|r| r["at"].as_i64())
}

/// The webhook bodies a path received (2xx), parsed.
fn bodies(sink: &Sink, path: &str) -> Vec<(i64, Value)> {
    sink.ok_hits()
        .into_iter()
        .filter(|h| h.path == path)
        .map(|h| (h.wall_ms, serde_json::from_slice(&h.body).unwrap()))
        .collect()
}

fn kind(v: &Value) -> &str {
    v["incident"]["rollcall"]["kind"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn guard_reboots_ahead_within_budgets_approves_azure_once_drained_and_tells_tenants() {
    let Some((_g, tb)) = bed() else { return };
    let bridge = format!("{}.0.1", tb.env("TESTBED_SUBNET"));
    let meta = MetaServer::start_on(&bridge);
    let sink = Sink::recording_on(&bridge);
    let dir = tb.dir.clone();
    // Azure reboots the host once its event is approved
    meta.on_approve(move |host, _| {
        let _ = std::process::Command::new(repo().join("testbed/testbed"))
            .args(["reboot", host, "--dir"])
            .arg(&dir)
            .status();
    });
    let moto = Moto::start();
    let r4 = launch(&moto);
    let fleet = fleet(tb, &meta, &sink, &moto, &r4);
    let db = tb.dir.join("guard.db");
    let boots0 = tb.boot_ids();
    let t0 = wall_ms();
    let now = t0 / 1000;
    // r1 and r2 (cache, one member at a time) in overlapping Azure windows; e1 on GCP
    meta.azure_schedule("r1", "ev-r1", "Reboot", now + 600);
    meta.azure_schedule("r2", "ev-r2", "Reboot", now + 660);
    let w = GcpWindow {
        start: now + 720,
        end: now + 780,
        latest_start: now + 900,
        ongoing: false,
    };
    meta.gcp_window("e1", Some(w));
    // r4 (cache too) on EC2, a window after the others: no third member in the overlap
    let r4_event = |description: &'static str| Ev {
        id: "instance-event-0r4",
        code: "system-reboot",
        description,
        not_before: Some(now + 1600),
        not_after: Some(now + 1700),
        deadline: Some(now + 2400),
    };
    moto.set_events(REGION, &r4, &[r4_event("scheduled reboot")]);
    let nb: HashMap<&str, i64> = [
        ("r1", now + 600),
        ("r2", now + 660),
        ("e1", now + 720),
        ("r4", now + 1600),
    ]
    .into();
    const NOTICED: [&str; 4] = ["r1", "r2", "r4", "e1"];

    // the guard, SIGKILLed once the first approval went out, and started again
    let first = start_guard(tb, &fleet, &db, 1);
    wait("the first approval", Duration::from_secs(120), || {
        !meta.approvals().is_empty()
    });
    let killed_ms = wall_ms();
    drop(first);
    let second = start_guard(tb, &fleet, &db, 2);
    wait("every event done", Duration::from_secs(300), || {
        let b = book(&db, false);
        NOTICED
            .iter()
            .all(|h| b.iter().any(|e| e["host"] == *h && e["outcome"] == "done"))
    });
    let mut j = journal(&std::fs::read(tb.dir.join("guard-1.out")).unwrap());
    j.extend(journal(&std::fs::read(&second.stdout).unwrap()));

    // one run, its risk said when it started
    let b = book(&db, false);
    let run = event(&b, "r1")["run"].as_str().unwrap().to_string();
    assert!(b.iter().all(|e| e["run"] == run.as_str()), "{b:?}");
    let risks: Vec<&Value> = j.iter().filter(|r| r["kind"] == "provider_risk").collect();
    assert_eq!(risks.len(), 1, "{risks:?}");
    let text = risks[0]["text"].as_str().unwrap();
    assert!(text.contains("2 of cache's 6 members"), "{text}");
    assert!(text.contains("ahead within the budget"), "{text}");

    // never two members of a cluster out at once; every host once, none of the others
    assert!(max_out(&j, &["r1", "r2", "r3", "r4", "r5", "r6"]) <= 1);
    assert!(max_out(&j, &["e1", "e2", "e3"]) <= 1);
    let boots = tb.boot_ids();
    for h in ["r1", "r2", "r3", "r4", "r5", "r6", "e1", "e2", "e3"] {
        let moved = boots[h] != boots0[h];
        assert_eq!(moved, NOTICED.contains(&h), "{h}: boot id");
    }
    // Azure hosts: approved once each, after their drain, never rebooted by rollcall itself
    let approvals = meta.approvals();
    for h in ["r1", "r2"] {
        let mine: Vec<_> = approvals.iter().filter(|a| a.host == h).collect();
        assert_eq!(mine.len(), 1, "{h}: {approvals:?}");
        let drained = entered(&j, h, "rebooting").expect("rebooting after its drain");
        assert!(
            mine[0].wall_ms / 1000 >= drained,
            "{h} approved before it was drained"
        );
        let by_ssh = tb
            .reboot_requests(h)
            .into_iter()
            .filter(|r| r.at_ms >= t0 && r.by != "testbed");
        assert_eq!(by_ssh.count(), 0, "{h} rebooted over SSH");
    }
    for h in ["e1", "r4"] {
        let got: Vec<_> = tb
            .reboot_requests(h)
            .into_iter()
            .filter(|r| r.at_ms >= t0)
            .collect();
        assert_eq!(got.len(), 1, "{h}: {got:?}");
    }

    // tenants: acme hears of the risk to its cluster by name, beta of nothing at risk, the
    // public without names; each hears of its maintenance at least the lead before it
    let acme = bodies(&sink, "/acme");
    let beta = bodies(&sink, "/beta");
    let public = bodies(&sink, "/public");
    let acme_risk: Vec<_> = acme
        .iter()
        .filter(|(_, v)| kind(v) == "provider_risk")
        .collect();
    assert_eq!(acme_risk.len(), 1, "{acme:?}");
    let body = acme_risk[0].1["incident"]["incident_updates"][0]["body"]
        .as_str()
        .unwrap();
    assert!(body.contains("your cluster cache"), "{body}");
    assert!(
        beta.iter().all(|(_, v)| kind(v) != "provider_risk"),
        "{beta:?}"
    );
    let pub_risk: Vec<_> = public
        .iter()
        .filter(|(_, v)| kind(v) == "provider_risk")
        .collect();
    assert_eq!(pub_risk.len(), 1);
    assert!(
        !pub_risk[0].1.to_string().contains("cache"),
        "the public view names no cluster"
    );
    let first_reboot = NOTICED
        .iter()
        .filter_map(|h| entered(&j, h, "rebooting"))
        .min()
        .unwrap();
    for (path, got) in [("/acme", &acme), ("/beta", &beta), ("/public", &public)] {
        let ann = got
            .iter()
            .filter(|(_, v)| kind(v) == "announcement")
            .map(|(ms, _)| ms / 1000)
            .min()
            .unwrap_or_else(|| panic!("{path}: no announcement: {got:?}"));
        assert!(
            ann + LEAD_S <= first_reboot,
            "{path}: announced at {ann}, first reboot {first_reboot}"
        );
    }

    // every host done ahead of its window
    let mut ahead = serde_json::Map::new();
    for h in NOTICED {
        let done = entered(&j, h, "healthy").expect("healthy");
        assert!(done < nb[h], "{h} done at {done}, window at {}", nb[h]);
        ahead.insert(h.into(), json!(nb[h] - done));
    }
    let log = book(&db, true);
    let seen = log.iter().filter_map(|c| c[0].as_i64()).min().unwrap();
    let started = j.iter().filter_map(|r| r["at"].as_i64()).min().unwrap();

    // afterwards: Azure's started event ends (completed), GCP moves e1's window; nothing
    // is rebooted again and no new run starts
    meta.azure_end("r1", "ev-r1");
    let moved = GcpWindow {
        start: now + 1800,
        end: now + 1860,
        latest_start: now + 2000,
        ongoing: false,
    };
    meta.gcp_window("e1", Some(moved));
    moto.set_events(REGION, &r4, &[r4_event("[Canceled] scheduled reboot")]);
    let followed = |log: &[Value]| {
        let has = |h: &str, what: &str, state: &str| {
            log.iter().any(|c| {
                c[1]["host"] == h
                    && c[1]["what"].as_str().unwrap_or("").starts_with(what)
                    && c[1]["state"] == state
            })
        };
        has("r1", "", "completed")
            && has("e1", "moved (was", "scheduled")
            && has("r4", "scheduled→canceled", "canceled")
    };
    let t = Instant::now();
    while !followed(&book(&db, true)) {
        let log = book(&db, true);
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "changes not followed: {log:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let b = book(&db, false);
    let r1 = b.iter().find(|e| e["host"] == "r1").unwrap();
    assert_eq!(r1["state"], "completed");
    assert!(
        b.iter().all(|e| e["run"] == run.as_str()),
        "no second run: {b:?}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(tb.boot_ids()["e1"], boots["e1"], "e1 not rebooted again");
    drop(second);
    figures(
        "guard",
        json!({
            "notice_to_plan_s": started - t0 / 1000,
            "notice_seen_s": seen - t0 / 1000,
            "ahead_of_not_before_s": ahead,
            "guard_killed_after_ms": killed_ms - t0,
            "approvals": approvals.len(),
        }),
    );
}
