//! `rollcall run` with `[[subscriber]]` in the fleet file, end to end with the real binary
//! and a real SMTP server (Debian's python3-aiosmtpd): the announcement, started and
//! completed mails arrive; the orchestrator is SIGKILLed mid-run and resumed, and no
//! mail is sent twice or lost; `rollcall status` reports what was sent.

use rollcall_testkit::fleets::NOTIFY_CLI as FLEET;
use rollcall_testkit::smtp::{Smtpd, header};
use rollcall_testkit::{Bin, TmpDir};
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
