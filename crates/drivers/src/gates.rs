//! Cluster gates and drains for the real-host drivers.
//!
//! A gate answers "is this cluster healthy (with this member back)?". Any error,
//! timeout or answer that cannot be parsed is unhealthy, with a detail saying why.
//! A drain prepares a cluster for one member's reboot (Redis: fail a master over to an
//! in-sync replica; etcd: move the leadership away); it fails closed too.

use crate::config::GateSpec;
use crate::error::{DriverError, unhealthy};
use crate::etcd::EtcdHttp;
pub use crate::etcd::EtcdStatus;
use crate::search;
pub use crate::search::Ledger;
use crate::transport::{run_local, shell_quote, truncate};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The members of a cluster as the gates see them.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub address: String,
    /// Out of the cluster, or leaving together with the member a pre-gate is about.
    pub going: bool,
}

pub use crate::judge::{
    NodeLine, Unhealthy, json_field, judge_json, judge_redis_view, judge_rejoined, kv_lines,
    parse_nodes,
};

/// A gate's, drain's or restore's answer: healthy (done) with a summary, or why not.
pub type Verdict = Result<String, DriverError>;

/// When a gate is asked, about which member (an index into `members`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The pre-gate: is the cluster healthy enough for this member to go?
    Before(usize),
    /// This member just came back: has it rejoined, is the cluster healthy again?
    After(usize),
}

impl Phase {
    pub fn host(self) -> usize {
        match self {
            Phase::Before(h) | Phase::After(h) => h,
        }
    }
    fn after(self) -> Option<usize> {
        match self {
            Phase::Before(_) => None,
            Phase::After(h) => Some(h),
        }
    }
}

/// Check a cluster.
///
/// An `http` or `command` gate whose template names a member (`{host}`, `{address}`) asks,
/// in the pre-gate, every member (each must be healthy), and after a reboot the member
/// that came back. A template without them is asked once.
pub async fn check(
    spec: &GateSpec,
    cluster: &str,
    members: &[Member],
    phase: Phase,
    timeout: Duration,
) -> Verdict {
    let work = async {
        match spec {
            GateSpec::None => Ok("no gate for this kind".to_string()),
            GateSpec::Redis { port, password } => {
                redis_check(members, *port, password.as_deref(), phase.after()).await
            }
            GateSpec::Etcd { port, max_raft_lag } => {
                etcd_check(members, *port, *max_raft_lag, phase.after()).await
            }
            GateSpec::Search(g) => match phase {
                Phase::Before(h) => search::check_before(g, members, h, timeout).await,
                Phase::After(h) => search::check_after(g, members, h, timeout).await,
            },
            GateSpec::Http {
                url,
                status,
                expect,
            } => {
                let mut last = Err(unhealthy("the cluster has no members"));
                for t in targets(url, members, phase, cluster, false) {
                    last = Ok(http_check(&t, *status, expect, timeout).await?);
                }
                last
            }
            GateSpec::Command { command, .. } => {
                let mut last = Err(unhealthy("the cluster has no members"));
                for t in targets(command, members, phase, cluster, true) {
                    last = Ok(command_check(&t, timeout).await?);
                }
                last
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(v) => v.map_err(|e| e.in_cluster(cluster)),
        Err(_) => Err(DriverError::GateTimeout {
            cluster: cluster.to_string(),
            timeout,
        }),
    }
}

/// Prepare the cluster for `members[host]`'s reboot. `ledger` remembers what a drain
/// changed, for the restore.
pub async fn drain(
    spec: &GateSpec,
    cluster: &str,
    members: &[Member],
    host: usize,
    timeout: Duration,
    drain_timeout: Duration,
    ledger: &Ledger,
) -> Verdict {
    let r = match spec {
        // not cut short from outside: each request has its own timeout, and a failed
        // drain undoes its change
        GateSpec::Search(g) => {
            search::drain(g, cluster, members, host, timeout, drain_timeout, ledger).await
        }
        GateSpec::None | GateSpec::Http { .. } => Ok("nothing to prepare".into()),
        GateSpec::Command { drain: None, .. } => Ok("nothing to prepare".into()),
        GateSpec::Command { drain: Some(c), .. } => {
            command_check(&fill(c, members.get(host), cluster, true), drain_timeout).await
        }
        GateSpec::Redis { port, password } => {
            redis_failover(
                members,
                *port,
                password.as_deref(),
                host,
                timeout,
                drain_timeout,
            )
            .await
        }
        GateSpec::Etcd { port, .. } => {
            etcd_move_leader(members, *port, host, timeout, drain_timeout).await
        }
    };
    r.map_err(|e| e.in_cluster(cluster))
}

/// Undo a drain. Redis and etcd need nothing: the failed-over master stays a replica
/// and the leadership stays where it went. Elasticsearch/OpenSearch waits (at most
/// `rejoin_wait`) for the host's node to rejoin first.
pub async fn restore(
    spec: &GateSpec,
    cluster: &str,
    members: &[Member],
    host: usize,
    timeout: Duration,
    rejoin_wait: Duration,
    ledger: &Ledger,
) -> Verdict {
    match spec {
        // not cut short from outside: each request has its own timeout
        GateSpec::Search(g) => {
            search::restore(g, cluster, members, host, timeout, rejoin_wait, ledger)
                .await
                .map_err(|e| e.in_cluster(cluster))
        }
        GateSpec::Command {
            restore: Some(c), ..
        } => command_check(&fill(c, members.get(host), cluster, true), timeout)
            .await
            .map_err(|e| e.in_cluster(cluster)),
        _ => Ok("nothing to undo".into()),
    }
}

/// What an http or command gate asks in `phase`: the template filled for every member
/// (pre-gate) or for the member that came back; a template naming no member, once.
pub fn targets(
    t: &str,
    members: &[Member],
    phase: Phase,
    cluster: &str,
    quote: bool,
) -> Vec<String> {
    let per_member = t.contains("{host}") || t.contains("{address}");
    let who: Vec<&Member> = match phase {
        _ if !per_member => vec![],
        Phase::Before(_) => members.iter().collect(),
        Phase::After(h) => members.get(h).into_iter().collect(),
    };
    if who.is_empty() {
        return vec![fill(t, None, cluster, quote)];
    }
    who.into_iter()
        .map(|m| fill(t, Some(m), cluster, quote))
        .collect()
}

fn fill(t: &str, m: Option<&Member>, cluster: &str, quote: bool) -> String {
    let q = |s: &str| if quote { shell_quote(s) } else { s.to_string() };
    let (id, addr) = m.map_or(("", ""), |m| (m.id.as_str(), m.address.as_str()));
    t.replace("{host}", &q(id))
        .replace("{address}", &q(addr))
        .replace("{cluster}", &q(cluster))
}

async fn command_check(script: &str, timeout: Duration) -> Verdict {
    match run_local(script, timeout).await {
        Ok(o) if o.ok() => Ok(truncate(o.stdout.trim(), 200)),
        Ok(o) => Err(DriverError::Exit {
            command: truncate(script, 80),
            outcome: o.describe(),
        }),
        Err(source) => Err(DriverError::Run {
            command: truncate(script, 80),
            source,
        }),
    }
}

// ---------------------------------------------------------------- http

async fn http_check(
    url: &str,
    status: u16,
    expect: &[(String, serde_json::Value)],
    timeout: Duration,
) -> Verdict {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(DriverError::HttpClient)?;
    let http = |doing: String| {
        move |source| DriverError::Http {
            doing,
            source,
            chain: false,
        }
    };
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(http(format!("GET {url}")))?;
    let got = resp.status().as_u16();
    let body = resp
        .text()
        .await
        .map_err(http(format!("GET {url}: reading the body")))?;
    if got != status {
        return Err(DriverError::HttpStatus {
            doing: format!("GET {url}"),
            status: got,
            why: format!(
                "status {got} (want {status}): {}",
                truncate(body.trim(), 120)
            ),
        });
    }
    judge_json(&body, expect).map_err(|e| DriverError::from(e).at(format!("GET {url}")))
}

// ---------------------------------------------------------------- redis

fn redis_url(addr: &str, port: u16, password: Option<&str>) -> String {
    match password {
        Some(p) => format!("redis://:{}@{addr}:{port}/", url_escape(p)),
        None => format!("redis://{addr}:{port}/"),
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Node {
    name: String,
    con: redis::aio::MultiplexedConnection,
}

async fn redis_connect(addr: &str, port: u16, password: Option<&str>) -> Result<Node, DriverError> {
    let name = format!("{addr}:{port}");
    let failed = |source| DriverError::Redis {
        node: name.clone(),
        command: None,
        source,
    };
    let client = redis::Client::open(redis_url(addr, port, password)).map_err(failed)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    let con = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(failed)?;
    Ok(Node { name, con })
}

impl Node {
    async fn text(&mut self, args: &[&str]) -> Result<String, DriverError> {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query_async::<String>(&mut self.con)
            .await
            .map_err(|source| DriverError::Redis {
                node: self.name.clone(),
                command: Some(args.join(" ")),
                source,
            })
    }
    async fn info_replication(&mut self) -> Result<HashMap<String, String>, DriverError> {
        Ok(kv_lines(&self.text(&["INFO", "replication"]).await?))
    }
}

async fn redis_check(
    members: &[Member],
    port: u16,
    password: Option<&str>,
    host: Option<usize>,
) -> Verdict {
    let mut masters = 0;
    for (i, m) in members.iter().enumerate() {
        let mut n = redis_connect(&m.address, port, password).await?;
        let info = n.text(&["CLUSTER", "INFO"]).await?;
        let nodes = n.text(&["CLUSTER", "NODES"]).await?;
        judge_redis_view(&info, &nodes, members.len()).map_err(|why| DriverError::Says {
            node: n.name.clone(),
            why,
        })?;
        if i == 0 {
            masters = parse_nodes(&nodes)?
                .iter()
                .filter(|l| l.has("master") && l.slots > 0)
                .count();
        }
        if host == Some(i) {
            judge_rejoined(&n.info_replication().await?)
                .map_err(|e| DriverError::from(e).at(n.name.clone()))?;
        }
    }
    Ok(format!(
        "{} nodes, {masters} masters with replicas, 16384 slots ok",
        members.len()
    ))
}

async fn redis_failover(
    members: &[Member],
    port: u16,
    password: Option<&str>,
    host: usize,
    timeout: Duration,
    drain_timeout: Duration,
) -> Verdict {
    let m = members.get(host).ok_or(DriverError::NotAMember)?;
    let mut me = redis_connect(&m.address, port, password).await?;
    let repl = me.info_replication().await?;
    match repl.get("role").map(|s| s.trim()) {
        Some("slave") => return Ok(format!("{} is a replica: nothing to fail over", me.name)),
        Some("master") => {}
        other => return Err(unhealthy(format!("{}: unexpected role {other:?}", me.name))),
    }
    let nodes = parse_nodes(&me.text(&["CLUSTER", "NODES"]).await?)?;
    let myself = nodes
        .iter()
        .find(|n| n.has("myself"))
        .ok_or_else(|| unhealthy(format!("{}: CLUSTER NODES has no `myself` line", me.name)))?
        .clone();
    if myself.slots == 0 {
        return Ok(format!(
            "{} is a master without slots: nothing to fail over",
            me.name
        ));
    }
    let candidates: Vec<NodeLine> = nodes
        .iter()
        .filter(|n| {
            n.has("slave")
                && n.master.as_deref() == Some(myself.id.as_str())
                && n.connected
                && !n.has("fail")
                && !n.has("fail?")
                && !n.has("nofailover")
        })
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Err(unhealthy(format!(
            "master {} has no connected replica to fail over to",
            me.name
        )));
    }
    let deadline = Instant::now() + drain_timeout;
    let mut why = Vec::new();
    for c in &candidates {
        let (addr, p) = c
            .addr
            .rsplit_once(':')
            .and_then(|(a, p)| Some((a.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| unhealthy(format!("bad replica address {}", c.addr)))?;
        let mut r = match redis_connect(&addr, p, password).await {
            Ok(r) => r,
            Err(e) => {
                why.push(e.to_string());
                continue;
            }
        };
        let rr = r.info_replication().await?;
        if rr.get("master_link_status").map(|s| s.trim()) != Some("up")
            || rr.get("master_sync_in_progress").map(|s| s.trim()) != Some("0")
        {
            why.push(format!("replica {} is not in sync", r.name));
            continue;
        }
        // CLUSTER FAILOVER is asynchronous and aborts after 5 s: ask, poll, ask again
        let mut asked = Instant::now() - Duration::from_secs(60);
        loop {
            if Instant::now() >= deadline {
                return Err(unhealthy(format!(
                    "failover of {} to {} did not complete within {}s ({})",
                    me.name,
                    r.name,
                    drain_timeout.as_secs(),
                    why.join("; ")
                )));
            }
            if asked.elapsed() >= Duration::from_secs(6) {
                match r.text(&["CLUSTER", "FAILOVER"]).await {
                    Ok(_) => {}
                    Err(e) => why.push(e.to_string()),
                }
                asked = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200).min(timeout)).await;
            let old = me.info_replication().await.ok();
            let new = r.info_replication().await.ok();
            let role = |x: &Option<HashMap<String, String>>| {
                x.as_ref()
                    .and_then(|x| x.get("role").map(|s| s.trim().to_string()))
            };
            if role(&old).as_deref() == Some("slave") && role(&new).as_deref() == Some("master") {
                return Ok(format!("failed {} over to {}", me.name, r.name));
            }
        }
    }
    Err(unhealthy(format!(
        "no replica of {} could take over: {}",
        me.name,
        why.join("; ")
    )))
}

// ---------------------------------------------------------------- etcd

const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

async fn etcd_status(ep: &str) -> Result<(EtcdHttp, EtcdStatus), DriverError> {
    let c = EtcdHttp::new(ep, ETCD_TIMEOUT)?;
    let s = c.status().await?;
    Ok((c, s))
}

/// Judge the statuses of all endpoints (the pure part of the etcd gate).
pub fn judge_etcd(
    st: &[EtcdStatus],
    members: usize,
    max_lag: u64,
    host: Option<usize>,
) -> crate::judge::Verdict {
    if st.len() != members {
        return Err(format!("{} of {members} endpoints answered", st.len()).into());
    }
    let leader = st[0].leader;
    if leader == 0 {
        return Err(format!("{} sees no leader", st[0].endpoint).into());
    }
    for s in st {
        if s.leader != leader {
            return Err(format!(
                "members disagree on the leader ({} says {:x}, {} says {:x})",
                st[0].endpoint, leader, s.endpoint, s.leader
            )
            .into());
        }
        if s.raft_term != st[0].raft_term {
            return Err(format!(
                "raft terms differ ({} {} vs {} {})",
                st[0].endpoint, st[0].raft_term, s.endpoint, s.raft_term
            )
            .into());
        }
    }
    let lead = st
        .iter()
        .find(|s| s.member_id == leader)
        .ok_or_else(|| Unhealthy(format!("the leader {leader:x} is not one of the endpoints")))?;
    let check: Vec<&EtcdStatus> = match host {
        Some(h) => st.get(h).into_iter().collect(),
        None => st.iter().collect(),
    };
    for s in check {
        if s.raft_index + max_lag < lead.raft_index {
            return Err(format!(
                "{} is behind: raft index {} vs the leader's {}",
                s.endpoint, s.raft_index, lead.raft_index
            )
            .into());
        }
    }
    Ok(format!(
        "{members} members healthy, leader {} (term {})",
        lead.endpoint, lead.raft_term
    ))
}

fn etcd_endpoints(members: &[Member], port: u16) -> Vec<String> {
    members
        .iter()
        .map(|m| format!("http://{}:{port}", m.address))
        .collect()
}

async fn etcd_check(members: &[Member], port: u16, max_lag: u64, host: Option<usize>) -> Verdict {
    let eps = etcd_endpoints(members, port);
    let mut st = Vec::new();
    for ep in &eps {
        let (c, s) = etcd_status(ep).await?;
        // the health check etcdctl does: a linearizable read through this member
        c.read("health").await?;
        if st.is_empty() {
            let alarms = c.alarms().await?;
            if !alarms.is_empty() {
                return Err(unhealthy(format!("alarms raised: {}", alarms.join(", "))));
            }
            let n = c.member_count().await?;
            if n != members.len() {
                return Err(unhealthy(format!(
                    "member list has {n} members, the fleet {}",
                    members.len()
                )));
            }
        }
        st.push(s);
    }
    Ok(judge_etcd(&st, members.len(), max_lag, host)?)
}

async fn etcd_move_leader(
    members: &[Member],
    port: u16,
    host: usize,
    _timeout: Duration,
    drain_timeout: Duration,
) -> Verdict {
    let eps = etcd_endpoints(members, port);
    let ep = eps.get(host).ok_or(DriverError::NotAMember)?;
    let (c, me) = etcd_status(ep).await?;
    if me.leader != me.member_id {
        return Ok(format!("{ep} is not the leader: nothing to move"));
    }
    // the most caught-up other member takes over
    let mut best: Option<EtcdStatus> = None;
    let mut why = Vec::new();
    for (i, e) in eps.iter().enumerate() {
        if i == host {
            continue;
        }
        match etcd_status(e).await {
            Ok((_, s)) if s.leader == me.member_id => {
                if best.as_ref().is_none_or(|b| s.raft_index > b.raft_index) {
                    best = Some(s);
                }
            }
            Ok((_, s)) => why.push(format!(
                "{e} follows {:x}, not {:x}",
                s.leader, me.member_id
            )),
            Err(e) => why.push(e.to_string()),
        }
    }
    let to = best.ok_or_else(|| {
        unhealthy(format!(
            "no healthy member to take the leadership: {}",
            why.join("; ")
        ))
    })?;
    let deadline = Instant::now() + drain_timeout;
    let mut last = String::new();
    loop {
        if let Err(e) = c.move_leader(to.member_id).await {
            last = e.to_string();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        match c.status().await {
            Ok(s) if s.leader != me.member_id && s.leader != 0 => {
                return Ok(format!("moved the leadership from {ep} to {}", to.endpoint));
            }
            Ok(_) => {}
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(unhealthy(format!(
                "the leadership did not leave {ep} within {}s: {last}",
                drain_timeout.as_secs()
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a0ec6e8d5b8e1c6e0f7a3b4c5 127.0.0.1:30001@40001 myself,master - 0 1426238316232 1 connected 0-5460
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@40003 master - 0 1426238318243 3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30004@40004 slave 07c37dfeb235213a0ec6e8d5b8e1c6e0f7a3b4c5 0 1426238316232 4 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30005@40005 slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238317741 5 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30006@40006 slave 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1426238317741 6 connected
";
    const INFO: &str = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:6\r\ncluster_size:3\r\n";

    #[test]
    fn redis_view_judgement() {
        assert_eq!(judge_redis_view(INFO, NODES, 6), Ok(()));
        assert!(
            judge_redis_view(INFO, NODES, 7)
                .unwrap_err()
                .to_string()
                .contains("cluster_known_nodes:6")
        );
        let down = INFO.replace("cluster_state:ok", "cluster_state:fail");
        assert!(
            judge_redis_view(&down, NODES, 6)
                .unwrap_err()
                .to_string()
                .contains("cluster_state:fail")
        );
        let failed = NODES.replace(" slave 824f", " slave,fail 824f").replace(
            "824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30005@40005 slave ",
            "824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30005@40005 slave,fail? ",
        );
        assert!(
            judge_redis_view(INFO, &failed, 6)
                .unwrap_err()
                .to_string()
                .contains("30005 is flagged fail?")
        );
        // a master whose only replica is gone
        let orphan: String = NODES
            .lines()
            .filter(|l| !l.contains("30006"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            judge_redis_view(INFO, &orphan, 6)
                .unwrap_err()
                .to_string()
                .contains("master 127.0.0.1:30003 has no connected replica")
        );
        let cut = NODES.replace("4 connected", "4 disconnected");
        assert!(
            judge_redis_view(INFO, &cut, 6)
                .unwrap_err()
                .to_string()
                .contains("disconnected")
        );
        assert!(judge_redis_view("garbage", NODES, 6).is_err());
        assert!(judge_redis_view(INFO, "garbage", 6).is_err());
        assert!(parse_nodes("a b c d e f g h 1-x").is_err());
        assert_eq!(parse_nodes(NODES).unwrap()[0].slots, 5461);
    }

    #[test]
    fn rejoin_judgement() {
        let m = |s: &str| kv_lines(s);
        assert!(
            judge_rejoined(&m(
                "role:slave\nmaster_link_status:up\nmaster_sync_in_progress:0\n"
            ))
            .is_ok()
        );
        assert!(
            judge_rejoined(&m(
                "role:slave\nmaster_link_status:down\nmaster_sync_in_progress:0\n"
            ))
            .unwrap_err()
            .to_string()
            .contains("down")
        );
        assert!(
            judge_rejoined(&m(
                "role:slave\nmaster_link_status:up\nmaster_sync_in_progress:1\n"
            ))
            .unwrap_err()
            .to_string()
            .contains("sync")
        );
        assert!(judge_rejoined(&m("nonsense")).is_err());
    }

    #[test]
    fn etcd_judgement() {
        let s = |ep: &str, id, leader, idx, term| EtcdStatus {
            endpoint: ep.into(),
            member_id: id,
            leader,
            raft_index: idx,
            raft_term: term,
        };
        let ok = vec![
            s("a", 1, 2, 100, 3),
            s("b", 2, 2, 101, 3),
            s("c", 3, 2, 99, 3),
        ];
        assert!(judge_etcd(&ok, 3, 10, None).is_ok());
        assert!(
            judge_etcd(&ok[..2], 3, 10, None)
                .unwrap_err()
                .to_string()
                .contains("2 of 3")
        );
        let split = vec![
            s("a", 1, 2, 100, 3),
            s("b", 2, 2, 101, 3),
            s("c", 3, 3, 99, 3),
        ];
        assert!(
            judge_etcd(&split, 3, 10, None)
                .unwrap_err()
                .to_string()
                .contains("disagree")
        );
        let behind = vec![
            s("a", 1, 2, 10, 3),
            s("b", 2, 2, 101, 3),
            s("c", 3, 2, 99, 3),
        ];
        assert!(
            judge_etcd(&behind, 3, 10, Some(0))
                .unwrap_err()
                .to_string()
                .contains("behind")
        );
        assert!(judge_etcd(&behind, 3, 10, Some(2)).is_ok());
        let none = vec![s("a", 1, 0, 10, 3)];
        assert!(
            judge_etcd(&none, 1, 10, None)
                .unwrap_err()
                .to_string()
                .contains("no leader")
        );
    }

    #[test]
    fn json_judgement() {
        let body = r#"{"status":"green","number_of_nodes":3,"nodes":[{"up":true}],"x":{"y":1.0}}"#;
        let e = |p: &str, v: serde_json::Value| (p.to_string(), v);
        assert!(
            judge_json(
                body,
                &[
                    e("status", "green".into()),
                    e("number_of_nodes", 3.into()),
                    e("nodes.0.up", true.into()),
                    e("/x/y", 1.into())
                ]
            )
            .is_ok()
        );
        let bad = judge_json(
            body,
            &[e("status", "yellow".into()), e("missing", 1.into())],
        )
        .unwrap_err();
        assert!(
            bad.to_string()
                .contains("status = \"green\" (want \"yellow\")")
                && bad.to_string().contains("missing missing"),
            "{bad}"
        );
        assert!(
            judge_json("<html>", &[])
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
