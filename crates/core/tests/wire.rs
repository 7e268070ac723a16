//! The journal's wire format, version [`WIRE_VERSION`]: every kind of record and event
//! serializes to exactly the bytes journals already hold, and those bytes read back to
//! the same value. A failure here means journals written before would no longer load:
//! keep the old form readable and raise the version instead.

use rollcall_core::engine::*;

fn records() -> Vec<Output> {
    vec![
        Output::Transition(Transition {
            host: 3,
            from: Phase::Preflight,
            to: Phase::Draining,
            at: 1411675200,
            boot_id: Some("b-1".into()),
            out: false,
            note: None,
        }),
        Output::Transition(Transition {
            host: 4,
            from: Phase::Restoring,
            to: Phase::Failed,
            at: 1411675260,
            boot_id: None,
            out: true,
            note: Some("cluster not healthy in time: red".into()),
        }),
        Output::Command {
            at: 1,
            command: Command::Announce { region: 1 },
        },
        Output::Command {
            at: 2,
            command: Command::Preflight {
                host: 0,
                with: vec![],
            },
        },
        Output::Command {
            at: 2,
            command: Command::Preflight {
                host: 0,
                with: vec![1, 2],
            },
        },
        Output::Command {
            at: 3,
            command: Command::Drain { host: 0 },
        },
        Output::Command {
            at: 4,
            command: Command::Reboot {
                host: 0,
                boot_id: "b-0".into(),
                attempt: 2,
            },
        },
        Output::Command {
            at: 5,
            command: Command::Probe { host: 0 },
        },
        Output::Command {
            at: 6,
            command: Command::Verify { host: 0 },
        },
        Output::Command {
            at: 7,
            command: Command::Restore { host: 0 },
        },
        Output::Command {
            at: 8,
            command: Command::Release { host: 0 },
        },
        Output::Command {
            at: 9,
            command: Command::Gate {
                host: 0,
                cluster: 5,
            },
        },
        Output::Command {
            at: 10,
            command: Command::Replace { host: 0 },
        },
        Output::Notice(Notice {
            kind: NoticeKind::Scheduled,
            region: 0,
            host: None,
            at: 11,
            text: "maintenance m in dfw".into(),
        }),
        Output::Notice(Notice {
            kind: NoticeKind::HostMissing,
            region: 1,
            host: Some(7),
            at: 12,
            text: "h7 did not come back".into(),
        }),
        // added in version 1 (additive: older journals never hold it)
        Output::Notice(Notice {
            kind: NoticeKind::ProviderRisk,
            region: 0,
            host: Some(3),
            at: 12,
            text: "provider windows take 2 of c's 3 members out together".into(),
        }),
        Output::State {
            at: 13,
            state: RunState::Running,
        },
        Output::State {
            at: 14,
            state: RunState::Paused {
                reason: PauseReason::Escalation,
            },
        },
        Output::State {
            at: 15,
            state: RunState::Aborting,
        },
        Output::Held {
            at: 16,
            host: 2,
            holds: vec![Hold {
                cluster: 1,
                undo: r#"{"persistent":"all"}"#.into(),
            }],
        },
        Output::Released { at: 17, host: 2 },
    ]
}

fn events() -> Vec<Event> {
    vec![
        Event::Announced {
            region: 0,
            result: Ok(()),
        },
        Event::Preflight {
            host: 1,
            result: Ok("b-1".into()),
        },
        Event::Preflight {
            host: 1,
            result: Err("ssh: refused".into()),
        },
        Event::Drained {
            host: 1,
            result: Ok(()),
            holds: vec![],
        },
        Event::Drained {
            host: 1,
            result: Err("timeout".into()),
            holds: vec![Hold {
                cluster: 0,
                undo: "x".into(),
            }],
        },
        Event::RebootSent {
            host: 1,
            result: Ok(()),
        },
        Event::Probed {
            host: 1,
            boot_id: None,
        },
        Event::Probed {
            host: 1,
            boot_id: Some("b-2".into()),
        },
        Event::Verified {
            host: 1,
            result: Ok(()),
        },
        Event::Restored {
            host: 1,
            result: Err("no".into()),
        },
        Event::Gate {
            host: 1,
            cluster: 2,
            healthy: false,
            detail: "yellow".into(),
        },
        Event::Replaced {
            host: 1,
            result: Ok(()),
        },
        Event::Control {
            control: Control::Pause,
        },
    ]
}

fn every_phase_and_state() -> (Vec<Phase>, Vec<RunState>, Vec<NoticeKind>) {
    (
        Phase::ALL.to_vec(),
        vec![
            RunState::Running,
            RunState::Paused {
                reason: PauseReason::Operator,
            },
            RunState::Paused {
                reason: PauseReason::Missing,
            },
            RunState::Paused {
                reason: PauseReason::Escalation,
            },
            RunState::Paused {
                reason: PauseReason::Interrupted,
            },
            RunState::Aborting,
            RunState::Completed,
            RunState::Aborted,
        ],
        vec![
            NoticeKind::Scheduled,
            NoticeKind::Started,
            NoticeKind::Completed,
            NoticeKind::HostMissing,
            NoticeKind::HostReturned,
            NoticeKind::HostReplaced,
            NoticeKind::Escalation,
            NoticeKind::ProviderRisk,
        ],
    )
}

/// Version 1, as the runtime journals it (`serde_json` of each [`Output`]), one per line.
const RECORDS_V1: &str = r#"
{"type":"transition","host":3,"from":"preflight","to":"draining","at":1411675200,"boot_id":"b-1"}
{"type":"transition","host":4,"from":"restoring","to":"failed","at":1411675260,"out":true,"note":"cluster not healthy in time: red"}
{"type":"command","at":1,"command":{"cmd":"announce","region":1}}
{"type":"command","at":2,"command":{"cmd":"preflight","host":0}}
{"type":"command","at":2,"command":{"cmd":"preflight","host":0,"with":[1,2]}}
{"type":"command","at":3,"command":{"cmd":"drain","host":0}}
{"type":"command","at":4,"command":{"cmd":"reboot","host":0,"boot_id":"b-0","attempt":2}}
{"type":"command","at":5,"command":{"cmd":"probe","host":0}}
{"type":"command","at":6,"command":{"cmd":"verify","host":0}}
{"type":"command","at":7,"command":{"cmd":"restore","host":0}}
{"type":"command","at":8,"command":{"cmd":"release","host":0}}
{"type":"command","at":9,"command":{"cmd":"gate","host":0,"cluster":5}}
{"type":"command","at":10,"command":{"cmd":"replace","host":0}}
{"type":"notice","kind":"scheduled","region":0,"host":null,"at":11,"text":"maintenance m in dfw"}
{"type":"notice","kind":"host_missing","region":1,"host":7,"at":12,"text":"h7 did not come back"}
{"type":"notice","kind":"provider_risk","region":0,"host":3,"at":12,"text":"provider windows take 2 of c's 3 members out together"}
{"type":"state","at":13,"state":{"state":"running"}}
{"type":"state","at":14,"state":{"state":"paused","reason":"escalation"}}
{"type":"state","at":15,"state":{"state":"aborting"}}
{"type":"held","at":16,"host":2,"holds":[{"cluster":1,"undo":"{\"persistent\":\"all\"}"}]}
{"type":"released","at":17,"host":2}
"#;

/// Version 1 of the events (what drivers and controls feed the engine).
const EVENTS_V1: &str = r#"
{"event":"announced","region":0,"result":{"Ok":null}}
{"event":"preflight","host":1,"result":{"Ok":"b-1"}}
{"event":"preflight","host":1,"result":{"Err":"ssh: refused"}}
{"event":"drained","host":1,"result":{"Ok":null}}
{"event":"drained","host":1,"result":{"Err":"timeout"},"holds":[{"cluster":0,"undo":"x"}]}
{"event":"reboot_sent","host":1,"result":{"Ok":null}}
{"event":"probed","host":1,"boot_id":null}
{"event":"probed","host":1,"boot_id":"b-2"}
{"event":"verified","host":1,"result":{"Ok":null}}
{"event":"restored","host":1,"result":{"Err":"no"}}
{"event":"gate","host":1,"cluster":2,"healthy":false,"detail":"yellow"}
{"event":"replaced","host":1,"result":{"Ok":null}}
{"event":"control","control":"pause"}
"#;

const NAMES_V1: [&str; 4] = [
    r#"["skipped","pending","announced","preflight","draining","rebooting","returning","verifying","restoring","healthy","failed","missing","replaced"]"#,
    r#"[{"state":"running"},{"state":"paused","reason":"operator"},{"state":"paused","reason":"missing"},{"state":"paused","reason":"escalation"},{"state":"paused","reason":"interrupted"},{"state":"aborting"},{"state":"completed"},{"state":"aborted"}]"#,
    r#"["scheduled","started","completed","host_missing","host_returned","host_replaced","escalation","provider_risk"]"#,
    r#"["pause","resume","abort"]"#,
];

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

fn same_bytes<T>(values: &[T], expected: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let expected = lines(expected);
    assert_eq!(values.len(), expected.len());
    for (v, line) in values.iter().zip(expected) {
        assert_eq!(serde_json::to_string(v).unwrap(), line);
        let back: T = serde_json::from_str(line).unwrap();
        assert_eq!(&back, v, "{line}");
        // the store keeps the JSON value (the runtime's `serde_json::to_value`)
        let value = serde_json::to_value(v).unwrap();
        assert_eq!(&serde_json::from_value::<T>(value).unwrap(), v);
    }
}

#[test]
fn the_wire_format_is_version_1() {
    assert_eq!(WIRE_VERSION, 1);
}

#[test]
fn every_record_kind_keeps_its_version_1_bytes() {
    same_bytes(&records(), RECORDS_V1);
}

#[test]
fn every_event_kind_keeps_its_version_1_bytes() {
    same_bytes(&events(), EVENTS_V1);
}

#[test]
fn phases_run_states_notice_kinds_and_controls_keep_their_names() {
    let (phases, states, kinds) = every_phase_and_state();
    let controls = [Control::Pause, Control::Resume, Control::Abort];
    let got = [
        serde_json::to_string(&phases).unwrap(),
        serde_json::to_string(&states).unwrap(),
        serde_json::to_string(&kinds).unwrap(),
        serde_json::to_string(&controls).unwrap(),
    ];
    assert_eq!(got, NAMES_V1);
    for p in Phase::ALL {
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            format!("\"{}\"", p.name())
        );
    }
}

/// Fields added after version 1 was first written are optional: the oldest form of a
/// transition, a preflight command and a drained event still loads.
#[test]
fn records_without_the_optional_fields_still_load() {
    let t: Output = serde_json::from_str(
        r#"{"type":"transition","host":1,"from":"pending","to":"announced","at":5}"#,
    )
    .unwrap();
    let Output::Transition(t) = t else {
        panic!("not a transition: {t:?}")
    };
    assert_eq!((t.boot_id, t.out, t.note), (None, false, None));
    let c: Output =
        serde_json::from_str(r#"{"type":"command","at":2,"command":{"cmd":"preflight","host":0}}"#)
            .unwrap();
    assert_eq!(
        c,
        Output::Command {
            at: 2,
            command: Command::Preflight {
                host: 0,
                with: vec![]
            }
        }
    );
    let e: Event =
        serde_json::from_str(r#"{"event":"drained","host":1,"result":{"Ok":null}}"#).unwrap();
    assert_eq!(
        e,
        Event::Drained {
            host: 1,
            result: Ok(()),
            holds: vec![]
        }
    );
}
