//! Azure Scheduled Events are approved, not pre-empted: for a host whose guard run carries
//! an Azure notice, the reboot is the approval (`StartRequests`), sent only once the host
//! is drained within its cluster's budget and only while its boot id is the one preflight
//! recorded; Azure then reboots it, and the engine watches the boot id change as for any
//! reboot. Everything else goes to the host driver.

use rollcall_core::engine::{Command, Event};
use rollcall_core::{Fleet, HostIx};
use rollcall_drivers::{BoxFuture, Driver, DriverError, LastHost};
use std::collections::HashMap;
use std::sync::Arc;

/// Sends the approval of one event for one host.
pub trait Approver: Send + Sync + 'static {
    fn approve<'a>(&'a self, host: &'a str, event: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// The host driver, with reboots of hosts that have an Azure event replaced by approvals.
pub struct ApproveDriver {
    inner: Arc<dyn Driver>,
    approver: Arc<dyn Approver>,
    fleet: Arc<Fleet>,
    /// Host → the provider's event id (the notice id without its `azure:` prefix).
    events: HashMap<HostIx, String>,
}

/// The Azure events of a fleet's notices, by host.
pub fn azure_events(fleet: &Fleet) -> HashMap<HostIx, String> {
    let mut m = HashMap::new();
    for n in fleet
        .notices
        .iter()
        .filter(|n| n.source.as_deref() == Some("azure"))
    {
        let id = n.id.strip_prefix("azure:").unwrap_or(&n.id);
        for &h in &n.hosts {
            m.insert(h, id.to_string());
        }
    }
    m
}

impl ApproveDriver {
    pub fn new(inner: Arc<dyn Driver>, approver: Arc<dyn Approver>, fleet: Arc<Fleet>) -> Self {
        let events = azure_events(&fleet);
        ApproveDriver {
            inner,
            approver,
            fleet,
            events,
        }
    }

    /// Approve unless the host already rebooted (its boot id moved on): never twice.
    async fn approve(&self, host: HostIx, before: &str, event: &str) -> Event {
        if !before.is_empty() {
            let probed = self.inner.execute(Command::Probe { host }, 0).await;
            if let Event::Probed {
                boot_id: Some(now), ..
            } = probed
                && now != before
            {
                return Event::RebootSent {
                    host,
                    result: Ok(()),
                };
            }
        }
        let id = &self.fleet.hosts[host as usize].id;
        let result = self
            .approver
            .approve(id, event)
            .await
            .map_err(|e| format!("approving Azure event {event} of {id}: {e}"));
        Event::RebootSent { host, result }
    }
}

impl Driver for ApproveDriver {
    fn execute(&self, cmd: Command, now: i64) -> BoxFuture<'_, Event> {
        match &cmd {
            Command::Reboot { host, boot_id, .. } if self.events.contains_key(host) => {
                let (host, before) = (*host, boot_id.clone());
                let event = self.events[&host].clone();
                Box::pin(async move { self.approve(host, &before, &event).await })
            }
            _ => self.inner.execute(cmd, now),
        }
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn adopt(&self, holds: &[(HostIx, rollcall_core::engine::Hold)]) -> Result<(), DriverError> {
        self.inner.adopt(holds)
    }
    fn go_last(&self) -> BoxFuture<'_, Vec<LastHost>> {
        self.inner.go_last()
    }
}
