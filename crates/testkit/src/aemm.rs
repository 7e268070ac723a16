//! AWS's own IMDS mock, `amazon-ec2-metadata-mock` (AEMM, a Go module built by
//! `scripts/test` into `target/peers/bin`), started on a free loopback port with one
//! scheduled event, IMDSv2 only (a session token is required).

use crate::{Kill, TmpDir, free_port, listening, repo, wait_for};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where `scripts/test` puts the peers it builds (`$ROLLCALL_PEERS_BIN` overrides).
pub fn peers_bin() -> PathBuf {
    std::env::var_os("ROLLCALL_PEERS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/peers/bin"))
}

/// The event AEMM serves (times as Unix seconds).
#[derive(Debug, Clone)]
pub struct AemmEvent {
    /// `system-reboot`, `instance-reboot`, `system-maintenance`, `instance-retirement`,
    /// `instance-stop`.
    pub code: String,
    /// `active`, `completed` or `canceled`.
    pub state: String,
    pub not_before: i64,
    pub not_after: i64,
    pub deadline: i64,
}

/// A running AEMM; killed on drop.
pub struct Aemm {
    pub port: u16,
    _proc: Kill,
    _home: TmpDir,
}

impl Aemm {
    /// Its IMDS endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .expect("a time in range")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Start AEMM serving `ev`; fails the test when the binary is missing.
pub fn start(ev: &AemmEvent) -> Aemm {
    let bin = peers_bin().join("ec2-metadata-mock");
    assert!(
        bin.exists(),
        "{} is missing: scripts/test builds it (go install github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock@v1.13.0)",
        bin.display()
    );
    // its own HOME, so that no stray $HOME/aemm-config.json is read
    let home = TmpDir::new(&format!("aemm-{}", free_port()));
    let port = free_port();
    let mut cmd = Command::new(&bin);
    cmd.env("HOME", home.path())
        .args([
            "events",
            "--imdsv2",
            "-n",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["--code", &ev.code, "--state", &ev.state])
        .args(["--not-before", &rfc3339(ev.not_before)])
        .args(["--not-after", &rfc3339(ev.not_after)])
        .args(["--not-before-deadline", &rfc3339(ev.deadline)])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.path().join("aemm.log")).unwrap());
    let proc = Kill::spawn(&mut cmd, "ec2-metadata-mock");
    wait_for("ec2-metadata-mock", Duration::from_secs(10), || {
        listening(&format!("127.0.0.1:{port}"))
    });
    Aemm {
        port,
        _proc: proc,
        _home: home,
    }
}
