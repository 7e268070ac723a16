//! Parsing a fleet file into the raw (spanned) structs, in batches of tables.
//!
//! `toml::from_str` lexes the whole document into a token vector, then an event
//! vector, then a spanned document tree, before serde sees any of it: about 27 bytes
//! of transient memory per byte of text (483 MB for the 18 MB file of 100,000 hosts).
//! Large fleet files are nearly all `[[host]]`, `[[cluster]]` and `[[tenant]]`
//! tables, so the text is cut before such headers into batches of at least
//! [`BATCH_BYTES`], each batch is parsed on its own (its tree freed as soon as its
//! structs are built; batches are shared among up to [`MAX_THREADS`] threads) and the
//! parts are joined in order, with every span moved by the batch's offset.
//!
//! The batched result is only used when it is certainly the whole-document result:
//! any error in any batch, a table that two batches both define (a duplicate, or a
//! sub-table split from its parent), or keys before the first table (which could
//! clash with a later array of tables) makes the whole text be parsed at once, so
//! errors and their spans are exactly those of `toml::from_str`. A cut inside a
//! multi-line string or array leaves the batch before it unterminated, which is an
//! error, so such a file is parsed whole as well.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Smallest batch of text parsed at once.
pub(super) const BATCH_BYTES: usize = 256 * 1024;

/// Most threads parsing batches at once.
const MAX_THREADS: usize = 4;

/// Parse a fleet file: in batches when that is certain to give the same result.
pub(super) fn parse_fleet(text: &str) -> Result<RawFleet, toml::de::Error> {
    parse_fleet_batched(text, BATCH_BYTES)
}

pub(super) fn parse_fleet_batched(text: &str, batch: usize) -> Result<RawFleet, toml::de::Error> {
    let cuts = cut_points(text, batch);
    if cuts.len() > 1
        && let Some(raw) = parse_batches(text, &cuts)
    {
        return Ok(raw);
    }
    toml::from_str(text)
}

/// Byte offsets where batches start (the first is 0). Empty when the file has keys
/// before its first table, which batching does not handle.
fn cut_points(text: &str, batch: usize) -> Vec<usize> {
    let mut cuts = vec![0];
    let mut seen_table = false;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if !seen_table && !t.is_empty() && !t.starts_with('#') {
            if !t.starts_with('[') {
                return Vec::new();
            }
            seen_table = true;
        }
        if matches!(t, "[[host]]" | "[[cluster]]" | "[[tenant]]")
            && pos - cuts[cuts.len() - 1] >= batch
        {
            cuts.push(pos);
        }
        pos += line.len();
    }
    cuts
}

/// Parse each batch (on up to [`MAX_THREADS`] threads) and join them in order;
/// `None` when the whole text must be parsed.
fn parse_batches(text: &str, cuts: &[usize]) -> Option<RawFleet> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
        .min(cuts.len());
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done: Vec<(usize, Option<RawFleet>)> = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&start) = cuts.get(i) else {
                return done;
            };
            let end = cuts.get(i + 1).copied().unwrap_or(text.len());
            let part = toml::from_str::<RawFleet>(&text[start..end]).ok();
            let failed = part.is_none();
            done.push((i, part.map(|p| if start == 0 { p } else { p.shift(start) })));
            if failed {
                next.store(cuts.len(), Ordering::Relaxed);
            }
        }
    };
    let mut parts: Vec<(usize, Option<RawFleet>)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut parts = work();
        for h in helpers {
            parts.extend(h.join().unwrap_or_default());
        }
        parts
    });
    if parts.len() != cuts.len() {
        return None;
    }
    parts.sort_by_key(|(i, _)| *i);
    let mut parts = parts.into_iter().map(|(_, p)| p);
    let first = parts.next()??;
    parts.try_fold(first, |acc, p| join(acc, p?))
}

/// Join two consecutive batches; `None` if both define the same table.
fn join(mut a: RawFleet, b: RawFleet) -> Option<RawFleet> {
    fn once<T>(a: &mut Option<T>, b: Option<T>) -> Option<()> {
        match (a.is_some(), b) {
            (true, Some(_)) => None,
            (false, b) => {
                *a = b;
                Some(())
            }
            (true, None) => Some(()),
        }
    }
    once(&mut a.fleet, b.fleet)?;
    once(&mut a.defaults, b.defaults)?;
    once(&mut a.maintenance, b.maintenance)?;
    once(&mut a.notify, b.notify)?;
    once(&mut a.ssh, b.ssh)?;
    once(&mut a.exec, b.exec)?;
    once(&mut a.remote, b.remote)?;
    a.import.extend(b.import);
    a.host.extend(b.host);
    a.tenant.extend(b.tenant);
    a.cluster.extend(b.cluster);
    a.notice.extend(b.notice);
    a.subscriber.extend(b.subscriber);
    Some(a)
}

/// Move every span by `by` bytes (a batch's offset in the whole text).
trait Shift: Sized {
    fn shift(self, by: usize) -> Self;
}

macro_rules! unspanned {
    ($($t:ty),*) => {$(
        impl Shift for $t {
            fn shift(self, _: usize) -> Self {
                self
            }
        }
    )*};
}
unspanned!(String, f64, i64, bool, toml::Value);

impl<T: Shift> Shift for Spanned<T> {
    fn shift(self, by: usize) -> Self {
        let s = self.span();
        Spanned::new(s.start + by..s.end + by, self.into_inner().shift(by))
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(self, by: usize) -> Self {
        self.map(|x| x.shift(by))
    }
}

impl<T: Shift> Shift for Vec<T> {
    fn shift(self, by: usize) -> Self {
        self.into_iter().map(|x| x.shift(by)).collect()
    }
}

impl<K: Shift + Ord, V: Shift> Shift for BTreeMap<K, V> {
    fn shift(self, by: usize) -> Self {
        self.into_iter()
            .map(|(k, v)| (k.shift(by), v.shift(by)))
            .collect()
    }
}

/// `Shift` for a raw struct: every field shifted.
macro_rules! shift_fields {
    ($t:ident { $($f:ident),* }) => {
        impl Shift for $t {
            fn shift(self, by: usize) -> Self {
                $t { $($f: self.$f.shift(by)),* }
            }
        }
    };
}

shift_fields!(RawFleet {
    fleet,
    defaults,
    import,
    host,
    tenant,
    cluster,
    maintenance,
    notice,
    subscriber,
    notify,
    ssh,
    exec,
    remote,
    aws,
    azure,
    gcp
});
shift_fields!(RawMeta { name });
shift_fields!(RawDefaults {
    durations,
    load,
    max_load,
    provider
});
shift_fields!(RawImport {
    ansible,
    csv,
    region,
    zone,
    provider,
    tags
});
shift_fields!(RawHost {
    id,
    address,
    region,
    zone,
    provider,
    tags,
    duration
});
shift_fields!(RawTenant { id, name, contact });
shift_fields!(RawSelector {
    tags,
    region,
    regions,
    zone,
    ids
});
shift_fields!(RawCluster {
    id,
    kind,
    tenant,
    members,
    selector,
    max_unavailable,
    max_unavailable_zones,
    replicas,
    load,
    max_load,
    duration,
    allow_outage,
    return_timeout,
    gate_timeout,
    gate
});
shift_fields!(RawWindow {
    cron,
    duration,
    start,
    end,
    regions,
    timezone
});
shift_fields!(RawMaintenance {
    name,
    action,
    services,
    command,
    check,
    then_reboot,
    start,
    notice_lead,
    regions,
    region_mode,
    max_concurrent,
    max_concurrent_per_region,
    on_missing,
    deadline,
    region_deadlines,
    hosts,
    horizon,
    effort,
    window
});
shift_fields!(RawNotice {
    id,
    code,
    source,
    hosts,
    not_before,
    not_after
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write;
    use rollcall_core::generate;

    /// The batched parse (with small batches) and the whole-document parse give the
    /// same structs with the same spans, or the same error.
    fn same_as_whole(text: &str, batch: usize) {
        let whole = toml::from_str::<RawFleet>(text);
        let batched = parse_fleet_batched(text, batch);
        match (whole, batched) {
            (Ok(w), Ok(b)) => assert_eq!(format!("{w:?}"), format!("{b:?}")),
            (Err(w), Err(b)) => {
                assert_eq!((w.message(), w.span()), (b.message(), b.span()))
            }
            (w, b) => panic!("whole {w:?}\nbatched {b:?}"),
        }
    }

    fn batches(text: &str, batch: usize) -> usize {
        cut_points(text, batch).len()
    }

    #[test]
    fn generated_fleet_parses_in_batches_to_the_same_structs() {
        let f = generate::generate(&generate::GenParams::new(300, 60, 3));
        let text = write::to_toml(&f);
        assert!(batches(&text, 2000) > 10);
        same_as_whole(&text, 2000);
        same_as_whole(&text, 1);
    }

    #[test]
    fn example_fleets_parse_in_batches_to_the_same_structs() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        // xsa-108.toml lists its hosts as a root key: parsed whole
        for (name, cut) in [("xsa-108.toml", false), ("imported/fleet.toml", true)] {
            let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
            assert_eq!(batches(&text, 1) > 2, cut, "{name}");
            same_as_whole(&text, 1);
        }
    }

    const HOSTS: &str =
        "[[host]]\nid = \"a\"\nregion = \"r\"\n\n[[host]]\nid = \"b\"\nregion = \"r\"\n";

    #[test]
    fn tables_after_the_hosts_and_errors_in_late_batches_match_the_whole_parse() {
        let cases = [
            // a table after the hosts, and a sub-table of it further on
            format!(
                "{HOSTS}[maintenance]\nname = \"m\"\n{HOSTS}[[maintenance.window]]\ncron = \"0 1 * * *\"\n"
            ),
            // the same table twice, in different batches
            format!("[fleet]\nname = \"x\"\n{HOSTS}[fleet]\nname = \"y\"\n"),
            // a root key that a later array of tables clashes with
            format!("host = [{{ id = \"z\", region = \"r\" }}]\n{HOSTS}"),
            // a header line inside a multi-line string
            format!("[fleet]\nname = \"\"\"\n{HOSTS}\"\"\"\n{HOSTS}"),
            // an unknown key and a bad value in the last batch
            format!("{HOSTS}[[host]]\nid = \"c\"\nregoin = \"r\"\n"),
            format!("{HOSTS}[[cluster]]\nid = \"c\"\nkind = 3\n"),
            // a syntax error in the last batch
            format!("{HOSTS}[[tenant]]\nid = \n"),
            // a sub-table of a host
            format!("{HOSTS}[host.extra]\nx = 1\n{HOSTS}"),
        ];
        for text in &cases {
            for batch in [1, 20, 1 << 20] {
                same_as_whole(text, batch);
            }
        }
    }
}
