//! Azure Scheduled Events are approved, not pre-empted: for a host whose guard run carries
//! an Azure notice, the reboot is the approval (`StartRequests`), sent only once the host
//! is drained within its cluster's budget and only while its boot id is the one preflight
//! recorded; Azure then reboots it, and the engine watches the boot id change as for any
//! reboot. Everything else goes to the host driver.

use super::sources::Fetchers;
use rollcall_core::engine::{Command, Event};
use rollcall_core::{Fleet, HostIx};
use rollcall_drivers::{BoxFuture, Driver, DriverError, LastHost};
use rollcall_providers::azure::AzureSource;
use rollcall_providers::http::HostFetch;
use rollcall_providers::settings::ProviderSettings;
use rollcall_runtime::DriverKind;
use std::collections::HashMap;
use std::path::Path;
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

/// Approvals through the fleet's `[azure]` source, read as it says (on the host or directly).
struct AzureApprover {
    source: AzureSource,
    fetch: Arc<dyn HostFetch>,
}

impl Approver for AzureApprover {
    fn approve<'a>(&'a self, host: &'a str, event: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.source
                .approve(self.fetch.as_ref(), host, event)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The run's host driver, approving the Azure events among its notices instead of
/// rebooting those hosts (unchanged when it has none).
pub fn wrap(
    driver: Arc<dyn Driver>,
    kind: DriverKind,
    name: &str,
    text: &str,
    base: &Path,
    fleet: &Arc<Fleet>,
) -> miette::Result<Arc<dyn Driver>> {
    if azure_events(fleet).is_empty() {
        return Ok(driver);
    }
    let ids: Vec<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
    let ps = ProviderSettings::load(name, text, &ids).map_err(crate::run::config_report)?;
    let Some(a) = ps.azure else {
        return Err(miette::miette!(
            "{name}: notices from Azure need the [azure] table to approve them"
        ));
    };
    let fetch = Fetchers::new(kind, name, text, base, fleet)?.get(a.access.via, "azure")?;
    let approver = AzureApprover {
        source: AzureSource::new(a.hosts),
        fetch,
    };
    Ok(Arc::new(ApproveDriver::new(
        driver,
        Arc::new(approver),
        fleet.clone(),
    )))
}
