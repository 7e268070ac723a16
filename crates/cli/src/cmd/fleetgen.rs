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
    /// Number of regions (default: the six of the example fleet).
    #[arg(long)]
    regions: Option<usize>,
    /// Zones per region.
    #[arg(long, default_value_t = 3)]
    zones: usize,
    /// Fleet-wide concurrency (default: hosts / 50, at least 4).
    #[arg(long)]
    max_concurrent: Option<u32>,
    /// Per-region concurrency (default: hosts / 150, at least 2).
    #[arg(long)]
    max_concurrent_per_region: Option<u32>,
    /// Notice lead in seconds.
    #[arg(long, default_value_t = 3600)]
    notice_lead: i64,
    #[command(flatten)]
    dense: DenseArgs,
    /// The oracle set's fleet for --seed (GenParams::oracle: 8–16 hosts, dense, binding
    /// concurrency); the shape flags above are ignored.
    #[arg(long)]
    oracle: bool,
    /// Write DIR/fleet.toml and DIR/hosts.csv instead of printing: hosts imported
    /// from the CSV file, clusters selecting their members by tag.
    #[arg(long, value_name = "DIR")]
    csv_dir: Option<PathBuf>,
}

/// Dense, constrained fleets (`--dense`): clusters fill every region, each constraint
/// with its own knob (shares are 0..1).
#[derive(clap::Args, Debug)]
struct DenseArgs {
    /// Fill every region with clusters of the shapes below instead of the default ones.
    #[arg(long)]
    dense: bool,
    /// Smallest cluster.
    #[arg(long, default_value_t = 3)]
    min_size: usize,
    /// Largest cluster.
    #[arg(long, default_value_t = 6)]
    max_size: usize,
    /// Largest node budget drawn.
    #[arg(long, default_value_t = 3)]
    max_budget: u32,
    /// Share of hosts with a duration of 0.25×–2× their kind's estimate.
    #[arg(long, default_value_t = 0.6)]
    mixed_durations: f64,
    /// Share of clusters sharing hosts with the previous cluster of their region.
    #[arg(long, default_value_t = 0.3)]
    shared: f64,
    /// Share of clusters with a zone budget.
    #[arg(long, default_value_t = 0.25)]
    zone_budgets: f64,
    /// Share of clusters whose load tightens the budget.
    #[arg(long, default_value_t = 0.3)]
    tightened: f64,
}

impl DenseArgs {
    fn knobs(&self) -> Option<generate::Dense> {
        self.dense.then(|| generate::Dense {
            size: (
                self.min_size.max(2),
                self.max_size.max(self.min_size.max(2)),
            ),
            max_budget: self.max_budget.max(1),
            mixed_durations: self.mixed_durations.clamp(0.0, 1.0),
            shared: self.shared.clamp(0.0, 1.0),
            zone_budgets: self.zone_budgets.clamp(0.0, 1.0),
            tightened: self.tightened.clamp(0.0, 1.0),
        })
    }
}

impl Args {
    fn params(&self) -> generate::GenParams {
        if self.oracle {
            return generate::GenParams::oracle(self.seed);
        }
        let mut params = generate::GenParams::new(self.hosts, self.clusters, self.seed);
        params.risky = self.risky.clamp(0.0, 1.0);
        if self.parallel {
            params.region_mode = RegionMode::Parallel;
        }
        if let Some(n) = self.regions {
            params.regions = (0..n.max(1)).map(|i| format!("r{i}")).collect();
        }
        params.zones_per_region = self.zones.clamp(1, 26);
        params.max_concurrent = self.max_concurrent.or(params.max_concurrent);
        params.max_concurrent_per_region = self
            .max_concurrent_per_region
            .or(params.max_concurrent_per_region);
        params.notice_lead = self.notice_lead.max(0);
        params.dense = self.dense.knobs();
        params
    }

    pub fn exec(self) -> miette::Result<ExitCode> {
        let f = generate::generate(&self.params());
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
