//! `rollcall run | resume | status | pause | abort | history`.

use crate::err;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rollcall_core::engine::{
    Control, Engine, EngineConfig, Event, NoticeKind, Output, Phase, RunState,
};
use rollcall_core::plan::{Plan, plan};
use rollcall_core::simworld::SimParams;
use rollcall_core::{Fleet, OnMissing, fmt_duration, fmt_time};
use rollcall_drivers::Driver;
use rollcall_drivers::config::RemoteConfig;
use rollcall_drivers::sim::SimDriver;
use rollcall_fleet::LoadOptions;
use rollcall_fleet::sources::{FleetFiles, read_fleet_text};
use rollcall_notify::DeliveryStatus;
use rollcall_runtime::{
    Clock, DriverKind, Ending, Lease, NewRunSpec, Observer, RunParams, RuntimeConfig, RuntimeError,
    StoredRun, Taken, drive, from_records, new_run_id, start_run, wall_ms,
};
use rollcall_store::{RunControl, RunRow, RunStatus, Store, StoreError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A new run, as the command line asks for it (parsed and checked).
pub struct RunOpts {
    pub fleet: PathBuf,
    /// The fleet text to run, when it is not the file's own (a guard run's edited copy);
    /// stored with the run under the file's path.
    pub text: Option<String>,
    pub db: PathBuf,
    pub driver: DriverKind,
    /// `auto` or simulated seconds per real second.
    pub time_scale: String,
    pub talk: Talk,
    pub run_id: Option<String>,
    /// The simulated world's faults (sim driver).
    pub sim: SimParams,
    pub on_missing: Option<OnMissing>,
    /// Serve the status page beside the run.
    pub serve: Option<std::net::SocketAddr>,
    pub public_url: Option<String>,
    /// `page.id` of the status page (default: the one kept in the store).
    pub page_id: Option<String>,
    pub lease_ttl: Duration,
    /// Wait for runs that hold some of the fleet's hosts to end, instead of refusing.
    pub wait: bool,
}

/// How a run talks on the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Talk {
    /// Progress bars and lines on stderr.
    Bars,
    /// One JSON line per journalled output on stdout (why hosts are undone still on stderr).
    Json,
    /// Nothing but errors.
    Quiet,
}

impl Talk {
    pub fn new(json: bool, quiet: bool) -> Talk {
        match (json, quiet) {
            (true, _) => Talk::Json,
            (false, true) => Talk::Quiet,
            (false, false) => Talk::Bars,
        }
    }

    fn observer(self, engine: &Engine) -> Box<dyn Observer> {
        match self {
            Talk::Json => Box::new(JsonObserver),
            Talk::Quiet => Box::new(rollcall_runtime::NoObserver),
            Talk::Bars => Box::new(Bars::new(engine)),
        }
    }
}

/// A fleet file and the files it imports, read from disk and validated: what a new run
/// stores and is bound to.
pub(crate) fn load_fleet(
    name: &str,
    text: &str,
    base: &Path,
) -> miette::Result<(Fleet, FleetFiles)> {
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
        .map_err(config_report)
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

/// `rollcall run FLEET`: load and check everything, store the run and take its lease, then
/// go. Nothing is stored before the fleet, its notifications and its drivers' settings
/// are valid.
pub async fn run(o: RunOpts) -> miette::Result<std::process::ExitCode> {
    let name = o.fleet.display().to_string();
    let text = match &o.text {
        Some(t) => t.clone(),
        None => rollcall_fleet::limits::read_input(&o.fleet)
            .map_err(|e| miette::miette!("{name}: {e}"))?,
    };
    let base = o.fleet.parent().map(Path::to_path_buf).unwrap_or_default();
    let (mut fleet, files) = load_fleet(&name, &text, &base)?;
    let on_missing = o.on_missing;
    if let Some(p) = on_missing {
        fleet.maintenance.on_missing = p;
    }
    check_notify(&name, &text, &fleet)?;
    let p = checked_plan(&fleet)?;
    let kind = o.driver;
    let fleet = Arc::new(fleet);
    // real hosts: the driver is built (its settings checked) before anything is stored
    let id = o.run_id.clone().unwrap_or_else(new_run_id);
    let early = match kind.is_real() {
        true => Some(remote_host_driver(kind, &fleet, &name, &text, &base, &id)?),
        false => None,
    };
    let store = Store::connect(&o.db).await.map_err(err)?;
    let params = RunParams {
        driver: kind,
        clock: new_clock(&o, kind, &fleet, &p)?,
        sim: (kind == DriverKind::Sim).then(|| o.sim.clone()),
        world: (kind == DriverKind::Sim).then(|| world_log(&o.db, &id)),
        start: Some(fleet.maintenance.start),
        on_missing,
        replan: None,
    };
    let spec = NewRunSpec {
        id,
        fleet_path: &o.fleet,
        fleet,
        files: &files,
        params,
        supersedes: None,
        lease_ttl_ms: o.lease_ttl.as_millis() as i64,
    };
    let (run, lease) = start_claimed(&store, spec, o.wait).await?;
    if o.talk == Talk::Bars {
        say_started(&run, &p, &o.db);
    }
    let (driver, ec) = match early {
        Some(d) => d,
        None => host_driver(&run)?,
    };
    let engine = Engine::new(run.fleet.clone(), &p, ec);
    let web = serve_beside(&o, run.id()).await?;
    let at = Session {
        store: &store,
        run: &run,
        lease: &lease,
        plan: &p,
        talk: o.talk,
        lease_ttl: o.lease_ttl,
    };
    let code = at.go(engine, driver).await?;
    if let Some(web) = web {
        crate::serve::linger(web).await;
    }
    Ok(code)
}

/// Store the run and take its lease; while another live run holds some of its hosts or
/// clusters, refuse (naming it) or, with `wait`, wait for that run to end.
async fn start_claimed(
    store: &Store,
    mut spec: NewRunSpec<'_>,
    wait: bool,
) -> miette::Result<(StoredRun, Lease)> {
    let mut said = false;
    loop {
        match start_run(store, spec.clone()).await {
            Err(RuntimeError::Store(e @ StoreError::Claimed { .. })) if wait => {
                if !said {
                    eprintln!("{e}; waiting for it to end (--wait)");
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                // a simulated clock starts when the run does
                if let Clock::Scaled { wall_epoch_ms, .. } = &mut spec.params.clock {
                    *wall_epoch_ms = wall_ms();
                }
            }
            Err(RuntimeError::Store(e @ StoreError::Claimed { .. })) => {
                return Err(miette::miette!(
                    "{e}\nTwo runs must not spend the same clusters' budgets: wait for it \
                     (--wait), or end it (`rollcall abort RUN`, or `rollcall resume RUN` if \
                     its orchestrator is gone)"
                ));
            }
            other => return other.map_err(err),
        }
    }
}

/// A new run's clock: the wall clock for real hosts, a scaled one for simulated hosts.
fn new_clock(o: &RunOpts, kind: DriverKind, fleet: &Fleet, p: &Plan) -> miette::Result<Clock> {
    if kind.is_real() {
        return Ok(Clock::Wall);
    }
    let scale = match o.time_scale.as_str() {
        "auto" => ((p.makespan + fleet.maintenance.notice_lead) as f64 / 60.0).max(1.0),
        s => s.parse::<f64>().ok().filter(|x| *x > 0.0 && x.is_finite()).ok_or_else(|| {
            miette::miette!("--time-scale: expected `auto` or a positive number (simulated seconds per real second), got `{s}`")
        })?,
    };
    Ok(Clock::Scaled {
        wall_epoch_ms: wall_ms(),
        sim_epoch: fleet.maintenance.start,
        scale,
    })
}

/// The simulated world's reboot log of run `id`, beside the journal (a PostgreSQL
/// journal: in the local data dir, `$XDG_DATA_HOME/rollcall/sim`).
fn world_log(db: &Path, id: &str) -> PathBuf {
    let dir = match rollcall_store::Target::parse(db.as_os_str()) {
        rollcall_store::Target::File(_) => db.parent().unwrap_or(Path::new(".")).to_path_buf(),
        rollcall_store::Target::Postgres(_) => crate::cmd::data_dir(),
    };
    dir.join("sim").join(format!("{id}.log"))
}

/// The first lines of a run: what it drives, and how to pause and resume it.
fn say_started(run: &StoredRun, p: &Plan, db: &Path) {
    let id = run.id();
    // a PostgreSQL URL is shown without its password
    let db = rollcall_store::Target::parse(db.as_os_str());
    let how = match run.params.clock {
        Clock::Scaled { scale, .. } => format!(
            "on the sim driver, 1 s = {} simulated",
            fmt_duration(scale.round() as i64)
        ),
        Clock::Wall => format!(
            "on the {} driver (real hosts, wall clock; plan: {})",
            run.params.driver,
            fmt_duration(p.makespan)
        ),
    };
    eprintln!(
        "run {id}: {} hosts in {} regions {how}; journal {}",
        p.steps.len(),
        p.regions.len(),
        db
    );
    eprintln!("  pause:  rollcall pause {id} --db {db}\n  resume: rollcall resume {id} --db {db}");
}

/// `run --serve ADDR`: the status page beside the run, reading the same store.
async fn serve_beside(o: &RunOpts, id: &str) -> miette::Result<Option<rollcall_web::Server>> {
    match o.serve {
        Some(addr) => Ok(Some(
            crate::serve::start_page(
                &o.db,
                addr,
                Some(id),
                o.public_url.clone(),
                o.page_id.clone(),
            )
            .await?,
        )),
        None => Ok(None),
    }
}

/// The real-host drivers' settings of a fleet file (gates, ssh, exec), checked.
pub fn remote_config(
    name: &str,
    text: &str,
    base: &Path,
    fleet: &Fleet,
) -> miette::Result<RemoteConfig> {
    RemoteConfig::load(name, text, base, fleet).map_err(config_report)
}

/// Engine timing for real hosts: from the fleet file's `[remote]`.
fn remote_timing(cfg: &RemoteConfig) -> EngineConfig {
    let r = &cfg.remote;
    EngineConfig {
        probe_interval: r.probe_interval,
        gate_interval: r.gate_interval,
        reboot_grace: r.reboot_grace,
        missing_probe_interval: (r.probe_interval * 6).clamp(r.probe_interval, 60),
        ..EngineConfig::default()
    }
}

/// The `ssh` or `exec` driver for a fleet file, and the engine timing it asks for.
fn remote_host_driver(
    kind: DriverKind,
    fleet: &Arc<Fleet>,
    name: &str,
    text: &str,
    base: &Path,
    run: &str,
) -> miette::Result<(Arc<dyn Driver>, EngineConfig)> {
    let cfg = remote_config(name, text, base, fleet)?;
    let ec = remote_timing(&cfg);
    let d: Arc<dyn Driver> = match kind {
        DriverKind::Ec2 => {
            let aws = rollcall_providers::aws::config::AwsSettings::load(name, text, fleet)
                .map_err(config_report)?
                .ok_or_else(|| {
                    miette::miette!(
                        "{name}: --driver ec2 needs an [aws] table naming each host's instance"
                    )
                })?;
            let d =
                rollcall_drivers::ec2::ec2_driver(kind.transport(), fleet.clone(), cfg, &aws, run);
            Arc::new(d.map_err(err)?)
        }
        _ => Arc::new(
            rollcall_drivers::remote_driver(kind.transport(), fleet.clone(), cfg).map_err(err)?,
        ),
    };
    let d = crate::guard::approve::wrap(d, kind, name, text, base, fleet)?;
    Ok((d, ec))
}

/// Engine timing for a stored run.
fn engine_config(run: &StoredRun) -> miette::Result<EngineConfig> {
    if !run.params.driver.is_real() {
        return Ok(EngineConfig::default());
    }
    let cfg = remote_config(&run.name(), &run.row.fleet_text, &run.base(), &run.fleet)?;
    Ok(remote_timing(&cfg))
}

/// The host driver of a stored run, and the engine timing it asks for.
fn host_driver(run: &StoredRun) -> miette::Result<(Arc<dyn Driver>, EngineConfig)> {
    let p = &run.params;
    match (p.driver, &p.sim, &p.world) {
        (DriverKind::Sim, Some(sim), Some(world)) => {
            let d = SimDriver::open(run.fleet.clone(), sim.clone(), world).map_err(err)?;
            Ok((Arc::new(d), EngineConfig::default()))
        }
        (DriverKind::Sim, _, _) => Err(miette::miette!(
            "run {}: a sim run stored without its simulated world",
            run.id()
        )),
        (kind, _, _) => {
            let (name, base) = (run.name(), run.base());
            remote_host_driver(
                kind,
                &run.fleet,
                &name,
                &run.row.fleet_text,
                &base,
                run.id(),
            )
        }
    }
}

/// A run being driven by this process: what `go` needs besides the engine and driver.
struct Session<'a> {
    store: &'a Store,
    run: &'a StoredRun,
    lease: &'a Lease,
    plan: &'a Plan,
    talk: Talk,
    lease_ttl: Duration,
}

impl Session<'_> {
    /// Customer notifications (`[[subscriber]]` in the fleet file): `Announce` goes to the
    /// notifier, everything else to the host driver; journalled notices are delivered.
    async fn with_notify(
        &self,
        driver: Arc<dyn Driver>,
    ) -> miette::Result<(Arc<dyn Driver>, Option<rollcall_notify::Follower>)> {
        let env = |k: &str| std::env::var(k).ok();
        match rollcall_notify::wire(self.store, self.run, self.plan, driver.clone(), &env)
            .await
            .map_err(|e| miette::miette!("{e}"))?
        {
            Some(w) => Ok((w.driver, Some(w.follower))),
            None => Ok((driver, None)),
        }
    }

    /// The cluster-manager hosts the driver wants last, said and handed to the engine.
    async fn managers_last(&self, engine: &mut Engine, driver: &dyn Driver) {
        let last = driver.go_last().await;
        for l in &last {
            if self.talk != Talk::Bars {
                continue;
            }
            match l.host.and_then(|h| engine.fleet().hosts.get(h as usize)) {
                Some(x) => eprintln!("{}: {}", x.id, l.why),
                None => eprintln!("{}", l.why),
            }
        }
        let last: Vec<rollcall_core::HostIx> = last.into_iter().filter_map(|l| l.host).collect();
        engine.prefer_last(&last);
    }

    /// Drive the run to its end or a pause; the exit code.
    async fn go(
        &self,
        mut engine: Engine,
        driver: Arc<dyn Driver>,
    ) -> miette::Result<std::process::ExitCode> {
        let (driver, notify) = self.with_notify(driver).await?;
        let mut obs = self.talk.observer(&engine);
        self.managers_last(&mut engine, driver.as_ref()).await;
        let mut tail = crate::undone::Tail {
            inner: obs.as_mut(),
            plan: self.plan,
            undone: Vec::new(),
            scheduled_undone: 0,
        };
        let cfg = RuntimeConfig {
            lease_ttl: self.lease_ttl,
            ..RuntimeConfig::default()
        };
        let clock = self.run.params.clock;
        let ending = drive(
            engine, self.store, self.lease, driver, clock, &cfg, &mut tail,
        )
        .await
        .map_err(err)?;
        let (undone, scheduled_undone) = (tail.undone, tail.scheduled_undone);
        drop(obs);
        let id = self.run.id();
        if let Some(f) = notify
            && let Err(e) = f.finish(std::time::Duration::from_secs(120)).await
        {
            eprintln!("run {id}: notices: {e}");
        }
        self.say_ending(ending, &undone);
        // a clean pause (Ctrl-C) is resumable: not a failure
        Ok(match ending {
            Ending::Over(_) if scheduled_undone > 0 => {
                std::process::ExitCode::from(crate::undone::EXIT_UNDONE)
            }
            _ => std::process::ExitCode::SUCCESS,
        })
    }

    fn say_ending(&self, ending: Ending, undone: &[crate::undone::Undone]) {
        let id = self.run.id();
        if self.talk == Talk::Bars {
            match ending {
                Ending::Over(RunState::Completed) => eprintln!("run {id} completed"),
                Ending::Over(s) => eprintln!("run {id} ended: {}", s.name()),
                Ending::Interrupted => {
                    eprintln!("run {id} paused (interrupted); continue with: rollcall resume {id}")
                }
            }
        }
        // on stderr with --json too: the journal on stdout stays JSON, the operator still reads why
        if self.talk != Talk::Quiet && !undone.is_empty() {
            eprintln!("run {id}: {} host(s) not done:", undone.len());
            for l in crate::undone::lines(undone) {
                eprintln!("{l}");
            }
        }
    }
}

/// A stored run rebuilt: its fleet and parameters, plan, journal and engine.
pub struct Restored {
    pub run: StoredRun,
    pub plan: Plan,
    pub engine: Engine,
    pub outs: Vec<Output>,
}

/// Load a run's fleet, plan and journal, and rebuild its engine.
pub async fn restore(store: &Store, row: &RunRow) -> miette::Result<Restored> {
    // the same fleet as the run began with (its stored text and imports, never the files
    // on disk): its start, and any --on-missing override
    let run = StoredRun::load(row.clone()).map_err(|e| match e {
        rollcall_runtime::LoadError::Fleet(e) => config_report(e),
        e => err(e),
    })?;
    let p = checked_plan(&run.fleet)?;
    let recs = store.journal(&row.id).await.map_err(err)?;
    let outs = from_records(&row.id, &recs).map_err(err)?;
    let engine = Engine::restore(run.fleet.clone(), &p, engine_config(&run)?, &outs)
        .map_err(|e| miette::miette!("run {}: {e}", row.id))?;
    Ok(Restored {
        run,
        plan: p,
        engine,
        outs,
    })
}

pub(crate) async fn find_run(store: &Store, id: Option<&str>) -> miette::Result<RunRow> {
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

/// `resume` of a run that already ended: deliver the notices it could not before.
async fn flush_ended(store: &Store, row: &RunRow) -> miette::Result<std::process::ExitCode> {
    let id = &row.id;
    eprintln!("run {id} is already {}", row.status);
    let r = restore(store, row).await?;
    let env = |k: &str| std::env::var(k).ok();
    if let Some(s) = rollcall_notify::flush(store, &r.run, &r.plan, &env)
        .await
        .map_err(|e| miette::miette!("run {id}: notices: {e}"))?
    {
        eprintln!(
            "run {id}: notices: {} sent, {} pending",
            s.count(None, DeliveryStatus::Sent),
            s.count(None, DeliveryStatus::Pending)
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `rollcall resume RUN` and `rollcall follow RUN`.
pub struct Resume {
    pub db: PathBuf,
    pub run: String,
    pub talk: Talk,
    /// `--replan`: adopt the fleet files on disk in a new run.
    pub replan: bool,
    /// `follow`: while a live orchestrator holds the run, wait to take it over.
    pub standby: bool,
    pub lease_ttl: Duration,
}

/// `rollcall resume RUN` (or, as a standby, `rollcall follow RUN`).
pub async fn resume(r: Resume) -> miette::Result<std::process::ExitCode> {
    let store = Store::connect(&r.db).await.map_err(err)?;
    let Some((row, lease)) = take_run(&store, &r).await? else {
        return Ok(std::process::ExitCode::SUCCESS);
    };
    let (id, talk) = (row.id.as_str(), r.talk);
    if r.replan {
        let new = crate::replan::replan(&store, &row, &lease, talk == Talk::Quiet).await;
        lease.release(&store).await.map_err(err)?;
        let new = new?;
        let next = Resume {
            run: new,
            replan: false,
            ..r
        };
        return Box::pin(resume(next)).await;
    }
    let Restored {
        run,
        plan: p,
        mut engine,
        ..
    } = restore(&store, &row).await?;
    lease.claim(&store, &run.fleet).await.map_err(err)?;
    if talk != Talk::Quiet
        && let Some(msg) =
            crate::drift::describe(id, &crate::drift::drift(&row, &run.fleet, run.params.start))
    {
        eprintln!("{msg}");
    }
    if let RunState::Paused { .. } = engine.state() {
        let control = Control::Resume;
        engine.handle(run.params.clock.now(), Event::Control { control });
    }
    let (driver, _) = host_driver(&run)?;
    for m in driver.resumed().await.map_err(err)? {
        eprintln!("run {id}: {m}");
    }
    adopt_holds(&engine, driver.as_ref(), id, talk == Talk::Json);
    if talk == Talk::Bars {
        let pr = engine.progress();
        eprintln!("resuming run {id}: {}/{} hosts done", pr.done, pr.total);
    }
    let at = Session {
        store: &store,
        run: &run,
        lease: &lease,
        plan: &p,
        talk,
        lease_ttl: r.lease_ttl,
    };
    at.go(engine, driver).await
}

/// The run to resume, and its lease: `None` when there is nothing to drive (it ended, or
/// a live orchestrator holds it and was asked to resume). A standby waits for the lease.
async fn take_run(store: &Store, r: &Resume) -> miette::Result<Option<(RunRow, Lease)>> {
    let id = r.run.as_str();
    let ttl = r.lease_ttl.as_millis() as i64;
    let mut waiting = false;
    loop {
        // a standby may be started before its run: it waits for the run to appear
        let row = match store.run(id).await.map_err(err)? {
            Some(row) => row,
            None if r.standby => {
                if !waiting && r.talk != Talk::Quiet {
                    eprintln!("no run `{id}` in this journal yet; standing by for it");
                }
                waiting = true;
                tokio::time::sleep(standby_poll(r.lease_ttl)).await;
                continue;
            }
            None => find_run(store, Some(id)).await?,
        };
        // stored but not yet leased by the orchestrator starting it: not ours to take
        if r.standby && row.epoch == 0 && row.owner.is_none() && row.status.is_live() {
            tokio::time::sleep(standby_poll(r.lease_ttl)).await;
            continue;
        }
        if row.status == RunStatus::Replanned {
            let into = row.summary["replanned_into"].as_str().unwrap_or("?");
            return Err(miette::miette!(
                "run {id} was replanned into run {into}: resume {into}"
            ));
        }
        if row.status.is_ended() {
            if waiting {
                eprintln!("run {id} ended under its leader ({})", row.status);
                return Ok(None);
            }
            flush_ended(store, &row).await?;
            return Ok(None);
        }
        let holder = match Lease::take(store, &row, ttl).await.map_err(err)? {
            Taken::Ours(lease) => {
                say_taken(&row, &lease, waiting);
                return Ok(Some((row, lease)));
            }
            Taken::HeldBy(holder) => holder,
        };
        if r.standby {
            if !waiting && r.talk != Talk::Quiet {
                eprintln!(
                    "run {id} is led by {holder} (epoch {}); standing by to take it over",
                    row.epoch
                );
            }
            waiting = true;
            tokio::time::sleep(standby_poll(r.lease_ttl)).await;
            continue;
        }
        // a live orchestrator runs it: ask it to resume
        if r.replan {
            return Err(miette::miette!(
                "run {id} is running in {holder}: pause it and stop that orchestrator before --replan"
            ));
        }
        store
            .set_control(id, Some(RunControl::Resume))
            .await
            .map_err(err)?;
        eprintln!("run {id} is running in {holder}; asked it to resume");
        return Ok(None);
    }
}

/// How often a standby looks at the lease it waits for: a tenth of its time to live,
/// within 100 ms to 1 s, so a takeover comes soon after the lease expires.
fn standby_poll(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// A takeover said: the run's last holder and the new epoch.
fn say_taken(row: &RunRow, lease: &Lease, standby: bool) {
    let from = row.owner.as_deref().unwrap_or("nobody");
    if standby || row.owner.is_some() {
        eprintln!(
            "run {}: took the lease over from {from} (epoch {})",
            row.id, lease.fence.epoch
        );
    }
}

/// `follow` without a run: the latest live run of the journal, once there is one.
pub async fn await_live_run(db: &Path, ttl: Duration) -> miette::Result<String> {
    let store = Store::connect(db).await.map_err(err)?;
    let mut said = false;
    loop {
        let runs = store.runs().await.map_err(err)?;
        if let Some(row) = runs.iter().find(|r| r.status.is_live()) {
            return Ok(row.id.clone());
        }
        if !said {
            eprintln!("no live run in this journal yet; standing by for one");
            said = true;
        }
        tokio::time::sleep(standby_poll(ttl)).await;
    }
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
                            | NoticeKind::ProviderRisk
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

/// Sorted samples (ms).
struct Samples(Vec<f64>);

impl Samples {
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Quantile `x` (0..=1); 0 without samples.
    fn q(&self, x: f64) -> f64 {
        let v = &self.0;
        v.get(((v.len() as f64 - 1.0) * x).round() as usize)
            .copied()
            .unwrap_or(0.0)
    }
}

impl Timing {
    /// For each healthy host, the wall time to the first later reboot of a host sharing a
    /// cluster with it.
    fn latencies(&self, fleet: &Fleet) -> Samples {
        let mut lat: Vec<f64> = Vec::new();
        for &(t, h) in &self.healthy {
            let cl = &fleet.hosts[h as usize].clusters;
            if cl.is_empty() {
                continue;
            }
            let shares = |h2: u32| {
                fleet.hosts[h2 as usize]
                    .clusters
                    .iter()
                    .any(|c| cl.contains(c))
            };
            if let Some(&(t2, _)) = self.reboots.iter().find(|(t2, h2)| *t2 >= t && shares(*h2)) {
                lat.push((t2 - t).as_secs_f64() * 1000.0);
            }
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        Samples(lat)
    }
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
    db: Option<String>,
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
    let store = match &db {
        Some(url) => Store::connect(url).await,
        None => Store::open(&dir.join("bench.db")).await,
    }
    .map_err(err)?;
    let journal = store.db().to_string();
    let clock = Clock::Scaled {
        wall_epoch_ms: wall_ms(),
        sim_epoch: fleet.maintenance.start,
        scale,
    };
    let params = RunParams {
        driver: DriverKind::Sim,
        clock,
        sim: Some(SimParams::default()),
        world: Some(dir.join("world.log")),
        start: Some(fleet.maintenance.start),
        on_missing: None,
        replan: None,
    };
    let spec = NewRunSpec {
        // a shared PostgreSQL journal keeps every bench run
        id: format!("bench-{}", new_run_id()),
        fleet_path,
        fleet: fleet.clone(),
        files: &files,
        params,
        supersedes: None,
        lease_ttl_ms: rollcall_runtime::LEASE_TTL_MS,
    };
    let (run, lease) = start_run(&store, spec).await.map_err(err)?;
    let (driver, _) = host_driver(&run)?;
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
    let ending = drive(engine, &store, &lease, driver, clock, &cfg, &mut obs)
        .await
        .map_err(err)?;
    let wall = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let lat = obs.latencies(&fleet);
    let ending = rollcall_runtime::status_name(ending);
    let doc = serde_json::json!({
        "fleet": fleet.name, "hosts": p.steps.len(), "ending": ending, "journal": journal,
        "wall_s": wall, "journal_batches": obs.batches, "journal_records": obs.outputs,
        "records_per_s": obs.outputs as f64 / wall,
        "healthy_to_next_reboot_ms": { "samples": lat.len(), "p50": lat.q(0.5), "p90": lat.q(0.9), "p99": lat.q(0.99), "max": lat.q(1.0) },
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&doc).map_err(err)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    println!(
        "engine benchmark: {} ({} hosts) on the sim driver, journal {journal}, 1 s = {scale} s simulated",
        fleet.name,
        p.steps.len()
    );
    println!(
        "  run               {ending} in {wall:.2} s wall, {} journal transactions, {} records ({:.0} records/s)",
        obs.batches,
        obs.outputs,
        obs.outputs as f64 / wall
    );
    println!(
        "  healthy → next reboot in the same cluster (wall): p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
        lat.q(0.5),
        lat.q(0.9),
        lat.q(0.99),
        lat.q(1.0),
        lat.len()
    );
    Ok(std::process::ExitCode::SUCCESS)
}
