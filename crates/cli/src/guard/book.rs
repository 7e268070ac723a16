//! The guard's own journal, in the run store (SQLite or PostgreSQL, through the store's
//! `AnyPool`): every provider event it has seen per host, every change to one (new, state,
//! window moved, gone) with its time, and the guard run that dealt with it. A restarted
//! guard reads what it knew from here; nothing is kept only in memory.

use super::derive::Due;
use rollcall_providers::{EventState, ProviderEvent, Pulled};
use rollcall_store::{Dialect, Store};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS guard_events (
    guard TEXT NOT NULL,
    key TEXT NOT NULL,
    host TEXT NOT NULL,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    state TEXT NOT NULL,
    not_before INTEGER,
    not_after INTEGER,
    deadline INTEGER,
    description TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    run TEXT,
    outcome TEXT,
    PRIMARY KEY (guard, key, host)
);
CREATE TABLE IF NOT EXISTS guard_log (
    guard TEXT NOT NULL,
    at INTEGER NOT NULL,
    key TEXT NOT NULL,
    host TEXT NOT NULL,
    change TEXT NOT NULL,
    state TEXT NOT NULL,
    not_before INTEGER,
    not_after INTEGER
);
CREATE TABLE IF NOT EXISTS guard_runs (
    guard TEXT NOT NULL,
    run TEXT NOT NULL,
    started INTEGER NOT NULL,
    PRIMARY KEY (guard, run)
);
";

const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS guard_events (
    guard TEXT NOT NULL,
    key TEXT NOT NULL,
    host TEXT NOT NULL,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    state TEXT NOT NULL,
    not_before BIGINT,
    not_after BIGINT,
    deadline BIGINT,
    description TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    run TEXT,
    outcome TEXT,
    PRIMARY KEY (guard, key, host)
);
CREATE TABLE IF NOT EXISTS guard_log (
    guard TEXT NOT NULL,
    at BIGINT NOT NULL,
    key TEXT NOT NULL,
    host TEXT NOT NULL,
    change TEXT NOT NULL,
    state TEXT NOT NULL,
    not_before BIGINT,
    not_after BIGINT
);
CREATE TABLE IF NOT EXISTS guard_runs (
    guard TEXT NOT NULL,
    run TEXT NOT NULL,
    started BIGINT NOT NULL,
    PRIMARY KEY (guard, run)
);
";

pub type BookError = sqlx::Error;

/// An event as the book knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Known {
    pub key: String,
    pub host: String,
    pub source: String,
    pub code: String,
    pub state: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub first_seen: i64,
    pub run: Option<String>,
    pub outcome: Option<String>,
}

impl Known {
    fn open(&self) -> bool {
        matches!(self.state.as_str(), "scheduled" | "started")
    }
}

/// What changed about one event at one pull.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub key: String,
    pub host: String,
    /// `new`, `scheduled→started`, `moved`, `gone` …
    pub what: String,
    pub state: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
}

pub fn state_name(s: EventState) -> &'static str {
    match s {
        EventState::Scheduled => "scheduled",
        EventState::Started => "started",
        EventState::Completed => "completed",
        EventState::Canceled => "canceled",
    }
}

/// One guard's book.
pub struct Book {
    pool: AnyPool,
    guard: String,
}

impl Book {
    pub async fn open(store: &Store, guard: &str) -> Result<Book, rollcall_store::StoreError> {
        let steps: &[&str] = match store.dialect() {
            Dialect::Sqlite => &[SCHEMA],
            Dialect::Postgres => &[PG_SCHEMA],
        };
        store.migrate("guard", steps).await?;
        Ok(Book {
            pool: store.pool().clone(),
            guard: guard.to_string(),
        })
    }

    /// The rows of `sql`, whose one parameter (`$1`) is this guard.
    async fn select(&self, sql: &'static str) -> Result<Vec<sqlx::any::AnyRow>, BookError> {
        sqlx::query(sql)
            .bind(&self.guard)
            .fetch_all(&self.pool)
            .await
    }

    /// Every event the book knows, by (key, host).
    pub async fn known(&self) -> Result<HashMap<(String, String), Known>, BookError> {
        let rows = self
            .select("SELECT key, host, source, code, state, not_before, not_after, first_seen, run, outcome FROM guard_events WHERE guard = $1")
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let k = Known {
                    key: r.get("key"),
                    host: r.get("host"),
                    source: r.get("source"),
                    code: r.get("code"),
                    state: r.get("state"),
                    not_before: r.get("not_before"),
                    not_after: r.get("not_after"),
                    first_seen: r.get("first_seen"),
                    run: r.get("run"),
                    outcome: r.get("outcome"),
                };
                ((k.key.clone(), k.host.clone()), k)
            })
            .collect())
    }

    /// Record what one round of pulls read: new events, changed states and windows, and
    /// open events a host no longer lists (gone: completed if it had started, else
    /// canceled). Hosts that could not be read change nothing. An event that replaces one
    /// that went away unstarted on the same host and source (a window moved under a new
    /// id, as GCP does) inherits the run that dealt with it: a host rebooted ahead is not
    /// rebooted again because the provider moved its window. The changes, in order.
    pub async fn record(&self, pulled: &[Pulled], now: i64) -> Result<Vec<Change>, BookError> {
        let known = self.known().await?;
        let mut changes = Vec::new();
        for p in pulled {
            let Ok(events) = &p.events else { continue };
            let listed: Vec<String> = events.iter().map(ProviderEvent::key).collect();
            let mut withdrawn = Vec::new();
            for k in known.values().filter(|k| {
                k.host == p.host
                    && k.source == p.source.as_str()
                    && k.open()
                    && !listed.contains(&k.key)
            }) {
                let c = self.gone(k, now).await?;
                if c.state == "canceled" && k.run.is_some() {
                    withdrawn.push(k.clone());
                }
                changes.push(c);
            }
            // known events first (a source may list a withdrawn window as canceled), new after
            let (old, new): (Vec<_>, Vec<_>) = events
                .iter()
                .partition(|e| known.contains_key(&(e.key(), p.host.clone())));
            for e in old {
                let k = &known[&(e.key(), p.host.clone())];
                if k.open() && e.state == EventState::Canceled && k.run.is_some() {
                    withdrawn.push(k.clone());
                }
                if let Some(c) = self.upsert(&p.host, e, Some(k), None, now).await? {
                    changes.push(c);
                }
            }
            for e in new {
                let heir = withdrawn.first();
                if let Some(c) = self.upsert(&p.host, e, None, heir, now).await? {
                    changes.push(c);
                }
            }
        }
        Ok(changes)
    }

    async fn upsert(
        &self,
        host: &str,
        e: &ProviderEvent,
        k: Option<&Known>,
        heir_of: Option<&Known>,
        now: i64,
    ) -> Result<Option<Change>, BookError> {
        let state = state_name(e.state);
        let what = match k {
            None if heir_of.is_some() => format!("moved (was {})", heir_of.unwrap().key),
            None => "new".to_string(),
            Some(k) if k.state != state => format!("{}→{state}", k.state),
            Some(k) if k.not_before != e.not_before || k.not_after != e.not_after => {
                "moved".to_string()
            }
            Some(_) => return Ok(None),
        };
        sqlx::query(
            "INSERT INTO guard_events (guard, key, host, source, code, state, not_before, not_after, deadline, description, first_seen, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (guard, key, host) DO UPDATE SET state = $6, not_before = $7, not_after = $8, deadline = $9, description = $10, updated = $11",
        )
        .bind(&self.guard)
        .bind(e.key())
        .bind(host)
        .bind(e.source.as_str())
        .bind(&e.code)
        .bind(state)
        .bind(e.not_before)
        .bind(e.not_after)
        .bind(e.deadline)
        .bind(&e.description)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if let Some(h) = heir_of {
            sqlx::query("UPDATE guard_events SET run = $1, outcome = $2 WHERE guard = $3 AND key = $4 AND host = $5")
                .bind(&h.run)
                .bind(&h.outcome)
                .bind(&self.guard)
                .bind(e.key())
                .bind(host)
                .execute(&self.pool)
                .await?;
        }
        let c = Change {
            key: e.key(),
            host: host.to_string(),
            what,
            state: state.to_string(),
            not_before: e.not_before,
            not_after: e.not_after,
        };
        self.log(&c, now).await?;
        Ok(Some(c))
    }

    async fn gone(&self, k: &Known, now: i64) -> Result<Change, BookError> {
        let state = if k.state == "started" {
            "completed"
        } else {
            "canceled"
        };
        sqlx::query(
            "UPDATE guard_events SET state = $1, updated = $2 WHERE guard = $3 AND key = $4 AND host = $5",
        )
        .bind(state)
        .bind(now)
        .bind(&self.guard)
        .bind(&k.key)
        .bind(&k.host)
        .execute(&self.pool)
        .await?;
        let c = Change {
            key: k.key.clone(),
            host: k.host.clone(),
            what: "gone".into(),
            state: state.into(),
            not_before: k.not_before,
            not_after: k.not_after,
        };
        self.log(&c, now).await?;
        Ok(c)
    }

    async fn log(&self, c: &Change, now: i64) -> Result<(), BookError> {
        sqlx::query(
            "INSERT INTO guard_log (guard, at, key, host, change, state, not_before, not_after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&self.guard)
        .bind(now)
        .bind(&c.key)
        .bind(&c.host)
        .bind(&c.what)
        .bind(&c.state)
        .bind(c.not_before)
        .bind(c.not_after)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Scheduled events no guard run has dealt with yet whose window is still ahead.
    pub async fn due(&self, now: i64) -> Result<Vec<Due>, BookError> {
        let mut due: Vec<Due> = self
            .known()
            .await?
            .into_values()
            .filter(|k| k.state == "scheduled" && k.run.is_none())
            .filter_map(|k| {
                let nb = k.not_before.filter(|&t| t > now)?;
                Some(Due {
                    key: k.key,
                    host: k.host,
                    source: k.source,
                    code: k.code,
                    not_before: nb,
                    not_after: k.not_after,
                })
            })
            .collect();
        due.sort_by(|a, b| (a.not_before, &a.host, &a.key).cmp(&(b.not_before, &b.host, &b.key)));
        Ok(due)
    }

    /// A guard run was started for these events (before it is driven: a guard that
    /// restarts finds it and resumes it). `false`, and nothing recorded, when another
    /// guard process of the same book took one of them first.
    pub async fn started(&self, run: &str, due: &[Due], now: i64) -> Result<bool, BookError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO guard_runs (guard, run, started) VALUES ($1, $2, $3)")
            .bind(&self.guard)
            .bind(run)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for d in due {
            let taken = sqlx::query(
                "UPDATE guard_events SET run = $1 WHERE guard = $2 AND key = $3 AND host = $4 AND run IS NULL",
            )
            .bind(run)
            .bind(&self.guard)
            .bind(&d.key)
            .bind(&d.host)
            .execute(&mut *tx)
            .await?;
            if taken.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// How the run left each host of its events (`done`, or the phase it stopped in).
    pub async fn finished(
        &self,
        run: &str,
        outcome: &HashMap<String, String>,
    ) -> Result<(), BookError> {
        for (host, o) in outcome {
            sqlx::query(
                "UPDATE guard_events SET outcome = $1 WHERE guard = $2 AND run = $3 AND host = $4",
            )
            .bind(o)
            .bind(&self.guard)
            .bind(run)
            .bind(host)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// A guard run that was never stored (the guard stopped in between): its events are
    /// due again.
    pub async fn give_back(&self, run: &str) -> Result<(), BookError> {
        sqlx::query("UPDATE guard_events SET run = NULL WHERE guard = $1 AND run = $2")
            .bind(&self.guard)
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every change the guard recorded, oldest first.
    pub async fn changes(&self) -> Result<Vec<(i64, Change)>, BookError> {
        let rows = self
            .select("SELECT at, key, host, change, state, not_before, not_after FROM guard_log WHERE guard = $1 ORDER BY at")
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let c = Change {
                    key: r.get("key"),
                    host: r.get("host"),
                    what: r.get("change"),
                    state: r.get("state"),
                    not_before: r.get("not_before"),
                    not_after: r.get("not_after"),
                };
                (r.get("at"), c)
            })
            .collect())
    }

    /// Every guard this journal has a book for.
    pub async fn guards(&self) -> Result<Vec<String>, BookError> {
        let rows = sqlx::query("SELECT DISTINCT guard FROM guard_events ORDER BY guard")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get("guard")).collect())
    }

    /// The guard's runs, oldest first.
    pub async fn runs(&self) -> Result<Vec<String>, BookError> {
        let rows = self
            .select("SELECT run FROM guard_runs WHERE guard = $1 ORDER BY started, run")
            .await?;
        Ok(rows.iter().map(|r| r.get("run")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_providers::Source;

    fn ev(id: &str, state: EventState, nb: i64) -> ProviderEvent {
        ProviderEvent {
            source: Source::Azure,
            id: id.into(),
            instance: "h1".into(),
            code: "Reboot".into(),
            state,
            not_before: Some(nb),
            not_after: None,
            deadline: None,
            description: String::new(),
        }
    }

    fn pulled(host: &str, events: Vec<ProviderEvent>) -> Pulled {
        Pulled {
            host: host.into(),
            source: Source::Azure,
            events: Ok(events),
        }
    }

    fn whats(c: &[Change]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{} {} {}", c.host, c.key, c.what))
            .collect()
    }

    /// The book's whole life on one store: new, unchanged, moved, started, gone, an unread
    /// host changing nothing, due events, a run started and given back.
    async fn book_life(store: &Store) {
        let b = Book::open(store, "g").await.unwrap();
        let c = b
            .record(
                &[pulled("h1", vec![ev("e1", EventState::Scheduled, 1000)])],
                10,
            )
            .await
            .unwrap();
        assert_eq!(whats(&c), ["h1 azure:e1 new"]);
        let again = [pulled("h1", vec![ev("e1", EventState::Scheduled, 1000)])];
        assert!(b.record(&again, 11).await.unwrap().is_empty());
        let moved = [pulled("h1", vec![ev("e1", EventState::Scheduled, 2000)])];
        assert_eq!(
            whats(&b.record(&moved, 12).await.unwrap()),
            ["h1 azure:e1 moved"]
        );
        assert_eq!(b.due(100).await.unwrap().len(), 1);
        assert!(
            b.due(2000).await.unwrap().is_empty(),
            "a window that began is not due"
        );
        // an unread host changes nothing
        let unread = Pulled {
            host: "h1".into(),
            source: Source::Azure,
            events: Err(rollcall_providers::ProviderError::Http {
                url: "u".into(),
                error: "refused".into(),
            }),
        };
        assert!(b.record(&[unread], 13).await.unwrap().is_empty());
        let due = b.due(100).await.unwrap();
        assert!(b.started("run-1", &due, 14).await.unwrap());
        assert!(b.due(100).await.unwrap().is_empty(), "taken by run-1");
        // a second guard process that read the same events due takes none of them
        assert!(!b.started("run-other", &due, 14).await.unwrap());
        assert_eq!(b.runs().await.unwrap(), ["run-1"]);
        b.give_back("run-1").await.unwrap();
        assert_eq!(b.due(100).await.unwrap().len(), 1, "given back");
        let started = [pulled("h1", vec![ev("e1", EventState::Started, 2000)])];
        assert_eq!(
            whats(&b.record(&started, 15).await.unwrap()),
            ["h1 azure:e1 scheduled→started"]
        );
        let gone = b.record(&[pulled("h1", vec![])], 16).await.unwrap();
        assert_eq!(whats(&gone), ["h1 azure:e1 gone"]);
        assert_eq!(gone[0].state, "completed");
        let log = b.changes().await.unwrap();
        assert_eq!(log.len(), 4);
        // a window dealt with, then moved under a new id: the new one is not due
        let w = [pulled("h2", vec![ev("w1", EventState::Scheduled, 5000)])];
        b.record(&w, 20).await.unwrap();
        let due = b.due(100).await.unwrap();
        assert!(b.started("run-2", &due, 21).await.unwrap());
        let moved = [pulled("h2", vec![ev("w2", EventState::Scheduled, 6000)])];
        assert_eq!(
            whats(&b.record(&moved, 22).await.unwrap()),
            ["h2 azure:w1 gone", "h2 azure:w2 moved (was azure:w1)"]
        );
        assert!(b.due(100).await.unwrap().is_empty(), "dealt with by run-2");
        // the same when the source lists the old window as canceled (GCP), new one first
        let moved = [pulled(
            "h2",
            vec![
                ev("w3", EventState::Scheduled, 7000),
                ev("w2", EventState::Canceled, 6000),
            ],
        )];
        assert_eq!(
            whats(&b.record(&moved, 23).await.unwrap()),
            [
                "h2 azure:w2 scheduled→canceled",
                "h2 azure:w3 moved (was azure:w2)"
            ]
        );
        assert!(
            b.due(100).await.unwrap().is_empty(),
            "still dealt with by run-2"
        );
        assert_eq!(b.guards().await.unwrap(), ["g"]);
    }

    #[tokio::test]
    async fn the_book_records_every_change_on_sqlite() {
        let dir = rollcall_testkit::TmpDir::new("guard-book");
        let store = Store::connect(dir.db()).await.unwrap();
        book_life(&store).await;
    }

    #[tokio::test]
    async fn the_book_records_every_change_on_postgres() {
        let pg = rollcall_testkit::pg::shared();
        let store = Store::connect(pg.fresh_db("guard_book")).await.unwrap();
        book_life(&store).await;
    }
}
