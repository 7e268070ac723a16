//! `/metrics` in the OpenMetrics text format (prometheus-client), made from the view.
//!
//! Every figure comes from the journal: hosts by phase, reboot commands, gate checks and
//! failed gate rounds (gate answers are not journalled; the engine only starts another
//! round after an unhealthy answer), notices emitted by kind, run progress. Notices
//! *delivered* come from the notify crate's outbox, read per request
//! ([`with_deliveries`]), since deliveries progress without the journal growing.

use crate::model::{Status, View};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseL {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindL {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusL {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionStatusL {
    region: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateL {
    state: String,
}

pub fn encode(v: &View, version: u64) -> String {
    let mut reg = Registry::with_prefix("rollcall");
    register_work(&mut reg, v);
    register_run(&mut reg, v);
    register_components(&mut reg, v);
    let ver = Gauge::<i64>::default();
    ver.set(version as i64);
    reg.register("web_view_version", "Version of the status view served", ver);
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// Hosts by phase, reboots, gate checks, notices.
fn register_work(reg: &mut Registry, v: &View) {
    let hosts = Family::<PhaseL, Gauge>::default();
    for (p, n) in &v.phases {
        hosts
            .get_or_create(&PhaseL {
                phase: p.name().into(),
            })
            .set(*n as i64);
    }
    reg.register("hosts", "Hosts of the fleet by maintenance phase", hosts);
    let reboots = Counter::<u64>::default();
    reboots.inc_by(v.reboots);
    reg.register(
        "reboots",
        "Reboot commands issued (journalled intents)",
        reboots,
    );
    let gates = Counter::<u64>::default();
    gates.inc_by(v.gate_checks);
    reg.register("gate_checks", "Cluster health gate checks issued", gates);
    let gate_fail = Counter::<u64>::default();
    gate_fail.inc_by(v.gate_failures);
    reg.register(
        "gate_failures",
        "Gate rounds that found a cluster not healthy (re-checked later)",
        gate_fail,
    );
    let notices = Family::<KindL, Counter<u64>>::default();
    for (k, n) in &v.notices_by_kind {
        notices.get_or_create(&KindL { kind: k.clone() }).inc_by(*n);
    }
    reg.register(
        "notices_emitted",
        "Notices the engine emitted (journalled), by kind",
        notices,
    );
    let admin = Counter::<u64>::default();
    admin.inc_by(v.admin_notices);
    reg.register(
        "admin_notices",
        "Notices created through the admin API",
        admin,
    );
}

/// The run: hosts, progress, state, clock.
fn register_run(reg: &mut Registry, v: &View) {
    let total = Gauge::<i64>::default();
    total.set(v.hosts_total as i64);
    reg.register("run_hosts", "Hosts in the run's plan", total);
    let done = Gauge::<i64>::default();
    done.set(v.hosts_done as i64);
    reg.register("run_hosts_done", "Hosts of the run that are done", done);
    let progress = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    progress.set(if v.hosts_total == 0 {
        0.0
    } else {
        v.hosts_done as f64 / v.hosts_total as f64
    });
    reg.register(
        "run_progress_ratio",
        "Share of the run's hosts done",
        progress,
    );
    let state = Family::<StateL, Gauge>::default();
    for s in ["running", "paused", "aborting", "completed", "aborted"] {
        state
            .get_or_create(&StateL { state: s.into() })
            .set((v.state == s) as i64);
    }
    reg.register("run_state", "1 for the run's current state", state);
    let clock = Gauge::<i64>::default();
    clock.set(v.now);
    reg.register("run_clock_seconds", "The run clock (Unix seconds)", clock);
}

/// Clusters and regions by component status.
fn register_components(reg: &mut Registry, v: &View) {
    let comps = Family::<StatusL, Gauge>::default();
    let regions = Family::<RegionStatusL, Gauge>::default();
    for s in Status::ALL {
        comps
            .get_or_create(&StatusL {
                status: s.name().into(),
            })
            .set(v.clusters.iter().filter(|c| c.status == s).count() as i64);
    }
    for r in &v.regions {
        for s in Status::ALL {
            regions
                .get_or_create(&RegionStatusL {
                    region: r.name.clone(),
                    status: s.name().into(),
                })
                .set((r.status == s) as i64);
        }
    }
    reg.register("clusters", "Clusters by component status", comps);
    reg.register(
        "region_status",
        "1 for each region's component status",
        regions,
    );
}

/// The cached metrics text with the notify outbox's delivery counts added before `# EOF`:
/// `rollcall_notice_deliveries{kind, status}` (status `sent`, `pending`, `gone`).
pub fn with_deliveries(cached: &[u8], d: &rollcall_notify::Summary) -> String {
    let text = String::from_utf8_lossy(cached);
    let body = text.trim_end().strip_suffix("# EOF").unwrap_or(&text);
    let mut out = String::with_capacity(body.len() + 256 + 64 * d.counts.len());
    out.push_str(body);
    out.push_str(
        "# HELP rollcall_notice_deliveries Notice deliveries to subscribers (outbox rows), by notice kind and status.\n",
    );
    out.push_str("# TYPE rollcall_notice_deliveries gauge\n");
    for (kind, status, n) in &d.counts {
        out.push_str(&format!(
            "rollcall_notice_deliveries{{kind=\"{}\",status=\"{}\"}} {n}\n",
            label(kind),
            label(status)
        ));
    }
    holds(&mut out, d);
    out.push_str("# EOF\n");
    out
}

/// Regions held because their announcement does not reach every subscriber:
/// `rollcall_announcement_unreached{region}` (subscribers, while held) and
/// `rollcall_announcement_escalated{region}` (1 once escalated, until released).
fn holds(out: &mut String, d: &rollcall_notify::Summary) {
    if d.holds.is_empty() {
        return;
    }
    out.push_str("# HELP rollcall_announcement_unreached Subscribers a held region's announcement has not reached (0 once the operator released it).\n");
    out.push_str("# TYPE rollcall_announcement_unreached gauge\n");
    for h in &d.holds {
        let n = if h.released { 0 } else { h.unreached.len() };
        out.push_str(&format!(
            "rollcall_announcement_unreached{{region=\"{}\"}} {n}\n",
            label(&h.region)
        ));
    }
    out.push_str("# HELP rollcall_announcement_escalated 1 when a held region was escalated to the operator and is not released.\n");
    out.push_str("# TYPE rollcall_announcement_escalated gauge\n");
    for h in &d.holds {
        let n = (h.escalated_at.is_some() && !h.released) as u8;
        out.push_str(&format!(
            "rollcall_announcement_escalated{{region=\"{}\"}} {n}\n",
            label(&h.region)
        ));
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_go_before_eof() {
        let d = rollcall_notify::Summary {
            counts: vec![
                ("announce".into(), "sent".into(), 3),
                ("started".into(), "pending".into(), 1),
            ],
            undelivered: vec![],
            ..Default::default()
        };
        let m = with_deliveries(b"# TYPE x gauge\nx 1\n# EOF\n", &d);
        assert_eq!(
            m,
            "# TYPE x gauge\nx 1\n\
             # HELP rollcall_notice_deliveries Notice deliveries to subscribers (outbox rows), by notice kind and status.\n\
             # TYPE rollcall_notice_deliveries gauge\n\
             rollcall_notice_deliveries{kind=\"announce\",status=\"sent\"} 3\n\
             rollcall_notice_deliveries{kind=\"started\",status=\"pending\"} 1\n\
             # EOF\n"
        );
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
