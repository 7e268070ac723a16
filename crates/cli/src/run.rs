//! `rollcall run | resume | status | pause | abort | history`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rollcall_core::engine::{
    Control, Engine, EngineConfig, Event, NoticeKind, Output, Phase, RunState, check_journal,
};
use rollcall_core::plan::{Plan, plan};
use rollcall_core::simworld::SimParams;
use rollcall_core::{Fleet, fmt_duration, fmt_time};
use rollcall_drivers::Driver;
use rollcall_drivers::config::RemoteConfig;
use rollcall_drivers::sim::{SimDriver, read_log};
use rollcall_fleet::LoadOptions;
use rollcall_fleet::sources::{FleetFiles, read_fleet_text};
use rollcall_runtime::{Clock, Ending, Observer, RuntimeConfig, drive, from_records, wall_ms};
use rollcall_store::{NewRun, RunRow, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What a run needs to be resumed, stored with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunParams {
    pub driver: String,
    pub clock: Clock,
    pub sim: Option<SimParams>,
    /// The simulated world (sim driver): its reboot log.
    pub world: Option<PathBuf>,
    /// The maintenance start the run used (the fleet file may leave it to "now").
    #[serde(default)]
    pub start: Option<i64>,
    /// `--on-missing` given to `run`, applied again on resume.
    #[serde(default)]
    pub on_missing: Option<String>,
    /// The run this one replaced (`resume --replan`) and the hosts it had done.
    #[serde(default)]
    pub replan: Option<crate::replan::Replan>,
}

pub fn default_db() -> PathBuf {
    if let Ok(p) = std::env::var("ROLLCALL_DB") {
        return PathBuf::from(p);
    }
    let base = std::env::var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|_| PathBuf::from("."));
    base.join("rollcall").join("rollcall.db")
}

fn err(e: impl std::fmt::Display) -> miette::Report {
    miette::miette!("{e}")
}

fn new_run_id() -> String {
    let ts = jiff::Timestamp::now();
    let nanos = ts.as_nanosecond() as u64;
    let mut z = nanos ^ ((std::process::id() as u64) << 32);
    z = (z ^ (z >> 33)).wrapping_mul(0xff51afd7ed558ccd);
    format!(
        "r{}-{:04x}",
        ts.strftime("%Y%m%d-%H%M%S"),
        (z >> 48) & 0xffff
    )
}

/// An owner on this machine whose process is gone (killed, crashed) holds its lease
/// until it expires; it can be taken over at once. Owners elsewhere cannot be judged.
fn owner_is_dead(owner: &str) -> bool {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut parts = owner.split(':');
    let (Some(h), Some(pid)) = (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) else {
        return false;
    };
    if h != host.trim() || pid == std::process::id() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // a zombie is dead too
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}:{}", host.trim(), std::process::id(), wall_ms())
}

pub struct RunOpts {
    pub fleet: PathBuf,
    pub db: PathBuf,
    pub driver: String,
    pub time_scale: String,
    pub json: bool,
    pub run_id: Option<String>,
    pub seed: u64,
    pub missing_rate: f64,
    pub missing_for: Option<i64>,
    pub flap_rate: f64,
    pub preflight_fail_rate: f64,
    pub on_missing: Option<String>,
    pub quiet: bool,
    /// Serve the status page beside the run.
    pub serve: Option<std::net::SocketAddr>,
    pub public_url: Option<String>,
}

/// `--on-missing`: pause, replace or continue.
pub fn parse_on_missing(p: &str) -> miette::Result<rollcall_core::OnMissing> {
    rollcall_core::OnMissing::parse(p).ok_or_else(|| {
        miette::miette!("--on-missing: unknown policy `{p}` (pause, replace, continue)")
    })
}

/// A fleet file and the files it imports, read from disk and validated: what a new run
/// stores and is bound to.
fn load_fleet(name: &str, text: &str, base: &Path) -> miette::Result<(Fleet, FleetFiles)> {
    read_fleet_text(name, text.to_string(), base, &LoadOptions::default()).map_err(config_report)
}

pub(crate) fn config_report(e: rollcall_fleet::ConfigErrors) -> miette::Report {
    if std::io::stderr().is_terminal() {
        miette::Report::new(e)
    } else {
        miette::miette!("{}", e.listing())
    }
}

/// Validate `[[subscriber]]` and `[notify]` (before anything is started); the number of
/// subscribers.
pub fn check_notify(name: &str, text: &str, fleet: &Fleet) -> miette::Result<usize> {
    rollcall_notify::config::load(name, text, fleet, &|k| std::env::var(k).ok())
        .map(|c| c.subscribers.len())
        .map_err(|e| {
            if std::io::stderr().is_terminal() {
                miette::Report::new(e)
            } else {
                miette::miette!("{}", e.listing())
            }
        })
}

pub(crate) fn checked_plan(f: &Fleet) -> miette::Result<Plan> {
    let p = plan(f);
    let v = rollcall_core::audit::audit(f, &p);
    if !v.is_empty() {
        return Err(miette::miette!(
            "internal error: the plan breaks a rule: {}",
            v.join("; ")
        ));
    }
    Ok(p)
}

pub async fn run(o: RunOpts) -> miette::Result<std::process::ExitCode> {
    let text = rollcall_fleet::limits::read_input(&o.fleet)
        .map_err(|e| miette::miette!("{}: {e}", o.fleet.display()))?;
    let base = o.fleet.parent().map(Path::to_path_buf).unwrap_or_default();
    let (mut fleet, files) = load_fleet(&o.fleet.display().to_string(), &text, &base)?;
    if let Some(p) = &o.on_missing {
        fleet.maintenance.on_missing = parse_on_missing(p)?;
    }
    check_notify(&o.fleet.display().to_string(), &text, &fleet)?;
    let p = checked_plan(&fleet)?;
    if o.driver != "sim" {
        return run_real(o, fleet, p, files, base).await;
    }
    let sim_epoch = fleet.maintenance.start;
    let scale = match o.time_scale.as_str() {
        "auto" => ((p.makespan + fleet.maintenance.notice_lead) as f64 / 60.0).max(1.0),
        s => s.parse::<f64>().ok().filter(|x| *x > 0.0 && x.is_finite()).ok_or_else(|| {
            miette::miette!("--time-scale: expected `auto` or a positive number (simulated seconds per real second), got `{s}`")
        })?,
    };
    let clock = Clock::Scaled {
        wall_epoch_ms: wall_ms(),
        sim_epoch,
        scale,
    };
    let sim = SimParams {
        seed: o.seed,
        missing_rate: o.missing_rate,
        missing_for: o.missing_for,
        flap_rate: o.flap_rate,
        preflight_fail_rate: o.preflight_fail_rate,
        ..SimParams::default()
    };
    let store = Store::open(&o.db).await.map_err(err)?;
    let id = o.run_id.clone().unwrap_or_else(new_run_id);
    let world =
        o.db.parent()
            .unwrap_or(Path::new("."))
            .join("sim")
            .join(format!("{id}.log"));
    let params = RunParams {
        driver: o.driver.clone(),
        clock,
        sim: Some(sim.clone()),
        world: Some(world.clone()),
        start: Some(fleet.maintenance.start),
        on_missing: o.on_missing.clone(),
        replan: None,
    };
    let fleet_path = std::fs::canonicalize(&o.fleet).unwrap_or(o.fleet.clone());
    store
        .create_run(&NewRun {
            id: id.clone(),
            fleet_path: fleet_path.display().to_string(),
            fleet_name: fleet.name.clone(),
            maintenance: fleet.maintenance.name.clone(),
            params: serde_json::to_value(&params).map_err(err)?,
            fleet_text: text.clone(),
            fleet_imports: rollcall_runtime::imports_value(&files),
        })
        .await
        .map_err(err)?;
    let me = owner();
    if !store
        .acquire_lease(&id, &me, wall_ms(), 3000)
        .await
        .map_err(err)?
    {
        return Err(miette::miette!("run {id} is owned by another orchestrator"));
    }
    if !o.json && !o.quiet {
        eprintln!(
            "run {id}: {} hosts in {} regions on the sim driver, 1 s = {} simulated; journal {}",
            p.steps.len(),
            p.regions.len(),
            fmt_duration(scale.round() as i64),
            o.db.display()
        );
        eprintln!(
            "  pause:  rollcall pause {id} --db {}\n  resume: rollcall resume {id} --db {}",
            o.db.display(),
            o.db.display()
        );
    }
    let fleet = Arc::new(fleet);
    let engine = Engine::new(fleet.clone(), &p, EngineConfig::default());
    let driver: Arc<dyn Driver> =
        Arc::new(SimDriver::open(fleet.clone(), sim, &world).map_err(err)?);
    let (driver, notify) = with_notify(
        &store,
        &id,
        &o.fleet.display().to_string(),
        &text,
        &fleet,
        &p,
        clock,
        driver,
    )
    .await?;
    let web = serve_beside(&o, &id).await?;
    let code = go(
        engine, &p, &store, &id, &me, driver, clock, o.json, o.quiet, notify,
    )
    .await?;
    if let Some(web) = web {
        crate::serve::linger(web).await;
    }
    Ok(code)
}

/// `run --serve ADDR`: the status page beside the run, reading the same store.
async fn serve_beside(o: &RunOpts, id: &str) -> miette::Result<Option<rollcall_web::Server>> {
    match o.serve {
        Some(addr) => Ok(Some(
            crate::serve::start_beside_run(&o.db, addr, id, o.public_url.clone()).await?,
        )),
        None => Ok(None),
    }
}

/// Customer notifications (`[[subscriber]]` in the fleet file): `Announce` goes to the
/// notifier, everything else to the host driver; journalled notices are delivered.
#[allow(clippy::too_many_arguments)]
async fn with_notify(
    store: &Store,
    id: &str,
    name: &str,
    text: &str,
    fleet: &Arc<Fleet>,
    p: &Plan,
    clock: Clock,
    driver: Arc<dyn Driver>,
) -> miette::Result<(Arc<dyn Driver>, Option<rollcall_notify::Follower>)> {
    let env = |k: &str| std::env::var(k).ok();
    match rollcall_notify::wire(
        store.pool(),
        id,
        name,
        text,
        fleet.clone(),
        p,
        clock,
        driver.clone(),
        &env,
    )
    .await
    .map_err(|e| miette::miette!("{e}"))?
    {
        Some(w) => Ok((w.driver, Some(w.follower))),
        None => Ok((driver, None)),
    }
}

/// The real-host drivers' settings of a fleet file (gates, ssh, exec), checked.
pub fn remote_config(
    name: &str,
    text: &str,
    base: &Path,
    fleet: &Fleet,
) -> miette::Result<RemoteConfig> {
    RemoteConfig::load(name, text, base, fleet).map_err(|e| {
        if std::io::stderr().is_terminal() {
            miette::Report::new(e)
        } else {
            miette::miette!("{}", e.listing())
        }
    })
}

/// The `ssh` or `exec` driver for a fleet file, and the engine timing it asks for.
fn real_driver(
    kind: &str,
    fleet: &Arc<Fleet>,
    name: &str,
    text: &str,
    base: &Path,
) -> miette::Result<(Arc<dyn Driver>, EngineConfig)> {
    let cfg = remote_config(name, text, base, fleet)?;
    let ec = EngineConfig {
        probe_interval: cfg.remote.probe_interval,
        gate_interval: cfg.remote.gate_interval,
        reboot_grace: cfg.remote.reboot_grace,
        missing_probe_interval: (cfg.remote.probe_interval * 6)
            .clamp(cfg.remote.probe_interval, 60),
        ..EngineConfig::default()
    };
    let d = rollcall_drivers::remote_driver(kind, fleet.clone(), cfg).map_err(err)?;
    Ok((Arc::new(d), ec))
}

/// Engine timing for a run: real drivers take it from the fleet file's `[remote]`.
fn engine_config(
    driver: &str,
    fleet: &Arc<Fleet>,
    name: &str,
    text: &str,
    base: &Path,
) -> miette::Result<EngineConfig> {
    if driver == "sim" {
        return Ok(EngineConfig::default());
    }
    Ok(real_driver(driver, fleet, name, text, base)?.1)
}

/// `run --driver ssh|exec`: real hosts on the wall clock.
async fn run_real(
    o: RunOpts,
    fleet: Fleet,
    p: Plan,
    files: FleetFiles,
    base: PathBuf,
) -> miette::Result<std::process::ExitCode> {
    let text = files.text.clone();
    if !matches!(o.driver.as_str(), "ssh" | "exec") {
        return Err(miette::miette!(
            "--driver {}: no such driver (sim, ssh, exec)",
            o.driver
        ));
    }
    let fleet = Arc::new(fleet);
    let name = o.fleet.display().to_string();
    let (driver, ec) = real_driver(&o.driver, &fleet, &name, &text, &base)?;
    let clock = Clock::Wall;
    let store = Store::open(&o.db).await.map_err(err)?;
    let id = o.run_id.clone().unwrap_or_else(new_run_id);
    let params = RunParams {
        driver: o.driver.clone(),
        clock,
        sim: None,
        world: None,
        start: Some(fleet.maintenance.start),
        on_missing: o.on_missing.clone(),
        replan: None,
    };
    let fleet_path = std::fs::canonicalize(&o.fleet).unwrap_or(o.fleet.clone());
    store
        .create_run(&NewRun {
            id: id.clone(),
            fleet_path: fleet_path.display().to_string(),
            fleet_name: fleet.name.clone(),
            maintenance: fleet.maintenance.name.clone(),
            params: serde_json::to_value(&params).map_err(err)?,
            fleet_text: text.clone(),
            fleet_imports: rollcall_runtime::imports_value(&files),
        })
        .await
        .map_err(err)?;
    let me = owner();
    if !store
        .acquire_lease(&id, &me, wall_ms(), 3000)
        .await
        .map_err(err)?
    {
        return Err(miette::miette!("run {id} is owned by another orchestrator"));
    }
    if !o.json && !o.quiet {
        eprintln!(
            "run {id}: {} hosts in {} regions on the {} driver (real hosts, wall clock; plan: {}); journal {}",
            p.steps.len(),
            p.regions.len(),
            o.driver,
            fmt_duration(p.makespan),
            o.db.display()
        );
        eprintln!(
            "  pause:  rollcall pause {id} --db {}\n  resume: rollcall resume {id} --db {}",
            o.db.display(),
            o.db.display()
        );
    }
    let engine = Engine::new(fleet.clone(), &p, ec);
    let (driver, notify) =
        with_notify(&store, &id, &name, &text, &fleet, &p, clock, driver).await?;
    let web = serve_beside(&o, &id).await?;
    let code = go(
        engine, &p, &store, &id, &me, driver, clock, o.json, o.quiet, notify,
    )
    .await?;
    if let Some(web) = web {
        crate::serve::linger(web).await;
    }
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
async fn go(
    engine: Engine,
    plan: &Plan,
    store: &Store,
    id: &str,
    me: &str,
    driver: Arc<dyn Driver>,
    clock: Clock,
    json: bool,
    quiet: bool,
    notify: Option<rollcall_notify::Follower>,
) -> miette::Result<std::process::ExitCode> {
    let mut obs: Box<dyn Observer> = if json {
        Box::new(JsonObserver)
    } else if quiet {
        Box::new(rollcall_runtime::NoObserver)
    } else {
        Box::new(Bars::new(&engine))
    };
    let mut engine = engine;
    let last = driver.go_last().await;
    for (h, why) in &last {
        if !json && !quiet {
            match h.and_then(|h| engine.fleet().hosts.get(h as usize)) {
                Some(x) => eprintln!("{}: {why}", x.id),
                None => eprintln!("{why}"),
            }
        }
    }
    let last: Vec<rollcall_core::HostIx> = last.into_iter().filter_map(|(h, _)| h).collect();
    engine.prefer_last(&last);
    let cfg = RuntimeConfig::default();
    let mut tail = crate::undone::Tail {
        inner: obs.as_mut(),
        plan,
        undone: Vec::new(),
        scheduled_undone: 0,
    };
    let ending = drive(engine, store, id, me, driver, clock, &cfg, &mut tail)
        .await
        .map_err(err)?;
    let (undone, scheduled_undone) = (tail.undone, tail.scheduled_undone);
    drop(obs);
    if let Some(f) = notify
        && let Err(e) = f.finish(std::time::Duration::from_secs(120)).await
    {
        eprintln!("run {id}: notices: {e}");
    }
    if !json && !quiet {
        match ending {
            Ending::Over(RunState::Completed) => eprintln!("run {id} completed"),
            Ending::Over(s) => eprintln!("run {id} ended: {}", s.name()),
            Ending::Interrupted => {
                eprintln!("run {id} paused (interrupted); continue with: rollcall resume {id}")
            }
        }
    }
    // on stderr with --json too: the journal on stdout stays JSON, the operator still reads why
    if !quiet && !undone.is_empty() {
        eprintln!("run {id}: {} host(s) not done:", undone.len());
        for l in crate::undone::lines(&undone) {
            eprintln!("{l}");
        }
    }
    // a clean pause (Ctrl-C) is resumable: not a failure
    Ok(match ending {
        Ending::Over(_) if scheduled_undone > 0 => {
            std::process::ExitCode::from(crate::undone::EXIT_UNDONE)
        }
        _ => std::process::ExitCode::SUCCESS,
    })
}

/// Load a run's fleet, plan and journal, and rebuild its engine.
pub async fn restore(
    store: &Store,
    row: &RunRow,
) -> miette::Result<(Arc<Fleet>, Plan, Engine, Vec<Output>, RunParams)> {
    let params: RunParams = serde_json::from_value(row.params.clone())
        .map_err(|e| miette::miette!("run {}: its parameters are not understood: {e}", row.id))?;
    let base = rollcall_runtime::stored_base(row);
    // the same fleet as the run began with (its stored text and imports, never the files
    // on disk): its start, and any --on-missing override
    let mut fleet = rollcall_runtime::stored_fleet(row, params.start).map_err(config_report)?;
    if let Some(p) = &params.on_missing {
        fleet.maintenance.on_missing = parse_on_missing(p)?;
    }
    let fleet = Arc::new(fleet);
    let p = checked_plan(&fleet)?;
    let recs = store.journal(&row.id).await.map_err(err)?;
    let outs = from_records(&row.id, &recs).map_err(err)?;
    let ec = engine_config(
        &params.driver,
        &fleet,
        &row.fleet_path,
        &row.fleet_text,
        &base,
    )?;
    let engine = Engine::restore(fleet.clone(), &p, ec, &outs)
        .map_err(|e| miette::miette!("run {}: {e}", row.id))?;
    Ok((fleet, p, engine, outs, params))
}

async fn find_run(store: &Store, id: Option<&str>) -> miette::Result<RunRow> {
    match id {
        Some(id) => store
            .run(id)
            .await
            .map_err(err)?
            .ok_or_else(|| miette::miette!("no run `{id}` in this journal")),
        None => store
            .latest_run()
            .await
            .map_err(err)?
            .ok_or_else(|| miette::miette!("this journal has no runs yet")),
    }
}

pub async fn resume(
    db: &Path,
    id: &str,
    json: bool,
    quiet: bool,
    replan: bool,
) -> miette::Result<std::process::ExitCode> {
    let store = Store::open(db).await.map_err(err)?;
    let row = find_run(&store, Some(id)).await?;
    if row.status == "replanned" {
        let into = row.summary["replanned_into"].as_str().unwrap_or("?");
        return Err(miette::miette!(
            "run {id} was replanned into run {into}: resume {into}"
        ));
    }
    if matches!(row.status.as_str(), "completed" | "aborted") {
        eprintln!("run {id} is already {}", row.status);
        // notices the run could not deliver before it ended are delivered now
        let (fleet, p, _engine, _outs, params) = restore(&store, &row).await?;
        let name = format!("{} (as stored with run {})", row.fleet_path, row.id);
        let env = |k: &str| std::env::var(k).ok();
        if let Some(s) = rollcall_notify::flush(
            store.pool(),
            id,
            &name,
            &row.fleet_text,
            fleet,
            &p,
            params.clock,
            &env,
        )
        .await
        .map_err(|e| miette::miette!("run {id}: notices: {e}"))?
        {
            eprintln!(
                "run {id}: notices: {} sent, {} pending",
                s.count(None, "sent"),
                s.count(None, "pending")
            );
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let me = owner();
    if !store
        .acquire_lease(id, &me, wall_ms(), 3000)
        .await
        .map_err(err)?
    {
        let holder = row.owner.clone().unwrap_or_default();
        let taken = owner_is_dead(&holder)
            && store
                .take_over_lease(id, &holder, &me, wall_ms(), 3000)
                .await
                .map_err(err)?;
        if !taken {
            // a live orchestrator runs it: ask it to resume
            if replan {
                return Err(miette::miette!(
                    "run {id} is running in {holder}: pause it and stop that orchestrator before --replan"
                ));
            }
            store.set_control(id, Some("resume")).await.map_err(err)?;
            eprintln!("run {id} is running in {holder}; asked it to resume");
            return Ok(std::process::ExitCode::SUCCESS);
        }
    }
    if replan {
        let new = crate::replan::replan(&store, &row, quiet).await;
        store.release_lease(id, &me).await.map_err(err)?;
        let new = new?;
        return Box::pin(resume(db, &new, json, quiet, false)).await;
    }
    let (fleet, p, mut engine, _outs, params) = restore(&store, &row).await?;
    if !quiet
        && let Some(msg) =
            crate::drift::describe(id, &crate::drift::drift(&row, &fleet, params.start))
    {
        eprintln!("{msg}");
    }
    let clock = params.clock;
    if let RunState::Paused { .. } = engine.state() {
        engine.handle(
            clock.now(),
            Event::Control {
                control: Control::Resume,
            },
        );
    }
    let driver: Arc<dyn Driver> = match (params.driver.as_str(), &params.sim, &params.world) {
        ("sim", Some(sim), Some(world)) => {
            Arc::new(SimDriver::open(fleet.clone(), sim.clone(), world).map_err(err)?)
        }
        (d @ ("ssh" | "exec"), _, _) => {
            let base = Path::new(&row.fleet_path)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            real_driver(d, &fleet, &row.fleet_path, &row.fleet_text, &base)?.0
        }
        (d, _, _) => {
            return Err(miette::miette!(
                "run {id} uses driver `{d}`, which this build cannot drive"
            ));
        }
    };
    adopt_holds(&engine, driver.as_ref(), id, json);
    if !json && !quiet {
        let pr = engine.progress();
        eprintln!("resuming run {id}: {}/{} hosts done", pr.done, pr.total);
    }
    let name = format!("{} (as stored with run {})", row.fleet_path, row.id);
    let (driver, notify) = with_notify(
        &store,
        id,
        &name,
        &row.fleet_text,
        &fleet,
        &p,
        clock,
        driver,
    )
    .await?;
    go(
        engine, &p, &store, id, &me, driver, clock, json, quiet, notify,
    )
    .await
}

/// Hand the driver what drains of the run still hold (journalled), and say so: every
/// one is put back by a restore or a release before the run can end.
fn adopt_holds(engine: &Engine, driver: &dyn Driver, id: &str, json: bool) {
    let holds = engine.holds();
    if holds.is_empty() {
        return;
    }
    let fleet = engine.fleet();
    let who: Vec<String> = holds
        .iter()
        .map(|(h, x)| {
            format!(
                "{} in {} (before: {})",
                fleet.hosts[*h as usize].id, fleet.clusters[x.cluster as usize].id, x.undo
            )
        })
        .collect();
    if !json {
        eprintln!(
            "run {id}: drains still hold a change to their clusters, to be put back: {}",
            who.join("; ")
        );
    }
    if let Err(e) = driver.adopt(&holds) {
        // loud, and not fatal: the restore then resets what it finds (and says so)
        eprintln!("run {id}: WARNING: {e}; the values from before the drains are lost for these");
    }
}

pub async fn control(db: &Path, id: &str, what: &str) -> miette::Result<std::process::ExitCode> {
    let store = Store::open(db).await.map_err(err)?;
    let row = find_run(&store, Some(id)).await?;
    if matches!(row.status.as_str(), "completed" | "aborted") {
        return Err(miette::miette!("run {id} is already {}", row.status));
    }
    store.set_control(id, Some(what)).await.map_err(err)?;
    let live = row.lease_until.is_some_and(|t| t > wall_ms());
    if live {
        eprintln!("asked run {id} to {what}");
    } else {
        eprintln!(
            "no orchestrator is running {id} now; `{what}` applies when it is resumed (rollcall resume {id})"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct StatusDoc<'a> {
    run: &'a RunRow,
    state: RunState,
    progress: rollcall_core::engine::Progress,
    regions: Vec<String>,
    attention: Vec<HostNote>,
    violations: Option<Vec<String>>,
    /// Customer notices delivered (notify outbox).
    notices: rollcall_notify::Summary,
}

#[derive(Serialize)]
struct HostNote {
    host: String,
    phase: Phase,
    note: Option<String>,
}

pub async fn status(
    db: &Path,
    id: Option<&str>,
    json: bool,
    check: bool,
) -> miette::Result<std::process::ExitCode> {
    let store = Store::open(db).await.map_err(err)?;
    let row = find_run(&store, id).await?;
    let (fleet, p, engine, outs, params) = restore(&store, &row).await?;
    let pr = engine.progress();
    let attention: Vec<HostNote> = (0..fleet.hosts.len())
        .filter(|&h| matches!(engine.phase(h as u32), Phase::Missing | Phase::Failed))
        .map(|h| HostNote {
            host: fleet.hosts[h].id.clone(),
            phase: engine.phase(h as u32),
            note: engine.note(h as u32).map(str::to_string),
        })
        .collect();
    let violations = if check {
        let mut v = check_journal(&fleet, &p, &outs);
        if let Some(world) = &params.world {
            let mut count: HashMap<String, usize> = HashMap::new();
            for e in read_log(world).map_err(err)? {
                if e.action == "reboot" {
                    *count.entry(e.host).or_default() += 1;
                }
            }
            for (h, n) in count {
                if n > 1 {
                    v.push(format!("{h} was rebooted {n} times"));
                }
            }
        }
        Some(v)
    } else {
        None
    };
    let bad = violations.as_ref().is_some_and(|v| !v.is_empty());
    let notices = rollcall_notify::summary(store.pool(), &row.id)
        .await
        .map_err(err)?;
    if json {
        let doc = StatusDoc {
            run: &row,
            state: engine.state(),
            regions: pr
                .regions
                .iter()
                .map(|r| fleet.region_name(r.region).to_string())
                .collect(),
            progress: pr,
            attention,
            violations,
            notices,
        };
        println!("{}", serde_json::to_string_pretty(&doc).map_err(err)?);
    } else {
        let live = row.lease_until.is_some_and(|t| t > wall_ms());
        println!(
            "run {}  {} / {}  state {}{}  ({}/{} hosts done)",
            row.id,
            row.fleet_name,
            row.maintenance,
            engine.state().name(),
            if let RunState::Paused { reason } = engine.state() {
                format!(" ({reason:?})").to_lowercase()
            } else {
                String::new()
            },
            pr.done,
            pr.total
        );
        println!(
            "  orchestrator: {}",
            if live {
                row.owner.clone().unwrap_or_default()
            } else {
                "none running".into()
            }
        );
        println!(
            "  {:<8} {:>6} {:>6} {:>7} {:>8} {:>7}  ANNOUNCED",
            "REGION", "HOSTS", "DONE", "ACTIVE", "MISSING", "FAILED"
        );
        for r in &pr.regions {
            println!(
                "  {:<8} {:>6} {:>6} {:>7} {:>8} {:>7}  {}{}",
                fleet.region_name(r.region),
                r.hosts,
                r.done,
                r.active,
                r.missing,
                r.failed,
                r.announced_at.map(fmt_time).unwrap_or_else(|| "-".into()),
                if r.completed { "  completed" } else { "" }
            );
        }
        let phases: Vec<String> = pr
            .phases
            .iter()
            .map(|(ph, n)| format!("{} {n}", ph.name()))
            .collect();
        println!("  hosts: {}", phases.join(", "));
        for a in &attention {
            println!(
                "  {} {}: {}",
                a.phase.name().to_uppercase(),
                a.host,
                a.note.clone().unwrap_or_default()
            );
        }
        if !notices.counts.is_empty() {
            println!(
                "  notices: {} sent, {} pending, {} unsubscribed (410)",
                notices.count(None, "sent"),
                notices.count(None, "pending"),
                notices.count(None, "gone")
            );
            for (n, s, a, e) in &notices.undelivered {
                println!(
                    "  UNDELIVERED {n} to {s} after {a} attempts: {}",
                    e.clone().unwrap_or_default()
                );
            }
        }
        if let Some(v) = &violations {
            if v.is_empty() {
                println!("  check: journal keeps every rule; no host rebooted twice");
            } else {
                for x in v {
                    println!("  VIOLATION: {x}");
                }
            }
        }
    }
    Ok(if bad {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

pub async fn history(db: &Path, json: bool) -> miette::Result<std::process::ExitCode> {
    let store = Store::open(db).await.map_err(err)?;
    let runs = store.runs().await.map_err(err)?;
    if json {
        let list: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| serde_json::json!({"id": r.id, "created_at": r.created_at, "fleet": r.fleet_name, "maintenance": r.maintenance, "status": r.status, "fleet_path": r.fleet_path}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).map_err(err)?);
    } else {
        println!(
            "{:<24} {:<20} {:<16} {:<12} STATUS",
            "RUN", "CREATED", "FLEET", "MAINTENANCE"
        );
        for r in runs {
            println!(
                "{:<24} {:<20} {:<16} {:<12} {}",
                r.id,
                fmt_time(r.created_at / 1000),
                r.fleet_name,
                r.maintenance,
                r.status
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// One JSON line per journalled output, with names instead of indices.
pub struct JsonObserver;

impl Observer for JsonObserver {
    fn on_outputs(&mut self, outputs: &[Output], engine: &Engine) {
        let f = engine.fleet();
        let mut out = std::io::stdout().lock();
        for o in outputs {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            if let serde_json::Value::Object(m) = &mut v {
                let host = match o {
                    Output::Transition(t) => Some(t.host),
                    Output::Command { command, .. } => command.host(),
                    Output::Notice(n) => n.host,
                    Output::State { .. } => None,
                    Output::Held { host, .. } | Output::Released { host, .. } => Some(*host),
                };
                if let Some(h) = host {
                    m.insert(
                        "host_id".into(),
                        serde_json::Value::String(f.hosts[h as usize].id.clone()),
                    );
                }
                if let Output::Notice(n) = o {
                    m.insert(
                        "region_name".into(),
                        serde_json::Value::String(f.region_name(n.region).to_string()),
                    );
                }
            }
            let _ = std::io::Write::write_all(&mut out, format!("{v}\n").as_bytes());
        }
    }
}

/// Progress bars: one per region and one overall.
pub struct Bars {
    mp: MultiProgress,
    total: ProgressBar,
    regions: Vec<(u32, ProgressBar)>,
    last: Instant,
    /// stderr is not a terminal: no bars, plain lines.
    plain: bool,
}

impl Bars {
    fn say(&self, line: String) {
        if self.plain {
            eprintln!("{line}");
        } else {
            let _ = self.mp.println(line);
        }
    }
}

impl Bars {
    pub fn new(engine: &Engine) -> Bars {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let mp = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{bar:40.cyan/blue}] {pos:>4}/{len:<4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let pr = engine.progress();
        let total = mp.add(
            ProgressBar::new(pr.total as u64)
                .with_style(style.clone())
                .with_prefix("all"),
        );
        let regions = pr
            .regions
            .iter()
            .map(|r| {
                let b = mp.add(
                    ProgressBar::new(r.hosts as u64)
                        .with_style(style.clone())
                        .with_prefix(engine.fleet().region_name(r.region).to_string()),
                );
                (r.region, b)
            })
            .collect();
        Bars {
            mp,
            total,
            regions,
            last: Instant::now(),
            plain: !std::io::stderr().is_terminal(),
        }
    }

    fn refresh(&mut self, engine: &Engine) {
        let pr = engine.progress();
        self.total.set_position(pr.done as u64);
        self.total.set_message(match pr.state {
            RunState::Paused { reason } => format!("PAUSED ({reason:?})"),
            s => s.name().to_string(),
        });
        for (r, b) in &self.regions {
            if let Some(rp) = pr.regions.iter().find(|x| x.region == *r) {
                b.set_position(rp.done as u64);
                let mut msg = if rp.completed {
                    "completed".to_string()
                } else if rp.active > 0 {
                    format!("{} in progress", rp.active)
                } else if rp.announced_at.is_some() {
                    "announced".to_string()
                } else {
                    String::new()
                };
                if rp.missing > 0 {
                    msg.push_str(&format!(", {} MISSING", rp.missing));
                }
                if rp.failed > 0 {
                    msg.push_str(&format!(", {} failed", rp.failed));
                }
                b.set_message(msg);
            }
        }
    }
}

impl Observer for Bars {
    fn on_outputs(&mut self, outputs: &[Output], engine: &Engine) {
        for o in outputs {
            match o {
                Output::Notice(n)
                    if matches!(
                        n.kind,
                        NoticeKind::HostMissing
                            | NoticeKind::Escalation
                            | NoticeKind::HostReturned
                            | NoticeKind::HostReplaced
                            | NoticeKind::Completed
                    ) =>
                {
                    self.say(format!("{}  {}", fmt_time(n.at), n.text));
                }
                Output::State { at, state } => {
                    self.say(format!(
                        "{}  run {}",
                        fmt_time(*at),
                        match state {
                            RunState::Paused { reason } => format!("paused ({reason:?})"),
                            s => s.name().to_string(),
                        }
                    ));
                    if matches!(state, RunState::Paused { .. }) {
                        for l in crate::undone::lines(&crate::undone::failed_or_missing(engine)) {
                            self.say(l);
                        }
                    }
                }
                _ => {}
            }
        }
        if self.last.elapsed().as_millis() >= 50 {
            self.last = Instant::now();
            self.refresh(engine);
        }
    }
    fn on_end(&mut self, engine: &Engine) {
        self.refresh(engine);
    }
    fn on_idle(&mut self, engine: &Engine) {
        if self.last.elapsed().as_millis() >= 200 {
            self.last = Instant::now();
            self.refresh(engine);
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.total.finish();
        for (_, b) in &self.regions {
            b.finish();
        }
    }
}

/// Records the wall time of every journalled output.
struct Timing {
    healthy: Vec<(Instant, u32)>,
    reboots: Vec<(Instant, u32)>,
    batches: usize,
    outputs: usize,
}

impl Observer for Timing {
    fn on_outputs(&mut self, outputs: &[Output], _engine: &Engine) {
        let t = Instant::now();
        self.batches += 1;
        self.outputs += outputs.len();
        for o in outputs {
            match o {
                Output::Transition(tr) if tr.to == Phase::Healthy => {
                    self.healthy.push((t, tr.host))
                }
                Output::Command {
                    command: rollcall_core::engine::Command::Reboot { host, .. },
                    ..
                } => self.reboots.push((t, *host)),
                _ => {}
            }
        }
    }
}

pub async fn bench_engine(
    fleet_path: &Path,
    scale: f64,
    json: bool,
) -> miette::Result<std::process::ExitCode> {
    let text = rollcall_fleet::limits::read_input(fleet_path)
        .map_err(|e| miette::miette!("{}: {e}", fleet_path.display()))?;
    let base = fleet_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (fleet, files) = load_fleet(&fleet_path.display().to_string(), &text, &base)?;
    let fleet = Arc::new(fleet);
    let p = checked_plan(&fleet)?;
    let dir = std::env::temp_dir().join(format!("rollcall-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir.join("bench.db")).await.map_err(err)?;
    let id = "bench";
    let clock = Clock::Scaled {
        wall_epoch_ms: wall_ms(),
        sim_epoch: fleet.maintenance.start,
        scale,
    };
    let params = RunParams {
        driver: "sim".into(),
        clock,
        sim: Some(SimParams::default()),
        world: Some(dir.join("world.log")),
        start: Some(fleet.maintenance.start),
        on_missing: None,
        replan: None,
    };
    store
        .create_run(&NewRun {
            id: id.into(),
            fleet_path: fleet_path.display().to_string(),
            fleet_name: fleet.name.clone(),
            maintenance: fleet.maintenance.name.clone(),
            params: serde_json::to_value(&params).map_err(err)?,
            fleet_text: text,
            fleet_imports: rollcall_runtime::imports_value(&files),
        })
        .await
        .map_err(err)?;
    let me = owner();
    store
        .acquire_lease(id, &me, wall_ms(), 3000)
        .await
        .map_err(err)?;
    let driver: Arc<dyn Driver> = Arc::new(
        SimDriver::open(fleet.clone(), SimParams::default(), &dir.join("world.log"))
            .map_err(err)?,
    );
    let engine = Engine::new(fleet.clone(), &p, EngineConfig::default());
    let mut obs = Timing {
        healthy: Vec::new(),
        reboots: Vec::new(),
        batches: 0,
        outputs: 0,
    };
    let cfg = RuntimeConfig {
        handle_ctrl_c: false,
        ..RuntimeConfig::default()
    };
    let t0 = Instant::now();
    let ending = drive(engine, &store, id, &me, driver, clock, &cfg, &mut obs)
        .await
        .map_err(err)?;
    let wall = t0.elapsed().as_secs_f64();
    // for each healthy host, the first later reboot of a host sharing a cluster
    let mut lat: Vec<f64> = Vec::new();
    for &(t, h) in &obs.healthy {
        let cl = &fleet.hosts[h as usize].clusters;
        if cl.is_empty() {
            continue;
        }
        if let Some(&(t2, _)) = obs.reboots.iter().find(|(t2, h2)| {
            *t2 >= t
                && fleet.hosts[*h2 as usize]
                    .clusters
                    .iter()
                    .any(|c| cl.contains(c))
        }) {
            lat.push((t2 - t).as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |x: f64| {
        lat.get(((lat.len() as f64 - 1.0) * x).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let _ = std::fs::remove_dir_all(&dir);
    let doc = serde_json::json!({
        "fleet": fleet.name, "hosts": p.steps.len(), "ending": rollcall_runtime::status_name(ending),
        "wall_s": wall, "journal_batches": obs.batches, "journal_records": obs.outputs,
        "records_per_s": obs.outputs as f64 / wall,
        "healthy_to_next_reboot_ms": { "samples": lat.len(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0) },
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&doc).map_err(err)?);
    } else {
        println!(
            "engine benchmark: {} ({} hosts) on the sim driver, SQLite journal, 1 s = {scale} s simulated",
            fleet.name,
            p.steps.len()
        );
        println!(
            "  run               {} in {wall:.2} s wall, {} journal transactions, {} records ({:.0} records/s)",
            rollcall_runtime::status_name(ending),
            obs.batches,
            obs.outputs,
            obs.outputs as f64 / wall
        );
        println!(
            "  healthy → next reboot in the same cluster (wall): p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            lat.len()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
