//! Everything one audience gets, rendered once per snapshot: Statuspage-compatible JSON,
//! the HTML page, the Atom and iCalendar feeds.

use crate::model::*;
use askama::Template;
use axum::body::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

/// `page` of the Statuspage documents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpPage {
    pub id: String,
    pub name: String,
    pub url: String,
    pub time_zone: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpStatus {
    /// none | maintenance | minor | major | critical
    pub indicator: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpComponent {
    pub id: String,
    pub name: String,
    /// operational | under_maintenance | degraded_performance | partial_outage | major_outage
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub position: u32,
    pub description: Option<String>,
    pub showcase: bool,
    pub start_date: Option<String>,
    pub group_id: Option<String>,
    pub page_id: String,
    pub group: bool,
    pub only_show_if_degraded: bool,
    /// Ids of the member components (groups only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpUpdate {
    pub id: String,
    pub status: String,
    pub body: String,
    pub incident_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub display_at: String,
    pub affected_components: Vec<SpAffected>,
    /// Whether subscribers were told (always: every update goes to the notify outbox).
    pub deliver_notifications: bool,
    pub custom_tweet: Option<String>,
    pub tweet_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpAffected {
    pub code: String,
    pub name: String,
    pub old_status: String,
    pub new_status: String,
}

/// An incident or, with `scheduled_for`/`scheduled_until`, a scheduled maintenance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpIncident {
    pub id: String,
    pub name: String,
    /// Incidents: investigating | resolved. Maintenances: scheduled | in_progress |
    /// completed | cancelled (cancelled is an extension; Statuspage deletes them).
    pub status: String,
    /// none | minor | major | critical | maintenance
    pub impact: String,
    pub shortlink: String,
    pub created_at: String,
    pub updated_at: String,
    pub monitoring_at: Option<String>,
    pub resolved_at: Option<String>,
    pub started_at: Option<String>,
    pub page_id: String,
    pub incident_updates: Vec<SpUpdate>,
    pub components: Vec<SpComponent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_until: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpStatusDoc {
    pub page: SpPage,
    pub status: SpStatus,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpSummary {
    pub page: SpPage,
    pub status: SpStatus,
    pub components: Vec<SpComponent>,
    /// Unresolved incidents.
    pub incidents: Vec<SpIncident>,
    /// Upcoming and in-progress maintenances.
    pub scheduled_maintenances: Vec<SpIncident>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpComponents {
    pub page: SpPage,
    pub components: Vec<SpComponent>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpIncidents {
    pub page: SpPage,
    pub incidents: Vec<SpIncident>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpMaintenances {
    pub page: SpPage,
    pub scheduled_maintenances: Vec<SpIncident>,
}

/// One timeline entry (rollcall's own API).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiUpdate {
    pub id: String,
    pub at: String,
    /// scheduled | started | completed | host_missing | host_returned | host_replaced |
    /// escalation | notice
    pub kind: String,
    pub region: Option<String>,
    pub title: String,
    pub body: String,
    /// Clusters of yours it is about (tenant view only).
    pub clusters: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiUpdates {
    pub run: String,
    pub updates: Vec<ApiUpdate>,
}

/// What the page polls to know when to refresh itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiLive {
    /// Changes whenever anything on the page may have changed.
    pub version: u64,
    pub run: String,
    pub state: String,
    /// Run clock, RFC 3339.
    pub now: String,
    pub hosts_done: usize,
    pub hosts_total: usize,
}

/// A JSON error: every 4xx/5xx from the API has this shape.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiError {
    pub error: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// All outputs of one audience for one snapshot.
pub struct Rendered {
    pub status: Bytes,
    pub summary: Bytes,
    pub components: Bytes,
    pub incidents: Bytes,
    pub incidents_unresolved: Bytes,
    pub maintenances: Bytes,
    pub upcoming: Bytes,
    pub active: Bytes,
    pub updates: Bytes,
    pub live: Bytes,
    pub html: Bytes,
    pub atom: Bytes,
    pub history_atom: Bytes,
    pub rss: Bytes,
    pub ics: Bytes,
}

fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()))
}

pub fn indicator(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Operational => ("none", "All Systems Operational"),
        Status::UnderMaintenance => ("maintenance", "Maintenance In Progress"),
        Status::DegradedPerformance => ("minor", "Minor Service Outage"),
        Status::PartialOutage => ("major", "Partial System Outage"),
        Status::MajorOutage => ("critical", "Major System Outage"),
    }
}

pub struct Ctx<'a> {
    pub av: &'a AudienceView<'a>,
    pub version: u64,
    /// Absolute URL of this audience's page, ending in `/`.
    pub page_url: String,
}

impl Ctx<'_> {
    fn page(&self) -> SpPage {
        let v = self.av.view;
        SpPage {
            id: page_id(v),
            name: match self.av.tenant_name() {
                Some(t) => format!("{} — {}", v.page_name, t),
                None => v.page_name.clone(),
            },
            url: self.page_url.clone(),
            time_zone: "Etc/UTC".into(),
            updated_at: sp_ts(v.updated_at),
        }
    }

    /// Each region is a group whose members follow it in the list (`group_id`): a
    /// neutral "Servers in <region>" member carrying the region's status (so a group is
    /// never empty, and the public page names no cluster), then the clusters this
    /// audience may see.
    fn components(&self) -> Vec<SpComponent> {
        let v = self.av.view;
        let pid = page_id(v);
        let mut out = Vec::new();
        let mut pos = 1;
        for (r, cs) in &self.av.regions {
            let gid = group_id(&r.name);
            let mut members = vec![servers_id(&r.name)];
            members.extend(cs.iter().map(|c| cluster_id(&c.id)));
            out.push(SpComponent {
                id: gid.clone(),
                name: format!("Region {}", r.name),
                status: r.status.name().into(),
                created_at: sp_ts(r.created_at),
                updated_at: sp_ts(r.updated_at),
                position: pos,
                description: Some(format!("{} servers in {}", r.hosts, r.name)),
                showcase: true,
                start_date: None,
                group_id: None,
                page_id: pid.clone(),
                group: true,
                only_show_if_degraded: false,
                components: Some(members),
            });
            out.push(SpComponent {
                id: servers_id(&r.name),
                name: format!("Servers in {}", r.name),
                status: r.status.name().into(),
                created_at: sp_ts(r.created_at),
                updated_at: sp_ts(r.updated_at),
                position: pos + 1,
                description: Some(format!(
                    "{} servers in {}: {} done, {} in maintenance, {} not back",
                    r.hosts, r.name, r.done, r.out, r.missing
                )),
                showcase: true,
                start_date: None,
                group_id: Some(gid.clone()),
                page_id: pid.clone(),
                group: false,
                only_show_if_degraded: false,
                components: None,
            });
            pos += 2;
            for c in cs {
                out.push(self.cluster_component(c, &gid, pos));
                pos += 1;
            }
        }
        out
    }

    fn cluster_component(&self, c: &ClusterView, gid: &str, pos: u32) -> SpComponent {
        let v = self.av.view;
        SpComponent {
            id: cluster_id(&c.id),
            name: c.id.clone(),
            status: c.status.name().into(),
            created_at: sp_ts(c.created_at),
            updated_at: sp_ts(c.updated_at),
            position: pos,
            description: Some(match &c.excluded {
                Some(x) => format!(
                    "{} cluster, {} members. {}",
                    c.kind,
                    c.members,
                    x.text(&c.id)
                ),
                None => format!("{} cluster, {} members ({} out)", c.kind, c.members, c.out),
            }),
            showcase: true,
            start_date: None,
            group_id: Some(gid.to_string()),
            page_id: page_id(v),
            group: false,
            only_show_if_degraded: false,
            components: None,
        }
    }

    /// The member components of a region this audience may see (never the group:
    /// incidents and maintenances reference members, as on Statuspage).
    fn region_members(&self, region: Option<&str>) -> Vec<SpComponent> {
        let Some(r) = region else {
            return Vec::new();
        };
        let gid = group_id(r);
        self.components()
            .into_iter()
            .filter(|c| c.group_id.as_deref() == Some(gid.as_str()))
            .collect()
    }

    /// The region's member for "Servers in <region>" moving `old` → `new`.
    fn affected(&self, region: Option<&str>, old: Status, new: Status) -> Vec<SpAffected> {
        region
            .map(|r| SpAffected {
                code: servers_id(r),
                name: format!("Servers in {r}"),
                old_status: old.name().into(),
                new_status: new.name().into(),
            })
            .into_iter()
            .collect()
    }

    fn sp_update(
        &self,
        incident: &str,
        n: usize,
        status: &str,
        body: String,
        at: i64,
        affected: Vec<SpAffected>,
    ) -> SpUpdate {
        SpUpdate {
            id: format!("{incident}.u{n}"),
            status: status.into(),
            body,
            incident_id: incident.to_string(),
            created_at: sp_ts(at),
            updated_at: sp_ts(at),
            display_at: sp_ts(at),
            affected_components: affected,
            deliver_notifications: true,
            custom_tweet: None,
            tweet_id: None,
        }
    }

    /// A maintenance's updates, oldest first: (status, body, at, old, new).
    fn maint_steps(&self, m: &MaintView) -> Vec<(&'static str, String, i64, Status, Status)> {
        use Status::{Operational as Op, UnderMaintenance as Um};
        let mut steps = Vec::new();
        if m.source == "engine" {
            for u in self.av.updates.iter().rev() {
                if u.u.region != m.region {
                    continue;
                }
                let (status, old, new) = match u.u.kind.as_str() {
                    "scheduled" => ("scheduled", Op, Op),
                    "started" => ("in_progress", Op, Um),
                    "completed" => ("completed", Um, Op),
                    _ => continue,
                };
                steps.push((status, u.body.clone(), u.u.at, old, new));
            }
            return steps;
        }
        steps.push(("scheduled", m.body.clone(), m.created_at, Op, Op));
        if let Some(s) = m.started_at {
            steps.push(("in_progress", format!("{} has started.", m.name), s, Op, Um));
        }
        match (m.status, m.completed_at) {
            (MaintStatus::Completed, Some(c)) => {
                steps.push(("completed", format!("{} is completed.", m.name), c, Um, Op))
            }
            // Statuspage has no cancelled status: completed, with the cancellation said
            (MaintStatus::Cancelled, _) => steps.push((
                "completed",
                format!(
                    "This maintenance was cancelled: {} will not take place.",
                    m.name
                ),
                m.updated_at,
                Op,
                Op,
            )),
            _ => {}
        }
        steps
    }

    fn maintenance(&self, m: &MaintView) -> SpIncident {
        let v = self.av.view;
        let comps = self.region_members(m.region.as_deref());
        let mut updates: Vec<SpUpdate> = self
            .maint_steps(m)
            .into_iter()
            .enumerate()
            .map(|(i, (st, body, at, old, new))| {
                let aff = self.affected(m.region.as_deref(), old, new);
                self.sp_update(&m.id, i + 1, st, body, at, aff)
            })
            .collect();
        updates.reverse();
        let cancelled = m.status == MaintStatus::Cancelled;
        SpIncident {
            id: m.id.clone(),
            name: m.name.clone(),
            status: if cancelled {
                "completed".into()
            } else {
                m.status.name().into()
            },
            impact: "maintenance".into(),
            shortlink: self.shortlink(&m.id),
            created_at: sp_ts(m.created_at),
            updated_at: sp_ts(m.updated_at),
            monitoring_at: None,
            resolved_at: if cancelled {
                Some(sp_ts(m.updated_at))
            } else {
                m.completed_at.map(sp_ts)
            },
            started_at: m.started_at.map(sp_ts),
            page_id: page_id(v),
            incident_updates: updates,
            components: comps,
            scheduled_for: Some(sp_ts(m.scheduled_for)),
            scheduled_until: Some(sp_ts(m.scheduled_until)),
        }
    }

    fn shortlink(&self, id: &str) -> String {
        format!("{}incidents/{id}", self.page_url)
    }

    /// Whether the maintenance of `region` was in progress at `at`.
    fn maint_running(&self, region: &str, at: i64) -> bool {
        self.av.maintenances.iter().any(|m| {
            m.source == "engine"
                && m.region.as_deref() == Some(region)
                && m.started_at.is_some_and(|s| s <= at)
                && m.completed_at.is_none_or(|c| at < c)
        })
    }

    fn incident(&self, i: &AudIncident) -> SpIncident {
        let v = self.av.view;
        let inc = i.i;
        let comps: Vec<SpComponent> = self
            .region_members(Some(&inc.region))
            .into_iter()
            .filter(|c| {
                c.id == servers_id(&inc.region)
                    || (i.full && inc.clusters.iter().any(|x| c.id == cluster_id(x)))
            })
            .collect();
        let mut updates: Vec<SpUpdate> = inc
            .updates
            .iter()
            .filter_map(|uid| self.av.updates.iter().find(|u| &u.u.id == uid))
            .enumerate()
            .map(|(n, u)| {
                let during = if self.maint_running(&inc.region, u.u.at) {
                    Status::UnderMaintenance
                } else {
                    Status::Operational
                };
                let (status, old, new) = if u.u.kind == "host_missing" {
                    (
                        "investigating",
                        Status::UnderMaintenance,
                        Status::DegradedPerformance,
                    )
                } else {
                    ("resolved", Status::DegradedPerformance, during)
                };
                let aff = self.affected(Some(&inc.region), old, new);
                self.sp_update(&inc.id, n + 1, status, u.body.clone(), u.u.at, aff)
            })
            .collect();
        updates.reverse();
        SpIncident {
            id: inc.id.clone(),
            name: if i.full {
                format!("{} did not come back after its reboot", inc.host)
            } else {
                format!(
                    "A server in {} did not come back after its reboot",
                    inc.region
                )
            },
            status: if inc.resolved_at.is_some() {
                "resolved".into()
            } else {
                "investigating".into()
            },
            impact: "minor".into(),
            shortlink: self.shortlink(&inc.id),
            created_at: sp_ts(inc.created_at),
            updated_at: sp_ts(inc.resolved_at.unwrap_or(inc.created_at)),
            monitoring_at: None,
            resolved_at: inc.resolved_at.map(sp_ts),
            started_at: Some(sp_ts(inc.created_at)),
            page_id: page_id(v),
            incident_updates: updates,
            components: comps,
            scheduled_for: None,
            scheduled_until: None,
        }
    }

    fn status(&self) -> SpStatus {
        let (i, d) = indicator(self.av.overall());
        SpStatus {
            indicator: i.into(),
            description: d.into(),
        }
    }

    pub fn render(&self) -> Rendered {
        let v = self.av.view;
        let page = self.page();
        let components = self.components();
        let maints: Vec<SpIncident> = self
            .av
            .maintenances
            .iter()
            .map(|m| self.maintenance(m))
            .collect();
        let upcoming: Vec<SpIncident> = maints
            .iter()
            .filter(|m| m.status == "scheduled")
            .cloned()
            .collect();
        let active: Vec<SpIncident> = maints
            .iter()
            .filter(|m| m.status == "in_progress")
            .cloned()
            .collect();
        let incidents: Vec<SpIncident> = self
            .av
            .incidents
            .iter()
            .rev()
            .map(|i| self.incident(i))
            .collect();
        let unresolved: Vec<SpIncident> = incidents
            .iter()
            .filter(|i| i.status != "resolved")
            .cloned()
            .collect();
        let summary = SpSummary {
            page: page.clone(),
            status: self.status(),
            components: components.clone(),
            incidents: unresolved.clone(),
            scheduled_maintenances: maints
                .iter()
                .filter(|m| m.status == "scheduled" || m.status == "in_progress")
                .cloned()
                .collect(),
        };
        let updates = ApiUpdates {
            run: v.run_id.clone(),
            updates: self
                .av
                .updates
                .iter()
                .map(|u| ApiUpdate {
                    id: u.u.id.clone(),
                    at: ts(u.u.at),
                    kind: u.u.kind.clone(),
                    region: u.u.region.clone(),
                    title: u.u.title.clone(),
                    body: u.body.clone(),
                    clusters: u.clusters.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
        };
        let live = ApiLive {
            version: self.version,
            run: v.run_id.clone(),
            state: v.state.clone(),
            now: ts(v.now),
            hosts_done: v.hosts_done,
            hosts_total: v.hosts_total,
        };
        Rendered {
            status: json(&SpStatusDoc {
                page: page.clone(),
                status: self.status(),
            }),
            summary: json(&summary),
            components: json(&SpComponents {
                page: page.clone(),
                components,
            }),
            incidents: json(&SpIncidents {
                page: page.clone(),
                incidents,
            }),
            incidents_unresolved: json(&SpIncidents {
                page: page.clone(),
                incidents: unresolved,
            }),
            maintenances: json(&SpMaintenances {
                page: page.clone(),
                scheduled_maintenances: maints,
            }),
            upcoming: json(&SpMaintenances {
                page: page.clone(),
                scheduled_maintenances: upcoming,
            }),
            active: json(&SpMaintenances {
                page,
                scheduled_maintenances: active,
            }),
            updates: json(&updates),
            live: json(&live),
            html: Bytes::from(self.html()),
            atom: Bytes::from(self.atom("feed.atom")),
            history_atom: Bytes::from(self.atom("history.atom")),
            rss: Bytes::from(self.rss()),
            ics: Bytes::from(self.ics()),
        }
    }
}

/// The deployment's page id (never the run's: it stays across runs).
pub fn page_id(v: &View) -> String {
    if v.page_id.is_empty() {
        "rollcall".into()
    } else {
        v.page_id.clone()
    }
}

/// Statuspage's time format: UTC with milliseconds, `2014-09-26T07:12:10.000Z`.
pub fn sp_ts(t: i64) -> String {
    let s = ts(t);
    match s.strip_suffix('Z') {
        Some(head) => format!("{head}.000Z"),
        None => s,
    }
}

pub fn group_id(region: &str) -> String {
    format!("region-{region}")
}

pub fn servers_id(region: &str) -> String {
    format!("servers-{region}")
}

pub fn cluster_id(cluster: &str) -> String {
    format!("cluster-{cluster}")
}

// ---------------------------------------------------------------- HTML

struct ClusterRow {
    id: String,
    kind: String,
    status: &'static str,
    label: &'static str,
    detail: String,
}

struct RegionRow {
    name: String,
    status: &'static str,
    label: &'static str,
    detail: String,
    clusters: Vec<ClusterRow>,
}

struct MaintRow {
    id: String,
    name: String,
    status: &'static str,
    label: &'static str,
    window: String,
    facts: Vec<String>,
    body: String,
}

struct UpdRow {
    id: String,
    at: String,
    kind: String,
    title: String,
    body: String,
}

#[derive(Template)]
#[template(path = "page.html")]
struct PageT {
    title: String,
    tenant: Option<String>,
    overall: &'static str,
    overall_label: &'static str,
    run_line: String,
    progress: String,
    regions: Vec<RegionRow>,
    active: Vec<MaintRow>,
    upcoming: Vec<MaintRow>,
    past: Vec<MaintRow>,
    updates: Vec<UpdRow>,
    version: u64,
    empty: bool,
}

struct IncUpd {
    id: String,
    status: String,
    at: String,
    body: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentT {
    page: String,
    back: String,
    name: String,
    kind: &'static str,
    status: String,
    status_label: String,
    window: Option<String>,
    components: Vec<String>,
    updates: Vec<IncUpd>,
}

fn window(m: &MaintView) -> String {
    let a = ts(m.scheduled_for).replace('T', " ").replace('Z', "");
    let b = ts(m.scheduled_until).replace('T', " ").replace('Z', "");
    let (d1, t1) = a.split_at(10);
    let (d2, t2) = b.split_at(10);
    if d1 == d2 {
        format!("{d1}{t1} – {} UTC", t2.trim())
    } else {
        format!("{a} – {b} UTC")
    }
}

fn human(t: i64) -> String {
    ts(t).replace('T', " ").replace('Z', " UTC")
}

impl Ctx<'_> {
    /// The page of one incident or maintenance (`/incidents/{id}`, its `shortlink`), or
    /// `None` when this audience has none by that id.
    pub fn incident_page(&self, id: &str) -> Option<String> {
        let (doc, kind, window) = match self.av.maintenances.iter().find(|m| m.id == id) {
            Some(m) => (
                self.maintenance(m),
                "Scheduled maintenance",
                Some(window(m)),
            ),
            None => {
                let i = self.av.incidents.iter().find(|i| i.i.id == id)?;
                (self.incident(i), "Incident", None)
            }
        };
        let cancelled = self
            .av
            .maintenances
            .iter()
            .any(|m| m.id == id && m.status == MaintStatus::Cancelled);
        let t = IncidentT {
            page: self.av.view.page_name.clone(),
            back: self.page_url.clone(),
            status_label: if cancelled {
                "cancelled".into()
            } else {
                doc.status.replace('_', " ")
            },
            status: doc.status.clone(),
            name: doc.name.clone(),
            kind,
            window,
            components: doc.components.iter().map(|c| c.name.clone()).collect(),
            updates: doc
                .incident_updates
                .iter()
                .map(|u| IncUpd {
                    id: u.id.clone(),
                    status: u.status.replace('_', " "),
                    at: u.display_at.replace('T', " ").replace(".000Z", " UTC"),
                    body: u.body.clone(),
                })
                .collect(),
        };
        Some(
            t.render()
                .unwrap_or_else(|e| format!("<!doctype html><title>error</title><p>template: {e}")),
        )
    }

    fn html(&self) -> String {
        let v = self.av.view;
        let regions = self
            .av
            .regions
            .iter()
            .map(|(r, cs)| RegionRow {
                name: r.name.clone(),
                status: r.status.name(),
                label: r.status.label(),
                detail: format!(
                    "{}/{} servers done{}{}",
                    r.done,
                    r.hosts,
                    if r.out > 0 {
                        format!(", {} in maintenance", r.out)
                    } else {
                        String::new()
                    },
                    if r.missing > 0 {
                        format!(", {} not back", r.missing)
                    } else {
                        String::new()
                    }
                ),
                clusters: cs
                    .iter()
                    .map(|c| ClusterRow {
                        id: c.id.clone(),
                        kind: c.kind.to_string(),
                        status: c.status.name(),
                        label: c.status.label(),
                        detail: match &c.excluded {
                            Some(x) => format!("{} members. {}", c.members, x.text(&c.id)),
                            None => format!(
                                "{} members{}",
                                c.members,
                                if c.out > 0 {
                                    format!(", {} out", c.out)
                                } else {
                                    String::new()
                                }
                            ),
                        },
                    })
                    .collect(),
            })
            .collect();
        let row = |m: &MaintView| MaintRow {
            id: m.id.clone(),
            name: m.name.clone(),
            status: m.status.name(),
            label: m.status.label(),
            window: window(m),
            facts: [
                m.announced_at.map(|t| format!("announced {}", human(t))),
                m.started_at.map(|t| format!("started {}", human(t))),
                m.completed_at.map(|t| {
                    format!(
                        "{} {}",
                        if m.status == MaintStatus::Cancelled {
                            "cancelled"
                        } else {
                            "completed"
                        },
                        human(t)
                    )
                }),
            ]
            .into_iter()
            .flatten()
            .collect(),
            body: m.body.clone(),
        };
        let pick = |st: &[MaintStatus]| -> Vec<MaintRow> {
            self.av
                .maintenances
                .iter()
                .filter(|m| st.contains(&m.status))
                .map(|m| row(m))
                .collect()
        };
        let overall = self.av.overall();
        let t = PageT {
            title: v.page_name.clone(),
            tenant: self.av.tenant_name().map(str::to_string),
            overall: overall.name(),
            overall_label: indicator(overall).1,
            run_line: if v.run_id.is_empty() {
                String::new()
            } else {
                format!(
                    "Maintenance {} · run {} · {} · as of {}",
                    v.maintenance,
                    v.run_id,
                    v.state,
                    human(v.now)
                )
            },
            progress: format!("{}/{} servers done", v.hosts_done, v.hosts_total),
            regions,
            active: pick(&[MaintStatus::InProgress]),
            upcoming: pick(&[MaintStatus::Scheduled]),
            past: pick(&[MaintStatus::Completed, MaintStatus::Cancelled]),
            updates: self
                .av
                .updates
                .iter()
                .map(|u| UpdRow {
                    id: u.u.id.clone(),
                    at: human(u.u.at),
                    kind: u.u.kind.clone(),
                    title: u.u.title.clone(),
                    body: u.body.clone(),
                })
                .collect(),
            version: self.version,
            empty: v.run_id.is_empty(),
        };
        t.render()
            .unwrap_or_else(|e| format!("<!doctype html><title>error</title><p>template: {e}"))
    }

    // ------------------------------------------------------------ Atom

    /// The feed's id: unique per deployment (the page id) and audience.
    fn feed_id(&self) -> String {
        let pid = page_id(self.av.view);
        match &self.av.audience {
            Audience::Public => format!("urn:rollcall:{pid}:feed:public"),
            Audience::Tenant(t) => format!("urn:rollcall:{pid}:feed:tenant:{t}"),
            Audience::Admin => format!("urn:rollcall:{pid}:feed:admin"),
        }
    }

    fn feed_title(&self) -> String {
        let v = self.av.view;
        match self.av.tenant_name() {
            Some(t) => format!("{} status — {}", v.page_name, t),
            None => format!("{} status", v.page_name),
        }
    }

    /// The Atom feed served at `self_path` (`feed.atom`, `history.atom`).
    fn atom(&self, self_path: &str) -> String {
        use atom_syndication::{
            CategoryBuilder, EntryBuilder, FeedBuilder, LinkBuilder, PersonBuilder, Text,
        };
        let v = self.av.view;
        let dt = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .unwrap_or_default()
                .fixed_offset()
        };
        let entries = self
            .av
            .updates
            .iter()
            .map(|u| {
                EntryBuilder::default()
                    .id(format!("urn:rollcall:update:{}", u.u.id))
                    .title(Text::plain(u.u.title.clone()))
                    .updated(dt(u.u.at))
                    .published(Some(dt(u.u.at)))
                    .summary(Some(Text::plain(u.body.clone())))
                    .links(vec![
                        LinkBuilder::default()
                            .href(format!("{}#u-{}", self.page_url, u.u.id))
                            .rel("alternate".to_string())
                            .mime_type(Some("text/html".to_string()))
                            .build(),
                    ])
                    .categories(vec![
                        CategoryBuilder::default().term(u.u.kind.clone()).build(),
                    ])
                    .build()
            })
            .collect::<Vec<_>>();
        let feed = FeedBuilder::default()
            .id(self.feed_id())
            .title(Text::plain(self.feed_title()))
            // RFC 4287 §4.1.1: a feed without an author on every entry needs one
            .authors(vec![
                PersonBuilder::default()
                    .name(v.page_name.clone())
                    .uri(Some(self.page_url.clone()))
                    .build(),
            ])
            .updated(dt(v.updates.first().map(|u| u.at).unwrap_or(v.updated_at)))
            .links(vec![
                LinkBuilder::default()
                    .href(format!("{}{self_path}", self.page_url))
                    .rel("self".to_string())
                    .mime_type(Some("application/atom+xml".to_string()))
                    .build(),
                LinkBuilder::default()
                    .href(self.page_url.clone())
                    .rel("alternate".to_string())
                    .mime_type(Some("text/html".to_string()))
                    .build(),
            ])
            .entries(entries)
            .build();
        feed.to_string()
    }

    /// RSS 2.0 of the same entries as the Atom feed (guid: the same stable ids).
    fn rss(&self) -> String {
        let v = self.av.view;
        let date = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .unwrap_or_default()
                .to_rfc2822()
        };
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:atom=\"http://www.w3.org/2005/Atom\"><channel>",
        );
        out.push_str(&format!(
            "<title>{}</title><link>{}</link><description>{}</description><atom:link href=\"{}history.rss\" rel=\"self\" type=\"application/rss+xml\"/><lastBuildDate>{}</lastBuildDate>",
            xml_escape(&self.feed_title()),
            xml_escape(&self.page_url),
            xml_escape(&format!("Maintenance and incident history of {}", v.page_name)),
            xml_escape(&self.page_url),
            date(v.updates.first().map(|u| u.at).unwrap_or(v.updated_at)),
        ));
        for u in &self.av.updates {
            out.push_str(&format!(
                "<item><title>{}</title><description>{}</description><pubDate>{}</pubDate><link>{}#u-{}</link><guid isPermaLink=\"false\">urn:rollcall:update:{}</guid><category>{}</category></item>",
                xml_escape(&u.u.title),
                xml_escape(&u.body),
                date(u.u.at),
                xml_escape(&self.page_url),
                xml_escape(&u.u.id),
                xml_escape(&u.u.id),
                xml_escape(&u.u.kind),
            ));
        }
        out.push_str("</channel></rss>\n");
        out
    }

    // ------------------------------------------------------------ iCalendar

    fn ics(&self) -> String {
        use icalendar::{Alarm, Calendar, Component, Event, EventLike, EventStatus, Trigger};
        let v = self.av.view;
        let dt = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        let mut cal = Calendar::empty();
        cal.append_property(("VERSION", "2.0"));
        cal.append_property(("PRODID", "-//rollcall//status page//EN"));
        cal.append_property(("CALSCALE", "GREGORIAN"));
        cal.append_property(("METHOD", "PUBLISH"));
        let name = match self.av.tenant_name() {
            Some(t) => format!("{} maintenance — {}", v.page_name, t),
            None => format!("{} maintenance", v.page_name),
        };
        cal.name(&name);
        cal.append_property(("REFRESH-INTERVAL;VALUE=DURATION", "PT15M"));
        for m in &self.av.maintenances {
            let mut e = Event::new();
            e.uid(&format!("{}@rollcall", m.id))
                .timestamp(dt(m.updated_at))
                .starts(dt(m.scheduled_for))
                .ends(dt(m.scheduled_until))
                .summary(&m.name)
                .description(&m.body)
                .url(&format!("{}#m-{}", self.page_url, m.id))
                .sequence(m.sequence)
                .last_modified(dt(m.updated_at))
                .add_property("CATEGORIES", "MAINTENANCE")
                .status(if m.status == MaintStatus::Cancelled {
                    EventStatus::Cancelled
                } else {
                    EventStatus::Confirmed
                });
            if m.status != MaintStatus::Cancelled {
                // a reminder 1 hour before, with a stable UID (RFC 9074); the crate
                // would add a random one (and a DTSTAMP, removed below)
                let mut a = Alarm::display(
                    &format!("{} starts in 1 hour", m.name),
                    Trigger::before_start(chrono::Duration::hours(1)),
                );
                a.add_property("UID", format!("{}-reminder@rollcall", m.id));
                a.remove_property("TRIGGER");
                a.add_property("TRIGGER", "-PT1H");
                e.alarm(a);
            }
            cal.push(e.done());
        }
        strip_alarm_dtstamp(&cal.done().to_string())
    }
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// icalendar writes a DTSTAMP (the wall clock) into every component; VALARM has none in
/// RFC 5545, and a changing one would make every render differ.
fn strip_alarm_dtstamp(ics: &str) -> String {
    let mut out = String::with_capacity(ics.len());
    let mut in_alarm = false;
    for line in ics.split_inclusive("\r\n") {
        if line == "BEGIN:VALARM\r\n" {
            in_alarm = true;
        } else if line == "END:VALARM\r\n" {
            in_alarm = false;
        } else if in_alarm && line.starts_with("DTSTAMP:") {
            continue;
        }
        out.push_str(line);
    }
    out
}
