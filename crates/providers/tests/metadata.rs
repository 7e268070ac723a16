//! The metadata sources against peers: AWS's own IMDS mock (AEMM) and the tests' fake
//! Azure/GCP/IMDS metadata server (`rollcall_testkit::metadata`), stepped through time.

use rollcall_providers::azure::AzureSource;
use rollcall_providers::gcp::GcpSource;
use rollcall_providers::http::{Direct, Fetch, Request};
use rollcall_providers::imds::ImdsSource;
use rollcall_providers::{EventState, MetaHost, NoticeSource, ProviderError, ProviderEvent};
use rollcall_testkit::aemm::{self, AemmEvent};
use rollcall_testkit::metadata::{GcpWindow, ImdsEvent, MetaServer};
use std::sync::{Arc, Mutex};

const T0: i64 = 1_800_000_000;

/// One pull of `src`: each host's events (by host id), or its error.
async fn pull(src: &dyn NoticeSource) -> Vec<(String, Result<Vec<ProviderEvent>, ProviderError>)> {
    let got = src.pull(&Direct::default()).await;
    got.into_iter().map(|p| (p.host, p.events)).collect()
}

/// The events of the one host `src` covers.
async fn one(src: &dyn NoticeSource) -> Vec<ProviderEvent> {
    let mut got = pull(src).await;
    assert_eq!(got.len(), 1);
    got.remove(0)
        .1
        .unwrap_or_else(|e| panic!("pull failed: {e}"))
}

/// (id, state, not_before) of each event, for compact assertions.
fn brief(ev: &[ProviderEvent]) -> Vec<(String, EventState, Option<i64>)> {
    ev.iter()
        .map(|e| (e.id.clone(), e.state, e.not_before))
        .collect()
}

fn azure(srv: &MetaServer, host: &str) -> AzureSource {
    AzureSource::new(vec![MetaHost::new(host, srv.endpoint(host))])
}

#[tokio::test]
async fn imds_reads_aws_own_mock_with_a_session_token() {
    let ev = AemmEvent {
        code: "system-reboot".into(),
        state: "active".into(),
        not_before: T0,
        not_after: T0 + 3600,
        deadline: T0 + 7 * 86400,
    };
    let peer = aemm::start(&ev);
    // IMDSv2 only: without a token the mock refuses, so a read below used the token
    let url = format!(
        "{}/latest/meta-data/events/maintenance/scheduled",
        peer.endpoint()
    );
    let r = Direct::default().fetch(Request::get(&url)).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.body);

    let src = ImdsSource::new(vec![MetaHost::new("web-1", peer.endpoint())]);
    let got = one(&src).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(
        (e.code.as_str(), e.state),
        ("system-reboot", EventState::Scheduled)
    );
    assert_eq!(
        (e.not_before, e.not_after, e.deadline),
        (Some(T0), Some(T0 + 3600), Some(T0 + 7 * 86400))
    );
    assert_eq!(e.instance, "web-1");
    assert!(!e.id.is_empty());
}

#[tokio::test]
async fn imds_reads_open_and_past_events_from_the_fake_server() {
    let srv = MetaServer::start();
    let ev = |id: &str, state: &str| ImdsEvent {
        id: id.into(),
        code: "instance-reboot".into(),
        state: state.into(),
        not_before: T0,
        not_after: T0 + 600,
    };
    srv.imds_events(
        "db-1",
        vec![
            ev("e-1", "active"),
            ev("e-0", "completed"),
            ev("e-9", "canceled"),
        ],
    );
    let src = ImdsSource::new(vec![MetaHost::new("db-1", srv.endpoint("db-1"))]);
    let got = brief(&one(&src).await);
    assert_eq!(
        got,
        [
            ("e-1".into(), EventState::Scheduled, Some(T0)),
            ("e-0".into(), EventState::Completed, Some(T0)),
            ("e-9".into(), EventState::Canceled, Some(T0)),
        ]
    );
}

#[tokio::test]
async fn an_azure_event_that_started_and_vanished_is_completed_once() {
    let srv = MetaServer::start();
    let src = azure(&srv, "etcd-1");
    assert!(one(&src).await.is_empty());
    srv.azure_schedule("etcd-1", "ev-a", "Reboot", T0);
    let got = one(&src).await;
    assert_eq!(
        brief(&got),
        [("ev-a".into(), EventState::Scheduled, Some(T0))]
    );
    assert_eq!(
        (got[0].code.as_str(), got[0].not_after),
        ("Reboot", Some(T0 + 900))
    );
    srv.azure_start("etcd-1", "ev-a");
    assert_eq!(
        brief(&one(&src).await),
        [("ev-a".into(), EventState::Started, None)]
    );
    srv.azure_end("etcd-1", "ev-a");
    assert_eq!(
        brief(&one(&src).await),
        [("ev-a".into(), EventState::Completed, None)]
    );
    assert!(
        one(&src).await.is_empty(),
        "a vanished event is reported once"
    );
    assert_eq!(srv.azure_incarnation("etcd-1"), 3);
}

#[tokio::test]
async fn an_azure_event_that_vanished_before_it_started_is_canceled() {
    let srv = MetaServer::start();
    let src = azure(&srv, "etcd-2");
    srv.azure_schedule("etcd-2", "ev-b", "Redeploy", T0);
    assert_eq!(one(&src).await[0].state, EventState::Scheduled);
    srv.azure_end("etcd-2", "ev-b");
    assert_eq!(
        brief(&one(&src).await),
        [("ev-b".into(), EventState::Canceled, Some(T0))]
    );
    assert!(one(&src).await.is_empty());
}

#[tokio::test]
async fn a_moved_azure_not_before_is_the_same_event_at_its_new_time() {
    let srv = MetaServer::start();
    let src = azure(&srv, "etcd-1");
    srv.azure_schedule("etcd-1", "ev-c", "Freeze", T0);
    assert_eq!(one(&src).await[0].not_before, Some(T0));
    srv.azure_move("etcd-1", "ev-c", T0 + 1800);
    assert_eq!(
        brief(&one(&src).await),
        [("ev-c".into(), EventState::Scheduled, Some(T0 + 1800))]
    );
}

#[tokio::test]
async fn an_azure_approval_is_posted_recorded_and_starts_the_event() {
    let srv = MetaServer::start();
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let h = hooked.clone();
    srv.on_approve(move |host, id| h.lock().unwrap().push(format!("{host}/{id}")));
    let src = azure(&srv, "etcd-1");
    srv.azure_schedule("etcd-1", "ev-d", "Reboot", T0);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    src.approve(&Direct::default(), "etcd-1", "ev-d")
        .await
        .unwrap();
    let a = srv.approvals();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].host.as_str(), a[0].event_id.as_str()),
        ("etcd-1", "ev-d")
    );
    assert!(a[0].wall_ms >= before, "{} < {before}", a[0].wall_ms);
    rollcall_testkit::wait_for(
        "the approval hook",
        std::time::Duration::from_secs(5),
        || hooked.lock().unwrap().as_slice() == ["etcd-1/ev-d"],
    );
    assert_eq!(one(&src).await[0].state, EventState::Started);
    assert_eq!(
        src.affected("etcd-1", "ev-d"),
        Some(vec!["etcd-1".to_string()])
    );
    assert_eq!(src.affected("etcd-1", "other"), None);
}

#[tokio::test]
async fn a_refused_approval_is_an_error_naming_the_host_and_event() {
    let srv = MetaServer::start();
    let src = azure(&srv, "etcd-1");
    let e = src
        .approve(&Direct::default(), "etcd-1", "no-such-event")
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ProviderError::Approve { .. }), "{e:?}");
    assert!(
        msg.contains("etcd-1") && msg.contains("no-such-event") && msg.contains("HTTP 400"),
        "{msg}"
    );
    assert!(srv.approvals().is_empty());
    let e = src
        .approve(&Direct::default(), "redis-9", "x")
        .await
        .unwrap_err();
    assert!(matches!(e, ProviderError::NotCovered { .. }), "{e:?}");
}

#[tokio::test]
async fn gcp_follows_a_window_that_moves_starts_and_ends() {
    let srv = MetaServer::start();
    let src = GcpSource::new(vec![MetaHost::new("redis-1", srv.endpoint("redis-1"))]);
    assert!(
        one(&src).await.is_empty(),
        "NONE and no notification: nothing"
    );

    let w = |start: i64| GcpWindow {
        start,
        end: start + 3600,
        latest_start: start + 86400,
        ongoing: false,
    };
    srv.gcp_window("redis-1", Some(w(T0)));
    let got = one(&src).await;
    let first = "window-2027-01-15T08:00:00Z".to_string();
    assert_eq!(
        brief(&got),
        [(first.clone(), EventState::Scheduled, Some(T0))]
    );
    assert_eq!(
        (got[0].not_after, got[0].deadline),
        (Some(T0 + 3600), Some(T0 + 86400))
    );

    srv.gcp_window("redis-1", Some(w(T0 + 7200)));
    let moved = "window-2027-01-15T10:00:00Z".to_string();
    assert_eq!(
        brief(&one(&src).await),
        [
            (moved.clone(), EventState::Scheduled, Some(T0 + 7200)),
            (first, EventState::Canceled, Some(T0))
        ],
        "a moved window is a new event and the old one canceled"
    );

    srv.gcp_event("redis-1", "TERMINATE_ON_HOST_MAINTENANCE");
    let got = one(&src).await;
    assert_eq!(
        brief(&got),
        [(moved.clone(), EventState::Started, Some(T0 + 7200))]
    );
    assert_eq!(got[0].code, "TERMINATE_ON_HOST_MAINTENANCE");

    srv.gcp_event("redis-1", "NONE");
    srv.gcp_window("redis-1", None);
    assert_eq!(
        brief(&one(&src).await),
        [(moved, EventState::Completed, Some(T0 + 7200))]
    );
    assert!(one(&src).await.is_empty());
}

#[tokio::test]
async fn gcp_maintenance_without_a_window_is_a_started_event() {
    let srv = MetaServer::start();
    let src = GcpSource::new(vec![MetaHost::new("redis-2", srv.endpoint("redis-2"))]);
    srv.gcp_event("redis-2", "MIGRATE_ON_HOST_MAINTENANCE");
    let got = one(&src).await;
    assert_eq!(
        (got[0].state, got[0].code.as_str()),
        (EventState::Started, "MIGRATE_ON_HOST_MAINTENANCE")
    );
    srv.gcp_event("redis-2", "NONE");
    assert_eq!(one(&src).await[0].state, EventState::Completed);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_an_error_for_that_host_only() {
    let srv = MetaServer::start();
    srv.azure_schedule("ok-1", "ev-e", "Reboot", T0);
    let src = AzureSource::new(vec![
        MetaHost::new("ok-1", srv.endpoint("ok-1")),
        MetaHost::new("gone-1", "http://127.0.0.1:1"),
    ]);
    let got = pull(&src).await;
    assert_eq!(got[0].0, "ok-1");
    assert_eq!(got[0].1.as_ref().unwrap().len(), 1);
    assert_eq!(got[1].0, "gone-1");
    let e = got[1].1.as_ref().unwrap_err();
    assert!(matches!(e, ProviderError::Http { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("127.0.0.1:1/metadata/scheduledevents"),
        "{e}"
    );
}

#[tokio::test]
async fn a_garbage_payload_is_an_error_never_no_events() {
    let srv = MetaServer::start();
    for h in ["a", "g", "i"] {
        srv.garbage(h, true);
    }
    let mh = |h: &str| vec![MetaHost::new(h, srv.endpoint(h))];
    let srcs: Vec<Box<dyn NoticeSource>> = vec![
        Box::new(AzureSource::new(mh("a"))),
        Box::new(GcpSource::new(mh("g"))),
        Box::new(ImdsSource::new(mh("i"))),
    ];
    for src in &srcs {
        let got = pull(src.as_ref()).await;
        let e = got[0].1.as_ref().unwrap_err();
        assert!(
            matches!(e, ProviderError::Parse { .. }),
            "{:?}: {e:?}",
            src.source()
        );
        assert!(
            e.to_string().contains(&format!("{}: http://", got[0].0)),
            "{e}"
        );
    }
}

#[tokio::test]
async fn the_hosts_and_endpoints_of_the_fleet_file_are_the_ones_read() {
    use rollcall_providers::settings::ProviderSettings;
    let srv = MetaServer::start();
    srv.azure_schedule("etcd-1", "ev-f", "Reboot", T0);
    srv.azure_schedule("etcd-2", "ev-g", "Reboot", T0 + 60);
    // etcd-1 by its own endpoint; etcd-2 by the table's, which is etcd-2's
    let text = format!(
        "[azure]\nendpoint = \"{}\"\nvia = \"direct\"\n[azure.host.etcd-1]\nendpoint = \"{}\"\n[azure.host.etcd-2]\n",
        srv.endpoint("etcd-2"),
        srv.endpoint("etcd-1")
    );
    let s = ProviderSettings::load("fleet.toml", &text, &["etcd-1", "etcd-2"]).unwrap();
    let src = AzureSource::new(s.azure.unwrap().hosts);
    let got: Vec<(String, Vec<String>)> = pull(&src)
        .await
        .into_iter()
        .map(|(h, r)| (h, r.unwrap().into_iter().map(|e| e.id).collect()))
        .collect();
    assert_eq!(
        got,
        [
            ("etcd-1".into(), vec!["ev-f".into()]),
            ("etcd-2".into(), vec!["ev-g".into()])
        ]
    );
}

#[tokio::test]
async fn an_event_that_vanished_while_rollcall_was_down_is_reported_after_resume() {
    let srv = MetaServer::start();
    srv.azure_schedule("etcd-1", "ev-h", "Reboot", T0);
    srv.azure_start("etcd-1", "ev-h");
    let open = one(&azure(&srv, "etcd-1")).await;
    // rollcall stops; the event ends; a new process resumes with what it journalled
    srv.azure_end("etcd-1", "ev-h");
    let src = azure(&srv, "etcd-1");
    src.resume(open);
    assert_eq!(
        brief(&one(&src).await),
        [("ev-h".into(), EventState::Completed, None)]
    );
}

#[tokio::test]
async fn an_event_for_two_vms_names_both_and_one_approval_starts_it_on_both() {
    let srv = MetaServer::start();
    srv.azure_schedule_for(&["etcd-1", "etcd-2"], "ev-set", "Reboot", T0);
    let src = AzureSource::new(vec![
        MetaHost::new("etcd-1", srv.endpoint("etcd-1")),
        MetaHost::new("etcd-2", srv.endpoint("etcd-2")),
    ]);
    pull(&src).await;
    let both = Some(vec!["etcd-1".to_string(), "etcd-2".to_string()]);
    assert_eq!(src.affected("etcd-1", "ev-set"), both);
    assert_eq!(src.affected("etcd-2", "ev-set"), both);
    src.approve(&Direct::default(), "etcd-1", "ev-set")
        .await
        .unwrap();
    for (host, r) in pull(&src).await {
        assert_eq!(r.unwrap()[0].state, EventState::Started, "{host}");
    }
    assert_eq!(srv.approvals().len(), 1);
}
