//! A real PostgreSQL for tests: Debian's PostgreSQL 15 (`initdb` and `postgres` from
//! `/usr/lib/postgresql/15/bin`, package `postgresql`) in a temporary directory, on a free
//! loopback port, with its unix socket in that directory. One server per test binary is
//! the budget; each test takes its own database with [`Postgres::create_db`].
//!
//! initdb refuses to run as root: when the tests run as root, the server runs as the
//! `postgres` user that Debian's package creates (the `uid`/`gid` of the spawned processes
//! are set directly, no `su`/`runuser` in between, so killing the child kills the server).
//! `fsync`, `full_page_writes` and `synchronous_commit` are off: the tests kill the server
//! with a fast shutdown (which flushes everything), never the machine. The benchmark turns
//! them back on with [`Postgres::start_with`].

use crate::{Kill, TmpDir, free_port, wait_for};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where Debian's PostgreSQL 15 server binaries are.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser initdb creates (trust authentication, loopback only).
pub const USER: &str = "rollcall";

/// Settings for speed in tests (see the module docs).
const FAST: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("synchronous_commit", "off"),
];

/// A PostgreSQL server, killed on drop.
pub struct Postgres {
    dir: TmpDir,
    port: u16,
    settings: Vec<(String, String)>,
    /// `(uid, gid)` of the `postgres` user when we are root.
    owner: Option<(u32, u32)>,
    child: Option<Kill>,
}

impl Postgres {
    /// A fresh server for tests (fsync off).
    pub fn start() -> Postgres {
        Postgres::start_with(FAST)
    }

    /// A fresh server with these `-c name=value` settings (none: PostgreSQL's defaults,
    /// fsync on, as a user's server would run).
    pub fn start_with(settings: &[(&str, &str)]) -> Postgres {
        let dir = TmpDir::new(&format!("pg-{}", free_port()));
        let owner = server_owner();
        if let Some((uid, gid)) = owner {
            chown(dir.path(), uid, gid);
        }
        let mut pg = Postgres {
            port: free_port(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            owner,
            child: None,
            dir,
        };
        pg.initdb();
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// A command for one of the server's binaries, run as the server's owner.
    fn command(&self, bin: &str) -> Command {
        let mut c = Command::new(Path::new(BIN).join(bin));
        if let Some((uid, gid)) = self.owner {
            c.uid(uid).gid(gid);
        }
        c.current_dir(self.dir.path());
        c
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .args(["-D", self.data().to_str().unwrap()])
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(["--locale=C"])
            .output()
            .unwrap_or_else(|e| {
                panic!("start {BIN}/initdb: {e} (install Debian's postgresql: scripts/test)")
            });
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            crate::text(&out.stdout),
            crate::text(&out.stderr)
        );
    }

    fn start_server(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        if let Some((uid, gid)) = self.owner {
            chown(&self.log(), uid, gid);
        }
        let mut cmd = self.command("postgres");
        cmd.args(["-D", self.data().to_str().unwrap()])
            .args(["-p", &self.port.to_string()])
            .args(["-k", self.dir.path().to_str().unwrap()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.settings {
            cmd.args(["-c", &format!("{k}={v}")]);
        }
        let child = Kill::spawn(&mut cmd, &format!("{BIN}/postgres"));
        self.watchdog(child.id());
        self.child = Some(child);
        let port = self.port.to_string();
        let ready = || {
            self.command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", USER, "-q"])
                .status()
                .is_ok_and(|s| s.success())
        };
        for _ in 0..300 {
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "PostgreSQL did not start on port {}: {}",
            self.port,
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    /// A server in a `static` (see [`shared`]) is never dropped: a watchdog shell stops it
    /// (fast shutdown) and removes its directory once this test process is gone.
    fn watchdog(&self, server: u32) {
        let script = format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {server} 2>/dev/null; do sleep 0.5; done; \
             if kill -0 {server} 2>/dev/null; then kill -INT {server}; \
             while kill -0 {server} 2>/dev/null; do sleep 0.1; done; rm -rf '{dir}'; fi",
            me = std::process::id(),
            dir = self.dir.display()
        );
        // `( … ) &`: the watchdog is detached (reparented to init), the shell that
        // started it is reaped here
        Command::new("sh")
            .args(["-c", &format!("( {script} ) &")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start the PostgreSQL watchdog (sh)");
    }

    /// A new, empty database with a unique name starting with `prefix`; its URL.
    pub fn fresh_db(&self, prefix: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.create_db(&format!("{name}_{}", N.fetch_add(1, Ordering::Relaxed)))
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` (`postgres` always exists).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database; its URL. Fails the test if `name` exists.
    pub fn create_db(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs SQL in database `postgres` with `psql`, which must succeed; its output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs SQL in database `db` with `psql` (unaligned, tuples only); its output.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            crate::text(&out.stderr)
        );
        crate::text(&out.stdout)
    }

    /// Stops the server (fast shutdown: sessions are ended, everything committed is
    /// flushed) and waits for it to exit. Clients see their connections close.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let t = std::time::Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if t.elapsed() > Duration::from_secs(30) {
                panic!("PostgreSQL (pid {pid}) did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a stopped server again, on the same port with the same data.
    pub fn start_again(&mut self) {
        self.start_server();
    }

    /// Stops and starts the server.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Waits until `f` holds (e.g. a client reconnected), 20 s at most.
    pub fn wait(&self, what: &str, f: impl FnMut() -> bool) {
        wait_for(what, Duration::from_secs(20), f);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGKILL of the postmaster alone would leave its backends running; a fast
        // shutdown ends them all.
        if self.child.is_some() && !std::thread::panicking() {
            self.stop();
        } else if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
        }
    }
}

/// The test binary's one server (started on first use, fsync off); take a database of
/// your own with [`Postgres::fresh_db`]. A test that stops or restarts a server starts its
/// own in its own test binary.
pub fn shared() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(Postgres::start)
}

/// `(uid, gid)` of Debian's `postgres` user when we are root (initdb refuses root), else
/// `None` (run as ourselves).
fn server_owner() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().expect("run id");
    if crate::text(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "running as root, and there is no `postgres` user to run PostgreSQL as \
             (install Debian's postgresql: scripts/test)"
        );
        crate::text(&out.stdout).trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}
