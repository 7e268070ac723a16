//! The netns testbed (`testbed/testbed`) for the e2e tests (`rollcall-cli`'s
//! `testbed.rs`, `opensearch_testbed.rs`): its lifecycle, journal replay and figures.

use crate::repo;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command as Proc;

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
}

impl Testbed {
    /// The redis/etcd/plain testbed with 3 s reboots.
    pub fn up(name: &str) -> Testbed {
        Testbed::up_with(
            name,
            &Up {
                reboot_delay: 3,
                opensearch: false,
            },
        )
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
