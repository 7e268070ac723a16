//! One fake cloud metadata server for the tests: Azure Scheduled Events, GCP
//! `maintenance-event`/`upcoming-maintenance` and AWS IMDSv2 events, with the documented
//! payloads, per fleet host under a path prefix (`http://127.0.0.1:PORT/<host>/…`),
//! stepped through time by the test. No emulator of Azure's or GCP's metadata service
//! can run here; AWS IMDS is also checked against AWS's own mock ([`crate::aemm`]).
//!
//! Azure: `DocumentIncarnation` bumps on every change; an approval (`POST
//! {"StartRequests":[{"EventId":…}]}`) is recorded with its time, starts the event (as
//! Azure does) and calls the hook set with [`MetaServer::on_approve`] (on a blocking
//! thread; the e2e test reboots the host there).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// An Azure approval as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub host: String,
    pub event_id: String,
    /// Wall-clock time it arrived, Unix milliseconds.
    pub wall_ms: i64,
}

/// One Azure scheduled event.
#[derive(Debug, Clone)]
pub struct AzureEvent {
    pub id: String,
    /// `Reboot`, `Redeploy`, `Freeze`, `Preempt`, `Terminate`.
    pub kind: String,
    pub started: bool,
    /// Unix seconds (written as RFC 1123; `""` once started).
    pub not_before: i64,
    pub duration: i64,
    /// The VMs it affects (`Resources`): the fleet hosts it is listed on.
    pub resources: Vec<String>,
}

/// A GCP maintenance window (`upcoming-maintenance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpWindow {
    pub start: i64,
    pub end: i64,
    pub latest_start: i64,
    pub ongoing: bool,
}

/// An AWS IMDS event; `state` is `active`, `completed` or `canceled`.
#[derive(Debug, Clone)]
pub struct ImdsEvent {
    pub id: String,
    pub code: String,
    pub state: String,
    pub not_before: i64,
    pub not_after: i64,
}

#[derive(Debug, Default)]
struct HostMeta {
    incarnation: u64,
    azure: Vec<AzureEvent>,
    gcp_event: Option<String>,
    gcp_window: Option<GcpWindow>,
    imds: Vec<ImdsEvent>,
    /// Answer garbage on every path.
    garbage: bool,
}

type Hook = Arc<dyn Fn(&str, &str) + Send + Sync>;

#[derive(Default)]
struct Meta {
    hosts: BTreeMap<String, HostMeta>,
    approvals: Vec<Approval>,
    hook: Option<Hook>,
}

type Shared = Arc<Mutex<Meta>>;

/// The server; stopped on drop.
pub struct MetaServer {
    pub ip: String,
    pub port: u16,
    state: Shared,
    _served: crate::serve::Served,
}

const TOKEN: &str = "fake-imds-token";

impl MetaServer {
    /// On 127.0.0.1.
    pub fn start() -> MetaServer {
        MetaServer::start_on("127.0.0.1")
    }

    /// On `ip` (e.g. a testbed's bridge address, which its hosts reach).
    pub fn start_on(ip: &str) -> MetaServer {
        let state: Shared = Arc::default();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let served = crate::serve::serve(ip, app, 2);
        MetaServer {
            ip: ip.to_string(),
            port: served.port,
            state,
            _served: served,
        }
    }

    /// The metadata endpoint of fleet host `host` (its base URL).
    pub fn endpoint(&self, host: &str) -> String {
        format!("http://{}:{}/{host}", self.ip, self.port)
    }

    fn with<T>(&self, host: &str, f: impl FnOnce(&mut HostMeta) -> T) -> T {
        let mut m = self.state.lock().unwrap();
        f(m.hosts.entry(host.to_string()).or_default())
    }

    /// Change `host`'s Azure events (the incarnation bumps).
    fn azure(&self, host: &str, f: impl FnOnce(&mut Vec<AzureEvent>)) {
        self.with(host, |h| {
            f(&mut h.azure);
            h.incarnation += 1;
        })
    }

    /// Azure announces event `id` (`kind`: `Reboot`…) on `host`, not before `not_before`.
    pub fn azure_schedule(&self, host: &str, id: &str, kind: &str, not_before: i64) {
        self.azure_schedule_for(&[host], id, kind, not_before);
    }

    /// One event for several VMs (an availability set): listed on each of `hosts`, with
    /// all of them as its `Resources`; approving it on one starts it on all.
    pub fn azure_schedule_for(&self, hosts: &[&str], id: &str, kind: &str, not_before: i64) {
        let e = AzureEvent {
            id: id.into(),
            kind: kind.into(),
            started: false,
            not_before,
            duration: 900,
            resources: hosts.iter().map(|h| h.to_string()).collect(),
        };
        for h in hosts {
            self.azure(h, |v| v.push(e.clone()));
        }
    }

    /// Azure starts event `id` on `host`.
    pub fn azure_start(&self, host: &str, id: &str) {
        self.azure(host, |v| start(v, id));
    }

    /// Azure moves event `id` on `host` to `not_before`.
    pub fn azure_move(&self, host: &str, id: &str, not_before: i64) {
        self.azure(host, |v| {
            v.iter_mut()
                .filter(|e| e.id == id)
                .for_each(|e| e.not_before = not_before)
        });
    }

    /// Event `id` on `host` is gone: done (if started) or withdrawn (if not).
    pub fn azure_end(&self, host: &str, id: &str) {
        self.azure(host, |v| v.retain(|e| e.id != id));
    }

    /// `host`'s `DocumentIncarnation`.
    pub fn azure_incarnation(&self, host: &str) -> u64 {
        self.with(host, |h| h.incarnation)
    }

    /// Every approval received, in order.
    pub fn approvals(&self) -> Vec<Approval> {
        self.state.lock().unwrap().approvals.clone()
    }

    /// Called with (host, event id) after each accepted approval, on a blocking thread.
    pub fn on_approve(&self, hook: impl Fn(&str, &str) + Send + Sync + 'static) {
        self.state.lock().unwrap().hook = Some(Arc::new(hook));
    }

    /// GCP `maintenance-event` of `host` (`NONE`, `MIGRATE_ON_HOST_MAINTENANCE`,
    /// `TERMINATE_ON_HOST_MAINTENANCE`).
    pub fn gcp_event(&self, host: &str, value: &str) {
        let v = (value != "NONE").then(|| value.to_string());
        self.with(host, |h| h.gcp_event = v);
    }

    /// GCP `upcoming-maintenance` of `host` (`None`: no notification).
    pub fn gcp_window(&self, host: &str, w: Option<GcpWindow>) {
        self.with(host, |h| h.gcp_window = w);
    }

    /// AWS IMDS events of `host` (active ones under `scheduled`, the others under `history`).
    pub fn imds_events(&self, host: &str, events: Vec<ImdsEvent>) {
        self.with(host, |h| h.imds = events);
    }

    /// `host` answers garbage (200, HTML) on every path, or stops doing so.
    pub fn garbage(&self, host: &str, on: bool) {
        self.with(host, |h| h.garbage = on);
    }
}

fn fmt(t: i64, f: &str) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.strftime(f).to_string())
        .unwrap_or_default()
}

fn rfc1123(t: i64) -> String {
    fmt(t, "%a, %d %b %Y %H:%M:%S GMT")
}

fn rfc3339(t: i64) -> String {
    fmt(t, "%Y-%m-%dT%H:%M:%SZ")
}

type Answer = (StatusCode, String);

async fn answer(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    h: HeaderMap,
    body: Bytes,
) -> Answer {
    let path = uri.path().trim_start_matches('/');
    let Some((host, rest)) = path.split_once('/') else {
        return (StatusCode::NOT_FOUND, "no host in the path".into());
    };
    let hv = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let req = Req {
        host,
        query: uri.query().unwrap_or(""),
        method: &method,
        body: &String::from_utf8_lossy(&body),
    };
    if st
        .lock()
        .unwrap()
        .hosts
        .get(host)
        .is_some_and(|m| m.garbage)
    {
        return (
            StatusCode::OK,
            "<html><body>502 Bad Gateway</body></html>".into(),
        );
    }
    match rest {
        "metadata/scheduledevents" if hv("Metadata") == "true" => azure(&st, &req),
        "metadata/scheduledevents" => (
            StatusCode::BAD_REQUEST,
            "Bad request. Required metadata header not specified".into(),
        ),
        _ if rest.starts_with("computeMetadata/") && hv("Metadata-Flavor") != "Google" => (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.".into(),
        ),
        "computeMetadata/v1/instance/maintenance-event" => gcp_event(&st, host),
        "computeMetadata/v1/instance/upcoming-maintenance" => gcp_window(&st, host),
        "latest/api/token" if method == Method::PUT => {
            match hv("X-aws-ec2-metadata-token-ttl-seconds").parse::<u32>() {
                Ok(1..=21600) => (StatusCode::OK, TOKEN.into()),
                _ => (StatusCode::BAD_REQUEST, "".into()),
            }
        }
        _ if rest.starts_with("latest/") && hv("X-aws-ec2-metadata-token") != TOKEN => {
            (StatusCode::UNAUTHORIZED, "".into())
        }
        "latest/meta-data/events/maintenance/scheduled" => imds(&st, host, true),
        "latest/meta-data/events/maintenance/history" => imds(&st, host, false),
        _ => (StatusCode::NOT_FOUND, "Not Found".into()),
    }
}

struct Req<'a> {
    host: &'a str,
    query: &'a str,
    method: &'a Method,
    body: &'a str,
}

fn azure(st: &Shared, r: &Req) -> Answer {
    if !r.query.contains("api-version=") {
        return (StatusCode::BAD_REQUEST, "api-version is required".into());
    }
    if *r.method == Method::POST {
        return approve(st, r.host, r.body);
    }
    let m = st.lock().unwrap();
    let (inc, events) = m
        .hosts
        .get(r.host)
        .map_or((0, &[][..]), |h| (h.incarnation, h.azure.as_slice()));
    let events: Vec<_> = events.iter().map(azure_event).collect();
    let doc = serde_json::json!({ "DocumentIncarnation": inc, "Events": events });
    (StatusCode::OK, doc.to_string())
}

fn azure_event(e: &AzureEvent) -> serde_json::Value {
    serde_json::json!({
        "EventId": e.id,
        "EventStatus": if e.started { "Started" } else { "Scheduled" },
        "EventType": e.kind,
        "ResourceType": "VirtualMachine",
        "Resources": e.resources,
        "NotBefore": if e.started { String::new() } else { rfc1123(e.not_before) },
        "Description": format!("Virtual machine is going to be {}.", e.kind.to_lowercase()),
        "EventSource": "Platform",
        "DurationInSeconds": e.duration,
    })
}

/// `{"StartRequests":[{"EventId":…}]}`: every id must be an event of the host.
fn approve(st: &Shared, host: &str, body: &str) -> Answer {
    let ids: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("StartRequests")?
                .as_array()?
                .iter()
                .map(|r| r.get("EventId")?.as_str().map(str::to_string))
                .collect()
        });
    let Some(ids) = ids.filter(|i| !i.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "Bad request: StartRequests".into());
    };
    let mut m = st.lock().unwrap();
    let wall_ms = crate::webhook::wall_ms();
    let hm = m.hosts.entry(host.to_string()).or_default();
    if let Some(bad) = ids.iter().find(|i| !hm.azure.iter().any(|e| &&e.id == i)) {
        return (
            StatusCode::BAD_REQUEST,
            format!("Bad request: unknown EventId {bad}"),
        );
    }
    // the event starts on every VM it lists, as Azure does
    for h in m.hosts.values_mut() {
        if h.azure.iter().any(|e| ids.contains(&e.id)) {
            ids.iter().for_each(|id| start(&mut h.azure, id));
            h.incarnation += 1;
        }
    }
    for id in &ids {
        m.approvals.push(Approval {
            host: host.into(),
            event_id: id.clone(),
            wall_ms,
        });
    }
    if let Some(hook) = m.hook.clone() {
        let host = host.to_string();
        tokio::task::spawn_blocking(move || ids.iter().for_each(|i| hook(&host, i)));
    }
    (StatusCode::OK, String::new())
}

fn start(events: &mut [AzureEvent], id: &str) {
    events
        .iter_mut()
        .filter(|e| e.id == id)
        .for_each(|e| e.started = true);
}

fn gcp_event(st: &Shared, host: &str) -> Answer {
    let m = st.lock().unwrap();
    let v = m.hosts.get(host).and_then(|h| h.gcp_event.clone());
    (StatusCode::OK, v.unwrap_or_else(|| "NONE".into()))
}

fn gcp_window(st: &Shared, host: &str) -> Answer {
    let m = st.lock().unwrap();
    let Some(w) = m.hosts.get(host).and_then(|h| h.gcp_window.clone()) else {
        let none = serde_json::json!({"error": "no notifications have been received yet, try again later"});
        return (StatusCode::OK, none.to_string());
    };
    let doc = serde_json::json!({
        "can_reschedule": false,
        "latest_window_start_time": rfc3339(w.latest_start),
        "maintenance_reasons": ["FAILURE_DISK"],
        "maintenance_status": if w.ongoing { "ONGOING" } else { "PENDING" },
        "type": "SCHEDULED",
        "window_end_time": rfc3339(w.end),
        "window_start_time": rfc3339(w.start),
    });
    (StatusCode::OK, doc.to_string())
}

fn imds(st: &Shared, host: &str, open: bool) -> Answer {
    let m = st.lock().unwrap();
    let events: Vec<_> = m
        .hosts
        .get(host)
        .map_or(&[][..], |h| h.imds.as_slice())
        .iter()
        .filter(|e| (e.state == "active") == open)
        .map(|e| {
            serde_json::json!({
                "NotBefore": fmt(e.not_before, "%-d %b %Y %H:%M:%S GMT"),
                "Code": e.code,
                "Description": format!("The instance is scheduled for {}", e.code),
                "EventId": e.id,
                "NotAfter": fmt(e.not_after, "%-d %b %Y %H:%M:%S GMT"),
                "State": e.state,
            })
        })
        .collect();
    (StatusCode::OK, serde_json::Value::from(events).to_string())
}
