//! Real servers on loopback for the driver tests: sshd, a 6-node Redis Cluster and a
//! 3-member etcd cluster, each on its own 127.0.0.x addresses and a free port, stopped
//! (by PID) when the guard drops.

use crate::{Kill, free_port_on, listening, sh, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Procs {
    pub children: Vec<Kill>,
    pub dir: PathBuf,
}

/// A fresh directory for a server's files (`rollcall-drv-<name>-<pid>`), kept after the
/// test for its logs.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rollcall-drv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn keygen(path: &Path) {
    sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f {}",
        path.display()
    ));
}

/// sshd on `addr` with its own host key; accepts `dir/id_ed25519` for root.
pub struct Sshd {
    pub procs: Procs,
    pub addr: String,
    pub port: u16,
    pub known_hosts: PathBuf,
    pub key: PathBuf,
}

pub fn sshd(name: &str, addr: &str) -> Sshd {
    let dir = tmpdir(name);
    std::fs::create_dir_all("/run/sshd").unwrap();
    let hk = dir.join("host_ed25519");
    keygen(&hk);
    let key = dir.join("id_ed25519");
    keygen(&key);
    std::fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port_on(&[addr], &[]);
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress {addr}\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {dir}/sshd.pid\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            hk = hk.display(),
            ak = dir.join("authorized_keys").display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    let procs = Procs {
        children: vec![Kill(child)],
        dir: dir.clone(),
    };
    wait_for("sshd", Duration::from_secs(10), || {
        listening(&format!("{addr}:{port}"))
    });
    let pubkey = std::fs::read_to_string(dir.join("host_ed25519.pub")).unwrap();
    let mut kh = pubkey.split_whitespace();
    let (alg, b64) = (kh.next().unwrap(), kh.next().unwrap());
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, format!("[{addr}]:{port} {alg} {b64}\n")).unwrap();
    Sshd {
        procs,
        addr: addr.into(),
        port,
        known_hosts,
        key,
    }
}

/// A Redis Cluster: one node per address, all on the same port, 3 masters + 3 replicas.
pub struct Redis {
    pub procs: Procs,
    pub addrs: Vec<String>,
    pub port: u16,
}

pub fn redis_cluster(name: &str, addrs: &[&str]) -> Redis {
    let dir = tmpdir(name);
    let port = free_port_on(addrs, &[10000]);
    let mut children = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let d = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                a,
                "--port",
                &port.to_string(),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "3000",
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "no",
                // the peers must see this node at its own address, not 127.0.0.1
                "--cluster-announce-ip",
                a,
            ])
            .arg("--dir")
            .arg(&d)
            .stdout(std::fs::File::create(d.join("log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.push(Kill(child));
    }
    let procs = Procs { children, dir };
    for a in addrs {
        wait_for("redis", Duration::from_secs(10), || {
            listening(&format!("{a}:{port}"))
        });
    }
    let nodes: Vec<String> = addrs.iter().map(|a| format!("{a}:{port}")).collect();
    sh(&format!(
        "timeout 60 redis-cli --cluster create {} --cluster-replicas 1 --cluster-yes >/dev/null",
        nodes.join(" ")
    ));
    let r = Redis {
        procs,
        addrs: addrs.iter().map(|s| s.to_string()).collect(),
        port,
    };
    r.wait_healthy(Duration::from_secs(60));
    r
}

impl Redis {
    pub fn cli(&self, i: usize, args: &str) -> String {
        sh(&format!(
            "redis-cli -h {} -p {} {args}",
            self.addrs[i], self.port
        ))
    }
    pub fn role(&self, i: usize) -> String {
        self.cli(i, "info replication")
            .lines()
            .find_map(|l| l.trim().strip_prefix("role:").map(str::to_string))
            .unwrap_or_default()
    }
    pub fn wait_healthy(&self, t: Duration) {
        wait_for("redis cluster ok everywhere, replicas in sync", t, || {
            (0..self.addrs.len()).all(|i| {
                let info = self.cli(i, "cluster info");
                let repl = self.cli(i, "info replication");
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.addrs.len()))
                    && (repl.contains("role:master") && repl.contains("connected_slaves:1")
                        || repl.contains("master_link_status:up"))
            })
        });
    }
}

/// A 3-member etcd cluster, one member per address, client `port`, peer `port+1`.
pub struct Etcd {
    pub procs: Procs,
    pub addrs: Vec<String>,
    pub port: u16,
}

pub fn etcd_cluster(name: &str, addrs: &[&str]) -> Etcd {
    let dir = tmpdir(name);
    let port = free_port_on(addrs, &[1]);
    let initial: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("m{i}=http://{a}:{}", port + 1))
        .collect();
    let mut children = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let d = dir.join(format!("m{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let child = Command::new("etcd")
            .args([
                "--name",
                &format!("m{i}"),
                "--listen-client-urls",
                &format!("http://{a}:{port}"),
                "--advertise-client-urls",
                &format!("http://{a}:{port}"),
                "--listen-peer-urls",
                &format!("http://{a}:{}", port + 1),
                "--initial-advertise-peer-urls",
                &format!("http://{a}:{}", port + 1),
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-token",
                name,
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "100",
                "--election-timeout",
                "1000",
            ])
            .arg("--data-dir")
            .arg(d.join("data"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("log")).unwrap())
            .spawn()
            .unwrap();
        children.push(Kill(child));
    }
    let e = Etcd {
        procs: Procs { children, dir },
        addrs: addrs.iter().map(|s| s.to_string()).collect(),
        port,
    };
    let eps = e.endpoints().join(",");
    wait_for("etcd healthy", Duration::from_secs(60), || {
        Command::new("etcdctl")
            .args(["--endpoints", &eps, "endpoint", "health"])
            .env("ETCDCTL_API", "3")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    e
}

impl Etcd {
    pub fn endpoints(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|a| format!("http://{a}:{}", self.port))
            .collect()
    }
    /// Index of the leader, from etcdctl's JSON status.
    pub fn leader(&self) -> Option<usize> {
        let out = Command::new("etcdctl")
            .args([
                "--endpoints",
                &self.endpoints().join(","),
                "-w",
                "json",
                "endpoint",
                "status",
            ])
            .env("ETCDCTL_API", "3")
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let arr = v.as_array()?;
        for (i, s) in arr.iter().enumerate() {
            let st = &s["Status"];
            if st["header"]["member_id"] == st["leader"] {
                let ep = s["Endpoint"].as_str()?;
                return self.endpoints().iter().position(|e| e == ep).or(Some(i));
            }
        }
        None
    }
}
