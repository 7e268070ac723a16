//! A subscriber that never accepts a region's announcement holds the region: no host of
//! it starts (fail closed). That hold is not left silent:
//!
//! * each failed announcement round is counted in `notify_holds` (per run and region:
//!   since when, how many rounds, who is still unreached, the last error);
//! * after `[notify] escalate_after` (run clock; default 15 minutes) or
//!   `escalate_rounds` rounds, the hold is **escalated**, once: said on the
//!   orchestrator's stderr, shown by `rollcall status`, `/metrics` and the admin API, and
//!   sent to the operator's own subscribers (`operator = true`), through the outbox;
//! * the operator answers with `rollcall notify release REGION` (start the region without
//!   waiting; deliveries go on) or `rollcall notify drop SUBSCRIBER` (stop sending to it
//!   for this run). Each decision is recorded in `notify_decisions` (who, when, why) and
//!   read by the orchestrator at its next announcement round.

use crate::NotifyError;
use crate::render::Note;
use rollcall_core::model::{Fleet, RegionIx};
use rollcall_store::Store;
use sqlx::{AnyPool, Row};

/// What the operator decided about a held region or an unreached subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Start the region without waiting for every subscriber to accept its announcement.
    Release,
    /// Stop delivering to a subscriber for the rest of the run.
    Drop,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Release => "release",
            Action::Drop => "drop",
        }
    }
    fn parse(s: &str) -> Option<Action> {
        [Action::Release, Action::Drop]
            .into_iter()
            .find(|a| a.name() == s)
    }
}

/// One recorded operator decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    pub action: Action,
    /// The region's name (release) or the subscriber's id (drop).
    pub target: String,
    pub at_ms: i64,
    /// Who decided (the operator's user name).
    pub by: String,
    pub reason: Option<String>,
}

/// A region whose announcement has not reached every subscriber.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hold {
    pub region: String,
    /// Run clock of the first failed round.
    pub since: i64,
    pub rounds: i64,
    /// Run clock when it was escalated to the operator.
    pub escalated_at: Option<i64>,
    /// Subscribers still unreached at the last round.
    pub unreached: Vec<String>,
    pub last_error: Option<String>,
    /// Released by the operator.
    pub released: bool,
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_holds (
    run TEXT NOT NULL,
    region TEXT NOT NULL,
    since INTEGER NOT NULL,
    rounds INTEGER NOT NULL,
    escalated_at INTEGER,
    unreached TEXT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (run, region)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notify_decisions (
    run TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    by_user TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (run, action, target)
) WITHOUT ROWID;
";

pub(crate) const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_holds (
    run TEXT NOT NULL,
    region TEXT NOT NULL,
    since BIGINT NOT NULL,
    rounds BIGINT NOT NULL,
    escalated_at BIGINT,
    unreached TEXT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (run, region)
);
CREATE TABLE IF NOT EXISTS notify_decisions (
    run TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (run, action, target)
);
";

/// Record an operator decision (the `notify_` tables are created if need be). A drop
/// also marks the subscriber's pending deliveries of the run `dropped`. `Ok(false)`:
/// the same decision was already recorded (nothing changes).
pub async fn decide(store: &Store, run: &str, d: &Decision) -> Result<bool, NotifyError> {
    crate::init(store).await?;
    let mut tx = store.pool().begin().await?;
    let new = sqlx::query(
        "INSERT INTO notify_decisions (run, action, target, at_ms, by_user, reason) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(run)
    .bind(d.action.name())
    .bind(&d.target)
    .bind(d.at_ms)
    .bind(&d.by)
    .bind(&d.reason)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if new && d.action == Action::Drop {
        sqlx::query(
            "UPDATE notify_outbox SET status = 'dropped' \
             WHERE run = $1 AND subscriber = $2 AND status = 'pending'",
        )
        .bind(run)
        .bind(&d.target)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// The run's decisions, oldest first.
pub(crate) async fn decisions_in(pool: &AnyPool, run: &str) -> Result<Vec<Decision>, NotifyError> {
    let rows = sqlx::query(
        "SELECT action, target, at_ms, by_user, reason FROM notify_decisions \
         WHERE run = $1 ORDER BY at_ms, action, target",
    )
    .bind(run)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Decision {
                action: Action::parse(&r.get::<String, _>("action"))?,
                target: r.get("target"),
                at_ms: r.get("at_ms"),
                by: r.get("by_user"),
                reason: r.get("reason"),
            })
        })
        .collect())
}

/// The run's held regions (released ones too), by region name.
pub(crate) async fn holds_in(pool: &AnyPool, run: &str) -> Result<Vec<Hold>, NotifyError> {
    let released: Vec<String> = decisions_in(pool, run)
        .await?
        .into_iter()
        .filter(|d| d.action == Action::Release)
        .map(|d| d.target)
        .collect();
    let rows = sqlx::query(
        "SELECT region, since, rounds, escalated_at, unreached, last_error FROM notify_holds \
         WHERE run = $1 ORDER BY since, region",
    )
    .bind(run)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let region: String = r.get("region");
            Hold {
                released: released.contains(&region),
                since: r.get("since"),
                rounds: r.get("rounds"),
                escalated_at: r.get("escalated_at"),
                unreached: split(&r.get::<String, _>("unreached")),
                last_error: r.get("last_error"),
                region,
            }
        })
        .collect())
}

fn split(list: &str) -> Vec<String> {
    list.split('\n')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// When a hold is escalated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub after: Option<i64>,
    pub rounds: Option<u32>,
}

impl Policy {
    fn due(&self, since: i64, rounds: i64, now: i64) -> bool {
        self.after.is_some_and(|a| now - since >= a)
            || self.rounds.is_some_and(|n| rounds >= n as i64)
    }
}

/// One failed announcement round of `region`: counted; `Some(hold)` when this round
/// escalates it (once per run and region, whichever process counts it).
pub(crate) async fn failed_round(
    pool: &AnyPool,
    run: &str,
    region: &str,
    now: i64,
    unreached: &[String],
    last_error: Option<&str>,
    policy: Policy,
) -> Result<Option<Hold>, NotifyError> {
    let list = unreached.join("\n");
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO notify_holds (run, region, since, rounds, unreached, last_error) \
         VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (run, region) DO UPDATE SET \
         rounds = notify_holds.rounds + 1, unreached = excluded.unreached, \
         last_error = excluded.last_error",
    )
    .bind(run)
    .bind(region)
    .bind(now)
    .bind(&list)
    .bind(last_error)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "SELECT since, rounds, escalated_at FROM notify_holds WHERE run = $1 AND region = $2",
    )
    .bind(run)
    .bind(region)
    .fetch_one(&mut *tx)
    .await?;
    let (since, rounds): (i64, i64) = (row.get("since"), row.get("rounds"));
    let escalated_at: Option<i64> = row.get("escalated_at");
    let escalate = escalated_at.is_none() && policy.due(since, rounds, now);
    if escalate {
        sqlx::query(
            "UPDATE notify_holds SET escalated_at = $1 \
             WHERE run = $2 AND region = $3 AND escalated_at IS NULL",
        )
        .bind(now)
        .bind(run)
        .bind(region)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(escalate.then(|| Hold {
        region: region.to_string(),
        since,
        rounds,
        escalated_at: Some(now),
        unreached: unreached.to_vec(),
        last_error: last_error.map(str::to_string),
        released: false,
    }))
}

/// The note sent to the operator's subscribers when `region`'s hold is escalated.
pub(crate) fn operator_note(region: RegionIx, hold: &Hold) -> Note {
    Note {
        key: format!("unreached-{region}"),
        kind: crate::render::NoteKind::Unreached,
        region,
        host: None,
        at: hold.escalated_at.unwrap_or(hold.since),
        start: Some(hold.since),
        expected: None,
    }
}

/// The operator's message: which region is held since when, and the two ways out.
pub(crate) fn operator_text(
    fleet: &Fleet,
    run: &str,
    note: &Note,
    tz: &jiff::tz::TimeZone,
) -> (String, String) {
    let region = fleet.region_name(note.region);
    let since = note
        .start
        .map(|t| crate::render::when(t, tz))
        .unwrap_or_default();
    (
        format!(
            "Action needed: {region} is held, its announcement does not reach every subscriber"
        ),
        format!(
            "Run {run}: the announcement of the maintenance in {region} has not reached every subscriber since {since}, so no host of {region} starts (rollcall waits until each subscriber has accepted the notice). `rollcall status {run}` lists the unreached subscribers and their errors. Either fix the subscriber's endpoint, or `rollcall notify release {region} --run {run}` to start the region without waiting, or `rollcall notify drop SUBSCRIBER --run {run}` to stop sending to one subscriber."
        ),
    )
}

/// A held region in one line, for the orchestrator's stderr and `rollcall status`.
pub fn describe(h: &Hold) -> String {
    let state = match (h.released, h.escalated_at) {
        (true, _) => "released by the operator",
        (false, Some(_)) => "ESCALATED, held",
        (false, None) => "held",
    };
    format!(
        "{}: {state} since {}: not accepted by {} after {} round(s) (last error: {})",
        h.region,
        rollcall_core::model::fmt_time(h.since),
        h.unreached.join(", "),
        h.rounds,
        h.last_error.as_deref().unwrap_or("none recorded"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hold's count, its one escalation and the decisions, on both backends.
    async fn holds_and_decisions(store: Store) {
        crate::init(&store).await.unwrap();
        let pool = store.pool().clone();
        let policy = Policy {
            after: Some(600),
            rounds: Some(3),
        };
        let subs = vec!["a".to_string(), "b".to_string()];
        let round = |now| failed_round(&pool, "r", "dfw", now, &subs, Some("503"), policy);
        assert_eq!(round(100).await.unwrap(), None);
        assert_eq!(round(110).await.unwrap(), None);
        let h = round(120)
            .await
            .unwrap()
            .expect("the third round escalates");
        assert_eq!((h.since, h.rounds, h.escalated_at), (100, 3, Some(120)));
        // once only, however many rounds follow
        assert_eq!(round(130).await.unwrap(), None);
        // by time alone, in another region
        let after = Policy {
            after: Some(600),
            rounds: None,
        };
        let ord = |now| failed_round(&pool, "r", "ord", now, &subs, None, after);
        assert_eq!(ord(0).await.unwrap(), None);
        assert_eq!(ord(599).await.unwrap(), None);
        assert!(ord(600).await.unwrap().is_some());
        let release = Decision {
            action: Action::Release,
            target: "dfw".into(),
            at_ms: 5,
            by: "op".into(),
            reason: Some("why".into()),
        };
        assert!(decide(&store, "r", &release).await.unwrap());
        assert!(
            !decide(&store, "r", &release).await.unwrap(),
            "recorded once"
        );
        let holds = holds_in(&pool, "r").await.unwrap();
        assert_eq!(holds.len(), 2);
        let dfw = holds.iter().find(|h| h.region == "dfw").unwrap();
        assert!(dfw.released && dfw.rounds == 4 && dfw.unreached == subs);
        assert!(!holds.iter().find(|h| h.region == "ord").unwrap().released);
        assert_eq!(decisions_in(&pool, "r").await.unwrap(), vec![release]);
        assert!(holds_in(&pool, "other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn holds_and_decisions_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(dir.path().join("r.db")).await.unwrap();
        holds_and_decisions(store).await;
    }

    #[tokio::test]
    async fn holds_and_decisions_on_postgres() {
        let url = rollcall_testkit::pg::shared().fresh_db("escalate");
        let store = Store::connect(std::path::PathBuf::from(url)).await.unwrap();
        holds_and_decisions(store).await;
    }
}
