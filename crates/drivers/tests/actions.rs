//! Maintenance actions beyond a reboot (`action = "restart"`, `action = "command"`)
//! through the exec driver and the real engine: the host is a directory, its services
//! and its patch are files changed by a small shell script, and the engine's journal is
//! kept in memory so that a crash can be staged between an intent and its answer.

mod common;
#[path = "common/run.rs"]
mod run;

use common::preflight;
use rollcall_core::Fleet;
use rollcall_core::engine::{Command, Event, Output, Phase, RunState};
use rollcall_drivers::Driver;
use rollcall_drivers::config::RemoteConfig;
use rollcall_drivers::remote::RemoteDriver;
use rollcall_fleet::{LoadOptions, load_str};
use rollcall_testkit::loopback::tmpdir;
use run::{Crash, Run};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The host's "systemctl" and patch tooling: `host VERB ARG`, run in the host directory.
const HOST_SCRIPT: &str = r#"
case $1 in
  id) cat "id_$2" 2>/dev/null ;;
  active) test -s "id_$2" ;;
  restart) echo "$2" >>restarts; echo "$2-$(wc -l <restarts)" >"id_$2" ;;
  patch) echo patched >>patch_runs; echo 4.3-7 >bash_version ;;
  check) test "$(cat bash_version)" = 4.3-7 ;;
esac
"#;

/// A one-host fleet in a fresh directory with the given `[maintenance]` action lines.
fn lab(name: &str, action: &str) -> (PathBuf, Arc<Fleet>, RemoteDriver) {
    let d = tmpdir(name);
    std::fs::write(d.join("host"), HOST_SCRIPT).unwrap();
    std::fs::write(d.join("boot_id"), "aaaaaaaa-0001\n").unwrap();
    std::fs::write(d.join("bash_version"), "4.3-6\n").unwrap();
    for s in ["search", "agent"] {
        std::fs::write(d.join(format!("id_{s}")), format!("{s}-0\n")).unwrap();
    }
    let text = format!(
        r#"
[maintenance]
notice_lead = "0s"
{action}

[[host]]
id = "h1"
address = "127.0.0.1"
region = "lab"
zone = "a"

[exec]
command = "cd {d} && sh -c {{command}}"

[remote]
boot_id_command = "cat boot_id"
reboot_command = "echo rebooted >>reboots; echo bbbbbbbb-0002 >boot_id"
restart_command = "sh host restart {{service}}"
service_id_command = "sh host id {{service}}"
active_command = "sh host active {{service}}"
"#,
        d = d.display()
    );
    let fleet = Arc::new(load_str("lab.toml", &text, &d, &LoadOptions { now: 0 }).unwrap());
    let cfg = RemoteConfig::load("lab.toml", &text, &d, &fleet).unwrap();
    let drv = rollcall_drivers::remote_driver("exec", fleet.clone(), cfg).unwrap();
    (d, fleet, drv)
}

const COMMAND: &str = r#"action = "command"
command = "sh host patch"
check = "sh host check""#;

fn lines(d: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(d.join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_restart_restarts_each_service_once_and_never_reboots() {
    let (d, fleet, drv) = lab(
        "restart",
        "action = \"restart\"\nservices = [\"search\", \"agent\"]",
    );
    let mut run = Run::new(&fleet);
    run.go(&drv, None).await;
    assert_eq!(run.engine.state(), RunState::Completed);
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert_eq!(lines(&d, "restarts"), ["search", "agent"]);
    assert!(lines(&d, "reboots").is_empty(), "a restart never reboots");
    // the journal records the services' run ids as the marker before the restart
    let marker = run.journal.iter().find_map(|o| match o {
        Output::Command {
            command: Command::Reboot { boot_id, .. },
            ..
        } => Some(boot_id.clone()),
        _ => None,
    });
    assert_eq!(marker.as_deref(), Some("search=search-0,agent=agent-0"));
}

#[tokio::test]
async fn a_restart_resent_after_a_partial_restart_restarts_only_the_rest() {
    let (d, _fleet, drv) = lab(
        "restart-partial",
        "action = \"restart\"\nservices = [\"search\", \"agent\"]",
    );
    // search was restarted (new id) before the orchestrator died; agent was not
    std::fs::write(d.join("id_search"), "search-9\n").unwrap();
    let cmd = Command::Reboot {
        host: 0,
        boot_id: "search=search-0,agent=agent-0".into(),
        attempt: 2,
    };
    let ev = drv.execute(cmd, 0).await;
    assert_eq!(
        ev,
        Event::RebootSent {
            host: 0,
            result: Ok(())
        }
    );
    assert_eq!(lines(&d, "restarts"), ["agent"]);
}

#[tokio::test]
async fn a_stopped_service_fails_the_restart_preflight_and_is_not_back_on_probe() {
    let (d, _fleet, drv) = lab(
        "restart-stopped",
        "action = \"restart\"\nservices = [\"search\"]",
    );
    std::fs::write(d.join("id_search"), "").unwrap();
    let Err(why) = preflight(&drv, 0).await else {
        panic!("a stopped service must fail preflight")
    };
    assert!(why.contains("service search is not running"), "{why}");
    let ev = drv.execute(Command::Probe { host: 0 }, 0).await;
    assert_eq!(
        ev,
        Event::Probed {
            host: 0,
            boot_id: None
        }
    );
}

#[tokio::test]
async fn a_command_patches_once_and_verifies_the_check() {
    let (d, fleet, drv) = lab("command", COMMAND);
    let mut run = Run::new(&fleet);
    run.go(&drv, None).await;
    assert_eq!(run.engine.state(), RunState::Completed);
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert_eq!(lines(&d, "patch_runs"), ["patched"]);
    assert!(lines(&d, "reboots").is_empty(), "then_reboot is off");
}

#[tokio::test]
async fn a_host_already_patched_at_preflight_is_counted_done_without_the_command() {
    let (d, fleet, drv) = lab("command-done", COMMAND);
    std::fs::write(d.join("bash_version"), "4.3-7\n").unwrap();
    assert_eq!(preflight(&drv, 0).await, Ok("patched-before-run".into()));
    let mut run = Run::new(&fleet);
    run.go(&drv, None).await;
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert!(
        lines(&d, "patch_runs").is_empty(),
        "the command must not run"
    );
}

#[tokio::test]
async fn a_command_then_reboot_patches_then_reboots_once() {
    let (d, fleet, drv) = lab("command-reboot", &format!("{COMMAND}\nthen_reboot = true"));
    let mut run = Run::new(&fleet);
    run.go(&drv, None).await;
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert_eq!(lines(&d, "patch_runs"), ["patched"]);
    assert_eq!(lines(&d, "reboots"), ["rebooted"]);
}

#[tokio::test]
async fn a_failing_patch_is_reported_and_the_host_never_counts_done() {
    let (d, _fleet, drv) = lab(
        "command-fails",
        "action = \"command\"\ncommand = \"exit 9\"\ncheck = \"sh host check\"",
    );
    let ev = drv
        .execute(
            Command::Reboot {
                host: 0,
                boot_id: "unpatched".into(),
                attempt: 1,
            },
            0,
        )
        .await;
    let Event::RebootSent {
        result: Err(why), ..
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert!(why.contains("`exit 9`: exit 9"), "{why}");
    let ev = drv.execute(Command::Probe { host: 0 }, 0).await;
    assert_eq!(
        ev,
        Event::Probed {
            host: 0,
            boot_id: Some("unpatched".into())
        }
    );
    let Event::Verified {
        result: Err(why), ..
    } = drv.execute(Command::Verify { host: 0 }, 0).await
    else {
        panic!("verify must fail while the patch is missing")
    };
    assert!(why.contains("the patch is not applied"), "{why}");
    let _ = d;
}

/// Killed after the command was journalled and carried out, before its answer was
/// journalled: the restored engine probes, sees the patch applied, and goes on without
/// running the command again.
#[tokio::test]
async fn a_crash_after_the_journalled_command_ran_does_not_run_it_again() {
    let (d, fleet, drv) = lab("crash-ran", COMMAND);
    let mut run = Run::new(&fleet);
    run.go(&drv, Some(Crash::AfterTheSendRan)).await;
    assert_eq!(
        lines(&d, "patch_runs"),
        ["patched"],
        "the command ran before the crash"
    );
    assert_eq!(
        run.engine.phase(0),
        Phase::Rebooting,
        "its answer was never handled"
    );
    run.restore(&fleet);
    assert_eq!(
        run.engine.phase(0),
        Phase::Returning,
        "restored as 'may have run'"
    );
    run.go(&drv, None).await;
    assert_eq!(run.engine.state(), RunState::Completed);
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert_eq!(lines(&d, "patch_runs"), ["patched"], "never re-run");
    assert!(
        !run.phases().contains(&(Phase::Returning, Phase::Rebooting)),
        "nothing re-sent: {:?}",
        run.phases()
    );
}

/// Killed after the command was journalled but before it ran: the restored engine probes,
/// finds the patch still missing, and sends it once.
#[tokio::test]
async fn a_crash_before_the_journalled_command_ran_runs_it_exactly_once() {
    let (d, fleet, drv) = lab("crash-not-ran", COMMAND);
    let mut run = Run::new(&fleet);
    run.go(&drv, Some(Crash::BeforeTheSendRan)).await;
    assert!(lines(&d, "patch_runs").is_empty());
    run.restore(&fleet);
    run.go(&drv, None).await;
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert_eq!(lines(&d, "patch_runs"), ["patched"]);
    assert!(
        run.phases().contains(&(Phase::Returning, Phase::Rebooting)),
        "re-sent after the probe"
    );
}

/// With then_reboot, killed between the patch and the reboot's answer: the patch is not
/// run again and the reboot happens once.
#[tokio::test]
async fn a_crash_in_a_patch_and_reboot_neither_patches_nor_reboots_twice() {
    let (d, fleet, drv) = lab("crash-reboot", &format!("{COMMAND}\nthen_reboot = true"));
    let mut run = Run::new(&fleet);
    run.go(&drv, Some(Crash::AfterTheSendRan)).await;
    run.restore(&fleet);
    run.go(&drv, None).await;
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert_eq!(lines(&d, "patch_runs"), ["patched"]);
    assert_eq!(lines(&d, "reboots"), ["rebooted"]);
}
