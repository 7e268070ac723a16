//! Chromium through chromedriver (Debian's, never downloaded), shared by the browser
//! tests.

use super::client;
use rollcall_testkit::{Kill, free_port, repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use thirtyfour::prelude::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port; killed on drop (also when the test fails).
pub struct Driver {
    _child: Kill,
    pub port: u16,
}

pub async fn chromedriver() -> Driver {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "this test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    );
    let port = free_port();
    let child = Kill::spawn(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "chromedriver",
    );
    let d = Driver {
        _child: child,
        port,
    };
    let t = Instant::now();
    let c = client();
    loop {
        if let Ok(r) = c
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && r.status().is_success()
        {
            return d;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "chromedriver did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn shots() -> PathBuf {
    let d = repo().join("target/screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub async fn browser(d: &Driver, profile: &Path) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).unwrap();
    for a in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,1600",
    ] {
        caps.add_arg(a).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display()))
        .unwrap();
    WebDriver::new(format!("http://127.0.0.1:{}", d.port), caps)
        .await
        .expect("a chromium session")
}

pub async fn attr(e: &WebElement, name: &str) -> String {
    e.attr(name).await.unwrap().unwrap_or_default()
}

/// Wait until `f` returns Some, polling the page.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(t.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn shot(driver: &WebDriver, name: &str) {
    let p = shots().join(name);
    driver.screenshot(&p).await.unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    assert!(
        len > 5_000,
        "{} is a real screenshot ({len} bytes)",
        p.display()
    );
    println!("screenshot: {}", p.display());
}
