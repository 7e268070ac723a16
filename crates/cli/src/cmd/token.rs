//! `rollcall token ...`: status page tokens, secret tenant links and admin bearer tokens
//! (stored hashed).

use super::{Db, block_on};
use crate::err;
use rollcall_web::db::TokenKind;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Args {
    /// Create a tenant's secret link (prints it; only a hash is stored).
    Tenant {
        /// The tenant id (from the fleet's [[tenant]] tables).
        tenant: String,
        #[command(flatten)]
        db: Db,
        /// Base URL the link starts with.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Create an admin bearer token (prints it; only a hash is stored).
    Admin {
        #[command(flatten)]
        db: Db,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List tokens (ids, kinds, tenants; never the secrets).
    List {
        #[command(flatten)]
        db: Db,
    },
    /// Revoke a token by its id (from `token list`); its admin sessions end too.
    Revoke {
        id: String,
        #[command(flatten)]
        db: Db,
    },
    /// List live admin sessions (`/admin/?token=` starts one): ids, tokens, times; never the secrets.
    Sessions {
        #[command(flatten)]
        db: Db,
    },
    /// End one admin session by its id (from `token sessions`); its token stays valid.
    EndSession {
        id: String,
        #[command(flatten)]
        db: Db,
    },
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        match self {
            Args::Tenant {
                tenant,
                db,
                base_url,
                label,
            } => block_on(token_tenant(&db.path(), &tenant, &base_url, &label)),
            Args::Admin { db, label } => block_on(token_admin(&db.path(), &label)),
            Args::List { db } => block_on(token_list(&db.path())),
            Args::Revoke { id, db } => block_on(token_revoke(&db.path(), &id)),
            Args::Sessions { db } => block_on(sessions(&db.path())),
            Args::EndSession { id, db } => block_on(end_session(&db.path(), &id)),
        }
    }
}

async fn token_tenant(
    db: &Path,
    tenant: &str,
    base_url: &str,
    label: &str,
) -> miette::Result<ExitCode> {
    let (row, secret) = rollcall_web::create_token(db, TokenKind::Tenant, Some(tenant), label)
        .await
        .map_err(err)?;
    println!("{}/t/{secret}/", base_url.trim_end_matches('/'));
    eprintln!(
        "tenant {tenant}: secret link created (token id {}; only its SHA-256 is stored, so this is the only time it is shown; revoke with `rollcall token revoke {}`)",
        row.id, row.id
    );
    Ok(ExitCode::SUCCESS)
}

async fn token_admin(db: &Path, label: &str) -> miette::Result<ExitCode> {
    let (row, secret) = rollcall_web::create_token(db, TokenKind::Admin, None, label)
        .await
        .map_err(err)?;
    println!("{secret}");
    eprintln!(
        "admin token created (id {}); use it as `Authorization: Bearer <token>`; only its SHA-256 is stored",
        row.id
    );
    Ok(ExitCode::SUCCESS)
}

async fn token_list(db: &Path) -> miette::Result<ExitCode> {
    let rows = rollcall_web::list_tokens(db).await.map_err(err)?;
    println!(
        "{:<14} {:<7} {:<14} {:<20} LABEL",
        "ID", "KIND", "TENANT", "CREATED"
    );
    for r in rows {
        println!(
            "{:<14} {:<7} {:<14} {:<20} {}",
            r.id,
            match r.kind {
                TokenKind::Admin => "admin",
                TokenKind::Tenant => "tenant",
            },
            r.tenant.as_deref().unwrap_or("-"),
            rollcall_core::fmt_time(r.created_at / 1000),
            r.label
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_revoke(db: &Path, id: &str) -> miette::Result<ExitCode> {
    if rollcall_web::revoke_token(db, id).await.map_err(err)? {
        eprintln!("token {id} revoked");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(miette::miette!(
            "no token with id `{id}` (see `rollcall token list`)"
        ))
    }
}

async fn sessions(db: &Path) -> miette::Result<ExitCode> {
    let rows = rollcall_web::list_sessions(db).await.map_err(err)?;
    println!(
        "{:<14} {:<14} {:<20} {:<20} LABEL",
        "ID", "TOKEN", "STARTED", "EXPIRES"
    );
    for r in rows {
        println!(
            "{:<14} {:<14} {:<20} {:<20} {}",
            r.id,
            r.token,
            rollcall_core::fmt_time(r.created_at / 1000),
            rollcall_core::fmt_time(r.expires_at / 1000),
            r.label
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn end_session(db: &Path, id: &str) -> miette::Result<ExitCode> {
    if rollcall_web::end_session(db, id).await.map_err(err)? {
        eprintln!("session {id} ended");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(miette::miette!(
            "no live session with id `{id}` (see `rollcall token sessions`)"
        ))
    }
}
