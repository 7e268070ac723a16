//! Journal throughput with batching.
//!
//! `cargo run -p rollcall-store --release --example journal_bench [RECORDS]`
//!
//! Appends RECORDS (default 100,000) records of about 200 bytes of JSON to a fresh journal
//! in batches of 1, 10, 100 and 1000, and prints records/s and the p50/p99 latency of one
//! batch append (one transaction), then the time to read the whole journal back.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rollcall_store::{NewRun, Record, Store};
use serde_json::json;

fn record(i: usize) -> Record {
    Record {
        at: i as i64,
        kind: "host_state".to_string(),
        data: json!({
            "host": format!("host-{:05}.eu-west-1.db.example.net", i % 10_000),
            "cluster": format!("es-prod-{}", i % 17),
            "from": "draining",
            "to": "rebooting",
            "attempt": 1,
            "boot_id": "6f1c2a9e-4b7d-4f0e-9a53-2c8d1e7b3f40",
            "note": "drain done, 0 shards left",
        }),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "rollcall-journal-bench-{}-{nanos}",
        std::process::id()
    ));
    let records: Vec<Record> = (0..total).map(record).collect();
    let avg_bytes = records
        .iter()
        .map(|r| serde_json::to_string(&r.data).map(|s| s.len()).unwrap_or(0))
        .sum::<usize>()
        / total.max(1);
    println!(
        "journal_bench: {total} records, {avg_bytes} bytes of JSON data each on average, \
         WAL + synchronous=NORMAL, in {}",
        dir.display()
    );
    println!(
        "{:>6} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "batch", "seconds", "records/s", "p50", "p99", "max", "read all"
    );
    for batch in [1usize, 10, 100, 1000] {
        let path = dir.join(format!("batch-{batch}.db"));
        let store = Store::open(&path).await?;
        store
            .create_run(&NewRun {
                id: "bench".to_string(),
                fleet_path: "bench.toml".to_string(),
                fleet_name: "bench".to_string(),
                maintenance: "bench".to_string(),
                params: json!({}),
                fleet_text: String::new(),
                fleet_imports: None,
                operator: "bench".to_string(),
                claims: Vec::new(),
                supersedes: None,
            })
            .await?;
        let fence = store
            .acquire_lease("bench", "bench", 0, i64::MAX / 2)
            .await?
            .expect("a new run's lease");
        let mut latencies = Vec::with_capacity(total / batch + 1);
        let started = Instant::now();
        let mut last = 0;
        for chunk in records.chunks(batch) {
            let t = Instant::now();
            last = store.append(&fence, chunk).await?;
            latencies.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        assert_eq!(last, total as i64);
        latencies.sort();
        let t = Instant::now();
        let read = store.journal("bench").await?;
        let read_time = t.elapsed();
        assert_eq!(read.len(), total);
        println!(
            "{batch:>6} {:>10.2} {:>12.0} {:>8.0}µs {:>8.0}µs {:>8.0}µs {:>10.0}ms",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50).as_secs_f64() * 1e6,
            percentile(&latencies, 0.99).as_secs_f64() * 1e6,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
            read_time.as_secs_f64() * 1e3,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
