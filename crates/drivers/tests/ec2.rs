//! The ec2 driver against a real EC2 API (moto, `rollcall_testkit::moto`) and the exec
//! transport: each host is a directory entry whose boot id file moto's reboot hook
//! rewrites, so a `RebootInstances` really changes the boot id the driver reads.

mod common;
#[path = "common/run.rs"]
mod run;

use common::preflight;
use rollcall_core::Fleet;
use rollcall_core::engine::{Command, Event, Phase, RunState};
use rollcall_drivers::Driver;
use rollcall_drivers::config::RemoteConfig;
use rollcall_drivers::ec2::{Ec2Driver, ReplaceTiming};
use rollcall_fleet::{LoadOptions, load_str};
use rollcall_providers::aws::config::AwsSettings;
use rollcall_providers::aws::credentials::{CredentialSet, Credentials};
use rollcall_providers::aws::ec2::{Ec2Client, Launch, TOKEN_TAG, client_token};
use rollcall_providers::http::{Direct, Fetch};
use rollcall_testkit::loopback::tmpdir;
use rollcall_testkit::moto::Moto;
use rollcall_testkit::wait_for;
use run::{Crash, Run};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const EAST: &str = "us-east-1";

fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKIDROLLCALLTEST".into(),
        secret_access_key: "rollcall-test-secret".into(),
        session_token: None,
    }
}

fn fetch() -> Arc<dyn Fetch> {
    Arc::new(Direct::default())
}

fn api(m: &Moto) -> Ec2Client {
    Ec2Client::new(&m.endpoint(), EAST, creds(), fetch())
}

/// A lab of one host `h1` on a fresh moto instance; the driver for run `run`.
struct Lab {
    dir: PathBuf,
    fleet: Arc<Fleet>,
    text: String,
    instance: String,
}

impl Lab {
    async fn new(name: &str, m: &Moto) -> Lab {
        let dir = tmpdir(name);
        let l = Launch {
            image: Some("ami-12c6146b".into()),
            instance_type: Some("t3.micro".into()),
            key_name: Some("ops".into()),
            client_token: format!("{name}-h1"),
            ..Launch::default()
        };
        let instance = api(m).run_instance(&l).await.expect("RunInstances");
        std::fs::create_dir_all(dir.join("map")).unwrap();
        std::fs::write(dir.join("map").join(&instance), "h1").unwrap();
        std::fs::write(dir.join("boot_h1"), "aaaaaaaa-0001\n").unwrap();
        m.on_reboot(Some(&format!(
            "cd {} && h=$(cat map/$1) && cat /proc/sys/kernel/random/uuid >boot_$h.new && mv boot_$h.new boot_$h",
            dir.display()
        )));
        let text = format!(
            r#"
[maintenance]
notice_lead = "0s"

[[host]]
id = "h1"
address = "127.0.0.1"
region = "lab"

[exec]
command = "cd {d} && H={{host}} sh -c {{command}}"

[remote]
boot_id_command = "cat boot_$H"
reboot_command = "echo the ec2 driver reboots through the API >&2; exit 1"

[aws]
region = "{EAST}"
endpoint = "{endpoint}"

[aws.host.h1]
instance = "{instance}"
"#,
            d = dir.display(),
            endpoint = m.endpoint()
        );
        let fleet = Arc::new(load_str("lab.toml", &text, &dir, &LoadOptions { now: 0 }).unwrap());
        Lab {
            dir,
            fleet,
            text,
            instance,
        }
    }

    fn driver(&self, run: &str) -> Ec2Driver {
        let cfg = RemoteConfig::load("lab.toml", &self.text, &self.dir, &self.fleet).unwrap();
        let aws = AwsSettings::load("lab.toml", &self.text, &self.fleet)
            .unwrap()
            .expect("[aws]");
        let inner = rollcall_drivers::remote_driver("exec", self.fleet.clone(), cfg).unwrap();
        let timing = ReplaceTiming {
            timeout: Duration::from_secs(3),
            poll: Duration::from_millis(200),
        };
        let set = CredentialSet::single(creds());
        Ec2Driver::new(inner, self.fleet.clone(), &aws, &set, fetch(), run)
            .expect("credentials for every host")
            .with_timing(timing)
    }

    fn boot_id(&self) -> String {
        read(&self.dir, "boot_h1")
    }
}

fn read(d: &Path, f: &str) -> String {
    std::fs::read_to_string(d.join(f))
        .unwrap_or_default()
        .trim()
        .to_string()
}

async fn reboot(d: &Ec2Driver, boot_id: &str) -> Result<(), String> {
    let cmd = Command::Reboot {
        host: 0,
        boot_id: boot_id.into(),
        attempt: 1,
    };
    match d.execute(cmd, 0).await {
        Event::RebootSent { result, .. } => result,
        e => panic!("a reboot answered {e:?}"),
    }
}

async fn probe(d: &Ec2Driver) -> Option<String> {
    match d.execute(Command::Probe { host: 0 }, 0).await {
        Event::Probed { boot_id, .. } => boot_id,
        e => panic!("a probe answered {e:?}"),
    }
}

async fn replace(d: &Ec2Driver) -> Result<(), String> {
    match d.execute(Command::Replace { host: 0 }, 0).await {
        Event::Replaced { result, .. } => result,
        e => panic!("a replace answered {e:?}"),
    }
}

#[tokio::test]
async fn a_reboot_goes_through_the_api_once_and_the_host_is_back_only_with_checks_ok() {
    let m = Moto::start();
    let lab = Lab::new("ec2-reboot", &m).await;
    let d = lab.driver("run-1");
    assert_eq!(d.name(), "ec2");
    let before = preflight(&d, 0).await.expect("preflight");
    assert_eq!(before, "aaaaaaaa-0001");

    reboot(&d, &before).await.expect("RebootInstances");
    assert_eq!(m.reboots().get(&lab.instance), Some(&1));
    wait_for(
        "the reboot hook to change the boot id",
        Duration::from_secs(10),
        || lab.boot_id() != before,
    );
    let after = lab.boot_id();

    m.set_checks(EAST, &lab.instance, Some("initializing"), None);
    assert_eq!(
        probe(&d).await,
        None,
        "new boot id but the instance check is initializing"
    );
    m.set_checks(EAST, &lab.instance, None, Some("impaired"));
    assert_eq!(
        probe(&d).await,
        None,
        "new boot id but the system check is impaired"
    );
    m.set_checks(EAST, &lab.instance, None, None);
    assert_eq!(probe(&d).await, Some(after.clone()));

    // the reboot sent again (a crash between the intent and its answer): the boot id
    // moved on, so nothing is sent
    reboot(&d, &before).await.expect("no second reboot needed");
    assert_eq!(m.reboots().get(&lab.instance), Some(&1), "rebooted once");
}

#[tokio::test]
async fn an_api_error_fails_the_reboot_with_the_code_and_the_message() {
    let m = Moto::start();
    let lab = Lab::new("ec2-reboot-err", &m).await;
    // the fleet names an instance EC2 does not have
    let ghost = "i-0123456789abcdef0";
    let text = lab.text.replace(&lab.instance, ghost);
    let fleet = Arc::new(load_str("lab.toml", &text, &lab.dir, &LoadOptions { now: 0 }).unwrap());
    let lab = Lab {
        fleet,
        text,
        instance: ghost.into(),
        ..lab
    };
    let d = lab.driver("run-1");
    let err = reboot(&d, "aaaaaaaa-0001")
        .await
        .expect_err("unknown instance");
    for want in ["RebootInstances", "InvalidInstanceID.NotFound", ghost] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    assert_eq!(probe(&d).await, None, "no status for it: not back");
}

#[tokio::test]
async fn a_replace_launches_one_replacement_even_when_sent_twice_and_retires_the_old() {
    let m = Moto::start();
    let lab = Lab::new("ec2-replace", &m).await;
    let d = lab.driver("run-7");
    replace(&d).await.expect("replaced");
    let new = d.instance_of(0).expect("h1 is an instance");
    assert_ne!(new, lab.instance);
    let c = api(&m);
    let token = client_token("run-7", "h1");
    let tagged = c.instances_tagged(TOKEN_TAG, &token).await.unwrap();
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    assert_eq!(tagged[0].instance, new);
    assert_eq!(tagged[0].image.as_deref(), Some("ami-12c6146b"));
    assert_eq!(tagged[0].key_name.as_deref(), Some("ops"));
    let old = c
        .describe_instances(std::slice::from_ref(&lab.instance))
        .await
        .unwrap();
    assert!(old[0].is_gone(), "{old:?}");
    let ip = tagged[0].private_ip.clone().expect("a private IP");
    assert_eq!(
        d.address_of(0),
        ip,
        "127.0.0.1 pinned the old instance: the new IP now"
    );

    // a restarted orchestrator (resume) adopts what this run replaced, and only that
    let resumed = lab.driver("run-7");
    assert_eq!(resumed.instance_of(0), Some(lab.instance.clone()));
    assert_eq!(
        resumed.adopt_replacements().await.unwrap(),
        [(0, new.clone())]
    );
    assert_eq!(resumed.instance_of(0), Some(new.clone()));
    assert_eq!(resumed.address_of(0), ip);
    let stranger = lab.driver("run-6");
    assert_eq!(stranger.adopt_replacements().await.unwrap(), []);
    assert_eq!(stranger.address_of(0), "127.0.0.1");

    // a crash lost the answer: a fresh driver of the same run sends the replace again
    let again = lab.driver("run-7");
    replace(&again).await.expect("replaced again");
    assert_eq!(
        again.instance_of(0),
        Some(new.clone()),
        "the same replacement"
    );
    let tagged = c.instances_tagged(TOKEN_TAG, &token).await.unwrap();
    assert_eq!(tagged.len(), 1, "one instance launched: {tagged:?}");

    // another run's replace is another instance
    let other = lab.driver("run-8");
    replace(&other).await.expect("replaced by run-8");
    assert_ne!(other.instance_of(0), Some(new));
}

#[tokio::test]
async fn a_replacement_whose_checks_stay_bad_keeps_the_old_instance() {
    let m = Moto::start();
    let lab = Lab::new("ec2-replace-bad", &m).await;
    let c = api(&m);
    // launch the replacement by hand as the driver would, then make it impaired
    let info = c
        .describe_instances(std::slice::from_ref(&lab.instance))
        .await
        .unwrap();
    let token = client_token("run-9", "h1");
    let new = c
        .run_instance(&Launch::replacing(&info[0], token))
        .await
        .unwrap();
    m.set_checks(EAST, &new, Some("impaired"), None);
    let d = lab.driver("run-9");
    let err = replace(&d).await.expect_err("the replacement never got ok");
    assert!(
        err.contains(&new) && err.contains("instance check impaired"),
        "{err}"
    );
    assert!(err.contains("h1"), "{err}");
    let old = c
        .describe_instances(std::slice::from_ref(&lab.instance))
        .await
        .unwrap();
    assert_eq!(old[0].state, "running", "the old instance is kept");
    assert_eq!(d.instance_of(0), Some(lab.instance.clone()));
    let resumed = lab.driver("run-9");
    assert_eq!(
        resumed.adopt_replacements().await.unwrap(),
        [],
        "the old one still runs"
    );
    assert_eq!(resumed.address_of(0), "127.0.0.1");
}

#[tokio::test]
async fn a_whole_run_with_a_crash_after_the_send_reboots_the_instance_once() {
    let m = Moto::start();
    let lab = Lab::new("ec2-run", &m).await;
    let before = lab.boot_id();
    let mut run = Run::new(&lab.fleet);
    run.pace = Duration::from_millis(50);
    run.go(&lab.driver("run-1"), Some(Crash::AfterTheSendRan))
        .await;
    assert_eq!(m.reboots().get(&lab.instance), Some(&1));
    wait_for("the reboot to take", Duration::from_secs(10), || {
        lab.boot_id() != before
    });
    // a new orchestrator: the engine from the journal, a new driver
    run.restore(&lab.fleet);
    run.go(&lab.driver("run-1"), None).await;
    assert_eq!(run.engine.state(), RunState::Completed);
    assert_eq!(run.engine.phase(0), Phase::Healthy);
    assert_eq!(m.reboots().get(&lab.instance), Some(&1), "rebooted once");
}
