//! A simulated world of hosts and clusters, and a discrete-event loop that drives the
//! engine against it on a virtual clock. Sans-IO: the `sim` host driver persists the
//! world's reboot log so simulated hosts outlive a crashed orchestrator, and the
//! simulator reuses the loop.
//!
//! Every random choice is a hash of (seed, host, reboot number), not a stateful RNG,
//! so the world is the same whatever order it is asked in and after any restart.

use crate::engine::{Command, Engine, Event, Outcome, Output};
use crate::model::*;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimParams {
    pub seed: u64,
    /// Probability that a reboot does not come back on time.
    pub missing_rate: f64,
    /// How long such a host stays away (seconds); `None`: it never comes back.
    pub missing_for: Option<i64>,
    /// Time a host is down for its reboot (seconds), at most `down_share` of its estimate.
    pub reboot_time: i64,
    /// Share of a host's estimated duration spent down, at most.
    pub down_share: f64,
    /// Share of the estimate after which its clusters are healthy again.
    pub recovered_share: f64,
    /// Probability that a gate check answers unhealthy although all is well.
    pub flap_rate: f64,
    /// Probability that preflight fails (e.g. a service not enabled at boot).
    pub preflight_fail_rate: f64,
    /// Command latency in seconds.
    pub latency: i64,
    /// Data per search node (GB): with it, a returning Elasticsearch/OpenSearch node's
    /// recovery takes data / throughput.
    #[serde(default)]
    pub data_gb: Option<f64>,
    /// Recovery throughput per node (MB/s; Elasticsearch's default is 40).
    #[serde(default = "default_recovery")]
    pub recovery_mb_s: f64,
}

fn default_recovery() -> f64 {
    40.0
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            seed: 1,
            missing_rate: 0.0,
            missing_for: Some(3 * 3600),
            reboot_time: 180,
            down_share: 0.35,
            recovered_share: 0.85,
            flap_rate: 0.0,
            preflight_fail_rate: 0.0,
            latency: 1,
            data_gb: None,
            recovery_mb_s: 40.0,
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(seed: u64, a: u64, b: u64, salt: u64) -> f64 {
    let z = mix(mix(mix(seed ^ salt) ^ a) ^ b);
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One host's world state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimHost {
    /// Times of the reboots it received.
    pub reboots: Vec<i64>,
    /// Time a replacement joined, if replaced.
    pub replaced_at: Option<i64>,
    /// Derived from the above after each change (a pure function of the seed): when it is
    /// reachable again (`None`: never), when its clusters have recovered, its boot id then.
    #[serde(skip)]
    cache: Option<(Option<i64>, Option<i64>, Arc<str>)>,
}

#[derive(Debug, Clone)]
pub struct World {
    pub fleet: Arc<Fleet>,
    pub params: SimParams,
    pub hosts: Vec<SimHost>,
}

impl World {
    pub fn new(fleet: Arc<Fleet>, params: SimParams) -> World {
        let n = fleet.hosts.len();
        let mut w = World {
            fleet,
            params,
            hosts: vec![SimHost::default(); n],
        };
        for h in 0..n {
            w.refresh(h as HostIx);
        }
        w
    }

    fn jitter(&self, h: HostIx, k: u64, salt: u64) -> f64 {
        0.9 + 0.2 * unit(self.params.seed, h as u64, k, salt)
    }

    /// Whether reboot number `k` (1-based) of host `h` fails to come back on time.
    pub fn goes_missing(&self, h: HostIx, k: usize) -> bool {
        unit(self.params.seed, h as u64, k as u64, 0xA11CE) < self.params.missing_rate
    }

    fn refresh(&mut self, h: HostIx) {
        self.hosts[h as usize].cache = None;
        let up = self.compute_up_at(h);
        let rec = self.compute_recovered_at(h, up);
        let sh = &self.hosts[h as usize];
        let id = &self.fleet.hosts[h as usize].id;
        let boot: Arc<str> = match sh.replaced_at {
            Some(_) => format!("{id}-replacement").into(),
            None => format!("{id}-boot{}", sh.reboots.len()).into(),
        };
        self.hosts[h as usize].cache = Some((up, rec, boot));
    }

    fn cached(&self, h: HostIx) -> (Option<i64>, Option<i64>, Arc<str>) {
        match &self.hosts[h as usize].cache {
            Some(c) => c.clone(),
            None => {
                let up = self.compute_up_at(h);
                let id = &self.fleet.hosts[h as usize].id;
                (
                    up,
                    self.compute_recovered_at(h, up),
                    format!("{id}-boot{}", self.hosts[h as usize].reboots.len()).into(),
                )
            }
        }
    }

    /// When the host is reachable again after its last reboot (None: never).
    pub fn up_at(&self, h: HostIx) -> Option<i64> {
        self.cached(h).0
    }

    /// When its clusters have recovered from its last reboot.
    pub fn recovered_at(&self, h: HostIx) -> Option<i64> {
        self.cached(h).1
    }

    fn compute_up_at(&self, h: HostIx) -> Option<i64> {
        let sh = &self.hosts[h as usize];
        if let Some(r) = sh.replaced_at {
            return Some(r);
        }
        let Some(&t) = sh.reboots.last() else {
            return Some(i64::MIN);
        };
        let k = sh.reboots.len();
        let d = self.fleet.hosts[h as usize].duration as f64;
        let down = ((d * self.params.down_share).min(self.params.reboot_time as f64)
            * self.jitter(h, k as u64, 1))
        .round() as i64;
        if self.goes_missing(h, k) {
            return self.params.missing_for.map(|m| t + down.max(1) + m);
        }
        Some(t + down.max(1))
    }

    fn compute_recovered_at(&self, h: HostIx, up: Option<i64>) -> Option<i64> {
        let sh = &self.hosts[h as usize];
        let up = up?;
        let Some(&t) = sh.reboots.last() else {
            return Some(i64::MIN);
        };
        let d = self.fleet.hosts[h as usize].duration as f64;
        // shard recovery applies to search clusters (Elasticsearch, OpenSearch)
        let clustered = self.fleet.hosts[h as usize].clusters.iter().any(|&c| {
            matches!(
                self.fleet.clusters[c as usize].kind,
                Kind::Elasticsearch | Kind::Opensearch
            )
        });
        let base = match self.params.data_gb {
            // shard recovery: the node's data at the recovery throughput, after it is up
            Some(gb) if clustered => {
                (up - t) as f64 + gb * 1024.0 / self.params.recovery_mb_s.max(0.001)
            }
            _ => d * self.params.recovered_share,
        };
        let rec = (base * self.jitter(h, sh.reboots.len() as u64, 2)).round() as i64;
        Some(up.max(t + rec))
    }

    pub fn boot_id(&self, h: HostIx, now: i64) -> Option<String> {
        self.reachable(h, now).then(|| self.cached(h).2.to_string())
    }

    pub fn reachable(&self, h: HostIx, now: i64) -> bool {
        self.up_at(h).is_some_and(|up| now >= up)
    }

    pub fn reboot(&mut self, h: HostIx, now: i64) {
        self.hosts[h as usize].reboots.push(now);
        self.refresh(h);
    }

    pub fn replace(&mut self, h: HostIx, now: i64) {
        self.hosts[h as usize].replaced_at = Some(now);
        self.refresh(h);
    }

    /// Cluster health: every member reachable and recovered (no flapping).
    pub fn cluster_healthy(&self, c: ClusterIx, now: i64, check: u64) -> Result<(), String> {
        let cl = &self.fleet.clusters[c as usize];
        if self.params.flap_rate > 0.0
            && unit(self.params.seed, c as u64, check, 0xF1A9) < self.params.flap_rate
        {
            return Err(format!("{}: status flapped to red", cl.id));
        }
        let mut down = Vec::new();
        let mut recovering = 0;
        for &m in &cl.members {
            let (up, rec, _) = self.cached(m);
            match (up.is_some_and(|u| now >= u), rec) {
                (false, _) => down.push(self.fleet.hosts[m as usize].id.as_str()),
                (true, Some(r)) if now < r => recovering += 1,
                _ => {}
            }
        }
        if !down.is_empty() {
            return Err(format!(
                "{}: yellow, {} unreachable ({})",
                cl.id,
                down.len(),
                down.join(", ")
            ));
        }
        if recovering > 0 {
            return Err(format!(
                "{}: yellow, recovering on {recovering} node(s)",
                cl.id
            ));
        }
        Ok(())
    }

    /// Carry out a command at `now` and give the event it produces.
    pub fn execute(&mut self, cmd: &Command, now: i64, check: u64) -> Event {
        match *cmd {
            Command::Announce { region } => Event::Announced {
                region,
                result: Ok(()),
            },
            Command::Preflight { host, .. } => Event::Preflight {
                host,
                result: self.preflight(host, now),
            },
            Command::Drain { host } => Event::Drained {
                host,
                result: Ok(()),
                holds: Vec::new(),
            },
            Command::Reboot { host, .. } => Event::RebootSent {
                host,
                result: self.send_reboot(host, now),
            },
            Command::Probe { host } => Event::Probed {
                host,
                boot_id: self.boot_id(host, now),
            },
            Command::Verify { host } => Event::Verified {
                host,
                result: self.up(host, now),
            },
            Command::Restore { host } | Command::Release { host } => Event::Restored {
                host,
                result: Ok(()),
            },
            Command::Gate { host, cluster } => {
                let health = self.cluster_healthy(cluster, now, check);
                Event::Gate {
                    host,
                    cluster,
                    healthy: health.is_ok(),
                    detail: health.err().unwrap_or_else(|| "green".into()),
                }
            }
            Command::Replace { host } => {
                self.replace(host, now);
                Event::Replaced {
                    host,
                    result: Ok(()),
                }
            }
        }
    }

    /// The boot id, unless the host is down or (by `preflight_fail_rate`) a required
    /// service is not enabled.
    fn preflight(&self, host: HostIx, now: i64) -> Result<String, String> {
        let p = self.params.preflight_fail_rate;
        let k = self.hosts[host as usize].reboots.len() as u64;
        if p > 0.0 && unit(self.params.seed, host as u64, k, 0x9F) < p {
            return Err("a required service is not enabled at boot".into());
        }
        self.boot_id(host, now).ok_or_else(|| "unreachable".into())
    }

    /// A reboot reaches a host that is up.
    fn send_reboot(&mut self, host: HostIx, now: i64) -> Outcome {
        self.up(host, now)?;
        self.reboot(host, now);
        Ok(())
    }

    /// The host answers.
    fn up(&self, host: HostIx, now: i64) -> Outcome {
        match self.boot_id(host, now) {
            Some(_) => Ok(()),
            None => Err("unreachable".into()),
        }
    }
}

/// A discrete-event run of the engine against a world on a virtual clock.
pub struct VirtualRun {
    pub engine: Engine,
    pub world: World,
    pub now: i64,
    /// Every output the engine produced, in order (the journal).
    pub journal: Vec<Output>,
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    pending: Vec<Option<Event>>,
    seq: u64,
    checks: u64,
    /// Reboots the provider does on its own (time, host), sorted; applied to hosts
    /// rollcall has not touched by then.
    forced: Vec<(i64, HostIx)>,
    forced_next: usize,
    /// Hosts the provider rebooted itself.
    pub provider_reboots: Vec<HostIx>,
}

impl VirtualRun {
    pub fn new(engine: Engine, world: World, now: i64) -> VirtualRun {
        VirtualRun {
            engine,
            world,
            now,
            journal: Vec::new(),
            queue: BinaryHeap::new(),
            pending: Vec::new(),
            seq: 0,
            checks: 0,
            forced: Vec::new(),
            forced_next: 0,
            provider_reboots: Vec::new(),
        }
    }

    /// The provider reboots these hosts at these times unless rollcall got there first.
    pub fn with_provider_reboots(mut self, mut forced: Vec<(i64, HostIx)>) -> VirtualRun {
        forced.sort_unstable();
        self.forced = forced;
        self
    }

    /// After the run: the provider's reboots still to come happen to untouched hosts.
    pub fn apply_remaining_forced(&mut self) {
        if let Some(&(t, _)) = self.forced.last() {
            self.now = self.now.max(t);
        }
        self.apply_forced();
    }

    fn apply_forced(&mut self) {
        while let Some(&(t, h)) = self.forced.get(self.forced_next) {
            if t > self.now {
                break;
            }
            self.forced_next += 1;
            let untouched = matches!(
                self.engine.phase(h),
                crate::engine::Phase::Pending
                    | crate::engine::Phase::Announced
                    | crate::engine::Phase::Skipped
            );
            if untouched && self.world.hosts[h as usize].reboots.is_empty() {
                self.world.reboot(h, t);
                self.provider_reboots.push(h);
            }
        }
    }

    /// Journal the engine's outputs, then carry out their commands (results arrive
    /// after the world's latency).
    fn flush(&mut self) {
        let outs = self.engine.drain_outputs();
        let lat = self.world.params.latency.max(0);
        for o in &outs {
            self.journal.push(o.clone());
        }
        for o in outs {
            if let Output::Command { command, .. } = o {
                self.checks += 1;
                let ev = self.world.execute(&command, self.now, self.checks);
                self.seq += 1;
                self.pending.push(Some(ev));
                self.queue
                    .push(Reverse((self.now + lat, self.seq, self.pending.len() - 1)));
            }
        }
    }

    /// Advance one instant. Returns false when nothing more will happen.
    pub fn advance(&mut self) -> bool {
        self.apply_forced();
        self.engine.step(self.now);
        self.flush();
        let next_forced = self.forced.get(self.forced_next).map(|x| x.0);
        let next_ev = match (self.queue.peek().map(|r| r.0.0), next_forced) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let next_wake = self.engine.next_wakeup(self.now).filter(|&t| t > self.now);
        let next = match (next_ev, next_wake) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => return false,
        };
        self.now = next.max(self.now);
        while let Some(&Reverse((t, _, i))) = self.queue.peek() {
            if t > self.now {
                break;
            }
            self.queue.pop();
            if let Some(ev) = self.pending[i].take() {
                self.engine.handle(self.now, ev);
            }
        }
        true
    }

    /// Run until the engine is over, nothing more can happen, or `until`.
    pub fn run_until(&mut self, until: i64) {
        while !self.engine.state().is_over() && self.now <= until {
            if !self.advance() {
                break;
            }
        }
        self.engine.step(self.now);
        self.flush();
    }

    /// Crash after the engine decided and the journal was written, before any of the
    /// commands were carried out.
    pub fn crash_before_execute(mut self) -> (World, Vec<Output>, i64) {
        self.engine.step(self.now);
        let outs = self.engine.drain_outputs();
        self.journal.extend(outs);
        (self.world, self.journal, self.now)
    }

    /// Drop everything in flight (results never arrive), as a crashed orchestrator does.
    pub fn crash(self) -> (World, Vec<Output>, i64) {
        (self.world, self.journal, self.now)
    }
}
