//! The files a fleet is made of (the fleet file and every file it imports), held in
//! memory so that a run stays bound to the exact fleet it started with.
//!
//! A run stores its fleet file's text and, in a [`StoredImports`], the content of every
//! imported inventory or CSV keyed by the path as written in `[[import]]`, with a SHA-256
//! digest over all of it. Rebuilding a run's fleet from what is stored
//! ([`load_stored`]) never reads the disk: editing `inventory.ini` after a run started
//! cannot shift the journal's host indices. Storing the files rather than a serialized
//! [`Fleet`] keeps one loader (the same validation, the same interning order) and lets
//! the notify and driver configuration, which live in the same text, be read from it too.

use crate::config::{LoadOptions, load_with};
use crate::error::{ConfigError, ConfigErrors};
use rollcall_core::model::Fleet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Imported files by the path as written in `[[import]]` (relative to the fleet file).
pub type Imports = BTreeMap<String, String>;

/// What a run stores beside its fleet file's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImports {
    /// `sha256:` and the hex digest of the fleet text and every import ([`digest`]).
    pub digest: String,
    pub imports: Imports,
}

/// The fleet file and its imports, as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetFiles {
    pub text: String,
    pub imports: Imports,
}

impl FleetFiles {
    pub fn digest(&self) -> String {
        digest(&self.text, &self.imports)
    }

    pub fn stored(&self) -> StoredImports {
        StoredImports {
            digest: self.digest(),
            imports: self.imports.clone(),
        }
    }
}

/// SHA-256 over the fleet text and every import (length-prefixed, imports in path order).
pub fn digest(text: &str, imports: &Imports) -> String {
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(b"rollcall-fleet-files/1");
    part(text.as_bytes());
    for (path, content) in imports {
        part(path.as_bytes());
        part(content.as_bytes());
    }
    let out = h.finalize();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in out {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Where `[[import]]` files come from while a fleet is validated.
pub(crate) enum ImportSource {
    /// Read from disk relative to the fleet file; what was read is kept.
    Disk(Imports),
    /// From memory only: a run's stored files.
    Stored(Imports),
    /// A run stored before imports were kept: no import can be rebuilt.
    Unrecorded { run: String },
}

impl ImportSource {
    /// The content of `path` (as written), or why it cannot be had.
    pub(crate) fn read(&mut self, base: &Path, path: &str) -> Result<String, String> {
        match self {
            ImportSource::Disk(read) => {
                let full = base.join(path);
                let text = crate::limits::read_input(&full)
                    .map_err(|e| format!("`{}`: {e}", full.display()))?;
                read.insert(path.to_string(), text.clone());
                Ok(text)
            }
            ImportSource::Stored(files) => files.get(path).cloned().ok_or_else(|| {
                format!("`{path}` is not among the files stored with this run (the stored fleet is damaged)")
            }),
            ImportSource::Unrecorded { run } => Err(format!(
                "run {run} was started by a rollcall that did not store imported files; \
                 `{path}` on disk may have changed since, so its hosts cannot be matched to the \
                 journal safely (finish the run with the rollcall version that started it, or abort it)"
            )),
        }
    }
}

/// Read a fleet file and every file it imports, and validate them.
pub fn read_fleet(path: &Path, opts: &LoadOptions) -> Result<(Fleet, FleetFiles), ConfigErrors> {
    let name = path.display().to_string();
    let text = crate::limits::read_input(path).map_err(|e| ConfigErrors {
        file: name.clone(),
        errors: vec![ConfigError::file(&name, "", e.to_string())],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    read_fleet_text(&name, text, &base, opts)
}

/// Validate fleet text already read, reading its imports from `base`; returns the files used.
pub fn read_fleet_text(
    name: &str,
    text: String,
    base: &Path,
    opts: &LoadOptions,
) -> Result<(Fleet, FleetFiles), ConfigErrors> {
    let (fleet, src) = load_with(name, &text, base, opts, ImportSource::Disk(Imports::new()));
    let imports = match src {
        ImportSource::Disk(read) => read,
        _ => Imports::new(),
    };
    Ok((fleet?, FleetFiles { text, imports }))
}

/// A run's fleet from what it stored, without touching the disk. `stored` is `None` for
/// runs stored before imports were kept: those load only if the fleet imports nothing.
/// `base` only names imported files in messages.
pub fn load_stored(
    name: &str,
    text: &str,
    base: &Path,
    stored: Option<&StoredImports>,
    run: &str,
    opts: &LoadOptions,
) -> Result<Fleet, ConfigErrors> {
    let src = match stored {
        Some(s) => {
            let found = digest(text, &s.imports);
            if found != s.digest {
                return Err(ConfigErrors {
                    file: name.to_string(),
                    errors: vec![ConfigError::file(
                        name,
                        "",
                        format!(
                            "the fleet stored with run {run} does not match its digest \
                             (stored {}, content {found}): the journal was altered or damaged",
                            s.digest
                        ),
                    )],
                });
            }
            ImportSource::Stored(s.imports.clone())
        }
        None => ImportSource::Unrecorded {
            run: run.to_string(),
        },
    };
    load_with(name, text, base, opts, src).0
}

/// How two fleets differ, host by host (matched by id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Host id and what changed (`region dfw → ord`, `tags ...`).
    pub changed: Vec<(String, String)>,
}

impl HostDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The hosts added, removed and changed from `old` to `new`, matched by id.
pub fn diff_hosts(old: &Fleet, new: &Fleet) -> HostDiff {
    let new_ix: BTreeMap<&str, usize> = new
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), i))
        .collect();
    let old_ids: std::collections::HashSet<&str> =
        old.hosts.iter().map(|h| h.id.as_str()).collect();
    let mut d = HostDiff::default();
    for (oi, h) in old.hosts.iter().enumerate() {
        match new_ix.get(h.id.as_str()) {
            None => d.removed.push(h.id.clone()),
            Some(&ni) => {
                let what = host_changes(old, oi, new, ni);
                if !what.is_empty() {
                    d.changed.push((h.id.clone(), what.join(", ")));
                }
            }
        }
    }
    d.added = new
        .hosts
        .iter()
        .filter(|h| !old_ids.contains(h.id.as_str()))
        .map(|h| h.id.clone())
        .collect();
    d
}

/// What differs in one host between two fleets (fields that matter to the plan).
fn host_changes(old: &Fleet, oi: usize, new: &Fleet, ni: usize) -> Vec<String> {
    let (a, b) = (&old.hosts[oi], &new.hosts[ni]);
    let mut out = Vec::new();
    let mut field = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name} {x} → {y}"));
        }
    };
    field(
        "region",
        old.region_name(a.region).to_string(),
        new.region_name(b.region).to_string(),
    );
    field("zone", a.zone.clone(), b.zone.clone());
    field("address", a.address.clone(), b.address.clone());
    field("provider", a.provider.clone(), b.provider.clone());
    field("duration", a.duration.to_string(), b.duration.to_string());
    let sorted = |t: &[String]| {
        let mut t = t.to_vec();
        t.sort();
        t.join(";")
    };
    field("tags", sorted(&a.tags), sorted(&b.tags));
    field("in scope", a.in_scope.to_string(), b.in_scope.to_string());
    let clusters = |f: &Fleet, l: &[u32]| {
        let mut c: Vec<String> = l
            .iter()
            .map(|&c| f.clusters[c as usize].id.clone())
            .collect();
        c.sort();
        c.join(";")
    };
    field(
        "clusters",
        clusters(old, &a.clusters),
        clusters(new, &b.clusters),
    );
    out
}
