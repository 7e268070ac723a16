//! `rollcall run` with `[[subscriber]]` in the fleet file, end to end with the real binary
//! and a real SMTP server (Debian's python3-aiosmtpd): the announcement, started and
//! completed mails arrive; the orchestrator is SIGKILLed mid-run and resumed, and no
//! mail is sent twice or lost; `rollcall status` reports what was sent.

use rollcall_testkit::fleets::NOTIFY_CLI as FLEET;
use rollcall_testkit::smtp::{Smtpd, header};
use rollcall_testkit::{Bin, TmpDir, wait_for};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const RC: Bin = rollcall_testkit::bin!();

#[test]
fn a_run_mails_its_subscribers_and_a_sigkill_neither_loses_nor_repeats_a_mail() {
    let dir = TmpDir::new("notify-cli");
    let smtpd = Smtpd::start(dir.path());
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            r#"{FLEET}
[notify]
smtp_host = "127.0.0.1"
smtp_port = {}
tls = "none"
from = "maint@provider.example"

[[subscriber]]
tenant = "acme"
components = ["acme-search"]
email = "ops@acme.example"

[[subscriber]]
components = ["dfw", "ord"]
email = "status@public.example"
"#,
            smtpd.port
        ),
    )
    .unwrap();
    let db = dir.join("r.db");
    let (db_s, fleet_s) = (db.to_str().unwrap(), fleet.to_str().unwrap());
    // run at 1500x (about 4 s in all); SIGKILL it once some mail went out and the
    // server has been quiet for 150 ms, i.e. not between a 250 OK and the outbox commit
    let mut run = RC.spawn(&[
        "run",
        fleet_s,
        "--db",
        db_s,
        "--time-scale",
        "1500",
        "--run-id",
        "r1",
    ]);
    let t = Instant::now();
    loop {
        let m = smtpd.timed_mails();
        let last = m.iter().map(|x| x.0).max();
        let quiet =
            last.is_some_and(|l| l.elapsed().unwrap_or_default() > Duration::from_millis(150));
        if t.elapsed() > Duration::from_millis(1500) && quiet {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no mail from the run"
        );
        assert!(
            run.0.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    let before = smtpd.mails().len();
    assert!(
        before >= 3,
        "announcements went out before the kill ({before})"
    );
    let out = RC.run(&["resume", "r1", "--db", db_s, "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mails = smtpd.timed_mails();
    let ids: Vec<String> = mails
        .iter()
        .map(|m| header(&m.1, "Message-ID").unwrap())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a mail was sent twice: {ids:?}");
    let subjects = |to: &str| -> Vec<String> {
        let mut v: Vec<String> = mails
            .iter()
            .filter(|m| header(&m.1, "To").is_some_and(|t| t.contains(to)))
            .map(|m| {
                let s = header(&m.1, "Subject").unwrap();
                s.split(": reboots from").next().unwrap().to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        subjects("ops@acme.example"),
        [
            "[clifleet] Maintenance in dfw has started",
            "[clifleet] Maintenance in dfw is completed",
            "[clifleet] Scheduled maintenance in dfw",
        ]
    );
    assert_eq!(
        subjects("status@public.example"),
        [
            "[clifleet] Maintenance in dfw has started",
            "[clifleet] Maintenance in dfw is completed",
            "[clifleet] Maintenance in ord has started",
            "[clifleet] Maintenance in ord is completed",
            "[clifleet] Scheduled maintenance in dfw",
            "[clifleet] Scheduled maintenance in ord",
        ]
    );
    for m in &mails {
        let to = header(&m.1, "To").unwrap();
        let body = m.1.to_lowercase();
        if to.contains("public") {
            assert!(
                !body.contains("acme") && !body.contains("globex"),
                "{}",
                m.1
            );
        } else {
            assert!(!body.contains("globex"), "{}", m.1);
        }
    }
    // status reports them
    let out = RC.run(&["status", "r1", "--db", db_s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |status: &str| -> i64 {
        v["notices"]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c[1] == status)
            .map(|c| c[2].as_i64().unwrap())
            .sum()
    };
    assert_eq!(count("sent"), 9);
    assert_eq!(count("pending"), 0);
    let out = RC.run(&["status", "r1", "--db", db_s]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("notices: 9 sent, 0 pending"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(smtpd);
}

/// Issue #16: a subscriber whose endpoint is always down holds its region (fail closed),
/// and the hold is escalated: to the operator's own subscriber by mail, on `status`,
/// `/metrics` and the admin API. The operator drops that subscriber (dfw goes on) and
/// releases the next held region (ord goes on); both decisions are recorded.
#[test]
fn an_unreachable_subscriber_escalates_and_the_operator_releases_or_drops_it() {
    let dir = TmpDir::new("notify-escalate");
    let smtpd = Smtpd::start(dir.path());
    // answers every request, always with a failure
    let down = rollcall_testkit::canned_server(
        "127.0.0.1",
        Some("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    );
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            r#"{FLEET}
[notify]
smtp_host = "127.0.0.1"
smtp_port = {smtp}
tls = "none"
from = "maint@provider.example"
attempts = 1
backoff = "10ms"
escalate_after = "30m"

[[subscriber]]
tenant = "acme"
components = ["acme-search"]
email = "ops@acme.example"

[[subscriber]]
id = "hook-a"
components = ["dfw"]
webhook = "http://127.0.0.1:{down}/a"
format = "slack"

[[subscriber]]
id = "hook-b"
components = ["ord"]
webhook = "http://127.0.0.1:{down}/b"
format = "slack"

[[subscriber]]
id = "noc"
operator = true
email = "noc@provider.example"
"#,
            smtp = smtpd.port
        ),
    )
    .unwrap();
    let db = dir.join("r.db");
    let (db_s, fleet_s) = (db.to_str().unwrap(), fleet.to_str().unwrap());
    let port = rollcall_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let _run = RC.spawn(&[
        "run",
        fleet_s,
        "--db",
        db_s,
        "--time-scale",
        "600",
        "--run-id",
        "esc",
        "--quiet",
        "--serve",
        &addr,
    ]);
    let subjects = |to: &str| -> Vec<String> {
        smtpd
            .mails()
            .iter()
            .filter(|m| header(m, "To").is_some_and(|t| t.contains(to)))
            .map(|m| header(m, "Subject").unwrap())
            .collect()
    };
    let noc_said = |region: &str| {
        subjects("noc@")
            .iter()
            .any(|s| s.contains(&format!("Action needed: {region} is held")))
    };
    wait_for(
        "the operator told dfw is held",
        Duration::from_secs(60),
        || noc_said("dfw"),
    );
    // held, not started: nobody was told dfw started, no host is done
    let status = |json: bool| {
        let mut a = vec!["status", "esc", "--db", db_s];
        if json {
            a.push("--json");
        }
        let out = RC.run(&a);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = status(false);
    assert!(text.contains("(0/6 hosts done)"), "{text}");
    assert!(
        text.contains("ANNOUNCEMENT dfw: ESCALATED, held since") && text.contains("hook-a"),
        "{text}"
    );
    assert!(
        text.contains("rollcall notify release REGION --run esc"),
        "{text}"
    );
    assert!(
        !subjects("ops@acme").iter().any(|s| s.contains("started")),
        "{:?}",
        subjects("ops@acme")
    );
    let v: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    let hold = &v["notices"]["holds"][0];
    assert_eq!(hold["region"], "dfw", "{v}");
    assert_eq!(hold["unreached"], serde_json::json!(["hook-a"]));
    let waited = hold["escalated_at"].as_i64().unwrap() - hold["since"].as_i64().unwrap();
    assert!(
        waited >= 1800,
        "escalated after {waited}s, before escalate_after"
    );
    assert!(
        hold["last_error"].as_str().unwrap().contains("503"),
        "{hold}"
    );
    // /metrics and the admin API say it; the admin API only with an admin token
    let metrics = await_get(port, "/metrics", None);
    assert!(
        metrics.contains("rollcall_announcement_escalated{region=\"dfw\"} 1"),
        "{metrics}"
    );
    assert_eq!(http(port, "/api/admin/notify.json", None).0, 401);
    let out = RC.run(&["token", "admin", "--db", db_s]);
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let doc: serde_json::Value =
        serde_json::from_str(&await_get(port, "/api/admin/notify.json", Some(&admin))).unwrap();
    assert_eq!(doc["holds"][0]["region"], "dfw", "{doc}");
    assert!(doc["holds"][0]["escalated_at"].is_i64(), "{doc}");

    // wrong targets are refused, naming what exists
    let out = RC.run(&["notify", "drop", "nobody", "--run", "esc", "--db", db_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("hook-a") && err.contains("noc"),
        "{err}"
    );
    let out = RC.run(&["notify", "release", "lax", "--run", "esc", "--db", db_s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("regions: dfw, ord"),
        "{err}"
    );

    // drop hook-a: dfw starts
    let out = RC.run(&[
        "notify",
        "drop",
        "hook-a",
        "--run",
        "esc",
        "--reason",
        "owner unreachable",
        "--db",
        db_s,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("acme told dfw started", Duration::from_secs(60), || {
        subjects("ops@acme")
            .iter()
            .any(|s| s.contains("dfw has started"))
    });
    // ord is held by hook-b in turn: escalated, then released
    wait_for(
        "the operator told ord is held",
        Duration::from_secs(60),
        || noc_said("ord"),
    );
    let out = RC.run(&["notify", "release", "ord", "--run", "esc", "--db", db_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = RC.run(&["notify", "release", "ord", "--run", "esc", "--db", db_s]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already"));
    wait_for("the run completes", Duration::from_secs(120), || {
        status(false).contains("(6/6 hosts done)")
    });
    let text = status(false);
    assert!(
        text.contains("DECISION drop hook-a by") && text.contains(": owner unreachable"),
        "{text}"
    );
    assert!(text.contains("DECISION release ord by"), "{text}");
    assert!(
        text.contains("ANNOUNCEMENT ord: released by the operator"),
        "{text}"
    );
    assert!(text.contains("dropped by the operator"), "{text}");
    let metrics = await_get(port, "/metrics", None);
    assert!(
        metrics.contains("rollcall_announcement_escalated{region=\"ord\"} 0")
            && metrics.contains("rollcall_announcement_unreached{region=\"ord\"} 0"),
        "{metrics}"
    );
    // the operator's channel got operator notices only, one per held region
    let mut noc = subjects("noc@");
    noc.sort();
    assert_eq!(noc.len(), 2, "{noc:?}");
    assert!(noc.iter().all(|s| s.contains("Action needed")), "{noc:?}");
}

/// A plain HTTP/1.1 GET with an optional bearer token: (status, body).
fn http(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.get(9..12).and_then(|x| x.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

/// Until `path` answers 200 (at most 30 s; a new admin token is picked up within
/// seconds); its body.
fn await_get(port: u16, path: &str, token: Option<&str>) -> String {
    let t = Instant::now();
    loop {
        if let (200, body) = http(port, path, token) {
            return body;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{path} on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
