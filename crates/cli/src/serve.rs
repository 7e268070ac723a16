//! The status page beside `rollcall run --serve`, and what `serve` shares with it.

use crate::err;
use rollcall_notify::admin::AdminDelivery;
use rollcall_web::{BoxFuture, ServeOptions, Server, Update, UpdateSink};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Admin notices and maintenances delivered to subscribers through the run's outbox.
struct NotifySink(Arc<AdminDelivery>);

impl UpdateSink for NotifySink {
    fn publish<'a>(&'a self, u: &'a Update) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.0.publish(u).await.map_err(|e| e.to_string()) })
    }
}

/// The update sink of a page serving journal `db`: delivers to the subscribers of the
/// run an update is for (of `run`, or the latest run, what earlier processes left
/// pending is retried from the start).
pub async fn notify_sink(db: &Path, run: Option<&str>) -> miette::Result<Arc<dyn UpdateSink>> {
    let store = rollcall_store::Store::connect(db).await.map_err(err)?;
    let env = Box::new(|k: &str| std::env::var(k).ok());
    let d = AdminDelivery::start(store, run.map(str::to_string), env)
        .await
        .map_err(err)?;
    Ok(Arc::new(NotifySink(d)))
}

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
    o.sink = notify_sink(db, run).await?;
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
