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
    ClaimConflict, Db, Fence, NewRun, RUN_COLUMNS, Record, RunControl, RunRow, RunStatus,
    SCHEMA_VERSION, StoreError, now_ms,
};

/// Every PostgreSQL call's deadline, on the client side: past it the call fails with a
/// transient I/O error (the server or the link is gone or stuck).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTIONS: u32 = 8;
/// `pg_advisory_xact_lock` key of schema creation and migrations: "RCLL".
const MIGRATION_LOCK: i64 = 0x5243_4C4C;
/// `pg_advisory_xact_lock` key that serialises claim changes (creating a run, claiming):
/// the conflict check and the insert of one transaction see every claim committed before.
const CLAIMS_LOCK: i64 = 0x5243_434C;

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
    operator    TEXT,
    epoch       BIGINT NOT NULL DEFAULT 0,
    taken_at    BIGINT,
    taken_from  TEXT,
    last_seq    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE TABLE claims (
    key TEXT PRIMARY KEY,
    run TEXT NOT NULL REFERENCES runs (id)
);
CREATE INDEX claims_by_run ON claims (run);
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

/// `append`'s one statement (see the module docs): fenced, numbered and inserted at once.
/// Binds: run, at[], kind[], data[], owner, epoch.
const APPEND: &str = "WITH r AS (
        UPDATE runs SET last_seq = last_seq + cardinality($2::bigint[])
        WHERE id = $1 AND owner = $5 AND epoch = $6
        RETURNING last_seq - cardinality($2::bigint[]) AS base
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

    /// Starts a run and takes its claims in one transaction, under the claims lock (see
    /// [`crate::Store::create_run`]).
    pub async fn create_run(&self, new: &NewRun) -> Result<RunRow, StoreError> {
        let row = RunRow::new(new, now_ms());
        let params = json_text(&self.db, "the run's params", &row.params)?;
        let summary = json_text(&self.db, "the run's summary", &row.summary)?;
        let imports = match &row.fleet_imports {
            Some(v) => Some(json_text(&self.db, "the run's imported files", v)?),
            None => None,
        };
        let action = format!("cannot create run {:?}", new.id);
        let mut tx = self.claims_tx(&action).await?;
        let result = deadline(
            sqlx::query(
                "INSERT INTO runs (id, created_at, updated_at, fleet_path, fleet_name, \
                 maintenance, status, params, fleet_text, summary, fleet_imports, operator) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
            .execute(&mut *tx),
        )
        .await;
        match result {
            Ok(_) => {}
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                return Err(StoreError::RunExists {
                    db: self.db.clone(),
                    run: new.id.clone(),
                });
            }
            Err(e) => return Err(self.err(action)(e)),
        }
        if let Some(old) = &new.supersedes {
            deadline(
                sqlx::query("UPDATE claims SET run = $1 WHERE run = $2")
                    .bind(&new.id)
                    .bind(old)
                    .execute(&mut *tx),
            )
            .await
            .map_err(self.err(&action))?;
        }
        self.insert_claims(&mut tx, &new.id, &new.claims).await?;
        deadline(tx.commit()).await.map_err(self.err(action))?;
        Ok(row)
    }

    /// A transaction holding the claims lock.
    async fn claims_tx(
        &self,
        action: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = deadline(self.pool.begin())
            .await
            .map_err(self.err(action))?;
        deadline(
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CLAIMS_LOCK)
                .execute(&mut *tx),
        )
        .await
        .map_err(self.err(action))?;
        Ok(tx)
    }

    /// Takes `keys` for the fence's run (fenced: the run's row is locked while the claims
    /// are checked and written).
    pub async fn claim(&self, fence: &Fence, keys: &[String]) -> Result<(), StoreError> {
        let action = format!("cannot claim the hosts of run {:?}", fence.run);
        let mut tx = self.claims_tx(&action).await?;
        self.check_fence(&mut tx, fence, true).await?;
        self.insert_claims(&mut tx, &fence.run, keys).await?;
        deadline(tx.commit()).await.map_err(self.err(action))
    }

    /// Inserts `run`'s claims; [`StoreError::Claimed`] if another live run holds any.
    /// Runs under the claims lock, so the check sees every claim committed before.
    async fn insert_claims(
        &self,
        conn: &mut PgConnection,
        run: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let action = format!("cannot claim the hosts of run {run:?}");
        let conflicts = deadline(
            sqlx::query(
                "SELECT c.key, c.run, r.operator, r.status FROM claims c \
                 JOIN runs r ON r.id = c.run \
                 WHERE c.run <> $1 AND r.status IN ('running', 'paused', 'aborting') \
                 AND c.key = ANY($2::text[]) ORDER BY c.run, c.key",
            )
            .bind(run)
            .bind(keys)
            .fetch_all(&mut *conn),
        )
        .await
        .map_err(self.err(&action))?;
        if !conflicts.is_empty() {
            return Err(StoreError::Claimed {
                db: self.db.clone(),
                run: run.to_string(),
                conflicts: conflicts.iter().map(claim_conflict).collect(),
            });
        }
        deadline(
            sqlx::query(
                "INSERT INTO claims (key, run) SELECT DISTINCT k, $1 FROM unnest($2::text[]) AS k \
                 ON CONFLICT (key) DO UPDATE SET run = excluded.run",
            )
            .bind(run)
            .bind(keys)
            .execute(&mut *conn),
        )
        .await
        .map_err(self.err(action))?;
        Ok(())
    }

    /// The keys run `run` holds, sorted.
    pub async fn claims(&self, run: &str) -> Result<Vec<String>, StoreError> {
        deadline(
            sqlx::query_scalar("SELECT key FROM claims WHERE run = $1 ORDER BY key")
                .bind(run)
                .fetch_all(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot read the claims of run {run:?}")))
    }

    /// `Ok` if `fence` holds its run's lease now, else [`StoreError::Fenced`] or
    /// `UnknownRun`. With `lock`, the run's row stays locked until the transaction ends.
    async fn check_fence(
        &self,
        conn: &mut PgConnection,
        fence: &Fence,
        lock: bool,
    ) -> Result<(), StoreError> {
        let sql = if lock {
            "SELECT owner, epoch FROM runs WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT owner, epoch FROM runs WHERE id = $1"
        };
        let now: Option<(Option<String>, i64)> = deadline(
            sqlx::query_as(sql)
                .bind(&fence.run)
                .fetch_optional(&mut *conn),
        )
        .await
        .map_err(self.err(format!("cannot read the lease of run {:?}", fence.run)))?;
        match now {
            None => Err(self.unknown_run(&fence.run)),
            Some((owner, epoch))
                if owner.as_deref() == Some(&fence.owner) && epoch == fence.epoch =>
            {
                Ok(())
            }
            Some((owner, epoch)) => Err(StoreError::Fenced {
                db: self.db.clone(),
                run: fence.run.clone(),
                epoch: fence.epoch,
                current_epoch: epoch,
                current_owner: owner,
            }),
        }
    }

    /// Why a fenced statement changed nothing: [`StoreError::Fenced`] or `UnknownRun`
    /// (or, if the fence holds after all, a plain error: never expected).
    async fn refused(&self, fence: &Fence, action: String) -> StoreError {
        let mut conn = match deadline(self.pool.acquire()).await {
            Ok(conn) => conn,
            Err(e) => return self.err(action)(e),
        };
        match self.check_fence(&mut conn, fence, false).await {
            Err(e) => e,
            Ok(()) => self.err(action)(sqlx::Error::RowNotFound),
        }
    }

    /// Appends `records` in one fenced statement (see the module docs); the last seq.
    pub async fn append(&self, fence: &Fence, records: &[Record]) -> Result<i64, StoreError> {
        let run = &fence.run;
        let action = || format!("cannot append to run {run:?}");
        if records.is_empty() {
            let mut conn = deadline(self.pool.acquire())
                .await
                .map_err(self.err(action()))?;
            self.check_fence(&mut conn, fence, false).await?;
            return deadline(
                sqlx::query_scalar("SELECT last_seq FROM runs WHERE id = $1")
                    .bind(run)
                    .fetch_one(&mut *conn),
            )
            .await
            .map_err(self.err(action()));
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
                .bind(&fence.owner)
                .bind(fence.epoch)
                .fetch_all(&self.pool),
        )
        .await
        .map_err(self.err(action()))?;
        let Some(last) = seqs.into_iter().max() else {
            return Err(self.refused(fence, action()).await);
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

    /// Sets status and summary in one fenced statement; a status that is not live deletes
    /// the run's claims in the same statement.
    pub async fn set_status(
        &self,
        fence: &Fence,
        status: RunStatus,
        summary: &Value,
    ) -> Result<(), StoreError> {
        let summary = json_text(&self.db, "the run's summary", summary)?;
        let id = &fence.run;
        let action = || format!("cannot set the status of run {id:?}");
        let changed: i64 = deadline(
            sqlx::query_scalar(
                "WITH r AS (
                    UPDATE runs SET status = $1, summary = $2, updated_at = $3
                    WHERE id = $4 AND owner = $5 AND epoch = $6 RETURNING id
                 ), d AS (
                    DELETE FROM claims WHERE $7 AND run IN (SELECT id FROM r)
                 )
                 SELECT count(*) FROM r",
            )
            .bind(status.name())
            .bind(summary)
            .bind(now_ms())
            .bind(id)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .bind(!status.is_live())
            .fetch_one(&self.pool),
        )
        .await
        .map_err(self.err(action()))?;
        if changed == 0 {
            return Err(self.refused(fence, action()).await);
        }
        Ok(())
    }

    /// An operator's request: not fenced.
    pub async fn set_control(
        &self,
        id: &str,
        control: Option<RunControl>,
    ) -> Result<(), StoreError> {
        let done = deadline(
            sqlx::query("UPDATE runs SET control = $1, updated_at = $2 WHERE id = $3")
                .bind(control.map(RunControl::name))
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot set the control of run {id:?}")))?;
        if done.rows_affected() == 0 {
            return Err(self.unknown_run(id));
        }
        Ok(())
    }

    /// Reads and clears the control request in one fenced statement (the old value comes
    /// from the row the UPDATE locked).
    pub async fn take_control(&self, fence: &Fence) -> Result<Option<RunControl>, StoreError> {
        let id = &fence.run;
        let action = || format!("cannot take the control request of run {id:?}");
        let row = deadline(
            sqlx::query(
                "UPDATE runs AS r SET control = NULL, \
                 updated_at = CASE WHEN old.control IS NULL THEN r.updated_at ELSE $1 END \
                 FROM (SELECT id, control FROM runs \
                       WHERE id = $2 AND owner = $3 AND epoch = $4 FOR UPDATE) AS old \
                 WHERE r.id = old.id RETURNING old.control",
            )
            .bind(now_ms())
            .bind(id)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .fetch_optional(&self.pool),
        )
        .await
        .map_err(self.err(action()))?;
        let Some(row) = row else {
            return Err(self.refused(fence, action()).await);
        };
        let corrupt = |reason: String| StoreError::CorruptRun {
            db: self.db.clone(),
            run: id.to_string(),
            column: "control",
            reason,
        };
        let control: Option<String> = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
        let Some(control) = control else {
            return Ok(None);
        };
        // an unknown request (written by hand, or by a newer rollcall) is cleared and said
        RunControl::parse(&control)
            .map(Some)
            .ok_or_else(|| corrupt(format!("unknown request {control:?}")))
    }

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
            // $6 is NULL here: every statement binds it
            "(owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until <= $2) \
             AND $6::text IS NULL",
            None,
            now_ms,
            ttl_ms,
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
    ) -> Result<Option<Fence>, StoreError> {
        self.lease_change(id, owner, "owner = $6", Some(dead_owner), now_ms, ttl_ms)
            .await
    }

    /// The one statement that moves a lease to `owner` when `condition` holds (binds: $1
    /// owner, $2 now, $3 ttl, $4 wall clock, $5 run, $6 `expected`): the epoch is raised,
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
            "UPDATE runs SET owner = $1, lease_until = $2 + $3, updated_at = $4, \
             epoch = epoch + 1, \
             taken_from = CASE WHEN owner IS NOT NULL AND owner <> $1 THEN owner ELSE taken_from END, \
             taken_at = CASE WHEN owner IS NOT NULL AND owner <> $1 THEN $4 ELSE taken_at END \
             WHERE id = $5 AND ({condition}) RETURNING epoch"
        );
        let epoch: Option<i64> = deadline(
            sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(owner)
                .bind(now_ms)
                .bind(ttl_ms)
                .bind(self::now_ms())
                .bind(id)
                .bind(expected)
                .fetch_optional(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot take the lease of run {id:?}")))?;
        if epoch.is_none() {
            self.check_run_exists(id).await?;
        }
        Ok(epoch.map(|epoch| Fence {
            run: id.to_string(),
            owner: owner.to_string(),
            epoch,
        }))
    }

    pub async fn renew_lease(
        &self,
        fence: &Fence,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let id = &fence.run;
        let done = deadline(
            sqlx::query(
                "UPDATE runs SET lease_until = $1 + $2, updated_at = $3 \
                 WHERE id = $4 AND owner = $5 AND epoch = $6",
            )
            .bind(now_ms)
            .bind(ttl_ms)
            .bind(self::now_ms())
            .bind(id)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .execute(&self.pool),
        )
        .await
        .map_err(self.err(format!("cannot renew the lease of run {id:?}")))?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        self.check_run_exists(id).await?;
        Ok(false)
    }

    pub async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        let id = &fence.run;
        let done = deadline(
            sqlx::query(
                "UPDATE runs SET owner = NULL, lease_until = NULL, updated_at = $1 \
                 WHERE id = $2 AND owner = $3 AND epoch = $4",
            )
            .bind(now_ms())
            .bind(id)
            .bind(&fence.owner)
            .bind(fence.epoch)
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

/// A row of the claim-conflict query: key, run, operator, status.
fn claim_conflict(row: &sqlx::postgres::PgRow) -> ClaimConflict {
    ClaimConflict {
        key: row.try_get("key").unwrap_or_default(),
        run: row.try_get("run").unwrap_or_default(),
        operator: row.try_get("operator").unwrap_or_default(),
        status: row.try_get("status").unwrap_or_default(),
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
