//! The `rollcall` command.

mod bench_load;
mod drift;
mod replan;
mod run;
mod serve;
mod undone;

use clap::{Parser, Subcommand};
use rollcall_core::{audit::audit, generate, plan::plan, report};
use rollcall_fleet::{LoadOptions, load_file};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "Carry a fleet through maintenance reboots without breaking its clusters"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Plan the maintenance of a fleet: waves, makespan, lower bound and risk report.
    Plan {
        /// The fleet file (TOML).
        fleet: PathBuf,
        /// Print the plan as JSON (schema rollcall.plan/v1, see docs/plan-schema.md).
        #[arg(long)]
        json: bool,
        /// List every wave instead of the first few per region.
        #[arg(long)]
        all_waves: bool,
        /// Exit with status 3 if any host cannot be scheduled or misses its deadline.
        #[arg(long)]
        strict: bool,
    },
    /// Check a fleet file and report every error with file, line and field.
    Validate { fleet: PathBuf },
    /// Write a synthetic fleet file (TOML) to stdout.
    Gen {
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
    },
    /// Run the maintenance: announce, then carry every host through its reboot,
    /// journalling each step (sim driver: simulated hosts on a scaled clock).
    Run {
        fleet: PathBuf,
        /// The journal (SQLite). Default: $ROLLCALL_DB, else $XDG_DATA_HOME/rollcall/rollcall.db.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Host driver. `sim`: simulated hosts that survive the orchestrator. `ssh`: real
        /// hosts over SSH ([ssh] and [remote] in the fleet file). `exec`: real hosts through
        /// a local command template ([exec] command). Real drivers run on the wall clock.
        #[arg(long, default_value = "sim")]
        driver: String,
        /// Simulated seconds per real second, or `auto` (the whole maintenance in about a minute).
        #[arg(long, default_value = "auto")]
        time_scale: String,
        /// Print the journal as JSON lines instead of progress bars.
        #[arg(long)]
        json: bool,
        /// Choose the run id (default: generated).
        #[arg(long)]
        run_id: Option<String>,
        /// Sim: seed of the simulated world.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sim: share of reboots that do not come back in time.
        #[arg(long, default_value_t = 0.0)]
        missing_rate: f64,
        /// Sim: how long such hosts stay away (e.g. 3h), or `never`.
        #[arg(long, default_value = "3h")]
        missing_for: String,
        /// Sim: share of gate checks that flap to unhealthy.
        #[arg(long, default_value_t = 0.0)]
        flap_rate: f64,
        /// Sim: share of preflight checks that fail.
        #[arg(long, default_value_t = 0.0)]
        preflight_fail_rate: f64,
        /// Override the fleet's on_missing policy: pause, replace or continue.
        #[arg(long)]
        on_missing: Option<String>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
        /// Serve the status page for this run at this address while it runs (e.g.
        /// 127.0.0.1:8080); it keeps serving after the run until Ctrl-C.
        #[arg(long, value_name = "ADDR")]
        serve: Option<String>,
        /// Base URL of the status page in feeds (default http://ADDR).
        #[arg(long, requires = "serve")]
        public_url: Option<String>,
    },
    /// Serve the status page, JSON API, feeds and metrics of the latest run (or --run).
    Serve {
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Follow this run instead of the latest one.
        #[arg(long)]
        run: Option<String>,
        /// Base URL of the status page in feeds (default http://LISTEN).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Status page tokens: secret tenant links and admin bearer tokens (stored hashed).
    Token {
        #[command(subcommand)]
        what: TokenCmd,
    },
    /// Continue a run: after a crash or Ctrl-C, or ask a running orchestrator to resume.
    Resume {
        run: String,
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quiet: bool,
        /// Adopt the fleet files on disk: a new run takes over, hosts matched by id,
        /// finished hosts never touched again, the rest planned afresh.
        #[arg(long)]
        replan: bool,
    },
    /// Ask a running orchestrator to stop starting hosts (in-flight hosts finish).
    Pause {
        run: String,
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Stop the run for good once in-flight hosts finish.
    Abort {
        run: String,
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// A run's state, per region, and the hosts that need attention (default: the latest run).
    Status {
        run: Option<String>,
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Check the journal against the engine's rules and the sim world (exit 1 on a violation).
        #[arg(long)]
        check: bool,
    },
    /// Runs in the journal, newest first.
    History {
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Simulate the maintenance many times with each strategy and compare them.
    Simulate {
        fleet: PathBuf,
        /// all (region-at-once, global-serial, batch:10%, rollcall), guard (provider,
        /// rollcall-guard), or a comma-separated list (batch:5, batch:20% ...).
        #[arg(long, default_value = "all")]
        strategy: String,
        #[arg(long, default_value_t = 100)]
        runs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of reboots that do not come back on time (2014: about 0.2).
        #[arg(long, default_value_t = 0.05)]
        missing_rate: f64,
        /// How long such hosts stay away (e.g. 3h), or `never`.
        #[arg(long, default_value = "3h")]
        missing_for: String,
        /// Share of gate checks that flap to unhealthy.
        #[arg(long, default_value_t = 0.02)]
        flap_rate: f64,
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
        #[arg(long)]
        on_missing: Option<String>,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a tenant's secret link (prints it; only a hash is stored).
    Tenant {
        /// The tenant id (from the fleet's [[tenant]] tables).
        tenant: String,
        #[arg(long)]
        db: Option<PathBuf>,
        /// Base URL the link starts with.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Create an admin bearer token (prints it; only a hash is stored).
    Admin {
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List tokens (ids, kinds, tenants; never the secrets).
    List {
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Revoke a token by its id (from `token list`).
    Revoke {
        id: String,
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// The status API under load: serve a finished sim run and hammer
    /// /api/v2/summary.json on loopback with keep-alive connections.
    Serve {
        /// Fleet to run (default: a generated fleet of --hosts hosts).
        #[arg(long)]
        fleet: Option<PathBuf>,
        #[arg(long, default_value_t = 10_000)]
        hosts: usize,
        #[arg(long, default_value_t = 2_000)]
        clusters: usize,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Measured seconds (after 1 s of warm-up).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Simulated seconds per real second for the run that fills the store.
        #[arg(long, default_value_t = 10_000.0)]
        time_scale: f64,
        /// Drive the run at most this many seconds before serving it (a mid-run view).
        #[arg(long, default_value_t = 15.0)]
        run_seconds: f64,
        /// Load generator threads (its own runtime, beside the server's).
        #[arg(long, default_value_t = 1)]
        client_threads: usize,
        #[arg(long)]
        json: bool,
    },
    /// Engine overhead on the real runtime (SQLite journal, sim driver): wall time from
    /// a host turning healthy to the next reboot command in its cluster.
    Engine {
        /// The fleet to run (default: examples/xsa-108.toml).
        #[arg(long, default_value = "examples/xsa-108.toml")]
        fleet: PathBuf,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 2000.0)]
        time_scale: f64,
        #[arg(long)]
        json: bool,
    },
    /// What `rollcall plan FILE` costs from the file, end to end: wall time and peak RSS
    /// of loading (parse, imports, validation), planning, auditing and the text report.
    Load {
        /// The fleet file.
        fleet: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Time the planner on a generated fleet and measure plan quality over many seeds.
    Plan {
        #[arg(long, default_value_t = 100_000)]
        hosts: usize,
        #[arg(long, default_value_t = 20_000)]
        clusters: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Timed repetitions of the big plan.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Number of smaller generated fleets (random sizes) for the makespan/lower-bound ratio.
        #[arg(long, default_value_t = 200)]
        quality_seeds: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            use std::io::IsTerminal;
            if std::io::stderr().is_terminal() {
                eprintln!("{e:?}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn load(path: &std::path::Path) -> miette::Result<rollcall_core::Fleet> {
    load_file(path, &LoadOptions::default()).map_err(|e| {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            miette::Report::new(e)
        } else {
            // logs and pipes get one line per error: file:line:col: field: message (help: …)
            miette::miette!("{}", e.listing())
        }
    })
}

fn run(cli: Cli) -> miette::Result<ExitCode> {
    match cli.cmd {
        Cmd::Plan {
            fleet,
            json,
            all_waves,
            strict,
        } => {
            let f = load(&fleet)?;
            let p = plan(&f);
            let violations = audit(&f, &p);
            if !violations.is_empty() {
                // never print a plan that breaks a rule
                for v in &violations {
                    eprintln!("internal error: plan violates: {v}");
                }
                return Ok(ExitCode::from(70));
            }
            if json {
                let doc = report::plan_doc(&f, &p);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).map_err(|e| miette::miette!("{e}"))?
                );
            } else {
                print!(
                    "{}",
                    report::render_text(&f, &p, report::TextOptions { all_waves })
                );
            }
            let bad = p
                .risks
                .iter()
                .any(|r| r.severity != rollcall_core::plan::Severity::Warning);
            Ok(if strict && bad {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Validate { fleet } => {
            let f = load(&fleet)?;
            let text = std::fs::read_to_string(&fleet).unwrap_or_default();
            let subscribers = run::check_notify(&fleet.display().to_string(), &text, &f)?;
            let in_scope = f.hosts.iter().filter(|h| h.in_scope).count();
            println!(
                "{}: ok: {} hosts ({} in scope) in {} regions, {} clusters, {} tenants, {} notices",
                fleet.display(),
                f.hosts.len(),
                in_scope,
                f.regions.len(),
                f.clusters.len(),
                f.tenants.len(),
                f.notices.len()
            );
            println!("  action: {}", f.maintenance.action.describe());
            if subscribers > 0 {
                println!("  {subscribers} notification subscribers");
            }
            // the ssh/exec drivers' settings: each kind of gate once, with its clusters
            let base = fleet.parent().map(Path::to_path_buf).unwrap_or_default();
            let rc = run::remote_config(&fleet.display().to_string(), &text, &base, &f)?;
            let mut kinds: Vec<(String, Vec<&str>)> = Vec::new();
            for (g, c) in rc.gates.iter().zip(&f.clusters) {
                let d = g.spec.describe();
                match kinds.iter_mut().find(|(k, _)| *k == d) {
                    Some((_, ids)) => ids.push(&c.id),
                    None => kinds.push((d, vec![&c.id])),
                }
            }
            for (d, ids) in kinds {
                let more = if ids.len() > 3 { ", ..." } else { "" };
                let list = ids.iter().take(3).copied().collect::<Vec<_>>().join(", ");
                println!("  {} clusters ({list}{more}): {d}", ids.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gen {
            hosts,
            clusters,
            seed,
            risky,
            parallel,
            csv_dir,
        } => {
            let mut params = generate::GenParams::new(hosts, clusters, seed);
            params.risky = risky.clamp(0.0, 1.0);
            if parallel {
                params.region_mode = rollcall_core::RegionMode::Parallel;
            }
            let f = generate::generate(&params);
            match csv_dir {
                None => print!("{}", rollcall_fleet::write::to_toml(&f)),
                Some(dir) => write_imported(&dir, &f)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            fleet,
            db,
            driver,
            time_scale,
            json,
            run_id,
            seed,
            missing_rate,
            missing_for,
            flap_rate,
            preflight_fail_rate,
            on_missing,
            quiet,
            serve,
            public_url,
        } => {
            let serve = serve
                .map(|a| serve::parse_addr("--serve", &a))
                .transpose()?;
            let missing_for = match missing_for.as_str() {
                "never" => None,
                s => Some(
                    rollcall_core::parse_duration(s)
                        .map_err(|e| miette::miette!("--missing-for: {e}"))?,
                ),
            };
            for (name, v) in [
                ("--missing-rate", missing_rate),
                ("--flap-rate", flap_rate),
                ("--preflight-fail-rate", preflight_fail_rate),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(miette::miette!("{name} must be between 0 and 1, got {v}"));
                }
            }
            let opts = run::RunOpts {
                fleet,
                db: db.unwrap_or_else(run::default_db),
                driver,
                time_scale,
                json,
                run_id,
                seed,
                missing_rate,
                missing_for,
                flap_rate,
                preflight_fail_rate,
                on_missing,
                quiet,
                serve,
                public_url,
            };
            block_on(run::run(opts))
        }
        Cmd::Resume {
            run,
            db,
            json,
            quiet,
            replan,
        } => block_on(run::resume(
            &db.unwrap_or_else(run::default_db),
            &run,
            json,
            quiet,
            replan,
        )),
        Cmd::Pause { run, db } => block_on(run::control(
            &db.unwrap_or_else(run::default_db),
            &run,
            "pause",
        )),
        Cmd::Abort { run, db } => block_on(run::control(
            &db.unwrap_or_else(run::default_db),
            &run,
            "abort",
        )),
        Cmd::Status {
            run,
            db,
            json,
            check,
        } => block_on(run::status(
            &db.unwrap_or_else(run::default_db),
            run.as_deref(),
            json,
            check,
        )),
        Cmd::History { db, json } => {
            block_on(run::history(&db.unwrap_or_else(run::default_db), json))
        }
        Cmd::Simulate {
            fleet,
            strategy,
            runs,
            seed,
            missing_rate,
            missing_for,
            flap_rate,
            data_gb,
            recovery_mb_s,
            json,
            svg,
            threads,
            on_missing,
        } => {
            let missing_for = match missing_for.as_str() {
                "never" => None,
                s => Some(
                    rollcall_core::parse_duration(s)
                        .map_err(|e| miette::miette!("--missing-for: {e}"))?,
                ),
            };
            for (name, v) in [("--missing-rate", missing_rate), ("--flap-rate", flap_rate)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(miette::miette!("{name} must be between 0 and 1, got {v}"));
                }
            }
            if let Some(gb) = data_gb
                && !(gb > 0.0 && gb.is_finite())
            {
                return Err(miette::miette!("--data-gb must be positive, got {gb}"));
            }
            if !(recovery_mb_s > 0.0 && recovery_mb_s.is_finite()) {
                return Err(miette::miette!(
                    "--recovery-mb-s must be positive, got {recovery_mb_s}"
                ));
            }
            let strategies = rollcall_sim::Strategy::parse_list(&strategy)
                .map_err(|e| miette::miette!("--strategy: {e}"))?;
            let mut f = load(&fleet)?;
            if let Some(p) = on_missing {
                f.maintenance.on_missing = run::parse_on_missing(&p)?;
            }
            let params = rollcall_core::simworld::SimParams {
                missing_rate,
                missing_for,
                flap_rate,
                data_gb,
                recovery_mb_s,
                ..Default::default()
            };
            simulate_cmd(
                f,
                &strategies,
                runs.max(1),
                seed,
                threads,
                params,
                json,
                svg,
            )
        }
        Cmd::Serve {
            db,
            listen,
            run,
            public_url,
        } => {
            let listen = serve::parse_addr("--listen", &listen)?;
            block_on(serve::serve(
                db.unwrap_or_else(run::default_db),
                listen,
                run,
                public_url,
            ))
        }
        Cmd::Token { what } => match what {
            TokenCmd::Tenant {
                tenant,
                db,
                base_url,
                label,
            } => block_on(serve::token_tenant(
                &db.unwrap_or_else(run::default_db),
                &tenant,
                &base_url,
                &label,
            )),
            TokenCmd::Admin { db, label } => block_on(serve::token_admin(
                &db.unwrap_or_else(run::default_db),
                &label,
            )),
            TokenCmd::List { db } => {
                block_on(serve::token_list(&db.unwrap_or_else(run::default_db)))
            }
            TokenCmd::Revoke { id, db } => block_on(serve::token_revoke(
                &db.unwrap_or_else(run::default_db),
                &id,
            )),
        },
        Cmd::Bench {
            what:
                BenchCmd::Serve {
                    fleet,
                    hosts,
                    clusters,
                    connections,
                    seconds,
                    time_scale,
                    client_threads,
                    run_seconds,
                    json,
                },
        } => block_on(serve::bench_serve(
            fleet,
            hosts,
            clusters,
            connections,
            seconds,
            time_scale,
            client_threads,
            run_seconds,
            json,
        )),
        Cmd::Bench {
            what:
                BenchCmd::Engine {
                    fleet,
                    time_scale,
                    json,
                },
        } => block_on(run::bench_engine(&fleet, time_scale, json)),
        Cmd::Bench {
            what: BenchCmd::Load { fleet, json },
        } => bench_load::bench_load(&fleet, json),
        Cmd::Bench {
            what:
                BenchCmd::Plan {
                    hosts,
                    clusters,
                    seed,
                    runs,
                    quality_seeds,
                    json,
                },
        } => bench_plan(hosts, clusters, seed, runs.max(1), quality_seeds, json),
    }
}

#[allow(clippy::too_many_arguments)]
fn simulate_cmd(
    f: rollcall_core::Fleet,
    strategies: &[rollcall_sim::Strategy],
    runs: u64,
    seed: u64,
    threads: usize,
    params: rollcall_core::simworld::SimParams,
    json: bool,
    svg: Option<PathBuf>,
) -> miette::Result<ExitCode> {
    let fleet = std::sync::Arc::new(f);
    let opts = rollcall_sim::SimOptions {
        params,
        timeline: svg.is_some() || json,
        ..Default::default()
    };
    let t0 = Instant::now();
    let results = rollcall_sim::compare(&fleet, strategies, runs, seed, threads, &opts);
    let secs = t0.elapsed().as_secs_f64();
    let summaries: Vec<rollcall_sim::Summary> = strategies
        .iter()
        .zip(&results)
        .map(|(s, o)| rollcall_sim::summarize(&s.name(), o))
        .collect();
    let timelines: Vec<(String, Vec<(i64, u32)>)> = strategies
        .iter()
        .zip(&results)
        .map(|(s, o)| {
            (
                s.name(),
                o.first().map(|x| x.timeline.clone()).unwrap_or_default(),
            )
        })
        .collect();
    if let Some(path) = &svg {
        let title = format!(
            "{} / {}: unavailable clusters over time (seed {seed})",
            fleet.name, fleet.maintenance.name
        );
        std::fs::write(path, rollcall_sim::svg_chart(&title, &timelines))
            .map_err(|e| miette::miette!("{}: {e}", path.display()))?;
    }
    let violations: usize = summaries.iter().map(|s| s.violations).sum();
    if json {
        let doc = serde_json::json!({
            "fleet": fleet.name, "maintenance": fleet.maintenance.name, "runs": runs, "seed": seed,
            "model": opts.params, "seconds": secs, "strategies": summaries,
            "timelines": timelines.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| miette::miette!("{e}"))?
        );
    } else {
        let p = &opts.params;
        println!(
            "{} / {}: {runs} runs per strategy from seed {seed} in {secs:.1} s; model: {:.0}% of reboots not back on time ({}), gate flapping {:.0}%",
            fleet.name,
            fleet.maintenance.name,
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
        let cell =
            |d: &rollcall_sim::Dist, dec: usize| format!("{:.*} [{:.*}]", dec, d.p50, dec, d.p90);
        for s in &summaries {
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
        if let Some((seed, v)) = summaries.iter().find_map(|s| s.first_violation.clone()) {
            println!("\nRULE VIOLATION (replay with --seed {seed} --runs 1): {v}");
        }
        if let Some(path) = &svg {
            println!("\nchart: {}", path.display());
        }
    }
    Ok(if violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `gen --csv-dir`: the fleet as DIR/fleet.toml importing DIR/hosts.csv.
fn write_imported(dir: &std::path::Path, f: &rollcall_core::Fleet) -> miette::Result<()> {
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

fn block_on<F: std::future::Future<Output = miette::Result<ExitCode>>>(
    f: F,
) -> miette::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| miette::miette!("cannot start the runtime: {e}"))?
        .block_on(f)
}

fn rss_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn bench_plan(
    hosts: usize,
    clusters: usize,
    seed: u64,
    runs: usize,
    quality_seeds: u64,
    json: bool,
) -> miette::Result<ExitCode> {
    let t0 = Instant::now();
    let fleet = generate::generate(&generate::GenParams::new(hosts, clusters, seed));
    let gen_s = t0.elapsed().as_secs_f64();
    let rss_fleet = rss_kib("VmRSS:").unwrap_or(0);
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let p = plan(&fleet);
        times.push(t.elapsed().as_secs_f64());
        last = Some(p);
    }
    let p = last.expect("runs >= 1");
    let peak = rss_kib("VmHWM:").unwrap_or(0);
    let t = Instant::now();
    let violations = audit(&fleet, &p);
    let audit_s = t.elapsed().as_secs_f64();
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];

    // plan quality over many generated fleets of varied shape
    let mut ratios: Vec<f64> = Vec::new();
    let mut worst = (0.0f64, 0u64, 0usize, 0usize, false);
    let mut rng = generate::Rng::new(seed ^ 0xA5A5);
    let mut quality_violations = 0usize;
    for s in 0..quality_seeds {
        let h = rng.range(50, 5000) as usize;
        let c = (h / rng.range(4, 12) as usize).max(1);
        let mut params = generate::GenParams::new(h, c, s);
        if s % 2 == 1 {
            params.region_mode = rollcall_core::RegionMode::Parallel;
        }
        let f = generate::generate(&params);
        let p = plan(&f);
        quality_violations += audit(&f, &p).len();
        let r = p.ratio();
        if r > worst.0 {
            worst = (r, s, h, c, s % 2 == 1);
        }
        ratios.push(r);
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| {
        ratios
            .get(((ratios.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(1.0)
    };

    let result = serde_json::json!({
        "hosts": fleet.hosts.len(),
        "clusters": fleet.clusters.len(),
        "generate_s": gen_s,
        "plan_s": { "min": times[0], "median": median, "max": times[times.len()-1], "runs": runs },
        "audit_s": audit_s,
        "rss_after_generate_mib": rss_fleet as f64 / 1024.0,
        "peak_rss_mib": peak as f64 / 1024.0,
        "scheduled": p.steps.len(),
        "unscheduled": p.unscheduled.len(),
        "makespan_s": p.makespan,
        "lower_bound_s": p.lower_bound,
        "ratio": p.ratio(),
        "violations": violations.len(),
        "quality": {
            "fleets": quality_seeds,
            "ratio_p50": pct(0.5), "ratio_p90": pct(0.9), "ratio_p99": pct(0.99), "ratio_max": worst.0,
            "worst": { "seed": worst.1, "hosts": worst.2, "clusters": worst.3, "parallel": worst.4 },
            "violations": quality_violations,
        }
    });
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(|e| miette::miette!("{e}"))?
        );
    } else {
        println!(
            "planner benchmark: {} hosts, {} clusters (seed {seed})",
            fleet.hosts.len(),
            fleet.clusters.len()
        );
        println!("  generate          {:.3} s", gen_s);
        println!(
            "  plan              min {:.3} s  median {:.3} s  max {:.3} s  ({runs} runs)",
            times[0],
            median,
            times[times.len() - 1]
        );
        println!(
            "  audit             {:.3} s, {} violations",
            audit_s,
            violations.len()
        );
        println!(
            "  RSS               {:.0} MiB after generating, peak {:.0} MiB",
            rss_fleet as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        println!(
            "  plan              {} scheduled, {} unscheduled (risky clusters), makespan {}, lower bound {}, ratio {:.4}",
            p.steps.len(),
            p.unscheduled.len(),
            rollcall_core::fmt_duration(p.makespan),
            rollcall_core::fmt_duration(p.lower_bound),
            p.ratio()
        );
        println!(
            "  quality           {quality_seeds} generated fleets (50–5000 hosts, serial and parallel): ratio p50 {:.4}  p90 {:.4}  p99 {:.4}  max {:.4} (`rollcall gen --hosts {} --clusters {} --seed {}{}`), {} violations",
            pct(0.5),
            pct(0.9),
            pct(0.99),
            worst.0,
            worst.2,
            worst.3,
            worst.1,
            if worst.4 { " --parallel" } else { "" },
            quality_violations
        );
    }
    let ok = violations.is_empty() && quality_violations == 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
