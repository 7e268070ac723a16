//! The operator's timeline: one self-contained HTML page (inline CSS, a small vanilla
//! script allowed by its SHA-256 hash in the page's CSP, the data embedded as compact
//! JSON) drawing a plan as a Gantt by region → cluster → host, with the risk report
//! beside it. `rollcall plan FLEET --html FILE` writes it; no external asset is loaded.
//!
//! The data is columnar (one array per host field, times as seconds after the
//! announcement) so that 100,000 hosts stay a few megabytes and parse in one pass; the
//! script draws only the rows in view on a canvas and aggregates hosts to clusters and
//! regions until a row is opened.

use rollcall_core::model::{Fleet, HostIx, Interval, fmt_time};
use rollcall_core::plan::{Plan, Severity};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const CSS: &str = include_str!("timeline/page.css");
const JS: &str = include_str!("timeline/page.js");
/// Hosts a risk lists by name in the page (the count is always given).
const RISK_HOSTS_SHOWN: usize = 200;

/// The page's data, as embedded (schema `rollcall.timeline/v1`, see docs/timeline.md).
#[derive(Debug, Serialize)]
pub struct TimelineData {
    pub schema: &'static str,
    pub fleet: String,
    pub maintenance: String,
    pub region_mode: rollcall_core::model::RegionMode,
    /// The announcement, Unix seconds: every other time is seconds after it.
    pub t0: i64,
    pub t0_text: String,
    pub lead: i64,
    pub earliest: i64,
    pub end: Option<i64>,
    pub makespan: i64,
    pub lower_bound: i64,
    pub ratio: f64,
    pub regions: Vec<RegionData>,
    pub kinds: Vec<String>,
    pub tenants: Vec<String>,
    pub clusters: ClusterCols,
    pub hosts: HostCols,
    pub risks: Vec<RiskData>,
}

#[derive(Debug, Serialize)]
pub struct RegionData {
    pub name: String,
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Latest moment the region's notice may go out (start − lead).
    pub announce_by: Option<i64>,
    /// Open windows clipped to the plan's span; `None`: always open.
    pub windows: Option<Vec<[i64; 2]>>,
}

/// One array per field, indexed by cluster.
#[derive(Debug, Default, Serialize)]
pub struct ClusterCols {
    pub id: Vec<String>,
    /// Index into `kinds`.
    pub kind: Vec<u8>,
    /// Index into `tenants`, −1 for none.
    pub tenant: Vec<i32>,
    /// Most members out at once under the plan.
    pub limit: Vec<u32>,
    pub members: Vec<u32>,
}

/// One array per field, indexed by host (in-scope hosts only).
#[derive(Debug, Default, Serialize)]
pub struct HostCols {
    pub id: Vec<String>,
    /// Index into `regions` (maintenance order).
    pub region: Vec<u16>,
    /// First cluster, −1 for none: the row the host is drawn under.
    pub cluster: Vec<i32>,
    /// Planned start and end (−1: not scheduled).
    pub start: Vec<i64>,
    pub end: Vec<i64>,
    pub wave: Vec<i32>,
    /// Deadline (from deadlines and provider notices), −1 for none.
    pub deadline: Vec<i64>,
    /// Provider NotBefore, −1 for none.
    pub not_before: Vec<i64>,
    /// Worst risk naming the host: 0 none, 1 warning, 2 late, 3 blocked.
    pub risk: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct RiskData {
    pub severity: Severity,
    pub code: &'static str,
    pub cluster: Option<String>,
    pub region: Option<String>,
    pub count: usize,
    pub hosts: Vec<String>,
    pub reason: String,
    pub remedy: String,
}

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Warning => 1,
        Severity::Late => 2,
        Severity::Blocked => 3,
    }
}

/// The page's data for plan `p` of fleet `f`.
pub fn timeline_data(f: &Fleet, p: &Plan) -> TimelineData {
    let t0 = p.announce_at;
    let end = p.end();
    TimelineData {
        schema: "rollcall.timeline/v1",
        fleet: f.name.clone(),
        maintenance: f.maintenance.name.clone(),
        region_mode: f.maintenance.region_mode,
        t0,
        t0_text: fmt_time(t0),
        lead: f.maintenance.notice_lead,
        earliest: p.earliest_start - t0,
        end: end.map(|e| e - t0),
        makespan: p.makespan,
        lower_bound: p.lower_bound,
        ratio: (p.ratio() * 10000.0).round() / 10000.0,
        regions: regions(f, p, end.unwrap_or(p.earliest_start)),
        kinds: rollcall_core::model::Kind::ALL
            .iter()
            .map(|k| kind_name(*k))
            .collect(),
        tenants: f.tenants.iter().map(|t| t.id.clone()).collect(),
        clusters: clusters(f, p),
        hosts: hosts(f, p),
        risks: risks(f, p),
    }
}

fn kind_name(k: rollcall_core::model::Kind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Regions in maintenance order, windows clipped to `[t0, end + a day]`.
fn regions(f: &Fleet, p: &Plan, end: i64) -> Vec<RegionData> {
    let (t0, clip_end) = (p.announce_at, end + 86_400);
    p.regions
        .iter()
        .map(|r| RegionData {
            name: f.region_name(r.region).to_string(),
            start: r.start.map(|t| t - t0),
            end: r.end.map(|t| t - t0),
            announce_by: r.announce_by.map(|t| t - t0),
            windows: f.maintenance.windows[r.region as usize]
                .as_ref()
                .map(|ws| clip(ws, t0, clip_end)),
        })
        .collect()
}

fn clip(ws: &[Interval], t0: i64, end: i64) -> Vec<[i64; 2]> {
    ws.iter()
        .filter(|w| w.end > t0 && w.start < end)
        .map(|w| [w.start.max(t0) - t0, w.end.min(end) - t0])
        .collect()
}

fn clusters(f: &Fleet, p: &Plan) -> ClusterCols {
    let tenant_ix: HashMap<&str, i32> = f
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i as i32))
        .collect();
    let mut c = ClusterCols::default();
    for (cl, l) in f.clusters.iter().zip(&p.limits) {
        c.id.push(cl.id.clone());
        c.kind.push(
            rollcall_core::model::Kind::ALL
                .iter()
                .position(|k| *k == cl.kind)
                .unwrap_or(0) as u8,
        );
        let t = cl.tenant.as_deref().and_then(|t| tenant_ix.get(t).copied());
        c.tenant.push(t.unwrap_or(-1));
        c.limit.push(l.nodes);
        c.members.push(cl.members.len() as u32);
    }
    c
}

fn hosts(f: &Fleet, p: &Plan) -> HostCols {
    let t0 = p.announce_at;
    let mut planned: HashMap<HostIx, (i64, i64, u32)> = HashMap::with_capacity(p.steps.len());
    for s in &p.steps {
        planned.insert(s.host, (s.start - t0, s.end - t0, s.wave));
    }
    let mut risk: HashMap<HostIx, u8> = HashMap::new();
    for r in &p.risks {
        for &h in &r.hosts {
            let e = risk.entry(h).or_default();
            *e = (*e).max(severity_rank(r.severity));
        }
    }
    let mut not_before: HashMap<HostIx, i64> = HashMap::new();
    for n in &f.notices {
        for &h in &n.hosts {
            let e = not_before.entry(h).or_insert(n.not_before);
            *e = (*e).max(n.not_before);
        }
    }
    // hosts name their region by its place in the maintenance order, as `regions` lists them
    let mut place = vec![0u16; f.regions.len()];
    for (i, r) in p.regions.iter().enumerate() {
        place[r.region as usize] = i as u16;
    }
    let mut c = HostCols::default();
    for (i, h) in f.hosts.iter().enumerate().filter(|(_, h)| h.in_scope) {
        let ix = i as HostIx;
        let (s, e, w) = planned
            .get(&ix)
            .map(|&(s, e, w)| (s, e, w as i32))
            .unwrap_or((-1, -1, -1));
        c.id.push(h.id.clone());
        c.region.push(place[h.region as usize]);
        c.cluster
            .push(h.clusters.first().map(|&x| x as i32).unwrap_or(-1));
        c.start.push(s);
        c.end.push(e);
        c.wave.push(w);
        c.deadline.push(h.deadline.map(|d| d - t0).unwrap_or(-1));
        c.not_before
            .push(not_before.get(&ix).map(|n| n - t0).unwrap_or(-1));
        c.risk.push(risk.get(&ix).copied().unwrap_or(0));
    }
    c
}

/// The risks, worst first (blocked, late, warnings), each in the planner's order.
fn risks(f: &Fleet, p: &Plan) -> Vec<RiskData> {
    let mut rs: Vec<_> = p.risks.iter().collect();
    rs.sort_by_key(|r| std::cmp::Reverse(severity_rank(r.severity)));
    rs.into_iter()
        .map(|r| RiskData {
            severity: r.severity,
            code: r.code,
            cluster: r.cluster.map(|c| f.clusters[c as usize].id.clone()),
            region: r.region.map(|x| f.region_name(x).to_string()),
            count: r.hosts.len(),
            hosts: r
                .hosts
                .iter()
                .take(RISK_HOSTS_SHOWN)
                .map(|&h| f.hosts[h as usize].id.clone())
                .collect(),
            reason: r.reason.clone(),
            remedy: r.remedy.clone(),
        })
        .collect()
}

/// Where the page gets live run state from (the admin view), or `None` for a plan export.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    Export,
    /// Poll this same-origin URL for run state.
    Live {
        poll: &'a str,
    },
}

/// The Content-Security-Policy for the page: no source but its own inline script (by
/// hash) and style; in live mode it may fetch from its own origin.
pub fn csp(mode: Mode) -> String {
    let connect = match mode {
        Mode::Export => "'none'",
        Mode::Live { .. } => "'self'",
    };
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{}'; img-src data:; connect-src {connect}; base-uri 'none'; form-action 'none'",
        script_hash()
    )
}

fn script_hash() -> String {
    base64(&Sha256::digest(JS.as_bytes()))
}

/// The whole page for `data`.
pub fn render_page(data: &TimelineData, mode: Mode) -> String {
    let json = serde_json::to_string(data)
        .unwrap_or_else(|_| "{}".into())
        // inside <script>: `</script>` or `<!--` in a name must not end the element
        .replace('<', "\\u003c");
    let poll = match mode {
        Mode::Export => String::new(),
        Mode::Live { poll } => esc(poll),
    };
    let title = format!(
        "{} / {}: timeline",
        esc(&data.fleet),
        esc(&data.maintenance)
    );
    let mut s = String::with_capacity(json.len() + CSS.len() + JS.len() + 4096);
    s.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    s.push_str(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n",
        csp(mode)
    ));
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    s.push_str(&format!(
        "<title>{title}</title>\n<style>{CSS}</style>\n</head>\n"
    ));
    s.push_str(&format!(
        "<body data-poll=\"{poll}\">\n<header><h1>{title}</h1><div id=\"summary\"></div></header>\n"
    ));
    s.push_str(BODY);
    s.push_str("<script type=\"application/json\" id=\"data\">");
    s.push_str(&json);
    s.push_str("</script>\n<script>");
    s.push_str(JS);
    s.push_str("</script>\n</body></html>\n");
    s
}

const BODY: &str = r#"<div id="controls">
<label>Region <select id="f-region"><option value="">all</option></select></label>
<label>Tenant <select id="f-tenant"><option value="">all</option></select></label>
<label>Kind <select id="f-kind"><option value="">all</option></select></label>
<label><input type="checkbox" id="f-risks"> only risks</label>
<label>Host <input id="f-host" type="search" placeholder="host name, Enter" autocomplete="off"></label>
<button id="z-out" type="button" title="zoom out">−</button><button id="z-in" type="button" title="zoom in">+</button><button id="z-fit" type="button">fit</button>
<button id="expand" type="button">open clusters</button>
</div>
<main>
<section id="chart"><div id="scroll"><div id="spacer"></div><canvas id="gantt"></canvas></div>
<div id="legend"><span class="lg plan">planned</span><span class="lg actual">actual</span><span class="lg late">late</span><span class="lg win">window</span><span class="lg dl">deadline</span><span class="lg nb">NotBefore</span><span class="lg lead">notice lead</span></div>
</section>
<aside id="side">
<div id="hostinfo" hidden></div>
<h2>Regions</h2><ol id="regions"></ol>
<div id="live" hidden><h2>Run</h2><div id="runstate"></div><h3>Late hosts</h3><ul id="late"></ul><h3>Missing / failed</h3><ul id="missing"></ul><h3>Budgets in use</h3><ul id="budgets"></ul><h3>Notifications</h3><div id="notify"></div></div>
<h2>Risks</h2><div id="riskcount"></div><ul id="risks"></ul>
</aside>
</main>
"#;

/// HTML-escape text for an element or a quoted attribute.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Standard base64 with padding (for the CSP hash).
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= ch.len() {
                o.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn a_name_cannot_close_the_data_script() {
        let mut f =
            rollcall_core::generate::generate(&rollcall_core::generate::GenParams::new(20, 4, 1));
        f.hosts[0].id = "</script><script>alert(1)</script>".into();
        let p = rollcall_core::plan::plan(&f);
        let page = render_page(&timeline_data(&f, &p), Mode::Export);
        assert_eq!(
            page.matches("</script>").count(),
            2,
            "only the page's own two"
        );
        assert!(page.contains(&format!("'sha256-{}'", script_hash())));
    }
}

/// A run's state for the admin timeline (polled; times are seconds after `t0`).
#[derive(Debug, Serialize)]
pub struct LiveDoc {
    pub run: String,
    pub status: String,
    pub now: i64,
    pub done: usize,
    /// Hosts that started: actual start, end (`None` while out) and phase.
    pub hosts: Vec<LiveHost>,
    /// Hosts missing or failed now.
    pub missing: Vec<LiveHost>,
    /// Clusters with members out now.
    pub budgets: Vec<LiveBudget>,
    /// Announcements and unreached subscribers, in words.
    pub notify: String,
}

#[derive(Debug, Serialize)]
pub struct LiveHost {
    pub host: String,
    pub start: i64,
    pub end: Option<i64>,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct LiveBudget {
    pub cluster: String,
    pub out: u32,
    pub limit: u32,
}

fn phase_name(p: rollcall_core::engine::Phase) -> String {
    format!("{p:?}").to_lowercase()
}

/// The live state of the run `t` follows, at run clock `now`.
pub fn live_doc(t: &crate::model::Tracker, now: i64, notify: &rollcall_notify::Summary) -> LiveDoc {
    use rollcall_core::engine::Phase;
    let (f, t0) = (&t.fleet, t.plan.announce_at);
    let mut d = LiveDoc {
        run: t.run.id.clone(),
        status: t.run.status.name().to_string(),
        now: now - t0,
        done: t.finished.iter().filter(|x| x.is_some()).count(),
        hosts: Vec::new(),
        missing: Vec::new(),
        budgets: Vec::new(),
        notify: notify_words(t, notify),
    };
    for (i, h) in f.hosts.iter().enumerate() {
        let ph = t.phase[i];
        if let Some(s) = t.started[i] {
            d.hosts.push(LiveHost {
                host: h.id.clone(),
                start: s - t0,
                end: t.finished[i].map(|e| e - t0),
                state: phase_name(ph),
            });
        }
        if matches!(ph, Phase::Missing | Phase::Failed) {
            d.missing.push(LiveHost {
                host: h.id.clone(),
                start: t.started[i].map(|s| s - t0).unwrap_or(-1),
                end: None,
                state: phase_name(ph),
            });
        }
    }
    for (c, l) in f.clusters.iter().zip(&t.plan.limits) {
        let out = c.members.iter().filter(|&&m| t.is_out(m)).count() as u32;
        if out > 0 {
            d.budgets.push(LiveBudget {
                cluster: c.id.clone(),
                out,
                limit: l.nodes,
            });
        }
    }
    d
}

/// "announced dfw 20:00, ord 21:55; unreached: none" and the like.
fn notify_words(t: &crate::model::Tracker, n: &rollcall_notify::Summary) -> String {
    let announced: Vec<String> = t
        .region_times
        .iter()
        .enumerate()
        .filter_map(|(r, x)| {
            x.2.map(|at| format!("{} {}", t.fleet.regions[r], &fmt_time(at)[11..16]))
        })
        .collect();
    let unreached: Vec<String> = n
        .holds
        .iter()
        .filter(|h| !h.released && !h.unreached.is_empty())
        .map(|h| format!("{}: {}", h.region, h.unreached.join(", ")))
        .collect();
    format!(
        "announced: {}; unreached subscribers: {}; undelivered: {}",
        if announced.is_empty() {
            "none".into()
        } else {
            announced.join(", ")
        },
        if unreached.is_empty() {
            "none".into()
        } else {
            unreached.join("; ")
        },
        n.undelivered.len()
    )
}
