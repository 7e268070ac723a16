//! The `elasticsearch` and `opensearch` gate and drain: one implementation, since both
//! speak the same REST API for everything used here.
//!
//! - pre-gate: every member's endpoint says green with the fleet's member count and no
//!   relocating, initializing or unassigned shards; and the host about to go holds no shard
//!   of an index with `number_of_replicas = 0` (that data would go offline with it);
//! - drain: remember `cluster.routing.allocation.enable` (persistent and transient), set it
//!   to `primaries` (no replica copying while the node is away), then `POST /_flush`;
//! - rejoined: every member is green again with all nodes, and a node with the host's
//!   address (or named like the host) is in `_cat/nodes`;
//! - restore: allocation back to what it was (unset again if it was unset).
//!
//! The judging of answers (`judge_*`, `parse_*`) is pure; the I/O is in [`Api`]. Every
//! error, timeout, authentication failure or unparseable answer is unhealthy, with the
//! reason.

use crate::error::{DriverError, unhealthy};
use crate::gates::Member;
use crate::judge::Unhealthy;
use crate::transport::truncate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// The setting a drain changes.
pub const ALLOCATION: &str = "cluster.routing.allocation.enable";

/// A password or API key read from the environment; never printed.
#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SearchAuth {
    /// HTTP basic authentication; the password came from the environment variable `env`.
    Basic {
        user: String,
        password: Secret,
        env: String,
    },
    /// `Authorization: ApiKey <key>`; the key came from the environment variable `env`.
    ApiKey { key: Secret, env: String },
}

/// An `elasticsearch` / `opensearch` gate.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchGate {
    /// Base URL of a member's REST endpoint; `{host}` and `{address}` are that member's.
    /// A URL without them (a load balancer) is asked once.
    pub url: String,
    pub auth: Option<SearchAuth>,
    /// A PEM file of CA certificates to trust (in addition to the built-in roots).
    pub tls_ca: Option<(PathBuf, Vec<u8>)>,
    /// Raise `index.unassigned.node_left.delayed_timeout` on every index to this while
    /// drained (above the expected reboot time), and put each index's value back after.
    pub delayed_timeout: Option<Duration>,
}

/// `cluster.routing.allocation.enable` as set in the cluster (`None`: not set).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Allocation {
    pub persistent: Option<String>,
    pub transient: Option<String>,
    /// Each index's `index.unassigned.node_left.delayed_timeout` before the drain raised
    /// it (`None`: not set on the index); absent when the drain did not raise it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed: Option<BTreeMap<String, Option<String>>>,
}

impl std::fmt::Display for Allocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".into());
        write!(
            f,
            "persistent {}, transient {}",
            s(&self.persistent),
            s(&self.transient)
        )?;
        match &self.delayed {
            Some(d) => write!(f, "; delayed_timeout of {} index(es)", d.len()),
            None => Ok(()),
        }
    }
}

// ------------------------------------------------------------ pure judges

fn parse(body: &str) -> Result<Value, Unhealthy> {
    serde_json::from_str(body).map_err(|e| {
        Unhealthy(format!(
            "the answer is not JSON ({e}): {}",
            truncate(body.trim(), 120)
        ))
    })
}

fn count(v: &Value, k: &str) -> Result<u64, Unhealthy> {
    v.get(k)
        .and_then(Value::as_u64)
        .ok_or_else(|| Unhealthy(format!("_cluster/health has no number {k}")))
}

/// `GET _cluster/health`: green, `nodes` nodes, no relocating, initializing or
/// unassigned shards.
pub fn judge_health(body: &str, nodes: usize) -> Result<String, Unhealthy> {
    let v = parse(body)?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or("_cluster/health has no status")?;
    let n = count(&v, "number_of_nodes")?;
    let mut bad = Vec::new();
    if status != "green" {
        bad.push(format!("status {status}"));
    }
    if n != nodes as u64 {
        bad.push(format!("{n} nodes (the fleet says {nodes})"));
    }
    for k in [
        "relocating_shards",
        "initializing_shards",
        "unassigned_shards",
    ] {
        let c = count(&v, k)?;
        if c > 0 {
            bad.push(format!("{c} {}", k.replace('_', " ")));
        }
    }
    if bad.is_empty() {
        Ok(format!(
            "green, {n} nodes, {} shards active",
            v.get("active_shards").and_then(Value::as_u64).unwrap_or(0)
        ))
    } else {
        Err(Unhealthy(bad.join(", ")))
    }
}

/// `GET _cat/nodes?format=json&h=ip,name`: is the member (by address, or by node name =
/// host id) in the cluster?
pub fn judge_node_present(body: &str, m: &Member) -> Result<String, Unhealthy> {
    let v = parse(body)?;
    let rows = v.as_array().ok_or("_cat/nodes is not a JSON list")?;
    let field = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let mut seen = Vec::new();
    for r in rows {
        let (ip, name) = (field(r, "ip"), field(r, "name"));
        if ip.as_deref() == Some(m.address.as_str()) || name.as_deref() == Some(m.id.as_str()) {
            return Ok(format!(
                "node {} ({}) is in the cluster",
                name.unwrap_or_default(),
                ip.unwrap_or_default()
            ));
        }
        seen.push(format!(
            "{} ({})",
            name.unwrap_or_else(|| "?".into()),
            ip.unwrap_or_else(|| "?".into())
        ));
    }
    Err(format!(
        "no node with address {} or name {} in the cluster (nodes: {})",
        m.address,
        m.id,
        if seen.is_empty() {
            "none".into()
        } else {
            seen.join(", ")
        }
    )
    .into())
}

/// `GET _cluster/settings?flat_settings=true`: the allocation setting, where set.
pub fn parse_allocation(body: &str) -> Result<Allocation, Unhealthy> {
    let v = parse(body)?;
    let get = |scope: &str| -> Result<Option<String>, Unhealthy> {
        let s = v
            .get(scope)
            .and_then(Value::as_object)
            .ok_or_else(|| format!("_cluster/settings has no {scope} object"))?;
        match s.get(ALLOCATION) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(x)) => Ok(Some(x.clone())),
            Some(x) => Err(format!("{scope} {ALLOCATION} is {x}, not a string").into()),
        }
    };
    Ok(Allocation {
        persistent: get("persistent")?,
        transient: get("transient")?,
        delayed: None,
    })
}

/// The `PUT _cluster/settings` body that sets allocation to `primaries`: always persistent,
/// and transient too when `prev` has a transient value (a transient value wins).
pub fn drain_body(prev: &Allocation) -> Value {
    let mut b = json!({ "persistent": { ALLOCATION: "primaries" } });
    if prev.transient.is_some() {
        b["transient"] = json!({ ALLOCATION: "primaries" });
    }
    b
}

/// The `PUT _cluster/settings` body that puts `prev` back (null: unset).
pub fn restore_body(prev: &Allocation) -> Value {
    let mut b = json!({ "persistent": { ALLOCATION: prev.persistent } });
    if prev.transient.is_some() {
        b["transient"] = json!({ ALLOCATION: prev.transient });
    }
    b
}

/// The setting a drain may raise on every index.
pub const DELAYED: &str = "index.unassigned.node_left.delayed_timeout";

/// Each index's delayed timeout where set. `indices`: `GET _cat/indices?format=json&h=index`
/// (every index, so that one without the setting is known too); `settings`: `GET
/// _all/_settings/index.unassigned.node_left.delayed_timeout?flat_settings=true`.
pub fn parse_delayed(
    indices: &str,
    settings: &str,
) -> Result<BTreeMap<String, Option<String>>, Unhealthy> {
    let all = parse(indices)?;
    let all = all.as_array().ok_or("_cat/indices is not a JSON list")?;
    let set = parse(settings)?;
    let set = set.as_object().ok_or("_settings is not a JSON object")?;
    let mut out = BTreeMap::new();
    for r in all {
        let i = r
            .get("index")
            .and_then(Value::as_str)
            .ok_or("_cat/indices has a row without an index name")?;
        let v = set
            .get(i)
            .and_then(|x| x.pointer("/settings"))
            .and_then(|x| x.get(DELAYED))
            .and_then(Value::as_str)
            .map(str::to_string);
        out.insert(i.to_string(), v);
    }
    Ok(out)
}

/// `PUT <indices>/_settings` requests that put `before` back: indices grouped by value
/// (`null` unsets), at most 50 names a request.
pub fn delayed_bodies(before: &BTreeMap<String, Option<String>>) -> Vec<(String, Value)> {
    let mut by: BTreeMap<Option<&str>, Vec<&str>> = BTreeMap::new();
    for (i, v) in before {
        by.entry(v.as_deref()).or_default().push(i);
    }
    let mut out = Vec::new();
    for (v, names) in by {
        for chunk in names.chunks(50) {
            out.push((chunk.join(","), json!({ DELAYED: v })));
        }
    }
    out
}

/// `{"acknowledged": true}`.
pub fn judge_ack(body: &str) -> Result<(), Unhealthy> {
    match parse(body)?.get("acknowledged") {
        Some(Value::Bool(true)) => Ok(()),
        _ => Err(format!("not acknowledged: {}", truncate(body.trim(), 120)).into()),
    }
}

/// `POST /_flush`: every shard copy flushed.
pub fn judge_flush(body: &str) -> Result<String, Unhealthy> {
    let v = parse(body)?;
    let s = v.get("_shards").ok_or("the flush answer has no _shards")?;
    let n = |k: &str| s.get(k).and_then(Value::as_u64);
    match (n("total"), n("successful"), n("failed")) {
        (Some(t), Some(ok), Some(0)) => Ok(format!("flushed {ok} of {t} shard copies")),
        (Some(t), _, Some(f)) => Err(format!("the flush failed on {f} of {t} shard copies").into()),
        _ => Err(format!(
            "the flush answer has no counts: {}",
            truncate(body.trim(), 120)
        )
        .into()),
    }
}

/// Indices with `number_of_replicas = 0` that have a shard on `m` (by address or node
/// name): their data goes offline with it. `settings`: `GET
/// _all/_settings/index.number_of_replicas?flat_settings=true`; `shards`: `GET
/// _cat/shards?format=json&h=index,ip,node`.
pub fn judge_unreplicated(settings: &str, shards: &str, m: &Member) -> Result<(), Unhealthy> {
    let s = parse(settings)?;
    let s = s.as_object().ok_or("_settings is not a JSON object")?;
    let mut single = BTreeSet::new();
    for (index, v) in s {
        let r = v
            .pointer("/settings/index.number_of_replicas")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("_settings has no index.number_of_replicas for {index}"))?;
        if r == "0" {
            single.insert(index.as_str());
        }
    }
    let sh = parse(shards)?;
    let sh = sh.as_array().ok_or("_cat/shards is not a JSON list")?;
    let mut here = BTreeSet::new();
    for r in sh {
        let f = |k: &str| r.get(k).and_then(Value::as_str);
        let on_m = f("ip") == Some(m.address.as_str()) || f("node") == Some(m.id.as_str());
        if let Some(i) = f("index")
            && on_m
            && single.contains(i)
        {
            here.insert(i.to_string());
        }
    }
    if here.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} holds shards of indices with number_of_replicas = 0, which go offline with it: {}",
            m.id,
            here.into_iter().collect::<Vec<_>>().join(", ")
        )
        .into())
    }
}

/// Shards with a copy on `m` whose every started copy sits on `m` or on members that are
/// out or leave together with it (`going`): they would go offline. `shards`: `GET
/// _cat/shards?format=json&h=index,shard,prirep,state,ip,node`.
pub fn judge_copies(shards: &str, m: &Member, going: &[&Member]) -> Result<(), Unhealthy> {
    let sh = parse(shards)?;
    let sh = sh.as_array().ok_or("_cat/shards is not a JSON list")?;
    let on = |r: &Value, x: &Member| {
        let f = |k: &str| r.get(k).and_then(Value::as_str);
        f("ip") == Some(x.address.as_str()) || f("node") == Some(x.id.as_str())
    };
    // (index, shard) -> (has a copy on m, has a started copy elsewhere that stays)
    let mut copies: HashMap<(String, String), (bool, bool)> = HashMap::new();
    for r in sh {
        let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let e = copies
            .entry((f("index").to_string(), f("shard").to_string()))
            .or_default();
        if on(r, m) {
            e.0 = true;
        } else if f("state") == "STARTED"
            && !going.iter().any(|g| on(r, g))
            && !f("node").is_empty()
        {
            e.1 = true;
        }
    }
    let mut lost: Vec<String> = copies
        .into_iter()
        .filter(|(_, (here, elsewhere))| *here && !*elsewhere)
        .map(|((i, s), _)| format!("{i}[{s}]"))
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    lost.sort();
    let with: Vec<&str> = going.iter().map(|g| g.id.as_str()).collect();
    Err(Unhealthy(if with.is_empty() {
        format!(
            "the only started copy of {} is on {}: it would go offline",
            lost.join(", "),
            m.id
        )
    } else {
        format!(
            "every started copy of {} is on {} or on {} (out, or leaving with it): they would go offline together",
            lost.join(", "),
            m.id,
            with.join(", ")
        )
    }))
}

// ------------------------------------------------------------ I/O

/// One REST endpoint with the gate's client settings.
struct Api<'a> {
    client: reqwest::Client,
    base: String,
    auth: Option<&'a SearchAuth>,
}

impl SearchGate {
    /// The base URL for member `m`.
    pub fn base(&self, m: Option<&Member>) -> String {
        let (id, addr) = m.map_or(("", ""), |m| (m.id.as_str(), m.address.as_str()));
        self.url
            .replace("{host}", id)
            .replace("{address}", addr)
            .trim_end_matches('/')
            .to_string()
    }

    /// Every member's base URL, each once (a URL without a template is one endpoint).
    fn bases(&self, members: &[Member]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in members {
            let b = self.base(Some(m));
            if !out.contains(&b) {
                out.push(b);
            }
        }
        out
    }

    fn client(&self, timeout: Duration) -> Result<reqwest::Client, DriverError> {
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        if let Some((path, pem)) = &self.tls_ca {
            for c in
                reqwest::Certificate::from_pem_bundle(pem).map_err(|source| DriverError::TlsCa {
                    path: path.clone(),
                    source,
                })?
            {
                b = b.add_root_certificate(c);
            }
        }
        b.build().map_err(DriverError::HttpClient)
    }

    fn api(&self, base: String, timeout: Duration) -> Result<Api<'_>, DriverError> {
        Ok(Api {
            client: self.client(timeout)?,
            base,
            auth: self.auth.as_ref(),
        })
    }
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<String, DriverError> {
        let url = format!("{}{path}", self.base);
        let what = format!("{method} {url}");
        let mut rq = self.client.request(method, &url);
        rq = match self.auth {
            Some(SearchAuth::Basic { user, password, .. }) => {
                rq.basic_auth(user, Some(&password.0))
            }
            Some(SearchAuth::ApiKey { key, .. }) => {
                rq.header("Authorization", format!("ApiKey {}", key.0))
            }
            None => rq,
        };
        if let Some(b) = body {
            rq = rq
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = rq.send().await.map_err(|source| DriverError::Http {
            doing: what.clone(),
            source,
            chain: true,
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|source| DriverError::Http {
            doing: format!("{what}: reading the answer"),
            source,
            chain: true,
        })?;
        match status {
            200..=299 => Ok(text),
            401 | 403 => Err(DriverError::HttpStatus {
                doing: what,
                status,
                why: format!(
                    "authentication failed (HTTP {status}): {}",
                    truncate(text.trim(), 120)
                ),
            }),
            _ => Err(DriverError::HttpStatus {
                doing: what,
                status,
                why: format!("HTTP {status}: {}", truncate(text.trim(), 120)),
            }),
        }
    }
    async fn get(&self, path: &str) -> Result<String, DriverError> {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn put(&self, path: &str, body: &Value) -> Result<String, DriverError> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn post(&self, path: &str) -> Result<String, DriverError> {
        self.call(reqwest::Method::POST, path, None).await
    }
    /// An answer from `path` judged unhealthy, with the URL asked.
    fn at(&self, path: &str) -> impl Fn(Unhealthy) -> DriverError {
        let w = format!("{}{path}", self.base);
        move |e| DriverError::from(e).at(w.clone())
    }
}

const HEALTH: &str = "/_cluster/health";
const NODES: &str = "/_cat/nodes?format=json&h=ip,name";
const SETTINGS: &str = "/_cluster/settings?flat_settings=true";
const REPLICAS: &str =
    "/_all/_settings/index.number_of_replicas?flat_settings=true&expand_wildcards=all";
const INDICES: &str = "/_cat/indices?format=json&h=index&expand_wildcards=open";
const DELAYED_NOW: &str = "/_all/_settings/index.unassigned.node_left.delayed_timeout?flat_settings=true&expand_wildcards=open";
const MANAGER: &str = "/_cat/cluster_manager?format=json&h=ip,node";
const MASTER: &str = "/_cat/master?format=json&h=ip,node";
const SHARDS: &str = "/_cat/shards?format=json&h=index,shard,prirep,state,ip,node";

/// Every endpoint answers healthy; returns the first endpoint's API for more questions.
async fn all_healthy<'a>(
    g: &'a SearchGate,
    members: &[Member],
    timeout: Duration,
) -> Result<(Api<'a>, String), DriverError> {
    let mut first = None;
    let mut summary = String::new();
    for base in g.bases(members) {
        let api = g.api(base, timeout)?;
        let h = api.get(HEALTH).await?;
        summary = judge_health(&h, members.len()).map_err(api.at(HEALTH))?;
        first.get_or_insert(api);
    }
    let api = first.ok_or_else(|| unhealthy("the cluster has no members"))?;
    Ok((api, summary))
}

/// `GET _cat/cluster_manager` (OpenSearch 2+; Elasticsearch: `_cat/master`): which member
/// is the elected manager, by address or node name.
pub fn judge_manager(body: &str, members: &[Member]) -> Result<usize, Unhealthy> {
    let v = parse(body)?;
    let row = v
        .as_array()
        .and_then(|a| a.first())
        .ok_or("the cluster names no elected manager")?;
    let f = |k: &str| row.get(k).and_then(Value::as_str);
    members
        .iter()
        .position(|m| f("ip") == Some(m.address.as_str()) || f("node") == Some(m.id.as_str()))
        .ok_or_else(|| {
            Unhealthy(format!(
                "the elected manager {} ({}) is not a member of the fleet's cluster",
                f("node").unwrap_or("?"),
                f("ip").unwrap_or("?")
            ))
        })
}

/// The member that is the elected cluster manager, asked of the first member that answers.
pub async fn elected_manager(
    g: &SearchGate,
    members: &[Member],
    timeout: Duration,
) -> Result<usize, DriverError> {
    let mut why = Vec::new();
    for base in g.bases(members) {
        let api = g.api(base, timeout)?;
        for path in [MANAGER, MASTER] {
            match api.get(path).await {
                Ok(b) => return judge_manager(&b, members).map_err(api.at(path)),
                Err(e) => why.push(e),
            }
        }
    }
    Err(DriverError::Every {
        what: "no member says who the manager is".into(),
        errors: why,
    })
}

/// The pre-gate for member `host` (about to go).
pub async fn check_before(
    g: &SearchGate,
    members: &[Member],
    host: usize,
    timeout: Duration,
) -> Result<String, DriverError> {
    let m = members.get(host).ok_or(DriverError::NotAMember)?;
    let (api, summary) = all_healthy(g, members, timeout).await?;
    let settings = api.get(REPLICAS).await?;
    let shards = api.get(SHARDS).await?;
    judge_unreplicated(&settings, &shards, m)?;
    let going: Vec<&Member> = members.iter().filter(|x| x.going).collect();
    judge_copies(&shards, m, &going)?;
    Ok(summary)
}

/// The gate after member `host` came back.
pub async fn check_after(
    g: &SearchGate,
    members: &[Member],
    host: usize,
    timeout: Duration,
) -> Result<String, DriverError> {
    let m = members.get(host).ok_or(DriverError::NotAMember)?;
    let (api, summary) = all_healthy(g, members, timeout).await?;
    let nodes = api.get(NODES).await?;
    let present = judge_node_present(&nodes, m).map_err(api.at(NODES))?;
    Ok(format!("{summary}; {present}"))
}

/// Endpoints to use for cluster-wide requests about `host`: the other members first (the
/// host itself may be about to go), then the host.
fn order(g: &SearchGate, members: &[Member], host: usize) -> Vec<String> {
    let mut idx: Vec<usize> = (0..members.len()).filter(|&i| i != host).collect();
    idx.push(host);
    let mut out: Vec<String> = Vec::new();
    for i in idx {
        let b = g.base(members.get(i));
        if !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// The first endpoint that answers `GET _cluster/settings`, with the answer.
async fn reachable<'a>(
    g: &'a SearchGate,
    members: &[Member],
    host: usize,
    timeout: Duration,
) -> Result<(Api<'a>, Allocation), DriverError> {
    let mut why = Vec::new();
    for base in order(g, members, host) {
        let api = g.api(base, timeout)?;
        match api.get(SETTINGS).await {
            Ok(b) => {
                let a = parse_allocation(&b).map_err(api.at(SETTINGS))?;
                return Ok((api, a));
            }
            Err(e) => why.push(e),
        }
    }
    Err(DriverError::Every {
        what: "no member answers".into(),
        errors: why,
    })
}

/// Who holds the allocation setting changed by drains, per cluster: the first drain
/// remembers the value it found; overlapping drains of the same cluster only count; the
/// last restore puts the remembered value back. One per driver.
#[derive(Debug, Default)]
pub struct Ledger {
    held: Mutex<HashMap<String, (usize, Allocation)>>,
}

/// What a restore should do.
#[derive(Debug, PartialEq)]
pub enum Release {
    /// The last drain of this cluster ended: put this back.
    Restore(Allocation),
    /// Other members are still drained: leave allocation at primaries.
    StillHeld(usize),
    /// No drain is known (rollcall restarted since): reset a `primaries` it finds.
    Unknown,
}

impl Ledger {
    /// Is a drain of this cluster outstanding?
    fn is_held(&self, cluster: &str) -> bool {
        self.lock().get(cluster).is_some_and(|(n, _)| *n > 0)
    }
    /// The value the first outstanding drain of `cluster` found, if one is outstanding.
    pub fn remembered(&self, cluster: &str) -> Option<Allocation> {
        self.lock()
            .get(cluster)
            .filter(|(n, _)| *n > 0)
            .map(|(_, a)| a.clone())
    }
    /// Count one more outstanding drain of `cluster`; `prev` is kept only by the first.
    pub fn hold(&self, cluster: &str, prev: Allocation) {
        let mut h = self.lock();
        let e = h.entry(cluster.to_string()).or_insert((0, prev));
        e.0 += 1;
    }
    pub fn release(&self, cluster: &str) -> Release {
        let mut h = self.lock();
        match h.get_mut(cluster) {
            None => Release::Unknown,
            Some((n, _)) if *n > 1 => {
                *n -= 1;
                Release::StillHeld(*n)
            }
            Some(_) => Release::Restore(h.remove(cluster).map(|e| e.1).unwrap_or_default()),
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (usize, Allocation)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Drain: allocation to primaries (remembering the previous value), then flush. Every
/// request has its own timeout (`timeout`; the flush `flush_timeout`), so a drain either
/// returns with the change held in `ledger`, or undoes it (or says loudly that it could
/// not).
pub async fn drain(
    g: &SearchGate,
    cluster: &str,
    members: &[Member],
    host: usize,
    timeout: Duration,
    flush_timeout: Duration,
    ledger: &Ledger,
) -> Result<String, DriverError> {
    let (api, mut prev) = reachable(g, members, host, timeout).await?;
    let first = !ledger.is_held(cluster);
    if first && let Some(d) = g.delayed_timeout {
        prev.delayed = Some(raise_delayed(&api, d).await?);
    }
    let changed = async {
        judge_ack(&api.put(SETTINGS, &drain_body(&prev)).await?).map_err(api.at(SETTINGS))?;
        let flusher = g.api(api.base.clone(), flush_timeout)?;
        let flushed = flusher.post("/_flush").await?;
        Ok::<_, DriverError>(judge_flush(&flushed)?)
    };
    let flushed = match changed.await {
        Ok(f) => f,
        // fail closed, and leave the cluster as it was
        Err(e) if first => {
            return Err(match put_back(&api, &prev, &restore_body(&prev)).await {
                Ok(()) => e.undone(format!("put back: {prev}")),
                Err(u) => e.undo_failed(format!("putting back {prev}"), u),
            });
        }
        Err(e) => return Err(e),
    };
    let was = if first {
        prev.to_string()
    } else {
        "held by another drain of this cluster".into()
    };
    ledger.hold(cluster, prev);
    Ok(format!("allocation primaries (was {was}); {flushed}"))
}

/// Raise every index's delayed timeout to `d`; what each had before.
async fn raise_delayed(
    api: &Api<'_>,
    d: Duration,
) -> Result<BTreeMap<String, Option<String>>, DriverError> {
    let indices = api.get(INDICES).await?;
    let settings = api.get(DELAYED_NOW).await?;
    let before = parse_delayed(&indices, &settings).map_err(api.at(DELAYED_NOW))?;
    let raised: BTreeMap<String, Option<String>> = before
        .keys()
        .map(|i| (i.clone(), Some(format!("{}s", d.as_secs()))))
        .collect();
    if let Err(e) = put_delayed(api, &raised).await {
        let e = match put_delayed(api, &before).await {
            Ok(()) => e.undone("put back"),
            Err(u) => e.undo_failed("putting it back", u),
        };
        return Err(e.at(format!("raising {DELAYED}")));
    }
    Ok(before)
}

async fn put_delayed(
    api: &Api<'_>,
    values: &BTreeMap<String, Option<String>>,
) -> Result<(), DriverError> {
    for (indices, body) in delayed_bodies(values) {
        let path = format!("/{indices}/_settings");
        judge_ack(&api.put(&path, &body).await?).map_err(api.at(&path))?;
    }
    Ok(())
}

/// Put allocation (with `body`) and the delayed timeouts of `prev` back.
async fn put_back(api: &Api<'_>, prev: &Allocation, body: &Value) -> Result<(), DriverError> {
    judge_ack(&api.put(SETTINGS, body).await?).map_err(api.at(SETTINGS))?;
    match &prev.delayed {
        Some(d) => put_delayed(api, d).await,
        None => Ok(()),
    }
}

/// Restore: allocation back to its value before the drain, once the host's node is back
/// in the cluster (as Elasticsearch's rolling-restart guide does: its replicas then
/// recover from its own copies instead of being copied elsewhere). A node that has not
/// rejoined within `rejoin_wait` does not keep allocation at primaries: it is put back
/// anyway, and the answer says so.
pub async fn restore(
    g: &SearchGate,
    cluster: &str,
    members: &[Member],
    host: usize,
    timeout: Duration,
    rejoin_wait: Duration,
    ledger: &Ledger,
) -> Result<String, DriverError> {
    let release = ledger.release(cluster);
    let result = restore_inner(g, members, host, timeout, rejoin_wait, &release).await;
    if result.is_err()
        && let Release::Restore(prev) = release
    {
        // not restored: keep it held so that a retry restores it
        ledger.hold(cluster, prev);
    }
    result
}

/// Wait until `m` is in `_cat/nodes` (at most `wait`): how long it took, or `None`.
async fn await_rejoin(api: &Api<'_>, m: &Member, wait: Duration) -> Option<Duration> {
    let t = std::time::Instant::now();
    loop {
        if let Ok(b) = api.get(NODES).await
            && judge_node_present(&b, m).is_ok()
        {
            return Some(t.elapsed());
        }
        if t.elapsed() >= wait {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn restore_inner(
    g: &SearchGate,
    members: &[Member],
    host: usize,
    timeout: Duration,
    rejoin_wait: Duration,
    release: &Release,
) -> Result<String, DriverError> {
    let m = members.get(host).ok_or(DriverError::NotAMember)?;
    let (api, now) = reachable(g, members, host, timeout).await?;
    let (prev, body) = match release {
        Release::StillHeld(n) => {
            return Ok(format!(
                "allocation stays primaries: {n} other member(s) of the cluster still drained"
            ));
        }
        Release::Restore(p) => (p.clone(), restore_body(p)),
        Release::Unknown if now.persistent.as_deref() != Some("primaries") => {
            return Ok(format!("nothing to undo (allocation: {now})"));
        }
        Release::Unknown => {
            // the value before the drain is not known here: unset what drains set
            let mut b = json!({ "persistent": { ALLOCATION: null } });
            if now.transient.as_deref() == Some("primaries") {
                b["transient"] = json!({ ALLOCATION: null });
            }
            (Allocation::default(), b)
        }
    };
    let rejoined = match await_rejoin(&api, m, rejoin_wait).await {
        Some(t) => format!("{} rejoined after {:.1}s", m.id, t.as_secs_f64()),
        None => format!(
            "{} has not rejoined within {}s: put back anyway, never left at primaries",
            m.id,
            rejoin_wait.as_secs()
        ),
    };
    put_back(&api, &prev, &body).await?;
    let after = parse_allocation(&api.get(SETTINGS).await?).map_err(api.at(SETTINGS))?;
    if after.persistent != prev.persistent {
        return Err(unhealthy(format!(
            "allocation is {after} after putting back {prev}"
        )));
    }
    Ok(match release {
        Release::Unknown => format!(
            "{rejoined}; allocation reset from primaries to unset (the value before the drain is not known: rollcall restarted since); now {after}"
        ),
        _ => format!("{rejoined}; allocation back to {prev}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, a: &str) -> Member {
        Member {
            id: id.into(),
            address: a.into(),
            going: false,
        }
    }

    const GREEN: &str = r#"{"cluster_name":"c","status":"green","timed_out":false,"number_of_nodes":3,"number_of_data_nodes":3,"active_primary_shards":4,"active_shards":8,"relocating_shards":0,"initializing_shards":0,"unassigned_shards":0,"delayed_unassigned_shards":0}"#;

    #[test]
    fn health_wants_green_all_nodes_and_nothing_moving() {
        assert_eq!(
            judge_health(GREEN, 3),
            Ok("green, 3 nodes, 8 shards active".into())
        );
        let e = judge_health(GREEN, 4).unwrap_err();
        assert!(e.to_string().contains("3 nodes (the fleet says 4)"), "{e}");
        let y = GREEN
            .replace("\"green\"", "\"yellow\"")
            .replace("\"unassigned_shards\":0", "\"unassigned_shards\":4")
            .replace("\"initializing_shards\":0", "\"initializing_shards\":1");
        let e = judge_health(&y, 3).unwrap_err();
        assert_eq!(
            e,
            "status yellow, 1 initializing shards, 4 unassigned shards"
        );
        let r = GREEN.replace("\"relocating_shards\":0", "\"relocating_shards\":2");
        assert_eq!(judge_health(&r, 3).unwrap_err(), "2 relocating shards");
        assert!(
            judge_health("<html>", 3)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(
            judge_health(r#"{"status":"green"}"#, 3)
                .unwrap_err()
                .to_string()
                .contains("no number number_of_nodes")
        );
        assert!(
            judge_health("{}", 3)
                .unwrap_err()
                .to_string()
                .contains("no status")
        );
    }

    #[test]
    fn node_presence_by_address_or_name() {
        let body = r#"[{"ip":"10.0.0.1","name":"a"},{"ip":"10.0.0.2","name":"b"}]"#;
        assert!(judge_node_present(body, &m("b", "10.0.0.2")).is_ok());
        assert!(judge_node_present(body, &m("a", "a.example")).is_ok());
        let e = judge_node_present(body, &m("c", "10.0.0.3")).unwrap_err();
        assert!(
            e.to_string()
                .contains("no node with address 10.0.0.3 or name c"),
            "{e}"
        );
        assert!(e.to_string().contains("a (10.0.0.1), b (10.0.0.2)"), "{e}");
        assert!(judge_node_present("{}", &m("c", "x")).is_err());
    }

    #[test]
    fn allocation_parsing_and_bodies() {
        let unset = parse_allocation(r#"{"persistent":{},"transient":{}}"#).unwrap();
        assert_eq!(unset, Allocation::default());
        assert_eq!(
            restore_body(&unset),
            json!({"persistent": {ALLOCATION: null}})
        );
        assert_eq!(
            drain_body(&unset),
            json!({"persistent": {ALLOCATION: "primaries"}})
        );
        let both = parse_allocation(
            r#"{"persistent":{"cluster.routing.allocation.enable":"new_primaries"},"transient":{"cluster.routing.allocation.enable":"all"}}"#,
        )
        .unwrap();
        assert_eq!(both.persistent.as_deref(), Some("new_primaries"));
        assert_eq!(
            drain_body(&both),
            json!({"persistent": {ALLOCATION: "primaries"}, "transient": {ALLOCATION: "primaries"}})
        );
        assert_eq!(
            restore_body(&both),
            json!({"persistent": {ALLOCATION: "new_primaries"}, "transient": {ALLOCATION: "all"}})
        );
        assert!(parse_allocation(r#"{"transient":{}}"#).is_err());
        assert!(
            parse_allocation(
                r#"{"persistent":{"cluster.routing.allocation.enable":1},"transient":{}}"#
            )
            .unwrap_err()
            .to_string()
            .contains("not a string")
        );
    }

    #[test]
    fn acks_and_flushes() {
        assert!(judge_ack(r#"{"acknowledged":true,"persistent":{}}"#).is_ok());
        assert!(judge_ack(r#"{"acknowledged":false}"#).is_err());
        assert!(judge_ack("nope").is_err());
        assert_eq!(
            judge_flush(r#"{"_shards":{"total":7,"successful":7,"failed":0}}"#),
            Ok("flushed 7 of 7 shard copies".into())
        );
        assert!(
            judge_flush(r#"{"_shards":{"total":7,"successful":5,"failed":2}}"#)
                .unwrap_err()
                .to_string()
                .contains("failed on 2 of 7")
        );
        assert!(judge_flush(r#"{"ok":1}"#).is_err());
    }

    #[test]
    fn unreplicated_indices_on_the_host_are_named() {
        let settings = r#"{"docs":{"settings":{"index.number_of_replicas":"1"}},"solo":{"settings":{"index.number_of_replicas":"0"}},"solo2":{"settings":{"index.number_of_replicas":"0"}}}"#;
        let shards = r#"[{"index":"docs","ip":"10.0.0.1","node":"a"},{"index":"docs","ip":"10.0.0.2","node":"b"},{"index":"solo","ip":"10.0.0.3","node":"c"},{"index":"solo2","ip":null,"node":null}]"#;
        assert!(judge_unreplicated(settings, shards, &m("a", "10.0.0.1")).is_ok());
        let e = judge_unreplicated(settings, shards, &m("c", "10.0.0.3")).unwrap_err();
        assert!(
            e.to_string().contains("number_of_replicas = 0") && e.to_string().ends_with(": solo"),
            "{e}"
        );
        assert!(judge_unreplicated("[]", shards, &m("a", "x")).is_err());
        assert!(judge_unreplicated(r#"{"x":{}}"#, shards, &m("a", "x")).is_err());
    }

    #[test]
    fn delayed_timeouts_before_and_the_bodies_that_put_them_back() {
        let indices = r#"[{"index":"docs"},{"index":"events"},{"index":"logs"}]"#;
        let settings = r#"{"docs":{"settings":{"index.unassigned.node_left.delayed_timeout":"3s"}},"events":{"settings":{}}}"#;
        let d = parse_delayed(indices, settings).unwrap();
        assert_eq!(d["docs"].as_deref(), Some("3s"));
        assert_eq!(d["events"], None);
        assert_eq!(d["logs"], None, "an index missing from _settings is unset");
        let b = delayed_bodies(&d);
        assert_eq!(
            b,
            [
                ("events,logs".to_string(), json!({ DELAYED: null })),
                ("docs".to_string(), json!({ DELAYED: "3s" })),
            ]
        );
        let many: BTreeMap<String, Option<String>> =
            (0..120).map(|i| (format!("i{i:03}"), None)).collect();
        assert_eq!(delayed_bodies(&many).len(), 3);
        assert!(parse_delayed("{}", settings).is_err());
        assert!(parse_delayed(r#"[{"x":1}]"#, settings).is_err());
        let a = Allocation {
            delayed: Some(d),
            ..Allocation::default()
        };
        let back: Allocation = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a, "the hold journals the delayed timeouts too");
        let old: Allocation =
            serde_json::from_str(r#"{"persistent":"all","transient":null}"#).unwrap();
        assert_eq!(old.delayed, None, "holds journalled before this still read");
    }

    #[test]
    fn the_elected_manager_by_address_or_name() {
        let ms = [m("a", "10.0.0.1"), m("b", "10.0.0.2")];
        assert_eq!(
            judge_manager(r#"[{"ip":"10.0.0.2","node":"x"}]"#, &ms),
            Ok(1)
        );
        assert_eq!(
            judge_manager(r#"[{"ip":"9.9.9.9","node":"a"}]"#, &ms),
            Ok(0)
        );
        let e = judge_manager(r#"[{"ip":"9.9.9.9","node":"z"}]"#, &ms).unwrap_err();
        assert!(e.to_string().contains("z (9.9.9.9) is not a member"), "{e}");
        assert!(judge_manager("[]", &ms).is_err());
        assert!(judge_manager("nope", &ms).is_err());
    }

    #[test]
    fn shards_whose_copies_all_leave_together_are_named() {
        // docs[0] on a and b; docs[1] on b and c; logs[0] on a and c (replica initializing)
        let shards = r#"[
            {"index":"docs","shard":"0","prirep":"p","state":"STARTED","ip":"10.0.0.1","node":"a"},
            {"index":"docs","shard":"0","prirep":"r","state":"STARTED","ip":"10.0.0.2","node":"b"},
            {"index":"docs","shard":"1","prirep":"p","state":"STARTED","ip":"10.0.0.2","node":"b"},
            {"index":"docs","shard":"1","prirep":"r","state":"STARTED","ip":"10.0.0.3","node":"c"},
            {"index":"logs","shard":"0","prirep":"p","state":"STARTED","ip":"10.0.0.1","node":"a"},
            {"index":"logs","shard":"0","prirep":"r","state":"INITIALIZING","ip":"10.0.0.3","node":"c"}]"#;
        let (a, b, c) = (m("a", "10.0.0.1"), m("b", "10.0.0.2"), m("c", "10.0.0.3"));
        // alone, b is fine: every shard it holds has a started copy elsewhere
        assert!(judge_copies(shards, &b, &[]).is_ok());
        // a alone: logs[0]'s only started copy is on a
        let e = judge_copies(shards, &a, &[]).unwrap_err();
        assert_eq!(
            e,
            "the only started copy of logs[0] is on a: it would go offline"
        );
        // b leaving with a: docs[0] has both copies on them
        let e = judge_copies(shards, &b, &[&a]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("every started copy of docs[0] is on b or on a"),
            "{e}"
        );
        let e = judge_copies(shards, &b, &[&a, &c]).unwrap_err();
        assert!(e.to_string().contains("docs[0], docs[1]"), "{e}");
        assert!(judge_copies("{}", &a, &[]).is_err());
    }

    #[test]
    fn ledger_restores_once_after_the_last_of_overlapping_drains() {
        let l = Ledger::default();
        assert_eq!(l.release("es"), Release::Unknown);
        let prev = Allocation {
            persistent: Some("all".into()),
            transient: None,
            delayed: None,
        };
        l.hold("es", prev.clone());
        assert!(l.is_held("es"));
        // a second drain while the first is held does not overwrite what was remembered
        l.hold("es", Allocation::default());
        assert_eq!(l.release("es"), Release::StillHeld(1));
        assert_eq!(l.release("es"), Release::Restore(prev));
        assert_eq!(l.release("es"), Release::Unknown);
    }

    #[test]
    fn templated_base_urls() {
        let g = SearchGate {
            url: "https://{host}.example:9200/".into(),
            auth: None,
            tls_ca: None,
            delayed_timeout: None,
        };
        let ms = [m("a", "10.0.0.1"), m("b", "10.0.0.2")];
        assert_eq!(g.base(Some(&ms[1])), "https://b.example:9200");
        assert_eq!(g.bases(&ms).len(), 2);
        assert_eq!(
            order(&g, &ms, 0),
            ["https://b.example:9200", "https://a.example:9200"]
        );
        let lb = SearchGate {
            url: "http://lb:9200".into(),
            ..g
        };
        assert_eq!(lb.bases(&ms), ["http://lb:9200"]);
        assert!(!format!("{:?}", Secret("hunter2".into())).contains("hunter2"));
    }
}
