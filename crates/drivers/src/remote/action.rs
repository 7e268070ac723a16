//! The maintenance action on a real host, and its marker.
//!
//! The engine carries every action through the same phases: preflight records the
//! host's *marker*, the action is journalled as an intent before it is sent, and the
//! host is back when a probe reads a different marker. A marker is never re-sent blindly:
//! after a crash the engine probes first, and sends again only when the marker is still
//! the one recorded at preflight; the send itself checks again before acting.
//!
//! | action | marker | send |
//! |---|---|---|
//! | `reboot` | boot id | `reboot_command` unless the boot id changed |
//! | `restart` | each service's run id (`service_id_command`) | `restart_command` for each service whose id is unchanged |
//! | `command` | `unpatched` / `patched` (`check` exits 0) | `command` unless `check` passes, then `check` must pass |
//! | `command`, `then_reboot` | boot id | as `command`, then `reboot_command` unless the boot id changed |
//!
//! A host whose `check` passes at preflight (no reboot asked) is counted done without the
//! command: its preflight marker is `patched-before-run`, the send finds the check passing
//! and runs nothing, and the probe's `patched` differs. It still goes through the drain
//! and the gates (cheap, and no special path through the engine).

use super::RemoteDriver;
use crate::error::{DriverError, unhealthy};
use crate::transport::{HostRef, shell_quote, truncate};
use rollcall_core::Action;

/// Command markers (no reboot): the patch is missing / applied / was applied before the run.
pub const UNPATCHED: &str = "unpatched";
pub const PATCHED: &str = "patched";
pub const PATCHED_BEFORE: &str = "patched-before-run";

/// A service's run id as printed by `service_id_command`: one word; empty or `0` (a
/// `MainPID` of a stopped unit) means not running.
pub fn parse_service_id(s: &str) -> Option<String> {
    let t = s.trim();
    let ok = !t.is_empty()
        && t != "0"
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_graphic() && c != ',' && c != '=');
    ok.then(|| t.to_string())
}

/// `svc=id,svc=id` (the restart marker) back to pairs; `None` if it is not one.
fn parse_restart_marker(m: &str) -> Option<Vec<(&str, &str)>> {
    m.split(',').map(|p| p.split_once('=')).collect()
}

impl RemoteDriver {
    fn action(&self) -> &Action {
        &self.fleet.maintenance.action
    }

    /// The marker preflight records.
    pub(super) async fn preflight_marker(&self, h: &HostRef) -> Result<String, DriverError> {
        match self.action() {
            Action::Command {
                check,
                then_reboot: false,
                ..
            } => Ok(match self.applied(h, check).await? {
                true => PATCHED_BEFORE,
                false => UNPATCHED,
            }
            .to_string()),
            _ => self.marker(h).await,
        }
    }

    /// The action's marker now (what a probe reads).
    pub(super) async fn marker(&self, h: &HostRef) -> Result<String, DriverError> {
        match self.action() {
            Action::Reboot
            | Action::Command {
                then_reboot: true, ..
            } => self.boot_id(h).await,
            Action::Restart { services } => self.service_ids(h, services).await,
            Action::Command { check, .. } => Ok(match self.applied(h, check).await? {
                true => PATCHED,
                false => UNPATCHED,
            }
            .to_string()),
        }
    }

    /// Carry out the action; `before` is the marker preflight recorded.
    pub(super) async fn send(
        &self,
        hx: rollcall_core::HostIx,
        before: &str,
    ) -> Result<(), DriverError> {
        let h = self.host(hx);
        match self.action() {
            Action::Reboot => self.reboot(&h, before).await,
            Action::Restart { services } => self.restart(&h, services, before).await,
            Action::Command {
                command,
                check,
                then_reboot,
            } => {
                self.patch(&h, command, check).await?;
                if *then_reboot {
                    self.reboot(&h, before).await
                } else {
                    Ok(())
                }
            }
        }
    }

    /// What verify adds for the action: restarted services active, the patch applied.
    pub(super) async fn verify_action(&self, h: &HostRef) -> Vec<String> {
        match self.action() {
            Action::Reboot => Vec::new(),
            Action::Restart { services } => self.inactive(h, services).await,
            Action::Command { check, .. } => match self.applied(h, check).await {
                Ok(true) => Vec::new(),
                Ok(false) => vec![format!("the patch is not applied (`{check}` fails)")],
                Err(e) => vec![e.to_string()],
            },
        }
    }

    /// `check` exit 0: applied; another exit status: not applied; no status: an error.
    async fn applied(&self, h: &HostRef, check: &str) -> Result<bool, DriverError> {
        let o = self
            .run(h, check)
            .await
            .map_err(|source| DriverError::CheckRun {
                check: check.to_string(),
                source,
            })?;
        match o.status {
            Some(0) => Ok(true),
            Some(_) => Ok(false),
            None => Err(DriverError::CheckExit {
                check: check.to_string(),
                outcome: o.describe(),
            }),
        }
    }

    /// Run the patch unless the check says it is applied; afterwards the check must pass.
    async fn patch(&self, h: &HostRef, command: &str, check: &str) -> Result<(), DriverError> {
        if self.applied(h, check).await? {
            return Ok(());
        }
        let o = self
            .run(h, command)
            .await
            .map_err(|source| DriverError::Run {
                command: command.to_string(),
                source,
            })?;
        if !o.ok() {
            return Err(DriverError::Exit {
                command: command.to_string(),
                outcome: o.describe(),
            });
        }
        match self.applied(h, check).await? {
            true => Ok(()),
            false => Err(unhealthy(format!(
                "`{command}` succeeded but the check `{check}` still fails"
            ))),
        }
    }

    /// `svc=id,...` for the services, in order; an error if one is not running.
    async fn service_ids(&self, h: &HostRef, services: &[String]) -> Result<String, DriverError> {
        let mut ids = Vec::with_capacity(services.len());
        for s in services {
            let cmd = self
                .cfg
                .remote
                .service_id_command
                .replace("{service}", &shell_quote(s));
            let o = self.run(h, &cmd).await.map_err(|source| DriverError::Run {
                command: cmd.clone(),
                source,
            })?;
            if !o.ok() {
                return Err(DriverError::Exit {
                    command: cmd,
                    outcome: o.describe(),
                });
            }
            let id = parse_service_id(&o.stdout).ok_or_else(|| {
                unhealthy(format!(
                    "service {s} is not running (`{cmd}` printed `{}`)",
                    truncate(o.stdout.trim(), 80)
                ))
            })?;
            ids.push(format!("{s}={id}"));
        }
        Ok(ids.join(","))
    }

    /// Restart each service still on the run id recorded at preflight (a service already
    /// on a new id was restarted, maybe before a crash, and is not restarted again).
    async fn restart(
        &self,
        h: &HostRef,
        services: &[String],
        before: &str,
    ) -> Result<(), DriverError> {
        let now = self.service_ids(h, services).await?;
        let old = parse_restart_marker(before).unwrap_or_default();
        for (s, id) in parse_restart_marker(&now).unwrap_or_default() {
            let unchanged = old.is_empty() || old.iter().any(|&(os, oid)| os == s && oid == id);
            if !unchanged {
                continue;
            }
            let cmd = self
                .cfg
                .remote
                .restart_command
                .replace("{service}", &shell_quote(s));
            match self.run(h, &cmd).await {
                Ok(o) if o.ok() => {}
                Ok(o) => return Err(DriverError::exited(cmd, &o)),
                Err(source) => {
                    return Err(DriverError::Run {
                        command: cmd,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The services that `active_command` says are not active, with why.
    pub(super) async fn inactive(&self, h: &HostRef, services: &[String]) -> Vec<String> {
        let mut down = Vec::new();
        for s in services {
            let cmd = self
                .cfg
                .remote
                .active_command
                .replace("{service}", &shell_quote(s));
            match self.run(h, &cmd).await {
                Ok(o) if o.ok() => {}
                Ok(o) => down.push(format!("{s} is not active ({})", o.describe())),
                Err(e) => down.push(format!("{s}: {e}")),
            }
        }
        down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_are_one_word_and_running() {
        assert_eq!(
            parse_service_id("8c5f3e0a9b1d4c2e8f7a6b5c4d3e2f10\n").as_deref(),
            Some("8c5f3e0a9b1d4c2e8f7a6b5c4d3e2f10")
        );
        assert_eq!(parse_service_id("4242").as_deref(), Some("4242"));
        assert_eq!(parse_service_id(""), None);
        assert_eq!(parse_service_id("\n"), None);
        assert_eq!(parse_service_id("0"), None);
        assert_eq!(parse_service_id("two words"), None);
        assert_eq!(parse_service_id("a,b"), None);
    }

    #[test]
    fn restart_markers_split_into_services() {
        assert_eq!(
            parse_restart_marker("opensearch=ab,ssh=cd"),
            Some(vec![("opensearch", "ab"), ("ssh", "cd")])
        );
        assert_eq!(parse_restart_marker("0f6b5c4e-6f1a"), None);
    }
}
