//! Settings of the real-host drivers (`ssh`, `exec`), read from the fleet file.
//!
//! The fleet loader (`rollcall-fleet`) accepts the tables `[ssh]`, `[exec]`, `[remote]`
//! and each cluster's `gate` table without looking inside; this module validates them
//! (through `rollcall_fleet::spanned`). Errors point at `file:line:col` and the field,
//! like the rest of the fleet file. Relative paths resolve against the fleet file's
//! directory.
//!
//! ```toml
//! [ssh]                      # ssh driver: how to reach hosts
//! user = "root"
//! port = 22
//! identity = "keys/id_ed25519"
//! known_hosts = "known_hosts"   # default ~/.ssh/known_hosts; checking is always on
//! agent = false                 # also try keys from $SSH_AUTH_SOCK
//! agent_socket = "/run/agent.sock"  # the agent's socket instead (implies agent = true)
//! connect_timeout = "10s"
//! [ssh.host.db1]             # per-host overrides: user, port, identity
//! port = 2222
//!
//! [exec]                     # exec driver: run host commands through a local template
//! command = "ip netns exec lab-{host} sh -c {command}"
//!
//! [remote]                   # both drivers: what runs on a host, and timing
//! boot_id_command = "cat /proc/sys/kernel/random/boot_id"
//! reboot_command = "systemctl reboot"
//! services = ["ssh"]            # must be enabled at boot (preflight) and active (verify)
//! restart_command = "systemctl restart {service}"          # action = "restart"
//! service_id_command = "systemctl show -p InvocationID --value {service}"  # its marker
//! backup_age_command = "..."    # prints the age of the last backup in seconds
//! max_backup_age = "26h"
//! unsaved_config_command = "..." # exit 0 and no output: nothing unsaved
//! command_timeout = "30s"
//! [remote.host.db1]
//! services = ["ssh", "postgresql"]
//!
//! [[cluster]]
//! id = "cache"
//! kind = "redis-cluster"
//! gate = { port = 6379 }
//!
//! [[cluster]]
//! id = "search"
//! kind = "opensearch"           # or elasticsearch: the native gate and drain
//! gate = { url = "https://{address}:9200", auth = { user = "rollcall", password_env = "ES_PASSWORD" }, tls_ca = "ca.pem" }
//! ```

use crate::search::{SearchAuth, SearchGate, Secret};
use rollcall_core::{Fleet, Kind};
use rollcall_fleet::error::{ConfigErrors, SourceFile};
use rollcall_fleet::spanned::{self, Checker, S, Spanned};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
struct RawFile {
    ssh: Option<Spanned<RawSsh>>,
    exec: Option<Spanned<RawExec>>,
    remote: Option<Spanned<RawRemote>>,
    #[serde(default)]
    cluster: Vec<RawClusterGate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSshHost {
    user: Option<S>,
    port: Option<Spanned<i64>>,
    identity: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    user: Option<S>,
    port: Option<Spanned<i64>>,
    identity: Option<S>,
    known_hosts: Option<S>,
    agent: Option<bool>,
    agent_socket: Option<S>,
    connect_timeout: Option<S>,
    #[serde(default)]
    host: BTreeMap<S, RawSshHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    command: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteHost {
    services: Option<Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    boot_id_command: Option<S>,
    reboot_command: Option<S>,
    services: Option<Vec<S>>,
    enabled_command: Option<S>,
    active_command: Option<S>,
    restart_command: Option<S>,
    service_id_command: Option<S>,
    backup_age_command: Option<S>,
    max_backup_age: Option<S>,
    unsaved_config_command: Option<S>,
    command_timeout: Option<S>,
    probe_interval: Option<S>,
    gate_interval: Option<S>,
    reboot_grace: Option<S>,
    drain_timeout: Option<S>,
    #[serde(default)]
    host: BTreeMap<S, RawRemoteHost>,
}

#[derive(Debug, Deserialize)]
struct RawClusterGate {
    id: S,
    gate: Option<Spanned<RawGate>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    port: Option<Spanned<i64>>,
    password: Option<S>,
    max_raft_lag: Option<Spanned<i64>>,
    url: Option<S>,
    status: Option<Spanned<i64>>,
    expect: Option<BTreeMap<S, toml::Value>>,
    command: Option<S>,
    drain_command: Option<S>,
    restore_command: Option<S>,
    timeout: Option<S>,
    auth: Option<Spanned<RawAuth>>,
    tls_ca: Option<S>,
    delayed_timeout: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    user: Option<S>,
    password_env: Option<S>,
    api_key_env: Option<S>,
}

/// `[ssh.host.<id>]`: user, port, identity.
pub type HostOverride = (Option<String>, Option<u16>, Option<PathBuf>);

/// How the ssh driver reaches one host.
#[derive(Debug, Clone, PartialEq)]
pub struct SshTarget {
    pub user: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
    /// `None`: `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    pub agent: bool,
    /// The agent's socket; `None`: `$SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Per-host overrides: user, port, identity.
    pub hosts: HashMap<String, HostOverride>,
}

impl SshSettings {
    pub fn target(&self, host: &str) -> SshTarget {
        let o = self.hosts.get(host);
        SshTarget {
            user: o
                .and_then(|o| o.0.clone())
                .unwrap_or_else(|| self.user.clone()),
            port: o.and_then(|o| o.1).unwrap_or(self.port),
            identity: o
                .and_then(|o| o.2.clone())
                .or_else(|| self.identity.clone()),
        }
    }
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            user: "root".into(),
            port: 22,
            identity: None,
            known_hosts: None,
            agent: false,
            agent_socket: None,
            connect_timeout: Duration::from_secs(10),
            hosts: HashMap::new(),
        }
    }
}

/// What runs on a host, and how long things may take.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub boot_id_command: String,
    pub reboot_command: String,
    pub services: Vec<String>,
    /// `{service}` is replaced (shell-quoted). Exit 0 = enabled.
    pub enabled_command: String,
    pub active_command: String,
    /// `action = "restart"`: restarts one service (`{service}`, shell-quoted).
    pub restart_command: String,
    /// `action = "restart"`: prints the id of the service's current run (its marker);
    /// empty output = not running.
    pub service_id_command: String,
    pub backup_age_command: Option<String>,
    pub max_backup_age: Option<i64>,
    pub unsaved_config_command: Option<String>,
    pub command_timeout: Duration,
    pub probe_interval: i64,
    pub gate_interval: i64,
    pub reboot_grace: i64,
    /// How long a drain may wait for the cluster to be healthy and for a failover or
    /// leader move to complete.
    pub drain_timeout: Duration,
    pub host_services: HashMap<String, Vec<String>>,
}

impl RemoteSettings {
    pub fn services_for(&self, host: &str) -> &[String] {
        self.host_services
            .get(host)
            .map(Vec::as_slice)
            .unwrap_or(&self.services)
    }
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            boot_id_command: "cat /proc/sys/kernel/random/boot_id".into(),
            reboot_command: "systemctl reboot".into(),
            services: Vec::new(),
            enabled_command: "systemctl is-enabled {service}".into(),
            active_command: "systemctl is-active {service}".into(),
            restart_command: "systemctl restart {service}".into(),
            service_id_command: "systemctl show -p InvocationID --value {service}".into(),
            backup_age_command: None,
            max_backup_age: None,
            unsaved_config_command: None,
            command_timeout: Duration::from_secs(30),
            probe_interval: 10,
            gate_interval: 10,
            reboot_grace: 300,
            drain_timeout: Duration::from_secs(120),
            host_services: HashMap::new(),
        }
    }
}

/// How a cluster's health is checked and how it is prepared for a member's reboot.
#[derive(Debug, Clone, PartialEq)]
pub enum GateSpec {
    /// `kind = "none"`: nothing to check beyond the host being back.
    None,
    /// Every member's Redis node at `address:port`.
    Redis { port: u16, password: Option<String> },
    /// Every member's etcd client endpoint at `http://address:port`.
    Etcd { port: u16, max_raft_lag: u64 },
    /// GET `url` (`{host}`/`{address}` replaced by the rebooted host's); healthy when the
    /// status matches and every expected JSON field has its value.
    Http {
        url: String,
        status: u16,
        expect: Vec<(String, serde_json::Value)>,
    },
    /// Elasticsearch / OpenSearch: cluster health, allocation drain and restore, rejoin.
    Search(SearchGate),
    /// A local command (`sh -c`); exit 0 = healthy. Optional drain/restore commands.
    Command {
        command: String,
        drain: Option<String>,
        restore: Option<String>,
    },
}

impl GateSpec {
    /// One line saying what this gate checks and what its drain does (`rollcall validate`).
    pub fn describe(&self) -> String {
        match self {
            GateSpec::None => "no gate".into(),
            GateSpec::Redis { port, .. } => format!(
                "redis-cluster gate on every member's port {port} (drain: fail a master over)"
            ),
            GateSpec::Etcd { port, max_raft_lag } => format!(
                "etcd gate on http://{{address}}:{port}, max raft lag {max_raft_lag} (drain: move the leadership)"
            ),
            GateSpec::Search(g) => {
                let auth = match &g.auth {
                    None => "no auth".to_string(),
                    Some(SearchAuth::Basic { user, env, .. }) => {
                        format!("basic auth {user} (password from ${env})")
                    }
                    Some(SearchAuth::ApiKey { env, .. }) => format!("API key from ${env}"),
                };
                let ca = g
                    .tls_ca
                    .as_ref()
                    .map(|(p, _)| format!(", CA {}", p.display()))
                    .unwrap_or_default();
                let delayed = g
                    .delayed_timeout
                    .map(|d| format!(" + delayed_timeout {}s", d.as_secs()))
                    .unwrap_or_default();
                format!(
                    "elasticsearch/opensearch gate on {} ({auth}{ca}): green, all nodes, nothing moving, no unreplicated index on the host; drain: allocation primaries{delayed} + flush; restore: as before",
                    g.url
                )
            }
            GateSpec::Http { url, status, .. } => format!("http gate: GET {url} wants {status}"),
            GateSpec::Command { command, .. } => format!("command gate: {command}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Gate {
    pub spec: GateSpec,
    pub timeout: Duration,
}

/// Everything the ssh and exec drivers need from the fleet file.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub ssh: SshSettings,
    /// `[exec] command`: a template with `{host}`, `{address}` and `{command}` (shell-quoted).
    pub exec: Option<String>,
    pub remote: RemoteSettings,
    /// One per cluster of the fleet, in the fleet's order.
    pub gates: Vec<Gate>,
}

struct V<'a> {
    c: Checker<'a>,
    base: PathBuf,
}

impl V<'_> {
    fn err(
        &mut self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.c.err(span, field, msg);
    }
    fn dur(&mut self, s: &Option<S>, field: &str) -> Option<i64> {
        let s = s.as_ref()?;
        let d = self.c.duration(
            s,
            field,
            "write a duration like \"5s\", \"2m\" or \"1h30m\"",
        )?;
        if d > 0 {
            return Some(d);
        }
        self.err(s.span(), field, "must be longer than zero");
        None
    }
    fn port(&mut self, p: &Option<Spanned<i64>>, field: &str) -> Option<u16> {
        self.c.port(p.as_ref()?, field)
    }
    fn path(&mut self, s: &S, field: &str, must_exist: bool) -> PathBuf {
        let p = Path::new(s.get_ref());
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        };
        if must_exist && !p.exists() {
            self.err(s.span(), field, format!("{} does not exist", p.display()));
        }
        p
    }
    fn text(&mut self, s: &S, field: &str) -> String {
        if s.get_ref().trim().is_empty() {
            self.err(s.span(), field, "must not be empty");
        }
        s.get_ref().clone()
    }
}

/// Wall-clock seconds to a `Duration`.
fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

impl RemoteConfig {
    /// Read the driver settings from a fleet file's text. `fleet` is the same file,
    /// already loaded by `rollcall_fleet` (for host and cluster ids).
    pub fn load(
        name: &str,
        text: &str,
        base: &Path,
        fleet: &Fleet,
    ) -> Result<RemoteConfig, ConfigErrors> {
        let src = SourceFile::new(name, text);
        let raw: RawFile = spanned::parse(&src)?;
        let mut v = V {
            c: Checker::new(&src),
            base: base.to_path_buf(),
        };
        let host_ids: HashSet<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
        let ssh = match &raw.ssh {
            Some(r) => v.ssh(r.get_ref(), &host_ids),
            None => SshSettings::default(),
        };
        let exec = raw.exec.as_ref().map(|e| v.exec(&e.get_ref().command));
        let remote = match &raw.remote {
            Some(r) => v.remote(r.get_ref(), &host_ids),
            None => RemoteSettings::default(),
        };
        let gates = v.gates(&raw.cluster, fleet);
        v.c.finish(RemoteConfig {
            ssh,
            exec,
            remote,
            gates,
        })
    }
}

impl V<'_> {
    /// `[ssh]` and its per-host overrides.
    fn ssh(&mut self, r: &RawSsh, host_ids: &HashSet<&str>) -> SshSettings {
        let mut ssh = SshSettings::default();
        if let Some(u) = &r.user {
            ssh.user = self.text(u, "ssh.user");
        }
        if let Some(p) = self.port(&r.port, "ssh.port") {
            ssh.port = p;
        }
        if let Some(i) = &r.identity {
            ssh.identity = Some(self.path(i, "ssh.identity", true));
        }
        if let Some(k) = &r.known_hosts {
            ssh.known_hosts = Some(self.path(k, "ssh.known_hosts", true));
        }
        ssh.agent = r.agent.unwrap_or(false);
        if let Some(a) = &r.agent_socket {
            ssh.agent_socket = Some(self.path(a, "ssh.agent_socket", false));
            ssh.agent = r.agent.unwrap_or(true);
        }
        if let Some(t) = self.dur(&r.connect_timeout, "ssh.connect_timeout") {
            ssh.connect_timeout = secs(t);
        }
        for (id, o) in &r.host {
            let f = self.host_table(id, "ssh", host_ids);
            let user = o.user.as_ref().map(|u| self.text(u, &format!("{f}.user")));
            let port = self.port(&o.port, &format!("{f}.port"));
            let ident = o
                .identity
                .as_ref()
                .map(|i| self.path(i, &format!("{f}.identity"), true));
            ssh.hosts.insert(id.get_ref().clone(), (user, port, ident));
        }
        ssh
    }

    /// `[<table>.host.<id>]`: its field path, the id checked to be a host of the fleet.
    fn host_table(&mut self, id: &S, table: &str, host_ids: &HashSet<&str>) -> String {
        let f = format!("{table}.host.{}", id.get_ref());
        if !host_ids.contains(id.get_ref().as_str()) {
            self.err(
                id.span(),
                &f,
                format!("no host `{}` in this fleet", id.get_ref()),
            );
        }
        f
    }

    /// `[exec] command`: a template with `{command}` in it.
    fn exec(&mut self, c: &S) -> String {
        let t = self.text(c, "exec.command");
        if !t.contains("{command}") {
            self.err(
                c.span(),
                "exec.command",
                "the template must contain {command} (where the host command goes, shell-quoted)",
            );
        }
        t
    }

    /// `[remote]`: commands, timing and per-host services.
    fn remote(&mut self, r: &RawRemote, host_ids: &HashSet<&str>) -> RemoteSettings {
        let mut remote = RemoteSettings::default();
        if let Some(c) = &r.boot_id_command {
            remote.boot_id_command = self.text(c, "remote.boot_id_command");
        }
        if let Some(c) = &r.reboot_command {
            remote.reboot_command = self.text(c, "remote.reboot_command");
        }
        if let Some(s) = &r.services {
            remote.services = s.iter().map(|x| self.text(x, "remote.services")).collect();
        }
        self.service_templates(r, &mut remote);
        self.backup_check(r, &mut remote);
        remote.unsaved_config_command = r
            .unsaved_config_command
            .as_ref()
            .map(|c| self.text(c, "remote.unsaved_config_command"));
        self.remote_timing(r, &mut remote);
        for (id, o) in &r.host {
            let f = self.host_table(id, "remote", host_ids);
            if let Some(s) = &o.services {
                let list = s
                    .iter()
                    .map(|x| self.text(x, &format!("{f}.services")))
                    .collect();
                remote.host_services.insert(id.get_ref().clone(), list);
            }
        }
        remote
    }

    /// The per-service command templates, each with `{service}` in it.
    fn service_templates(&mut self, r: &RawRemote, remote: &mut RemoteSettings) {
        for (c, f, dst) in [
            (
                &r.enabled_command,
                "remote.enabled_command",
                &mut remote.enabled_command,
            ),
            (
                &r.active_command,
                "remote.active_command",
                &mut remote.active_command,
            ),
            (
                &r.restart_command,
                "remote.restart_command",
                &mut remote.restart_command,
            ),
            (
                &r.service_id_command,
                "remote.service_id_command",
                &mut remote.service_id_command,
            ),
        ] {
            if let Some(c) = c {
                *dst = self.text(c, f);
                if !dst.contains("{service}") {
                    self.err(c.span(), f, "the template must contain {service}");
                }
            }
        }
    }

    /// `backup_age_command` and `max_backup_age`: both or neither.
    fn backup_check(&mut self, r: &RawRemote, remote: &mut RemoteSettings) {
        remote.backup_age_command = r
            .backup_age_command
            .as_ref()
            .map(|c| self.text(c, "remote.backup_age_command"));
        remote.max_backup_age = self.dur(&r.max_backup_age, "remote.max_backup_age");
        match (&r.backup_age_command, &r.max_backup_age) {
            (Some(c), None) => self.err(
                c.span(),
                "remote.backup_age_command",
                "needs max_backup_age (the oldest acceptable backup)",
            ),
            (None, Some(m)) => self.err(
                m.span(),
                "remote.max_backup_age",
                "needs backup_age_command (prints the last backup's age in seconds)",
            ),
            _ => {}
        }
    }

    /// `[remote]` timeouts and intervals.
    fn remote_timing(&mut self, r: &RawRemote, remote: &mut RemoteSettings) {
        if let Some(t) = self.dur(&r.command_timeout, "remote.command_timeout") {
            remote.command_timeout = secs(t);
        }
        if let Some(t) = self.dur(&r.probe_interval, "remote.probe_interval") {
            remote.probe_interval = t;
        }
        if let Some(t) = self.dur(&r.gate_interval, "remote.gate_interval") {
            remote.gate_interval = t;
        }
        if let Some(t) = self.dur(&r.reboot_grace, "remote.reboot_grace") {
            remote.reboot_grace = t;
        }
        if let Some(t) = self.dur(&r.drain_timeout, "remote.drain_timeout") {
            remote.drain_timeout = secs(t);
        }
    }

    /// The gate of every fleet cluster, in the fleet's order.
    fn gates(&mut self, raw: &[RawClusterGate], fleet: &Fleet) -> Vec<Gate> {
        let by_id: HashMap<&str, (usize, &RawClusterGate)> = raw
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.get_ref().as_str(), (i, c)))
            .collect();
        let mut gates = Vec::with_capacity(fleet.clusters.len());
        for c in &fleet.clusters {
            let (i, rc) = match by_id.get(c.id.as_str()) {
                Some(&(i, rc)) => (i, Some(rc)),
                None => (0, None),
            };
            let g = rc.and_then(|rc| rc.gate.as_ref());
            let f = format!("cluster[{i}].gate");
            gates.push(gate_spec(
                self,
                c.kind,
                &c.id,
                g,
                rc.map(|r| r.id.span()),
                &f,
            ));
        }
        gates
    }
}

fn gate_spec(
    v: &mut V,
    kind: Kind,
    id: &str,
    g: Option<&Spanned<RawGate>>,
    id_span: Option<std::ops::Range<usize>>,
    f: &str,
) -> Gate {
    let span = g.map(|g| g.span()).or(id_span).unwrap_or(0..0);
    let empty = RawGate::default();
    let r = g.map(|g| g.get_ref()).unwrap_or(&empty);
    let timeout = secs(v.dur(&r.timeout, &format!("{f}.timeout")).unwrap_or(10));
    let spec = if let Some(c) = &r.command {
        GateSpec::Command {
            command: v.text(c, &format!("{f}.command")),
            drain: r
                .drain_command
                .as_ref()
                .map(|c| v.text(c, &format!("{f}.drain_command"))),
            restore: r
                .restore_command
                .as_ref()
                .map(|c| v.text(c, &format!("{f}.restore_command"))),
        }
    } else if matches!(kind, Kind::Elasticsearch | Kind::Opensearch)
        && r.expect.is_none()
        && r.status.is_none()
    {
        GateSpec::Search(search_gate(v, r, f))
    } else if let Some(u) = &r.url {
        http_gate(v, r, u, f)
    } else {
        kind_gate(v, kind, id, r, span, f)
    };
    unused_gate_settings(v, r, &spec, f);
    Gate { spec, timeout }
}

/// The generic http gate: GET `url`, expecting `status` and the `expect` fields.
fn http_gate(v: &mut V, r: &RawGate, u: &S, f: &str) -> GateSpec {
    let url = v.text(u, &format!("{f}.url"));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        v.err(
            u.span(),
            format!("{f}.url"),
            "must start with http:// or https://",
        );
    }
    let status = match &r.status {
        Some(s) => match u16::try_from(*s.get_ref()) {
            Ok(x) if (100..600).contains(&x) => x,
            _ => {
                v.err(s.span(), format!("{f}.status"), "not an HTTP status code");
                200
            }
        },
        None => 200,
    };
    let mut expect = Vec::new();
    for (k, val) in r.expect.iter().flatten() {
        match serde_json::to_value(val) {
            Ok(j) => expect.push((k.get_ref().clone(), j)),
            Err(e) => v.err(
                k.span(),
                format!("{f}.expect.{}", k.get_ref()),
                e.to_string(),
            ),
        }
    }
    GateSpec::Http {
        url,
        status,
        expect,
    }
}

/// The gate a cluster's kind brings when the table names no command or url.
fn kind_gate(
    v: &mut V,
    kind: Kind,
    id: &str,
    r: &RawGate,
    span: std::ops::Range<usize>,
    f: &str,
) -> GateSpec {
    match kind {
        Kind::RedisCluster => GateSpec::Redis {
            port: v.port(&r.port, &format!("{f}.port")).unwrap_or(6379),
            password: r.password.as_ref().map(|p| p.get_ref().clone()),
        },
        Kind::Etcd => GateSpec::Etcd {
            port: v.port(&r.port, &format!("{f}.port")).unwrap_or(2379),
            max_raft_lag: match &r.max_raft_lag {
                Some(l) if *l.get_ref() >= 0 => *l.get_ref() as u64,
                Some(l) => {
                    v.err(l.span(), format!("{f}.max_raft_lag"), "must be 0 or more");
                    0
                }
                None => 100,
            },
        },
        Kind::None => GateSpec::None,
        Kind::Http => {
            v.err(
                span,
                f,
                format!("cluster `{id}` of kind http needs gate.url"),
            );
            GateSpec::None
        }
        Kind::Command => {
            v.err(
                span,
                f,
                format!("cluster `{id}` of kind command needs gate.command"),
            );
            GateSpec::None
        }
        // with expect or status: the generic http gate above; else the native gate
        Kind::Elasticsearch | Kind::Opensearch => GateSpec::Search(search_gate(v, r, f)),
    }
}

/// Settings that the chosen gate does not use are mistakes.
fn unused_gate_settings(v: &mut V, r: &RawGate, spec: &GateSpec, f: &str) {
    let mut unused = |used: bool, span: Option<std::ops::Range<usize>>, name: &str, msg: &str| {
        if let (false, Some(span)) = (used, span) {
            v.err(span, format!("{f}.{name}"), msg);
        }
    };
    let search = matches!(spec, GateSpec::Search(_));
    let redis = matches!(spec, GateSpec::Redis { .. });
    let etcd = matches!(spec, GateSpec::Etcd { .. });
    let http = matches!(spec, GateSpec::Http { .. });
    let command = matches!(spec, GateSpec::Command { .. });
    let port = r.port.as_ref().map(|p| p.span());
    unused(
        redis || etcd || search,
        port,
        "port",
        "only redis-cluster, etcd, elasticsearch and opensearch gates use a port",
    );
    let search_only = "only elasticsearch and opensearch gates use";
    unused(
        search,
        r.auth.as_ref().map(|a| a.span()),
        "auth",
        &format!("{search_only} auth"),
    );
    unused(
        search,
        r.tls_ca.as_ref().map(|c| c.span()),
        "tls_ca",
        &format!("{search_only} tls_ca"),
    );
    let delayed = r.delayed_timeout.as_ref().map(|c| c.span());
    unused(
        search,
        delayed,
        "delayed_timeout",
        &format!("{search_only} delayed_timeout"),
    );
    let password = r.password.as_ref().map(|p| p.span());
    unused(
        redis,
        password,
        "password",
        "only redis-cluster gates use a password",
    );
    let lag = r.max_raft_lag.as_ref().map(|p| p.span());
    unused(
        etcd,
        lag,
        "max_raft_lag",
        "only etcd gates use max_raft_lag",
    );
    let status = r.status.as_ref().map(|p| p.span());
    unused(http, status, "status", "only http gates (url) use status");
    let expect = r.expect.iter().flatten().next().map(|(k, _)| k.span());
    unused(http, expect, "expect", "only http gates (url) use expect");
    let drain_restore = "only command gates use drain/restore commands";
    let drain = r.drain_command.as_ref().map(|c| c.span());
    unused(command, drain, "drain_command", drain_restore);
    let restore = r.restore_command.as_ref().map(|c| c.span());
    unused(command, restore, "restore_command", drain_restore);
}

/// The native `elasticsearch` / `opensearch` gate: `port` (default 9200, plain http on
/// each member's address) or `url` (a base URL, `{host}`/`{address}` allowed), `auth`,
/// `tls_ca`.
fn search_gate(v: &mut V, r: &RawGate, f: &str) -> SearchGate {
    let url = match (&r.url, &r.port) {
        (Some(u), Some(p)) => {
            v.err(
                p.span(),
                format!("{f}.port"),
                "give either port or url, not both (the url has the port)",
            );
            v.text(u, &format!("{f}.url"))
        }
        (Some(u), None) => {
            let url = v.text(u, &format!("{f}.url"));
            check_base_url(v, u, &url, f);
            url
        }
        (None, _) => format!(
            "http://{{address}}:{}",
            v.port(&r.port, &format!("{f}.port")).unwrap_or(9200)
        ),
    };
    let auth = r.auth.as_ref().and_then(|a| search_auth(v, a, f));
    let tls_ca = r.tls_ca.as_ref().and_then(|c| {
        let field = format!("{f}.tls_ca");
        let path = v.path(c, &field, true);
        if !url.starts_with("https://") {
            v.err(c.span(), &field, "tls_ca needs an https:// url");
        }
        let pem = std::fs::read(&path).ok()?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Some((path, pem)),
            Ok(_) => {
                v.err(
                    c.span(),
                    &field,
                    format!("{} holds no PEM certificate", path.display()),
                );
                None
            }
            Err(e) => {
                v.err(
                    c.span(),
                    &field,
                    format!("{}: not PEM certificates: {e}", path.display()),
                );
                None
            }
        }
    });
    let delayed_timeout = v
        .dur(&r.delayed_timeout, &format!("{f}.delayed_timeout"))
        .map(secs);
    SearchGate {
        url,
        auth,
        tls_ca,
        delayed_timeout,
    }
}

/// The native gate's url is a base (scheme, host, port): the gate adds the API paths.
fn check_base_url(v: &mut V, u: &S, url: &str, f: &str) {
    let field = format!("{f}.url");
    let rest = match url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        Some(r) => r,
        None => {
            v.err(u.span(), field, "must start with http:// or https://");
            return;
        }
    };
    if rest.trim_end_matches('/').contains('/') || rest.contains('?') {
        v.c.err_help(u.span(),
                field,
                "the elasticsearch/opensearch gate takes a base url (scheme://host:port), not an API path", "write url = \"http://{address}:9200\"; for the generic http gate instead, add expect = { status = \"green\" }");
    }
}

fn env_secret(v: &mut V, s: &S, field: &str) -> Option<Secret> {
    let name = v.text(s, field);
    match std::env::var(&name) {
        Ok(x) if !x.is_empty() => Some(Secret(x)),
        _ => {
            v.err(
                s.span(),
                field,
                format!("the environment variable {name} is not set (it holds the secret)"),
            );
            None
        }
    }
}

fn search_auth(v: &mut V, a: &Spanned<RawAuth>, f: &str) -> Option<SearchAuth> {
    let r = a.get_ref();
    let field = format!("{f}.auth");
    match (&r.user, &r.password_env, &r.api_key_env) {
        (Some(u), Some(p), None) => {
            let user = v.text(u, &format!("{field}.user"));
            let env = p.get_ref().clone();
            let password = env_secret(v, p, &format!("{field}.password_env"))?;
            Some(SearchAuth::Basic {
                user,
                password,
                env,
            })
        }
        (None, None, Some(k)) => {
            let env = k.get_ref().clone();
            let key = env_secret(v, k, &format!("{field}.api_key_env"))?;
            Some(SearchAuth::ApiKey { key, env })
        }
        _ => {
            v.c.err_help(a.span(),
                    field,
                    "give either user and password_env (basic) or api_key_env", "auth = { user = \"rollcall\", password_env = \"ES_PASSWORD\" } or auth = { api_key_env = \"ES_API_KEY\" }");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_fleet::{LoadOptions, load_str};

    fn load(text: &str) -> Result<RemoteConfig, ConfigErrors> {
        let dir = std::env::temp_dir();
        let fleet = load_str("f.toml", text, &dir, &LoadOptions { now: 0 }).map_err(|e| {
            panic!("core rejected the fleet: {}", e.listing());
        })?;
        RemoteConfig::load("f.toml", text, &dir, &fleet)
    }

    const HOSTS: &str = r#"
[[host]]
id = "a"
address = "10.0.0.1"
region = "r"
zone = "z1"
[[host]]
id = "b"
address = "10.0.0.2"
region = "r"
zone = "z2"
[[host]]
id = "c"
address = "10.0.0.3"
region = "r"
zone = "z3"
"#;

    #[test]
    fn defaults_and_overrides() {
        let text = format!(
            r#"{HOSTS}
[ssh]
user = "ops"
connect_timeout = "3s"
[ssh.host.b]
port = 2222
[remote]
services = ["ssh"]
probe_interval = "2s"
[remote.host.c]
services = ["ssh", "redis-server"]
[[cluster]]
id = "kv"
kind = "etcd"
members = ["a", "b", "c"]
gate = {{ port = 12379, max_raft_lag = 5 }}
[[cluster]]
id = "web"
kind = "http"
members = ["a", "b"]
gate = {{ url = "http://{{address}}:8080/health", expect = {{ status = "green", "nodes.count" = 2 }} }}
"#
        );
        let c = load(&text).unwrap();
        assert_eq!(c.ssh.target("a").user, "ops");
        assert_eq!(c.ssh.target("a").port, 22);
        assert_eq!(c.ssh.target("b").port, 2222);
        assert_eq!(c.ssh.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.remote.services_for("a"), ["ssh"]);
        assert_eq!(c.remote.services_for("c"), ["ssh", "redis-server"]);
        assert_eq!(c.remote.probe_interval, 2);
        assert_eq!(
            c.gates[0].spec,
            GateSpec::Etcd {
                port: 12379,
                max_raft_lag: 5
            }
        );
        let GateSpec::Http {
            url,
            expect,
            status,
        } = &c.gates[1].spec
        else {
            panic!("{:?}", c.gates[1])
        };
        assert_eq!(url, "http://{address}:8080/health");
        assert_eq!(*status, 200);
        assert!(expect.contains(&("nodes.count".to_string(), serde_json::json!(2))));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = format!(
            r#"{HOSTS}
[ssh]
port = 70000
identity = "no/such/key"
[ssh.host.zz]
port = 1
[remote]
max_backup_age = "forever"
[[cluster]]
id = "es"
kind = "elasticsearch"
members = ["a", "b", "c"]
gate = {{ url = "http://{{address}}:9200/_cluster/health" }}
[[cluster]]
id = "kv"
kind = "etcd"
members = ["a", "b", "c"]
gate = {{ port = 2379, url = "ftp://x" }}
"#
        );
        let e = load(&text).unwrap_err();
        let l = e.listing();
        assert!(
            l.contains("f.toml:19:8: ssh.port: 70000 is not a TCP port"),
            "{l}"
        );
        assert!(
            l.contains("ssh.identity:") && l.contains("no/such/key does not exist"),
            "{l}"
        );
        assert!(l.contains("ssh.host.zz: no host `zz`"), "{l}");
        assert!(l.contains("remote.max_backup_age:"), "{l}");
        assert!(
            l.contains("f.toml:29:16: cluster[0].gate.url: the elasticsearch/opensearch gate takes a base url"),
            "{l}"
        );
        assert!(
            l.contains("cluster[1].gate.url: must start with http"),
            "{l}"
        );
        assert!(
            l.contains(
                "cluster[1].gate.port: only redis-cluster, etcd, elasticsearch and opensearch"
            ),
            "{l}"
        );

        let text = format!("{HOSTS}\n[ssh]\nusr = \"x\"\n");
        let l = load(&text).unwrap_err().listing();
        assert!(
            l.contains("f.toml:19:1: ssh.usr: unknown field `usr`"),
            "{l}"
        );
    }

    #[test]
    fn search_gates_default_to_native_and_check_their_settings() {
        // SAFETY: tests of this module set only variables no other test reads
        unsafe {
            std::env::set_var("RC_TEST_ES_PASSWORD", "s3cret");
            std::env::remove_var("RC_TEST_UNSET_KEY");
        }
        let ok = format!(
            r#"{HOSTS}
[[cluster]]
id = "es"
kind = "elasticsearch"
members = ["a", "b", "c"]
[[cluster]]
id = "os"
kind = "opensearch"
members = ["a", "b", "c"]
gate = {{ url = "http://{{host}}.search:9201/", auth = {{ user = "rc", password_env = "RC_TEST_ES_PASSWORD" }}, delayed_timeout = "10m" }}
[[cluster]]
id = "legacy"
kind = "elasticsearch"
members = ["a", "b", "c"]
gate = {{ url = "http://{{address}}:9200/_cluster/health", expect = {{ status = "green" }} }}
"#
        );
        let c = load(&ok).unwrap();
        assert_eq!(
            c.gates[0].spec,
            GateSpec::Search(SearchGate {
                url: "http://{address}:9200".into(),
                auth: None,
                tls_ca: None,
                delayed_timeout: None,
            })
        );
        let GateSpec::Search(g) = &c.gates[1].spec else {
            panic!("{:?}", c.gates[1])
        };
        assert_eq!(g.url, "http://{host}.search:9201/");
        assert_eq!(g.delayed_timeout, Some(Duration::from_secs(600)));
        assert_eq!(
            g.auth,
            Some(SearchAuth::Basic {
                user: "rc".into(),
                password: Secret("s3cret".into()),
                env: "RC_TEST_ES_PASSWORD".into()
            })
        );
        assert!(!format!("{:?}", c.gates[1]).contains("s3cret"));
        assert!(matches!(c.gates[2].spec, GateSpec::Http { .. }));

        let bad = format!(
            r#"{HOSTS}
[[cluster]]
id = "es"
kind = "elasticsearch"
members = ["a", "b", "c"]
gate = {{ port = 9200, url = "http://{{address}}:9200", tls_ca = "no/such/ca.pem" }}
[[cluster]]
id = "os"
kind = "opensearch"
members = ["a", "b", "c"]
gate = {{ auth = {{ api_key_env = "RC_TEST_UNSET_KEY" }} }}
[[cluster]]
id = "os2"
kind = "opensearch"
members = ["a", "b", "c"]
gate = {{ auth = {{ user = "x" }} }}
[[cluster]]
id = "kv"
kind = "etcd"
members = ["a", "b", "c"]
gate = {{ tls_ca = "ca.pem", delayed_timeout = "5m" }}
[[cluster]]
id = "es3"
kind = "elasticsearch"
members = ["a", "b", "c"]
gate = {{ delayed_timeout = "soon" }}
"#
        );
        let l = load(&bad).unwrap_err().listing();
        assert!(
            l.contains("f.toml:22:17: cluster[0].gate.port: give either port or url"),
            "{l}"
        );
        assert!(
            l.contains("cluster[0].gate.tls_ca:") && l.contains("no/such/ca.pem does not exist"),
            "{l}"
        );
        assert!(
            l.contains("cluster[0].gate.tls_ca: tls_ca needs an https:// url"),
            "{l}"
        );
        assert!(
            l.contains("cluster[1].gate.auth.api_key_env: the environment variable RC_TEST_UNSET_KEY is not set"),
            "{l}"
        );
        assert!(
            l.contains("cluster[2].gate.auth: give either user and password_env"),
            "{l}"
        );
        assert!(
            l.contains(
                "cluster[3].gate.tls_ca: only elasticsearch and opensearch gates use tls_ca"
            ),
            "{l}"
        );
        assert!(
            l.contains("cluster[3].gate.delayed_timeout: only elasticsearch and opensearch gates use delayed_timeout"),
            "{l}"
        );
        assert!(l.contains("cluster[4].gate.delayed_timeout:"), "{l}");
    }
}
