//! `rollcall bench load FILE`: what `rollcall plan FILE` costs, phase by phase, the way
//! a user meets it: the fleet file read, parsed and validated (imports included), the
//! plan, the audit and the text report, each with its wall time and the peak RSS of
//! the process during that phase.

use crate::cmd::rss_kib;
use rollcall_core::{Fleet, audit::audit, plan::plan, report};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// One measured phase.
struct Phase {
    name: &'static str,
    seconds: f64,
    /// CPU time of the process (user + system, all threads) during the phase: unlike the
    /// wall time, it does not grow when other processes compete for the cores.
    cpu_seconds: f64,
    /// Peak RSS during the phase (MiB); the whole process's peak if it cannot be reset.
    peak_mib: f64,
    /// RSS at the end of the phase (MiB).
    rss_mib: f64,
}

/// Start a phase: reset the kernel's peak-RSS mark (VmHWM) to the current RSS, so the
/// next reading is this phase's peak. Returns whether the reset worked.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// User + system CPU time of this process so far, from /proc/self/stat (clock ticks of
/// 1/100 s, the Linux USER_HZ); 0 where that file is missing.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which may hold spaces) start at field 3
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

fn measure<T>(name: &'static str, reset: &mut bool, f: impl FnOnce() -> T) -> (T, Phase) {
    *reset &= reset_peak();
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    let seconds = t.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu;
    let mib = |field| rss_kib(field).unwrap_or(0) as f64 / 1024.0;
    let phase = Phase {
        name,
        seconds,
        cpu_seconds,
        peak_mib: mib("VmHWM:"),
        rss_mib: mib("VmRSS:"),
    };
    (out, phase)
}

pub fn bench_load(path: &Path, json: bool) -> miette::Result<ExitCode> {
    let total = Instant::now();
    let mut reset = true;
    let (fleet, load) = measure("load", &mut reset, || crate::cmd::load(path));
    let fleet: Fleet = fleet?;
    let (p, plan_phase) = measure("plan", &mut reset, || plan(&fleet));
    let (violations, audit_phase) = measure("audit", &mut reset, || audit(&fleet, &p));
    let (text, render) = measure("report", &mut reset, || {
        report::render_text(&fleet, &p, report::TextOptions { all_waves: false })
    });
    let total_s = total.elapsed().as_secs_f64();
    let peak = rss_kib("VmHWM:").unwrap_or(0) as f64 / 1024.0;
    let phases = [load, plan_phase, audit_phase, render];
    let max_peak = phases.iter().map(|p| p.peak_mib).fold(peak, f64::max);
    if json {
        let doc = serde_json::json!({
            "file": path.display().to_string(),
            "hosts": fleet.hosts.len(),
            "clusters": fleet.clusters.len(),
            "scheduled": p.steps.len(),
            "violations": violations.len(),
            "report_bytes": text.len(),
            "total_s": total_s,
            "peak_rss_mib": max_peak,
            "peak_per_phase": reset,
            "phases": phases.iter().map(|p| serde_json::json!({
                "phase": p.name, "seconds": p.seconds, "cpu_seconds": p.cpu_seconds,
                "peak_rss_mib": p.peak_mib, "rss_after_mib": p.rss_mib,
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| miette::miette!("{e}"))?;
        println!("{text}");
    } else {
        println!(
            "load benchmark: {} ({} hosts, {} clusters, {} scheduled, {} violations)",
            path.display(),
            fleet.hosts.len(),
            fleet.clusters.len(),
            p.steps.len(),
            violations.len()
        );
        println!("  PHASE       SECONDS   CPU s  PEAK RSS MiB  RSS AFTER MiB");
        for ph in &phases {
            println!(
                "  {:<10} {:>8.3}  {:>6.2}  {:>12.0}  {:>13.0}",
                ph.name, ph.seconds, ph.cpu_seconds, ph.peak_mib, ph.rss_mib
            );
        }
        let cpu: f64 = phases.iter().map(|p| p.cpu_seconds).sum();
        println!("  total      {total_s:>8.3}  {cpu:>6.2}  {max_peak:>12.0}");
        if !reset {
            println!(
                "  (peak RSS could not be reset between phases: each peak is the process's so far)"
            );
        }
    }
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(70)
    })
}
