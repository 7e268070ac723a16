//! The metadata sources' settings, read from the fleet file: `[azure]` and `[gcp]` (and,
//! through [`check_metadata`], the AWS table's `[aws.imds]`). Errors name the file, line,
//! column and field, like the rest of the fleet file; unknown keys and host ids that are
//! not in the fleet are rejected.
//!
//! ```toml
//! [azure]
//! endpoint = "http://169.254.169.254"   # default
//! via = "ssh"                           # "ssh" (default): curl on the host; "direct"
//! [azure.host.etcd-1]                   # the fleet hosts on Azure (at least one)
//! endpoint = "http://10.9.0.1:8080/etcd-1"   # optional per-host override
//!
//! [gcp]                                 # same shape; default endpoint http://metadata.google.internal
//! [gcp.host.redis-1]
//! ```

use crate::wire::MetaHost;
use crate::{MetadataAccess, Via};
use rollcall_fleet::error::{ConfigErrors, SourceFile};
use rollcall_fleet::spanned::{self, Checker, S, Spanned};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

pub const AZURE_ENDPOINT: &str = "http://169.254.169.254";
pub const GCP_ENDPOINT: &str = "http://metadata.google.internal";
pub const AWS_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// One metadata table as written (`[azure]`, `[gcp]`, `[aws.imds]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetadata {
    pub endpoint: Option<S>,
    pub via: Option<S>,
    #[serde(default)]
    pub host: BTreeMap<S, RawMetadataHost>,
}

/// `[<table>.host.<id>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetadataHost {
    pub endpoint: Option<S>,
}

/// A checked metadata table: where and how, and the hosts it lists with their endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSettings {
    pub access: MetadataAccess,
    /// `[<table>.host.<id>]`, in id order, each with its endpoint (the table's unless
    /// overridden).
    pub hosts: Vec<MetaHost>,
}

impl MetadataSettings {
    /// The endpoint for fleet host `host` (its override, else the table's).
    pub fn endpoint_for(&self, host: &str) -> &str {
        self.hosts
            .iter()
            .find(|h| h.host == host)
            .map_or(self.access.endpoint.as_str(), |h| h.endpoint.as_str())
    }
}

/// Check one metadata table; `table` is its field path (`azure`, `aws.imds`), errors go
/// to `c`. Hosts are optional here ([`ProviderSettings::load`] wants at least one for
/// `[azure]` and `[gcp]`; `[aws.imds]` covers the `[aws.host.<id>]` hosts).
pub fn check_metadata(
    c: &mut Checker,
    raw: &RawMetadata,
    table: &str,
    default_endpoint: &str,
    host_ids: &HashSet<&str>,
) -> MetadataSettings {
    let field = format!("{table}.endpoint");
    let base = raw
        .endpoint
        .as_ref()
        .map_or(default_endpoint.to_string(), |e| endpoint(c, e, &field));
    let via = raw.via.as_ref().map_or(Via::Ssh, |v| via(c, v, table));
    let mut hosts = Vec::new();
    for (id, h) in &raw.host {
        let f = format!("{table}.host.{}", id.get_ref());
        if !host_ids.contains(id.get_ref().as_str()) {
            c.err(
                id.span(),
                &f,
                format!("no host `{}` in this fleet", id.get_ref()),
            );
        }
        let ep = h
            .endpoint
            .as_ref()
            .map_or(base.clone(), |e| endpoint(c, e, &format!("{f}.endpoint")));
        hosts.push(MetaHost::new(id.get_ref(), ep));
    }
    MetadataSettings {
        access: MetadataAccess {
            endpoint: base,
            via,
        },
        hosts,
    }
}

fn endpoint(c: &mut Checker, e: &S, field: &str) -> String {
    let v = e.get_ref().trim();
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
        c.err_help(
            e.span(),
            field,
            format!("`{v}` is not an http(s) URL"),
            "write a base URL like \"http://169.254.169.254\"",
        );
    }
    v.trim_end_matches('/').to_string()
}

fn via(c: &mut Checker, v: &S, table: &str) -> Via {
    match v.get_ref().as_str() {
        "ssh" => Via::Ssh,
        "direct" => Via::Direct,
        other => {
            c.err_help(
                v.span(),
                format!("{table}.via"),
                format!("unknown via `{other}`"),
                "\"ssh\" (curl on the host over the driver's transport) or \"direct\" (from rollcall's own process)",
            );
            Via::Ssh
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawFile {
    azure: Option<Spanned<RawMetadata>>,
    gcp: Option<Spanned<RawMetadata>>,
}

/// `[azure]` and `[gcp]` of a fleet file (`None`: the table is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    pub azure: Option<MetadataSettings>,
    pub gcp: Option<MetadataSettings>,
}

impl ProviderSettings {
    /// Read `[azure]` and `[gcp]` from a fleet file's text; `host_ids` are the fleet's
    /// hosts. Every problem is reported at once.
    pub fn load(name: &str, text: &str, host_ids: &[&str]) -> Result<Self, ConfigErrors> {
        let src = SourceFile::new(name, text);
        let raw: RawFile = spanned::parse(&src)?;
        let ids: HashSet<&str> = host_ids.iter().copied().collect();
        let mut c = Checker::new(&src);
        let azure = raw
            .azure
            .as_ref()
            .map(|t| cloud(&mut c, t, "azure", AZURE_ENDPOINT, &ids));
        let gcp = raw
            .gcp
            .as_ref()
            .map(|t| cloud(&mut c, t, "gcp", GCP_ENDPOINT, &ids));
        if let (Some(a), Some(g), Some(t)) = (&azure, &gcp, &raw.gcp) {
            for h in g
                .hosts
                .iter()
                .filter(|h| a.hosts.iter().any(|x| x.host == h.host))
            {
                let f = format!("gcp.host.{}", h.host);
                c.err(
                    t.span(),
                    f,
                    format!("`{}` is listed under [azure] too", h.host),
                );
            }
        }
        c.finish(ProviderSettings { azure, gcp })
    }
}

/// `[azure]` or `[gcp]`: a metadata table that lists its hosts.
fn cloud(
    c: &mut Checker,
    t: &Spanned<RawMetadata>,
    table: &str,
    default_endpoint: &str,
    ids: &HashSet<&str>,
) -> MetadataSettings {
    let s = check_metadata(c, t.get_ref(), table, default_endpoint, ids);
    if s.hosts.is_empty() {
        c.err_help(
            t.span(),
            table,
            "lists no host",
            format!("add a [{table}.host.<id>] table for each fleet host on this cloud"),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &[&str] = &["etcd-1", "etcd-2", "redis-1"];

    fn load(text: &str) -> Result<ProviderSettings, ConfigErrors> {
        ProviderSettings::load("fleet.toml", text, HOSTS)
    }

    fn errors(text: &str) -> Vec<(Option<usize>, String, String)> {
        load(text)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| (e.line, e.field, e.message))
            .collect()
    }

    #[test]
    fn defaults_are_the_documented_endpoints_read_over_ssh() {
        let s = load("[azure.host.etcd-1]\n[gcp.host.redis-1]\n").unwrap();
        let a = s.azure.unwrap();
        assert_eq!(
            a.access,
            MetadataAccess {
                endpoint: AZURE_ENDPOINT.into(),
                via: Via::Ssh
            }
        );
        assert_eq!(a.hosts, [MetaHost::new("etcd-1", AZURE_ENDPOINT)]);
        assert_eq!(s.gcp.unwrap().endpoint_for("redis-1"), GCP_ENDPOINT);
    }

    #[test]
    fn a_host_endpoint_overrides_the_table_and_via_direct_is_read() {
        let text = "[azure]\nendpoint = \"http://10.0.0.1:80/\"\nvia = \"direct\"\n[azure.host.etcd-1]\nendpoint = \"http://10.9.0.1:8080/etcd-1\"\n[azure.host.etcd-2]\n";
        let a = load(text).unwrap().azure.unwrap();
        assert_eq!(a.access.via, Via::Direct);
        assert_eq!(a.endpoint_for("etcd-1"), "http://10.9.0.1:8080/etcd-1");
        assert_eq!(a.endpoint_for("etcd-2"), "http://10.0.0.1:80");
        assert_eq!(load("").unwrap(), ProviderSettings::default());
    }

    #[test]
    fn every_bad_field_is_reported_at_its_line() {
        let text = "[azure]\nvia = \"carrier-pigeon\"\nendpoint = \"169.254.169.254\"\n[azure.host.db-9]\n[gcp]\n";
        let got = errors(text);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.contains(&(
            Some(2),
            "azure.via".into(),
            "unknown via `carrier-pigeon`".into()
        )));
        assert!(got.contains(&(
            Some(3),
            "azure.endpoint".into(),
            "`169.254.169.254` is not an http(s) URL".into()
        )));
        assert!(got.contains(&(
            Some(4),
            "azure.host.db-9".into(),
            "no host `db-9` in this fleet".into()
        )));
        assert!(
            got.iter().any(|e| e.1 == "gcp" && e.2 == "lists no host"),
            "{got:?}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_its_field() {
        let got = errors("[gcp]\nendpiont = \"http://x\"\n[gcp.host.etcd-1]\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].0, got[0].1.as_str()), (Some(2), "gcp.endpiont"));
        assert!(
            got[0].2.contains("unknown field `endpiont`"),
            "{}",
            got[0].2
        );
    }

    #[test]
    fn a_host_on_two_clouds_is_an_error() {
        let got = errors("[azure.host.etcd-1]\n[gcp.host.etcd-1]\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, "gcp.host.etcd-1");
    }
}
