//! The fleet file's `[aws]` table, validated like the rest of the fleet file (through
//! `rollcall_fleet::spanned`): every error names the file, line, column and field, unknown
//! keys and unknown host ids are refused, and all errors are reported at once.
//!
//! ```toml
//! [aws]
//! region = "us-east-1"                  # default region of the hosts below
//! endpoint = "http://127.0.0.1:5000"    # optional; default https://ec2.<region>.amazonaws.com
//! profile = "default"                   # optional credentials profile
//! [aws.imds]                            # the instance metadata service (read by `imds`)
//! endpoint = "http://169.254.169.254"   # default
//! via = "ssh"                           # or "direct"; default ssh
//! [aws.host.redis-1]                    # the hosts on AWS: instance id, optional region
//! instance = "i-0abc1234def567890"
//! region = "us-west-2"
//! profile = "other-account"             # optional: this host's credentials profile
//! ```

use crate::{MetadataAccess, Via};
use rollcall_core::Fleet;
use rollcall_fleet::error::{ConfigErrors, SourceFile};
use rollcall_fleet::spanned::{self, Checker, S, Spanned};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

pub const DEFAULT_IMDS: &str = "http://169.254.169.254";

#[derive(Debug, Deserialize)]
struct RawFile {
    aws: Option<Spanned<RawAws>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    region: Option<S>,
    endpoint: Option<S>,
    profile: Option<S>,
    imds: Option<RawImds>,
    #[serde(default)]
    host: BTreeMap<S, RawHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImds {
    endpoint: Option<S>,
    via: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    instance: S,
    region: Option<S>,
    profile: Option<S>,
}

/// The `[aws]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The default region of the hosts.
    pub region: Option<String>,
    /// Overrides the EC2 endpoint of every region (a test server, a VPC endpoint).
    pub endpoint: Option<String>,
    pub profile: Option<String>,
    /// `[aws.imds]`, when present.
    pub imds: Option<MetadataAccess>,
    /// Fleet host id → its instance.
    pub hosts: BTreeMap<String, AwsHost>,
}

/// A fleet host that is an EC2 instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsHost {
    pub instance: String,
    pub region: String,
    /// Its own credentials profile (`None`: the fleet's credentials).
    pub profile: Option<String>,
}

/// The hosts one EC2 client serves: one region, one set of credentials.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Account {
    pub region: String,
    pub profile: Option<String>,
}

impl AwsSettings {
    /// `[aws]` of a fleet file's text (`None` when it has none). `fleet` is the same file,
    /// already loaded (for the host ids).
    pub fn load(
        name: &str,
        text: &str,
        fleet: &Fleet,
    ) -> Result<Option<AwsSettings>, ConfigErrors> {
        let src = SourceFile::new(name, text);
        let raw: RawFile = spanned::parse(&src)?;
        let Some(aws) = raw.aws else {
            return Ok(None);
        };
        let mut c = Checker::new(&src);
        let s = check(&mut c, aws.get_ref(), fleet);
        c.finish(Some(s))
    }

    /// The EC2 endpoint for `region`.
    pub fn endpoint_for(&self, region: &str) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => super::ec2::default_endpoint(region),
        }
    }

    /// The hosts by region and credentials profile, each `(host id, instance id)`.
    pub fn by_account(&self) -> BTreeMap<Account, Vec<(String, String)>> {
        let mut m: BTreeMap<Account, Vec<(String, String)>> = BTreeMap::new();
        for (host, h) in &self.hosts {
            m.entry(h.account())
                .or_default()
                .push((host.clone(), h.instance.clone()));
        }
        m
    }
}

impl AwsHost {
    pub fn account(&self) -> Account {
        Account {
            region: self.region.clone(),
            profile: self.profile.clone(),
        }
    }
}

fn check(c: &mut Checker, r: &RawAws, fleet: &Fleet) -> AwsSettings {
    let default_region = r.region.as_ref().and_then(|s| region(c, s, "aws.region"));
    let endpoint = r.endpoint.as_ref().and_then(|s| url(c, s, "aws.endpoint"));
    let profile = r
        .profile
        .as_ref()
        .and_then(|p| not_empty(c, p, "aws.profile"));
    let imds = r.imds.as_ref().map(|i| imds(c, i));
    let ids: HashSet<&str> = fleet.hosts.iter().map(|h| h.id.as_str()).collect();
    let mut hosts = BTreeMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (id, h) in &r.host {
        let f = format!("aws.host.{}", id.get_ref());
        if !ids.contains(id.get_ref().as_str()) {
            c.err(
                id.span(),
                &f,
                format!("no host `{}` in this fleet", id.get_ref()),
            );
        }
        let inst = instance(c, &h.instance, &format!("{f}.instance"));
        if let Some(i) = &inst
            && let Some(other) = seen.insert(i.clone(), id.get_ref().clone())
        {
            let msg = format!("{i} is also host `{other}`: one instance is one host");
            c.err(h.instance.span(), format!("{f}.instance"), msg);
        }
        let reg = match &h.region {
            Some(s) => region(c, s, &format!("{f}.region")),
            None if default_region.is_none() => {
                c.err_help(
                    id.span(),
                    &f,
                    "no region for this host",
                    "set `region` here or a default `region` in [aws]",
                );
                None
            }
            None => default_region.clone(),
        };
        let profile = h
            .profile
            .as_ref()
            .and_then(|p| not_empty(c, p, &format!("{f}.profile")));
        if let (Some(instance), Some(region)) = (inst, reg) {
            let host = AwsHost {
                instance,
                region,
                profile,
            };
            hosts.insert(id.get_ref().clone(), host);
        }
    }
    AwsSettings {
        region: default_region,
        endpoint,
        profile,
        imds,
        hosts,
    }
}

fn not_empty(c: &mut Checker, s: &S, field: &str) -> Option<String> {
    let ok = !s.get_ref().trim().is_empty();
    if !ok {
        c.err(s.span(), field, "must not be empty");
    }
    ok.then(|| s.get_ref().clone())
}

fn imds(c: &mut Checker, r: &RawImds) -> MetadataAccess {
    let endpoint = r
        .endpoint
        .as_ref()
        .and_then(|s| url(c, s, "aws.imds.endpoint"))
        .unwrap_or_else(|| DEFAULT_IMDS.into());
    let via = match r.via.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None | Some((_, "ssh")) => Via::Ssh,
        Some((_, "direct")) => Via::Direct,
        Some((v, other)) => {
            let help = "`ssh` (read on the host over the driver's transport) or `direct`";
            c.err_help(
                v.span(),
                "aws.imds.via",
                format!("unknown way `{other}`"),
                help,
            );
            Via::Ssh
        }
    };
    MetadataAccess { endpoint, via }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: letters, dashes, a final number.
fn region(c: &mut Checker, s: &S, field: &str) -> Option<String> {
    let v = s.get_ref();
    let parts: Vec<&str> = v.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u16>().is_ok();
    if !ok {
        c.err_help(
            s.span(),
            field,
            format!("`{v}` is not an AWS region"),
            "e.g. us-east-1",
        );
    }
    ok.then(|| v.clone())
}

fn url(c: &mut Checker, s: &S, field: &str) -> Option<String> {
    let v = s.get_ref().trim();
    let ok = (v.starts_with("http://") || v.starts_with("https://")) && v.len() > "https://".len();
    if !ok {
        c.err_help(
            s.span(),
            field,
            format!("`{v}` is not an http(s) URL"),
            "e.g. http://127.0.0.1:5000",
        );
    }
    ok.then(|| v.trim_end_matches('/').to_string())
}

/// `i-` and 8 or 17 hex digits.
fn instance(c: &mut Checker, s: &S, field: &str) -> Option<String> {
    let v = s.get_ref();
    let hex = v.strip_prefix("i-").unwrap_or("");
    let ok = matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        let help = "an EC2 instance id: i- and 8 or 17 hex digits, e.g. i-0abc1234def567890";
        c.err_help(
            s.span(),
            field,
            format!("`{v}` is not an instance id"),
            help,
        );
    }
    ok.then(|| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &str = "[[host]]\nid = \"redis-1\"\nregion = \"r\"\n\n[[host]]\nid = \"redis-2\"\nregion = \"r\"\n";

    fn load(aws: &str) -> Result<Option<AwsSettings>, ConfigErrors> {
        let text = format!("{FLEET}\n{aws}");
        let dir = std::env::temp_dir();
        let opts = rollcall_fleet::LoadOptions { now: 0 };
        let fleet = rollcall_fleet::load_str("fleet.toml", &text, &dir, &opts)
            .unwrap_or_else(|e| panic!("the fleet loads: {}", e.listing()));
        AwsSettings::load("fleet.toml", &text, &fleet)
    }

    fn errors(aws: &str) -> String {
        let e = load(aws).expect_err("refused");
        e.listing()
    }

    #[test]
    fn no_aws_table_is_none() {
        assert_eq!(load("").unwrap(), None);
    }

    #[test]
    fn hosts_take_the_default_region_or_their_own() {
        let s = load(
            "[aws]\nregion = \"us-east-1\"\nprofile = \"ops\"\n[aws.host.redis-1]\ninstance = \"i-0abc1234def567890\"\n[aws.host.redis-2]\ninstance = \"i-12345678\"\nregion = \"us-west-2\"\nprofile = \"west\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.hosts["redis-1"].region, "us-east-1");
        assert_eq!(s.hosts["redis-2"].region, "us-west-2");
        assert_eq!(s.profile.as_deref(), Some("ops"));
        assert_eq!(
            s.endpoint_for("eu-west-1"),
            "https://ec2.eu-west-1.amazonaws.com"
        );
        assert_eq!(s.hosts["redis-1"].profile, None);
        assert_eq!(s.hosts["redis-2"].profile.as_deref(), Some("west"));
        let accounts: Vec<_> = s.by_account().into_keys().collect();
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[1].profile.as_deref(), Some("west"));
        assert_eq!(s.imds, None);
    }

    #[test]
    fn imds_defaults_to_the_link_local_address_over_ssh() {
        let s = load("[aws]\nregion = \"us-east-1\"\n[aws.imds]\n")
            .unwrap()
            .unwrap();
        let m = s.imds.unwrap();
        assert_eq!((m.endpoint.as_str(), m.via), (DEFAULT_IMDS, Via::Ssh));
        let s = load("[aws]\nendpoint = \"http://127.0.0.1:5000/\"\n[aws.imds]\nendpoint = \"http://127.0.0.1:1338\"\nvia = \"direct\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(s.imds.as_ref().unwrap().via, Via::Direct);
        assert_eq!(s.endpoint_for("us-east-1"), "http://127.0.0.1:5000");
    }

    #[test]
    fn every_mistake_is_reported_with_its_line_and_field() {
        let e = errors(
            "[aws]\nregion = \"useast1\"\nendpoint = \"ec2.local\"\n[aws.imds]\nvia = \"carrier-pigeon\"\n[aws.host.redis-9]\ninstance = \"i-0abc1234def567890\"\n[aws.host.redis-1]\ninstance = \"web-1\"\n",
        );
        for want in [
            "aws.region",
            "not an AWS region",
            "aws.endpoint",
            "aws.imds.via",
            "carrier-pigeon",
            "aws.host.redis-9",
            "no host `redis-9`",
            "aws.host.redis-1.instance",
            "not an instance id",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
        assert!(e.contains("fleet.toml:17:"), "lines are named:\n{e}");
    }

    #[test]
    fn unknown_keys_and_missing_regions_are_refused() {
        let e = errors("[aws]\nregoin = \"us-east-1\"\n");
        assert!(e.contains("regoin"), "{e}");
        let e = errors("[aws.host.redis-1]\ninstance = \"i-12345678\"\n");
        assert!(e.contains("no region for this host"), "{e}");
        let e = errors(
            "[aws]\nregion = \"us-east-1\"\n[aws.host.redis-1]\ninstance = \"i-12345678\"\n[aws.host.redis-2]\ninstance = \"i-12345678\"\n",
        );
        assert!(
            e.contains("aws.host.redis-2.instance") && e.contains("also host `redis-1`"),
            "{e}"
        );
        let e = errors("[aws.host.redis-1]\ninstance = \"i-12345678\"\nzone = \"a\"\n");
        assert!(e.contains("zone"), "{e}");
    }
}
