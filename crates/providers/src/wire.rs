//! What every metadata source shares: the times its provider writes, one fleet host's
//! endpoint, reading one JSON document, and following events that disappear.

use crate::http::{HostFetch, Request};
use crate::{EventState, ProviderError, ProviderEvent, Pulled, Source};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// One fleet host a metadata source reads, and the base URL of its metadata service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaHost {
    pub host: String,
    pub endpoint: String,
}

impl MetaHost {
    pub fn new(host: impl Into<String>, endpoint: impl Into<String>) -> MetaHost {
        MetaHost {
            host: host.into(),
            endpoint: endpoint.into(),
        }
    }

    /// `endpoint` + `path`, with exactly one slash between them.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.endpoint.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }
}

/// Read every host at once (`read` per host); one [`Pulled`] per host, in their order.
pub async fn pull_all<'a, F, Fut>(hosts: &'a [MetaHost], source: Source, read: F) -> Vec<Pulled>
where
    F: Fn(&'a MetaHost) -> Fut,
    Fut: Future<Output = Result<Vec<ProviderEvent>, ProviderError>> + Send + 'a,
{
    let reads = hosts.iter().map(|h| {
        let f = read(h);
        async move {
            Pulled {
                host: h.host.clone(),
                source,
                events: f.await,
            }
        }
    });
    futures_util::future::join_all(reads).await
}

/// A time as the metadata services write it: `"2 Jan 2006 15:04:05 GMT"` (AWS IMDS) or
/// RFC 1123 `"Mon, 11 Apr 2026 22:26:58 GMT"` (Azure); Unix seconds. The weekday, when
/// given, is not checked against the date (the date is what counts).
pub fn parse_gmt(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let t = match t.split_once(',') {
        Some((day, rest)) if day.len() == 3 => rest.trim(),
        _ => t,
    };
    let t = t
        .strip_suffix("GMT")
        .or_else(|| t.strip_suffix("UTC"))
        .ok_or_else(|| format!("`{s}` is not a GMT time like \"2 Jan 2006 15:04:05 GMT\""))?;
    let dt = jiff::civil::DateTime::strptime("%d %b %Y %H:%M:%S", t.trim())
        .map_err(|e| format!("`{s}`: {e}"))?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .map_err(|e| format!("`{s}`: {e}"))
}

/// An RFC 3339 time (`2024-12-10T16:00:00.000-08:00`), Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

/// An optional time field: absent or empty is `None`.
pub fn opt_time(
    s: Option<&str>,
    parse: fn(&str) -> Result<i64, String>,
) -> Result<Option<i64>, String> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => parse(t).map(Some),
    }
}

/// GET (or any request) on the host; a non-200 answer is an error naming the URL.
pub async fn fetch_ok(
    fetch: &dyn HostFetch,
    host: &str,
    req: Request,
) -> Result<String, ProviderError> {
    let url = req.url.clone();
    let r = fetch.fetch_on(host, req).await?;
    if r.status != 200 {
        return Err(ProviderError::Status {
            url,
            status: r.status,
            body: short(&r.body),
        });
    }
    Ok(r.body)
}

/// The first 200 characters of a body, for error messages.
pub fn short(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A parse error about `what` (`host: url`).
pub fn parse_err(what: impl Into<String>, error: impl ToString) -> ProviderError {
    ProviderError::Parse {
        what: what.into(),
        error: error.to_string(),
    }
}

/// The events each host showed when last read, so that one which disappears (Azure has
/// no "completed"; a GCP window that moves) is reported once: `Completed` if it had
/// started, else `Canceled`. The one owner of that memory, kept by its source.
#[derive(Debug, Default)]
pub struct Vanished {
    seen: Mutex<HashMap<String, Vec<ProviderEvent>>>,
}

impl Vanished {
    /// Take `open` (events still open when rollcall last stopped, from its journal) as
    /// last seen on their hosts (`ProviderEvent::instance`), so that one that vanished
    /// while rollcall was down is still reported once.
    pub fn resume(&self, open: Vec<ProviderEvent>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for e in open.into_iter().filter(|e| e.state.is_open()) {
            let host = seen.entry(e.instance.clone()).or_default();
            if !host.iter().any(|x| x.id == e.id) {
                host.push(e);
            }
        }
    }

    /// `now` as read for `host`, followed by the events last seen there and gone from
    /// `now` (each once); `now` becomes what was last seen.
    pub fn follow(&self, host: &str, mut now: Vec<ProviderEvent>) -> Vec<ProviderEvent> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let before = seen
            .insert(host.to_string(), now.clone())
            .unwrap_or_default();
        for mut e in before {
            if now.iter().any(|n| n.id == e.id) {
                continue;
            }
            e.state = match e.state {
                EventState::Started => EventState::Completed,
                _ => EventState::Canceled,
            };
            now.push(e);
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imds_and_rfc1123_times_are_read_as_utc() {
        // 2 Jan 2006 15:04:05 UTC = 1136214245
        assert_eq!(parse_gmt("2 Jan 2006 15:04:05 GMT"), Ok(1136214245));
        assert_eq!(parse_gmt("Mon, 02 Jan 2006 15:04:05 GMT"), Ok(1136214245));
        assert_eq!(parse_gmt("Mon, 19 Sep 2016 18:29:47 GMT"), Ok(1474309787));
    }

    #[test]
    fn a_time_without_its_zone_or_with_garbage_is_an_error() {
        assert!(parse_gmt("2 Jan 2006 15:04:05").is_err());
        assert!(parse_gmt("soon GMT").is_err());
        assert!(parse_gmt("").is_err());
        assert_eq!(opt_time(Some(""), parse_gmt), Ok(None));
        assert_eq!(opt_time(None, parse_gmt), Ok(None));
    }

    #[test]
    fn rfc3339_with_an_offset_is_read_as_its_instant() {
        assert_eq!(
            parse_rfc3339("2006-01-02T07:04:05.000-08:00"),
            Ok(1136214245)
        );
        assert!(parse_rfc3339("NONE").is_err());
    }

    fn ev(id: &str, state: EventState) -> ProviderEvent {
        ProviderEvent {
            source: Source::Azure,
            id: id.into(),
            instance: "h".into(),
            code: "Reboot".into(),
            state,
            not_before: None,
            not_after: None,
            deadline: None,
            description: String::new(),
        }
    }

    #[test]
    fn vanished_events_are_completed_if_started_else_canceled_once_per_host() {
        let v = Vanished::default();
        let s = |e: &[ProviderEvent]| {
            e.iter()
                .map(|e| (e.id.clone(), e.state))
                .collect::<Vec<_>>()
        };
        v.follow(
            "h",
            vec![ev("a", EventState::Started), ev("b", EventState::Scheduled)],
        );
        v.follow("other", vec![ev("c", EventState::Scheduled)]);
        let got = v.follow("h", vec![ev("d", EventState::Scheduled)]);
        assert_eq!(
            s(&got),
            [
                ("d".into(), EventState::Scheduled),
                ("a".into(), EventState::Completed),
                ("b".into(), EventState::Canceled)
            ]
        );
        assert_eq!(
            s(&v.follow("h", vec![ev("d", EventState::Scheduled)])).len(),
            1
        );
        assert_eq!(
            s(&v.follow("other", vec![ev("c", EventState::Started)])).len(),
            1
        );
    }

    #[test]
    fn events_open_when_rollcall_stopped_are_followed_after_a_resume() {
        let v = Vanished::default();
        v.resume(vec![
            ev("a", EventState::Started),
            ev("b", EventState::Canceled),
        ]);
        let got = v.follow("h", vec![]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].id.as_str(), got[0].state),
            ("a", EventState::Completed)
        );
    }

    #[test]
    fn urls_join_with_one_slash() {
        let h = MetaHost::new("a", "http://x:1/a/");
        assert_eq!(h.url("/metadata/x"), "http://x:1/a/metadata/x");
    }
}
