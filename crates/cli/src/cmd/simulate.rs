//! `rollcall simulate FLEET`: the maintenance many times with each strategy, compared.

use super::{OnMissingArg, SimFaults, load};
use rollcall_core::Fleet;
use rollcall_core::simworld::SimParams;
use rollcall_sim::{Dist, SimOptions, Strategy, Summary};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
#[command(
    mut_arg("missing_rate", |a| a.default_value("0.05")),
    mut_arg("flap_rate", |a| a.default_value("0.02"))
)]
pub struct Args {
    fleet: PathBuf,
    /// all (region-at-once, global-serial, batch:10%, rollcall), guard (provider,
    /// rollcall-guard), or a comma-separated list (batch:5, batch:20% ...).
    #[arg(long, default_value = "all")]
    strategy: String,
    #[arg(long, default_value_t = 100)]
    runs: u64,
    #[command(flatten)]
    faults: SimFaults,
    /// Data per node (GB) and recovery throughput per node (MB/s) for shard recovery
    /// after a node returns; without them recovery takes 85% of the host's estimate.
    #[arg(long)]
    data_gb: Option<f64>,
    #[arg(long, default_value_t = 40.0)]
    recovery_mb_s: f64,
    #[arg(long)]
    json: bool,
    /// Write a chart of unavailable clusters over time (first seed) to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Override the fleet's on_missing policy for the rollcall strategies.
    #[arg(long, value_enum)]
    on_missing: Option<OnMissingArg>,
}

/// What the comparison found, per strategy.
struct Compared {
    fleet: Arc<Fleet>,
    params: SimParams,
    seconds: f64,
    summaries: Vec<Summary>,
    /// The first seed's unavailable clusters over time, per strategy.
    timelines: Vec<(String, Vec<(i64, u32)>)>,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let params = self.params()?;
        let strategies =
            Strategy::parse_list(&self.strategy).map_err(|e| miette::miette!("--strategy: {e}"))?;
        let mut f = load(&self.fleet)?;
        if let Some(p) = self.on_missing {
            f.maintenance.on_missing = p.into();
        }
        let c = self.compare(Arc::new(f), &strategies, params);
        if let Some(path) = &self.svg {
            let title = format!(
                "{} / {}: unavailable clusters over time (seed {})",
                c.fleet.name, c.fleet.maintenance.name, self.faults.seed
            );
            std::fs::write(path, rollcall_sim::svg_chart(&title, &c.timelines))
                .map_err(|e| miette::miette!("{}: {e}", path.display()))?;
        }
        let violations: usize = c.summaries.iter().map(|s| s.violations).sum();
        match self.json {
            true => super::print_json(&self.doc(c))?,
            false => self.print(&c),
        }
        Ok(match violations {
            0 => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        })
    }

    /// The world's model from the flags, checked.
    fn params(&self) -> miette::Result<SimParams> {
        if let Some(gb) = self.data_gb
            && !(gb > 0.0 && gb.is_finite())
        {
            return Err(miette::miette!("--data-gb must be positive, got {gb}"));
        }
        let mb = self.recovery_mb_s;
        if !(mb > 0.0 && mb.is_finite()) {
            return Err(miette::miette!(
                "--recovery-mb-s must be positive, got {mb}"
            ));
        }
        Ok(SimParams {
            data_gb: self.data_gb,
            recovery_mb_s: mb,
            // the world's seed is per run (from --seed), as before
            seed: SimParams::default().seed,
            ..self.faults.params()?
        })
    }

    fn compare(&self, fleet: Arc<Fleet>, strategies: &[Strategy], params: SimParams) -> Compared {
        let opts = SimOptions {
            params,
            timeline: self.svg.is_some() || self.json,
            ..Default::default()
        };
        let (runs, seed) = (self.runs.max(1), self.faults.seed);
        let t0 = Instant::now();
        let results = rollcall_sim::compare(&fleet, strategies, runs, seed, self.threads, &opts);
        let seconds = t0.elapsed().as_secs_f64();
        let summaries = strategies
            .iter()
            .zip(&results)
            .map(|(s, o)| rollcall_sim::summarize(&s.name(), o))
            .collect();
        let timelines = strategies
            .iter()
            .zip(&results)
            .map(|(s, o)| {
                let first = o.first().map(|x| x.timeline.clone()).unwrap_or_default();
                (s.name(), first)
            })
            .collect();
        Compared {
            fleet,
            params: opts.params,
            seconds,
            summaries,
            timelines,
        }
    }

    fn doc(&self, c: Compared) -> serde_json::Value {
        serde_json::json!({
            "fleet": c.fleet.name, "maintenance": c.fleet.maintenance.name,
            "runs": self.runs.max(1), "seed": self.faults.seed,
            "model": c.params, "seconds": c.seconds, "strategies": c.summaries,
            "timelines": c.timelines.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        })
    }

    fn print(&self, c: &Compared) {
        let (p, runs, seed) = (&c.params, self.runs.max(1), self.faults.seed);
        println!(
            "{} / {}: {runs} runs per strategy from seed {seed} in {:.1} s; model: {:.0}% of reboots not back on time ({}), gate flapping {:.0}%",
            c.fleet.name,
            c.fleet.maintenance.name,
            c.seconds,
            p.missing_rate * 100.0,
            p.missing_for.map_or("never back".to_string(), |m| format!(
                "back after {}",
                rollcall_core::fmt_duration(m)
            )),
            p.flap_rate * 100.0
        );
        println!("median [p90] across runs; cluster-minutes are summed over clusters\n");
        println!(
            "{:<16} {:>13} {:>19} {:>13} {:>18} {:>14} {:>8} {:>9} {:>10}",
            "STRATEGY",
            "MAKESPAN h",
            "UNAVAILABLE cl-min",
            "RED cl-min",
            "OVERLOADED cl-min",
            "CLUSTERS LOST",
            "NOTICES",
            "MISSING",
            "UNFINISHED"
        );
        for s in &c.summaries {
            print_row(s);
        }
        if let Some((seed, v)) = c.summaries.iter().find_map(|s| s.first_violation.clone()) {
            println!("\nRULE VIOLATION (replay with --seed {seed} --runs 1): {v}");
        }
        if let Some(path) = &self.svg {
            println!("\nchart: {}", path.display());
        }
    }
}

fn print_row(s: &Summary) {
    let cell = |d: &Dist, dec: usize| format!("{:.*} [{:.*}]", dec, d.p50, dec, d.p90);
    println!(
        "{:<16} {:>13} {:>19} {:>13} {:>18} {:>14} {:>8} {:>9} {:>10}",
        s.strategy,
        if s.unfinished == s.runs {
            "never".to_string()
        } else {
            cell(&s.makespan_hours, 1)
        },
        cell(&s.unavailable_cluster_minutes, 0),
        cell(&s.red_cluster_minutes, 0),
        cell(&s.overloaded_cluster_minutes, 0),
        cell(&s.clusters_lost_availability, 0),
        format!("{:.0}/{}", s.notices_on_time.p50, s.regions),
        cell(&s.hosts_missing, 0),
        s.unfinished
    );
    if s.provider_reboots.max > 0.0 {
        println!(
            "{:<16} the provider rebooted {:.0} [{:.0}] hosts itself",
            "", s.provider_reboots.p50, s.provider_reboots.p90
        );
    }
}
