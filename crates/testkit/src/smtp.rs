//! A real SMTP server: Debian's python3-aiosmtpd writing every mail to a maildir.

use crate::{Kill, free_port, listening, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// aiosmtpd on a free loopback port, killed on drop.
pub struct Smtpd {
    _child: Kill,
    pub port: u16,
    pub maildir: PathBuf,
}

impl Smtpd {
    /// A plain server with its maildir in `dir/maildir`.
    pub fn start(dir: &Path) -> Smtpd {
        Smtpd::start_with(dir, &[])
    }

    /// With extra aiosmtpd arguments (`--tlscert`, `--requiretls`, …).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Smtpd {
        let port = free_port();
        let maildir = dir.join("maildir");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox", maildir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = Kill::spawn(&mut cmd, "python3-aiosmtpd (apt install python3-aiosmtpd)");
        wait_for(
            &format!("aiosmtpd to listen on {port}"),
            Duration::from_secs(20),
            || listening(&format!("127.0.0.1:{port}")),
        );
        Smtpd {
            _child: child,
            port,
            maildir,
        }
    }

    /// (file modification time, text) of every mail received.
    pub fn timed_mails(&self) -> Vec<(SystemTime, String)> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let t = e.metadata().and_then(|m| m.modified()).unwrap();
                v.push((t, std::fs::read_to_string(e.path()).unwrap()));
            }
        }
        v
    }

    /// The text of every mail received.
    pub fn mails(&self) -> Vec<String> {
        self.timed_mails().into_iter().map(|m| m.1).collect()
    }
}

/// A header's value, with folded lines joined (RFC 5322 unfolding).
pub fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.split("\n\n").next().unwrap_or("");
    let unfolded = head
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    unfolded
        .lines()
        .find(|l| {
            l.to_lowercase()
                .starts_with(&format!("{}:", name.to_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}
