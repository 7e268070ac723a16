//! The web crate's one error type. As a response it is a JSON `{"error", "field"}` body with
//! the status its kind calls for.

use crate::admin_body::BadRequest;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall_runtime::LoadError;
use rollcall_store::StoreError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The journal file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `web_` tables.
    #[error("web tables: {action}: {source}")]
    Tables {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The run's journal records.
    #[error(transparent)]
    Journal(#[from] rollcall_runtime::RuntimeError),
    #[error("no randomness: {0}")]
    Randomness(String),
    #[error("{}: no journal here (start a run first, or pass --db)", path.display())]
    NoJournal { path: PathBuf },
    #[error("this journal has no runs yet: cannot check the tenant")]
    NoRunForTenant,
    #[error("run {run}: its fleet does not load: {error}")]
    Fleet { run: String, error: LoadError },
    #[error("no tenant `{tenant}` in the fleet of run {run} (tenants: {known})")]
    UnknownTenant {
        tenant: String,
        run: String,
        known: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A request the admin API refuses, naming the field.
    #[error("{}", .0.message)]
    BadRequest(BadRequest),
    #[error("no run in the store yet: notices and maintenances belong to a run")]
    NoRun,
    #[error("no maintenance `{id}` in run {run}")]
    NoMaintenance { id: String, run: String },
    /// The admin bearer token is missing, malformed or not valid.
    #[error("{0}")]
    Unauthorized(&'static str),
}

impl WebError {
    /// The `web_` tables' error for `action`.
    pub(crate) fn tables(action: &'static str) -> impl Fn(sqlx::Error) -> WebError {
        move |source| WebError::Tables { action, source }
    }

    fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NoRun => StatusCode::CONFLICT,
            WebError::NoMaintenance { .. } => StatusCode::NOT_FOUND,
            WebError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            WebError::BadRequest(b) => b.field.as_deref(),
            WebError::NoMaintenance { .. } => Some("id"),
            _ => None,
        }
    }
}

impl From<BadRequest> for WebError {
    fn from(b: BadRequest) -> WebError {
        WebError::BadRequest(b)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut r = crate::error(self.status(), self.to_string(), self.field());
        if let WebError::Unauthorized(_) = self {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall admin\""),
            );
        }
        r
    }
}
