//! The store's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store. Every message names the journal file, so an
/// operator who sees it in a log knows which file to look at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The journal's parent directory could not be created.
    #[error("{}: cannot create the journal's directory: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The journal file exists but could not be read.
    #[error("{}: cannot read the journal file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not an SQLite database at all (a text file, random bytes, a truncated
    /// or damaged database). The file was not modified.
    #[error("{} is not a rollcall journal: {reason}", path.display())]
    NotAJournal { path: PathBuf, reason: String },

    /// The file is an SQLite database of some other program. The file was not modified.
    #[error(
        "{} belongs to another application (application_id {application_id:#010x}; a rollcall \
         journal has {:#010x}): refusing to use it, pick another journal path",
        path.display(),
        crate::APPLICATION_ID
    )]
    Foreign { path: PathBuf, application_id: u32 },

    /// The journal was written by a newer rollcall whose schema this build does not know.
    #[error(
        "{} was written by a newer rollcall (journal schema version {found}; this build \
         understands up to version {supported}): upgrade rollcall to read it",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// A component's tables (`web_`, `notify_`) were migrated by a newer rollcall.
    #[error(
        "{}: the {component} tables were written by a newer rollcall (version {found}; this \
         build knows up to version {known}): upgrade rollcall to use this journal",
        path.display()
    )]
    NewerComponent {
        path: PathBuf,
        component: String,
        found: i64,
        known: i64,
    },

    /// The run does not exist in this journal.
    #[error("{}: run {run:?} does not exist in this journal", path.display())]
    UnknownRun { path: PathBuf, run: String },

    /// `create_run` with an id that is already taken.
    #[error("{}: run {run:?} already exists in this journal", path.display())]
    RunExists { path: PathBuf, run: String },

    /// A write by an orchestrator whose lease has moved on (taken over, or released):
    /// the database refused it, so a stale leader cannot act through the journal.
    #[error(
        "{}: run {run:?}: write refused: this orchestrator's lease (epoch {epoch}) is no longer \
         current: the run is held by {} (epoch {current_epoch})",
        path.display(),
        current_owner.as_deref().unwrap_or("nobody")
    )]
    Fenced {
        path: PathBuf,
        run: String,
        epoch: i64,
        current_epoch: i64,
        current_owner: Option<String>,
    },

    /// A new run would share hosts or clusters with a live run of this store.
    #[error("{}: cannot start run {run:?}: {}", path.display(), crate::describe_conflicts(conflicts))]
    Claimed {
        path: PathBuf,
        run: String,
        conflicts: Vec<crate::ClaimConflict>,
    },

    /// A journal record could not be decoded (its JSON is damaged).
    #[error("{}: run {run:?}, journal record seq {seq} is corrupt: {reason}", path.display())]
    CorruptRecord {
        path: PathBuf,
        run: String,
        seq: i64,
        reason: String,
    },

    /// A column of a run's row could not be decoded.
    #[error("{}: run {run:?} is corrupt: column {column}: {reason}", path.display())]
    CorruptRun {
        path: PathBuf,
        run: String,
        column: &'static str,
        reason: String,
    },

    /// A JSON value could not be encoded (never expected for `serde_json::Value`).
    #[error("{}: cannot encode {what} as JSON: {source}", path.display())]
    Encode {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// Any other database error (I/O error, disk full, lock held too long, ...).
    #[error("{}: {action}: {source}", path.display())]
    Db {
        path: PathBuf,
        action: String,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// A failure that may pass on its own (the database restarted or is unreachable for a
    /// while, its lock is held, its pool is exhausted): the caller may retry the same
    /// call. Everything else (a refused write, bad data, an unknown run) is final.
    pub fn is_transient(&self) -> bool {
        let StoreError::Db { source, .. } = self else {
            return false;
        };
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            sqlx::Error::Database(d) => d.code().is_some_and(|c| transient_code(&c)),
            _ => false,
        }
    }
}

/// SQLite's BUSY (5) and LOCKED (6) (primary codes of its extended codes); PostgreSQL's connection exceptions
/// (class 08), shutdowns (57P01-57P03), too many connections (53300), serialization
/// failures and deadlocks (40001, 40P01) and lock timeouts (55P03).
fn transient_code(code: &str) -> bool {
    // PostgreSQL's SQLSTATEs are five characters; SQLite's codes are at most four digits
    if code.len() != 5 {
        return code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    }
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03"
        )
}
