//! Presenting a plan: the human table and the stable JSON document
//! (`rollcall.plan/v1`, documented in docs/plan-schema.md).

use crate::model::*;
use crate::plan::{Plan, Severity, Step};
use serde::Serialize;
use std::fmt::Write;

pub const PLAN_SCHEMA: &str = "rollcall.plan/v1";

#[derive(Debug, Serialize)]
pub struct PlanDoc {
    pub schema: &'static str,
    pub fleet: String,
    pub maintenance: String,
    pub region_mode: RegionMode,
    pub notice_lead_s: i64,
    /// `max_concurrent` and `max_concurrent_per_region` (null: unlimited).
    pub concurrency: ConcurrencyDoc,
    /// Whether any region has maintenance windows.
    pub windows: bool,
    pub announce_at: String,
    pub earliest_start: String,
    pub end: Option<String>,
    pub makespan_s: i64,
    pub lower_bound_s: i64,
    pub ratio: f64,
    pub hosts: HostCounts,
    pub regions: Vec<RegionDoc>,
    pub clusters: Vec<ClusterDoc>,
    pub steps: Vec<StepDoc>,
    pub risks: Vec<RiskDoc>,
}

#[derive(Debug, Serialize)]
pub struct ConcurrencyDoc {
    pub fleet: Option<u32>,
    pub region: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct HostCounts {
    pub total: usize,
    pub in_scope: usize,
    pub scheduled: usize,
    pub unscheduled: usize,
}

#[derive(Debug, Serialize)]
pub struct RegionDoc {
    pub name: String,
    pub hosts: usize,
    pub start: Option<String>,
    pub end: Option<String>,
    pub announce_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterDoc {
    pub id: String,
    pub kind: Kind,
    pub tenant: Option<String>,
    pub members: usize,
    pub budget: Budget,
    pub load: f64,
    pub max_load: f64,
    pub allow_outage: bool,
    /// Most members the plan lets out at once.
    pub limit: u32,
    /// What survivor load alone allows.
    pub load_limit: u32,
}

#[derive(Debug, Serialize)]
pub struct StepDoc {
    pub host: String,
    pub region: String,
    pub zone: String,
    pub clusters: Vec<String>,
    pub wave: u32,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Serialize)]
pub struct RiskDoc {
    pub severity: Severity,
    pub code: &'static str,
    pub cluster: Option<String>,
    pub region: Option<String>,
    pub hosts: Vec<String>,
    pub reason: String,
    pub remedy: String,
}

pub fn plan_doc(f: &Fleet, p: &Plan) -> PlanDoc {
    let in_scope = f.hosts.iter().filter(|h| h.in_scope).count();
    PlanDoc {
        schema: PLAN_SCHEMA,
        fleet: f.name.clone(),
        maintenance: f.maintenance.name.clone(),
        region_mode: f.maintenance.region_mode,
        notice_lead_s: f.maintenance.notice_lead,
        concurrency: ConcurrencyDoc {
            fleet: f.maintenance.max_concurrent,
            region: f.maintenance.max_concurrent_per_region,
        },
        windows: f.maintenance.windows.iter().any(|w| w.is_some()),
        announce_at: fmt_time(p.announce_at),
        earliest_start: fmt_time(p.earliest_start),
        end: p.end().map(fmt_time),
        makespan_s: p.makespan,
        lower_bound_s: p.lower_bound,
        ratio: (p.ratio() * 10000.0).round() / 10000.0,
        hosts: HostCounts {
            total: f.hosts.len(),
            in_scope,
            scheduled: p.steps.len(),
            unscheduled: p.unscheduled.len(),
        },
        regions: p
            .regions
            .iter()
            .map(|r| RegionDoc {
                name: f.region_name(r.region).to_string(),
                hosts: r.hosts,
                start: r.start.map(fmt_time),
                end: r.end.map(fmt_time),
                announce_by: r.announce_by.map(fmt_time),
            })
            .collect(),
        clusters: f
            .clusters
            .iter()
            .zip(&p.limits)
            .map(|(c, l)| ClusterDoc {
                id: c.id.clone(),
                kind: c.kind,
                tenant: c.tenant.clone(),
                members: c.members.len(),
                budget: c.budget,
                load: c.load,
                max_load: c.max_load,
                allow_outage: c.allow_outage,
                limit: l.nodes,
                load_limit: l.load_limit,
            })
            .collect(),
        steps: p
            .steps
            .iter()
            .map(|s| {
                let h = &f.hosts[s.host as usize];
                StepDoc {
                    host: h.id.clone(),
                    region: f.region_name(h.region).to_string(),
                    zone: h.zone.clone(),
                    clusters: h
                        .clusters
                        .iter()
                        .map(|&c| f.clusters[c as usize].id.clone())
                        .collect(),
                    wave: s.wave,
                    start: fmt_time(s.start),
                    end: fmt_time(s.end),
                }
            })
            .collect(),
        risks: p
            .risks
            .iter()
            .map(|r| RiskDoc {
                severity: r.severity,
                code: r.code,
                cluster: r.cluster.map(|c| f.clusters[c as usize].id.clone()),
                region: r.region.map(|x| f.region_name(x).to_string()),
                hosts: r
                    .hosts
                    .iter()
                    .map(|&h| f.hosts[h as usize].id.clone())
                    .collect(),
                reason: r.reason.clone(),
                remedy: r.remedy.clone(),
            })
            .collect(),
    }
}

/// Options for the human rendering.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// Print every wave (default: the first few of each region).
    pub all_waves: bool,
}

pub fn render_text(f: &Fleet, p: &Plan, opts: TextOptions) -> String {
    let mut s = String::new();
    text_header(&mut s, f, p);
    s.push('\n');
    text_regions(&mut s, f, p);
    s.push('\n');
    text_waves(&mut s, f, p, opts);
    s.push('\n');
    text_risks(&mut s, f, p);
    s
}

/// What, where, when, and the figures.
fn text_header(s: &mut String, f: &Fleet, p: &Plan) {
    let m = &f.maintenance;
    let in_scope = f.hosts.iter().filter(|h| h.in_scope).count();
    let _ = writeln!(
        s,
        "Plan for {} / {}: {} hosts in scope ({} scheduled, {} not), {} clusters, regions {} ({})",
        f.name,
        m.name,
        in_scope,
        p.steps.len(),
        p.unscheduled.len(),
        f.clusters.len(),
        m.region_order
            .iter()
            .map(|&r| f.region_name(r))
            .collect::<Vec<_>>()
            .join(" → "),
        match m.region_mode {
            RegionMode::Serial => "serial",
            RegionMode::Parallel => "parallel",
        }
    );
    let _ = writeln!(
        s,
        "Announce at {}; notice lead {}; first {} no earlier than {}",
        fmt_time(p.announce_at),
        fmt_duration(m.notice_lead),
        m.action.noun(),
        fmt_time(p.earliest_start)
    );
    let _ = writeln!(
        s,
        "Makespan {}  lower bound {}  ratio {:.3}  waves {}  ends {}",
        fmt_duration(p.makespan),
        fmt_duration(p.lower_bound),
        p.ratio(),
        p.waves(),
        p.end().map(fmt_time).unwrap_or_else(|| "-".into())
    );
}

/// One line per region.
fn text_regions(s: &mut String, f: &Fleet, p: &Plan) {
    let _ = writeln!(
        s,
        "{:<10} {:>6}  {:<20}  {:<20}  {:>9}  {:<20}",
        "REGION", "HOSTS", "START", "END", "DURATION", "ANNOUNCE BY"
    );
    for r in &p.regions {
        let dur = match (r.start, r.end) {
            (Some(a), Some(b)) => fmt_duration(b - a),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "{:<10} {:>6}  {:<20}  {:<20}  {:>9}  {:<20}",
            f.region_name(r.region),
            r.hosts,
            r.start.map(fmt_time).unwrap_or_else(|| "-".into()),
            r.end.map(fmt_time).unwrap_or_else(|| "-".into()),
            dur,
            r.announce_by.map(fmt_time).unwrap_or_else(|| "-".into()),
        );
    }
}

/// The waves, the first few of each region unless `opts.all_waves`.
fn text_waves(s: &mut String, f: &Fleet, p: &Plan, opts: TextOptions) {
    let per_region_shown = if opts.all_waves { usize::MAX } else { 3 };
    let mut shown_in_region: std::collections::HashMap<RegionIx, usize> = Default::default();
    let mut hidden = 0usize;
    let mut i = 0;
    let _ = writeln!(
        s,
        "WAVES (hosts starting together; +offset from the first possible start)"
    );
    while i < p.steps.len() {
        let w = p.steps[i].wave;
        let mut j = i;
        while j < p.steps.len() && p.steps[j].wave == w {
            j += 1;
        }
        let r = f.hosts[p.steps[i].host as usize].region;
        let n = shown_in_region.entry(r).or_default();
        if *n < per_region_shown {
            *n += 1;
            text_wave(s, f, p, &p.steps[i..j]);
        } else {
            hidden += 1;
        }
        i = j;
    }
    if hidden > 0 {
        let _ = writeln!(
            s,
            "  … {hidden} more waves (--all-waves to list them, --json for every step)"
        );
    }
}

/// One wave: its start, offset and first hosts.
fn text_wave(s: &mut String, f: &Fleet, p: &Plan, wave: &[Step]) {
    let names: Vec<String> = wave
        .iter()
        .take(8)
        .map(|st| {
            let h = &f.hosts[st.host as usize];
            match h.clusters.first() {
                Some(&c) => format!("{}({})", h.id, f.clusters[c as usize].id),
                None => h.id.clone(),
            }
        })
        .collect();
    let more = if wave.len() > 8 {
        format!(" … +{}", wave.len() - 8)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "  wave {:>4}  {}  +{:<8} {:>4} host(s): {}{}",
        wave[0].wave + 1,
        fmt_time(wave[0].start),
        fmt_duration(wave[0].start - p.earliest_start),
        wave.len(),
        names.join(", "),
        more
    );
}

/// The risks, counted by severity, each with its hosts and remedy.
fn text_risks(s: &mut String, f: &Fleet, p: &Plan) {
    if p.risks.is_empty() {
        let _ = writeln!(s, "RISKS: none");
        return;
    }
    let count = |sev: Severity| p.risks.iter().filter(|r| r.severity == sev).count();
    let (blocked, late) = (count(Severity::Blocked), count(Severity::Late));
    let warn = p.risks.len() - blocked - late;
    let _ = writeln!(s, "RISKS: {blocked} blocked, {late} late, {warn} warnings");
    for r in &p.risks {
        let tag = match r.severity {
            Severity::Blocked => "BLOCKED",
            Severity::Late => "LATE",
            Severity::Warning => "warning",
        };
        let hosts = if r.hosts.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = r
                .hosts
                .iter()
                .take(6)
                .map(|&h| f.hosts[h as usize].id.as_str())
                .collect();
            let more = if r.hosts.len() > 6 {
                format!(", … +{}", r.hosts.len() - 6)
            } else {
                String::new()
            };
            format!(" [{}{}]", names.join(", "), more)
        };
        let _ = writeln!(s, "  {tag:<7} {:<16} {}{}", r.code, r.reason, hosts);
        let _ = writeln!(s, "          remedy: {}", r.remedy);
    }
}
