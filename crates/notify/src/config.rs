//! `[[subscriber]]` and `[notify]` in the fleet file, validated against the fleet with
//! the same `file:line:col: field: message` errors as the rest of the fleet file.
//!
//! ```toml
//! [notify]
//! smtp_host = "127.0.0.1"      # required when any subscriber has `email`
//! smtp_port = 25               # default 25 (tls = "none"/"starttls"), 465 (tls = "tls")
//! tls = "starttls"             # none | starttls | tls
//! tls_ca = "/etc/rollcall/smtp-ca.pem"  # optional: trust this CA (PEM) besides the system's
//! from = "Maintenance <maint@example.net>"
//! smtp_user_env = "SMTP_USER"  # optional: credentials from the environment
//! smtp_password_env = "SMTP_PASSWORD"
//! timeout = "10s"              # per delivery attempt
//! attempts = 5                 # attempts per delivery round (exponential backoff with jitter)
//! backoff = "500ms"            # first retry delay; doubles each attempt, capped at 30s
//! concurrency = 64             # deliveries in flight at most
//! remind_before = "1h"         # optional reminder before a region's expected start
//!
//! [[subscriber]]
//! id = "acme-ops"              # optional, unique (default: the address or URL)
//! tenant = "acme"              # optional: without it, only regions (public view)
//! components = ["dfw", "acme-search"]   # region names and/or the tenant's cluster ids
//! email = "ops@acme.example"   # exactly one of email / webhook
//! # webhook = "https://hooks.acme.example/rollcall"
//! # secret_env = "ACME_WEBHOOK_SECRET"  # whsec_<base64>; required unless format = "slack"
//! # format = "statuspage"      # statuspage (default) | slack
//! ```

use base64::Engine as _;
use rollcall_core::model::{ClusterIx, Fleet, RegionIx};
use rollcall_fleet::error::{ConfigErrors, SourceFile};
use rollcall_fleet::spanned::{self, Checker, S, Spanned};
use serde::Deserialize;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

#[derive(Debug, Deserialize)]
struct RawDoc {
    #[serde(default)]
    subscriber: Vec<Spanned<RawSubscriber>>,
    notify: Option<Spanned<RawNotify>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscriber {
    id: Option<S>,
    tenant: Option<S>,
    components: Option<Spanned<Vec<S>>>,
    email: Option<S>,
    webhook: Option<S>,
    secret_env: Option<S>,
    format: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    smtp_host: Option<S>,
    smtp_port: Option<Spanned<i64>>,
    tls: Option<S>,
    tls_ca: Option<S>,
    from: Option<S>,
    smtp_user_env: Option<S>,
    smtp_password_env: Option<S>,
    timeout: Option<S>,
    attempts: Option<Spanned<i64>>,
    backoff: Option<S>,
    concurrency: Option<Spanned<i64>>,
    remind_before: Option<S>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Statuspage's subscriber webhook body (an `incident` of impact `maintenance`).
    Statuspage,
    /// `{"text": ...}` for Slack-compatible incoming webhooks.
    Slack,
}

#[derive(Debug, Clone)]
pub enum Channel {
    Email(String),
    Webhook {
        url: String,
        /// HMAC key (decoded from `whsec_<base64>`); `None` only for Slack.
        secret: Option<Vec<u8>>,
        format: Format,
    },
}

#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: String,
    /// `None`: a public subscriber (region view only).
    pub tenant: Option<String>,
    pub regions: BTreeSet<RegionIx>,
    pub clusters: BTreeSet<ClusterIx>,
    pub channel: Channel,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// Extra trusted CA certificate (PEM) for STARTTLS / TLS.
    pub ca_pem: Option<Vec<u8>>,
    pub from: String,
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub smtp: Option<Smtp>,
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
    pub concurrency: usize,
    /// Seconds (run clock) before a region's expected start.
    pub remind_before: Option<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            smtp: None,
            timeout: Duration::from_secs(10),
            attempts: 5,
            backoff: Duration::from_millis(500),
            concurrency: 64,
            remind_before: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    pub settings: Settings,
    pub subscribers: Vec<Subscriber>,
}

/// A duration with sub-second units: `250ms`, `10s`, `5m`, `1h`.
fn parse_real_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("`{s}` is not a duration (e.g. 500ms, 10s, 2m)"));
    }
    rollcall_core::parse_duration(s)
        .ok()
        .filter(|d| *d >= 0)
        .map(|d| Duration::from_secs(d as u64))
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 500ms, 10s, 2m)"))
}

/// Decode a Standard Webhooks secret `whsec_<base64>`.
pub fn decode_secret(v: &str) -> Result<Vec<u8>, String> {
    let b = v
        .trim()
        .strip_prefix("whsec_")
        .ok_or("a webhook secret must look like whsec_<base64>")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b)
        .map_err(|e| format!("the part after whsec_ is not base64: {e}"))?;
    if key.len() < 16 {
        return Err(format!(
            "the secret is {} bytes; use at least 16 (24-64 random bytes recommended)",
            key.len()
        ));
    }
    Ok(key)
}

/// Read `[[subscriber]]` and `[notify]` from fleet text already validated into `fleet`.
/// `env` resolves `*_env` settings (pass `|k| std::env::var(k).ok()`).
pub fn load(
    name: &str,
    text: &str,
    fleet: &Fleet,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NotifyConfig, ConfigErrors> {
    let src = SourceFile::new(name, text);
    let raw: RawDoc = spanned::parse(&src)?;
    let mut ck = Checker::new(&src);
    let mut settings = Settings::default();
    let mut smtp_host = None;
    let mut smtp_port = None;
    let mut tls = Tls::Starttls;
    let mut ca_pem = None;
    let mut from = None;
    let mut creds = (None, None);
    if let Some(n) = &raw.notify {
        let n = n.get_ref();
        if let Some(h) = &n.smtp_host {
            if h.get_ref().trim().is_empty() {
                ck.err(h.span(), "notify.smtp_host", "empty host");
            } else {
                smtp_host = Some(h.get_ref().trim().to_string());
            }
        }
        if let Some(p) = &n.smtp_port {
            smtp_port = ck.port(p, "notify.smtp_port");
        }
        if let Some(t) = &n.tls {
            match t.get_ref().as_str() {
                "none" => tls = Tls::None,
                "starttls" => tls = Tls::Starttls,
                "tls" => tls = Tls::Tls,
                o => ck.err(
                    t.span(),
                    "notify.tls",
                    format!("unknown `{o}` (none, starttls, tls)"),
                ),
            }
        }
        if let Some(c) = &n.tls_ca {
            match std::fs::read(c.get_ref()) {
                Ok(pem) => match lettre::transport::smtp::client::Certificate::from_pem(&pem) {
                    Ok(_) => ca_pem = Some(pem),
                    Err(e) => ck.err(
                        c.span(),
                        "notify.tls_ca",
                        format!("{}: not a PEM certificate: {e}", c.get_ref()),
                    ),
                },
                Err(e) => ck.err(
                    c.span(),
                    "notify.tls_ca",
                    format!("cannot read {}: {e}", c.get_ref()),
                ),
            }
        }
        if let Some(f) = &n.from {
            match f.get_ref().parse::<lettre::message::Mailbox>() {
                Ok(_) => from = Some(f.get_ref().clone()),
                Err(e) => ck.err(
                    f.span(),
                    "notify.from",
                    format!("`{}` is not a mail address: {e}", f.get_ref()),
                ),
            }
        }
        for (i, (v, field)) in [
            (&n.smtp_user_env, "notify.smtp_user_env"),
            (&n.smtp_password_env, "notify.smtp_password_env"),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v {
                match env(v.get_ref()) {
                    Some(x) => {
                        if i == 0 {
                            creds.0 = Some(x)
                        } else {
                            creds.1 = Some(x)
                        }
                    }
                    None => ck.err(
                        v.span(),
                        field,
                        format!("environment variable {} is not set", v.get_ref()),
                    ),
                }
            }
        }
        if n.smtp_user_env.is_some() != n.smtp_password_env.is_some() {
            ck.err(
                raw.notify.as_ref().map(|n| n.span()).unwrap_or(0..0),
                "notify",
                "give both smtp_user_env and smtp_password_env, or neither",
            );
        }
        for (v, field, slot) in [
            (&n.timeout, "notify.timeout", &mut settings.timeout),
            (&n.backoff, "notify.backoff", &mut settings.backoff),
        ] {
            if let Some(v) = v {
                match parse_real_duration(v.get_ref()) {
                    Ok(d) if !d.is_zero() || field == "notify.backoff" => *slot = d,
                    Ok(_) => ck.err(v.span(), field, "must be more than 0"),
                    Err(e) => ck.err(v.span(), field, e),
                }
            }
        }
        if let Some(a) = &n.attempts {
            match u32::try_from(*a.get_ref()) {
                Ok(a) if (1..=100).contains(&a) => settings.attempts = a,
                _ => ck.err(
                    a.span(),
                    "notify.attempts",
                    format!("{} is out of range (1-100)", a.get_ref()),
                ),
            }
        }
        if let Some(c) = &n.concurrency {
            match usize::try_from(*c.get_ref()) {
                Ok(c) if (1..=10_000).contains(&c) => settings.concurrency = c,
                _ => ck.err(
                    c.span(),
                    "notify.concurrency",
                    format!("{} is out of range (1-10000)", c.get_ref()),
                ),
            }
        }
        if let Some(r) = &n.remind_before {
            match rollcall_core::parse_duration(r.get_ref()) {
                Ok(d) if d > 0 => settings.remind_before = Some(d),
                Ok(_) => ck.err(r.span(), "notify.remind_before", "must be more than 0"),
                Err(e) => ck.err(r.span(), "notify.remind_before", e),
            }
        }
    }

    let mut subscribers = Vec::new();
    let mut ids = HashSet::new();
    let mut any_email = None;
    for (i, s) in raw.subscriber.iter().enumerate() {
        let span = s.span();
        let s = s.get_ref();
        let f = |k: &str| format!("subscriber[{i}].{k}");
        let tenant = match &s.tenant {
            Some(t) if fleet.tenants.iter().any(|x| &x.id == t.get_ref()) => {
                Some(t.get_ref().clone())
            }
            Some(t) => {
                ck.err(
                    t.span(),
                    f("tenant"),
                    format!("no tenant `{}` in this fleet", t.get_ref()),
                );
                None
            }
            None => None,
        };
        let mut regions = BTreeSet::new();
        let mut clusters = BTreeSet::new();
        match &s.components {
            None => ck.err(
                span.clone(),
                format!("subscriber[{i}]"),
                "missing `components` (region names and/or cluster ids)",
            ),
            Some(c) if c.get_ref().is_empty() => ck.err(
                c.span(),
                f("components"),
                "empty: name at least one region or cluster",
            ),
            Some(c) => {
                for (j, comp) in c.get_ref().iter().enumerate() {
                    let name = comp.get_ref();
                    if let Some(r) = fleet.regions.iter().position(|x| x == name) {
                        regions.insert(r as RegionIx);
                    } else if let Some(ci) = fleet.clusters.iter().position(|x| &x.id == name) {
                        let owner = fleet.clusters[ci].tenant.as_deref();
                        match (s.tenant.as_ref().map(|t| t.get_ref().as_str()), owner) {
                            (Some(t), Some(o)) if t == o => {
                                clusters.insert(ci as ClusterIx);
                            }
                            (None, _) => ck.err(
                                comp.span(),
                                format!("subscriber[{i}].components[{j}]"),
                                format!(
                                    "`{name}` is a cluster; a subscriber without a tenant sees the public region view only"
                                ),
                            ),
                            (Some(t), _) => ck.err(
                                comp.span(),
                                format!("subscriber[{i}].components[{j}]"),
                                format!("cluster `{name}` does not belong to tenant `{t}`"),
                            ),
                        }
                    } else {
                        ck.err(
                            comp.span(),
                            format!("subscriber[{i}].components[{j}]"),
                            format!("`{name}` is neither a region nor a cluster of this fleet"),
                        );
                    }
                }
            }
        }
        let format = match &s.format {
            None => Format::Statuspage,
            Some(v) => match v.get_ref().as_str() {
                "statuspage" => Format::Statuspage,
                "slack" => Format::Slack,
                o => {
                    ck.err(
                        v.span(),
                        f("format"),
                        format!("unknown format `{o}` (statuspage, slack)"),
                    );
                    Format::Statuspage
                }
            },
        };
        let channel = match (&s.email, &s.webhook) {
            (Some(e), None) => {
                if s.secret_env.is_some() || s.format.is_some() {
                    ck.err(
                        span.clone(),
                        format!("subscriber[{i}]"),
                        "secret_env and format apply to webhooks only",
                    );
                }
                if let Err(err) = e.get_ref().parse::<lettre::Address>() {
                    ck.err(
                        e.span(),
                        f("email"),
                        format!("`{}` is not a mail address: {err}", e.get_ref()),
                    );
                }
                any_email.get_or_insert(e.span());
                Some(Channel::Email(e.get_ref().clone()))
            }
            (None, Some(w)) => {
                match reqwest::Url::parse(w.get_ref()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    Ok(_) => ck.err(
                        w.span(),
                        f("webhook"),
                        "only http:// and https:// URLs with a host",
                    ),
                    Err(e) => ck.err(
                        w.span(),
                        f("webhook"),
                        format!("`{}` is not a URL: {e}", w.get_ref()),
                    ),
                }
                let secret = match &s.secret_env {
                    Some(v) => match env(v.get_ref()) {
                        Some(x) => match decode_secret(&x) {
                            Ok(k) => Some(k),
                            Err(e) => {
                                ck.err(
                                    v.span(),
                                    f("secret_env"),
                                    format!("environment variable {}: {e}", v.get_ref()),
                                );
                                None
                            }
                        },
                        None => {
                            ck.err(
                                v.span(),
                                f("secret_env"),
                                format!("environment variable {} is not set", v.get_ref()),
                            );
                            None
                        }
                    },
                    None => {
                        if format != Format::Slack {
                            ck.err(
                                w.span(),
                                f("secret_env"),
                                "missing: webhooks are signed (Standard Webhooks); name the environment variable holding the whsec_ secret",
                            );
                        }
                        None
                    }
                };
                Some(Channel::Webhook {
                    url: w.get_ref().clone(),
                    secret,
                    format,
                })
            }
            (Some(_), Some(w)) => {
                ck.err(
                    w.span(),
                    f("webhook"),
                    "give either email or webhook, not both (use two subscribers)",
                );
                None
            }
            (None, None) => {
                ck.err(
                    span.clone(),
                    format!("subscriber[{i}]"),
                    "missing a channel: `email = ...` or `webhook = ...`",
                );
                None
            }
        };
        let id = match (&s.id, &channel) {
            (Some(id), _) => Some((id.get_ref().clone(), id.span())),
            (None, Some(Channel::Email(e))) => Some((e.clone(), span.clone())),
            (None, Some(Channel::Webhook { url, .. })) => Some((url.clone(), span.clone())),
            _ => None,
        };
        if let Some((id, sp)) = &id
            && !ids.insert(id.clone())
        {
            ck.err(
                sp.clone(),
                f("id"),
                format!("subscriber id `{id}` is used twice; give each an `id`"),
            );
        }
        if let (Some((id, _)), Some(channel)) = (id, channel) {
            subscribers.push(Subscriber {
                id,
                tenant,
                regions,
                clusters,
                channel,
            });
        }
    }
    if let Some(sp) = any_email {
        match (&smtp_host, &from) {
            (Some(host), Some(from)) => {
                settings.smtp = Some(Smtp {
                    host: host.clone(),
                    port: smtp_port.unwrap_or(if tls == Tls::Tls { 465 } else { 25 }),
                    tls,
                    ca_pem: ca_pem.clone(),
                    from: from.clone(),
                    credentials: match creds {
                        (Some(u), Some(p)) => Some((u, p)),
                        _ => None,
                    },
                });
            }
            _ => ck.err(
                sp,
                "notify",
                "email subscribers need [notify] smtp_host and from",
            ),
        }
    }
    ck.finish(NotifyConfig {
        settings,
        subscribers,
    })
}
