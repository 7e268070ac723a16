//! `rollcall serve`, `rollcall token ...`, `rollcall bench serve` and the status page
//! beside `rollcall run --serve`.

use rollcall_web::db::TokenKind;
use rollcall_web::{ServeOptions, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn err(e: impl std::fmt::Display) -> miette::Report {
    miette::miette!("{e}")
}

pub fn parse_addr(flag: &str, s: &str) -> miette::Result<SocketAddr> {
    s.parse::<SocketAddr>().map_err(|e| {
        miette::miette!("{flag}: expected an address such as 127.0.0.1:8080, got `{s}`: {e}")
    })
}

/// Start the status page in this process (for `run --serve`).
pub async fn start_beside_run(
    db: &Path,
    listen: SocketAddr,
    run: &str,
    public_url: Option<String>,
) -> miette::Result<Server> {
    let mut o = ServeOptions::new(db, listen);
    o.run = Some(run.to_string());
    o.public_url = public_url;
    let s = rollcall_web::start(o).await.map_err(err)?;
    eprintln!("status page: {}/", s.url);
    Ok(s)
}

/// After the run: keep serving until Ctrl-C.
pub async fn linger(server: Server) {
    eprintln!(
        "status page still serving at {}/ (Ctrl-C to stop)",
        server.url
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
}

pub async fn serve(
    db: PathBuf,
    listen: SocketAddr,
    run: Option<String>,
    public_url: Option<String>,
) -> miette::Result<ExitCode> {
    let mut o = ServeOptions::new(&db, listen);
    o.run = run;
    o.public_url = public_url;
    let server = rollcall_web::start(o).await.map_err(err)?;
    eprintln!(
        "status page for {} at {}/ (journal {}); Ctrl-C to stop",
        match &server.shared.snapshot().view.run_id {
            id if id.is_empty() => "no run yet".to_string(),
            id => format!("run {id}"),
        },
        server.url,
        db.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn token_tenant(
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

pub async fn token_admin(db: &Path, label: &str) -> miette::Result<ExitCode> {
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

pub async fn token_list(db: &Path) -> miette::Result<ExitCode> {
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

pub async fn token_revoke(db: &Path, id: &str) -> miette::Result<ExitCode> {
    if rollcall_web::revoke_token(db, id).await.map_err(err)? {
        eprintln!("token {id} revoked");
        Ok(ExitCode::SUCCESS)
    } else {
        Err(miette::miette!(
            "no token with id `{id}` (see `rollcall token list`)"
        ))
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn bench_serve(
    fleet: Option<PathBuf>,
    hosts: usize,
    clusters: usize,
    connections: usize,
    seconds: f64,
    time_scale: f64,
    client_threads: usize,
    run_seconds: f64,
    json: bool,
) -> miette::Result<ExitCode> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(miette::miette!("--seconds must be positive, got {seconds}"));
    }
    let o = rollcall_web::bench::BenchServe {
        fleet,
        hosts,
        clusters,
        connections: connections.max(1),
        duration: Duration::from_secs_f64(seconds),
        warmup: Duration::from_secs(1),
        time_scale,
        client_threads,
        run_limit: Duration::from_secs_f64(run_seconds.max(0.1)),
    };
    let r = rollcall_web::bench::bench_serve(&o).await.map_err(err)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).map_err(err)?);
    } else {
        let s = &r.summary;
        println!(
            "status API benchmark: {} ({} hosts, {} clusters), sim run {} after {:.1} s ({} hosts done), served on {}",
            r.fleet, r.hosts, r.clusters, r.run_ending, r.run_seconds, r.hosts_done, r.server_url
        );
        println!(
            "  GET {}  {} connections, keep-alive, {:.0} s: {} requests, {} errors",
            s.path, s.connections, s.seconds, s.requests, s.errors
        );
        println!(
            "  {:.0} req/s   latency p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms   ({} bytes per response)",
            s.requests_per_s, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.response_bytes
        );
    }
    Ok(if r.summary.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
