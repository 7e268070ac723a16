//! AWS instance metadata (IMDSv2), read on the instance: the scheduled events.
//!
//! `PUT {endpoint}/latest/api/token` (header `X-aws-ec2-metadata-token-ttl-seconds`)
//! gives a session token; with it (`X-aws-ec2-metadata-token`) `GET
//! …/latest/meta-data/events/maintenance/scheduled` lists the open events and `…/history`
//! the completed and canceled ones. Each is `{Code, Description, State:
//! active|completed|canceled, EventId, NotBefore, NotAfter, NotBeforeDeadline}`, times
//! written `"2 Jan 2006 15:04:05 GMT"`.

use crate::http::{BoxFuture, HostFetch, Method, Request};
use crate::wire::{self, MetaHost};
use crate::{EventState, NoticeSource, ProviderError, ProviderEvent, Pulled, Source};
use serde::Deserialize;

pub const TOKEN_PATH: &str = "/latest/api/token";
pub const SCHEDULED_PATH: &str = "/latest/meta-data/events/maintenance/scheduled";
pub const HISTORY_PATH: &str = "/latest/meta-data/events/maintenance/history";
/// The token's lifetime asked for, seconds (one pull needs it for a few requests).
pub const TOKEN_TTL: &str = "300";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEvent {
    code: String,
    #[serde(default)]
    description: String,
    state: String,
    event_id: String,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    not_before_deadline: Option<String>,
}

/// Parse a `scheduled` or `history` list read for fleet host `host`.
pub fn parse(host: &str, body: &str) -> Result<Vec<ProviderEvent>, String> {
    let raw: Vec<RawEvent> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    raw.iter().map(|e| event(host, e)).collect()
}

fn event(host: &str, e: &RawEvent) -> Result<ProviderEvent, String> {
    let state = match e.state.as_str() {
        "active" => EventState::Scheduled,
        "completed" => EventState::Completed,
        "canceled" | "cancelled" => EventState::Canceled,
        s => return Err(format!("event {}: unknown State `{s}`", e.event_id)),
    };
    let time = |name: &str, v: &Option<String>| {
        wire::opt_time(v.as_deref(), wire::parse_gmt)
            .map_err(|m| format!("event {}: {name} {m}", e.event_id))
    };
    Ok(ProviderEvent {
        source: Source::AwsImds,
        id: e.event_id.clone(),
        instance: host.to_string(),
        code: e.code.clone(),
        state,
        not_before: time("NotBefore", &e.not_before)?,
        not_after: time("NotAfter", &e.not_after)?,
        deadline: time("NotBeforeDeadline", &e.not_before_deadline)?,
        description: e.description.clone(),
    })
}

/// The instance metadata of the fleet hosts on AWS.
#[derive(Debug)]
pub struct ImdsSource {
    hosts: Vec<MetaHost>,
}

impl ImdsSource {
    pub fn new(hosts: Vec<MetaHost>) -> ImdsSource {
        ImdsSource { hosts }
    }

    async fn token(fetch: &dyn HostFetch, h: &MetaHost) -> Result<String, ProviderError> {
        let mut req = Request::get(h.url(TOKEN_PATH))
            .header("X-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL);
        req.method = Method::Put;
        let t = wire::fetch_ok(fetch, &h.host, req).await?;
        Ok(t.trim().to_string())
    }

    async fn list(
        fetch: &dyn HostFetch,
        h: &MetaHost,
        token: &str,
        path: &str,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let url = h.url(path);
        let req = Request::get(&url).header("X-aws-ec2-metadata-token", token);
        let body = wire::fetch_ok(fetch, &h.host, req).await?;
        parse(&h.host, &body).map_err(|e| wire::parse_err(format!("{}: {url}", h.host), e))
    }

    /// The events of one host: open ones, then past ones not listed as open. A missing
    /// `history` (404: an instance with none) is no history.
    pub async fn read(
        &self,
        fetch: &dyn HostFetch,
        h: &MetaHost,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let token = Self::token(fetch, h).await?;
        let mut events = Self::list(fetch, h, &token, SCHEDULED_PATH).await?;
        let past = match Self::list(fetch, h, &token, HISTORY_PATH).await {
            Err(ProviderError::Status { status: 404, .. }) => Vec::new(),
            r => r?,
        };
        for e in past {
            if !events.iter().any(|o| o.id == e.id) {
                events.push(e);
            }
        }
        Ok(events)
    }
}

impl NoticeSource for ImdsSource {
    fn source(&self) -> Source {
        Source::AwsImds
    }

    fn hosts(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.host.clone()).collect()
    }

    fn pull<'a>(&'a self, fetch: &'a dyn HostFetch) -> BoxFuture<'a, Vec<Pulled>> {
        Box::pin(wire::pull_all(&self.hosts, Source::AwsImds, move |h| {
            self.read(fetch, h)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample of the EC2 user guide (monitoring-instances-status-check_sched, "view
    /// scheduled events with instance metadata").
    const SAMPLE: &str = r#"[
        {
            "NotBefore" : "21 Jan 2019 09:00:43 GMT",
            "Code" : "system-reboot",
            "Description" : "scheduled reboot",
            "EventId" : "instance-event-0d59937288b749b32",
            "NotAfter" : "21 Jan 2019 09:17:23 GMT",
            "State" : "active"
        }
    ]"#;

    #[test]
    fn the_documented_sample_is_an_active_system_reboot_with_its_window() {
        let ev = parse("web-1", SAMPLE).unwrap();
        assert_eq!(ev.len(), 1);
        let e = &ev[0];
        assert_eq!(e.id, "instance-event-0d59937288b749b32");
        assert_eq!(
            (e.code.as_str(), e.state),
            ("system-reboot", EventState::Scheduled)
        );
        // 21 Jan 2019 09:00:43 UTC and 09:17:23 UTC
        assert_eq!(
            (e.not_before, e.not_after),
            (Some(1548061243), Some(1548062243))
        );
        assert_eq!((e.deadline, e.instance.as_str()), (None, "web-1"));
    }

    #[test]
    fn completed_and_canceled_are_mapped() {
        let c = parse("h", &SAMPLE.replace("active", "completed")).unwrap();
        assert_eq!(c[0].state, EventState::Completed);
        let c = parse("h", &SAMPLE.replace("active", "canceled")).unwrap();
        assert_eq!(c[0].state, EventState::Canceled);
        assert!(parse("h", "[]").unwrap().is_empty());
    }

    #[test]
    fn an_unknown_state_a_bad_time_or_garbage_is_an_error() {
        let e = parse("h", &SAMPLE.replace("active", "pending")).unwrap_err();
        assert!(e.contains("unknown State `pending`"), "{e}");
        let e = parse(
            "h",
            &SAMPLE.replace("21 Jan 2019 09:00:43", "21 Foo 2019 09:00:43"),
        );
        assert!(e.unwrap_err().contains("NotBefore"));
        assert!(parse("h", "{\"Code\":1}").is_err());
    }
}
