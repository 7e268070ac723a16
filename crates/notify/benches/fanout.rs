//! Fan-out of one notice to N webhook subscribers (default 100,000) on a local sink:
//! outbox writes, rendering, Standard Webhooks signing and HTTP POSTs all counted.
//!
//! `cargo bench -p rollcall-notify --bench fanout -- [--subscribers N] [--concurrency C]`
//!
//! The sink (axum, HTTP/1.1 keep-alive) runs in the same process on its own runtime, so
//! the peak RSS reported covers both.

use rollcall_fleet::{LoadOptions, load_str};
use rollcall_notify::config::{Channel, Format, NotifyConfig, Settings, Subscriber, decode_secret};
use rollcall_notify::render::{Note, NoteKind};
use rollcall_notify::{DeliveryStatus, Notifier, summary};
use rollcall_testkit::webhook::Sink;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLEET: &str = r#"
host = [ { id = "h1", region = "r1", zone = "a" } ]
[fleet]
name = "bench"
[maintenance]
name = "bench"
start = "2026-01-05T00:00:00Z"
"#;

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let n = arg("--subscribers", 100_000);
    let conc = arg("--concurrency", 256);
    // the sink (its own thread and runtime, counting POSTs)
    let sink = Sink::counting();
    let port = sink.port;
    let dir = tempfile::tempdir().unwrap();
    let fleet =
        Arc::new(load_str("bench.toml", FLEET, dir.path(), &LoadOptions { now: 0 }).unwrap());
    let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let subscribers: Vec<Subscriber> = (0..n)
        .map(|i| Subscriber {
            id: format!("sub-{i:06}"),
            tenant: None,
            regions: BTreeSet::from([0]),
            clusters: BTreeSet::new(),
            channel: Channel::Webhook {
                url: format!("http://127.0.0.1:{port}/hook/{i}"),
                secret: Some(key.clone()),
                format: Format::Statuspage,
            },
            operator: false,
            tz: None,
        })
        .collect();
    let cfg = NotifyConfig {
        settings: Settings {
            concurrency: conc,
            attempts: 3,
            timeout: Duration::from_secs(10),
            ..Settings::default()
        },
        subscribers,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = rollcall_store::Store::open(&dir.path().join("bench.db"))
            .await
            .unwrap();
        let notifier = Notifier::open(&store, "bench", fleet.clone(), cfg)
            .await
            .unwrap();
        let subs = notifier.recipients(0, None);
        assert_eq!(subs.len(), n);
        // 1. the announcement path the engine uses (enqueue + deliver + check)
        let t = Instant::now();
        notifier
            .announce(0, fleet.maintenance.start)
            .await
            .expect("every subscriber reached");
        let announce = t.elapsed().as_secs_f64();
        // 2. a journalled notice, phases timed apart
        let note = Note {
            key: "n-1".into(),
            kind: NoteKind::Started,
            region: 0,
            host: None,
            at: fleet.maintenance.start + 3600,
            start: None,
            expected: None,
        };
        let t = Instant::now();
        notifier.enqueue(&note, &subs).await.unwrap();
        let enqueue = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let round = notifier.deliver("n-1", Duration::ZERO).await.unwrap();
        let deliver = t.elapsed().as_secs_f64();
        assert_eq!(round.sent, n, "{round:?}");
        let s = summary(&store, "bench").await.unwrap();
        assert_eq!(s.count(None, DeliveryStatus::Sent) as usize, 2 * n);
        let got = sink.count();
        assert_eq!(got as usize, 2 * n, "the sink saw every POST");
        let doc = serde_json::json!({
            "subscribers": n,
            "concurrency": conc,
            "announce_wall_s": announce,
            "announce_deliveries_per_s": n as f64 / announce,
            "notice_enqueue_s": enqueue,
            "notice_deliver_s": deliver,
            "notice_wall_s": enqueue + deliver,
            "notice_deliveries_per_s": n as f64 / (enqueue + deliver),
            "peak_rss_mb": peak_rss_mb(),
            "sink_posts": got,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
    });
}
