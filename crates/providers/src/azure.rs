//! Azure Scheduled Events, read on the instance, and early approval.
//!
//! `GET {endpoint}/metadata/scheduledevents?api-version=2020-07-01` with `Metadata: true`
//! answers a document (`DocumentIncarnation`, `Events[]`). Azure has no "completed": an
//! event is gone when it is done or withdrawn, so [`AzureSource`] keeps per host the
//! events it last saw and reports a vanished one once, `Completed` if it had started,
//! else `Canceled`. [`AzureSource::approve`] POSTs `{"StartRequests":[{"EventId":…}]}` so
//! Azure starts the event now, once rollcall has drained the host.
//!
//! The first call on a VM enables the service and can take up to two minutes: until it
//! answers within the request timeout the host is unread (an error), never quiet.

use crate::http::{BoxFuture, HostFetch, Method, Request};
use crate::wire::{self, MetaHost, Vanished};
use crate::{EventState, NoticeSource, ProviderError, ProviderEvent, Pulled, Source};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The Scheduled Events path and API version.
pub const PATH: &str = "/metadata/scheduledevents?api-version=2020-07-01";

/// The document as Azure writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Document {
    pub document_incarnation: u64,
    pub events: Vec<RawEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawEvent {
    pub event_id: String,
    pub event_type: String,
    #[serde(default)]
    pub resource_type: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub event_status: String,
    /// RFC 1123, or `""` once started.
    #[serde(default)]
    pub not_before: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub event_source: String,
    #[serde(default)]
    pub duration_in_seconds: Option<i64>,
}

/// A Scheduled Events document as read for one fleet host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub incarnation: u64,
    pub events: Vec<ProviderEvent>,
    /// Each event's `Resources`: the VMs it affects. An event can name several VMs (an
    /// availability set), and approving it starts it for all of them.
    pub resources: BTreeMap<String, Vec<String>>,
}

/// Parse a Scheduled Events document read for fleet host `host`.
pub fn parse(host: &str, body: &str) -> Result<Reading, String> {
    let doc: Document = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let events = doc
        .events
        .iter()
        .map(|e| event(host, e))
        .collect::<Result<_, _>>()?;
    let resources = doc
        .events
        .into_iter()
        .map(|e| (e.event_id, e.resources))
        .collect();
    Ok(Reading {
        incarnation: doc.document_incarnation,
        events,
        resources,
    })
}

fn event(host: &str, e: &RawEvent) -> Result<ProviderEvent, String> {
    let state = match e.event_status.as_str() {
        "Scheduled" => EventState::Scheduled,
        "Started" => EventState::Started,
        s => return Err(format!("event {}: unknown EventStatus `{s}`", e.event_id)),
    };
    let not_before = wire::opt_time(Some(&e.not_before), wire::parse_gmt)
        .map_err(|m| format!("event {}: NotBefore {m}", e.event_id))?;
    // DurationInSeconds is -1 when unknown
    let duration = e.duration_in_seconds.filter(|d| *d > 0);
    Ok(ProviderEvent {
        source: Source::Azure,
        id: e.event_id.clone(),
        instance: host.to_string(),
        code: e.event_type.clone(),
        state,
        not_before,
        not_after: not_before.zip(duration).map(|(b, d)| b.saturating_add(d)),
        deadline: None,
        description: describe(e),
    })
}

fn describe(e: &RawEvent) -> String {
    let mut d = e.description.clone();
    if !e.resources.is_empty() {
        d = format!(
            "{d} [{} {}; {}]",
            e.resource_type,
            e.resources.join(", "),
            e.event_source
        );
    }
    d.trim().to_string()
}

/// The body that approves `event_id` early.
pub fn start_request(event_id: &str) -> String {
    serde_json::json!({ "StartRequests": [{ "EventId": event_id }] }).to_string()
}

/// Scheduled Events for the fleet hosts on Azure.
#[derive(Debug)]
pub struct AzureSource {
    hosts: Vec<MetaHost>,
    vanished: Vanished,
    /// Per host, each open event's `Resources` as last read.
    resources: Mutex<HashMap<String, BTreeMap<String, Vec<String>>>>,
}

impl AzureSource {
    pub fn new(hosts: Vec<MetaHost>) -> AzureSource {
        AzureSource {
            hosts,
            vanished: Vanished::default(),
            resources: Mutex::default(),
        }
    }

    fn request(h: &MetaHost, method: Method) -> Request {
        let mut r = Request::get(h.url(PATH)).header("Metadata", "true");
        r.method = method;
        r
    }

    /// Events open when rollcall last stopped (from its journal): followed as if just
    /// seen, so one that vanished meanwhile is reported completed or canceled.
    pub fn resume(&self, open: Vec<ProviderEvent>) {
        self.vanished.resume(open);
    }

    /// The events of one host now (vanished ones included, once).
    pub async fn read(
        &self,
        fetch: &dyn HostFetch,
        h: &MetaHost,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let req = Self::request(h, Method::Get);
        let url = req.url.clone();
        let body = wire::fetch_ok(fetch, &h.host, req).await?;
        let r =
            parse(&h.host, &body).map_err(|e| wire::parse_err(format!("{}: {url}", h.host), e))?;
        let mut res = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        res.insert(h.host.clone(), r.resources);
        Ok(self.vanished.follow(&h.host, r.events))
    }

    /// The VMs event `event_id` affects (its `Resources`), as last read on fleet host
    /// `host`; `None` when it was not open there at the last read. Approving an event
    /// starts it for every one of them: the guard approves only when all are drained.
    pub fn affected(&self, host: &str, event_id: &str) -> Option<Vec<String>> {
        let res = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        res.get(host)?.get(event_id).cloned()
    }

    /// Approve `event_id` on fleet host `host` early (`StartRequests`): Azure starts it now.
    pub async fn approve(
        &self,
        fetch: &dyn HostFetch,
        host: &str,
        event_id: &str,
    ) -> Result<(), ProviderError> {
        let h = self.hosts.iter().find(|h| h.host == host).ok_or_else(|| {
            ProviderError::NotCovered {
                provider: Source::Azure,
                host: host.to_string(),
            }
        })?;
        let mut req = Self::request(h, Method::Post).header("Content-Type", "application/json");
        req.body = Some(start_request(event_id));
        wire::fetch_ok(fetch, host, req)
            .await
            .map(drop)
            .map_err(|e| ProviderError::Approve {
                host: host.to_string(),
                event: event_id.to_string(),
                error: Box::new(e),
            })
    }
}

impl NoticeSource for AzureSource {
    fn source(&self) -> Source {
        Source::Azure
    }

    fn hosts(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.host.clone()).collect()
    }

    fn pull<'a>(&'a self, fetch: &'a dyn HostFetch) -> BoxFuture<'a, Vec<Pulled>> {
        Box::pin(wire::pull_all(&self.hosts, Source::Azure, move |h| {
            self.read(fetch, h)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample of Microsoft's documentation (virtual-machines/linux/scheduled-events.md).
    const SAMPLE: &str = r#"{
        "DocumentIncarnation":  1,
        "Events":  [
            {
                "EventId": "A123BC45-1234-5678-AB90-ABCDEF123456",
                "EventStatus": "Scheduled",
                "EventType": "Freeze",
                "ResourceType": "VirtualMachine",
                "Resources": ["WestNO_0", "WestNO_1"],
                "NotBefore": "Mon, 11 Apr 2022 22:26:58 GMT",
                "Description": "Virtual machine is being paused because of a memory-preserving Live Migration operation.",
                "EventSource": "Platform",
                "DurationInSeconds": 5
            }
        ]
    }"#;

    #[test]
    fn the_documented_sample_is_one_scheduled_freeze_with_its_not_before() {
        let r = parse("vm-0", SAMPLE).unwrap();
        let ev = &r.events;
        assert_eq!(r.incarnation, 1);
        assert_eq!(r.resources[&ev[0].id], ["WestNO_0", "WestNO_1"]);
        assert_eq!(ev.len(), 1);
        let e = &ev[0];
        assert_eq!(e.id, "A123BC45-1234-5678-AB90-ABCDEF123456");
        assert_eq!(
            (e.code.as_str(), e.state),
            ("Freeze", EventState::Scheduled)
        );
        assert_eq!(e.instance, "vm-0");
        // 11 Apr 2022 22:26:58 UTC
        assert_eq!(e.not_before, Some(1649716018));
        assert_eq!(e.not_after, Some(1649716023));
        assert!(
            e.description.contains("WestNO_0, WestNO_1"),
            "{}",
            e.description
        );
    }

    /// A document from the log of Microsoft's sample service (Azure/vm-scheduled-events):
    /// a user-initiated reboot, no description, duration unknown (-1).
    const USER_REBOOT: &str = r#"{
        "DocumentIncarnation": 2,
        "Events": [
            {
                "EventId": "4CAEA225-A741-474D-A72E-428C86FCD853",
                "EventStatus": "Scheduled",
                "EventType": "Reboot",
                "ResourceType": "VirtualMachine",
                "Resources": [
                    "flatcar-vm1"
                ],
                "NotBefore": "Thu, 22 Jul 2021 04:50:17 GMT",
                "Description": "",
                "EventSource": "User",
                "DurationInSeconds": -1
            }
        ]
    }"#;

    #[test]
    fn an_unknown_duration_leaves_the_end_of_the_window_unknown() {
        let r = parse("vm-1", USER_REBOOT).unwrap();
        let ev = &r.events;
        assert_eq!((r.incarnation, ev.len()), (2, 1));
        // 22 Jul 2021 04:50:17 UTC
        assert_eq!(
            (ev[0].not_before, ev[0].not_after),
            (Some(1626929417), None)
        );
        assert_eq!(ev[0].code, "Reboot");
    }

    #[test]
    fn a_huge_duration_does_not_overflow() {
        let body = SAMPLE.replace(
            "\"DurationInSeconds\": 5",
            "\"DurationInSeconds\": 9223372036854775807",
        );
        let ev = parse("vm-0", &body).unwrap().events;
        assert_eq!(ev[0].not_after, Some(i64::MAX));
    }

    #[test]
    fn a_started_event_has_an_empty_not_before() {
        let body = SAMPLE
            .replace("\"Scheduled\"", "\"Started\"")
            .replace("Mon, 11 Apr 2022 22:26:58 GMT", "");
        let ev = parse("vm-0", &body).unwrap().events;
        assert_eq!((ev[0].state, ev[0].not_before), (EventState::Started, None));
    }

    #[test]
    fn an_empty_document_has_no_events() {
        let r = parse("vm-0", r#"{"DocumentIncarnation":7,"Events":[]}"#).unwrap();
        assert_eq!((r.incarnation, r.events.len()), (7, 0));
    }

    #[test]
    fn an_unknown_status_a_bad_time_or_garbage_is_an_error() {
        let e = parse("h", &SAMPLE.replace("\"Scheduled\"", "\"Done\"")).unwrap_err();
        assert!(e.contains("unknown EventStatus `Done`"), "{e}");
        let e = parse("h", &SAMPLE.replace("Mon, 11 Apr", "Mon, 41 Apr")).unwrap_err();
        assert!(e.contains("NotBefore"), "{e}");
        assert!(parse("h", "<html>").is_err());
        assert!(parse("h", r#"{"Events":[]}"#).is_err());
    }

    #[test]
    fn the_approval_names_the_event() {
        assert_eq!(
            start_request("abc"),
            r#"{"StartRequests":[{"EventId":"abc"}]}"#
        );
    }
}
