//! The `ssh` and `exec` drivers: real hosts, reached through a [`Transport`], with
//! cluster gates and drains from [`crate::gates`].

use crate::config::GateSpec;
use crate::config::RemoteConfig;
use crate::error::{DriverError, problems, unhealthy};
use crate::gates::{self, Member};
use crate::search::Allocation;
use crate::transport::{CmdOutput, HostRef, RunError, Transport, shell_quote};
use crate::{BoxFuture, Driver, LastHost};
use rollcall_core::engine::{Command, Event, Hold};
use rollcall_core::{ClusterIx, Fleet, HostIx, fmt_duration};
use std::sync::Arc;

mod action;
pub use action::parse_service_id;

pub struct RemoteDriver {
    fleet: Arc<Fleet>,
    cfg: Arc<RemoteConfig>,
    transport: Box<dyn Transport>,
    /// What drains changed (Elasticsearch/OpenSearch allocation), for the restores.
    ledger: gates::Ledger,
    /// Hosts reached at another address than the fleet's (a replaced EC2 instance).
    moved: std::sync::Mutex<std::collections::HashMap<HostIx, String>>,
}

/// A boot id as printed by `/proc/sys/kernel/random/boot_id`: one line, a UUID (or at
/// least hex digits and dashes). Anything else is garbage.
pub fn parse_boot_id(s: &str) -> Option<String> {
    let t = s.trim();
    let ok = t.len() >= 8
        && t.len() <= 64
        && t.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && t.chars().any(|c| c.is_ascii_hexdigit());
    ok.then(|| t.to_string())
}

impl RemoteDriver {
    pub fn new(
        fleet: Arc<Fleet>,
        cfg: Arc<RemoteConfig>,
        transport: Box<dyn Transport>,
    ) -> RemoteDriver {
        RemoteDriver {
            fleet,
            cfg,
            transport,
            ledger: gates::Ledger::default(),
            moved: Default::default(),
        }
    }

    fn host(&self, h: HostIx) -> HostRef {
        let mut r = HostRef::of(&self.fleet.hosts[h as usize]);
        if let Some(a) = self.moved.lock().expect("moved lock").get(&h) {
            r.address = a.clone();
        }
        r
    }

    /// The address host `hx` is reached at now.
    pub fn address_of(&self, hx: HostIx) -> String {
        self.host(hx).address
    }

    /// Reach host `hx` at `address` from now on (its replacement's), for commands and gates.
    pub fn move_host(&self, hx: HostIx, address: String) {
        self.moved.lock().expect("moved lock").insert(hx, address);
    }

    async fn run(&self, h: &HostRef, cmd: &str) -> Result<CmdOutput, RunError> {
        self.transport
            .run(h, cmd, self.cfg.remote.command_timeout)
            .await
    }

    async fn boot_id(&self, h: &HostRef) -> Result<String, DriverError> {
        let cmd = &self.cfg.remote.boot_id_command;
        let o = self.run(h, cmd).await?;
        if !o.ok() {
            return Err(DriverError::exited(cmd, &o));
        }
        parse_boot_id(&o.stdout).ok_or_else(|| {
            unhealthy(format!(
                "`{cmd}` printed `{}`, not a boot id",
                crate::transport::truncate(o.stdout.trim(), 80)
            ))
        })
    }

    fn members(&self, c: ClusterIx) -> Vec<Member> {
        self.fleet.clusters[c as usize]
            .members
            .iter()
            .map(|&m| {
                let r = self.host(m);
                Member {
                    id: r.id,
                    address: r.address,
                    going: false,
                }
            })
            .collect()
    }

    fn member_pos(&self, c: ClusterIx, h: HostIx) -> Option<usize> {
        self.fleet.clusters[c as usize]
            .members
            .iter()
            .position(|&m| m == h)
    }

    /// The gate of cluster `c` about host `h`: before it goes (`after` false; `with`: the
    /// hosts out or going together with it) or after it came back.
    async fn gate(
        &self,
        c: ClusterIx,
        h: HostIx,
        after: bool,
        with: &[HostIx],
    ) -> Result<String, DriverError> {
        let cl = &self.fleet.clusters[c as usize];
        let g = &self.cfg.gates[c as usize];
        let pos = self
            .member_pos(c, h)
            .ok_or_else(|| DriverError::NotAMember.in_cluster(&cl.id))?;
        let phase = if after {
            gates::Phase::After(pos)
        } else {
            gates::Phase::Before(pos)
        };
        let mut members = self.members(c);
        for (m, &hx) in members.iter_mut().zip(&cl.members) {
            m.going = with.contains(&hx);
        }
        gates::check(&g.spec, &cl.id, &members, phase, g.timeout).await
    }

    async fn preflight(&self, hx: HostIx, with: &[HostIx]) -> Result<String, DriverError> {
        let h = self.host(hx);
        let r = &self.cfg.remote;
        let marker = self
            .preflight_marker(&h)
            .await
            .map_err(|e| e.at("cannot read the action's marker"))?;
        let mut found = Vec::new();
        for s in r.services_for(&h.id) {
            let cmd = r.enabled_command.replace("{service}", &shell_quote(s));
            match self.run(&h, &cmd).await {
                Ok(o) if o.ok() => {}
                Ok(o) => found.push(format!(
                    "service {s} is not enabled at boot (`{cmd}`: {})",
                    o.describe()
                )),
                Err(e) => found.push(format!("service {s}: `{cmd}`: {e}")),
            }
        }
        if let (Some(cmd), Some(max)) = (&r.backup_age_command, r.max_backup_age) {
            match self.run(&h, cmd).await {
                Ok(o) if o.ok() => match o.stdout.trim().parse::<f64>() {
                    Ok(age) if age.is_finite() && age >= 0.0 => {
                        if age > max as f64 {
                            found.push(format!(
                                "the last backup is {} old (at most {} allowed)",
                                fmt_duration(age as i64),
                                fmt_duration(max)
                            ));
                        }
                    }
                    _ => found.push(format!(
                        "backup age: `{cmd}` printed `{}`, not a number of seconds",
                        crate::transport::truncate(o.stdout.trim(), 60)
                    )),
                },
                Ok(o) => found.push(format!("backup age: `{cmd}`: {}", o.describe())),
                Err(e) => found.push(format!("backup age: `{cmd}`: {e}")),
            }
        }
        if let Some(cmd) = &r.unsaved_config_command {
            match self.run(&h, cmd).await {
                Ok(o) if o.ok() && o.stdout.trim().is_empty() => {}
                Ok(o) if o.ok() => found.push(format!(
                    "unsaved configuration: {}",
                    crate::transport::truncate(o.stdout.trim(), 200)
                )),
                Ok(o) => found.push(format!("unsaved configuration: `{cmd}`: {}", o.describe())),
                Err(e) => found.push(format!("unsaved configuration: `{cmd}`: {e}")),
            }
        }
        // pre-gate: every cluster of the host is healthy before it is touched
        for &c in &self.fleet.hosts[hx as usize].clusters {
            if let Err(e) = self.gate(c, hx, false, with).await {
                found.push(format!(
                    "not healthy before the {}: {e}",
                    self.fleet.maintenance.action.noun()
                ));
            }
        }
        if found.is_empty() {
            Ok(marker)
        } else {
            Err(problems(&found))
        }
    }

    /// Drain every cluster of the host; on a failure the ones drained before are undone.
    /// Also answers what the drain holds (Elasticsearch allocation), for the journal.
    async fn drain(&self, hx: HostIx) -> (Result<(), DriverError>, Vec<Hold>) {
        let r = self.drain_all(hx).await;
        (r, self.holds(hx))
    }

    /// What this host's clusters' drains hold now: the allocation the first drain found.
    fn holds(&self, hx: HostIx) -> Vec<Hold> {
        let mut out = Vec::new();
        for &c in &self.fleet.hosts[hx as usize].clusters {
            if !matches!(self.cfg.gates[c as usize].spec, GateSpec::Search(_)) {
                continue;
            }
            if let Some(prev) = self.ledger.remembered(&self.fleet.clusters[c as usize].id) {
                out.push(Hold {
                    cluster: c,
                    undo: serde_json::to_string(&prev).unwrap_or_default(),
                });
            }
        }
        out
    }

    async fn drain_all(&self, hx: HostIx) -> Result<(), DriverError> {
        let clusters = &self.fleet.hosts[hx as usize].clusters;
        for (i, &c) in clusters.iter().enumerate() {
            let g = &self.cfg.gates[c as usize];
            let pos = self.member_pos(c, hx).ok_or(DriverError::NotInCluster)?;
            let cl = &self.fleet.clusters[c as usize];
            let r = gates::drain(
                &g.spec,
                &cl.id,
                &self.members(c),
                pos,
                g.timeout,
                self.cfg.remote.drain_timeout,
                &self.ledger,
            )
            .await;
            if let Err(e) = r {
                let mut undo_errors = Vec::new();
                for &d in &clusters[..i] {
                    if let Err(u) = self.restore_cluster(d, hx).await {
                        undo_errors.push(u);
                    }
                }
                return Err(match undo_errors.is_empty() {
                    true => e,
                    false => DriverError::DrainFailed {
                        source: Box::new(e),
                        undo_errors,
                    },
                });
            }
        }
        Ok(())
    }

    async fn restore_cluster(&self, c: ClusterIx, hx: HostIx) -> Result<String, DriverError> {
        self.put_back(c, hx, self.cfg.remote.drain_timeout).await
    }

    /// Undo cluster `c`'s drain for host `hx`, waiting at most `rejoin_wait` for it.
    async fn put_back(
        &self,
        c: ClusterIx,
        hx: HostIx,
        rejoin_wait: std::time::Duration,
    ) -> Result<String, DriverError> {
        let g = &self.cfg.gates[c as usize];
        let pos = self.member_pos(c, hx).ok_or(DriverError::NotInCluster)?;
        let cl = &self.fleet.clusters[c as usize];
        gates::restore(
            &g.spec,
            &cl.id,
            &self.members(c),
            pos,
            g.timeout,
            rejoin_wait,
            &self.ledger,
        )
        .await
    }

    /// The elected manager of every Elasticsearch/OpenSearch cluster (to go last).
    async fn managers(&self) -> Vec<LastHost> {
        let mut out = Vec::new();
        for (c, cl) in self.fleet.clusters.iter().enumerate() {
            let g = &self.cfg.gates[c];
            let GateSpec::Search(s) = &g.spec else {
                continue;
            };
            match crate::search::elected_manager(s, &self.members(c as ClusterIx), g.timeout).await
            {
                Ok(pos) => out.push(LastHost {
                    host: Some(cl.members[pos]),
                    why: format!(
                        "elected cluster manager of {}: goes last among its members",
                        cl.id
                    ),
                }),
                Err(e) => out.push(LastHost {
                    host: None,
                    why: format!(
                        "{}: the elected manager is not known ({e}): plan order",
                        cl.id
                    ),
                }),
            }
        }
        out
    }

    /// A host that will not come back through a restore (missing, failed): what its
    /// drains hold is put back now, without waiting for it.
    async fn release(&self, hx: HostIx) -> Result<(), DriverError> {
        self.put_back_all(hx, true, std::time::Duration::ZERO).await
    }

    /// Restore every cluster of the host (all are tried; every failure is reported).
    async fn restore(&self, hx: HostIx) -> Result<(), DriverError> {
        self.put_back_all(hx, false, self.cfg.remote.drain_timeout)
            .await
    }

    /// Undo the drains of the host's clusters (only Elasticsearch/OpenSearch ones with
    /// `search_only`), each waiting at most `rejoin_wait`; all are tried, every failure is
    /// reported.
    async fn put_back_all(
        &self,
        hx: HostIx,
        search_only: bool,
        rejoin_wait: std::time::Duration,
    ) -> Result<(), DriverError> {
        let mut bad = Vec::new();
        for &c in &self.fleet.hosts[hx as usize].clusters {
            let search = matches!(self.cfg.gates[c as usize].spec, GateSpec::Search(_));
            if (search || !search_only)
                && let Err(e) = self.put_back(c, hx, rejoin_wait).await
            {
                bad.push(e);
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(DriverError::All(bad))
        }
    }

    /// The action's marker on host `hx` now (its boot id, for a reboot).
    pub(crate) async fn marker_of(&self, hx: HostIx) -> Result<String, DriverError> {
        self.marker(&self.host(hx)).await
    }

    /// Reboot unless the boot id already differs from `before` (never reboot twice).
    async fn reboot(&self, h: &HostRef, before: &str) -> Result<(), DriverError> {
        let now = self.boot_id(h).await?;
        if !before.is_empty() && now != before {
            return Ok(());
        }
        let cmd = &self.cfg.remote.reboot_command;
        match self.run(h, cmd).await {
            Ok(o) if o.ok() => Ok(()),
            // the session dropped as the host went down, as a real reboot does
            Ok(o) if o.status.is_none() => Ok(()),
            Ok(o) => Err(DriverError::exited(cmd, &o)),
            Err(e) => Err(DriverError::run(cmd, e)),
        }
    }

    async fn verify(&self, hx: HostIx) -> Result<(), DriverError> {
        let h = self.host(hx);
        let services = self.cfg.remote.services_for(&h.id);
        let mut down = if services.is_empty() {
            let e = self.boot_id(&h).await.err();
            e.iter().map(ToString::to_string).collect()
        } else {
            self.inactive(&h, services).await
        };
        down.extend(self.verify_action(&h).await);
        if down.is_empty() {
            Ok(())
        } else {
            Err(problems(&down))
        }
    }

    async fn act(&self, cmd: Command) -> Event {
        match cmd {
            // notification delivery is not the host driver's job
            Command::Announce { region } => Event::Announced {
                region,
                result: Ok(()),
            },
            Command::Preflight { host, ref with } => Event::Preflight {
                host,
                result: self.preflight(host, with).await.map_err(text),
            },
            Command::Drain { host } => {
                let (result, holds) = self.drain(host).await;
                Event::Drained {
                    host,
                    result: result.map_err(text),
                    holds,
                }
            }
            Command::Reboot {
                host, ref boot_id, ..
            } => Event::RebootSent {
                host,
                result: self.send(host, boot_id).await.map_err(text),
            },
            Command::Probe { host } => Event::Probed {
                host,
                boot_id: self.marker(&self.host(host)).await.ok(),
            },
            Command::Verify { host } => Event::Verified {
                host,
                result: self.verify(host).await.map_err(text),
            },
            Command::Restore { host } => Event::Restored {
                host,
                result: self.restore(host).await.map_err(text),
            },
            Command::Release { host } => Event::Restored {
                host,
                result: self.release(host).await.map_err(text),
            },
            Command::Gate { host, cluster } => match self.gate(cluster, host, true, &[]).await {
                Ok(detail) => Event::Gate {
                    host,
                    cluster,
                    healthy: true,
                    detail,
                },
                Err(e) => Event::Gate {
                    host,
                    cluster,
                    healthy: false,
                    detail: e.to_string(),
                },
            },
            Command::Replace { host } => Event::Replaced {
                host,
                result: Err(format!(
                    "the {} driver cannot replace hosts: replace {} by hand and resume the run, or use on_missing = pause or continue",
                    self.transport.name(),
                    self.fleet.hosts[host as usize].id
                )),
            },
        }
    }
}

/// The text an event carries.
fn text(e: DriverError) -> String {
    e.to_string()
}

impl Driver for RemoteDriver {
    fn execute(&self, cmd: Command, _now: i64) -> BoxFuture<'_, Event> {
        Box::pin(self.act(cmd))
    }
    fn name(&self) -> &'static str {
        self.transport.name()
    }
    fn go_last(&self) -> BoxFuture<'_, Vec<LastHost>> {
        Box::pin(self.managers())
    }
    fn adopt(&self, holds: &[(HostIx, Hold)]) -> Result<(), DriverError> {
        let mut bad = Vec::new();
        for (h, hold) in holds {
            let Some(cl) = self.fleet.clusters.get(hold.cluster as usize) else {
                bad.push(DriverError::UnknownClusterIx(hold.cluster));
                continue;
            };
            match serde_json::from_str::<Allocation>(&hold.undo) {
                Ok(prev) => self.ledger.hold(&cl.id, prev),
                Err(source) => bad.push(DriverError::BadHold {
                    cluster: cl.id.clone(),
                    host: self.fleet.hosts[*h as usize].id.clone(),
                    undo: hold.undo.clone(),
                    source,
                }),
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(DriverError::All(bad))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ids() {
        assert_eq!(
            parse_boot_id("0f6b5c4e-6f1a-4a36-9a5e-0c6f2b1e9d11\n").as_deref(),
            Some("0f6b5c4e-6f1a-4a36-9a5e-0c6f2b1e9d11")
        );
        assert_eq!(parse_boot_id(""), None);
        assert_eq!(parse_boot_id("No such file or directory"), None);
        assert_eq!(parse_boot_id("abc\ndef0-1234"), None);
        assert_eq!(parse_boot_id("--------"), None);
    }
}
