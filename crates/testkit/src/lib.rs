//! What rollcall's tests share, written once (the way `rustls-test` serves rustls):
//! temporary directories and kill-on-drop children, free ports and waiting for a
//! listener, the `rollcall` binary, fleet fixtures, a real SMTP server
//! ([`smtp::Smtpd`], Debian's python3-aiosmtpd) and a webhook receiver
//! ([`webhook::Sink`]), loopback sshd/Redis/etcd ([`loopback`]), a real PostgreSQL
//! ([`pg::Postgres`]), the netns testbed
//! ([`testbed`]), a fake cloud metadata server ([`metadata::MetaServer`]), AWS's own
//! IMDS mock ([`aemm`]), moto's EC2 API with injectable scheduled events ([`moto::Moto`])
//! and, with the `sim` feature, a finished simulated run ([`sim`]).
//!
//! A dev-dependency only (`publish = false`). Helpers panic with a message that says
//! what was missing: a test that cannot set up must fail loudly, not pass.

pub mod aemm;
pub mod fleets;
pub mod loopback;
pub mod metadata;
pub mod moto;
pub mod peers;
pub mod pg;
mod serve;
#[cfg(feature = "sim")]
pub mod sim;
pub mod smtp;
pub mod testbed;
pub mod webhook;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/xsa-108.toml`, the example fleet.
pub fn xsa() -> PathBuf {
    repo().join("examples/xsa-108.toml")
}

/// Lossy UTF-8 of a process's output.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh temporary directory (`rollcall-<name>-<pid>`), removed on drop (also when
/// the test fails).
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    pub fn new(name: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("rollcall-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        TmpDir(d)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// `rollcall.db` in this directory.
    pub fn db(&self) -> PathBuf {
        self.0.join("rollcall.db")
    }
}

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TmpDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) on drop, also when the test fails.
pub struct Kill(pub Child);

impl Kill {
    pub fn spawn(cmd: &mut Command, what: &str) -> Kill {
        Kill(cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}")))
    }

    /// Whether the process has exited (reaped; its status stays readable).
    pub fn has_exited(&mut self) -> bool {
        self.0.try_wait().map(|s| s.is_some()).unwrap_or(true)
    }

    /// Wait for the process and collect what it wrote to its piped stdout and stderr.
    pub fn output(mut self) -> Output {
        use std::io::Read;
        let mut err = self.0.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        });
        let mut stdout = Vec::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_end(&mut stdout);
        }
        let status = self.0.wait().expect("wait for the child");
        Output {
            status,
            stdout,
            stderr: reader.join().unwrap_or_default(),
        }
    }
}

impl From<Child> for Kill {
    fn from(c: Child) -> Kill {
        Kill(c)
    }
}

impl std::ops::Deref for Kill {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Kill {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on 127.0.0.1 now (the kernel's choice).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A port free on every one of `addrs` (and `port + d` for each `d` in `extra` too),
/// picked at random in 20000..40000 so that parallel tests rarely collide.
pub fn free_port_on(addrs: &[&str], extra: &[u16]) -> u16 {
    let mut x = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    for _ in 0..1000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let p = 20000 + ((x >> 33) % 20000) as u16;
        let free = |a: &&str| {
            std::iter::once(0)
                .chain(extra.iter().copied())
                .all(|d| TcpListener::bind(format!("{a}:{}", p + d)).is_ok())
        };
        if addrs.iter().all(free) {
            return p;
        }
    }
    panic!("no free port");
}

/// A TCP server on `addr` (`127.0.0.x`, a free port) that reads a request and answers
/// `answer` on every connection, or (`None`) reads and never answers; its port. It lives
/// as long as the test process.
pub fn canned_server(addr: &str, answer: Option<&'static str>) -> u16 {
    use std::io::{Read, Write};
    let port = free_port_on(&[addr], &[]);
    let l = TcpListener::bind(format!("{addr}:{port}")).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            match answer {
                Some(a) => {
                    let _ = s.write_all(a.as_bytes());
                }
                None => held.push(s),
            }
        }
    });
    port
}

/// Poll `f` every 100 ms until it holds; past `timeout`, fail naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > timeout {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Something accepts TCP connections at `addr` (`ip:port`).
pub fn listening(addr: &str) -> bool {
    std::net::TcpStream::connect_timeout(
        &addr.parse::<SocketAddr>().unwrap(),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// `sh -c cmd`, which must succeed; its stdout.
pub fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "`{cmd}` failed: {}", text(&o.stderr));
    text(&o.stdout)
}

/// The `rollcall` binary, run from the workspace root. Get it with [`bin!`] in the
/// cli crate's tests (cargo sets the path for that crate only).
#[derive(Clone, Copy)]
pub struct Bin(pub &'static str);

/// The `rollcall` binary of the crate under test: `const RC: Bin = rollcall_testkit::bin!();`
#[macro_export]
macro_rules! bin {
    () => {
        $crate::Bin(env!("CARGO_BIN_EXE_rollcall"))
    };
}

impl Bin {
    /// A command for the binary, in the workspace root.
    pub fn cmd(self) -> Command {
        let mut c = Command::new(self.0);
        c.current_dir(repo());
        c
    }
    /// Run to its end; its output.
    pub fn run(self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run rollcall")
    }
    /// Start it with stdout and stderr discarded, killed on drop.
    pub fn spawn(self, args: &[&str]) -> Kill {
        let mut c = self.cmd();
        c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        Kill::spawn(&mut c, "rollcall")
    }
    /// Start it with stdout and stderr piped (read them with [`Kill::output`]), killed on
    /// drop.
    pub fn spawn_output(self, args: &[&str]) -> Kill {
        let mut c = self.cmd();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        Kill::spawn(&mut c, "rollcall")
    }
}
