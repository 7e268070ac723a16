//! The metadata parsers on arbitrary answers: never a panic, and an answer that parses
//! keeps what it says (a payload cut short or with a byte changed is an error or a
//! well-formed reading, never a crash).

use proptest::prelude::*;
use rollcall_providers::{azure, gcp, imds};

const AZURE: &str = r#"{"DocumentIncarnation":3,"Events":[{"EventId":"A1","EventStatus":"Scheduled","EventType":"Reboot","ResourceType":"VirtualMachine","Resources":["vm"],"NotBefore":"Mon, 11 Apr 2022 22:26:58 GMT","Description":"d","EventSource":"Platform","DurationInSeconds":900}]}"#;
const GCP: &str = r#"{"can_reschedule":false,"latest_window_start_time":"2024-07-19T21:00:00Z","maintenance_status":"PENDING","type":"SCHEDULED","window_end_time":"2024-07-18T23:00:00Z","window_start_time":"2024-07-18T21:00:00Z"}"#;
const IMDS: &str = r#"[{"NotBefore":"21 Jan 2019 09:00:43 GMT","Code":"system-reboot","Description":"scheduled reboot","EventId":"instance-event-0d5","NotAfter":"21 Jan 2019 09:17:23 GMT","State":"active"}]"#;

/// `s` with the byte at `at` replaced by `b` (lossily, as text), or cut at `at`.
fn mutate(s: &str, at: usize, b: u8, cut: bool) -> String {
    let mut v = s.as_bytes().to_vec();
    let at = at % v.len();
    if cut {
        v.truncate(at);
    } else {
        v[at] = b;
    }
    String::from_utf8_lossy(&v).into_owned()
}

fn all(body: &str) {
    if let Ok(r) = azure::parse("h", body) {
        assert!(r.events.iter().all(|e| e.instance == "h"));
        assert!(r.events.iter().all(|e| r.resources.contains_key(&e.id)));
    }
    if let Ok(Some(e)) = gcp::parse_upcoming("h", body) {
        assert!(e.not_before.is_some());
    }
    let _ = gcp::parse_event(body);
    let _ = imds::parse("h", body);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(body in ".{0,300}") {
        all(&body);
    }

    #[test]
    fn a_damaged_sample_never_panics(at in 0usize..400, b in any::<u8>(), cut in any::<bool>()) {
        for s in [AZURE, GCP, IMDS] {
            all(&mutate(s, at, b, cut));
        }
    }
}

#[test]
fn the_undamaged_samples_parse() {
    assert_eq!(azure::parse("h", AZURE).unwrap().events.len(), 1);
    assert!(gcp::parse_upcoming("h", GCP).unwrap().is_some());
    assert_eq!(imds::parse("h", IMDS).unwrap().len(), 1);
}
