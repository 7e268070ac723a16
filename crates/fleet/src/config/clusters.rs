//! `[[cluster]]` tables: kind, tenant, members (listed or selected), budget,
//! replicas, loads and timeouts.

use super::*;

impl Validator<'_> {
    /// Every cluster that validates, with the `duration` each sets itself; each
    /// cluster's index is added to its members' `clusters`.
    pub(super) fn clusters(
        &mut self,
        raw: &[Spanned<RawCluster>],
        tenants: &[Tenant],
        defaults: &Defaults,
        t: &mut HostTable,
    ) -> (Vec<Cluster>, Vec<Option<i64>>) {
        let tenant_ids: HashSet<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        let mut clusters: Vec<Cluster> = Vec::new();
        let mut durations: Vec<Option<i64>> = Vec::new();
        let mut ids = HashMap::new();
        for (i, c) in raw.iter().enumerate() {
            let Some(id) = self.unique_id(&c.get_ref().id, "cluster", i, &mut ids) else {
                continue;
            };
            let f = |s: &str| format!("cluster[{i}].{s}");
            let Some((cluster, duration)) = self.cluster(c, id, &f, &tenant_ids, defaults, t)
            else {
                continue;
            };
            let cix = clusters.len() as ClusterIx;
            for &h in &cluster.members {
                t.hosts[h as usize].clusters.push(cix);
            }
            durations.push(duration);
            clusters.push(cluster);
        }
        (clusters, durations)
    }

    /// One cluster, with the `duration` it sets; `None` when anything in it is wrong
    /// (every problem reported).
    fn cluster(
        &mut self,
        c: &Spanned<RawCluster>,
        id: String,
        f: &dyn Fn(&str) -> String,
        tenant_ids: &HashSet<&str>,
        defaults: &Defaults,
        t: &HostTable,
    ) -> Option<(Cluster, Option<i64>)> {
        let cr = c.get_ref();
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
        if let Some(tn) = &cr.tenant
            && !tenant_ids.contains(tn.get_ref().as_str())
        {
            self.c.err_help(
                tn.span(),
                f("tenant"),
                format!("cluster `{id}` names unknown tenant `{}`", tn.get_ref()),
                "declare it in a [[tenant]] table",
            );
            ok = false;
        }
        let members = self.members(c, &id, f, t);
        ok &= members.is_some();
        let (budget, budget_ok) = self.budget(cr, &id, f);
        ok &= budget_ok;
        let replicas = self.replicas(cr, kind, budget, &id, f);
        ok &= replicas.is_ok();
        let (load, load_ok) = self.load(&cr.load, defaults.load, &f("load"), false);
        let (max_load, max_ok) = self.load(&cr.max_load, defaults.max_load, &f("max_load"), true);
        ok &= load_ok && max_ok;
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
        let (Some(return_timeout), Some(gate_timeout), true) = (return_timeout, gate_timeout, ok)
        else {
            return None;
        };
        let cluster = Cluster {
            id,
            kind,
            tenant: cr.tenant.as_ref().map(|t| t.get_ref().clone()),
            members: members?,
            budget,
            load,
            max_load,
            allow_outage: cr.allow_outage,
            replicas: replicas.unwrap_or(None),
            return_timeout,
            gate_timeout,
        };
        Some((cluster, duration))
    }

    /// A cluster's `load` or `max_load` (else the default), and whether it is valid.
    fn load(
        &mut self,
        l: &Option<Spanned<f64>>,
        default: f64,
        field: &str,
        max: bool,
    ) -> (f64, bool) {
        match l {
            Some(l) => (*l.get_ref(), self.fraction(l, field, max)),
            None => (default, true),
        }
    }

    /// A cluster's members: listed in `members` or chosen by `selector` (one of them).
    fn members(
        &mut self,
        c: &Spanned<RawCluster>,
        id: &str,
        f: &dyn Fn(&str) -> String,
        t: &HostTable,
    ) -> Option<Vec<HostIx>> {
        let cr = c.get_ref();
        match (&cr.members, &cr.selector) {
            (Some(_), Some(sel)) => {
                self.c.err_help(
                    sel.span(),
                    f("selector"),
                    format!("cluster `{id}` has both `members` and `selector`"),
                    "use one of them",
                );
                None
            }
            (None, None) => {
                self.c.err_help(
                    c.span().start..c.span().start + 11,
                    f("members"),
                    format!("cluster `{id}` has no `members` and no `selector`"),
                    "list member host ids in `members`, or select them with `selector = { tags = [...] }`",
                );
                None
            }
            (Some(list), None) => self.listed_members(list, id, f, t),
            (None, Some(sel)) => {
                let members = self.select(sel, &f("selector"), t);
                if members.is_empty() && self.c.errs.is_empty() {
                    self.c.err_help(
                        sel.span(),
                        f("selector"),
                        format!("the selector of cluster `{id}` matches no host"),
                        "check the tags, region and zone it asks for",
                    );
                    return None;
                }
                Some(members)
            }
        }
    }

    /// `members = [...]`: every id a host of the fleet, none twice, the list not empty.
    fn listed_members(
        &mut self,
        list: &Spanned<Vec<S>>,
        id: &str,
        f: &dyn Fn(&str) -> String,
        t: &HostTable,
    ) -> Option<Vec<HostIx>> {
        let mut ok = true;
        let mut members = Vec::new();
        let mut seen = HashSet::new();
        for (j, m) in list.get_ref().iter().enumerate() {
            let field = f(&format!("members[{j}]"));
            match t.host_ix.get(m.get_ref()) {
                Some(&h) if seen.insert(h) => members.push(h),
                Some(_) => {
                    let msg = format!("host `{}` is listed twice in cluster `{id}`", m.get_ref());
                    self.c.err(m.span(), field, msg);
                    ok = false;
                }
                None => {
                    let help = suggest(m.get_ref(), t.host_ix.keys())
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| "every member must be a host of the fleet".into());
                    let msg = format!("cluster `{id}` names unknown host `{}`", m.get_ref());
                    self.c.err_help(m.span(), field, msg, help);
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
        ok.then_some(members)
    }

    /// A cluster's budget (`max_unavailable` nodes or `max_unavailable_zones`, default
    /// one node), and whether it is valid.
    fn budget(&mut self, cr: &RawCluster, id: &str, f: &dyn Fn(&str) -> String) -> (Budget, bool) {
        let count = |v: &Spanned<i64>| (*v.get_ref()).clamp(1, u32::MAX as i64) as u32;
        let invalid = |v: &Spanned<i64>| *v.get_ref() < 1 || *v.get_ref() > u32::MAX as i64;
        match (&cr.max_unavailable, &cr.max_unavailable_zones) {
            (Some(_), Some(z)) => {
                self.c.err_help(
                    z.span(),
                    f("max_unavailable_zones"),
                    format!("cluster `{id}` sets both max_unavailable and max_unavailable_zones"),
                    "a budget is counted either in nodes or in zones",
                );
                (Budget::Nodes(1), false)
            }
            (Some(n), None) => {
                if invalid(n) {
                    self.c.err_help(
                        n.span(),
                        f("max_unavailable"),
                        format!("budget must be at least 1, got {}", n.get_ref()),
                        "a cluster that may lose no node cannot be rebooted; remove it from the maintenance scope instead",
                    );
                }
                (Budget::Nodes(count(n)), !invalid(n))
            }
            (None, Some(z)) => {
                if invalid(z) {
                    self.c.err(
                        z.span(),
                        f("max_unavailable_zones"),
                        format!("zone budget must be at least 1, got {}", z.get_ref()),
                    );
                }
                (Budget::Zones(count(z)), !invalid(z))
            }
            (None, None) => (Budget::Nodes(1), true),
        }
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
}
