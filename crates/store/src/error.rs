//! The store's one error type, and [`Db`], the database every error names.

use std::path::{Path, PathBuf};

/// The database a store error is about, as an operator knows it: the SQLite file's path,
/// or the PostgreSQL URL with its password left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Db {
    File(PathBuf),
    /// A `postgres://` URL without its password.
    Postgres(String),
}

impl Db {
    pub fn file(path: &Path) -> Db {
        Db::File(path.to_path_buf())
    }

    /// The URL with any password removed (from the user info and from a `password=`
    /// query parameter).
    pub fn postgres(url: &str) -> Db {
        Db::Postgres(redact(url))
    }
}

impl std::fmt::Display for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Db::File(path) => write!(f, "{}", path.display()),
            Db::Postgres(url) => f.write_str(url),
        }
    }
}

fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let rest = match rest.split_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => rest.to_string(),
    };
    let query = query.map(|q| {
        q.split('&')
            .filter(|kv| !kv.starts_with("password="))
            .collect::<Vec<_>>()
            .join("&")
    });
    match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{scheme}://{rest}?{q}"),
        None => format!("{scheme}://{rest}"),
    }
}

/// Everything that can go wrong in the store. Every message names the journal's database
/// ([`Db`]: the file, or the PostgreSQL URL without password), so an operator who sees it
/// in a log knows which one to look at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The journal's parent directory could not be created.
    #[error("{db}: cannot create the journal's directory: {source}")]
    CreateDir {
        db: Db,
        #[source]
        source: std::io::Error,
    },

    /// The journal file exists but could not be read.
    #[error("{db}: cannot read the journal file: {source}")]
    Read {
        db: Db,
        #[source]
        source: std::io::Error,
    },

    /// The file is not an SQLite database at all (a text file, random bytes, a truncated
    /// or damaged database). The file was not modified.
    #[error("{db} is not a rollcall journal: {reason}")]
    NotAJournal { db: Db, reason: String },

    /// The file is an SQLite database of some other program. The file was not modified.
    #[error(
        "{db} belongs to another application (application_id {application_id:#010x}; a rollcall \
         journal has {:#010x}): refusing to use it, pick another journal path",
        crate::APPLICATION_ID
    )]
    Foreign { db: Db, application_id: u32 },

    /// A PostgreSQL database that has tables but no rollcall store in it (no `migrations`
    /// row for `store`). Nothing was written to it.
    #[error(
        "{db} holds tables of another application ({}): refusing to use it, pick an empty \
         database for the journal",
        tables.join(", ")
    )]
    ForeignDatabase { db: Db, tables: Vec<String> },

    /// `--db` looks like a PostgreSQL URL but is not one sqlx can use.
    #[error("{db}: not a usable PostgreSQL URL: {reason}")]
    BadUrl { db: Db, reason: String },

    /// The journal was written by a newer rollcall whose schema this build does not know.
    #[error(
        "{db} was written by a newer rollcall (journal schema version {found}; this build \
         understands up to version {supported}): upgrade rollcall to read it"
    )]
    NewerSchema { db: Db, found: i64, supported: i64 },

    /// A component's tables (`web_`, `notify_`) were migrated by a newer rollcall.
    #[error(
        "{db}: the {component} tables were written by a newer rollcall (version {found}; this \
         build knows up to version {known}): upgrade rollcall to use this journal"
    )]
    NewerComponent {
        db: Db,
        component: String,
        found: i64,
        known: i64,
    },

    /// The run does not exist in this journal.
    #[error("{db}: run {run:?} does not exist in this journal")]
    UnknownRun { db: Db, run: String },

    /// `create_run` with an id that is already taken.
    #[error("{db}: run {run:?} already exists in this journal")]
    RunExists { db: Db, run: String },

    /// A write by an orchestrator whose lease has moved on (taken over, or released):
    /// the database refused it, so a stale leader cannot act through the journal.
    #[error(
        "{db}: run {run:?}: write refused: this orchestrator's lease (epoch {epoch}) is no longer \
         current: the run is held by {} (epoch {current_epoch})",
        current_owner.as_deref().unwrap_or("nobody")
    )]
    Fenced {
        db: Db,
        run: String,
        epoch: i64,
        current_epoch: i64,
        current_owner: Option<String>,
    },

    /// A new run would share hosts or clusters with a live run of this store.
    #[error(
        "{db}: cannot start run {run:?}: {}",
        crate::describe_conflicts(conflicts)
    )]
    Claimed {
        db: Db,
        run: String,
        conflicts: Vec<crate::ClaimConflict>,
    },

    /// A journal record could not be decoded (its JSON is damaged).
    #[error("{db}: run {run:?}, journal record seq {seq} is corrupt: {reason}")]
    CorruptRecord {
        db: Db,
        run: String,
        seq: i64,
        reason: String,
    },

    /// A column of a run's row could not be decoded.
    #[error("{db}: run {run:?} is corrupt: column {column}: {reason}")]
    CorruptRun {
        db: Db,
        run: String,
        column: &'static str,
        reason: String,
    },

    /// A JSON value could not be encoded (never expected for `serde_json::Value`).
    #[error("{db}: cannot encode {what} as JSON: {source}")]
    Encode {
        db: Db,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// Any other database error (I/O error, disk full, lock held too long, ...).
    #[error("{db}: {action}: {source}")]
    Db {
        db: Db,
        action: String,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// The database this error is about.
    pub fn db(&self) -> &Db {
        match self {
            StoreError::CreateDir { db, .. }
            | StoreError::Read { db, .. }
            | StoreError::NotAJournal { db, .. }
            | StoreError::Foreign { db, .. }
            | StoreError::ForeignDatabase { db, .. }
            | StoreError::BadUrl { db, .. }
            | StoreError::NewerSchema { db, .. }
            | StoreError::NewerComponent { db, .. }
            | StoreError::UnknownRun { db, .. }
            | StoreError::RunExists { db, .. }
            | StoreError::Fenced { db, .. }
            | StoreError::Claimed { db, .. }
            | StoreError::CorruptRecord { db, .. }
            | StoreError::CorruptRun { db, .. }
            | StoreError::Encode { db, .. }
            | StoreError::Db { db, .. } => db,
        }
    }

    /// The database could not be reached or was busy (I/O or connection error, a pool or
    /// call timeout, a server shutting down or starting, a lock or serialization conflict,
    /// SQLite busy/locked/I/O error): the same call may succeed later, and the runtime may
    /// retry it. Everything else is a fact about the data and will not change by waiting.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db { source, .. } => is_transient_sqlx(source),
            _ => false,
        }
    }
}

/// SQLite primary result codes: busy, locked, I/O error.
const SQLITE_TRANSIENT: [i64; 3] = [5, 6, 10];
/// PostgreSQL SQLSTATEs (or classes, two characters) that pass: connection exceptions,
/// shutdown/starting up, too many connections, lock timeout, serialization failure,
/// deadlock, idle-in-transaction timeout.
const PG_TRANSIENT: [&str; 10] = [
    "08", "57P01", "57P02", "57P03", "53300", "55P03", "40001", "40P01", "25P03", "57014",
];

/// Whether a database error of either backend may pass by waiting (see
/// [`StoreError::is_transient`]): for the components that query the store's pool
/// themselves (notify, web).
pub fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            if d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                return PG_TRANSIENT
                    .iter()
                    .any(|c| code == *c || (c.len() == 2 && code.starts_with(c)));
            }
            code.parse::<i64>()
                .is_ok_and(|n| SQLITE_TRANSIENT.contains(&(n & 0xff)))
        }
        _ => false,
    }
}
