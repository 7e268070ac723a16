//! The runtime against a journal that does not answer, answers but loses the answer, and
//! a lease taken over under it: a real sim run each time, checked with the journal checker.

use rollcall_core::engine::{Engine, EngineConfig, check_journal};
use rollcall_core::plan::{Plan, plan};
use rollcall_drivers::sim::SimDriver;
use rollcall_fleet::LoadOptions;
use rollcall_runtime::{
    Clock, DriverKind, Ending, Lease, NewRunSpec, NoObserver, RunParams, RuntimeConfig,
    RuntimeError, StoredRun, drive, from_records, start_run, wall_ms,
};
use rollcall_store::{
    Fence, Journal, NewRun, Record, RunControl, RunRow, RunStatus, Store, StoreError,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Six hosts, two clusters, two regions.
const FLEET: &str = r#"
host = [
  { id = "dfw-1", region = "dfw", zone = "a" },
  { id = "dfw-2", region = "dfw", zone = "b" },
  { id = "dfw-3", region = "dfw", zone = "c" },
  { id = "ord-1", region = "ord", zone = "a" },
  { id = "ord-2", region = "ord", zone = "b" },
  { id = "ord-3", region = "ord", zone = "c" },
]

[fleet]
name = "outage"

[defaults]
durations = { elasticsearch = "10m", etcd = "4m" }

[maintenance]
name = "xsa-108"
start = "2026-01-05T00:00:00Z"
notice_lead = "10m"
regions = ["dfw", "ord"]

[[cluster]]
id = "search"
kind = "elasticsearch"
members = ["dfw-1", "dfw-2", "dfw-3"]
max_unavailable = 1

[[cluster]]
id = "coord"
kind = "etcd"
members = ["ord-1", "ord-2", "ord-3"]
max_unavailable = 1
"#;

struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "rollcall-runtime-{name}-{}-{}",
            std::process::id(),
            wall_ms()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sim run stored and leased in `store`; its plan. 200 simulated seconds per second:
/// about ten seconds of wall time.
async fn start<J: Journal>(store: &J, dir: &Path, id: &str) -> (StoredRun, Lease, Plan) {
    let path = dir.join("fleet.toml");
    std::fs::write(&path, FLEET).unwrap();
    let (fleet, files) = rollcall_fleet::sources::read_fleet_text(
        "fleet.toml",
        FLEET.to_string(),
        dir,
        &LoadOptions::default(),
    )
    .unwrap();
    let p = plan(&fleet);
    let params = RunParams {
        driver: DriverKind::Sim,
        clock: Clock::Scaled {
            wall_epoch_ms: wall_ms(),
            sim_epoch: fleet.maintenance.start,
            scale: 200.0,
        },
        sim: Some(Default::default()),
        world: Some(dir.join(format!("{id}.log"))),
        start: Some(fleet.maintenance.start),
        on_missing: None,
        replan: None,
    };
    let spec = NewRunSpec {
        id: id.into(),
        fleet_path: &path,
        fleet: Arc::new(fleet),
        files: &files,
        params,
        supersedes: None,
        lease_ttl_ms: 2000,
    };
    let (run, lease) = start_run(store, spec).await.unwrap();
    (run, lease, p)
}

async fn go<J: Journal>(
    store: &J,
    run: &StoredRun,
    lease: &Lease,
    p: &Plan,
) -> Result<Ending, RuntimeError> {
    let world = run.params.world.clone().unwrap();
    let driver = Arc::new(SimDriver::open(run.fleet.clone(), Default::default(), &world).unwrap());
    let engine = Engine::new(run.fleet.clone(), p, EngineConfig::default());
    let cfg = RuntimeConfig {
        handle_ctrl_c: false,
        lease_ttl: Duration::from_secs(2),
        ..RuntimeConfig::default()
    };
    let clock = run.params.clock;
    drive(engine, store, lease, driver, clock, &cfg, &mut NoObserver).await
}

/// The run completed, its journal keeps every rule, and each host was rebooted once.
async fn assert_clean(store: &Store, run: &StoredRun, p: &Plan) {
    let row = store.run(run.id()).await.unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Completed);
    let outs = from_records(run.id(), &store.journal(run.id()).await.unwrap()).unwrap();
    let broken = check_journal(&run.fleet, p, &outs);
    assert!(broken.is_empty(), "{broken:?}");
    let log = std::fs::read_to_string(run.params.world.as_ref().unwrap()).unwrap();
    let reboots = log.lines().filter(|l| l.starts_with("reboot ")).count();
    assert_eq!(reboots, 6, "each host rebooted once:\n{log}");
}

/// Another connection holds SQLite's write lock for 7 s (longer than the busy timeout)
/// in the middle of the run: the runtime's appends fail as transient, it waits, starts
/// nothing meanwhile, and then finishes with a clean journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_locked_for_seven_seconds_mid_run_is_waited_out() {
    let dir = Dir::new("locked");
    let db = dir.0.join("j.db");
    let store = Store::open(&db).await.unwrap();
    let (run, lease, p) = start(&store, &dir.0, "locked").await;
    let locker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        hold_write_lock(&db, Duration::from_secs(7)).await
    });
    let t = Instant::now();
    let ending = go(&store, &run, &lease, &p).await.unwrap();
    let (locked_at, unlocked_at) = locker.await.unwrap();
    assert!(matches!(ending, Ending::Over(_)), "{ending:?}");
    assert!(t.elapsed() > unlocked_at - locked_at, "it waited");
    assert_clean(&store, &run, &p).await;
}

/// Takes SQLite's write lock from a connection of its own for `hold`; when it had it and
/// gave it up (since the test started, roughly).
async fn hold_write_lock(db: &Path, hold: Duration) -> (Duration, Duration) {
    use sqlx::Connection;
    let t = Instant::now();
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&opts)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut conn)
        .await
        .unwrap();
    let locked = t.elapsed();
    tokio::time::sleep(hold).await;
    sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
    (locked, t.elapsed())
}

/// A journal whose answers to appends are lost now and then after they committed (a
/// connection cut after the commit): the runtime reads the journal back and never
/// appends a step twice.
struct LosesAnswers {
    inner: Store,
    appends: AtomicUsize,
    lost: AtomicUsize,
}

fn lost_answer() -> StoreError {
    StoreError::Db {
        db: rollcall_store::Db::file(std::path::Path::new("test")),
        action: "append".into(),
        source: sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset after the commit",
        )),
    }
}

impl Journal for LosesAnswers {
    fn db(&self) -> rollcall_store::Db {
        self.inner.db()
    }
    async fn create_run(&self, new: &NewRun) -> Result<RunRow, StoreError> {
        self.inner.create_run(new).await
    }
    async fn claim(&self, fence: &Fence, keys: &[String]) -> Result<(), StoreError> {
        self.inner.claim(fence, keys).await
    }
    async fn claims(&self, run: &str) -> Result<Vec<String>, StoreError> {
        self.inner.claims(run).await
    }
    async fn append(&self, fence: &Fence, records: &[Record]) -> Result<i64, StoreError> {
        let last = self.inner.append(fence, records).await?;
        // every third non-empty append: committed, but the answer never arrives
        if !records.is_empty() && self.appends.fetch_add(1, Ordering::Relaxed) % 3 == 2 {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(lost_answer());
        }
        Ok(last)
    }
    async fn journal(&self, run: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        self.inner.journal(run).await
    }
    async fn journal_since(&self, run: &str, after: i64) -> Result<Vec<(i64, Record)>, StoreError> {
        self.inner.journal_since(run, after).await
    }
    async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        self.inner.run(id).await
    }
    async fn latest_run(&self) -> Result<Option<RunRow>, StoreError> {
        self.inner.latest_run().await
    }
    async fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        self.inner.runs().await
    }
    async fn set_status(&self, f: &Fence, s: RunStatus, v: &Value) -> Result<(), StoreError> {
        self.inner.set_status(f, s, v).await
    }
    async fn set_control(&self, id: &str, c: Option<RunControl>) -> Result<(), StoreError> {
        self.inner.set_control(id, c).await
    }
    async fn take_control(&self, f: &Fence) -> Result<Option<RunControl>, StoreError> {
        self.inner.take_control(f).await
    }
    async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        ttl: i64,
    ) -> Result<Option<Fence>, StoreError> {
        self.inner.acquire_lease(id, owner, now, ttl).await
    }
    async fn renew_lease(&self, f: &Fence, now: i64, ttl: i64) -> Result<bool, StoreError> {
        self.inner.renew_lease(f, now, ttl).await
    }
    async fn take_over_lease(
        &self,
        id: &str,
        dead: &str,
        owner: &str,
        now: i64,
        ttl: i64,
    ) -> Result<Option<Fence>, StoreError> {
        self.inner.take_over_lease(id, dead, owner, now, ttl).await
    }
    async fn release_lease(&self, f: &Fence) -> Result<(), StoreError> {
        self.inner.release_lease(f).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_answer_was_lost_is_read_back_not_repeated() {
    let dir = Dir::new("lost");
    let store = Store::open(&dir.0.join("j.db")).await.unwrap();
    let flaky = LosesAnswers {
        inner: store.clone(),
        appends: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
    };
    let (run, lease, p) = start(&flaky, &dir.0, "lost").await;
    let ending = go(&flaky, &run, &lease, &p).await.unwrap();
    assert!(matches!(ending, Ending::Over(_)), "{ending:?}");
    assert!(flaky.lost.load(Ordering::Relaxed) >= 5, "answers were lost");
    assert_clean(&store, &run, &p).await;
}

/// A standby takes the lease over mid-run: the old leader's next write is refused by the
/// database, it stops at once, and nothing of its is journalled after the takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_was_taken_over_is_refused_and_stops() {
    let dir = Dir::new("fenced");
    let store = Store::open(&dir.0.join("j.db")).await.unwrap();
    let (run, lease, p) = start(&store, &dir.0, "fenced").await;
    let id = run.id().to_string();
    let (s2, owner) = (store.clone(), lease.fence.owner.clone());
    let standby = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let fence = s2
            .take_over_lease(&id, &owner, "standby", wall_ms(), 60_000)
            .await
            .unwrap()
            .expect("the leader's lease");
        let at = s2.journal(&id).await.unwrap().len();
        (fence, at, Instant::now())
    });
    let result = go(&store, &run, &lease, &p).await;
    let (fence, records_at_takeover, taken) = standby.await.unwrap();
    assert!(
        matches!(
            result,
            Err(RuntimeError::Fenced(_)) | Err(RuntimeError::LostLease)
        ),
        "{result:?}"
    );
    assert!(
        taken.elapsed() < Duration::from_secs(2),
        "stopped soon after"
    );
    assert_eq!(fence.epoch, lease.fence.epoch + 1);
    assert_eq!(
        store.journal(run.id()).await.unwrap().len(),
        records_at_takeover,
        "nothing journalled after the takeover"
    );
    let row = store.run(run.id()).await.unwrap().unwrap();
    assert_eq!(
        (row.owner.as_deref(), row.status),
        (Some("standby"), RunStatus::Running)
    );
}
