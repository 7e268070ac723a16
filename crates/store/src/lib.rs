//! rollcall's run store: the append-only run journal and the state of each run, in one
//! SQLite file (`sqlx`, bundled SQLite, queries checked at run time).
//!
//! The store is generic: it knows runs, a few run columns the engine and the CLI share
//! (status, owner lease, control requests) and journal records whose `data` is opaque JSON.
//! It does not depend on `rollcall-core`. [`Store`] is every caller's type; it dispatches
//! to [`SqliteStore`] (this file) or to [`PgStore`] (module `postgres`, same method set and
//! guarantees, for HA), chosen by [`Store::connect`]'s target. The runtime acts through
//! the [`Journal`] trait.
//!
//! # Schema (version 3, [`SCHEMA_VERSION`])
//!
//! ```sql
//! CREATE TABLE runs (
//!     id          TEXT PRIMARY KEY,
//!     created_at  INTEGER NOT NULL,   -- Unix ms (wall clock)
//!     updated_at  INTEGER NOT NULL,   -- Unix ms, last change to this row (not by appends)
//!     fleet_path  TEXT NOT NULL,
//!     fleet_name  TEXT NOT NULL,
//!     maintenance TEXT NOT NULL,
//!     status      TEXT NOT NULL,      -- "running" at creation, then whatever the caller sets
//!     params      TEXT NOT NULL,      -- JSON
//!     fleet_text  TEXT NOT NULL,      -- the fleet file as it was when the run started
//!     owner       TEXT,               -- lease holder (the process driving the run)
//!     lease_until INTEGER,            -- Unix ms; the lease is free at or after this instant
//!     control     TEXT,               -- pending request from another process: pause | resume | abort
//!     summary     TEXT NOT NULL,      -- JSON
//!     fleet_imports TEXT,             -- JSON: the files it imported, with a digest (v2; NULL before)
//!     operator    TEXT,               -- who started it, user@host (v3; NULL before)
//!     epoch       INTEGER NOT NULL DEFAULT 0, -- the lease's fencing token (v3)
//!     taken_at    INTEGER,            -- Unix ms of the last takeover (v3)
//!     taken_from  TEXT                -- the holder it was taken from (v3)
//! ) STRICT;
//! CREATE INDEX runs_by_created ON runs (created_at);
//!
//! CREATE TABLE claims (               -- v3: what live runs hold exclusively
//!     key TEXT PRIMARY KEY,           -- "host:ID" or "cluster:ID"
//!     run TEXT NOT NULL REFERENCES runs (id)
//! ) STRICT, WITHOUT ROWID;
//!
//! CREATE TABLE journal (
//!     run  TEXT NOT NULL REFERENCES runs (id),
//!     seq  INTEGER NOT NULL,          -- per run, 1-based, contiguous
//!     at   INTEGER NOT NULL,          -- run clock, seconds
//!     kind TEXT NOT NULL,
//!     data TEXT NOT NULL,             -- JSON
//!     PRIMARY KEY (run, seq)
//! ) STRICT, WITHOUT ROWID;
//! ```
//!
//! Version 1 had no `fleet_imports`, version 2 no operator, epoch, takeover or claims;
//! opening an older journal adds them (runs already in it keep NULL there, epoch 0, no
//! claims until they are resumed) in the same transaction that bumps `user_version`.
//!
//! # Fencing and claims
//!
//! A run's lease carries an epoch, its fencing token ([`Fence`]), raised by every acquire
//! and takeover. Every write of the run's driver (append, status, taking a control
//! request, claims, renewal) is conditional on the fence in the same statement or
//! transaction: a stale leader's write is refused ([`StoreError::Fenced`]) whatever it
//! believes. A live run (running, paused, aborting) holds its hosts and clusters as
//! claims: a run whose claims overlap refuses to start ([`StoreError::Claimed`], naming
//! the holder); completed, aborted and replanned runs give theirs up in the transaction
//! that sets the status.
//!
//! The file is marked as rollcall's with `PRAGMA application_id` = [`APPLICATION_ID`]
//! (`0x52434C4C`, "RCLL") and `PRAGMA user_version` = the schema version, both written in the
//! same transaction that creates the tables. [`Store::open`] reads the file's 100-byte
//! SQLite header with plain file I/O before SQLite opens it, and refuses a file that is not
//! SQLite, an SQLite file of another program, or a journal of a newer schema, leaving it
//! byte-for-byte untouched and creating no `-wal`/`-shm` files beside it. (A read-only SQLite
//! connection would not do: on a WAL-mode file it leaves `-wal` and `-shm` files behind.) A
//! missing or empty (0-byte) file, or an SQLite file with no application id and no tables,
//! is initialised. The same checks run again through SQLite under the write lock before the
//! schema is created, which covers a header that lags behind an uncheckpointed WAL (the one
//! case where a foreign file gets past the first check: another program's fresh WAL-mode
//! database whose first transaction was never checkpointed; it is still refused, but SQLite
//! may checkpoint that program's own WAL into its file when the store closes it).
//!
//! # Appending
//!
//! [`Store::append`] writes a whole batch in one transaction: a batch of up to 64 records
//! is one `INSERT ... SELECT` statement that numbers the records after the run's current
//! `max(seq)` (one round trip to SQLite's thread); a larger batch is a `BEGIN IMMEDIATE`
//! transaction of 256-row INSERTs. Either way the write lock is taken before the last seq
//! is read, so seqs stay contiguous with any number of writers: tasks of this process
//! queue on the store's one writer connection, other processes wait in SQLite's busy
//! timeout (5 s). After a crash a batch is all there or not there at all.
//!
//! # Durability
//!
//! The journal runs in WAL mode with `synchronous = NORMAL`. A transaction is committed
//! once its frames are written to the WAL file; the WAL is fsynced at checkpoints, not at
//! every commit. This survives a crash of the rollcall process (kill -9, panic, OOM kill):
//! the committed frames are in the operating system's page cache and SQLite recovers them
//! on the next open. That is what rollcall needs: the orchestrator journals an intent
//! before it acts, and a restarted orchestrator must see every intent it wrote. Only a power
//! loss or a kernel crash of the orchestrator's own machine may lose the last transactions
//! (it never corrupts the file, and never keeps half a batch). `FULL` would fsync the WAL at
//! every commit and cap the journal at the disk's fsync rate to cover that case too; that is
//! a one-line change here if it is ever wanted. The crash test in `tests/store.rs` kills a
//! writer with SIGKILL mid-stream and checks that every committed batch is whole.
//!
//! Other settings: `busy_timeout` 5 s (another process holding the write lock, such as
//! `rollcall` setting a control request, makes writers wait rather than fail), foreign
//! keys on, one writer connection and up to 4 pooled readers (WAL lets readers run beside
//! the writer and see only committed transactions).
//!
//! The store owns the file: the other components' tables (`web_`, `notify_`) live in it
//! and are created through [`Store::migrate`] (versions per component in table
//! `migrations`), and use the store's pool, so there is one set of connection settings. A
//! journal follower in the same process (the notifier) waits on [`Store::appended`] instead
//! of polling the journal.

mod error;
mod postgres;
mod rows;
mod store;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, Row};

pub use error::{Db, StoreError, is_transient_sqlx};
pub use postgres::PgStore;
pub use store::{Dialect, Store, Target};

/// `PRAGMA application_id` of a rollcall journal: "RCLL".
pub const APPLICATION_ID: u32 = 0x5243_4C4C;
/// `PRAGMA user_version` of the schema this build writes and understands.
pub const SCHEMA_VERSION: i64 = 3;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pooled read connections, beside the one writer connection.
const READERS: u32 = 4;
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
/// Batches up to this size are appended by one statement (one round trip to SQLite).
const ROWS_PER_INSERT: usize = 64;
/// Rows per INSERT statement of a larger batch (5 parameters each, far below SQLite's
/// limit of 32766).
const ROWS_PER_BULK_INSERT: usize = 256;
/// SQLite primary result codes that mean "this file is not a (sound) database".
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_NOTADB: i64 = 26;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    fleet_path  TEXT NOT NULL,
    fleet_name  TEXT NOT NULL,
    maintenance TEXT NOT NULL,
    status      TEXT NOT NULL,
    params      TEXT NOT NULL,
    fleet_text  TEXT NOT NULL,
    owner       TEXT,
    lease_until INTEGER,
    control     TEXT,
    summary     TEXT NOT NULL,
    fleet_imports TEXT,
    operator    TEXT,
    epoch       INTEGER NOT NULL DEFAULT 0,
    taken_at    INTEGER,
    taken_from  TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    run TEXT NOT NULL REFERENCES runs (id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_by_run ON claims (run);
CREATE TABLE IF NOT EXISTS journal (
    run  TEXT NOT NULL REFERENCES runs (id),
    seq  INTEGER NOT NULL,
    at   INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run, seq)
) STRICT, WITHOUT ROWID;
";

/// Schema version 1 to 2: runs store the files their fleet file imported.
const MIGRATE_1_TO_2: &str = "ALTER TABLE runs ADD COLUMN fleet_imports TEXT;";

/// Schema version 2 to 3: who started a run, the lease's epoch (fencing token) and last
/// takeover; the claims table is created by [`SCHEMA`].
const MIGRATE_2_TO_3: &str = "ALTER TABLE runs ADD COLUMN operator TEXT;
ALTER TABLE runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN taken_at INTEGER;
ALTER TABLE runs ADD COLUMN taken_from TEXT;";

const RUN_COLUMNS: &str = "id, created_at, updated_at, fleet_path, fleet_name, maintenance, \
                           status, params, fleet_text, owner, lease_until, control, summary, \
                           fleet_imports, operator, epoch, taken_at, taken_from";

/// One run, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms: the last change to the run's own row (creation, status, control, lease).
    /// Appending to the journal does not change it.
    pub updated_at: i64,
    pub fleet_path: String,
    pub fleet_name: String,
    pub maintenance: String,
    pub status: RunStatus,
    pub params: Value,
    pub fleet_text: String,
    /// The files the fleet file imported, as they were when the run started (opaque JSON;
    /// `None` for runs stored before schema version 2). Left out of serialized rows.
    #[serde(skip)]
    pub fleet_imports: Option<Value>,
    pub owner: Option<String>,
    /// Unix ms.
    pub lease_until: Option<i64>,
    pub control: Option<RunControl>,
    pub summary: Value,
    /// Who started the run (`user@host`); `None` for runs stored before schema version 3.
    pub operator: Option<String>,
    /// The lease's epoch, its fencing token: raised by every acquire and takeover; 0 if
    /// the run was never leased.
    pub epoch: i64,
    /// Unix ms of the last takeover: the lease passed from one holder to another.
    pub taken_at: Option<i64>,
    /// The holder the last takeover took the lease from.
    pub taken_from: Option<String>,
}

/// What [`Store::create_run`] needs to start a run.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub fleet_path: String,
    pub fleet_name: String,
    pub maintenance: String,
    pub params: Value,
    pub fleet_text: String,
    /// The files the fleet file imported (opaque JSON), stored with the run.
    pub fleet_imports: Option<Value>,
    /// Who starts it (`user@host`), shown to whoever a claim conflict refuses.
    pub operator: String,
    /// What the run holds exclusively in this store while it is live: `host:ID` and
    /// `cluster:ID` keys (see [`Store::create_run`]).
    pub claims: Vec<String>,
    /// `resume --replan`: the run this one replaces; its claims pass to this one.
    pub supersedes: Option<String>,
}

/// The fencing token of a lease: `owner` holds run `run` under `epoch`. Every write of
/// the run's driver is conditional on it, in the same statement or transaction, so the
/// database refuses a stale leader's writes whatever that leader believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub run: String,
    pub owner: String,
    pub epoch: i64,
}

/// A claim that stopped a run from starting: `key` is held by live run `run`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClaimConflict {
    pub key: String,
    pub run: String,
    pub operator: Option<String>,
    pub status: String,
}

/// Where a run stands, as its row says (`runs.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, or being driven.
    Running,
    /// Stopped by Ctrl-C or a pause; `rollcall resume` continues it.
    Paused,
    /// Stopping: no new host starts, hosts in flight finish.
    Aborting,
    Completed,
    Aborted,
    /// Closed by `resume --replan`: another run took over.
    Replanned,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Paused,
        RunStatus::Aborting,
        RunStatus::Completed,
        RunStatus::Aborted,
        RunStatus::Replanned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Aborting => "aborting",
            RunStatus::Completed => "completed",
            RunStatus::Aborted => "aborted",
            RunStatus::Replanned => "replanned",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Completed or aborted: nothing more happens to the run's hosts.
    pub fn is_ended(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Aborted)
    }

    /// Running, paused or aborting: the run may still act on its hosts, so it keeps its
    /// claims. (Completed, aborted and replanned runs give them up.)
    pub fn is_live(self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Paused | RunStatus::Aborting
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An operator's request to the process driving a run (`runs.control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunControl {
    Pause,
    Resume,
    Abort,
}

impl RunControl {
    pub fn name(self) -> &'static str {
        match self {
            RunControl::Pause => "pause",
            RunControl::Resume => "resume",
            RunControl::Abort => "abort",
        }
    }

    pub fn parse(s: &str) -> Option<RunControl> {
        [RunControl::Pause, RunControl::Resume, RunControl::Abort]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

impl std::fmt::Display for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One journal record. `data` is opaque to the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Run clock, seconds.
    pub at: i64,
    pub kind: String,
    pub data: Value,
}

/// The journal and run-state operations the runtime acts through (`drive`, `start_run`,
/// `Lease`), so that another backend (PostgreSQL) can stand in for [`Store`]. See [`Store`]'s methods of the same names for what each one does.
pub trait Journal: Send + Sync {
    /// The database, for messages: the file, or the URL without its password.
    fn db(&self) -> Db;
    fn create_run(&self, new: &NewRun) -> impl Future<Output = Result<RunRow, StoreError>> + Send;
    fn claim(
        &self,
        fence: &Fence,
        keys: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn claims(&self, run: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    fn append(
        &self,
        fence: &Fence,
        records: &[Record],
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    fn journal(
        &self,
        run: &str,
    ) -> impl Future<Output = Result<Vec<(i64, Record)>, StoreError>> + Send;
    fn journal_since(
        &self,
        run: &str,
        after_seq: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Record)>, StoreError>> + Send;
    fn run(&self, id: &str) -> impl Future<Output = Result<Option<RunRow>, StoreError>> + Send;
    fn latest_run(&self) -> impl Future<Output = Result<Option<RunRow>, StoreError>> + Send;
    fn runs(&self) -> impl Future<Output = Result<Vec<RunRow>, StoreError>> + Send;
    fn set_status(
        &self,
        fence: &Fence,
        status: RunStatus,
        summary: &Value,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn set_control(
        &self,
        id: &str,
        control: Option<RunControl>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn take_control(
        &self,
        fence: &Fence,
    ) -> impl Future<Output = Result<Option<RunControl>, StoreError>> + Send;
    fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Option<Fence>, StoreError>> + Send;
    fn renew_lease(
        &self,
        fence: &Fence,
        now_ms: i64,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn take_over_lease(
        &self,
        id: &str,
        dead_owner: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Option<Fence>, StoreError>> + Send;
    fn release_lease(&self, fence: &Fence) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The SQLite backend of [`Store`], and the one owner of its file: the connection settings, every
/// component's tables (through [`Store::migrate`]) and the wake-up of journal followers
/// ([`Store::appended`]). Cheap to clone (clones share the connections); all methods take
/// `&self`.
#[derive(Clone)]
pub struct SqliteStore {
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    path: PathBuf,
    /// The one connection this handle writes through. The mutex serialises the handle's
    /// writes, so they queue here in order instead of in SQLite's busy handler, and an
    /// append skips the pool's checkout.
    writer: std::sync::Arc<tokio::sync::Mutex<SqliteConnection>>,
    /// The last seq this handle appended (any run): followers in this process wake on it.
    appended: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Creates the schema if the file is blank. Checks the file's identity again, through
/// SQLite and under the write lock: another process may have initialised the file since
/// its header was read, and the header may lag behind the WAL.
async fn init(path: &Path, conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let db = |action: &str, source| StoreError::Db {
        db: Db::file(path),
        action: action.to_string(),
        source,
    };
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| open_error(path, "cannot lock the journal to check it", e))?;
    let identity = Identity::read(&mut tx)
        .await
        .map_err(|e| open_error(path, "cannot read the journal's header", e))?;
    if !identity.needs_init(path)? {
        return Ok(());
    }
    let ours = identity.application_id == APPLICATION_ID;
    for (from, step) in [(1, MIGRATE_1_TO_2), (2, MIGRATE_2_TO_3)] {
        if ours && identity.user_version <= from && identity.user_version >= 1 {
            sqlx::raw_sql(step).execute(&mut *tx).await.map_err(|e| {
                db(
                    &format!("cannot bring the journal to schema version {}", from + 1),
                    e,
                )
            })?;
        }
    }
    sqlx::raw_sql(SCHEMA)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("cannot create the journal's tables", e))?;
    let marks = format!(
        "PRAGMA application_id = {}; PRAGMA user_version = {};",
        APPLICATION_ID as i32, SCHEMA_VERSION
    );
    sqlx::raw_sql(AssertSqlSafe(marks))
        .execute(&mut *tx)
        .await
        .map_err(|e| db("cannot mark the journal as rollcall's", e))?;
    tx.commit()
        .await
        .map_err(|e| db("cannot commit the journal's schema", e))
}

/// The writer connection, with the schema checked or created. Switching a new file to
/// WAL mode is not covered by the busy timeout: a process that opens a new journal at the
/// same instant as another one can be told "database is locked" at once; it tries again
/// for as long as the busy timeout.
async fn connect_writer(
    path: &Path,
    options: &SqliteConnectOptions,
) -> Result<SqliteConnection, StoreError> {
    let started = std::time::Instant::now();
    loop {
        let attempt = async {
            let mut writer = SqliteConnection::connect_with(options)
                .await
                .map_err(|e| open_error(path, "cannot open the journal", e))?;
            if let Err(e) = init(path, &mut writer).await {
                let _ = writer.close().await;
                return Err(e);
            }
            Ok(writer)
        };
        match attempt.await {
            Err(e) if e.is_transient() && started.elapsed() < BUSY_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// What the first page of an existing SQLite file says about it.
struct Identity {
    application_id: u32,
    user_version: i64,
    objects: i64,
}

impl Identity {
    async fn read(conn: &mut SqliteConnection) -> Result<Identity, sqlx::Error> {
        let application_id: i64 = sqlx::query_scalar("PRAGMA application_id")
            .fetch_one(&mut *conn)
            .await?;
        let user_version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await?;
        let objects: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Identity {
            // The pragma is a signed 32-bit integer; show and compare its bits.
            application_id: application_id as i32 as u32,
            user_version,
            objects,
        })
    }

    /// `Ok(true)` if the schema must be created (or brought up to date), `Ok(false)` if the
    /// file is a current rollcall journal, an error if it must not be touched.
    fn needs_init(&self, path: &Path) -> Result<bool, StoreError> {
        if self.application_id == APPLICATION_ID {
            if self.user_version > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    db: Db::file(path),
                    found: self.user_version,
                    supported: SCHEMA_VERSION,
                });
            }
            Ok(self.user_version < SCHEMA_VERSION)
        } else if self.application_id == 0 && self.objects == 0 {
            // A blank SQLite database: nothing in it to lose.
            Ok(true)
        } else {
            Err(StoreError::Foreign {
                db: Db::file(path),
                application_id: self.application_id,
            })
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The primary SQLite result code of a database error, if it is one.
fn sqlite_code(e: &sqlx::Error) -> Option<i64> {
    let code = e.as_database_error()?.code()?;
    code.parse::<i64>().ok().map(|c| c & 0xff)
}

/// Errors while opening: "not a database" and "malformed" mean the file is not a journal.
fn open_error(path: &Path, action: &str, e: sqlx::Error) -> StoreError {
    match sqlite_code(&e) {
        Some(SQLITE_NOTADB | SQLITE_CORRUPT) => StoreError::NotAJournal {
            db: Db::file(path),
            reason: e
                .as_database_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string()),
        },
        _ => StoreError::Db {
            db: Db::file(path),
            action: action.to_string(),
            source: e,
        },
    }
}

/// Reads an existing file's SQLite header with plain file I/O, before SQLite sees the file,
/// and tells what it is. The main file's first page can lag behind a WAL file that was not
/// checkpointed yet; that only ever hides a newer state of a file that was blank or
/// rollcall's, which [`Store::init`] checks again through SQLite under the write lock.
fn read_header(path: &Path) -> Result<Identity, StoreError> {
    use std::io::Read;
    let read_err = |source| StoreError::Read {
        db: Db::file(path),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    // The 100-byte database header and the b-tree page header of sqlite_schema after it.
    let mut page = Vec::with_capacity(108);
    file.take(108).read_to_end(&mut page).map_err(read_err)?;
    let not_a_db = || StoreError::NotAJournal {
        db: Db::file(path),
        reason: "file is not a database".to_string(),
    };
    if page.len() < 108 || &page[..16] != SQLITE_HEADER {
        return Err(not_a_db());
    }
    let be16 = |at: usize| u16::from_be_bytes([page[at], page[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]]);
    // The fields SQLite itself insists on (https://www.sqlite.org/fileformat.html).
    let page_size = be16(16);
    let page_size_ok = page_size == 1 || (page_size >= 512 && page_size.is_power_of_two());
    let versions_ok = matches!(page[18], 1 | 2) && matches!(page[19], 1 | 2);
    let fractions_ok = page[21..24] == [64, 32, 32];
    // sqlite_schema's root: a table b-tree page, leaf (0x0D) or interior (0x05).
    let schema_page = page[100];
    if !(page_size_ok && versions_ok && fractions_ok && matches!(schema_page, 0x05 | 0x0D)) {
        return Err(not_a_db());
    }
    Ok(Identity {
        application_id: be32(68),
        user_version: i64::from(be32(60) as i32),
        objects: if schema_page == 0x05 {
            1
        } else {
            i64::from(be16(103))
        },
    })
}

fn json_text(path: &Path, what: &'static str, value: &Value) -> Result<String, StoreError> {
    rows::json_text(&Db::file(path), what, value)
}

/// One statement that appends `rows` records after the run's last seq and returns their
/// seqs. Binds: run, run, then (at, kind, data) per record. SQLite evaluates the SELECT into
/// a temporary table before inserting (it reads the table it writes), so `max(seq)` is read
/// once; and a writing statement takes the write lock before it reads, so the seq cannot go
/// stale under another connection. Then binds: run, owner, epoch (the fence): a stale
/// fence or an unknown run inserts nothing.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(200 + rows * 16);
    sql.push_str(
        "INSERT INTO journal (run, seq, at, kind, data) \
         SELECT ?, base.last + v.column1, v.column2, v.column3, v.column4 \
         FROM (SELECT coalesce(max(seq), 0) AS last FROM journal WHERE run = ?) AS base, \
         (VALUES ",
    );
    for i in 1..=rows {
        if i > 1 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("({i}, ?, ?, ?)"));
    }
    sql.push_str(
        ") AS v WHERE EXISTS (SELECT 1 FROM runs WHERE id = ? AND owner = ? AND epoch = ?) \
         RETURNING seq",
    );
    sql
}

/// `INSERT INTO journal ... VALUES (?, ?, ?, ?, ?), ...` for `rows` rows with their seqs.
fn bulk_insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(60 + rows * 17);
    sql.push_str("INSERT INTO journal (run, seq, at, kind, data) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?)");
    }
    sql
}

impl SqliteStore {
    /// Opens the journal at `path`, creating the file (and its parent directories) if it is
    /// missing or empty. Refuses, without modifying the file, anything that is not a
    /// rollcall journal of this schema version or older (see the crate docs).
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                db: Db::file(&path),
                source,
            })?;
        }
        let blank = match std::fs::metadata(&path) {
            Ok(meta) => meta.is_file() && meta.len() == 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(source) => {
                return Err(StoreError::Read {
                    db: Db::file(&path),
                    source,
                });
            }
        };
        if !blank {
            // Refuse what is not ours before SQLite opens (and could write to) the file.
            read_header(&path)?.needs_init(&path)?;
        }

        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = connect_writer(&path, &options).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(|e| open_error(&path, "cannot open the journal", e))?;
        Ok(SqliteStore {
            pool,
            path,
            writer: std::sync::Arc::new(tokio::sync::Mutex::new(writer)),
            appended: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// The connection pool, for other components' own tables in the same file (`notify_`,
    /// `web_`), created through [`Store::migrate`]: one set of connection settings.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Changes whenever this handle (or a clone) appends to a journal: a follower in the
    /// same process (the notifier) reads the journal when woken instead of polling it.
    pub fn appended(&self) -> tokio::sync::watch::Receiver<i64> {
        self.appended.subscribe()
    }

    /// Bring `component`'s tables up to date: `steps[i]` is the SQL of its version i + 1.
    /// Each step runs once per file, in its own transaction with the version it reaches
    /// (table `migrations`), so concurrent processes apply it once. A file whose component is
    /// at a version this build does not know is refused.
    pub async fn migrate(&self, component: &str, steps: &[&str]) -> Result<(), StoreError> {
        let action = || format!("cannot migrate the {component} tables");
        let mut writer = self.writer.lock().await;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS migrations (
                component TEXT PRIMARY KEY,
                version   INTEGER NOT NULL
            )",
        )
        .execute(&mut *writer)
        .await
        .map_err(|e| self.db(action(), e))?;
        for (i, step) in steps.iter().enumerate() {
            let version = i as i64 + 1;
            let mut tx = self.write_tx(&mut writer, action).await?;
            let at: i64 = sqlx::query_scalar(
                "SELECT coalesce((SELECT version FROM migrations WHERE component = ?), 0)",
            )
            .bind(component)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db(action(), e))?;
            if at > steps.len() as i64 {
                return Err(StoreError::NewerComponent {
                    db: Db::file(&self.path),
                    component: component.to_string(),
                    found: at,
                    known: steps.len() as i64,
                });
            }
            if at >= version {
                continue;
            }
            sqlx::raw_sql(AssertSqlSafe(step.to_string()))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(action(), e))?;
            sqlx::query(
                "INSERT INTO migrations (component, version) VALUES (?, ?)
                 ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            )
            .bind(component)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(action(), e))?;
            tx.commit().await.map_err(|e| self.db(action(), e))?;
        }
        Ok(())
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, action: impl Into<String>, source: sqlx::Error) -> StoreError {
        StoreError::Db {
            db: Db::file(&self.path),
            action: action.into(),
            source,
        }
    }

    /// A write transaction on the writer connection. `BEGIN IMMEDIATE` takes SQLite's write
    /// lock first, so nothing it reads can go stale before it commits.
    async fn write_tx<'c>(
        &self,
        writer: &'c mut SqliteConnection,
        action: impl Fn() -> String,
    ) -> Result<sqlx::Transaction<'c, sqlx::Sqlite>, StoreError> {
        writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.db(action(), e))
    }

    /// [`Self::write_tx`], refused (nothing written) unless `fence` holds its run's lease.
    async fn fenced_tx<'c>(
        &self,
        writer: &'c mut SqliteConnection,
        fence: &Fence,
        action: impl Fn() -> String,
    ) -> Result<sqlx::Transaction<'c, sqlx::Sqlite>, StoreError> {
        let mut tx = self.write_tx(writer, action).await?;
        self.check_fence(&mut tx, fence).await?;
        Ok(tx)
    }

    fn unknown_run(&self, run: &str) -> StoreError {
        StoreError::UnknownRun {
            db: Db::file(&self.path),
            run: run.to_string(),
        }
    }

    /// Starts a run with status `running` and takes its claims, in one transaction. Fails
    /// if the id is taken, or with [`StoreError::Claimed`] (nothing written) if another
    /// live run holds one of `new.claims`. A run that `new.supersedes` gives its claims up
    /// in the same transaction.
    pub async fn create_run(&self, new: &NewRun) -> Result<RunRow, StoreError> {
        let row = RunRow::new(new, now_ms());
        let params = json_text(&self.path, "the run's params", &row.params)?;
        let summary = json_text(&self.path, "the run's summary", &row.summary)?;
        let imports = match &row.fleet_imports {
            Some(v) => Some(json_text(&self.path, "the run's imported files", v)?),
            None => None,
        };
        let action = || format!("cannot create run {:?}", new.id);
        let mut writer = self.writer.lock().await;
        let mut tx = self.write_tx(&mut writer, action).await?;
        let result = sqlx::query(
            "INSERT INTO runs (id, created_at, updated_at, fleet_path, fleet_name, maintenance, \
             status, params, fleet_text, summary, fleet_imports, operator) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.id)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(&row.fleet_path)
        .bind(&row.fleet_name)
        .bind(&row.maintenance)
        .bind(row.status.name())
        .bind(params)
        .bind(&row.fleet_text)
        .bind(summary)
        .bind(imports)
        .bind(&row.operator)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                return Err(StoreError::RunExists {
                    db: Db::file(&self.path),
                    run: new.id.clone(),
                });
            }
            Err(e) => return Err(self.db(action(), e)),
        }
        if let Some(old) = &new.supersedes {
            sqlx::query("UPDATE claims SET run = ?1 WHERE run = ?2")
                .bind(&new.id)
                .bind(old)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(action(), e))?;
        }
        self.insert_claims(&mut tx, &new.id, &new.claims).await?;
        tx.commit().await.map_err(|e| self.db(action(), e))?;
        Ok(row)
    }

    /// Takes `keys` for the fence's run (those it holds already are kept): a resumed run
    /// holds what it holds now, also when it was stored before claims existed. Refused
    /// (nothing written) if another live run holds one of them.
    pub async fn claim(&self, fence: &Fence, keys: &[String]) -> Result<(), StoreError> {
        let action = || format!("cannot claim the hosts of run {:?}", fence.run);
        let mut writer = self.writer.lock().await;
        let mut tx = self.fenced_tx(&mut writer, fence, action).await?;
        self.insert_claims(&mut tx, &fence.run, keys).await?;
        tx.commit().await.map_err(|e| self.db(action(), e))
    }

    /// Inserts `run`'s claims; [`StoreError::Claimed`] if another live run holds any (the
    /// caller's transaction is then dropped: rolled back). Claims left by runs that are
    /// no longer live are taken over.
    async fn insert_claims(
        &self,
        conn: &mut SqliteConnection,
        run: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let action = || format!("cannot claim the hosts of run {run:?}");
        let keys_json = serde_json::to_string(keys).map_err(|source| StoreError::Encode {
            db: Db::file(&self.path),
            what: "the run's claims",
            source,
        })?;
        let conflicts = sqlx::query(
            "SELECT c.key, c.run, r.operator, r.status FROM claims c JOIN runs r ON r.id = c.run \
             WHERE c.run <> ?1 AND r.status IN ('running', 'paused', 'aborting') \
             AND c.key IN (SELECT value FROM json_each(?2)) ORDER BY c.run, c.key",
        )
        .bind(run)
        .bind(&keys_json)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| self.db(action(), e))?;
        if !conflicts.is_empty() {
            return Err(StoreError::Claimed {
                db: Db::file(&self.path),
                run: run.to_string(),
                conflicts: conflicts.iter().map(claim_conflict).collect(),
            });
        }
        sqlx::query(
            "INSERT INTO claims (key, run) SELECT value, ?1 FROM json_each(?2) WHERE true \
             ON CONFLICT (key) DO UPDATE SET run = excluded.run",
        )
        .bind(run)
        .bind(&keys_json)
        .execute(&mut *conn)
        .await
        .map_err(|e| self.db(action(), e))?;
        Ok(())
    }

    /// The keys run `run` holds, sorted.
    pub async fn claims(&self, run: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT key FROM claims WHERE run = ? ORDER BY key")
            .bind(run)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db(format!("cannot read the claims of run {run:?}"), e))
    }

    /// `Ok` if `fence` holds its run's lease now; otherwise [`StoreError::Fenced`] (or
    /// `UnknownRun`). Callers run it inside the transaction it guards.
    async fn check_fence(
        &self,
        conn: &mut SqliteConnection,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let now: Option<(Option<String>, i64)> =
            sqlx::query_as("SELECT owner, epoch FROM runs WHERE id = ?")
                .bind(&fence.run)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.db(format!("cannot read the lease of run {:?}", fence.run), e))?;
        match now {
            None => Err(self.unknown_run(&fence.run)),
            Some((owner, epoch))
                if owner.as_deref() == Some(&fence.owner) && epoch == fence.epoch =>
            {
                Ok(())
            }
            Some((owner, epoch)) => Err(StoreError::Fenced {
                db: Db::file(&self.path),
                run: fence.run.clone(),
                epoch: fence.epoch,
                current_epoch: epoch,
                current_owner: owner,
            }),
        }
    }

    /// Appends `records` to the fence's run in one transaction and returns the seq of the
    /// last one (the run's current last seq if `records` is empty; 0 for an empty journal).
    /// Seqs are per run, 1-based and contiguous; a batch's records get consecutive seqs.
    /// Refused with [`StoreError::Fenced`] (nothing written) unless `fence` holds the
    /// run's lease, checked in the same statement or transaction.
    pub async fn append(&self, fence: &Fence, records: &[Record]) -> Result<i64, StoreError> {
        let last = self.append_records(fence, records).await?;
        if !records.is_empty() {
            self.appended.send_replace(last);
        }
        Ok(last)
    }

    async fn append_records(&self, fence: &Fence, records: &[Record]) -> Result<i64, StoreError> {
        // Encode before taking the lock.
        let mut data = Vec::with_capacity(records.len());
        for record in records {
            data.push(json_text(&self.path, "a journal record", &record.data)?);
        }
        let mut writer = self.writer.lock().await;
        if !records.is_empty() && records.len() <= ROWS_PER_INSERT {
            // One statement is one transaction: the common case costs one round trip.
            if let Some(last) = self
                .insert_chunk(&mut writer, fence, records, &data)
                .await?
            {
                return Ok(last);
            }
            // nothing inserted: say why
            self.check_fence(&mut writer, fence).await?;
        }
        // A large batch: several statements in one transaction. BEGIN IMMEDIATE takes the
        // write lock first, so the last seq read here cannot go stale.
        let run = &fence.run;
        let action = || format!("cannot append to run {run:?}");
        let mut tx = self.fenced_tx(&mut writer, fence, action).await?;
        let mut seq: i64 =
            sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM journal WHERE run = ?")
                .bind(run)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.db(action(), e))?;
        for (chunk, texts) in records
            .chunks(ROWS_PER_BULK_INSERT)
            .zip(data.chunks(ROWS_PER_BULK_INSERT))
        {
            let mut query = sqlx::query(AssertSqlSafe(bulk_insert_sql(chunk.len())));
            for (record, text) in chunk.iter().zip(texts) {
                seq += 1;
                query = query
                    .bind(run)
                    .bind(seq)
                    .bind(record.at)
                    .bind(&record.kind)
                    .bind(text.as_str());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(action(), e))?;
        }
        tx.commit().await.map_err(|e| self.db(action(), e))?;
        Ok(seq)
    }

    /// Inserts 1 to [`ROWS_PER_INSERT`] records in one statement, if `fence` holds the
    /// lease; the last seq, or `None` if nothing was inserted (the fence is stale or the
    /// run unknown).
    async fn insert_chunk(
        &self,
        conn: &mut SqliteConnection,
        fence: &Fence,
        records: &[Record],
        data: &[String],
    ) -> Result<Option<i64>, StoreError> {
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(insert_sql(records.len())))
            .bind(&fence.run)
            .bind(&fence.run);
        for (record, text) in records.iter().zip(data) {
            query = query.bind(record.at).bind(&record.kind).bind(text.as_str());
        }
        query = query.bind(&fence.run).bind(&fence.owner).bind(fence.epoch);
        let seqs = query
            .fetch_all(conn)
            .await
            .map_err(|e| self.db(format!("cannot append to run {:?}", fence.run), e))?;
        Ok(seqs.into_iter().max())
    }

    /// The run's whole journal, in seq order. An unknown run has an empty journal.
    pub async fn journal(&self, run: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        self.journal_since(run, 0).await
    }

    /// The run's records with seq > `after_seq`, in seq order.
    pub async fn journal_since(
        &self,
        run: &str,
        after_seq: i64,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        self.read_journal(run, None, after_seq).await
    }

    /// The run's records of one `kind` with seq > `after_seq`, in seq order (a follower
    /// reading only notices does not decode every transition).
    pub async fn journal_kind_since(
        &self,
        run: &str,
        kind: &str,
        after_seq: i64,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        self.read_journal(run, Some(kind), after_seq).await
    }

    async fn read_journal(
        &self,
        run: &str,
        kind: Option<&str>,
        after_seq: i64,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, data FROM journal \
             WHERE run = ?1 AND seq > ?2 AND (?3 IS NULL OR kind = ?3) ORDER BY seq",
        )
        .bind(run)
        .bind(after_seq)
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.db(format!("cannot read the journal of run {run:?}"), e))?;
        rows.iter()
            .map(|row| self.decode_record(run, row))
            .collect()
    }

    fn decode_record(&self, run: &str, row: &SqliteRow) -> Result<(i64, Record), StoreError> {
        rows::decode_record(&Db::file(&self.path), run, row)
    }

    fn decode_run(&self, row: &SqliteRow) -> Result<RunRow, StoreError> {
        rows::decode_run(&Db::file(&self.path), row)
    }

    /// The run with this id, if any.
    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db(format!("cannot read run {id:?}"), e))?;
        row.map(|row| self.decode_run(&row)).transpose()
    }

    /// The most recently created run, if any.
    pub async fn latest_run(&self) -> Result<Option<RunRow>, StoreError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db("cannot read the latest run", e))?;
        row.map(|row| self.decode_run(&row)).transpose()
    }

    /// All runs, newest first.
    pub async fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, rowid DESC");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db("cannot list runs", e))?;
        rows.iter().map(|row| self.decode_run(row)).collect()
    }

    /// Sets the run's status and summary, if `fence` holds its lease. A status that is
    /// not live (completed, aborted, replanned) gives the run's claims up in the same
    /// transaction.
    pub async fn set_status(
        &self,
        fence: &Fence,
        status: RunStatus,
        summary: &Value,
    ) -> Result<(), StoreError> {
        let summary = json_text(&self.path, "the run's summary", summary)?;
        let id = &fence.run;
        let action = || format!("cannot set the status of run {id:?}");
        let mut writer = self.writer.lock().await;
        let mut tx = self.fenced_tx(&mut writer, fence, action).await?;
        sqlx::query("UPDATE runs SET status = ?, summary = ?, updated_at = ? WHERE id = ?")
            .bind(status.name())
            .bind(summary)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(action(), e))?;
        if !status.is_live() {
            sqlx::query("DELETE FROM claims WHERE run = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(action(), e))?;
        }
        tx.commit().await.map_err(|e| self.db(action(), e))
    }

    /// Leaves a control request (`pause`, `resume`, `abort`) for the process driving the
    /// run, or clears it with `None`. A later request replaces an unread one.
    pub async fn set_control(
        &self,
        id: &str,
        control: Option<RunControl>,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().await;
        let done = sqlx::query("UPDATE runs SET control = ?, updated_at = ? WHERE id = ?")
            .bind(control.map(RunControl::name))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *writer)
            .await
            .map_err(|e| self.db(format!("cannot set the control of run {id:?}"), e))?;
        if done.rows_affected() == 0 {
            return Err(self.unknown_run(id));
        }
        Ok(())
    }

    /// Reads and clears the run's pending control request, atomically, if `fence` holds
    /// the run's lease.
    pub async fn take_control(&self, fence: &Fence) -> Result<Option<RunControl>, StoreError> {
        let id = &fence.run;
        let action = || format!("cannot take the control request of run {id:?}");
        let mut writer = self.writer.lock().await;
        let mut tx = self.fenced_tx(&mut writer, fence, action).await?;
        let control: Option<String> = sqlx::query_scalar("SELECT control FROM runs WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.db(action(), e))?;
        let Some(control) = control else {
            return Ok(None);
        };
        sqlx::query("UPDATE runs SET control = NULL, updated_at = ? WHERE id = ?")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(action(), e))?;
        tx.commit().await.map_err(|e| self.db(action(), e))?;
        // an unknown request (written by hand, or by a newer rollcall) is cleared and said
        RunControl::parse(&control)
            .map(Some)
            .ok_or_else(|| StoreError::CorruptRun {
                db: Db::file(&self.path),
                run: id.to_string(),
                column: "control",
                reason: format!("unknown request {control:?}"),
            })
    }

    /// Takes the run's lease for `owner` until `now_ms + ttl_ms` if nobody holds it, the
    /// holder's lease has expired (`lease_until <= now_ms`), or `owner` already holds it;
    /// its fence, under an epoch one above the last. One conditional UPDATE, so two
    /// contenders can never both win.
    pub async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Fence>, StoreError> {
        self.lease_change(
            id,
            owner,
            // ?6 is NULL here: every statement binds it
            "(owner IS NULL OR owner = ?1 OR lease_until IS NULL OR lease_until <= ?2) \
             AND ?6 IS NULL",
            None,
            now_ms,
            ttl_ms,
        )
        .await
    }

    /// Takes the lease from `dead_owner` (an orchestrator known to be gone, e.g. its
    /// process no longer exists) before the lease expires. Compare-and-swap: `None` if
    /// the lease is no longer `dead_owner`'s.
    pub async fn take_over_lease(
        &self,
        id: &str,
        dead_owner: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Fence>, StoreError> {
        self.lease_change(id, owner, "owner = ?6", Some(dead_owner), now_ms, ttl_ms)
            .await
    }

    /// The one statement that moves a lease to `owner` when `condition` holds (binds: ?1
    /// owner, ?2 now, ?3 ttl, ?4 wall clock, ?5 run, ?6 `expected`): the epoch is raised,
    /// and a change of holder is recorded as the last takeover.
    async fn lease_change(
        &self,
        id: &str,
        owner: &str,
        condition: &str,
        expected: Option<&str>,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Fence>, StoreError> {
        let sql = format!(
            "UPDATE runs SET owner = ?1, lease_until = ?2 + ?3, updated_at = ?4, \
             epoch = epoch + 1, \
             taken_from = CASE WHEN owner IS NOT NULL AND owner <> ?1 THEN owner ELSE taken_from END, \
             taken_at = CASE WHEN owner IS NOT NULL AND owner <> ?1 THEN ?4 ELSE taken_at END \
             WHERE id = ?5 AND ({condition}) RETURNING epoch"
        );
        let mut writer = self.writer.lock().await;
        let epoch: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(owner)
            .bind(now_ms)
            .bind(ttl_ms)
            .bind(self::now_ms())
            .bind(id)
            .bind(expected)
            .fetch_optional(&mut *writer)
            .await
            .map_err(|e| self.db(format!("cannot take the lease of run {id:?}"), e))?;
        if epoch.is_none() {
            self.check_run_exists(&mut writer, id).await?;
        }
        Ok(epoch.map(|epoch| Fence {
            run: id.to_string(),
            owner: owner.to_string(),
            epoch,
        }))
    }

    /// Extends the fence's lease to `now_ms + ttl_ms`. `false` if the lease moved on (it
    /// expired and was taken over): the caller has been fenced off and must stop driving
    /// the run. A lease that expired but that nobody took is still the fence's.
    pub async fn renew_lease(
        &self,
        fence: &Fence,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let id = &fence.run;
        let mut writer = self.writer.lock().await;
        let done = sqlx::query(
            "UPDATE runs SET lease_until = ?1 + ?2, updated_at = ?3 \
             WHERE id = ?4 AND owner = ?5 AND epoch = ?6",
        )
        .bind(now_ms)
        .bind(ttl_ms)
        .bind(self::now_ms())
        .bind(id)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .execute(&mut *writer)
        .await
        .map_err(|e| self.db(format!("cannot renew the lease of run {id:?}"), e))?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        self.check_run_exists(&mut writer, id).await?;
        Ok(false)
    }

    /// Gives the lease up if the fence still holds it; does nothing otherwise.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        let id = &fence.run;
        let mut writer = self.writer.lock().await;
        let done = sqlx::query(
            "UPDATE runs SET owner = NULL, lease_until = NULL, updated_at = ? \
             WHERE id = ? AND owner = ? AND epoch = ?",
        )
        .bind(now_ms())
        .bind(id)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .execute(&mut *writer)
        .await
        .map_err(|e| self.db(format!("cannot release the lease of run {id:?}"), e))?;
        if done.rows_affected() == 0 {
            self.check_run_exists(&mut writer, id).await?;
        }
        Ok(())
    }

    /// `UnknownRun` unless the run exists. (Runs are never deleted, so the answer cannot
    /// change after a statement that found no row for other reasons.)
    async fn check_run_exists(
        &self,
        conn: &mut SqliteConnection,
        id: &str,
    ) -> Result<(), StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE id = ?")
            .bind(id)
            .fetch_optional(conn)
            .await
            .map_err(|e| self.db(format!("cannot look up run {id:?}"), e))?;
        match found {
            Some(_) => Ok(()),
            None => Err(self.unknown_run(id)),
        }
    }
}

/// A row of the claim-conflict query: key, run, operator, status.
fn claim_conflict(row: &SqliteRow) -> ClaimConflict {
    ClaimConflict {
        key: row.try_get("key").unwrap_or_default(),
        run: row.try_get("run").unwrap_or_default(),
        operator: row.try_get("operator").unwrap_or_default(),
        status: row.try_get("status").unwrap_or_default(),
    }
}

impl RunRow {
    /// A new run's row, as [`Store::create_run`] stores it.
    fn new(new: &NewRun, now: i64) -> RunRow {
        RunRow {
            id: new.id.clone(),
            created_at: now,
            updated_at: now,
            fleet_path: new.fleet_path.clone(),
            fleet_name: new.fleet_name.clone(),
            maintenance: new.maintenance.clone(),
            status: RunStatus::Running,
            params: new.params.clone(),
            fleet_text: new.fleet_text.clone(),
            fleet_imports: new.fleet_imports.clone(),
            owner: None,
            lease_until: None,
            control: None,
            summary: Value::Null,
            operator: Some(new.operator.clone()),
            epoch: 0,
            taken_at: None,
            taken_from: None,
        }
    }
}

/// "run Q (started by alice@ops1, running) holds 3 host(s) (r1, r2, r3) and 1
/// cluster(s) (redis-a)": the conflicts of a refused run, grouped by the run that holds
/// them.
pub fn describe_conflicts(conflicts: &[ClaimConflict]) -> String {
    let mut parts = Vec::new();
    for group in conflicts.chunk_by(|a, b| a.run == b.run) {
        let first = &group[0];
        let held = |kind: &str| -> Vec<&str> {
            group
                .iter()
                .filter_map(|c| c.key.strip_prefix(kind))
                .collect()
        };
        let listed: Vec<String> = [("host:", "host(s)"), ("cluster:", "cluster(s)")]
            .into_iter()
            .map(|(kind, noun)| (held(kind), noun))
            .filter(|(keys, _)| !keys.is_empty())
            .map(|(keys, noun)| format!("{} {noun} ({})", keys.len(), list_some(&keys, 8)))
            .collect();
        parts.push(format!(
            "run {} (started by {}, {}) holds {}",
            first.run,
            first.operator.as_deref().unwrap_or("an unknown operator"),
            first.status,
            listed.join(" and ")
        ));
    }
    parts.join("; ")
}

/// "a, b, c and 5 more": at most `shown` of `items`.
fn list_some(items: &[&str], shown: usize) -> String {
    let head = items[..items.len().min(shown)].join(", ");
    match items.len().saturating_sub(shown) {
        0 => head,
        n => format!("{head} and {n} more"),
    }
}
