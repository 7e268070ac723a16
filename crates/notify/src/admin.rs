//! Admin notices and maintenances (`rollcall serve`'s admin API) delivered to subscribers
//! through the run's outbox, with the same privacy, idempotency and retries as the run's
//! own notices.
//!
//! * **Who is told**: a tenant's update only that tenant's subscribers; a public one every
//!   subscriber; with a region, only those who follow it (the region, or a cluster of
//!   theirs with hosts in it).
//! * **Once**: the outbox key is `admin-<id>-<kind>-<sequence>-<hash of the content>`, so
//!   the same update handed over again (a retried request, a restart) adds no row.
//! * **Which process delivers**: any `serve` (or `run --serve`) with this module wired. A
//!   process delivers a row only after claiming it in one conditional `UPDATE` (`claim`
//!   set, `next_ms` pushed past the time a round can take, only where `next_ms` is due),
//!   so when several `serve`s share a PostgreSQL journal each row is sent by one of them.
//!   A claimer that dies mid-round leaves its rows to be claimed again once the hold
//!   runs out; the stable `Message-ID` / `webhook-id` lets a receiver drop the one
//!   duplicate that could cause. The run's own follower leaves `admin-` rows alone.

use crate::render::{Reader, when};
use crate::{Notifier, NotifyError, OutboxRow, wall_ms};
use rollcall_core::model::RegionIx;
use rollcall_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An update created through the admin API: the web crate stores it and hands it to its
/// `UpdateSink` (re-exported there as `rollcall_web::Update`); notify delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminUpdate {
    pub run: String,
    pub id: String,
    /// `notice`, `maintenance_scheduled`, `maintenance_rescheduled`,
    /// `maintenance_cancelled`, `maintenance_completed`, `maintenance_updated`.
    pub kind: String,
    /// Run clock, Unix seconds.
    pub at: i64,
    pub title: String,
    pub body: String,
    pub region: Option<String>,
    /// Only this tenant may be told.
    pub tenant: Option<String>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub sequence: Option<u32>,
}

impl AdminUpdate {
    /// The outbox key: one per update id, kind, sequence and content (not its time).
    pub fn key(&self) -> String {
        use sha2::Digest;
        let content = json!([
            self.title,
            self.body,
            self.region,
            self.tenant,
            self.starts_at,
            self.ends_at
        ]);
        let h = sha2::Sha256::digest(content.to_string().as_bytes());
        let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "admin-{}-{}-{}-{hex}",
            self.id,
            self.kind,
            self.sequence.unwrap_or(0)
        )
    }
}

/// The subject and text of an admin update for one reader.
pub fn render_admin(
    fleet_name: &str,
    reader: &Reader<'_>,
    u: &AdminUpdate,
) -> crate::render::Message {
    let (prefix, status, impact) = match u.kind.as_str() {
        "notice" => ("", "identified", "minor"),
        "maintenance_scheduled" => ("Scheduled maintenance: ", "scheduled", "maintenance"),
        "maintenance_rescheduled" => ("Rescheduled: ", "scheduled", "maintenance"),
        "maintenance_cancelled" => ("Cancelled: ", "completed", "maintenance"),
        "maintenance_completed" => ("Completed: ", "completed", "maintenance"),
        _ => ("Updated: ", "scheduled", "maintenance"),
    };
    let subject = format!("[{fleet_name}] {prefix}{}", u.title);
    let mut text = u.body.trim().to_string();
    if let (Some(s), Some(e)) = (u.starts_at, u.ends_at) {
        let window = format!("Window: {} to {}.", when(s, reader.tz), when(e, reader.tz));
        text = match u.kind.as_str() {
            "maintenance_cancelled" => format!("This maintenance is cancelled. {window}\n\n{text}"),
            _ => format!("{window}\n\n{text}"),
        };
    }
    if let Some(r) = &u.region {
        text.push_str(&format!("\n\nRegion: {r}."));
    }
    let link = reader.page_url.map(|p| format!("{p}/incidents/{}", u.id));
    let ts = rollcall_core::model::fmt_time;
    let statuspage = json!({
        "meta": {"unsubscribe": null, "generated_at": ts(u.at)},
        "page": {"id": fleet_name, "status_indicator": "none", "status_description": subject},
        "incident": {
            "id": u.id,
            "name": u.title,
            "status": status,
            "impact": impact,
            "shortlink": link,
            "scheduled_for": u.starts_at.map(ts),
            "scheduled_until": u.ends_at.map(ts),
            "created_at": ts(u.at),
            "updated_at": ts(u.at),
            "incident_updates": [{
                "id": format!("{}-{}-{}", u.id, u.kind, u.sequence.unwrap_or(0)),
                "status": status,
                "body": text,
                "created_at": ts(u.at),
                "updated_at": ts(u.at),
                "display_at": ts(u.at),
                "affected_components": [],
            }],
            "components": [],
            "rollcall": {"kind": u.kind, "region": u.region},
        }
    });
    crate::render::Message {
        subject,
        text,
        link,
        statuspage,
    }
}

impl Notifier {
    /// The subscribers an admin update is for (see the module docs).
    pub fn admin_recipients(&self, u: &AdminUpdate) -> Result<Vec<usize>, NotifyError> {
        let region = match &u.region {
            None => None,
            Some(r) => Some(
                self.fleet
                    .regions
                    .iter()
                    .position(|x| x == r)
                    .ok_or_else(|| NotifyError::Admin(format!("no region `{r}` in this fleet")))?
                    as RegionIx,
            ),
        };
        Ok((0..self.cfg.subscribers.len())
            .filter(|&i| {
                let s = &self.cfg.subscribers[i];
                let tenant_ok = u.tenant.is_none() || s.tenant == u.tenant;
                let region_ok =
                    region.is_none_or(|r| crate::render::wants(&self.fleet, s, r, None));
                tenant_ok && region_ok
            })
            .collect())
    }

    /// Record an admin update in the outbox for its recipients (nothing twice), then
    /// claim and deliver it. Failed deliveries stay pending for [`AdminDelivery`]'s rounds.
    pub async fn publish_admin(&self, u: &AdminUpdate, me: &str) -> Result<(), NotifyError> {
        let subs = self.admin_recipients(u)?;
        let key = u.key();
        let payload = serde_json::to_string(u).unwrap_or_default();
        let region = u
            .region
            .as_ref()
            .and_then(|r| self.fleet.regions.iter().position(|x| x == r))
            .map_or(-1, |r| r as i64);
        let row = OutboxRow {
            key: &key,
            kind: "admin",
            region,
            host: None,
            at: u.at,
            start: u.starts_at,
            expected: u.ends_at,
            payload: Some(&payload),
        };
        self.insert(&row, &subs).await?;
        self.deliver_claimed(&key, me).await.map(|_| ())
    }

    /// One round of every due `admin-` notice of this run that this process can claim.
    pub async fn admin_round(&self, me: &str) -> Result<(), NotifyError> {
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT notice FROM notify_outbox WHERE run = $1 AND status = 'pending' AND notice LIKE 'admin-%' AND next_ms <= $2 GROUP BY notice ORDER BY MIN(created_ms), notice",
        )
        .bind(&self.run)
        .bind(wall_ms())
        .fetch_all(&self.pool)
        .await?;
        for k in keys {
            self.deliver_claimed(&k, me).await?;
        }
        Ok(())
    }
}

/// How long a claim holds: longer than one round (every attempt timing out, every
/// backoff at its cap).
fn hold(n: &Notifier) -> Duration {
    let s = &n.cfg.settings;
    (s.timeout + Duration::from_secs(30)) * s.attempts + Duration::from_secs(30)
}

impl Notifier {
    /// Claim the notice's due rows for `me` (conditional: rows another process holds are
    /// left alone), then deliver the rows claimed.
    async fn deliver_claimed(&self, key: &str, me: &str) -> Result<crate::Round, NotifyError> {
        let now = wall_ms();
        sqlx::query(
            "UPDATE notify_outbox SET claim = $1, next_ms = $2 WHERE run = $3 AND notice = $4 AND status = 'pending' AND next_ms <= $5",
        )
        .bind(me)
        .bind(now + hold(self).as_millis() as i64)
        .bind(&self.run)
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.deliver_rows(key, crate::RETRY_AFTER, Some(me)).await
    }
}

/// Resolves the fleet file's `*_env` settings (e.g. `|k| std::env::var(k).ok()`).
pub type Env = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Delivers admin updates from a `serve` process: opens the run's notifier on first use
/// (none when its fleet has no subscribers) and retries what is pending every second.
pub struct AdminDelivery {
    store: Store,
    env: Env,
    /// This process's claim name.
    me: String,
    notifiers: tokio::sync::Mutex<HashMap<String, Option<Arc<Notifier>>>>,
    last_error: Mutex<String>,
}

impl AdminDelivery {
    /// Start delivering for the runs updates are published for; `run` (when known) is
    /// opened now so what an earlier process left pending is retried.
    pub async fn start(
        store: Store,
        run: Option<String>,
        env: Env,
    ) -> Result<Arc<AdminDelivery>, NotifyError> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| NotifyError::Admin(format!("randomness: {e}")))?;
        let me = format!(
            "serve-{}-{}",
            std::process::id(),
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        );
        let d = Arc::new(AdminDelivery {
            store,
            env,
            me,
            notifiers: tokio::sync::Mutex::new(HashMap::new()),
            last_error: Mutex::new(String::new()),
        });
        let run = match run {
            Some(r) => Some(r),
            None => d.store.latest_run().await?.map(|r| r.id),
        };
        if let Some(r) = run {
            d.notifier(&r).await?;
        }
        let weak = Arc::downgrade(&d);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(d) = weak.upgrade() else { return };
                d.round().await;
            }
        });
        Ok(d)
    }

    /// The notifier of run `run` (opened once; `None`: no subscribers).
    async fn notifier(&self, run: &str) -> Result<Option<Arc<Notifier>>, NotifyError> {
        let mut map = self.notifiers.lock().await;
        if let Some(n) = map.get(run) {
            return Ok(n.clone());
        }
        // not stored yet (`run --serve` starts its page first): look again next time
        let Some(row) = self.store.run(run).await? else {
            return Ok(None);
        };
        let stored = rollcall_runtime::StoredRun::load(row)
            .map_err(|e| NotifyError::Admin(format!("run {run}: {e}")))?;
        let cfg = crate::config::load(
            &stored.name(),
            &stored.row.fleet_text,
            &stored.fleet,
            &*self.env,
        )
        .map_err(|e| NotifyError::Config(e.listing()))?;
        let n = if cfg.subscribers.is_empty() {
            None
        } else {
            Some(Notifier::open(&self.store, run, stored.fleet.clone(), cfg).await?)
        };
        map.insert(run.to_string(), n.clone());
        Ok(n)
    }

    /// Deliver an update now (and keep retrying what fails). `Ok` once it is recorded.
    pub async fn publish(&self, u: &AdminUpdate) -> Result<(), NotifyError> {
        let Some(n) = self.notifier(&u.run).await? else {
            return Ok(());
        };
        n.publish_admin(u, &self.me).await
    }

    async fn round(&self) {
        let list: Vec<Arc<Notifier>> = self
            .notifiers
            .lock()
            .await
            .values()
            .flatten()
            .cloned()
            .collect();
        for n in list {
            let r = n.admin_round(&self.me).await;
            let e = r.err().map(|e| e.to_string()).unwrap_or_default();
            let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
            if e != *last && !e.is_empty() {
                eprintln!("rollcall notify: admin updates: {e}");
            }
            *last = e;
        }
    }
}
