//! A run is bound to the fleet it started with: the fleet file and every imported file
//! are kept in memory with a digest, and the fleet is rebuilt from them without the disk.
//! The property test edits the inventory and CSV on disk between a crash and a restore
//! (add, remove, reorder, retag, change region) and checks that the restored run never
//! reboots a host twice or breaks a rule, and that the edits are reported host by host.

use proptest::prelude::*;
use rollcall_core::engine::*;
use rollcall_core::plan::plan;
use rollcall_core::simworld::{SimParams, VirtualRun, World};
use rollcall_core::*;
use rollcall_fleet::LoadOptions;
use rollcall_fleet::sources::{FleetFiles, diff_hosts, load_stored, read_fleet};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const OPTS: LoadOptions = LoadOptions { now: 0 };

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rollcall-sources-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/imported")
}

/// A copy of `examples/imported/` in a fresh directory.
fn copy_example(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    for f in ["fleet.toml", "inventory.ini", "hosts.csv"] {
        std::fs::copy(example_dir().join(f), dir.0.join(f)).unwrap();
    }
    dir
}

fn same_fleet(a: &Fleet, b: &Fleet) -> bool {
    serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
}

fn stored(files: &FleetFiles) -> Fleet {
    load_stored(
        "fleet.toml (stored)",
        &files.text,
        Path::new("/nowhere"),
        Some(&files.stored()),
        "r1",
        &OPTS,
    )
    .unwrap_or_else(|e| panic!("{}", e.listing()))
}

#[test]
fn a_stored_fleet_loads_without_the_disk() {
    let dir = copy_example("no-disk");
    let (fleet, files) = read_fleet(&dir.0.join("fleet.toml"), &OPTS).unwrap();
    assert_eq!(
        files.imports.keys().collect::<Vec<_>>(),
        ["hosts.csv", "inventory.ini"],
        "imports keyed by the path as written"
    );
    drop(dir);
    assert!(same_fleet(&stored(&files), &fleet));
}

#[test]
fn a_stored_fleet_that_does_not_match_its_digest_is_refused() {
    let dir = copy_example("digest");
    let (_, files) = read_fleet(&dir.0.join("fleet.toml"), &OPTS).unwrap();
    let mut s = files.stored();
    s.imports
        .get_mut("hosts.csv")
        .unwrap()
        .push_str("dfw-web-09,10.1.9.9,dfw,dfw-a,web,\n");
    let e = load_stored("f.toml", &files.text, &dir.0, Some(&s), "r1", &OPTS).unwrap_err();
    assert!(
        e.listing().contains("does not match its digest"),
        "{}",
        e.listing()
    );
}

#[test]
fn an_old_run_without_stored_imports_loads_only_if_it_imports_nothing() {
    let dir = copy_example("legacy");
    let (_, files) = read_fleet(&dir.0.join("fleet.toml"), &OPTS).unwrap();
    let e = load_stored("f.toml", &files.text, &dir.0, None, "r-old", &OPTS).unwrap_err();
    let msg = e.listing();
    assert!(
        msg.contains("run r-old was started by a rollcall that did not store imported files")
            && msg.contains("inventory.ini")
            && msg.contains("import[0].ansible"),
        "{msg}"
    );
    let plain = std::fs::read_to_string(example_dir().join("../xsa-108.toml")).unwrap();
    let f = load_stored("x.toml", &plain, &dir.0, None, "r-old", &OPTS).unwrap();
    assert!(!f.hosts.is_empty());
}

#[test]
fn the_difference_lists_hosts_added_removed_and_changed_by_id() {
    let dir = copy_example("diff");
    let (before, _) = read_fleet(&dir.0.join("fleet.toml"), &OPTS).unwrap();
    let inv = std::fs::read_to_string(dir.0.join("inventory.ini")).unwrap();
    let inv = inv
        .replace(
            "[search_dfw]\n",
            "[search_dfw]\ndfw-es-00 ansible_host=10.1.0.9\n",
        )
        .replace("dfw-es-03 ansible_host=10.1.0.3\n", "");
    std::fs::write(dir.0.join("inventory.ini"), inv).unwrap();
    let csv = std::fs::read_to_string(dir.0.join("hosts.csv")).unwrap();
    std::fs::write(
        dir.0.join("hosts.csv"),
        csv.replace(
            "ord-web-02,10.2.9.2,ord,ord-b",
            "ord-web-02,10.2.9.2,dfw,dfw-b",
        ),
    )
    .unwrap();
    let (after, _) = read_fleet(&dir.0.join("fleet.toml"), &OPTS).unwrap();
    let d = diff_hosts(&before, &after);
    assert_eq!(d.added, ["dfw-es-00"]);
    assert_eq!(d.removed, ["dfw-es-03"]);
    assert_eq!(d.changed.len(), 1, "{:?}", d.changed);
    assert_eq!(d.changed[0].0, "ord-web-02");
    assert!(
        d.changed[0].1.contains("region ord → dfw")
            && d.changed[0].1.contains("zone ord-b → dfw-b"),
        "{}",
        d.changed[0].1
    );
}

// ------------------------------------------------------------------ property test

/// The example's inventory and CSV as data, so that edits keep them valid.
#[derive(Debug, Clone)]
struct Files {
    search: Vec<(String, String)>,
    cache: Vec<String>,
    csv: Vec<[String; 6]>,
}

fn original() -> Files {
    Files {
        search: (1..=3)
            .map(|i| (format!("dfw-es-0{i}"), format!("10.1.0.{i}")))
            .collect(),
        cache: (1..=6).map(|i| format!("ord-redis-0{i}")).collect(),
        csv: [
            ["ord-web-01", "10.2.9.1", "ord", "ord-a", "web;frontend", ""],
            ["ord-web-02", "10.2.9.2", "ord", "ord-b", "web;frontend", ""],
            ["dfw-web-01", "10.1.9.1", "dfw", "dfw-a", "web", "3m"],
        ]
        .iter()
        .map(|r| r.map(String::from))
        .collect(),
    }
}

impl Files {
    fn inventory(&self) -> String {
        let mut s = String::from("[search_dfw]\n");
        for (id, addr) in &self.search {
            s.push_str(&format!("{id} ansible_host={addr}\n"));
        }
        s.push_str("\n[search_dfw:vars]\nrollcall_region=dfw\n\n[cache_ord]\n");
        for id in &self.cache {
            s.push_str(&format!("{id}\n"));
        }
        s.push_str("\n[cache_ord:vars]\nrollcall_region=ord\nrollcall_duration=8m\n");
        s.push_str("\n[search:children]\nsearch_dfw\n\n[all:vars]\nrollcall_provider=rackspace\n");
        s
    }

    fn csv(&self) -> String {
        let mut s = String::from("id,address,region,zone,tags,duration\n");
        for r in &self.csv {
            s.push_str(&format!("{}\n", r.join(",")));
        }
        s
    }

    fn write(&self, dir: &Path) {
        std::fs::write(dir.join("inventory.ini"), self.inventory()).unwrap();
        std::fs::write(dir.join("hosts.csv"), self.csv()).unwrap();
    }
}

/// One edit an ops team might make between a crash and a resume.
#[derive(Debug, Clone)]
enum Edit {
    AddSearch,
    AddCache,
    AddCsv(u8),
    Remove(u8),
    Reorder(u8),
    Retag(u8),
    Region(u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        Just(Edit::AddSearch),
        Just(Edit::AddCache),
        any::<u8>().prop_map(Edit::AddCsv),
        any::<u8>().prop_map(Edit::Remove),
        any::<u8>().prop_map(Edit::Reorder),
        any::<u8>().prop_map(Edit::Retag),
        any::<u8>().prop_map(Edit::Region),
    ]
}

/// Apply an edit; the ids it adds and removes.
fn apply(
    f: &mut Files,
    e: &Edit,
    n: usize,
    added: &mut BTreeSet<String>,
    removed: &mut BTreeSet<String>,
) {
    let pick = |len: usize, x: u8| x as usize % len.max(1);
    match *e {
        Edit::AddSearch => {
            let id = format!("dfw-es-new{n}");
            f.search.insert(0, (id.clone(), format!("10.1.5.{n}")));
            added.insert(id);
        }
        Edit::AddCache => {
            let id = format!("ord-redis-new{n}");
            f.cache.insert(0, id.clone());
            added.insert(id);
        }
        Edit::AddCsv(x) => {
            let id = format!("web-new{n}");
            let (region, zone) = if x % 2 == 0 {
                ("ord", "ord-a")
            } else {
                ("dfw", "dfw-a")
            };
            f.csv.insert(
                0,
                [&id, "10.9.9.9", region, zone, "web", ""].map(String::from),
            );
            added.insert(id);
        }
        Edit::Remove(x) => {
            // from the CSV, or from a group with members to spare
            let id = match x % 3 {
                0 if f.search.len() > 2 => f.search.remove(pick(f.search.len(), x)).0,
                1 if f.cache.len() > 2 => f.cache.remove(pick(f.cache.len(), x)),
                _ if !f.csv.is_empty() => f.csv.remove(pick(f.csv.len(), x))[0].clone(),
                _ => return,
            };
            if !added.remove(&id) {
                removed.insert(id);
            }
        }
        Edit::Reorder(x) => match x % 3 {
            0 => f.search.rotate_left(1),
            1 => f.cache.reverse(),
            _ => f.csv.reverse(),
        },
        Edit::Retag(x) => {
            let i = pick(f.csv.len(), x);
            if let Some(r) = f.csv.get_mut(i) {
                r[4] = if r[4] == "web" {
                    "web;edge".into()
                } else {
                    "web".into()
                };
            }
        }
        Edit::Region(x) => {
            let i = pick(f.csv.len(), x);
            if let Some(r) = f.csv.get_mut(i) {
                let (reg, zone) = if r[2] == "ord" {
                    ("dfw", "dfw-b")
                } else {
                    ("ord", "ord-b")
                };
                r[2] = reg.into();
                r[3] = zone.into();
            }
        }
    }
}

fn run_to_crash(
    fleet: &Arc<Fleet>,
    seed: u64,
    steps: usize,
    before_execute: bool,
) -> (World, Vec<Output>, i64) {
    let p = plan(fleet);
    let params = SimParams {
        seed,
        ..SimParams::default()
    };
    let mut run = VirtualRun::new(
        Engine::new(fleet.clone(), &p, EngineConfig::default()),
        World::new(fleet.clone(), params),
        fleet.maintenance.start,
    );
    for _ in 0..steps {
        if !run.advance() {
            break;
        }
    }
    if before_execute {
        run.crash_before_execute()
    } else {
        run.crash()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn edits_between_a_crash_and_a_restore_never_reboot_twice_or_break_a_rule(
        seed in 0u64..1000,
        steps in 1usize..400,
        before_execute in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let dir = copy_example("prop");
        let start = original();
        start.write(&dir.0);
        let (fleet, files) = read_fleet(&dir.0.join("fleet.toml"), &OPTS).unwrap();
        let fleet = Arc::new(fleet);
        let (world, journal, now) = run_to_crash(&fleet, seed, steps, before_execute);

        let mut edited = start.clone();
        let (mut added, mut removed) = (BTreeSet::new(), BTreeSet::new());
        for (n, e) in edits.iter().enumerate() {
            apply(&mut edited, e, n, &mut added, &mut removed);
        }
        edited.write(&dir.0);

        // the files on disk changed; the run is rebuilt from what it stored
        let restored = Arc::new(stored(&files));
        prop_assert!(same_fleet(&restored, &fleet), "the stored fleet is the one the run began with");
        if let Ok((on_disk, _)) = read_fleet(&dir.0.join("fleet.toml"), &OPTS) {
            let d = diff_hosts(&fleet, &on_disk);
            prop_assert_eq!(d.added.iter().cloned().collect::<BTreeSet<_>>(), added);
            prop_assert_eq!(d.removed.iter().cloned().collect::<BTreeSet<_>>(), removed);
        }

        let p = plan(&restored);
        let engine = Engine::restore(restored.clone(), &p, EngineConfig::default(), &journal)
            .map_err(|e| TestCaseError::fail(format!("restore: {e}")))?;
        let mut run = VirtualRun::new(engine, world, now);
        run.journal = journal;
        run.run_until(i64::MAX);
        prop_assert_eq!(run.engine.state(), RunState::Completed);
        let v = check_journal(&restored, &p, &run.journal);
        prop_assert!(v.is_empty(), "rule violations: {:#?}", v);
        for (h, sh) in run.world.hosts.iter().enumerate() {
            prop_assert!(sh.reboots.len() <= 1, "{} rebooted {} times", restored.hosts[h].id, sh.reboots.len());
        }
    }
}
