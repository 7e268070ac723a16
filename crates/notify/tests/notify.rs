//! Notifications against real components: a real HTTP sink (axum on loopback) whose
//! signatures are checked by Python's `hmac` (an independent implementation), a real
//! SMTP server (Debian's python3-aiosmtpd), and sim runs on the real runtime (SQLite
//! journal, scaled virtual clock) for the lead-time, progress, privacy and restart
//! guarantees.

use rollcall_core::engine::{Command, Engine, EngineConfig, NoticeKind, Output, Phase};
use rollcall_core::model::{Fleet, RegionIx};
use rollcall_core::plan::plan;
use rollcall_core::simworld::SimParams;
use rollcall_drivers::sim::SimDriver;
use rollcall_fleet::sources::FleetFiles;
use rollcall_fleet::{LoadOptions, load_str};
use rollcall_notify::render::{Note, NoteKind};
use rollcall_notify::{DeliveryStatus, Notifier, config, message_id};
use rollcall_runtime::{
    Clock, DriverKind, Lease, NewRunSpec, NoObserver, RunParams, RuntimeConfig, StoredRun, drive,
    from_records, start_run, wall_ms,
};
use rollcall_store::Store;
use rollcall_testkit::fleets::NOTIFY as FLEET;
use rollcall_testkit::smtp::{Smtpd, header};
use rollcall_testkit::webhook::{Hit, Shared, Sink};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn env(k: &str) -> Option<String> {
    (k == "TEST_SECRET").then(|| SECRET.to_string())
}

/// Verify Standard Webhooks signatures with Python's hmac/hashlib/base64: an
/// implementation independent of ours. Returns the number verified.
fn python_verify(hits: &[Hit], dir: &Path) -> usize {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let items: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| {
            serde_json::json!({"id": h.id, "ts": h.ts, "sig": h.sig, "body": b64.encode(&h.body)})
        })
        .collect();
    let f = dir.join("hits.json");
    std::fs::write(&f, serde_json::to_vec(&items).unwrap()).unwrap();
    let script = r#"
import base64, hashlib, hmac, json, sys, time
secret = sys.argv[2]
key = base64.b64decode(secret[len("whsec_"):])
ok = 0
for h in json.load(open(sys.argv[1])):
    body = base64.b64decode(h["body"])
    assert abs(time.time() - int(h["ts"])) < 300, "stale timestamp"
    signed = (h["id"] + "." + h["ts"] + ".").encode() + body
    want = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    sigs = [s.split(",", 1)[1] for s in h["sig"].split(" ") if s.startswith("v1,")]
    if any(hmac.compare_digest(want, s) for s in sigs):
        ok += 1
    else:
        print("bad signature for", h["id"], file=sys.stderr)
print(ok)
"#;
    let out = Proc::new("/usr/bin/python3")
        .args(["-c", script, f.to_str().unwrap(), SECRET])
        .output()
        .expect("/usr/bin/python3");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

// ---------------------------------------------------------------- fleets and runs

fn webhook_subscribers(sink: &Sink, remind: bool) -> String {
    let signed = "secret_env = \"TEST_SECRET\"";
    let sub = |id: &str, tenant: &str, components: &str, path: &str, last: &str| {
        format!(
            "\n[[subscriber]]\nid = \"{id}\"\n{tenant}components = [{components}]\nwebhook = \"{}\"\n{last}\n",
            sink.url(path)
        )
    };
    let remind = if remind {
        "remind_before = \"30m\""
    } else {
        ""
    };
    [
        format!("\n[notify]\ntimeout = \"2s\"\nattempts = 3\nbackoff = \"100ms\"\n{remind}\n"),
        sub("public-dfw", "", r#""dfw""#, "/public-dfw", signed),
        sub(
            "public-slack",
            "",
            r#""dfw", "ord""#,
            "/slack",
            "format = \"slack\"",
        ),
        sub(
            "acme",
            "tenant = \"acme\"\n",
            r#""acme-search", "acme-etcd""#,
            "/acme",
            signed,
        ),
        sub(
            "globex",
            "tenant = \"globex\"\n",
            r#""globex-cache", "ord""#,
            "/globex",
            signed,
        ),
    ]
    .concat()
}

struct SimRun {
    dir: tempfile::TempDir,
    /// A PostgreSQL database's URL instead of the SQLite file in `dir`.
    pg: Option<String>,
    text: String,
    id: String,
    scale: f64,
    sim: SimParams,
}

enum Phase1 {
    Completed,
    Crashed,
}

impl SimRun {
    fn new(text: String, scale: f64, sim: SimParams) -> SimRun {
        SimRun {
            dir: tempfile::tempdir().unwrap(),
            pg: None,
            text,
            id: "r-test".into(),
            scale,
            sim,
        }
    }
    /// The same run with its store in a fresh database of the test binary's PostgreSQL.
    fn on_postgres(mut self) -> SimRun {
        self.pg = Some(rollcall_testkit::pg::shared().fresh_db("notify"));
        self
    }
    /// The store: the SQLite file, or the PostgreSQL URL ([`Store::connect`] takes either).
    fn db(&self) -> PathBuf {
        match &self.pg {
            Some(url) => PathBuf::from(url),
            None => self.dir.path().join("rollcall.db"),
        }
    }
    /// The run as `rollcall run --driver sim` stores it, on a scaled clock.
    fn spec<'a>(&self, fleet: Arc<Fleet>, files: &'a FleetFiles) -> NewRunSpec<'a> {
        let params = RunParams {
            driver: DriverKind::Sim,
            clock: Clock::Scaled {
                wall_epoch_ms: wall_ms(),
                sim_epoch: fleet.maintenance.start,
                scale: self.scale,
            },
            sim: Some(self.sim.clone()),
            world: Some(self.dir.path().join("world.log")),
            start: Some(fleet.maintenance.start),
            on_missing: None,
            replan: None,
        };
        NewRunSpec {
            id: self.id.clone(),
            fleet_path: Path::new("fleet.toml"),
            fleet,
            files,
            params,
            supersedes: None,
            lease_ttl_ms: 3000,
        }
    }

    fn fleet(&self) -> Arc<Fleet> {
        Arc::new(
            load_str(
                "fleet.toml",
                &self.text,
                self.dir.path(),
                &LoadOptions { now: 0 },
            )
            .unwrap(),
        )
    }

    /// Run (or resume) the run. With `crash`, stop it abruptly (like a killed process:
    /// its runtime and every task in it are dropped) once that long has passed and the
    /// sink has been quiet for 150 ms. The quiet period keeps the crash out of the
    /// sub-millisecond window between a receiver's 2xx and the outbox commit, the one
    /// place a crash can cause a re-send (which carries the same webhook-id).
    fn go(&self, crash: Option<(Duration, Shared)>) -> Phase1 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            let store = Store::connect(self.db()).await.unwrap();
            let fleet = self.fleet();
            let p = plan(&fleet);
            let (engine, run) = match store.run(&self.id).await.unwrap() {
                Some(row) => {
                    let run = StoredRun::load(row).unwrap();
                    let recs = store.journal(&self.id).await.unwrap();
                    let outs = from_records(&self.id, &recs).unwrap();
                    let e =
                        Engine::restore(fleet.clone(), &p, EngineConfig::default(), &outs).unwrap();
                    (e, run)
                }
                None => {
                    let files = FleetFiles {
                        text: self.text.clone(),
                        imports: Default::default(),
                    };
                    let spec = self.spec(fleet.clone(), &files);
                    let (run, lease) = start_run(&store, spec).await.unwrap();
                    lease.release(&store).await.unwrap();
                    (Engine::new(fleet.clone(), &p, EngineConfig::default()), run)
                }
            };
            // one owner across the crash: the same process takes the run up again at once
            let fence = store
                .acquire_lease(&self.id, "test", wall_ms(), 3000)
                .await
                .unwrap()
                .expect("the run's lease");
            let lease = Lease { fence };
            let clock = run.params.clock;
            let driver = Arc::new(
                SimDriver::open(
                    fleet.clone(),
                    self.sim.clone(),
                    &self.dir.path().join("world.log"),
                )
                .unwrap(),
            );
            let w = rollcall_notify::wire(&store, &run, &p, driver, &env)
                .await
                .unwrap()
                .expect("subscribers configured");
            let cfg = RuntimeConfig {
                poll: Duration::from_millis(50),
                handle_ctrl_c: false,
                ..RuntimeConfig::default()
            };
            let mut obs = NoObserver;
            let run = drive(engine, &store, &lease, w.driver, clock, &cfg, &mut obs);
            match crash {
                Some((after, sink)) => {
                    let t0 = std::time::Instant::now();
                    let quiet = async {
                        loop {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            let last = sink.lock().unwrap().hits.last().map_or(0, |h| h.wall_ms);
                            if t0.elapsed() >= after && wall_ms() - last >= 150 {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        r = run => { r.unwrap(); }
                        _ = quiet => return Phase1::Crashed,
                    }
                }
                None => {
                    tokio::time::timeout(Duration::from_secs(120), run)
                        .await
                        .expect("the run finishes in time")
                        .unwrap();
                }
            }
            w.follower.finish(Duration::from_secs(60)).await.unwrap();
            Phase1::Completed
        });
        rt.shutdown_background();
        r
    }

    /// `f` on the run's store, on a runtime of its own (the run's has ended).
    fn with_store<T>(&self, f: impl AsyncFnOnce(&Store) -> T) -> T {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = Store::connect(self.db()).await.unwrap();
            f(&store).await
        })
    }

    fn clock(&self) -> Clock {
        self.with_store(async |store| {
            let row = store.run(&self.id).await.unwrap().unwrap();
            StoredRun::load(row).unwrap().params.clock
        })
    }

    /// The journal with sequence numbers.
    fn journal(&self) -> Vec<(i64, Output)> {
        self.with_store(async |store| {
            let recs = store.journal(&self.id).await.unwrap();
            let outs = from_records(&self.id, &recs).unwrap();
            recs.iter().map(|r| r.0).zip(outs).collect()
        })
    }

    fn summary(&self) -> rollcall_notify::Summary {
        self.with_store(async |store| rollcall_notify::summary(store, &self.id).await.unwrap())
    }
}

/// Run-clock seconds (fractional) at a wall time.
fn sim_at(clock: &Clock, wall: i64) -> f64 {
    match *clock {
        Clock::Scaled {
            wall_epoch_ms,
            sim_epoch,
            scale,
        } => sim_epoch as f64 + (wall - wall_epoch_ms) as f64 * scale / 1000.0,
        Clock::Wall => wall as f64 / 1000.0,
    }
}

struct Facts {
    /// region -> first host start (preflight), last final transition
    first_start: HashMap<RegionIx, i64>,
    last_final: HashMap<RegionIx, i64>,
    first_reboot: HashMap<RegionIx, i64>,
    /// (seq, notice)
    notices: Vec<(i64, rollcall_core::engine::Notice)>,
}

fn facts(fleet: &Fleet, journal: &[(i64, Output)]) -> Facts {
    let mut f = Facts {
        first_start: HashMap::new(),
        last_final: HashMap::new(),
        first_reboot: HashMap::new(),
        notices: Vec::new(),
    };
    for (seq, o) in journal {
        match o {
            Output::Transition(t) => {
                let r = fleet.hosts[t.host as usize].region;
                if t.to == Phase::Preflight {
                    f.first_start.entry(r).or_insert(t.at);
                }
                if t.to.is_final() {
                    f.last_final.insert(r, t.at);
                }
            }
            Output::Command {
                at,
                command: Command::Reboot { host, .. },
            } => {
                f.first_reboot
                    .entry(fleet.hosts[*host as usize].region)
                    .or_insert(*at);
            }
            Output::Notice(n) => f.notices.push((*seq, n.clone())),
            _ => {}
        }
    }
    f
}

fn body_json(h: &Hit) -> serde_json::Value {
    serde_json::from_slice(&h.body).unwrap()
}

fn kind_of(h: &Hit) -> String {
    let v = body_json(h);
    if let Some(k) = v["incident"]["rollcall"]["kind"].as_str() {
        return k.to_string();
    }
    // slack: infer from the text
    let t = v["text"].as_str().unwrap_or("").to_string();
    for (needle, k) in [
        ("Scheduled maintenance", "announcement"),
        ("Reminder", "reminder"),
        ("has started", "started"),
        ("is completed", "completed"),
        ("did not return", "host_missing"),
        ("is back", "host_returned"),
    ] {
        if t.contains(needle) {
            return k.to_string();
        }
    }
    "other".into()
}

/// Which subscribers (by id) get a notice about region/host in the fleet of FLEET.
fn expected_ids(
    fleet: &Fleet,
    text: &str,
    run: &str,
    f: &Facts,
    reminders: bool,
) -> HashSet<String> {
    let cfg = config::load("fleet.toml", text, fleet, &env).unwrap();
    let wants = |s: &config::Subscriber, r: RegionIx, h: Option<u32>| {
        rollcall_notify::render::wants(fleet, s, r, h)
    };
    let mut ids = HashSet::new();
    for s in &cfg.subscribers {
        for r in 0..fleet.regions.len() as RegionIx {
            if wants(s, r, None) {
                ids.insert(message_id(run, &format!("announce-{r}"), &s.id));
                if reminders {
                    ids.insert(message_id(run, &format!("remind-{r}"), &s.id));
                }
            }
        }
        for (seq, n) in &f.notices {
            if n.kind != NoticeKind::Scheduled && wants(s, n.region, n.host) {
                ids.insert(message_id(run, &format!("n-{seq}"), &s.id));
            }
        }
        // the clusters the plan refuses (globex-web: 2 nodes), told to their tenant only
        for e in rollcall_notify::render::exclusions(fleet, &plan(fleet)) {
            let c = &fleet.clusters[e.cluster as usize];
            let h = c.members[0];
            if c.tenant.is_some()
                && s.tenant == c.tenant
                && wants(s, fleet.hosts[h as usize].region, Some(h))
            {
                ids.insert(message_id(run, &format!("excluded-{}", e.cluster), &s.id));
            }
        }
    }
    ids
}

fn no_duplicates_and_all_delivered(sink: &Sink, expected: &HashSet<String>) {
    let ok = sink.ok_hits();
    let mut seen = HashSet::new();
    for h in &ok {
        assert!(
            seen.insert(h.id.clone()),
            "delivered twice: {} to {} ({})",
            h.id,
            h.path,
            kind_of(h)
        );
    }
    let missing: Vec<&String> = expected.difference(&seen).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    let extra: Vec<&String> = seen.difference(expected).collect();
    assert!(extra.is_empty(), "unexpected deliveries: {extra:?}");
}

fn privacy(sink: &Sink) {
    for h in sink.hits() {
        let body = String::from_utf8_lossy(&h.body).to_lowercase();
        match h.path.as_str() {
            "/acme" => assert!(!body.contains("globex"), "acme saw globex: {body}"),
            "/globex" => assert!(!body.contains("acme"), "globex saw acme: {body}"),
            _ => assert!(
                !body.contains("acme") && !body.contains("globex"),
                "the public view names a tenant's cluster or host: {body}"
            ),
        }
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn config_errors_point_at_file_line_and_field() {
    let fleet = load_str("fleet.toml", FLEET, Path::new("."), &LoadOptions { now: 0 }).unwrap();
    let bad = format!(
        "{FLEET}{}",
        r#"
[notify]
tls = "ssl"
attempts = 0
tz = "Mars/Olympus"
page_url = "ftp://status.example"

[[subscriber]]
tenant = "acme"
components = ["globex-cache", "nowhere"]
webhook = "https://hooks.example/a"
secret_env = "TEST_SECRET"

[[subscriber]]
components = ["acme-search"]
email = "ops@example.com"

[[subscriber]]
tenant = "initech"
components = ["dfw"]
webhook = "ftp://x"

[[subscriber]]
components = ["dfw"]
email = "a@example.com"
webhook = "https://hooks.example/b"

[[subscriber]]
components = ["ord"]
webhook = "https://hooks.example/c"
tz = "America/Chikago"
colour = "blue"
"#
    );
    // the whole-document parse stops at the unknown key first
    let e = config::load("fleet.toml", &bad, &fleet, &env).unwrap_err();
    let l = e.listing();
    assert!(l.contains("colour"), "{l}");
    assert!(l.contains("fleet.toml:"), "{l}");
    let bad = bad.replace("colour = \"blue\"\n", "");
    let e = config::load("fleet.toml", &bad, &fleet, &env).unwrap_err();
    let l = e.listing();
    let line_of = |needle: &str| bad.lines().position(|x| x.contains(needle)).unwrap() + 1;
    for (needle, field, what) in [
        ("tls = \"ssl\"", "notify.tls", "unknown `ssl`"),
        ("attempts = 0", "notify.attempts", "out of range"),
        (
            "components = [\"globex-cache\"",
            "subscriber[0].components[0]",
            "does not belong to tenant `acme`",
        ),
        (
            "components = [\"globex-cache\"",
            "subscriber[0].components[1]",
            "neither a region nor a cluster",
        ),
        (
            "components = [\"acme-search\"]",
            "subscriber[1].components[0]",
            "public region view only",
        ),
        (
            "tenant = \"initech\"",
            "subscriber[2].tenant",
            "no tenant `initech`",
        ),
        (
            "webhook = \"ftp://x\"",
            "subscriber[2].webhook",
            "only http",
        ),
        (
            "webhook = \"ftp://x\"",
            "subscriber[2].secret_env",
            "missing",
        ),
        (
            "webhook = \"https://hooks.example/b\"",
            "subscriber[3].webhook",
            "not both",
        ),
        (
            "webhook = \"https://hooks.example/c\"",
            "subscriber[4].secret_env",
            "missing",
        ),
        (
            "tz = \"Mars/Olympus\"",
            "notify.tz",
            "`Mars/Olympus` is not a known time zone",
        ),
        ("page_url = \"ftp:", "notify.page_url", "only http"),
        (
            "tz = \"America/Chikago\"",
            "subscriber[4].tz",
            "not a known time zone",
        ),
    ] {
        let want = format!("fleet.toml:{}:", line_of(needle));
        assert!(
            e.errors.iter().any(|x| x.location.starts_with(&want)
                && x.field == field
                && x.message.contains(what)),
            "expected {want} {field}: {what} in\n{l}"
        );
    }
    // email without SMTP settings
    assert!(l.contains("smtp_host"), "{l}");
    // a secret that is not whsec_
    let e = config::load(
        "fleet.toml",
        &format!(
            "{FLEET}\n[[subscriber]]\ncomponents = [\"dfw\"]\nwebhook = \"https://h.example/\"\nsecret_env = \"OTHER\"\n"
        ),
        &fleet,
        &|_| Some("hunter2".into()),
    )
    .unwrap_err();
    assert!(e.listing().contains("whsec_"), "{}", e.listing());
}

#[test]
fn webhooks_are_signed_retried_and_a_410_stops_them() {
    let sink = Sink::recording();
    {
        let mut s = sink.state.lock().unwrap();
        s.fail_first.insert("/flaky".into(), 2);
        s.gone.insert("/gone".into());
        s.redirect.insert("/moved".into());
        s.slow.insert("/slow".into());
    }
    let text = format!(
        "{FLEET}\n[notify]\nattempts = 3\nbackoff = \"50ms\"\ntimeout = \"400ms\"\npage_url = \"https://status.example\"\n{}",
        ["flaky", "gone", "moved", "ok", "slow"]
            .iter()
            .map(|p| format!(
                "[[subscriber]]\nid = \"{p}\"\ncomponents = [\"dfw\"]\nwebhook = \"{}\"\nsecret_env = \"TEST_SECRET\"\n",
                sink.url(&format!("/{p}"))
            ))
            .collect::<String>()
    );
    let dir = tempfile::tempdir().unwrap();
    let fleet =
        Arc::new(load_str("fleet.toml", &text, dir.path(), &LoadOptions { now: 0 }).unwrap());
    let cfg = config::load("fleet.toml", &text, &fleet, &env).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let n = Notifier::open(&store, "r1", fleet.clone(), cfg)
            .await
            .unwrap();
        let subs = n.recipients(0, None);
        assert_eq!(subs.len(), 5);
        let note = |k: &str, kind| Note {
            key: k.into(),
            kind,
            region: 0,
            host: None,
            at: fleet.maintenance.start,
            start: None,
            expected: None,
        };
        n.enqueue(&note("n-1", NoteKind::Started), &subs)
            .await
            .unwrap();
        // enqueueing again adds nothing
        n.enqueue(&note("n-1", NoteKind::Started), &subs)
            .await
            .unwrap();
        let r = n.deliver("n-1", Duration::ZERO).await.unwrap();
        assert_eq!((r.sent, r.gone, r.failed), (2, 1, 2), "{r:?}");
        assert!(
            r.errors
                .iter()
                .any(|(s, e)| s == "slow" && e == "timed out"),
            "{r:?}"
        );
        let hits = sink.hits();
        let count = |p: &str| hits.iter().filter(|h| h.path == p).count();
        assert_eq!(count("/flaky"), 3, "two 500s, then accepted");
        assert_eq!(count("/gone"), 1, "410 is not retried");
        assert_eq!(count("/moved"), 3, "a redirect is a failure, retried");
        assert_eq!(count("/ok"), 1);
        // a receiver slower than the timeout: each attempt counts as failed
        assert_eq!(sink.hits().iter().filter(|h| h.path == "/slow").count(), 3);
        sink.state.lock().unwrap().slow.clear();
        let hits = sink.hits();
        // retries keep the message id; the timestamps are fresh
        let flaky: Vec<&Hit> = hits.iter().filter(|h| h.path == "/flaky").collect();
        assert!(flaky.iter().all(|h| h.id == flaky[0].id));
        assert_eq!(flaky[0].id, message_id("r1", "n-1", "flaky"));
        // a second round delivers only what is left: the redirecting one (fails again)
        // and the slow one (now fast)
        let r = n.deliver("n-1", Duration::ZERO).await.unwrap();
        assert_eq!((r.sent, r.failed), (1, 1));
        assert_eq!(sink.hits().len(), hits.len() + 4);
        // the unsubscribed one gets nothing more
        n.enqueue(&note("n-2", NoteKind::Completed), &subs)
            .await
            .unwrap();
        let r = n.deliver("n-2", Duration::ZERO).await.unwrap();
        assert_eq!((r.sent, r.gone), (3, 1));
        assert_eq!(sink.hits().iter().filter(|h| h.path == "/gone").count(), 1);
        let s = rollcall_notify::summary(&store, "r1").await.unwrap();
        assert_eq!(s.count(None, DeliveryStatus::Sent), 6);
        assert_eq!(s.count(None, DeliveryStatus::Gone), 2);
        assert_eq!(s.count(None, DeliveryStatus::Pending), 2);
        assert!(
            s.undelivered.iter().any(
                |u| u.subscriber == "moved" && u.last_error.as_deref().unwrap().contains("302")
            )
        );
        // each body's `meta.unsubscribe` is its subscriber's own link; following /ok's
        // stops the next notice to it
        let link = |p: &str| {
            let hits = sink.hits();
            let h = hits.iter().find(|h| h.path == p).unwrap();
            body_json(h)["meta"]["unsubscribe"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let ok = link("/ok");
        assert_ne!(ok, link("/flaky"));
        let token = ok
            .strip_prefix("https://status.example/unsubscribe/")
            .unwrap_or_else(|| panic!("{ok}"));
        let who = rollcall_notify::unsubscribe::unsubscribe(&store, token)
            .await
            .unwrap();
        assert_eq!(who.as_deref(), Some("ok"));
        let to_ok = sink.hits().iter().filter(|h| h.path == "/ok").count();
        n.enqueue(&note("n-3", NoteKind::Completed), &subs)
            .await
            .unwrap();
        let r = n.deliver("n-3", Duration::ZERO).await.unwrap();
        assert_eq!((r.sent, r.gone, r.failed), (2, 2, 1), "{r:?}");
        assert_eq!(
            sink.hits().iter().filter(|h| h.path == "/ok").count(),
            to_ok
        );
    });
    // every request carried a valid signature (checked by Python)
    let all = sink.hits();
    assert_eq!(python_verify(&all, dir.path()), all.len());
    // and the body is the Statuspage subscriber webhook shape
    let b = body_json(&all[0]);
    assert_eq!(b["incident"]["impact"], "maintenance");
    assert_eq!(b["incident"]["status"], "in_progress");
    assert!(b["meta"]["generated_at"].is_string());
    assert!(b["page"]["id"].is_string());
}

fn lead_and_progress_checks(run: &SimRun, sink: &Sink) -> Facts {
    let fleet = run.fleet();
    let journal = run.journal();
    let f = facts(&fleet, &journal);
    let clock = run.clock();
    let lead = fleet.maintenance.notice_lead as f64;
    let ok = sink.ok_hits();
    for r in 0..fleet.regions.len() as RegionIx {
        let start = *f.first_start.get(&r).expect("region started");
        let reboot = *f.first_reboot.get(&r).expect("region rebooted");
        let ann: Vec<&Hit> = ok
            .iter()
            .filter(|h| {
                kind_of(h) == "announcement"
                    && String::from_utf8_lossy(&h.body)
                        .contains(&format!("region {}", fleet.regions[r as usize]))
            })
            .collect();
        assert!(!ann.is_empty(), "region {r} announcement delivered");
        for h in &ann {
            let told = sim_at(&clock, h.wall_ms);
            assert!(
                start as f64 >= told + lead && reboot as f64 >= told + lead,
                "region {r}: {} told at {told:.1}, started {start}, first reboot {reboot}",
                h.path
            );
        }
        // started: the notice is stamped with the region's first start
        let started: Vec<&(i64, rollcall_core::engine::Notice)> = f
            .notices
            .iter()
            .filter(|(_, n)| n.region == r && n.kind == NoticeKind::Started)
            .collect();
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].1.at, start);
        let completed: Vec<&(i64, rollcall_core::engine::Notice)> = f
            .notices
            .iter()
            .filter(|(_, n)| n.region == r && n.kind == NoticeKind::Completed)
            .collect();
        assert_eq!(completed.len(), 1);
        assert_eq!(
            completed[0].1.at, f.last_final[&r],
            "completed when the last host is done"
        );
    }
    f
}

#[test]
fn a_sim_run_announces_at_least_the_lead_ahead_and_reports_progress() {
    let sink = Sink::recording();
    let text = format!("{FLEET}{}", webhook_subscribers(&sink, true));
    let run = SimRun::new(text, 1500.0, SimParams::default());
    assert!(matches!(run.go(None), Phase1::Completed));
    let f = lead_and_progress_checks(&run, &sink);
    let fleet = run.fleet();
    let expected = expected_ids(&fleet, &run.text, &run.id, &f, true);
    no_duplicates_and_all_delivered(&sink, &expected);
    privacy(&sink);
    // reminders: once per subscriber and region, before the region started
    let clock = run.clock();
    for h in sink.ok_hits().iter().filter(|h| kind_of(h) == "reminder") {
        let r = if String::from_utf8_lossy(&h.body).contains("region dfw") {
            0
        } else {
            1
        };
        assert!(sim_at(&clock, h.wall_ms) < f.first_start[&r] as f64);
    }
    // serial regions: ord's announcement also says when the plan expects it to start
    let ord = sink
        .ok_hits()
        .into_iter()
        .find(|h| {
            h.path == "/globex"
                && kind_of(h) == "announcement"
                && String::from_utf8_lossy(&h.body).contains("region ord")
        })
        .unwrap();
    let text = String::from_utf8_lossy(&ord.body).to_string();
    assert!(
        text.contains("region ord") && text.contains("expected around"),
        "{text}"
    );
    let signed: Vec<Hit> = sink
        .hits()
        .into_iter()
        .filter(|h| h.path != "/slack")
        .collect();
    assert_eq!(python_verify(&signed, run.dir.path()), signed.len());
    // slack gets {"text": ...}
    let slack = sink
        .ok_hits()
        .into_iter()
        .find(|h| h.path == "/slack")
        .unwrap();
    assert!(
        body_json(&slack)["text"]
            .as_str()
            .unwrap()
            .contains("[testfleet]")
    );
    let s = run.summary();
    assert_eq!(s.count(None, DeliveryStatus::Sent) as usize, expected.len());
    assert_eq!(s.count(None, DeliveryStatus::Pending), 0);
}

#[test]
fn a_sink_that_is_down_moves_the_region_start_later_and_never_unannounced() {
    let sink = Sink::recording();
    // everything answers 503 for the first 4 s (= 1h40m of run time at 1500x)
    sink.state.lock().unwrap().down_until_ms = wall_ms() + 4000;
    let text = format!("{FLEET}{}", webhook_subscribers(&sink, false));
    let run = SimRun::new(text, 1500.0, SimParams::default());
    assert!(matches!(run.go(None), Phase1::Completed));
    let f = lead_and_progress_checks(&run, &sink);
    let fleet = run.fleet();
    let clock = run.clock();
    let up = sim_at(&clock, sink.state.lock().unwrap().down_until_ms);
    let m = &fleet.maintenance;
    assert!(
        f.first_start[&0] as f64 >= up + m.notice_lead as f64,
        "dfw started at {} though its announcement could only go out after {up:.0}",
        f.first_start[&0]
    );
    assert!(
        f.first_start[&0] > m.start + m.notice_lead + 3600,
        "the start moved later"
    );
    assert!(
        sink.hits().iter().any(|h| h.status == 503),
        "the sink was really down"
    );
    let expected = expected_ids(&fleet, &run.text, &run.id, &f, false);
    no_duplicates_and_all_delivered(&sink, &expected);
}

#[test]
fn a_missing_host_is_told_to_its_tenant_and_the_region_only() {
    let sink = Sink::recording();
    let text = format!("{FLEET}{}", webhook_subscribers(&sink, false));
    let sim = SimParams {
        missing_rate: 1.0,
        missing_for: Some(40 * 60),
        ..SimParams::default()
    };
    let run = SimRun::new(text, 2000.0, sim);
    assert!(matches!(run.go(None), Phase1::Completed));
    let f = lead_and_progress_checks(&run, &sink);
    let fleet = run.fleet();
    let missing: Vec<&rollcall_core::engine::Notice> = f
        .notices
        .iter()
        .map(|x| &x.1)
        .filter(|n| n.kind == NoticeKind::HostMissing)
        .collect();
    assert!(!missing.is_empty(), "hosts went missing");
    let ok = sink.ok_hits();
    for n in &missing {
        let host = &fleet.hosts[n.host.unwrap() as usize].id;
        let owner = if host.contains("acme") {
            "/acme"
        } else {
            "/globex"
        };
        // the owning tenant is told, by host name
        assert!(
            ok.iter().any(|h| h.path == owner
                && kind_of(h) == "host_missing"
                && String::from_utf8_lossy(&h.body).contains(host.as_str())),
            "{owner} told that {host} did not return"
        );
    }
    let public: Vec<&Hit> = ok
        .iter()
        .filter(|h| h.path == "/public-dfw" && kind_of(h) == "host_missing")
        .collect();
    assert!(
        !public.is_empty(),
        "the public dfw view hears of missing hosts"
    );
    let expected = expected_ids(&fleet, &run.text, &run.id, &f, false);
    no_duplicates_and_all_delivered(&sink, &expected);
    privacy(&sink);
}

#[test]
fn a_crash_and_restart_neither_duplicates_nor_loses_notices() {
    crash_and_restart(false);
}

/// The same with the journal and the outbox in PostgreSQL.
#[test]
fn a_crash_and_restart_neither_duplicates_nor_loses_notices_on_postgres() {
    crash_and_restart(true);
}

fn crash_and_restart(postgres: bool) {
    let sink = Sink::recording();
    let text = format!("{FLEET}{}", webhook_subscribers(&sink, true));
    let mut run = SimRun::new(text, 1500.0, SimParams::default());
    if postgres {
        run = run.on_postgres();
    }
    // about 1h50m of run time = ~4.4 s: crash in dfw's maintenance
    assert!(matches!(
        run.go(Some((Duration::from_millis(3000), sink.state.clone()))),
        Phase1::Crashed
    ));
    let before = sink.ok_hits().len();
    assert!(before > 0, "something was delivered before the crash");
    let journal = run.journal();
    assert!(
        !journal
            .iter()
            .any(|(_, o)| matches!(o, Output::Notice(n) if n.kind == NoticeKind::Completed && n.region == 1)),
        "crashed before the end"
    );
    assert!(matches!(run.go(None), Phase1::Completed));
    assert!(sink.ok_hits().len() > before);
    let f = lead_and_progress_checks(&run, &sink);
    let fleet = run.fleet();
    let expected = expected_ids(&fleet, &run.text, &run.id, &f, true);
    no_duplicates_and_all_delivered(&sink, &expected);
}

// ---------------------------------------------------------------- SMTP

#[test]
fn mail_for_a_sim_run_arrives_in_a_real_smtp_server() {
    let tmp = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(tmp.path());
    let text = format!(
        r#"{FLEET}
[notify]
smtp_host = "127.0.0.1"
smtp_port = {}
tls = "none"
from = "Maintenance <maint@provider.example>"
timeout = "5s"

[[subscriber]]
tenant = "acme"
components = ["acme-search"]
email = "ops@acme.example"

[[subscriber]]
components = ["ord"]
email = "status@public.example"
"#,
        smtpd.port
    );
    let run = SimRun::new(text, 1500.0, SimParams::default());
    assert!(matches!(run.go(None), Phase1::Completed));
    let mails = smtpd.mails();
    let to = |addr: &str| -> Vec<&String> {
        mails
            .iter()
            .filter(|m| header(m, "To").is_some_and(|t| t.contains(addr)))
            .collect()
    };
    let acme = to("ops@acme.example");
    let public = to("status@public.example");
    // subjects, with the announcement's time cut off
    let subjects = |l: &[&String]| -> Vec<String> {
        let mut v: Vec<String> = l
            .iter()
            .map(|m| {
                let s = header(m, "Subject").unwrap();
                assert!(!s.contains(": reboots from") || s.ends_with(" UTC"), "{s}");
                s.split(": reboots from").next().unwrap().to_string()
            })
            .collect();
        v.sort();
        v
    };
    // acme: dfw only (its cluster), announced, started, completed
    assert_eq!(
        subjects(&acme),
        vec![
            "[testfleet] Maintenance in dfw has started",
            "[testfleet] Maintenance in dfw is completed",
            "[testfleet] Scheduled maintenance in dfw",
        ],
        "{acme:#?}"
    );
    assert_eq!(subjects(&public).len(), 3, "{public:#?}");
    assert!(subjects(&public).iter().all(|s| s.contains(" ord")));
    for m in &acme {
        assert!(m.contains("acme-search"), "{m}");
        assert!(!m.to_lowercase().contains("globex"), "{m}");
        assert_eq!(
            header(m, "From").as_deref(),
            Some("Maintenance <maint@provider.example>")
        );
        assert!(header(m, "Message-ID").is_some_and(|id| id.starts_with("<msg_")));
    }
    for m in &public {
        assert!(
            !m.to_lowercase().contains("acme") && !m.to_lowercase().contains("globex"),
            "{m}"
        );
    }
    let s = run.summary();
    assert_eq!(s.count(None, DeliveryStatus::Sent), 6);
}

/// What an ended run could not deliver is delivered by `flush` (used by `rollcall resume`
/// on a completed run), once.
#[test]
fn undelivered_notices_of_an_ended_run_are_flushed_once() {
    let sink = Sink::recording();
    let text = format!(
        "{FLEET}\n[notify]\nattempts = 2\nbackoff = \"20ms\"\n[[subscriber]]\nid = \"p\"\ncomponents = [\"dfw\"]\nwebhook = \"{}\"\nsecret_env = \"TEST_SECRET\"\n",
        sink.url("/p")
    );
    let dir = tempfile::tempdir().unwrap();
    let fleet =
        Arc::new(load_str("fleet.toml", &text, dir.path(), &LoadOptions { now: 0 }).unwrap());
    let cfg = config::load("fleet.toml", &text, &fleet, &env).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let n = Notifier::open(&store, "r1", fleet.clone(), cfg)
            .await
            .unwrap();
        sink.state.lock().unwrap().down_until_ms = i64::MAX;
        let note = Note {
            key: "n-7".into(),
            kind: NoteKind::Completed,
            region: 0,
            host: None,
            at: fleet.maintenance.start,
            start: None,
            expected: None,
        };
        n.enqueue(&note, &n.recipients(0, None)).await.unwrap();
        let r = n.deliver("n-7", Duration::from_secs(30)).await.unwrap();
        assert_eq!((r.sent, r.failed, r.attempts), (0, 1, 2));
        sink.state.lock().unwrap().down_until_ms = 0;
        let p = plan(&fleet);
        let files = FleetFiles {
            text: text.clone(),
            imports: Default::default(),
        };
        let params = RunParams {
            driver: DriverKind::Ssh,
            clock: Clock::Wall,
            sim: None,
            world: None,
            start: Some(fleet.maintenance.start),
            on_missing: None,
            replan: None,
        };
        let spec = NewRunSpec {
            id: "r1".into(),
            fleet_path: Path::new("fleet.toml"),
            fleet: fleet.clone(),
            files: &files,
            params,
            supersedes: None,
            lease_ttl_ms: 3000,
        };
        let (run, _lease) = start_run(&store, spec).await.unwrap();
        for _ in 0..2 {
            let s = rollcall_notify::flush(&store, &run, &p, &env)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (
                    s.count(None, DeliveryStatus::Sent),
                    s.count(None, DeliveryStatus::Pending)
                ),
                (1, 0)
            );
        }
    });
    assert_eq!(sink.ok_hits().len(), 1, "delivered once");
    assert_eq!(sink.hits().len(), 3);
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Proc::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rollcall test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

#[test]
fn starttls_with_a_private_ca_delivers_and_unverified_servers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(tmp.path());
    // aiosmtpd requires STARTTLS before MAIL when given --tlscert
    let smtpd = Smtpd::start_with(
        tmp.path(),
        &[
            "--tlscert",
            cert.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
        ],
    );
    let fleet = load_str("fleet.toml", FLEET, tmp.path(), &LoadOptions { now: 0 }).unwrap();
    let fleet = Arc::new(fleet);
    let deliver = |tls: &str, ca: Option<&Path>, to: &str| -> rollcall_notify::Round {
        let text = format!(
            "{FLEET}\n[notify]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"{tls}\"\n{}from = \"maint@provider.example\"\nattempts = 1\ntimeout = \"5s\"\n[[subscriber]]\ncomponents = [\"dfw\"]\nemail = \"{to}\"\n",
            smtpd.port,
            ca.map(|c| format!("tls_ca = \"{}\"\n", c.display()))
                .unwrap_or_default()
        );
        let cfg = config::load("fleet.toml", &text, &fleet, &env).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = Store::open(&tmp.path().join(format!("{to}.db")))
                .await
                .unwrap();
            let n = Notifier::open(&store, "r1", fleet.clone(), cfg)
                .await
                .unwrap();
            let note = Note {
                key: "n-1".into(),
                kind: NoteKind::Started,
                region: 0,
                host: None,
                at: fleet.maintenance.start,
                start: None,
                expected: None,
            };
            n.enqueue(&note, &n.recipients(0, None)).await.unwrap();
            n.deliver("n-1", Duration::ZERO).await.unwrap()
        })
    };
    let r = deliver("starttls", Some(&ca), "tls@example.com");
    assert_eq!((r.sent, r.failed), (1, 0), "{r:?}");
    // without the CA the server's certificate is not trusted: not delivered
    let r = deliver("starttls", None, "untrusted@example.com");
    assert_eq!((r.sent, r.failed), (0, 1), "{r:?}");
    // a server that requires TLS refuses plain SMTP
    let r = deliver("none", None, "plain@example.com");
    assert_eq!((r.sent, r.failed), (0, 1), "{r:?}");
    let mails = smtpd.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(header(&mails[0], "To").as_deref(), Some("tls@example.com"));
}

/// `escalate_after`, `escalate_rounds` and `operator = true`: read, and refused at their
/// line when wrong (an operator subscriber names no tenant and no components).
#[test]
fn escalation_settings_and_operator_subscribers_are_checked() {
    let fleet = load_str("fleet.toml", FLEET, Path::new("."), &LoadOptions { now: 0 }).unwrap();
    let good = format!(
        "{FLEET}\n[notify]\nescalate_after = \"20m\"\nescalate_rounds = 7\n\
         [[subscriber]]\nid = \"noc\"\noperator = true\nwebhook = \"https://noc.example/\"\nformat = \"slack\"\n"
    );
    let cfg = config::load("fleet.toml", &good, &fleet, &env).unwrap();
    assert_eq!(cfg.settings.escalate_after, Some(1200));
    assert_eq!(cfg.settings.escalate_rounds, Some(7));
    assert!(cfg.subscribers[0].operator);
    assert!(cfg.subscribers[0].regions.is_empty() && cfg.subscribers[0].clusters.is_empty());
    // the default escalates after 15 minutes; "never" turns it off
    let cfg = config::load("fleet.toml", FLEET, &fleet, &env).unwrap();
    assert_eq!(cfg.settings.escalate_after, Some(15 * 60));
    let never = format!("{FLEET}\n[notify]\nescalate_after = \"never\"\n");
    let cfg = config::load("fleet.toml", &never, &fleet, &env).unwrap();
    assert_eq!(cfg.settings.escalate_after, None);
    let bad = format!(
        "{FLEET}\n[notify]\nescalate_after = \"soon\"\nescalate_rounds = 0\n\
         [[subscriber]]\nid = \"noc\"\noperator = true\ntenant = \"acme\"\ncomponents = [\"dfw\"]\n\
         webhook = \"https://noc.example/\"\nformat = \"slack\"\n"
    );
    let e = config::load("fleet.toml", &bad, &fleet, &env).unwrap_err();
    let l = e.listing();
    // the last line with it: the fleet above has tenants and components too
    let lines: Vec<&str> = bad.lines().collect();
    let line_of = |needle: &str| lines.iter().rposition(|x| x.contains(needle)).unwrap() + 1;
    for (needle, field, what) in [
        ("escalate_after", "notify.escalate_after", "never"),
        ("escalate_rounds", "notify.escalate_rounds", "out of range"),
        (
            "tenant = \"acme\"",
            "subscriber[0].tenant",
            "operator notices only",
        ),
        (
            "components = [\"dfw\"]",
            "subscriber[0].components",
            "operator notices only",
        ),
    ] {
        let want = format!("fleet.toml:{}:", line_of(needle));
        assert!(
            e.errors.iter().any(|x| x.location.starts_with(&want)
                && x.field == field
                && x.message.contains(what)),
            "expected {want} {field}: {what} in\n{l}"
        );
    }
}
