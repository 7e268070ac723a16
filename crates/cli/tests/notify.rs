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

/// One HTTP/1.1 request to the local page: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// A mail as Python's `email` package reads it: headers (lower-case names), content
/// type, the text/plain and the text/html bodies.
fn parse_mail(mail: &str, dir: &std::path::Path) -> serde_json::Value {
    let f = dir.join("mail.eml");
    std::fs::write(&f, mail).unwrap();
    let py = r#"
import email, email.policy, json, sys
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
def part(kind):
    b = m.get_body(preferencelist=(kind,))
    return b.get_content() if b is not None and b.get_content_type() == 'text/' + kind else None
print(json.dumps({"headers": {k.lower(): str(v) for k, v in m.items()},
                  "type": m.get_content_type(), "text": part('plain'), "html": part('html')}))
"#;
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", py, f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The mails to `to` whose subject contains `subject`, parsed.
fn mails_to(
    smtpd: &Smtpd,
    dir: &std::path::Path,
    to: &str,
    subject: &str,
) -> Vec<serde_json::Value> {
    smtpd
        .mails()
        .iter()
        .map(|m| parse_mail(m, dir))
        .filter(|m| {
            m["headers"]["to"].as_str().is_some_and(|t| t.contains(to))
                && m["headers"]["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains(subject))
        })
        .collect()
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A cluster the plan refuses (2 nodes at load 0.60), a page URL, a subscriber in
/// Chicago, a public mail subscriber and a public webhook.
fn tell_fleet(smtp_port: u16, hook: &str) -> String {
    let fleet = FLEET.replace(
        "  { id = \"ord-globex-1\"",
        "  { id = \"dfw-acme-4\", region = \"dfw\", zone = \"a\" },\n  { id = \"dfw-acme-5\", region = \"dfw\", zone = \"b\" },\n  { id = \"ord-globex-1\"",
    );
    format!(
        r#"{fleet}
[[cluster]]
id = "acme-cache"
kind = "elasticsearch"
tenant = "acme"
members = ["dfw-acme-4", "dfw-acme-5"]
load = 0.6

[notify]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"
from = "Maintenance <maint@provider.example>"
page_url = "https://status.provider.example/"

[[subscriber]]
tenant = "acme"
components = ["acme-search", "acme-cache"]
email = "ops@acme.example"
tz = "America/Chicago"

[[subscriber]]
components = ["dfw", "ord"]
email = "status@public.example"

[[subscriber]]
id = "public-hook"
components = ["dfw"]
webhook = "{hook}"
secret_env = "TELL_HOOK_SECRET"
"#
    )
}

#[test]
fn mail_is_readable_names_excluded_clusters_links_its_page_and_unsubscribes_in_one_click() {
    let dir = TmpDir::new("notify-tell");
    let smtpd = Smtpd::start(dir.path());
    let sink = rollcall_testkit::webhook::Sink::recording();
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, tell_fleet(smtpd.port, &sink.url("/hook"))).unwrap();
    let db = dir.join("r.db");
    let (db_s, fleet_s) = (db.to_str().unwrap(), fleet.to_str().unwrap());
    let out = RC
        .cmd()
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
        .env("TELL_HOOK_SECRET", HOOK_SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = dir.path();

    // the announcement to Acme: times in Chicago with UTC beside, acme-cache excluded
    let ann = mails_to(
        &smtpd,
        d,
        "ops@acme.example",
        "Scheduled maintenance in dfw",
    );
    assert_eq!(ann.len(), 1, "{ann:?}");
    let m = &ann[0];
    let text = m["text"].as_str().unwrap();
    assert!(text.contains(" CST (") && text.contains(" UTC)"), "{text}");
    assert!(text.contains("January 2026"), "{text}");
    assert!(
        text.contains("acme-cache will not be rebooted: with 2 nodes at load 0.60 it cannot lose one without overloading the other. If the provider reboots it anyway it may be unavailable; add a node, or accept a short outage."),
        "{text}"
    );
    assert!(
        text.contains("Your clusters affected: acme-search."),
        "{text}"
    );
    // the exclusion is its own paragraph, after what happens to the rest
    let told = text.find("You will be told").unwrap();
    let out = text.find("acme-cache will not").unwrap();
    assert!(told < out && text[..out].ends_with("\n\n"), "{text}");
    assert!(
        !text.contains("affected: acme-search, acme-cache"),
        "{text}"
    );
    // the page link, in both parts
    let link = "https://status.provider.example/incidents/r1.dfw";
    assert!(text.contains(link), "{text}");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains(&format!("<a href=\"{link}\">")), "{html}");
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "{html}"
    );
    // headers
    let h = &m["headers"];
    assert_eq!(m["type"], "multipart/alternative");
    let mid = h["message-id"].as_str().unwrap();
    assert!(
        mid.starts_with("<msg_") && mid.ends_with("@provider.example>"),
        "{mid}"
    );
    let unsub = h["list-unsubscribe"].as_str().unwrap().to_string();
    assert!(
        unsub.starts_with("<https://status.provider.example/unsubscribe/"),
        "{unsub}"
    );
    assert_eq!(h["list-unsubscribe-post"], "List-Unsubscribe=One-Click");
    // the exclusion is told once, on its own, to Acme only
    let ex = mails_to(&smtpd, d, "ops@acme.example", "acme-cache excluded");
    assert_eq!(ex.len(), 1, "{ex:?}");
    for m in smtpd.mails() {
        if header(&m, "To").unwrap().contains("public") {
            assert!(!m.to_lowercase().contains("acme"), "{m}");
        }
    }
    // the public mail is in UTC only
    let pub_ann = mails_to(
        &smtpd,
        d,
        "status@public.example",
        "Scheduled maintenance in dfw",
    );
    let t = pub_ann[0]["text"].as_str().unwrap();
    assert!(t.contains(":00 UTC") && !t.contains("CST"), "{t}");

    // serve: admin notices go to the right subscribers, once
    let out = RC.run(&["token", "admin", "--db", db_s]);
    let admin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let port = rollcall_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = || {
        let mut c = RC.cmd();
        c.args(["serve", "--db", db_s, "--listen", &listen])
            .env("TELL_HOOK_SECRET", HOOK_SECRET)
            .stdout(std::process::Stdio::null());
        let k = rollcall_testkit::Kill::spawn(&mut c, "rollcall serve");
        wait_until("serve to listen", || rollcall_testkit::listening(&listen));
        k
    };
    let mut server = serve();
    let bearer = format!("Bearer {admin}");
    let post_notice = |body: &str| {
        let (st, b) = http(
            port,
            "POST",
            "/api/admin/notices",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            body,
        );
        assert_eq!(st, 201, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["published"], true, "{b}");
        v["id"].as_str().unwrap().to_string()
    };
    let hook_hits = |s: &str| {
        sink.ok_hits()
            .iter()
            .filter(|h| String::from_utf8_lossy(&h.body).contains(s))
            .count()
    };
    let acme_id =
        post_notice(r#"{"title": "Acme only", "body": "Your search cluster.", "tenant": "acme"}"#);
    wait_until("Acme's notice", || {
        mails_to(&smtpd, d, "ops@acme.example", "Acme only").len() == 1
    });
    let m = &mails_to(&smtpd, d, "ops@acme.example", "Acme only")[0];
    let t = m["text"].as_str().unwrap();
    assert!(
        t.contains(&format!(
            "https://status.provider.example/incidents/{acme_id}"
        )),
        "{t}"
    );
    post_notice(r#"{"title": "Everyone", "body": "For all."}"#);
    wait_until("the public notice", || {
        mails_to(&smtpd, d, "ops@acme.example", "Everyone").len() == 1
            && mails_to(&smtpd, d, "status@public.example", "Everyone").len() == 1
            && hook_hits("Everyone") == 1
    });
    assert!(mails_to(&smtpd, d, "status@public.example", "Acme only").is_empty());
    assert_eq!(hook_hits("Acme only"), 0);
    // a restart resends nothing
    drop(server);
    server = serve();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        mails_to(&smtpd, d, "ops@acme.example", "Acme only").len(),
        1
    );
    assert_eq!(mails_to(&smtpd, d, "ops@acme.example", "Everyone").len(), 1);
    assert_eq!(
        mails_to(&smtpd, d, "status@public.example", "Everyone").len(),
        1
    );
    assert_eq!(hook_hits("Everyone"), 1);

    // one-click unsubscribe (the link of the mail, on this server)
    let path = unsub
        .trim_start_matches("<https://status.provider.example")
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let (st, page) = http(port, "GET", &path, &[], "");
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    let (st, _) = http(port, "GET", "/unsubscribe/bm9ib2R5.AAAA", &[], "");
    assert_eq!(st, 404, "a forged token");
    for _ in 0..2 {
        let (st, page) = http(
            port,
            "POST",
            &path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "List-Unsubscribe=One-Click",
        );
        assert_eq!(st, 200, "{page}");
        assert!(page.contains("You are unsubscribed"), "{page}");
    }
    post_notice(r#"{"title": "After", "body": "Later news."}"#);
    wait_until("the public's next notice", || {
        mails_to(&smtpd, d, "status@public.example", "After").len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        mails_to(&smtpd, d, "ops@acme.example", "After").is_empty(),
        "mail after unsubscribing"
    );
    drop(server);
}

/// Two `serve`s on one PostgreSQL journal: an admin notice whose webhook fails its first
/// three attempts is retried by the process that claimed it and never also sent by the
/// other (each row is claimed by one process).
#[test]
fn two_serves_on_one_postgres_journal_deliver_an_admin_notice_once() {
    let dir = TmpDir::new("notify-tell-pg");
    let db = rollcall_testkit::pg::shared().fresh_db("tellpg");
    let sink = rollcall_testkit::webhook::Sink::recording();
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "{FLEET}\n[notify]\nattempts = 5\nbackoff = \"300ms\"\n\n[[subscriber]]\nid = \"hook\"\ncomponents = [\"dfw\"]\nwebhook = \"{}\"\nsecret_env = \"TELL_HOOK_SECRET\"\n",
            sink.url("/hook")
        ),
    )
    .unwrap();
    let data = dir.join("data");
    let rc = |args: &[&str]| {
        let out = RC
            .cmd()
            .args(args)
            .env("XDG_DATA_HOME", &data)
            .env("TELL_HOOK_SECRET", HOOK_SECRET)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let fleet_s = fleet.to_str().unwrap();
    rc(&[
        "run",
        fleet_s,
        "--db",
        &db,
        "--time-scale",
        "1500",
        "--quiet",
        "--run-id",
        "p1",
    ]);
    let admin = rc(&["token", "admin", "--db", &db]).trim().to_string();
    let ports = [rollcall_testkit::free_port(), rollcall_testkit::free_port()];
    let _serves: Vec<_> = ports
        .iter()
        .map(|p| {
            let listen = format!("127.0.0.1:{p}");
            let mut c = RC.cmd();
            c.args(["serve", "--db", &db, "--listen", &listen])
                .env("XDG_DATA_HOME", &data)
                .env("TELL_HOOK_SECRET", HOOK_SECRET)
                .stdout(std::process::Stdio::null());
            let k = rollcall_testkit::Kill::spawn(&mut c, "rollcall serve");
            wait_until("serve to listen", || rollcall_testkit::listening(&listen));
            k
        })
        .collect();
    sink.state
        .lock()
        .unwrap()
        .fail_first
        .insert("/hook".into(), 3);
    let hits = |ok: bool| {
        sink.hits()
            .iter()
            .filter(|h| String::from_utf8_lossy(&h.body).contains("Once only"))
            .filter(|h| !ok || h.status / 100 == 2)
            .count()
    };
    let bearer = format!("Bearer {admin}");
    let (st, b) = http(
        ports[0],
        "POST",
        "/api/admin/notices",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        r#"{"title": "Once only", "body": "Both servers see it."}"#,
    );
    assert_eq!(st, 201, "{b}");
    wait_until("the notice to be delivered", || hits(true) == 1);
    // both servers go on with their rounds (every second) for a while
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(hits(true), 1, "delivered more than once");
    assert_eq!(
        hits(false),
        4,
        "three failures and one success, by one process"
    );
}

/// The hold of `region` in a list of holds; a missing one fails the test, naming the list.
fn hold_of<'a>(holds: &'a serde_json::Value, region: &str) -> &'a serde_json::Value {
    holds
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["region"] == region))
        .unwrap_or_else(|| panic!("no hold of {region} in {holds}"))
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
    // both regions are announced ahead, so both may be held; holds are listed by when they began
    let hold = hold_of(&v["notices"]["holds"], "dfw");
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
    assert_eq!(get_as(port, "/api/admin/notify.json", None).0, 401);
    let out = RC.run(&["token", "admin", "--db", db_s]);
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let doc: serde_json::Value =
        serde_json::from_str(&await_get(port, "/api/admin/notify.json", Some(&admin))).unwrap();
    assert!(
        hold_of(&doc["holds"], "dfw")["escalated_at"].is_i64(),
        "{doc}"
    );

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
fn get_as(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
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
        if let (200, body) = get_as(port, path, token) {
            return body;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{path} on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
