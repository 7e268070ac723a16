//! Azure Scheduled Events are approved, not pre-empted: for a host whose guard run carries
//! an Azure notice, the reboot is the approval (`StartRequests`), sent only once the host
//! is drained within its cluster's budget and only while its boot id is the one preflight
//! recorded; Azure then reboots it, and the engine watches the boot id change as for any
//! reboot. Everything else goes to the host driver.

use super::sources::Fetchers;
use rollcall_core::engine::{Command, Event};
use rollcall_core::{Fleet, HostIx};
use rollcall_drivers::{BoxFuture, Driver, DriverError, LastHost};
use rollcall_providers::MetaHost;
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
    fn resumed(&self) -> BoxFuture<'_, Result<Vec<String>, DriverError>> {
        self.inner.resumed()
    }
}

/// Approvals through the fleet's `[azure]` source, read as it says (on the host or directly).
struct AzureApprover {
    source: AzureSource,
    hosts: Vec<MetaHost>,
    fetch: Arc<dyn HostFetch>,
}

impl AzureApprover {
    /// Read the host's document now, then approve only an event that is still there and
    /// covers this VM alone: approving an event of several VMs (an availability set's)
    /// would restart all of them at once, whatever their clusters' budgets.
    async fn checked(&self, host: &str, event: &str) -> Result<(), String> {
        let h = self
            .hosts
            .iter()
            .find(|h| h.host == host)
            .ok_or_else(|| format!("{host} is not listed under [azure]"))?;
        let fetch = self.fetch.as_ref();
        self.source
            .read(fetch, h)
            .await
            .map_err(|e| e.to_string())?;
        match self.source.affected(host, event) {
            None => Err(format!(
                "event {event} is no longer scheduled on {host}: not approved"
            )),
            Some(vms) if vms.len() > 1 => Err(format!(
                "event {event} covers {} VMs ({}): approving it would restart all of them at once, so rollcall leaves it to the provider's window",
                vms.len(),
                vms.join(", ")
            )),
            Some(_) => self
                .source
                .approve(fetch, host, event)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

impl Approver for AzureApprover {
    fn approve<'a>(&'a self, host: &'a str, event: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.checked(host, event))
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
        source: AzureSource::new(a.hosts.clone()),
        hosts: a.hosts,
        fetch,
    };
    Ok(Arc::new(ApproveDriver::new(
        driver,
        Arc::new(approver),
        fleet.clone(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_testkit::metadata::MetaServer;
    use std::sync::Mutex;

    /// A host driver that only answers probes (with a fixed boot id) and records the rest.
    struct Stub {
        boot_id: String,
        seen: Mutex<Vec<String>>,
    }

    impl Driver for Stub {
        fn execute(&self, cmd: Command, _now: i64) -> BoxFuture<'_, Event> {
            let e = match cmd {
                Command::Probe { host } => Event::Probed {
                    host,
                    boot_id: Some(self.boot_id.clone()),
                },
                c => {
                    self.seen.lock().unwrap().push(format!("{c:?}"));
                    Event::RebootSent {
                        host: c.host().unwrap_or(0),
                        result: Ok(()),
                    }
                }
            };
            Box::pin(async move { e })
        }
        fn name(&self) -> &'static str {
            "stub"
        }
    }

    fn fleet(meta: &MetaServer) -> (String, Arc<Fleet>) {
        let mut text = String::from(
            "[fleet]\nname = \"t\"\n[maintenance]\nstart = \"2030-01-01T00:00:00Z\"\n",
        );
        for h in ["a", "b", "c"] {
            text.push_str(&format!("[[host]]\nid = \"{h}\"\nregion = \"r\"\n"));
        }
        text.push_str("[azure]\nvia = \"direct\"\n");
        for h in ["a", "b", "c"] {
            text.push_str(&format!(
                "[azure.host.{h}]\nendpoint = \"{}\"\n",
                meta.endpoint(h)
            ));
        }
        for (h, e) in [("a", "one"), ("b", "set")] {
            text.push_str(&format!(
                "[[notice]]\nid = \"azure:{e}\"\nsource = \"azure\"\ncode = \"Reboot\"\nhosts = [\"{h}\"]\nnot_before = \"2030-01-02T00:00:00Z\"\n"
            ));
        }
        let opts = rollcall_fleet::LoadOptions { now: 0 };
        let f = rollcall_fleet::load_str("t.toml", &text, Path::new("."), &opts).unwrap();
        (text, Arc::new(f))
    }

    async fn reboot(d: &dyn Driver, host: HostIx, before: &str) -> Event {
        let c = Command::Reboot {
            host,
            boot_id: before.into(),
            attempt: 1,
        };
        d.execute(c, 0).await
    }

    #[tokio::test]
    async fn an_event_of_one_vm_is_approved_one_of_several_is_refused_and_a_rebooted_host_is_left_alone()
     {
        let meta = MetaServer::start();
        meta.azure_schedule("a", "one", "Reboot", 1_900_000_000);
        meta.azure_schedule_for(&["b", "c"], "set", "Reboot", 1_900_000_000);
        let (text, f) = fleet(&meta);
        let stub = Arc::new(Stub {
            boot_id: "b0".into(),
            seen: Mutex::default(),
        });
        let d = wrap(
            stub.clone(),
            DriverKind::Sim,
            "t.toml",
            &text,
            Path::new("."),
            &f,
        )
        .unwrap();
        let Event::RebootSent { result, .. } = reboot(d.as_ref(), 0, "b0").await else {
            panic!()
        };
        assert_eq!(result, Ok(()));
        let Event::RebootSent { result, .. } = reboot(d.as_ref(), 1, "b0").await else {
            panic!()
        };
        let e = result.unwrap_err();
        assert!(e.contains("covers 2 VMs"), "{e}");
        // its boot id already moved on: already rebooted, nothing sent
        let Event::RebootSent { result, .. } = reboot(d.as_ref(), 0, "b-before").await else {
            panic!()
        };
        assert_eq!(result, Ok(()));
        let approved: Vec<(String, String)> = meta
            .approvals()
            .into_iter()
            .map(|a| (a.host, a.event_id))
            .collect();
        assert_eq!(approved, [("a".to_string(), "one".to_string())]);
        assert!(
            stub.seen.lock().unwrap().is_empty(),
            "never rebooted by the host driver"
        );
    }
}
