//! The admin session cookie: `/admin/?token=<admin token>` sets `rollcall_admin`, whose
//! value is the token's id and a SHA-256 over a fixed label and the token's stored
//! hash. It is valid exactly as long as the token (revoking the token ends it), is
//! `HttpOnly`, `SameSite=Strict` and scoped to `/` (admin page and admin JSON).

use crate::Shared;
use crate::db::{TokenKind, TokenRow, sha256_hex};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const COOKIE: &str = "rollcall_admin";

fn seal(row: &TokenRow) -> String {
    format!(
        "{}.{}",
        row.id,
        sha256_hex(&format!("rollcall admin session\0{}", row.hash))
    )
}

/// The admin token behind a valid session cookie in `h`, if any.
pub(crate) fn from_cookie(s: &Shared, h: &HeaderMap) -> Option<TokenRow> {
    let value = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let id = value.split('.').next()?;
    let tokens = s.tokens.read().unwrap_or_else(|e| e.into_inner()).clone();
    tokens
        .values()
        .find(|r| r.id == id && r.kind == TokenKind::Admin)
        .filter(|r| seal(r) == value)
        .cloned()
}

/// Set the session for `row` and redirect to `to`.
pub(crate) fn start(row: &TokenRow, to: &'static str) -> Response {
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", seal(row));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}
