//! The ssh/exec drivers and the cluster gates against real servers on loopback:
//! sshd (own config and keys), ssh-agent, a 6-node Redis Cluster, a 3-member etcd
//! cluster, and python's http.server for the http gate.

mod common;

use common::preflight;
use rollcall_core::engine::{Command, Event};
use rollcall_drivers::Driver;
use rollcall_drivers::config::{GateSpec, RemoteConfig, SshSettings};
use rollcall_drivers::gates::{self, Ledger, Member, Phase};
use rollcall_drivers::transport::{HostRef, RunError, SshTransport, Transport};
use rollcall_fleet::{LoadOptions, load_str};
use rollcall_testkit::loopback::*;
use rollcall_testkit::{free_port_on, listening, wait_for};
use std::process::{Command as Proc, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A drain of `host` with a fresh ledger, the gate timeout `T` and `secs` to drain.
async fn drain(
    spec: &GateSpec,
    cluster: &str,
    m: &[Member],
    host: usize,
    secs: u64,
) -> gates::Verdict {
    let ledger = Ledger::default();
    gates::drain(
        spec,
        cluster,
        m,
        host,
        T,
        Duration::from_secs(secs),
        &ledger,
    )
    .await
}

fn settings(s: &Sshd) -> SshSettings {
    SshSettings {
        port: s.port,
        identity: Some(s.key.clone()),
        known_hosts: Some(s.known_hosts.clone()),
        connect_timeout: Duration::from_secs(5),
        ..SshSettings::default()
    }
}

fn host(addr: &str) -> HostRef {
    HostRef {
        id: "h1".into(),
        address: addr.into(),
    }
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn ssh_key_auth_runs_commands_and_times_out() {
    let s = sshd("ssh-key", "127.0.0.41");
    let t = SshTransport {
        settings: settings(&s),
    };
    let o = t
        .run(&host(&s.addr), "echo out; echo err >&2; exit 7", T)
        .await
        .unwrap();
    assert_eq!(
        (o.status, o.stdout.as_str(), o.stderr.as_str()),
        (Some(7), "out\n", "err\n")
    );
    let o = t
        .run(&host(&s.addr), "cat /proc/sys/kernel/random/boot_id", T)
        .await
        .unwrap();
    let local = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(o.stdout, local);
    let e = t
        .run(&host(&s.addr), "sleep 20", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e, RunError::Timeout(Duration::from_secs(1)));

    // a key the server does not accept
    let other = s.procs.dir.join("other_key");
    keygen(&other);
    let mut bad = settings(&s);
    bad.identity = Some(other.clone());
    let e = SshTransport { settings: bad }
        .run(&host(&s.addr), "true", T)
        .await
        .unwrap_err();
    let RunError::Unreachable(m) = e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("root refused") && m.contains(&other.display().to_string()),
        "{m}"
    );
}

#[tokio::test]
async fn ssh_agent_auth() {
    let s = sshd("ssh-agent", "127.0.0.42");
    let sock = s.procs.dir.join("agent.sock");
    let mut agent = Procs {
        children: vec![
            Proc::new("ssh-agent")
                .args(["-D", "-a"])
                .arg(&sock)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
                .into(),
        ],
        dir: s.procs.dir.clone(),
    };
    wait_for("ssh-agent", Duration::from_secs(5), || sock.exists());
    let mut settings = settings(&s);
    settings.identity = None;
    settings.agent = true;
    settings.agent_socket = Some(sock.clone());
    let t = SshTransport { settings };
    // the agent holds no key yet: login fails and says so
    let e = t.run(&host(&s.addr), "true", T).await.unwrap_err();
    assert!(e.to_string().contains("it holds no keys"), "{e}");
    let st = Proc::new("ssh-add")
        .arg(&s.key)
        .env("SSH_AUTH_SOCK", &sock)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let o = t.run(&host(&s.addr), "echo via-agent", T).await.unwrap();
    assert_eq!(o.stdout, "via-agent\n");
    agent.children[0].kill().ok();
}

#[tokio::test]
async fn ssh_host_key_mismatch_unknown_host_and_dead_port_are_clear_errors() {
    let s = sshd("ssh-keys", "127.0.0.43");
    // known_hosts holds another key for this host:port
    let other = s.procs.dir.join("other_host");
    keygen(&other);
    let pk = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut it = pk.split_whitespace();
    let kh = s.procs.dir.join("kh_mismatch");
    std::fs::write(
        &kh,
        format!(
            "[{}]:{} {} {}\n",
            s.addr,
            s.port,
            it.next().unwrap(),
            it.next().unwrap()
        ),
    )
    .unwrap();
    let mut st = settings(&s);
    st.known_hosts = Some(kh.clone());
    let e = SshTransport { settings: st }
        .run(&host(&s.addr), "true", T)
        .await
        .unwrap_err();
    let RunError::HostKey(m) = &e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("HOST KEY MISMATCH")
            && m.contains(&format!("[{}]:{}", s.addr, s.port))
            && m.contains(&format!("{} line 1", kh.display()))
            && m.contains("SHA256:"),
        "{m}"
    );

    // not in known_hosts at all: never trusted on first use
    let empty = s.procs.dir.join("kh_empty");
    std::fs::write(&empty, "").unwrap();
    let mut st = settings(&s);
    st.known_hosts = Some(empty);
    let e = SshTransport { settings: st }
        .run(&host(&s.addr), "true", T)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RunError::HostKey(m) if m.contains("is not in")),
        "{e:?}"
    );

    // nothing listens on the port
    let dead = free_port_on(&["127.0.0.43"], &[]);
    let mut st = settings(&s);
    st.port = dead;
    let e = SshTransport { settings: st }
        .run(&host(&s.addr), "true", T)
        .await
        .unwrap_err();
    let RunError::Unreachable(m) = &e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains(&format!("127.0.0.43:{dead}")) && m.to_lowercase().contains("refused"),
        "{m}"
    );
}

/// The whole driver over SSH on one loopback host: preflight checks, probe, reboot
/// (a harmless command standing in), verify, and the failure answers.
#[tokio::test]
async fn ssh_driver_preflight_probe_reboot_verify() {
    let s = sshd("ssh-driver", "127.0.0.44");
    let d = s.procs.dir.clone();
    std::fs::create_dir_all(d.join("enabled")).unwrap();
    std::fs::create_dir_all(d.join("active")).unwrap();
    std::fs::write(d.join("enabled/web"), "").unwrap();
    std::fs::write(d.join("backup_age"), "120\n").unwrap();
    std::fs::write(d.join("unsaved"), "").unwrap();
    let fleet_text = format!(
        r#"
[[host]]
id = "h1"
address = "{addr}"
region = "lab"
zone = "a"

[ssh]
port = {port}
identity = "id_ed25519"
known_hosts = "known_hosts"
connect_timeout = "5s"

[remote]
services = ["web"]
enabled_command = "test -e {d}/enabled/{{service}}"
active_command = "test -e {d}/active/{{service}}"
backup_age_command = "cat {d}/backup_age"
max_backup_age = "1h"
unsaved_config_command = "cat {d}/unsaved"
reboot_command = "echo rebooting > {d}/rebooted"
command_timeout = "10s"
"#,
        addr = s.addr,
        port = s.port,
        d = d.display()
    );
    let fleet = Arc::new(load_str("lab.toml", &fleet_text, &d, &LoadOptions { now: 0 }).unwrap());
    let cfg = RemoteConfig::load("lab.toml", &fleet_text, &d, &fleet).unwrap();
    let drv = rollcall_drivers::remote_driver("ssh", fleet.clone(), cfg).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string();

    assert_eq!(preflight(&drv, 0).await, Ok(boot.clone()));
    assert_eq!(
        drv.execute(Command::Probe { host: 0 }, 0).await,
        Event::Probed {
            host: 0,
            boot_id: Some(boot.clone())
        }
    );

    // every preflight problem is reported, together
    std::fs::remove_file(d.join("enabled/web")).unwrap();
    std::fs::write(d.join("backup_age"), "90000\n").unwrap();
    std::fs::write(d.join("unsaved"), "router.conf modified\n").unwrap();
    let Err(why) = preflight(&drv, 0).await else {
        panic!()
    };
    assert!(why.contains("service web is not enabled at boot"), "{why}");
    assert!(
        why.contains("the last backup is 1d1h old (at most 1h allowed)"),
        "{why}"
    );
    assert!(
        why.contains("unsaved configuration: router.conf modified"),
        "{why}"
    );
    // garbage from the backup command is a failure, not a pass
    std::fs::write(d.join("backup_age"), "yesterday\n").unwrap();
    let Err(why) = preflight(&drv, 0).await else {
        panic!()
    };
    assert!(why.contains("not a number of seconds"), "{why}");

    // reboot: refuses when the boot id already changed, sends the command otherwise
    let ev = drv
        .execute(
            Command::Reboot {
                host: 0,
                boot_id: "00000000-0000".into(),
                attempt: 2,
            },
            0,
        )
        .await;
    assert_eq!(
        ev,
        Event::RebootSent {
            host: 0,
            result: Ok(())
        }
    );
    assert!(
        !d.join("rebooted").exists(),
        "a host on a new boot id must not be rebooted again"
    );
    let ev = drv
        .execute(
            Command::Reboot {
                host: 0,
                boot_id: boot.clone(),
                attempt: 1,
            },
            0,
        )
        .await;
    assert_eq!(
        ev,
        Event::RebootSent {
            host: 0,
            result: Ok(())
        }
    );
    assert_eq!(
        std::fs::read_to_string(d.join("rebooted")).unwrap(),
        "rebooting\n"
    );

    // verify: services must be active
    let Event::Verified {
        result: Err(why), ..
    } = drv.execute(Command::Verify { host: 0 }, 0).await
    else {
        panic!()
    };
    assert!(why.contains("web is not active"), "{why}");
    std::fs::write(d.join("active/web"), "").unwrap();
    assert_eq!(
        drv.execute(Command::Verify { host: 0 }, 0).await,
        Event::Verified {
            host: 0,
            result: Ok(())
        }
    );
    // replacement is not something ssh can do
    let Event::Replaced {
        result: Err(why), ..
    } = drv.execute(Command::Replace { host: 0 }, 0).await
    else {
        panic!()
    };
    assert!(why.contains("cannot replace"), "{why}");

    // the host goes away: probe says unreachable, preflight fails
    drop(s);
    assert_eq!(
        drv.execute(Command::Probe { host: 0 }, 0).await,
        Event::Probed {
            host: 0,
            boot_id: None
        }
    );
}

#[tokio::test]
async fn exec_driver_runs_host_commands_through_a_local_template() {
    let d = tmpdir("exec-driver");
    let fleet_text = format!(
        r#"
[[host]]
id = "h1"
address = "127.0.0.1"
region = "lab"
zone = "a"
[exec]
command = "cd {d} && HOST={{host}} sh -c {{command}}"
[remote]
boot_id_command = "cat boot_id_$HOST"
reboot_command = "echo 11111111-2222 > boot_id_$HOST"
"#,
        d = d.display()
    );
    std::fs::write(d.join("boot_id_h1"), "aaaaaaaa-bbbb\n").unwrap();
    let fleet = Arc::new(load_str("x.toml", &fleet_text, &d, &LoadOptions { now: 0 }).unwrap());
    let cfg = RemoteConfig::load("x.toml", &fleet_text, &d, &fleet).unwrap();
    let drv = rollcall_drivers::remote_driver("exec", fleet, cfg).unwrap();
    assert_eq!(
        drv.execute(Command::Probe { host: 0 }, 0).await,
        Event::Probed {
            host: 0,
            boot_id: Some("aaaaaaaa-bbbb".into())
        }
    );
    drv.execute(
        Command::Reboot {
            host: 0,
            boot_id: "aaaaaaaa-bbbb".into(),
            attempt: 1,
        },
        0,
    )
    .await;
    assert_eq!(
        drv.execute(Command::Probe { host: 0 }, 0).await,
        Event::Probed {
            host: 0,
            boot_id: Some("11111111-2222".into())
        }
    );
    // garbage where a boot id should be: unreachable, never a new boot
    std::fs::write(d.join("boot_id_h1"), "cat: no such file\n").unwrap();
    assert_eq!(
        drv.execute(Command::Probe { host: 0 }, 0).await,
        Event::Probed {
            host: 0,
            boot_id: None
        }
    );
}

/// Check a gate until it passes (at most 30 s); the last verdict.
async fn until_ok(spec: &GateSpec, c: &str, m: &[Member], phase: Phase) -> gates::Verdict {
    let t = std::time::Instant::now();
    loop {
        let v = gates::check(spec, c, m, phase, T).await;
        if v.is_ok() || t.elapsed() > Duration::from_secs(30) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn members(addrs: &[String]) -> Vec<Member> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Member {
            id: format!("n{i}"),
            address: a.clone(),
            going: false,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_gate_and_failover_drain() {
    let addrs = [
        "127.0.0.21",
        "127.0.0.22",
        "127.0.0.23",
        "127.0.0.24",
        "127.0.0.25",
        "127.0.0.26",
    ];
    let mut r = redis_cluster("redis", &addrs);
    let spec = GateSpec::Redis {
        port: r.port,
        password: None,
    };
    let m = members(&r.addrs);
    // every node's view converges (gossip) shortly after the cluster is created
    let v = until_ok(&spec, "cache", &m, Phase::Before(0)).await;
    assert!(v.as_ref().is_ok_and(|s| s.contains("3 masters")), "{v:?}");

    // fail a master over: roles swap, and the old master rejoins as an in-sync replica
    let master = (0..6).find(|&i| r.role(i) == "master").unwrap();
    let d = drain(&spec, "cache", &m, master, 60).await;
    assert!(d.as_ref().is_ok_and(|s| s.contains("failed")), "{d:?}");
    assert_eq!(r.role(master), "slave");
    r.wait_healthy(Duration::from_secs(30));
    let v = until_ok(&spec, "cache", &m, Phase::After(master)).await;
    assert!(v.is_ok(), "{v:?}");
    // a replica needs no preparation
    let d = drain(&spec, "cache", &m, master, 10).await;
    assert!(
        d.as_ref().is_ok_and(|s| s.contains("nothing to fail over")),
        "{d:?}"
    );

    // a node down: unhealthy, saying which
    let victim = (0..6)
        .find(|&i| r.role(i) == "slave" && i != master)
        .unwrap();
    r.procs.children[victim].kill().unwrap();
    r.procs.children[victim].wait().unwrap();
    let v = gates::check(&spec, "cache", &m, Phase::Before(0), T).await;
    let e = v.unwrap_err();
    assert!(e.to_string().contains(&r.addrs[victim]), "{e}");
    // the others notice it failing: their own views are unhealthy too
    let others: Vec<Member> = m
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, x)| x.clone())
        .collect();
    wait_for("peers flag the dead node", Duration::from_secs(30), || {
        let rt = tokio::runtime::Handle::current();
        let spec = spec.clone();
        let others = others.clone();
        std::thread::spawn(move || {
            rt.block_on(gates::check(
                &spec,
                "cache",
                &others,
                Phase::Before(0),
                Duration::from_secs(5),
            ))
        })
        .join()
        .unwrap()
        .is_err_and(|e| {
            e.to_string().contains("flagged fail")
                || e.to_string().contains("disconnected")
                || e.to_string().contains("cluster_known_nodes")
        })
    });
    // a drain of a master with its only replica gone fails closed
    // (the victim's master is the one without a replica now)

    // garbage: a port that is not Redis (an HTTP server answering) is unhealthy
    let http = free_port_on(&["127.0.0.27"], &[]);
    let mut py = Procs {
        children: vec![
            Proc::new("/usr/bin/python3")
                .args([
                    "-m",
                    "http.server",
                    &http.to_string(),
                    "--bind",
                    "127.0.0.27",
                ])
                .current_dir(&r.procs.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
                .into(),
        ],
        dir: r.procs.dir.clone(),
    };
    wait_for("http.server", Duration::from_secs(10), || {
        listening(&format!("127.0.0.27:{http}"))
    });
    let g = GateSpec::Redis {
        port: http,
        password: None,
    };
    let v = gates::check(
        &g,
        "cache",
        &members(&["127.0.0.27".into()]),
        Phase::Before(0),
        T,
    )
    .await;
    assert!(v.is_err(), "{v:?}");
    py.children[0].kill().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_gate_and_leader_move() {
    let addrs = ["127.0.0.31", "127.0.0.32", "127.0.0.33"];
    let mut e = etcd_cluster("etcd", &addrs);
    let spec = GateSpec::Etcd {
        port: e.port,
        max_raft_lag: 100,
    };
    let m = members(&e.addrs);
    let v = gates::check(&spec, "kv", &m, Phase::Before(0), T).await;
    assert!(
        v.as_ref().is_ok_and(|s| s.contains("3 members healthy")),
        "{v:?}"
    );

    let mut leader = None;
    wait_for("a leader", Duration::from_secs(20), || {
        leader = e.leader();
        leader.is_some()
    });
    let leader = leader.unwrap();
    let d = drain(&spec, "kv", &m, leader, 30).await;
    assert!(
        d.as_ref().is_ok_and(|s| s.contains("moved the leadership")),
        "{d:?}"
    );
    let now = e.leader();
    assert!(now.is_some() && now != Some(leader), "leader still {now:?}");
    // a follower needs nothing
    let d = drain(&spec, "kv", &m, leader, 10).await;
    assert!(
        d.as_ref().is_ok_and(|s| s.contains("not the leader")),
        "{d:?}"
    );
    let v = gates::check(&spec, "kv", &m, Phase::After(leader), T).await;
    assert!(v.is_ok(), "{v:?}");

    // one member down: unhealthy, naming it
    e.procs.children[leader].kill().unwrap();
    e.procs.children[leader].wait().unwrap();
    let v = gates::check(&spec, "kv", &m, Phase::Before(0), T).await;
    let err = v.unwrap_err();
    assert!(err.to_string().contains(&e.addrs[leader]), "{err}");
}

#[tokio::test]
async fn http_and_command_gates() {
    let d = tmpdir("http-gate");
    let port = free_port_on(&["127.0.0.35"], &[]);
    let _py = Procs {
        children: vec![
            Proc::new("/usr/bin/python3")
                .args([
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.35",
                ])
                .current_dir(&d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
                .into(),
        ],
        dir: d.clone(),
    };
    wait_for("http.server", Duration::from_secs(10), || {
        listening(&format!("127.0.0.35:{port}"))
    });
    let m = vec![Member {
        id: "h1".into(),
        address: "127.0.0.35".into(),
        going: false,
    }];
    let spec = GateSpec::Http {
        url: format!("http://{{address}}:{port}/health-{{host}}.json"),
        status: 200,
        expect: vec![
            ("status".into(), serde_json::json!("green")),
            ("nodes.up".into(), serde_json::json!(3)),
        ],
    };
    std::fs::write(
        d.join("health-h1.json"),
        r#"{"status":"green","nodes":{"up":3}}"#,
    )
    .unwrap();
    let v = gates::check(&spec, "web", &m, Phase::After(0), T).await;
    assert!(v.is_ok(), "{v:?}");
    std::fs::write(
        d.join("health-h1.json"),
        r#"{"status":"yellow","nodes":{"up":3}}"#,
    )
    .unwrap();
    let v = gates::check(&spec, "web", &m, Phase::After(0), T)
        .await
        .unwrap_err();
    assert!(
        v.to_string()
            .contains("status = \"yellow\" (want \"green\")"),
        "{v}"
    );
    std::fs::write(d.join("health-h1.json"), "<html>busy</html>").unwrap();
    let v = gates::check(&spec, "web", &m, Phase::After(0), T)
        .await
        .unwrap_err();
    assert!(v.to_string().contains("not JSON"), "{v}");
    std::fs::remove_file(d.join("health-h1.json")).unwrap();
    let v = gates::check(&spec, "web", &m, Phase::After(0), T)
        .await
        .unwrap_err();
    assert!(v.to_string().contains("status 404 (want 200)"), "{v}");
    // nothing listening
    let dead = GateSpec::Http {
        url: format!("http://127.0.0.35:{}/", free_port_on(&["127.0.0.35"], &[])),
        status: 200,
        expect: vec![],
    };
    assert!(
        gates::check(&dead, "web", &m, Phase::After(0), T)
            .await
            .is_err()
    );

    // command gate: exit status decides; a hung command times out as unhealthy
    let spec = GateSpec::Command {
        command: format!("test -e {}/ok-{{host}}", d.display()),
        drain: None,
        restore: None,
    };
    assert!(
        gates::check(&spec, "job", &m, Phase::After(0), T)
            .await
            .is_err()
    );
    std::fs::write(d.join("ok-h1"), "").unwrap();
    assert!(
        gates::check(&spec, "job", &m, Phase::After(0), T)
            .await
            .is_ok()
    );
    let slow = GateSpec::Command {
        command: "sleep 30".into(),
        drain: None,
        restore: None,
    };
    let v = gates::check(&slow, "job", &m, Phase::After(0), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(v.to_string().contains("no answer within 1s"), "{v}");
}

/// `{host}` and `{address}` in every phase: the pre-gate asks every member (an empty
/// address there once sent `GET http://:port/...`), the rejoin gate the member that came
/// back, drain and restore commands the member going.
#[tokio::test]
async fn templated_gates_ask_every_member_before_and_the_returning_member_after() {
    let d = tmpdir("templated-gates");
    let addrs = ["127.0.0.36", "127.0.0.37"];
    let port = free_port_on(&addrs, &[]);
    let _py = Procs {
        children: addrs
            .iter()
            .map(|a| {
                Proc::new("/usr/bin/python3")
                    .args(["-m", "http.server", &port.to_string(), "--bind", a])
                    .current_dir(&d)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
                    .into()
            })
            .collect(),
        dir: d.clone(),
    };
    for a in addrs {
        wait_for("http.server", Duration::from_secs(10), || {
            listening(&format!("{a}:{port}"))
        });
    }
    let m = members(&addrs.map(String::from));
    let spec = GateSpec::Http {
        url: format!("http://{{address}}:{port}/health-{{host}}.json"),
        status: 200,
        expect: vec![("status".into(), serde_json::json!("green"))],
    };
    let green = r#"{"status":"green"}"#;
    std::fs::write(d.join("health-n1.json"), green).unwrap();
    // before: n0's endpoint has nothing, so the cluster is not healthy, whoever goes
    for h in [0, 1] {
        let v = gates::check(&spec, "web", &m, Phase::Before(h), T)
            .await
            .unwrap_err();
        assert!(
            v.to_string().contains(&format!(
                "GET http://127.0.0.36:{port}/health-n0.json: status 404"
            )),
            "{v}"
        );
    }
    // after: only the member that came back is asked
    let v = gates::check(&spec, "web", &m, Phase::After(1), T).await;
    assert!(v.is_ok(), "{v:?}");
    assert!(
        gates::check(&spec, "web", &m, Phase::After(0), T)
            .await
            .is_err()
    );
    std::fs::write(d.join("health-n0.json"), green).unwrap();
    let v = gates::check(&spec, "web", &m, Phase::Before(1), T).await;
    assert!(v.is_ok(), "{v:?}");

    // command gates: the same, and drain/restore commands name the member going
    let dir = d.display();
    let spec = GateSpec::Command {
        command: format!("test -e {dir}/ok-{{host}}-{{address}}"),
        drain: Some(format!("touch {dir}/drained-{{host}}-{{address}}")),
        restore: Some(format!("rm {dir}/drained-{{host}}-{{address}}")),
    };
    std::fs::write(d.join("ok-n1-127.0.0.37"), "").unwrap();
    assert!(
        gates::check(&spec, "job", &m, Phase::Before(1), T)
            .await
            .is_err()
    );
    assert!(
        gates::check(&spec, "job", &m, Phase::After(1), T)
            .await
            .is_ok()
    );
    std::fs::write(d.join("ok-n0-127.0.0.36"), "").unwrap();
    assert!(
        gates::check(&spec, "job", &m, Phase::Before(1), T)
            .await
            .is_ok()
    );
    let l = Ledger::default();
    let r = gates::drain(&spec, "job", &m, 1, T, T, &l).await;
    assert!(r.is_ok(), "{r:?}");
    assert!(d.join("drained-n1-127.0.0.37").exists());
    let r = gates::restore(&spec, "job", &m, 1, T, T * 3, &l).await;
    assert!(r.is_ok(), "{r:?}");
    assert!(!d.join("drained-n1-127.0.0.37").exists());
}

/// A host in two clusters whose second drain fails: the first drain is undone (the host
/// is not rebooted, so nothing may stay changed).
#[tokio::test]
async fn a_failed_drain_undoes_the_drains_already_done_for_the_host() {
    let d = tmpdir("drain-undo");
    let fleet_text = format!(
        r#"
[[host]]
id = "h1"
address = "127.0.0.1"
region = "lab"
zone = "a"
[exec]
command = "sh -c {{command}}"
[[cluster]]
id = "first"
kind = "command"
members = ["h1"]
gate = {{ command = "true", drain_command = "touch {d}/drained-{{host}}", restore_command = "rm {d}/drained-{{host}} && touch {d}/restored-{{host}}" }}
[[cluster]]
id = "second"
kind = "command"
members = ["h1"]
gate = {{ command = "true", drain_command = "echo no >&2; exit 3" }}
"#,
        d = d.display()
    );
    let fleet = Arc::new(load_str("x.toml", &fleet_text, &d, &LoadOptions { now: 0 }).unwrap());
    let cfg = RemoteConfig::load("x.toml", &fleet_text, &d, &fleet).unwrap();
    let drv = rollcall_drivers::remote_driver("exec", fleet, cfg).unwrap();
    let Event::Drained { result, .. } = drv.execute(Command::Drain { host: 0 }, 0).await else {
        panic!("not a Drained event")
    };
    let e = result.unwrap_err();
    assert!(e.contains("second: ") && e.contains("exit"), "{e}");
    assert!(
        !d.join("drained-h1").exists(),
        "the first cluster's drain was not undone"
    );
    assert!(
        d.join("restored-h1").exists(),
        "the first cluster's restore command did not run"
    );
}
