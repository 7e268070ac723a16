//! `rollcall bench serve`: a loopback HTTP/1.1 load generator (tokio, keep-alive, one
//! request in flight per connection) and the benchmark that serves a finished sim run
//! and hammers `/api/v2/summary.json`.

use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub path: String,
    pub connections: usize,
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub response_bytes: usize,
}

/// One keep-alive connection: request, read the whole response, repeat until `end`.
/// Returns latencies in microseconds, errors and the last body size.
async fn conn_loop(
    addr: SocketAddr,
    req: Arc<Vec<u8>>,
    start: Instant,
    end: Instant,
) -> (Vec<u32>, u64, usize) {
    let mut lat = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    let mut size = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    'outer: while Instant::now() < end {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        loop {
            let t0 = Instant::now();
            if t0 >= end {
                break 'outer;
            }
            if s.write_all(&req).await.is_err() {
                errors += 1;
                continue 'outer;
            }
            // read the head
            let mut have = 0usize;
            let head_end;
            loop {
                if have == buf.len() {
                    buf.resize(buf.len() * 2, 0);
                }
                match s.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => {
                        errors += 1;
                        continue 'outer;
                    }
                    Ok(n) => have += n,
                }
                if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                    head_end = p + 4;
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let ok = head.starts_with("http/1.1 200");
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = head_end + len;
            if buf.len() < total {
                buf.resize(total, 0);
            }
            while have < total {
                match s.read(&mut buf[have..total]).await {
                    Ok(0) | Err(_) => {
                        errors += 1;
                        continue 'outer;
                    }
                    Ok(n) => have += n,
                }
            }
            if ok {
                size = len;
                if t0 >= start {
                    lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            } else {
                errors += 1;
            }
        }
    }
    (lat, errors, size)
}

/// Hammer `path` on `addr` with `connections` keep-alive connections for `duration`
/// after `warmup`.
pub async fn hammer(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> LoadResult {
    let req = Arc::new(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rollcall-bench\r\nAccept: application/json\r\n\r\n")
            .into_bytes(),
    );
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<_> = (0..connections.max(1))
        .map(|_| tokio::spawn(conn_loop(addr, req.clone(), start, end)))
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut size = 0;
    for t in tasks {
        if let Ok((l, e, s)) = t.await {
            lat.extend(l);
            errors += e;
            size = size.max(s);
        }
    }
    let secs = duration.as_secs_f64();
    lat.sort_unstable();
    let q = |x: f64| {
        lat.get(((lat.len() as f64 - 1.0) * x).round().max(0.0) as usize)
            .map(|&us| us as f64 / 1000.0)
            .unwrap_or(0.0)
    };
    LoadResult {
        path: path.to_string(),
        connections,
        seconds: secs,
        requests: lat.len() as u64,
        errors,
        requests_per_s: lat.len() as f64 / secs,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        max_ms: q(1.0),
        response_bytes: size,
    }
}

pub struct BenchServe {
    /// A fleet file, or `None` to generate one of `hosts` hosts.
    pub fleet: Option<PathBuf>,
    pub hosts: usize,
    pub clusters: usize,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub time_scale: f64,
    /// Client threads (a separate runtime from the server's).
    pub client_threads: usize,
    /// Drive the sim run at most this long before serving it (a mid-run view).
    pub run_limit: Duration,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub fleet: String,
    pub hosts: usize,
    pub clusters: usize,
    pub run_seconds: f64,
    pub run_ending: String,
    pub hosts_done: usize,
    pub summary_components: usize,
    pub server_url: String,
    pub summary: LoadResult,
}

/// Run a sim maintenance to its end in a temporary store, serve it, hammer summary.json.
pub async fn bench_serve(o: &BenchServe) -> Result<BenchReport, String> {
    let dir = std::env::temp_dir().join(format!("rollcall-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = bench_in(&dir, o).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench_in(dir: &Path, o: &BenchServe) -> Result<BenchReport, String> {
    let (fleet_path, text) = match &o.fleet {
        Some(p) => (
            p.clone(),
            rollcall_fleet::limits::read_input(p).map_err(|e| format!("{}: {e}", p.display()))?,
        ),
        None => {
            let f = rollcall_core::generate::generate(&rollcall_core::generate::GenParams::new(
                o.hosts, o.clusters, 1,
            ));
            let p = dir.join("generated.toml");
            let text = rollcall_fleet::write::to_toml(&f);
            std::fs::write(&p, &text).map_err(|e| format!("{}: {e}", p.display()))?;
            (p, text)
        }
    };
    let db = dir.join("bench.db");
    let t = Instant::now();
    let ending = rollcall_runtime::simfill::run_text(
        &db,
        &fleet_path,
        &text,
        &rollcall_runtime::simfill::SimRun {
            run_id: "bench".into(),
            scale: o.time_scale,
            sim: rollcall_core::simworld::SimParams::default(),
            on_missing: Some(rollcall_core::OnMissing::Continue),
            limit: Some(o.run_limit),
        },
    )
    .await?;
    let run_seconds = t.elapsed().as_secs_f64();
    let server = rollcall_web::start(rollcall_web::ServeOptions::new(
        &db,
        "127.0.0.1:0".parse().expect("addr"),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let view = server.shared.snapshot().view.clone();
    let addr = server.addr;
    let (conns, warm, dur, threads) =
        (o.connections, o.warmup, o.duration, o.client_threads.max(1));
    // the client runs on its own runtime and threads, like a separate process would
    let summary = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map(|rt| rt.block_on(hammer(addr, "/api/v2/summary.json", conns, warm, dur)))
    })
    .join()
    .map_err(|_| "load generator panicked".to_string())?
    .map_err(|e| format!("cannot start the client runtime: {e}"))?;
    let url = server.url.clone();
    server.stop().await;
    Ok(BenchReport {
        fleet: view.page_name.clone(),
        hosts: view.hosts_total,
        hosts_done: view.hosts_done,
        summary_components: view.regions.len()
            + view.clusters.iter().filter(|c| c.tenant.is_none()).count(),
        clusters: view.clusters.len(),
        run_seconds,
        run_ending: match ending {
            rollcall_runtime::Ending::Interrupted => "stopped mid-run".to_string(),
            e => rollcall_runtime::status_name(e).to_string(),
        },
        server_url: url,
        summary,
    })
}
