//! `rollcall run` with `[[subscriber]]` in the fleet file, end to end with the real binary
//! and a real SMTP server (Debian's python3-aiosmtpd): the announcement, started and
//! completed mails arrive; the orchestrator is SIGKILLed mid-run and resumed, and no
//! mail is sent twice or lost; `rollcall status` reports what was sent.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rollcall")
}

struct Smtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtpd {
    fn start(dir: &Path) -> Smtpd {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = dir.join("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox", maildir.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (apt install python3-aiosmtpd)");
        let s = Smtpd {
            child,
            port,
            maildir,
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
    /// (file modification time, text) of every mail received.
    fn mails(&self) -> Vec<(std::time::SystemTime, String)> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let t = e.metadata().and_then(|m| m.modified()).unwrap();
                v.push((t, std::fs::read_to_string(e.path()).unwrap()));
            }
        }
        v
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.split("\n\n").next().unwrap_or("");
    head.replace("\n ", " ")
        .lines()
        .find(|l| {
            l.to_lowercase()
                .starts_with(&format!("{}:", name.to_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const FLEET: &str = r#"
host = [
  { id = "dfw-acme-1", region = "dfw", zone = "a" },
  { id = "dfw-acme-2", region = "dfw", zone = "b" },
  { id = "dfw-acme-3", region = "dfw", zone = "c" },
  { id = "ord-globex-1", region = "ord", zone = "a" },
  { id = "ord-globex-2", region = "ord", zone = "b" },
  { id = "ord-globex-3", region = "ord", zone = "c" },
]

[fleet]
name = "clifleet"

[defaults]
durations = { elasticsearch = "10m", etcd = "4m" }

[maintenance]
name = "xsa-108"
start = "2026-01-05T00:00:00Z"
notice_lead = "1h"
regions = ["dfw", "ord"]
region_mode = "serial"

[[tenant]]
id = "acme"
name = "Acme"

[[tenant]]
id = "globex"
name = "Globex"

[[cluster]]
id = "acme-search"
kind = "elasticsearch"
tenant = "acme"
members = ["dfw-acme-1", "dfw-acme-2", "dfw-acme-3"]
max_unavailable = 1

[[cluster]]
id = "globex-etcd"
kind = "etcd"
tenant = "globex"
members = ["ord-globex-1", "ord-globex-2", "ord-globex-3"]
max_unavailable = 1
"#;

#[test]
fn a_run_mails_its_subscribers_and_a_sigkill_neither_loses_nor_repeats_a_mail() {
    let dir = std::env::temp_dir().join(format!("rollcall-notify-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let smtpd = Smtpd::start(&dir);
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
    let mut run = Kill(
        Command::new(bin())
            .args([
                "run",
                fleet_s,
                "--db",
                db_s,
                "--time-scale",
                "1500",
                "--run-id",
                "r1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    loop {
        let m = smtpd.mails();
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
    let out = Command::new(bin())
        .args(["resume", "r1", "--db", db_s, "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mails = smtpd.mails();
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
    let out = Command::new(bin())
        .args(["status", "r1", "--db", db_s, "--json"])
        .output()
        .unwrap();
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
    let out = Command::new(bin())
        .args(["status", "r1", "--db", db_s])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("notices: 9 sent, 0 pending"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(smtpd);
    let _ = std::fs::remove_dir_all(&dir);
}
