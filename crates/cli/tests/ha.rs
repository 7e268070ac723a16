//! #15 end to end: a leader and a standby `rollcall` in their own network namespaces of
//! the testbed (`c1`, `c2`), the journal in a real PostgreSQL on `db1`, the real binary
//! rolling the Redis Cluster and etcd hosts over SSH, a webhook subscriber on the bridge.
//!
//! - (a) the leader is SIGKILLed mid-roll, several times: the standby takes over within
//!   TTL + 5 s (measured from the kill to the new `taken_at`), no host is rebooted twice,
//!   no notice is delivered twice, `status --check` is clean, the epoch grew;
//! - (b) the leader is partitioned (`testbed set c1 linkdown`): the standby takes over; once
//!   the link is back the old leader's late write is refused and it never acts again;
//! - (c) PostgreSQL is stopped for 5 s mid-run: the leader pauses, reconnects, goes on;
//!   nothing is lost.
//!
//! One testbed for the whole file (with `--with-orchestrators`), one database per test.
//! Needs root; figures go to `target/testbed-figures/ha_*.json` (docs/testbed.md).

use rollcall_testkit::testbed::*;
use rollcall_testkit::webhook::Sink;
use rollcall_testkit::{Bin, Kill};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const RC: Bin = rollcall_testkit::bin!();

/// The lease TTL of every orchestrator here (short, to keep the tests fast).
const TTL: &str = "4s";
const TTL_MS: i64 = 4_000;
/// A takeover must happen within TTL + this after the leader stops.
const TAKEOVER_SLACK_MS: i64 = 5_000;
/// (a): at most this many kills in one roll (each needs a host healthy and one rebooting).
const MAX_KILLS: usize = 4;
/// The hosts rolled: the Redis Cluster and the etcd cluster.
const HOSTS: [&str; 9] = ["r1", "r2", "r3", "r4", "r5", "r6", "e1", "e2", "e3"];
/// The webhook secret (Standard Webhooks) the orchestrators sign with.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A whole roll must end within this.
const ROLL_TIMEOUT: Duration = Duration::from_secs(240);

static SERIAL: Mutex<()> = Mutex::new(());

/// The shared testbed with c1, c2 and db1, one test at a time; `None` (skip) without root.
fn bed() -> Option<(MutexGuard<'static, ()>, &'static Testbed)> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if skip_unless_root() {
        return None;
    }
    let up = Up {
        reboot_delay: 3,
        opensearch: false,
        orchestrators: true,
    };
    Some((g, Testbed::shared("ha", &up)))
}

/// The last `n` lines of `text`, in order.
fn tail(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ------------------------------------------------------------------ the scenario

/// One test's run: its database, fleet file, webhook sink and orchestrators.
struct Scenario {
    tb: &'static Testbed,
    run: String,
    url: String,
    fleet: PathBuf,
    sink: Sink,
    /// Unix ms when the scenario began (reboot requests before it belong to other tests).
    t0: i64,
    boots: HashMap<String, String>,
}

/// An orchestrator process in a machine of the testbed, its output in files.
struct Orch {
    machine: String,
    child: Kill,
    /// `--json`: the journal records it committed, one per line, printed once committed.
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Orch {
    /// How many journal records it has committed and printed so far.
    fn records(&self) -> usize {
        journal(&std::fs::read(&self.stdout).unwrap_or_default()).len()
    }
    fn err_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    /// Its exit code once it has exited within `t`; `None` if it still runs.
    fn exit_within(&mut self, t: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s.code().unwrap_or(-1));
            }
            if start.elapsed() > t {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Scenario {
    fn new(tb: &'static Testbed, run: &str) -> Scenario {
        let url = tb.fresh_db(&run.replace('-', "_"));
        let sink = Sink::recording_on(&format!("{}.0.1", tb.env("TESTBED_SUBNET")));
        let extra = format!(
            "[[subscriber]]\nid = \"status-feed\"\ncomponents = [\"lab\"]\nwebhook = \"{}\"\nsecret_env = \"HA_WEBHOOK_SECRET\"\n",
            sink.url("/hook")
        );
        let fleet = roll_fleet(tb, run, &extra, "pause");
        let text = std::fs::read_to_string(&fleet).unwrap().replace(
            "[maintenance]\n",
            &format!("[maintenance]\nhosts = {{ ids = {HOSTS:?} }}\n"),
        );
        std::fs::write(&fleet, text).unwrap();
        Scenario {
            tb,
            run: run.to_string(),
            url,
            fleet,
            sink,
            t0: wall_ms(),
            boots: tb.boot_ids(),
        }
    }

    /// `rollcall ARGS --db URL --lease-ttl TTL` in `machine`, output to `DIR/RUN-TAG.*`.
    fn spawn(&self, machine: &str, tag: &str, args: &[&str]) -> Orch {
        let base = self.tb.dir.join(format!("{}-{tag}", self.run));
        let (stdout, stderr) = (base.with_extension("out"), base.with_extension("err"));
        let mut c = self.tb.exec(machine, RC.0);
        c.args(args)
            .args(["--db", &self.url, "--lease-ttl", TTL])
            .env("HA_WEBHOOK_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        Orch {
            machine: machine.to_string(),
            child: Kill::spawn(&mut c, &format!("rollcall {args:?} in {machine}")),
            stdout,
            stderr,
        }
    }

    /// The leader: `rollcall run FLEET --driver ssh --run-id RUN` in `machine`.
    fn leader(&self, machine: &str) -> Orch {
        let fleet = self.fleet.to_str().unwrap();
        let args = [
            "run", fleet, "--driver", "ssh", "--json", "--run-id", &self.run,
        ];
        self.spawn(machine, &format!("{machine}-run"), &args)
    }

    /// A standby: `rollcall follow RUN` in `machine` (`n` tells several apart).
    fn standby(&self, machine: &str, n: usize) -> Orch {
        let args = ["follow", &self.run, "--json"];
        self.spawn(machine, &format!("{machine}-follow{n}"), &args)
    }

    /// The leader in c1 and a standby in c2: `follow RUN` once the run holds its lease,
    /// or (`standby_first`) `follow` without a run, started before the leader, which waits
    /// for the run to appear.
    fn pair(&self, standby_first: bool) -> (Orch, Orch) {
        let early = standby_first.then(|| {
            let args = ["follow", "--json"];
            let s = self.spawn("c2", "c2-follow0", &args);
            std::thread::sleep(Duration::from_secs(1));
            s
        });
        let leader = self.leader("c1");
        self.wait_status("the leader's lease", Duration::from_secs(60), |v| {
            epoch(v) >= 1
        });
        (leader, early.unwrap_or_else(|| self.standby("c2", 0)))
    }

    /// `rollcall status RUN --json` from the root namespace; `None` while the run is not
    /// there yet or the database does not answer.
    fn status(&self) -> Option<Value> {
        let out = RC.run(&["status", &self.run, "--db", &self.url, "--json"]);
        match out.status.success() {
            true => serde_json::from_slice(&out.stdout).ok(),
            false => None,
        }
    }

    /// Wait (up to `t`) until the status satisfies `f`; that status.
    fn wait_status(&self, what: &str, t: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(v) = self.status().filter(|v| f(v)) {
                return v;
            }
            assert!(
                start.elapsed() < t,
                "{}: timed out after {t:?} waiting for {what}; last status: {:#?}",
                self.run,
                self.status()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The roll's end: `status --check` clean, the run completed with every host done,
    /// each host rebooted exactly once since the scenario began (one reboot request, a
    /// new boot id), no notice delivered twice. The final status.
    fn check_end(&self) -> Value {
        let out = RC.run(&["status", &self.run, "--db", &self.url, "--check"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("check: journal keeps every rule"),
            "status --check: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = self.status().expect("status after the run");
        assert_eq!(v["state"]["state"], "completed", "{v:#}");
        assert_eq!(phase_count(&v, "healthy"), HOSTS.len() as i64, "{v:#}");
        self.check_rebooted_once();
        self.check_notices_once(&v);
        v
    }

    fn check_rebooted_once(&self) {
        let after = self.tb.boot_ids();
        for h in HOSTS {
            let reqs: Vec<RebootRequest> = self
                .tb
                .reboot_requests(h)
                .into_iter()
                .filter(|r| r.at_ms >= self.t0)
                .collect();
            assert_eq!(reqs.len(), 1, "{h}: reboot requests {reqs:?}");
            assert_ne!(after[h], self.boots[h], "{h} kept its boot id");
            assert_ne!(after[h], "-", "{h} is not up");
        }
    }

    /// Every webhook delivered (2xx) carries a distinct `webhook-id`, and the outbox
    /// counts as many sent and none pending.
    fn check_notices_once(&self, status: &Value) {
        let ok = self.sink.ok_hits();
        let ids: Vec<&str> = ok.iter().map(|h| h.id.as_str()).collect();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "a notice was delivered twice: {ids:?}"
        );
        assert!(ids.len() >= 3, "announcement, started, completed: {ids:?}");
        let count = |st: &str| -> i64 {
            status["notices"]["counts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c[1] == st)
                .map(|c| c[2].as_i64().unwrap())
                .sum()
        };
        assert_eq!(count("sent"), ids.len() as i64, "{:#}", status["notices"]);
        assert_eq!(count("pending"), 0, "{:#}", status["notices"]);
    }

    /// Reboot requests from `addr` at or after `since_ms` (any host of the roll).
    fn reboots_by(&self, addr: &str, since_ms: i64) -> Vec<(String, RebootRequest)> {
        HOSTS
            .iter()
            .flat_map(|h| {
                self.tb
                    .reboot_requests(h)
                    .into_iter()
                    .filter(|r| r.by == addr && r.at_ms >= since_ms)
                    .map(|r| (h.to_string(), r))
            })
            .collect()
    }
}

// ------------------------------------------------------------------ status fields

/// How many hosts are in `phase` (`progress.phases` is a list of `[phase, n]`).
fn phase_count(v: &Value, phase: &str) -> i64 {
    v["progress"]["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p[0] == phase)
        .filter_map(|p| p[1].as_i64())
        .sum()
}

/// A host is healthy and another is down for its reboot: the moment to strike.
fn mid_roll(v: &Value) -> bool {
    phase_count(v, "healthy") >= 1 && phase_count(v, "rebooting") + phase_count(v, "returning") >= 1
}

/// The lease's epoch (`leader.epoch`; 0 before the first lease).
fn epoch(v: &Value) -> i64 {
    v["leader"]["epoch"].as_i64().unwrap_or(0)
}

/// The last takeover was from the orchestrator on `machine` (owners are `host:pid:ms`,
/// and each machine has its own hostname).
fn assert_taken_from(v: &Value, machine: &str) {
    let from = v["leader"]["taken_from"].as_str().unwrap_or_default();
    assert!(
        from.starts_with(&format!("{machine}:")),
        "taken from {from:?}, not from {machine}: {v:#}"
    );
}

/// Unix ms of the last takeover (`leader.taken_at`).
fn taken_at(v: &Value) -> i64 {
    v["leader"]["taken_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("no leader.taken_at after a takeover: {v:#}"))
}

fn finished(v: &Value) -> bool {
    v["run"]["status"] != "running"
}

// ------------------------------------------------------------------ tests

/// (a) SIGKILL the leader mid-roll, up to MAX_KILLS times, each time once one more host
/// is healthy and while another is down for its reboot (a new standby starts in the killed
/// leader's machine): every takeover within TTL + 5 s, nothing done twice.
#[test]
fn a_standby_takes_over_a_killed_leader_within_ttl_and_nothing_happens_twice() {
    let Some((_g, tb)) = bed() else { return };
    let t = Instant::now();
    let (takeovers_ms, epoch) = roll_with_kills(tb, "ha-a", MAX_KILLS);
    figures(
        "ha_a_sigkill",
        json!({
            "kills": takeovers_ms.len(),
            "takeover_ms": takeovers_ms,
            "ttl_ms": TTL_MS,
            "roll_s": t.elapsed().as_secs_f64(),
            "epoch": epoch,
        }),
    );
}

/// The takeover time over at least `HA_KILLS` (default 20) kills: rolls of the testbed
/// one after another, the leader killed whenever one more host is healthy while another
/// is down for its reboot. A benchmark (several minutes): `cargo test --release -p
/// rollcall-cli --test ha -- --ignored takeover_time`.
#[test]
#[ignore]
fn takeover_time_distribution_over_many_kills() {
    let Some((_g, tb)) = bed() else { return };
    let want: usize = std::env::var("HA_KILLS").map_or(20, |v| v.parse().expect("HA_KILLS"));
    let t = Instant::now();
    let mut all: Vec<i64> = Vec::new();
    for roll in 1.. {
        if all.len() >= want {
            break;
        }
        let (ms, _) = roll_with_kills(tb, &format!("ha-dist-{roll}"), want - all.len());
        all.extend(ms);
    }
    let mut sorted = all.clone();
    sorted.sort();
    let q = |p: usize| sorted[(sorted.len() - 1) * p / 100];
    figures(
        "ha_takeover_distribution",
        json!({
            "kills": all.len(),
            "ttl_ms": TTL_MS,
            "takeover_ms": all,
            "min": q(0), "p50": q(50), "p90": q(90), "max": q(100),
            "wall_s": t.elapsed().as_secs_f64(),
        }),
    );
}

/// One roll (`run`) with a leader in c1 and a standby in c2; SIGKILLs the leader up to
/// `max_kills` times (see (a)) and checks each takeover and the end. The takeover times
/// (kill to `taken_at`, ms) and the final epoch.
fn roll_with_kills(tb: &'static Testbed, run: &str, max_kills: usize) -> (Vec<i64>, i64) {
    let sc = Scenario::new(tb, run);
    let (mut leader, mut standby) = sc.pair(false);
    let mut takeovers_ms: Vec<i64> = Vec::new();
    let mut healthy_at_kill = 0;
    while takeovers_ms.len() < max_kills {
        let v = sc.wait_status("mid-roll or the end", ROLL_TIMEOUT, |v| {
            finished(v) || (mid_roll(v) && phase_count(v, "healthy") > healthy_at_kill)
        });
        if finished(&v) {
            break;
        }
        healthy_at_kill = phase_count(&v, "healthy");
        takeovers_ms.push(kill_and_take_over(&sc, &mut leader, epoch(&v)));
        // the standby leads now; a new standby where the leader died
        let machine = leader.machine.clone();
        let next = sc.standby(&machine, takeovers_ms.len());
        leader = std::mem::replace(&mut standby, next);
    }
    assert!(
        !takeovers_ms.is_empty(),
        "{run}: the roll ended before any kill"
    );
    assert_eq!(
        leader.exit_within(ROLL_TIMEOUT),
        Some(0),
        "the last leader: {}",
        leader.err_text()
    );
    assert_eq!(
        standby.exit_within(Duration::from_secs(30)),
        Some(0),
        "the standby exits once the run ends: {}",
        standby.err_text()
    );
    let v = sc.check_end();
    assert!(
        epoch(&v) > takeovers_ms.len() as i64,
        "the epoch grew with every takeover: {v:#}"
    );
    (takeovers_ms, epoch(&v))
}

/// SIGKILL `leader` (its lease at epoch `before`); the standby's takeover must come within
/// TTL + 5 s, one epoch up. Kill to `taken_at`, in ms.
fn kill_and_take_over(sc: &Scenario, leader: &mut Orch, before: i64) -> i64 {
    let killed = wall_ms();
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let v = sc.wait_status("the standby's takeover", Duration::from_secs(30), |v| {
        epoch(v) > before
    });
    let ms = taken_at(&v) - killed;
    eprintln!("{}: taken over {ms} ms after the kill", sc.run);
    assert_taken_from(&v, &leader.machine);
    assert!(
        ms <= TTL_MS + TAKEOVER_SLACK_MS,
        "takeover {ms} ms after the kill (TTL {TTL_MS} ms): {v:#}"
    );
    assert_eq!(epoch(&v), before + 1, "one takeover, one epoch: {v:#}");
    ms
}

/// (b) Partition the leader (`testbed set c1 linkdown`): it stops acting, the standby takes
/// over; after `linkup` the old leader's late write is refused, it exits (or follows) and
/// never reboots anything.
#[test]
fn b_a_partitioned_leader_is_fenced_off_and_never_acts_again() {
    let Some((_g, tb)) = bed() else { return };
    partition(tb, "ha-b", Partition::Link);
}

/// (b2) Cut the leader from the database only (`testbed set c1 cut db1`): it still reaches
/// every host, so only self-fencing keeps it from acting: no reboot from it after the cut
/// plus its TTL, while the standby takes over and goes on. The standby here is `follow`
/// without a run, started before the leader.
#[test]
fn b2_a_leader_cut_from_the_database_only_stops_acting_within_its_ttl() {
    let Some((_g, tb)) = bed() else { return };
    partition(tb, "ha-b2", Partition::DatabaseOnly);
}

/// How the leader (`c1`) is cut off.
#[derive(Debug, Clone, Copy)]
enum Partition {
    /// `set c1 linkdown`: from everything
    Link,
    /// `set c1 cut db1`: from the database only
    DatabaseOnly,
}

impl Partition {
    /// `testbed set c1 ...`: the cut, or (`heal`) its end.
    fn apply(self, tb: &Testbed, heal: bool) {
        let mode: &[&str] = match (self, heal) {
            (Partition::Link, false) => &["linkdown"],
            (Partition::Link, true) => &["linkup"],
            (Partition::DatabaseOnly, false) => &["cut", "db1"],
            (Partition::DatabaseOnly, true) => &["uncut", "db1"],
        };
        tb.cmd(&[&["set", "c1"], mode].concat());
    }
}

/// Heals a partition on drop (also when the test fails).
struct Healed(&'static Testbed, Partition);

impl Drop for Healed {
    fn drop(&mut self) {
        self.1.apply(self.0, true);
    }
}

/// (b), (b2): cut the leader mid-roll, see the standby take over and act, heal, see the
/// old leader refused; no reboot from the old leader after the cut plus its TTL.
fn partition(tb: &'static Testbed, run: &str, how: Partition) {
    let sc = Scenario::new(tb, run);
    let (c1, c2) = (tb.machine_addr("c1"), tb.machine_addr("c2"));
    let (mut old, mut standby) = sc.pair(matches!(how, Partition::DatabaseOnly));
    let t = Instant::now();
    let v = sc.wait_status("mid-roll", ROLL_TIMEOUT, mid_roll);
    let before = epoch(&v);
    let cut = wall_ms();
    how.apply(tb, false);
    let healed = Healed(tb, how);
    let v = sc.wait_status("the standby's takeover", Duration::from_secs(30), |v| {
        epoch(v) > before
    });
    let takeover_ms = taken_at(&v) - cut;
    assert_taken_from(&v, "c1");
    // from the cut plus its TTL on, the old leader commits nothing (`--json` prints each
    // record once committed): none of its epoch's records comes later
    std::thread::sleep(Duration::from_millis(
        (cut + TTL_MS - wall_ms()).max(0) as u64
    ));
    let committed = old.records();
    assert!(
        takeover_ms <= TTL_MS + TAKEOVER_SLACK_MS,
        "takeover {takeover_ms} ms after the cut: {v:#}"
    );
    // the new leader reboots a host while the old one is still cut off
    rollcall_testkit::wait_for("a reboot from the new leader", ROLL_TIMEOUT, || {
        !sc.reboots_by(&c2, cut).is_empty()
    });
    let back = wall_ms();
    drop(healed);
    // the old leader learns it lost the lease: a write refused by the database, or the
    // lease seen taken over; then it exits (or stays a follower)
    rollcall_testkit::wait_for("the old leader's refusal", Duration::from_secs(60), || {
        let e = old.err_text();
        ["refused", "taken over", "took this run over"]
            .iter()
            .any(|w| e.contains(w))
    });
    let said = old.err_text();
    let exited = old.exit_within(Duration::from_secs(10));
    assert_eq!(
        standby.exit_within(ROLL_TIMEOUT),
        Some(0),
        "the new leader: {}",
        standby.err_text()
    );
    let end = sc.check_end();
    let late = sc.reboots_by(&c1, cut + TTL_MS);
    assert!(late.is_empty(), "the fenced-off leader rebooted: {late:?}");
    assert_eq!(
        old.records(),
        committed,
        "the old leader journalled after the cut plus its TTL"
    );
    // (in-flight work: a reboot journalled before the cut may still be sent after it)
    let after_cut: Vec<i64> = sc
        .reboots_by(&c1, cut)
        .iter()
        .map(|(_, r)| r.at_ms - cut)
        .collect();
    assert_eq!(
        epoch(&end),
        before + 1,
        "one takeover, nothing taken back: {end:#}"
    );
    figures(
        &run.replace('-', "_"),
        json!({
            "partition": format!("{how:?}"),
            "takeover_ms": takeover_ms,
            "ttl_ms": TTL_MS,
            "cut_s": (back - cut) as f64 / 1000.0,
            "old_leader_reboots_after_cut_ms": after_cut,
            "old_leader_exit": exited,
            "old_leader_said_refused": said.contains("refused"),
            "old_leader_said_taken_over": said.contains("taken over"),
            "old_leader_stderr_tail": tail(&said, 5),
            "roll_s": t.elapsed().as_secs_f64(),
            "epoch": epoch(&end),
        }),
    );
}

/// (c) PostgreSQL stopped for 5 s mid-run, then started: the leader pauses, reconnects,
/// keeps its lease and finishes; nothing lost, nothing twice.
#[test]
fn c_a_postgresql_restart_mid_run_pauses_the_leader_and_loses_nothing() {
    let Some((_g, tb)) = bed() else { return };
    let sc = Scenario::new(tb, "ha-c");
    let mut leader = sc.leader("c1");
    let t = Instant::now();
    let v = sc.wait_status("mid-roll", ROLL_TIMEOUT, mid_roll);
    let before = epoch(&v);
    let stop = tb.ssh("db1", "systemctl stop postgresql");
    assert!(stop.status.success(), "{stop:?}");
    let stopped = Instant::now();
    let dark = DbUp(tb);
    assert!(!pg_ready(tb), "db1 still answers after systemctl stop");
    std::thread::sleep(Duration::from_secs(5));
    assert!(!pg_ready(tb), "db1 answers before it was started again");
    drop(dark);
    let outage = stopped.elapsed();
    assert_eq!(
        leader.exit_within(ROLL_TIMEOUT),
        Some(0),
        "the leader: {}",
        leader.err_text()
    );
    let v = sc.check_end();
    assert_eq!(epoch(&v), before, "the leader kept its lease: {v:#}");
    figures(
        "ha_c_pg_restart",
        json!({
            "outage_s": outage.as_secs_f64(),
            "roll_s": t.elapsed().as_secs_f64(),
            "leader_stderr_tail": tail(&leader.err_text(), 5),
        }),
    );
}

/// `systemctl start postgresql` on db1 on drop (also when the test fails), then waits
/// until it accepts connections.
struct DbUp(&'static Testbed);

impl Drop for DbUp {
    fn drop(&mut self) {
        let out = self.0.ssh("db1", "systemctl start postgresql");
        assert!(out.status.success() || std::thread::panicking(), "{out:?}");
        let t = Instant::now();
        while !pg_ready(self.0) && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// db1's PostgreSQL accepts connections (`pg_isready`, 1 s).
fn pg_ready(tb: &Testbed) -> bool {
    std::process::Command::new("pg_isready")
        .args(["-q", "-t", "1", "-d", &tb.env("TESTBED_DB_URL")])
        .status()
        .is_ok_and(|s| s.success())
}
