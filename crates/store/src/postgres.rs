//! The PostgreSQL backend: the same journal and run state as the SQLite file, in a
//! PostgreSQL database (sqlx, queries checked at run time), for several orchestrators on
//! several machines sharing one journal.
//!
//! # Schema
//!
//! The SQLite schema with `BIGINT` for every integer, plus two columns of PostgreSQL's own:
//! `runs.n` (an identity: creation order, where SQLite has its `rowid`) and
//! `runs.last_seq` (the run's last journal seq). The `store` row of table `migrations`
//! holds the schema version ([`crate::SCHEMA_VERSION`]); the other components' versions are
//! in the same table. A database with tables but no `store` row is not rollcall's and is
//! refused untouched ([`StoreError::ForeignDatabase`]). Creating and migrating run under
//! `pg_advisory_xact_lock`, so concurrent processes do it once.
//!
//! # Appending
//!
//! One statement per batch, whatever its size: `WITH r AS (UPDATE runs SET last_seq =
//! last_seq + n WHERE id = $1 RETURNING ...) INSERT INTO journal SELECT ... FROM r,
//! unnest($2, $3, $4) WITH ORDINALITY`. The UPDATE takes the run's row lock, and a
//! concurrent writer's UPDATE waits for it and then re-reads the row's newest version, so
//! seqs stay contiguous under any number of writers in any number of processes; the
//! records are all there or not at all. A single statement means a client cut off
//! mid-write never leaves a transaction open holding the lock.
//!
//! # Sessions
//!
//! Every connection sets `idle_in_transaction_session_timeout` (5 s: a client that
//! vanished inside a transaction loses it and its locks), `lock_timeout` (5 s),
//! `statement_timeout` (30 s), and server-side TCP keepalives (idle 5 s, every 2 s, 3
//! probes, `tcp_user_timeout` 10 s) so the server drops a dead client's session in seconds.
//! On the client side every call has a deadline ([`CALL_TIMEOUT`]) and the pool's connect
//! and acquire timeout is 5 s, so a dead server or link is an error in seconds, not hours;
//! such errors are [`StoreError::is_transient`]. Commit durability is PostgreSQL's (and its
//! replication's): a committed append survives the orchestrator's crash and the server's.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};

use crate::rows::{decode_record, decode_run, json_text};
use crate::{
    Db, NewRun, RUN_COLUMNS, Record, RunControl, RunRow, RunStatus, SCHEMA_VERSION, StoreError,
    now_ms,
};

/// Every PostgreSQL call's deadline, on the client side: past it the call fails with a
/// transient I/O error (the server or the link is gone or stuck).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTIONS: u32 = 8;
/// `pg_advisory_xact_lock` key of schema creation and migrations: "RCLL".
const MIGRATION_LOCK: i64 = 0x5243_4C4C;

/// Session settings of every connection (see the module docs), as `SET` statements for
/// the backend-neutral pool.
pub(crate) const SESSION: &str = "SET idle_in_transaction_session_timeout = '5s'; \
     SET lock_timeout = '5s'; SET statement_timeout = '30s';";

/// The same settings as startup options of the store's own connections.
const SESSION_OPTIONS: [(&str, &str); 7] = [
    ("idle_in_transaction_session_timeout", "5s"),
    ("lock_timeout", "5s"),
    ("statement_timeout", "30s"),
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "2"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
];

const SCHEMA: &str = "
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    n           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    fleet_path  TEXT NOT NULL,
    fleet_name  TEXT NOT NULL,
    maintenance TEXT NOT NULL,
    status      TEXT NOT NULL,
    params      TEXT NOT NULL,
    fleet_text  TEXT NOT NULL,
    owner       TEXT,
    lease_until BIGINT,
    control     TEXT,
    summary     TEXT NOT NULL,
    fleet_imports TEXT,
    last_seq    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE TABLE journal (
    run  TEXT NOT NULL REFERENCES runs (id),
    seq  BIGINT NOT NULL,
    at   BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run, seq)
);
";

const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS migrations (
    component TEXT PRIMARY KEY,
    version   BIGINT NOT NULL
)";

/// The journal and run state in a PostgreSQL database. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    db: Db,
    /// The last seq this handle appended (any run): followers in this process wake on it.
    appended: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("db", &self.db).finish()
    }
}

/// Runs `f` with the client-side deadline.
async fn deadline<T>(f: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from PostgreSQL within {} s",
                CALL_TIMEOUT.as_secs()
            ),
        ))),
    }
}

/// `append`'s one statement (see the module docs). Binds: run, at[], kind[], data[].
const APPEND: &str = "WITH r AS (
        UPDATE runs SET last_seq = last_seq + cardinality($2::bigint[])
        WHERE id = $1 RETURNING last_seq - cardinality($2::bigint[]) AS base
    )
    INSERT INTO journal (run, seq, at, kind, data)
    SELECT $1, r.base + v.i, v.at, v.kind, v.data
    FROM r, unnest($2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS v (at, kind, data, i)
    RETURNING seq";

impl PgStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`) and creates the
    /// schema in an empty database. Refuses a database with other tables and no rollcall
    /// store in it, or a store of a newer schema, without writing to it.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let db = Db::postgres(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl {
                db: db.clone(),
                reason: e.to_string(),
            })?
            .application_name("rollcall")
            .options(SESSION_OPTIONS);
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        let store = PgStore {
            pool,
            db,
            appended: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
        };
        store.init().await?;
        Ok(store)
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn appended(&self) -> tokio::sync::watch::Receiver<i64> {
        self.appended.subscribe()
    }

    fn err(&self, action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
        let db = self.db.clone();
        let action = action.into();
        move |source| StoreError::Db { db, action, source }
    }

    fn unknown_run(&self, run: &str) -> StoreError {
        StoreError::UnknownRun {
            db: self.db.clone(),
            run: run.to_string(),
        }
    }

    /// A transaction holding the migration lock.
    async fn locked(
        &self,
        action: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = deadline(self.pool.begin())
            .await
            .map_err(self.err(action))?;
        deadline(
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx),
        )
        .await
        .map_err(self.err(action))?;
        Ok(tx)
    }

    async fn init(&self) -> Result<(), StoreError> {
        let action = "cannot create the journal's tables";
        let mut tx = self.locked(action).await?;
        let version = store_version(&mut tx).await.map_err(self.err(action))?;
        match version {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    db: self.db.clone(),
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => return Ok(()),
            None => {}
        }
        let tables: Vec<String> = deadline(
            sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables \
                 WHERE schemaname = current_schema() ORDER BY tablename",
            )
            .fetch_all(&mut *tx),
        )
        .await
        .map_err(self.err(action))?;
        if !tables.is_empty() {
            return Err(StoreError::ForeignDatabase {
                db: self.db.clone(),
                tables,
            });
        }
        let create = format!(
            "{SCHEMA}{MIGRATIONS_TABLE}; \
             INSERT INTO migrations (component, version) VALUES ('store', {SCHEMA_VERSION});"
        );
        deadline(sqlx::raw_sql(AssertSqlSafe(create)).execute(&mut *tx))
            .await
            .map_err(self.err(action))?;
        deadline(tx.commit()).await.map_err(self.err(action))
    }

    /// Brings `component`'s tables up to date (see [`crate::Store::migrate`]); `steps` are
    /// PostgreSQL SQL.
    pub async fn migrate(&self, component: &str, steps: &[&str]) -> Result<(), StoreError> {
        let action = format!("cannot migrate the {component} tables");
        let mut tx = self.locked(&action).await?;
        let at: i64 = deadline(
            sqlx::query_scalar(
                "SELECT coalesce((SELECT version FROM migrations WHERE component = $1), 0)",
            )
            .bind(component)
            .fetch_one(&mut *tx),
        )
        .await
        .map_err(self.err(&action))?;
        if at > steps.len() as i64 {
            return Err(StoreError::NewerComponent {
                db: self.db.clone(),
                component: component.to_string(),
                found: at,
                known: steps.len() as i64,
            });
        }
        for step in &steps[at as usize..] {
            deadline(sqlx::raw_sql(AssertSqlSafe(step.to_string())).execute(&mut *tx))
                .await
                .map_err(self.err(&action))?;
        }
        deadline(
            sqlx::query(
                "INSERT INTO migrations (component, version) VALUES ($1, $2)
                 ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            )
            .bind(component)
            .bind(steps.len() as i64)
            .execute(&mut *tx),
        )
        .await
        .map_err(self.err(&action))?;
        deadline(tx.commit()).await.map_err(self.err(&action))
    }

    pub async fn create_run(&self, new: &NewRun) -> Result<RunRow, StoreError> {
        let now = now_ms();
        let row = RunRow {
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
        };
        let params = json_text(&self.db, "the run's params", &row.params)?;
        let summary = json_text(&self.db, "the run's summary", &row.summary)?;
        let imports = match &row.fleet_imports {
            Some(v) => Some(json_text(&self.db, "the run's imported files", v)?),
            None => None,
        };
        let result = deadline(
            sqlx::query(
                "INSERT INTO runs (id, created_at, updated_at, fleet_path, fleet_name, \
                 maintenance, status, params, fleet_text, summary, fleet_imports) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
            .execute(&self.pool),
        )
        .await;
        match result {
            Ok(_) => Ok(row),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(StoreError::RunExists {
                    db: self.db.clone(),
                    run: new.id.clone(),
                })
            }
            Err(e) => Err(self.err(format!("cannot create run {:?}", new.id))(e)),
        }
    }

    /// Appends `records` in one statement (see the module docs); the last seq.
    pub async fn append(&self, run: &str, records: &[Record]) -> Result<i64, StoreError> {
        let action = || format!("cannot append to run {run:?}");
        if records.is_empty() {
            let last: Option<i64> = deadline(
                sqlx::query_scalar("SELECT last_seq FROM runs WHERE id = $1")
                    .bind(run)
                    .fetch_optional(&self.pool),
            )
            .await
            .map_err(self.err(action()))?;
            return last.ok_or_else(|| self.unknown_run(run));
        }
        let mut at = Vec::with_capacity(records.len());
        let mut kind = Vec::with_capacity(records.len());
        let mut data = Vec::with_capacity(records.len());
        for record in records {
            at.push(record.at);
            kind.push(record.kind.as_str());
            data.push(json_text(&self.db, "a journal record", &record.data)?);
        }
        let seqs: Vec<i64> = deadline(
            sqlx::query_scalar(APPEND)
                .bind(run)
                .bind(&at)
                .bind(&kind)
                .bind(&data)
                .fetch_all(&self.pool),
        )
        .await
        .map_err(self.err(action()))?;
        let Some(last) = seqs.into_iter().max() else {
            return Err(self.unknown_run(run));
        };
        self.appended.send_replace(last);
        Ok(last)
    }

    pub async fn journal(&self, run: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        self.read_journal(run, None, 0).await
    }

    pub async fn journal_since(
        &self,
        run: &str,
        after_seq: i64,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        self.read_journal(run, None, after_seq).await
    }

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
        let rows = deadline(
            sqlx::query(
                "SELECT seq, at, kind, data FROM journal \
                 WHERE run = $1 AND seq > $2 AND ($3::text IS NULL OR kind = $3) ORDER BY seq",
            )
            .bind(run)
            .bind(after_seq)
            .bind(kind)
            .fetch_all(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot read the journal of run {run:?}")))?;
        rows.iter()
            .map(|row| decode_record(&self.db, run, row))
            .collect()
    }

    pub async fn run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = deadline(
            sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot read run {id:?}")))?;
        row.map(|row| decode_run(&self.db, &row)).transpose()
    }

    pub async fn latest_run(&self) -> Result<Option<RunRow>, StoreError> {
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, n DESC LIMIT 1");
        let row = deadline(sqlx::query(AssertSqlSafe(sql)).fetch_optional(&self.pool))
            .await
            .map_err(self.err("cannot read the latest run"))?;
        row.map(|row| decode_run(&self.db, &row)).transpose()
    }

    pub async fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, n DESC");
        let rows = deadline(sqlx::query(AssertSqlSafe(sql)).fetch_all(&self.pool))
            .await
            .map_err(self.err("cannot list runs"))?;
        rows.iter().map(|row| decode_run(&self.db, row)).collect()
    }

    /// One UPDATE of the run's row; `UnknownRun` if it touched nothing.
    async fn update_run(
        &self,
        id: &str,
        action: String,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<(), StoreError> {
        let done = deadline(query.execute(&self.pool))
            .await
            .map_err(self.err(action))?;
        if done.rows_affected() == 0 {
            return Err(self.unknown_run(id));
        }
        Ok(())
    }

    pub async fn set_status(
        &self,
        id: &str,
        status: RunStatus,
        summary: &Value,
    ) -> Result<(), StoreError> {
        let summary = json_text(&self.db, "the run's summary", summary)?;
        let query =
            sqlx::query("UPDATE runs SET status = $1, summary = $2, updated_at = $3 WHERE id = $4")
                .bind(status.name())
                .bind(summary)
                .bind(now_ms())
                .bind(id);
        self.update_run(id, format!("cannot set the status of run {id:?}"), query)
            .await
    }

    pub async fn set_control(
        &self,
        id: &str,
        control: Option<RunControl>,
    ) -> Result<(), StoreError> {
        let query = sqlx::query("UPDATE runs SET control = $1, updated_at = $2 WHERE id = $3")
            .bind(control.map(RunControl::name))
            .bind(now_ms())
            .bind(id);
        self.update_run(id, format!("cannot set the control of run {id:?}"), query)
            .await
    }

    /// Reads and clears the control request in one statement (the old value comes from
    /// the row locked by the UPDATE).
    pub async fn take_control(&self, id: &str) -> Result<Option<RunControl>, StoreError> {
        let row = deadline(
            sqlx::query(
                "UPDATE runs AS r SET control = NULL, \
                 updated_at = CASE WHEN old.control IS NULL THEN r.updated_at ELSE $1 END \
                 FROM (SELECT id, control FROM runs WHERE id = $2 FOR UPDATE) AS old \
                 WHERE r.id = old.id RETURNING old.control",
            )
            .bind(now_ms())
            .bind(id)
            .fetch_optional(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot take the control request of run {id:?}")))?;
        let Some(row) = row else {
            return Err(self.unknown_run(id));
        };
        let control: Option<String> = row.try_get(0).map_err(|e| StoreError::CorruptRun {
            db: self.db.clone(),
            run: id.to_string(),
            column: "control",
            reason: e.to_string(),
        })?;
        let Some(control) = control else {
            return Ok(None);
        };
        RunControl::parse(&control)
            .map(Some)
            .ok_or_else(|| StoreError::CorruptRun {
                db: self.db.clone(),
                run: id.to_string(),
                column: "control",
                reason: format!("unknown request {control:?}"),
            })
    }

    pub async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        self.lease_update(
            id,
            "UPDATE runs SET owner = $1, lease_until = $2 + $3, updated_at = $4 WHERE id = $5 \
             AND (owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until <= $2)",
            &[owner],
            now_ms,
            ttl_ms,
            "acquire",
        )
        .await
    }

    pub async fn renew_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        self.lease_update(
            id,
            "UPDATE runs SET owner = $1, lease_until = $2 + $3, updated_at = $4 WHERE id = $5 \
             AND owner = $1",
            &[owner],
            now_ms,
            ttl_ms,
            "renew",
        )
        .await
    }

    pub async fn take_over_lease(
        &self,
        id: &str,
        dead_owner: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        self.lease_update(
            id,
            "UPDATE runs SET owner = $1, lease_until = $2 + $3, updated_at = $4 WHERE id = $5 \
             AND owner = $6",
            &[owner, dead_owner],
            now_ms,
            ttl_ms,
            "take over",
        )
        .await
    }

    /// A lease UPDATE binding `$1` = owners[0], `$2` now, `$3` ttl, `$4` wall clock, `$5`
    /// id, `$6`.. the other owners; `true` if it changed the row.
    async fn lease_update(
        &self,
        id: &str,
        sql: &'static str,
        owners: &[&str],
        now_ms: i64,
        ttl_ms: i64,
        verb: &str,
    ) -> Result<bool, StoreError> {
        let mut query = sqlx::query(sql)
            .bind(owners[0])
            .bind(now_ms)
            .bind(ttl_ms)
            .bind(self::now_ms())
            .bind(id);
        for owner in &owners[1..] {
            query = query.bind(*owner);
        }
        let done = deadline(query.execute(&self.pool))
            .await
            .map_err(self.err(format!("cannot {verb} the lease of run {id:?}")))?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        self.check_run_exists(id).await?;
        Ok(false)
    }

    pub async fn release_lease(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        let done = deadline(
            sqlx::query(
                "UPDATE runs SET owner = NULL, lease_until = NULL, updated_at = $1 \
                 WHERE id = $2 AND owner = $3",
            )
            .bind(now_ms())
            .bind(id)
            .bind(owner)
            .execute(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot release the lease of run {id:?}")))?;
        if done.rows_affected() == 0 {
            self.check_run_exists(id).await?;
        }
        Ok(())
    }

    async fn check_run_exists(&self, id: &str) -> Result<(), StoreError> {
        let found: Option<i64> = deadline(
            sqlx::query_scalar("SELECT 1::bigint FROM runs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot look up run {id:?}")))?;
        match found {
            Some(_) => Ok(()),
            None => Err(self.unknown_run(id)),
        }
    }
}

/// The `store` row of `migrations`, if that table and row exist.
async fn store_version(conn: &mut PgConnection) -> Result<Option<i64>, sqlx::Error> {
    let has_table: bool = deadline(
        sqlx::query_scalar("SELECT to_regclass('migrations') IS NOT NULL").fetch_one(&mut *conn),
    )
    .await?;
    if !has_table {
        return Ok(None);
    }
    deadline(
        sqlx::query_scalar("SELECT version FROM migrations WHERE component = 'store'")
            .fetch_optional(&mut *conn),
    )
    .await
}
