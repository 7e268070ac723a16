//! What a subscriber is told. Texts are composed here from the structured notice, never
//! copied from the engine's operator text (which names hosts and internal reasons): a
//! tenant's subscriber sees the public region view plus that tenant's own clusters and
//! hosts, nothing about another tenant's clusters.

use crate::config::Subscriber;
use jiff::tz::TimeZone;
use rollcall_core::model::{ClusterIx, Fleet, HostIx, RegionIx, fmt_time};
use rollcall_core::plan::{Plan, Severity};
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
    /// A tenant's cluster the plan refuses to touch (told once, when the run starts).
    Excluded,
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
            NoteKind::Excluded => "excluded",
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
            NoteKind::Excluded,
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
    /// The notice's page (`{page_url}/incidents/{id}`), when `[notify] page_url` is set.
    pub link: Option<String>,
    /// The Statuspage-shaped subscriber webhook body.
    pub statuspage: Value,
}

impl Message {
    /// The mail's plain-text part: the text, then the link.
    pub fn plain(&self) -> String {
        match &self.link {
            Some(l) => format!("{}\n\nDetails and updates: {l}\n", self.text),
            None => format!("{}\n", self.text),
        }
    }

    /// The mail's HTML part: the same text, escaped, no remote assets.
    pub fn html(&self) -> String {
        let paras: String = self
            .text
            .split("\n\n")
            .map(|p| format!("<p>{}</p>\n", escape(p).replace('\n', "<br>\n")))
            .collect();
        let link = self
            .link
            .as_ref()
            .map(|l| {
                let l = escape(l);
                format!("<p>Details and updates: <a href=\"{l}\">{l}</a></p>\n")
            })
            .unwrap_or_default();
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{paras}{link}</body></html>\n",
            escape(&self.subject)
        )
    }
}

/// HTML-escape text (element content and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who reads a message: its tenant (or the public), its time zone, where pages are.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub tenant: Option<&'a str>,
    pub tz: &'a TimeZone,
    /// `[notify] page_url`, without a trailing slash.
    pub page_url: Option<&'a str>,
}

/// A time for people, in `tz` with UTC beside: "Thursday 25 September 2014, 16:00 CDT
/// (21:00 UTC)"; in UTC only once: "Thursday 25 September 2014, 21:00 UTC".
pub fn when(t: i64, tz: &TimeZone) -> String {
    let Ok(ts) = jiff::Timestamp::from_second(t) else {
        return fmt_time(t);
    };
    let local = ts.to_zoned(tz.clone());
    let utc = ts.to_zoned(TimeZone::UTC);
    if local.offset() == utc.offset() && tz.iana_name().is_none_or(|n| n == "UTC" || n == "Etc/UTC")
    {
        return utc.strftime("%A %-d %B %Y, %H:%M UTC").to_string();
    }
    let day = |z: &jiff::Zoned| z.strftime("%A %-d %B %Y").to_string();
    let utc_part = if day(&local) == day(&utc) {
        utc.strftime("%H:%M UTC").to_string()
    } else {
        utc.strftime("%A %-d %B, %H:%M UTC").to_string()
    };
    format!(
        "{}, {} ({utc_part})",
        day(&local),
        local.strftime("%H:%M %Z")
    )
}

/// A tenant's cluster the plan will not touch, in customer terms.
#[derive(Debug, Clone)]
pub struct Exclusion {
    pub cluster: ClusterIx,
    /// Why, for the cluster's tenant: "with 2 nodes at load 0.60 it cannot lose one
    /// without overloading the others".
    pub why: String,
    /// What the tenant can do: "add a node, or accept a short outage".
    pub remedy: String,
}

/// The clusters the plan refuses (its `blocked` risks that name a cluster), with the
/// plan's reasons retold for the cluster's tenant.
pub fn exclusions(fleet: &Fleet, plan: &Plan) -> Vec<Exclusion> {
    let mut out: Vec<Exclusion> = Vec::new();
    for r in &plan.risks {
        let Some(ci) = r.cluster else { continue };
        if r.severity != Severity::Blocked || out.iter().any(|e| e.cluster == ci) {
            continue;
        }
        let c = &fleet.clusters[ci as usize];
        let n = c.members.len();
        let verb = fleet.maintenance.action.keyword();
        let (why, remedy) = match r.code {
            "single-node" => (
                format!("it has a single node, so to {verb} it is an outage"),
                "add a node, or accept a short outage".to_string(),
            ),
            "overloaded" => (
                format!(
                    "its load ({:.2}) is already above what its nodes may carry ({:.2}), so it cannot lose one",
                    c.load, c.max_load
                ),
                format!("{} (the plan: {})", add_nodes(&r.remedy), r.remedy),
            ),
            "survivor-load" => (
                format!(
                    "with {n} nodes at load {:.2} it cannot lose one without overloading the other{}",
                    c.load,
                    if n > 2 { "s" } else { "" }
                ),
                format!("{}, or accept a short outage", add_nodes(&r.remedy)),
            ),
            _ => (
                r.reason
                    .strip_prefix(&format!("{}: ", c.id))
                    .unwrap_or(&r.reason)
                    .to_string(),
                r.remedy.clone(),
            ),
        };
        out.push(Exclusion {
            cluster: ci,
            why,
            remedy,
        });
    }
    out
}

/// "add 1 node(s) first, ..." (the plan's remedy) as "add a node" / "add 3 nodes".
fn add_nodes(plan_remedy: &str) -> String {
    let n: usize = plan_remedy
        .strip_prefix("add ")
        .and_then(|r| r.split(' ').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or(1);
    if n <= 1 {
        "add a node".into()
    } else {
        format!("add {n} nodes")
    }
}

/// The sentence telling a tenant one cluster is excluded, why, the risk and the remedy.
pub fn excluded_sentence(fleet: &Fleet, e: &Exclusion) -> String {
    let a = &fleet.maintenance.action;
    format!(
        "{} will not be {}: {}. If the provider {}s it anyway it may be unavailable; {}.",
        fleet.clusters[e.cluster as usize].id,
        a.past(),
        e.why,
        a.keyword(),
        e.remedy
    )
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

/// The page a notice belongs to (the ids the status API uses): a host that did not
/// return is its own incident (`{run}.{seq}`), everything else the region's maintenance
/// (`{run}.{region}`).
pub fn page_id(fleet: &Fleet, run: &str, note: &Note) -> String {
    match (note.kind, note.key.strip_prefix("n-")) {
        (NoteKind::HostMissing, Some(seq)) => format!("{run}.{seq}"),
        _ => format!("{run}.{}", fleet.region_name(note.region)),
    }
}

/// Render a notice for a reader (its tenant or the public, its time zone, the page).
/// Clusters in `excluded` are never listed as affected: they are named as excluded.
pub fn render(
    fleet: &Fleet,
    run: &str,
    reader: &Reader<'_>,
    excluded: &[Exclusion],
    note: &Note,
) -> Message {
    let m = &fleet.maintenance;
    let region = fleet.region_name(note.region);
    let tenant = reader.tenant;
    let tz = reader.tz;
    let all_mine = tenant_clusters(fleet, tenant, note);
    let is_excluded = |c: &ClusterIx| excluded.iter().any(|e| e.cluster == *c);
    let out: Vec<&Exclusion> = excluded
        .iter()
        .filter(|e| all_mine.contains(&e.cluster))
        .collect();
    let mine: Vec<ClusterIx> = all_mine
        .iter()
        .copied()
        .filter(|c| !is_excluded(c))
        .collect();
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
    let fmt_time = |t: i64| when(t, tz);
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
        NoteKind::Unreached => {
            let (subject, text) = crate::escalate::operator_text(fleet, run, note, tz);
            (subject, text, "scheduled")
        }
        NoteKind::ProviderRisk => provider_risk(fleet, note, &cluster_names, tz),
        NoteKind::Excluded => excluded_notice(fleet, &out),
    };
    // the tenant's clusters left out, after the rest (announcement and reminder)
    let mut text = text;
    if matches!(note.kind, NoteKind::Announcement | NoteKind::Reminder) {
        for e in &out {
            text.push_str(&format!("\n\n{}", excluded_sentence(fleet, e)));
        }
    }
    let at = rollcall_core::model::fmt_time(note.at);
    let page = page_id(fleet, run, note);
    let link = reader.page_url.map(|u| format!("{u}/incidents/{page}"));
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
            "id": page,
            "name": format!("{} in {region}", m.name),
            "status": status,
            "impact": "maintenance",
            "shortlink": link,
            "scheduled_for": note.start.map(rollcall_core::model::fmt_time),
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
            "rollcall": {
                "kind": note.kind.name(),
                "region": region,
                "clusters": cluster_names,
                "excluded": out.iter().map(|e| &fleet.clusters[e.cluster as usize].id).collect::<Vec<_>>(),
                "host": host_name,
            },
        }
    });
    Message {
        subject: format!("[{}] {subject}", fleet.name),
        text,
        link,
        statuspage,
    }
}

/// To a tenant: which of its clusters the plan leaves out, why, and the remedy.
fn excluded_notice(fleet: &Fleet, out: &[&Exclusion]) -> (String, String, &'static str) {
    let m = &fleet.maintenance;
    let names: Vec<&str> = out
        .iter()
        .map(|e| fleet.clusters[e.cluster as usize].id.as_str())
        .collect();
    let subject = format!(
        "{}: {} excluded from {}",
        m.name,
        names.join(", "),
        m.action.plural()
    );
    let text = out
        .iter()
        .map(|e| excluded_sentence(fleet, e))
        .collect::<Vec<_>>()
        .join("\n\n");
    (subject, text, "scheduled")
}

/// The provider's windows would take several members of one cluster out together: to its
/// tenant, which cluster, how many, when, and what is done about it; to the public, only
/// that a cluster in the region is concerned.
fn provider_risk(
    fleet: &Fleet,
    note: &Note,
    mine: &[&str],
    tz: &TimeZone,
) -> (String, String, &'static str) {
    let region = fleet.region_name(note.region);
    let c = rollcall_core::guard::collisions(fleet)
        .into_iter()
        .find(|c| Some(c.hosts[0]) == note.host);
    let when = c.as_ref().map(|c| when(c.from, tz)).unwrap_or_default();
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
