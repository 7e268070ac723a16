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
//! escalate_after = "15m"       # a region held this long by an unreached subscriber is
//!                              # escalated to the operator (default 15m; "never")
//! escalate_rounds = 20         # optional: or after this many failed announcement rounds
//! page_url = "https://status.example.net"  # optional: links to /incidents/{id}, unsubscribe links
//! unsubscribe_mailto = "unsubscribe@example.net"  # optional: a mailto in List-Unsubscribe
//! tz = "America/Chicago"       # time zone of times in messages (default UTC; UTC beside)
//!
//! [[subscriber]]
//! id = "acme-ops"              # optional, unique (default: the address or URL)
//! tenant = "acme"              # optional: without it, only regions (public view)
//! components = ["dfw", "acme-search"]   # region names and/or the tenant's cluster ids
//! email = "ops@acme.example"   # exactly one of email / webhook
//! # webhook = "https://hooks.acme.example/rollcall"
//! # secret_env = "ACME_WEBHOOK_SECRET"  # whsec_<base64>; required unless format = "slack"
//! # format = "statuspage"      # statuspage (default) | slack
//!
//! [[subscriber]]
//! id = "noc"
//! operator = true              # the operator's channel: escalations only, no tenant or
//! webhook = "https://noc.provider.example/hooks/rollcall"   # components
//! secret_env = "NOC_WEBHOOK_SECRET"
//! # tz = "Europe/Berlin"        # this subscriber's time zone (default: [notify] tz)
//! ```

use base64::Engine as _;
use jiff::tz::TimeZone;
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
    operator: Option<Spanned<bool>>,
    tz: Option<S>,
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
    escalate_after: Option<S>,
    escalate_rounds: Option<Spanned<i64>>,
    page_url: Option<S>,
    unsubscribe_mailto: Option<S>,
    tz: Option<S>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tls {
    None,
    #[default]
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
    /// `operator = true`: the operator's own channel. It receives operator notices only
    /// (an announcement that cannot reach a subscriber, escalated), never customers'.
    pub operator: bool,
    /// Times in this zone (`None`: `[notify] tz`).
    pub tz: Option<TimeZone>,
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
    /// How long (run clock, seconds) an announcement may fail to reach a subscriber
    /// before the hold is escalated to the operator; `None`: never by time.
    pub escalate_after: Option<i64>,
    /// After this many failed announcement rounds the hold is escalated; `None`: never
    /// by rounds.
    pub escalate_rounds: Option<u32>,
    /// The status page's public URL, without a trailing slash: links to
    /// `/incidents/{id}` and `/unsubscribe/{token}`.
    pub page_url: Option<String>,
    /// An address for `mailto:` unsubscribes.
    pub unsubscribe_mailto: Option<String>,
    /// Times in messages are in this zone (UTC beside); default UTC.
    pub tz: TimeZone,
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
            escalate_after: Some(DEFAULT_ESCALATE_AFTER),
            escalate_rounds: None,
            page_url: None,
            unsubscribe_mailto: None,
            tz: TimeZone::UTC,
        }
    }
}

/// `escalate_after`'s default: 15 minutes of a region held by an unreached subscriber.
pub const DEFAULT_ESCALATE_AFTER: i64 = 15 * 60;

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
    let mut mail = Mail::default();
    if let Some(n) = &raw.notify {
        mail = mail_settings(&mut ck, n, env);
        delivery_settings(&mut ck, n.get_ref(), &mut settings);
    }
    let mut subscribers = Vec::new();
    let mut ids = HashSet::new();
    let mut any_email = None;
    for (i, s) in raw.subscriber.iter().enumerate() {
        let sub = subscriber(&mut ck, i, s, fleet, env, &mut any_email);
        let Some((sub, id_span)) = sub else {
            continue;
        };
        if !ids.insert(sub.id.clone()) {
            ck.err(
                id_span,
                format!("subscriber[{i}].id"),
                format!(
                    "subscriber id `{}` is used twice; give each an `id`",
                    sub.id
                ),
            );
        }
        if let Some(sub) = sub.complete() {
            subscribers.push(sub);
        }
    }
    if let Some(sp) = any_email {
        match mail.smtp() {
            Some(smtp) => settings.smtp = Some(smtp),
            None => ck.err(
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

/// What `[notify]` says about sending mail.
#[derive(Default)]
struct Mail {
    host: Option<String>,
    port: Option<u16>,
    tls: Tls,
    ca_pem: Option<Vec<u8>>,
    from: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

impl Mail {
    /// The SMTP settings, when a host and a sender are given.
    fn smtp(self) -> Option<Smtp> {
        let (Some(host), Some(from)) = (self.host, self.from) else {
            return None;
        };
        Some(Smtp {
            host,
            port: self
                .port
                .unwrap_or(if self.tls == Tls::Tls { 465 } else { 25 }),
            tls: self.tls,
            ca_pem: self.ca_pem,
            from,
            credentials: self.user.zip(self.password),
        })
    }
}

/// `[notify]`: the SMTP server, its TLS, the sender and the credentials.
fn mail_settings(
    ck: &mut Checker,
    notify: &Spanned<RawNotify>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Mail {
    let n = notify.get_ref();
    let mut mail = Mail::default();
    if let Some(h) = &n.smtp_host {
        if h.get_ref().trim().is_empty() {
            ck.err(h.span(), "notify.smtp_host", "empty host");
        } else {
            mail.host = Some(h.get_ref().trim().to_string());
        }
    }
    if let Some(p) = &n.smtp_port {
        mail.port = ck.port(p, "notify.smtp_port");
    }
    if let Some(t) = &n.tls {
        match t.get_ref().as_str() {
            "none" => mail.tls = Tls::None,
            "starttls" => mail.tls = Tls::Starttls,
            "tls" => mail.tls = Tls::Tls,
            o => ck.err(
                t.span(),
                "notify.tls",
                format!("unknown `{o}` (none, starttls, tls)"),
            ),
        }
    }
    if let Some(c) = &n.tls_ca {
        mail.ca_pem = tls_ca(ck, c);
    }
    if let Some(f) = &n.from {
        match f.get_ref().parse::<lettre::message::Mailbox>() {
            Ok(_) => mail.from = Some(f.get_ref().clone()),
            Err(e) => ck.err(
                f.span(),
                "notify.from",
                format!("`{}` is not a mail address: {e}", f.get_ref()),
            ),
        }
    }
    mail.user = env_var(ck, &n.smtp_user_env, "notify.smtp_user_env", env);
    mail.password = env_var(ck, &n.smtp_password_env, "notify.smtp_password_env", env);
    if n.smtp_user_env.is_some() != n.smtp_password_env.is_some() {
        ck.err(
            notify.span(),
            "notify",
            "give both smtp_user_env and smtp_password_env, or neither",
        );
    }
    mail
}

/// `tls_ca`: a PEM certificate file, read now.
fn tls_ca(ck: &mut Checker, c: &S) -> Option<Vec<u8>> {
    match std::fs::read(c.get_ref()) {
        Ok(pem) => match lettre::transport::smtp::client::Certificate::from_pem(&pem) {
            Ok(_) => Some(pem),
            Err(e) => {
                let msg = format!("{}: not a PEM certificate: {e}", c.get_ref());
                ck.err(c.span(), "notify.tls_ca", msg);
                None
            }
        },
        Err(e) => {
            let msg = format!("cannot read {}: {e}", c.get_ref());
            ck.err(c.span(), "notify.tls_ca", msg);
            None
        }
    }
}

/// The value of the environment variable a `*_env` setting names (unset: an error).
fn env_var(
    ck: &mut Checker,
    v: &Option<S>,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let v = v.as_ref()?;
    let value = env(v.get_ref());
    if value.is_none() {
        let msg = format!("environment variable {} is not set", v.get_ref());
        ck.err(v.span(), field, msg);
    }
    value
}

/// `[notify]`: timeouts, retries, concurrency and reminders.
fn delivery_settings(ck: &mut Checker, n: &RawNotify, settings: &mut Settings) {
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
    if let Some(u) = &n.page_url {
        settings.page_url = page_url(ck, u);
    }
    if let Some(m) = &n.unsubscribe_mailto {
        match m.get_ref().parse::<lettre::Address>() {
            Ok(_) => settings.unsubscribe_mailto = Some(m.get_ref().clone()),
            Err(e) => ck.err(
                m.span(),
                "notify.unsubscribe_mailto",
                format!("`{}` is not a mail address: {e}", m.get_ref()),
            ),
        }
    }
    if let Some(t) = &n.tz
        && let Some(tz) = time_zone(ck, t, "notify.tz")
    {
        settings.tz = tz;
    }
    if let Some(r) = &n.remind_before {
        match rollcall_core::parse_duration(r.get_ref()) {
            Ok(d) if d > 0 => settings.remind_before = Some(d),
            Ok(_) => ck.err(r.span(), "notify.remind_before", "must be more than 0"),
            Err(e) => ck.err(r.span(), "notify.remind_before", e),
        }
    }
    escalation_settings(ck, n, settings);
}

/// `escalate_after` (a duration, or `"never"`) and `escalate_rounds`.
fn escalation_settings(ck: &mut Checker, n: &RawNotify, settings: &mut Settings) {
    if let Some(e) = &n.escalate_after {
        match e.get_ref().trim() {
            "never" => settings.escalate_after = None,
            v => match rollcall_core::parse_duration(v) {
                Ok(d) if d > 0 => settings.escalate_after = Some(d),
                Ok(_) => ck.err(e.span(), "notify.escalate_after", "must be more than 0"),
                Err(why) => ck.err(
                    e.span(),
                    "notify.escalate_after",
                    format!("{why} (or \"never\")"),
                ),
            },
        }
    }
    if let Some(r) = &n.escalate_rounds {
        match u32::try_from(*r.get_ref()) {
            Ok(r) if (1..=1_000_000).contains(&r) => settings.escalate_rounds = Some(r),
            _ => ck.err(
                r.span(),
                "notify.escalate_rounds",
                format!("{} is out of range (1-1000000)", r.get_ref()),
            ),
        }
    }
}

/// `page_url`: an absolute http(s) URL; kept without its trailing slash.
fn page_url(ck: &mut Checker, u: &S) -> Option<String> {
    match reqwest::Url::parse(u.get_ref()) {
        Ok(x) if matches!(x.scheme(), "http" | "https") && x.host().is_some() => {
            Some(u.get_ref().trim_end_matches('/').to_string())
        }
        Ok(_) => {
            ck.err(
                u.span(),
                "notify.page_url",
                "only http:// and https:// URLs with a host",
            );
            None
        }
        Err(e) => {
            let msg = format!("`{}` is not a URL: {e}", u.get_ref());
            ck.err(u.span(), "notify.page_url", msg);
            None
        }
    }
}

/// An IANA time zone name (`America/Chicago`, `UTC`).
fn time_zone(ck: &mut Checker, t: &S, field: &str) -> Option<TimeZone> {
    match TimeZone::get(t.get_ref()) {
        Ok(tz) => Some(tz),
        Err(e) => {
            let msg = format!(
                "`{}` is not a known time zone (an IANA name such as America/Chicago or UTC): {e}",
                t.get_ref()
            );
            ck.err(t.span(), field, msg);
            None
        }
    }
}

/// A subscriber as read, before its id is known to be unique.
struct Draft {
    id: String,
    tenant: Option<String>,
    regions: BTreeSet<RegionIx>,
    clusters: BTreeSet<ClusterIx>,
    channel: Option<Channel>,
    operator: bool,
    tz: Option<TimeZone>,
}

impl Draft {
    fn complete(self) -> Option<Subscriber> {
        Some(Subscriber {
            id: self.id,
            tenant: self.tenant,
            regions: self.regions,
            clusters: self.clusters,
            channel: self.channel?,
            operator: self.operator,
            tz: self.tz,
        })
    }
}

/// The `i`th `[[subscriber]]`, with the span its id is reported at; `None` when it has
/// no id (none given and no valid channel to name it by). The first email
/// subscriber's span goes to `any_email`.
fn subscriber(
    ck: &mut Checker,
    i: usize,
    sub: &Spanned<RawSubscriber>,
    fleet: &Fleet,
    env: &dyn Fn(&str) -> Option<String>,
    any_email: &mut Option<std::ops::Range<usize>>,
) -> Option<(Draft, std::ops::Range<usize>)> {
    let span = sub.span();
    let s = sub.get_ref();
    let f = |k: &str| format!("subscriber[{i}].{k}");
    let tenant = match &s.tenant {
        Some(t) if fleet.tenants.iter().any(|x| &x.id == t.get_ref()) => Some(t.get_ref().clone()),
        Some(t) => {
            let msg = format!("no tenant `{}` in this fleet", t.get_ref());
            ck.err(t.span(), f("tenant"), msg);
            None
        }
        None => None,
    };
    let operator = s.operator.as_ref().is_some_and(|o| *o.get_ref());
    let (regions, clusters) = match operator {
        true => {
            operator_only(ck, i, sub);
            Default::default()
        }
        false => components(ck, i, sub, fleet),
    };
    let format = webhook_format(ck, s, &f);
    let channel = channel(ck, i, sub, format, env);
    if let Some(Channel::Email(_)) = &channel
        && let Some(e) = &s.email
    {
        any_email.get_or_insert(e.span());
    }
    let (id, id_span) = match (&s.id, &channel) {
        (Some(id), _) => (id.get_ref().clone(), id.span()),
        (None, Some(Channel::Email(e))) => (e.clone(), span),
        (None, Some(Channel::Webhook { url, .. })) => (url.clone(), span),
        (None, None) => return None,
    };
    let tz = s.tz.as_ref().and_then(|t| time_zone(ck, t, &f("tz")));
    let draft = Draft {
        id,
        tenant,
        regions,
        clusters,
        channel,
        operator,
        tz,
    };
    Some((draft, id_span))
}

/// An operator subscriber names no tenant and no components: it gets operator notices.
fn operator_only(ck: &mut Checker, i: usize, sub: &Spanned<RawSubscriber>) {
    let s = sub.get_ref();
    let why = "an operator subscriber (operator = true) receives operator notices only";
    if let Some(t) = &s.tenant {
        ck.err(
            t.span(),
            format!("subscriber[{i}].tenant"),
            format!("{why}; remove `tenant`"),
        );
    }
    if let Some(c) = &s.components {
        ck.err(
            c.span(),
            format!("subscriber[{i}].components"),
            format!("{why}; remove `components`"),
        );
    }
}

/// `components`: region names, and clusters of the subscriber's own tenant.
fn components(
    ck: &mut Checker,
    i: usize,
    sub: &Spanned<RawSubscriber>,
    fleet: &Fleet,
) -> (BTreeSet<RegionIx>, BTreeSet<ClusterIx>) {
    let s = sub.get_ref();
    let mut regions = BTreeSet::new();
    let mut clusters = BTreeSet::new();
    let list = match &s.components {
        None => {
            let msg = "missing `components` (region names and/or cluster ids)";
            ck.err(sub.span(), format!("subscriber[{i}]"), msg);
            return (regions, clusters);
        }
        Some(c) if c.get_ref().is_empty() => {
            let msg = "empty: name at least one region or cluster";
            ck.err(c.span(), format!("subscriber[{i}].components"), msg);
            return (regions, clusters);
        }
        Some(c) => c.get_ref(),
    };
    let tenant = s.tenant.as_ref().map(|t| t.get_ref().as_str());
    for (j, comp) in list.iter().enumerate() {
        let name = comp.get_ref();
        let field = format!("subscriber[{i}].components[{j}]");
        if let Some(r) = fleet.regions.iter().position(|x| x == name) {
            regions.insert(r as RegionIx);
        } else if let Some(ci) = fleet.clusters.iter().position(|x| &x.id == name) {
            match (tenant, fleet.clusters[ci].tenant.as_deref()) {
                (Some(t), Some(o)) if t == o => {
                    clusters.insert(ci as ClusterIx);
                }
                (None, _) => ck.err(
                    comp.span(),
                    field,
                    format!(
                        "`{name}` is a cluster; a subscriber without a tenant sees the public region view only"
                    ),
                ),
                (Some(t), _) => ck.err(
                    comp.span(),
                    field,
                    format!("cluster `{name}` does not belong to tenant `{t}`"),
                ),
            }
        } else {
            let msg = format!("`{name}` is neither a region nor a cluster of this fleet");
            ck.err(comp.span(), field, msg);
        }
    }
    (regions, clusters)
}

/// `format`: `statuspage` (default) or `slack`.
fn webhook_format(ck: &mut Checker, s: &RawSubscriber, f: &dyn Fn(&str) -> String) -> Format {
    let Some(v) = &s.format else {
        return Format::Statuspage;
    };
    match v.get_ref().as_str() {
        "statuspage" => Format::Statuspage,
        "slack" => Format::Slack,
        o => {
            let msg = format!("unknown format `{o}` (statuspage, slack)");
            ck.err(v.span(), f("format"), msg);
            Format::Statuspage
        }
    }
}

/// `email` or `webhook` (exactly one).
fn channel(
    ck: &mut Checker,
    i: usize,
    sub: &Spanned<RawSubscriber>,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Channel> {
    let s = sub.get_ref();
    let f = |k: &str| format!("subscriber[{i}].{k}");
    match (&s.email, &s.webhook) {
        (Some(e), None) => {
            if s.secret_env.is_some() || s.format.is_some() {
                let msg = "secret_env and format apply to webhooks only";
                ck.err(sub.span(), format!("subscriber[{i}]"), msg);
            }
            if let Err(err) = e.get_ref().parse::<lettre::Address>() {
                let msg = format!("`{}` is not a mail address: {err}", e.get_ref());
                ck.err(e.span(), f("email"), msg);
            }
            Some(Channel::Email(e.get_ref().clone()))
        }
        (None, Some(w)) => Some(webhook(ck, s, w, &f, format, env)),
        (Some(_), Some(w)) => {
            let msg = "give either email or webhook, not both (use two subscribers)";
            ck.err(w.span(), f("webhook"), msg);
            None
        }
        (None, None) => {
            let msg = "missing a channel: `email = ...` or `webhook = ...`";
            ck.err(sub.span(), format!("subscriber[{i}]"), msg);
            None
        }
    }
}

/// A webhook: its URL and the secret it is signed with (Slack's are not signed).
fn webhook(
    ck: &mut Checker,
    s: &RawSubscriber,
    w: &S,
    f: &dyn Fn(&str) -> String,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
) -> Channel {
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
        Some(v) => env_var(ck, &s.secret_env, &f("secret_env"), env).and_then(|x| {
            decode_secret(&x)
                .map_err(|e| {
                    let msg = format!("environment variable {}: {e}", v.get_ref());
                    ck.err(v.span(), f("secret_env"), msg);
                })
                .ok()
        }),
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
    Channel::Webhook {
        url: w.get_ref().clone(),
        secret,
        format,
    }
}
