//! `[maintenance]`: what is done, when, in which order of regions, with which limits
//! and deadlines, and its `[[maintenance.window]]`s expanded into intervals.

use super::*;

/// The highest `[maintenance] effort`: at 1,000 a 100,000-host plan takes tens of
/// seconds; more would only wait longer.
const MAX_EFFORT: i64 = 1_000;

/// `maintenance.<field>`.
fn mf(field: &str) -> String {
    format!("maintenance.{field}")
}

impl Validator<'_> {
    /// The maintenance (defaults when the file has no `[maintenance]`); sets each host's
    /// `in_scope` and `deadline`.
    pub(super) fn maintenance(
        &mut self,
        raw: Option<&Spanned<RawMaintenance>>,
        opts: &LoadOptions,
        t: &mut HostTable,
    ) -> Option<Maintenance> {
        let empty = RawMaintenance::default();
        let m = raw.map(|r| r.get_ref()).unwrap_or(&empty);
        let start = m
            .start
            .as_ref()
            .map_or(Some(opts.now), |s| self.time(s, &mf("start")));
        let notice_lead = self.notice_lead(m);
        let horizon_len = match &m.horizon {
            Some(d) => self.positive_duration(d, &mf("horizon")),
            None => Some(30 * 86400),
        };
        // errors are reported; the load fails, so the fallback is never used
        let action = self
            .action(&action::RawAction::of(m))
            .unwrap_or(Action::Reboot);
        let region_mode = self.region_mode(m);
        let on_missing = self.on_missing(m);
        let max_concurrent = self.concurrency(&m.max_concurrent, "max_concurrent");
        let max_concurrent_per_region =
            self.concurrency(&m.max_concurrent_per_region, "max_concurrent_per_region");
        let effort = self.effort(m);
        self.scope(m, t);
        let region_order = self.region_order(m, t);
        self.deadlines(m, t);

        let (start, notice_lead, horizon_len) = (start?, notice_lead?, horizon_len?);
        let horizon = start
            .saturating_add(notice_lead)
            .saturating_add(horizon_len);
        let windows = self.windows(m, t, start, horizon);
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
            windows,
            horizon,
            effort,
        })
    }

    /// `effort`: the planner's improvement effort, 0 to [`MAX_EFFORT`] (default: the
    /// planner's own).
    fn effort(&mut self, m: &RawMaintenance) -> Option<u32> {
        let v = m.effort.as_ref()?;
        let e = *v.get_ref();
        if !(0..=MAX_EFFORT).contains(&e) {
            self.c.err_help(
                v.span(),
                mf("effort"),
                format!("effort must be 0 to {MAX_EFFORT}, got {e}"),
                "0 plans by list scheduling alone; each unit allows up to 200 more passes (docs/planner.md)",
            );
            return None;
        }
        Some(e as u32)
    }

    /// `notice_lead` (default one hour), never negative.
    fn notice_lead(&mut self, m: &RawMaintenance) -> Option<i64> {
        let Some(d) = &m.notice_lead else {
            return Some(3600);
        };
        let v = self.duration(d, &mf("notice_lead"));
        if let Some(x) = v
            && x < 0
        {
            self.c.err(
                d.span(),
                mf("notice_lead"),
                "notice lead time cannot be negative",
            );
        }
        v
    }

    /// `region_mode`: `serial` (default) or `parallel`.
    fn region_mode(&mut self, m: &RawMaintenance) -> RegionMode {
        let Some(s) = m.region_mode.as_ref() else {
            return RegionMode::Serial;
        };
        match s.get_ref().as_str() {
            "serial" => RegionMode::Serial,
            "parallel" => RegionMode::Parallel,
            other => {
                self.c.err_help(
                    s.span(),
                    mf("region_mode"),
                    format!("unknown region mode `{other}`"),
                    "use `serial` or `parallel`",
                );
                RegionMode::Serial
            }
        }
    }

    /// `on_missing`: `pause` (default), `replace` or `continue`.
    fn on_missing(&mut self, m: &RawMaintenance) -> OnMissing {
        let Some(s) = m.on_missing.as_ref() else {
            return OnMissing::Pause;
        };
        OnMissing::parse(s.get_ref()).unwrap_or_else(|| {
            self.c.err_help(
                s.span(),
                mf("on_missing"),
                format!("unknown on_missing policy `{}`", s.get_ref()),
                "use `pause`, `replace` or `continue`",
            );
            OnMissing::Pause
        })
    }

    /// `max_concurrent` or `max_concurrent_per_region`: at least 1 when set.
    fn concurrency(&mut self, v: &Option<Spanned<i64>>, name: &str) -> Option<u32> {
        let v = v.as_ref()?;
        if *v.get_ref() < 1 || *v.get_ref() > u32::MAX as i64 {
            self.c.err(
                v.span(),
                mf(name),
                format!("{name} must be at least 1, got {}", v.get_ref()),
            );
            None
        } else {
            Some(*v.get_ref() as u32)
        }
    }

    /// `hosts`: the maintenance's scope (every host when not set).
    fn scope(&mut self, m: &RawMaintenance, t: &mut HostTable) {
        let Some(sel) = &m.hosts else {
            return;
        };
        let scoped: HashSet<HostIx> = self.select(sel, &mf("hosts"), t).into_iter().collect();
        if scoped.is_empty() && self.c.errs.is_empty() {
            self.c
                .err(sel.span(), mf("hosts"), "the maintenance selects no host");
        }
        for (i, h) in t.hosts.iter_mut().enumerate() {
            h.in_scope = scoped.contains(&(i as HostIx));
        }
    }

    /// `regions`: the order regions are done in, naming every region with hosts in
    /// scope once (default: the order regions first appear in).
    fn region_order(&mut self, m: &RawMaintenance, t: &HostTable) -> Vec<RegionIx> {
        let Some(list) = &m.regions else {
            return (0..t.regions.len() as RegionIx).collect();
        };
        let mut order: Vec<RegionIx> = Vec::new();
        for (j, r) in list.iter().enumerate() {
            let field = mf(&format!("regions[{j}]"));
            match t.region_ix.get(r.get_ref()) {
                Some(&x) if order.contains(&x) => {
                    let msg = format!("region `{}` is listed twice", r.get_ref());
                    self.c.err(r.span(), field, msg);
                }
                Some(&x) => order.push(x),
                None => {
                    let help = suggest(r.get_ref(), t.region_ix.keys())
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("known regions: {}", t.regions.join(", ")));
                    let msg = format!("region `{}` has no hosts", r.get_ref());
                    self.c.err_help(r.span(), field, msg, help);
                }
            }
        }
        let listed: HashSet<RegionIx> = order.iter().copied().collect();
        let mut missing: Vec<&str> = Vec::new();
        for h in t.hosts.iter().filter(|h| h.in_scope) {
            let name = t.regions[h.region as usize].as_str();
            if !listed.contains(&h.region) && !missing.contains(&name) {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            let span = list.first().map(|x| x.span()).unwrap_or(0..0);
            self.c.err_help(
                span,
                mf("regions"),
                format!(
                    "regions with hosts in scope are missing from the order: {}",
                    missing.join(", ")
                ),
                "list every region, or narrow maintenance.hosts",
            );
        }
        order
    }

    /// `deadline` and `region_deadlines` (the earlier one wins) onto every host.
    fn deadlines(&mut self, m: &RawMaintenance, t: &mut HostTable) {
        let deadline = m
            .deadline
            .as_ref()
            .and_then(|d| self.time(d, &mf("deadline")));
        let mut region_deadline: Vec<Option<i64>> = vec![deadline; t.regions.len()];
        for (k, v) in m.region_deadlines.iter().flatten() {
            let field = mf(&format!("region_deadlines.{}", k.get_ref()));
            match t.region_ix.get(k.get_ref()) {
                Some(&r) => {
                    if let Some(time) = self.time(v, &field) {
                        let d = &mut region_deadline[r as usize];
                        *d = Some(d.map_or(time, |x| x.min(time)));
                    }
                }
                None => self
                    .c
                    .err(k.span(), field, format!("unknown region `{}`", k.get_ref())),
            }
        }
        for h in t.hosts.iter_mut() {
            h.deadline = region_deadline[h.region as usize];
        }
    }

    /// The windows of each region (`None`: no window, always open), merged.
    fn windows(
        &mut self,
        m: &RawMaintenance,
        t: &HostTable,
        start: i64,
        horizon: i64,
    ) -> Vec<Option<Vec<Interval>>> {
        let mut per_region: Vec<Option<Vec<Interval>>> = vec![None; t.regions.len()];
        for (i, w) in m.window.iter().enumerate() {
            let field = mf(&format!("window[{i}]"));
            let Some(intervals) = self.window(w, &field, start, horizon) else {
                continue;
            };
            let wr = w.get_ref();
            let mut targets: Vec<RegionIx> = Vec::new();
            for r in &wr.regions {
                match t.region_ix.get(r.get_ref()) {
                    Some(&x) => targets.push(x),
                    None => self.c.err(
                        r.span(),
                        format!("{field}.regions"),
                        format!("unknown region `{}`", r.get_ref()),
                    ),
                }
            }
            if wr.regions.is_empty() {
                targets = (0..t.regions.len() as RegionIx).collect();
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
        per_region
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
            (None, Some(s)) => self.dated_window(wr, s, field, start, horizon),
            (Some(c), None) => self.cron_window(wr, c, field, start, horizon),
        }
    }

    /// A window given by `start` and `end`, checked to open during the maintenance.
    fn dated_window(
        &mut self,
        wr: &RawWindow,
        s: &Spanned<toml::Value>,
        field: &str,
        start: i64,
        horizon: i64,
    ) -> Option<Vec<Interval>> {
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

    /// A window given by `cron`, `duration` and `timezone`: its openings from the
    /// maintenance start to the horizon (at least one).
    fn cron_window(
        &mut self,
        wr: &RawWindow,
        c: &S,
        field: &str,
        start: i64,
        horizon: i64,
    ) -> Option<Vec<Interval>> {
        let Some(dur) = &wr.duration else {
            self.c.err(
                c.span(),
                format!("{field}.duration"),
                "a cron window needs a `duration`",
            );
            return None;
        };
        let len = self.positive_duration(dur, &format!("{field}.duration"))?;
        let tz = self.time_zone(wr, c, field)?;
        let cron: croner::Cron = match c.get_ref().parse() {
            Ok(x) => x,
            Err(e) => {
                self.c.err_help(c.span(), format!("{field}.cron"), format!("invalid cron expression `{}`: {e}", c.get_ref()), "five fields: minute hour day-of-month month day-of-week, e.g. \"0 22 * * 1-5\"");
                return None;
            }
        };
        let from = jiff::Timestamp::from_second(start.saturating_sub(len))
            .ok()?
            .to_zoned(tz);
        let mut out = self.cron_openings(&cron, from, len, horizon, c, field)?;
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

    /// A cron window's `timezone` (default UTC).
    fn time_zone(&mut self, wr: &RawWindow, c: &S, field: &str) -> Option<jiff::tz::TimeZone> {
        let tz_name = wr
            .timezone
            .as_ref()
            .map(|t| t.get_ref().as_str())
            .unwrap_or("UTC");
        match jiff::tz::TimeZone::get(tz_name) {
            Ok(tz) => Some(tz),
            Err(e) => {
                let span = wr.timezone.as_ref().map(|t| t.span()).unwrap_or(c.span());
                self.c.err(
                    span,
                    format!("{field}.timezone"),
                    format!("unknown time zone `{tz_name}`: {e}"),
                );
                None
            }
        }
    }

    /// Every opening of `cron` from `from` until the horizon, each `len` seconds long;
    /// more than 50,000 is an error.
    fn cron_openings(
        &mut self,
        cron: &croner::Cron,
        from: jiff::Zoned,
        len: i64,
        horizon: i64,
        c: &S,
        field: &str,
    ) -> Option<Vec<Interval>> {
        let mut out = Vec::new();
        let mut cur = from;
        let mut inclusive = true;
        while let Ok(next) = cron.find_next_occurrence(&cur, inclusive) {
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
        Some(out)
    }
}
