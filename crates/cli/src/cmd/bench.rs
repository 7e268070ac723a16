//! `rollcall bench ...`: the benchmarks, measured the way a user meets each cost.

use super::{block_on, rss_kib};
use crate::err;
use rollcall_core::audit::audit;
use rollcall_core::generate;
use rollcall_core::plan::{PlanOptions, plan_with};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand, Debug)]
pub enum Args {
    /// The status API under load: serve a finished sim run and hammer
    /// /api/v2/summary.json on loopback with keep-alive connections.
    Serve(ServeArgs),
    /// Engine overhead on the real runtime (sim driver): wall time from a host turning
    /// healthy to the next reboot command in its cluster.
    Engine {
        /// The fleet to run (default: examples/xsa-108.toml).
        #[arg(long, default_value = "examples/xsa-108.toml")]
        fleet: PathBuf,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 2000.0)]
        time_scale: f64,
        /// The journal to run it in: a `postgres://` URL (a new run each time), or
        /// by default a fresh SQLite file in the temp dir.
        #[arg(long, value_name = "URL")]
        db: Option<String>,
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
    Plan(PlanArgs),
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
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
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
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
    /// Improvement effort of every plan (as `rollcall plan --effort`).
    #[arg(long, default_value_t = PlanOptions::default().effort)]
    effort: u32,
    /// Also judge plans against the exact optimum: this many small dense fleets (`rollcall
    /// gen --oracle`) and the hand-made ones, by OR-Tools CP-SAT (scripts/test installs it).
    #[arg(long, default_value_t = 0, value_name = "FLEETS")]
    oracle: u64,
    /// Seconds CP-SAT may spend proving one optimum.
    #[arg(long, default_value_t = 20.0)]
    oracle_time_limit: f64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        match self {
            Args::Serve(a) => block_on(bench_serve(a)),
            Args::Engine {
                fleet,
                time_scale,
                db,
                json,
            } => block_on(crate::run::bench_engine(&fleet, time_scale, db, json)),
            Args::Load { fleet, json } => crate::bench_load::bench_load(&fleet, json),
            Args::Plan(a) => bench_plan(a),
        }
    }
}

async fn bench_serve(a: ServeArgs) -> miette::Result<ExitCode> {
    let ServeArgs {
        fleet,
        hosts,
        clusters,
        connections,
        seconds,
        time_scale,
        client_threads,
        run_seconds,
        json,
    } = a;
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(miette::miette!("--seconds must be positive, got {seconds}"));
    }
    let o = crate::bench_serve::BenchServe {
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
    let r = crate::bench_serve::bench_serve(&o).await.map_err(err)?;
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

/// The big plan, timed.
struct Timed {
    fleet: rollcall_core::Fleet,
    plan: rollcall_core::plan::Plan,
    generate_s: f64,
    /// Sorted.
    plan_s: Vec<f64>,
    audit_s: f64,
    violations: usize,
    rss_fleet_kib: u64,
    peak_kib: u64,
    /// `plan --html`: seconds to build and write the timeline page, and its size.
    html_s: f64,
    html_bytes: usize,
}

/// Build the timeline page of `p` and write it to a temporary file, as `plan --html` does.
fn time_html(f: &rollcall_core::Fleet, p: &rollcall_core::plan::Plan) -> (f64, usize) {
    use rollcall_web::timeline::{Mode, render_page, timeline_data};
    let path = std::env::temp_dir().join(format!("rollcall-bench-{}.html", std::process::id()));
    let t = Instant::now();
    let page = render_page(&timeline_data(f, p), Mode::Export);
    let written = std::fs::write(&path, &page);
    let s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    match written {
        Ok(()) => (s, page.len()),
        Err(_) => (f64::NAN, 0),
    }
}

fn timed(a: &PlanArgs) -> Timed {
    let t0 = Instant::now();
    let fleet = generate::generate(&generate::GenParams::new(a.hosts, a.clusters, a.seed));
    let generate_s = t0.elapsed().as_secs_f64();
    let rss_fleet_kib = rss_kib("VmRSS:").unwrap_or(0);
    let mut plan_s = Vec::with_capacity(a.runs);
    let mut last = None;
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        let p = plan_with(&fleet, PlanOptions { effort: a.effort });
        plan_s.push(t.elapsed().as_secs_f64());
        last = Some(p);
    }
    let p = last.expect("runs >= 1");
    let peak_kib = rss_kib("VmHWM:").unwrap_or(0);
    let t = Instant::now();
    let violations = audit(&fleet, &p).len();
    let audit_s = t.elapsed().as_secs_f64();
    plan_s.sort_by(|a, b| a.total_cmp(b));
    let (html_s, html_bytes) = time_html(&fleet, &p);
    Timed {
        html_s,
        html_bytes,
        fleet,
        plan: p,
        generate_s,
        plan_s,
        audit_s,
        violations,
        rss_fleet_kib,
        peak_kib,
    }
}

/// Plan quality over many generated fleets of varied shape: makespan / lower bound.
struct Quality {
    /// Sorted.
    ratios: Vec<f64>,
    /// Ratio, seed, hosts, clusters, parallel.
    worst: (f64, u64, usize, usize, bool),
    violations: usize,
}

impl Quality {
    fn pct(&self, q: f64) -> f64 {
        let r = &self.ratios;
        r.get(((r.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(1.0)
    }
}

fn quality(seed: u64, fleets: u64, effort: u32) -> Quality {
    let mut q = Quality {
        ratios: Vec::new(),
        worst: (0.0, 0, 0, 0, false),
        violations: 0,
    };
    let mut rng = generate::Rng::new(seed ^ 0xA5A5);
    for s in 0..fleets {
        let h = rng.range(50, 5000) as usize;
        let c = (h / rng.range(4, 12) as usize).max(1);
        let mut params = generate::GenParams::new(h, c, s);
        if s % 2 == 1 {
            params.region_mode = rollcall_core::RegionMode::Parallel;
        }
        let f = generate::generate(&params);
        let p = plan_with(&f, PlanOptions { effort });
        q.violations += audit(&f, &p).len();
        let r = p.ratio();
        if r > q.worst.0 {
            q.worst = (r, s, h, c, s % 2 == 1);
        }
        q.ratios.push(r);
    }
    q.ratios.sort_by(|a, b| a.total_cmp(b));
    q
}

fn bench_plan(a: PlanArgs) -> miette::Result<ExitCode> {
    let t = timed(&a);
    let q = quality(a.seed, a.quality_seeds, a.effort);
    let oracle = match a.oracle {
        0 => None,
        n => Some(crate::bench_oracle::bench_oracle(
            &crate::bench_oracle::Oracle {
                fleets: n,
                time_limit: a.oracle_time_limit,
                effort: a.effort,
            },
        )?),
    };
    match a.json {
        true => {
            let mut doc = plan_doc(&a, &t, &q);
            doc["oracle"] = oracle.clone().unwrap_or_default();
            super::print_json(&doc)?
        }
        false => {
            print_plan(&a, &t, &q);
            if let Some(o) = &oracle {
                print_oracle(o);
            }
        }
    }
    let oracle_ok = oracle.as_ref().is_none_or(|o| {
        o["infeasible"].as_array().is_some_and(|v| v.is_empty())
            && o["bound_above_optimum"]
                .as_array()
                .is_some_and(|v| v.is_empty())
    });
    Ok(match t.violations == 0 && q.violations == 0 && oracle_ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

/// The oracle's distribution, one line.
fn print_oracle(o: &serde_json::Value) {
    let n = |k: &str| o[k].as_u64().unwrap_or(0);
    let x = |k: &str| o[k].as_f64().unwrap_or(f64::NAN);
    let len = |k: &str| o[k].as_array().map_or(0, |v| v.len());
    println!(
        "  oracle            {} small fleets vs the CP-SAT optimum ({} proven, {:.0} s): optimal {}  ratio p50 {:.4}  p90 {:.4}  p99 {:.4}  max {:.4}; bound/optimum median {:.4}  min {:.4}; {} infeasible, {} bounds above the optimum",
        n("instances"),
        n("proven"),
        x("seconds"),
        n("optimal"),
        x("ratio_median"),
        x("ratio_p90"),
        x("ratio_p99"),
        x("ratio_worst"),
        x("bound_median"),
        x("bound_worst"),
        len("infeasible"),
        len("bound_above_optimum"),
    );
}

fn plan_doc(a: &PlanArgs, t: &Timed, q: &Quality) -> serde_json::Value {
    let (p, times) = (&t.plan, &t.plan_s);
    serde_json::json!({
        "hosts": t.fleet.hosts.len(),
        "clusters": t.fleet.clusters.len(),
        "generate_s": t.generate_s,
        "plan_s": { "min": times[0], "median": times[times.len() / 2], "max": times[times.len()-1], "runs": a.runs.max(1) },
        "audit_s": t.audit_s,
        "rss_after_generate_mib": t.rss_fleet_kib as f64 / 1024.0,
        "peak_rss_mib": t.peak_kib as f64 / 1024.0,
        "scheduled": p.steps.len(),
        "unscheduled": p.unscheduled.len(),
        "makespan_s": p.makespan,
        "lower_bound_s": p.lower_bound,
        "ratio": p.ratio(),
        "violations": t.violations,
        "html_s": t.html_s,
        "html_bytes": t.html_bytes,
        "quality": {
            "fleets": a.quality_seeds,
            "ratio_p50": q.pct(0.5), "ratio_p90": q.pct(0.9), "ratio_p99": q.pct(0.99), "ratio_max": q.worst.0,
            "worst": { "seed": q.worst.1, "hosts": q.worst.2, "clusters": q.worst.3, "parallel": q.worst.4 },
            "violations": q.violations,
        }
    })
}

fn print_plan(a: &PlanArgs, t: &Timed, q: &Quality) {
    let (p, times, runs) = (&t.plan, &t.plan_s, a.runs.max(1));
    println!(
        "planner benchmark: {} hosts, {} clusters (seed {})",
        t.fleet.hosts.len(),
        t.fleet.clusters.len(),
        a.seed
    );
    println!("  generate          {:.3} s", t.generate_s);
    println!(
        "  plan              min {:.3} s  median {:.3} s  max {:.3} s  ({runs} runs)",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!(
        "  audit             {:.3} s, {} violations",
        t.audit_s, t.violations
    );
    println!(
        "  plan --html       {:.3} s to build and write, {:.1} MB",
        t.html_s,
        t.html_bytes as f64 / 1e6
    );
    println!(
        "  RSS               {:.0} MiB after generating, peak {:.0} MiB",
        t.rss_fleet_kib as f64 / 1024.0,
        t.peak_kib as f64 / 1024.0
    );
    println!(
        "  plan              {} scheduled, {} unscheduled (risky clusters), makespan {}, lower bound {}, ratio {:.4}",
        p.steps.len(),
        p.unscheduled.len(),
        rollcall_core::fmt_duration(p.makespan),
        rollcall_core::fmt_duration(p.lower_bound),
        p.ratio()
    );
    let w = q.worst;
    println!(
        "  quality           {} generated fleets (50–5000 hosts, serial and parallel): ratio p50 {:.4}  p90 {:.4}  p99 {:.4}  max {:.4} (`rollcall gen --hosts {} --clusters {} --seed {}{}`), {} violations",
        a.quality_seeds,
        q.pct(0.5),
        q.pct(0.9),
        q.pct(0.99),
        w.0,
        w.2,
        w.3,
        w.1,
        if w.4 { " --parallel" } else { "" },
        q.violations
    );
}
