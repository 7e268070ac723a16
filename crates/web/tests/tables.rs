//! The web tables (`web_tokens`, `web_notices`, `web_maintenances`, `web_ical`,
//! `web_meta`) through `WebDb`, on an SQLite file and on a real PostgreSQL database: the
//! same calls give the same answers, and two servers on one PostgreSQL database share them.

use rollcall_store::Store;
use rollcall_testkit::TmpDir;
use rollcall_web::db::{TokenKind, WebDb, sha256_hex};
use rollcall_web::model::{AdminMaintenance, AdminNotice, IcalEvent};

fn notice(id: &str, at: i64) -> AdminNotice {
    AdminNotice {
        id: id.to_string(),
        at,
        title: format!("title {id}"),
        body: "body".to_string(),
        region: Some("dfw".to_string()),
        tenant: None,
    }
}

fn maintenance(state: &str, sequence: u32) -> AdminMaintenance {
    AdminMaintenance {
        id: "m1".to_string(),
        title: "kernel".to_string(),
        body: "reboots".to_string(),
        region: None,
        tenant: Some("acme".to_string()),
        starts_at: 1_000,
        ends_at: 2_000,
        state: state.to_string(),
        sequence,
        created_at: 10,
        updated_at: 10 + sequence as i64,
    }
}

/// Every table, written through one handle and read through another (a second server).
async fn tables_round_trip(target: &str) {
    let first = WebDb::new(&Store::connect(target).await.unwrap())
        .await
        .unwrap();
    let second = WebDb::new(&Store::connect(target).await.unwrap())
        .await
        .unwrap();
    assert_eq!(second.rev().await.unwrap(), 0);

    let (row, secret) = first
        .create_token(TokenKind::Tenant, Some("acme"), "acme's page", 5)
        .await
        .unwrap();
    assert_eq!(row.hash, sha256_hex(&secret));
    let (admin, _) = first
        .create_token(TokenKind::Admin, None, "ops", 6)
        .await
        .unwrap();
    let tokens = second.tokens().await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].kind, TokenKind::Tenant);
    assert_eq!(tokens[0].tenant.as_deref(), Some("acme"));
    assert_eq!(tokens[1].kind, TokenKind::Admin);
    assert_eq!(tokens[1].created_at, 6);
    assert!(second.revoke(&admin.id).await.unwrap());
    assert!(!second.revoke(&admin.id).await.unwrap(), "revoked once");
    assert_eq!(first.tokens().await.unwrap().len(), 1);

    first
        .insert_notice("r", &notice("n2", 20), 7)
        .await
        .unwrap();
    first
        .insert_notice("r", &notice("n1", 10), 8)
        .await
        .unwrap();
    let ids: Vec<String> = second
        .notices("r")
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, ["n1", "n2"]);
    assert!(second.notices("other").await.unwrap().is_empty());

    first
        .upsert_maintenance("r", &maintenance("scheduled", 0))
        .await
        .unwrap();
    second
        .upsert_maintenance("r", &maintenance("cancelled", 1))
        .await
        .unwrap();
    let ms = first.maintenances("r").await.unwrap();
    assert_eq!(ms.len(), 1, "upserted, not added");
    assert_eq!((ms[0].state.as_str(), ms[0].sequence), ("cancelled", 1));
    assert_eq!(ms[0].tenant.as_deref(), Some("acme"));

    // every write above bumped the shared revision: 2 tokens, 2 revokes (the second found
    // nothing: it bumps all the same), 2 notices, 2 upserts
    assert_eq!(first.rev().await.unwrap(), 8);
    assert_eq!(second.rev().await.unwrap(), 8);

    let event = |status: &str, sequence| IcalEvent {
        start: 1_000,
        end: 2_000,
        status: status.to_string(),
        sequence,
    };
    first
        .set_ical(&[("u1".to_string(), event("CONFIRMED", 0))])
        .await
        .unwrap();
    second
        .set_ical(&[("u1".to_string(), event("CANCELLED", 1))])
        .await
        .unwrap();
    let ical = first.ical().await.unwrap();
    assert_eq!(ical.len(), 1);
    assert_eq!(ical["u1"], event("CANCELLED", 1));
    assert_eq!(
        first.rev().await.unwrap(),
        8,
        "iCalendar writes follow the journal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_tables_round_trip_on_sqlite() {
    let tmp = TmpDir::new("web-tables");
    tables_round_trip(tmp.db().to_str().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_tables_round_trip_on_postgres() {
    let url = rollcall_testkit::pg::shared().fresh_db("web_tables");
    tables_round_trip(&url).await;
}
