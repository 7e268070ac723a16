//! The EC2 API client and the EC2 notice source against a real EC2 API: moto's server
//! (`rollcall_testkit::moto`), with scheduled events injected into its backend.

use rollcall_providers::aws::Ec2Source;
use rollcall_providers::aws::config::AwsSettings;
use rollcall_providers::aws::credentials::{CredentialSet, Credentials};
use rollcall_providers::aws::ec2::{Check, Ec2Client, Launch, TOKEN_TAG, client_token};
use rollcall_providers::http::{Direct, Fetch};
use rollcall_providers::{EventState, NoticeSource, ProviderError, Pulled, Source};
use rollcall_testkit::moto::{Ev, Moto};
use std::sync::Arc;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKIDROLLCALLTEST".into(),
        secret_access_key: "rollcall-test-secret".into(),
        session_token: Some("rollcall-test-session".into()),
    }
}

fn client(m: &Moto, region: &str) -> Ec2Client {
    let fetch: Arc<dyn Fetch> = Arc::new(Direct::default());
    Ec2Client::new(&m.endpoint(), region, creds(), fetch)
}

async fn launch(c: &Ec2Client, token: &str) -> String {
    let l = Launch {
        image: Some("ami-12c6146b".into()),
        instance_type: Some("t3.micro".into()),
        client_token: token.into(),
        ..Launch::default()
    };
    c.run_instance(&l).await.expect("RunInstances")
}

/// `[aws]` for hosts `(fleet id, instance, region)`, loaded through `AwsSettings::load`.
fn settings(m: &Moto, hosts: &[(&str, &str, &str)]) -> AwsSettings {
    let mut text = String::new();
    for (id, _, _) in hosts {
        text += &format!("[[host]]\nid = \"{id}\"\nregion = \"r\"\n\n");
    }
    text += &format!(
        "[aws]\nregion = \"{EAST}\"\nendpoint = \"{}\"\n",
        m.endpoint()
    );
    for (id, inst, region) in hosts {
        text += &format!("[aws.host.{id}]\ninstance = \"{inst}\"\nregion = \"{region}\"\n");
    }
    let opts = rollcall_fleet::LoadOptions { now: 0 };
    let dir = std::env::temp_dir();
    let fleet = rollcall_fleet::load_str("fleet.toml", &text, &dir, &opts)
        .unwrap_or_else(|e| panic!("{}", e.listing()));
    AwsSettings::load("fleet.toml", &text, &fleet)
        .unwrap_or_else(|e| panic!("{}", e.listing()))
        .expect("an [aws] table")
}

async fn pull(s: &AwsSettings) -> Vec<Pulled> {
    let set = CredentialSet::single(creds());
    let src = Ec2Source::with(s, &set, Arc::new(Direct::default())).expect("credentials");
    src.pull(&Direct::default()).await
}

fn of<'a>(p: &'a [Pulled], host: &str) -> &'a Pulled {
    p.iter()
        .find(|x| x.host == host)
        .unwrap_or_else(|| panic!("no pull for {host}"))
}

const T: i64 = 1_800_000_000;

#[tokio::test]
async fn injected_events_come_back_from_pull_with_their_states_and_windows() {
    let m = Moto::start();
    let c = client(&m, EAST);
    let (a, b) = (launch(&c, "a").await, launch(&c, "b").await);
    m.set_events(
        EAST,
        &a,
        &[
            Ev {
                id: "instance-event-0aaa",
                code: "system-reboot",
                description: "scheduled reboot",
                not_before: Some(T),
                not_after: Some(T + 7200),
                deadline: Some(T + 7 * 86400),
            },
            Ev {
                id: "instance-event-0bbb",
                code: "instance-reboot",
                description: "[Completed] scheduled reboot",
                not_before: Some(T - 86400),
                not_after: None,
                deadline: None,
            },
            Ev {
                id: "instance-event-0ccc",
                code: "system-maintenance",
                description: "[Canceled] network maintenance",
                not_before: Some(T - 3600),
                not_after: Some(T),
                deadline: None,
            },
        ],
    );
    let s = settings(&m, &[("redis-1", &a, EAST), ("redis-2", &b, EAST)]);
    let p = pull(&s).await;
    assert_eq!(p.len(), 2);
    let evs = of(&p, "redis-1").events.as_ref().expect("redis-1 was read");
    let got: Vec<_> = evs
        .iter()
        .map(|e| (e.id.as_str(), e.code.as_str(), e.state))
        .collect();
    assert_eq!(
        got,
        [
            (
                "instance-event-0aaa",
                "system-reboot",
                EventState::Scheduled
            ),
            (
                "instance-event-0bbb",
                "instance-reboot",
                EventState::Completed
            ),
            (
                "instance-event-0ccc",
                "system-maintenance",
                EventState::Canceled
            ),
        ]
    );
    let e = &evs[0];
    assert_eq!(
        (e.not_before, e.not_after, e.deadline),
        (Some(T), Some(T + 7200), Some(T + 7 * 86400))
    );
    assert_eq!(
        (e.source, e.instance.as_str()),
        (Source::AwsEc2, a.as_str())
    );
    assert_eq!(evs[1].not_after, None);
    let quiet = of(&p, "redis-2").events.as_ref().expect("redis-2 was read");
    assert!(quiet.is_empty(), "no events on redis-2: {quiet:?}");

    // the provider moves the window: same event, new times
    m.set_events(
        EAST,
        &a,
        &[Ev {
            id: "instance-event-0aaa",
            code: "system-reboot",
            description: "scheduled reboot",
            not_before: Some(T + 86400),
            not_after: Some(T + 86400 + 7200),
            deadline: Some(T + 7 * 86400),
        }],
    );
    let p = pull(&s).await;
    let evs = of(&p, "redis-1").events.as_ref().unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(
        (evs[0].id.as_str(), evs[0].not_before),
        ("instance-event-0aaa", Some(T + 86400))
    );

    // and cleared: the instance has no events any more
    m.set_events(EAST, &a, &[]);
    let p = pull(&s).await;
    assert!(of(&p, "redis-1").events.as_ref().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_instance_is_a_clear_error_for_its_host_alone() {
    let m = Moto::start();
    let west = launch(&client(&m, WEST), "w").await;
    let ghost = "i-0123456789abcdef0";
    let real_east = launch(&client(&m, EAST), "e").await;
    m.set_events(
        EAST,
        &real_east,
        &[Ev {
            id: "instance-event-0e",
            code: "system-reboot",
            description: "",
            not_before: Some(T),
            not_after: None,
            deadline: None,
        }],
    );
    let s = settings(
        &m,
        &[
            ("ghost", ghost, EAST),
            ("etcd-1", &real_east, EAST),
            ("etcd-2", &west, WEST),
        ],
    );
    let p = pull(&s).await;
    let err = of(&p, "ghost")
        .events
        .as_ref()
        .expect_err("EC2 has no such instance");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Ec2 { .. }), "{err:?}");
    for want in [
        "DescribeInstanceStatus",
        "InvalidInstanceID.NotFound",
        ghost,
        &m.endpoint(),
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    let east = of(&p, "etcd-1")
        .events
        .as_ref()
        .expect("the rest of us-east-1 was read");
    assert_eq!(east.len(), 1);
    assert!(
        of(&p, "etcd-2").events.as_ref().unwrap().is_empty(),
        "us-west-2 was read"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_every_host_of_the_region() {
    let m = Moto::start();
    let a = launch(&client(&m, EAST), "a").await;
    let mut s = settings(
        &m,
        &[("redis-1", &a, EAST), ("redis-2", "i-12345678", EAST)],
    );
    let dead = format!("http://127.0.0.1:{}", rollcall_testkit::free_port());
    s.endpoint = Some(dead.clone());
    let p = pull(&s).await;
    assert_eq!(p.len(), 2);
    for x in &p {
        let err = x.events.as_ref().expect_err("nothing answers");
        assert!(matches!(err, ProviderError::Http { .. }), "{err:?}");
        assert!(err.to_string().contains(&dead), "{err}");
    }
}

#[tokio::test]
async fn reboots_are_recorded_and_status_checks_and_descriptions_read() {
    let m = Moto::start();
    let c = client(&m, EAST);
    let a = launch(&c, "a").await;
    let b = launch(&c, "b").await;
    c.reboot_instances(std::slice::from_ref(&a))
        .await
        .expect("RebootInstances");
    c.reboot_instances(std::slice::from_ref(&a))
        .await
        .expect("RebootInstances");
    let r = m.reboots();
    assert_eq!(r.get(&a), Some(&2));
    assert_eq!(r.get(&b), None);

    let st = c
        .describe_instance_status(&[a.clone(), b.clone()])
        .await
        .unwrap();
    assert!(st.iter().all(|s| s.is_ok()), "{st:?}");
    m.set_checks(EAST, &a, Some("impaired"), Some("initializing"));
    let st = c
        .describe_instance_status(std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(
        (&st[0].instance_check, &st[0].system_check),
        (&Check::Impaired, &Check::Initializing)
    );
    assert!(!st[0].is_ok());

    let info = c
        .describe_instances(std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].image.as_deref(), Some("ami-12c6146b"));
    assert_eq!(info[0].instance_type.as_deref(), Some("t3.micro"));
    assert_eq!(info[0].state, "running");
    assert!(info[0].private_ip.is_some());

    let gone = c
        .terminate_instances(std::slice::from_ref(&b))
        .await
        .unwrap();
    assert_eq!(gone, [(b.clone(), "shutting-down".to_string())]);
    let err = c
        .reboot_instances(&["i-0123456789abcdef0".to_string()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RebootInstances"), "{err}");
}

#[tokio::test]
async fn a_replacement_is_tagged_so_it_can_be_found_again() {
    let m = Moto::start();
    let c = client(&m, EAST);
    let old = launch(&c, "old").await;
    let info = c
        .describe_instances(std::slice::from_ref(&old))
        .await
        .unwrap();
    let token = client_token("run-1", "redis-1");
    assert_eq!(token, client_token("run-1", "redis-1"));
    assert_ne!(token, client_token("run-1", "redis-2"));
    assert!(token.len() <= 64 && token.is_ascii());
    let new = c
        .run_instance(&Launch::replacing(&info[0], token.clone()))
        .await
        .unwrap();
    assert_ne!(new, old);
    let found = c.instances_tagged(TOKEN_TAG, &token).await.unwrap();
    let ids: Vec<_> = found.iter().map(|i| i.instance.as_str()).collect();
    assert_eq!(ids, [new.as_str()]);
    assert_eq!(found[0].image.as_deref(), Some("ami-12c6146b"));
    assert!(
        found[0]
            .tags
            .contains(&("rollcall:replaces".into(), old.clone()))
    );
}

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_replacement_of_an_instance_from_a_launch_template_uses_the_template() {
    let m = Moto::start();
    let c = client(&m, EAST);
    let lt = c
        .call(
            "CreateLaunchTemplate",
            &params(&[
                ("LaunchTemplateName", "redis"),
                ("LaunchTemplateData.ImageId", "ami-03cf127a"),
                ("LaunchTemplateData.InstanceType", "t3.small"),
            ]),
        )
        .await
        .expect("CreateLaunchTemplate");
    let lt_id = lt
        .text_at(&["launchTemplate", "launchTemplateId"])
        .expect("a template id")
        .to_string();
    let l = Launch {
        launch_template: Some((lt_id.clone(), "1".into())),
        client_token: "from-template".into(),
        ..Launch::default()
    };
    let old = c.run_instance(&l).await.unwrap();
    let info = c
        .describe_instances(std::slice::from_ref(&old))
        .await
        .unwrap();
    assert_eq!(info[0].launch_template, Some((lt_id.clone(), "1".into())));
    let repl = Launch::replacing(&info[0], client_token("run-1", "redis-1"));
    assert_eq!(repl.image, None, "the template says what to launch");
    let new = c.run_instance(&repl).await.unwrap();
    let got = c
        .describe_instances(std::slice::from_ref(&new))
        .await
        .unwrap();
    assert_eq!(got[0].launch_template, Some((lt_id, "1".into())));
    assert_eq!(got[0].image.as_deref(), Some("ami-03cf127a"));
    assert_eq!(got[0].instance_type.as_deref(), Some("t3.small"));
}

#[tokio::test]
async fn a_stopped_instance_is_still_read_with_its_state() {
    let m = Moto::start();
    let c = client(&m, EAST);
    let a = launch(&c, "a").await;
    c.call("StopInstances", &params(&[("InstanceId.1", &a)]))
        .await
        .expect("StopInstances");
    m.set_events(
        EAST,
        &a,
        &[Ev {
            id: "instance-event-0s",
            code: "instance-stop",
            description: "stop",
            not_before: Some(T),
            not_after: None,
            deadline: None,
        }],
    );
    let st = c
        .describe_instance_status(std::slice::from_ref(&a))
        .await
        .unwrap();
    assert_eq!(st.len(), 1, "IncludeAllInstances lists stopped instances");
    assert_eq!(st[0].state, "stopped");
    assert_eq!(st[0].instance_check, Check::NotApplicable);
    assert!(!st[0].is_ok());
    assert_eq!(st[0].events[0].code, "instance-stop");
}

#[tokio::test]
async fn moto_checking_signatures_accepts_ours_and_refuses_a_wrong_secret() {
    let m = Moto::start();
    let (id, secret) = m.require_signatures();
    let signed = |secret: &str| {
        let creds = Credentials {
            access_key_id: id.clone(),
            secret_access_key: secret.to_string(),
            session_token: None,
        };
        Ec2Client::new(&m.endpoint(), EAST, creds, Arc::new(Direct::default()))
    };
    let c = signed(&secret);
    let a = launch(&c, "signed").await;
    let st = c.describe_instance_status(std::slice::from_ref(&a)).await;
    assert_eq!(st.expect("a signed call is accepted").len(), 1);
    let err = signed("not-the-secret")
        .describe_instance_status(std::slice::from_ref(&a))
        .await
        .expect_err("a wrong signature is refused");
    let text = err.to_string();
    assert!(text.contains("AuthFailure"), "{text}");
}

#[tokio::test]
async fn a_host_with_its_own_profile_is_read_with_that_profile_not_the_environment() {
    let m = Moto::start();
    let (id, secret) = m.require_signatures();
    let good = Credentials {
        access_key_id: id.clone(),
        secret_access_key: secret.clone(),
        session_token: None,
    };
    let c = Ec2Client::new(&m.endpoint(), EAST, good, Arc::new(Direct::default()));
    let (a, b) = (launch(&c, "a").await, launch(&c, "b").await);
    let dir = rollcall_testkit::TmpDir::new("ec2-profiles");
    let file = dir.join("credentials");
    let text = format!("[other]\naws_access_key_id = {id}\naws_secret_access_key = wrong\n");
    std::fs::write(&file, text).unwrap();
    let mut s = settings(&m, &[("redis-1", &a, EAST), ("redis-2", &b, EAST)]);
    s.hosts.get_mut("redis-2").unwrap().profile = Some("other".into());
    let file = file.to_str().unwrap().to_string();
    // the fleet's credentials come from the environment, redis-2's from its profile
    let env = |k: &str| match k {
        "AWS_ACCESS_KEY_ID" => Some(id.clone()),
        "AWS_SECRET_ACCESS_KEY" => Some(secret.clone()),
        "AWS_SHARED_CREDENTIALS_FILE" => Some(file.clone()),
        _ => None,
    };
    let set = CredentialSet::resolve(&s, &env, None).expect("both resolve");
    let src = Ec2Source::with(&s, &set, Arc::new(Direct::default())).unwrap();
    let p = src.pull(&Direct::default()).await;
    assert!(of(&p, "redis-1").events.is_ok(), "{:?}", of(&p, "redis-1"));
    let err = of(&p, "redis-2")
        .events
        .as_ref()
        .expect_err("the wrong secret");
    assert!(err.to_string().contains("AuthFailure"), "{err}");
    // a profile missing from the file is said with the file and the profile
    s.hosts.get_mut("redis-2").unwrap().profile = Some("nope".into());
    let err = CredentialSet::resolve(&s, &env, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no profile `nope`") && err.contains(&file),
        "{err}"
    );
}
