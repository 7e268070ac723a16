//! The web crate's own tables, in the run store's SQLite file (prefixed `web_`; the
//! store's schema is not touched):
//!
//! ```sql
//! web_tokens (id TEXT PK, hash TEXT UNIQUE, kind TEXT, tenant TEXT, label TEXT, created_at INTEGER)
//! web_notices (id TEXT PK, run TEXT, at INTEGER, title TEXT, body TEXT, region TEXT, tenant TEXT, created_at INTEGER)
//! web_maintenances (id TEXT PK, run TEXT, title, body, region, tenant, starts_at, ends_at, state, sequence, created_at, updated_at)
//! web_ical (uid TEXT PK, dtstart INTEGER, dtend INTEGER, status TEXT, sequence INTEGER)
//! web_meta (key TEXT PK, value INTEGER)   -- 'rev': bumped by every write, so servers reload
//! web_sessions (hash TEXT PK, token TEXT, expires_at INTEGER, created_at INTEGER)
//! ```
//!
//! Tokens and admin sessions are 256-bit random secrets; only their SHA-256 is stored (a
//! fast hash is enough for a secret of that entropy: there is nothing to brute-force), so
//! the tables alone cannot make either.

use crate::error::WebError;
use crate::model::{AdminMaintenance, AdminNotice, IcalEvent, IcalSeq};
use rollcall_store::Dialect;
use rollcall_store::Store;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

/// The web tables' migrations, applied by the store: version i + 1 is `[i]`, one list per
/// dialect.
const MIGRATIONS: &[&str] = &[SCHEMA, SESSIONS];
const PG_MIGRATIONS: &[&str] = &[PG_SCHEMA, PG_SESSIONS];

/// Admin sessions: the browser's cookie, traded once for an admin token; `token` is the
/// token's id, so revoking the token ends its sessions.
const SESSIONS: &str = "
CREATE TABLE IF NOT EXISTS web_sessions (
    hash       TEXT PRIMARY KEY,
    token      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
";

const PG_SESSIONS: &str = "
CREATE TABLE IF NOT EXISTS web_sessions (
    hash       TEXT PRIMARY KEY,
    token      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS web_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    tenant     TEXT,
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS web_notices (
    id         TEXT PRIMARY KEY,
    run        TEXT NOT NULL,
    at         INTEGER NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    region     TEXT,
    tenant     TEXT,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS web_maintenances (
    id         TEXT PRIMARY KEY,
    run        TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    region     TEXT,
    tenant     TEXT,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    state      TEXT NOT NULL,
    sequence   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS web_ical (
    uid      TEXT PRIMARY KEY,
    dtstart  INTEGER NOT NULL,
    dtend    INTEGER NOT NULL,
    status   TEXT NOT NULL,
    sequence INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS web_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
";

/// The same tables in PostgreSQL (BIGINT integers).
const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS web_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    tenant     TEXT,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_notices (
    id         TEXT PRIMARY KEY,
    run        TEXT NOT NULL,
    at         BIGINT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    region     TEXT,
    tenant     TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_maintenances (
    id         TEXT PRIMARY KEY,
    run        TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    region     TEXT,
    tenant     TEXT,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    state      TEXT NOT NULL,
    sequence   BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_ical (
    uid      TEXT PRIMARY KEY,
    dtstart  BIGINT NOT NULL,
    dtend    BIGINT NOT NULL,
    status   TEXT NOT NULL,
    sequence BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Tenant,
    Admin,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub hash: String,
    pub kind: TokenKind,
    pub tenant: Option<String>,
    pub label: String,
    pub created_at: i64,
}

/// Hex digits of a hash that name its token or session (`token list`, `token sessions`).
const SHORT_ID: usize = 12;

/// The id of the token or session whose SHA-256 is `hash`: its first [`SHORT_ID`] digits.
fn short_id(hash: &str) -> String {
    hash[..SHORT_ID].to_string()
}

/// A live admin session, as `rollcall token sessions` lists it (never its secret).
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// The first 12 hex digits of the session's hash ([`short_id`]), as token ids are made.
    pub id: String,
    /// The admin token it was started with (its id).
    pub token: String,
    /// That token's label.
    pub label: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The web tables, in the store's file, through the store's connections.
#[derive(Clone)]
pub struct WebDb {
    pool: AnyPool,
}

fn e(action: &'static str) -> impl Fn(sqlx::Error) -> WebError {
    WebError::tables(action)
}

pub fn sha256_hex(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes, base64url without padding.
pub fn random_secret() -> Result<String, WebError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| WebError::Randomness(e.to_string()))?;
    Ok(b64url(&b))
}

pub fn random_id(prefix: &str) -> Result<String, WebError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| WebError::Randomness(e.to_string()))?;
    Ok(format!(
        "{prefix}{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

/// A stored page id as text: 12 lowercase base-36 digits, like Statuspage's ids.
fn page_id_text(v: i64) -> String {
    let mut n = v.unsigned_abs();
    let mut out = Vec::new();
    for _ in 0..12 {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn b64url(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..=n {
            out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn token_row(r: &sqlx::any::AnyRow) -> TokenRow {
    TokenRow {
        id: r.get("id"),
        hash: r.get("hash"),
        kind: if r.get::<String, _>("kind") == "admin" {
            TokenKind::Admin
        } else {
            TokenKind::Tenant
        },
        tenant: r.get("tenant"),
        label: r.get("label"),
        created_at: r.get("created_at"),
    }
}

impl WebDb {
    /// The web tables of `store`, created or brought up to date through the store.
    pub async fn new(store: &Store) -> Result<WebDb, WebError> {
        let steps = match store.dialect() {
            Dialect::Sqlite => MIGRATIONS,
            Dialect::Postgres => PG_MIGRATIONS,
        };
        store.migrate("web", steps).await?;
        Ok(WebDb {
            pool: store.pool().clone(),
        })
    }

    async fn bump(&self, tx: &mut sqlx::AnyConnection) -> Result<(), WebError> {
        sqlx::query(
            "INSERT INTO web_meta (key, value) VALUES ('rev', 1)
             ON CONFLICT (key) DO UPDATE SET value = web_meta.value + 1",
        )
        .execute(&mut *tx)
        .await
        .map_err(e("cannot bump the revision"))?;
        Ok(())
    }

    /// This deployment's page id: drawn once at random and kept in `web_meta`
    /// (`page_id`), so it stays across runs and restarts of this store.
    pub async fn page_id(&self) -> Result<String, WebError> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| WebError::Randomness(e.to_string()))?;
        let drawn = i64::from_le_bytes(b) & i64::MAX;
        sqlx::query(
            "INSERT INTO web_meta (key, value) VALUES ('page_id', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(drawn)
        .execute(&self.pool)
        .await
        .map_err(e("cannot store the page id"))?;
        let v: i64 = sqlx::query_scalar("SELECT value FROM web_meta WHERE key = 'page_id'")
            .fetch_one(&self.pool)
            .await
            .map_err(e("cannot read the page id"))?;
        Ok(page_id_text(v))
    }

    /// Bumped by every write to the web tables.
    pub async fn rev(&self) -> Result<i64, WebError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT value FROM web_meta WHERE key = 'rev'")
            .fetch_optional(&self.pool)
            .await
            .map_err(e("cannot read the revision"))?;
        Ok(v.unwrap_or(0))
    }

    /// Create a token; returns (row, secret). The secret is never stored.
    pub async fn create_token(
        &self,
        kind: TokenKind,
        tenant: Option<&str>,
        label: &str,
        now_ms: i64,
    ) -> Result<(TokenRow, String), WebError> {
        let secret = format!(
            "{}{}",
            match kind {
                TokenKind::Tenant => "rct_",
                TokenKind::Admin => "rca_",
            },
            random_secret()?
        );
        let hash = sha256_hex(&secret);
        let row = TokenRow {
            id: short_id(&hash),
            hash,
            kind,
            tenant: tenant.map(str::to_string),
            label: label.to_string(),
            created_at: now_ms,
        };
        let mut tx = self.pool.begin().await.map_err(e("cannot begin"))?;
        sqlx::query(
            "INSERT INTO web_tokens (id, hash, kind, tenant, label, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(&row.hash)
        .bind(match kind {
            TokenKind::Tenant => "tenant",
            TokenKind::Admin => "admin",
        })
        .bind(&row.tenant)
        .bind(&row.label)
        .bind(row.created_at)
        .execute(&mut *tx)
        .await
        .map_err(e("cannot store the token"))?;
        self.bump(&mut tx).await?;
        tx.commit().await.map_err(e("cannot commit"))?;
        Ok((row, secret))
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRow>, WebError> {
        let rows = sqlx::query(
            "SELECT id, hash, kind, tenant, label, created_at FROM web_tokens ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(e("cannot read tokens"))?;
        Ok(rows.iter().map(token_row).collect())
    }

    /// Start an admin session for token `token` (its id) until `expires_ms`; returns the
    /// session's secret (for the cookie; only its hash is stored). Sessions already
    /// expired are deleted on the way.
    pub async fn create_session(
        &self,
        token: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<String, WebError> {
        let secret = format!("rcs_{}", random_secret()?);
        let mut tx = self.pool.begin().await.map_err(e("cannot begin"))?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(e("cannot delete expired sessions"))?;
        sqlx::query(
            "INSERT INTO web_sessions (hash, token, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(sha256_hex(&secret))
        .bind(token)
        .bind(expires_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(e("cannot store the session"))?;
        tx.commit().await.map_err(e("cannot commit"))?;
        Ok(secret)
    }

    /// The token behind session `secret`, if the session has not expired at `now_ms` and
    /// its token is not revoked. Read from the tables each time: a session started on
    /// another server of the same store works at once, and a revocation ends it at once.
    pub async fn session_token(
        &self,
        secret: &str,
        now_ms: i64,
    ) -> Result<Option<TokenRow>, WebError> {
        let row = sqlx::query(
            "SELECT t.id, t.hash, t.kind, t.tenant, t.label, t.created_at
             FROM web_sessions s JOIN web_tokens t ON t.id = s.token
             WHERE s.hash = $1 AND s.expires_at > $2",
        )
        .bind(sha256_hex(secret))
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(e("cannot read the session"))?;
        Ok(row.as_ref().map(token_row))
    }

    /// The sessions live at `now_ms`, oldest first.
    pub async fn sessions(&self, now_ms: i64) -> Result<Vec<SessionRow>, WebError> {
        let rows = sqlx::query(
            "SELECT s.hash, s.token, t.label, s.created_at, s.expires_at
             FROM web_sessions s JOIN web_tokens t ON t.id = s.token
             WHERE s.expires_at > $1 ORDER BY s.created_at, s.hash",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(e("cannot read sessions"))?;
        Ok(rows
            .iter()
            .map(|r| SessionRow {
                id: short_id(&r.get::<String, _>("hash")),
                token: r.get("token"),
                label: r.get("label"),
                created_at: r.get("created_at"),
                expires_at: r.get("expires_at"),
            })
            .collect())
    }

    /// End one session by its id (as `sessions` lists it); its cookie stops working on
    /// every server of the store at once. `false`: no such session.
    pub async fn end_session(&self, id: &str) -> Result<bool, WebError> {
        // 12: SHORT_ID (sqlx takes only literal SQL)
        let n = sqlx::query("DELETE FROM web_sessions WHERE substr(hash, 1, 12) = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(e("cannot end the session"))?
            .rows_affected();
        Ok(n > 0)
    }

    /// Revoke by id (the first 12 hex digits of the hash, as `token list` shows).
    pub async fn revoke(&self, id: &str) -> Result<bool, WebError> {
        let mut tx = self.pool.begin().await.map_err(e("cannot begin"))?;
        let n = sqlx::query("DELETE FROM web_tokens WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(e("cannot revoke"))?
            .rows_affected();
        sqlx::query("DELETE FROM web_sessions WHERE token = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(e("cannot end the token's sessions"))?;
        self.bump(&mut tx).await?;
        tx.commit().await.map_err(e("cannot commit"))?;
        Ok(n > 0)
    }

    pub async fn insert_notice(
        &self,
        run: &str,
        n: &AdminNotice,
        now_ms: i64,
    ) -> Result<(), WebError> {
        let mut tx = self.pool.begin().await.map_err(e("cannot begin"))?;
        sqlx::query(
            "INSERT INTO web_notices (id, run, at, title, body, region, tenant, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&n.id)
        .bind(run)
        .bind(n.at)
        .bind(&n.title)
        .bind(&n.body)
        .bind(&n.region)
        .bind(&n.tenant)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(e("cannot store the notice"))?;
        self.bump(&mut tx).await?;
        tx.commit().await.map_err(e("cannot commit"))
    }

    pub async fn notices(&self, run: &str) -> Result<Vec<AdminNotice>, WebError> {
        let rows = sqlx::query(
            "SELECT id, at, title, body, region, tenant FROM web_notices WHERE run = $1 ORDER BY at, id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await
        .map_err(e("cannot read notices"))?;
        Ok(rows
            .into_iter()
            .map(|r| AdminNotice {
                id: r.get("id"),
                at: r.get("at"),
                title: r.get("title"),
                body: r.get("body"),
                region: r.get("region"),
                tenant: r.get("tenant"),
            })
            .collect())
    }

    pub async fn upsert_maintenance(
        &self,
        run: &str,
        m: &AdminMaintenance,
    ) -> Result<(), WebError> {
        let mut tx = self.pool.begin().await.map_err(e("cannot begin"))?;
        sqlx::query(
            "INSERT INTO web_maintenances (id, run, title, body, region, tenant, starts_at, ends_at, state, sequence, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body,
               starts_at = excluded.starts_at, ends_at = excluded.ends_at, state = excluded.state,
               sequence = excluded.sequence, updated_at = excluded.updated_at",
        )
        .bind(&m.id)
        .bind(run)
        .bind(&m.title)
        .bind(&m.body)
        .bind(&m.region)
        .bind(&m.tenant)
        .bind(m.starts_at)
        .bind(m.ends_at)
        .bind(&m.state)
        .bind(m.sequence as i64)
        .bind(m.created_at)
        .bind(m.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(e("cannot store the maintenance"))?;
        self.bump(&mut tx).await?;
        tx.commit().await.map_err(e("cannot commit"))
    }

    pub async fn maintenances(&self, run: &str) -> Result<Vec<AdminMaintenance>, WebError> {
        let rows = sqlx::query(
            "SELECT id, title, body, region, tenant, starts_at, ends_at, state, sequence, created_at, updated_at
             FROM web_maintenances WHERE run = $1 ORDER BY starts_at, id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await
        .map_err(e("cannot read maintenances"))?;
        Ok(rows
            .into_iter()
            .map(|r| AdminMaintenance {
                id: r.get("id"),
                title: r.get("title"),
                body: r.get("body"),
                region: r.get("region"),
                tenant: r.get("tenant"),
                starts_at: r.get("starts_at"),
                ends_at: r.get("ends_at"),
                state: r.get("state"),
                sequence: r.get::<i64, _>("sequence") as u32,
                created_at: r.get("created_at"),
                updated_at: r.get("updated_at"),
            })
            .collect())
    }

    pub async fn ical(&self) -> Result<IcalSeq, WebError> {
        let rows = sqlx::query("SELECT uid, dtstart, dtend, status, sequence FROM web_ical")
            .fetch_all(&self.pool)
            .await
            .map_err(e("cannot read web_ical"))?;
        let mut m = HashMap::new();
        for r in rows {
            let event = IcalEvent {
                start: r.get("dtstart"),
                end: r.get("dtend"),
                status: r.get("status"),
                sequence: r.get::<i64, _>("sequence") as u32,
            };
            m.insert(r.get::<String, _>("uid"), event);
        }
        Ok(m)
    }

    /// Store new iCalendar windows (no revision bump: this follows the journal).
    pub async fn set_ical(&self, changes: &[(String, IcalEvent)]) -> Result<(), WebError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(e("cannot begin"))?;
        for (uid, ev) in changes {
            sqlx::query(
                "INSERT INTO web_ical (uid, dtstart, dtend, status, sequence) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (uid) DO UPDATE SET dtstart = excluded.dtstart, dtend = excluded.dtend,
                   status = excluded.status, sequence = excluded.sequence",
            )
            .bind(uid)
            .bind(ev.start)
            .bind(ev.end)
            .bind(&ev.status)
            .bind(ev.sequence as i64)
            .execute(&mut *tx)
            .await
            .map_err(e("cannot store web_ical"))?;
        }
        tx.commit().await.map_err(e("cannot commit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_rfc_vectors() {
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(b"foob"), "Zm9vYg");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(random_secret().unwrap().len(), 43);
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
