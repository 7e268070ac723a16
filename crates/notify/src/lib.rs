//! Customer notifications driven by the run: subscribers per tenant and component
//! (region or cluster), email over SMTP (lettre), webhooks signed per Standard Webhooks
//! (Statuspage-shaped or Slack-compatible bodies), and a delivery outbox in the run's
//! SQLite file.
//!
//! * **Announcements** are the engine's `Announce { region }` command: [`NotifyDriver`]
//!   hands it to [`Notifier::announce`], which answers `Ok` only when every subscriber of
//!   the region has accepted the announcement (HTTP 2xx / SMTP accepted) or unsubscribed
//!   (HTTP 410). Otherwise the engine gets an error, keeps the region unannounced (no
//!   host of it starts) and asks again; subscribers already reached are not sent it
//!   again. The engine sets `announced_at` when the `Ok` comes back, after delivery, so
//!   reboots start at least the lead time after the last subscriber was told.
//! * **Other notices** (started, completed, host missing/returned/replaced, escalation)
//!   are read from the journal as soon as they are committed ([`Follower`]) and
//!   delivered; **reminders** go out `remind_before` ahead of a region's expected start.
//! * **Outbox**: one row per (run, notice, subscriber) in `notify_outbox`, inserted
//!   before any attempt (`INSERT OR IGNORE`, so a restart adds nothing twice) and marked
//!   `sent` / `gone` as answers arrive. A restart delivers what is still `pending` and
//!   never re-sends what is recorded as sent. Each message has a stable id (the
//!   `webhook-id` header, the mail's `Message-ID`), so a receiver can also drop the one
//!   duplicate a crash between the receiver's answer and the outbox commit could cause.

pub mod admin;
pub mod config;
pub mod escalate;
pub mod render;
pub mod sign;
pub mod unsubscribe;

use config::{Channel, Format, NotifyConfig, Subscriber, Tls};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use render::{Exclusion, Message, Note, NoteKind, Reader, render, wants};
use rollcall_core::engine::{Command, Event, NoticeKind, Output};
use rollcall_core::model::{Fleet, HostIx, RegionIx};
use rollcall_core::plan::Plan;
use rollcall_drivers::{BoxFuture, Driver};
use rollcall_runtime::{Clock, StoredRun};
use rollcall_store::{Dialect, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// What stops a notifier. A delivery failing for one subscriber is not an error: it is
/// recorded in the outbox, retried and counted.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The fleet file's `[[subscriber]]` / `[notify]`: its `file:line:col: field: message`
    /// listing.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `notify_` tables.
    #[error("notify outbox: {0}")]
    Outbox(#[from] sqlx::Error),
    #[error("HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// The SMTP connection's TLS settings.
    #[error("{0}")]
    Tls(String),
    #[error("delivery task: {0}")]
    Delivery(#[source] tokio::task::JoinError),
    #[error("notifier task: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// An admin update that cannot be delivered as given.
    #[error("admin update: {0}")]
    Admin(String),
    /// An announcement that did not reach every subscriber: the region waits for it.
    #[error(
        "announcement for {region} not delivered to {left} of {of} subscriber(s) (first: {first}); the region stays unannounced and will not start until it is"
    )]
    Unannounced {
        region: String,
        left: i64,
        of: usize,
        first: String,
    },
    /// The notifier did not finish delivering in time at the end of a run.
    #[error(
        "notices still being delivered after {0}s; `rollcall resume` or the next start delivers the rest"
    )]
    Unfinished(u64),
}

impl NotifyError {
    /// The database did not answer (restarting, unreachable, locked): the follower waits
    /// and tries again instead of giving up on the run's notices.
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Store(e) => e.is_transient(),
            NotifyError::Outbox(e) => rollcall_store::is_transient_sqlx(e),
            _ => false,
        }
    }
}

/// Where one delivery (a notice to a subscriber) stands (`notify_outbox.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not yet delivered (or failed, to be tried again).
    Pending,
    Sent,
    /// The subscriber's endpoint answered 410: unsubscribed.
    Gone,
    /// The operator dropped the subscriber for this run (`rollcall notify drop`).
    Dropped,
}

impl DeliveryStatus {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Gone => "gone",
            DeliveryStatus::Dropped => "dropped",
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_outbox (
    run TEXT NOT NULL,
    notice TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    kind TEXT NOT NULL,
    region INTEGER NOT NULL,
    host INTEGER,
    at INTEGER NOT NULL,
    start INTEGER,
    expected INTEGER,
    channel TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms INTEGER NOT NULL,
    next_ms INTEGER NOT NULL DEFAULT 0,
    sent_ms INTEGER,
    PRIMARY KEY (run, notice, subscriber)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notify_outbox_status ON notify_outbox (run, status);
CREATE TABLE IF NOT EXISTS notify_gone (
    run TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (run, subscriber)
) WITHOUT ROWID;
";

/// `($1, $2, ..), ($n+1, ..)`: `rows` rows of `cols` placeholders.
fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The same tables in PostgreSQL (BIGINT integers).
const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_outbox (
    run TEXT NOT NULL,
    notice TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    kind TEXT NOT NULL,
    region BIGINT NOT NULL,
    host BIGINT,
    at BIGINT NOT NULL,
    start BIGINT,
    expected BIGINT,
    channel TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    next_ms BIGINT NOT NULL DEFAULT 0,
    sent_ms BIGINT,
    PRIMARY KEY (run, notice, subscriber)
);
CREATE INDEX IF NOT EXISTS notify_outbox_status ON notify_outbox (run, status);
CREATE TABLE IF NOT EXISTS notify_gone (
    run TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (run, subscriber)
);
";

pub(crate) fn wall_ms() -> i64 {
    rollcall_runtime::wall_ms()
}

/// The stable message id of one delivery (`webhook-id`, mail `Message-ID`).
pub fn message_id(run: &str, notice: &str, subscriber: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{run}\0{notice}\0{subscriber}").as_bytes());
    let hex: String = h[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Sent,
    Gone,
    Failed(String),
}

/// Counts of one delivery round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    pub sent: usize,
    pub gone: usize,
    pub failed: usize,
    pub attempts: usize,
    pub errors: Vec<(String, String)>,
}

/// Delivery counts for a run, by notice kind and status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// (kind, status, count)
    pub counts: Vec<(String, String, i64)>,
    /// Deliveries tried and not yet made (at most 50, oldest first).
    pub undelivered: Vec<Undelivered>,
    /// Regions whose announcement has not reached every subscriber (held, escalated or
    /// released).
    pub holds: Vec<escalate::Hold>,
    /// The operator's decisions about them.
    pub decisions: Vec<escalate::Decision>,
}

/// A delivery tried and not yet made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Undelivered {
    pub notice: String,
    pub subscriber: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

impl Summary {
    pub fn count(&self, kind: Option<&str>, status: DeliveryStatus) -> i64 {
        self.counts
            .iter()
            .filter(|(k, s, _)| s == status.name() && kind.is_none_or(|x| x == k))
            .map(|x| x.2)
            .sum()
    }
}

/// Version 2: admin updates carry their text (`payload`, JSON) and are claimed by one
/// `serve` process at a time (`claim`); unsubscriptions (deployment-wide, by subscriber
/// id) and the deployment's unsubscribe-link secret.
const SCHEMA_2: &str = "
ALTER TABLE notify_outbox ADD COLUMN payload TEXT;
ALTER TABLE notify_outbox ADD COLUMN claim TEXT;
CREATE TABLE IF NOT EXISTS notify_unsubscribed (
    subscriber TEXT NOT NULL PRIMARY KEY,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_secret (
    id INTEGER NOT NULL PRIMARY KEY,
    secret TEXT NOT NULL
);
";
const PG_SCHEMA_2: &str = "
ALTER TABLE notify_outbox ADD COLUMN payload TEXT;
ALTER TABLE notify_outbox ADD COLUMN claim TEXT;
CREATE TABLE IF NOT EXISTS notify_unsubscribed (
    subscriber TEXT NOT NULL PRIMARY KEY,
    at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_secret (
    id BIGINT NOT NULL PRIMARY KEY,
    secret TEXT NOT NULL
);
";

/// The `notify_` tables' migrations, applied by the store: version i + 1 is `[i]`, one
/// list per dialect.
const MIGRATIONS: &[&str] = &[SCHEMA, SCHEMA_2, escalate::SCHEMA];
const PG_MIGRATIONS: &[&str] = &[PG_SCHEMA, PG_SCHEMA_2, escalate::PG_SCHEMA];

/// Create or bring up to date the `notify_` tables.
pub async fn init(store: &Store) -> Result<(), NotifyError> {
    store
        .migrate(
            "notify",
            match store.dialect() {
                Dialect::Sqlite => MIGRATIONS,
                Dialect::Postgres => PG_MIGRATIONS,
            },
        )
        .await
        .map_err(NotifyError::from)
}

/// What was delivered for a run (for `rollcall status` and the status page's metrics).
pub async fn summary(store: &Store, run: &str) -> Result<Summary, NotifyError> {
    let pool = store.pool();
    // read-only: a journal that never had subscribers has no notify_ tables
    if !table_exists(store, "notify_outbox").await? {
        return Ok(Summary::default());
    }
    let rows = sqlx::query(
        "SELECT kind, status, COUNT(*) AS n FROM notify_outbox WHERE run = $1 GROUP BY kind, status ORDER BY kind, status",
    )
    .bind(run)
    .fetch_all(pool)
    .await
    .map_err(NotifyError::from)?;
    let counts = rows
        .iter()
        .map(|r| (r.get("kind"), r.get("status"), r.get("n")))
        .collect();
    let rows = sqlx::query(
        "SELECT notice, subscriber, attempts, last_error FROM notify_outbox WHERE run = $1 AND status = 'pending' AND attempts > 0 ORDER BY at, notice, subscriber LIMIT 50",
    )
    .bind(run)
    .fetch_all(pool)
    .await
    .map_err(NotifyError::from)?;
    let undelivered = rows
        .iter()
        .map(|r| Undelivered {
            notice: r.get("notice"),
            subscriber: r.get("subscriber"),
            attempts: r.get("attempts"),
            last_error: r.get("last_error"),
        })
        .collect();
    // journals from before escalations have no notify_holds yet
    let (holds, decisions) = match table_exists(store, "notify_holds").await? {
        true => (
            escalate::holds_in(pool, run).await?,
            escalate::decisions_in(pool, run).await?,
        ),
        false => Default::default(),
    };
    Ok(Summary {
        counts,
        undelivered,
        holds,
        decisions,
    })
}

/// The subscribers a run has deliveries for, by id.
pub async fn subscribers_of(store: &Store, run: &str) -> Result<Vec<String>, NotifyError> {
    if !table_exists(store, "notify_outbox").await? {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT subscriber FROM notify_outbox WHERE run = $1 ORDER BY subscriber",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await?)
}

async fn table_exists(store: &Store, name: &str) -> Result<bool, NotifyError> {
    let n: i64 = sqlx::query_scalar(match store.dialect() {
        Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1"
        }
    })
    .bind(name)
    .fetch_one(store.pool())
    .await?;
    Ok(n > 0)
}

/// One outbox row's fields besides its subscriber (a notice, or an admin update).
pub(crate) struct OutboxRow<'a> {
    pub key: &'a str,
    pub kind: &'a str,
    /// -1: none (an admin update for every region).
    pub region: i64,
    pub host: Option<i64>,
    pub at: i64,
    pub start: Option<i64>,
    pub expected: Option<i64>,
    /// An admin update's text ([`admin::AdminUpdate`] as JSON).
    pub payload: Option<&'a str>,
}

/// Delivers notices of one run to its subscribers.
pub struct Notifier {
    run: String,
    fleet: Arc<Fleet>,
    cfg: NotifyConfig,
    by_id: HashMap<String, usize>,
    pool: AnyPool,
    /// The journal the notices come from (and the store of the `notify_` tables).
    store: Store,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    sem: Arc<Semaphore>,
    gone: Mutex<HashSet<String>>,
    /// Regions the operator released (`rollcall notify release`): announced without
    /// waiting for every subscriber.
    released: Mutex<HashSet<RegionIx>>,
    /// Planned start per region (set when a [`Follower`] starts), for announcements.
    planned: std::sync::OnceLock<Vec<Option<i64>>>,
    /// The clusters the plan refuses, told to their tenants as excluded.
    excluded: Vec<Exclusion>,
    /// The deployment's key for unsubscribe links.
    unsub_key: Vec<u8>,
}

impl Notifier {
    pub async fn open(
        store: &Store,
        run: &str,
        fleet: Arc<Fleet>,
        cfg: NotifyConfig,
    ) -> Result<Arc<Notifier>, NotifyError> {
        init(store).await?;
        let pool = store.pool().clone();
        let http = reqwest::Client::builder()
            .timeout(cfg.settings.timeout)
            .connect_timeout(cfg.settings.timeout)
            // a redirect is a failure (as in Statuspage's subscriber webhooks)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(cfg.settings.concurrency)
            .user_agent(concat!("rollcall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NotifyError::Http)?;
        let smtp = match &cfg.settings.smtp {
            None => None,
            Some(s) => {
                let params = || -> Result<TlsParameters, NotifyError> {
                    let mut p = TlsParameters::builder(s.host.clone());
                    if let Some(pem) = &s.ca_pem {
                        let ca = Certificate::from_pem(pem)
                            .map_err(|e| NotifyError::Tls(format!("tls_ca: {e}")))?;
                        p = p.add_root_certificate(ca);
                    }
                    p.build()
                        .map_err(|e| NotifyError::Tls(format!("SMTP TLS {}: {e}", s.host)))
                };
                let b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host);
                let b = match s.tls {
                    Tls::None => b,
                    Tls::Starttls => b.tls(SmtpTls::Required(params()?)),
                    Tls::Tls => b.tls(SmtpTls::Wrapper(params()?)),
                };
                let mut b = b.port(s.port).timeout(Some(cfg.settings.timeout));
                if let Some((u, p)) = &s.credentials {
                    b = b.credentials(Credentials::new(u.clone(), p.clone()));
                }
                Some(b.build())
            }
        };
        let gone = sqlx::query("SELECT subscriber FROM notify_gone WHERE run = $1")
            .bind(run)
            .fetch_all(&pool)
            .await
            .map_err(NotifyError::from)?
            .iter()
            .map(|r| r.get::<String, _>("subscriber"))
            .collect();
        let by_id = cfg
            .subscribers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let excluded = render::exclusions(&fleet, &rollcall_core::plan::plan(&fleet));
        let unsub_key = unsubscribe::secret(store).await?;
        Ok(Arc::new(Notifier {
            excluded,
            unsub_key,
            run: run.to_string(),
            sem: Arc::new(Semaphore::new(cfg.settings.concurrency)),
            fleet,
            cfg,
            by_id,
            pool,
            store: store.clone(),
            http,
            smtp,
            gone: Mutex::new(gone),
            released: Mutex::new(HashSet::new()),
            planned: std::sync::OnceLock::new(),
        }))
    }

    pub fn run(&self) -> &str {
        &self.run
    }
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
    pub fn subscribers(&self) -> &[Subscriber] {
        &self.cfg.subscribers
    }

    /// Take in the operator's decisions recorded since the last look: dropped
    /// subscribers are not sent to any more, released regions are announced.
    async fn refresh_decisions(&self) -> Result<(), NotifyError> {
        for d in escalate::decisions_in(&self.pool, &self.run).await? {
            match d.action {
                escalate::Action::Drop => {
                    self.gone.lock().unwrap().insert(d.target);
                }
                escalate::Action::Release => {
                    if let Some(r) = self.fleet.regions.iter().position(|x| *x == d.target) {
                        self.released.lock().unwrap().insert(r as RegionIx);
                    }
                }
            }
        }
        Ok(())
    }

    /// Operator subscribers (indexes): they get operator notices only.
    fn operators(&self) -> Vec<usize> {
        (0..self.cfg.subscribers.len())
            .filter(|&i| self.cfg.subscribers[i].operator)
            .collect()
    }

    /// Subscribers (indexes) that receive a notice about `region` / `host`.
    pub fn recipients(&self, region: RegionIx, host: Option<HostIx>) -> Vec<usize> {
        (0..self.cfg.subscribers.len())
            .filter(|&i| wants(&self.fleet, &self.cfg.subscribers[i], region, host))
            .collect()
    }

    /// Record a notice for its recipients in the outbox (nothing is added twice).
    pub async fn enqueue(&self, note: &Note, subs: &[usize]) -> Result<(), NotifyError> {
        let row = OutboxRow {
            key: &note.key,
            kind: note.kind.name(),
            region: note.region as i64,
            host: note.host.map(|h| h as i64),
            at: note.at,
            start: note.start,
            expected: note.expected,
            payload: None,
        };
        self.insert(&row, subs).await
    }

    /// Insert one outbox row per recipient (`INSERT OR IGNORE`).
    pub(crate) async fn insert(
        &self,
        row: &OutboxRow<'_>,
        subs: &[usize],
    ) -> Result<(), NotifyError> {
        let now = wall_ms();
        let mut tx = self.pool.begin().await.map_err(NotifyError::from)?;
        // 12 values a row, 500 rows a statement (well under SQLite's 32766 variables)
        for chunk in subs.chunks(500) {
            let sql = format!(
                "INSERT INTO notify_outbox (run, notice, subscriber, kind, region, host, at, start, expected, channel, created_ms, payload) VALUES {} ON CONFLICT DO NOTHING",
                placeholders(chunk.len(), 12)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for &i in chunk {
                let s = &self.cfg.subscribers[i];
                let channel = match s.channel {
                    Channel::Email(_) => "email",
                    Channel::Webhook { .. } => "webhook",
                };
                q = q
                    .bind(self.run.clone())
                    .bind(row.key.to_string())
                    .bind(s.id.clone())
                    .bind(row.kind.to_string())
                    .bind(row.region)
                    .bind(row.host)
                    .bind(row.at)
                    .bind(row.start)
                    .bind(row.expected)
                    .bind(channel)
                    .bind(now)
                    .bind(row.payload.map(str::to_string));
            }
            q.execute(&mut *tx).await.map_err(NotifyError::from)?;
        }
        tx.commit().await.map_err(NotifyError::from)?;
        Ok(())
    }

    /// Deliver every undelivered row of one notice (one round: each row gets up to
    /// `attempts` tries with exponential backoff and jitter). Rows that still failed stay
    /// `pending` with their error, to be tried again `retry_after` later.
    pub async fn deliver(&self, key: &str, retry_after: Duration) -> Result<Round, NotifyError> {
        self.deliver_rows(key, retry_after, None).await
    }

    /// [`Notifier::deliver`], of the rows `claim`ed by this process when given.
    pub(crate) async fn deliver_rows(
        &self,
        key: &str,
        retry_after: Duration,
        claim: Option<&str>,
    ) -> Result<Round, NotifyError> {
        self.load_unsubscribed().await?;
        self.refresh_decisions().await?;
        let rows = sqlx::query(
            "SELECT subscriber, kind, region, host, at, start, expected, payload FROM notify_outbox WHERE run = $1 AND notice = $2 AND status = 'pending' AND ($3 IS NULL OR claim = $3)",
        )
        .bind(&self.run)
        .bind(key)
        .bind(claim.map(str::to_string))
        .fetch_all(&self.pool)
        .await
        .map_err(NotifyError::from)?;
        let mut b = Batch::new(key, retry_after);
        let mut tasks = tokio::task::JoinSet::new();
        // one rendering per audience, time zone and format
        let mut cache: HashMap<CacheKey, Arc<Message>> = HashMap::new();
        for r in &rows {
            let sub_id: String = r.get("subscriber");
            let job = match self.job(key, r, &sub_id, &mut cache) {
                Ok(job) => job,
                Err(outcome) => {
                    b.done.push((sub_id, outcome, 0));
                    continue;
                }
            };
            // at most `concurrency` tasks exist at once (memory stays flat for big fan-outs)
            while tasks.len() >= self.cfg.settings.concurrency {
                match tasks.join_next().await {
                    Some(r) => b.done.push(r.map_err(NotifyError::Delivery)?),
                    None => break,
                }
                b.flush(self, false).await?;
            }
            tasks.spawn(job.send(sub_id));
        }
        loop {
            if let Some(r) = tasks.join_next().await {
                b.done.push(r.map_err(NotifyError::Delivery)?);
            }
            let finished = tasks.is_empty();
            b.flush(self, finished).await?;
            if finished {
                return Ok(b.round);
            }
        }
    }

    /// Subscribers who unsubscribed (by link) since: counted as gone from now on.
    async fn load_unsubscribed(&self) -> Result<(), NotifyError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT subscriber FROM notify_unsubscribed")
            .fetch_all(&self.pool)
            .await?;
        self.gone.lock().unwrap().extend(ids);
        Ok(())
    }

    /// Render outbox row `r` (of notice `key`) for a reader.
    fn message(&self, key: &str, r: &AnyRow, reader: &Reader<'_>) -> Option<Message> {
        if r.get::<String, _>("kind") == "admin" {
            let payload: Option<String> = r.get("payload");
            let u: admin::AdminUpdate = serde_json::from_str(&payload?).ok()?;
            return Some(admin::render_admin(&self.fleet.name, reader, &u));
        }
        let note = note_of(key, r)?;
        Some(render(
            &self.fleet,
            &self.run,
            reader,
            &self.excluded,
            &note,
        ))
    }

    /// What delivering outbox row `r` to `sub_id` takes, or why it cannot be tried.
    fn job(
        &self,
        key: &str,
        r: &AnyRow,
        sub_id: &str,
        cache: &mut HashMap<CacheKey, Arc<Message>>,
    ) -> Result<Job, Outcome> {
        let Some(&si) = self.by_id.get(sub_id) else {
            let why = "no such subscriber in the run's fleet file";
            return Err(Outcome::Failed(why.into()));
        };
        if self.gone.lock().unwrap().contains(sub_id) {
            return Err(Outcome::Gone);
        }
        let s = &self.cfg.subscribers[si];
        let fmt = format_of(&s.channel);
        let settings = &self.cfg.settings;
        let tz = s.tz.as_ref().unwrap_or(&settings.tz);
        let ck = (s.tenant.clone(), tz.iana_name().map(str::to_string), fmt);
        let msg = match cache.get(&ck) {
            Some(m) => m.clone(),
            None => {
                let reader = Reader {
                    tenant: s.tenant.as_deref(),
                    tz,
                    page_url: settings.page_url.as_deref(),
                };
                let m = self
                    .message(key, r, &reader)
                    .ok_or(Outcome::Failed("unknown notice kind".into()))?;
                let m = Arc::new(m);
                cache.insert(ck, m.clone());
                m
            }
        };
        // the body names its subscriber's own unsubscribe link, so it is made per delivery
        let body = body_of(&msg, fmt, self.unsubscribe_url(sub_id).as_deref()).into();
        Ok(Job {
            channel: s.channel.clone(),
            id: message_id(&self.run, key, sub_id),
            unsubscribe: self.unsubscribe_links(sub_id),
            http: self.http.clone(),
            smtp: self.smtp.clone(),
            sem: self.sem.clone(),
            from: settings.smtp.as_ref().map(|s| s.from.clone()),
            attempts: settings.attempts,
            backoff: settings.backoff,
            msg,
            body,
        })
    }

    async fn record(
        &self,
        key: &str,
        done: &mut Vec<(String, Outcome, u32)>,
        round: &mut Round,
        retry_after: Duration,
    ) -> Result<(), NotifyError> {
        if done.is_empty() {
            return Ok(());
        }
        let now = wall_ms();
        let next = now + retry_after.as_millis() as i64;
        // rows with the same result are updated together
        let mut groups: HashMap<(DeliveryStatus, u32, Option<String>), Vec<String>> =
            HashMap::new();
        let mut gone = Vec::new();
        for (sub, outcome, n) in done.drain(..) {
            round.attempts += n as usize;
            let (status, err) = match outcome {
                Outcome::Sent => {
                    round.sent += 1;
                    (DeliveryStatus::Sent, None)
                }
                Outcome::Gone => {
                    round.gone += 1;
                    if self.gone.lock().unwrap().insert(sub.clone()) {
                        gone.push(sub.clone());
                    }
                    (DeliveryStatus::Gone, None)
                }
                Outcome::Failed(e) => {
                    round.failed += 1;
                    if round.errors.len() < 20 {
                        round.errors.push((sub.clone(), e.clone()));
                    }
                    (DeliveryStatus::Pending, Some(e))
                }
            };
            groups.entry((status, n, err)).or_default().push(sub);
        }
        let mut tx = self.pool.begin().await.map_err(NotifyError::from)?;
        for sub in &gone {
            sqlx::query(
                "INSERT INTO notify_gone (run, subscriber, at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&self.run)
            .bind(sub)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(NotifyError::from)?;
        }
        for ((status, n, err), subs) in &groups {
            for chunk in subs.chunks(500) {
                // $1 status, $2 attempts, $3 error, $4 next, $5 sent_ms, $6 run, $7 notice
                let sql = format!(
                    "UPDATE notify_outbox SET status = $1, attempts = attempts + $2, \
                     last_error = $3, next_ms = $4, sent_ms = coalesce($5, sent_ms) \
                     WHERE run = $6 AND notice = $7 AND subscriber IN ({})",
                    (8..8 + chunk.len())
                        .map(|i| format!("${i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let sent = (*status == DeliveryStatus::Sent).then_some(now);
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(status.name())
                    .bind(*n as i64)
                    .bind(err.clone())
                    .bind(next)
                    .bind(sent)
                    .bind(self.run.clone())
                    .bind(key.to_string());
                for sub in chunk {
                    q = q.bind(sub.clone());
                }
                q.execute(&mut *tx).await.map_err(NotifyError::from)?;
            }
        }
        tx.commit().await.map_err(NotifyError::from)
    }

    /// Deliver the region's announcement; `Ok` only when every subscriber of the region
    /// has it (or unsubscribed). See the crate docs for the policy.
    pub async fn announce(&self, region: RegionIx, now: i64) -> Result<(), NotifyError> {
        let key = format!("announce-{region}");
        let subs = self.recipients(region, None);
        if subs.is_empty() {
            return Ok(());
        }
        let lead = self.fleet.maintenance.notice_lead;
        let note = Note {
            key: key.clone(),
            kind: NoteKind::Announcement,
            region,
            host: None,
            at: now,
            start: Some(now + lead),
            // the plan's estimate, when it is later than the earliest possible start
            expected: self
                .planned
                .get()
                .and_then(|p| p.get(region as usize).copied().flatten())
                .filter(|&t| t > now + lead),
        };
        self.enqueue(&note, &subs).await?;
        self.refresh_decisions().await?;
        if self.released.lock().unwrap().contains(&region) {
            // the operator released it: the follower goes on delivering what is left
            return Ok(());
        }
        let round = self.deliver(&key, Duration::ZERO).await?;
        let unreached: Vec<String> = sqlx::query_scalar(
            "SELECT subscriber FROM notify_outbox WHERE run = $1 AND notice = $2 AND status = 'pending' ORDER BY subscriber",
        )
        .bind(&self.run)
        .bind(&key)
        .fetch_all(&self.pool)
        .await
        .map_err(NotifyError::from)?;
        if unreached.is_empty() {
            return Ok(());
        }
        let first = round
            .errors
            .first()
            .map(|(s, e)| format!("{s}: {e}"))
            .unwrap_or_default();
        self.held(region, now, &unreached, &first).await?;
        let e = NotifyError::Unannounced {
            region: self.fleet.region_name(region).to_string(),
            left: unreached.len() as i64,
            of: subs.len(),
            first,
        };
        eprintln!("rollcall notify: {e}");
        Err(e)
    }

    /// Count a failed announcement round of `region`; escalate the hold when it is due:
    /// said here and queued for the operator's subscribers.
    async fn held(
        &self,
        region: RegionIx,
        now: i64,
        unreached: &[String],
        error: &str,
    ) -> Result<(), NotifyError> {
        let s = &self.cfg.settings;
        let policy = escalate::Policy {
            after: s.escalate_after,
            rounds: s.escalate_rounds,
        };
        let name = self.fleet.region_name(region);
        let error = (!error.is_empty()).then_some(error);
        let Some(hold) =
            escalate::failed_round(&self.pool, &self.run, name, now, unreached, error, policy)
                .await?
        else {
            return Ok(());
        };
        eprintln!(
            "rollcall notify: ESCALATION: {}; `rollcall notify release {name} --run {}` starts it without waiting, `rollcall notify drop SUBSCRIBER --run {}` stops sending to one",
            escalate::describe(&hold),
            self.run,
            self.run
        );
        let ops = self.operators();
        if ops.is_empty() {
            eprintln!("rollcall notify: no operator subscriber (operator = true) to tell");
            return Ok(());
        }
        self.enqueue(&escalate::operator_note(region, &hold), &ops)
            .await
    }
}

impl Notifier {
    /// Each cluster the plan refuses, told once to its tenant's subscribers who follow it
    /// (its region or the cluster): `excluded-<cluster>`.
    pub async fn enqueue_excluded(&self, now: i64) -> Result<(), NotifyError> {
        for e in &self.excluded {
            let c = &self.fleet.clusters[e.cluster as usize];
            let (Some(tenant), Some(&first)) = (&c.tenant, c.members.first()) else {
                continue;
            };
            let note = Note {
                key: format!("excluded-{}", e.cluster),
                kind: NoteKind::Excluded,
                region: self.fleet.hosts[first as usize].region,
                host: Some(first),
                at: now,
                start: None,
                expected: None,
            };
            let subs: Vec<usize> = self
                .recipients(note.region, note.host)
                .into_iter()
                .filter(|&i| self.cfg.subscribers[i].tenant.as_ref() == Some(tenant))
                .collect();
            self.enqueue(&note, &subs).await?;
        }
        Ok(())
    }
}

/// (tenant, time zone, format): the readers one rendering serves.
type CacheKey = (Option<String>, Option<String>, u8);

/// The note an outbox row stands for (`None`: a kind this build does not know).
fn note_of(key: &str, r: &AnyRow) -> Option<Note> {
    Some(Note {
        key: key.to_string(),
        kind: NoteKind::parse(&r.get::<String, _>("kind"))?,
        region: r.get::<i64, _>("region") as RegionIx,
        host: r.get::<Option<i64>, _>("host").map(|h| h as HostIx),
        at: r.get("at"),
        start: r.get("start"),
        expected: r.get("expected"),
    })
}

/// 0: email, 1: Statuspage webhook, 2: Slack webhook.
fn format_of(c: &Channel) -> u8 {
    match c {
        Channel::Email(_) => 0,
        Channel::Webhook {
            format: Format::Statuspage,
            ..
        } => 1,
        Channel::Webhook {
            format: Format::Slack,
            ..
        } => 2,
    }
}

/// A webhook's body in format `fmt` (email has none: it is built per message). A
/// Statuspage body's `meta.unsubscribe` is the subscriber's own link, as Statuspage's is.
fn body_of(m: &Message, fmt: u8, unsubscribe: Option<&str>) -> Vec<u8> {
    match fmt {
        1 => match unsubscribe {
            None => serde_json::to_vec(&m.statuspage).unwrap_or_default(),
            Some(u) => {
                let mut v = m.statuspage.clone();
                if let Some(meta) = v.get_mut("meta") {
                    meta["unsubscribe"] = u.into();
                }
                serde_json::to_vec(&v).unwrap_or_default()
            }
        },
        2 => serde_json::to_vec(&serde_json::json!({
            "text": format!("*{}*\n{}", m.subject, m.text)
        }))
        .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// One delivery, with what it needs from the notifier.
struct Job {
    channel: Channel,
    id: String,
    /// The `List-Unsubscribe` value, when `[notify] page_url` is set.
    unsubscribe: Option<String>,
    http: reqwest::Client,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    sem: Arc<Semaphore>,
    from: Option<String>,
    attempts: u32,
    backoff: Duration,
    msg: Arc<Message>,
    body: bytes_body::Body,
}

impl Job {
    /// Up to `attempts` tries with backoff; the last outcome and the tries made.
    async fn send(self, sub_id: String) -> (String, Outcome, u32) {
        let Ok(_permit) = self.sem.clone().acquire_owned().await else {
            return (sub_id, Outcome::Failed("shutting down".into()), 0);
        };
        let mut last = Outcome::Failed("not tried".into());
        let mut n = 0;
        while n < self.attempts {
            n += 1;
            last = self.once().await;
            match &last {
                Outcome::Failed(e) if e.starts_with("permanent") => break,
                Outcome::Failed(_) if n < self.attempts => {
                    tokio::time::sleep(backoff_delay(self.backoff, n, &self.id)).await
                }
                _ => break,
            }
        }
        (sub_id, last, n)
    }

    async fn once(&self) -> Outcome {
        match &self.channel {
            Channel::Webhook { url, secret, .. } => {
                post(
                    &self.http,
                    url,
                    secret.as_deref(),
                    &self.id,
                    self.body.clone(),
                )
                .await
            }
            Channel::Email(to) => match (&self.smtp, &self.from) {
                (Some(t), Some(f)) => {
                    let head = MailHead {
                        from: f,
                        to,
                        id: &self.id,
                        unsubscribe: self.unsubscribe.as_deref(),
                    };
                    mail(t, &head, &self.msg).await
                }
                _ => Outcome::Failed("no SMTP settings".into()),
            },
        }
    }
}

/// The outcomes of one notice's round, recorded in batches.
struct Batch<'a> {
    key: &'a str,
    retry_after: Duration,
    done: Vec<(String, Outcome, u32)>,
    round: Round,
    last_flush: Instant,
}

impl<'a> Batch<'a> {
    fn new(key: &'a str, retry_after: Duration) -> Batch<'a> {
        Batch {
            key,
            retry_after,
            done: Vec::new(),
            round: Round::default(),
            last_flush: Instant::now(),
        }
    }

    /// Record what is done when `now`, or when 512 outcomes or 50 ms have gathered.
    async fn flush(&mut self, n: &Notifier, now: bool) -> Result<(), NotifyError> {
        let due = self.done.len() >= 512 || self.last_flush.elapsed() > Duration::from_millis(50);
        if now || due {
            n.record(self.key, &mut self.done, &mut self.round, self.retry_after)
                .await?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }
}

/// Exponential backoff with jitter: `base * 2^(n-1)`, capped at 30 s, times a random
/// factor in [0.5, 1.0).
fn backoff_delay(base: Duration, n: u32, salt: &str) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let exp = base.saturating_mul(1u32 << (n - 1).min(16));
    let capped = exp.min(Duration::from_secs(30));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(salt.as_bytes());
    h.write_u32(n);
    let f = 0.5 + (h.finish() % 1000) as f64 / 2000.0;
    capped.mul_f64(f)
}

mod bytes_body {
    /// A cheaply clonable request body.
    pub type Body = std::sync::Arc<[u8]>;
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&[u8]>,
    id: &str,
    body: bytes_body::Body,
) -> Outcome {
    let ts = wall_ms().div_euclid(1000);
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(k) = secret {
        req = req.header("webhook-signature", sign::sign(k, id, ts, &body));
    }
    match req.body(body.to_vec()).send().await {
        Ok(r) if r.status().is_success() => Outcome::Sent,
        Ok(r) if r.status() == reqwest::StatusCode::GONE => Outcome::Gone,
        Ok(r) => Outcome::Failed(format!("HTTP {}", r.status())),
        Err(e) if e.is_timeout() => Outcome::Failed("timed out".into()),
        Err(e) => Outcome::Failed(format!("{e}")),
    }
}

/// The envelope of one mail.
struct MailHead<'a> {
    from: &'a str,
    to: &'a str,
    /// The delivery's stable id (the left of `Message-ID`).
    id: &'a str,
    unsubscribe: Option<&'a str>,
}

/// `<id@domain of from>` (`rollcall.invalid` when `from` has no domain).
fn message_id_header(from: &lettre::message::Mailbox, id: &str) -> String {
    let domain = from.email.domain();
    let domain = if domain.is_empty() {
        "rollcall.invalid"
    } else {
        domain
    };
    format!("<{id}@{domain}>")
}

/// The message: plain text and HTML alternatives, `List-Unsubscribe` (RFC 2369) and
/// one-click `List-Unsubscribe-Post` (RFC 8058) when an unsubscribe link exists.
fn build_mail(h: &MailHead<'_>, msg: &Message) -> Result<lettre::Message, String> {
    use lettre::message::MultiPart;
    let from: lettre::message::Mailbox = h.from.parse().map_err(|e| format!("from: {e}"))?;
    let mut b = lettre::Message::builder()
        .message_id(Some(message_id_header(&from, h.id)))
        .from(from)
        .to(h.to.parse().map_err(|e| format!("to: {e}"))?)
        .subject(msg.subject.clone());
    if let Some(u) = h.unsubscribe {
        b = b.raw_header(lettre::message::header::HeaderValue::new(
            lettre::message::header::HeaderName::new_from_ascii_str("List-Unsubscribe"),
            u.to_string(),
        ));
    }
    // one-click needs an https/http link (RFC 8058 section 3.1)
    if h.unsubscribe.is_some_and(|u| u.contains("<http")) {
        b = b.raw_header(lettre::message::header::HeaderValue::new(
            lettre::message::header::HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_string(),
        ));
    }
    b.multipart(MultiPart::alternative_plain_html(msg.plain(), msg.html()))
        .map_err(|e| e.to_string())
}

async fn mail(t: &AsyncSmtpTransport<Tokio1Executor>, h: &MailHead<'_>, msg: &Message) -> Outcome {
    let m = match build_mail(h, msg) {
        Ok(m) => m,
        Err(e) => return Outcome::Failed(format!("permanent: {e}")),
    };
    match t.send(m).await {
        Ok(_) => Outcome::Sent,
        Err(e) if e.is_permanent() => Outcome::Failed(format!("permanent: SMTP {e}")),
        Err(e) => Outcome::Failed(format!("SMTP {e}")),
    }
}

/// Executes `Announce` as "deliver the region's announcement"; everything else goes to
/// the host driver.
pub struct NotifyDriver {
    pub inner: Arc<dyn Driver>,
    pub notifier: Arc<Notifier>,
}

impl Driver for NotifyDriver {
    fn execute(&self, cmd: Command, now: i64) -> BoxFuture<'_, Event> {
        match cmd {
            Command::Announce { region } => Box::pin(async move {
                let result = self
                    .notifier
                    .announce(region, now)
                    .await
                    .map_err(|e| e.to_string());
                if result.is_err() {
                    // the engine asks again at once: pace the rounds
                    let s = &self.notifier.cfg.settings;
                    let pause = s
                        .backoff
                        .saturating_mul(1 << s.attempts.min(16))
                        .clamp(Duration::from_millis(100), Duration::from_secs(30));
                    tokio::time::sleep(pause).await;
                }
                Event::Announced { region, result }
            }),
            other => self.inner.execute(other, now),
        }
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// Follows the run's journal and delivers notices as they are committed, and reminders.
pub struct Follower {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<Result<(), NotifyError>>,
}

impl Follower {
    pub fn start(notifier: Arc<Notifier>, clock: Clock, plan: &Plan) -> Follower {
        let mut planned = vec![None; notifier.fleet.regions.len()];
        for r in &plan.regions {
            if let Some(p) = planned.get_mut(r.region as usize) {
                *p = r.start;
            }
        }
        let _ = notifier.planned.set(planned.clone());
        let (stop, rx) = watch::channel(false);
        let handle = tokio::spawn(follow(notifier, clock, planned, rx));
        Follower { stop, handle }
    }

    /// Deliver what is left (one last round), then stop. Waits at most `limit`.
    pub async fn finish(self, limit: Duration) -> Result<(), NotifyError> {
        let _ = self.stop.send(true);
        match tokio::time::timeout(limit, self.handle).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(NotifyError::Task(e)),
            Err(_) => Err(NotifyError::Unfinished(limit.as_secs())),
        }
    }
}

fn kind_of(k: NoticeKind) -> Option<NoteKind> {
    Some(match k {
        NoticeKind::Scheduled => return None,
        NoticeKind::Started => NoteKind::Started,
        NoticeKind::Completed => NoteKind::Completed,
        NoticeKind::HostMissing => NoteKind::HostMissing,
        NoticeKind::HostReturned => NoteKind::HostReturned,
        NoticeKind::HostReplaced => NoteKind::HostReplaced,
        NoticeKind::Escalation => NoteKind::Escalation,
        NoticeKind::ProviderRisk => NoteKind::ProviderRisk,
    })
}

async fn follow(
    n: Arc<Notifier>,
    clock: Clock,
    planned: Vec<Option<i64>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), NotifyError> {
    let mut f = Following::new(n.clone(), planned);
    let mut appended = n.store.appended();
    let mut wake = true;
    let mut due_now = true;
    let mut outage: Option<std::time::Instant> = None;
    loop {
        let stopping = *stop.borrow();
        match f.round(clock.now(), &mut due_now, wake, stopping).await {
            Ok(()) => {
                wake = false;
                if let Some(t) = outage.take() {
                    eprintln!(
                        "rollcall notify: the store answers again after {:.1} s",
                        t.elapsed().as_secs_f64()
                    );
                }
                if stopping {
                    return f.drain().await;
                }
            }
            // the database restarting or unreachable: wait, then read and deliver again
            Err(e) if e.is_transient() => {
                if outage.is_none() {
                    eprintln!("rollcall notify: {e}; waiting for the store (retrying)");
                    outage = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                wake = true;
                continue;
            }
            Err(e) => return Err(e),
        }
        // the timer serves retries and reminders (the outbox's own due times)
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = appended.changed() => wake = true,
            _ = stop.changed() => {}
        }
    }
}

/// How long a failed delivery waits before its next round.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A follower's state: where it is in the journal, what regions it saw announced and
/// started, which notices are being delivered.
struct Following {
    n: Arc<Notifier>,
    planned: Vec<Option<i64>>,
    announced: Vec<Option<i64>>,
    started: Vec<bool>,
    last_seq: i64,
    running: tokio::task::JoinSet<(String, Result<Round, NotifyError>)>,
    busy: HashSet<String>,
    /// Whether the excluded clusters' notices are in the outbox.
    told_excluded: bool,
}

impl Following {
    fn new(n: Arc<Notifier>, planned: Vec<Option<i64>>) -> Following {
        let nregions = n.fleet.regions.len();
        Following {
            n,
            planned,
            announced: vec![None; nregions],
            started: vec![false; nregions],
            last_seq: 0,
            running: tokio::task::JoinSet::new(),
            busy: HashSet::new(),
            told_excluded: false,
        }
    }

    /// One round: (a new process: what is still pending is due now,) new notices in the
    /// journal (read when an append woke us, at the start and the end; never polled),
    /// reminders, then deliver what is due.
    async fn round(
        &mut self,
        now: i64,
        due_now: &mut bool,
        wake: bool,
        stopping: bool,
    ) -> Result<(), NotifyError> {
        if *due_now {
            // (admin updates belong to `serve`'s claims)
            sqlx::query(
                "UPDATE notify_outbox SET next_ms = 0 WHERE run = $1 AND status = 'pending' AND notice NOT LIKE 'admin-%'",
            )
            .bind(&self.n.run)
            .execute(&self.n.pool)
            .await?;
            *due_now = false;
        }
        if !self.told_excluded {
            self.n.enqueue_excluded(now).await?;
            self.told_excluded = true;
        }
        if wake || stopping {
            self.new_notices().await?;
        }
        self.reminders(now).await?;
        self.deliver_due(stopping).await
    }

    /// The journal's notices since the last read, enqueued for their subscribers.
    async fn new_notices(&mut self) -> Result<(), NotifyError> {
        let n = self.n.clone();
        let rows = n
            .store
            .journal_kind_since(&n.run, "notice", self.last_seq)
            .await?;
        for (seq, rec) in rows {
            self.last_seq = seq;
            let Ok(Output::Notice(notice)) = serde_json::from_value::<Output>(rec.data) else {
                continue;
            };
            let ri = notice.region as usize;
            if ri >= self.announced.len() {
                continue;
            }
            match notice.kind {
                NoticeKind::Scheduled => self.announced[ri] = Some(notice.at),
                NoticeKind::Started => self.started[ri] = true,
                _ => {}
            }
            let Some(kind) = kind_of(notice.kind) else {
                continue;
            };
            let note = Note {
                key: format!("n-{seq}"),
                kind,
                region: notice.region,
                host: notice.host,
                at: notice.at,
                start: None,
                expected: None,
            };
            n.enqueue(&note, &n.recipients(notice.region, notice.host))
                .await?;
        }
        Ok(())
    }

    /// `remind_before` ahead of the expected start, if the announcement came earlier than
    /// that and the region has not started.
    async fn reminders(&mut self, now: i64) -> Result<(), NotifyError> {
        let n = self.n.clone();
        let Some(before) = n.cfg.settings.remind_before else {
            return Ok(());
        };
        for r in 0..self.announced.len() {
            let Some(at) = self.announced[r] else {
                continue;
            };
            if self.started[r] {
                continue;
            }
            let lead = n.fleet.maintenance.notice_lead;
            let expected = (at + lead).max(self.planned[r].unwrap_or(0));
            let due = expected - before;
            if due > at && now >= due {
                let note = Note {
                    key: format!("remind-{r}"),
                    kind: NoteKind::Reminder,
                    region: r as RegionIx,
                    host: None,
                    at: due,
                    start: Some(expected),
                    expected: None,
                };
                n.enqueue(&note, &n.recipients(r as RegionIx, None)).await?;
            }
        }
        Ok(())
    }

    /// Start delivering what is due (all that is pending when `stopping`), oldest first
    /// (announcements belong to `announce`); notices are delivered side by side, so one
    /// slow or failing subscriber does not hold back the next notice for everyone else.
    async fn deliver_due(&mut self, stopping: bool) -> Result<(), NotifyError> {
        while let Some(r) = self.running.try_join_next() {
            report(r, &mut self.busy, RETRY_AFTER)?;
        }
        // a released region's announcement is delivered here, like any other notice
        let released: Vec<String> = {
            let r = self.n.released.lock().unwrap();
            r.iter().map(|r| format!("announce-{r}")).collect()
        };
        let sql = format!(
            "SELECT notice FROM notify_outbox WHERE run = $1 AND status = 'pending' AND notice NOT LIKE 'admin-%' AND (notice NOT LIKE 'announce-%'{}) AND (next_ms <= $2 OR $3) GROUP BY notice ORDER BY MIN(at), MIN(created_ms), notice",
            (0..released.len())
                .map(|i| format!(" OR notice = ${}", i + 4))
                .collect::<String>()
        );
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(&self.n.run)
            .bind(wall_ms())
            .bind(stopping);
        for k in released {
            q = q.bind(k);
        }
        let keys: Vec<String> = q.fetch_all(&self.n.pool).await?;
        for k in keys {
            if self.busy.insert(k.clone()) {
                let n = self.n.clone();
                self.running.spawn(async move {
                    let r = n.deliver(&k, RETRY_AFTER).await;
                    (k, r)
                });
            }
        }
        Ok(())
    }

    /// Wait for the deliveries in flight.
    async fn drain(mut self) -> Result<(), NotifyError> {
        while let Some(r) = self.running.join_next().await {
            report(r, &mut self.busy, RETRY_AFTER)?;
        }
        Ok(())
    }
}

fn report(
    r: Result<(String, Result<Round, NotifyError>), tokio::task::JoinError>,
    busy: &mut HashSet<String>,
    retry_after: Duration,
) -> Result<(), NotifyError> {
    let (k, round) = r.map_err(NotifyError::Task)?;
    busy.remove(&k);
    let round = round?;
    if round.failed > 0 {
        eprintln!(
            "rollcall notify: {k}: {} of {} not delivered (first: {}); trying again in {}s",
            round.failed,
            round.failed + round.sent + round.gone,
            round
                .errors
                .first()
                .map(|(s, e)| format!("{s}: {e}"))
                .unwrap_or_default(),
            retry_after.as_secs()
        );
    }
    Ok(())
}

/// Everything a run needs for notifications.
pub struct Wired {
    pub driver: Arc<dyn Driver>,
    pub notifier: Arc<Notifier>,
    pub follower: Follower,
}

/// Set up notifications for run `run` from its fleet text: `None` when the fleet has no
/// `[[subscriber]]`. Errors are the fleet file's `file:line:col: field: message` listing.
pub async fn wire(
    store: &Store,
    run: &StoredRun,
    plan: &Plan,
    inner: Arc<dyn Driver>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Wired>, NotifyError> {
    let Some((notifier, clock)) = open_for(store, run, env).await? else {
        return Ok(None);
    };
    let follower = Follower::start(notifier.clone(), clock, plan);
    Ok(Some(Wired {
        driver: Arc::new(NotifyDriver {
            inner,
            notifier: notifier.clone(),
        }),
        notifier,
        follower,
    }))
}

/// Deliver what an ended run left undelivered (one round), e.g. from `rollcall resume`
/// on a completed run. `None` when the fleet has no subscribers.
pub async fn flush(
    store: &Store,
    run: &StoredRun,
    plan: &Plan,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Summary>, NotifyError> {
    let Some((notifier, clock)) = open_for(store, run, env).await? else {
        return Ok(None);
    };
    Follower::start(notifier, clock, plan)
        .finish(Duration::from_secs(120))
        .await?;
    summary(store, run.id()).await.map(Some)
}

/// The notifier of a stored run and its clock; `None` when its fleet has no subscribers.
async fn open_for(
    store: &Store,
    run: &StoredRun,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Arc<Notifier>, Clock)>, NotifyError> {
    let cfg = config::load(&run.name(), &run.row.fleet_text, &run.fleet, env)
        .map_err(|e| NotifyError::Config(e.listing()))?;
    if cfg.subscribers.is_empty() {
        return Ok(None);
    }
    let notifier = Notifier::open(store, run.id(), run.fleet.clone(), cfg).await?;
    Ok(Some((notifier, run.params.clock)))
}
