//! `/unsubscribe/{token}`: the link in every mail's `List-Unsubscribe` (RFC 2369). `GET`
//! shows a page with a confirm button (a link opened by a mail scanner changes nothing);
//! `POST` (the button, or a mail client's RFC 8058 one-click request) records the
//! unsubscription in the store, idempotently. Tokens are checked by
//! [`rollcall_notify::unsubscribe`]; an unknown one is a 404 that says nothing more.

use crate::{AppState, HTML};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall_notify::render::escape;

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body>\n<h1>{t}</h1>\n{body}\n</body></html>\n",
        t = escape(title)
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(HTML));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    res
}

fn unknown() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown link",
        "<p>This unsubscribe link is not valid.</p>",
    )
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    eprintln!("status page: unsubscribe: {e}");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again later",
        "<p>Your request could not be recorded just now; please try again in a minute.</p>",
    )
}

/// The confirm page.
pub async fn confirm(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    match rollcall_notify::unsubscribe::status(&s.store, &token).await {
        Ok(Some((_, true))) => page(
            StatusCode::OK,
            "Unsubscribed",
            "<p>You are unsubscribed: you will receive no more maintenance notices.</p>",
        ),
        Ok(Some((id, false))) => page(
            StatusCode::OK,
            "Unsubscribe",
            &format!(
                "<p>Stop maintenance notices to <b>{}</b>?</p>\n<form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
                escape(&id)
            ),
        ),
        Ok(None) => unknown(),
        Err(e) => unavailable(e),
    }
}

/// Unsubscribe (the button, or a one-click POST).
pub async fn unsubscribe(State(s): State<AppState>, UrlPath(token): UrlPath<String>) -> Response {
    match rollcall_notify::unsubscribe::unsubscribe(&s.store, &token).await {
        Ok(Some(_)) => page(
            StatusCode::OK,
            "Unsubscribed",
            "<p>You are unsubscribed: you will receive no more maintenance notices.</p>",
        ),
        Ok(None) => unknown(),
        Err(e) => unavailable(e),
    }
}
