//! Fill a store with a real simulated run: the engine on the runtime's tokio loop, the
//! sim driver, a scaled clock. Used by the tests and `rollcall bench serve`; the run is
//! stored exactly as `rollcall run --driver sim` stores it.

use crate::{
    Clock, DriverKind, Ending, NewRunSpec, NoObserver, RunParams, RuntimeConfig, drive, start_run,
    wall_ms,
};
use rollcall_core::OnMissing;
use rollcall_core::engine::{Engine, EngineConfig};
use rollcall_core::simworld::SimParams;
use rollcall_drivers::Driver;
use rollcall_drivers::sim::SimDriver;
use rollcall_fleet::LoadOptions;
use rollcall_store::Store;
use std::path::Path;
use std::sync::Arc;

pub struct SimRun {
    pub run_id: String,
    /// Simulated seconds per real second.
    pub scale: f64,
    pub sim: SimParams,
    pub on_missing: Option<OnMissing>,
    /// Stop driving after this long (wall clock), leaving the run as it is in the
    /// journal (status `running`), as if the orchestrator were still at work.
    pub limit: Option<std::time::Duration>,
}

/// Create the run in the store and drive it to its end.
pub async fn run(db: &Path, fleet_path: &Path, opts: &SimRun) -> Result<Ending, String> {
    let text = rollcall_fleet::limits::read_input(fleet_path)
        .map_err(|e| format!("{}: {e}", fleet_path.display()))?;
    run_text(db, fleet_path, &text, opts).await
}

pub async fn run_text(
    db: &Path,
    fleet_path: &Path,
    text: &str,
    opts: &SimRun,
) -> Result<Ending, String> {
    let base = fleet_path.parent().unwrap_or(Path::new("."));
    let (mut fleet, files) = rollcall_fleet::sources::read_fleet_text(
        &fleet_path.display().to_string(),
        text.to_string(),
        base,
        &LoadOptions::default(),
    )
    .map_err(|e| e.listing())?;
    if let Some(p) = opts.on_missing {
        fleet.maintenance.on_missing = p;
    }
    let plan = rollcall_core::plan::plan(&fleet);
    let store = Store::open(db).await.map_err(|e| e.to_string())?;
    let params = RunParams {
        driver: DriverKind::Sim,
        clock: Clock::Scaled {
            wall_epoch_ms: wall_ms(),
            sim_epoch: fleet.maintenance.start,
            scale: opts.scale,
        },
        sim: Some(opts.sim.clone()),
        world: Some(
            db.parent()
                .unwrap_or(Path::new("."))
                .join("sim")
                .join(format!("{}.log", opts.run_id)),
        ),
        start: Some(fleet.maintenance.start),
        on_missing: opts.on_missing,
        replan: None,
    };
    let cfg = RuntimeConfig {
        handle_ctrl_c: false,
        ..RuntimeConfig::default()
    };
    let spec = NewRunSpec {
        id: opts.run_id.clone(),
        fleet_path,
        fleet: Arc::new(fleet),
        files: &files,
        params,
        supersedes: None,
        lease_ttl_ms: cfg.lease_ttl.as_millis() as i64,
    };
    let (run, lease) = start_run(&store, spec).await.map_err(|e| e.to_string())?;
    let (sim, world) = (
        opts.sim.clone(),
        run.params.world.clone().unwrap_or_default(),
    );
    let driver: Arc<dyn Driver> =
        Arc::new(SimDriver::open(run.fleet.clone(), sim, &world).map_err(|e| e.to_string())?);
    let engine = Engine::new(run.fleet.clone(), &plan, EngineConfig::default());
    let mut obs = NoObserver;
    let clock = run.params.clock;
    let d = drive(engine, &store, &lease, driver, clock, &cfg, &mut obs);
    match opts.limit {
        None => d.await.map_err(|e| e.to_string()),
        Some(limit) => match tokio::time::timeout(limit, d).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            // stopped mid-run: what is journalled stays, like a killed orchestrator's
            Err(_) => Ok(Ending::Interrupted),
        },
    }
}

/// Drive a run on its own thread and runtime (the runtime's loop is not `Send`), as a
/// separate `rollcall run` process would.
pub fn spawn(
    db: std::path::PathBuf,
    fleet_path: std::path::PathBuf,
    opts: SimRun,
) -> std::thread::JoinHandle<Result<Ending, String>> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(run(&db, &fleet_path, &opts))
    })
}
