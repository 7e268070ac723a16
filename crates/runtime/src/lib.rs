//! The runtime: a tokio loop that feeds time and events to the engine, journals every
//! output of a step in one transaction *before* running the step's commands, runs the
//! commands through a driver with bounded concurrency, and polls the store for
//! operator controls (pause, resume, abort) and its lease.
//!
//! Ctrl-C pauses cleanly: no new host starts, commands in flight finish and are
//! journalled, the lease is released, and `rollcall resume` continues later. A killed
//! process loses nothing that matters: whatever it did not journal it did not do,
//! except a reboot whose intent was journalled, which the engine verifies by boot id.

mod lease;
pub mod simfill;
mod stored;

pub use lease::{
    LEASE_TTL_MS, Lease, NewRunSpec, Taken, claims_of, new_run_id, operator, owner, owner_is_dead,
    start_run,
};
pub use stored::{
    DriverKind, LoadError, Replan, RunParams, StoredRun, imports_value, stored_imports,
};

use rollcall_core::engine::{Control, Engine, Event, Output, RunState};
use rollcall_drivers::Driver;
use rollcall_store::{Fence, Journal, Record, RunControl, RunStatus, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};

pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The run clock, in seconds. Real runs use the wall clock; simulated runs map it onto
/// simulated time with a scale (1 real second = `scale` simulated seconds). The mapping
/// is stored with the run, so a resumed run keeps the same clock.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Clock {
    Wall,
    Scaled {
        wall_epoch_ms: i64,
        sim_epoch: i64,
        scale: f64,
    },
}

impl Clock {
    pub fn now(&self) -> i64 {
        match *self {
            Clock::Wall => wall_ms().div_euclid(1000),
            Clock::Scaled {
                wall_epoch_ms,
                sim_epoch,
                scale,
            } => sim_epoch + (((wall_ms() - wall_epoch_ms) as f64) * scale / 1000.0).floor() as i64,
        }
    }
    /// Real time until run time `t`.
    pub fn real_until(&self, t: i64) -> Duration {
        let now = self.now();
        if t <= now {
            return Duration::ZERO;
        }
        let secs = match *self {
            Clock::Wall => (t - now) as f64,
            Clock::Scaled { scale, .. } => (t - now) as f64 / scale.max(1e-9),
        };
        Duration::from_secs_f64(secs.min(3600.0))
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Commands in flight at most.
    pub max_inflight: usize,
    /// How often the store is polled for controls.
    pub poll: Duration,
    /// How long the lease lasts without renewal; it is renewed every fifth of it, and no
    /// command starts unless it was renewed within half of it (self-fencing).
    pub lease_ttl: Duration,
    /// Handle Ctrl-C (off in tests that send signals themselves).
    pub handle_ctrl_c: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_inflight: 64,
            poll: Duration::from_millis(200),
            lease_ttl: Duration::from_millis(LEASE_TTL_MS as u64),
            handle_ctrl_c: true,
        }
    }
}

#[derive(Debug)]
pub enum RuntimeError {
    Store(StoreError),
    /// Another orchestrator took the run over (our lease expired): we stopped acting.
    LostLease,
    /// A new run's lease is held by another orchestrator.
    Taken {
        run: String,
        holder: String,
    },
    Journal(String),
    /// The database refused a write of ours: our lease's epoch is no longer current
    /// ([`StoreError::Fenced`]). We stopped without acting further.
    Fenced(StoreError),
}

impl std::fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeError::Store(e) => write!(f, "journal store: {e}"),
            RuntimeError::LostLease => write!(
                f,
                "another orchestrator took this run over; stopped without acting further"
            ),
            RuntimeError::Taken { run, holder } => {
                write!(f, "run {run} is owned by another orchestrator ({holder})")
            }
            RuntimeError::Journal(e) => write!(f, "journal: {e}"),
            RuntimeError::Fenced(e) => write!(
                f,
                "{e}; another orchestrator took this run over: stopped without acting further"
            ),
        }
    }
}

impl std::error::Error for RuntimeError {}

fn store_err(e: StoreError) -> RuntimeError {
    match e {
        e @ StoreError::Fenced { .. } => RuntimeError::Fenced(e),
        e => RuntimeError::Store(e),
    }
}

/// The journal form of an engine output.
pub fn to_record(o: &Output) -> Record {
    let kind = match o {
        Output::Transition(_) => "transition",
        Output::Command { .. } => "command",
        Output::Notice(_) => "notice",
        Output::State { .. } => "state",
        Output::Held { .. } => "held",
        Output::Released { .. } => "released",
    };
    Record {
        at: o.at(),
        kind: kind.to_string(),
        data: serde_json::to_value(o).unwrap_or(serde_json::Value::Null),
    }
}

/// Engine outputs back from journal records; a record that does not parse is an error
/// naming its sequence number.
pub fn from_records(run: &str, recs: &[(i64, Record)]) -> Result<Vec<Output>, RuntimeError> {
    recs.iter()
        .map(|(seq, r)| {
            serde_json::from_value::<Output>(r.data.clone()).map_err(|e| {
                RuntimeError::Journal(format!(
                    "run {run}, record {seq} ({}) is not a rollcall engine record: {e}",
                    r.kind
                ))
            })
        })
        .collect()
}

/// Sees every batch of outputs after it is journalled (progress bars, JSON stream).
pub trait Observer {
    fn on_outputs(&mut self, outputs: &[Output], engine: &Engine);
    fn on_idle(&mut self, _engine: &Engine) {}
    fn on_end(&mut self, _engine: &Engine) {}
}

pub struct NoObserver;
impl Observer for NoObserver {
    fn on_outputs(&mut self, _: &[Output], _: &Engine) {}
}

/// How a drive ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending {
    Over(RunState),
    /// Ctrl-C: paused cleanly, resumable.
    Interrupted,
}

/// The run's status in the store once `drive` returns.
pub fn status_of(e: Ending) -> RunStatus {
    match e {
        Ending::Over(RunState::Running) => RunStatus::Running,
        Ending::Over(RunState::Paused { .. }) | Ending::Interrupted => RunStatus::Paused,
        Ending::Over(RunState::Aborting) => RunStatus::Aborting,
        Ending::Over(RunState::Completed) => RunStatus::Completed,
        Ending::Over(RunState::Aborted) => RunStatus::Aborted,
    }
}

pub fn status_name(e: Ending) -> &'static str {
    status_of(e).name()
}

/// The engine's control for an operator's request.
fn control_of(c: RunControl) -> Control {
    match c {
        RunControl::Pause => Control::Pause,
        RunControl::Resume => Control::Resume,
        RunControl::Abort => Control::Abort,
    }
}

/// Drive `engine` to its end (or a clean interrupt) while `lease` is held: journal each
/// step's outputs in one transaction, then run their commands through `driver`.
///
/// Every store write is fenced by the lease: once another orchestrator has taken the run
/// over, the database refuses them and `drive` returns [`RuntimeError::Fenced`] (or
/// [`RuntimeError::LostLease`]) without acting further. A store that cannot be reached
/// (a database restarting, a network cut) is waited for: commands in flight finish, their
/// results are kept, and nothing new starts until the journal takes the outputs again
/// and the lease is known to be ours.
pub async fn drive<J: Journal>(
    engine: Engine,
    store: &J,
    lease: &Lease,
    driver: Arc<dyn Driver>,
    clock: Clock,
    cfg: &RuntimeConfig,
    obs: &mut dyn Observer,
) -> Result<Ending, RuntimeError> {
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    let fence = &lease.fence;
    let last_seq = retry("read the journal", || store.append(fence, &[])).await?;
    let mut d = Driving {
        engine,
        store,
        fence,
        driver,
        clock,
        cfg,
        tx,
        rx,
        sem: Arc::new(Semaphore::new(cfg.max_inflight.max(1))),
        inflight: 0,
        interrupted: false,
        last_seq,
        renewed: Instant::now(),
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut last_poll = Instant::now();
    loop {
        let now = d.clock.now();
        // once interrupted, only collect what is in flight: no new commands
        if !d.interrupted {
            d.engine.step(now);
        }
        if !d.journal_and_start(obs).await? {
            obs.on_idle(&d.engine);
        }
        if d.inflight == 0 && (d.engine.state().is_over() || d.interrupted) {
            break;
        }
        let wake = d
            .engine
            .next_wakeup(now)
            .map(|t| d.clock.real_until(t))
            .unwrap_or(cfg.poll)
            .min(cfg.poll);
        tokio::select! {
            ev = d.rx.recv() => d.results(ev),
            _ = tokio::time::sleep(wake) => {}
            r = &mut ctrl_c, if cfg.handle_ctrl_c && !d.interrupted => {
                if r.is_ok() {
                    d.interrupted = true;
                    d.engine.interrupt(d.clock.now());
                }
            }
        }
        if last_poll.elapsed() >= cfg.poll {
            last_poll = Instant::now();
            d.poll_store().await?;
        }
    }
    d.finish(obs).await
}

/// Calls the store until it answers: a transient failure (database down, network cut)
/// is said once and retried; a refused write ([`StoreError::Fenced`]) and any other
/// error end the drive.
async fn retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, RuntimeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut failing_since: Option<Instant> = None;
    let mut wait = Duration::from_millis(100);
    loop {
        // an outage starts with the first attempt that failed, not with its error
        let attempt = Instant::now();
        match call().await {
            Ok(v) => {
                if let Some(t) = failing_since {
                    eprintln!(
                        "rollcall: the journal store answers again after {:.1} s",
                        t.elapsed().as_secs_f64()
                    );
                }
                return Ok(v);
            }
            Err(e) if e.is_transient() => {
                if failing_since.is_none() {
                    eprintln!(
                        "rollcall: cannot {what}: {e}; starting nothing until the journal \
                         store answers (retrying)"
                    );
                    failing_since = Some(attempt);
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(store_err(e)),
        }
    }
}

/// A run being driven: the engine, where its outputs go and what is in flight.
struct Driving<'a, J> {
    engine: Engine,
    store: &'a J,
    /// The lease every store write is conditional on.
    fence: &'a Fence,
    driver: Arc<dyn Driver>,
    clock: Clock,
    cfg: &'a RuntimeConfig,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    /// Bounds the commands in flight.
    sem: Arc<Semaphore>,
    inflight: usize,
    /// Ctrl-C: no new commands; what is in flight is collected.
    interrupted: bool,
    /// The run's last journal seq, as this drive wrote it.
    last_seq: i64,
    /// When the lease was last renewed (or taken).
    renewed: Instant,
}

impl<J: Journal> Driving<'_, J> {
    /// Journal the engine's outputs (one transaction), then start their commands; whether
    /// there were any.
    async fn journal_and_start(&mut self, obs: &mut dyn Observer) -> Result<bool, RuntimeError> {
        let outs = self.journal(obs).await?;
        let any = !outs.is_empty();
        if outs.iter().any(|o| matches!(o, Output::Command { .. })) {
            self.self_fence().await?;
        }
        for o in outs {
            if let Output::Command { command, .. } = o {
                self.start(command);
            }
        }
        Ok(any)
    }

    /// The engine's outputs, journalled in one transaction (journal first: nothing is done
    /// for them unless this committed) and shown.
    async fn journal(&mut self, obs: &mut dyn Observer) -> Result<Vec<Output>, RuntimeError> {
        let outs = self.engine.drain_outputs();
        if outs.is_empty() {
            return Ok(outs);
        }
        let recs: Vec<Record> = outs.iter().map(to_record).collect();
        self.last_seq = self.append_once(&recs).await?;
        obs.on_outputs(&outs, &self.engine);
        Ok(outs)
    }

    /// Append `recs` exactly once, through store failures: an append whose answer was
    /// lost may have committed, so before trying again the journal is read back.
    async fn append_once(&self, recs: &[Record]) -> Result<i64, RuntimeError> {
        let (store, fence, after) = (self.store, self.fence, self.last_seq);
        let mut tried = false;
        retry("journal the next step", || {
            let again = std::mem::replace(&mut tried, true);
            async move {
                if again {
                    let there = store.journal_since(&fence.run, after).await?;
                    if there.len() == recs.len() && there.iter().zip(recs).all(|((_, a), b)| a == b)
                    {
                        return Ok(after + recs.len() as i64);
                    }
                }
                store.append(fence, recs).await
            }
        })
        .await
    }

    /// Self-fencing: commands start only while the lease is known to be ours, renewed
    /// within half its time to live (well before another orchestrator may take it).
    async fn self_fence(&mut self) -> Result<(), RuntimeError> {
        if self.renewed.elapsed() < self.cfg.lease_ttl / 2 {
            return Ok(());
        }
        self.renew().await
    }

    async fn renew(&mut self) -> Result<(), RuntimeError> {
        let (store, fence) = (self.store, self.fence);
        let ttl = self.cfg.lease_ttl.as_millis() as i64;
        let started = Instant::now();
        if !retry("renew the lease", || {
            store.renew_lease(fence, wall_ms(), ttl)
        })
        .await?
        {
            return Err(self.refused().await);
        }
        self.renewed = started;
        Ok(())
    }

    /// A renewal the database refused: who holds the run now, said as a refused write.
    async fn refused(&self) -> RuntimeError {
        let fence = self.fence;
        match self.store.run(&fence.run).await {
            Ok(Some(row)) => RuntimeError::Fenced(StoreError::Fenced {
                db: self.store.db(),
                run: fence.run.clone(),
                epoch: fence.epoch,
                current_epoch: row.epoch,
                current_owner: row.owner,
            }),
            _ => RuntimeError::LostLease,
        }
    }

    fn start(&mut self, command: rollcall_core::engine::Command) {
        self.inflight += 1;
        let (d, tx, sem, clock) = (
            self.driver.clone(),
            self.tx.clone(),
            self.sem.clone(),
            self.clock,
        );
        tokio::spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                return;
            };
            let ev = d.execute(command, clock.now()).await;
            let _ = tx.send(ev);
        });
    }

    /// A command's result, and any others already waiting.
    fn results(&mut self, first: Option<Event>) {
        let Some(ev) = first else { return };
        self.inflight -= 1;
        self.engine.handle(self.clock.now(), ev);
        while let Ok(ev) = self.rx.try_recv() {
            self.inflight -= 1;
            self.engine.handle(self.clock.now(), ev);
        }
    }

    /// Renew the lease when a fifth of its time has passed (or stop: another orchestrator
    /// has the run) and take an operator's request.
    async fn poll_store(&mut self) -> Result<(), RuntimeError> {
        if self.renewed.elapsed() >= self.cfg.lease_ttl / 5 {
            self.renew().await?;
        }
        let (store, fence) = (self.store, self.fence);
        let taken = retry("read operator requests", || async {
            match store.take_control(fence).await {
                // a request this build does not know was cleared: said, and the run goes on
                Err(
                    e @ StoreError::CorruptRun {
                        column: "control", ..
                    },
                ) => {
                    eprintln!("rollcall: {e}; ignored");
                    Ok(None)
                }
                other => other,
            }
        })
        .await?;
        if let Some(c) = taken {
            let control = control_of(c);
            self.engine
                .handle(self.clock.now(), Event::Control { control });
        }
        Ok(())
    }

    /// Journal what the last events produced, record how the run ended, give up the lease.
    async fn finish(mut self, obs: &mut dyn Observer) -> Result<Ending, RuntimeError> {
        if !self.interrupted {
            self.engine.step(self.clock.now());
        }
        self.journal(obs).await?;
        obs.on_end(&self.engine);
        let ending = match self.engine.state().is_over() {
            true => Ending::Over(self.engine.state()),
            false => Ending::Interrupted,
        };
        let summary = serde_json::to_value(self.engine.progress()).unwrap_or_default();
        let (store, fence) = (self.store, self.fence);
        let status = status_of(ending);
        retry("record how the run ended", || {
            store.set_status(fence, status, &summary)
        })
        .await?;
        retry("release the lease", || store.release_lease(fence)).await?;
        Ok(ending)
    }
}
