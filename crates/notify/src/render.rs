//! What a subscriber is told. Texts are composed here from the structured notice, never
//! copied from the engine's operator text (which names hosts and internal reasons): a
//! tenant's subscriber sees the public region view plus that tenant's own clusters and
//! hosts, nothing about another tenant's clusters.

use crate::config::Subscriber;
use rollcall_core::model::{ClusterIx, Fleet, HostIx, RegionIx, fmt_time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// The region's announcement (the engine's `Announce` command).
    Announcement,
    Reminder,
    Started,
    Completed,
    HostMissing,
    HostReturned,
    HostReplaced,
    Escalation,
    /// The provider's own windows would take more members of a cluster than it can lose.
    ProviderRisk,
    /// To the operator: a region's announcement has not reached every subscriber for
    /// too long (escalated; see [`crate::escalate`]).
    Unreached,
}

impl NoteKind {
    pub fn name(self) -> &'static str {
        match self {
            NoteKind::Announcement => "announcement",
            NoteKind::Reminder => "reminder",
            NoteKind::Started => "started",
            NoteKind::Completed => "completed",
            NoteKind::HostMissing => "host_missing",
            NoteKind::HostReturned => "host_returned",
            NoteKind::HostReplaced => "host_replaced",
            NoteKind::Escalation => "escalation",
            NoteKind::ProviderRisk => "provider_risk",
            NoteKind::Unreached => "unreached",
        }
    }
    pub fn parse(s: &str) -> Option<NoteKind> {
        [
            NoteKind::Announcement,
            NoteKind::Reminder,
            NoteKind::Started,
            NoteKind::Completed,
            NoteKind::HostMissing,
            NoteKind::HostReturned,
            NoteKind::HostReplaced,
            NoteKind::Escalation,
            NoteKind::ProviderRisk,
            NoteKind::Unreached,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// One notice to deliver, as stored in the outbox (everything needed to render it again).
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Unique within the run: `announce-<region>`, `remind-<region>`, `n-<journal seq>`.
    pub key: String,
    pub kind: NoteKind,
    pub region: RegionIx,
    pub host: Option<HostIx>,
    /// Run clock when it happened (or, for an announcement, when it was first sent).
    pub at: i64,
    /// Announcement/reminder: the earliest (or expected) start of the region's reboots.
    pub start: Option<i64>,
    /// Announcement: the plan's expected start, when later than `start`.
    pub expected: Option<i64>,
}

/// A rendered notice for one audience.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub text: String,
    /// The Statuspage-shaped subscriber webhook body.
    pub statuspage: Value,
}

/// Whether a subscriber receives a notice about `region` (and `host`).
pub fn wants(fleet: &Fleet, s: &Subscriber, region: RegionIx, host: Option<HostIx>) -> bool {
    if s.regions.contains(&region) {
        return true;
    }
    s.clusters.iter().any(|&c| {
        let members = &fleet.clusters[c as usize].members;
        match host {
            Some(h) => members.contains(&h),
            None => members.iter().any(|&h| {
                fleet.hosts[h as usize].region == region && fleet.hosts[h as usize].in_scope
            }),
        }
    })
}

/// The tenant's clusters a notice concerns: with a host, those it belongs to; else those
/// with in-scope members in the region.
fn tenant_clusters(fleet: &Fleet, tenant: Option<&str>, note: &Note) -> Vec<ClusterIx> {
    let Some(t) = tenant else {
        return Vec::new();
    };
    fleet
        .clusters
        .iter()
        .enumerate()
        .filter(|(_, c)| c.tenant.as_deref() == Some(t))
        .filter(|(_, c)| match note.host {
            Some(h) => c.members.contains(&h),
            None => c.members.iter().any(|&h| {
                let host = &fleet.hosts[h as usize];
                host.region == note.region && host.in_scope
            }),
        })
        .map(|(i, _)| i as ClusterIx)
        .collect()
}

/// Render a notice for a subscriber's audience (its tenant, or the public).
pub fn render(fleet: &Fleet, run: &str, tenant: Option<&str>, note: &Note) -> Message {
    let m = &fleet.maintenance;
    let region = fleet.region_name(note.region);
    let mine = tenant_clusters(fleet, tenant, note);
    let cluster_names: Vec<&str> = mine
        .iter()
        .map(|&c| fleet.clusters[c as usize].id.as_str())
        .collect();
    // a host is named only to the tenant whose cluster it serves
    let host_name = note
        .host
        .filter(|_| !mine.is_empty())
        .map(|h| fleet.hosts[h as usize].id.clone());
    let a_host = host_name
        .clone()
        .map(|h| format!("host {h}"))
        .unwrap_or_else(|| format!("a host in {region}"));
    let yours = if cluster_names.is_empty() {
        String::new()
    } else {
        format!(" Your clusters affected: {}.", cluster_names.join(", "))
    };
    let start = note.start.map(fmt_time).unwrap_or_default();
    let (subject, text, status) = match note.kind {
        NoteKind::Announcement => (
            format!(
                "Scheduled maintenance in {region}: {} from {start}",
                m.action.plural()
            ),
            format!(
                "{} ({}) will {} in region {region}, one at a time within each cluster's safety budget. The work begins no earlier than {start}{}.{yours} You will be told when it starts, when it is completed, and if a host does not come back.",
                m.name,
                m.action.keyword(),
                m.action.verb_phrase(),
                note.expected
                    .map(|t| format!(" (expected around {})", fmt_time(t)))
                    .unwrap_or_default()
            ),
            "scheduled",
        ),
        NoteKind::Reminder => (
            format!("Reminder: maintenance in {region} begins around {start}"),
            format!(
                "Reminder: {} in region {region} is expected to begin around {start}.{yours}",
                m.name
            ),
            "scheduled",
        ),
        NoteKind::Started => (
            format!("Maintenance in {region} has started"),
            format!(
                "{} in region {region} started at {}.{yours}",
                m.name,
                fmt_time(note.at)
            ),
            "in_progress",
        ),
        NoteKind::Completed => (
            format!("Maintenance in {region} is completed"),
            format!(
                "{} in region {region} is completed: its last host was healthy at {}.{yours}",
                m.name,
                fmt_time(note.at)
            ),
            "completed",
        ),
        NoteKind::HostMissing => (
            format!("Maintenance in {region}: a host did not return"),
            format!(
                "During {} in region {region}, {a_host} did not come back after its {} (noticed {}). We are on it; its clusters are held until it returns or is replaced.{yours}",
                m.name,
                m.action.noun(),
                fmt_time(note.at)
            ),
            "in_progress",
        ),
        NoteKind::HostReturned => (
            format!("Maintenance in {region}: the missing host is back"),
            format!(
                "During {} in region {region}, {a_host} came back at {}.{yours}",
                m.name,
                fmt_time(note.at)
            ),
            "in_progress",
        ),
        NoteKind::HostReplaced => (
            format!("Maintenance in {region}: a missing host was replaced"),
            format!(
                "During {} in region {region}, {a_host} was replaced at {}.{yours}",
                m.name,
                fmt_time(note.at)
            ),
            "in_progress",
        ),
        NoteKind::Escalation => (
            format!("Maintenance in {region} is held for an operator"),
            format!(
                "{} in region {region} is held at {}: something needs an operator's attention{}. No further {} start until it is resolved.{yours}",
                m.name,
                fmt_time(note.at),
                if host_name.is_some() {
                    format!(" ({a_host})")
                } else {
                    String::new()
                },
                m.action.plural(),
            ),
            "in_progress",
        ),
        NoteKind::ProviderRisk => provider_risk(fleet, note, &cluster_names),
        NoteKind::Unreached => {
            let (subject, text) = crate::escalate::operator_text(fleet, run, note);
            (subject, text, "scheduled")
        }
    };
    let at = fmt_time(note.at);
    let region_status = match status {
        "completed" => "operational",
        "scheduled" => "operational",
        _ => "under_maintenance",
    };
    let mut components =
        vec![json!({"id": format!("region:{region}"), "name": region, "status": region_status})];
    for &c in &mine {
        let degraded = matches!(
            note.kind,
            NoteKind::HostMissing | NoteKind::Escalation | NoteKind::ProviderRisk
        );
        components.push(json!({
            "id": format!("cluster:{}", fleet.clusters[c as usize].id),
            "name": fleet.clusters[c as usize].id,
            "status": if degraded { "degraded_performance" } else { region_status },
        }));
    }
    let statuspage = json!({
        "meta": {
            "unsubscribe": null,
            "documentation": "https://github.com/rollcall/rollcall#notifications",
            "generated_at": at,
        },
        "page": {
            "id": fleet.name,
            "status_indicator": if status == "in_progress" { "maintenance" } else { "none" },
            "status_description": subject,
        },
        "incident": {
            "id": format!("{run}-{region}"),
            "name": format!("{} in {region}", m.name),
            "status": status,
            "impact": "maintenance",
            "shortlink": null,
            "scheduled_for": note.start.map(fmt_time),
            "scheduled_until": null,
            "created_at": at,
            "updated_at": at,
            "incident_updates": [{
                "id": note.key,
                "status": status,
                "body": text,
                "created_at": at,
                "updated_at": at,
                "display_at": at,
                "affected_components": components.iter().map(|c| json!({"code": c["id"], "name": c["name"], "new_status": c["status"]})).collect::<Vec<_>>(),
            }],
            "components": components,
            "rollcall": {"kind": note.kind.name(), "region": region, "clusters": cluster_names, "host": host_name},
        }
    });
    Message {
        subject: format!("[{}] {subject}", fleet.name),
        text,
        statuspage,
    }
}

/// The provider's windows would take several members of one cluster out together: to its
/// tenant, which cluster, how many, when, and what is done about it; to the public, only
/// that a cluster in the region is concerned.
fn provider_risk(fleet: &Fleet, note: &Note, mine: &[&str]) -> (String, String, &'static str) {
    let region = fleet.region_name(note.region);
    let c = rollcall_core::guard::collisions(fleet)
        .into_iter()
        .find(|c| Some(c.hosts[0]) == note.host);
    let when = c.as_ref().map(|c| fmt_time(c.from)).unwrap_or_default();
    let subject = format!("Provider maintenance in {region} would overlap on one cluster");
    let remedy = "We will restart them ahead of the provider's windows, within what the cluster can lose at once, with notice before we start. If that cannot be done in time, we will ask you to fail over or add a node.";
    let text = match (c, mine.first()) {
        (Some(c), Some(name)) => format!(
            "The cloud provider has scheduled its own maintenance on {} of the {} servers of your cluster {name}, in windows that overlap from {when}: left alone, it would lose more servers at once than it can ({} at a time). {remedy}",
            c.hosts.len(),
            fleet.clusters[c.cluster as usize].members.len(),
            c.limit,
        ),
        _ => format!(
            "The cloud provider has scheduled maintenance in {region} that would take several servers of one cluster down together from {when}. {remedy}"
        ),
    };
    (subject, text, "scheduled")
}
