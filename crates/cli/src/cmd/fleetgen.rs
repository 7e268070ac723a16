//! `rollcall gen`: a synthetic fleet file.

use rollcall_core::{Fleet, RegionMode, generate};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    #[arg(long, default_value_t = 200)]
    clusters: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of clusters made deliberately unsafe (exercises the risk report).
    #[arg(long, default_value_t = 0.01)]
    risky: f64,
    /// Plan regions in parallel instead of one after another.
    #[arg(long)]
    parallel: bool,
    /// Write DIR/fleet.toml and DIR/hosts.csv instead of printing: hosts imported
    /// from the CSV file, clusters selecting their members by tag.
    #[arg(long, value_name = "DIR")]
    csv_dir: Option<PathBuf>,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let mut params = generate::GenParams::new(self.hosts, self.clusters, self.seed);
        params.risky = self.risky.clamp(0.0, 1.0);
        if self.parallel {
            params.region_mode = RegionMode::Parallel;
        }
        let f = generate::generate(&params);
        match &self.csv_dir {
            None => print!("{}", rollcall_fleet::write::to_toml(&f)),
            Some(dir) => write_imported(dir, &f)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `gen --csv-dir`: the fleet as DIR/fleet.toml importing DIR/hosts.csv.
fn write_imported(dir: &Path, f: &Fleet) -> miette::Result<()> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| miette::miette!("cannot create {}: {e}", dir.display()))?;
    write("hosts.csv", rollcall_fleet::write::to_csv(f))?;
    write(
        "fleet.toml",
        rollcall_fleet::write::to_toml_imported(f, "hosts.csv"),
    )?;
    eprintln!("wrote {}", dir.join("fleet.toml").display());
    Ok(())
}
