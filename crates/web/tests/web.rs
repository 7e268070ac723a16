//! The status server over real HTTP on loopback (reqwest), against stores filled by real
//! sim runs of examples/xsa-108.toml (engine + runtime + sim driver on a scaled clock).

mod common;

use common::*;
use rollcall_testkit::sim::{SERIAL, finished_run, sim};
use rollcall_testkit::{TmpDir, xsa};
use rollcall_web::db::TokenKind;
use rollcall_web::{Access, ServeOptions, Update, UpdateSink};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn serve(db: &std::path::Path) -> rollcall_web::Server {
    rollcall_web::start(ServeOptions::new(db, "127.0.0.1:0".parse().unwrap()))
        .await
        .expect("server starts")
}

async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    let r = c.get(url).send().await.expect("GET");
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.expect("JSON body")
}

async fn token(db: &std::path::Path, kind: TokenKind, tenant: Option<&str>) -> String {
    rollcall_web::create_token(db, kind, tenant, "test")
        .await
        .expect("token")
        .1
}

/// Records what the admin API publishes.
#[derive(Default)]
struct Recorder(Mutex<Vec<Update>>);
impl UpdateSink for Recorder {
    fn publish<'a>(&'a self, u: &'a Update) -> rollcall_web::BoxFuture<'a, Result<(), String>> {
        self.0.lock().unwrap().push(u.clone());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuspage_documents_describe_a_finished_run() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("docs");
    finished_run(&tmp.db(), "docs", 0.1).await;
    let server = serve(&tmp.db()).await;
    let c = client();
    let u = &server.url;

    let status = get_json(&c, &format!("{u}/api/v2/status.json")).await;
    // the deployment's page id (drawn once per store), never the run's
    let pid = status["page"]["id"].as_str().unwrap();
    assert_ne!(pid, "docs");
    assert_eq!(pid.len(), 12, "{pid}");
    assert_eq!(status["page"]["name"], "hosted-search");
    assert_eq!(status["page"]["time_zone"], "Etc/UTC");
    assert_eq!(status["status"]["indicator"], "none", "{status}");

    let sum = get_json(&c, &format!("{u}/api/v2/summary.json")).await;
    let comps = sum["components"].as_array().unwrap();
    let regions: Vec<&str> = comps
        .iter()
        .filter(|c| c["group"] == true)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        regions,
        [
            "region-dfw",
            "region-ord",
            "region-iad",
            "region-lon",
            "region-syd",
            "region-hkg"
        ]
    );
    for c in comps {
        for f in [
            "id",
            "name",
            "status",
            "created_at",
            "updated_at",
            "position",
            "description",
            "showcase",
            "group_id",
            "page_id",
            "group",
            "only_show_if_degraded",
            "start_date",
        ] {
            assert!(c.get(f).is_some(), "component field {f} missing: {c}");
        }
        assert_eq!(c["status"], "operational", "after the run: {c}");
    }
    // every cluster of xsa-108 has a tenant: the public view shows each region as a group
    // with one neutral member, "Servers in <region>", listed in the group and pointing back
    assert_eq!(
        comps.len(),
        12,
        "public components: regions and their servers"
    );
    for g in comps.iter().filter(|c| c["group"] == true) {
        let region = g["id"].as_str().unwrap().strip_prefix("region-").unwrap();
        assert_eq!(g["components"], json!([format!("servers-{region}")]), "{g}");
        let m = comps
            .iter()
            .find(|c| c["id"] == format!("servers-{region}"))
            .expect("member listed");
        assert_eq!(m["group_id"], g["id"]);
        assert_eq!(m["group"], false);
    }
    assert_eq!(
        sum["incidents"].as_array().unwrap().len(),
        0,
        "all missing hosts returned"
    );
    assert_eq!(sum["scheduled_maintenances"].as_array().unwrap().len(), 0);

    let all = get_json(&c, &format!("{u}/api/v2/scheduled-maintenances.json")).await;
    let ms = all["scheduled_maintenances"].as_array().unwrap();
    assert_eq!(ms.len(), 6, "one maintenance per region");
    for m in ms {
        assert_eq!(m["status"], "completed", "{m}");
        assert_eq!(m["impact"], "maintenance");
        for f in [
            "scheduled_for",
            "scheduled_until",
            "started_at",
            "resolved_at",
        ] {
            assert!(m[f].is_string(), "{f} in {m}");
        }
        let ups: Vec<&str> = m["incident_updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            ups,
            ["completed", "in_progress", "scheduled"],
            "newest first: {m}"
        );
        assert!(m["scheduled_for"].as_str() < m["scheduled_until"].as_str());
    }
    let dfw = ms
        .iter()
        .find(|m| m["id"] == "docs.dfw")
        .expect("dfw maintenance");
    // announced at the maintenance start, first reboot after the 1 h lead
    let started = dfw["started_at"].as_str().unwrap();
    assert!(
        ("2014-09-25T21:00:00.000Z".."2014-09-25T21:05:00.000Z").contains(&started),
        "{started}"
    );
    assert_eq!(
        get_json(
            &c,
            &format!("{u}/api/v2/scheduled-maintenances/upcoming.json")
        )
        .await["scheduled_maintenances"],
        json!([])
    );
    assert_eq!(
        get_json(
            &c,
            &format!("{u}/api/v2/scheduled-maintenances/active.json")
        )
        .await["scheduled_maintenances"],
        json!([])
    );
    // missing hosts became (resolved) incidents, without naming the host publicly
    let inc = get_json(&c, &format!("{u}/api/v2/incidents.json")).await;
    let inc = inc["incidents"].as_array().unwrap();
    assert!(
        !inc.is_empty(),
        "10% missing rate: some hosts did not come back"
    );
    for i in inc {
        assert_eq!(i["status"], "resolved");
        assert!(
            i["name"].as_str().unwrap().starts_with("A server in "),
            "{i}"
        );
    }

    // the timeline: engine notices newest first, with stable ids
    let ups = get_json(&c, &format!("{u}/api/updates.json")).await;
    let ups = ups["updates"].as_array().unwrap();
    let kinds: BTreeSet<&str> = ups.iter().map(|x| x["kind"].as_str().unwrap()).collect();
    for k in [
        "scheduled",
        "started",
        "completed",
        "host_missing",
        "host_returned",
    ] {
        assert!(kinds.contains(k), "timeline has {k}: {kinds:?}");
    }
    let ats: Vec<&str> = ups.iter().map(|x| x["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted, "newest first");

    // OpenAPI documents every non-HTML route of the route table
    let api = get_json(&c, &format!("{u}/openapi.json")).await;
    assert!(api["openapi"].as_str().unwrap().starts_with("3."));
    for r in rollcall_web::route_table() {
        let op = &api["paths"][&r.path][r.method.to_lowercase()];
        assert!(
            op.is_object(),
            "openapi.json documents {} {}",
            r.method,
            r.path
        );
    }
    for s in [
        "SpSummary",
        "SpComponent",
        "SpIncident",
        "ApiError",
        "NewNotice",
    ] {
        assert!(api["components"]["schemas"][s].is_object(), "schema {s}");
    }

    // /metrics: OpenMetrics text with the run's figures
    let m = c.get(format!("{u}/metrics")).sent().await;
    assert_eq!(m.status(), 200);
    let m = m.text().await.unwrap();
    assert!(m.contains("rollcall_hosts{phase=\"healthy\"} 372"), "{m}");
    assert!(m.contains("rollcall_run_hosts_done 372"), "{m}");
    assert!(m.contains("rollcall_run_progress_ratio 1.0"), "{m}");
    assert!(
        m.contains("rollcall_run_state{state=\"completed\"} 1"),
        "{m}"
    );
    let reboots: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("rollcall_reboots_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("reboots counter");
    assert!(reboots >= 372, "at least one reboot per host: {reboots}");
    assert!(
        m.contains("rollcall_notices_emitted_total{kind=\"scheduled\"} 6"),
        "{m}"
    );
    assert!(m.contains("rollcall_gate_checks_total "), "{m}");
    // deliveries come from the notify outbox (none here: the example has no subscribers)
    assert!(m.contains("# TYPE rollcall_notice_deliveries gauge"), "{m}");
    assert!(m.trim_end().ends_with("# EOF"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_a_cannot_see_tenant_b_through_any_route() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("iso");
    finished_run(&tmp.db(), "iso", 0.15).await;
    let (a, b) = ("acme", "globex");
    let tok_a = token(&tmp.db(), TokenKind::Tenant, Some(a)).await;
    let tok_b = token(&tmp.db(), TokenKind::Tenant, Some(b)).await;
    let adm = token(&tmp.db(), TokenKind::Admin, None).await;
    let server = serve(&tmp.db()).await;
    let c = client();
    let u = server.url.clone();

    // admin-created notice and maintenance for B only, naming B's cluster
    let r = c
        .post(format!("{u}/api/admin/notices"))
        .bearer_auth(&adm)
        .json(&json!({"title": "Globex: reindex of globex-logs tonight", "body": "secret-b-notice", "tenant": b, "region": "syd"}))
        .sent().await;
    assert_eq!(r.status(), 201);
    let r = c
        .post(format!("{u}/api/admin/maintenances"))
        .bearer_auth(&adm)
        .json(
            &json!({"title": "globex-search-lon disk swap", "body": "secret-b-window", "tenant": b,
                      "starts_at": "2014-09-27T10:00:00Z", "ends_at": "2014-09-27T11:00:00Z"}),
        )
        .sent()
        .await;
    assert_eq!(r.status(), 201);
    let b_maint: Value = r.json().await.unwrap();

    // what B owns and A must never see
    let fleet = server.shared.fleet().clone().expect("fleet");
    let a_hosts: BTreeSet<u32> = fleet
        .clusters
        .iter()
        .filter(|c| c.tenant.as_deref() == Some(a))
        .flat_map(|c| c.members.iter().copied())
        .collect();
    let mut secrets: Vec<String> = vec![
        "Globex".into(),
        "globex".into(),
        "secret-b-notice".into(),
        "secret-b-window".into(),
    ];
    for cl in fleet
        .clusters
        .iter()
        .filter(|c| c.tenant.as_deref() == Some(b))
    {
        secrets.push(cl.id.clone());
        for &h in &cl.members {
            if !a_hosts.contains(&h) {
                secrets.push(fleet.hosts[h as usize].id.clone());
            }
        }
    }
    let all_hosts: Vec<String> = fleet.hosts.iter().map(|h| h.id.clone()).collect();
    let tenant_clusters: Vec<String> = fleet
        .clusters
        .iter()
        .filter(|c| c.tenant.is_some())
        .map(|c| c.id.clone())
        .collect();

    // the secrets are real: the admin and B see them
    let admin_sum = c
        .get(format!("{u}/api/admin/summary.json"))
        .bearer_auth(&adm)
        .sent()
        .await
        .text()
        .await
        .unwrap();
    assert!(admin_sum.contains("globex-search-dfw"));
    let b_page = get_text(&c, format!("{u}/t/{tok_b}/")).await;
    assert!(b_page.contains("globex-search-dfw") && b_page.contains("secret-b-notice"));
    let b_ups = get_text(&c, format!("{u}/t/{tok_b}/api/updates.json")).await;
    let b_missing_named = fleet
        .clusters
        .iter()
        .filter(|c| c.tenant.as_deref() == Some(b))
        .any(|cl| b_ups.contains(cl.id.as_str()));
    assert!(b_missing_named, "B's updates name B's clusters");

    // every route of the router, with A's link / A's credentials
    let routes = rollcall_web::route_table();
    assert!(routes.len() >= 30, "route table: {routes:?}");
    let mut checked = 0;
    for r in &routes {
        let path = r
            .path
            .replace("{token}", &tok_a)
            .replace("{id}", b_maint["id"].as_str().unwrap());
        let url = format!("{u}{path}");
        match (r.access, r.method) {
            (Access::Public | Access::Tenant, "GET") => {
                let res = c.get(&url).sent().await;
                let st = res.status().as_u16();
                let body = res.text().await.unwrap();
                if r.path == "/t/{token}" {
                    assert_eq!(st, 308, "{path}");
                } else if r.path == "/unsubscribe/{token}" {
                    // a tenant link is no unsubscribe token
                    assert_eq!(st, 404, "{path}");
                } else if r.path.ends_with("/incidents/{id}") {
                    // B's maintenance has no page for A nor the public
                    assert_eq!(st, 404, "GET {path}: {body}");
                } else {
                    assert_eq!(st, 200, "GET {path}: {body}");
                }
                for s in &secrets {
                    assert!(
                        !body.contains(s.as_str()),
                        "GET {} shows tenant B's `{s}` to tenant A",
                        r.path
                    );
                }
                if r.access == Access::Public {
                    for s in tenant_clusters.iter().chain(&all_hosts) {
                        assert!(
                            !body.contains(s.as_str()),
                            "public GET {} shows `{s}`",
                            r.path
                        );
                    }
                }
                // with B's token the same tenant route must differ where it matters
                if r.access == Access::Tenant
                    && (r.path.ends_with("/components.json") || r.path.ends_with("{token}/"))
                {
                    assert!(
                        body.contains("acme-search-dfw"),
                        "A sees its own cluster on {}",
                        r.path
                    );
                }
            }
            (Access::Admin, m) => {
                for auth in [
                    None,
                    Some(tok_a.as_str()),
                    Some(tok_b.as_str()),
                    Some("rca_not-a-token"),
                ] {
                    let mut req = c.request(m.parse().unwrap(), &url).json(&json!({"title": "x", "starts_at": "2014-09-27T10:00:00Z", "ends_at": "2014-09-27T12:00:00Z"}));
                    if let Some(t) = auth {
                        req = req.bearer_auth(t);
                    }
                    let res = req.sent().await;
                    assert_eq!(res.status(), 401, "{m} {} with {auth:?}", r.path);
                    let body = res.text().await.unwrap();
                    for s in &secrets {
                        assert!(!body.contains(s.as_str()), "{m} {} leaks `{s}`", r.path);
                    }
                }
            }
            (Access::Public, "POST") if r.path == "/unsubscribe/{token}" => {
                let res = c.post(&url).sent().await;
                assert_eq!(res.status(), 404, "POST {path} with a tenant link");
                let body = res.text().await.unwrap();
                for s in secrets.iter().chain(&tenant_clusters).chain(&all_hosts) {
                    assert!(!body.contains(s.as_str()), "POST {} leaks `{s}`", r.path);
                }
            }
            (acc, m) => panic!(
                "route {m} {} ({acc:?}) has no isolation check in this test: add one",
                r.path
            ),
        }
        checked += 1;
    }
    assert_eq!(checked, routes.len());
    // unknown link: nothing
    let r = c
        .get(format!("{u}/t/rct_nope/api/v2/summary.json"))
        .sent()
        .await;
    assert_eq!(r.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_a_hashed_bearer_token_and_rejects_bad_input() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("admin");
    finished_run(&tmp.db(), "adm", 0.0).await;
    let adm = token(&tmp.db(), TokenKind::Admin, None).await;
    let sink = Arc::new(Recorder::default());
    let mut o = ServeOptions::new(tmp.db(), "127.0.0.1:0".parse().unwrap());
    o.sink = sink.clone();
    let server = rollcall_web::start(o).await.unwrap();
    let c = client();
    let u = &server.url;
    let notices = format!("{u}/api/admin/notices");

    // missing / malformed / wrong token → 401 with a JSON error and WWW-Authenticate
    let r = c.post(&notices).json(&json!({"title": "x"})).sent().await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("missing admin token"),
        "{e}"
    );
    let r = c
        .post(&notices)
        .header("authorization", format!("Token {adm}"))
        .json(&json!({"title": "x"}))
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    let mut wrong = adm.clone();
    wrong.push('x');
    let r = c
        .post(&notices)
        .bearer_auth(&wrong)
        .json(&json!({"title": "x"}))
        .sent()
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        sink.0.lock().unwrap().is_empty(),
        "nothing published without auth"
    );

    // the token is stored hashed: the secret is nowhere in the database file
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", tmp.db().display()))
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, hash FROM web_tokens")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, rollcall_web::db::sha256_hex(&adm));
    pool.close().await;
    for f in [tmp.db(), tmp.db().with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&f) {
            assert!(
                !bytes.windows(adm.len()).any(|w| w == adm.as_bytes()),
                "{} contains the admin secret",
                f.display()
            );
        }
    }

    // bad input → 400 with a clear JSON error naming the field
    let bad = |body: &'static str| {
        let c = c.clone();
        let notices = notices.clone();
        let adm = adm.clone();
        async move {
            let r = c
                .post(&notices)
                .bearer_auth(&adm)
                .header("content-type", "application/json")
                .body(body)
                .sent()
                .await;
            assert_eq!(r.status(), 400, "{body}");
            let v: Value = r.json().await.unwrap();
            v
        }
    };
    let e = bad("{\"title\": ").await;
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().contains("line 1"), "{e}");
    let e = bad("{\"body\": \"no title\"}").await;
    assert_eq!(e["field"], "title", "{e}");
    let e = bad("{\"title\": \"x\", \"titel\": \"y\"}").await;
    assert_eq!(e["field"], "titel", "{e}");
    let e = bad("{\"title\": \"  \"}").await;
    assert_eq!(e["field"], "title", "{e}");
    let e = bad("{\"title\": \"x\", \"region\": \"mars\"}").await;
    assert_eq!(e["field"], "region");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("dfw, ord, iad, lon, syd, hkg"),
        "{e}"
    );
    let e = bad("{\"title\": \"x\", \"tenant\": \"nobody\"}").await;
    assert_eq!(e["field"], "tenant");
    let e = bad("{\"title\": \"x\", \"at\": \"yesterday\"}").await;
    assert_eq!(e["field"], "at");
    let e = bad("").await;
    assert!(e["error"].as_str().unwrap().contains("empty request body"));
    let r = c
        .post(format!("{u}/api/admin/maintenances"))
        .bearer_auth(&adm)
        .json(&json!({"title": "w", "starts_at": "2014-09-27T12:00:00Z", "ends_at": "2014-09-27T11:00:00Z"}))
        .sent().await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["field"], "ends_at", "{e}");
    let r = c
        .patch(format!("{u}/api/admin/maintenances/m-nope"))
        .bearer_auth(&adm)
        .json(&json!({"status": "cancelled"}))
        .sent()
        .await;
    assert_eq!(r.status(), 404);

    // a good notice: stored, on the page and feeds, published to the sink
    let r = c
        .post(&notices)
        .bearer_auth(&adm)
        .json(&json!({"title": "Extra checks in dfw", "body": "We are re-checking every dfw cluster.", "region": "dfw"}))
        .sent().await;
    assert_eq!(r.status(), 201);
    let n: Value = r.json().await.unwrap();
    assert_eq!(n["published"], true);
    let id = n["id"].as_str().unwrap().to_string();
    {
        let got = sink.0.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, id);
        assert_eq!(got[0].kind, "notice");
        assert_eq!(got[0].region.as_deref(), Some("dfw"));
        assert_eq!(got[0].run, "adm");
    }
    let res = c.get(format!("{u}/")).sent().await;
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"),
        "no external assets can load"
    );
    let page = res.text().await.unwrap();
    assert!(page.contains("Extra checks in dfw"));
    let ups = get_json(&c, &format!("{u}/api/updates.json")).await;
    assert_eq!(ups["updates"][0]["id"], id.as_str(), "the newest update");
    server.stop().await;
}

/// Strict RFC 5545 line rules: CRLF everywhere, lines at most 75 octets, folded lines
/// start with one space.
fn check_ics_lines(ics: &str) -> Vec<String> {
    assert!(ics.ends_with("\r\n"), "ends with CRLF");
    let raw: Vec<&str> = ics.split("\r\n").collect();
    for l in &raw[..raw.len() - 1] {
        assert!(
            !l.contains('\n') && !l.contains('\r'),
            "bare LF/CR in {l:?}"
        );
        assert!(l.len() <= 75, "line longer than 75 octets: {l:?}");
    }
    // unfold
    let mut out: Vec<String> = Vec::new();
    for l in &raw[..raw.len() - 1] {
        if let Some(rest) = l.strip_prefix(' ') {
            out.last_mut()
                .expect("continuation after a line")
                .push_str(rest);
        } else {
            out.push(l.to_string());
        }
    }
    out
}

fn events(lines: &[String]) -> Vec<Vec<String>> {
    let mut evs = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for l in lines {
        if l == "BEGIN:VEVENT" {
            cur = Some(Vec::new());
        } else if l == "END:VEVENT" {
            evs.push(cur.take().expect("END after BEGIN"));
        } else if let Some(c) = cur.as_mut() {
            c.push(l.clone());
        }
    }
    evs
}

fn prop<'a>(ev: &'a [String], name: &str) -> Option<&'a str> {
    ev.iter().find_map(|l| {
        l.strip_prefix(name).and_then(|r| {
            r.strip_prefix(':').or_else(|| {
                r.split_once(':')
                    .map(|x| x.1)
                    .filter(|_| r.starts_with(';'))
            })
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atom_and_icalendar_feeds_are_valid_and_stable_across_restarts() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("feeds");
    finished_run(&tmp.db(), "feeds", 0.1).await;
    let adm = token(&tmp.db(), TokenKind::Admin, None).await;
    let tok = token(&tmp.db(), TokenKind::Tenant, Some("acme")).await;
    let c = client();

    let server = serve(&tmp.db()).await;
    let u = server.url.clone();
    let r = c.get(format!("{u}/feed.atom")).sent().await;
    assert_eq!(r.headers()["content-type"], "application/atom+xml");
    let atom1 = r.text().await.unwrap();
    let feed = atom_syndication::Feed::read_from(atom1.as_bytes()).expect("valid Atom");
    let ups = get_json(&c, &format!("{u}/api/updates.json")).await;
    let n = ups["updates"].as_array().unwrap().len();
    assert_eq!(feed.entries().len(), n, "one entry per update");
    let ids: BTreeSet<&str> = feed.entries().iter().map(|e| e.id()).collect();
    assert_eq!(ids.len(), n, "unique entry ids");
    assert!(
        ids.iter()
            .all(|i| i.starts_with("urn:rollcall:update:feeds."))
    );
    assert!(
        feed.links()
            .iter()
            .any(|l| l.rel() == "self" && l.href() == format!("{u}/feed.atom"))
    );
    for e in feed.entries() {
        assert!(e.summary().is_some() && e.published().is_some());
    }
    // tenant feed: its own id, more text about its own hosts
    let tfeed = get_text(&c, format!("{u}/t/{tok}/feed.atom")).await;
    let tfeed = atom_syndication::Feed::read_from(tfeed.as_bytes()).expect("valid tenant Atom");
    let pid = get_json(&c, &format!("{u}/api/v2/status.json")).await["page"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(tfeed.id(), format!("urn:rollcall:{pid}:feed:tenant:acme"));

    // iCalendar: strict lines, one VEVENT per maintenance, VALARM 1h before
    let r = c.get(format!("{u}/maintenances.ics")).sent().await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let ics1 = r.text().await.unwrap();
    let lines = check_ics_lines(&ics1);
    assert_eq!(lines.first().map(String::as_str), Some("BEGIN:VCALENDAR"));
    assert_eq!(lines.last().map(String::as_str), Some("END:VCALENDAR"));
    for p in ["VERSION:2.0", "METHOD:PUBLISH"] {
        assert!(lines.iter().any(|l| l == p), "{p}");
    }
    assert!(lines.iter().any(|l| l.starts_with("PRODID:")));
    let evs = events(&lines);
    assert_eq!(evs.len(), 6);
    for ev in &evs {
        for p in [
            "UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "SEQUENCE", "STATUS",
        ] {
            assert!(prop(ev, p).is_some(), "{p} in {ev:?}");
        }
        assert!(prop(ev, "UID").unwrap().ends_with("@rollcall"));
        assert_eq!(prop(ev, "STATUS"), Some("CONFIRMED"));
        assert!(ev.iter().any(|l| l == "BEGIN:VALARM"));
        assert!(ev.iter().any(|l| l == "TRIGGER:-PT1H"), "{ev:?}");
        assert!(ev.iter().any(|l| l == "ACTION:DISPLAY"));
        let alarm = ev.iter().skip_while(|l| *l != "BEGIN:VALARM");
        assert!(
            alarm.clone().all(|l| !l.starts_with("DTSTAMP")),
            "deterministic alarm: {ev:?}"
        );
        let uid = prop(ev, "UID").unwrap();
        assert!(
            ev.iter()
                .any(|l| *l == format!("UID:{}", uid.replace("@rollcall", "-reminder@rollcall"))),
            "stable alarm UID: {ev:?}"
        );
        assert!(prop(ev, "DTSTART").unwrap().ends_with('Z'), "UTC times");
    }
    icalendar::parser::read_calendar(&icalendar::parser::unfold(&ics1))
        .expect("icalendar parses it");
    let dfw = evs
        .iter()
        .find(|e| prop(e, "UID") == Some("feeds.dfw@rollcall"))
        .unwrap();
    assert!(
        prop(dfw, "DTSTART").unwrap().starts_with("20140925T210"),
        "{dfw:?}"
    );

    // reschedule and cancel an admin maintenance: SEQUENCE goes up, STATUS CANCELLED
    let r = c
        .post(format!("{u}/api/admin/maintenances"))
        .bearer_auth(&adm)
        .json(&json!({"title": "Network work in lon — a long title that needs folding in the calendar feed, surely", "region": "lon",
                      "starts_at": "2014-09-28T10:00:00Z", "ends_at": "2014-09-28T11:00:00Z"}))
        .sent().await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    let mid = m["id"].as_str().unwrap().to_string();
    let uid = format!("{mid}@rollcall");
    let ev_of = |ics: &str| {
        events(&check_ics_lines(ics))
            .into_iter()
            .find(|e| prop(e, "UID") == Some(uid.as_str()))
            .expect("the admin maintenance is in the feed")
    };
    let ics = get_text(&c, format!("{u}/maintenances.ics")).await;
    let ev = ev_of(&ics);
    assert_eq!(prop(&ev, "SEQUENCE"), Some("0"));
    let up = get_json(
        &c,
        &format!("{u}/api/v2/scheduled-maintenances/upcoming.json"),
    )
    .await;
    assert_eq!(up["scheduled_maintenances"][0]["id"], mid.as_str());
    assert_eq!(
        up["scheduled_maintenances"][0]["scheduled_for"],
        "2014-09-28T10:00:00.000Z"
    );
    let r = c
        .patch(format!("{u}/api/admin/maintenances/{mid}"))
        .bearer_auth(&adm)
        .json(&json!({"starts_at": "2014-09-28T12:00:00Z", "ends_at": "2014-09-28T13:30:00Z"}))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let ics = get_text(&c, format!("{u}/maintenances.ics")).await;
    let ev = ev_of(&ics);
    assert_eq!(prop(&ev, "SEQUENCE"), Some("1"));
    assert_eq!(prop(&ev, "DTSTART"), Some("20140928T120000Z"));
    assert_eq!(prop(&ev, "DTEND"), Some("20140928T133000Z"));
    let r = c
        .patch(format!("{u}/api/admin/maintenances/{mid}"))
        .bearer_auth(&adm)
        .json(&json!({"status": "cancelled"}))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let ics2 = get_text(&c, format!("{u}/maintenances.ics")).await;
    let ev = ev_of(&ics2);
    assert_eq!(prop(&ev, "SEQUENCE"), Some("2"));
    assert_eq!(prop(&ev, "STATUS"), Some("CANCELLED"));
    assert!(
        !ev.iter().any(|l| l == "BEGIN:VALARM"),
        "no reminder for a cancelled window"
    );
    let up = get_json(
        &c,
        &format!("{u}/api/v2/scheduled-maintenances/upcoming.json"),
    )
    .await;
    assert_eq!(
        up["scheduled_maintenances"],
        json!([]),
        "cancelled is not upcoming"
    );
    // strict clients know no `cancelled`: completed, with the cancellation as its last update
    let all = get_json(&c, &format!("{u}/api/v2/scheduled-maintenances.json")).await;
    let m = all["scheduled_maintenances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == mid.as_str())
        .expect("the cancelled maintenance is listed")
        .clone();
    assert_eq!(m["status"], "completed", "{m}");
    assert!(m["resolved_at"].is_string(), "{m}");
    let last = &m["incident_updates"][0];
    assert_eq!(last["status"], "completed");
    assert!(
        last["body"].as_str().unwrap().contains("cancelled"),
        "{last}"
    );
    assert_ne!(last["id"], m["id"]);

    // restart: same Atom ids, same UIDs and SEQUENCEs
    server.stop().await;
    let server = serve(&tmp.db()).await;
    let u2 = server.url.clone();
    let atom2 = get_text(&c, format!("{u2}/feed.atom")).await;
    let feed2 = atom_syndication::Feed::read_from(atom2.as_bytes()).unwrap();
    let ids2: BTreeSet<&str> = feed2.entries().iter().map(|e| e.id()).collect();
    assert!(ids.is_subset(&ids2), "entry ids survive a restart");
    assert_eq!(
        get_json(&c, &format!("{u2}/api/v2/status.json")).await["page"]["id"],
        pid.as_str(),
        "the page id survives a restart"
    );
    let ics3 = get_text(&c, format!("{u2}/maintenances.ics")).await;
    let seqs = |ics: &str| -> Vec<(String, String)> {
        events(&check_ics_lines(ics))
            .iter()
            .map(|e| {
                (
                    prop(e, "UID").unwrap().to_string(),
                    prop(e, "SEQUENCE").unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(seqs(&ics2), seqs(&ics3));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_follows_a_live_run() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("live");
    let db = tmp.db();
    // the store must exist before the server opens it: start the run, then serve it
    let run = rollcall_runtime::simfill::spawn(
        db.clone(),
        xsa(),
        rollcall_runtime::simfill::SimRun {
            run_id: "live".into(),
            scale: 2000.0,
            sim: sim(0.05),
            on_missing: Some(rollcall_core::OnMissing::Continue),
            limit: None,
        },
    );
    let t0 = Instant::now();
    while !db.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "store created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut o = ServeOptions::new(&db, "127.0.0.1:0".parse().unwrap());
    o.run = Some("live".into());
    o.poll = Duration::from_millis(100);
    let server = loop {
        match rollcall_web::start(ServeOptions {
            run: o.run.clone(),
            ..ServeOptions::new(&db, o.listen)
        })
        .await
        {
            Ok(s) => break s,
            Err(e) if t0.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let c = client();
    let u = server.url.clone();
    let mut versions = Vec::new();
    let mut update_counts = Vec::new();
    let mut seen_status: BTreeSet<String> = BTreeSet::new();
    let mut seen_maint: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let live = get_json(&c, &format!("{u}/api/live.json")).await;
        versions.push(live["version"].as_u64().unwrap());
        let ups = get_json(&c, &format!("{u}/api/updates.json")).await;
        update_counts.push(ups["updates"].as_array().unwrap().len());
        let sum = get_json(&c, &format!("{u}/api/v2/summary.json")).await;
        seen_status.insert(sum["status"]["indicator"].as_str().unwrap().to_string());
        for m in sum["scheduled_maintenances"].as_array().unwrap() {
            seen_maint.insert(format!(
                "{}:{}",
                m["id"].as_str().unwrap(),
                m["status"].as_str().unwrap()
            ));
        }
        if live["state"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run completes within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    run.join().unwrap().unwrap();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "versions only grow"
    );
    let distinct: BTreeSet<u64> = versions.iter().copied().collect();
    assert!(
        distinct.len() >= 5,
        "the view changed many times during the run: {versions:?}"
    );
    assert!(
        update_counts.first() < update_counts.last(),
        "the timeline grew: {update_counts:?}"
    );
    assert!(
        seen_status.contains("maintenance"),
        "maintenance in progress seen: {seen_status:?}"
    );
    assert!(
        seen_maint.contains("live.dfw:in_progress"),
        "{seen_maint:?}"
    );
    assert!(
        seen_maint.iter().any(|m| m.ends_with(":scheduled")),
        "{seen_maint:?}"
    );
    let all = get_json(&c, &format!("{u}/api/v2/scheduled-maintenances.json")).await;
    assert!(
        all["scheduled_maintenances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "completed")
    );
    server.stop().await;
}
