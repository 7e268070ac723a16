//! The status page beside `rollcall run --serve`, and what `serve` shares with it.

use crate::err;
use rollcall_web::{ServeOptions, Server};
use std::net::SocketAddr;
use std::path::Path;

pub fn parse_addr(flag: &str, s: &str) -> miette::Result<SocketAddr> {
    s.parse::<SocketAddr>().map_err(|e| {
        miette::miette!("{flag}: expected an address such as 127.0.0.1:8080, got `{s}`: {e}")
    })
}

/// Start the status page in this process: of `run` (`run --serve`), or of the journal's
/// latest run, whichever it is as runs come and go (`guard --serve`).
pub async fn start_page(
    db: &Path,
    listen: SocketAddr,
    run: Option<&str>,
    public_url: Option<String>,
    page_id: Option<String>,
) -> miette::Result<Server> {
    let mut o = ServeOptions::new(db, listen);
    o.run = run.map(str::to_string);
    o.public_url = public_url;
    o.page_id = page_id;
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
