//! A real EC2 API: moto's server (PyPI `moto[server]`, installed by `scripts/test` into a
//! venv) with a control endpoint in the same process (`crates/testkit/moto/server.py`)
//! that injects scheduled events, overrides status checks, counts `RebootInstances` per
//! instance and runs a hook command on each reboot.
//!
//! The venv is `$ROLLCALL_MOTO_VENV`, default `~/.cache/rollcall/moto-5.2.5`. Without it
//! the tests fail (like every other peer), saying how to install it.

use crate::{Kill, repo, text};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The moto version `scripts/test` installs.
pub const MOTO_VERSION: &str = "5.2.5";

/// The venv's python.
pub fn python() -> PathBuf {
    crate::peers::venv_python(
        "ROLLCALL_MOTO_VENV",
        &format!("moto-{MOTO_VERSION}"),
        "moto",
        &format!(
            "creates the venv with `python3 -m venv` and installs moto[server]=={MOTO_VERSION} \
             from PyPI"
        ),
    )
}

/// moto's EC2 server on a free loopback port and its control endpoint; killed on drop.
pub struct Moto {
    _child: Kill,
    pub port: u16,
    pub control: u16,
}

/// One scheduled event to inject (times in Unix seconds).
#[derive(Debug, Clone)]
pub struct Ev<'a> {
    pub id: &'a str,
    pub code: &'a str,
    pub description: &'a str,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub deadline: Option<i64>,
}

impl Moto {
    pub fn start() -> Moto {
        let script = repo().join("crates/testkit/moto/server.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = Kill::spawn(&mut cmd, "moto (crates/testkit/moto/server.py)");
        let out = child.0.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("moto did not say it was ready within 60 s"));
        let ports: Vec<u16> = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("moto's server.py printed {line:?}, not `ready PORT PORT`"))
            .split_whitespace()
            .map(|p| p.parse().expect("a port"))
            .collect();
        Moto {
            _child: child,
            port: ports[0],
            control: ports[1],
        }
    }

    /// The EC2 endpoint (`[aws] endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replace the scheduled events of `instance` (an empty list clears them).
    pub fn set_events(&self, region: &str, instance: &str, events: &[Ev<'_>]) {
        let evs: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!({"id": e.id, "code": e.code, "description": e.description,
                "not_before": e.not_before, "not_after": e.not_after, "deadline": e.deadline})
            })
            .collect();
        let body = serde_json::json!({"region": region, "instance": instance, "events": evs});
        self.post("/events", &body);
    }

    /// Override the status checks moto reports (`None`: moto's own, `ok` while running).
    pub fn set_checks(&self, region: &str, instance: &str, inst: Option<&str>, sys: Option<&str>) {
        let body = serde_json::json!({"region": region, "instance": instance,
            "instance_check": inst, "system_check": sys});
        self.post("/status", &body);
    }

    /// `RebootInstances` calls per instance id.
    pub fn reboots(&self) -> BTreeMap<String, u64> {
        let (status, body) = self.http("GET", "/reboots", "");
        assert_eq!(status, 200, "GET /reboots: {body}");
        serde_json::from_str(&body).expect("reboots as JSON")
    }

    /// Run `sh -c COMMAND rollcall-hook INSTANCE` on every reboot (`None`: stop).
    pub fn on_reboot(&self, command: Option<&str>) {
        self.post("/hook", &serde_json::json!({ "command": command }));
    }

    /// From now on moto checks every request's signature (botocore's signer recomputes
    /// it) against the key this returns: `(access key id, secret)` of an IAM user allowed
    /// `ec2:*`.
    pub fn require_signatures(&self) -> (String, String) {
        let answer = self.post("/auth", &serde_json::json!({}));
        let v: serde_json::Value = serde_json::from_str(&answer).expect("JSON from /auth");
        let s = |k: &str| v[k].as_str().expect("a key").to_string();
        (s("access_key_id"), s("secret_access_key"))
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> String {
        let (status, answer) = self.http("POST", path, &body.to_string());
        assert_eq!(status, 200, "moto control {path}: {answer}");
        answer
    }

    /// One HTTP/1.1 exchange with the control endpoint.
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.control))
            .unwrap_or_else(|e| panic!("moto control on {}: {e}", self.control));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("send to moto control");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read moto control");
        let t = text(&buf);
        let status = t
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("moto control answered {t:?}"));
        let body = t.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (status, body.to_string())
    }
}
