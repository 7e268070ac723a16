//! End-to-end: the real `rollcall` binary rolls the testbed (network namespaces with
//! sshd, a 6-node Redis Cluster and a 3-member etcd cluster; `testbed/testbed`) over
//! SSH while a client writes to both clusters. Needs root; tests run one at a time.
//!
//! Figures (wall time, plan prediction, writer errors) are printed and written to
//! `target/testbed-figures/<test>.json`; docs/drivers.md quotes them.

use rollcall_core::engine::Command;
use rollcall_drivers::Driver;
use rollcall_drivers::etcd::EtcdHttp;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollcall_testkit::testbed::*;

const RC: rollcall_testkit::Bin = rollcall_testkit::bin!();

static SERIAL: Mutex<()> = Mutex::new(());

/// `rollcall run FLEET --driver ssh --json --db <testbed>/journal.db`, to its end.
fn ssh_run(tb: &Testbed, fleet: &Path) -> std::process::Output {
    RC.cmd()
        .arg("run")
        .arg(fleet)
        .args(["--driver", "ssh", "--json", "--db"])
        .arg(tb.dir.join("journal.db"))
        .output()
        .unwrap()
}

/// One testbed at a time: the lock and a fresh testbed, or `None` (skip) without root.
fn serial_testbed(name: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Testbed)> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip_unless_root() {
        return None;
    }
    Some((g, Testbed::up(name)))
}

/// The testbed's fleet file (`fleet.toml`: redis + etcd, `on_missing`, `extra` appended).
fn fleet_file(tb: &Testbed, extra: &str, on_missing: &str) -> PathBuf {
    roll_fleet(tb, "fleet", extra, on_missing)
}

// ------------------------------------------------------------------ the writer

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Tally {
    acked: u64,
    errors: u64,
    /// Longest time from a failed attempt to the next success (ms).
    max_stall_ms: u64,
    /// Acknowledged writes not readable (or wrong) afterwards.
    lost: u64,
    /// The first few error messages.
    samples: Vec<String>,
}

struct Writer {
    stop: Arc<AtomicBool>,
    redis: std::thread::JoinHandle<Tally>,
    etcd: std::thread::JoinHandle<Tally>,
    started: Arc<AtomicU64>,
}

fn note(t: &mut Tally, e: String, first_fail: &mut Option<Instant>) {
    t.errors += 1;
    if t.samples.len() < 5 {
        t.samples.push(e);
    }
    first_fail.get_or_insert_with(Instant::now);
}

fn ok(t: &mut Tally, first_fail: &mut Option<Instant>) {
    t.acked += 1;
    if let Some(f) = first_fail.take() {
        t.max_stall_ms = t.max_stall_ms.max(f.elapsed().as_millis() as u64);
    }
}

impl Writer {
    /// Sequential keys to Redis Cluster (a cluster client that follows MOVED/ASK, no
    /// retries of its own) and etcd; a failed write is counted and retried after 100 ms
    /// until acknowledged.
    fn start(tb: &Testbed) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicU64::new(0));
        let nodes: Vec<String> = tb
            .env("TESTBED_REDIS_NODES")
            .split(',')
            .map(|n| format!("redis://{n}/"))
            .collect();
        let eps: Vec<String> = tb
            .env("TESTBED_ETCD_ENDPOINTS")
            .split(',')
            .map(str::to_string)
            .collect();
        let (s1, st1) = (stop.clone(), started.clone());
        let redis = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = redis::cluster::ClusterClient::builder(nodes.clone())
                    .retries(0)
                    .connection_timeout(Duration::from_secs(1))
                    .response_timeout(Duration::from_secs(1))
                    .build()
                    .unwrap();
                let mut con = client.get_async_connection().await.unwrap();
                let mut t = Tally::default();
                let mut first_fail = None;
                let mut n = 0u64;
                st1.fetch_add(1, Ordering::SeqCst);
                while !s1.load(Ordering::SeqCst) {
                    let r: redis::RedisResult<()> = redis::cmd("SET")
                        .arg(format!("w:{n}"))
                        .arg(n)
                        .query_async(&mut con)
                        .await;
                    match r {
                        Ok(()) => {
                            ok(&mut t, &mut first_fail);
                            n += 1;
                        }
                        Err(e) => {
                            note(&mut t, e.to_string(), &mut first_fail);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                // every acknowledged write is readable (reads retried: the cluster settles)
                for k in 0..n {
                    let mut got = None;
                    for _ in 0..50 {
                        match redis::cmd("GET")
                            .arg(format!("w:{k}"))
                            .query_async::<Option<u64>>(&mut con)
                            .await
                        {
                            Ok(v) => {
                                got = Some(v);
                                break;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                    if got != Some(Some(k)) {
                        t.lost += 1;
                    }
                }
                t
            })
        });
        let (s2, st2) = (stop.clone(), started.clone());
        let etcd = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // one client per endpoint; a failed request moves to the next endpoint,
                // as a balancing client does
                let cs: Vec<EtcdHttp> = eps
                    .iter()
                    .map(|e| EtcdHttp::new(e, Duration::from_secs(1)).unwrap())
                    .collect();
                let mut at = 0usize;
                let mut t = Tally::default();
                let mut first_fail = None;
                let mut n = 0u64;
                st2.fetch_add(1, Ordering::SeqCst);
                while !s2.load(Ordering::SeqCst) {
                    match cs[at]
                        .put(&format!("w/{n}"), n.to_string().as_bytes())
                        .await
                    {
                        Ok(()) => {
                            ok(&mut t, &mut first_fail);
                            n += 1;
                        }
                        Err(e) => {
                            note(&mut t, e.to_string(), &mut first_fail);
                            at = (at + 1) % cs.len();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                for k in 0..n {
                    let mut good = false;
                    for i in 0..50 {
                        match cs[(at + i) % cs.len()].read(&format!("w/{k}")).await {
                            Ok(v) => {
                                good = v.as_deref() == Some(k.to_string().as_bytes());
                                break;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                    if !good {
                        t.lost += 1;
                    }
                }
                t
            })
        });
        let w = Writer {
            stop,
            redis,
            etcd,
            started,
        };
        let t = Instant::now();
        while w.started.load(Ordering::SeqCst) < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "writer did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // some writes before anything happens
        std::thread::sleep(Duration::from_secs(2));
        w
    }
    fn finish(self) -> (Tally, Tally) {
        std::thread::sleep(Duration::from_secs(2));
        self.stop.store(true, Ordering::SeqCst);
        (self.redis.join().unwrap(), self.etcd.join().unwrap())
    }
}

// ------------------------------------------------------------------ helpers

fn plan_makespan(fleet: &Path) -> i64 {
    let out = RC
        .cmd()
        .arg("plan")
        .arg(fleet)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["makespan_s"].as_i64().unwrap()
}

// ------------------------------------------------------------------ tests

/// (a) rollcall rolls the whole testbed while a client writes to both clusters.
#[test]
fn a_rollcall_rolls_the_testbed_without_losing_writes() {
    let Some((_g, tb)) = serial_testbed("roll") else {
        return;
    };
    let fleet = fleet_file(&tb, "", "pause");
    let predicted = plan_makespan(&fleet);
    let before = tb.boot_ids();
    let w = Writer::start(&tb);
    let t0 = Instant::now();
    let out = ssh_run(&tb, &fleet);
    let wall = t0.elapsed();
    let (r, e) = w.finish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = journal(&out.stdout);
    let healthy: Vec<&str> = j
        .iter()
        .filter(|r| r["type"] == "transition" && r["to"] == "healthy")
        .filter_map(|r| r["host_id"].as_str())
        .collect();
    assert_eq!(
        healthy.len(),
        12,
        "every host healthy: {healthy:?}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        j.iter()
            .any(|r| r["type"] == "state" && r["state"]["state"] == "completed")
    );
    // every host really rebooted
    let after = tb.boot_ids();
    for (h, b) in &before {
        assert_ne!(after.get(h), Some(b), "{h} kept its boot id");
    }
    // budgets: one member of each cluster out at a time
    assert_eq!(max_out(&j, &["r1", "r2", "r3", "r4", "r5", "r6"]), 1);
    assert_eq!(max_out(&j, &["e1", "e2", "e3"]), 1);
    figures(
        "a_rollcall",
        serde_json::json!({
            "wall_s": wall.as_secs_f64(),
            "plan_makespan_s": predicted,
            "redis": r,
            "etcd": e,
        }),
    );
    assert_eq!(r.lost, 0, "acknowledged Redis writes lost: {r:?}");
    assert_eq!(e.lost, 0, "acknowledged etcd writes lost: {e:?}");
    assert!(
        r.acked > 100 && e.acked > 100,
        "the writer made progress: {r:?} {e:?}"
    );
    // only brief failover retries: no write waited more than 2 s
    assert!(r.max_stall_ms <= 2000, "Redis writes stalled: {r:?}");
    // (the etcd client may first try the member that is down: up to its 1 s connect
    // timeout per attempt before it uses another)
    assert!(e.max_stall_ms <= 3000, "etcd writes stalled: {e:?}");
}

/// (b) The same hosts rebooted naively: one after another through the same SSH
/// driver, no failover or leader move, a fixed wait instead of gates.
#[test]
fn b_naive_sequential_reboots_for_comparison() {
    let Some((_g, tb)) = serial_testbed("naive") else {
        return;
    };
    let fleet_path = fleet_file(&tb, "", "pause");
    let text = std::fs::read_to_string(&fleet_path).unwrap();
    let fleet = Arc::new(
        rollcall_fleet::load_str(
            "fleet.toml",
            &text,
            &tb.dir,
            &rollcall_fleet::LoadOptions::default(),
        )
        .unwrap(),
    );
    let cfg =
        rollcall_drivers::config::RemoteConfig::load("fleet.toml", &text, &tb.dir, &fleet).unwrap();
    let drv = rollcall_drivers::remote_driver("ssh", fleet.clone(), cfg).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let w = Writer::start(&tb);
    let t0 = Instant::now();
    let order = ["r1", "r2", "r3", "r4", "r5", "r6", "e1", "e2", "e3"];
    for id in order {
        let h = fleet.hosts.iter().position(|x| x.id == id).unwrap() as u32;
        let ev = rt.block_on(drv.execute(Command::Probe { host: h }, 0));
        let rollcall_core::engine::Event::Probed {
            boot_id: Some(b), ..
        } = ev
        else {
            panic!("{id}: {ev:?}")
        };
        rt.block_on(drv.execute(
            Command::Reboot {
                host: h,
                boot_id: b,
                attempt: 1,
            },
            0,
        ));
        // a fixed wait: reboot delay (3 s) plus a little
        std::thread::sleep(Duration::from_secs(8));
    }
    let wall = t0.elapsed();
    let (r, e) = w.finish();
    figures(
        "b_naive",
        serde_json::json!({ "wall_s": wall.as_secs_f64(), "redis": r, "etcd": e }),
    );
    // what goes wrong without preparation: the writer sees failures
    assert!(
        r.errors > 0,
        "naive reboots of Redis masters should disturb the writer: {r:?}"
    );
}

/// (c) One host never comes back: it is marked missing, the rest of its cluster is
/// not touched, the policy (continue) lets the other clusters finish, and the notice says so.
#[test]
fn c_a_host_that_never_returns_is_missing_and_its_cluster_waits() {
    let Some((_g, tb)) = serial_testbed("missing") else {
        return;
    };
    let fleet = fleet_file(&tb, "", "continue");
    tb.cmd(&["set", "r1", "never"]);
    let before = tb.boot_ids();
    let db = tb.dir.join("journal.db");
    let log = tb.dir.join("run.jsonl");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        RC.cmd()
            .arg("run")
            .arg(&fleet)
            .args(["--driver", "ssh", "--json", "--run-id", "miss", "--db"])
            .arg(&db)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    let done = |j: &[Value]| {
        let healthy = j
            .iter()
            .filter(|r| r["type"] == "transition" && r["to"] == "healthy")
            .filter_map(|r| r["host_id"].as_str())
            .filter(|h| h.starts_with('e') || h.starts_with('p'))
            .count();
        let missing = j
            .iter()
            .any(|r| r["type"] == "notice" && r["kind"] == "host_missing");
        healthy == 6 && missing
    };
    let j = loop {
        let j = journal(&std::fs::read(&log).unwrap_or_default());
        if done(&j) {
            break j;
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "run did not get there: {j:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // a few more probe rounds: still nothing else of the cluster starts
    std::thread::sleep(Duration::from_secs(5));
    let j2 = journal(&std::fs::read(&log).unwrap_or_default());
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "rollcall must keep watching the missing host"
    );
    let missing: Vec<&Value> = j
        .iter()
        .filter(|r| r["type"] == "notice" && r["kind"] == "host_missing")
        .collect();
    let text = missing[0]["text"].as_str().unwrap();
    assert!(
        text.contains("r1 did not come back") && text.contains("on_missing = continue"),
        "{text}"
    );
    assert!(
        j.iter()
            .any(|r| r["type"] == "transition" && r["host_id"] == "r1" && r["to"] == "missing")
    );
    // the rest of the cache cluster was never touched
    for r in ["r2", "r3", "r4", "r5", "r6"] {
        assert!(
            !j2.iter()
                .any(|x| x["type"] == "transition" && x["host_id"] == r && x["to"] == "preflight"),
            "{r} was started while r1 is missing"
        );
    }
    let after = tb.boot_ids();
    for r in ["r2", "r3", "r4", "r5", "r6"] {
        assert_eq!(before[r], after[r], "{r} was rebooted");
    }
    assert_eq!(after["r1"], "-", "r1 stays down");
    figures(
        "c_missing",
        serde_json::json!({ "notice": text, "seconds_to_missing": t.elapsed().as_secs_f64() }),
    );
}

/// (d) A host whose key does not match known_hosts, and one whose SSH port is dead:
/// both fail preflight with a clear error and are not touched; the rest goes on.
#[test]
fn d_host_key_mismatch_and_dead_ssh_port_are_clear_errors() {
    let Some((_g, tb)) = serial_testbed("keys") else {
        return;
    };
    // p1's entry in known_hosts replaced by another key
    let kh = tb.dir.join("known_hosts");
    let addr = |h: &str| {
        std::fs::read_to_string(tb.dir.join("hosts.csv"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{h},"))
                    .map(|r| r.split(',').next().unwrap().to_string())
            })
            .unwrap()
    };
    let p1a = addr("p1");
    let k = tb.dir.join("other_key");
    assert!(
        Proc::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&k)
            .status()
            .unwrap()
            .success()
    );
    let other = std::fs::read_to_string(k.with_extension("pub")).unwrap();
    let mut parts = other.split_whitespace();
    let fake = format!("{p1a} {} {}", parts.next().unwrap(), parts.next().unwrap());
    let text: String = std::fs::read_to_string(&kh)
        .unwrap()
        .lines()
        .map(|l| {
            if l.split_whitespace().next() == Some(p1a.as_str()) {
                fake.clone()
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(&kh, text).unwrap();
    let before = tb.boot_ids();
    let fleet = fleet_file(&tb, "[ssh.host.p2]\nport = 2\n", "pause");
    // only the plain hosts: quick
    let t = std::fs::read_to_string(&fleet).unwrap().replace(
        "[maintenance]\n",
        "[maintenance]\nhosts = { tags = [\"plain\"] }\n",
    );
    std::fs::write(&fleet, t).unwrap();
    let out = ssh_run(&tb, &fleet);
    // p1 and p2 fail preflight: the run ends with them undone (exit 4), each named
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("p1") && err.contains("p2"), "{err}");
    let j = journal(&out.stdout);
    let note = |h: &str| {
        j.iter()
            .find(|r| r["type"] == "transition" && r["host_id"] == h && r["to"] == "failed")
            .and_then(|r| r["note"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{h} did not fail: {j:#?}"))
    };
    let n1 = note("p1");
    assert!(
        n1.contains("HOST KEY MISMATCH") && n1.contains(&p1a) && n1.contains("known_hosts line"),
        "{n1}"
    );
    let n2 = note("p2");
    assert!(
        n2.contains(&format!("{}:2", addr("p2"))) && n2.to_lowercase().contains("refused"),
        "{n2}"
    );
    assert!(
        j.iter()
            .any(|r| r["type"] == "transition" && r["host_id"] == "p3" && r["to"] == "healthy")
    );
    let after = tb.boot_ids();
    assert_eq!(before["p1"], after["p1"], "p1 must not be touched");
    assert_eq!(before["p2"], after["p2"], "p2 must not be touched");
    assert_ne!(before["p3"], after["p3"], "p3 rebooted");
    figures("d_errors", serde_json::json!({ "p1": n1, "p2": n2 }));
}
