//! [`Store`]: the one store type every caller uses, backed by an SQLite file
//! ([`SqliteStore`]) or a PostgreSQL database ([`PgStore`]), chosen by [`Store::connect`]'s
//! target. Both backends have the same method set and the same guarantees; this type only
//! dispatches, and owns the backend-neutral pool ([`Store::pool`]) the other components
//! (notify, web) run their own SQL on.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{ConnectOptions, Executor};

use crate::postgres::PgStore;
use crate::{
    Db, Fence, Journal, NewRun, READERS, Record, RunControl, RunRow, RunStatus, SqliteStore,
    StoreError,
};

/// The SQL dialect of a store's database: components pick their statements and migration
/// steps by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What `--db` names: an SQLite file or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    File(std::path::PathBuf),
    /// `postgres://` or `postgresql://`, as given (with its password, if any).
    Postgres(String),
}

impl Target {
    /// A `postgres://` / `postgresql://` URL is PostgreSQL; anything else is a file path.
    pub fn parse(target: &OsStr) -> Target {
        match target.to_str() {
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Target::Postgres(s.to_string())
            }
            _ => Target::File(Path::new(target).to_path_buf()),
        }
    }
}

/// As an operator may see it: a PostgreSQL URL without its password.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(path) => write!(f, "{}", path.display()),
            Target::Postgres(url) => write!(f, "{}", Db::postgres(url)),
        }
    }
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// The run store: the journal and run state, and the one owner of its database (every
/// component's tables migrate through it). Cheap to clone (clones share the connections);
/// all methods take `&self`. See [`SqliteStore`] and [`PgStore`] for each backend's
/// transactions, durability and settings.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// The other components' pool: same database, same settings, either dialect.
    any: AnyPool,
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

/// Settings every backend-neutral connection gets, per dialect.
const SQLITE_SESSION: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

impl Store {
    /// Opens (or creates) the SQLite journal at `path`; see [`SqliteStore::open`].
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let store = SqliteStore::open(path).await?;
        let db = Db::file(path);
        let url = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .to_url_lossy();
        let any = any_pool(&db, url.as_str(), SQLITE_SESSION)?;
        Ok(Store {
            backend: Backend::Sqlite(store),
            any,
        })
    }

    /// Opens the store `target` names: a `postgres://` or `postgresql://` URL is a
    /// PostgreSQL database (see [`PgStore::connect`]), anything else an SQLite file path.
    pub async fn connect(target: impl AsRef<OsStr>) -> Result<Store, StoreError> {
        match Target::parse(target.as_ref()) {
            Target::File(path) => Store::open(&path).await,
            Target::Postgres(url) => {
                let store = PgStore::connect(&url).await?;
                let any = any_pool(store.db(), &url, crate::postgres::SESSION)?;
                Ok(Store {
                    backend: Backend::Postgres(store),
                    any,
                })
            }
        }
    }

    /// The database's dialect, for components that run their own SQL on [`Store::pool`].
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The connection pool for other components' own tables in the same database
    /// (`notify_`, `web_`), created through [`Store::migrate`]. sqlx's `Any` driver: write
    /// `$1`-style placeholders (SQLite takes them too) and pick dialect-specific SQL by
    /// [`Store::dialect`].
    pub fn pool(&self) -> &AnyPool {
        &self.any
    }

    /// The database, for messages: the file, or the URL without its password.
    pub fn db(&self) -> Db {
        match &self.backend {
            Backend::Sqlite(s) => Db::file(s.path()),
            Backend::Postgres(s) => s.db().clone(),
        }
    }

    /// The SQLite file's path; `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Changes whenever this handle (or a clone) appends to a journal: a follower in the
    /// same process (the notifier) reads the journal when woken instead of polling it.
    pub fn appended(&self) -> tokio::sync::watch::Receiver<i64> {
        dispatch!(self, s => s.appended())
    }

    /// Brings `component`'s tables up to date: `steps[i]` is the SQL (of this store's
    /// [`Dialect`]) of its version i + 1. Each step runs once per database, in its own
    /// transaction with the version it reaches (table `migrations`), so concurrent
    /// processes apply it once. A component at a version this build does not know is refused.
    pub async fn migrate(&self, component: &str, steps: &[&str]) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate(component, steps).await)
    }

    /// Starts a run with status `running` and takes its claims, in one transaction (see
    /// [`SqliteStore::create_run`]): [`StoreError::Claimed`] if another live run holds one.
    pub async fn create_run(&self, new: &NewRun) -> Result<RunRow, StoreError> {
        dispatch!(self, s => s.create_run(new).await)
    }

    /// Takes `keys` for the fence's run (fenced; [`StoreError::Claimed`] if another live
    /// run holds one of them).
    pub async fn claim(&self, fence: &Fence, keys: &[String]) -> Result<(), StoreError> {
        dispatch!(self, s => s.claim(fence, keys).await)
    }

    /// The keys run `run` holds, sorted.
    pub async fn claims(&self, run: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.claims(run).await)
    }

    /// Appends `records` to the fence's run in one transaction (fenced) and returns the
    /// seq of the last one (the run's current last seq if `records` is empty). Seqs are per
    /// run, 1-based and contiguous; a batch's records get consecutive seqs.
    pub async fn append(&self, fence: &Fence, records: &[Record]) -> Result<i64, StoreError> {
        dispatch!(self, s => s.append(fence, records).await)
    }

    /// The run's whole journal, in seq order. An unknown run has an empty journal.
    pub async fn journal(&self, run: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        dispatch!(self, s => s.journal(run).await)
    }

    /// The run's records with seq > `after_seq`, in seq order.
    pub async fn journal_since(
        &self,
        run: &str,
        after_seq: i64,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        dispatch!(self, s => s.journal_since(run, after_seq).await)
    }

    /// The run's records of one `kind` with seq > `after_seq`, in seq order.
    pub async fn journal_kind_since(
        &self,
        run: &str,
        kind: &str,
        after_seq: i64,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        dispatch!(self, s => s.journal_kind_since(run, kind, after_seq).await)
    }

    /// The run with this id, if any.
    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        dispatch!(self, s => s.run(id).await)
    }

    /// The most recently created run, if any.
    pub async fn latest_run(&self) -> Result<Option<RunRow>, StoreError> {
        dispatch!(self, s => s.latest_run().await)
    }

    /// All runs, newest first.
    pub async fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        dispatch!(self, s => s.runs().await)
    }

    /// Sets the run's status and summary (fenced); a status that is not live gives the
    /// run's claims up in the same transaction.
    pub async fn set_status(
        &self,
        fence: &Fence,
        status: RunStatus,
        summary: &Value,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_status(fence, status, summary).await)
    }

    /// Leaves a control request for the process driving the run, or clears it (`None`).
    /// Not fenced: an operator's request.
    pub async fn set_control(
        &self,
        id: &str,
        control: Option<RunControl>,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_control(id, control).await)
    }

    /// Reads and clears the run's pending control request, atomically (fenced).
    pub async fn take_control(&self, fence: &Fence) -> Result<Option<RunControl>, StoreError> {
        dispatch!(self, s => s.take_control(fence).await)
    }

    /// Takes the run's lease if it is free, expired or `owner`'s; its fence, under an
    /// epoch one above the last (see [`SqliteStore::acquire_lease`]).
    pub async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Fence>, StoreError> {
        dispatch!(self, s => s.acquire_lease(id, owner, now_ms, ttl_ms).await)
    }

    /// Extends the fence's lease; `false` if the lease moved on.
    pub async fn renew_lease(
        &self,
        fence: &Fence,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.renew_lease(fence, now_ms, ttl_ms).await)
    }

    /// Takes the lease from `dead_owner` before it expires (compare-and-swap).
    pub async fn take_over_lease(
        &self,
        id: &str,
        dead_owner: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Fence>, StoreError> {
        dispatch!(self, s => s.take_over_lease(id, dead_owner, owner, now_ms, ttl_ms).await)
    }

    /// Gives the lease up if the fence still holds it; does nothing otherwise.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        dispatch!(self, s => s.release_lease(fence).await)
    }
}

/// The backend-neutral pool: lazy, up to [`READERS`] connections, each set up with
/// `session` (the dialect's settings) when it connects.
fn any_pool(db: &Db, url: &str, session: &'static str) -> Result<AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    let options: AnyConnectOptions = url.parse().map_err(|e: sqlx::Error| StoreError::BadUrl {
        db: db.clone(),
        reason: e.to_string(),
    })?;
    Ok(AnyPoolOptions::new()
        .max_connections(READERS)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(sqlx::raw_sql(session)).await?;
                Ok(())
            })
        })
        .connect_lazy_with(options))
}

impl Journal for Store {
    fn db(&self) -> Db {
        Store::db(self)
    }
    async fn create_run(&self, new: &NewRun) -> Result<RunRow, StoreError> {
        Store::create_run(self, new).await
    }
    async fn claim(&self, fence: &Fence, keys: &[String]) -> Result<(), StoreError> {
        Store::claim(self, fence, keys).await
    }
    async fn claims(&self, run: &str) -> Result<Vec<String>, StoreError> {
        Store::claims(self, run).await
    }
    async fn append(&self, fence: &Fence, records: &[Record]) -> Result<i64, StoreError> {
        Store::append(self, fence, records).await
    }
    async fn journal(&self, run: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        Store::journal(self, run).await
    }
    async fn journal_since(
        &self,
        run: &str,
        after_seq: i64,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        Store::journal_since(self, run, after_seq).await
    }
    async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        Store::run(self, id).await
    }
    async fn latest_run(&self) -> Result<Option<RunRow>, StoreError> {
        Store::latest_run(self).await
    }
    async fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        Store::runs(self).await
    }
    async fn set_status(
        &self,
        fence: &Fence,
        status: RunStatus,
        summary: &Value,
    ) -> Result<(), StoreError> {
        Store::set_status(self, fence, status, summary).await
    }
    async fn set_control(&self, id: &str, control: Option<RunControl>) -> Result<(), StoreError> {
        Store::set_control(self, id, control).await
    }
    async fn take_control(&self, fence: &Fence) -> Result<Option<RunControl>, StoreError> {
        Store::take_control(self, fence).await
    }
    async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Fence>, StoreError> {
        Store::acquire_lease(self, id, owner, now_ms, ttl_ms).await
    }
    async fn renew_lease(
        &self,
        fence: &Fence,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        Store::renew_lease(self, fence, now_ms, ttl_ms).await
    }
    async fn take_over_lease(
        &self,
        id: &str,
        dead_owner: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Fence>, StoreError> {
        Store::take_over_lease(self, id, dead_owner, owner, now_ms, ttl_ms).await
    }
    async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        Store::release_lease(self, fence).await
    }
}
