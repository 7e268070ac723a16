//! The `elasticsearch`/`opensearch` gate and drain against a real 3-node OpenSearch 2.19
//! cluster on loopback (127.0.0.71-73, one JVM each, built by `testbed/opensearch/build`
//! from Maven Central). One cluster per test binary: starting it costs ~25 s. The JVMs
//! exit when this test binary does (`-Drollcall.parent`).

use rollcall_drivers::config::GateSpec;
use rollcall_drivers::gates::{self, Ledger, Member, Phase};
use rollcall_drivers::search::{Allocation, SearchGate, parse_allocation};
use rollcall_testkit::loopback::*;
use rollcall_testkit::{canned_server, free_port_on, repo, wait_for};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const ADDRS: [&str; 3] = ["127.0.0.71", "127.0.0.72", "127.0.0.73"];
const NAMES: [&str; 3] = ["os1", "os2", "os3"];
const T: Duration = Duration::from_secs(10);

struct Cluster {
    port: u16,
    dir: PathBuf,
    nodes: Mutex<Vec<Child>>,
}

fn start_node(c_port: u16, dir: &std::path::Path, i: usize) -> Child {
    let os = repo().join("testbed/opensearch/target");
    let seeds: Vec<String> = ADDRS
        .iter()
        .map(|a| format!("{a}:{}", c_port + 1))
        .collect();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.log", NAMES[i])))
        .unwrap();
    Command::new("java")
        .args([
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            &format!("-Drollcall.parent={}", std::process::id()),
            "-cp",
            &format!(
                "{}:{}/*",
                os.join("classes").display(),
                os.join("lib").display()
            ),
            "rollcall.testnode.OsNode",
            NAMES[i],
            ADDRS[i],
            &dir.join(NAMES[i]).display().to_string(),
            &seeds.join(","),
            &NAMES.join(","),
            &c_port.to_string(),
            &(c_port + 1).to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("java (a JDK 17) must be installed")
}

/// The shared cluster, started by the first test that needs it, green with 3 nodes.
fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let b = Command::new(repo().join("testbed/opensearch/build"))
            .status()
            .expect("testbed/opensearch/build");
        assert!(
            b.success(),
            "testbed/opensearch/build failed (needs maven, a JDK 17 and Maven Central)"
        );
        let port = free_port_on(&ADDRS, &[1]);
        let dir = tmpdir("opensearch");
        let nodes = (0..3).map(|i| start_node(port, &dir, i)).collect();
        let c = Cluster {
            port,
            dir,
            nodes: Mutex::new(nodes),
        };
        let t = Instant::now();
        wait_for(
            "OpenSearch green with 3 nodes",
            Duration::from_secs(240),
            || {
                curl(&c, "GET", "/_cluster/health", None).is_ok_and(|b| {
                    b.contains("\"status\":\"green\"") && b.contains("\"number_of_nodes\":3,")
                })
            },
        );
        eprintln!(
            "OpenSearch: 3 nodes green in {:.1}s (logs in {})",
            t.elapsed().as_secs_f64(),
            c.dir.display()
        );
        create_index(&c, "docs", 3, 1);
        c
    })
}

/// The tests of the shared cluster run one at a time (some change it).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static M: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    M.lock().await
}

fn curl(c: &Cluster, method: &str, path: &str, body: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-m", "30", "-X", method])
        .arg(format!("http://{}:{}{path}", ADDRS[0], c.port));
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "-d", b]);
    }
    let o = cmd.output().map_err(|e| e.to_string())?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

fn create_index(c: &Cluster, name: &str, shards: u32, replicas: u32) {
    let b = curl(
        c,
        "PUT",
        &format!("/{name}?wait_for_active_shards=all"),
        Some(&format!(
            r#"{{"settings":{{"number_of_shards":{shards},"number_of_replicas":{replicas}}}}}"#
        )),
    )
    .unwrap();
    assert!(b.contains("\"acknowledged\":true"), "{b}");
    wait_green(c);
}

fn wait_green(c: &Cluster) {
    wait_for("green", Duration::from_secs(120), || {
        curl(
            c,
            "GET",
            "/_cluster/health?wait_for_status=green&wait_for_nodes=3&wait_for_no_initializing_shards=true&wait_for_no_relocating_shards=true&timeout=5s",
            None,
        )
        .is_ok_and(|b| b.contains("\"timed_out\":false"))
    });
}

fn allocation(c: &Cluster) -> Allocation {
    parse_allocation(&curl(c, "GET", "/_cluster/settings?flat_settings=true", None).unwrap())
        .unwrap()
}

fn set_allocation(c: &Cluster, persistent: Option<&str>, transient: Option<&str>) {
    let v = |x: Option<&str>| x.map_or("null".to_string(), |s| format!("\"{s}\""));
    let b = curl(
        c,
        "PUT",
        "/_cluster/settings",
        Some(&format!(
            r#"{{"persistent":{{"cluster.routing.allocation.enable":{}}},"transient":{{"cluster.routing.allocation.enable":{}}}}}"#,
            v(persistent),
            v(transient)
        )),
    )
    .unwrap();
    assert!(b.contains("\"acknowledged\":true"), "{b}");
}

fn members() -> Vec<Member> {
    NAMES
        .iter()
        .zip(ADDRS)
        .map(|(n, a)| Member {
            id: n.to_string(),
            address: a.to_string(),
            going: false,
        })
        .collect()
}

fn gate(c: &Cluster) -> GateSpec {
    GateSpec::Search(SearchGate {
        url: format!("http://{{address}}:{}", c.port),
        auth: None,
        tls_ca: None,
        delayed_timeout: None,
    })
}

async fn check(c: &Cluster, ms: &[Member], phase: Phase) -> gates::Verdict {
    gates::check(&gate(c), "search", ms, phase, T).await
}

fn unset() -> Allocation {
    Allocation::default()
}

#[tokio::test]
async fn a_green_cluster_passes_the_pre_gate_and_the_rejoin_gate() {
    let c = cluster();
    let _s = serial().await;
    let ms = members();
    let v = check(c, &ms, Phase::Before(0)).await;
    assert!(
        v.as_ref().is_ok_and(|s| s.contains("green, 3 nodes")),
        "{v:?}"
    );
    let v = check(c, &ms, Phase::After(2)).await;
    assert!(
        v.as_ref()
            .is_ok_and(|s| s.contains("node os3 (127.0.0.73) is in the cluster")),
        "{v:?}"
    );
    // a fixed url (a load balancer in front of the cluster) works the same
    let lb = GateSpec::Search(SearchGate {
        url: format!("http://{}:{}/", ADDRS[1], c.port),
        auth: None,
        tls_ca: None,
        delayed_timeout: None,
    });
    let v = gates::check(&lb, "search", &ms, Phase::Before(1), T).await;
    assert!(v.is_ok(), "{v:?}");
}

#[tokio::test]
async fn a_fleet_that_disagrees_with_the_cluster_is_unhealthy() {
    let c = cluster();
    let _s = serial().await;
    let ms = members();
    // the fleet lists two members, the cluster has three nodes
    let v = check(c, &ms[..2], Phase::Before(0)).await.unwrap_err();
    assert!(v.to_string().contains("3 nodes (the fleet says 2)"), "{v}");
    // a member whose endpoint does not answer (the fleet has another address than the node)
    let mut stranger = ms.clone();
    stranger[2] = Member {
        id: "os9".into(),
        address: "127.0.0.79".into(),
        going: false,
    };
    let v = check(c, &stranger, Phase::After(2)).await.unwrap_err();
    assert!(
        v.to_string().starts_with("search: GET http://127.0.0.79:"),
        "{v}"
    );
    // rejoin judged from the cluster's own node list
    let lb = GateSpec::Search(SearchGate {
        url: format!("http://{}:{}", ADDRS[0], c.port),
        auth: None,
        tls_ca: None,
        delayed_timeout: None,
    });
    let v = gates::check(&lb, "search", &stranger, Phase::After(2), T)
        .await
        .unwrap_err();
    assert!(
        v.to_string()
            .contains("no node with address 127.0.0.79 or name os9 in the cluster"),
        "{v}"
    );
}

#[tokio::test]
async fn drain_sets_primaries_and_flushes_and_restore_puts_back_the_previous_value() {
    let c = cluster();
    let _s = serial().await;
    let ms = members();
    let l = Ledger::default();
    let spec = gate(c);

    // unset before: primaries while drained, unset (null) again after the restore
    set_allocation(c, None, None);
    let d = gates::drain(&spec, "search", &ms, 1, T, T * 3, &l).await;
    assert!(
        d.as_ref().is_ok_and(|s| s
            .contains("allocation primaries (was persistent unset, transient unset)")
            && s.contains("flushed")),
        "{d:?}"
    );
    assert_eq!(allocation(c).persistent.as_deref(), Some("primaries"));
    assert_eq!(allocation(c).transient, None);
    let r = gates::restore(&spec, "search", &ms, 1, T, T * 3, &l).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(allocation(c), unset());

    // a value set before (persistent and transient): both put back
    set_allocation(c, Some("new_primaries"), Some("all"));
    gates::drain(&spec, "search", &ms, 0, T, T * 3, &l)
        .await
        .unwrap();
    assert_eq!(
        allocation(c),
        Allocation {
            persistent: Some("primaries".into()),
            transient: Some("primaries".into()),
            delayed: None,
        }
    );
    gates::restore(&spec, "search", &ms, 0, T, T * 3, &l)
        .await
        .unwrap();
    assert_eq!(
        allocation(c),
        Allocation {
            persistent: Some("new_primaries".into()),
            transient: Some("all".into()),
            delayed: None,
        }
    );
    set_allocation(c, None, None);

    // overlapping drains of one cluster: only the last restore puts the value back
    gates::drain(&spec, "search", &ms, 0, T, T * 3, &l)
        .await
        .unwrap();
    gates::drain(&spec, "search", &ms, 2, T, T * 3, &l)
        .await
        .unwrap();
    let r = gates::restore(&spec, "search", &ms, 0, T, T * 3, &l)
        .await
        .unwrap();
    assert!(r.contains("stays primaries"), "{r}");
    assert_eq!(allocation(c).persistent.as_deref(), Some("primaries"));
    gates::restore(&spec, "search", &ms, 2, T, T * 3, &l)
        .await
        .unwrap();
    assert_eq!(allocation(c), unset());

    // a restore that knows no drain (rollcall restarted) resets a primaries it finds
    set_allocation(c, Some("primaries"), None);
    let r = gates::restore(&spec, "search", &ms, 0, T, T * 3, &Ledger::default())
        .await
        .unwrap();
    assert!(r.contains("reset from primaries to unset"), "{r}");
    assert_eq!(allocation(c), unset());
    // ... and leaves anything else alone
    set_allocation(c, Some("none"), None);
    let r = gates::restore(&spec, "search", &ms, 0, T, T * 3, &Ledger::default())
        .await
        .unwrap();
    assert!(r.contains("nothing to undo"), "{r}");
    assert_eq!(allocation(c).persistent.as_deref(), Some("none"));
    set_allocation(c, None, None);
}

/// The orchestrator dies between drain and restore: the value the drain found survives
/// in the journal (as the engine's hold) and a new orchestrator's ledger adopts it, so the
/// restore puts back that value, not a guess.
#[tokio::test]
async fn a_journalled_hold_puts_back_the_value_from_before_the_drain_after_a_crash() {
    let c = cluster();
    let _s = serial().await;
    let ms = members();
    let spec = gate(c);
    set_allocation(c, Some("all"), None);
    let before = Ledger::default();
    gates::drain(&spec, "search", &ms, 1, T, T * 3, &before)
        .await
        .unwrap();
    let journalled = serde_json::to_string(&before.remembered("search").unwrap()).unwrap();
    drop(before); // the crash
    assert_eq!(allocation(c).persistent.as_deref(), Some("primaries"));
    let after = Ledger::default();
    after.hold("search", serde_json::from_str(&journalled).unwrap());
    // a release (the host will not come back through a restore) does not wait for it
    let t = Instant::now();
    let r = gates::restore(&spec, "search", &ms, 1, T, Duration::ZERO, &after)
        .await
        .unwrap();
    assert!(t.elapsed() < T, "{:?}", t.elapsed());
    assert!(r.contains("allocation back to persistent all"), "{r}");
    assert_eq!(allocation(c).persistent.as_deref(), Some("all"));
    assert!(after.remembered("search").is_none());
    set_allocation(c, None, None);
}

/// `delayed_timeout` in the gate: the drain raises every index's delayed timeout and the
/// restore puts each one back (an explicit value, or unset), also through a hold.
#[tokio::test]
async fn a_raised_delayed_timeout_is_put_back_index_by_index() {
    let c = cluster();
    let _s = serial().await;
    let ms = members();
    create_index(c, "slow", 1, 1);
    create_index(c, "plain", 1, 1);
    let put = curl(
        c,
        "PUT",
        "/slow/_settings",
        Some(r#"{"index.unassigned.node_left.delayed_timeout":"7s"}"#),
    )
    .unwrap();
    assert!(put.contains("\"acknowledged\":true"), "{put}");
    let delayed = |i: &str| {
        let b = curl(
            c,
            "GET",
            &format!(
                "/{i}/_settings/index.unassigned.node_left.delayed_timeout?flat_settings=true"
            ),
            None,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        v[i]["settings"]["index.unassigned.node_left.delayed_timeout"]
            .as_str()
            .map(str::to_string)
    };
    let GateSpec::Search(mut g) = gate(c) else {
        unreachable!()
    };
    g.delayed_timeout = Some(Duration::from_secs(600));
    let spec = GateSpec::Search(g);
    let before = Ledger::default();
    let d = gates::drain(&spec, "search", &ms, 0, T, T * 3, &before)
        .await
        .unwrap();
    assert!(d.contains("delayed_timeout of"), "{d}");
    assert_eq!(delayed("slow").as_deref(), Some("600s"));
    assert_eq!(delayed("plain").as_deref(), Some("600s"));
    // through the journal, as after a crash
    let held = serde_json::to_string(&before.remembered("search").unwrap()).unwrap();
    let after = Ledger::default();
    after.hold("search", serde_json::from_str(&held).unwrap());
    gates::restore(&spec, "search", &ms, 0, T, T * 3, &after)
        .await
        .unwrap();
    assert_eq!(delayed("slow").as_deref(), Some("7s"));
    assert_eq!(delayed("plain"), None);
    assert_eq!(allocation(c), unset());
    for i in ["slow", "plain"] {
        curl(c, "DELETE", &format!("/{i}"), None).unwrap();
    }
}

#[tokio::test]
async fn an_index_without_replicas_is_refused_by_the_pre_gate_of_its_node() {
    let c = cluster();
    let _s = serial().await;
    let ms = members();
    create_index(c, "solo", 1, 0);
    let on = curl(c, "GET", "/_cat/shards/solo?h=ip", None).unwrap();
    let host = ADDRS
        .iter()
        .position(|a| *a == on.trim())
        .unwrap_or_else(|| panic!("solo is on {on}"));
    let v = check(c, &ms, Phase::Before(host)).await;
    let other = (host + 1) % 3;
    let w = check(c, &ms, Phase::Before(other)).await;
    curl(c, "DELETE", "/solo", None).unwrap();
    let v = v.unwrap_err();
    assert!(
        v.to_string().contains(&format!(
            "{} holds shards of indices with number_of_replicas = 0, which go offline with it: solo",
            NAMES[host]
        )),
        "{v}"
    );
    assert!(w.is_ok(), "{w:?}");
}

#[tokio::test]
async fn a_node_that_is_down_fails_the_gates_until_it_rejoins() {
    let c = cluster();
    let _s = serial().await;
    let ms = members();
    let l = Ledger::default();
    let spec = gate(c);
    gates::drain(&spec, "search", &ms, 2, T, T * 3, &l)
        .await
        .unwrap();
    {
        let mut n = c.nodes.lock().unwrap();
        n[2].kill().unwrap();
        n[2].wait().unwrap();
    }
    // seen from the survivors: not green, 2 nodes; and os3's endpoint does not answer
    let v = check(c, &ms, Phase::After(2)).await.unwrap_err();
    assert!(v.to_string().contains("search: "), "{v}");
    let lb = GateSpec::Search(SearchGate {
        url: format!("http://{}:{}", ADDRS[0], c.port),
        auth: None,
        tls_ca: None,
        delayed_timeout: None,
    });
    wait_for(
        "the cluster to see os3 gone",
        Duration::from_secs(60),
        || {
            curl(c, "GET", "/_cluster/health", None)
                .is_ok_and(|b| b.contains("\"number_of_nodes\":2,"))
        },
    );
    let v = gates::check(&lb, "search", &ms, Phase::After(2), T)
        .await
        .unwrap_err();
    assert!(
        v.to_string().contains("status yellow")
            && v.to_string().contains("2 nodes (the fleet says 3)"),
        "{v}"
    );
    // allocation is primaries: the replicas os3 held are not copied elsewhere
    let unassigned = curl(c, "GET", "/_cluster/health", None).unwrap();
    assert!(
        !unassigned.contains("\"unassigned_shards\":0,"),
        "{unassigned}"
    );

    // a restore while os3 is away waits for it to rejoin, and does not wait forever: a
    // restore that knows no drain (as after a restart of rollcall) finds primaries and,
    // os3 not back within 2 s, puts allocation back anyway
    let t = Instant::now();
    let r = gates::restore(
        &spec,
        "search",
        &ms,
        2,
        T,
        Duration::from_secs(2),
        &Ledger::default(),
    )
    .await
    .unwrap();
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        r.contains("os3 has not rejoined within 2s: put back anyway")
            && r.contains("reset from primaries"),
        "{r}"
    );
    assert_eq!(allocation(c), unset());
    set_allocation(c, Some("primaries"), None);

    // the restart: the restore waits until os3 is back in the cluster, then allocation is
    // put back and its replicas recover from its own copies
    let t = Instant::now();
    c.nodes.lock().unwrap()[2] = start_node(c.port, &c.dir, 2);
    let r = gates::restore(&spec, "search", &ms, 2, T, Duration::from_secs(120), &l)
        .await
        .unwrap();
    assert!(
        r.contains("os3 rejoined after") && r.contains("allocation back to persistent unset"),
        "{r}"
    );
    assert!(
        curl(c, "GET", "/_cat/nodes?h=name", None).is_ok_and(|n| n.contains("os3")),
        "restored before os3 rejoined: {r}"
    );
    let mut last = Err(rollcall_drivers::error::unhealthy(""));
    while t.elapsed() < Duration::from_secs(120) {
        last = check(c, &ms, Phase::After(2)).await;
        if last.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(last.is_ok(), "os3 did not rejoin within 120 s: {last:?}");
    eprintln!(
        "os3 restarted and green again in {:.1}s ({r})",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(allocation(c), unset());
}

fn at(addr: &str, port: u16) -> (GateSpec, Vec<Member>) {
    (
        GateSpec::Search(SearchGate {
            url: format!("http://{{address}}:{port}"),
            auth: None,
            tls_ca: None,
            delayed_timeout: None,
        }),
        vec![Member {
            id: "x".into(),
            address: addr.into(),
            going: false,
        }],
    )
}

#[tokio::test]
async fn a_port_that_answers_garbage_or_hangs_or_refuses_is_unhealthy_within_its_timeout() {
    let a = "127.0.0.76";
    let (g, m) = at(
        a,
        canned_server(
            a,
            Some("HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot json!"),
        ),
    );
    let v = gates::check(&g, "search", &m, Phase::Before(0), T)
        .await
        .unwrap_err();
    assert!(v.to_string().contains("not JSON"), "{v}");
    let (g, m) = at(
        a,
        canned_server(
            a,
            Some("HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"),
        ),
    );
    let v = gates::check(&g, "search", &m, Phase::After(0), T)
        .await
        .unwrap_err();
    assert!(
        v.to_string().contains("authentication failed (HTTP 401)"),
        "{v}"
    );
    let (g, m) = at(a, canned_server(a, Some("garbage\r\n\r\n")));
    assert!(
        gates::check(&g, "search", &m, Phase::Before(0), T)
            .await
            .is_err()
    );
    let (g, m) = at(a, canned_server(a, None));
    let t = Instant::now();
    let v = gates::check(&g, "search", &m, Phase::Before(0), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(
        v.to_string().contains("timed out") || v.to_string().contains("no answer within 2s"),
        "{v}"
    );
    let t = Instant::now();
    let d = gates::drain(
        &g,
        "search",
        &m,
        0,
        Duration::from_secs(1),
        Duration::from_secs(2),
        &Ledger::default(),
    )
    .await
    .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(d.to_string().contains("search: "), "{d}");
    let (g, m) = at(a, free_port_on(&[a], &[]));
    let v = gates::check(&g, "search", &m, Phase::Before(0), T)
        .await
        .unwrap_err();
    assert!(
        v.to_string().contains("Connection refused") || v.to_string().contains("connect"),
        "{v}"
    );
}
