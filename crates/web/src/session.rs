//! The admin session cookie: `/admin/?token=<admin token>` sets `rollcall_admin` to the
//! token itself (`HttpOnly`, `SameSite=Strict`, path `/`), checked like the bearer header
//! (by its SHA-256 against the stored hashes): it lasts as long as the token, revoking
//! the token ends it, and the stored hashes alone cannot make one.

use crate::Shared;
use crate::db::{TokenKind, TokenRow};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const COOKIE: &str = "rollcall_admin";

/// The admin token behind a valid session cookie in `h`, if any.
pub(crate) fn from_cookie(s: &Shared, h: &HeaderMap) -> Option<TokenRow> {
    let value = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    s.token(value).filter(|r| r.kind == TokenKind::Admin)
}

/// Set the session for the admin token `secret` and redirect to `to`.
pub(crate) fn start(secret: &str, to: &'static str) -> Response {
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    let cookie = format!("{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}
