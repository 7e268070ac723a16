#![allow(dead_code)]
//! Shared test helpers: a store filled by a real sim run, servers on free loopback ports.

use rollcall_core::OnMissing;
use rollcall_core::simworld::SimParams;
use rollcall_runtime::simfill::{self, SimRun};
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn xsa() -> PathBuf {
    root().join("examples/xsa-108.toml")
}

/// A temporary directory removed on drop (also when the test fails).
pub struct TmpDir(pub PathBuf);
impl TmpDir {
    pub fn new(name: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("rollcall-web-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
    pub fn db(&self) -> PathBuf {
        self.0.join("rollcall.db")
    }
}
impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn sim(missing_rate: f64) -> SimParams {
    SimParams {
        seed: 7,
        missing_rate,
        missing_for: Some(2 * 3600),
        ..SimParams::default()
    }
}

/// Run examples/xsa-108.toml to its end in `db` on the sim driver.
pub async fn finished_run(db: &Path, run_id: &str, missing_rate: f64) {
    let ending = simfill::run(
        db,
        &xsa(),
        &SimRun {
            run_id: run_id.into(),
            // 2000x: a 15-60 min gate timeout stays 0.45-1.8 s of wall time; at 10000x an
            // I/O stall of a third of a second failed Elasticsearch gates and paused the run
            scale: 2000.0,
            sim: sim(missing_rate),
            on_missing: Some(OnMissing::Continue),
            // a run that pauses (escalation) fails the test below instead of hanging it
            limit: Some(std::time::Duration::from_secs(240)),
        },
    )
    .await
    .expect("sim run");
    assert_eq!(
        rollcall_runtime::status_name(ending),
        "completed",
        "the sim run should complete (interrupted = still running or paused after 240 s)"
    );
}

/// These tests run simulated maintenances on wall-clock-mapped clocks: one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}
