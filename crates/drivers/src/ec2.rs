//! The `ec2` driver: the real-host driver (SSH or exec: preflight, drains, boot ids,
//! verify, gates) with the EC2 API for what the instance itself cannot do well:
//!
//! - `Reboot` → `RebootInstances`, sent only while the boot id is still the one
//!   preflight recorded (as the remote driver does with its reboot command);
//! - `Probe` → the boot id over SSH, reported only when the instance's status checks
//!   (instance and system) are both `ok`: a host is back when its boot id changed AND
//!   EC2 says it is healthy;
//! - `Replace` (`on_missing = replace`) → launch a replacement from the old instance's
//!   launch template (else its image, type, subnet, key and security groups) with a
//!   `ClientToken` derived from the run and the host (also set as a tag, so a replace
//!   sent again after a crash finds it and launches nothing), wait until it runs with its
//!   checks `ok`, then terminate the old instance.
//!
//! Hosts without `[aws.host.<id>]`, and actions other than a reboot, go to the real-host
//! driver unchanged.

use crate::remote::RemoteDriver;
use crate::{BoxFuture, Driver, DriverError, LastHost};
use rollcall_core::engine::{Command, Event, Hold};
use rollcall_core::{Action, Fleet, HostIx};
use rollcall_providers::ProviderError;
use rollcall_providers::aws::config::{Account, AwsSettings};
use rollcall_providers::aws::credentials::CredentialSet;
use rollcall_providers::aws::ec2::{Ec2Client, Launch, TOKEN_TAG, client_token};
use rollcall_providers::http::{Direct, Fetch};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a replacement may take to run with its checks `ok`, and how often it is asked.
#[derive(Debug, Clone, Copy)]
pub struct ReplaceTiming {
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for ReplaceTiming {
    fn default() -> Self {
        ReplaceTiming {
            timeout: Duration::from_secs(900),
            poll: Duration::from_secs(5),
        }
    }
}

pub struct Ec2Driver {
    inner: RemoteDriver,
    fleet: Arc<Fleet>,
    /// One client per region and credentials.
    clients: BTreeMap<Account, Ec2Client>,
    /// The instance each host is now (a replace moves it); its region and credentials.
    instances: Mutex<HashMap<HostIx, (String, Account)>>,
    run: String,
    timing: ReplaceTiming,
}

impl Ec2Driver {
    /// `run` is the run's id (the replacements' client tokens derive from it).
    pub fn new(
        inner: RemoteDriver,
        fleet: Arc<Fleet>,
        aws: &AwsSettings,
        creds: &CredentialSet,
        fetch: Arc<dyn Fetch>,
        run: &str,
    ) -> Result<Ec2Driver, DriverError> {
        let mut clients = BTreeMap::new();
        let mut instances = HashMap::new();
        for (hx, h) in fleet.hosts.iter().enumerate() {
            let Some(a) = aws.hosts.get(&h.id) else {
                continue;
            };
            let account = a.account();
            if !clients.contains_key(&account) {
                let c = creds.get(a.profile.as_deref())?.clone();
                let endpoint = aws.endpoint_for(&a.region);
                let client = Ec2Client::new(&endpoint, &a.region, c, fetch.clone());
                clients.insert(account.clone(), client);
            }
            instances.insert(hx as HostIx, (a.instance.clone(), account));
        }
        Ok(Ec2Driver {
            inner,
            fleet,
            clients,
            instances: Mutex::new(instances),
            run: run.to_string(),
            timing: ReplaceTiming::default(),
        })
    }

    pub fn with_timing(mut self, timing: ReplaceTiming) -> Ec2Driver {
        self.timing = timing;
        self
    }

    /// The instance host `hx` is now.
    pub fn instance_of(&self, hx: HostIx) -> Option<String> {
        self.placed(hx).map(|(_, i)| i)
    }

    /// The address host `hx` is reached at now (a replacement's private IP, once replaced).
    pub fn address_of(&self, hx: HostIx) -> String {
        self.inner.address_of(hx)
    }

    fn placed(&self, hx: HostIx) -> Option<(&Ec2Client, String)> {
        let m = self.instances.lock().expect("instances lock");
        let (inst, account) = m.get(&hx)?;
        Some((&self.clients[account], inst.clone()))
    }

    fn id(&self, hx: HostIx) -> &str {
        &self.fleet.hosts[hx as usize].id
    }

    fn reboots_by_api(&self) -> bool {
        matches!(self.fleet.maintenance.action, Action::Reboot)
    }

    /// `RebootInstances`, unless the boot id already moved on from `before`.
    async fn reboot(&self, hx: HostIx, before: &str) -> Result<(), DriverError> {
        let Some((client, inst)) = self.placed(hx) else {
            return Err(self.err(hx, "no [aws.host] instance for this host"));
        };
        let now = self.inner.marker_of(hx).await?;
        if !before.is_empty() && now != before {
            return Ok(());
        }
        client.reboot_instances(&[inst]).await?;
        Ok(())
    }

    /// The boot id, when the instance's status checks are both `ok`.
    async fn probe(&self, hx: HostIx) -> Option<String> {
        let (client, inst) = self.placed(hx)?;
        let boot_id = self.inner.marker_of(hx).await.ok()?;
        let st = client.describe_instance_status(&[inst]).await.ok()?;
        st.first().filter(|s| s.is_ok()).map(|_| boot_id)
    }

    async fn replace(&self, hx: HostIx) -> Result<(), DriverError> {
        let Some((client, old)) = self.placed(hx) else {
            return Err(self.err(
                hx,
                "no [aws.host] instance for this host: cannot replace it",
            ));
        };
        let token = client_token(&self.run, self.id(hx));
        let new = match self.launched(client, &token).await? {
            Some(i) => i,
            None => self.launch(hx, client, &old, token).await?,
        };
        self.wait_ok(hx, client, &new).await?;
        if new != old {
            client
                .terminate_instances(std::slice::from_ref(&old))
                .await?;
        }
        let info = client
            .describe_instances(std::slice::from_ref(&new))
            .await?;
        self.adopt(hx, &new, info.first().and_then(|i| i.private_ip.clone()));
        eprintln!(
            "ec2: {host}: {old} replaced by {new} ({old} terminated); set [aws.host.{host}] instance = \"{new}\" in the fleet file",
            host = self.id(hx)
        );
        Ok(())
    }

    /// Host `hx` is instance `inst` from now on; when it was reached at an IP address
    /// (which cannot follow a new instance), it is reached at the new one's private IP.
    fn adopt(&self, hx: HostIx, inst: &str, ip: Option<String>) {
        let mut m = self.instances.lock().expect("instances lock");
        if let Some(placed) = m.get_mut(&hx) {
            placed.0 = inst.to_string();
        }
        drop(m);
        let pinned = self
            .inner
            .address_of(hx)
            .parse::<std::net::IpAddr>()
            .is_ok();
        if let (true, Some(ip)) = (pinned, ip) {
            self.inner.move_host(hx, ip);
        }
    }

    /// After a restart (`resume`): the hosts whose replacement this run finished (the
    /// replacement found by its token tag, the old instance gone) are that instance again,
    /// as before the restart. Returns them with their instance.
    pub async fn adopt_replacements(&self) -> Result<Vec<(HostIx, String)>, DriverError> {
        let placed: Vec<(HostIx, String, Account)> = {
            let m = self.instances.lock().expect("instances lock");
            m.iter()
                .map(|(h, (i, r))| (*h, i.clone(), r.clone()))
                .collect()
        };
        let mut adopted = Vec::new();
        for (account, client) in &self.clients {
            let mine: Vec<&(HostIx, String, Account)> =
                placed.iter().filter(|p| &p.2 == account).collect();
            let tokens: Vec<String> = mine
                .iter()
                .map(|(h, _, _)| client_token(&self.run, self.id(*h)))
                .collect();
            let found = client.instances_tagged_any(TOKEN_TAG, &tokens).await?;
            for (&(hx, ref old, _), token) in mine.iter().copied().zip(&tokens) {
                let Some(new) = found
                    .iter()
                    .find(|i| i.tag(TOKEN_TAG) == Some(token) && !i.is_gone())
                else {
                    continue;
                };
                let old_gone = match client.describe_instances(std::slice::from_ref(old)).await {
                    Ok(o) => o.iter().all(|i| i.is_gone()),
                    Err(ProviderError::Ec2 { code, .. })
                        if code == "InvalidInstanceID.NotFound" =>
                    {
                        true
                    }
                    Err(e) => return Err(e.into()),
                };
                if old_gone && &new.instance != old {
                    self.adopt(hx, &new.instance, new.private_ip.clone());
                    adopted.push((hx, new.instance.clone()));
                }
            }
        }
        Ok(adopted)
    }

    /// A replacement already launched with this token (not terminated), if any.
    async fn launched(
        &self,
        client: &Ec2Client,
        token: &str,
    ) -> Result<Option<String>, DriverError> {
        let found = client.instances_tagged(TOKEN_TAG, token).await?;
        Ok(found.into_iter().find(|i| !i.is_gone()).map(|i| i.instance))
    }

    async fn launch(
        &self,
        hx: HostIx,
        client: &Ec2Client,
        old: &str,
        token: String,
    ) -> Result<String, DriverError> {
        let info = client.describe_instances(&[old.to_string()]).await?;
        let Some(old_info) = info.into_iter().find(|i| i.instance == old) else {
            return Err(self.err(
                hx,
                format!("{old} is not known to EC2: nothing to launch a replacement from"),
            ));
        };
        Ok(client
            .run_instance(&Launch::replacing(&old_info, token))
            .await?)
    }

    /// Until `inst` runs with both checks `ok`, at most the replace timeout.
    async fn wait_ok(&self, hx: HostIx, client: &Ec2Client, inst: &str) -> Result<(), DriverError> {
        let start = Instant::now();
        loop {
            let st = client.describe_instance_status(&[inst.to_string()]).await?;
            let now = st.first();
            if now.is_some_and(|s| s.is_ok()) {
                return Ok(());
            }
            if start.elapsed() >= self.timing.timeout {
                let what = now.map_or("not listed".to_string(), |s| {
                    format!(
                        "{}, instance check {}, system check {}",
                        s.state,
                        s.instance_check.as_str(),
                        s.system_check.as_str()
                    )
                });
                let waited = self.timing.timeout.as_secs();
                return Err(self.err(hx, format!("replacement {inst} not ok after {waited}s ({what}); the old instance is kept")));
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }

    fn err(&self, hx: HostIx, what: impl Into<String>) -> DriverError {
        DriverError::Ec2 {
            host: self.id(hx).to_string(),
            what: what.into(),
        }
    }

    async fn act(&self, cmd: Command, now: i64) -> Event {
        let placed = cmd.host().is_some_and(|h| self.placed(h).is_some());
        match cmd {
            Command::Reboot {
                host, ref boot_id, ..
            } if placed && self.reboots_by_api() => Event::RebootSent {
                host,
                result: self.reboot(host, boot_id).await.map_err(|e| e.to_string()),
            },
            Command::Probe { host } if placed && self.reboots_by_api() => Event::Probed {
                host,
                boot_id: self.probe(host).await,
            },
            Command::Replace { host } if placed => Event::Replaced {
                host,
                result: self.replace(host).await.map_err(|e| e.to_string()),
            },
            other => self.inner.execute(other, now).await,
        }
    }
}

impl Driver for Ec2Driver {
    fn execute(&self, cmd: Command, now: i64) -> BoxFuture<'_, Event> {
        Box::pin(self.act(cmd, now))
    }
    fn name(&self) -> &'static str {
        "ec2"
    }
    fn go_last(&self) -> BoxFuture<'_, Vec<LastHost>> {
        self.inner.go_last()
    }
    fn resumed(&self) -> BoxFuture<'_, Result<Vec<String>, DriverError>> {
        Box::pin(async move {
            let back = self.adopt_replacements().await?;
            Ok(back
                .into_iter()
                .map(|(h, i)| {
                    let id = &self.fleet.hosts[h as usize].id;
                    format!("{id} is instance {i} (the replacement this run launched)")
                })
                .collect())
        })
    }
    fn adopt(&self, holds: &[(HostIx, Hold)]) -> Result<(), DriverError> {
        self.inner.adopt(holds)
    }
}

/// The `ec2` driver for a fleet: SSH (`transport = "ssh"`) or exec for the hosts,
/// credentials from the environment or the profiles (`[aws] profile`, each host's), HTTP direct.
pub fn ec2_driver(
    transport: &str,
    fleet: Arc<Fleet>,
    cfg: crate::config::RemoteConfig,
    aws: &AwsSettings,
    run: &str,
) -> Result<Ec2Driver, DriverError> {
    let inner = crate::remote_driver(transport, fleet.clone(), cfg)?;
    let creds = CredentialSet::load(aws)?;
    let fetch: Arc<dyn Fetch> = Arc::new(Direct::default());
    Ec2Driver::new(inner, fleet, aws, &creds, fetch, run)
}
