//! AWS: the EC2 API (signed with [`sigv4`], credentials from [`credentials`]) and the
//! `[aws]` fleet table ([`config`]). [`Ec2Source`] reads every configured instance's
//! scheduled events with one `DescribeInstanceStatus` per region.

pub mod config;
pub mod credentials;
pub mod ec2;
pub mod sigv4;
pub mod xml;

use crate::http::{BoxFuture, Direct, Fetch, HostFetch};
use crate::{NoticeSource, ProviderError, ProviderEvent, Pulled, Source};
use config::AwsSettings;
use credentials::CredentialSet;
use ec2::Ec2Client;
use std::collections::HashMap;
use std::sync::Arc;

/// One region's (and credentials') client and its hosts `(fleet host id, instance id)`.
#[derive(Clone)]
struct RegionHosts {
    client: Ec2Client,
    hosts: Vec<(String, String)>,
}

/// Scheduled events from the EC2 API for the hosts of `[aws.host.*]`. The API is called
/// from rollcall's own process (never on a host), so `pull` does not use the host fetch
/// it is given.
pub struct Ec2Source {
    regions: Vec<RegionHosts>,
}

impl Ec2Source {
    /// Credentials from the environment or the profiles (`[aws] profile`, each host's
    /// `profile`), HTTP direct.
    pub fn new(settings: &AwsSettings) -> Result<Ec2Source, ProviderError> {
        let creds = CredentialSet::load(settings)?;
        Ec2Source::with(settings, &creds, Arc::new(Direct::default()))
    }

    pub fn with(
        settings: &AwsSettings,
        creds: &CredentialSet,
        fetch: Arc<dyn Fetch>,
    ) -> Result<Ec2Source, ProviderError> {
        let mut regions = Vec::new();
        for (account, hosts) in settings.by_account() {
            let c = creds.get(account.profile.as_deref())?.clone();
            let endpoint = settings.endpoint_for(&account.region);
            let client = Ec2Client::new(&endpoint, &account.region, c, fetch.clone());
            regions.push(RegionHosts { client, hosts });
        }
        Ok(Ec2Source { regions })
    }

    async fn pull_region(r: &RegionHosts) -> Vec<Pulled> {
        let ids: Vec<String> = r.hosts.iter().map(|(_, i)| i.clone()).collect();
        let (answer, mut gone) = statuses(&r.client, ids).await;
        let mut by_id: HashMap<String, Vec<ProviderEvent>> = match answer {
            Ok(by_id) => by_id,
            Err(e) => {
                let err = |host: &String| Pulled {
                    host: host.clone(),
                    source: Source::AwsEc2,
                    events: Err(e.clone()),
                };
                return r.hosts.iter().map(|(h, _)| err(h)).collect();
            }
        };
        let mut read = |host: &str, inst: &str| match (by_id.remove(inst), gone.remove(inst)) {
            (Some(events), _) => Ok(events),
            (None, Some(e)) => Err(e),
            (None, None) => Err(ProviderError::Parse {
                what: format!("EC2 DescribeInstanceStatus ({})", r.client.endpoint()),
                error: format!("the answer does not list {inst} (host {host})"),
            }),
        };
        r.hosts
            .iter()
            .map(|(host, inst)| Pulled {
                host: host.clone(),
                source: Source::AwsEc2,
                events: read(host, inst),
            })
            .collect()
    }
}

type Gone = HashMap<String, ProviderError>;

/// Each instance's events; an instance EC2 says does not exist
/// (`InvalidInstanceID.NotFound`, which fails the whole call) gets that error alone, and
/// the others are asked again without it.
async fn statuses(
    client: &Ec2Client,
    mut ids: Vec<String>,
) -> (
    Result<HashMap<String, Vec<ProviderEvent>>, ProviderError>,
    Gone,
) {
    let mut gone = Gone::new();
    loop {
        if ids.is_empty() {
            return (Ok(HashMap::new()), gone);
        }
        let e = match client.describe_instance_status(&ids).await {
            Ok(st) => {
                return (
                    Ok(st.into_iter().map(|s| (s.instance, s.events)).collect()),
                    gone,
                );
            }
            Err(e) => e,
        };
        let named: Vec<String> = match &e {
            ProviderError::Ec2 { code, message, .. } if code == "InvalidInstanceID.NotFound" => ids
                .iter()
                .filter(|i| message.contains(i.as_str()))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if named.is_empty() {
            return (Err(e), gone);
        }
        ids.retain(|i| !named.contains(i));
        for i in named {
            gone.insert(i, e.clone());
        }
    }
}

impl NoticeSource for Ec2Source {
    fn source(&self) -> Source {
        Source::AwsEc2
    }

    fn hosts(&self) -> Vec<String> {
        self.regions
            .iter()
            .flat_map(|r| r.hosts.iter().map(|(h, _)| h.clone()))
            .collect()
    }

    fn pull<'a>(&'a self, _fetch: &'a dyn HostFetch) -> BoxFuture<'a, Vec<Pulled>> {
        // the regions at once: one that does not answer costs its own timeout only
        Box::pin(async move {
            let mut set = tokio::task::JoinSet::new();
            for (i, r) in self.regions.iter().cloned().enumerate() {
                set.spawn(async move { (i, Ec2Source::pull_region(&r).await) });
            }
            let mut done: Vec<(usize, Vec<Pulled>)> = set.join_all().await;
            done.sort_by_key(|d| d.0);
            done.into_iter().flat_map(|d| d.1).collect()
        })
    }
}
