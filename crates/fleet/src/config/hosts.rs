//! Hosts: `[[import]]` files and `[[host]]` tables to pending hosts, then interned
//! into the fleet's host table (ids unique, every host in a region).

use super::*;

/// The fleet's hosts once interned, and the lookups the later sections use.
pub(super) struct HostTable {
    pub regions: Vec<String>,
    pub region_ix: HashMap<String, RegionIx>,
    pub hosts: Vec<Host>,
    pub host_ix: HashMap<String, HostIx>,
    /// The `duration` a host sets itself, by host.
    pub duration: Vec<Option<i64>>,
    /// Selector lookups, built on the first selector.
    pub index: OnceCell<HostIndex>,
}

/// Every host's duration estimate: its own, else the longest of its clusters'
/// (a cluster's own, else its kind's default), else the default of kind `none`.
pub(super) fn set_host_durations(
    t: &mut HostTable,
    clusters: &[Cluster],
    cluster_duration: &[Option<i64>],
    kind_durations: &HashMap<Kind, i64>,
) {
    let none_default = kind_durations[&Kind::None];
    for (h, host) in t.hosts.iter_mut().enumerate() {
        host.duration = match t.duration[h] {
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
}

impl Validator<'_> {
    /// Hosts from the `[[import]]`s first, then from the `[[host]]` tables.
    pub(super) fn pending_hosts(
        &mut self,
        imports: &[Spanned<RawImport>],
        tables: Vec<Spanned<RawHost>>,
        default_provider: &str,
    ) -> Vec<PendingHost> {
        let mut pending: Vec<PendingHost> = Vec::new();
        for (i, imp) in imports.iter().enumerate() {
            self.import(i, imp, default_provider, &mut pending);
        }
        for (i, h) in tables.into_iter().enumerate() {
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
                    .unwrap_or_else(|| default_provider.to_string()),
                tags: hr.tags.into_iter().map(Spanned::into_inner).collect(),
                duration,
                origin,
            });
        }
        pending
    }

    /// Pending hosts into the host table, in order; a host with no id, a duplicate id
    /// or no region is reported and left out.
    pub(super) fn intern_hosts(&mut self, pending: Vec<PendingHost>) -> HostTable {
        let mut t = HostTable {
            regions: Vec::new(),
            region_ix: HashMap::new(),
            hosts: Vec::with_capacity(pending.len()),
            host_ix: HashMap::with_capacity(pending.len()),
            duration: Vec::with_capacity(pending.len()),
            index: OnceCell::new(),
        };
        let mut origins: Vec<Origin> = Vec::with_capacity(pending.len());
        for (i, p) in pending.into_iter().enumerate() {
            let Some(region) = self.host_region(i, &p, &t, &origins) else {
                continue;
            };
            let r = *t.region_ix.entry(region.clone()).or_insert_with(|| {
                t.regions.push(region.clone());
                (t.regions.len() - 1) as RegionIx
            });
            let zone = p
                .zone
                .filter(|z| !z.trim().is_empty())
                .unwrap_or_else(|| region.clone());
            t.host_ix.insert(p.id.clone(), t.hosts.len() as HostIx);
            origins.push(p.origin);
            t.duration.push(p.duration);
            t.hosts.push(Host {
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
        if t.hosts.is_empty() && self.c.errs.is_empty() {
            self.c.errs.push(
                ConfigError::file(&self.c.src.name, "host", "the fleet has no hosts").with_help(
                    "add [[host]] tables or an [[import]] of an Ansible inventory or CSV file",
                ),
            );
        }
        t
    }

    /// The region of the `i`th pending host, when its id is set and new and it has a
    /// region; `origins` are where the hosts already interned were defined.
    fn host_region(
        &mut self,
        i: usize,
        p: &PendingHost,
        t: &HostTable,
        origins: &[Origin],
    ) -> Option<String> {
        let field = || format!("host `{}`", p.id);
        if p.id.trim().is_empty() {
            self.err_origin(
                &p.origin,
                format!("host[{i}].id"),
                "host id is empty".into(),
                None,
            );
            return None;
        }
        if let Some(&prev) = t.host_ix.get(&p.id) {
            let first = origins[prev as usize].describe(self.c.src);
            self.err_origin(
                &p.origin,
                format!("{}.id", field()),
                format!("duplicate host id `{}`", p.id),
                Some(format!("first defined at {first}; host ids must be unique")),
            );
            return None;
        }
        match p.region.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => Some(r.to_string()),
            _ => {
                self.err_origin(
                    &p.origin,
                    format!("{}.region", field()),
                    format!("host `{}` is in no region", p.id),
                    Some(
                        "every host needs a region (set `region`, or `region` on its [[import]])"
                            .into(),
                    ),
                );
                None
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
