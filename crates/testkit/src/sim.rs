//! A finished simulated run of `examples/xsa-108.toml` in a store (feature `sim`), driven
//! in-process through `rollcall_runtime::simfill` exactly as `rollcall run --driver sim`
//! stores it.

use crate::xsa;
use rollcall_core::OnMissing;
use rollcall_core::simworld::SimParams;
use rollcall_runtime::simfill::{self, SimRun};
use std::path::Path;

/// Tests that run simulated maintenances on wall-clock-mapped clocks take this, one at
/// a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Seed 7, hosts missing at `missing_rate` for two hours.
pub fn sim(missing_rate: f64) -> SimParams {
    SimParams {
        seed: 7,
        missing_rate,
        missing_for: Some(2 * 3600),
        ..SimParams::default()
    }
}

/// Run examples/xsa-108.toml to its end in `db` on the sim driver; it must complete.
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
