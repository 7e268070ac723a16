//! PostgreSQL restarted under a store: the calls made while it is down fail with a
//! transient error (in seconds, not hours), the store reconnects by itself once it is back,
//! and nothing committed before is lost. Its own server: stopping the shared one of
//! `tests/store.rs` would break the tests beside it.

use std::time::{Duration, Instant};

use rollcall_store::{NewRun, Record, Store};
use rollcall_testkit::pg::Postgres;
use serde_json::json;

fn records(from: i64, n: i64) -> Vec<Record> {
    (from..from + n)
        .map(|i| Record {
            at: i,
            kind: "step".to_string(),
            data: json!({ "i": i }),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_the_next_call_fails_transiently_a_later_one_succeeds_nothing_lost() {
    let mut pg = Postgres::start();
    let url = pg.fresh_db("restart");
    let store = Store::connect(&url).await.unwrap();
    store
        .create_run(&NewRun {
            id: "r".to_string(),
            fleet_path: "fleet.toml".to_string(),
            fleet_name: "prod".to_string(),
            maintenance: "xsa-108".to_string(),
            params: json!({}),
            fleet_text: String::new(),
            fleet_imports: None,
            operator: "test@localhost".to_string(),
            claims: vec!["host:h1".to_string()],
            supersedes: None,
        })
        .await
        .unwrap();
    let fence = store
        .acquire_lease("r", "test", 0, i64::MAX / 4)
        .await
        .unwrap()
        .expect("the lease");
    assert_eq!(store.append(&fence, &records(0, 10)).await.unwrap(), 10);

    pg.stop();
    let started = Instant::now();
    let err = store.append(&fence, &records(10, 5)).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_transient(), "{err:?}");
    assert!(took < Duration::from_secs(20), "the failure took {took:?}");
    assert!(err.to_string().contains(&url), "{err}");
    eprintln!("while PostgreSQL was down: failed after {took:?}: {err}");

    pg.start_again();
    // the runtime retries transient errors; so does this test, for at most 20 s
    let started = Instant::now();
    let last = loop {
        match store.append(&fence, &records(10, 5)).await {
            Ok(last) => break last,
            Err(e) if e.is_transient() && started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("after the restart: {e:?}"),
        }
    };
    eprintln!("reconnected after {:?}", started.elapsed());
    assert_eq!(last, 15);
    let journal = store.journal("r").await.unwrap();
    let seqs: Vec<i64> = journal.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=15).collect::<Vec<_>>());
    for (seq, r) in &journal {
        assert_eq!(r.data, json!({ "i": seq - 1 }));
    }
    // the backend-neutral pool (notify, web) reconnects too
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM journal")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 15);
    assert_eq!(store.claims("r").await.unwrap(), ["host:h1"]);
}
