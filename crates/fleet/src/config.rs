//! Loading and validating a fleet file (TOML), with hosts optionally imported from
//! Ansible inventories (INI or YAML) and CSV files.
//!
//! Every error points at the file, line, column and field; all errors found are
//! reported together. Nothing here panics on any input.

use crate::error::{ConfigError, ConfigErrors, SourceFile};
use crate::import::{self, ImportedHost};
use crate::limits::{self, TextLimit};
use crate::sources::ImportSource;
use crate::spanned::{self, Checker, S, Spanned, field_path_at};
use rollcall_core::model::*;
use rollcall_core::select::{HostIndex, Query};
use serde::Deserialize;
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

mod action;
mod clusters;
mod hosts;
mod maintenance;
mod parse;

use hosts::{HostTable, set_host_durations};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    fleet: Option<RawMeta>,
    defaults: Option<RawDefaults>,
    #[serde(default)]
    import: Vec<Spanned<RawImport>>,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    tenant: Vec<Spanned<RawTenant>>,
    #[serde(default)]
    cluster: Vec<Spanned<RawCluster>>,
    maintenance: Option<Spanned<RawMaintenance>>,
    #[serde(default)]
    notice: Vec<Spanned<RawNotice>>,
    /// `[[subscriber]]` and `[notify]`: validated by the notify crate (`rollcall_notify::config`).
    #[allow(dead_code)]
    #[serde(default)]
    subscriber: Vec<toml::Value>,
    #[allow(dead_code)]
    notify: Option<toml::Value>,
    // Real-host driver settings: validated by rollcall-drivers (`drivers::config`).
    #[allow(dead_code)]
    ssh: Option<toml::Value>,
    #[allow(dead_code)]
    exec: Option<toml::Value>,
    #[allow(dead_code)]
    remote: Option<toml::Value>,
    // Cloud providers (notice sources, the ec2 driver): validated by rollcall-providers.
    #[allow(dead_code)]
    aws: Option<toml::Value>,
    #[allow(dead_code)]
    azure: Option<toml::Value>,
    #[allow(dead_code)]
    gcp: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    name: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    durations: Option<BTreeMap<S, S>>,
    load: Option<Spanned<f64>>,
    max_load: Option<Spanned<f64>>,
    provider: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    ansible: Option<S>,
    csv: Option<S>,
    region: Option<S>,
    zone: Option<S>,
    provider: Option<S>,
    #[serde(default)]
    tags: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    id: S,
    address: Option<S>,
    region: Option<S>,
    zone: Option<S>,
    provider: Option<S>,
    #[serde(default)]
    tags: Vec<S>,
    duration: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: S,
    name: Option<S>,
    contact: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    #[serde(default)]
    tags: Vec<S>,
    region: Option<S>,
    #[serde(default)]
    regions: Vec<S>,
    zone: Option<S>,
    #[serde(default)]
    ids: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    id: S,
    kind: S,
    tenant: Option<S>,
    members: Option<Spanned<Vec<S>>>,
    selector: Option<Spanned<RawSelector>>,
    max_unavailable: Option<Spanned<i64>>,
    max_unavailable_zones: Option<Spanned<i64>>,
    replicas: Option<Spanned<i64>>,
    load: Option<Spanned<f64>>,
    max_load: Option<Spanned<f64>>,
    duration: Option<S>,
    #[serde(default)]
    allow_outage: bool,
    return_timeout: Option<S>,
    gate_timeout: Option<S>,
    /// Gate settings for the real-host drivers, validated by rollcall-drivers.
    #[allow(dead_code)]
    gate: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    cron: Option<S>,
    duration: Option<S>,
    start: Option<Spanned<toml::Value>>,
    end: Option<Spanned<toml::Value>>,
    #[serde(default)]
    regions: Vec<S>,
    timezone: Option<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    name: Option<S>,
    action: Option<S>,
    services: Option<Spanned<Vec<S>>>,
    command: Option<S>,
    check: Option<S>,
    then_reboot: Option<Spanned<bool>>,
    start: Option<Spanned<toml::Value>>,
    notice_lead: Option<S>,
    regions: Option<Vec<S>>,
    region_mode: Option<S>,
    max_concurrent: Option<Spanned<i64>>,
    max_concurrent_per_region: Option<Spanned<i64>>,
    on_missing: Option<S>,
    deadline: Option<Spanned<toml::Value>>,
    region_deadlines: Option<BTreeMap<S, Spanned<toml::Value>>>,
    hosts: Option<Spanned<RawSelector>>,
    horizon: Option<S>,
    effort: Option<Spanned<i64>>,
    #[serde(default)]
    window: Vec<Spanned<RawWindow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    id: S,
    code: Option<S>,
    source: Option<S>,
    hosts: Spanned<Vec<S>>,
    not_before: Spanned<toml::Value>,
    not_after: Option<Spanned<toml::Value>>,
}

/// Options for loading that come from outside the file.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Used as the maintenance start when the file gives none (Unix seconds).
    pub now: i64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            now: jiff::Timestamp::now().as_second(),
        }
    }
}

/// Read and validate a fleet file. Imported inventories are read relative to it.
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Fleet, ConfigErrors> {
    let name = path.display().to_string();
    let text = limits::read_input(path).map_err(|e| ConfigErrors {
        file: name.clone(),
        errors: vec![ConfigError::file(&name, "", e.to_string())],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&name, &text, &base, opts)
}

/// Validate fleet text. `base` is the directory imports are resolved against.
pub fn load_str(
    name: &str,
    text: &str,
    base: &Path,
    opts: &LoadOptions,
) -> Result<Fleet, ConfigErrors> {
    load_with(
        name,
        text,
        base,
        opts,
        ImportSource::Disk(Default::default()),
    )
    .0
}

/// Validate fleet text, taking `[[import]]` files from `files`; gives `files` back (with
/// what was read from disk, for [`crate::sources`]).
pub(crate) fn load_with(
    name: &str,
    text: &str,
    base: &Path,
    opts: &LoadOptions,
    files: ImportSource,
) -> (Result<Fleet, ConfigErrors>, ImportSource) {
    let src = SourceFile::new(name, text);
    if let Err(e) = limits::check_toml(text) {
        let errs = ConfigErrors {
            file: name.to_string(),
            errors: vec![limit_error(&src, e)],
        };
        return (Err(errs), files);
    }
    let raw: RawFleet = match parse::parse_fleet(text) {
        Ok(r) => r,
        Err(e) => return (Err(spanned::parse_error(&src, &e)), files),
    };
    let mut v = Validator {
        c: Checker::new(&src),
        base: base.to_path_buf(),
        files,
    };
    let fleet = v.fleet(raw, opts);
    let result = v.c.finish(()).and_then(|_| {
        fleet.ok_or_else(|| ConfigErrors {
            file: name.to_string(),
            errors: vec![ConfigError::file(name, "", "invalid fleet")],
        })
    });
    (result, v.files)
}

/// The error for fleet text over a limit of [`limits`], pointing at where it is.
fn limit_error(src: &SourceFile, e: TextLimit) -> ConfigError {
    match e {
        TextLimit::TooLarge { bytes } => ConfigError::file(
            &src.name,
            "",
            format!(
                "the file is {bytes} bytes, over the {} MiB limit for a fleet file",
                limits::MAX_FILE_BYTES >> 20
            ),
        ),
        TextLimit::TooDeep { offset } => ConfigError::at(
            src,
            offset..offset + 1,
            short(&field_path_at(&src.text, offset)),
            format!(
                "tables and arrays nest deeper than {} levels here, the limit for a fleet file",
                limits::MAX_TOML_DEPTH
            ),
        )
        .with_help("a fleet file nests a few levels deep; this looks generated or corrupt"),
        TextLimit::TooManyTables { offset } => ConfigError::at(
            src,
            offset..offset + 1,
            short(&field_path_at(&src.text, offset)),
            format!(
                "more than {} tables and arrays by here, the limit for a fleet file",
                limits::MAX_TOML_TABLES
            ),
        )
        .with_help(
            "a million-host fleet has about 4 million; import hosts from CSV or split the fleet",
        ),
    }
}

/// A field path cut to a length that fits in a message.
fn short(field: &str) -> String {
    match field.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &field[..i]),
        None => field.to_string(),
    }
}

/// `[defaults]` with the built-in values for what it leaves out.
struct Defaults {
    kind_durations: HashMap<Kind, i64>,
    load: f64,
    max_load: f64,
    provider: String,
}

/// `[fleet] name`, else the file's name without its extension.
fn fleet_name(meta: Option<&RawMeta>, file: &str) -> String {
    match meta.and_then(|m| m.name.as_ref()) {
        Some(n) => n.get_ref().clone(),
        None => Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "fleet".into()),
    }
}

struct Validator<'a> {
    c: Checker<'a>,
    base: PathBuf,
    files: ImportSource,
}

/// A host before interning, with where it came from for error messages.
struct PendingHost {
    id: String,
    address: String,
    region: Option<String>,
    zone: Option<String>,
    provider: String,
    tags: Vec<String>,
    duration: Option<i64>,
    origin: Origin,
}

#[derive(Clone)]
enum Origin {
    Fleet(std::ops::Range<usize>),
    Import { src: SourceFile, line: usize },
}

impl Origin {
    fn describe(&self, fleet: &SourceFile) -> String {
        match self {
            Origin::Fleet(span) => {
                let (l, c) = fleet.line_col(span.start);
                format!("{}:{l}:{c}", fleet.name)
            }
            Origin::Import { src, line } => format!("{}:{line}", src.name),
        }
    }
}

impl<'a> Validator<'a> {
    fn err_origin(&mut self, origin: &Origin, field: String, msg: String, help: Option<String>) {
        let mut e = match origin {
            Origin::Fleet(span) => ConfigError::at(self.c.src, span.clone(), field, msg),
            Origin::Import { src, line } => ConfigError::at_line(src, *line, field, msg),
        };
        e.help = help;
        self.c.errs.push(e);
    }

    fn duration(&mut self, s: &S, field: &str) -> Option<i64> {
        const HELP: &str = "write a duration like \"90s\", \"20m\", \"1h30m\" or \"PT1H\"";
        self.c.duration(s, field, HELP)
    }

    fn time(&mut self, v: &Spanned<toml::Value>, field: &str) -> Option<i64> {
        match parse_time(v.get_ref()) {
            Ok(t) => Some(t),
            Err(m) => {
                self.c.err_help(
                    v.span(),
                    field,
                    m,
                    "write an RFC 3339 time with an offset, like 2014-09-25T20:00:00Z",
                );
                None
            }
        }
    }

    /// The whole fleet, section by section; every section reports all of its errors
    /// even when an earlier one failed, so a load lists every problem at once.
    fn fleet(&mut self, mut raw: RawFleet, opts: &LoadOptions) -> Option<Fleet> {
        let name = fleet_name(raw.fleet.as_ref(), &self.c.src.name);
        let defaults = self.defaults(raw.defaults.as_ref());
        // the raw host tables are moved into pending hosts (no copies), then freed
        let host_tables = std::mem::take(&mut raw.host);
        let pending = self.pending_hosts(&raw.import, host_tables, &defaults.provider);
        let mut t = self.intern_hosts(pending);
        let tenants = self.tenants(&raw.tenant);
        let (clusters, durations) = self.clusters(&raw.cluster, &tenants, &defaults, &mut t);
        set_host_durations(&mut t, &clusters, &durations, &defaults.kind_durations);
        let maintenance = self.maintenance(raw.maintenance.as_ref(), opts, &mut t);
        let notices = self.notices(&raw.notice, &mut t);
        let maintenance = maintenance?;
        Some(Fleet {
            name,
            regions: t.regions,
            hosts: t.hosts,
            clusters,
            tenants,
            maintenance,
            notices,
        })
    }

    /// `[defaults]`: per-kind durations, load, max_load and provider.
    fn defaults(&mut self, raw: Option<&RawDefaults>) -> Defaults {
        let mut out = Defaults {
            kind_durations: Kind::ALL
                .iter()
                .map(|k| (*k, k.default_duration()))
                .collect(),
            load: 0.5,
            max_load: 0.85,
            provider: String::new(),
        };
        let Some(d) = raw else {
            return out;
        };
        for (k, v) in d.durations.iter().flatten() {
            let field = format!("defaults.durations.{}", k.get_ref());
            match Kind::parse(k.get_ref()) {
                Some(kind) => {
                    if let Some(secs) = self.positive_duration(v, &field) {
                        out.kind_durations.insert(kind, secs);
                    }
                }
                None => self.c.err_help(
                    k.span(),
                    field,
                    format!("unknown cluster kind `{}`", k.get_ref()),
                    kinds_help(),
                ),
            }
        }
        if let Some(l) = &d.load
            && self.fraction(l, "defaults.load", false)
        {
            out.load = *l.get_ref();
        }
        if let Some(l) = &d.max_load
            && self.fraction(l, "defaults.max_load", true)
        {
            out.max_load = *l.get_ref();
        }
        if let Some(p) = &d.provider {
            out.provider = p.get_ref().clone();
        }
        out
    }

    /// An id of the `i`th `[[table]]` (`tenant`, `cluster`), checked to be set and
    /// unique among `seen`, where it is then recorded.
    fn unique_id(
        &mut self,
        id: &S,
        table: &str,
        i: usize,
        seen: &mut HashMap<String, std::ops::Range<usize>>,
    ) -> Option<String> {
        let field = format!("{table}[{i}].id");
        let value = id.get_ref();
        if value.trim().is_empty() {
            self.c.err(id.span(), field, format!("{table} id is empty"));
            return None;
        }
        if let Some(prev) = seen.get(value) {
            let (l, _) = self.c.src.line_col(prev.start);
            self.c.err_help(
                id.span(),
                field,
                format!("duplicate {table} id `{value}`"),
                format!("first defined at line {l}"),
            );
            return None;
        }
        seen.insert(value.clone(), id.span());
        Some(value.clone())
    }

    /// `[[tenant]]` tables.
    fn tenants(&mut self, raw: &[Spanned<RawTenant>]) -> Vec<Tenant> {
        let mut tenants = Vec::new();
        let mut ids = HashMap::new();
        for (i, t) in raw.iter().enumerate() {
            let tr = t.get_ref();
            let Some(id) = self.unique_id(&tr.id, "tenant", i, &mut ids) else {
                continue;
            };
            tenants.push(Tenant {
                name: tr
                    .name
                    .as_ref()
                    .map(|n| n.get_ref().clone())
                    .unwrap_or_else(|| id.clone()),
                id,
                contact: tr.contact.as_ref().map(|c| c.get_ref().clone()),
            });
        }
        tenants
    }

    /// `[[notice]]` tables; each notice's `not_before` is a deadline for its hosts.
    fn notices(&mut self, raw: &[Spanned<RawNotice>], t: &mut HostTable) -> Vec<Notice> {
        let mut notices = Vec::new();
        let mut ids = HashSet::new();
        for (i, n) in raw.iter().enumerate() {
            let nr = n.get_ref();
            let f = |s: &str| format!("notice[{i}].{s}");
            if !ids.insert(nr.id.get_ref().clone()) {
                self.c.err(
                    nr.id.span(),
                    f("id"),
                    format!("duplicate notice id `{}`", nr.id.get_ref()),
                );
                continue;
            }
            let hosts = self.notice_hosts(nr, &f, t);
            let (Some(not_before), not_after) = self.notice_times(nr, &f) else {
                continue;
            };
            for &h in &hosts {
                let d = &mut t.hosts[h as usize].deadline;
                *d = Some(d.map_or(not_before, |x| x.min(not_before)));
            }
            notices.push(Notice {
                id: nr.id.get_ref().clone(),
                code: nr
                    .code
                    .as_ref()
                    .map(|c| c.get_ref().clone())
                    .unwrap_or_else(|| "manual".into()),
                source: nr.source.as_ref().map(|s| s.get_ref().clone()),
                hosts,
                not_before,
                not_after,
            });
        }
        notices
    }

    /// The hosts a notice names (unknown ones reported).
    fn notice_hosts(
        &mut self,
        nr: &RawNotice,
        f: &dyn Fn(&str) -> String,
        t: &HostTable,
    ) -> Vec<HostIx> {
        let mut hosts = Vec::new();
        for (j, h) in nr.hosts.get_ref().iter().enumerate() {
            match t.host_ix.get(h.get_ref()) {
                Some(&x) => hosts.push(x),
                None => self.c.err(
                    h.span(),
                    f(&format!("hosts[{j}]")),
                    format!(
                        "notice `{}` names unknown host `{}`",
                        nr.id.get_ref(),
                        h.get_ref()
                    ),
                ),
            }
        }
        hosts
    }

    /// A notice's `not_before` and `not_after`, the latter checked to come later.
    fn notice_times(
        &mut self,
        nr: &RawNotice,
        f: &dyn Fn(&str) -> String,
    ) -> (Option<i64>, Option<i64>) {
        let nb = self.time(&nr.not_before, &f("not_before"));
        let na = nr
            .not_after
            .as_ref()
            .and_then(|t| self.time(t, &f("not_after")));
        if let (Some(b), Some(a), Some(span)) = (nb, na, nr.not_after.as_ref().map(|t| t.span()))
            && a <= b
        {
            self.c.err(
                span,
                f("not_after"),
                "not_after must be later than not_before",
            );
        }
        (nb, na)
    }

    fn positive_duration(&mut self, s: &S, field: &str) -> Option<i64> {
        let d = self.duration(s, field)?;
        if d <= 0 {
            self.c.err(
                s.span(),
                field,
                format!("duration must be positive, got `{}`", s.get_ref()),
            );
            return None;
        }
        Some(d)
    }

    fn fraction(&mut self, l: &Spanned<f64>, field: &str, max: bool) -> bool {
        let v = *l.get_ref();
        let ok = if max {
            v > 0.0 && v <= 1.0
        } else {
            (0.0..=1.0).contains(&v)
        };
        if !ok {
            let range = if max {
                "greater than 0 and at most 1"
            } else {
                "between 0 and 1"
            };
            self.c.err_help(
                l.span(),
                field,
                format!("must be {range}, got {v}"),
                "loads are shares of the cluster's capacity: 0.6 means 60% in use",
            );
        }
        ok
    }

    /// Resolve a selector through the host index (built on first use).
    fn select(&mut self, sel: &Spanned<RawSelector>, field: &str, t: &HostTable) -> Vec<HostIx> {
        let s = sel.get_ref();
        let mut regions: Vec<RegionIx> = Vec::new();
        for r in s.region.iter().chain(s.regions.iter()) {
            match t.region_ix.get(r.get_ref()) {
                Some(&x) => regions.push(x),
                None => {
                    self.c.err(
                        r.span(),
                        format!("{field}.region"),
                        format!("unknown region `{}`", r.get_ref()),
                    );
                    return Vec::new();
                }
            }
        }
        let mut ids: Vec<HostIx> = Vec::with_capacity(s.ids.len());
        for (j, id) in s.ids.iter().enumerate() {
            match t.host_ix.get(id.get_ref()) {
                Some(&x) => ids.push(x),
                None => {
                    self.c.err(
                        id.span(),
                        format!("{field}.ids[{j}]"),
                        format!("unknown host `{}`", id.get_ref()),
                    );
                    return Vec::new();
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let tags: Vec<&str> = s.tags.iter().map(|t| t.get_ref().as_str()).collect();
        let query = Query {
            regions: &regions,
            zone: s.zone.as_ref().map(|z| z.get_ref().as_str()),
            tags: &tags,
            ids: &ids,
        };
        t.index
            .get_or_init(|| HostIndex::new(&t.hosts))
            .select(&t.hosts, &query)
    }
}

fn kinds_help() -> String {
    format!(
        "known kinds: {}",
        Kind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Parse a timestamp given as a TOML datetime or a string (RFC 3339 with an offset).
pub fn parse_time(v: &toml::Value) -> Result<i64, String> {
    let s = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => return Err(format!("expected a time, found {}", other.type_str())),
    };
    s.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| format!("invalid time `{s}`: {e}"))
}

/// The closest known name, for "did you mean" hints.
fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    let mut best: Option<(usize, &String)> = None;
    for k in known {
        let d = edit_distance(name, k);
        if d <= 2.max(name.len() / 4) && best.is_none_or(|(bd, bk)| d < bd || (d == bd && k < bk)) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 3 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}
