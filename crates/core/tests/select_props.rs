//! Selectors resolved through the host index select exactly the hosts the naive scan
//! selects: on random host lists and queries, and through the fleet loader on random
//! fleet files (cluster selectors and `maintenance.hosts`).

use proptest::prelude::*;
use rollcall_core::select::{HostIndex, Query};
use rollcall_core::*;
use rollcall_fleet::{ConfigErrors, LoadOptions, load_file, load_str, write};
use std::fmt::Write;
use std::path::Path;

const TAGS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];
const REGIONS: [&str; 3] = ["r0", "r1", "r2"];

#[derive(Debug, Clone)]
struct RawHost {
    region: usize,
    /// `None`: the zone defaults to the region's name.
    zone: Option<usize>,
    tags: Vec<usize>,
}

#[derive(Debug, Clone)]
struct RawSel {
    tags: Vec<usize>,
    regions: Vec<usize>,
    zone: Option<usize>,
    ids: Vec<usize>,
}

fn hosts_strategy() -> impl Strategy<Value = Vec<RawHost>> {
    prop::collection::vec(
        (
            0..REGIONS.len(),
            prop::option::of(0usize..4),
            // repeats allowed: a host may list a tag twice
            prop::collection::vec(0..TAGS.len(), 0..4),
        )
            .prop_map(|(region, zone, tags)| RawHost { region, zone, tags }),
        1..60,
    )
}

/// Zones 0..3 are `zN`; zone index 3 in a selector names a region (a host's default zone).
fn zone_name(z: usize) -> String {
    if z < 3 {
        format!("z{z}")
    } else {
        REGIONS[z % REGIONS.len()].to_string()
    }
}

fn sel_strategy() -> impl Strategy<Value = RawSel> {
    (
        prop::collection::vec(0..TAGS.len() + 1, 0..3),
        prop::collection::vec(0..REGIONS.len(), 0..3),
        prop::option::of(0usize..5),
        prop::collection::vec(0usize..60, 0..4),
    )
        .prop_map(|(tags, regions, zone, ids)| RawSel {
            tags,
            regions,
            zone,
            ids,
        })
}

/// Tag index 6 is a tag no host has.
fn tag_name(t: usize) -> String {
    TAGS.get(t)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "nobody".into())
}

/// The naive scan the loader used before the index (every host, every selector),
/// kept here as the reference.
fn select_naive(hosts: &[Host], q: &Query) -> Vec<HostIx> {
    let ids: std::collections::HashSet<HostIx> = q.ids.iter().copied().collect();
    hosts
        .iter()
        .enumerate()
        .filter(|(i, h)| {
            (q.regions.is_empty() || q.regions.contains(&h.region))
                && q.zone.is_none_or(|z| z == h.zone)
                && q.tags.iter().all(|t| h.tags.iter().any(|ht| ht == t))
                && (ids.is_empty() || ids.contains(&(*i as HostIx)))
        })
        .map(|(i, _)| i as HostIx)
        .collect()
}

fn model_hosts(raw: &[RawHost]) -> Vec<Host> {
    raw.iter()
        .enumerate()
        .map(|(i, h)| Host {
            id: format!("h{i}"),
            address: format!("h{i}"),
            region: h.region as RegionIx,
            zone: h
                .zone
                .map(zone_name)
                .unwrap_or_else(|| REGIONS[h.region].to_string()),
            provider: String::new(),
            tags: h.tags.iter().map(|&t| tag_name(t)).collect(),
            duration: 300,
            clusters: Vec::new(),
            in_scope: true,
            deadline: None,
        })
        .collect()
}

/// The query a selector means over `hosts`, with ids limited to existing hosts.
fn naive_members(hosts: &[Host], region_names: &[String], s: &RawSel) -> Vec<HostIx> {
    let regions: Vec<RegionIx> = s
        .regions
        .iter()
        .map(|&r| {
            region_names
                .iter()
                .position(|n| n == REGIONS[r])
                .unwrap_or(usize::MAX) as RegionIx
        })
        .collect();
    let tags: Vec<String> = s.tags.iter().map(|&t| tag_name(t)).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let zone = s.zone.map(zone_name);
    let mut ids: Vec<HostIx> = s
        .ids
        .iter()
        .filter(|&&i| i < hosts.len())
        .map(|&i| i as HostIx)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let q = Query {
        regions: &regions,
        zone: zone.as_deref(),
        tags: &tags,
        ids: &ids,
    };
    select_naive(hosts, &q)
}

fn quoted(items: impl Iterator<Item = String>) -> String {
    items
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn selector_toml(s: &RawSel, n_hosts: usize) -> String {
    let mut parts = vec![format!(
        "tags = [{}]",
        quoted(s.tags.iter().map(|&t| tag_name(t)))
    )];
    // `region` and `regions` together are a union, as the naive scan reads them
    if let Some((first, rest)) = s.regions.split_first() {
        parts.push(format!("region = \"{}\"", REGIONS[*first]));
        parts.push(format!(
            "regions = [{}]",
            quoted(rest.iter().map(|&r| REGIONS[r].to_string()))
        ));
    }
    if let Some(z) = s.zone {
        parts.push(format!("zone = \"{}\"", zone_name(z)));
    }
    let ids: Vec<String> = s
        .ids
        .iter()
        .filter(|&&i| i < n_hosts)
        .map(|i| format!("h{i}"))
        .collect();
    parts.push(format!("ids = [{}]", quoted(ids.into_iter())));
    format!("{{ {} }}", parts.join(", "))
}

fn fleet_toml(hosts: &[RawHost], clusters: &[RawSel], scope: Option<&RawSel>) -> String {
    let mut t = String::from("[maintenance]\nstart = \"2014-09-25T20:00:00Z\"\n");
    if let Some(s) = scope {
        let _ = writeln!(t, "hosts = {}", selector_toml(s, hosts.len()));
    }
    for (i, h) in hosts.iter().enumerate() {
        let _ = writeln!(
            t,
            "\n[[host]]\nid = \"h{i}\"\nregion = \"{}\"",
            REGIONS[h.region]
        );
        if let Some(z) = h.zone {
            let _ = writeln!(t, "zone = \"{}\"", zone_name(z));
        }
        let _ = writeln!(
            t,
            "tags = [{}]",
            quoted(h.tags.iter().map(|&x| tag_name(x)))
        );
    }
    for (i, c) in clusters.iter().enumerate() {
        let _ = writeln!(
            t,
            "\n[[cluster]]\nid = \"c{i}\"\nkind = \"none\"\nallow_outage = true\nselector = {}",
            selector_toml(c, hosts.len())
        );
    }
    t
}

fn load(text: &str) -> Result<Fleet, ConfigErrors> {
    load_str(
        "fleet.toml",
        text,
        Path::new("."),
        &LoadOptions { now: 1_400_000_000 },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn index_selects_the_same_hosts_as_the_naive_scan(
        raw in hosts_strategy(),
        sels in prop::collection::vec(sel_strategy(), 1..8),
    ) {
        let hosts = model_hosts(&raw);
        let names: Vec<String> = REGIONS.iter().map(|s| s.to_string()).collect();
        let index = HostIndex::new(&hosts);
        for s in &sels {
            let expected = naive_members(&hosts, &names, s);
            let regions: Vec<RegionIx> = s.regions.iter().map(|&r| r as RegionIx).collect();
            let tags: Vec<String> = s.tags.iter().map(|&t| tag_name(t)).collect();
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let zone = s.zone.map(zone_name);
            let mut ids: Vec<HostIx> = s.ids.iter().filter(|&&i| i < hosts.len()).map(|&i| i as HostIx).collect();
            ids.sort_unstable();
            ids.dedup();
            let q = Query { regions: &regions, zone: zone.as_deref(), tags: &tags, ids: &ids };
            prop_assert_eq!(index.select(&hosts, &q), expected, "{:?}", s);
        }
    }

    #[test]
    fn loaded_selectors_match_the_naive_scan(
        raw in hosts_strategy(),
        sels in prop::collection::vec(sel_strategy(), 1..6),
        scope in prop::option::of(sel_strategy()),
    ) {
        // the hosts as the loader builds them (region indices in order of appearance)
        let bare = load(&fleet_toml(&raw, &[], None)).expect("hosts alone load");
        let text = fleet_toml(&raw, &sels, scope.as_ref());
        let expected: Vec<Vec<HostIx>> = sels
            .iter()
            .map(|s| naive_members(&bare.hosts, &bare.regions, s))
            .collect();
        // a selector naming a region without hosts is refused before matching
        let unknown_region = sels.iter().chain(scope.iter()).any(|s| {
            s.regions.iter().any(|&r| !bare.regions.iter().any(|n| n == REGIONS[r]))
        });
        match load(&text) {
            Ok(f) => {
                prop_assert!(!unknown_region);
                for (i, c) in f.clusters.iter().enumerate() {
                    prop_assert_eq!(&c.members, &expected[i], "cluster c{}", i);
                }
                if let Some(s) = &scope {
                    let scoped = naive_members(&bare.hosts, &bare.regions, s);
                    let in_scope: Vec<HostIx> = (0..f.hosts.len() as HostIx)
                        .filter(|&h| f.hosts[h as usize].in_scope)
                        .collect();
                    prop_assert_eq!(in_scope, scoped);
                }
            }
            Err(e) => {
                let listing = e.listing();
                if unknown_region {
                    prop_assert!(listing.contains("unknown region"), "{}", listing);
                } else {
                    let first_empty = expected.iter().position(Vec::is_empty);
                    let empty_scope = scope
                        .as_ref()
                        .is_some_and(|s| naive_members(&bare.hosts, &bare.regions, s).is_empty());
                    match first_empty {
                        Some(i) => prop_assert!(
                            listing.contains(&format!("the selector of cluster `c{i}` matches no host")),
                            "{}", listing
                        ),
                        None => prop_assert!(
                            empty_scope && listing.contains("the maintenance selects no host"),
                            "{}", listing
                        ),
                    }
                }
            }
        }
    }
}

#[test]
fn generated_fleet_written_as_csv_and_tag_selectors_loads_to_the_same_fleet() {
    let f = generate::generate(&generate::GenParams::new(600, 110, 7));
    let dir = std::env::temp_dir().join(format!("rollcall-select-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts.csv"), write::to_csv(&f)).unwrap();
    let fleet = dir.join("fleet.toml");
    std::fs::write(&fleet, write::to_toml_imported(&f, "hosts.csv")).unwrap();
    let g = load_file(&fleet, &LoadOptions { now: 1_400_000_000 });
    std::fs::remove_dir_all(&dir).unwrap();
    let g = g.unwrap();
    assert_eq!(g.hosts.len(), f.hosts.len());
    assert_eq!(g.clusters.len(), f.clusters.len());
    for (a, b) in f.hosts.iter().zip(&g.hosts) {
        assert_eq!(
            (&a.id, a.duration, &a.zone, &a.clusters, &a.tags),
            (&b.id, b.duration, &b.zone, &b.clusters, &b.tags)
        );
    }
    for (a, b) in f.clusters.iter().zip(&g.clusters) {
        assert_eq!((&a.id, &a.members), (&b.id, &b.members));
    }
    let (pa, pb) = (plan::plan(&f), plan::plan(&g));
    assert_eq!(pa.steps, pb.steps);
}
