//! Config validation: every bad input gives an error naming file, line, column and
//! field; no input panics; good files load to the expected model.

use rollcall_core::*;
use rollcall_fleet::{
    ConfigError, ConfigErrors, LoadOptions, field_path_at, load_file, load_str, write,
};
use std::path::Path;

const GOOD: &str = r#"
[maintenance]
name = "test"
start = "2014-09-25T20:00:00Z"
notice_lead = "1h"
regions = ["dfw", "ord"]

[[host]]
id = "a1"
region = "dfw"
zone = "dfw-a"
tags = ["search"]

[[host]]
id = "a2"
region = "dfw"
zone = "dfw-b"
tags = ["search"]

[[host]]
id = "a3"
region = "dfw"
zone = "dfw-c"
tags = ["search"]
duration = "25m"

[[host]]
id = "b1"
region = "ord"

[[tenant]]
id = "acme"

[[cluster]]
id = "acme-search"
kind = "elasticsearch"
tenant = "acme"
selector = { tags = ["search"] }
max_unavailable = 1
load = 0.5
"#;

fn opts() -> LoadOptions {
    LoadOptions { now: 1_400_000_000 }
}

fn load(text: &str) -> Result<Fleet, ConfigErrors> {
    load_str("fleet.toml", text, Path::new("."), &opts())
}

/// The single error of a bad file.
fn one_error(text: &str) -> ConfigError {
    let errs = load(text).expect_err("should fail");
    assert_eq!(errs.errors.len(), 1, "expected one error, got {errs}");
    errs.errors[0].clone()
}

fn line_of(text: &str, needle: &str) -> usize {
    let off = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    text[..off].matches('\n').count() + 1
}

#[test]
fn good_file_loads() {
    let f = load(GOOD).unwrap();
    assert_eq!(f.hosts.len(), 4);
    assert_eq!(f.regions, vec!["dfw", "ord"]);
    assert_eq!(f.clusters[0].members, vec![0, 1, 2]);
    assert_eq!(f.hosts[0].duration, 20 * 60, "elasticsearch default");
    assert_eq!(f.hosts[2].duration, 25 * 60, "host override");
    assert_eq!(
        f.hosts[3].duration,
        5 * 60,
        "no cluster: the `none` default"
    );
    assert_eq!(f.hosts[3].zone, "ord", "zone defaults to the region");
    assert_eq!(f.maintenance.notice_lead, 3600);
    assert_eq!(f.maintenance.start, 1_411_675_200);
    assert_eq!(f.maintenance.region_mode, RegionMode::Serial);
}

#[test]
fn duplicate_host_id_points_at_the_second_and_names_the_first() {
    let text = GOOD.replace("id = \"a2\"", "id = \"a1\"");
    let e = one_error(&text);
    let second = text.match_indices("id = \"a1\"").nth(1).unwrap().0;
    let line = text[..second].matches('\n').count() + 1;
    assert_eq!(e.location, format!("fleet.toml:{line}:6"));
    assert_eq!(e.field, "host `a1`.id");
    assert!(e.message.contains("duplicate host id `a1`"));
    assert!(
        e.help
            .as_deref()
            .unwrap()
            .contains(&format!("fleet.toml:{}:6", line_of(&text, "id = \"a1\"")))
    );
}

#[test]
fn unknown_member_is_located_with_a_suggestion() {
    let text = GOOD.replace(
        "selector = { tags = [\"search\"] }",
        "members = [\"a1\", \"a2\", \"a4\"]",
    );
    let e = one_error(&text);
    let line = line_of(&text, "members = [");
    assert_eq!(e.location, format!("fleet.toml:{line}:24"));
    assert_eq!(e.field, "cluster[0].members[2]");
    assert!(e.message.contains("unknown host `a4`"), "{}", e.message);
    assert_eq!(e.help.as_deref(), Some("did you mean `a1`?"));
}

#[test]
fn host_in_no_region() {
    let text = GOOD.replace("id = \"b1\"\nregion = \"ord\"", "id = \"b1\"");
    let errs = load(&text).unwrap_err();
    let e = errs
        .errors
        .iter()
        .find(|e| e.field == "host `b1`.region")
        .expect("region error");
    assert_eq!(e.line, Some(line_of(&text, "id = \"b1\"")));
    assert!(e.message.contains("is in no region"));
}

#[test]
fn budget_below_one() {
    let text = GOOD.replace("max_unavailable = 1", "max_unavailable = 0");
    let e = one_error(&text);
    assert_eq!(e.field, "cluster[0].max_unavailable");
    assert_eq!(e.line, Some(line_of(&text, "max_unavailable = 0")));
    assert!(e.message.contains("at least 1"));
}

#[test]
fn load_outside_zero_to_one() {
    for bad in ["1.5", "-0.1"] {
        let text = GOOD.replace("load = 0.5", &format!("load = {bad}"));
        let e = one_error(&text);
        assert_eq!(e.field, "cluster[0].load");
        assert_eq!(
            e.location,
            format!("fleet.toml:{}:8", line_of(&text, "load = "))
        );
        assert!(e.message.contains("between 0 and 1"));
    }
}

#[test]
fn windows_that_never_open() {
    // 30 February
    let text =
        format!("{GOOD}\n[[maintenance.window]]\ncron = \"0 22 30 2 *\"\nduration = \"6h\"\n");
    // [[maintenance.window]] after [[cluster]] is still inside [maintenance]
    let e = one_error(&text);
    assert_eq!(e.field, "maintenance.window[0].cron");
    assert_eq!(e.line, Some(line_of(&text, "cron = ")));
    assert!(e.message.contains("never opens"), "{}", e.message);

    // an absolute window entirely before the maintenance start
    let text = format!(
        "{GOOD}\n[[maintenance.window]]\nstart = \"2014-01-01T00:00:00Z\"\nend = \"2014-01-02T00:00:00Z\"\n"
    );
    let e = one_error(&text);
    assert!(e.message.contains("never opens"), "{}", e.message);
    assert_eq!(e.line, Some(line_of(&text, "start = \"2014-01-01")));
}

#[test]
fn cron_windows_expand_and_restrict_the_plan() {
    let text = format!(
        "{GOOD}\n[[maintenance.window]]\ncron = \"0 22 * * *\"\nduration = \"2h\"\nregions = [\"dfw\"]\n"
    );
    let f = load(&text).unwrap();
    let w = f.maintenance.windows[0].as_ref().unwrap();
    assert_eq!(w[0].start, 1_411_682_400, "2014-09-25T22:00Z");
    assert_eq!(w[0].end - w[0].start, 7200);
    assert!(
        f.maintenance.windows[1].is_none(),
        "ord has no window: always open"
    );
    let p = plan::plan(&f);
    assert!(audit::audit(&f, &p).is_empty());
    for s in &p.steps {
        if f.hosts[s.host as usize].region == 0 {
            assert!(w.iter().any(|iv| iv.start <= s.start && s.end <= iv.end));
        }
    }
}

#[test]
fn bad_values_each_name_their_field() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "kind = \"elasticsearch\"",
            "kind = \"elastic\"",
            "cluster[0].kind",
            "unknown cluster kind",
        ),
        (
            "notice_lead = \"1h\"",
            "notice_lead = \"an hour\"",
            "maintenance.notice_lead",
            "invalid duration",
        ),
        (
            "start = \"2014-09-25T20:00:00Z\"",
            "start = \"yesterday\"",
            "maintenance.start",
            "invalid time",
        ),
        (
            "tenant = \"acme\"",
            "tenant = \"acme-corp\"",
            "cluster[0].tenant",
            "unknown tenant",
        ),
        (
            "regions = [\"dfw\", \"ord\"]",
            "regions = [\"dfw\", \"ordd\"]",
            "maintenance.regions[1]",
            "has no hosts",
        ),
        (
            "duration = \"25m\"",
            "duration = \"0s\"",
            "host[2].duration",
            "must be positive",
        ),
        (
            "load = 0.5",
            "load = 0.5\nmax_unavailable_zones = 1",
            "cluster[0].max_unavailable_zones",
            "both",
        ),
    ];
    for (from, to, field, msg) in cases {
        let text = GOOD.replacen(from, to, 1);
        let errs = load(&text).unwrap_err();
        let e = errs
            .errors
            .iter()
            .find(|e| e.field == *field)
            .unwrap_or_else(|| panic!("no error for {field}: {errs}"));
        assert!(e.message.contains(msg), "{field}: {}", e.message);
        assert!(e.line.is_some(), "{field} has a line");
        let bad_line = to.lines().last().unwrap();
        assert_eq!(e.line, Some(line_of(&text, bad_line)), "{field}");
    }
}

#[test]
fn typos_in_keys_and_syntax_errors_are_located() {
    let text = GOOD.replace("max_unavailable = 1", "max_unavailible = 1");
    let e = one_error(&text);
    assert_eq!(e.line, Some(line_of(&text, "max_unavailible")));
    assert!(e.message.contains("max_unavailible"), "{}", e.message);
    assert_eq!(e.field, "cluster[0].max_unavailible");

    let text = GOOD.replace("load = 0.5", "load = ");
    let e = one_error(&text);
    assert_eq!(e.line, Some(line_of(&text, "load = \n")));
}

#[test]
fn all_errors_are_reported_together() {
    let text = GOOD
        .replace("max_unavailable = 1", "max_unavailable = 0")
        .replace("load = 0.5", "load = 3.0")
        .replace("id = \"b1\"\nregion = \"ord\"", "id = \"b1\"");
    let errs = load(&text).unwrap_err();
    assert!(errs.errors.len() >= 3, "{errs}");
    let shown = errs.listing();
    assert!(shown.starts_with("fleet.toml has "), "{shown}");
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let e = load_file(Path::new("/nonexistent/fleet.toml"), &opts()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/fleet.toml"));
    assert!(e.listing().contains("cannot read"), "{}", e.listing());
}

#[test]
fn field_paths_follow_tables() {
    let t = "[a]\nx = 1\n[[b]]\ny = 2\n[[b]]\nz = 3\n";
    assert_eq!(field_path_at(t, t.find("x =").unwrap()), "a.x");
    assert_eq!(field_path_at(t, t.find("z =").unwrap()), "b[1].z");
    assert_eq!(field_path_at("k = 1", 0), "k");
}

#[test]
fn example_fleet_loads_and_plans() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/xsa-108.toml");
    let f = load_file(&path, &opts()).unwrap();
    assert_eq!(f.regions, vec!["dfw", "ord", "iad", "lon", "syd", "hkg"]);
    assert!(f.hosts.len() >= 300, "a few hundred hosts");
    assert!(f.clusters.len() >= 60);
    let p = plan::plan(&f);
    assert!(audit::audit(&f, &p).is_empty());
    let codes: Vec<&str> = p.risks.iter().map(|r| r.code).collect();
    assert!(codes.contains(&"survivor-load"), "{codes:?}");
    let acme = p
        .risks
        .iter()
        .find(|r| r.reason.starts_with("acme-search:"))
        .expect("acme-search is reported");
    assert!(
        acme.reason
            .contains("2 nodes at load 0.60 cannot lose one under max_load 0.85")
    );
    assert!(acme.remedy.contains("add 1 node"));
    assert!(p.ratio() <= 1.05);
}

#[test]
fn generated_toml_round_trips() {
    let f = generate::generate(&generate::GenParams::new(500, 80, 5));
    let text = write::to_toml(&f);
    let g = load(&text).unwrap();
    assert_eq!(g.hosts.len(), f.hosts.len());
    assert_eq!(g.clusters.len(), f.clusters.len());
    for (a, b) in f.hosts.iter().zip(&g.hosts) {
        assert_eq!(
            (&a.id, a.duration, &a.zone, &a.clusters),
            (&b.id, b.duration, &b.zone, &b.clusters)
        );
    }
    let (pa, pb) = (plan::plan(&f), plan::plan(&g));
    assert_eq!(pa.steps, pb.steps);
    assert_eq!(pa.lower_bound, pb.lower_bound);
}

#[test]
fn no_input_panics() {
    // every prefix of a valid file, and byte-level damage at many places
    let text = GOOD;
    for cut in 0..text.len() {
        if text.is_char_boundary(cut) {
            let _ = load(&text[..cut]);
        }
    }
    let bytes = text.as_bytes();
    for i in (0..bytes.len()).step_by(3) {
        for b in [b'"', b'[', b'=', b'\n', b'0', b'-', 0xff] {
            let mut v = bytes.to_vec();
            v[i] = b;
            let s = String::from_utf8_lossy(&v);
            let _ = load(&s);
        }
    }
}

#[test]
fn imports_from_ansible_and_csv() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/imported/fleet.toml");
    let f = load_file(&path, &opts()).unwrap();
    assert_eq!(f.hosts.len(), 12);
    let es = f.hosts.iter().find(|h| h.id == "dfw-es-02").unwrap();
    assert_eq!(es.address, "10.1.0.2");
    assert_eq!(f.regions[es.region as usize], "dfw");
    assert_eq!(es.provider, "rackspace");
    assert!(es.tags.contains(&"search".to_string()), "{:?}", es.tags);
    let redis = f.hosts.iter().find(|h| h.id == "ord-redis-04").unwrap();
    assert_eq!(redis.duration, 8 * 60, "rollcall_duration from group vars");
    let web = f.hosts.iter().find(|h| h.id == "dfw-web-01").unwrap();
    assert_eq!((web.duration, web.zone.as_str()), (180, "dfw-a"));
    assert_eq!(f.clusters[0].members.len(), 3);
    assert_eq!(f.clusters[1].members.len(), 6);
}

#[test]
fn errors_in_imported_files_name_that_file_and_line() {
    let dir = std::env::temp_dir().join(format!("rollcall-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts.csv"), "id,region,colour\nh1,dfw,red\n").unwrap();
    std::fs::write(dir.join("inv.ini"), "[g]\nh2 rollcall_region=dfw\nh3\n").unwrap();
    let text = "[[import]]\ncsv = \"hosts.csv\"\n\n[[import]]\nansible = \"inv.ini\"\n\n[[import]]\ncsv = \"missing.csv\"\n";
    let errs = load_str("fleet.toml", text, &dir, &opts()).unwrap_err();
    let csv = errs
        .errors
        .iter()
        .find(|e| e.file.ends_with("hosts.csv"))
        .expect("csv error");
    assert_eq!(csv.line, Some(1));
    assert!(csv.message.contains("colour"), "{}", csv.message);
    // h3 has no region: the error points into the inventory
    let ini = errs
        .errors
        .iter()
        .find(|e| e.file.ends_with("inv.ini"))
        .expect("ini error");
    assert_eq!(ini.line, Some(3));
    assert!(
        ini.message.contains("h3") && ini.message.contains("no region"),
        "{}",
        ini.message
    );
    let missing = errs
        .errors
        .iter()
        .find(|e| e.message.contains("missing.csv"))
        .expect("missing file");
    assert_eq!(missing.location, "fleet.toml:8:7");
    assert_eq!(missing.field, "import[2].csv");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn search_budget_above_replicas_is_refused_as_2014s_outage() {
    // two of three Elasticsearch nodes out together with one replica: both copies of a
    // shard can be among them (what region-at-once did in 2014)
    let text = GOOD.replace("max_unavailable = 1", "max_unavailable = 2");
    let e = one_error(&text);
    assert_eq!(e.field, "cluster[0].max_unavailable");
    assert_eq!(e.line, Some(line_of(&text, "max_unavailable = 2")));
    assert!(
        e.message.contains("acme-search") && e.message.contains("1 replica(s)"),
        "{e}"
    );
    assert!(
        e.help.as_deref().unwrap_or("").contains("replicas = 2"),
        "{e}"
    );
    // declared replicas allow it; so does an accepted outage
    let ok = text.replace("load = 0.5", "load = 0.5\nreplicas = 2");
    let f = load(&ok).unwrap();
    assert_eq!(f.clusters[0].replicas, Some(2));
    assert!(load(&text.replace("load = 0.5", "load = 0.5\nallow_outage = true")).is_ok());
    // zero replicas: even one member out takes data offline
    let zero = GOOD.replace("load = 0.5", "load = 0.5\nreplicas = 0");
    let e = one_error(&zero);
    assert!(e.message.contains("0 replica(s)"), "{e}");
    assert_eq!(load(GOOD).unwrap().clusters[0].replicas, Some(1));
    // `replicas` on a kind without replicas is an error where it is written
    let redis = GOOD
        .replace("\"elasticsearch\"", "\"redis-cluster\"")
        .replace("load = 0.5", "load = 0.5\nreplicas = 2");
    let e = one_error(&redis);
    assert_eq!(e.field, "cluster[0].replicas");
    assert_eq!(e.line, Some(line_of(&redis, "replicas = 2")));
    let neg = GOOD.replace("load = 0.5", "load = 0.5\nreplicas = -1");
    assert!(one_error(&neg).message.contains("between 0 and 65535"));
}

/// GOOD with these lines added to `[maintenance]`.
fn with_action(lines: &str) -> String {
    GOOD.replace(
        "notice_lead = \"1h\"\n",
        &format!("notice_lead = \"1h\"\n{lines}\n"),
    )
}

#[test]
fn the_action_is_reboot_unless_the_file_says_otherwise() {
    assert_eq!(load(GOOD).unwrap().maintenance.action, Action::Reboot);
    let f = load(&with_action(
        "action = \"restart\"\nservices = [\"opensearch\", \"agent\"]",
    ))
    .unwrap();
    assert_eq!(
        f.maintenance.action,
        Action::Restart {
            services: vec!["opensearch".into(), "agent".into()]
        }
    );
    let f = load(&with_action(
        "action = \"command\"\ncommand = \"apt-get install -y bash\"\ncheck = \"bash-fixed\"\nthen_reboot = true",
    ))
    .unwrap();
    assert_eq!(
        f.maintenance.action,
        Action::Command {
            command: "apt-get install -y bash".into(),
            check: "bash-fixed".into(),
            then_reboot: true
        }
    );
    assert_eq!(f.maintenance.action.noun(), "patch and reboot");
}

#[test]
fn an_unknown_action_is_located_and_lists_the_actions() {
    let text = with_action("action = \"reimage\"");
    let e = one_error(&text);
    assert_eq!(e.field, "maintenance.action");
    assert_eq!(e.line, Some(line_of(&text, "action = \"reimage\"")));
    assert!(
        e.message.contains("unknown action `reimage`"),
        "{}",
        e.message
    );
    let help = e.help.unwrap();
    assert!(
        help.contains("restart") && help.contains("command"),
        "{help}"
    );
}

#[test]
fn a_restart_needs_services_with_plain_names() {
    let text = with_action("action = \"restart\"");
    let e = one_error(&text);
    assert_eq!(e.line, Some(line_of(&text, "action = \"restart\"")));
    assert!(e.message.contains("needs the services"), "{}", e.message);

    let text = with_action("action = \"restart\"\nservices = []");
    assert_eq!(one_error(&text).field, "maintenance.services");

    let text = with_action("action = \"restart\"\nservices = [\"ok\", \"two words\", \"ok\"]");
    let errs = load(&text).unwrap_err().errors;
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0]
            .message
            .contains("`two words` is not a service name")
    );
    assert!(errs[1].message.contains("`ok` is listed twice"));
    assert!(
        errs.iter()
            .all(|e| e.field == "maintenance.services"
                && e.line == Some(line_of(&text, "services =")))
    );
}

#[test]
fn a_command_needs_its_command_and_check() {
    let text = with_action("action = \"command\"\ncheck = \"true\"");
    let e = one_error(&text);
    assert_eq!(e.field, "maintenance.action");
    assert!(e.message.contains("needs `command`"), "{}", e.message);

    let text = with_action("action = \"command\"\ncommand = \"apt-get install bash\"");
    let e = one_error(&text);
    assert!(e.message.contains("needs `check`"), "{}", e.message);
    assert!(e.message.contains("never run twice"), "{}", e.message);

    let text = with_action("action = \"command\"\ncommand = \" \"\ncheck = \"true\"");
    let e = one_error(&text);
    assert_eq!(e.field, "maintenance.command");
    assert_eq!(e.line, Some(line_of(&text, "command = \" \"")));
}

#[test]
fn settings_of_another_action_are_errors_not_ignored() {
    let text = with_action("services = [\"opensearch\"]\nthen_reboot = true");
    let errs = load(&text).unwrap_err().errors;
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].field, "maintenance.services");
    assert!(
        errs[0]
            .message
            .contains("belongs to action = \"restart\", not \"reboot\""),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[1].field, "maintenance.then_reboot");
    assert_eq!(errs[1].line, Some(line_of(&text, "then_reboot")));

    let text = with_action("action = \"restart\"\nservices = [\"x\"]\ncheck = \"true\"");
    assert_eq!(one_error(&text).field, "maintenance.check");
}
