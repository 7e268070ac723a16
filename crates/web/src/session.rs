//! The admin session: `/admin/?token=<admin token>` starts a session for that token and
//! sets `rollcall_admin` to the session's own secret (`HttpOnly`, `SameSite=Strict`, path
//! `/`, `Max-Age` its lifetime, `Secure` when the page is served over https). The token
//! itself never goes into the cookie. Sessions are stored hashed in `web_sessions` (see
//! [`crate::db`]): one lasts [`LIFETIME_S`], works on every server of the store at once,
//! and ends when its token is revoked. A session opens the read-only admin views only.

use crate::Shared;
use crate::db::{TokenKind, TokenRow};
use crate::error::WebError;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const COOKIE: &str = "rollcall_admin";

/// How long a session lasts (seconds): a working day; then the token is asked again.
pub(crate) const LIFETIME_S: i64 = 12 * 3600;

/// The admin token behind a live session cookie in `h`, if any.
pub(crate) async fn from_cookie(s: &Shared, h: &HeaderMap) -> Result<Option<TokenRow>, WebError> {
    let Some(secret) = cookie(h) else {
        return Ok(None);
    };
    let now = rollcall_runtime::wall_ms();
    let row = s.db.session_token(secret, now).await?;
    Ok(row.filter(|r| r.kind == TokenKind::Admin))
}

fn cookie(h: &HeaderMap) -> Option<&str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Start a session for admin token `token`, set its cookie and redirect to `to`.
pub(crate) async fn start(
    s: &Shared,
    h: &HeaderMap,
    token: &TokenRow,
    to: &'static str,
) -> Response {
    let now = rollcall_runtime::wall_ms();
    let secret = match s
        .db
        .create_session(&token.id, now, now + LIFETIME_S * 1000)
        .await
    {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let secure = if https(s, h) { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={secret}; Path=/; Max-Age={LIFETIME_S}; HttpOnly; SameSite=Strict{secure}"
    );
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// The page is served over https: its public URL says so, or the proxy in front of it
/// does (`X-Forwarded-Proto: https`).
fn https(s: &Shared, h: &HeaderMap) -> bool {
    s.base_url.starts_with("https://")
        || h.get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}
