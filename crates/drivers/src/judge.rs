//! The pure part of the gates: judging what a cluster answered (an HTTP body, Redis
//! CLUSTER INFO / CLUSTER NODES / INFO replication). No I/O, and only `std` and
//! `serde_json`, so that the fuzz targets (`fuzz/`) compile this file on its own.
//! Any answer that cannot be parsed is an error saying why, never a panic.

use std::collections::HashMap;

/// Healthy: `Ok(summary)`. Unhealthy: `Err(why)`.
pub type Verdict = Result<String, Unhealthy>;

/// Why a cluster's answer is unhealthy or cannot be judged: a sentence for the operator
/// (what was asked of the cluster is added by the caller). A judgment, not a fault of
/// rollcall; its text is the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy(pub String);

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unhealthy {}

impl From<String> for Unhealthy {
    fn from(why: String) -> Unhealthy {
        Unhealthy(why)
    }
}

impl From<&str> for Unhealthy {
    fn from(why: &str) -> Unhealthy {
        Unhealthy(why.to_string())
    }
}

impl PartialEq<&str> for Unhealthy {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// At most `n` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n).collect();
        format!("{t}…")
    }
}

// ---------------------------------------------------------------- http

/// Look a field up by JSON pointer (`/a/0/b`) or dotted path (`a.0.b`).
pub fn json_field<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    if path.starts_with('/') {
        return v.pointer(path);
    }
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// Judge a JSON body against expectations; every mismatch is listed.
pub fn judge_json(body: &str, expect: &[(String, serde_json::Value)]) -> Verdict {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        Unhealthy(format!(
            "the answer is not JSON ({e}): {}",
            truncate(body.trim(), 120)
        ))
    })?;
    let mut bad = Vec::new();
    for (path, want) in expect {
        match json_field(&v, path) {
            None => bad.push(format!("{path} missing (want {want})")),
            Some(got) if !json_eq(got, want) => bad.push(format!("{path} = {got} (want {want})")),
            Some(_) => {}
        }
    }
    if bad.is_empty() {
        Ok(format!("{} expectations met", expect.len()))
    } else {
        Err(Unhealthy(bad.join(", ")))
    }
}

// ---------------------------------------------------------------- redis

/// `key:value` lines (CLUSTER INFO, INFO sections).
pub fn kv_lines(s: &str) -> HashMap<String, String> {
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One line of CLUSTER NODES.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLine {
    pub id: String,
    /// `ip:port` (without `@cport` and hostname).
    pub addr: String,
    pub flags: Vec<String>,
    /// The master's id for a replica.
    pub master: Option<String>,
    pub connected: bool,
    pub slots: usize,
}

impl NodeLine {
    pub fn has(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// Redis Cluster has this many hash slots, numbered from 0.
pub const CLUSTER_SLOTS: usize = 16384;

/// A hash slot number (0 to 16383).
fn slot(s: &str) -> Option<usize> {
    s.parse::<usize>().ok().filter(|&n| n < CLUSTER_SLOTS)
}

/// Parse CLUSTER NODES. Any malformed line is an error, and so is a slot outside
/// 0..16383 (a range up to `usize::MAX` once overflowed the count, or wrapped it to 0
/// and made a master look slotless, so its missing replica went unnoticed).
pub fn parse_nodes(s: &str) -> Result<Vec<NodeLine>, Unhealthy> {
    let mut out = Vec::new();
    for line in s.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err(format!("malformed CLUSTER NODES line: {}", truncate(line, 120)).into());
        }
        let addr = f[1].split('@').next().unwrap_or("").to_string();
        let mut slots = 0usize;
        for s in &f[8..] {
            if s.starts_with('[') {
                continue; // a slot being migrated/imported
            }
            let n = match s.split_once('-') {
                Some((a, b)) => match (slot(a), slot(b)) {
                    (Some(a), Some(b)) if b >= a => b - a + 1,
                    _ => return Err(format!("malformed slot range `{s}` in CLUSTER NODES").into()),
                },
                None => match slot(s) {
                    Some(_) => 1,
                    None => return Err(format!("malformed slot `{s}` in CLUSTER NODES").into()),
                },
            };
            slots += n;
        }
        out.push(NodeLine {
            id: f[0].to_string(),
            addr,
            flags: f[2].split(',').map(str::to_string).collect(),
            master: (f[3] != "-").then(|| f[3].to_string()),
            connected: f[7] == "connected",
            slots,
        });
    }
    if out.is_empty() {
        return Err("CLUSTER NODES is empty".into());
    }
    Ok(out)
}

/// Judge one node's CLUSTER INFO and CLUSTER NODES (the pure part of the gate).
pub fn judge_redis_view(info: &str, nodes: &str, expected_nodes: usize) -> Result<(), Unhealthy> {
    let i = kv_lines(info);
    let get = |k: &str| i.get(k).map(|v| v.trim().to_string());
    let want = |k: &str, v: &str| -> Result<(), Unhealthy> {
        match get(k) {
            Some(x) if x == v => Ok(()),
            Some(x) => Err(format!("{k}:{x} (want {v})").into()),
            None => Err(format!("CLUSTER INFO has no {k}").into()),
        }
    };
    want("cluster_state", "ok")?;
    want("cluster_slots_assigned", "16384")?;
    want("cluster_slots_ok", "16384")?;
    want("cluster_slots_pfail", "0")?;
    want("cluster_slots_fail", "0")?;
    want("cluster_known_nodes", &expected_nodes.to_string())?;
    let lines = parse_nodes(nodes)?;
    for n in &lines {
        for bad in ["fail", "fail?", "handshake", "noaddr"] {
            if n.has(bad) {
                return Err(format!("node {} is flagged {bad}", n.addr).into());
            }
        }
        if !n.connected {
            return Err(format!("node {} link is disconnected", n.addr).into());
        }
    }
    for m in lines.iter().filter(|n| n.has("master") && n.slots > 0) {
        let ok = lines.iter().any(|r| {
            r.has("slave")
                && r.master.as_deref() == Some(m.id.as_str())
                && r.connected
                && !r.has("nofailover")
        });
        if !ok {
            return Err(format!("master {} has no connected replica", m.addr).into());
        }
    }
    Ok(())
}

/// Judge INFO replication of a member that just came back.
pub fn judge_rejoined(repl: &HashMap<String, String>) -> Verdict {
    let g = |k: &str| repl.get(k).map(|s| s.trim().to_string());
    match g("role").as_deref() {
        Some("slave") => {
            if g("master_link_status").as_deref() != Some("up") {
                return Err(format!(
                    "replica link to its master is {}",
                    g("master_link_status").unwrap_or_else(|| "unknown".into())
                )
                .into());
            }
            if g("master_sync_in_progress").as_deref() != Some("0") {
                return Err("a full sync from its master is still in progress".into());
            }
            Ok("replica, link up, in sync".into())
        }
        // a master that kept its role (it had no slots, or nothing failed it over) is
        // healthy when the cluster-wide checks pass (they require a connected replica)
        Some("master") => Ok("master".into()),
        Some(r) => Err(format!("unexpected role {r}").into()),
        None => Err("INFO replication has no role".into()),
    }
}
