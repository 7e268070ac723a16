//! `OnHost`: the metadata sources read through `curl` on the host, over real SSH
//! (loopback sshd) and through an exec template, against the tests' fake metadata server.

use rollcall_drivers::config::SshSettings;
use rollcall_drivers::onhost::{OnHost, host_fetch};
use rollcall_drivers::transport::{ExecTransport, SshTransport, Transport};
use rollcall_fleet::{LoadOptions, load_str};
use rollcall_providers::azure::AzureSource;
use rollcall_providers::gcp::GcpSource;
use rollcall_providers::{EventState, MetaHost, NoticeSource, ProviderError, Via};
use rollcall_testkit::loopback::sshd;
use rollcall_testkit::metadata::{GcpWindow, MetaServer};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_800_000_000;

fn fleet(addr: &str) -> rollcall_core::Fleet {
    let text = format!(
        "[[host]]\nid = \"etcd-1\"\naddress = \"{addr}\"\nregion = \"lab\"\nzone = \"a\"\n"
    );
    let d = std::env::temp_dir();
    load_str("onhost.toml", &text, &d, &LoadOptions { now: 0 }).unwrap()
}

#[tokio::test]
async fn azure_events_are_read_and_approved_with_curl_over_ssh() {
    let s = sshd("onhost-ssh", "127.0.0.45");
    let settings = SshSettings {
        port: s.port,
        identity: Some(s.key.clone()),
        known_hosts: Some(s.known_hosts.clone()),
        connect_timeout: Duration::from_secs(5),
        ..SshSettings::default()
    };
    let transport: Arc<dyn Transport> = Arc::new(SshTransport { settings });
    let on = OnHost::new(transport, &fleet(&s.addr));
    let srv = MetaServer::start();
    srv.azure_schedule("etcd-1", "ev-1", "Reboot", T0);
    let src = AzureSource::new(vec![MetaHost::new("etcd-1", srv.endpoint("etcd-1"))]);

    let got = src.pull(&on).await;
    let ev = got[0].events.as_ref().unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].id.as_str(), ev[0].state, ev[0].not_before),
        ("ev-1", EventState::Scheduled, Some(T0))
    );

    src.approve(&on, "etcd-1", "ev-1").await.unwrap();
    let a = srv.approvals();
    assert_eq!((a.len(), a[0].event_id.as_str()), (1, "ev-1"));
    let got = src.pull(&on).await;
    assert_eq!(
        got[0].events.as_ref().unwrap()[0].state,
        EventState::Started
    );
}

#[tokio::test]
async fn curl_failing_on_the_host_is_an_error_naming_host_and_url() {
    let exec: Arc<dyn Transport> = Arc::new(ExecTransport {
        template: "sh -c {command}".into(),
    });
    let on = host_fetch(Via::Ssh, exec, &fleet("127.0.0.1"));
    let on = on.as_ref();
    let srv = MetaServer::start();
    let w = GcpWindow {
        start: T0,
        end: T0 + 600,
        latest_start: T0,
        ongoing: false,
    };
    srv.gcp_window("etcd-1", Some(w));
    let src = GcpSource::new(vec![MetaHost::new("etcd-1", srv.endpoint("etcd-1"))]);
    let got = src.pull(on).await;
    assert_eq!(got[0].events.as_ref().unwrap()[0].not_before, Some(T0));

    let req = rollcall_providers::http::Request::get("http://127.0.0.1:1/computeMetadata/v1/x");
    let e = on.fetch_on("etcd-1", req).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ProviderError::Http { .. }), "{e:?}");
    assert!(
        msg.contains("http://127.0.0.1:1/computeMetadata/v1/x")
            && msg.contains("on etcd-1: curl: exit 7"),
        "{msg}"
    );
    let e = on
        .fetch_on("db-9", rollcall_providers::http::Request::get("http://x"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("db-9: not a host of this fleet"),
        "{e}"
    );
}
