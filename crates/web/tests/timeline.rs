//! The operator's timeline (`rollcall plan FLEET --html FILE`) in a real browser: Debian's
//! chromium through chromedriver opens the exported file of examples/xsa-108.toml and of
//! a generated 100,000-host fleet. Screenshots go to target/screenshots/.

mod common;

use common::chrome::*;
use rollcall_core::generate::{GenParams, generate};
use rollcall_core::plan::plan;
use rollcall_core::{Fleet, audit::audit};
use rollcall_testkit::sim::{SERIAL, sim};
use rollcall_testkit::{TmpDir, xsa};
use rollcall_web::db::{TokenKind, TokenRow};
use rollcall_web::timeline::{Mode, render_page, timeline_data};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thirtyfour::prelude::*;

/// What `rollcall plan FLEET --html FILE` writes, written to `dir`.
fn export(f: &Fleet, dir: &Path, name: &str) -> (PathBuf, usize) {
    let p = plan(f);
    assert!(audit(f, &p).is_empty());
    let page = render_page(&timeline_data(f, &p), Mode::Export);
    let path = dir.join(name);
    std::fs::write(&path, &page).unwrap();
    (path, page.len())
}

async fn open(driver: &WebDriver, path: &Path) -> WebDriverResult<()> {
    driver.goto(format!("file://{}", path.display())).await?;
    // the script runs only if the CSP hash matches: `data-ready` proves it did
    wait_for(
        "the timeline to be drawn",
        Duration::from_secs(60),
        || async {
            let b = driver.find(By::Tag("body")).await.ok()?;
            (!attr(&b, "data-ready").await.is_empty()).then_some(())
        },
    )
    .await;
    Ok(())
}

async fn body_attr(driver: &WebDriver, name: &str) -> String {
    attr(&driver.find(By::Tag("body")).await.unwrap(), name).await
}

/// Share of the chart's canvas pixels for which `test`, a JS expression over `r`, `g` and
/// `b`, holds.
async fn share(driver: &WebDriver, test: &str) -> f64 {
    let js = format!(
        "const c=document.getElementById('gantt'),x=c.getContext('2d').getImageData(0,0,c.width,c.height).data;let n=0;for(let i=0;i<x.length;i+=4){{const r=x[i],g=x[i+1],b=x[i+2];if({test})n++;}}return n/(x.length/4);"
    );
    driver
        .execute(js, Vec::new())
        .await
        .unwrap()
        .json()
        .as_f64()
        .unwrap()
}

/// Share of pixels that are neither white nor the row backgrounds: bars and marks.
async fn inked(driver: &WebDriver) -> f64 {
    share(driver, "r<200||b<200").await
}

/// Share of pixels tinted by a maintenance window's shading (light green over a row).
async fn window_shaded(driver: &WebDriver) -> f64 {
    share(driver, "r>200&&g>=r+8&&g>=b+4").await
}

/// Share of pixels in the NotBefore mark's colour (#8a46c8).
async fn not_before_marked(driver: &WebDriver) -> f64 {
    share(
        driver,
        "Math.abs(r-138)<8&&Math.abs(g-70)<8&&Math.abs(b-200)<8",
    )
    .await
}

/// `t` as the page writes it: `2014-09-26 02:00`.
fn minute(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .unwrap()
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// examples/xsa-108.toml with one absolute maintenance window for `ord`.
fn xsa_with_ord_window(dir: &Path) -> Fleet {
    let src = std::fs::read_to_string(xsa()).unwrap();
    let window = "[[maintenance.window]]\nstart = \"2014-09-26T12:00:00Z\"\nend = \"2014-09-27T12:00:00Z\"\nregions = [\"ord\"]\n\n[[tenant]]";
    let path = dir.join("xsa-ord-window.toml");
    std::fs::write(&path, src.replacen("[[tenant]]", window, 1)).unwrap();
    rollcall_fleet::load_file(&path, &Default::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reads_the_xsa_108_plan_timeline() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("timeline-xsa");
    let f = rollcall_fleet::load_file(&xsa(), &Default::default()).unwrap();
    let p = plan(&f);
    let (path, _) = export(&f, &tmp.0, "xsa-108.html");
    let cd = chromedriver().await;
    let driver = browser(&cd, &tmp.0.join("profile")).await;
    let result = async {
        open(&driver, &path).await?;
        assert!(driver.title().await?.contains("xsa-108"));
        // regions in the maintenance order
        let mut seen = Vec::new();
        for li in driver.find_all(By::Css("#regions li")).await? {
            seen.push(attr(&li, "data-region").await);
        }
        let want: Vec<String> = p
            .regions
            .iter()
            .map(|r| f.region_name(r.region).to_string())
            .collect();
        assert_eq!(seen, want, "regions in maintenance order");
        assert_eq!(seen[0], "dfw");
        // a blocked cluster with its remedy
        let blocked = driver
            .find(By::Css("#risks li[data-severity='blocked'][data-cluster]"))
            .await?;
        let cluster = attr(&blocked, "data-cluster").await;
        let remedy = blocked.find(By::Css(".remedy")).await?.text().await?;
        let want_remedy = &p
            .risks
            .iter()
            .find(|r| r.cluster.map(|c| f.clusters[c as usize].id.as_str()) == Some(&cluster))
            .unwrap()
            .remedy;
        assert!(remedy.contains(want_remedy.as_str()), "{remedy}");
        let summary = driver.find(By::Id("summary")).await?.text().await?;
        assert!(
            summary.contains("lower bound") && summary.contains("makespan"),
            "{summary}"
        );
        assert!(inked(&driver).await > 0.02, "bars are drawn");
        shot(&driver, "timeline-xsa-108.png").await;

        // clicking the risk finds its first host: it is blocked, on its own row
        blocked.click().await?;
        let info = driver.find(By::Id("hostinfo")).await?;
        assert!(info.text().await?.contains("not scheduled (blocked)"));
        assert!(info.text().await?.contains(&cluster));

        // filters: one region, then only risks, shrink the rows
        let all: usize = body_attr(&driver, "data-rows").await.parse().unwrap();
        driver
            .find(By::Css("#f-region option:nth-child(3)"))
            .await?
            .click()
            .await?;
        let one: usize = body_attr(&driver, "data-rows").await.parse().unwrap();
        assert!(one < all && one > 0, "{one} of {all} rows");
        driver.find(By::Id("f-risks")).await?.click().await?;
        let risky: usize = body_attr(&driver, "data-rows").await.parse().unwrap();
        assert!(risky <= one, "{risky} ≤ {one}");

        // a host search opens its cluster and shows its planned times
        let host = &f.hosts[p.steps[0].host as usize].id;
        let q = driver.find(By::Id("f-host")).await?;
        q.send_keys(host).await?;
        q.send_keys(Key::Enter).await?;
        let text = info.text().await?;
        assert_eq!(attr(&info, "data-host").await, *host);
        assert!(text.contains("planned 2014-09-25 21:00"), "{text}");
        shot(&driver, "timeline-xsa-108-host.png").await;

        // the provider notice's host: its NotBefore, which is also its deadline, is in the
        // panel and marked on its row; xsa-108 has no window, so nothing is shaded
        let notice = &f.notices[0];
        let nh = &f.hosts[notice.hosts[0] as usize];
        assert_eq!(nh.deadline, Some(notice.not_before));
        q.clear().await?;
        q.send_keys(&nh.id).await?;
        q.send_keys(Key::Enter).await?;
        let text = info.text().await?;
        assert_eq!(attr(&info, "data-host").await, nh.id);
        let nb = minute(notice.not_before);
        assert!(
            text.contains(&format!("provider NotBefore {nb} UTC"))
                && text.contains(&format!("deadline {nb} UTC")),
            "{text}"
        );
        assert!(
            not_before_marked(&driver).await > 0.0,
            "NotBefore mark drawn"
        );
        assert_eq!(window_shaded(&driver).await, 0.0, "no window, no shading");
        shot(&driver, "timeline-xsa-108-notice.png").await;

        // with a window for ord, the plan keeps ord inside it and the page shades it
        let wf = xsa_with_ord_window(&tmp.0);
        let (wpath, _) = export(&wf, &tmp.0, "xsa-ord-window.html");
        open(&driver, &wpath).await?;
        let shaded = window_shaded(&driver).await;
        assert!(shaded > 0.001, "window shaded: {shaded}");
        shot(&driver, "timeline-window.png").await;
        Ok::<(), WebDriverError>(())
    }
    .await;
    let _ = driver.quit().await;
    result.expect("browser checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_host_timeline_renders_and_stays_responsive() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("timeline-100k");
    let f = generate(&GenParams::new(100_000, 20_000, 1));
    let (path, bytes) = export(&f, &tmp.0, "100k.html");
    let cd = chromedriver().await;
    let driver = browser(&cd, &tmp.0.join("profile")).await;
    let result = async {
        let t = Instant::now();
        open(&driver, &path).await?;
        let wall = t.elapsed();
        let first: f64 = body_attr(&driver, "data-first-draw").await.parse().unwrap();
        let ready: f64 = body_attr(&driver, "data-ready").await.parse().unwrap();
        assert!(inked(&driver).await > 0.02, "bars are drawn");
        // interactive: a search, a filter and a zoom, each timed in the page
        let host = &f.hosts[77_777].id;
        let v = driver
            .execute(
                "const t=performance.now();window.__timeline.find(arguments[0]);const a=performance.now()-t;\
                 const s=document.getElementById('f-region');s.value='2';const u=performance.now();s.dispatchEvent(new Event('change'));const b=performance.now()-u;\
                 const w=performance.now();document.getElementById('expand').click();const c=performance.now()-w;\
                 return new Promise(r=>requestAnimationFrame(()=>r([a,b,c,+document.body.dataset.rows])));",
                vec![serde_json::json!(host)],
            )
            .await?;
        let v: Vec<f64> = v.convert()?;
        println!(
            "100k hosts: page {:.1} MB; first draw {first:.0} ms, interactive {ready:.0} ms after navigation start (wall {:.2} s incl. WebDriver); search {:.0} ms, region filter {:.0} ms, open all clusters {:.0} ms ({} rows)",
            bytes as f64 / 1e6,
            wall.as_secs_f64(),
            v[0],
            v[1],
            v[2],
            v[3]
        );
        assert!(ready < 15_000.0, "interactive in {ready} ms");
        assert!(v[0] < 1_000.0 && v[1] < 1_000.0 && v[2] < 2_000.0, "{v:?}");
        shot(&driver, "timeline-100k.png").await;
        Ok::<(), WebDriverError>(())
    }
    .await;
    let _ = driver.quit().await;
    result.expect("browser checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_the_run_on_the_admin_timeline() {
    let _g = SERIAL.lock().await;
    let tmp = TmpDir::new("timeline-admin");
    let db = tmp.db();
    // a live sim run. Hosts that do not come back for 2 h (5%, seeded) finish after their
    // planned end whatever the machine's speed; flapping gates only delay, and on their own
    // left no host late on a loaded machine (the sim mostly beats its estimates)
    let run = rollcall_runtime::simfill::spawn(
        db.clone(),
        xsa(),
        rollcall_runtime::simfill::SimRun {
            run_id: "admin".into(),
            scale: 1000.0,
            sim: rollcall_core::simworld::SimParams {
                flap_rate: 0.2,
                ..sim(0.05)
            },
            on_missing: Some(rollcall_core::OnMissing::Continue),
            limit: None,
        },
    );
    let server = common::serve_live(&db, "admin").await;
    let tenant = rollcall_web::create_token(&db, TokenKind::Tenant, Some("acme"), "t")
        .await
        .unwrap()
        .1;
    let admin_token = rollcall_web::create_token(&db, TokenKind::Admin, None, "ops")
        .await
        .unwrap();
    let admin = admin_token.1.clone();
    let u = server.url.clone();
    let cd = chromedriver().await;
    let driver = browser(&cd, &tmp.0.join("profile")).await;
    let result = async {
        // neither the public nor a tenant link reaches the admin view
        for url in [
            format!("{u}/admin/"),
            format!("{u}/admin/?token={tenant}"),
            format!("{u}/t/{tenant}/admin/"),
            format!("{u}/admin/?token=rca_not-a-token"),
        ] {
            driver.goto(&url).await?;
            let text = driver.find(By::Tag("body")).await?.text().await?;
            assert!(driver.find(By::Id("gantt")).await.is_err(), "{url}: {text}");
            assert!(!text.contains("acme-search-dfw"), "{url}: {text}");
        }
        // the admin token, traded for a session cookie
        driver.goto(format!("{u}/admin/?token={admin}")).await?;
        assert_eq!(driver.current_url().await?.as_str(), format!("{u}/admin/"));
        let done = |d: &WebDriver| {
            let d = d.clone();
            async move {
                let b = d.find(By::Tag("body")).await.ok()?;
                attr(&b, "data-done").await.parse::<usize>().ok()
            }
        };
        let first = wait_for("the run state to arrive", Duration::from_secs(30), || {
            done(&driver)
        })
        .await;
        shot(&driver, "timeline-admin-early.png").await;
        let later = wait_for("the bars to grow", Duration::from_secs(60), || async {
            done(&driver).await.filter(|&n| n > first + 20)
        })
        .await;
        println!("hosts done on the admin timeline: {first} → {later}");
        let state = driver.find(By::Id("runstate")).await?.text().await?;
        assert!(state.contains("run admin"), "{state}");
        // budgets in use and the notify state are shown
        let notify = driver.find(By::Id("notify")).await?.text().await?;
        assert!(notify.contains("announced: dfw"), "{notify}");
        // a late host stands out: listed, and red when searched
        let late = wait_for("a late host", Duration::from_secs(60), || async {
            let li = driver.find(By::Css("#late li[data-host]")).await.ok()?;
            let h = attr(&li, "data-host").await;
            (!h.is_empty()).then_some(h)
        })
        .await;
        // hosts that did not come back are listed with their state
        let gone = wait_for("a missing host", Duration::from_secs(60), || async {
            let li = driver.find(By::Css("#missing li[data-host]")).await.ok()?;
            li.text().await.ok()
        })
        .await;
        assert!(gone.contains(" · "), "{gone}");
        let q = driver.find(By::Id("f-host")).await?;
        q.send_keys(&late).await?;
        q.send_keys(Key::Enter).await?;
        let info = driver.find(By::Id("hostinfo")).await?;
        assert_eq!(attr(&info, "class").await, "late", "{late} highlighted");
        assert!(info.text().await?.contains("LATE"));
        shot(&driver, "timeline-admin-late.png").await;
        Ok::<(), WebDriverError>(())
    }
    .await;
    let _ = driver.quit().await;
    result.expect("browser checks");
    session_cookie_reads_but_never_writes(&u, &db, &admin_token).await;
    let _ = run.join();
    server.stop().await;
}

/// The session `/admin/?token=…` starts opens the admin views, but a route that changes
/// anything takes only the bearer token: a cookie a browser sends on its own (from another
/// tab, say) never posts a notice. The cookie holds a session of its own, never the token;
/// it expires, is `Secure` behind https, and revoking the token ends it.
async fn session_cookie_reads_but_never_writes(u: &str, db: &Path, admin: &(TokenRow, String)) {
    let (row, admin) = (&admin.0, admin.1.as_str());
    let http = common::client();
    let start = |proto: &'static str| {
        http.get(format!("{u}/admin/?token={admin}"))
            .header("x-forwarded-proto", proto)
            .send()
    };
    let r = start("http").await.unwrap();
    assert_eq!(r.status(), 303, "the token is traded for a session");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("rollcall_admin=rcs_"), "{set}");
    assert!(
        !set.contains(admin),
        "the token is not in the cookie: {set}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{attr}: {set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let behind_tls = start("https").await.unwrap();
    let set = behind_tls.headers()["set-cookie"].to_str().unwrap();
    assert!(set.ends_with("; Secure"), "behind https: {set}");
    let get = |path: &str, cookie: &str| {
        http.get(format!("{u}{path}"))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(get("/admin/", &cookie).await.unwrap().status(), 200);
    assert_eq!(
        get("/api/admin/timeline.json", &cookie)
            .await
            .unwrap()
            .status(),
        200
    );
    // a session nobody started, and the token itself in place of a session
    for forged in [
        format!("{cookie}x"),
        "rollcall_admin=rcs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
        format!("rollcall_admin={admin}"),
    ] {
        let r = get("/api/admin/timeline.json", &forged).await.unwrap();
        assert_eq!(r.status(), 401, "{forged}");
    }
    let notice = serde_json::json!({"title": "t", "body": "b"});
    let r = http
        .post(format!("{u}/api/admin/notices"))
        .header("cookie", &cookie)
        .json(&notice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a write with the cookie alone");
    let r = http
        .post(format!("{u}/api/admin/notices"))
        .bearer_auth(admin)
        .json(&notice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the same write with the bearer token");
    assert!(rollcall_web::revoke_token(db, &row.id).await.unwrap());
    let r = get("/api/admin/timeline.json", &cookie).await.unwrap();
    assert_eq!(r.status(), 401, "revoking the token ends its session");
}
