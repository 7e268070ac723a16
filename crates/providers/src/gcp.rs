//! GCP maintenance notices from the metadata server, read on the instance.
//!
//! Two values, both with header `Metadata-Flavor: Google`:
//! - `instance/maintenance-event`: `NONE`, `MIGRATE_ON_HOST_MAINTENANCE` or
//!   `TERMINATE_ON_HOST_MAINTENANCE`; anything but `NONE` is maintenance under way;
//! - `instance/upcoming-maintenance?alt=json`: the window (`window_start_time`,
//!   `window_end_time`, `latest_window_start_time`, `maintenance_status` PENDING|ONGOING,
//!   `type`, `can_reschedule`); `NONE` or a "no notifications" error when none.
//!
//! GCP gives no event id: the window start stands in, so a moved window is a new event
//! and the old one is reported `Canceled` (once; [`Vanished`]). The guard polls at its
//! interval: `?wait_for_change=true` is not used (a hanging GET per host would hold a
//! connection, or an SSH session, open per host).

use crate::http::{BoxFuture, HostFetch, Request};
use crate::wire::{self, MetaHost, Vanished};
use crate::{EventState, NoticeSource, ProviderError, ProviderEvent, Pulled, Source};
use serde::Deserialize;

pub const EVENT_PATH: &str = "/computeMetadata/v1/instance/maintenance-event";
pub const UPCOMING_PATH: &str = "/computeMetadata/v1/instance/upcoming-maintenance?alt=json";

/// `instance/maintenance-event`: `None` for `NONE`, else the value (the event code).
pub fn parse_event(body: &str) -> Result<Option<String>, String> {
    let v = body.trim();
    match v {
        "NONE" => Ok(None),
        "MIGRATE_ON_HOST_MAINTENANCE" | "TERMINATE_ON_HOST_MAINTENANCE" => Ok(Some(v.into())),
        _ => Err(format!("unknown maintenance-event `{}`", wire::short(v))),
    }
}

#[derive(Debug, Deserialize)]
struct RawWindow {
    window_start_time: String,
    #[serde(default)]
    window_end_time: Option<String>,
    #[serde(default)]
    latest_window_start_time: Option<String>,
    maintenance_status: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    can_reschedule: Option<serde_json::Value>,
}

/// The upcoming maintenance window, as an event (id: the window start); `None` when
/// nothing is announced.
pub fn parse_upcoming(host: &str, body: &str) -> Result<Option<ProviderEvent>, String> {
    let t = body.trim();
    if t == "NONE" || t.is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(t).map_err(|e| e.to_string())?;
    if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
        return match err.starts_with("no notifications") {
            true => Ok(None),
            false => Err(format!("the metadata server says: {}", wire::short(err))),
        };
    }
    let w: RawWindow = serde_json::from_value(v).map_err(|e| e.to_string())?;
    window(host, &w).map(Some)
}

fn window(host: &str, w: &RawWindow) -> Result<ProviderEvent, String> {
    let state = match w.maintenance_status.as_str() {
        "PENDING" => EventState::Scheduled,
        "ONGOING" => EventState::Started,
        s => return Err(format!("unknown maintenance_status `{s}`")),
    };
    let field = |name: &str, m: String| format!("{name}: {m}");
    let start =
        wire::parse_rfc3339(&w.window_start_time).map_err(|m| field("window_start_time", m))?;
    let end = wire::opt_time(w.window_end_time.as_deref(), wire::parse_rfc3339)
        .map_err(|m| field("window_end_time", m))?;
    let latest = wire::opt_time(w.latest_window_start_time.as_deref(), wire::parse_rfc3339)
        .map_err(|m| field("latest_window_start_time", m))?;
    let kind = w.kind.clone().unwrap_or_else(|| "SCHEDULED".into());
    let resched = w
        .can_reschedule
        .as_ref()
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    Ok(ProviderEvent {
        source: Source::Gcp,
        id: window_id(start),
        instance: host.to_string(),
        code: kind.clone(),
        state,
        not_before: Some(start),
        not_after: end,
        deadline: latest,
        description: format!(
            "{} host maintenance window{}",
            kind.to_lowercase(),
            if resched { " (can be rescheduled)" } else { "" }
        ),
    })
}

/// The id of a window: its start, in UTC.
pub fn window_id(start: i64) -> String {
    match jiff::Timestamp::from_second(start) {
        Ok(t) => format!("window-{}", t.strftime("%Y-%m-%dT%H:%M:%SZ")),
        Err(_) => format!("window-{start}"),
    }
}

/// What both values say together: the window, started when `maintenance-event` is not
/// `NONE`; a maintenance event without a window is an event of its own.
pub fn combine(
    host: &str,
    event: Option<String>,
    upcoming: Option<ProviderEvent>,
) -> Vec<ProviderEvent> {
    match (event, upcoming) {
        (None, None) => vec![],
        (None, Some(w)) => vec![w],
        (Some(code), Some(mut w)) => {
            w.state = EventState::Started;
            w.code = code;
            vec![w]
        }
        (Some(code), None) => vec![ProviderEvent {
            source: Source::Gcp,
            id: format!("maintenance-event-{}", code.to_lowercase()),
            instance: host.to_string(),
            description: "host maintenance under way (maintenance-event)".into(),
            code,
            state: EventState::Started,
            not_before: None,
            not_after: None,
            deadline: None,
        }],
    }
}

/// The metadata server of the fleet hosts on GCP.
#[derive(Debug)]
pub struct GcpSource {
    hosts: Vec<MetaHost>,
    vanished: Vanished,
}

impl GcpSource {
    pub fn new(hosts: Vec<MetaHost>) -> GcpSource {
        GcpSource {
            hosts,
            vanished: Vanished::default(),
        }
    }

    async fn get(
        fetch: &dyn HostFetch,
        h: &MetaHost,
        path: &str,
    ) -> Result<(String, String), ProviderError> {
        let url = h.url(path);
        let req = Request::get(&url).header("Metadata-Flavor", "Google");
        Ok((wire::fetch_ok(fetch, &h.host, req).await?, url))
    }

    /// Events open when rollcall last stopped (from its journal): followed as if just
    /// seen, so one that vanished meanwhile is reported completed or canceled.
    pub fn resume(&self, open: Vec<ProviderEvent>) {
        self.vanished.resume(open);
    }

    /// The events of one host now (a moved window's old one included, once, canceled).
    pub async fn read(
        &self,
        fetch: &dyn HostFetch,
        h: &MetaHost,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let what = |url: &str| format!("{}: {url}", h.host);
        let (body, url) = Self::get(fetch, h, EVENT_PATH).await?;
        let event = parse_event(&body).map_err(|e| wire::parse_err(what(&url), e))?;
        let (body, url) = Self::upcoming(fetch, h).await?;
        let upcoming =
            parse_upcoming(&h.host, &body).map_err(|e| wire::parse_err(what(&url), e))?;
        Ok(self
            .vanished
            .follow(&h.host, combine(&h.host, event, upcoming)))
    }

    /// `upcoming-maintenance`: 404 means the machine type does not have it (nothing
    /// announced there), any other non-200 is an error.
    async fn upcoming(
        fetch: &dyn HostFetch,
        h: &MetaHost,
    ) -> Result<(String, String), ProviderError> {
        match Self::get(fetch, h, UPCOMING_PATH).await {
            Err(ProviderError::Status {
                status: 404, url, ..
            }) => Ok(("NONE".into(), url)),
            r => r,
        }
    }
}

impl NoticeSource for GcpSource {
    fn source(&self) -> Source {
        Source::Gcp
    }

    fn hosts(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.host.clone()).collect()
    }

    fn pull<'a>(&'a self, fetch: &'a dyn HostFetch) -> BoxFuture<'a, Vec<Pulled>> {
        Box::pin(wire::pull_all(&self.hosts, Source::Gcp, move |h| {
            self.read(fetch, h)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Google's documented `upcoming-maintenance?alt=json` answer
    /// (compute/docs/instances/monitor-plan-host-maintenance-event).
    const SAMPLE: &str = r#"{
        "can_reschedule": false,
        "latest_window_start_time": "2024-07-19T21:00:00Z",
        "maintenance_reasons": ["FAILURE_DISK"],
        "maintenance_status": "PENDING",
        "type": "SCHEDULED",
        "window_end_time": "2024-07-18T23:00:00Z",
        "window_start_time": "2024-07-18T21:00:00Z"
    }"#;

    #[test]
    fn the_documented_window_is_a_scheduled_event_keyed_by_its_start() {
        let e = parse_upcoming("vm", SAMPLE).unwrap().unwrap();
        assert_eq!(e.id, "window-2024-07-18T21:00:00Z");
        assert_eq!(
            (e.code.as_str(), e.state),
            ("SCHEDULED", EventState::Scheduled)
        );
        assert_eq!(e.not_before, Some(1721336400));
        assert_eq!(e.not_after, Some(1721336400 + 7200));
        assert_eq!(e.deadline, Some(1721336400 + 86400));
    }

    #[test]
    fn none_and_no_notifications_are_nothing_announced() {
        assert_eq!(parse_upcoming("vm", "NONE"), Ok(None));
        let err = r#"{"error": "no notifications have been received yet, try again later"}"#;
        assert_eq!(parse_upcoming("vm", err), Ok(None));
        assert_eq!(parse_event("NONE\n"), Ok(None));
    }

    #[test]
    fn an_ongoing_window_is_started_and_a_bad_time_is_an_error() {
        let e = parse_upcoming("vm", &SAMPLE.replace("PENDING", "ONGOING")).unwrap();
        assert_eq!(e.unwrap().state, EventState::Started);
        let bad = SAMPLE.replace("2024-07-18T21:00:00Z", "tomorrow");
        assert!(
            parse_upcoming("vm", &bad)
                .unwrap_err()
                .contains("window_start_time")
        );
        assert!(parse_upcoming("vm", "<html>").is_err());
        let other = r#"{"error": "permission denied"}"#;
        assert!(parse_upcoming("vm", other).is_err());
    }

    #[test]
    fn maintenance_event_values_other_than_none_are_events_and_garbage_is_an_error() {
        let v = parse_event("TERMINATE_ON_HOST_MAINTENANCE").unwrap();
        assert_eq!(v.as_deref(), Some("TERMINATE_ON_HOST_MAINTENANCE"));
        assert!(parse_event("<html>oops</html>").is_err());
    }

    #[test]
    fn a_maintenance_event_starts_the_window_or_stands_alone() {
        let w = parse_upcoming("vm", SAMPLE).unwrap();
        let code = Some("MIGRATE_ON_HOST_MAINTENANCE".to_string());
        let both = combine("vm", code.clone(), w);
        assert_eq!(both.len(), 1);
        assert_eq!(both[0].state, EventState::Started);
        assert_eq!(both[0].code, "MIGRATE_ON_HOST_MAINTENANCE");
        assert_eq!(both[0].id, "window-2024-07-18T21:00:00Z");
        let alone = combine("vm", code, None);
        assert_eq!(alone[0].id, "maintenance-event-migrate_on_host_maintenance");
        assert!(combine("vm", None, None).is_empty());
    }
}
