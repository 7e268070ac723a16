//! The status page in a real browser: Debian's chromium driven through Debian's
//! chromedriver (thirtyfour; no driver is ever downloaded), during a live sim run of
//! examples/xsa-108.toml. Screenshots go to target/screenshots/.

mod common;

use common::chrome::*;
use rollcall_testkit::sim::{SERIAL, sim};
use rollcall_testkit::{TmpDir, xsa};
use rollcall_web::db::TokenKind;
use std::time::Duration;
use thirtyfour::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_watches_the_public_and_a_tenant_page_during_a_run() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("browser");
    let db = tmp.db();
    let cd = chromedriver().await;

    // a live sim run (~45 s wall), a server following it
    let run = rollcall_runtime::simfill::spawn(
        db.clone(),
        xsa(),
        rollcall_runtime::simfill::SimRun {
            run_id: "browser".into(),
            scale: 1000.0,
            // no missing hosts: with 5% missing, dfw could stall on missing members'
            // budgets and the run pause for an operator (correctly), freezing the page this
            // test watches grow (seen once in CI). Missing hosts are covered by web.rs.
            sim: sim(0.0),
            on_missing: Some(rollcall_core::OnMissing::Continue),
            limit: None,
        },
    );
    let server = common::serve_live(&db, "browser").await;
    let tok_a = rollcall_web::create_token(&db, TokenKind::Tenant, Some("acme"), "browser")
        .await
        .unwrap()
        .1;
    let u = server.url.clone();

    let profile = tmp.0.join("chromium-profile");
    let driver = browser(&cd, &profile).await;
    let result = async {
        driver.goto(format!("{u}/")).await?;
        assert!(driver.title().await?.contains("hosted-search status"));

        // dfw's maintenance in progress, with its window and the time it started
        let dfw = wait_for(
            "dfw maintenance in progress on the page",
            Duration::from_secs(60),
            || async {
                let e = driver
                    .find(By::Css("#active [data-maintenance='browser.dfw']"))
                    .await
                    .ok()?;
                (attr(&e, "data-status").await == "in_progress").then_some(e)
            },
        )
        .await;
        let when = dfw.find(By::Css(".when")).await?.text().await?;
        assert!(when.contains("2014-09-25 21:00"), "window shown: {when}");
        assert!(when.contains("UTC"));
        let facts = dfw.find(By::Css(".facts")).await?.text().await?;
        assert!(facts.contains("announced 2014-09-25 20:0"), "{facts}");
        assert!(facts.contains("started 2014-09-25 21:0"), "{facts}");
        // regions as components, dfw under maintenance, later regions scheduled
        let region = driver
            .find(By::Css("[data-component='region-dfw']"))
            .await?;
        let st = attr(&region, "data-status").await;
        assert!(
            ["under_maintenance", "degraded_performance"].contains(&st.as_str()),
            "dfw: {st}"
        );
        assert!(region.text().await?.contains("Region dfw"));
        let hkg = driver
            .find(By::Css("#upcoming [data-maintenance='browser.hkg']"))
            .await?;
        assert!(hkg.text().await?.contains("Scheduled"));
        // the public page names no cluster
        assert!(
            driver
                .find_all(By::Css("[data-component^='cluster-']"))
                .await?
                .is_empty()
        );
        let banner = driver.find(By::Id("overall")).await?.text().await?;
        assert!(!banner.is_empty());
        shot(&driver, "public-during-run.png").await;

        // the timeline grows while the person watches, without a reload
        driver
            .execute("window.__stillHere = 42;", Vec::new())
            .await?;
        let before = driver.find_all(By::Css("#timeline li.upd")).await?.len();
        let after = wait_for(
            "the timeline to gain entries",
            Duration::from_secs(60),
            || async {
                let n = driver
                    .find_all(By::Css("#timeline li.upd"))
                    .await
                    .ok()?
                    .len();
                (n > before).then_some(n)
            },
        )
        .await;
        let still = driver
            .execute("return window.__stillHere;", Vec::new())
            .await?;
        assert_eq!(
            still.json(),
            &serde_json::json!(42),
            "updated in place, not reloaded"
        );
        println!("timeline entries: {before} → {after}");
        shot(&driver, "public-later.png").await;

        // tenant A's page: A's clusters, not B's
        driver.goto(format!("{u}/t/{tok_a}/")).await?;
        let who = driver.find(By::Id("tenant")).await?.text().await?;
        assert!(who.contains("Acme"), "{who}");
        let clusters = driver
            .find_all(By::Css("[data-component^='cluster-']"))
            .await?;
        let mut ids = Vec::new();
        for c in &clusters {
            ids.push(attr(c, "data-component").await);
        }
        assert!(
            ids.contains(&"cluster-acme-search-dfw".to_string()),
            "{ids:?}"
        );
        assert!(
            ids.iter().all(|i| i.starts_with("cluster-acme-")),
            "only Acme's clusters: {ids:?}"
        );
        let text = driver.find(By::Tag("body")).await?.text().await?;
        assert!(
            !text.to_lowercase().contains("globex"),
            "no trace of Globex"
        );
        let c = driver
            .find(By::Css("[data-component='cluster-acme-search-dfw']"))
            .await?;
        assert!(!attr(&c, "data-status").await.is_empty());
        shot(&driver, "tenant-acme.png").await;

        // readable on a phone: no sideways scrolling at 390 px
        driver.set_window_rect(0, 0, 390, 844).await?;
        driver.goto(format!("{u}/")).await?;
        let w = driver
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                Vec::new(),
            )
            .await?;
        let w: Vec<i64> = w.convert()?;
        assert!(w[0] <= w[1], "page fits a phone screen: {w:?}");
        shot(&driver, "public-phone.png").await;
        Ok::<(), WebDriverError>(())
    }
    .await;
    let _ = driver.quit().await;
    result.expect("browser checks");
    let _ = run.join();
    server.stop().await;
}
