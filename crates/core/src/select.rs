//! Host selectors (`selector = { tags, region, regions, zone, ids }` and
//! `maintenance.hosts`), resolved through an index.
//!
//! A selector matches a host when every part it gives matches: the host is in one of
//! the regions, in the zone, carries every tag, and is one of the ids. The naive
//! resolution scans every host per selector, which made 20,000 tag-selected clusters
//! over 100,000 hosts cost 2·10⁹ comparisons. [`HostIndex`] keeps a posting list
//! (ascending host indices) per tag, zone and region; a query starts from the
//! shortest list it constrains and checks the remaining parts on those hosts only.
//! `crates/core/tests/select_props.rs` compares it with the naive scan (written there,
//! independently of this module) on random fleets.

use crate::model::{Host, HostIx, RegionIx};
use std::collections::HashMap;

/// A selector whose names are already resolved. Empty parts do not constrain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// The host is in one of these regions.
    pub regions: &'a [RegionIx],
    /// The host is in this zone.
    pub zone: Option<&'a str>,
    /// The host carries every one of these tags.
    pub tags: &'a [&'a str],
    /// The host is one of these (ascending, no duplicates).
    pub ids: &'a [HostIx],
}

impl Query<'_> {
    /// Whether host `ix` matches every part of the query.
    pub fn matches(&self, ix: HostIx, h: &Host) -> bool {
        (self.regions.is_empty() || self.regions.contains(&h.region))
            && self.zone.is_none_or(|z| z == h.zone)
            && self.tags.iter().all(|t| h.tags.iter().any(|ht| ht == t))
            && (self.ids.is_empty() || self.ids.binary_search(&ix).is_ok())
    }
}

/// Posting lists of hosts per tag, zone and region, each in ascending host order.
#[derive(Debug, Default)]
pub struct HostIndex {
    by_tag: HashMap<String, Vec<HostIx>>,
    by_zone: HashMap<String, Vec<HostIx>>,
    by_region: Vec<Vec<HostIx>>,
    hosts: usize,
}

impl HostIndex {
    pub fn new(hosts: &[Host]) -> Self {
        let mut ix = HostIndex {
            hosts: hosts.len(),
            ..Default::default()
        };
        for (i, h) in hosts.iter().enumerate() {
            let i = i as HostIx;
            for t in &h.tags {
                push_once(&mut ix.by_tag, t, i);
            }
            push_once(&mut ix.by_zone, &h.zone, i);
            let r = h.region as usize;
            if ix.by_region.len() <= r {
                ix.by_region.resize_with(r + 1, Vec::new);
            }
            ix.by_region[r].push(i);
        }
        ix
    }

    /// The hosts matching `q`, in ascending host order (each once).
    /// Starts from the shortest posting list among the parts `q` constrains.
    pub fn select(&self, hosts: &[Host], q: &Query) -> Vec<HostIx> {
        debug_assert_eq!(hosts.len(), self.hosts);
        let mut best: Option<&[HostIx]> = None;
        for t in q.tags {
            shortest(&mut best, self.by_tag.get(*t).map_or(&[], Vec::as_slice));
        }
        if let Some(z) = q.zone {
            shortest(&mut best, self.by_zone.get(z).map_or(&[], Vec::as_slice));
        }
        if !q.ids.is_empty() {
            shortest(&mut best, q.ids);
        }
        let region_total: usize = q.regions.iter().map(|&r| self.region(r).len()).sum();
        if !q.regions.is_empty() && best.is_none_or(|b| region_total < b.len()) {
            let mut union: Vec<HostIx> = Vec::with_capacity(region_total);
            for &r in q.regions {
                union.extend_from_slice(self.region(r));
            }
            union.sort_unstable();
            union.dedup();
            return filter(&union, hosts, q);
        }
        match best {
            Some(list) => filter(list, hosts, q),
            None => (0..self.hosts as HostIx).collect(),
        }
    }

    fn region(&self, r: RegionIx) -> &[HostIx] {
        self.by_region.get(r as usize).map_or(&[], Vec::as_slice)
    }
}

fn shortest<'a>(best: &mut Option<&'a [HostIx]>, list: &'a [HostIx]) {
    if best.is_none_or(|b| list.len() < b.len()) {
        *best = Some(list);
    }
}

fn filter(candidates: &[HostIx], hosts: &[Host], q: &Query) -> Vec<HostIx> {
    candidates
        .iter()
        .copied()
        .filter(|&i| hosts.get(i as usize).is_some_and(|h| q.matches(i, h)))
        .collect()
}

/// Append host `i` to the list of `key`, once (a host may repeat a tag).
fn push_once(map: &mut HashMap<String, Vec<HostIx>>, key: &str, i: HostIx) {
    match map.get_mut(key) {
        Some(list) => {
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
        None => {
            map.insert(key.to_string(), vec![i]);
        }
    }
}
