//! Real Statuspage consumers against `rollcall serve` of a real sim run of
//! examples/xsa-108.toml with missing hosts, a reschedule (an admin maintenance's
//! published window moved) and a cancellation (an admin maintenance cancelled): PyPI's
//! statuspage-prometheus-exporter, feedparser, icalendar and a strict JSON schema
//! (jsonschema, `crates/web/statuspage.schema.json`), run from the venv `scripts/test`
//! installs (`rollcall_testkit::peers`). One served run for the whole binary.

use rollcall_testkit::{Bin, Kill, TmpDir, free_port, peers, repo, wait_for};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

const RC: Bin = rollcall_testkit::bin!();

/// One HTTP/1.1 exchange: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    (
        status,
        text.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    )
}

fn stdout_of(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Run a client (`clients.py CMD URL [ARGS]`); its JSON report.
fn client(cmd: &str, url: &str, extra: &[&str]) -> Value {
    let script = repo().join("crates/cli/tests/statuspage_clients/clients.py");
    let out = Command::new(peers::clients_python())
        .arg(script)
        .arg(cmd)
        .arg(url)
        .args(extra)
        .output()
        .expect("run the clients' python");
    let text = stdout_of(out, cmd);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{cmd}: {e}: {text}"))
}

struct Served {
    _dir: TmpDir,
    _server: Kill,
    port: u16,
    url: String,
    tenant_url: String,
    /// (moved, cancelled) admin maintenance ids.
    moved: String,
    cancelled: String,
}

fn serve_run() -> Served {
    let dir = TmpDir::new("spclients");
    let db = dir.join("r.db").display().to_string();
    stdout_of(
        RC.run(&[
            "run",
            "examples/xsa-108.toml",
            "--db",
            &db,
            "--time-scale",
            "5000",
            "--quiet",
            "--missing-rate",
            "0.1",
        ]),
        "rollcall run",
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = RC.spawn(&["serve", "--db", &db, "--listen", &addr]);
    wait_for("rollcall serve", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = format!("http://{addr}/");
    let adm = stdout_of(RC.run(&["token", "admin", "--db", &db]), "token admin");
    let adm = adm.trim().to_string();
    // the server reloads tokens on its next poll
    wait_for("the admin token", Duration::from_secs(10), || {
        http(port, "GET", "/api/admin/summary.json", Some(&adm), None).0 == 200
    });
    let t = stdout_of(
        RC.run(&[
            "token",
            "tenant",
            "acme",
            "--db",
            &db,
            "--base-url",
            &format!("http://{addr}"),
        ]),
        "token tenant",
    );
    let tenant_url = t
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .expect("tenant link")
        .to_string();
    let mk = |title: &str| {
        let (st, body) = http(
            port,
            "POST",
            "/api/admin/maintenances",
            Some(&adm),
            Some(&json!({
            "title": title, "region": "dfw", "starts_at": "2014-09-29T10:00:00Z", "ends_at": "2014-09-29T11:00:00Z"})),
        );
        assert_eq!(st, 201, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let moved = mk("Disk firmware in dfw");
    let cancelled = mk("Switch replacement in dfw");
    let (st, body) = http(
        port,
        "PATCH",
        &format!("/api/admin/maintenances/{moved}"),
        Some(&adm),
        Some(&json!({"starts_at": "2014-09-29T14:00:00Z", "ends_at": "2014-09-29T15:30:00Z"})),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(
        port,
        "PATCH",
        &format!("/api/admin/maintenances/{cancelled}"),
        Some(&adm),
        Some(&json!({"status": "cancelled"})),
    );
    assert_eq!(st, 200, "{body}");
    // the poller picks the admin changes up
    wait_for(
        "the moved window on the page",
        Duration::from_secs(10),
        || {
            http(
                port,
                "GET",
                "/api/v2/scheduled-maintenances/upcoming.json",
                None,
                None,
            )
            .1
            .contains("2014-09-29T14:00:00.000Z")
        },
    );
    Served {
        _dir: dir,
        _server: server,
        port,
        url,
        tenant_url,
        moved,
        cancelled,
    }
}

#[test]
fn real_statuspage_clients_accept_the_public_and_tenant_pages() {
    let s = serve_run();
    schema_check(&s);
    exporter_check(&s);
    feeds_check(&s);
    ical_check(&s);
    excluded_check(&s);
}

/// Every /api/v2 document, public and tenant, passes the strict schema.
fn schema_check(s: &Served) {
    let schema = repo()
        .join("crates/web/statuspage.schema.json")
        .display()
        .to_string();
    for url in [&s.url, &s.tenant_url] {
        let r = client("schema", url, &[&schema]);
        let docs = r.as_object().unwrap();
        assert_eq!(docs.len(), 8, "{r}");
        for (doc, errors) in docs {
            assert_eq!(errors, &json!([]), "{url}api/v2/{doc} breaks the schema");
        }
    }
}

/// statuspage-prometheus-exporter reads summary.json: every component up, the upcoming
/// (moved) maintenance with its shortlink and window, not the cancelled one.
fn exporter_check(s: &Served) {
    let r = client("exporter", &s.url, &[]);
    assert_eq!(r["result"]["success"], true, "{r}");
    assert_eq!(r["result"]["status"], 1, "operational after the run: {r}");
    let m = r["metrics"].as_str().unwrap();
    assert!(
        m.contains("statuspage_service_status{service_name=\"rollcall\"} 1.0"),
        "{m}"
    );
    for region in ["dfw", "ord", "iad", "lon", "syd", "hkg"] {
        for name in [format!("Region {region}"), format!("Servers in {region}")] {
            let line = format!(
                "statuspage_component_status{{component_name=\"{name}\",service_name=\"rollcall\"}} 1.0"
            );
            assert!(m.contains(&line), "{line} in {m}");
        }
    }
    let maint: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("statuspage_maintenance_info{"))
        .collect();
    assert_eq!(
        maint.len(),
        1,
        "only the moved maintenance is upcoming: {maint:?}"
    );
    let l = maint[0];
    assert!(
        l.contains(&format!("maintenance_id=\"{}\"", s.moved)),
        "{l}"
    );
    assert!(
        l.contains("scheduled_start=\"2014-09-29T14:00:00Z\""),
        "{l}"
    );
    assert!(
        l.contains(&format!("shortlink=\"{}incidents/{}\"", s.url, s.moved)),
        "{l}"
    );
    assert!(l.contains("affected_components=\"Servers in dfw\""), "{l}");
    assert!(l.ends_with(" 1.0"), "{l}");
    // the shortlink is a page
    let (st, page) = http(
        s.port,
        "GET",
        &format!("/incidents/{}", s.moved),
        None,
        None,
    );
    assert_eq!(st, 200);
    assert!(page.contains("Disk firmware in dfw"), "{page}");
}

/// feedparser: every feed well-formed (bozo 0), an author, the page's id, the same
/// entries in each.
fn feeds_check(s: &Served) {
    let r = client("feeds", &s.url, &[]);
    let pid =
        serde_json::from_str::<Value>(&http(s.port, "GET", "/api/v2/status.json", None, None).1)
            .unwrap()["page"]["id"]
            .as_str()
            .unwrap()
            .to_string();
    for (path, f) in r.as_object().unwrap() {
        assert_eq!(f["bozo"], 0, "{path}: {}", f["bozo_exception"]);
        assert!(!f["entries"].as_array().unwrap().is_empty(), "{path}");
        if path.ends_with(".atom") {
            assert_eq!(f["author"], "hosted-search", "{path}: {f}");
            assert_eq!(f["id"], format!("urn:rollcall:{pid}:feed:public"), "{path}");
        }
    }
    let ids = |p: &str| -> Vec<Value> {
        r[p]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect()
    };
    assert_eq!(ids("feed.atom"), ids("history.atom"));
    assert_eq!(ids("feed.atom"), ids("history.rss"));
    assert_eq!(r["history.rss"]["version"], "rss20");
    let t = client("feeds", &s.tenant_url, &[]);
    assert_eq!(
        t["feed.atom"]["id"],
        format!("urn:rollcall:{pid}:feed:tenant:acme")
    );
}

/// icalendar: DTSTAMP in UTC on every event, SEQUENCE 1 after the move, the cancelled
/// one CANCELLED with SEQUENCE 1.
fn ical_check(s: &Served) {
    let r = client("ical", &s.url, &[]);
    assert_eq!(r["method"], "PUBLISH");
    let evs = r["events"].as_object().unwrap();
    assert_eq!(evs.len(), 8, "6 regions and 2 admin maintenances: {r}");
    for (uid, e) in evs {
        assert_eq!(e["dtstamp_utc"], true, "{uid}: {e}");
    }
    let moved = &r["events"][format!("{}@rollcall", s.moved)];
    assert_eq!(moved["sequence"], 1, "{moved}");
    assert_eq!(moved["start"], "2014-09-29T14:00:00+00:00");
    assert_eq!(moved["status"], "CONFIRMED");
    let gone = &r["events"][format!("{}@rollcall", s.cancelled)];
    assert_eq!(gone["status"], "CANCELLED", "{gone}");
    assert_eq!(gone["sequence"], 1, "{gone}");
}

/// The cluster the plan refuses shows on Acme's page as not part of the maintenance,
/// with why, the risk and the remedy, and never on the public page.
fn excluded_check(s: &Served) {
    let path = s
        .tenant_url
        .trim_start_matches(&format!("http://127.0.0.1:{}", s.port))
        .to_string();
    let comps: Value = serde_json::from_str(
        &http(
            s.port,
            "GET",
            &format!("{path}api/v2/components.json"),
            None,
            None,
        )
        .1,
    )
    .unwrap();
    let c = comps["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cluster-acme-search")
        .expect("acme-search on Acme's page")
        .clone();
    let d = c["description"].as_str().unwrap();
    for w in [
        "not part of this maintenance",
        "2 nodes at load 0.60",
        "cannot lose a node without overloading the other",
        "If the provider reboots",
        "Add 1 node",
        "accept a short outage",
    ] {
        assert!(d.contains(w), "`{w}` in {d}");
    }
    let ups = http(
        s.port,
        "GET",
        &format!("{path}api/updates.json"),
        None,
        None,
    )
    .1;
    assert!(
        ups.contains("acme-search is not part of this maintenance"),
        "{ups}"
    );
    for p in [
        "/api/v2/summary.json",
        "/api/updates.json",
        "/feed.atom",
        "/",
    ] {
        let body = http(s.port, "GET", p, None, None).1;
        assert!(
            !body.contains("acme-search"),
            "public {p} names acme-search"
        );
    }
}
