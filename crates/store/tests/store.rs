//! Tests of the SQLite journal: round trips, seq allocation under concurrency, leases,
//! control requests, refusal of files that are not rollcall journals, corrupt rows, and
//! durability across a SIGKILL of the writing process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rollcall_store::{
    APPLICATION_ID, Fence, Journal, NewRun, Record, RunControl, RunStatus, SCHEMA_VERSION, Store,
    StoreError,
};
use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "rollcall-store-{name}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn new_run(id: &str) -> NewRun {
    NewRun {
        id: id.to_string(),
        fleet_path: "/etc/rollcall/fleet.toml".to_string(),
        fleet_name: "prod".to_string(),
        maintenance: "xsa-108".to_string(),
        params: json!({"dry_run": false, "seed": 7}),
        fleet_text: "[fleet]\nname = \"prod\"\n".to_string(),
        fleet_imports: None,
        operator: "alice@ops1".to_string(),
        claims: Vec::new(),
        supersedes: None,
    }
}

/// Takes run `id`'s lease for the tests' one writer ("test", which always gets it back):
/// the fence its writes need. Every call raises the epoch.
async fn lease(store: &Store, id: &str) -> Fence {
    store
        .acquire_lease(id, "test", 0, i64::MAX / 4)
        .await
        .unwrap()
        .expect("the test writer's lease")
}

/// A fence for a run that does not exist.
fn ghost_fence(run: &str) -> Fence {
    Fence {
        run: run.to_string(),
        owner: "test".to_string(),
        epoch: 1,
    }
}

fn record(at: i64, kind: &str, data: Value) -> Record {
    Record {
        at,
        kind: kind.to_string(),
        data,
    }
}

fn seqs(journal: &[(i64, Record)]) -> Vec<i64> {
    journal.iter().map(|(seq, _)| *seq).collect()
}

/// Opens a plain SQLite connection (not through the store), creating the file if asked.
async fn raw_connection(path: &Path, create: bool) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create);
    SqliteConnection::connect_with(&options).await.unwrap()
}

async fn raw_exec(path: &Path, sql: &'static str) {
    let mut conn = raw_connection(path, false).await;
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_run_keeps_the_files_its_fleet_imported() {
    let dir = TempDir::new("imports");
    let path = dir.join("journal.db");
    let store = Store::open(&path).await.unwrap();
    let files = json!({"digest": "sha256:00", "imports": {"inventory.ini": "[web]\nw1\n"}});
    let mut new = new_run("r1");
    new.fleet_imports = Some(files.clone());
    store.create_run(&new).await.unwrap();
    store.create_run(&new_run("r2")).await.unwrap();
    drop(store);
    let store = Store::open(&path).await.unwrap();
    assert_eq!(
        store.run("r1").await.unwrap().unwrap().fleet_imports,
        Some(files)
    );
    assert_eq!(store.run("r2").await.unwrap().unwrap().fleet_imports, None);
}

/// A journal written by schema version 1 (no `fleet_imports`) is brought up to date when
/// opened; its runs read back with no imports, and new runs store theirs.
#[tokio::test]
async fn a_version_1_journal_gains_the_imports_column() {
    let dir = TempDir::new("v1");
    let path = dir.join("journal.db");
    let mut conn = raw_connection(&path, true).await;
    sqlx::raw_sql(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, \
         updated_at INTEGER NOT NULL, fleet_path TEXT NOT NULL, fleet_name TEXT NOT NULL, \
         maintenance TEXT NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL, \
         fleet_text TEXT NOT NULL, owner TEXT, lease_until INTEGER, control TEXT, \
         summary TEXT NOT NULL) STRICT; \
         CREATE INDEX runs_by_created ON runs (created_at); \
         CREATE TABLE journal (run TEXT NOT NULL REFERENCES runs (id), seq INTEGER NOT NULL, \
         at INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run, seq)) \
         STRICT, WITHOUT ROWID; \
         INSERT INTO runs VALUES ('old', 1, 1, '/f.toml', 'f', 'm', 'running', '{}', \
         '[fleet]', NULL, NULL, NULL, 'null'); \
         INSERT INTO journal VALUES ('old', 1, 0, 'state', '{}'); \
         PRAGMA application_id = 1380142156; PRAGMA user_version = 1;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = Store::open(&path).await.unwrap();
    let old = store.run("old").await.unwrap().unwrap();
    assert_eq!(old.fleet_text, "[fleet]");
    assert_eq!(old.fleet_imports, None);
    assert_eq!(store.journal("old").await.unwrap().len(), 1);
    let mut new = new_run("new");
    new.fleet_imports = Some(json!({"imports": {}}));
    store.create_run(&new).await.unwrap();
    assert_eq!(
        store.run("new").await.unwrap().unwrap().fleet_imports,
        Some(json!({"imports": {}}))
    );
    drop(store);
    let mut conn = raw_connection(&path, false).await;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn round_trip() {
    let dir = TempDir::new("round-trip");
    let path = dir.join("nested/deeper/journal.db");
    let store = Store::open(&path).await.unwrap();
    assert!(path.exists(), "open creates the file and its parent dirs");
    assert_eq!(store.path(), path);

    assert!(store.latest_run().await.unwrap().is_none());
    assert!(store.runs().await.unwrap().is_empty());
    assert!(store.run("r1").await.unwrap().is_none());

    let created = store.create_run(&new_run("r1")).await.unwrap();
    assert_eq!(created.status, RunStatus::Running);
    assert_eq!(created.owner, None);
    assert_eq!(created.control, None);
    assert_eq!(created.summary, Value::Null);

    let read = store.run("r1").await.unwrap().unwrap();
    assert_eq!(read.id, "r1");
    assert_eq!(read.created_at, created.created_at);
    assert_eq!(read.fleet_path, "/etc/rollcall/fleet.toml");
    assert_eq!(read.fleet_name, "prod");
    assert_eq!(read.maintenance, "xsa-108");
    assert_eq!(read.params, json!({"dry_run": false, "seed": 7}));
    assert_eq!(read.fleet_text, "[fleet]\nname = \"prod\"\n");
    assert_eq!(read.status, RunStatus::Running);

    let records = vec![
        record(0, "run_started", json!({"hosts": 3})),
        record(
            5,
            "host",
            json!({"host": "db-1", "state": "draining", "ok": true}),
        ),
        record(
            9,
            "note",
            json!("text with \"quotes\", ünïcødé and \n newlines"),
        ),
        record(-1, "null", Value::Null),
        record(i64::MAX, "big", json!([1.5, -2, u64::MAX, {"nested": []}])),
    ];
    let last = store
        .append(&lease(&store, "r1").await, &records)
        .await
        .unwrap();
    assert_eq!(last, 5);
    let journal = store.journal("r1").await.unwrap();
    assert_eq!(seqs(&journal), vec![1, 2, 3, 4, 5]);
    let back: Vec<Record> = journal.into_iter().map(|(_, r)| r).collect();
    assert_eq!(back, records);

    let since = store.journal_since("r1", 3).await.unwrap();
    assert_eq!(seqs(&since), vec![4, 5]);
    assert_eq!(since[0].1, records[3]);
    assert!(store.journal_since("r1", 5).await.unwrap().is_empty());

    store
        .set_status(
            &lease(&store, "r1").await,
            RunStatus::Completed,
            &json!({"healthy": 3, "failed": 0}),
        )
        .await
        .unwrap();
    let done = store.latest_run().await.unwrap().unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.summary, json!({"healthy": 3, "failed": 0}));
    assert!(done.updated_at >= done.created_at);

    // RunRow serialises (the web crate will hand it out as JSON).
    let as_json = serde_json::to_value(&done).unwrap();
    assert_eq!(as_json["id"], "r1");
    assert_eq!(as_json["summary"]["healthy"], 3);
}

#[tokio::test]
async fn runs_are_listed_newest_first() {
    let dir = TempDir::new("runs-order");
    let store = Store::open(&dir.join("journal.db")).await.unwrap();
    for id in ["a", "b", "c"] {
        store.create_run(&new_run(id)).await.unwrap();
    }
    let ids: Vec<String> = store
        .runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["c", "b", "a"]);
    assert_eq!(store.latest_run().await.unwrap().unwrap().id, "c");
}

#[tokio::test]
async fn create_run_with_a_taken_id_fails() {
    let dir = TempDir::new("run-exists");
    let path = dir.join("journal.db");
    let store = Store::open(&path).await.unwrap();
    store.create_run(&new_run("r1")).await.unwrap();
    let err = store.create_run(&new_run("r1")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::RunExists { ref run, .. } if run == "r1"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("\"r1\" already exists"),
        "{msg}"
    );
}

#[tokio::test]
async fn seqs_are_contiguous_across_appends() {
    let dir = TempDir::new("contiguous");
    let store = Store::open(&dir.join("journal.db")).await.unwrap();
    store.create_run(&new_run("a")).await.unwrap();
    store.create_run(&new_run("b")).await.unwrap();

    assert_eq!(
        store.append(&lease(&store, "a").await, &[]).await.unwrap(),
        0,
        "empty journal"
    );
    let mut expected_a = 0;
    let mut expected_b = 0;
    // Sizes cross the store's one-statement limit (64) and its 256-row bulk chunks.
    for (i, size) in [1usize, 3, 0, 64, 65, 200, 1, 700, 256, 257]
        .into_iter()
        .enumerate()
    {
        let batch: Vec<Record> = (0..size)
            .map(|j| record(i as i64, "step", json!({"batch": i, "j": j})))
            .collect();
        expected_a += size as i64;
        assert_eq!(
            store
                .append(&lease(&store, "a").await, &batch)
                .await
                .unwrap(),
            expected_a
        );
        // Another run's seqs are its own.
        expected_b += 1;
        let one = [record(0, "other", json!(i))];
        assert_eq!(
            store.append(&lease(&store, "b").await, &one).await.unwrap(),
            expected_b
        );
    }
    let a = store.journal("a").await.unwrap();
    assert_eq!(seqs(&a), (1..=expected_a).collect::<Vec<_>>());
    let b = store.journal("b").await.unwrap();
    assert_eq!(seqs(&b), (1..=expected_b).collect::<Vec<_>>());
    // Batch order is kept: batch numbers never go down along the journal.
    let batches: Vec<u64> = a
        .iter()
        .map(|(_, r)| r.data["batch"].as_u64().unwrap())
        .collect();
    assert!(batches.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        store.append(&lease(&store, "a").await, &[]).await.unwrap(),
        expected_a
    );
}

/// Checks that `journal` holds exactly `writers × batches × per_batch` records with
/// contiguous seqs and that every batch landed as one contiguous, ordered block.
fn check_whole_batches(journal: &[(i64, Record)], writers: u64, batches: u64, per_batch: u64) {
    let total = writers * batches * per_batch;
    assert_eq!(seqs(journal), (1..=total as i64).collect::<Vec<_>>());
    let mut seen = std::collections::HashSet::new();
    for block in journal.chunks(per_batch as usize) {
        let w = block[0].1.data["writer"].as_u64().unwrap();
        let b = block[0].1.data["batch"].as_u64().unwrap();
        for (i, (_, r)) in block.iter().enumerate() {
            assert_eq!(r.data["writer"], w, "batch split: {block:?}");
            assert_eq!(r.data["batch"], b, "batch split: {block:?}");
            assert_eq!(r.data["i"], i as u64, "batch reordered: {block:?}");
        }
        assert!(seen.insert((w, b)), "batch ({w}, {b}) twice");
    }
    assert_eq!(seen.len() as u64, writers * batches, "a batch is missing");
}

fn writer_batch(writer: u64, batch: u64, per_batch: u64) -> Vec<Record> {
    (0..per_batch)
        .map(|i| {
            record(
                batch as i64,
                "step",
                json!({"writer": writer, "batch": batch, "i": i}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_four_tasks_keep_seqs_contiguous() {
    let dir = TempDir::new("concurrent");
    let store = Arc::new(Store::open(&dir.join("journal.db")).await.unwrap());
    store.create_run(&new_run("r")).await.unwrap();
    let fence = lease(&store, "r").await;
    let (writers, batches, per_batch) = (4u64, 50u64, 10u64);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, fence) = (Arc::clone(&store), fence.clone());
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for b in 0..batches {
                let seq = store
                    .append(&fence, &writer_batch(w, b, per_batch))
                    .await
                    .unwrap();
                assert!(seq > last, "seq went backwards for writer {w}");
                assert_eq!(seq % per_batch as i64, 0, "batch not aligned");
                last = seq;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    check_whole_batches(
        &store.journal("r").await.unwrap(),
        writers,
        batches,
        per_batch,
    );
}

/// Two independent handles (each with its own writer connection, as two processes would
/// have) on one file: the writers meet in SQLite's lock and busy timeout, not in the
/// in-process mutex. Small batches are one statement each, batches above 64 records a
/// multi-statement transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_two_handles_keep_seqs_contiguous() {
    let dir = TempDir::new("two-handles");
    let path = dir.join("journal.db");
    let first = Arc::new(Store::open(&path).await.unwrap());
    let second = Arc::new(Store::open(&path).await.unwrap());
    for (run, batches, per_batch) in [("small", 100u64, 5u64), ("large", 20, 300)] {
        first.create_run(&new_run(run)).await.unwrap();
        let fence = lease(&first, run).await;
        let writers = 4u64;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = Arc::clone(if w % 2 == 0 { &first } else { &second });
            let fence = fence.clone();
            tasks.push(tokio::spawn(async move {
                for b in 0..batches {
                    store
                        .append(&fence, &writer_batch(w, b, per_batch))
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let journal = second.journal(run).await.unwrap();
        check_whole_batches(&journal, writers, batches, per_batch);
    }
}

#[tokio::test]
async fn reopen_after_drop_sees_everything() {
    let dir = TempDir::new("reopen");
    let path = dir.join("journal.db");
    {
        let store = Store::open(&path).await.unwrap();
        store.create_run(&new_run("r1")).await.unwrap();
        let batch: Vec<Record> = (0..300)
            .map(|i| record(i, "step", json!({"i": i})))
            .collect();
        assert_eq!(
            store
                .append(&lease(&store, "r1").await, &batch)
                .await
                .unwrap(),
            300
        );
        store
            .set_status(
                &lease(&store, "r1").await,
                RunStatus::Paused,
                &json!({"why": "operator"}),
            )
            .await
            .unwrap();
        store
            .set_control("r1", Some(RunControl::Resume))
            .await
            .unwrap();
        store
            .release_lease(&lease(&store, "r1").await)
            .await
            .unwrap();
        assert!(
            store
                .acquire_lease("r1", "host-a:42", 1_000, 30_000)
                .await
                .unwrap()
                .is_some()
        );
    }
    let store = Store::open(&path).await.unwrap();
    let run = store.run("r1").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(run.summary, json!({"why": "operator"}));
    assert_eq!(run.control, Some(RunControl::Resume));
    assert_eq!(run.owner.as_deref(), Some("host-a:42"));
    assert_eq!(run.lease_until, Some(31_000));
    let journal = store.journal("r1").await.unwrap();
    assert_eq!(seqs(&journal), (1..=300).collect::<Vec<_>>());
    assert_eq!(journal[299].1.data, json!({"i": 299}));
    // the lease moved on to host-a:42: the test writer's old fence is refused
    let old = Fence {
        run: "r1".into(),
        owner: "test".into(),
        epoch: run.epoch - 1,
    };
    let refused = store.append(&old, &[record(1, "x", json!(1))]).await;
    assert!(
        matches!(&refused, Err(StoreError::Fenced { current_owner: Some(o), .. }) if o == "host-a:42"),
        "{refused:?}"
    );
    let fence = store
        .acquire_lease("r1", "test", 40_000, 1_000)
        .await
        .unwrap()
        .expect("host-a:42's lease expired at 31 000");
    assert_eq!(fence.epoch, run.epoch + 1);
    assert_eq!(
        store
            .append(&fence, &[record(1, "x", json!(1))])
            .await
            .unwrap(),
        301
    );
}

#[tokio::test]
async fn lease_acquire_renew_expiry_and_fencing() {
    let dir = TempDir::new("lease");
    let store = Store::open(&dir.join("journal.db")).await.unwrap();
    store.create_run(&new_run("r")).await.unwrap();
    let ttl = 10_000;
    let take = |owner: &'static str, now: i64| store.acquire_lease("r", owner, now, ttl);

    // Free lease: taken, under epoch 1.
    let a1 = take("a", 1_000).await.unwrap().expect("free lease");
    assert_eq!(a1.epoch, 1);
    let run = store.run("r").await.unwrap().unwrap();
    assert_eq!(
        (run.owner.as_deref(), run.lease_until, run.epoch),
        (Some("a"), Some(11_000), 1)
    );
    assert_eq!(
        (run.taken_at, run.taken_from),
        (None, None),
        "no takeover yet"
    );
    // Held and not expired: b is refused, a re-acquires (same owner) under a new epoch,
    // which fences a's old token off.
    assert_eq!(take("b", 5_000).await.unwrap(), None);
    let a = take("a", 5_000).await.unwrap().expect("same owner");
    assert_eq!(a.epoch, 2);
    assert!(
        !store.renew_lease(&a1, 5_000, ttl).await.unwrap(),
        "old epoch"
    );
    assert_eq!(
        store.run("r").await.unwrap().unwrap().lease_until,
        Some(15_000)
    );
    // Renewal by the holder extends; a forged token is refused.
    assert!(store.renew_lease(&a, 10_000, ttl).await.unwrap());
    assert_eq!(
        store.run("r").await.unwrap().unwrap().lease_until,
        Some(20_000)
    );
    let forged = Fence {
        owner: "b".into(),
        ..a.clone()
    };
    assert!(!store.renew_lease(&forged, 10_000, ttl).await.unwrap());
    // Just before expiry b is still refused; at expiry b takes over (epoch 3), and the
    // takeover is recorded.
    assert_eq!(take("b", 19_999).await.unwrap(), None);
    let b = take("b", 20_000).await.unwrap().expect("expired lease");
    assert_eq!(b.epoch, 3);
    let run = store.run("r").await.unwrap().unwrap();
    assert_eq!(run.taken_from.as_deref(), Some("a"));
    assert!(run.taken_at.is_some());
    // Fencing: a's late renewal and late writes fail and do not disturb b.
    assert!(!store.renew_lease(&a, 21_000, ttl).await.unwrap());
    for refused in [
        store
            .append(&a, &[record(0, "late", json!(1))])
            .await
            .map(|_| ()),
        store.set_status(&a, RunStatus::Completed, &json!({})).await,
        store.take_control(&a).await.map(|_| ()),
        store.claim(&a, &["host:h1".to_string()]).await,
    ] {
        assert!(
            matches!(
                &refused,
                Err(StoreError::Fenced { epoch: 2, current_epoch: 3, current_owner: Some(o), .. })
                    if o == "b"
            ),
            "{refused:?}"
        );
    }
    let shown = store.append(&a, &[]).await.unwrap_err().to_string();
    assert!(
        shown.contains("write refused") && shown.contains("epoch 3"),
        "{shown}"
    );
    let run = store.run("r").await.unwrap().unwrap();
    assert_eq!(
        (run.owner.as_deref(), run.lease_until, run.status),
        (Some("b"), Some(30_000), RunStatus::Running)
    );
    assert!(
        store.journal("r").await.unwrap().is_empty(),
        "nothing written"
    );
    // An expired lease nobody took over is still renewable by its holder.
    assert!(store.renew_lease(&b, 45_000, ttl).await.unwrap());
    // Release by a stale token does nothing; by the holder frees it.
    store.release_lease(&a).await.unwrap();
    assert_eq!(
        store.run("r").await.unwrap().unwrap().owner.as_deref(),
        Some("b")
    );
    store.release_lease(&b).await.unwrap();
    let run = store.run("r").await.unwrap().unwrap();
    assert_eq!((run.owner, run.lease_until), (None, None));
    assert!(
        !store.renew_lease(&b, 46_000, ttl).await.unwrap(),
        "released lease"
    );
    assert!(store.append(&b, &[]).await.is_err(), "released: fenced off");
    assert_eq!(take("a", 46_000).await.unwrap().unwrap().epoch, 4);

    // Unknown runs are errors, not "lease refused".
    let ghost = ghost_fence("nope");
    let acquired = store.acquire_lease("nope", "a", 0, ttl).await;
    assert!(
        matches!(acquired, Err(StoreError::UnknownRun { .. })),
        "{acquired:?}"
    );
    let renewed = store.renew_lease(&ghost, 0, ttl).await;
    assert!(
        matches!(renewed, Err(StoreError::UnknownRun { .. })),
        "{renewed:?}"
    );
    let released = store.release_lease(&ghost).await;
    assert!(
        matches!(released, Err(StoreError::UnknownRun { .. })),
        "{released:?}"
    );
}

/// The claims of live runs: a run over hosts or clusters another live run holds is
/// refused whole (naming that run, its operator and the keys), non-overlapping runs go
/// side by side, a run that ends gives its claims up, a replanned run hands them on.
#[tokio::test]
async fn claims_keep_two_live_runs_off_the_same_hosts() {
    let dir = TempDir::new("claims");
    let store = Store::open(&dir.join("journal.db")).await.unwrap();
    let with = |id: &str, keys: &[&str]| NewRun {
        claims: keys.iter().map(|k| k.to_string()).collect(),
        ..new_run(id)
    };
    store
        .create_run(&with("a", &["host:r1", "host:r2", "cluster:redis"]))
        .await
        .unwrap();
    // another cluster, other hosts: side by side
    store
        .create_run(&with("b", &["host:e1", "cluster:etcd"]))
        .await
        .unwrap();
    // one shared host: refused whole, naming the holder
    let refused = store
        .create_run(&with("c", &["host:p1", "host:r2"]))
        .await
        .unwrap_err();
    let StoreError::Claimed { conflicts, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (conflicts[0].key.as_str(), conflicts[0].run.as_str()),
        ("host:r2", "a")
    );
    let shown = refused.to_string();
    assert!(
        shown.contains("run a (started by alice@ops1, running) holds 1 host(s) (r2)"),
        "{shown}"
    );
    assert!(store.run("c").await.unwrap().is_none(), "nothing written");
    assert!(store.claims("c").await.unwrap().is_empty());
    // other hosts of a held cluster: refused too (the cluster's budget is held)
    assert!(matches!(
        store
            .create_run(&with("d", &["host:r6", "cluster:redis"]))
            .await,
        Err(StoreError::Claimed { .. })
    ));
    // a claim by a live run adds keys; one held elsewhere is refused
    let fa = lease(&store, "a").await;
    store.claim(&fa, &["host:r3".to_string()]).await.unwrap();
    assert!(matches!(
        store.claim(&fa, &["host:e1".to_string()]).await,
        Err(StoreError::Claimed { .. })
    ));
    assert_eq!(
        store.claims("a").await.unwrap(),
        ["cluster:redis", "host:r1", "host:r2", "host:r3"]
    );
    // a paused run keeps its claims; a replanned run hands them to its successor
    store
        .set_status(&fa, RunStatus::Paused, &json!({}))
        .await
        .unwrap();
    assert!(store.create_run(&with("e", &["host:r1"])).await.is_err());
    let next = NewRun {
        supersedes: Some("a".into()),
        ..with("a-replan1", &["host:r1", "host:r2", "cluster:redis"])
    };
    store.create_run(&next).await.unwrap();
    store
        .set_status(&fa, RunStatus::Replanned, &json!({}))
        .await
        .unwrap();
    assert!(store.claims("a").await.unwrap().is_empty());
    assert_eq!(store.claims("a-replan1").await.unwrap().len(), 4);
    // an ended run gives them up: the host can be run again
    let fr = lease(&store, "a-replan1").await;
    store
        .set_status(&fr, RunStatus::Completed, &json!({}))
        .await
        .unwrap();
    assert!(store.claims("a-replan1").await.unwrap().is_empty());
    store
        .create_run(&with("c", &["host:p1", "host:r2"]))
        .await
        .unwrap();
}

/// Two handles (two processes) create runs with overlapping claims at the same instant,
/// many times: exactly one starts each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_started_at_once_exactly_one_starts() {
    let dir = TempDir::new("claims-race");
    let path = dir.join("journal.db");
    let first = Arc::new(Store::open(&path).await.unwrap());
    let second = Arc::new(Store::open(&path).await.unwrap());
    for round in 0..20 {
        let mut tasks = Vec::new();
        for (n, store) in [&first, &second].into_iter().enumerate() {
            let store = Arc::clone(store);
            let new = NewRun {
                claims: vec![format!("host:h{round}"), format!("host:x{round}-{n}")],
                ..new_run(&format!("r{round}-{n}"))
            };
            tasks.push(tokio::spawn(async move { store.create_run(&new).await }));
        }
        let mut started = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => started += 1,
                Err(StoreError::Claimed { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(started, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_contenders_never_both_win() {
    let dir = TempDir::new("lease-race");
    let path = dir.join("journal.db");
    let first = Arc::new(Store::open(&path).await.unwrap());
    let second = Arc::new(Store::open(&path).await.unwrap());
    for round in 0..20 {
        let id = format!("r{round}");
        first.create_run(&new_run(&id)).await.unwrap();
        let mut tasks = Vec::new();
        for (n, store) in [&first, &second, &first, &second].into_iter().enumerate() {
            let store = Arc::clone(store);
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .acquire_lease(&id, &format!("owner-{n}"), 1_000, 5_000)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            winners += u32::from(task.await.unwrap().is_some());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

#[tokio::test]
async fn control_set_and_take() {
    let dir = TempDir::new("control");
    let path = dir.join("journal.db");
    let engine = Store::open(&path).await.unwrap();
    // The CLI is another process with its own handle.
    let cli = Store::open(&path).await.unwrap();
    engine.create_run(&new_run("r")).await.unwrap();
    let fence = lease(&engine, "r").await;

    assert_eq!(engine.take_control(&fence).await.unwrap(), None);
    cli.set_control("r", Some(RunControl::Pause)).await.unwrap();
    assert_eq!(
        cli.run("r").await.unwrap().unwrap().control,
        Some(RunControl::Pause)
    );
    assert_eq!(
        engine.take_control(&fence).await.unwrap(),
        Some(RunControl::Pause)
    );
    assert_eq!(
        engine.take_control(&fence).await.unwrap(),
        None,
        "taken once"
    );
    assert_eq!(cli.run("r").await.unwrap().unwrap().control, None);

    // A later request replaces an unread one; None clears.
    cli.set_control("r", Some(RunControl::Resume))
        .await
        .unwrap();
    cli.set_control("r", Some(RunControl::Abort)).await.unwrap();
    assert_eq!(
        engine.take_control(&fence).await.unwrap(),
        Some(RunControl::Abort)
    );
    cli.set_control("r", Some(RunControl::Pause)).await.unwrap();
    cli.set_control("r", None).await.unwrap();
    assert_eq!(engine.take_control(&fence).await.unwrap(), None);

    let set = cli.set_control("nope", Some(RunControl::Abort)).await;
    assert!(matches!(set, Err(StoreError::UnknownRun { .. })), "{set:?}");
    let take = engine.take_control(&ghost_fence("nope")).await;
    assert!(
        matches!(take, Err(StoreError::UnknownRun { .. })),
        "{take:?}"
    );
}

#[tokio::test]
async fn unknown_run_is_an_error() {
    let dir = TempDir::new("unknown");
    let path = dir.join("journal.db");
    let store = Store::open(&path).await.unwrap();
    store.create_run(&new_run("real")).await.unwrap();
    let err = store
        .append(&ghost_fence("ghost"), &[record(0, "x", json!(1))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownRun { ref run, .. } if run == "ghost"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("run \"ghost\" does not exist"), "{msg}");
    // Also with an empty batch and a large one, and nothing was written anywhere.
    assert!(matches!(
        store.append(&ghost_fence("ghost"), &[]).await,
        Err(StoreError::UnknownRun { .. })
    ));
    let large: Vec<Record> = (0..300).map(|i| record(i, "x", json!(i))).collect();
    assert!(matches!(
        store.append(&ghost_fence("ghost"), &large).await,
        Err(StoreError::UnknownRun { .. })
    ));
    assert!(store.journal("ghost").await.unwrap().is_empty());
    assert!(store.journal("real").await.unwrap().is_empty());
    let status = store
        .set_status(&ghost_fence("ghost"), RunStatus::Completed, &json!(null))
        .await;
    assert!(
        matches!(status, Err(StoreError::UnknownRun { .. })),
        "{status:?}"
    );
}

/// Asserts `open` fails on `path` with an error `check` accepts and leaves the file as it was.
async fn assert_refused(path: &Path, check: impl Fn(&StoreError) -> bool) -> String {
    let before = std::fs::read(path).unwrap();
    let err = Store::open(path).await.unwrap_err();
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "open modified {}",
        path.display()
    );
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.starts_with(&name) && *f != name)
        .collect();
    assert!(
        leftovers.is_empty(),
        "open left files behind: {leftovers:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message must name the file: {msg}"
    );
    msg
}

#[tokio::test]
async fn text_file_is_not_a_journal_and_is_left_untouched() {
    let dir = TempDir::new("text-file");
    let path = dir.join("fleet.toml");
    std::fs::write(
        &path,
        "[fleet]\nname = \"prod\"\n# oops, passed the fleet as --journal\n",
    )
    .unwrap();
    let msg = assert_refused(&path, |e| matches!(e, StoreError::NotAJournal { .. })).await;
    assert_eq!(
        msg,
        format!(
            "{} is not a rollcall journal: file is not a database",
            path.display()
        )
    );
    // Too short to hold a header at all.
    std::fs::write(&path, "x").unwrap();
    assert_refused(&path, |e| matches!(e, StoreError::NotAJournal { .. })).await;
}

#[tokio::test]
async fn random_bytes_are_not_a_journal_and_are_left_untouched() {
    let dir = TempDir::new("random");
    let path = dir.join("journal.db");
    // SplitMix64: deterministic "random" bytes.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    let msg = assert_refused(&path, |e| matches!(e, StoreError::NotAJournal { .. })).await;
    assert!(
        msg.ends_with("is not a rollcall journal: file is not a database"),
        "{msg}"
    );

    // An SQLite header followed by garbage gets past the header check; SQLite itself
    // rejects it, still without writing.
    let mut fake = b"SQLite format 3\0".to_vec();
    fake.extend_from_slice(&bytes[..8192]);
    std::fs::write(&path, &fake).unwrap();
    let msg = assert_refused(&path, |e| matches!(e, StoreError::NotAJournal { .. })).await;
    assert!(msg.contains("is not a rollcall journal: "), "{msg}");
}

#[tokio::test]
async fn foreign_sqlite_database_is_refused_and_left_untouched() {
    let dir = TempDir::new("foreign");
    // Plain SQLite with a table and no application id.
    let plain = dir.join("inventory.db");
    let mut conn = raw_connection(&plain, true).await;
    sqlx::raw_sql("CREATE TABLE hosts (name TEXT); INSERT INTO hosts VALUES ('db-1');")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let msg = assert_refused(&plain, |e| {
        matches!(
            e,
            StoreError::Foreign {
                application_id: 0,
                ..
            }
        )
    })
    .await;
    assert!(
        msg.starts_with(&format!(
            "{} belongs to another application (application_id 0x00000000",
            plain.display()
        )),
        "{msg}"
    );

    // Another program's database in WAL mode with its own application id (Fossil's).
    let other = dir.join("repo.fossil");
    let mut conn = raw_connection(&other, true).await;
    sqlx::raw_sql(
        "PRAGMA journal_mode = WAL; PRAGMA application_id = 252006673; \
         CREATE TABLE blob (rid INTEGER PRIMARY KEY);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let msg = assert_refused(&other, |e| {
        matches!(
            e,
            StoreError::Foreign {
                application_id: 0x0F05_5111,
                ..
            }
        )
    })
    .await;
    assert!(msg.contains("(application_id 0x0f055111"), "{msg}");
}

#[tokio::test]
async fn newer_schema_is_refused_and_left_untouched() {
    let dir = TempDir::new("newer");
    let path = dir.join("journal.db");
    {
        let store = Store::open(&path).await.unwrap();
        store.create_run(&new_run("r")).await.unwrap();
    }
    raw_exec(
        &path,
        "PRAGMA user_version = 4; PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .await;
    let msg = assert_refused(&path, |e| {
        matches!(e, StoreError::NewerSchema { found: 4, supported, .. } if *supported == SCHEMA_VERSION)
    })
    .await;
    assert!(
        msg.contains("newer rollcall (journal schema version 4"),
        "{msg}"
    );
}

/// The main file's header can lag behind the WAL; the check under the write lock sees the
/// WAL too.
#[tokio::test]
async fn newer_schema_still_in_the_wal_is_refused() {
    let dir = TempDir::new("newer-wal");
    let path = dir.join("journal.db");
    drop(Store::open(&path).await.unwrap());
    // A newer rollcall that bumped the version and is still running: nothing checkpointed.
    let mut newer = raw_connection(&path, false).await;
    sqlx::raw_sql("PRAGMA wal_autocheckpoint = 0; PRAGMA user_version = 4;")
        .execute(&mut newer)
        .await
        .unwrap();
    let err = Store::open(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 4, .. }),
        "{err:?}"
    );
    newer.close().await.unwrap();
}

#[tokio::test]
async fn empty_file_and_blank_sqlite_are_initialised() {
    let dir = TempDir::new("empty");
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let store = Store::open(&empty).await.unwrap();
    store.create_run(&new_run("r")).await.unwrap();
    drop(store);
    let mut conn = raw_connection(&empty, false).await;
    let app: i64 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert_eq!(app as u32, APPLICATION_ID);
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(mode, "wal");

    // An SQLite file with nothing in it and no application id holds nothing to lose.
    let blank = dir.join("blank.db");
    let mut conn = raw_connection(&blank, true).await;
    sqlx::raw_sql("PRAGMA user_version = 0; VACUUM;")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(
        std::fs::metadata(&blank).unwrap().len() > 0,
        "not a blank SQLite file"
    );
    let store = Store::open(&blank).await.unwrap();
    store.create_run(&new_run("r")).await.unwrap();
    assert_eq!(store.runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn corrupt_json_is_an_error_naming_run_and_seq() {
    let dir = TempDir::new("corrupt");
    let path = dir.join("journal.db");
    let store = Store::open(&path).await.unwrap();
    store.create_run(&new_run("r-17")).await.unwrap();
    let batch: Vec<Record> = (0..4).map(|i| record(i, "step", json!({"i": i}))).collect();
    store
        .append(&lease(&store, "r-17").await, &batch)
        .await
        .unwrap();

    raw_exec(
        &path,
        "UPDATE journal SET data = '{\"i\": 2, trunc' WHERE run = 'r-17' AND seq = 3",
    )
    .await;
    let err = store.journal("r-17").await.unwrap_err();
    assert!(
        matches!(err, StoreError::CorruptRecord { ref run, seq: 3, .. } if run == "r-17"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("run \"r-17\", journal record seq 3 is corrupt"),
        "{msg}"
    );
    // Reading past the bad record still works, and so does appending.
    assert_eq!(
        seqs(&store.journal_since("r-17", 3).await.unwrap()),
        vec![4]
    );
    assert_eq!(
        store
            .append(&lease(&store, "r-17").await, &batch[..1])
            .await
            .unwrap(),
        5
    );

    // Bytes that are not even UTF-8.
    raw_exec(
        &path,
        "UPDATE journal SET data = CAST(x'ff00fe' AS TEXT) WHERE seq = 4",
    )
    .await;
    let err = store.journal_since("r-17", 3).await.unwrap_err();
    assert!(
        matches!(err, StoreError::CorruptRecord { seq: 4, .. }),
        "{err:?}"
    );

    // A corrupt run column.
    raw_exec(&path, "UPDATE runs SET summary = 'nope' WHERE id = 'r-17'").await;
    let err = store.run("r-17").await.unwrap_err();
    assert!(
        matches!(err, StoreError::CorruptRun { ref run, column: "summary", .. } if run == "r-17"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("run \"r-17\" is corrupt: column summary"),
        "{err}"
    );
    assert!(store.runs().await.is_err());
    assert!(store.latest_run().await.is_err());
}

/// Code written against the trait works with the SQLite store.
async fn drive<J: Journal>(journal: &J) -> Result<i64, StoreError> {
    journal.create_run(&new_run("t")).await?;
    let fence = journal
        .acquire_lease("t", "me", 0, 1_000)
        .await?
        .expect("a free lease");
    let last = journal
        .append(
            &fence,
            &[record(0, "a", json!(1)), record(1, "b", json!(2))],
        )
        .await?;
    journal
        .set_status(&fence, RunStatus::Completed, &json!({}))
        .await?;
    assert_eq!(journal.journal("t").await?.len(), 2);
    assert_eq!(journal.journal_since("t", 1).await?.len(), 1);
    assert_eq!(journal.runs().await?.len(), 1);
    assert_eq!(
        journal.latest_run().await?.unwrap().status,
        RunStatus::Completed
    );
    journal.set_control("t", Some(RunControl::Abort)).await?;
    assert_eq!(journal.take_control(&fence).await?, Some(RunControl::Abort));
    assert!(journal.renew_lease(&fence, 500, 1_000).await?);
    journal.release_lease(&fence).await?;
    assert!(journal.run("t").await?.unwrap().owner.is_none());
    Ok(last)
}

#[tokio::test]
async fn journal_trait_is_implemented_by_store() {
    let dir = TempDir::new("trait");
    let store = Store::open(&dir.join("journal.db")).await.unwrap();
    // Spawned, so the trait's futures must be Send.
    let handle = tokio::spawn(async move { drive(&store).await });
    assert_eq!(handle.await.unwrap().unwrap(), 2);
}

const CHILD_ENV: &str = "ROLLCALL_STORE_CHILD";
const CHILD_PATH_ENV: &str = "ROLLCALL_STORE_CHILD_PATH";
const CRASH_TEST: &str = "crash_by_sigkill_keeps_every_committed_batch_whole";
/// Batch `b` has `crash_batch_len(b)` records: small batches are one INSERT statement,
/// large ones several statements in one transaction.
fn crash_batch_len(batch: u64) -> u64 {
    if batch.is_multiple_of(2) { 7 } else { 600 }
}

/// The writer half of the crash test: appends batches of `crash_batch_len` records until it is
/// killed (or 30 s pass).
async fn crash_child(path: &Path) {
    let store = Store::open(path).await.unwrap();
    if store.run("crash").await.unwrap().is_none() {
        // Run by hand, without the parent.
        store.create_run(&new_run("crash")).await.unwrap();
    }
    let pad = "x".repeat(150);
    let started = Instant::now();
    let mut batch = 0u64;
    while started.elapsed() < Duration::from_secs(30) {
        let records: Vec<Record> = (0..crash_batch_len(batch))
            .map(|i| {
                record(
                    batch as i64,
                    "step",
                    json!({"batch": batch, "i": i, "pad": pad}),
                )
            })
            .collect();
        store
            .append(&lease(&store, "crash").await, &records)
            .await
            .unwrap();
        if batch == 0 {
            println!("CHILD-READY");
        }
        batch += 1;
    }
    eprintln!("child was not killed within 30 s");
}

#[tokio::test]
async fn crash_by_sigkill_keeps_every_committed_batch_whole() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let path = PathBuf::from(std::env::var_os(CHILD_PATH_ENV).unwrap());
        crash_child(&path).await;
        return;
    }
    let dir = TempDir::new("crash");
    let path = dir.join("journal.db");
    {
        let store = Store::open(&path).await.unwrap();
        store.create_run(&new_run("crash")).await.unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CRASH_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(CHILD_PATH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest may print "test … " on the same line first.
            .any(|line| line.contains("CHILD-READY"))
    });
    let ready = tokio::time::timeout(Duration::from_secs(60), ready).await;
    if !matches!(ready, Ok(Ok(true))) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child writer never got going: {ready:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap(); // SIGKILL on Unix: no destructors, no SQLite cleanup.
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child should have died by SIGKILL: {status:?}"
    );

    let store = Store::open(&path).await.unwrap();
    let journal = store.journal("crash").await.unwrap();
    let n = journal.len() as u64;
    assert_eq!(
        seqs(&journal),
        (1..=n as i64).collect::<Vec<_>>(),
        "seq gap"
    );
    // Walk the journal batch by batch: each must be whole and in order.
    let mut at = 0usize;
    let mut batch = 0u64;
    while at < journal.len() {
        let len = crash_batch_len(batch) as usize;
        assert!(
            at + len <= journal.len(),
            "a partial batch survived: batch {batch} has {} of {len} records",
            journal.len() - at
        );
        for (i, (_, r)) in journal[at..at + len].iter().enumerate() {
            assert_eq!(r.data["batch"], batch, "batch {batch} is not whole");
            assert_eq!(r.data["i"], i as u64, "batch {batch} is not in order");
        }
        at += len;
        batch += 1;
    }
    assert!(batch >= 4, "only {batch} batches were committed in 300 ms");
    // The journal goes on where the dead writer stopped.
    assert_eq!(
        store
            .append(
                &lease(&store, "crash").await,
                &[record(0, "resumed", json!(null))]
            )
            .await
            .unwrap(),
        n as i64 + 1
    );
    eprintln!("crash test: {batch} whole batches ({n} records) survived the SIGKILL");
}

#[tokio::test]
async fn components_migrate_once_in_order_and_a_newer_component_is_refused() {
    let dir = TempDir::new("migrate");
    let path = dir.join("journal.db");
    let store = Store::open(&path).await.unwrap();
    let v1 = "CREATE TABLE web_a (x INTEGER)";
    let v2 = "ALTER TABLE web_a ADD COLUMN y TEXT";
    store.migrate("web", &[v1]).await.unwrap();
    // again, and from another handle: each step runs once (a second CREATE would fail)
    store.migrate("web", &[v1]).await.unwrap();
    let other = Store::open(&path).await.unwrap();
    other.migrate("web", &[v1, v2]).await.unwrap();
    store.migrate("web", &[v1, v2]).await.unwrap();
    sqlx::query("INSERT INTO web_a (x, y) VALUES (1, 'z')")
        .execute(store.pool())
        .await
        .unwrap();
    // components are independent
    store
        .migrate("notify", &["CREATE TABLE notify_a (x INTEGER)"])
        .await
        .unwrap();
    // a build that knows only v1 refuses a file at v2, naming the component
    let err = store.migrate("web", &[v1]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerComponent { ref component, found: 2, known: 1, .. } if component == "web"),
        "{err:?}"
    );
    assert!(err.to_string().contains("web tables"), "{err}");
}

#[tokio::test]
async fn an_append_wakes_followers_of_the_store_and_its_clones() {
    let dir = TempDir::new("wake");
    let store = Store::open(&dir.join("journal.db")).await.unwrap();
    store.create_run(&new_run("r")).await.unwrap();
    let mut woken = store.clone().appended();
    assert!(!woken.has_changed().unwrap());
    store.append(&lease(&store, "r").await, &[]).await.unwrap();
    assert!(
        !woken.has_changed().unwrap(),
        "an empty append wakes no one"
    );
    let last = store
        .append(
            &lease(&store, "r").await,
            &[record(0, "notice", json!(1)), record(1, "t", json!(2))],
        )
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(1), woken.changed())
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(*woken.borrow_and_update(), last);
    let notices = store.journal_kind_since("r", "notice", 0).await.unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].1.kind, "notice");
    assert!(
        store
            .journal_kind_since("r", "notice", last)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unknown_status_or_control_in_a_row_is_an_error_naming_the_column() {
    let dir = TempDir::new("enums");
    let store = Store::open(&dir.join("journal.db")).await.unwrap();
    store.create_run(&new_run("r")).await.unwrap();
    let set = |sql: &'static str| {
        let pool = store.pool().clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    set("UPDATE runs SET control = 'jump' WHERE id = 'r'").await;
    let err = store
        .take_control(&lease(&store, "r").await)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CorruptRun {
                column: "control",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"jump\""), "{err}");
    // cleared: the next poll finds nothing
    assert_eq!(
        store.take_control(&lease(&store, "r").await).await.unwrap(),
        None
    );
    set("UPDATE runs SET status = 'dancing' WHERE id = 'r'").await;
    let err = store.run("r").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CorruptRun {
                column: "status",
                ..
            }
        ),
        "{err:?}"
    );
    for s in RunStatus::ALL {
        assert_eq!(RunStatus::parse(s.name()), Some(s));
    }
}
