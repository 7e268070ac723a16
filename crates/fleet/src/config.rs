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
mod parse;

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

#[derive(Debug, Deserialize)]
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
    #[serde(default)]
    window: Vec<Spanned<RawWindow>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    id: S,
    code: Option<S>,
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

    fn fleet(&mut self, mut raw: RawFleet, opts: &LoadOptions) -> Option<Fleet> {
        let name = raw
            .fleet
            .as_ref()
            .and_then(|m| m.name.as_ref())
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| {
                Path::new(&self.c.src.name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "fleet".into())
            });

        // ---- defaults
        let mut kind_durations: HashMap<Kind, i64> = Kind::ALL
            .iter()
            .map(|k| (*k, k.default_duration()))
            .collect();
        let mut default_load = 0.5;
        let mut default_max_load = 0.85;
        let mut default_provider = String::new();
        if let Some(d) = &raw.defaults {
            if let Some(map) = &d.durations {
                for (k, v) in map {
                    let field = format!("defaults.durations.{}", k.get_ref());
                    match Kind::parse(k.get_ref()) {
                        Some(kind) => {
                            if let Some(secs) = self.positive_duration(v, &field) {
                                kind_durations.insert(kind, secs);
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
            }
            if let Some(l) = &d.load
                && self.fraction(l, "defaults.load", false)
            {
                default_load = *l.get_ref();
            }
            if let Some(l) = &d.max_load
                && self.fraction(l, "defaults.max_load", true)
            {
                default_max_load = *l.get_ref();
            }
            if let Some(p) = &d.provider {
                default_provider = p.get_ref().clone();
            }
        }

        // ---- hosts: imports first, then [[host]] tables
        let mut pending: Vec<PendingHost> = Vec::new();
        for (i, imp) in raw.import.iter().enumerate() {
            self.import(i, imp, &default_provider, &mut pending);
        }
        // the raw host tables are moved into pending hosts (no copies), then freed
        for (i, h) in std::mem::take(&mut raw.host).into_iter().enumerate() {
            let hr = h.into_inner();
            let duration = hr
                .duration
                .as_ref()
                .and_then(|d| self.positive_duration(d, &format!("host[{i}].duration")));
            let origin = Origin::Fleet(hr.id.span());
            let id = hr.id.into_inner();
            pending.push(PendingHost {
                address: hr
                    .address
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| id.clone()),
                id,
                region: hr.region.map(Spanned::into_inner),
                zone: hr.zone.map(Spanned::into_inner),
                provider: hr
                    .provider
                    .map(Spanned::into_inner)
                    .unwrap_or_else(|| default_provider.clone()),
                tags: hr.tags.into_iter().map(Spanned::into_inner).collect(),
                duration,
                origin,
            });
        }

        let mut regions: Vec<String> = Vec::new();
        let mut region_ix: HashMap<String, RegionIx> = HashMap::new();
        let mut hosts: Vec<Host> = Vec::with_capacity(pending.len());
        let mut host_ix: HashMap<String, HostIx> = HashMap::with_capacity(pending.len());
        let mut host_origin: Vec<Origin> = Vec::with_capacity(pending.len());
        let mut host_duration_override: Vec<Option<i64>> = Vec::with_capacity(pending.len());
        for (i, p) in pending.into_iter().enumerate() {
            let field = || format!("host `{}`", p.id);
            if p.id.trim().is_empty() {
                self.err_origin(
                    &p.origin,
                    format!("host[{i}].id"),
                    "host id is empty".into(),
                    None,
                );
                continue;
            }
            if let Some(&prev) = host_ix.get(&p.id) {
                let first = host_origin[prev as usize].describe(self.c.src);
                self.err_origin(
                    &p.origin,
                    format!("{}.id", field()),
                    format!("duplicate host id `{}`", p.id),
                    Some(format!("first defined at {first}; host ids must be unique")),
                );
                continue;
            }
            let region = match p.region.as_deref().map(str::trim) {
                Some(r) if !r.is_empty() => r.to_string(),
                _ => {
                    self.err_origin(
                        &p.origin,
                        format!("{}.region", field()),
                        format!("host `{}` is in no region", p.id),
                        Some("every host needs a region (set `region`, or `region` on its [[import]])".into()),
                    );
                    continue;
                }
            };
            let r = *region_ix.entry(region.clone()).or_insert_with(|| {
                regions.push(region.clone());
                (regions.len() - 1) as RegionIx
            });
            let zone = p
                .zone
                .filter(|z| !z.trim().is_empty())
                .unwrap_or_else(|| region.clone());
            host_ix.insert(p.id.clone(), hosts.len() as HostIx);
            host_origin.push(p.origin);
            host_duration_override.push(p.duration);
            hosts.push(Host {
                id: p.id,
                address: p.address,
                region: r,
                zone,
                provider: p.provider,
                tags: p.tags,
                duration: 0,
                clusters: Vec::new(),
                in_scope: true,
                deadline: None,
            });
        }
        if hosts.is_empty() && self.c.errs.is_empty() {
            self.c.errs.push(
                ConfigError::file(&self.c.src.name, "host", "the fleet has no hosts").with_help(
                    "add [[host]] tables or an [[import]] of an Ansible inventory or CSV file",
                ),
            );
        }

        // ---- tenants
        let mut tenants = Vec::new();
        let mut tenant_ids: HashMap<String, std::ops::Range<usize>> = HashMap::new();
        for (i, t) in raw.tenant.iter().enumerate() {
            let tr = t.get_ref();
            let id = tr.id.get_ref().clone();
            if id.trim().is_empty() {
                self.c.err(
                    tr.id.span(),
                    format!("tenant[{i}].id"),
                    "tenant id is empty",
                );
                continue;
            }
            if let Some(prev) = tenant_ids.get(&id) {
                let (l, _) = self.c.src.line_col(prev.start);
                self.c.err_help(
                    tr.id.span(),
                    format!("tenant[{i}].id"),
                    format!("duplicate tenant id `{id}`"),
                    format!("first defined at line {l}"),
                );
                continue;
            }
            tenant_ids.insert(id.clone(), tr.id.span());
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

        // ---- clusters
        let index = OnceCell::new();
        let mut clusters: Vec<Cluster> = Vec::new();
        let mut cluster_ids: HashMap<String, std::ops::Range<usize>> = HashMap::new();
        let mut cluster_duration: Vec<Option<i64>> = Vec::new();
        for (i, c) in raw.cluster.iter().enumerate() {
            let cr = c.get_ref();
            let id = cr.id.get_ref().clone();
            let f = |s: &str| format!("cluster[{i}].{s}");
            if id.trim().is_empty() {
                self.c.err(cr.id.span(), f("id"), "cluster id is empty");
                continue;
            }
            if let Some(prev) = cluster_ids.get(&id) {
                let (l, _) = self.c.src.line_col(prev.start);
                self.c.err_help(
                    cr.id.span(),
                    f("id"),
                    format!("duplicate cluster id `{id}`"),
                    format!("first defined at line {l}"),
                );
                continue;
            }
            cluster_ids.insert(id.clone(), cr.id.span());
            let mut ok = true;
            let kind = match Kind::parse(cr.kind.get_ref()) {
                Some(k) => k,
                None => {
                    self.c.err_help(
                        cr.kind.span(),
                        f("kind"),
                        format!("unknown cluster kind `{}`", cr.kind.get_ref()),
                        kinds_help(),
                    );
                    ok = false;
                    Kind::None
                }
            };
            if let Some(t) = &cr.tenant
                && !tenant_ids.contains_key(t.get_ref())
            {
                self.c.err_help(
                    t.span(),
                    f("tenant"),
                    format!("cluster `{id}` names unknown tenant `{}`", t.get_ref()),
                    "declare it in a [[tenant]] table",
                );
                ok = false;
            }
            // members
            let mut members: Vec<HostIx> = Vec::new();
            match (&cr.members, &cr.selector) {
                (Some(_), Some(sel)) => {
                    self.c.err_help(
                        sel.span(),
                        f("selector"),
                        format!("cluster `{id}` has both `members` and `selector`"),
                        "use one of them",
                    );
                    ok = false;
                }
                (None, None) => {
                    self.c.err_help(
                        c.span().start..c.span().start + 11,
                        f("members"),
                        format!("cluster `{id}` has no `members` and no `selector`"),
                        "list member host ids in `members`, or select them with `selector = { tags = [...] }`",
                    );
                    ok = false;
                }
                (Some(list), None) => {
                    let mut seen = HashSet::new();
                    for (j, m) in list.get_ref().iter().enumerate() {
                        match host_ix.get(m.get_ref()) {
                            Some(&h) => {
                                if !seen.insert(h) {
                                    self.c.err(
                                        m.span(),
                                        f(&format!("members[{j}]")),
                                        format!(
                                            "host `{}` is listed twice in cluster `{id}`",
                                            m.get_ref()
                                        ),
                                    );
                                    ok = false;
                                } else {
                                    members.push(h);
                                }
                            }
                            None => {
                                let help = suggest(m.get_ref(), host_ix.keys())
                                    .map(|s| format!("did you mean `{s}`?"))
                                    .unwrap_or_else(|| {
                                        "every member must be a host of the fleet".into()
                                    });
                                self.c.err_help(
                                    m.span(),
                                    f(&format!("members[{j}]")),
                                    format!("cluster `{id}` names unknown host `{}`", m.get_ref()),
                                    help,
                                );
                                ok = false;
                            }
                        }
                    }
                    if list.get_ref().is_empty() {
                        self.c.err(
                            list.span(),
                            f("members"),
                            format!("cluster `{id}` has no members"),
                        );
                        ok = false;
                    }
                }
                (None, Some(sel)) => {
                    members =
                        self.select(sel, &f("selector"), &hosts, &index, &host_ix, &region_ix);
                    if members.is_empty() && self.c.errs.is_empty() {
                        self.c.err_help(
                            sel.span(),
                            f("selector"),
                            format!("the selector of cluster `{id}` matches no host"),
                            "check the tags, region and zone it asks for",
                        );
                        ok = false;
                    }
                }
            }
            // budget
            let budget = match (&cr.max_unavailable, &cr.max_unavailable_zones) {
                (Some(_), Some(z)) => {
                    self.c.err_help(
                        z.span(),
                        f("max_unavailable_zones"),
                        format!(
                            "cluster `{id}` sets both max_unavailable and max_unavailable_zones"
                        ),
                        "a budget is counted either in nodes or in zones",
                    );
                    ok = false;
                    Budget::Nodes(1)
                }
                (Some(n), None) => {
                    if *n.get_ref() < 1 || *n.get_ref() > u32::MAX as i64 {
                        self.c.err_help(
                            n.span(),
                            f("max_unavailable"),
                            format!("budget must be at least 1, got {}", n.get_ref()),
                            "a cluster that may lose no node cannot be rebooted; remove it from the maintenance scope instead",
                        );
                        ok = false;
                    }
                    Budget::Nodes((*n.get_ref()).clamp(1, u32::MAX as i64) as u32)
                }
                (None, Some(z)) => {
                    if *z.get_ref() < 1 || *z.get_ref() > u32::MAX as i64 {
                        self.c.err(
                            z.span(),
                            f("max_unavailable_zones"),
                            format!("zone budget must be at least 1, got {}", z.get_ref()),
                        );
                        ok = false;
                    }
                    Budget::Zones((*z.get_ref()).clamp(1, u32::MAX as i64) as u32)
                }
                (None, None) => Budget::Nodes(1),
            };
            let replicas = self.replicas(cr, kind, budget, &id, &f);
            ok &= replicas.is_ok();
            let replicas = replicas.unwrap_or(None);
            let load = match &cr.load {
                Some(l) => {
                    ok &= self.fraction(l, &f("load"), false);
                    *l.get_ref()
                }
                None => default_load,
            };
            let max_load = match &cr.max_load {
                Some(l) => {
                    ok &= self.fraction(l, &f("max_load"), true);
                    *l.get_ref()
                }
                None => default_max_load,
            };
            let duration = cr
                .duration
                .as_ref()
                .and_then(|d| self.positive_duration(d, &f("duration")));
            let return_timeout = match &cr.return_timeout {
                Some(d) => self.positive_duration(d, &f("return_timeout")),
                None => Some(kind.default_return_timeout()),
            };
            let gate_timeout = match &cr.gate_timeout {
                Some(d) => self.positive_duration(d, &f("gate_timeout")),
                None => Some(kind.default_gate_timeout()),
            };
            let (Some(return_timeout), Some(gate_timeout)) = (return_timeout, gate_timeout) else {
                continue;
            };
            if !ok {
                continue;
            }
            let cix = clusters.len() as ClusterIx;
            for &h in &members {
                hosts[h as usize].clusters.push(cix);
            }
            cluster_duration.push(duration);
            clusters.push(Cluster {
                id,
                kind,
                tenant: cr.tenant.as_ref().map(|t| t.get_ref().clone()),
                members,
                budget,
                load,
                max_load,
                allow_outage: cr.allow_outage,
                replicas,
                return_timeout,
                gate_timeout,
            });
        }

        // ---- per-host duration estimates
        let none_default = kind_durations[&Kind::None];
        for (h, host) in hosts.iter_mut().enumerate() {
            host.duration = match host_duration_override[h] {
                Some(d) => d,
                None => host
                    .clusters
                    .iter()
                    .map(|&c| {
                        cluster_duration[c as usize]
                            .unwrap_or(kind_durations[&clusters[c as usize].kind])
                    })
                    .max()
                    .unwrap_or(none_default),
            };
        }

        // ---- maintenance
        let maintenance = self.maintenance(
            raw.maintenance.as_ref(),
            opts,
            &mut hosts,
            &index,
            &host_ix,
            &regions,
            &region_ix,
        );

        // ---- notices
        let mut notices = Vec::new();
        let mut notice_ids = HashSet::new();
        for (i, n) in raw.notice.iter().enumerate() {
            let nr = n.get_ref();
            let f = |s: &str| format!("notice[{i}].{s}");
            if !notice_ids.insert(nr.id.get_ref().clone()) {
                self.c.err(
                    nr.id.span(),
                    f("id"),
                    format!("duplicate notice id `{}`", nr.id.get_ref()),
                );
                continue;
            }
            let mut nh = Vec::new();
            for (j, h) in nr.hosts.get_ref().iter().enumerate() {
                match host_ix.get(h.get_ref()) {
                    Some(&x) => nh.push(x),
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
            let nb = self.time(&nr.not_before, &f("not_before"));
            let na = nr
                .not_after
                .as_ref()
                .and_then(|t| self.time(t, &f("not_after")));
            if let (Some(b), Some(a), Some(span)) =
                (nb, na, nr.not_after.as_ref().map(|t| t.span()))
            {
                if a <= b {
                    self.c.err(
                        span,
                        f("not_after"),
                        "not_after must be later than not_before",
                    );
                }
            }
            if let Some(b) = nb {
                for &h in &nh {
                    let d = &mut hosts[h as usize].deadline;
                    *d = Some(d.map_or(b, |x| x.min(b)));
                }
                notices.push(Notice {
                    id: nr.id.get_ref().clone(),
                    code: nr
                        .code
                        .as_ref()
                        .map(|c| c.get_ref().clone())
                        .unwrap_or_else(|| "manual".into()),
                    hosts: nh,
                    not_before: b,
                    not_after: na,
                });
            }
        }

        let maintenance = maintenance?;
        Some(Fleet {
            name,
            regions,
            hosts,
            clusters,
            tenants,
            maintenance,
            notices,
        })
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

    /// An Elasticsearch/OpenSearch cluster's `replicas` (default 1), and its budget
    /// checked against it: with k members out together and fewer than k replicas, every
    /// copy of a shard can be among them (2014's outage). Other kinds take no `replicas`.
    fn replicas(
        &mut self,
        cr: &RawCluster,
        kind: Kind,
        budget: Budget,
        id: &str,
        f: &dyn Fn(&str) -> String,
    ) -> Result<Option<u32>, ()> {
        let search = matches!(kind, Kind::Elasticsearch | Kind::Opensearch);
        let replicas = match &cr.replicas {
            Some(r) if !search => {
                self.c.err_help(
                    r.span(),
                    f("replicas"),
                    format!("cluster `{id}` is {}: `replicas` is for elasticsearch and opensearch clusters", kind.name()),
                    "remove it",
                );
                return Err(());
            }
            None if !search => return Ok(None),
            Some(r) if !(0..=i64::from(u16::MAX)).contains(r.get_ref()) => {
                self.c.err(
                    r.span(),
                    f("replicas"),
                    format!("replicas must be between 0 and 65535, got {}", r.get_ref()),
                );
                return Err(());
            }
            Some(r) => *r.get_ref() as u32,
            None => 1,
        };
        let (k, field, span) = match (budget, &cr.max_unavailable, &cr.max_unavailable_zones) {
            (Budget::Nodes(k), Some(n), _) => (k, "max_unavailable", n.span()),
            (Budget::Zones(k), _, Some(z)) => (k, "max_unavailable_zones", z.span()),
            (b, _, _) => (b.count(), "kind", cr.kind.span()),
        };
        if k > replicas && !cr.allow_outage {
            let unit = if field == "max_unavailable_zones" {
                "zones"
            } else {
                "members"
            };
            self.c.err_help(
                span,
                f(field),
                format!(
                    "cluster `{id}` may have {k} {unit} out at once but its indices have {replicas} replica(s): \
                     every copy of a shard can be among them, and its data goes offline (red)"
                ),
                format!(
                    "lower the budget to {}, or declare `replicas = {k}` if every index has that many",
                    replicas.max(1)
                ),
            );
            return Err(());
        }
        Ok(Some(replicas))
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
    fn select(
        &mut self,
        sel: &Spanned<RawSelector>,
        field: &str,
        hosts: &[Host],
        index: &OnceCell<HostIndex>,
        host_ix: &HashMap<String, HostIx>,
        region_ix: &HashMap<String, RegionIx>,
    ) -> Vec<HostIx> {
        let s = sel.get_ref();
        let mut regions: Vec<RegionIx> = Vec::new();
        for r in s.region.iter().chain(s.regions.iter()) {
            match region_ix.get(r.get_ref()) {
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
            match host_ix.get(id.get_ref()) {
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
        index
            .get_or_init(|| HostIndex::new(hosts))
            .select(hosts, &query)
    }

    #[allow(clippy::too_many_arguments)]
    fn maintenance(
        &mut self,
        raw: Option<&Spanned<RawMaintenance>>,
        opts: &LoadOptions,
        hosts: &mut [Host],
        index: &OnceCell<HostIndex>,
        host_ix: &HashMap<String, HostIx>,
        regions: &[String],
        region_ix: &HashMap<String, RegionIx>,
    ) -> Option<Maintenance> {
        let empty = RawMaintenance {
            name: None,
            action: None,
            services: None,
            command: None,
            check: None,
            then_reboot: None,
            start: None,
            notice_lead: None,
            regions: None,
            region_mode: None,
            max_concurrent: None,
            max_concurrent_per_region: None,
            on_missing: None,
            deadline: None,
            region_deadlines: None,
            hosts: None,
            horizon: None,
            window: Vec::new(),
        };
        let m = raw.map(|r| r.get_ref()).unwrap_or(&empty);
        let f = |s: &str| format!("maintenance.{s}");
        let start = m
            .start
            .as_ref()
            .map_or(Some(opts.now), |s| self.time(s, &f("start")));
        let notice_lead = match &m.notice_lead {
            Some(d) => {
                let v = self.duration(d, &f("notice_lead"));
                if let Some(x) = v
                    && x < 0
                {
                    self.c.err(
                        d.span(),
                        f("notice_lead"),
                        "notice lead time cannot be negative",
                    );
                }
                v
            }
            None => Some(3600),
        };
        let horizon_len = match &m.horizon {
            Some(d) => self.positive_duration(d, &f("horizon")),
            None => Some(30 * 86400),
        };
        // errors are reported; the load fails, so the fallback is never used
        let action = self
            .action(&action::RawAction::of(m))
            .unwrap_or(Action::Reboot);
        let region_mode = match m.region_mode.as_ref() {
            None => RegionMode::Serial,
            Some(s) => match s.get_ref().as_str() {
                "serial" => RegionMode::Serial,
                "parallel" => RegionMode::Parallel,
                other => {
                    self.c.err_help(
                        s.span(),
                        f("region_mode"),
                        format!("unknown region mode `{other}`"),
                        "use `serial` or `parallel`",
                    );
                    RegionMode::Serial
                }
            },
        };
        let on_missing = match m.on_missing.as_ref() {
            None => OnMissing::Pause,
            Some(s) => OnMissing::parse(s.get_ref()).unwrap_or_else(|| {
                self.c.err_help(
                    s.span(),
                    f("on_missing"),
                    format!("unknown on_missing policy `{}`", s.get_ref()),
                    "use `pause`, `replace` or `continue`",
                );
                OnMissing::Pause
            }),
        };
        let conc = |v: &Option<Spanned<i64>>, name: &str, this: &mut Self| -> Option<u32> {
            let v = v.as_ref()?;
            if *v.get_ref() < 1 || *v.get_ref() > u32::MAX as i64 {
                this.c.err(
                    v.span(),
                    f(name),
                    format!("{name} must be at least 1, got {}", v.get_ref()),
                );
                None
            } else {
                Some(*v.get_ref() as u32)
            }
        };
        let max_concurrent = conc(&m.max_concurrent, "max_concurrent", self);
        let max_concurrent_per_region = conc(
            &m.max_concurrent_per_region,
            "max_concurrent_per_region",
            self,
        );

        // scope
        if let Some(sel) = &m.hosts {
            let scoped: HashSet<HostIx> = self
                .select(sel, &f("hosts"), hosts, index, host_ix, region_ix)
                .into_iter()
                .collect();
            if scoped.is_empty() && self.c.errs.is_empty() {
                self.c
                    .err(sel.span(), f("hosts"), "the maintenance selects no host");
            }
            for (i, h) in hosts.iter_mut().enumerate() {
                h.in_scope = scoped.contains(&(i as HostIx));
            }
        }

        // region order
        let mut region_order: Vec<RegionIx> = Vec::new();
        if let Some(list) = &m.regions {
            for (j, r) in list.iter().enumerate() {
                match region_ix.get(r.get_ref()) {
                    Some(&x) if region_order.contains(&x) => {
                        self.c.err(
                            r.span(),
                            f(&format!("regions[{j}]")),
                            format!("region `{}` is listed twice", r.get_ref()),
                        );
                    }
                    Some(&x) => region_order.push(x),
                    None => {
                        let help = suggest(r.get_ref(), region_ix.keys())
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| format!("known regions: {}", regions.join(", ")));
                        self.c.err_help(
                            r.span(),
                            f(&format!("regions[{j}]")),
                            format!("region `{}` has no hosts", r.get_ref()),
                            help,
                        );
                    }
                }
            }
            let listed: HashSet<RegionIx> = region_order.iter().copied().collect();
            let mut missing: Vec<&str> = Vec::new();
            for h in hosts.iter().filter(|h| h.in_scope) {
                if !listed.contains(&h.region)
                    && !missing.contains(&regions[h.region as usize].as_str())
                {
                    missing.push(&regions[h.region as usize]);
                }
            }
            if !missing.is_empty() {
                let span = m
                    .regions
                    .as_ref()
                    .and_then(|l| l.first().map(|x| x.span()))
                    .unwrap_or(0..0);
                self.c.err_help(
                    span,
                    f("regions"),
                    format!(
                        "regions with hosts in scope are missing from the order: {}",
                        missing.join(", ")
                    ),
                    "list every region, or narrow maintenance.hosts",
                );
            }
        } else {
            region_order = (0..regions.len() as RegionIx).collect();
        }

        // deadlines
        let deadline = m
            .deadline
            .as_ref()
            .and_then(|d| self.time(d, &f("deadline")));
        let mut region_deadline: Vec<Option<i64>> = vec![deadline; regions.len()];
        if let Some(map) = &m.region_deadlines {
            for (k, v) in map {
                let field = f(&format!("region_deadlines.{}", k.get_ref()));
                match region_ix.get(k.get_ref()) {
                    Some(&r) => {
                        if let Some(t) = self.time(v, &field) {
                            let d = &mut region_deadline[r as usize];
                            *d = Some(d.map_or(t, |x| x.min(t)));
                        }
                    }
                    None => {
                        self.c
                            .err(k.span(), field, format!("unknown region `{}`", k.get_ref()))
                    }
                }
            }
        }
        for h in hosts.iter_mut() {
            h.deadline = region_deadline[h.region as usize];
        }

        let (start, notice_lead, horizon_len) = (start?, notice_lead?, horizon_len?);
        let horizon = start
            .saturating_add(notice_lead)
            .saturating_add(horizon_len);

        // windows
        let mut per_region: Vec<Option<Vec<Interval>>> = vec![None; regions.len()];
        for (i, w) in m.window.iter().enumerate() {
            let field = f(&format!("window[{i}]"));
            let Some(intervals) = self.window(w, &field, start, horizon) else {
                continue;
            };
            let wr = w.get_ref();
            let mut targets: Vec<RegionIx> = Vec::new();
            for r in &wr.regions {
                match region_ix.get(r.get_ref()) {
                    Some(&x) => targets.push(x),
                    None => self.c.err(
                        r.span(),
                        format!("{field}.regions"),
                        format!("unknown region `{}`", r.get_ref()),
                    ),
                }
            }
            if wr.regions.is_empty() {
                targets = (0..regions.len() as RegionIx).collect();
            }
            for r in targets {
                per_region[r as usize]
                    .get_or_insert_with(Vec::new)
                    .extend(intervals.iter().copied());
            }
        }
        for list in per_region.iter_mut().flatten() {
            *list = merge_intervals(std::mem::take(list));
        }

        Some(Maintenance {
            name: m
                .name
                .as_ref()
                .map(|n| n.get_ref().clone())
                .unwrap_or_else(|| "maintenance".into()),
            action,
            start,
            notice_lead,
            region_order,
            region_mode,
            max_concurrent,
            max_concurrent_per_region,
            on_missing,
            windows: per_region,
            horizon,
        })
    }

    /// Expand one window into intervals between the maintenance start and the horizon.
    fn window(
        &mut self,
        w: &Spanned<RawWindow>,
        field: &str,
        start: i64,
        horizon: i64,
    ) -> Option<Vec<Interval>> {
        let wr = w.get_ref();
        let first_line = w.span().start..w.span().start + 1;
        match (&wr.cron, &wr.start) {
            (Some(_), Some(s)) => {
                self.c.err_help(
                    s.span(),
                    format!("{field}.start"),
                    "a window has either `cron` + `duration` or `start` + `end`",
                    "use one form",
                );
                None
            }
            (None, None) => {
                self.c.err_help(
                    first_line,
                    field,
                    "a window needs `cron` + `duration` or `start` + `end`",
                    "e.g. cron = \"0 22 * * *\", duration = \"6h\"",
                );
                None
            }
            (None, Some(s)) => {
                let a = self.time(s, &format!("{field}.start"))?;
                let Some(e) = &wr.end else {
                    self.c.err(
                        s.span(),
                        format!("{field}.end"),
                        "a window with `start` needs `end`",
                    );
                    return None;
                };
                let b = self.time(e, &format!("{field}.end"))?;
                if b <= a {
                    self.c.err(
                        e.span(),
                        format!("{field}.end"),
                        "the window ends before it starts",
                    );
                    return None;
                }
                if b <= start || a >= horizon {
                    self.c.err_help(
                        s.span(),
                        field,
                        format!(
                            "the window {}..{} never opens during the maintenance ({}..{})",
                            fmt_time(a),
                            fmt_time(b),
                            fmt_time(start),
                            fmt_time(horizon)
                        ),
                        "move the window, or the maintenance start, or extend maintenance.horizon",
                    );
                    return None;
                }
                Some(vec![Interval { start: a, end: b }])
            }
            (Some(c), None) => {
                let Some(dur) = &wr.duration else {
                    self.c.err(
                        c.span(),
                        format!("{field}.duration"),
                        "a cron window needs a `duration`",
                    );
                    return None;
                };
                let len = self.positive_duration(dur, &format!("{field}.duration"))?;
                let tz_name = wr
                    .timezone
                    .as_ref()
                    .map(|t| t.get_ref().as_str())
                    .unwrap_or("UTC");
                let tz = match jiff::tz::TimeZone::get(tz_name) {
                    Ok(tz) => tz,
                    Err(e) => {
                        let span = wr.timezone.as_ref().map(|t| t.span()).unwrap_or(c.span());
                        self.c.err(
                            span,
                            format!("{field}.timezone"),
                            format!("unknown time zone `{tz_name}`: {e}"),
                        );
                        return None;
                    }
                };
                let cron: croner::Cron = match c.get_ref().parse() {
                    Ok(x) => x,
                    Err(e) => {
                        self.c.err_help(c.span(), format!("{field}.cron"), format!("invalid cron expression `{}`: {e}", c.get_ref()), "five fields: minute hour day-of-month month day-of-week, e.g. \"0 22 * * 1-5\"");
                        return None;
                    }
                };
                let mut out = Vec::new();
                let from = jiff::Timestamp::from_second(start.saturating_sub(len))
                    .ok()?
                    .to_zoned(tz);
                let mut cur = from;
                let mut inclusive = true;
                loop {
                    let next = match cron.find_next_occurrence(&cur, inclusive) {
                        Ok(n) => n,
                        Err(_) => break,
                    };
                    let t = next.timestamp().as_second();
                    if t >= horizon {
                        break;
                    }
                    out.push(Interval {
                        start: t,
                        end: t.saturating_add(len),
                    });
                    if out.len() > 50_000 {
                        self.c.err_help(
                            c.span(),
                            format!("{field}.cron"),
                            format!(
                                "cron `{}` opens more than 50000 times before the horizon",
                                c.get_ref()
                            ),
                            "use a coarser schedule with a longer duration",
                        );
                        return None;
                    }
                    cur = next;
                    inclusive = false;
                }
                out.retain(|i| i.end > start);
                if out.is_empty() {
                    self.c.err_help(
                        c.span(),
                        format!("{field}.cron"),
                        format!(
                            "the window `{}` never opens between {} and {}",
                            c.get_ref(),
                            fmt_time(start),
                            fmt_time(horizon)
                        ),
                        "check the day-of-month and month fields, or extend maintenance.horizon",
                    );
                    return None;
                }
                Some(out)
            }
        }
    }

    fn import(
        &mut self,
        i: usize,
        imp: &Spanned<RawImport>,
        default_provider: &str,
        out: &mut Vec<PendingHost>,
    ) {
        let ir = imp.get_ref();
        let field = format!("import[{i}]");
        let (path, format) = match (&ir.ansible, &ir.csv) {
            (Some(p), None) => (p, "ansible"),
            (None, Some(p)) => (p, "csv"),
            _ => {
                self.c.err_help(
                    imp.span().start..imp.span().start + 10,
                    field,
                    "an [[import]] needs exactly one of `ansible` or `csv`",
                    "e.g. ansible = \"inventory.ini\"",
                );
                return;
            }
        };
        let full = self.base.join(path.get_ref());
        let text = match self.files.read(&self.base, path.get_ref()) {
            Ok(t) => t,
            Err(e) => {
                self.c.err(path.span(), format!("{field}.{format}"), e);
                return;
            }
        };
        let src = SourceFile::new(full.display().to_string(), text);
        let result = if format == "csv" {
            import::parse_csv(&src)
        } else {
            import::parse_ansible(&src)
        };
        let hosts: Vec<ImportedHost> = match result {
            Ok(h) => h,
            Err(errs) => {
                for e in errs {
                    self.c.errs.push(e);
                }
                return;
            }
        };
        for h in hosts {
            let mut tags = h.tags;
            for t in &ir.tags {
                if !tags.contains(t.get_ref()) {
                    tags.push(t.get_ref().clone());
                }
            }
            out.push(PendingHost {
                address: h.address.unwrap_or_else(|| h.id.clone()),
                id: h.id,
                region: h
                    .region
                    .or_else(|| ir.region.as_ref().map(|r| r.get_ref().clone())),
                zone: h
                    .zone
                    .or_else(|| ir.zone.as_ref().map(|r| r.get_ref().clone())),
                provider: h
                    .provider
                    .or_else(|| ir.provider.as_ref().map(|r| r.get_ref().clone()))
                    .unwrap_or_else(|| default_provider.to_string()),
                tags,
                duration: h.duration,
                origin: Origin::Import {
                    src: src.clone(),
                    line: h.line,
                },
            });
        }
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
