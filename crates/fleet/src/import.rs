//! Host import from Ansible inventories (INI and YAML) and CSV files.
//!
//! Both parsers are written for untrusted input: they never panic, they collect
//! every error they can find (each one names the file, the 1-based line and the
//! field), and they return `Err` with the whole list if there was any error.
//!
//! # CSV
//!
//! A header row is required. Columns are matched case-insensitively and may come
//! in any order: `id` (required; `host` and `hostname` are aliases), `address`,
//! `region`, `zone`, `provider`, `tags` (separated by `;` or whitespace) and
//! `duration` (`90s`, `20m`, `1h30m`, `PT1H`; must be positive). Cells are
//! trimmed, empty optional cells become `None`, blank lines and lines starting
//! with `#` are skipped. A leading UTF-8 byte order mark is ignored. Duplicate
//! host ids are not reported here: the fleet loader reports them for all hosts.
//!
//! # Ansible inventories
//!
//! [`parse_ansible`] reads the INI and the YAML inventory formats (it decides
//! which from the first line that is not blank or a comment: YAML if it starts
//! with `---`, `%` or `{`, ends with `:`, or has `: ` before any `=`; INI
//! otherwise, including when it is a `[section]`) and follows Ansible's
//! documented semantics:
//!
//! * INI: `[group]` (or `[group:hosts]`) sections of host lines
//!   `name key=value ...` (shell-like quoting, `#` starts a comment),
//!   `[group:vars]` sections of `key=value` lines (values are taken verbatim, as
//!   Ansible does, apart from one pair of surrounding quotes), and
//!   `[group:children]` sections listing child groups. Hosts before the first
//!   section are in `ungrouped`. Like Ansible, a group named in `:children` or
//!   given a `:vars` section must be defined by a `[group]` or
//!   `[group:children]` section somewhere in the file.
//! * YAML: top-level groups (usually just `all`), each a mapping with `hosts`
//!   (host name -> variables or null), `vars` and `children` (nested groups,
//!   recursively). Anchors, aliases and `<<` merge keys work. Unlike Ansible,
//!   which only warns, any other key in a group is an error (it is nearly always
//!   a host written without `hosts:`, which Ansible would silently drop).
//! * Host patterns expand ranges in both formats: numeric `web[1:3]`,
//!   zero-padded `web[01:10]`, stepped `web[01:10:2]`, alphabetic `db-[a:c]`,
//!   and several ranges in one name. A `:port` suffix (`web1:2222`,
//!   `[2001:db8::1]:22`) is accepted and dropped.
//! * Groups are nested through `children`; every group without a parent is a
//!   child of `all`. A group that is its own ancestor is an error.
//! * Variable precedence is Ansible's: `all` vars, then the vars of every group
//!   the host is in, shallowest first (the depth of a group is its longest
//!   distance from `all`; groups at the same depth are ordered by
//!   `ansible_group_priority`, then by name, later wins), then host vars. A host
//!   defined several times is one host: its groups are merged, later host vars
//!   win, and its `line` is the line of its first definition.
//!
//! Mapping of a host's final variables to [`ImportedHost`]: `id` is the inventory
//! host name; `address` is `ansible_host` (or the old `ansible_ssh_host`);
//! `region`, `zone` and `provider` are `rollcall_region`/`region`,
//! `rollcall_zone`/`zone` and `rollcall_provider`/`provider` (the `rollcall_`
//! name wins when both are set, whatever level they come from); `duration` is
//! `rollcall_duration`; `tags` are all groups the host is in, directly or through
//! `children`, except `all` and `ungrouped`, plus the comma-separated
//! `rollcall_tags` variable (a YAML list works too), sorted and deduplicated.
//! Empty strings count as unset.
//!
//! Not supported: Jinja templating in values (taken literally), `host_vars/` and
//! `group_vars/` directories, dynamic inventory plugins and scripts, and
//! several YAML documents in one file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::Ipv6Addr;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use crate::error::{ConfigError, SourceFile};
use rollcall_core::model::parse_duration;

/// One host read from an inventory or CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedHost {
    pub id: String,
    pub address: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub provider: Option<String>,
    pub tags: Vec<String>,
    /// Per-host duration override, seconds.
    pub duration: Option<i64>,
    /// 1-based line where the host is defined in its file.
    pub line: usize,
}

const SPLIT_HELP: &str =
    "split the hosts over several inventories, each imported by its own [[import]]";
const DURATION_HELP: &str = "write a duration like \"90s\", \"20m\", \"1h30m\" or \"PT1H\"";

/// A host pattern may expand to at most this many hosts.
const MAX_RANGE_HOSTS: usize = 100_000;
/// Most host definitions an inventory may make, counting every host a range expands
/// to, once per group it is listed in, plus one per host variable given with it. A
/// 1 KB inventory of ranges once defined 3 million hosts (30 s, 5.6 GB); a million
/// hosts with an address each is 2 million.
const MAX_HOST_DEFINITIONS: usize = 3_000_000;
/// Most group memberships, variables and tags resolved for all hosts together (a host
/// in a chain of a thousand groups has a thousand tags).
const MAX_RESOLVED: usize = 20_000_000;
/// Deepest YAML nesting accepted (keeps recursion and drops shallow).
const MAX_YAML_DEPTH: usize = 100;
/// Most YAML nodes accepted, counting the copies made by aliases.
const MAX_YAML_NODES: usize = 2_000_000;
/// A copied scalar counts one node more per this many bytes of its text, so that
/// aliases cannot copy long strings millions of times (a 4 KB inventory once took
/// 4.8 GB that way).
const YAML_BYTES_PER_NODE: usize = 16;

/// Collects located errors, dropping exact repeats (a bad group variable is
/// seen once per host of the group).
struct Sink<'a> {
    src: &'a SourceFile,
    errs: Vec<ConfigError>,
    seen: HashSet<(usize, String, String)>,
}

impl<'a> Sink<'a> {
    fn new(src: &'a SourceFile) -> Self {
        Sink {
            src,
            errs: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn push(&mut self, line: usize, field: String, message: String, help: Option<String>) {
        let line = line.max(1);
        if !self.seen.insert((line, field.clone(), message.clone())) {
            return;
        }
        let mut e = ConfigError::at_line(self.src, line, field, message);
        if let Some(h) = help {
            e = e.with_help(h);
        }
        self.errs.push(e);
    }

    fn err(&mut self, line: usize, field: impl Into<String>, message: impl Into<String>) {
        self.push(line, field.into(), message.into(), None);
    }

    fn err_help(
        &mut self,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(line, field.into(), message.into(), Some(help.into()));
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<ConfigError>> {
        if self.errs.is_empty() {
            Ok(value)
        } else {
            Err(self.errs)
        }
    }
}

fn positive_duration(s: &str) -> Result<i64, String> {
    let d = parse_duration(s)?;
    if d <= 0 {
        return Err(format!("duration must be positive, got `{}`", s.trim()));
    }
    Ok(d)
}

fn u64_line(line: u64) -> usize {
    usize::try_from(line).unwrap_or(usize::MAX)
}

/// The 1-based line a CSV record really starts on. The csv crate reports the
/// position where it started reading, which is before any empty or comment
/// lines it skipped on the way to the record.
fn csv_record_line(text: &str, pos: &csv::Position) -> usize {
    let mut line = u64_line(pos.line());
    let mut off = usize::try_from(pos.byte()).unwrap_or(usize::MAX);
    while let Some(rest) = text.get(off..) {
        if rest.starts_with('\n') {
            off += 1;
            line = line.saturating_add(1);
        } else if rest.starts_with('\r') {
            off += 1;
        } else if rest.starts_with('#') {
            match rest.find('\n') {
                Some(i) => {
                    off += i + 1;
                    line = line.saturating_add(1);
                }
                None => break,
            }
        } else {
            break;
        }
    }
    line
}

// ---------------------------------------------------------------------------
// CSV

const CSV_KNOWN: &str =
    "known columns: id (or host, hostname), address, region, zone, provider, tags, duration";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Col {
    Id,
    Address,
    Region,
    Zone,
    Provider,
    Tags,
    Duration,
}

fn csv_column(name: &str) -> Option<Col> {
    Some(match name.to_ascii_lowercase().as_str() {
        "id" | "host" | "hostname" => Col::Id,
        "address" => Col::Address,
        "region" => Col::Region,
        "zone" => Col::Zone,
        "provider" => Col::Provider,
        "tags" => Col::Tags,
        "duration" => Col::Duration,
        _ => return None,
    })
}

/// Tags in a CSV cell: separated by `;` or whitespace, duplicates dropped,
/// order kept.
fn split_csv_tags(cell: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for t in cell.split(|c: char| c == ';' || c.is_whitespace()) {
        if !t.is_empty() && !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    tags
}

/// Read the header row: the column of each field (`None` for a bad one).
fn csv_header(record: &csv::StringRecord, line: usize, sink: &mut Sink) -> Vec<Option<Col>> {
    let mut cols = Vec::with_capacity(record.len());
    let mut seen: HashMap<Col, String> = HashMap::new();
    for (i, name) in record.iter().enumerate() {
        if name.is_empty() {
            sink.err_help(
                line,
                format!("column {}", i + 1),
                format!("column {} of the header has no name", i + 1),
                CSV_KNOWN,
            );
            cols.push(None);
            continue;
        }
        match csv_column(name) {
            Some(c) => {
                if let Some(prev) = seen.get(&c) {
                    sink.err_help(
                        line,
                        name,
                        format!("duplicate column `{name}` (same as `{prev}`)"),
                        "each column may appear only once",
                    );
                    cols.push(None);
                } else {
                    seen.insert(c, name.to_string());
                    cols.push(Some(c));
                }
            }
            None => {
                sink.err_help(line, name, format!("unknown column `{name}`"), CSV_KNOWN);
                cols.push(None);
            }
        }
    }
    if !seen.contains_key(&Col::Id) {
        sink.err_help(
            line,
            "id",
            "the header has no `id` column",
            "add an `id` (or `host`, `hostname`) column naming each host",
        );
    }
    cols
}

/// One CSV row as a host, under the header's columns `cols`; `None` (reported) when
/// it has the wrong number of fields, no id or a bad duration.
fn csv_row(
    cols: &[Option<Col>],
    record: &csv::StringRecord,
    line: usize,
    sink: &mut Sink,
) -> Option<ImportedHost> {
    if record.len() != cols.len() {
        sink.err_help(
            line,
            "row",
            format!(
                "this row has {} field{} but the header has {} column{}",
                record.len(),
                if record.len() == 1 { "" } else { "s" },
                cols.len(),
                if cols.len() == 1 { "" } else { "s" },
            ),
            "give every row one value per header column (leave a cell empty to skip it) and quote values that contain commas",
        );
        return None;
    }
    let mut host = ImportedHost {
        id: String::new(),
        address: None,
        region: None,
        zone: None,
        provider: None,
        tags: Vec::new(),
        duration: None,
        line,
    };
    let mut ok = true;
    for (col, cell) in cols.iter().zip(record.iter()) {
        let Some(col) = col else { continue };
        let opt = (!cell.is_empty()).then(|| cell.to_string());
        match col {
            Col::Id => host.id = cell.to_string(),
            Col::Address => host.address = opt,
            Col::Region => host.region = opt,
            Col::Zone => host.zone = opt,
            Col::Provider => host.provider = opt,
            Col::Tags => host.tags = split_csv_tags(cell),
            Col::Duration => {
                if !cell.is_empty() {
                    match positive_duration(cell) {
                        Ok(d) => host.duration = Some(d),
                        Err(m) => {
                            sink.err_help(line, "duration", m, DURATION_HELP);
                            ok = false;
                        }
                    }
                }
            }
        }
    }
    if host.id.is_empty() {
        sink.err_help(
            line,
            "id",
            "empty host id",
            "every row needs the host's name in the `id` column",
        );
        ok = false;
    }
    ok.then_some(host)
}

/// Parse a CSV host list. See the module documentation for the format.
pub fn parse_csv(src: &SourceFile) -> Result<Vec<ImportedHost>, Vec<ConfigError>> {
    let mut sink = Sink::new(src);
    let text = src.text.strip_prefix('\u{feff}').unwrap_or(&src.text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut header: Option<Vec<Option<Col>>> = None;
    let mut hosts = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let pos_before = reader.position().clone();
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = csv_record_line(text, e.position().unwrap_or(&pos_before));
                sink.err(line, "row", format!("cannot read this CSV row: {e}"));
                if matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                ) {
                    continue;
                }
                break;
            }
        }
        let line = csv_record_line(text, record.position().unwrap_or(&pos_before));
        // A line of only whitespace is one empty field: skip it like a blank line.
        if record.len() <= 1 && record.get(0).is_none_or(str::is_empty) {
            continue;
        }
        let Some(cols) = header.as_ref() else {
            header = Some(csv_header(&record, line, &mut sink));
            continue;
        };
        if !cols.contains(&Some(Col::Id)) {
            continue;
        }
        if let Some(host) = csv_row(cols, &record, line, &mut sink) {
            hosts.push(host);
        }
    }
    if header.is_none() {
        sink.err_help(
            1,
            "id",
            "the CSV file has no header row",
            "start the file with a header such as `id,address,region,zone,provider,tags,duration`",
        );
    }
    sink.finish(hosts)
}

// ---------------------------------------------------------------------------
// Ansible: the inventory model shared by the INI and YAML readers

/// A variable's value, as far as rollcall cares.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Str(String),
    /// A YAML list of scalars.
    List(Vec<String>),
    /// Anything else (mapping, nested list); the name of its kind.
    Other(&'static str),
}

impl Value {
    /// What a copy of this value costs, in host definitions: one, plus one per list
    /// item, plus one per 64 bytes of text (see [`MAX_HOST_DEFINITIONS`]).
    fn weight(&self) -> usize {
        match self {
            Value::Str(s) => 1 + s.len() / 64,
            Value::List(items) => {
                1 + items.len() + items.iter().map(String::len).sum::<usize>() / 64
            }
            Value::Null | Value::Other(_) => 1,
        }
    }
}

#[derive(Debug, Clone)]
struct Var {
    value: Value,
    line: usize,
    /// Field path for errors, e.g. `hosts.web1.rollcall_duration`.
    field: String,
}

#[derive(Debug, Clone)]
struct Edge {
    child: String,
    line: usize,
    field: String,
}

#[derive(Debug, Default)]
struct Group {
    vars: BTreeMap<String, Var>,
    children: Vec<Edge>,
}

#[derive(Debug)]
struct HostDef {
    name: String,
    line: usize,
    vars: BTreeMap<String, Var>,
    groups: BTreeSet<String>,
}

#[derive(Debug)]
struct Inventory {
    groups: BTreeMap<String, Group>,
    hosts: Vec<HostDef>,
    host_ix: HashMap<String, usize>,
    /// Host definitions so far (see [`MAX_HOST_DEFINITIONS`]).
    definitions: usize,
}

impl Inventory {
    fn new() -> Self {
        let mut inv = Inventory {
            groups: BTreeMap::new(),
            hosts: Vec::new(),
            host_ix: HashMap::new(),
            definitions: 0,
        };
        inv.group("all");
        inv.group("ungrouped");
        inv
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    fn add_child(&mut self, parent: &str, child: &str, line: usize, field: String) {
        self.group(child);
        let g = self.group(parent);
        if !g.children.iter().any(|e| e.child == child) {
            g.children.push(Edge {
                child: child.to_string(),
                line,
                field,
            });
        }
    }

    /// Count `hosts` definitions, each with variables of `vars_weight` (the sum of
    /// their [`Value::weight`]s), against [`MAX_HOST_DEFINITIONS`]. `Err(Some(why))`
    /// when they go over it, `Err(None)` for every definition after that (the error
    /// is reported once).
    fn define(&mut self, hosts: usize, vars_weight: usize) -> Result<(), Option<String>> {
        if self.definitions > MAX_HOST_DEFINITIONS {
            return Err(None);
        }
        let n = hosts.saturating_mul(vars_weight.saturating_add(1));
        self.definitions = self.definitions.saturating_add(n);
        if self.definitions > MAX_HOST_DEFINITIONS {
            return Err(Some(format!(
                "the inventory defines more than {MAX_HOST_DEFINITIONS} hosts by here \
                 (counting every host of a range, once per group, plus its variables), \
                 the limit for one inventory"
            )));
        }
        Ok(())
    }

    fn add_host(&mut self, name: &str, line: usize, group: &str, vars: Vec<(String, Var)>) {
        self.group(group);
        let ix = match self.host_ix.get(name) {
            Some(&ix) => ix,
            None => {
                self.hosts.push(HostDef {
                    name: name.to_string(),
                    line,
                    vars: BTreeMap::new(),
                    groups: BTreeSet::new(),
                });
                let ix = self.hosts.len() - 1;
                self.host_ix.insert(name.to_string(), ix);
                ix
            }
        };
        if let Some(h) = self.hosts.get_mut(ix) {
            h.groups.insert(group.to_string());
            h.vars.extend(vars);
        }
    }
}

/// Split `host:port` (or `[v6]:port`, `[v6]`) and return the host part. Colons
/// inside `[...]` ranges do not count.
fn strip_port(pattern: &str) -> &str {
    if let Some(rest) = pattern.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let inner = &rest[..end];
            let after = &rest[end + 1..];
            let port_ok = after.is_empty()
                || after
                    .strip_prefix(':')
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if port_ok && inner.parse::<Ipv6Addr>().is_ok() {
                return inner;
            }
        }
    }
    let mut depth = 0usize;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    if let [i] = colons[..] {
        let port = &pattern[i + 1..];
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return &pattern[..i];
        }
    }
    pattern
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The values of one `[begin:end(:step)]` range body.
fn expand_range(body: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = body.split(':').collect();
    let (beg, end, step) = match parts[..] {
        [b, e] => (b, e, "1"),
        [b, e, s] => (b, e, s),
        _ => {
            return Err(format!(
                "host range `[{body}]` must be [begin:end] or [begin:end:step]"
            ));
        }
    };
    let beg = if beg.is_empty() { "0" } else { beg };
    if end.is_empty() {
        return Err(format!("host range `[{body}]` has no end value"));
    }
    let step: usize = match step.parse() {
        Ok(s) if s > 0 => s,
        _ => {
            return Err(format!(
                "host range `[{body}]` has an invalid step `{step}`"
            ));
        }
    };
    let letter = |s: &str| -> Option<usize> {
        match s.as_bytes() {
            [b] => LETTERS.iter().position(|l| l == b),
            _ => None,
        }
    };
    if let (Some(ib), Some(ie)) = (letter(beg), letter(end)) {
        if ib > ie {
            return Err(format!("host range `[{body}]` has begin after end"));
        }
        let out = LETTERS
            .get(ib..=ie)
            .unwrap_or_default()
            .iter()
            .step_by(step)
            .map(|&b| char::from(b).to_string())
            .collect();
        return Ok(out);
    }
    let number = |s: &str| -> Option<u64> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (Some(b), Some(e)) = (number(beg), number(end)) else {
        return Err(format!(
            "host range `[{body}]` must go between two numbers or two single letters"
        ));
    };
    let width = if beg.len() > 1 && beg.starts_with('0') {
        if beg.len() != end.len() {
            return Err(format!(
                "host range `[{body}]` is zero-padded, so begin and end must have the same number of digits"
            ));
        }
        beg.len()
    } else {
        0
    };
    if b > e {
        return Err(format!("host range `[{body}]` has begin after end"));
    }
    let count = (e - b) / u64::try_from(step).unwrap_or(u64::MAX) + 1;
    if count > MAX_RANGE_HOSTS as u64 {
        return Err(format!(
            "host range `[{body}]` expands to {count} hosts, more than {MAX_RANGE_HOSTS}"
        ));
    }
    Ok((b..=e)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

/// Expand an inventory host pattern (ranges, optional port) into host names.
/// Errors are `(message, help)`.
fn expand_host_pattern(pattern: &str) -> Result<Vec<String>, (String, String)> {
    let range_help = || {
        "write ranges like web[01:10].example.com, db-[a:f] or web[1:9:2]; other `[` `]` are not allowed in host names".to_string()
    };
    let host = strip_port(pattern);
    if host.is_empty() {
        return Err((
            format!("empty host name in `{pattern}`"),
            "write the host's inventory name first".into(),
        ));
    }
    // Split into literal text and ranges, then take the product in order.
    let mut names = vec![String::new()];
    let mut rest = host;
    while !rest.is_empty() {
        let (lit, range) = match rest.find(['[', ']']) {
            None => (rest, None),
            Some(i) if rest[i..].starts_with(']') => {
                return Err((
                    format!("unexpected `]` in host name `{pattern}`"),
                    range_help(),
                ));
            }
            Some(i) => {
                let after = &rest[i + 1..];
                let Some(close) = after.find(']') else {
                    return Err((
                        format!("unclosed `[` in host name `{pattern}`"),
                        range_help(),
                    ));
                };
                (&rest[..i], Some((&after[..close], &after[close + 1..])))
            }
        };
        for n in &mut names {
            n.push_str(lit);
        }
        match range {
            None => rest = "",
            Some((body, after)) => {
                if body.contains('[') {
                    return Err((format!("nested `[` in host name `{pattern}`"), range_help()));
                }
                let values = expand_range(body).map_err(|m| (m, range_help()))?;
                if names.len().saturating_mul(values.len()) > MAX_RANGE_HOSTS {
                    return Err((
                        format!(
                            "host pattern `{pattern}` expands to more than {MAX_RANGE_HOSTS} hosts"
                        ),
                        range_help(),
                    ));
                }
                names = names
                    .iter()
                    .flat_map(|n| values.iter().map(move |v| format!("{n}{v}")))
                    .collect();
                rest = after;
            }
        }
    }
    names.retain(|n| !n.is_empty());
    if names.is_empty() {
        return Err((
            format!("host pattern `{pattern}` gives no host names"),
            range_help(),
        ));
    }
    Ok(names)
}

/// The group graph of an inventory, resolved: groups by index, their parents with
/// cycles broken, depth below `all` and priority; what variable precedence needs.
struct GroupGraph<'i> {
    names: Vec<&'i str>,
    groups: Vec<&'i Group>,
    ix: HashMap<&'i str, usize>,
    all: usize,
    ungrouped: usize,
    parents: Vec<Vec<usize>>,
    depth: Vec<usize>,
    priority: Vec<i64>,
}

/// Child edges by group: (child, line, field).
type Children<'i> = Vec<Vec<(usize, usize, &'i str)>>;

/// Turn the parsed inventory into hosts: nest groups, apply variable
/// precedence, map variables to [`ImportedHost`] fields.
fn resolve(inv: &Inventory, sink: &mut Sink) -> Vec<ImportedHost> {
    let Some(graph) = GroupGraph::new(inv, sink) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(inv.hosts.len());
    let mut resolved = 0usize;
    for host in &inv.hosts {
        let order = graph.host_groups(host);
        resolved = resolved.saturating_add(graph.weight(&order));
        if resolved > MAX_RESOLVED {
            sink.err_help(
                host.line,
                format!("hosts.{}", host.name),
                format!(
                    "the inventory's hosts are in more than {MAX_RESOLVED} groups and group \
                     variables (and list items) in all by this host, the limit for one inventory"
                ),
                SPLIT_HELP,
            );
            break;
        }
        out.push(graph.host(host, &order, sink));
    }
    out
}

impl<'i> GroupGraph<'i> {
    /// `None` when the inventory lacks `all` or `ungrouped` (it never does).
    fn new(inv: &'i Inventory, sink: &mut Sink) -> Option<Self> {
        let names: Vec<&str> = inv.groups.keys().map(String::as_str).collect();
        let groups: Vec<&Group> = inv.groups.values().collect();
        let ix: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let (&all, &ungrouped) = (ix.get("all")?, ix.get("ungrouped")?);
        let children = child_edges(&groups, &ix, all);
        let removed = break_cycles(&children, &names, all, sink);
        let (parents, depth) = parents_and_depth(&children, &removed, all);
        let priority = priorities(&groups, sink);
        Some(GroupGraph {
            names,
            groups,
            ix,
            all,
            ungrouped,
            parents,
            depth,
            priority,
        })
    }

    /// Every group the host is in, directly or through children, in the order their
    /// variables apply (shallow first, then by priority, then by name).
    fn host_groups(&self, host: &HostDef) -> Vec<usize> {
        let mut member: BTreeSet<usize> = BTreeSet::new();
        let mut todo: Vec<usize> = host
            .groups
            .iter()
            .filter_map(|g| self.ix.get(g.as_str()).copied())
            .collect();
        if todo.is_empty() {
            todo.push(self.ungrouped);
        }
        todo.push(self.all);
        while let Some(g) = todo.pop() {
            if member.insert(g) {
                todo.extend(self.parents.get(g).map(Vec::as_slice).unwrap_or_default());
            }
        }
        let mut order: Vec<usize> = member.into_iter().collect();
        order.sort_by_key(|&g| {
            (
                self.depth.get(g).copied().unwrap_or(0),
                self.priority.get(g).copied().unwrap_or(1),
                self.names.get(g).copied().unwrap_or(""),
            )
        });
        order
    }

    /// What resolving a host in these groups costs: the groups and their variables.
    fn weight(&self, order: &[usize]) -> usize {
        order.len().saturating_add(
            order
                .iter()
                .filter_map(|&g| self.groups.get(g))
                .flat_map(|g| g.vars.values())
                .map(|v| v.value.weight())
                .sum(),
        )
    }

    /// One host from its variables (its groups' in `order`, then its own).
    fn host(&self, host: &HostDef, order: &[usize], sink: &mut Sink) -> ImportedHost {
        let mut vars: HashMap<&str, &Var> = HashMap::new();
        for &g in order {
            if let Some(group) = self.groups.get(g) {
                vars.extend(group.vars.iter().map(|(k, v)| (k.as_str(), v)));
            }
        }
        vars.extend(host.vars.iter().map(|(k, v)| (k.as_str(), v)));

        let mut text = |key: &str| var_text(&vars, key, sink);
        let address = text("ansible_host").or_else(|| text("ansible_ssh_host"));
        let region = text("rollcall_region").or_else(|| text("region"));
        let zone = text("rollcall_zone").or_else(|| text("zone"));
        let provider = text("rollcall_provider").or_else(|| text("provider"));
        let duration_text = text("rollcall_duration");

        let mut tags: BTreeSet<String> = order
            .iter()
            .filter(|&&g| g != self.all && g != self.ungrouped)
            .filter_map(|&g| self.names.get(g).map(|s| s.to_string()))
            .collect();
        if let Some(var) = vars.get("rollcall_tags") {
            var_tags(var, &mut tags, sink);
        }
        let duration = duration_text.and_then(|d| match positive_duration(&d) {
            Ok(secs) => Some(secs),
            Err(m) => {
                if let Some(var) = vars.get("rollcall_duration") {
                    sink.err_help(var.line, var.field.clone(), m, DURATION_HELP);
                }
                None
            }
        });
        ImportedHost {
            id: host.name.clone(),
            address,
            region,
            zone,
            provider,
            tags: tags.into_iter().collect(),
            duration,
            line: host.line,
        }
    }
}

/// Child edges of every group; groups without a parent hang off `all`.
fn child_edges<'i>(groups: &[&'i Group], ix: &HashMap<&str, usize>, all: usize) -> Children<'i> {
    let n = groups.len();
    let mut children: Children = vec![Vec::new(); n];
    let mut has_parent = vec![false; n];
    for (gi, g) in groups.iter().enumerate() {
        for e in &g.children {
            if let (Some(&ci), Some(list)) = (ix.get(e.child.as_str()), children.get_mut(gi)) {
                list.push((ci, e.line, e.field.as_str()));
                if let Some(p) = has_parent.get_mut(ci) {
                    *p = true;
                }
            }
        }
    }
    for (i, p) in has_parent.iter().enumerate() {
        if i != all
            && !p
            && let Some(list) = children.get_mut(all)
        {
            list.push((i, 0, ""));
        }
    }
    children
}

/// Find cycles (depth-first, iterative), report each, and give the edges that close
/// them, to be dropped.
fn break_cycles(
    children: &Children,
    names: &[&str],
    all: usize,
    sink: &mut Sink,
) -> HashSet<(usize, usize)> {
    let n = children.len();
    let mut removed: HashSet<(usize, usize)> = HashSet::new();
    let mut color = vec![0u8; n]; // 0 unseen, 1 on the stack, 2 done
    for root in std::iter::once(all).chain(0..n) {
        if color.get(root) != Some(&0) {
            continue;
        }
        if let Some(c) = color.get_mut(root) {
            *c = 1;
        }
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            top.1 += 1;
            let Some(&(child, line, field)) = children.get(node).and_then(|l| l.get(next)) else {
                if let Some(c) = color.get_mut(node) {
                    *c = 2;
                }
                stack.pop();
                continue;
            };
            match color.get(child) {
                Some(0) => {
                    if let Some(c) = color.get_mut(child) {
                        *c = 1;
                    }
                    stack.push((child, 0));
                }
                Some(1) => {
                    removed.insert((node, child));
                    let (p, c) = (
                        names.get(node).unwrap_or(&""),
                        names.get(child).unwrap_or(&""),
                    );
                    sink.err_help(
                        line,
                        field,
                        format!("making `{c}` a child of `{p}` creates a cycle: `{c}` is already an ancestor of `{p}`"),
                        format!("remove `{c}` from the children of `{p}`"),
                    );
                }
                _ => {}
            }
        }
    }
    removed
}

/// Parents and depth (longest distance from `all`) over the DAG left once the
/// `removed` edges are dropped.
fn parents_and_depth(
    children: &Children,
    removed: &HashSet<(usize, usize)>,
    all: usize,
) -> (Vec<Vec<usize>>, Vec<usize>) {
    let n = children.len();
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    for (p, list) in children.iter().enumerate() {
        for &(c, _, _) in list {
            if !removed.contains(&(p, c)) {
                if let Some(ps) = parents.get_mut(c) {
                    ps.push(p);
                }
                if let Some(d) = indegree.get_mut(c) {
                    *d += 1;
                }
            }
        }
    }
    let mut depth: Vec<usize> = (0..n).map(|i| usize::from(i != all)).collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indegree.get(i) == Some(&0)).collect();
    while let Some(p) = queue.pop_front() {
        let dp = depth.get(p).copied().unwrap_or(0);
        for &(c, _, _) in children.get(p).map(Vec::as_slice).unwrap_or_default() {
            if removed.contains(&(p, c)) {
                continue;
            }
            if let Some(dc) = depth.get_mut(c) {
                *dc = (*dc).max(dp + 1);
            }
            if let Some(d) = indegree.get_mut(c) {
                *d = d.saturating_sub(1);
                if *d == 0 {
                    queue.push_back(c);
                }
            }
        }
    }
    (parents, depth)
}

/// Every group's `ansible_group_priority` (default 1).
fn priorities(groups: &[&Group], sink: &mut Sink) -> Vec<i64> {
    groups
        .iter()
        .map(
            |g| match g.vars.get("ansible_group_priority").map(|v| (&v.value, v)) {
                Some((Value::Str(s), _)) if s.trim().parse::<i64>().is_ok() => {
                    s.trim().parse().unwrap_or(1)
                }
                Some((Value::Null, _)) | None => 1,
                Some((_, var)) => {
                    sink.err_help(
                        var.line,
                        var.field.clone(),
                        "`ansible_group_priority` must be a whole number",
                        "e.g. ansible_group_priority=10",
                    );
                    1
                }
            },
        )
        .collect()
}

/// A host's variable `key` as text (unset, null or empty: `None`; not a string: an error).
fn var_text(vars: &HashMap<&str, &Var>, key: &str, sink: &mut Sink) -> Option<String> {
    let var = vars.get(key)?;
    match &var.value {
        Value::Null => None,
        Value::Str(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::List(_) => {
            sink.err(
                var.line,
                var.field.clone(),
                format!("`{key}` must be a string, found a list"),
            );
            None
        }
        Value::Other(kind) => {
            sink.err(
                var.line,
                var.field.clone(),
                format!("`{key}` must be a string, found a {kind}"),
            );
            None
        }
    }
}

/// `rollcall_tags` (comma-separated text or a list) added to `tags`.
fn var_tags(var: &Var, tags: &mut BTreeSet<String>, sink: &mut Sink) {
    let trimmed = |t: &str| Some(t.trim()).filter(|t| !t.is_empty()).map(String::from);
    match &var.value {
        Value::Null => {}
        Value::Str(s) => tags.extend(s.split(',').filter_map(trimmed)),
        Value::List(items) => tags.extend(items.iter().filter_map(|t| trimmed(t))),
        Value::Other(kind) => sink.err_help(
            var.line,
            var.field.clone(),
            format!("`rollcall_tags` must be a comma-separated string, found a {kind}"),
            "e.g. rollcall_tags=\"web,canary\"",
        ),
    }
}

/// Parse an Ansible inventory, INI or YAML (see the module documentation).
pub fn parse_ansible(src: &SourceFile) -> Result<Vec<ImportedHost>, Vec<ConfigError>> {
    let mut sink = Sink::new(src);
    let inv = if looks_like_yaml(&src.text) {
        yaml_inventory(src, &mut sink)
    } else {
        ini_inventory(src, &mut sink)
    };
    let hosts = match inv {
        Some(inv) => resolve(&inv, &mut sink),
        None => Vec::new(),
    };
    sink.finish(hosts)
}

/// Whether an inventory is YAML: its first line that is not blank or a comment
/// starts with `---`, `%` or `{`, ends with `:`, or has `: ` before any `=`.
/// Anything else (including a `[section]` first line) is INI.
fn looks_like_yaml(text: &str) -> bool {
    for raw in text.lines() {
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            return false;
        }
        if line.starts_with("---") || line.starts_with('%') || line.starts_with('{') {
            return true;
        }
        let code = match line.find(" #") {
            Some(i) => line[..i].trim_end(),
            None => line,
        };
        if code.ends_with(':') {
            return true;
        }
        return match (code.find(": "), code.find('=')) {
            (Some(c), Some(e)) => c < e,
            (Some(_), None) => true,
            _ => false,
        };
    }
    false
}

// ---------------------------------------------------------------------------
// Ansible INI

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
    /// After a broken section header: ignore lines until the next header.
    Skip,
}

/// Split a host line like a POSIX shell would (as Ansible does with `shlex`):
/// whitespace separates, quotes group, `\` escapes, `#` starts a comment.
fn shell_split(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_token {
                    tokens.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            '#' => break,
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("no closing `'` quote".into()),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("no closing `\"` quote".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("no closing `\"` quote".into()),
                    }
                }
            }
            '\\' => {
                in_token = true;
                match chars.next() {
                    Some(ch) => cur.push(ch),
                    None => return Err("`\\` at the end of the line".into()),
                }
            }
            c => {
                in_token = true;
                cur.push(c);
            }
        }
    }
    if in_token {
        tokens.push(cur);
    }
    Ok(tokens)
}

/// `[name]`, `[name:vars]`, `[name:children]`, `[name:hosts]` -> (name, kind).
/// Errors are `(message, help)`.
fn parse_section_header(line: &str) -> Result<(&str, &str), (String, String)> {
    let header_help = "section headers look like [web], [web:vars] or [web:children]".to_string();
    let Some(close) = line.find(']') else {
        return Err((format!("unterminated section header `{line}`"), header_help));
    };
    let body = line.get(1..close).unwrap_or("");
    let rest = line.get(close + 1..).unwrap_or("").trim_start();
    if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with(';') {
        return Err((
            format!("unexpected text `{rest}` after section header"),
            header_help,
        ));
    }
    let (name, kind) = body.split_once(':').unwrap_or((body, "hosts"));
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '[') {
        return Err((
            format!("invalid group name `{name}` in section header"),
            "group names are not empty and have no spaces, e.g. [web_servers]".into(),
        ));
    }
    match kind {
        "hosts" | "vars" | "children" => Ok((name, kind)),
        _ => Err((
            format!("unknown section type `{kind}` in `[{body}]`"),
            header_help,
        )),
    }
}

/// A line starting with `[` that is a host line with a bracketed IPv6 address.
fn is_ipv6_host_line(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    first.starts_with('[') && strip_port(first) != first
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v.get(1..v.len() - 1).unwrap_or(v);
        }
    }
    v
}

fn ini_inventory(src: &SourceFile, sink: &mut Sink) -> Option<Inventory> {
    let mut inv = Inventory::new();
    let mut section = Section::Hosts("ungrouped".to_string());
    let mut declared: HashSet<String> =
        ["all", "ungrouped"].iter().map(|s| s.to_string()).collect();
    let mut vars_sections: Vec<(String, usize)> = Vec::new();
    let mut child_refs: Vec<(String, String, usize)> = Vec::new();

    for (i, raw) in src.text.split('\n').enumerate() {
        let ln = i + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[')
            && !(matches!(section, Section::Hosts(_)) && is_ipv6_host_line(line))
        {
            match parse_section_header(line) {
                Ok((name, kind)) => {
                    inv.group(name);
                    section = match kind {
                        "vars" => {
                            vars_sections.push((name.to_string(), ln));
                            Section::Vars(name.to_string())
                        }
                        "children" => {
                            declared.insert(name.to_string());
                            Section::Children(name.to_string())
                        }
                        _ => {
                            declared.insert(name.to_string());
                            Section::Hosts(name.to_string())
                        }
                    };
                }
                Err((msg, help)) => {
                    sink.err_help(ln, "section", msg, help);
                    section = Section::Skip;
                }
            }
            continue;
        }
        match &section {
            Section::Skip => {}
            Section::Hosts(group) => ini_host_line(&mut inv, sink, group, line, ln),
            Section::Vars(group) => ini_var_line(&mut inv, sink, group, line, ln),
            Section::Children(group) => {
                if let Some(name) = ini_child_line(sink, group, line, ln) {
                    child_refs.push((group.clone(), name.to_string(), ln));
                }
            }
        }
    }

    for (parent, child, ln) in child_refs {
        let field = format!("{parent}:children");
        if declared.contains(&child) {
            inv.add_child(&parent, &child, ln, field);
        } else {
            sink.err_help(
                ln,
                field,
                format!("[{parent}:children] names `{child}`, which is not a defined group"),
                format!("define it with a [{child}] section (it may be empty), or fix the name"),
            );
        }
    }
    for (group, ln) in vars_sections {
        if !declared.contains(&group) {
            sink.err_help(
                ln,
                format!("{group}:vars"),
                format!("[{group}:vars] is for group `{group}`, which is never defined"),
                format!(
                    "define it with a [{group}] or [{group}:children] section, or fix the name"
                ),
            );
        }
    }
    Some(inv)
}

/// A `key=value` line of a `[group:vars]` section.
fn ini_var_line(inv: &mut Inventory, sink: &mut Sink, group: &str, line: &str, ln: usize) {
    let field = format!("{group}:vars");
    let Some((k, v)) = line.split_once('=') else {
        sink.err_help(
            ln,
            field,
            format!("expected `key=value`, got `{line}`"),
            format!("a [{group}:vars] section holds lines like rollcall_region=eu-west"),
        );
        return;
    };
    let k = k.trim();
    if k.is_empty() {
        sink.err_help(
            ln,
            field,
            "variable name missing before `=`",
            "write key=value",
        );
        return;
    }
    let var = Var {
        value: Value::Str(unquote(v.trim()).to_string()),
        line: ln,
        field: format!("{field}.{k}"),
    };
    inv.group(group).vars.insert(k.to_string(), var);
}

/// The group a line of a `[group:children]` section names.
fn ini_child_line<'l>(sink: &mut Sink, group: &str, line: &'l str, ln: usize) -> Option<&'l str> {
    let name = line
        .split(|c: char| c.is_whitespace() || c == '#')
        .next()
        .unwrap_or("");
    let rest = line.get(name.len()..).unwrap_or("").trim_start();
    if name.is_empty()
        || name.contains([':', '[', ']', '='])
        || !(rest.is_empty() || rest.starts_with('#'))
    {
        sink.err_help(
            ln,
            format!("{group}:children"),
            format!("expected a group name, got `{line}`"),
            format!("a [{group}:children] section lists one child group name per line"),
        );
        return None;
    }
    Some(name)
}

fn ini_host_line(inv: &mut Inventory, sink: &mut Sink, group: &str, line: &str, ln: usize) {
    let field = format!("{group}.hosts");
    let tokens = match shell_split(line) {
        Ok(t) => t,
        Err(m) => {
            sink.err_help(
                ln,
                field,
                format!("cannot split host line: {m}"),
                "close the quote or escape it with `\\`",
            );
            return;
        }
    };
    let Some((pattern, assignments)) = tokens.split_first() else {
        return;
    };
    if pattern.is_empty() || pattern.contains('=') {
        sink.err_help(
            ln,
            field,
            format!("host line `{line}` has no host name"),
            format!(
                "host lines look like `web1 ansible_host=10.0.0.1`; variables for the whole group go in a [{group}:vars] section"
            ),
        );
        return;
    }
    let hosts = match expand_host_pattern(pattern) {
        Ok(h) => h,
        Err((m, help)) => {
            sink.err_help(ln, format!("hosts.{pattern}"), m, help);
            return;
        }
    };
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut ok = true;
    for t in assignments {
        match t.split_once('=') {
            Some((k, v)) if !k.is_empty() => vars.push((k.to_string(), v.to_string())),
            _ => {
                sink.err_help(
                    ln,
                    format!("hosts.{pattern}"),
                    format!("expected `key=value` after the host name, got `{t}`"),
                    "write host variables as key=value, quoting values with spaces: key=\"a b\"",
                );
                ok = false;
            }
        }
    }
    if !ok {
        return;
    }
    let weight = vars.iter().map(|(_, v)| 1 + v.len() / 64).sum();
    if let Err(e) = inv.define(hosts.len(), weight) {
        if let Some(m) = e {
            sink.err_help(ln, format!("hosts.{pattern}"), m, SPLIT_HELP);
        }
        return;
    }
    for h in hosts {
        let vars = vars
            .iter()
            .map(|(k, v)| {
                let var = Var {
                    value: Value::Str(v.clone()),
                    line: ln,
                    field: format!("hosts.{h}.{k}"),
                };
                (k.clone(), var)
            })
            .collect();
        inv.add_host(&h, ln, group, vars);
    }
}

// ---------------------------------------------------------------------------
// Ansible YAML

/// A YAML node with the 1-based line it starts on.
#[derive(Debug, Clone)]
enum YNode {
    Null {
        line: usize,
    },
    Str {
        value: String,
        line: usize,
    },
    Seq {
        items: Vec<YNode>,
        line: usize,
    },
    Map {
        entries: Vec<(YNode, YNode)>,
        line: usize,
    },
}

impl YNode {
    fn line(&self) -> usize {
        match self {
            YNode::Null { line }
            | YNode::Str { line, .. }
            | YNode::Seq { line, .. }
            | YNode::Map { line, .. } => *line,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            YNode::Null { .. } => "null",
            YNode::Str { .. } => "string",
            YNode::Seq { .. } => "list",
            YNode::Map { .. } => "mapping",
        }
    }

    /// Number of nodes, for the alias expansion budget (a scalar's text counts too:
    /// see [`YAML_BYTES_PER_NODE`]).
    fn size(&self) -> usize {
        match self {
            YNode::Null { .. } => 1,
            YNode::Str { value, .. } => 1 + value.len() / YAML_BYTES_PER_NODE,
            YNode::Seq { items, .. } => items.iter().fold(1, |n, i| n.saturating_add(i.size())),
            YNode::Map { entries, .. } => entries.iter().fold(1, |n, (k, v)| {
                n.saturating_add(k.size()).saturating_add(v.size())
            }),
        }
    }
}

enum Frame {
    Seq {
        items: Vec<YNode>,
        line: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(YNode, YNode)>,
        key: Option<YNode>,
        line: usize,
        anchor: usize,
    },
}

/// A YAML error: line, field path, message.
type YamlError = (usize, String, String);

/// The field path of the node being built, for syntax errors.
fn frame_path(stack: &[Frame]) -> String {
    let mut path = String::new();
    for f in stack {
        match f {
            Frame::Seq { items, .. } => path.push_str(&format!("[{}]", items.len())),
            Frame::Map { key, .. } => {
                if let Some(YNode::Str { value, .. }) = key {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(value);
                }
            }
        }
    }
    if path.is_empty() {
        "(document)".to_string()
    } else {
        path
    }
}

/// Build a tree from yaml-rust2's event parser (its `YamlLoader` drops
/// positions). `Marker::line()` is 1-based. Only the first document is read.
fn build_yaml(text: &str) -> Result<Option<YNode>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = YamlBuilder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        budget: MAX_YAML_NODES,
        root: None,
    };
    let mut documents = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            (
                e.marker().line(),
                frame_path(&b.stack),
                e.info().to_string(),
            )
        })?;
        let line = mark.line().max(1);
        let node = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err((
                        line,
                        "(document)".into(),
                        "only one YAML document is allowed in an inventory".into(),
                    ));
                }
                continue;
            }
            Event::Alias(id) => b.alias(id, line)?,
            Event::Scalar(value, style, anchor, _tag) => b.scalar(value, style, anchor, line),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let seq = matches!(event, Event::SequenceStart(..));
                b.open(seq, anchor, line)?;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => b.close(line)?,
        };
        b.attach(node, line)?;
    }
    Ok(b.root)
}

/// The YAML tree under construction: open sequences and mappings, complete anchors,
/// and how many nodes may still be made (aliases count their copies).
struct YamlBuilder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, YNode>,
    budget: usize,
    root: Option<YNode>,
}

impl YamlBuilder {
    /// A copy of the anchored node, charged to the budget.
    fn alias(&mut self, id: usize, line: usize) -> Result<YNode, YamlError> {
        let Some(node) = self.anchors.get(&id) else {
            return Err((
                line,
                frame_path(&self.stack),
                "alias to an anchor that is not complete yet".into(),
            ));
        };
        let size = node.size();
        if size > self.budget {
            return Err((
                line,
                frame_path(&self.stack),
                format!(
                    "aliases expand to too large a document: more than {MAX_YAML_NODES} \
                     nodes, the limit for an inventory (copied text counts a node per \
                     {YAML_BYTES_PER_NODE} bytes)"
                ),
            ));
        }
        self.budget -= size;
        Ok(node.clone())
    }

    fn scalar(&mut self, value: String, style: TScalarStyle, anchor: usize, line: usize) -> YNode {
        let node = if style == TScalarStyle::Plain
            && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL")
        {
            YNode::Null { line }
        } else {
            YNode::Str { value, line }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        node
    }

    /// A sequence (`seq`) or mapping starts.
    fn open(&mut self, seq: bool, anchor: usize, line: usize) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_YAML_DEPTH {
            return Err((
                line,
                frame_path(&self.stack),
                format!("nested more than {MAX_YAML_DEPTH} levels deep"),
            ));
        }
        self.stack.push(if seq {
            Frame::Seq {
                items: Vec::new(),
                line,
                anchor,
            }
        } else {
            Frame::Map {
                entries: Vec::new(),
                key: None,
                line,
                anchor,
            }
        });
        Ok(())
    }

    /// The innermost sequence or mapping ends: its node.
    fn close(&mut self, line: usize) -> Result<YNode, YamlError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq {
                items,
                line,
                anchor,
            }) => (YNode::Seq { items, line }, anchor),
            Some(Frame::Map {
                entries,
                line,
                anchor,
                ..
            }) => (YNode::Map { entries, line }, anchor),
            None => {
                return Err((
                    line,
                    "(document)".into(),
                    "unbalanced YAML structure".into(),
                ));
            }
        };
        if anchor > 0 {
            let size = node.size();
            if size > self.budget {
                return Err((
                    line,
                    frame_path(&self.stack),
                    "document is too large".into(),
                ));
            }
            self.budget -= size;
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    /// A complete node into its parent (or as the document's root), charged to the budget.
    fn attach(&mut self, node: YNode, line: usize) -> Result<(), YamlError> {
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            (
                line,
                frame_path(&self.stack),
                "document is too large".to_string(),
            )
        })?;
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// A mapping's entries with `<<` merge keys expanded (explicit keys win, then
/// earlier merged mappings).
fn map_entries(entries: &[(YNode, YNode)]) -> Vec<(&YNode, &YNode)> {
    let mut out: Vec<(&YNode, &YNode)> = Vec::new();
    let mut merged: Vec<(&YNode, &YNode)> = Vec::new();
    for (k, v) in entries {
        let is_merge = matches!(k, YNode::Str { value, .. } if value == "<<");
        match v {
            YNode::Map { entries: m, .. } if is_merge => merged.extend(map_entries(m)),
            YNode::Seq { items, .. }
                if is_merge && items.iter().all(|i| matches!(i, YNode::Map { .. })) =>
            {
                for item in items {
                    if let YNode::Map { entries: m, .. } = item {
                        merged.extend(map_entries(m));
                    }
                }
            }
            _ => out.push((k, v)),
        }
    }
    if !merged.is_empty() {
        let key = |n: &YNode| match n {
            YNode::Str { value, .. } => Some(value.clone()),
            _ => None,
        };
        let mut seen: HashSet<String> = out.iter().filter_map(|(k, _)| key(k)).collect();
        for (k, v) in merged {
            let fresh = key(k).is_none_or(|name| seen.insert(name));
            if fresh {
                out.push((k, v));
            }
        }
    }
    out
}

fn yaml_value(node: &YNode) -> Value {
    match node {
        YNode::Null { .. } => Value::Null,
        YNode::Str { value, .. } => Value::Str(value.clone()),
        YNode::Seq { items, .. } => {
            let mut list = Vec::with_capacity(items.len());
            for i in items {
                match i {
                    YNode::Str { value, .. } => list.push(value.clone()),
                    YNode::Null { .. } => {}
                    _ => return Value::Other("nested list"),
                }
            }
            Value::List(list)
        }
        YNode::Map { .. } => Value::Other("mapping"),
    }
}

struct YamlReader<'s, 'a> {
    inv: Inventory,
    sink: &'s mut Sink<'a>,
}

impl YamlReader<'_, '_> {
    /// A mapping key as a string, or an error.
    fn key(&mut self, k: &YNode, path: &str) -> Option<String> {
        match k {
            YNode::Str { value, .. } if !value.is_empty() => Some(value.clone()),
            YNode::Str { line, .. } | YNode::Null { line } => {
                self.sink.err(*line, path, "empty key");
                None
            }
            other => {
                self.sink.err(
                    other.line(),
                    path,
                    format!("a key must be a name, found a {}", other.kind()),
                );
                None
            }
        }
    }

    fn group(&mut self, name: &str, node: &YNode, path: &str) {
        self.inv.group(name);
        match node {
            YNode::Null { .. } => {}
            YNode::Map { entries, .. } => {
                for (k, v) in map_entries(entries) {
                    let Some(key) = self.key(k, path) else {
                        continue;
                    };
                    let kpath = format!("{path}.{key}");
                    match key.as_str() {
                        "hosts" => self.hosts(name, v, &kpath),
                        "vars" => self.group_vars(name, v, &kpath),
                        "children" => self.children(name, v, &kpath),
                        _ => self.sink.err_help(
                            k.line(),
                            kpath,
                            format!("unexpected key `{key}` in group `{name}`"),
                            "a group has only `hosts`, `vars` and `children`; list hosts under `hosts:`",
                        ),
                    }
                }
            }
            other => self.sink.err_help(
                other.line(),
                path,
                format!("group `{name}` must be a mapping, found a {}", other.kind()),
                "a group is a mapping with `hosts`, `vars` and/or `children`",
            ),
        }
    }

    fn hosts(&mut self, group: &str, node: &YNode, path: &str) {
        match node {
            YNode::Null { .. } => {}
            YNode::Str { value, line } => self.host(group, value, *line, None, path),
            YNode::Map { entries, .. } => {
                for (hk, hv) in map_entries(entries) {
                    if let Some(pattern) = self.key(hk, path) {
                        self.host(group, &pattern, hk.line(), Some(hv), path);
                    }
                }
            }
            other => self.sink.err_help(
                other.line(),
                path,
                format!("`hosts` must be a mapping of host names, found a {}", other.kind()),
                "write hosts as a mapping: `hosts:` then `  web1:` and `  web2:` on their own lines (the values are their variables)",
            ),
        }
    }

    fn host(&mut self, group: &str, pattern: &str, line: usize, vars: Option<&YNode>, path: &str) {
        let names = match expand_host_pattern(pattern) {
            Ok(n) => n,
            Err((m, help)) => {
                self.sink
                    .err_help(line, format!("{path}.{pattern}"), m, help);
                return;
            }
        };
        let mut host_vars: Vec<(String, Value, usize)> = Vec::new();
        match vars {
            None | Some(YNode::Null { .. }) => {}
            Some(YNode::Map { entries, .. }) => {
                let vpath = format!("{path}.{pattern}");
                for (k, v) in map_entries(entries) {
                    if let Some(key) = self.key(k, &vpath) {
                        host_vars.push((key, yaml_value(v), k.line()));
                    }
                }
            }
            Some(other) => {
                self.sink.err_help(
                    other.line(),
                    format!("{path}.{pattern}"),
                    format!(
                        "the variables of host `{pattern}` must be a mapping, found a {}",
                        other.kind()
                    ),
                    "write `web1:` alone, or followed by indented `key: value` lines",
                );
                return;
            }
        }
        let weight = host_vars.iter().map(|(_, v, _)| v.weight()).sum();
        if let Err(e) = self.inv.define(names.len(), weight) {
            if let Some(m) = e {
                self.sink
                    .err_help(line, format!("{path}.{pattern}"), m, SPLIT_HELP);
            }
            return;
        }
        for h in names {
            let vars = host_vars
                .iter()
                .map(|(k, value, l)| {
                    let var = Var {
                        value: value.clone(),
                        line: *l,
                        field: format!("hosts.{h}.{k}"),
                    };
                    (k.clone(), var)
                })
                .collect();
            self.inv.add_host(&h, line, group, vars);
        }
    }

    fn group_vars(&mut self, group: &str, node: &YNode, path: &str) {
        match node {
            YNode::Null { .. } => {}
            YNode::Map { entries, .. } => {
                for (k, v) in map_entries(entries) {
                    if let Some(key) = self.key(k, path) {
                        let var = Var {
                            value: yaml_value(v),
                            line: k.line(),
                            field: format!("{path}.{key}"),
                        };
                        self.inv.group(group).vars.insert(key, var);
                    }
                }
            }
            other => self.sink.err_help(
                other.line(),
                path,
                format!("`vars` must be a mapping, found a {}", other.kind()),
                "write group variables as `key: value` lines under `vars:`",
            ),
        }
    }

    fn children(&mut self, parent: &str, node: &YNode, path: &str) {
        match node {
            YNode::Null { .. } => {}
            YNode::Str { value, line } => {
                self.inv.add_child(parent, value, *line, path.to_string());
                self.group(
                    value,
                    &YNode::Null { line: *line },
                    &format!("{path}.{value}"),
                );
            }
            YNode::Map { entries, .. } => {
                for (ck, cv) in map_entries(entries) {
                    if let Some(child) = self.key(ck, path) {
                        self.inv
                            .add_child(parent, &child, ck.line(), path.to_string());
                        self.group(&child, cv, &format!("{path}.{child}"));
                    }
                }
            }
            other => self.sink.err_help(
                other.line(),
                path,
                format!(
                    "`children` must be a mapping of group names, found a {}",
                    other.kind()
                ),
                "write child groups as a mapping: `children:` then `  web:` with its own hosts",
            ),
        }
    }
}

fn yaml_inventory(src: &SourceFile, sink: &mut Sink) -> Option<Inventory> {
    let text = src.text.as_str();
    // yaml-rust2 is not expected to panic, but it is third-party code fed
    // untrusted input: turn a panic into an error rather than a crash.
    let built = std::panic::catch_unwind(|| build_yaml(text));
    let root = match built {
        Ok(Ok(root)) => root,
        Ok(Err((line, field, msg))) => {
            sink.err_help(
                line,
                field,
                format!("invalid YAML: {msg}"),
                "fix the YAML syntax (indentation, `:` after keys, closed quotes and brackets)",
            );
            return None;
        }
        Err(_) => {
            sink.err(1, "(document)", "the YAML parser failed on this file");
            return None;
        }
    };
    let mut reader = YamlReader {
        inv: Inventory::new(),
        sink,
    };
    match &root {
        None | Some(YNode::Null { .. }) => {}
        Some(YNode::Map { entries, .. }) => {
            for (k, v) in map_entries(entries) {
                if let Some(name) = reader.key(k, "(document)") {
                    reader.group(&name, v, &name);
                }
            }
        }
        Some(other) => reader.sink.err_help(
            other.line(),
            "(document)",
            format!(
                "an inventory must be a mapping of groups, found a {}",
                other.kind()
            ),
            "start with `all:` and list hosts under `hosts:` and groups under `children:`",
        ),
    }
    Some(reader.inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Vec<ImportedHost>, Vec<ConfigError>> {
        parse_csv(&SourceFile::new("hosts.csv", text))
    }

    fn ansible(name: &str, text: &str) -> Result<Vec<ImportedHost>, Vec<ConfigError>> {
        parse_ansible(&SourceFile::new(name, text))
    }

    fn errors(r: Result<Vec<ImportedHost>, Vec<ConfigError>>) -> Vec<String> {
        match r {
            Ok(h) => panic!("expected errors, got {h:#?}"),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn get<'a>(hosts: &'a [ImportedHost], id: &str) -> &'a ImportedHost {
        hosts
            .iter()
            .find(|h| h.id == id)
            .unwrap_or_else(|| panic!("no host {id} in {hosts:#?}"))
    }

    fn tags(h: &ImportedHost) -> Vec<&str> {
        h.tags.iter().map(String::as_str).collect()
    }

    #[test]
    fn csv_happy_path_with_tags_and_duration() {
        let text = "\u{feff}Hostname, Region,zone,TAGS,duration,address,provider\n\
                    web1,eu-west,eu-west-1a,web;canary  blue,20m,10.0.0.1,aws\n\
                    \n\
                    # a comment\n\
                    db1,us-east,,,,,\n\
                    \"odd,name\",eu,z,\"a;a;b\",PT1H30M,,\n";
        let hosts = csv(text).unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(
            hosts[0],
            ImportedHost {
                id: "web1".into(),
                address: Some("10.0.0.1".into()),
                region: Some("eu-west".into()),
                zone: Some("eu-west-1a".into()),
                provider: Some("aws".into()),
                tags: vec!["web".into(), "canary".into(), "blue".into()],
                duration: Some(1200),
                line: 2,
            }
        );
        assert_eq!(
            hosts[1],
            ImportedHost {
                id: "db1".into(),
                address: None,
                region: Some("us-east".into()),
                zone: None,
                provider: None,
                tags: vec![],
                duration: None,
                line: 5,
            }
        );
        assert_eq!(hosts[2].id, "odd,name");
        assert_eq!(tags(&hosts[2]), ["a", "b"]);
        assert_eq!(hosts[2].duration, Some(5400));
        assert_eq!(hosts[2].line, 6);
    }

    #[test]
    fn csv_header_only_is_empty_and_no_header_is_an_error() {
        assert_eq!(csv("id,region\n").unwrap(), vec![]);
        let e = errors(csv(""));
        assert_eq!(e, ["hosts.csv:1:1: id: the CSV file has no header row"]);
        let e = errors(csv("\n\n  \n"));
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn csv_unknown_column() {
        let r = csv("id,region,rack\nh1,eu,3\n");
        let Err(e) = r else {
            panic!("expected an error")
        };
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "hosts.csv:1:1: rack: unknown column `rack`"
        );
        assert_eq!(e[0].line, Some(1));
        let help = e[0].help.as_deref().unwrap_or("");
        assert!(
            help.contains(
                "id (or host, hostname), address, region, zone, provider, tags, duration"
            ),
            "{help}"
        );
    }

    #[test]
    fn csv_missing_id_column_and_empty_id() {
        let e = errors(csv("address,region\n10.0.0.1,eu\n"));
        assert_eq!(e, ["hosts.csv:1:1: id: the header has no `id` column"]);

        let e = errors(csv("id,region\nh1,eu\n,eu\nh3,eu\n  ,us\n"));
        assert_eq!(
            e,
            [
                "hosts.csv:3:1: id: empty host id",
                "hosts.csv:5:1: id: empty host id"
            ]
        );

        let e = errors(csv("id,host\na,b\n"));
        assert_eq!(
            e,
            ["hosts.csv:1:1: host: duplicate column `host` (same as `id`)"]
        );
    }

    #[test]
    fn csv_bad_duration_and_wrong_field_count() {
        let e = errors(csv(
            "id,duration\nh1,20m\nh2,soon\nh3,-5m\nh4\nh5,1m,extra\nh6,\n",
        ));
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e[0].starts_with("hosts.csv:3:1: duration: invalid duration `soon`"),
            "{}",
            e[0]
        );
        assert_eq!(
            e[1],
            "hosts.csv:4:1: duration: duration must be positive, got `-5m`"
        );
        assert_eq!(
            e[2],
            "hosts.csv:5:1: row: this row has 1 field but the header has 2 columns"
        );
        assert_eq!(
            e[3],
            "hosts.csv:6:1: row: this row has 3 fields but the header has 2 columns"
        );
    }

    #[test]
    fn csv_line_numbers_count_quoted_newlines_blank_and_comment_lines() {
        let hosts = csv("id,tags\nh1,\"a\nb\"\nh2,c\n").unwrap();
        assert_eq!(hosts[0].line, 2);
        assert_eq!(tags(&hosts[0]), ["a", "b"]);
        assert_eq!(hosts[1].line, 4);
        let hosts = csv("\n# c\n\r\nid\n\n\n#x\n#y\nh1\r\n\r\n  \nh2").unwrap();
        assert_eq!(lines(&hosts), [("h1", 9), ("h2", 12)]);
        let e = errors(csv("# hosts\n\nid,duration\n\n# soon\nh1,x\n"));
        assert!(e[0].starts_with("hosts.csv:6:1: duration:"), "{}", e[0]);
    }

    const INI: &str = "\
# fleet inventory
bastion.example.com ansible_host=192.0.2.1

[web]
web[01:03].example.com
web01.example.com rollcall_duration=15m   # slow to boot

[db]
db-[a:b] ansible_host=10.0.1.1 rollcall_zone='us-east-1b'
web02.example.com
web03.example.com rollcall_region=ap-south

[web:vars]
rollcall_region=eu-west
rollcall_zone=\"eu-west-1a\"

[db:vars]
rollcall_region = us-east

[prod:children]
web
db

[prod:vars]
rollcall_region=nowhere
rollcall_provider=hetzner
rollcall_tags=critical, managed

[all:vars]
rollcall_provider=aws
region=fallback
";

    const YAML: &str = "\
# fleet inventory
all:
  hosts:
    bastion.example.com:
      ansible_host: 192.0.2.1
  vars:
    rollcall_provider: aws
    region: fallback
  children:
    prod:
      vars:
        rollcall_region: nowhere
        rollcall_provider: hetzner
        rollcall_tags: critical, managed
      children:
        web:
          hosts:
            web[01:03].example.com:
            web01.example.com:
              rollcall_duration: 15m
          vars:
            rollcall_region: eu-west
            rollcall_zone: \"eu-west-1a\"
        db:
          hosts:
            db-[a:b]:
              ansible_host: 10.0.1.1
              rollcall_zone: 'us-east-1b'
            web02.example.com:
            web03.example.com: {rollcall_region: ap-south}
          vars:
            rollcall_region: us-east
";

    fn check_fleet(hosts: &[ImportedHost]) {
        let ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "bastion.example.com",
                "web01.example.com",
                "web02.example.com",
                "web03.example.com",
                "db-a",
                "db-b"
            ]
        );

        let b = get(hosts, "bastion.example.com");
        assert_eq!(b.address.as_deref(), Some("192.0.2.1"));
        assert_eq!(
            b.region.as_deref(),
            Some("fallback"),
            "plain `region` from all:vars"
        );
        assert_eq!(b.provider.as_deref(), Some("aws"));
        assert!(b.tags.is_empty());
        assert_eq!(b.duration, None);

        // web01: web (depth 2) beats prod (depth 1) beats all; host var duration.
        let w1 = get(hosts, "web01.example.com");
        assert_eq!(w1.region.as_deref(), Some("eu-west"));
        assert_eq!(w1.zone.as_deref(), Some("eu-west-1a"));
        assert_eq!(w1.provider.as_deref(), Some("hetzner"));
        assert_eq!(w1.duration, Some(900));
        assert_eq!(w1.address, None);
        assert_eq!(tags(w1), ["critical", "managed", "prod", "web"]);

        // web02 is in web and db (both depth 2): merged into one host, and for
        // equal depth the later name (web) wins.
        let w2 = get(hosts, "web02.example.com");
        assert_eq!(w2.region.as_deref(), Some("eu-west"));
        assert_eq!(tags(w2), ["critical", "db", "managed", "prod", "web"]);
        assert_eq!(w2.duration, None);

        // A host var beats every group var.
        let w3 = get(hosts, "web03.example.com");
        assert_eq!(w3.region.as_deref(), Some("ap-south"));
        assert_eq!(tags(w3), ["critical", "db", "managed", "prod", "web"]);

        for id in ["db-a", "db-b"] {
            let d = get(hosts, id);
            assert_eq!(d.address.as_deref(), Some("10.0.1.1"));
            assert_eq!(d.region.as_deref(), Some("us-east"));
            assert_eq!(d.zone.as_deref(), Some("us-east-1b"));
            assert_eq!(d.provider.as_deref(), Some("hetzner"));
            assert_eq!(tags(d), ["critical", "db", "managed", "prod"]);
        }
    }

    fn lines(hosts: &[ImportedHost]) -> Vec<(&str, usize)> {
        hosts.iter().map(|h| (h.id.as_str(), h.line)).collect()
    }

    #[test]
    fn ini_groups_vars_children_ranges_precedence() {
        let hosts = ansible("inventory.ini", INI).unwrap();
        check_fleet(&hosts);
        assert_eq!(
            lines(&hosts),
            [
                ("bastion.example.com", 2),
                ("web01.example.com", 5),
                ("web02.example.com", 5),
                ("web03.example.com", 5),
                ("db-a", 9),
                ("db-b", 9)
            ]
        );
    }

    #[test]
    fn yaml_same_inventory_same_hosts_with_lines() {
        let hosts = ansible("inventory.yml", YAML).unwrap();
        check_fleet(&hosts);
        assert_eq!(
            lines(&hosts),
            [
                ("bastion.example.com", 4),
                ("web01.example.com", 18),
                ("web02.example.com", 18),
                ("web03.example.com", 18),
                ("db-a", 26),
                ("db-b", 26)
            ]
        );
        let ini = ansible("inventory.ini", INI).unwrap();
        let strip = |hs: Vec<ImportedHost>| -> Vec<ImportedHost> {
            hs.into_iter()
                .map(|h| ImportedHost { line: 0, ..h })
                .collect()
        };
        assert_eq!(strip(hosts), strip(ini));
    }

    #[test]
    fn yaml_line_of_first_definition_and_extras() {
        let text = "\
---
all:
  children:
    a:
      hosts:
        h1:
        h2: &v
          rollcall_region: eu
    b:
      hosts: h3
      vars:
        <<: *v
        zone: z1
    c:
      hosts:
        h1:
          <<: *v
        h3:
          rollcall_tags: [x, y]
";
        let hosts = ansible("inv.yaml", text).unwrap();
        assert_eq!(lines(&hosts), [("h1", 6), ("h2", 7), ("h3", 10)]);
        let h1 = get(&hosts, "h1");
        assert_eq!(h1.region.as_deref(), Some("eu"));
        assert_eq!(tags(h1), ["a", "c"]);
        let h3 = get(&hosts, "h3");
        assert_eq!(h3.region.as_deref(), Some("eu"));
        assert_eq!(h3.zone.as_deref(), Some("z1"));
        assert_eq!(tags(h3), ["b", "c", "x", "y"]);
    }

    #[test]
    fn detection() {
        assert!(looks_like_yaml("# c\n\nall:\n  hosts:\n"));
        assert!(looks_like_yaml("---\nall: {}\n"));
        assert!(looks_like_yaml("all:   # comment\n"));
        assert!(looks_like_yaml("web: {hosts: {a: }}\n"));
        assert!(!looks_like_yaml("[web]\nh1\n"));
        assert!(!looks_like_yaml("h1 ansible_host=1.2.3.4\n"));
        assert!(!looks_like_yaml("h1 ansible_ssh_common_args='-o A: b'\n"));
        assert!(!looks_like_yaml(""));
        assert_eq!(ansible("empty", "").unwrap(), vec![]);
        assert_eq!(ansible("empty", "---\n").unwrap(), vec![]);
    }

    #[test]
    fn ranges() {
        let ok = |p: &str| expand_host_pattern(p).unwrap();
        assert_eq!(ok("web[1:3]"), ["web1", "web2", "web3"]);
        assert_eq!(ok("web[08:10].x"), ["web08.x", "web09.x", "web10.x"]);
        assert_eq!(ok("w[01:05:2]"), ["w01", "w03", "w05"]);
        assert_eq!(ok("db-[a:c]"), ["db-a", "db-b", "db-c"]);
        assert_eq!(ok("r[1:2]-[a:b]"), ["r1-a", "r1-b", "r2-a", "r2-b"]);
        assert_eq!(ok("h[:1]"), ["h0", "h1"]);
        assert_eq!(ok("web1:2222"), ["web1"]);
        assert_eq!(ok("web[1:2]:22"), ["web1", "web2"]);
        assert_eq!(ok("[2001:db8::1]:22"), ["2001:db8::1"]);
        assert_eq!(ok("2001:db8::1"), ["2001:db8::1"]);
        for bad in [
            "web[1:",
            "web[1]",
            "w]",
            "w[3:1]",
            "w[01:100]",
            "w[1:a]",
            "w[1:2:0]",
            "w[1:]",
            "w[0:99999999]",
            "w[[1:2]]",
            "",
        ] {
            assert!(expand_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ini_malformed_lines_are_located() {
        let text = "\
[web
h0
[db]
ansible_host=10.0.0.1
db1 rollcall_duration=never
db2 flag
db3 x=\"unterminated
db[3:1]
[db:vars]
nokey
[prod:children]
db
nope
[ghost:vars]
a=1
[x:bogus]
[y] junk
";
        let e = errors(ansible("inv.ini", text));
        let expected = [
            "inv.ini:1:1: section: unterminated section header `[web`",
            "inv.ini:4:1: db.hosts: host line `ansible_host=10.0.0.1` has no host name",
            "inv.ini:6:1: hosts.db2: expected `key=value` after the host name, got `flag`",
            "inv.ini:7:1: db.hosts: cannot split host line: no closing `\"` quote",
            "inv.ini:8:1: hosts.db[3:1]: host range `[3:1]` has begin after end",
            "inv.ini:10:1: db:vars: expected `key=value`, got `nokey`",
            "inv.ini:16:1: section: unknown section type `bogus` in `[x:bogus]`",
            "inv.ini:17:1: section: unexpected text `junk` after section header",
            "inv.ini:13:1: prod:children: [prod:children] names `nope`, which is not a defined group",
            "inv.ini:14:1: ghost:vars: [ghost:vars] is for group `ghost`, which is never defined",
        ];
        let mut e = e;
        // the bad duration is found last, when variables are resolved
        let last = e.pop().unwrap_or_default();
        assert!(
            last.starts_with("inv.ini:5:1: hosts.db1.rollcall_duration: invalid duration `never`"),
            "{last}"
        );
        assert_eq!(e, expected);
        let Err(errs) = ansible("inv.ini", text) else {
            unreachable!()
        };
        assert!(
            errs.iter().all(|e| e.help.is_some()),
            "every INI error has a help"
        );
    }

    #[test]
    fn ini_children_cycle_and_bad_group_var() {
        let text = "[a:children]\nb\n[b:children]\na\n[b]\nh1\n[a:vars]\nrollcall_duration=0s\n";
        let e = errors(ansible("inv.ini", text));
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!(
            e[0],
            "inv.ini:4:1: b:children: making `a` a child of `b` creates a cycle: `a` is already an ancestor of `b`"
        );
        assert_eq!(
            e[1],
            "inv.ini:8:1: a:vars.rollcall_duration: duration must be positive, got `0s`"
        );
    }

    #[test]
    fn yaml_malformed_is_located() {
        let e = errors(ansible(
            "inv.yml",
            "all:\n  hosts:\n    h1:\n   bad: [1, 2\n",
        ));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("inv.yml:4:"), "{}", e[0]);
        assert!(e[0].contains("invalid YAML"), "{}", e[0]);

        let e = errors(ansible("inv.yml", "all:\n  hosts:\n    h1: \"open\n"));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("inv.yml:3:") || e[0].starts_with("inv.yml:4:"),
            "{}",
            e[0]
        );

        let text = "\
all:
  hosts:
    - h1
  children:
    web:
      web1:
      hosts:
        w[1:]:
        w2: 7
      vars: [a]
    db: 3
  vars:
    ansible_host: {a: b}
    rollcall_duration: 5
";
        let e = errors(ansible("inv.yml", text));
        assert_eq!(
            e,
            [
                "inv.yml:3:1: all.hosts: `hosts` must be a mapping of host names, found a list",
                "inv.yml:6:1: all.children.web.web1: unexpected key `web1` in group `web`",
                "inv.yml:8:1: all.children.web.hosts.w[1:]: host range `[1:]` has no end value",
                "inv.yml:9:1: all.children.web.hosts.w2: the variables of host `w2` must be a mapping, found a string",
                "inv.yml:10:1: all.children.web.vars: `vars` must be a mapping, found a list",
                "inv.yml:11:1: all.children.db: group `db` must be a mapping, found a string",
            ]
        );
    }

    #[test]
    fn yaml_bad_mapped_vars() {
        let text = "all:\n  vars:\n    ansible_host: {a: b}\n    rollcall_duration: 5\n  hosts:\n    h1:\n";
        let e = errors(ansible("inv.yml", text));
        assert_eq!(e.len(), 2, "{e:#?}");
        assert_eq!(
            e[0],
            "inv.yml:3:1: all.vars.ansible_host: `ansible_host` must be a string, found a mapping"
        );
        assert!(
            e[1].starts_with("inv.yml:4:1: all.vars.rollcall_duration: invalid duration `5`"),
            "{}",
            e[1]
        );
    }

    #[test]
    fn yaml_rejects_second_document_and_alias_bombs() {
        let e = errors(ansible("inv.yml", "all:\n  hosts:\n    a:\n---\nall: {}\n"));
        assert_eq!(
            e,
            [
                "inv.yml:4:1: (document): invalid YAML: only one YAML document is allowed in an inventory"
            ]
        );

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            bomb.push_str(&format!(
                "b{i}: &b{i} [{}]\n",
                vec![
                    if i == 1 {
                        "*a".to_string()
                    } else {
                        format!("*b{}", i - 1)
                    };
                    10
                ]
                .join(", ")
            ));
        }
        let e = errors(ansible("bomb.yml", &bomb));
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("too large"), "{}", e[0]);
    }

    /// Inputs that must produce a result (hosts or errors) without panicking.
    fn mangled() -> Vec<String> {
        let mut v: Vec<String> = [
            "[",
            "]",
            "[]",
            "[:]",
            "[a:]",
            "[:vars]",
            "[a b]",
            "[a]]",
            "[[a]]",
            "a[",
            "a]",
            "a[1:",
            "h[:]",
            "h[a:9]",
            "h[9:1]",
            "h[0:0:0]",
            "h[1:99999999999999999999]",
            "h[1:3:99999999999999999999]",
            "[a:children]\n[b]\n",
            "[a:children]\n\n a b",
            "web ansible_host=\"",
            "web \\",
            "web =",
            "= web",
            "'' a=b",
            "\"\" x=1",
            "[::1]",
            "[::1]:22 a=b",
            "[fe80::1%eth0]",
            ":",
            "::",
            ": :",
            "a: b: c",
            "a:\n  - b",
            "---\n- a\n- b",
            "all: [1,2",
            "all:\n  hosts: 5",
            "all:\n  hosts:\n    ? [a]\n    : b",
            "&a [*a]",
            "a: &x {b: *x}",
            "a: *nope",
            "all:\n  children: [a, b]",
            "all:\n  children: web\n",
            "all:\n  hosts:\n    ~: 1\n",
            "all: &a\n  children:\n    x: *a\n",
            "!!binary: x",
            "%YAML 1.2\n---\na:\n",
            "{a: {hosts: {\"h[1:2]\": {rollcall_tags: [[1]]}}}}",
            "a:\n\tb: c",
            "a: \"\\u00\"",
            "a: 'x\n",
            "\u{feff}all:\n",
            "\u{feff}[web]\nh1\n",
            "ü[1:2] é=ß\n[ö]\n",
            "h1 rollcall_duration=99999999999h",
            "all:\n  vars:\n    ansible_group_priority: x\n",
            "[a]\nh ansible_group_priority=3\n[a:vars]\nansible_group_priority=zz\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(format!("a: {}", "[".repeat(10_000)));
        v.push(format!("a: {}", "{a: ".repeat(5_000)));
        v.push(
            "a:\n".to_string()
                + &(1..300)
                    .map(|i| format!("{}- \n", " ".repeat(i)))
                    .collect::<String>(),
        );
        v.push("[".repeat(10_000));
        v.push("h[1:3][1:3][1:3][1:3][1:3][1:3][1:3][1:3][1:3][1:3][1:3][1:3]".into());
        v.push(
            (0..200)
                .map(|i| format!("[g{i}:children]\ng{}\n", i + 1))
                .collect::<String>(),
        );
        v
    }

    fn truncations(text: &str) -> impl Iterator<Item = &str> {
        (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .map(move |i| &text[..i])
    }

    #[test]
    fn never_panics_on_mangled_input() {
        let csv_text = "id,region,zone,tags,duration\nw1,eu,\"a\nb\",x;y,20m\n\"w2\",eu,,,\n";
        let mut inputs = mangled();
        for t in [INI, YAML, csv_text, "é,ü\n\"ß\",é\n"] {
            inputs.extend(truncations(t).map(String::from));
            // and with one byte dropped or replaced at every position
            for i in (0..t.len()).filter(|&i| t.is_char_boundary(i)) {
                let mut s = t.to_string();
                let c = s.remove(i);
                inputs.push(s.clone());
                for r in [':', '[', '"', '\n', ' ', '='] {
                    if c != r {
                        let mut s2 = s.clone();
                        s2.insert(i, r);
                        inputs.push(s2);
                    }
                }
            }
        }
        for (i, text) in inputs.iter().enumerate() {
            let src = SourceFile::new(format!("in{i}"), text.clone());
            for r in [parse_ansible(&src), parse_csv(&src)] {
                if let Err(errs) = r {
                    assert!(!errs.is_empty());
                    for e in errs {
                        assert!(e.line.is_some(), "no line in {e} for input {text:?}");
                        assert!(!e.field.is_empty(), "no field in {e} for input {text:?}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_input(s in "[\\[\\]:=a-c0-9 #'\"\\-\n\t{},&*!|>~.]{0,80}") {
            let src = SourceFile::new("p", s);
            let _ = parse_ansible(&src);
            let _ = parse_csv(&src);
        }
    }
}
