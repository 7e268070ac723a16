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
    LEASE_TTL_MS, Lease, NewRunSpec, Taken, new_run_id, owner, owner_is_dead, start_run,
};
pub use stored::{
    DriverKind, LoadError, Replan, RunParams, StoredRun, imports_value, stored_imports,
};

use rollcall_core::engine::{Control, Engine, Event, Output, RunState};
use rollcall_drivers::Driver;
use rollcall_store::{Record, Store, StoreError};
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
    /// How often the store is polled for controls and the lease renewed.
    pub poll: Duration,
    pub lease_ttl: Duration,
    /// Handle Ctrl-C (off in tests that send signals themselves).
    pub handle_ctrl_c: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_inflight: 64,
            poll: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(3),
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
        }
    }
}

impl std::error::Error for RuntimeError {}

fn store_err(e: StoreError) -> RuntimeError {
    RuntimeError::Store(e)
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

pub fn status_name(e: Ending) -> &'static str {
    match e {
        Ending::Over(s) => s.name(),
        Ending::Interrupted => "paused",
    }
}

pub async fn drive(
    mut engine: Engine,
    store: &Store,
    lease: &Lease,
    driver: Arc<dyn Driver>,
    clock: Clock,
    cfg: &RuntimeConfig,
    obs: &mut dyn Observer,
) -> Result<Ending, RuntimeError> {
    let (run_id, owner) = (lease.run.as_str(), lease.owner.as_str());
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let sem = Arc::new(Semaphore::new(cfg.max_inflight.max(1)));
    let mut inflight = 0usize;
    let mut interrupted = false;
    let mut last_poll = Instant::now();
    let ttl = cfg.lease_ttl.as_millis() as i64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    loop {
        let now = clock.now();
        // once interrupted, only collect what is in flight: no new commands
        if !interrupted {
            engine.step(now);
        }
        let outs = engine.drain_outputs();
        if !outs.is_empty() {
            let recs: Vec<Record> = outs.iter().map(to_record).collect();
            // journal first: nothing below happens unless this committed
            store.append(run_id, &recs).await.map_err(store_err)?;
            obs.on_outputs(&outs, &engine);
            for o in outs {
                if let Output::Command { command, .. } = o {
                    inflight += 1;
                    let (d, tx, sem) = (driver.clone(), tx.clone(), sem.clone());
                    tokio::spawn(async move {
                        let Ok(_permit) = sem.acquire_owned().await else {
                            return;
                        };
                        let ev = d.execute(command, clock.now()).await;
                        let _ = tx.send(ev);
                    });
                }
            }
        } else {
            obs.on_idle(&engine);
        }
        if inflight == 0 && (engine.state().is_over() || interrupted) {
            break;
        }
        let wake = engine
            .next_wakeup(now)
            .map(|t| clock.real_until(t))
            .unwrap_or(cfg.poll)
            .min(cfg.poll);
        tokio::select! {
            ev = rx.recv() => {
                if let Some(ev) = ev {
                    inflight -= 1;
                    engine.handle(clock.now(), ev);
                    while let Ok(ev) = rx.try_recv() {
                        inflight -= 1;
                        engine.handle(clock.now(), ev);
                    }
                }
            }
            _ = tokio::time::sleep(wake) => {}
            r = &mut ctrl_c, if cfg.handle_ctrl_c && !interrupted => {
                if r.is_ok() {
                    interrupted = true;
                    engine.interrupt(clock.now());
                }
            }
        }
        if last_poll.elapsed() >= cfg.poll {
            last_poll = Instant::now();
            if !store
                .renew_lease(run_id, owner, wall_ms(), ttl)
                .await
                .map_err(store_err)?
            {
                return Err(RuntimeError::LostLease);
            }
            if let Some(c) = store.take_control(run_id).await.map_err(store_err)? {
                let control = match c.as_str() {
                    "pause" => Some(Control::Pause),
                    "resume" => Some(Control::Resume),
                    "abort" => Some(Control::Abort),
                    _ => None,
                };
                if let Some(control) = control {
                    engine.handle(clock.now(), Event::Control { control });
                }
            }
        }
    }
    // anything the last events produced
    if !interrupted {
        engine.step(clock.now());
    }
    let outs = engine.drain_outputs();
    if !outs.is_empty() {
        let recs: Vec<Record> = outs.iter().map(to_record).collect();
        store.append(run_id, &recs).await.map_err(store_err)?;
        obs.on_outputs(&outs, &engine);
    }
    obs.on_end(&engine);
    let ending = if engine.state().is_over() {
        Ending::Over(engine.state())
    } else {
        Ending::Interrupted
    };
    let summary = serde_json::to_value(engine.progress()).unwrap_or_default();
    store
        .set_status(run_id, status_name(ending), &summary)
        .await
        .map_err(store_err)?;
    store
        .release_lease(run_id, owner)
        .await
        .map_err(store_err)?;
    Ok(ending)
}
