//! `rollcall history`: the runs in the journal, newest first.

use super::{Db, block_on, print_json};
use rollcall_core::fmt_time;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    db: Db,
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        block_on(self.history())
    }

    async fn history(self) -> miette::Result<ExitCode> {
        let store = self.db.open().await?;
        let runs = store.runs().await.map_err(|e| miette::miette!("{e}"))?;
        if self.json {
            let list: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| serde_json::json!({"id": r.id, "created_at": r.created_at, "fleet": r.fleet_name, "maintenance": r.maintenance, "status": r.status, "fleet_path": r.fleet_path}))
                .collect();
            print_json(&list)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<24} {:<20} {:<16} {:<12} STATUS",
            "RUN", "CREATED", "FLEET", "MAINTENANCE"
        );
        for r in runs {
            println!(
                "{:<24} {:<20} {:<16} {:<12} {}",
                r.id,
                fmt_time(r.created_at / 1000),
                r.fleet_name,
                r.maintenance,
                r.status
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
