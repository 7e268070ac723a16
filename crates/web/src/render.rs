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
            updated_at: ts(v.updated_at),
        }
    }

    fn components(&self) -> Vec<SpComponent> {
        let v = self.av.view;
        let pid = page_id(v);
        let mut out = Vec::new();
        let mut pos = 1;
        for (r, cs) in &self.av.regions {
            let gid = format!("region-{}", r.name);
            out.push(SpComponent {
                id: gid.clone(),
                name: format!("Region {}", r.name),
                status: r.status.name().into(),
                created_at: ts(v.now.min(r.updated_at.max(0))),
                updated_at: ts(r.updated_at),
                position: pos,
                description: Some(format!("{} servers in {}", r.hosts, r.name)),
                showcase: true,
                start_date: None,
                group_id: None,
                page_id: pid.clone(),
                group: true,
                only_show_if_degraded: false,
                components: Some(cs.iter().map(|c| format!("cluster-{}", c.id)).collect()),
            });
            pos += 1;
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
            id: format!("cluster-{}", c.id),
            name: c.id.clone(),
            status: c.status.name().into(),
            created_at: ts(c.updated_at),
            updated_at: ts(c.updated_at),
            position: pos,
            description: Some(format!(
                "{} cluster, {} members ({} out)",
                c.kind, c.members, c.out
            )),
            showcase: true,
            start_date: None,
            group_id: Some(gid.to_string()),
            page_id: page_id(v),
            group: false,
            only_show_if_degraded: false,
            components: None,
        }
    }

    fn region_components(&self, region: Option<&str>) -> Vec<SpComponent> {
        self.components()
            .into_iter()
            .filter(|c| match region {
                Some(r) => {
                    c.id == format!("region-{r}")
                        || c.group_id.as_deref() == Some(&format!("region-{r}"))
                }
                None => false,
            })
            .collect()
    }

    fn maintenance(&self, m: &MaintView) -> SpIncident {
        let v = self.av.view;
        let comps = self.region_components(m.region.as_deref());
        let affected: Vec<SpAffected> = comps
            .iter()
            .map(|c| SpAffected {
                code: c.id.clone(),
                name: c.name.clone(),
                old_status: "operational".into(),
                new_status: c.status.clone(),
            })
            .collect();
        let mut updates = Vec::new();
        if m.source == "engine" {
            for u in self.av.updates.iter().rev() {
                if u.u.region != m.region {
                    continue;
                }
                let status = match u.u.kind.as_str() {
                    "scheduled" => "scheduled",
                    "started" => "in_progress",
                    "completed" => "completed",
                    _ => continue,
                };
                updates.push(SpUpdate {
                    id: u.u.id.clone(),
                    status: status.into(),
                    body: u.body.clone(),
                    incident_id: m.id.clone(),
                    created_at: ts(u.u.at),
                    updated_at: ts(u.u.at),
                    display_at: ts(u.u.at),
                    affected_components: affected.clone(),
                });
            }
        } else {
            updates.push(SpUpdate {
                id: format!("{}.0", m.id),
                status: "scheduled".into(),
                body: m.body.clone(),
                incident_id: m.id.clone(),
                created_at: ts(m.created_at),
                updated_at: ts(m.updated_at),
                display_at: ts(m.created_at),
                affected_components: affected.clone(),
            });
        }
        updates.reverse();
        SpIncident {
            id: m.id.clone(),
            name: m.name.clone(),
            status: m.status.name().into(),
            impact: "maintenance".into(),
            shortlink: self.page_url.clone(),
            created_at: ts(m.created_at),
            updated_at: ts(m.updated_at),
            monitoring_at: None,
            resolved_at: m.completed_at.map(ts),
            started_at: m.started_at.map(ts),
            page_id: page_id(v),
            incident_updates: updates,
            components: comps,
            scheduled_for: Some(ts(m.scheduled_for)),
            scheduled_until: Some(ts(m.scheduled_until)),
        }
    }

    fn incident(&self, i: &AudIncident) -> SpIncident {
        let v = self.av.view;
        let inc = i.i;
        let comps: Vec<SpComponent> = self
            .region_components(Some(&inc.region))
            .into_iter()
            .filter(|c| {
                c.id == format!("region-{}", inc.region)
                    || (i.full && inc.clusters.iter().any(|x| c.id == format!("cluster-{x}")))
            })
            .collect();
        let updates: Vec<SpUpdate> = inc
            .updates
            .iter()
            .rev()
            .filter_map(|uid| self.av.updates.iter().find(|u| &u.u.id == uid))
            .map(|u| SpUpdate {
                id: u.u.id.clone(),
                status: if u.u.kind == "host_missing" {
                    "investigating".into()
                } else {
                    "resolved".into()
                },
                body: u.body.clone(),
                incident_id: inc.id.clone(),
                created_at: ts(u.u.at),
                updated_at: ts(u.u.at),
                display_at: ts(u.u.at),
                affected_components: Vec::new(),
            })
            .collect();
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
            shortlink: self.page_url.clone(),
            created_at: ts(inc.created_at),
            updated_at: ts(inc.resolved_at.unwrap_or(inc.created_at)),
            monitoring_at: None,
            resolved_at: inc.resolved_at.map(ts),
            started_at: Some(ts(inc.created_at)),
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
            atom: Bytes::from(self.atom()),
            ics: Bytes::from(self.ics()),
        }
    }
}

pub fn page_id(v: &View) -> String {
    if v.run_id.is_empty() {
        "rollcall".into()
    } else {
        v.run_id.clone()
    }
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
                        detail: format!(
                            "{} members{}",
                            c.members,
                            if c.out > 0 {
                                format!(", {} out", c.out)
                            } else {
                                String::new()
                            }
                        ),
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

    fn atom(&self) -> String {
        use atom_syndication::{CategoryBuilder, EntryBuilder, FeedBuilder, LinkBuilder, Text};
        let v = self.av.view;
        let dt = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .unwrap_or_default()
                .fixed_offset()
        };
        let feed_id = match &self.av.audience {
            Audience::Public => "urn:rollcall:feed:public".to_string(),
            Audience::Tenant(t) => format!("urn:rollcall:feed:tenant:{t}"),
            Audience::Admin => "urn:rollcall:feed:admin".to_string(),
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
            .id(feed_id)
            .title(Text::plain(match self.av.tenant_name() {
                Some(t) => format!("{} status — {}", v.page_name, t),
                None => format!("{} status", v.page_name),
            }))
            .updated(dt(v.updates.first().map(|u| u.at).unwrap_or(v.updated_at)))
            .links(vec![
                LinkBuilder::default()
                    .href(format!("{}feed.atom", self.page_url))
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
