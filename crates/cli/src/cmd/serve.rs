//! `rollcall serve`: the status page, JSON API, feeds and metrics of the latest run (or --run).

use super::{Db, block_on};
use crate::err;
use crate::serve::parse_addr;
use rollcall_web::ServeOptions;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    db: Db,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Follow this run instead of the latest one.
    #[arg(long)]
    run: Option<String>,
    /// Base URL of the status page in feeds (default http://LISTEN).
    #[arg(long)]
    public_url: Option<String>,
    /// The page's id (`page.id` in its Statuspage documents, and its feeds' ids);
    /// default: an id drawn once per journal and kept in it, stable across runs.
    #[arg(long)]
    page_id: Option<String>,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        block_on(self.serve())
    }

    async fn serve(self) -> miette::Result<ExitCode> {
        let listen = parse_addr("--listen", &self.listen)?;
        let db = self.db.path();
        let mut o = ServeOptions::new(&db, listen);
        o.sink = crate::serve::notify_sink(&db, self.run.as_deref()).await?;
        o.run = self.run;
        o.public_url = self.public_url;
        o.page_id = self.page_id;
        let server = rollcall_web::start(o).await.map_err(err)?;
        eprintln!(
            "status page for {} at {}/ (journal {}); Ctrl-C to stop",
            match &server.shared.snapshot().view.run_id {
                id if id.is_empty() => "no run yet".to_string(),
                id => format!("run {id}"),
            },
            server.url,
            rollcall_store::Target::parse(db.as_os_str())
        );
        let _ = tokio::signal::ctrl_c().await;
        server.stop().await;
        Ok(ExitCode::SUCCESS)
    }
}
