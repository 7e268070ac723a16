//! How commands reach a host: over SSH (russh, key or agent auth, known_hosts always
//! checked) or through a local command template (`exec`).

use crate::BoxFuture;
use crate::config::{SshSettings, SshTarget};
pub use crate::judge::truncate;
use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a host command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutput {
    /// `None`: the command ended without an exit status (session dropped, killed).
    pub status: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
    /// A short description for error details: exit status and the first output line.
    pub fn describe(&self) -> String {
        let line = |s: &str| {
            s.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        };
        let what = match self.status {
            Some(c) => format!("exit {c}"),
            None => "no exit status (connection dropped)".into(),
        };
        match line(&self.stderr).or_else(|| line(&self.stdout)) {
            Some(l) => format!("{what}: {}", truncate(&l, 200)),
            None => what,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// Could not connect or log in (the host is unreachable for this purpose).
    Unreachable(String),
    /// The host key did not match known_hosts, or is not in it.
    HostKey(String),
    /// No answer within the command timeout.
    Timeout(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Unreachable(s) | RunError::HostKey(s) => f.write_str(s),
            RunError::Timeout(d) => write!(f, "no answer within {}s", d.as_secs_f64()),
        }
    }
}

impl std::error::Error for RunError {}

/// Why an SSH login failed (the connection was made).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("cannot load the key {}: {source}", .path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: russh::keys::Error,
    },
    #[error("login failed: {0}")]
    Publickey(#[source] russh::Error),
    #[error("ssh.agent = true but SSH_AUTH_SOCK is not set (or set ssh.agent_socket)")]
    NoAgentSocket,
    #[error("cannot reach the SSH agent at {}: {source}", .socket.display())]
    Agent {
        socket: PathBuf,
        #[source]
        source: russh::keys::Error,
    },
    #[error("the SSH agent did not list its keys: {0}")]
    AgentKeys(#[source] russh::keys::Error),
    #[error("login with the agent failed: {0}")]
    AgentLogin(#[source] russh::AgentAuthError),
    #[error("no key to log in with: set ssh.identity or ssh.agent = true")]
    NoKey,
    /// Every key was offered and refused.
    #[error("{user} refused: tried {}", .tried.join(", "))]
    Refused { user: String, tried: Vec<String> },
}

/// The identity of a host for a transport.
#[derive(Debug, Clone)]
pub struct HostRef {
    pub id: String,
    pub address: String,
}

impl HostRef {
    /// A fleet host: its address, or its id when it has none.
    pub fn of(h: &rollcall_core::Host) -> HostRef {
        HostRef {
            id: h.id.clone(),
            address: if h.address.is_empty() {
                h.id.clone()
            } else {
                h.address.clone()
            },
        }
    }
}

pub trait Transport: Send + Sync + 'static {
    /// Run a shell command on the host and collect its output.
    fn run<'a>(
        &'a self,
        host: &'a HostRef,
        command: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CmdOutput, RunError>>;
    fn name(&self) -> &'static str;
}

/// Quote a string for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Run `sh -c script` locally, with a timeout; the child is killed on timeout.
pub async fn run_local(script: &str, timeout: Duration) -> Result<CmdOutput, RunError> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let child = cmd.output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => Err(RunError::Timeout(timeout)),
        Ok(Err(e)) => Err(RunError::Unreachable(format!(
            "cannot run `sh -c {}`: {e}",
            truncate(script, 80)
        ))),
        Ok(Ok(out)) => Ok(CmdOutput {
            status: out.status.code().map(|c| c as u32),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

/// `exec`: host commands run through a local template, e.g.
/// `ssh -i key root@{address} {command}` or `ip netns exec lab-{host} sh -c {command}`.
pub struct ExecTransport {
    pub template: String,
}

impl ExecTransport {
    pub fn expand(&self, host: &HostRef, command: &str) -> String {
        self.template
            .replace("{host}", &shell_quote(&host.id))
            .replace("{address}", &shell_quote(&host.address))
            .replace("{command}", &shell_quote(command))
    }
}

impl Transport for ExecTransport {
    fn run<'a>(
        &'a self,
        host: &'a HostRef,
        command: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CmdOutput, RunError>> {
        Box::pin(async move { run_local(&self.expand(host, command), timeout).await })
    }
    fn name(&self) -> &'static str {
        "exec"
    }
}

/// `ssh`: one SSH connection per command (russh), authenticated with a key file and/or
/// the agent; the server's key must be in known_hosts.
pub struct SshTransport {
    pub settings: SshSettings,
}

struct Checker {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    verdict: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;
    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            self.set("the server offered a certificate; rollcall checks plain host keys against known_hosts".into());
            return Ok(false);
        };
        let fp = key.fingerprint(HashAlg::Sha256);
        let name = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.set(format!(
                    "host key {} {fp} of {name} is not in {}; rollcall never trusts a key on first use: verify it and add it (ssh-keyscan)",
                    key.algorithm(),
                    self.known_hosts.display()
                ));
                Ok(false)
            }
            Err(russh::keys::Error::KeyChanged { line }) => {
                self.set(format!(
                    "HOST KEY MISMATCH for {name}: it offered {} {fp}, which differs from {} line {line}; refusing to connect (a reinstalled host or a man in the middle: check, then fix known_hosts)",
                    key.algorithm(),
                    self.known_hosts.display()
                ));
                Ok(false)
            }
            Err(e) => {
                self.set(format!(
                    "cannot check {name} against {}: {e}",
                    self.known_hosts.display()
                ));
                Ok(false)
            }
        }
    }
}

impl Checker {
    fn set(&self, s: String) {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(s);
        }
    }
}

fn default_known_hosts() -> PathBuf {
    std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root"))
        .join(".ssh/known_hosts")
}

fn default_identities() -> Vec<PathBuf> {
    let home = std::env::var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/root"));
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .filter(|p| p.exists())
        .collect()
}

impl SshTransport {
    async fn session(
        &self,
        host: &HostRef,
        t: &SshTarget,
    ) -> Result<client::Handle<Checker>, RunError> {
        let verdict = Arc::new(Mutex::new(None));
        let checker = Checker {
            host: host.address.clone(),
            port: t.port,
            known_hosts: self
                .settings
                .known_hosts
                .clone()
                .unwrap_or_else(default_known_hosts),
            verdict: verdict.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            ..Default::default()
        });
        let ct = self.settings.connect_timeout;
        let target = format!("{}@{}:{}", t.user, host.address, t.port);
        let connected = tokio::time::timeout(
            ct,
            client::connect(config, (host.address.as_str(), t.port), checker),
        )
        .await;
        let mut handle = match connected {
            Err(_) => {
                return Err(RunError::Unreachable(format!(
                    "ssh {target}: no connection within {}s",
                    ct.as_secs_f64()
                )));
            }
            Ok(Err(e)) => {
                if let Some(v) = verdict.lock().ok().and_then(|v| v.clone()) {
                    return Err(RunError::HostKey(format!("ssh {target}: {v}")));
                }
                return Err(RunError::Unreachable(format!("ssh {target}: {e}")));
            }
            Ok(Ok(h)) => h,
        };
        let auth = tokio::time::timeout(ct, self.authenticate(&mut handle, t)).await;
        match auth {
            Err(_) => Err(RunError::Unreachable(format!(
                "ssh {target}: no login within {}s",
                ct.as_secs_f64()
            ))),
            Ok(Err(e)) => Err(RunError::Unreachable(format!("ssh {target}: {e}"))),
            Ok(Ok(())) => Ok(handle),
        }
    }

    async fn authenticate(
        &self,
        h: &mut client::Handle<Checker>,
        t: &SshTarget,
    ) -> Result<(), LoginError> {
        let mut tried = Vec::new();
        let keys: Vec<PathBuf> = match &t.identity {
            Some(p) => vec![p.clone()],
            None if self.settings.agent => Vec::new(),
            None => default_identities(),
        };
        let rsa_hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
        for path in &keys {
            let key = load_key(path)?;
            let r = h
                .authenticate_publickey(
                    &t.user,
                    PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash),
                )
                .await
                .map_err(LoginError::Publickey)?;
            if r.success() {
                return Ok(());
            }
            tried.push(format!("key {}", path.display()));
        }
        if self.settings.agent {
            let sock = match &self.settings.agent_socket {
                Some(p) => p.clone(),
                None => std::env::var_os("SSH_AUTH_SOCK")
                    .map(PathBuf::from)
                    .ok_or(LoginError::NoAgentSocket)?,
            };
            let mut agent = russh::keys::agent::client::AgentClient::connect_uds(&sock)
                .await
                .map_err(|source| LoginError::Agent {
                    socket: sock.clone(),
                    source,
                })?;
            let ids = agent
                .request_identities()
                .await
                .map_err(LoginError::AgentKeys)?;
            for id in ids {
                let russh::keys::agent::AgentIdentity::PublicKey { key, comment } = id else {
                    continue;
                };
                let r = h
                    .authenticate_publickey_with(&t.user, key, rsa_hash, &mut agent)
                    .await
                    .map_err(LoginError::AgentLogin)?;
                if r.success() {
                    return Ok(());
                }
                tried.push(format!("agent key {comment}"));
            }
            if tried.is_empty() {
                tried.push("the SSH agent (it holds no keys)".into());
            }
        }
        if tried.is_empty() {
            return Err(LoginError::NoKey);
        }
        Err(LoginError::Refused {
            user: t.user.clone(),
            tried,
        })
    }

    async fn exec(&self, host: &HostRef, command: &str) -> Result<CmdOutput, RunError> {
        let t = self.settings.target(&host.id);
        let handle = self.session(host, &t).await?;
        let dropped = |e: russh::Error| RunError::Unreachable(format!("ssh {}: {e}", host.address));
        let mut ch = handle.channel_open_session().await.map_err(dropped)?;
        ch.exec(true, command).await.map_err(dropped)?;
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = ch.wait().await {
            match msg {
                russh::ChannelMsg::Data { data } => out.extend_from_slice(&data),
                russh::ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
                russh::ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(CmdOutput {
            status,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }
}

fn load_key(path: &Path) -> Result<russh::keys::PrivateKey, LoginError> {
    russh::keys::load_secret_key(path, None).map_err(|source| LoginError::Key {
        path: path.to_path_buf(),
        source,
    })
}

impl Transport for SshTransport {
    fn run<'a>(
        &'a self,
        host: &'a HostRef,
        command: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<CmdOutput, RunError>> {
        Box::pin(async move {
            match tokio::time::timeout(timeout, self.exec(host, command)).await {
                Ok(r) => r,
                Err(_) => Err(RunError::Timeout(timeout)),
            }
        })
    }
    fn name(&self) -> &'static str {
        "ssh"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain", "with space", "it's", "$(rm -rf /)", "", "a\"b'c"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

    #[tokio::test]
    async fn exec_transport_expands_the_template_and_reports_exit_and_timeout() {
        let t = ExecTransport {
            template: "H={host} A={address} sh -c {command}".into(),
        };
        let h = HostRef {
            id: "web 1".into(),
            address: "10.0.0.1".into(),
        };
        let o = t
            .run(
                &h,
                "echo \"$H/$A\"; echo oops >&2; exit 3",
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(o.stdout, "web 1/10.0.0.1\n");
        assert_eq!(o.status, Some(3));
        assert_eq!(o.describe(), "exit 3: oops");
        let e = t
            .run(&h, "sleep 5", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, RunError::Timeout(_)), "{e:?}");
    }
}
