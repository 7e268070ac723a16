//! The netns testbed (`testbed/testbed`) for the e2e tests (`rollcall-cli`'s
//! `testbed.rs`, `opensearch_testbed.rs`, `ha.rs`): its lifecycle, its machines
//! (orchestrators, the database), journal replay and figures.

use crate::repo;
use serde_json::Value;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command as Proc, Output};
use std::sync::OnceLock;

/// The `[ssh]` and `[remote]` sections every testbed fleet file carries (the testbed's
/// key and known_hosts, 1 s probes and gates); `[remote.host.*]` lines may follow.
pub const SSH_REMOTE: &str = r#"[ssh]
identity = "id_ed25519"
known_hosts = "known_hosts"
connect_timeout = "3s"

[remote]
services = ["ssh"]
probe_interval = "1s"
gate_interval = "1s"
command_timeout = "20s"
drain_timeout = "60s"
"#;

pub struct Testbed {
    pub dir: PathBuf,
    pub env: std::collections::HashMap<String, String>,
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.down();
    }
}

/// How `testbed up` is called.
pub struct Up {
    /// `--reboot-delay` (seconds)
    pub reboot_delay: u32,
    /// `--with-opensearch`
    pub opensearch: bool,
    /// `--with-orchestrators`: machines `c1`, `c2` and `db1` (PostgreSQL)
    pub orchestrators: bool,
}

/// One reboot request a host received (`hosts/HOST/reboot-requests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootRequest {
    /// Unix ms
    pub at_ms: i64,
    /// The SSH client's address, or `testbed` (`testbed reboot`)
    pub by: String,
    /// `reboot` or `poweroff`
    pub how: String,
}

static SHARED: OnceLock<Testbed> = OnceLock::new();

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

extern "C" fn teardown_shared() {
    if let Some(tb) = SHARED.get() {
        tb.down();
    }
}

impl Testbed {
    /// The redis/etcd/plain testbed with 3 s reboots.
    pub fn up(name: &str) -> Testbed {
        Testbed::up_with(
            name,
            &Up {
                reboot_delay: 3,
                opensearch: false,
                orchestrators: false,
            },
        )
    }

    /// The one testbed of this test binary: brought up by the first caller (later
    /// callers get the same one, whatever `o` they pass), down when the process exits.
    pub fn shared(name: &str, o: &Up) -> &'static Testbed {
        SHARED.get_or_init(|| {
            let tb = Testbed::up_with(name, o);
            // SAFETY: registers a plain function with no arguments; SHARED outlives it
            assert_eq!(unsafe { atexit(teardown_shared) }, 0, "atexit");
            tb
        })
    }

    /// A testbed in a temp dir with its own prefix and subnet (5 attempts).
    pub fn up_with(name: &str, o: &Up) -> Testbed {
        let pid = std::process::id();
        let mut last = String::new();
        for attempt in 0..5u32 {
            let dir = std::env::temp_dir().join(format!("rollcall-e2e-{pid}-{name}-{attempt}"));
            let _ = std::fs::remove_dir_all(&dir);
            let n = 100 + (pid + attempt * 37 + name.len() as u32 * 11) % 150;
            let prefix = format!("t{}{}", pid % 10000, &name[..1]);
            let tb = Testbed {
                dir: dir.clone(),
                env: Default::default(),
            };
            let mut up = Proc::new(repo().join("testbed/testbed"));
            up.args(["up", "--dir"]).arg(&dir).args([
                "--prefix",
                &prefix,
                "--subnet",
                &format!("10.{n}"),
                "--reboot-delay",
                &o.reboot_delay.to_string(),
            ]);
            if o.opensearch {
                up.arg("--with-opensearch");
            }
            if o.orchestrators {
                up.arg("--with-orchestrators");
            }
            let out = up.output().unwrap();
            if out.status.success() {
                let mut tb = tb;
                let env = std::fs::read_to_string(dir.join("env")).unwrap();
                for l in env.lines() {
                    if let Some((k, v)) = l.split_once('=') {
                        tb.env
                            .insert(k.to_string(), v.trim_matches('\'').to_string());
                    }
                }
                return tb;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("testbed up failed: {last}");
    }
    /// `testbed down`, then the directory goes (unless `ROLLCALL_KEEP_TESTBED` is set).
    pub fn down(&self) {
        let _ = Proc::new(repo().join("testbed/testbed"))
            .args(["down", "--dir"])
            .arg(&self.dir)
            .output();
        // the hosts' data (etcd, Redis AOF, OpenSearch) is a few hundred MB: keep it only on request
        if std::env::var_os("ROLLCALL_KEEP_TESTBED").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
    /// A host's address, from `hosts.csv`.
    pub fn addr(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.join("hosts.csv"))
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{host},"))
                    .map(|r| r.split(',').next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("{host} is not in hosts.csv"))
    }
    /// The address of any machine of the testbed (fleet hosts, `c1`, `db1`...), from `status`.
    pub fn machine_addr(&self, machine: &str) -> String {
        self.cmd(&["status"])
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(machine)).then(|| f.next().unwrap_or_default().to_string())
            })
            .unwrap_or_else(|| panic!("{machine} is not a machine of the testbed"))
    }
    /// `program` run inside `machine`'s network namespace (`testbed exec`; the child's
    /// pid is the program's own, so killing it kills the program).
    pub fn exec(&self, machine: &str, program: impl AsRef<OsStr>) -> Proc {
        let mut c = Proc::new(repo().join("testbed/testbed"));
        c.args(["exec", machine, "--dir"])
            .arg(&self.dir)
            .arg("--")
            .arg(program)
            .current_dir(repo());
        c
    }
    /// A fresh database `name` on `db1` (dropped first if it exists); its URL.
    pub fn fresh_db(&self, name: &str) -> String {
        self.psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        self.psql(&format!("CREATE DATABASE {name}"));
        let url = self.env("TESTBED_DB_URL");
        let (base, _) = url.rsplit_once('/').expect("TESTBED_DB_URL has a database");
        format!("{base}/{name}")
    }
    /// `psql` against `TESTBED_DB_URL` (from the root namespace), which must succeed; its
    /// output, unaligned and tuples only.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on(&self.env("TESTBED_DB_URL"), sql)
    }
    /// `psql URL -c SQL`, which must succeed; its output, unaligned and tuples only.
    pub fn psql_on(&self, url: &str, sql: &str) -> String {
        let out = Proc::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {url} -c {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// `ssh root@MACHINE command` with the testbed's key (bounded by a 20 s timeout).
    pub fn ssh(&self, machine: &str, command: &str) -> Output {
        Proc::new("timeout")
            .arg("20")
            .args(["ssh", "-F", "/dev/null", "-i"])
            .arg(self.dir.join("id_ed25519"))
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.join("known_hosts").display()
            ))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=3"])
            .args(["-o", "LogLevel=ERROR"])
            .arg(format!("root@{}", self.machine_addr(machine)))
            .arg(command)
            .output()
            .expect("run ssh")
    }
    /// Every reboot request `host` received since `up`, oldest first.
    pub fn reboot_requests(&self, host: &str) -> Vec<RebootRequest> {
        let f = self.dir.join("hosts").join(host).join("reboot-requests");
        std::fs::read_to_string(&f)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f[..] {
                    [at, by, how] => RebootRequest {
                        at_ms: at.parse().unwrap_or_else(|_| panic!("{l:?}")),
                        by: by.to_string(),
                        how: how.to_string(),
                    },
                    _ => panic!("{}: bad line {l:?}", host),
                }
            })
            .collect()
    }
    pub fn env(&self, k: &str) -> String {
        self.env[k].clone()
    }
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Proc::new(repo().join("testbed/testbed"))
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "testbed {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Boot id per host (`-` when not up).
    pub fn boot_ids(&self) -> std::collections::HashMap<String, String> {
        self.cmd(&["status"])
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.first()?.to_string(), f.get(3)?.to_string()))
            })
            .collect()
    }
}

/// A fleet file of the testbed, `DIR/NAME.toml`: every host of `hosts.csv`, clusters `cache`
/// (r1..r6, Redis Cluster) and `kv` (e1..e3, etcd), one member out at a time, SSH to each
/// host, 8 s per host planned, `on_missing`, and `extra` appended (more sections).
pub fn roll_fleet(tb: &Testbed, name: &str, extra: &str, on_missing: &str) -> PathBuf {
    let mut services = String::new();
    for i in 1..=6 {
        services.push_str(&format!(
            "[remote.host.r{i}]\nservices = [\"ssh\", \"redis-server\"]\n"
        ));
    }
    for i in 1..=3 {
        services.push_str(&format!(
            "[remote.host.e{i}]\nservices = [\"ssh\", \"etcd\"]\n"
        ));
    }
    let text = format!(
        r#"[fleet]
name = "testbed"

[[import]]
csv = "hosts.csv"

# one host: drain + reboot (3 s delay) + boot + verify + gate
[defaults.durations]
redis-cluster = "8s"
etcd = "8s"
none = "8s"

[[cluster]]
id = "cache"
kind = "redis-cluster"
members = ["r1", "r2", "r3", "r4", "r5", "r6"]
max_unavailable = 1
return_timeout = "30s"

[[cluster]]
id = "kv"
kind = "etcd"
members = ["e1", "e2", "e3"]
max_unavailable = 1
return_timeout = "30s"

[maintenance]
name = "testbed-roll"
notice_lead = "0s"
max_concurrent = 3
on_missing = "{on_missing}"

{SSH_REMOTE}{services}
{extra}
"#
    );
    let p = tb.dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

pub fn journal(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn active(phase: &str) -> bool {
    matches!(
        phase,
        "preflight"
            | "draining"
            | "rebooting"
            | "returning"
            | "verifying"
            | "restoring"
            | "missing"
    )
}

/// The most members of each cluster that were out at once, replaying the journal.
pub fn max_out(j: &[Value], members: &[&str]) -> usize {
    let mut out = std::collections::HashSet::new();
    let mut max = 0;
    for r in j.iter().filter(|r| r["type"] == "transition") {
        let h = r["host_id"].as_str().unwrap_or_default();
        if !members.contains(&h) {
            continue;
        }
        if active(r["to"].as_str().unwrap_or_default()) {
            out.insert(h.to_string());
        } else {
            out.remove(h);
        }
        max = max.max(out.len());
    }
    max
}

pub fn figures(name: &str, v: Value) {
    let dir = repo().join("target/testbed-figures");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&v).unwrap(),
    );
    eprintln!("FIGURES {name}: {v}");
}

pub fn skip_unless_root() -> bool {
    // SAFETY-free check: namespaces need root
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    if uid != "0" {
        eprintln!("the testbed needs root; run the e2e tests as root (CI does)");
        return true;
    }
    false
}
