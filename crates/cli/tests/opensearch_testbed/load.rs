//! The load generator and the cluster's observers for the OpenSearch proofs: writers that
//! index documents with acknowledged writes (201/200, ids recorded), a searcher, a monitor
//! that samples `_cluster/health` every ~200 ms and `_cat/recovery` every ~1 s, and the
//! count of acknowledged documents lost at the end.

use super::http::{Reply, call, cut};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The index the writers and the searcher use.
pub const INDEX: &str = "docs";

/// The cluster's HTTP endpoints (`host:9200`).
#[derive(Clone, Debug)]
pub struct Nodes(pub Vec<String>);

impl Nodes {
    /// The first node that answers (any HTTP status), or every node's error.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        t: Duration,
    ) -> Result<Reply, String> {
        let mut errs = Vec::new();
        for n in &self.0 {
            match call(n, method, path, body, t) {
                Ok(r) => return Ok(r),
                Err(e) => errs.push(e),
            }
        }
        Err(errs.join("; "))
    }

    /// A call that must succeed with a 2xx JSON answer (setup and checks).
    pub fn must(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let r = self
            .call(method, path, body, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: HTTP {}: {}",
            r.status,
            cut(&r.body)
        );
        r.json().unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

// ------------------------------------------------------------------ operation tallies

/// Errors, latency and stalls of one kind of operation.
#[derive(Default)]
struct Ops {
    ok: u64,
    errors: u64,
    lat_us: Vec<u64>,
    max_stall_ms: u64,
    samples: Vec<String>,
    first_fail: Option<Instant>,
}

impl Ops {
    fn record(&mut self, took: Duration, r: Result<(), String>) {
        self.lat_us.push(took.as_micros() as u64);
        match r {
            Ok(()) => {
                self.ok += 1;
                if let Some(f) = self.first_fail.take() {
                    self.max_stall_ms = self.max_stall_ms.max(f.elapsed().as_millis() as u64);
                }
            }
            Err(e) => {
                self.errors += 1;
                if self.samples.len() < 5 {
                    self.samples.push(e);
                }
                self.first_fail.get_or_insert_with(Instant::now);
            }
        }
    }

    fn merge(mut self, o: Ops) -> Ops {
        self.ok += o.ok;
        self.errors += o.errors;
        self.lat_us.extend(o.lat_us);
        self.max_stall_ms = self.max_stall_ms.max(o.max_stall_ms);
        self.samples
            .extend(o.samples.into_iter().take(5 - self.samples.len().min(5)));
        self
    }

    fn figures(mut self) -> OpFigures {
        self.lat_us.sort_unstable();
        let q = |p: f64| {
            let v = &self.lat_us;
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
            (v[i] as f64 / 1000.0 * 10.0).round() / 10.0
        };
        OpFigures {
            ok: self.ok,
            errors: self.errors,
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            max_stall_ms: self.max_stall_ms,
            samples: self.samples,
        }
    }
}

/// One kind of operation, as printed: attempts that succeeded and failed, latency of
/// every attempt (failed ones included), the longest time from a failure to the next success.
#[derive(Debug, Serialize)]
pub struct OpFigures {
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_stall_ms: u64,
    pub samples: Vec<String>,
}

// ------------------------------------------------------------------ writers and searcher

/// Round-robin over the nodes; a node that failed is skipped for 2 s (a client's sniffer).
struct Picker {
    nodes: Vec<String>,
    next: usize,
    dead_until: Vec<Option<Instant>>,
}

impl Picker {
    fn new(nodes: &Nodes, start: usize) -> Picker {
        Picker {
            dead_until: vec![None; nodes.0.len()],
            nodes: nodes.0.clone(),
            next: start,
        }
    }
    fn pick(&mut self) -> usize {
        let n = self.nodes.len();
        let now = Instant::now();
        let alive = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| self.dead_until[i].is_none_or(|t| t <= now));
        let i = alive.unwrap_or(self.next % n);
        self.next = i + 1;
        i
    }
    fn failed(&mut self, i: usize) {
        self.dead_until[i] = Some(Instant::now() + Duration::from_secs(2));
    }
}

const OP_TIMEOUT: Duration = Duration::from_secs(10);

fn index_one(node: &str, id: &str, body: &str) -> Result<(), String> {
    let r = call(
        node,
        "PUT",
        &format!("/{INDEX}/_doc/{id}?timeout=5s"),
        Some(body),
        OP_TIMEOUT,
    )?;
    match r.status {
        200 | 201 => Ok(()),
        s => Err(format!("{node}: HTTP {s}: {}", cut(&r.body))),
    }
}

/// Indexes `tag-w-n` for n = 0, 1, ... until stopped; a failed write is retried (same id)
/// after 100 ms on another node. Returns the tally and the acknowledged ids.
fn writer(nodes: Nodes, tag: String, w: usize, stop: Arc<AtomicBool>) -> (Ops, Vec<String>) {
    let mut p = Picker::new(&nodes, w);
    let (mut ops, mut acked) = (Ops::default(), Vec::new());
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("{tag}-{w}-{n}");
        let body = format!(
            r#"{{"tag":"{tag}","w":{w},"n":{n},"text":"{}"}}"#,
            pad(n, 200)
        );
        let i = p.pick();
        let t = Instant::now();
        let r = index_one(&p.nodes[i], &id, &body);
        let failed = r.is_err();
        ops.record(t.elapsed(), r);
        if failed {
            p.failed(i);
            std::thread::sleep(Duration::from_millis(100));
        } else {
            acked.push(id);
            n += 1;
        }
    }
    (ops, acked)
}

fn search_one(node: &str) -> Result<(), String> {
    let q = r#"{"size":5,"query":{"match":{"text":"a1"}}}"#;
    let r = call(
        node,
        "POST",
        &format!("/{INDEX}/_search"),
        Some(q),
        OP_TIMEOUT,
    )?;
    if r.status != 200 {
        return Err(format!("{node}: HTTP {}: {}", r.status, cut(&r.body)));
    }
    let v = r.json()?;
    match v["_shards"]["failed"].as_u64() {
        Some(0) => Ok(()),
        Some(f) => Err(format!("{node}: {f} shards failed (partial results)")),
        None => Err(format!("{node}: no _shards in {}", cut(&r.body))),
    }
}

fn searcher(nodes: Nodes, stop: Arc<AtomicBool>) -> Ops {
    let mut p = Picker::new(&nodes, 2);
    let mut ops = Ops::default();
    while !stop.load(Ordering::SeqCst) {
        let i = p.pick();
        let t = Instant::now();
        let r = search_one(&p.nodes[i]);
        if r.is_err() {
            p.failed(i);
        }
        ops.record(t.elapsed(), r);
        std::thread::sleep(Duration::from_millis(20));
    }
    ops
}

/// Deterministic filler text (hex of a xorshift sequence) of about `len` characters.
pub fn pad(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x} "));
    }
    s.truncate(len);
    s
}

// ------------------------------------------------------------------ the monitor

/// Time spent in each health state, from samples every ~200 ms.
#[derive(Debug, Default, Serialize)]
pub struct HealthFigures {
    pub green_s: f64,
    pub yellow_s: f64,
    pub red_s: f64,
    /// No node answered `_cluster/health` (e.g. no cluster-manager elected: 503).
    pub unavailable_s: f64,
    pub samples: u64,
    /// The fewest nodes any answer reported (None: no answer at all).
    pub min_nodes: Option<u64>,
}

impl HealthFigures {
    fn add(&mut self, state: &str, nodes: Option<u64>, dt: f64) {
        let slot = match state {
            "green" => &mut self.green_s,
            "yellow" => &mut self.yellow_s,
            "red" => &mut self.red_s,
            _ => &mut self.unavailable_s,
        };
        *slot += dt;
        self.samples += 1;
        self.min_nodes = match (self.min_nodes, nodes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    fn rounded(mut self) -> Self {
        for v in [
            &mut self.green_s,
            &mut self.yellow_s,
            &mut self.red_s,
            &mut self.unavailable_s,
        ] {
            *v = (*v * 10.0).round() / 10.0;
        }
        self
    }
}

/// One health sample: the status and node count, or "unavailable".
fn health(nodes: &Nodes) -> (String, Option<u64>) {
    let path = "/_cluster/health?cluster_manager_timeout=1s";
    for n in &nodes.0 {
        let Ok(r) = call(n, "GET", path, None, Duration::from_millis(700)) else {
            continue;
        };
        let Ok(v) = r.json() else { continue };
        if let (200, Some(s)) = (r.status, v["status"].as_str()) {
            return (s.to_string(), v["number_of_nodes"].as_u64());
        }
    }
    ("unavailable".into(), None)
}

/// A peer recovery seen in `_cat/recovery`: bytes, files and translog operations copied.
#[derive(Debug, Default, Clone)]
struct Copied {
    source: String,
    bytes: u64,
    files: u64,
    ops: u64,
}

/// Peer recoveries (replica recoveries and relocations) started during the scenario.
#[derive(Debug, Default, Serialize)]
pub struct RecoveryFigures {
    pub peer_recoveries: usize,
    pub bytes_copied: u64,
    pub files_copied: u64,
    pub translog_ops: u64,
    /// Each one: `index/shard source->target: bytes B, files F, ops O`.
    pub each: Vec<String>,
}

type RecoveryKey = (String, String, String, u64);

const RECOVERY: &str = "/_cat/recovery?format=json&active_only=false&detailed=true&bytes=b&time=ms\
     &h=index,shard,type,stage,source_node,target_node,start_time_millis,bytes_recovered,files_recovered,translog_ops_recovered";

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Merges the peer recoveries started at or after `since_ms` into `seen` (largest figures
/// win: a recovery in progress grows).
fn read_recoveries(nodes: &Nodes, since_ms: u64, seen: &mut BTreeMap<RecoveryKey, Copied>) {
    let Ok(r) = nodes.call("GET", RECOVERY, None, Duration::from_secs(2)) else {
        return;
    };
    let Ok(Value::Array(rows)) = r.json() else {
        return;
    };
    for x in rows.iter().filter(|x| x["type"] == "peer") {
        let start = num(&x["start_time_millis"]);
        if start < since_ms {
            continue;
        }
        let s = |k: &str| x[k].as_str().unwrap_or("").to_string();
        let e = seen
            .entry((s("index"), s("shard"), s("target_node"), start))
            .or_default();
        e.source = s("source_node");
        e.bytes = e.bytes.max(num(&x["bytes_recovered"]));
        e.files = e.files.max(num(&x["files_recovered"]));
        e.ops = e.ops.max(num(&x["translog_ops_recovered"]));
    }
}

fn recovery_figures(seen: &BTreeMap<RecoveryKey, Copied>) -> RecoveryFigures {
    let mut f = RecoveryFigures {
        peer_recoveries: seen.len(),
        ..Default::default()
    };
    for ((index, shard, target, _), c) in seen {
        f.bytes_copied += c.bytes;
        f.files_copied += c.files;
        f.translog_ops += c.ops;
        f.each.push(format!(
            "{index}/{shard} {}->{target}: bytes {}, files {}, ops {}",
            c.source, c.bytes, c.files, c.ops
        ));
    }
    f
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn monitor(nodes: Nodes, stop: Arc<AtomicBool>) -> (HealthFigures, RecoveryFigures) {
    let since = epoch_ms();
    let (mut h, mut seen) = (HealthFigures::default(), BTreeMap::new());
    let mut last = Instant::now();
    let mut next_recovery = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let (state, n) = health(&nodes);
        h.add(&state, n, last.elapsed().as_secs_f64());
        last = Instant::now();
        if stopping || last >= next_recovery {
            read_recoveries(&nodes, since, &mut seen);
            next_recovery = last + Duration::from_secs(1);
        }
        if stopping {
            return (h.rounded(), recovery_figures(&seen));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ------------------------------------------------------------------ the whole load

/// What a scenario measured.
#[derive(Debug, Serialize)]
pub struct LoadFigures {
    pub wall_s: f64,
    pub writes: OpFigures,
    pub searches: OpFigures,
    pub health: HealthFigures,
    pub recovery: RecoveryFigures,
    /// Acknowledged documents not found afterwards (`_mget` after a refresh).
    pub lost: u64,
    pub acked: u64,
}

/// The running load generator and monitor.
pub struct Load {
    nodes: Nodes,
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<(Ops, Vec<String>)>>,
    searcher: JoinHandle<Ops>,
    monitor: JoinHandle<(HealthFigures, RecoveryFigures)>,
    t0: Instant,
}

impl Load {
    /// Two writers (ids `tag-W-N`), one searcher, the monitor; returns after 2 s of load.
    pub fn start(nodes: &Nodes, tag: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..2)
            .map(|w| {
                let (n, t, s) = (nodes.clone(), tag.to_string(), stop.clone());
                std::thread::spawn(move || writer(n, t, w, s))
            })
            .collect();
        let (n, s) = (nodes.clone(), stop.clone());
        let searcher = std::thread::spawn(move || searcher(n, s));
        let (n, s) = (nodes.clone(), stop.clone());
        let monitor = std::thread::spawn(move || monitor(n, s));
        std::thread::sleep(Duration::from_secs(2));
        Load {
            nodes: nodes.clone(),
            stop,
            writers,
            searcher,
            monitor,
            t0: Instant::now(),
        }
    }

    /// Stops the load, then counts the acknowledged documents that cannot be found.
    pub fn finish(self) -> LoadFigures {
        let wall_s = (self.t0.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        self.stop.store(true, Ordering::SeqCst);
        let (mut writes, mut acked) = (Ops::default(), Vec::new());
        for w in self.writers {
            let (o, ids) = w.join().expect("writer thread");
            writes = writes.merge(o);
            acked.extend(ids);
        }
        let searches = self.searcher.join().expect("searcher thread");
        let (health, recovery) = self.monitor.join().expect("monitor thread");
        let lost = lost(&self.nodes, &acked);
        LoadFigures {
            wall_s,
            writes: writes.figures(),
            searches: searches.figures(),
            health,
            recovery,
            lost,
            acked: acked.len() as u64,
        }
    }
}

/// Acknowledged ids that `_mget` does not find after a refresh (batches retried for up
/// to a minute; a batch that cannot be read at all fails the test rather than count).
pub fn lost(nodes: &Nodes, ids: &[String]) -> u64 {
    refresh(nodes);
    ids.chunks(1000).map(|b| missing_in(nodes, b)).sum()
}

/// `_refresh` until every shard copy answers (a copy changing hands after an outage
/// refuses for a moment: "shard is not in primary mode"); at most a minute.
fn refresh(nodes: &Nodes) {
    let path = format!("/{INDEX}/_refresh");
    let mut last = String::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        match nodes.call("POST", &path, None, Duration::from_secs(10)) {
            Ok(r) if (200..300).contains(&r.status) => return,
            Ok(r) => last = format!("HTTP {}: {}", r.status, cut(&r.body)),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("POST {path} failed for a minute: {last}");
}

fn missing_in(nodes: &Nodes, ids: &[String]) -> u64 {
    let body = serde_json::json!({ "ids": ids }).to_string();
    let path = format!("/{INDEX}/_mget?_source=false");
    let mut last = String::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        match nodes.call("POST", &path, Some(&body), Duration::from_secs(10)) {
            Ok(r) if r.status == 200 => match found(&r) {
                Ok(n) => return ids.len() as u64 - n,
                Err(e) => last = e,
            },
            Ok(r) => last = format!("HTTP {}: {}", r.status, cut(&r.body)),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("could not read back acknowledged documents: {last}")
}

/// How many docs of an `_mget` answer were found; a doc with an error fails the batch.
fn found(r: &Reply) -> Result<u64, String> {
    let v = r.json()?;
    let docs = v["docs"].as_array().ok_or("no docs in the _mget answer")?;
    let mut n = 0;
    for d in docs {
        if d.get("error").is_some() {
            return Err(format!("_mget: {}", d["error"]));
        }
        n += u64::from(d["found"] == true);
    }
    Ok(n)
}
