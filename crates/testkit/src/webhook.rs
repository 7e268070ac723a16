//! A webhook receiver (axum on loopback) on its own thread and runtime, so that it
//! outlives a crashed run's runtime. It records every request, or only counts them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub id: String,
    pub ts: String,
    pub sig: String,
    pub body: Vec<u8>,
    pub wall_ms: i64,
    /// The status answered (0: none in time, the sender hung up first).
    pub status: u16,
}

/// What the sink saw, and how it answers (set by the test).
#[derive(Default)]
pub struct SinkState {
    pub hits: Vec<Hit>,
    /// path -> number of 500s still to answer
    pub fail_first: HashMap<String, u32>,
    /// every path answers 503 until this wall time (ms)
    pub down_until_ms: i64,
    /// paths answering 410
    pub gone: HashSet<String>,
    /// paths answering 302
    pub redirect: HashSet<String>,
    /// paths answering 200 only after a second
    pub slow: HashSet<String>,
}

pub type Shared = Arc<Mutex<SinkState>>;

pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn status_for(s: &mut SinkState, path: &str, now: i64) -> u16 {
    if now < s.down_until_ms {
        503
    } else if s.gone.contains(path) {
        410
    } else if s.redirect.contains(path) {
        302
    } else if let Some(n) = s.fail_first.get_mut(path).filter(|n| **n > 0) {
        *n -= 1;
        500
    } else {
        200
    }
}

async fn record(State(st): State<Shared>, uri: Uri, h: HeaderMap, body: Bytes) -> StatusCode {
    let path = uri.path().to_string();
    let hv = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let hit = |status, wall_ms| Hit {
        path: path.clone(),
        id: hv("webhook-id"),
        ts: hv("webhook-timestamp"),
        sig: hv("webhook-signature"),
        body: body.to_vec(),
        wall_ms,
        status,
    };
    if st.lock().unwrap().slow.contains(&path) {
        // recorded on arrival (status 0: no answer in time); the sender hangs up first
        st.lock().unwrap().hits.push(hit(0, wall_ms()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        return StatusCode::OK;
    }
    let mut s = st.lock().unwrap();
    let now = wall_ms();
    let status = status_for(&mut s, &path, now);
    s.hits.push(hit(status, now));
    StatusCode::from_u16(status).unwrap()
}

/// The receiver; stopped (and its thread joined) on drop.
pub struct Sink {
    /// The address it listens on (`127.0.0.1` unless [`Sink::recording_on`]).
    pub ip: String,
    pub port: u16,
    /// What it recorded and how it answers ([`Sink::recording`] only).
    pub state: Shared,
    count: Arc<AtomicU64>,
    _served: crate::serve::Served,
}

impl Sink {
    /// Records every request and answers as [`SinkState`] says (2 worker threads).
    pub fn recording() -> Sink {
        Sink::recording_on("127.0.0.1")
    }

    /// [`Sink::recording`] listening on `ip` (e.g. a testbed's bridge address, which its
    /// network namespaces reach).
    pub fn recording_on(ip: &str) -> Sink {
        let state: Shared = Arc::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        Sink::serve(ip, app, state, Arc::default(), 2)
    }

    /// Only counts requests, answering 204 (1 worker thread): for load.
    pub fn counting() -> Sink {
        let count = Arc::<AtomicU64>::default();
        let c = count.clone();
        let app = axum::Router::new().fallback(move || {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        });
        Sink::serve("127.0.0.1", app, Arc::default(), count, 1)
    }

    fn serve(
        ip: &str,
        app: axum::Router,
        state: Shared,
        count: Arc<AtomicU64>,
        workers: usize,
    ) -> Sink {
        let served = crate::serve::serve(ip, app, workers);
        Sink {
            ip: ip.to_string(),
            port: served.port,
            state,
            count,
            _served: served,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip, self.port)
    }
    pub fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }
    /// The hits answered 2xx.
    pub fn ok_hits(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status / 100 == 2)
            .collect()
    }
    /// Requests counted by a [`Sink::counting`] sink.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}
