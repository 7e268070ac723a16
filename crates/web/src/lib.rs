//! rollcall's status page, JSON API, feeds and metrics, driven by the run journal.
//!
//! A server follows one run in the store (the latest, or a given one): a poller reads
//! new journal records every `poll` interval, folds them into a [`model::Tracker`], and
//! when anything changed (journal grew, admin data changed, run status changed) builds
//! a new [`model::View`] and pre-renders the public outputs ([`render::Rendered`]):
//! requests for public documents only clone bytes. Tenant outputs are rendered on first
//! use per snapshot and cached.
//!
//! Privacy: see [`model::View::audience`]. Public endpoints show regions and clusters of
//! no tenant; a tenant link (`/t/<token>/`) adds that tenant's clusters and updates;
//! admin endpoints (bearer token) see everything. Tokens are stored as SHA-256 hashes.

// Request helpers return the finished error `Response` (built once, on a failed request)
// so handlers can `return` it; boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod admin_body;
pub mod db;
mod error;
pub mod metrics;
pub mod model;
pub mod render;
mod session;
pub mod timeline;
mod unsubscribe;

use admin_body::{MaintenancePatch, NewMaintenance, NewNotice};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, patch, post};
use db::{TokenKind, TokenRow, WebDb};
pub use error::WebError;
use model::{AdminMaintenance, AdminNotice, Audience, Tracker, View};
use render::{ApiError, Ctx, Rendered};
use rollcall_core::Fleet;
use rollcall_runtime::{Clock, StoredRun};
use rollcall_store::{RunRow, RunStatus, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use utoipa::ToSchema;

/// An update created through the admin API, handed to an [`UpdateSink`] after it is
/// stored (the notify crate delivers it to subscribers; one type for both).
pub use rollcall_notify::admin::AdminUpdate as Update;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where admin-created updates go after they are stored.
pub trait UpdateSink: Send + Sync + 'static {
    fn publish<'a>(&'a self, update: &'a Update) -> BoxFuture<'a, Result<(), String>>;
}

/// Publishes nothing (no notify crate wired).
pub struct NoSink;
impl UpdateSink for NoSink {
    fn publish<'a>(&'a self, _: &'a Update) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

pub struct ServeOptions {
    /// The run store (SQLite file).
    pub db: PathBuf,
    pub listen: SocketAddr,
    /// Follow this run; `None`: the latest run (switching when a newer one starts).
    pub run: Option<String>,
    /// Absolute base URL used in feeds (default `http://<listen address>`).
    pub public_url: Option<String>,
    /// `page.id` of the Statuspage documents and the feeds' ids; `None`: the id drawn
    /// once for this store (kept in `web_meta`), stable across runs.
    pub page_id: Option<String>,
    /// How often the journal is polled.
    pub poll: Duration,
    pub sink: Arc<dyn UpdateSink>,
}

impl ServeOptions {
    pub fn new(db: impl Into<PathBuf>, listen: SocketAddr) -> ServeOptions {
        ServeOptions {
            db: db.into(),
            listen,
            run: None,
            public_url: None,
            page_id: None,
            poll: Duration::from_millis(250),
            sink: Arc::new(NoSink),
        }
    }
}

/// One immutable state of the page.
pub struct Snapshot {
    pub version: u64,
    pub view: Arc<View>,
    pub fleet: Option<Arc<Fleet>>,
    public: Arc<Rendered>,
    metrics: Bytes,
    cache: Mutex<HashMap<String, Arc<Rendered>>>,
}

struct Current {
    run: RunRow,
    tracker: Tracker,
    clock: Option<Clock>,
    rev: i64,
    notices: Vec<AdminNotice>,
    maints: Vec<AdminMaintenance>,
    next_boundary: Option<i64>,
}

pub struct Shared {
    store: Store,
    db: WebDb,
    run_sel: Option<String>,
    base_url: String,
    page_id: String,
    sink: Arc<dyn UpdateSink>,
    snap: RwLock<Arc<Snapshot>>,
    tokens: RwLock<Arc<HashMap<String, TokenRow>>>,
    current: tokio::sync::Mutex<(Option<Current>, i64)>,
}

type AppState = Arc<Shared>;

fn wall_s() -> i64 {
    rollcall_runtime::wall_ms() / 1000
}

impl Shared {
    /// The fleet of the run being shown.
    pub fn fleet(&self) -> Option<Arc<Fleet>> {
        self.snapshot().fleet.clone()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snap.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, mut view: View, fleet: Option<Arc<Fleet>>) {
        let version = self.snapshot().version + 1;
        view.page_id = self.page_id.clone();
        let view = Arc::new(view);
        let av = view.audience(&Audience::Public);
        let public = Arc::new(
            Ctx {
                av: &av,
                version,
                page_url: format!("{}/", self.base_url),
            }
            .render(),
        );
        let metrics = Bytes::from(metrics::encode(&view, version));
        drop(av);
        let snap = Snapshot {
            version,
            view,
            fleet,
            public,
            metrics,
            cache: Mutex::new(HashMap::new()),
        };
        *self.snap.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snap);
    }

    async fn reload_tokens(&self) -> Result<(), WebError> {
        let rows = self.db.tokens().await?;
        let map: HashMap<String, TokenRow> =
            rows.into_iter().map(|r| (r.hash.clone(), r)).collect();
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        Ok(())
    }

    fn token(&self, secret: &str) -> Option<TokenRow> {
        let h = db::sha256_hex(secret);
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&h)
            .cloned()
    }

    /// Look at the store; rebuild and publish the view if anything changed.
    pub async fn refresh(&self) -> Result<bool, WebError> {
        let mut guard = self.current.lock().await;
        let (cur, last_rev_tokens) = &mut *guard;
        let rev = self.db.rev().await?;
        if rev != *last_rev_tokens {
            self.reload_tokens().await?;
            *last_rev_tokens = rev;
        }
        let row = match &self.run_sel {
            Some(id) => self.store.run(id).await?,
            None => self.store.latest_run().await?,
        };
        let Some(row) = row else {
            if cur.is_some() || self.snapshot().version == 0 {
                *cur = None;
                self.publish(View::empty(wall_s()), None);
                return Ok(true);
            }
            return Ok(false);
        };
        let mut changed = false;
        if cur.as_ref().is_none_or(|c| c.run.id != row.id) {
            *cur = Some(load_run(&self.db, &row).await?);
            changed = true;
        }
        let c = cur.as_mut().expect("set above");
        // (not `updated_at`: lease renewals touch it several times a second)
        if c.run.status != row.status {
            c.tracker.run.status = row.status;
            c.run = row.clone();
            changed = true;
        }
        let recs = self
            .store
            .journal_since(&row.id, c.tracker.last_seq)
            .await?;
        if !recs.is_empty() {
            let outs = rollcall_runtime::from_records(&row.id, &recs)?;
            for ((seq, _), o) in recs.iter().zip(&outs) {
                c.tracker.apply(*seq, o);
            }
            changed = true;
        }
        if rev != c.rev {
            c.notices = self.db.notices(&row.id).await?;
            c.maints = self.db.maintenances(&row.id).await?;
            c.rev = rev;
            changed = true;
        }
        let now = run_now(c);
        if c.next_boundary.is_some_and(|b| now >= b) {
            changed = true;
        }
        if !changed {
            return Ok(false);
        }
        let ical = self.db.ical().await?;
        let mut view = View::build(&c.tracker, now, &c.notices, &c.maints, &ical);
        let changes = view.ical_changes(&ical);
        if !changes.is_empty() {
            self.db.set_ical(&changes).await?;
            for (uid, ev) in &changes {
                if let Some(m) = view.maintenances.iter_mut().find(|m| &m.id == uid) {
                    m.sequence = ev.sequence;
                }
            }
        }
        c.next_boundary = c
            .maints
            .iter()
            .flat_map(|m| [m.starts_at, m.ends_at])
            .filter(|&t| t > now)
            .min();
        let fleet = c.tracker.fleet.clone();
        self.publish(view, Some(fleet));
        Ok(true)
    }

    fn rendered(&self, audience: &Audience, key: &str, page_url: String) -> Arc<Rendered> {
        let snap = self.snapshot();
        if let Some(r) = snap
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return r.clone();
        }
        let av = snap.view.audience(audience);
        let r = Arc::new(
            Ctx {
                av: &av,
                version: snap.version,
                page_url,
            }
            .render(),
        );
        snap.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), r.clone());
        r
    }
}

/// The run clock now: the scaled clock while the run is live, else the journal's last
/// instant (a finished run's page does not drift).
fn run_now(c: &Current) -> i64 {
    let last = c.tracker.last_at.max(c.tracker.plan.announce_at);
    match (&c.clock, c.run.status) {
        (Some(clock), RunStatus::Running) => clock.now().max(last),
        _ => last,
    }
}

async fn load_run(db: &WebDb, row: &RunRow) -> Result<Current, WebError> {
    // the fleet as stored with the run (text, imports, start, overrides), never the files
    // on disk
    let run = StoredRun::load(row.clone()).map_err(|error| WebError::Fleet {
        run: row.id.clone(),
        error,
    })?;
    let (fleet, clock) = (run.fleet, Some(run.params.clock));
    let plan = rollcall_core::plan::plan(&fleet);
    let tracker = Tracker::new(
        model::RunInfo {
            id: row.id.clone(),
            fleet_name: row.fleet_name.clone(),
            maintenance: row.maintenance.clone(),
            status: row.status,
        },
        fleet,
        plan,
    );
    Ok(Current {
        run: row.clone(),
        tracker,
        clock,
        rev: db.rev().await? - 1,
        notices: Vec::new(),
        maints: Vec::new(),
        next_boundary: None,
    })
}

// ------------------------------------------------------------------ routes

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Public,
    /// Under `/t/{token}/`: the tenant link.
    Tenant,
    /// `Authorization: Bearer <admin token>`.
    Admin,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: String,
    pub access: Access,
    pub content_type: &'static str,
    pub summary: &'static str,
    /// Response schema (components/schemas) for JSON routes.
    pub schema: Option<&'static str>,
    /// Request body schema.
    pub request: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
enum Out {
    Html,
    Status,
    Summary,
    Components,
    Incidents,
    Unresolved,
    Maintenances,
    Upcoming,
    Active,
    Updates,
    Live,
    Atom,
    HistoryAtom,
    Rss,
    Ics,
}

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const ATOM: &str = "application/atom+xml";
const ICS: &str = "text/calendar; charset=utf-8";
const RSS: &str = "application/rss+xml";
const METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// (path suffix, output, content type, schema, summary): served publicly and under
/// each tenant link.
const OUTPUTS: &[(&str, Out, &str, Option<&str>, &str)] = &[
    ("", Out::Html, HTML, None, "The status page (HTML)"),
    (
        "api/v2/status.json",
        Out::Status,
        JSON,
        Some("SpStatusDoc"),
        "Overall status (Statuspage-compatible)",
    ),
    (
        "api/v2/summary.json",
        Out::Summary,
        JSON,
        Some("SpSummary"),
        "Components, unresolved incidents, upcoming and active maintenances (Statuspage-compatible)",
    ),
    (
        "api/v2/components.json",
        Out::Components,
        JSON,
        Some("SpComponents"),
        "Components: regions (groups) and clusters",
    ),
    (
        "api/v2/incidents.json",
        Out::Incidents,
        JSON,
        Some("SpIncidents"),
        "Incidents: servers that did not come back",
    ),
    (
        "api/v2/incidents/unresolved.json",
        Out::Unresolved,
        JSON,
        Some("SpIncidents"),
        "Unresolved incidents",
    ),
    (
        "api/v2/scheduled-maintenances.json",
        Out::Maintenances,
        JSON,
        Some("SpMaintenances"),
        "All maintenances",
    ),
    (
        "api/v2/scheduled-maintenances/upcoming.json",
        Out::Upcoming,
        JSON,
        Some("SpMaintenances"),
        "Maintenances not started yet",
    ),
    (
        "api/v2/scheduled-maintenances/active.json",
        Out::Active,
        JSON,
        Some("SpMaintenances"),
        "Maintenances in progress",
    ),
    (
        "api/updates.json",
        Out::Updates,
        JSON,
        Some("ApiUpdates"),
        "The timeline of updates, newest first",
    ),
    (
        "api/live.json",
        Out::Live,
        JSON,
        Some("ApiLive"),
        "Version of the page (the page polls it to update itself)",
    ),
    (
        "feed.atom",
        Out::Atom,
        ATOM,
        None,
        "Atom feed: one entry per update",
    ),
    (
        "history.atom",
        Out::HistoryAtom,
        ATOM,
        None,
        "Atom feed of the incident and maintenance history (as Statuspage's /history.atom)",
    ),
    (
        "history.rss",
        Out::Rss,
        RSS,
        None,
        "RSS 2.0 feed of the incident and maintenance history (as Statuspage's /history.rss)",
    ),
    (
        "maintenances.ics",
        Out::Ics,
        ICS,
        None,
        "iCalendar feed of maintenance windows",
    ),
];

fn pick(r: &Rendered, o: Out) -> (&'static str, Bytes) {
    match o {
        Out::Html => (HTML, r.html.clone()),
        Out::Status => (JSON, r.status.clone()),
        Out::Summary => (JSON, r.summary.clone()),
        Out::Components => (JSON, r.components.clone()),
        Out::Incidents => (JSON, r.incidents.clone()),
        Out::Unresolved => (JSON, r.incidents_unresolved.clone()),
        Out::Maintenances => (JSON, r.maintenances.clone()),
        Out::Upcoming => (JSON, r.upcoming.clone()),
        Out::Active => (JSON, r.active.clone()),
        Out::Updates => (JSON, r.updates.clone()),
        Out::Live => (JSON, r.live.clone()),
        Out::Atom => (ATOM, r.atom.clone()),
        Out::HistoryAtom => (ATOM, r.history_atom.clone()),
        Out::Rss => (RSS, r.rss.clone()),
        Out::Ics => (ICS, r.ics.clone()),
    }
}

fn bytes_response(ct: &'static str, body: Bytes) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // tenant links are secrets: never sent on as a Referer, never indexed
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if ct == HTML {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        );
        h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    }
    res
}

/// A public read-only answer: any origin may read it (`Access-Control-Allow-Origin: *`;
/// never on tenant links, admin routes or the admin API).
fn public(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

fn error(status: StatusCode, msg: impl Into<String>, field: Option<&str>) -> Response {
    let body = serde_json::to_vec(&ApiError {
        error: msg.into(),
        field: field.map(str::to_string),
    })
    .unwrap_or_default();
    let mut res = (status, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    res
}

struct Builder {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl Builder {
    fn add(mut self, spec: RouteSpec, mr: MethodRouter<AppState>) -> Builder {
        self.router = self.router.route(&spec.path, mr);
        self.specs.push(spec);
        self
    }
}

fn spec(
    method: &'static str,
    path: impl Into<String>,
    access: Access,
    content_type: &'static str,
    schema: Option<&'static str>,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path: path.into(),
        access,
        content_type,
        summary,
        schema,
        request: None,
    }
}

fn with_get<H, T>(h: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    get(h)
}

/// The router and the table of every route it serves (the isolation test walks it).
fn build() -> Builder {
    let mut b = Builder {
        router: Router::new(),
        specs: Vec::new(),
    };
    for &(suffix, out, ct, schema, summary) in OUTPUTS {
        b = b.add(
            spec(
                "GET",
                format!("/{suffix}"),
                Access::Public,
                ct,
                schema,
                summary,
            ),
            with_get(move |State(s): State<AppState>| async move {
                let (ct, body) = pick(&s.snapshot().public, out);
                public(bytes_response(ct, body))
            }),
        );
        b = b.add(
            spec(
                "GET",
                format!("/t/{{token}}/{suffix}"),
                Access::Tenant,
                ct,
                schema,
                summary,
            ),
            with_get(
                move |State(s): State<AppState>, UrlPath(token): UrlPath<String>| async move {
                    match s.token(&token) {
                        Some(TokenRow {
                            kind: TokenKind::Tenant,
                            tenant: Some(t),
                            ..
                        }) => {
                            let r = s.rendered(
                                &Audience::Tenant(t),
                                &token,
                                format!("{}/t/{token}/", s.base_url),
                            );
                            let (ct, body) = pick(&r, out);
                            bytes_response(ct, body)
                        }
                        _ => error(StatusCode::NOT_FOUND, "unknown or revoked link", None),
                    }
                },
            ),
        );
    }
    b = incident_routes(b);
    b = b.add(
        spec(
            "GET",
            "/t/{token}",
            Access::Tenant,
            HTML,
            None,
            "Redirects to the tenant page (with its trailing slash)",
        ),
        get(|UrlPath(token): UrlPath<String>| async move {
            let mut res = StatusCode::PERMANENT_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/t/{token}/")) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            res
        }),
    );
    b = b.add(
        spec(
            "GET",
            "/metrics",
            Access::Public,
            METRICS,
            None,
            "Prometheus / OpenMetrics metrics (aggregates only)",
        ),
        get(|State(s): State<AppState>| async move {
            let snap = s.snapshot();
            // deliveries change without the journal growing: read them per request
            match rollcall_notify::summary(&s.store, &snap.view.run_id).await {
                Ok(d) => public(bytes_response(
                    METRICS,
                    Bytes::from(metrics::with_deliveries(&snap.metrics, &d)),
                )),
                // fail closed: no half-true metrics page when the outbox cannot be read
                Err(e) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("notice deliveries cannot be read: {e}"),
                    None,
                ),
            }
        }),
    );
    b = b.add(
        spec(
            "GET",
            "/openapi.json",
            Access::Public,
            JSON,
            None,
            "This API's OpenAPI 3.1 document",
        ),
        get(|| async { public(bytes_response(JSON, Bytes::from(openapi_json()))) }),
    );
    b = b.add(
        spec(
            "GET",
            "/api/admin/summary.json",
            Access::Admin,
            JSON,
            Some("SpSummary"),
            "Everything, all tenants' clusters included",
        ),
        get(|State(s): State<AppState>, h: HeaderMap| async move {
            if let Err(e) = admin(&s, &h) {
                return e.into_response();
            }
            let r = s.rendered(&Audience::Admin, "\0admin", format!("{}/", s.base_url));
            bytes_response(JSON, r.summary.clone())
        }),
    );
    b = b.add(
        spec(
            "GET",
            "/api/admin/notify.json",
            Access::Admin,
            JSON,
            None,
            "Notice deliveries: counts by kind and status, the undelivered, regions held by a subscriber their announcement does not reach (escalated or released), and the operator's decisions",
        ),
        get(|State(s): State<AppState>, h: HeaderMap| async move {
            if let Err(e) = admin(&s, &h) {
                return e.into_response();
            }
            let snap = s.snapshot();
            match rollcall_notify::summary(&s.store, &snap.view.run_id).await {
                Ok(d) => match serde_json::to_vec(&d) {
                    Ok(v) => bytes_response(JSON, Bytes::from(v)),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
                },
                Err(e) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("notice deliveries cannot be read: {e}"),
                    None,
                ),
            }
        }),
    );
    b = b.add(
        spec(
            "GET",
            "/api/admin/updates.json",
            Access::Admin,
            JSON,
            Some("ApiUpdates"),
            "Every update with full text",
        ),
        get(|State(s): State<AppState>, h: HeaderMap| async move {
            if let Err(e) = admin(&s, &h) {
                return e.into_response();
            }
            let r = s.rendered(&Audience::Admin, "\0admin", format!("{}/", s.base_url));
            bytes_response(JSON, r.updates.clone())
        }),
    );
    b = b.add(
        spec(
            "GET",
            "/admin/",
            Access::Admin,
            HTML,
            None,
            "The operator's timeline of the run: planned and actual bars by region, cluster and host, risks, budgets in use, notifications (bearer token, or the session cookie `/admin/?token=…` sets)",
        ),
        get(admin_page),
    );
    b = b.add(
        spec(
            "GET",
            "/api/admin/timeline.json",
            Access::Admin,
            JSON,
            None,
            "The run's state as the admin timeline draws it: actual start and end per host, missing and failed hosts, cluster budgets in use, notifications",
        ),
        get(admin_timeline_json),
    );
    let mut sp = spec(
        "POST",
        "/api/admin/notices",
        Access::Admin,
        JSON,
        Some("AdminNoticeDoc"),
        "Create a notice (shown on the page and feeds, passed to the update sink)",
    );
    sp.request = Some("NewNotice");
    b = b.add(sp, post(create_notice));
    let mut sp = spec(
        "POST",
        "/api/admin/maintenances",
        Access::Admin,
        JSON,
        Some("AdminMaintenanceDoc"),
        "Create a maintenance window",
    );
    sp.request = Some("NewMaintenance");
    b = b.add(sp, post(create_maintenance));
    let mut sp = spec(
        "PATCH",
        "/api/admin/maintenances/{id}",
        Access::Admin,
        JSON,
        Some("AdminMaintenanceDoc"),
        "Reschedule, cancel or complete a maintenance (SEQUENCE goes up on reschedule and cancel)",
    );
    sp.request = Some("MaintenancePatch");
    b = b.add(sp, patch(patch_maintenance));
    b = b.add(
        spec(
            "GET",
            "/unsubscribe/{token}",
            Access::Public,
            HTML,
            None,
            "Unsubscribe link of a mail: a page with a confirm button (404 for an unknown token)",
        ),
        get(unsubscribe::confirm),
    );
    b.add(
        spec(
            "POST",
            "/unsubscribe/{token}",
            Access::Public,
            HTML,
            None,
            "Unsubscribe (the button, or an RFC 8058 one-click POST); idempotent",
        ),
        post(unsubscribe::unsubscribe),
    )
}

/// The page of one incident or maintenance for `audience`, or a 404.
fn incident_page(s: &Shared, audience: &Audience, page_url: String, id: &str) -> Response {
    let snap = s.snapshot();
    let av = snap.view.audience(audience);
    let ctx = Ctx {
        av: &av,
        version: snap.version,
        page_url,
    };
    match ctx.incident_page(id) {
        Some(html) => bytes_response(HTML, Bytes::from(html)),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no incident or maintenance {id}"),
            None,
        ),
    }
}

/// `/incidents/{id}`: each incident's and maintenance's own page (its `shortlink`),
/// public and under each tenant link.
fn incident_routes(b: Builder) -> Builder {
    let summary = "The page of one incident or maintenance (its shortlink)";
    let b = b.add(
        spec(
            "GET",
            "/incidents/{id}",
            Access::Public,
            HTML,
            None,
            summary,
        ),
        get(
            |State(s): State<AppState>, UrlPath(id): UrlPath<String>| async move {
                let url = format!("{}/", s.base_url);
                public(incident_page(&s, &Audience::Public, url, &id))
            },
        ),
    );
    b.add(
        spec("GET", "/t/{token}/incidents/{id}", Access::Tenant, HTML, None, summary),
        get(
            |State(s): State<AppState>, UrlPath((token, id)): UrlPath<(String, String)>| async move {
                match s.token(&token) {
                    Some(TokenRow {
                        kind: TokenKind::Tenant,
                        tenant: Some(t),
                        ..
                    }) => {
                        let url = format!("{}/t/{token}/", s.base_url);
                        incident_page(&s, &Audience::Tenant(t), url, &id)
                    }
                    _ => error(StatusCode::NOT_FOUND, "unknown or revoked link", None),
                }
            },
        ),
    )
}

/// Every route the server serves: method, path, who may call it.
pub fn route_table() -> Vec<RouteSpec> {
    build().specs
}

/// The admin views (`/admin/` and its data, read-only): the session cookie
/// `/admin/?token=…` sets, or the bearer token. Routes that change anything take only
/// the bearer token ([`admin`]), so a cookie a browser sends on its own never writes.
async fn admin_view(s: &Shared, h: &HeaderMap) -> Result<TokenRow, WebError> {
    match session::from_cookie(s, h).await? {
        Some(row) => Ok(row),
        None => admin(s, h),
    }
}

fn admin(s: &Shared, h: &HeaderMap) -> Result<TokenRow, WebError> {
    let Some(v) = h.get(header::AUTHORIZATION) else {
        return Err(WebError::Unauthorized(
            "missing admin token: send `Authorization: Bearer <token>` (create one with `rollcall token admin`)",
        ));
    };
    let v = v.to_str().unwrap_or("");
    let Some(tok) = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
    else {
        return Err(WebError::Unauthorized(
            "Authorization header must be `Bearer <token>`",
        ));
    };
    match s.token(tok.trim()) {
        Some(row) if row.kind == TokenKind::Admin => Ok(row),
        _ => Err(WebError::Unauthorized("invalid or revoked admin token")),
    }
}

// ------------------------------------------------------------------ admin API

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminNoticeDoc {
    pub id: String,
    pub at: String,
    pub title: String,
    pub body: String,
    pub region: Option<String>,
    pub tenant: Option<String>,
    /// Whether the update sink accepted it (`publish_error` says why not).
    pub published: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminMaintenanceDoc {
    pub id: String,
    pub title: String,
    pub body: String,
    pub region: Option<String>,
    pub tenant: Option<String>,
    pub starts_at: String,
    pub ends_at: String,
    pub state: String,
    pub sequence: u32,
    pub published: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_error: Option<String>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, WebError> {
    Ok(admin_body::parse_body(body)?)
}

fn current_run(s: &Shared) -> Result<(String, Arc<Fleet>, i64), WebError> {
    let snap = s.snapshot();
    match &snap.fleet {
        Some(f) if !snap.view.run_id.is_empty() => {
            Ok((snap.view.run_id.clone(), f.clone(), snap.view.now))
        }
        _ => Err(WebError::NoRun),
    }
}

fn created(status: StatusCode, v: &impl Serialize) -> Response {
    let mut res = (status, serde_json::to_vec(v).unwrap_or_default()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    res
}

async fn create_notice(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    new_notice(&s, &h, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn new_notice(s: &Shared, h: &HeaderMap, body: &Bytes) -> Result<Response, WebError> {
    admin(s, h)?;
    let n: NewNotice = parse_body(body)?;
    let (run, fleet, now) = current_run(s)?;
    let at = admin_body::check_notice(&n, &fleet, now)?;
    let id = db::random_id("n-")?;
    let notice = AdminNotice {
        id,
        at,
        title: n.title.trim().to_string(),
        body: n.body,
        region: n.region,
        tenant: n.tenant,
    };
    s.db.insert_notice(&run, &notice, rollcall_runtime::wall_ms())
        .await?;
    let _ = s.refresh().await;
    let update = Update {
        run,
        id: notice.id.clone(),
        kind: "notice".into(),
        at,
        title: notice.title.clone(),
        body: notice.body.clone(),
        region: notice.region.clone(),
        tenant: notice.tenant.clone(),
        starts_at: None,
        ends_at: None,
        sequence: None,
    };
    let published = s.sink.publish(&update).await;
    Ok(created(
        StatusCode::CREATED,
        &AdminNoticeDoc {
            id: notice.id,
            at: model::ts(at),
            title: notice.title,
            body: notice.body,
            region: notice.region,
            tenant: notice.tenant,
            published: published.is_ok(),
            publish_error: published.err(),
        },
    ))
}

fn maint_doc(m: &AdminMaintenance, published: Result<(), String>) -> AdminMaintenanceDoc {
    AdminMaintenanceDoc {
        id: m.id.clone(),
        title: m.title.clone(),
        body: m.body.clone(),
        region: m.region.clone(),
        tenant: m.tenant.clone(),
        starts_at: model::ts(m.starts_at),
        ends_at: model::ts(m.ends_at),
        state: m.state.clone(),
        sequence: m.sequence,
        published: published.is_ok(),
        publish_error: published.err(),
    }
}

fn maint_update(run: String, kind: &str, m: &AdminMaintenance, at: i64) -> Update {
    Update {
        run,
        id: m.id.clone(),
        kind: kind.into(),
        at,
        title: m.title.clone(),
        body: m.body.clone(),
        region: m.region.clone(),
        tenant: m.tenant.clone(),
        starts_at: Some(m.starts_at),
        ends_at: Some(m.ends_at),
        sequence: Some(m.sequence),
    }
}

async fn create_maintenance(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    new_maintenance(&s, &h, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn new_maintenance(s: &Shared, h: &HeaderMap, body: &Bytes) -> Result<Response, WebError> {
    admin(s, h)?;
    let n: NewMaintenance = parse_body(body)?;
    let (run, fleet, now) = current_run(s)?;
    let (starts_at, ends_at) = admin_body::check_maintenance(&n, &fleet)?;
    let id = db::random_id("m-")?;
    let m = AdminMaintenance {
        id,
        title: n.title.trim().to_string(),
        body: n.body,
        region: n.region,
        tenant: n.tenant,
        starts_at,
        ends_at,
        state: "scheduled".into(),
        sequence: 0,
        created_at: now,
        updated_at: now,
    };
    s.db.upsert_maintenance(&run, &m).await?;
    let _ = s.refresh().await;
    let published = s
        .sink
        .publish(&maint_update(run, "maintenance_scheduled", &m, now))
        .await;
    Ok(created(StatusCode::CREATED, &maint_doc(&m, published)))
}

async fn patch_maintenance(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    change_maintenance(&s, &id, &h, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn change_maintenance(
    s: &Shared,
    id: &str,
    h: &HeaderMap,
    body: &Bytes,
) -> Result<Response, WebError> {
    admin(s, h)?;
    let p: MaintenancePatch = parse_body(body)?;
    let (run, _fleet, now) = current_run(s)?;
    let list = s.db.maintenances(&run).await?;
    let Some(mut m) = list.into_iter().find(|m| m.id == id) else {
        return Err(WebError::NoMaintenance {
            id: id.to_string(),
            run,
        });
    };
    let old = admin_body::Schedule {
        title: m.title.clone(),
        body: m.body.clone(),
        starts_at: m.starts_at,
        ends_at: m.ends_at,
        state: m.state.clone(),
        sequence: m.sequence,
    };
    let (new, kind) = admin_body::apply_patch(&old, &p)?;
    m.title = new.title;
    m.body = new.body;
    m.starts_at = new.starts_at;
    m.ends_at = new.ends_at;
    m.state = new.state;
    m.sequence = new.sequence;
    m.updated_at = now.max(m.updated_at);
    s.db.upsert_maintenance(&run, &m).await?;
    let _ = s.refresh().await;
    let published = s.sink.publish(&maint_update(run, kind, &m, now)).await;
    Ok(created(StatusCode::OK, &maint_doc(&m, published)))
}

// ------------------------------------------------------------------ OpenAPI

/// The OpenAPI 3.1 document, generated from the route table and the response types.
pub fn openapi_json() -> String {
    use utoipa::openapi::path::{
        HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
    };
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::schema::ComponentsBuilder;
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{
        ContentBuilder, InfoBuilder, OpenApiBuilder, PathsBuilder, Ref, Required, ResponseBuilder,
    };
    let mut paths = PathsBuilder::new();
    let mut by_path: Vec<(String, Vec<RouteSpec>)> = Vec::new();
    for s in route_table() {
        match by_path.iter_mut().find(|(p, _)| *p == s.path) {
            Some((_, v)) => v.push(s),
            None => by_path.push((s.path.clone(), vec![s])),
        }
    }
    for (path, specs) in by_path {
        let mut item: Option<PathItem> = None;
        for s in specs {
            let mut ok = ResponseBuilder::new().description("OK");
            ok = match s.schema {
                Some(name) => ok.content(
                    s.content_type,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(name)))
                        .build(),
                ),
                None => ok.content(s.content_type, ContentBuilder::new().build()),
            };
            let err = ResponseBuilder::new()
                .description("Error")
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ApiError")))
                        .build(),
                )
                .build();
            let mut op = OperationBuilder::new()
                .summary(Some(s.summary))
                .tag(match s.access {
                    Access::Public => "public",
                    Access::Tenant => "tenant",
                    Access::Admin => "admin",
                })
                .response(
                    if s.method == "POST" && s.access == Access::Admin {
                        "201"
                    } else {
                        "200"
                    },
                    ok.build(),
                );
            match s.access {
                Access::Admin => {
                    op = op
                        .response("400", err.clone())
                        .response("401", err.clone())
                        .securities(Some([SecurityRequirement::new(
                            "admin",
                            Vec::<String>::new(),
                        )]));
                }
                Access::Tenant => {
                    op = op.response("404", err.clone()).parameter(
                        ParameterBuilder::new()
                            .name("token")
                            .parameter_in(ParameterIn::Path)
                            .required(Required::True)
                            .description(Some("The tenant's secret link token"))
                            .build(),
                    );
                }
                Access::Public => {}
            }
            if s.access == Access::Public && path.contains("{token}") {
                op = op.response("404", err.clone()).parameter(
                    ParameterBuilder::new()
                        .name("token")
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .description(Some("The subscriber's unsubscribe token"))
                        .build(),
                );
            }
            if path.contains("{id}") {
                op = op.response("404", err.clone()).parameter(
                    ParameterBuilder::new()
                        .name("id")
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .build(),
                );
            }
            if let Some(req) = s.request {
                op = op.request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            JSON,
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(req)))
                                .build(),
                        )
                        .required(Some(Required::True))
                        .build(),
                ));
            }
            let method = match s.method {
                "POST" => HttpMethod::Post,
                "PATCH" => HttpMethod::Patch,
                _ => HttpMethod::Get,
            };
            item = Some(match item {
                None => PathItem::new(method, op.build()),
                Some(mut it) => {
                    let other = PathItem::new(method, op.build());
                    it.merge_operations(other);
                    it
                }
            });
        }
        if let Some(it) = item {
            paths = paths.path(path, it);
        }
    }
    let components = ComponentsBuilder::new()
        .schema_from::<render::SpPage>()
        .schema_from::<render::SpStatus>()
        .schema_from::<render::SpComponent>()
        .schema_from::<render::SpUpdate>()
        .schema_from::<render::SpAffected>()
        .schema_from::<render::SpIncident>()
        .schema_from::<render::SpStatusDoc>()
        .schema_from::<render::SpSummary>()
        .schema_from::<render::SpComponents>()
        .schema_from::<render::SpIncidents>()
        .schema_from::<render::SpMaintenances>()
        .schema_from::<render::ApiUpdate>()
        .schema_from::<render::ApiUpdates>()
        .schema_from::<render::ApiLive>()
        .schema_from::<ApiError>()
        .schema_from::<NewNotice>()
        .schema_from::<AdminNoticeDoc>()
        .schema_from::<NewMaintenance>()
        .schema_from::<MaintenancePatch>()
        .schema_from::<AdminMaintenanceDoc>()
        .security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    let doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("rollcall status API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Status of a rollcall maintenance run: Statuspage-compatible documents, rollcall's timeline, feeds and the admin API. Tenant variants of every public document live under /t/{token}/.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".into())
}

// ------------------------------------------------------------------ server

/// A running server. Dropping it does not stop it: call [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    pub url: String,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    poller: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.poller.abort();
        let _ = self.task.await;
    }
    /// Wait until the server ends (it ends only on error or [`Server::stop`]).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Open the store, build the first view, bind and serve in the background.
pub async fn start(opts: ServeOptions) -> Result<Server, WebError> {
    let store = open_existing(&opts.db).await?;
    let db = WebDb::new(&store).await?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| WebError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| WebError::Listen {
        addr: opts.listen,
        source,
    })?;
    let base_url = opts
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{addr}"));
    let page_id = match opts.page_id.clone() {
        Some(id) => id,
        None => db.page_id().await?,
    };
    let empty = Snapshot {
        version: 0,
        view: Arc::new(View::empty(wall_s())),
        fleet: None,
        public: Arc::new(
            Ctx {
                av: &View::empty(0).audience(&Audience::Public),
                version: 0,
                page_url: format!("{base_url}/"),
            }
            .render(),
        ),
        metrics: Bytes::new(),
        cache: Mutex::new(HashMap::new()),
    };
    let shared = Arc::new(Shared {
        store,
        db,
        run_sel: opts.run.clone(),
        base_url: base_url.clone(),
        page_id,
        sink: opts.sink.clone(),
        snap: RwLock::new(Arc::new(empty)),
        tokens: RwLock::new(Arc::new(HashMap::new())),
        current: tokio::sync::Mutex::new((None, -1)),
    });
    shared.refresh().await?;
    let poll = opts.poll;
    let sh = shared.clone();
    let poller = tokio::spawn(async move {
        let mut last_err = String::new();
        loop {
            tokio::time::sleep(poll).await;
            match sh.refresh().await {
                Ok(_) => last_err.clear(),
                Err(e) => {
                    let e = e.to_string();
                    if e != last_err {
                        eprintln!("status page: {e}");
                        last_err = e;
                    }
                }
            }
        }
    });
    let app = build().router.with_state(shared.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Server {
        addr,
        url: base_url,
        shared,
        stop: Some(tx),
        task,
        poller,
    })
}

/// `rollcall token ...`: tokens are created in the web tables of the store file.
pub async fn create_token(
    db_path: &Path,
    kind: TokenKind,
    tenant: Option<&str>,
    label: &str,
) -> Result<(TokenRow, String), WebError> {
    let store = open_existing(db_path).await?;
    if let Some(t) = tenant {
        // the tenant must exist in the latest run's fleet
        let row = store.latest_run().await?.ok_or(WebError::NoRunForTenant)?;
        let run = row.id.clone();
        let fleet = StoredRun::load(row)
            .map_err(|error| WebError::Fleet {
                run: run.clone(),
                error,
            })?
            .fleet;
        if !fleet.tenants.iter().any(|x| x.id == t) {
            let known: Vec<&str> = fleet.tenants.iter().map(|x| x.id.as_str()).collect();
            return Err(WebError::UnknownTenant {
                tenant: t.to_string(),
                run,
                known: known.join(", "),
            });
        }
    }
    let db = WebDb::new(&store).await?;
    db.create_token(kind, tenant, label, rollcall_runtime::wall_ms())
        .await
}

pub async fn list_tokens(db_path: &Path) -> Result<Vec<TokenRow>, WebError> {
    web_db(db_path).await?.tokens().await
}

pub async fn revoke_token(db_path: &Path, id: &str) -> Result<bool, WebError> {
    web_db(db_path).await?.revoke(id).await
}

/// The admin sessions live now (`rollcall token sessions`).
pub async fn list_sessions(db_path: &Path) -> Result<Vec<db::SessionRow>, WebError> {
    web_db(db_path)
        .await?
        .sessions(rollcall_runtime::wall_ms())
        .await
}

/// End one admin session by its id (`rollcall token end-session`).
pub async fn end_session(db_path: &Path, id: &str) -> Result<bool, WebError> {
    web_db(db_path).await?.end_session(id).await
}

/// The web tables of the existing store at `db_path`.
async fn web_db(db_path: &Path) -> Result<WebDb, WebError> {
    WebDb::new(&open_existing(db_path).await?).await
}

/// The store at `db_path`, which must exist already (tokens belong to a journal with runs).
/// A PostgreSQL URL is connected to: the database says whether it holds a journal.
async fn open_existing(db_path: &Path) -> Result<Store, WebError> {
    let file = matches!(
        rollcall_store::Target::parse(db_path.as_os_str()),
        rollcall_store::Target::File(_)
    );
    if file && !db_path.exists() {
        return Err(WebError::NoJournal {
            path: db_path.to_path_buf(),
        });
    }
    Ok(Store::connect(db_path).await?)
}

// ------------------------------------------------------------------ admin timeline

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `/admin/`: the timeline page; `?token=<admin token>` trades the token for a session
/// cookie and redirects to the bare URL (the token leaves the address bar).
async fn admin_page(
    State(s): State<AppState>,
    h: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<TokenQuery>,
) -> Response {
    if let Some(t) = q.token {
        return match s.token(t.trim()) {
            Some(row) if row.kind == TokenKind::Admin => {
                session::start(&s, &h, &row, "/admin/").await
            }
            _ => WebError::Unauthorized("invalid or revoked admin token").into_response(),
        };
    }
    if let Err(e) = admin_view(&s, &h).await {
        return e.into_response();
    }
    let guard = s.current.lock().await;
    let Some(c) = guard.0.as_ref() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no run to show yet", None);
    };
    let data = timeline::timeline_data(&c.tracker.fleet, &c.tracker.plan);
    drop(guard);
    let mode = timeline::Mode::Live {
        poll: "/api/admin/timeline.json",
    };
    let page = timeline::render_page(&data, mode);
    let mut res = bytes_response(HTML, Bytes::from(page));
    if let Ok(v) = HeaderValue::from_str(&timeline::csp(mode)) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn admin_timeline_json(State(s): State<AppState>, h: HeaderMap) -> Response {
    if let Err(e) = admin_view(&s, &h).await {
        return e.into_response();
    }
    let run = s.snapshot().view.run_id.clone();
    let notify = rollcall_notify::summary(&s.store, &run)
        .await
        .unwrap_or_default();
    let guard = s.current.lock().await;
    let Some(c) = guard.0.as_ref() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no run to show yet", None);
    };
    let doc = timeline::live_doc(&c.tracker, run_now(c), &notify);
    drop(guard);
    match serde_json::to_vec(&doc) {
        Ok(v) => {
            let mut res = bytes_response(JSON, Bytes::from(v));
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}
