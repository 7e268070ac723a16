//! The notice sources a fleet file configures (`[aws]`, `[aws.imds]`, `[azure]`, `[gcp]`),
//! each with how it is read: on the host over the driver's transport (`via = "ssh"`, the
//! default: the metadata services answer only on the instance), or directly.

use rollcall_core::Fleet;
use rollcall_drivers::onhost::OnHost;
use rollcall_providers::MetaHost;
use rollcall_providers::aws::Ec2Source;
use rollcall_providers::aws::config::AwsSettings;
use rollcall_providers::azure::AzureSource;
use rollcall_providers::gcp::GcpSource;
use rollcall_providers::http::{Direct, HostFetch};
use rollcall_providers::imds::ImdsSource;
use rollcall_providers::settings::ProviderSettings;
use rollcall_providers::{NoticeSource, Pulled, Via};
use rollcall_runtime::DriverKind;
use std::path::Path;
use std::sync::Arc;

/// What the sources are read through, built once per kind.
pub struct Fetchers {
    direct: Arc<dyn HostFetch>,
    on_host: Option<Arc<dyn HostFetch>>,
}

impl Fetchers {
    /// `on_host` needs a real driver's transport (`[ssh]` or `[exec]` of the fleet file).
    pub fn new(
        driver: DriverKind,
        name: &str,
        text: &str,
        base: &Path,
        fleet: &Fleet,
    ) -> miette::Result<Fetchers> {
        let on_host = match driver.is_real() {
            true => {
                let cfg = crate::run::remote_config(name, text, base, fleet)?;
                let t =
                    rollcall_drivers::transport(driver.transport(), &cfg).map_err(crate::err)?;
                Some(Arc::new(OnHost::new(Arc::from(t), fleet)) as Arc<dyn HostFetch>)
            }
            false => None,
        };
        Ok(Fetchers {
            direct: Arc::new(Direct::default()),
            on_host,
        })
    }

    /// The fetcher for `via`; an error naming the table when it needs a transport there is not.
    pub fn get(&self, via: Via, table: &str) -> miette::Result<Arc<dyn HostFetch>> {
        match (via, &self.on_host) {
            (Via::Direct, _) => Ok(self.direct.clone()),
            (Via::Ssh, Some(f)) => Ok(f.clone()),
            (Via::Ssh, None) => Err(miette::miette!(
                "[{table}] via = \"ssh\" reads the metadata on each host: use --driver ssh or exec, or via = \"direct\""
            )),
        }
    }
}

pub struct Sources {
    list: Vec<(Box<dyn NoticeSource>, Arc<dyn HostFetch>)>,
}

impl Sources {
    /// The sources of the fleet file; an error when it configures none.
    pub fn load(
        driver: DriverKind,
        name: &str,
        text: &str,
        base: &Path,
        fleet: &Fleet,
    ) -> miette::Result<Sources> {
        let ids: Vec<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
        let ps = ProviderSettings::load(name, text, &ids).map_err(crate::run::config_report)?;
        let fetchers = Fetchers::new(driver, name, text, base, fleet)?;
        let mut list: Vec<(Box<dyn NoticeSource>, Arc<dyn HostFetch>)> = Vec::new();
        if let Some(a) = ps.azure {
            let f = fetchers.get(a.access.via, "azure")?;
            list.push((Box::new(AzureSource::new(a.hosts)), f));
        }
        if let Some(g) = ps.gcp {
            let f = fetchers.get(g.access.via, "gcp")?;
            list.push((Box::new(GcpSource::new(g.hosts)), f));
        }
        let aws = AwsSettings::load(name, text, fleet).map_err(crate::run::config_report)?;
        if let Some(aws) = aws.filter(|a| !a.hosts.is_empty()) {
            let api = Ec2Source::new(&aws).map_err(crate::err)?;
            list.push((Box::new(api), fetchers.direct.clone()));
            if let Some(imds) = &aws.imds {
                let hosts = aws.hosts.keys().map(|h| MetaHost::new(h, &imds.endpoint));
                let f = fetchers.get(imds.via, "aws.imds")?;
                list.push((Box::new(ImdsSource::new(hosts.collect())), f));
            }
        }
        if list.is_empty() {
            return Err(miette::miette!(
                "{name}: no notice source: add [aws] (EC2 API), [aws.imds], [azure] or [gcp] with the hosts they cover"
            ));
        }
        Ok(Sources { list })
    }

    /// Every host of every source, read once (sources one after another; each reads its
    /// hosts as it sees fit).
    pub async fn pull(&self) -> Vec<Pulled> {
        let mut out = Vec::new();
        for (s, f) in &self.list {
            out.extend(s.pull(f.as_ref()).await);
        }
        out
    }

    /// How many hosts the sources cover.
    pub fn hosts(&self) -> usize {
        let mut h: Vec<String> = self.list.iter().flat_map(|(s, _)| s.hosts()).collect();
        h.sort();
        h.dedup();
        h.len()
    }

    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.list.iter().map(|(s, _)| s.source().as_str()).collect();
        names.join(", ")
    }
}
