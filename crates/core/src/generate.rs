//! Synthetic fleets for benchmarks, property tests and examples (`rollcall_fleet::write`
//! saves one as a fleet file).
//! Deterministic: the same parameters and seed give the same fleet on every machine.

use crate::model::*;

/// SplitMix64: small, fast, and stable across versions (unlike library RNGs).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// Uniform in [a, b].
    pub fn range(&mut self, a: u64, b: u64) -> u64 {
        a + self.below(b - a + 1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[derive(Debug, Clone)]
pub struct GenParams {
    pub hosts: usize,
    pub clusters: usize,
    pub seed: u64,
    pub regions: Vec<String>,
    pub zones_per_region: usize,
    /// Share of clusters made deliberately unsafe (2 nodes at high load) to exercise the risk report.
    pub risky: f64,
    pub max_concurrent: Option<u32>,
    pub max_concurrent_per_region: Option<u32>,
    pub region_mode: RegionMode,
    /// 2014-09-25T20:00:00Z by default.
    pub start: i64,
    /// Seconds between the announcement and the first reboot (1 h by default).
    pub notice_lead: i64,
    /// Dense, constrained clusters instead of the default ones (None: the default shape,
    /// which keeps every existing seed's fleet).
    pub dense: Option<Dense>,
}

/// The knobs of a dense fleet: every constraint the planner honours, each with its own
/// share. Clusters fill every region (none stops the placement early); hosts left over
/// at a region's end stay plain.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Cluster sizes, inclusive.
    pub size: (usize, usize),
    /// Largest node budget drawn (1..=this).
    pub max_budget: u32,
    /// Share of hosts whose duration is drawn from 0.25×–2× their kind's estimate (5 min steps).
    pub mixed_durations: f64,
    /// Share of clusters that also take one or two members of the region's previous
    /// cluster (hosts shared by two clusters).
    pub shared: f64,
    /// Share of clusters with a zone budget (`max_unavailable_zones = 1`).
    pub zone_budgets: f64,
    /// Share of clusters whose load tightens the node limit below the budget.
    pub tightened: f64,
}

impl Default for Dense {
    fn default() -> Self {
        Dense {
            size: (3, 6),
            max_budget: 3,
            mixed_durations: 0.6,
            shared: 0.3,
            zone_budgets: 0.25,
            tightened: 0.3,
        }
    }
}

impl GenParams {
    pub fn new(hosts: usize, clusters: usize, seed: u64) -> Self {
        GenParams {
            hosts,
            clusters,
            seed,
            regions: ["dfw", "ord", "iad", "lon", "syd", "hkg"]
                .map(String::from)
                .to_vec(),
            zones_per_region: 3,
            risky: 0.01,
            max_concurrent: Some(((hosts / 50).max(4)) as u32),
            max_concurrent_per_region: Some(((hosts / 150).max(2)) as u32),
            region_mode: RegionMode::Serial,
            start: 1_411_675_200,
            notice_lead: 3600,
            dense: None,
        }
    }
}

impl GenParams {
    /// A small dense fleet of the oracle set (crates/core/tests/oracle): 8–16 hosts in one
    /// or two regions of 3 zones, serial or parallel, a binding per-region and fleet
    /// concurrency, a notice lead of 0–1 h, every constraint of [`Dense`] on.
    pub fn oracle(seed: u64) -> GenParams {
        let mut rng = Rng::new(seed ^ 0x0AC1E);
        let nreg = rng.range(1, 2) as usize;
        let hosts = match nreg {
            1 => rng.range(8, 14),
            _ => rng.range(10, 16),
        } as usize;
        let mut p = GenParams::new(hosts, hosts, seed);
        p.regions = (0..nreg).map(|i| format!("r{i}")).collect();
        let per_region = rng.range(2, 4) as u32;
        p.max_concurrent_per_region = Some(per_region);
        p.max_concurrent = Some(per_region + rng.range(0, 2) as u32);
        if rng.chance(0.5) {
            p.region_mode = RegionMode::Parallel;
        }
        p.notice_lead = rng.range(0, 2) as i64 * 1800;
        p.risky = 0.0;
        p.dense = Some(Dense::default());
        p
    }
}

/// Generate a fleet. Hosts are spread evenly over regions; clusters of 3–7 nodes
/// (2 for risky ones) take consecutive hosts of one region across its zones; the
/// rest are plain hosts.
pub fn generate(p: &GenParams) -> Fleet {
    let mut rng = Rng::new(p.seed);
    let nreg = p.regions.len().max(1);
    let regions: Vec<String> = match p.regions.is_empty() {
        true => vec!["r0".into()],
        false => p.regions.clone(),
    };
    let mut hosts = gen_hosts(p, &regions);
    let (clusters, tenants) = match &p.dense {
        None => gen_clusters(p, &mut rng, &mut hosts, nreg),
        Some(d) => dense_clusters(d, &mut rng, &mut hosts, nreg),
    };
    match &p.dense {
        None => set_durations(&mut rng, &mut hosts, &clusters),
        Some(d) => mixed_durations(&mut rng, &mut hosts, &clusters, d.mixed_durations),
    }
    Fleet {
        name: format!("generated-{}h-{}c-s{}", p.hosts, p.clusters, p.seed),
        regions: regions.clone(),
        hosts,
        clusters,
        tenants,
        maintenance: gen_maintenance(p, nreg),
        notices: Vec::new(),
    }
}

/// `p.hosts` hosts spread over the regions in blocks, zones round-robin.
fn gen_hosts(p: &GenParams, regions: &[String]) -> Vec<Host> {
    let (nreg, zpr) = (regions.len(), p.zones_per_region.max(1));
    (0..p.hosts)
        .map(|i| {
            let r = i * nreg / p.hosts.max(1);
            let z = i % zpr;
            let name = &regions[r];
            Host {
                id: format!("{name}-{i:06}"),
                address: format!("10.{}.{}.{}", r, (i / 250) % 250, i % 250 + 1),
                region: r as RegionIx,
                zone: format!("{name}-{}", (b'a' + z as u8) as char),
                provider: "rackspace".into(),
                tags: Vec::new(),
                duration: 0,
                clusters: Vec::new(),
                in_scope: true,
                deadline: None,
            }
        })
        .collect()
}

/// Up to `p.clusters` clusters of consecutive hosts of one region, one tenant each; stops at
/// the first that fits no region.
fn gen_clusters(
    p: &GenParams,
    rng: &mut Rng,
    hosts: &mut [Host],
    nreg: usize,
) -> (Vec<Cluster>, Vec<Tenant>) {
    // hosts per region, as ranges
    let mut region_ranges: Vec<(usize, usize)> = vec![(usize::MAX, 0); nreg];
    for (i, h) in hosts.iter().enumerate() {
        let rr = &mut region_ranges[h.region as usize];
        rr.0 = rr.0.min(i);
        rr.1 = rr.1.max(i + 1);
    }
    let mut cursor: Vec<usize> = region_ranges.iter().map(|r| r.0).collect();
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut tenants: Vec<Tenant> = Vec::new();
    for ci in 0..p.clusters {
        let risky = rng.chance(p.risky);
        let size = if risky { 2 } else { rng.range(3, 7) as usize };
        // pick a region with room, starting from a round-robin choice
        let start_r = ci % nreg;
        let Some(r) = (0..nreg)
            .map(|k| (start_r + k) % nreg)
            .find(|&r| cursor[r] + size <= region_ranges[r].1)
        else {
            break;
        };
        let members: Vec<HostIx> = (cursor[r]..cursor[r] + size).map(|h| h as HostIx).collect();
        cursor[r] += size;
        let tenant = format!("t{:04}", ci);
        tenants.push(Tenant {
            id: tenant.clone(),
            name: format!("Tenant {ci}"),
            contact: None,
        });
        let c = gen_cluster(rng, ci, risky, tenant, members);
        let cix = clusters.len() as ClusterIx;
        for &h in &c.members {
            hosts[h as usize].clusters.push(cix);
            hosts[h as usize].tags.push(c.id.clone());
        }
        clusters.push(c);
    }
    (clusters, tenants)
}

/// Dense clusters: each region's hosts in turn, cluster after cluster until fewer than
/// two hosts are left (a drawn size that does not fit shrinks to what is left).
fn dense_clusters(
    d: &Dense,
    rng: &mut Rng,
    hosts: &mut [Host],
    nreg: usize,
) -> (Vec<Cluster>, Vec<Tenant>) {
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut tenants: Vec<Tenant> = Vec::new();
    for r in 0..nreg {
        let region: Vec<usize> = (0..hosts.len())
            .filter(|&h| hosts[h].region as usize == r)
            .collect();
        let mut cursor = 0;
        let mut prev: Option<usize> = None;
        while region.len() - cursor >= 2 {
            let size = (rng.range(d.size.0 as u64, d.size.1 as u64) as usize)
                .clamp(2, region.len() - cursor);
            let mut members: Vec<HostIx> = region[cursor..cursor + size]
                .iter()
                .map(|&h| h as HostIx)
                .collect();
            cursor += size;
            if let Some(pc) = prev.filter(|_| rng.chance(d.shared)) {
                let take = rng.range(1, 2) as usize;
                members.extend(clusters[pc].members.iter().rev().take(take));
            }
            let ci = clusters.len();
            let tenant = format!("t{ci:04}");
            tenants.push(Tenant {
                id: tenant.clone(),
                name: format!("Tenant {ci}"),
                contact: None,
            });
            let c = dense_cluster(d, rng, ci, tenant, members, hosts);
            for &h in &c.members {
                hosts[h as usize].clusters.push(ci as ClusterIx);
                hosts[h as usize].tags.push(c.id.clone());
            }
            clusters.push(c);
            prev = Some(ci);
        }
    }
    (clusters, tenants)
}

/// One dense cluster: a node budget up to `d.max_budget` or a zone budget, and a load
/// that leaves the budget alone or tightens it to a smaller limit.
fn dense_cluster(
    d: &Dense,
    rng: &mut Rng,
    ci: usize,
    tenant: String,
    members: Vec<HostIx>,
    hosts: &[Host],
) -> Cluster {
    let n = members.len() as u32;
    let kind = [Kind::Elasticsearch, Kind::RedisCluster, Kind::Etcd][rng.below(3) as usize];
    let zones: std::collections::HashSet<&str> = members
        .iter()
        .map(|&h| hosts[h as usize].zone.as_str())
        .collect();
    let (budget, cap) = if zones.len() >= 2 && rng.chance(d.zone_budgets) {
        (Budget::Zones(1), n - 1)
    } else {
        let b = (rng.range(1, d.max_budget.max(1) as u64) as u32).min(n - 1);
        (Budget::Nodes(b), b)
    };
    // the largest load that still lets `k` out: k = cap, or fewer when tightened
    let k = if cap > 1 && rng.chance(d.tightened) {
        rng.range(1, cap as u64 - 1) as u32
    } else {
        cap
    };
    let load = ((MAX_LOAD * (n - k) as f64 / n as f64) * 100.0).floor() / 100.0;
    cluster(ci, kind, tenant, members, budget, load.min(0.6))
}

/// The survivors' load limit of every generated cluster.
const MAX_LOAD: f64 = 0.85;

/// A generated cluster `ci` of `kind`: its id from tenant and kind, `max_load` [`MAX_LOAD`], the
/// kind's timeouts, and an Elasticsearch cluster's replicas matching its budget.
fn cluster(
    ci: usize,
    kind: Kind,
    tenant: String,
    members: Vec<HostIx>,
    budget: Budget,
    load: f64,
) -> Cluster {
    Cluster {
        id: format!("{}-{}-{ci}", tenant, kind_short(kind)),
        kind,
        tenant: Some(tenant),
        members,
        budget,
        load,
        max_load: MAX_LOAD,
        allow_outage: false,
        replicas: matches!(kind, Kind::Elasticsearch).then_some(budget.count()),
        return_timeout: kind.default_return_timeout(),
        gate_timeout: kind.default_gate_timeout(),
    }
}

/// A host's step before variation: the slowest estimate of its clusters' kinds.
fn base_duration(h: &Host, clusters: &[Cluster]) -> i64 {
    h.clusters
        .iter()
        .map(|&c| clusters[c as usize].kind.default_duration())
        .max()
        .unwrap_or(Kind::None.default_duration())
}

/// Dense fleets: a share `mixed` of hosts take 0.25×–2× their slowest kind's estimate,
/// in 5-minute steps.
fn mixed_durations(rng: &mut Rng, hosts: &mut [Host], clusters: &[Cluster], mixed: f64) {
    for h in hosts.iter_mut() {
        let base = base_duration(h, clusters);
        h.duration = if rng.chance(mixed) {
            let f = 0.25 + rng.unit() * 1.75;
            ((base as f64 * f / 300.0).round() as i64 * 300).max(300)
        } else {
            base
        };
    }
}

/// Cluster `ci` of `members`: its kind, load and budget drawn from `rng` (risky: a pair
/// with one node of budget at 60% load).
fn gen_cluster(
    rng: &mut Rng,
    ci: usize,
    risky: bool,
    tenant: String,
    members: Vec<HostIx>,
) -> Cluster {
    let size = members.len();
    let roll = rng.unit();
    let kind = if roll < 0.7 {
        Kind::Elasticsearch
    } else if roll < 0.9 {
        Kind::RedisCluster
    } else {
        Kind::Etcd
    };
    let (load, budget) = if risky {
        (0.6, Budget::Nodes(1))
    } else {
        let load = 0.2 + rng.unit() * 0.45;
        let budget = match kind {
            Kind::Elasticsearch if size >= 6 && rng.chance(0.4) => Budget::Zones(1),
            Kind::Elasticsearch if size == 7 && rng.chance(0.3) => Budget::Nodes(2),
            Kind::Etcd => Budget::Nodes(((size as u32) - 1) / 2),
            _ => Budget::Nodes(1),
        };
        ((load * 100.0).round() / 100.0, budget)
    };
    cluster(ci, kind, tenant, members, budget, load)
}

/// Each host's step: its slowest kind's estimate; a fifth of the hosts are slower or faster.
fn set_durations(rng: &mut Rng, hosts: &mut [Host], clusters: &[Cluster]) {
    for h in hosts.iter_mut() {
        let base = base_duration(h, clusters);
        h.duration = if rng.chance(0.2) {
            (base as f64 * (0.6 + rng.unit() * 0.8)).round() as i64 / 60 * 60
        } else {
            base
        }
        .max(60);
    }
}

fn gen_maintenance(p: &GenParams, nreg: usize) -> Maintenance {
    Maintenance {
        name: "generated".into(),
        action: Action::Reboot,
        start: p.start,
        notice_lead: p.notice_lead,
        region_order: (0..nreg as RegionIx).collect(),
        region_mode: p.region_mode,
        max_concurrent: p.max_concurrent,
        max_concurrent_per_region: p.max_concurrent_per_region,
        on_missing: OnMissing::Pause,
        windows: vec![None; nreg],
        horizon: p.start + 3600 + 30 * 86400,
        effort: None,
    }
}

fn kind_short(k: Kind) -> &'static str {
    match k {
        Kind::Elasticsearch => "es",
        Kind::Opensearch => "os",
        Kind::RedisCluster => "redis",
        Kind::Etcd => "etcd",
        Kind::Http => "http",
        Kind::Command => "cmd",
        Kind::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_fleets_fill_every_region_and_turn_every_knob() {
        let mut p = GenParams::new(600, 0, 7);
        p.dense = Some(Dense::default());
        let f = generate(&p);
        for r in 0..f.regions.len() as RegionIx {
            let plain = f
                .hosts
                .iter()
                .filter(|h| h.region == r && h.clusters.is_empty())
                .count();
            assert!(
                plain < 2,
                "region {r} has {plain} hosts left without a cluster"
            );
        }
        assert!(
            f.hosts.iter().any(|h| h.clusters.len() == 2),
            "shared hosts"
        );
        assert!(
            f.clusters
                .iter()
                .any(|c| matches!(c.budget, Budget::Zones(_)))
        );
        let tightened = f.clusters.iter().filter(|c| match c.budget {
            Budget::Nodes(b) => c.load_limit() < b,
            Budget::Zones(_) => false,
        });
        assert!(tightened.count() > 0, "limits tightened by load");
        let mut durations: Vec<i64> = f.hosts.iter().map(|h| h.duration).collect();
        durations.sort_unstable();
        durations.dedup();
        assert!(durations.len() > 4, "mixed durations: {durations:?}");
        let plan = crate::plan::plan(&f);
        assert!(crate::audit::audit(&f, &plan).is_empty());
        assert!(
            plan.unscheduled.is_empty(),
            "every dense cluster can lose a member"
        );
    }
}
