//! What one input may cost: files over the size limit and fleet text nested deeper
//! than the depth limit are refused with an error naming the file and the limit,
//! before any parser runs.

use rollcall_fleet::limits::{MAX_FILE_BYTES, MAX_TOML_DEPTH};
use rollcall_fleet::{ConfigError, LoadOptions, error, import, load_file, load_str};
use std::path::{Path, PathBuf};

fn opts() -> LoadOptions {
    LoadOptions { now: 1_400_000_000 }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rollcall-limits-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file one byte over the limit, sparse so that it costs no disk.
fn oversized(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(MAX_FILE_BYTES as u64 + 1).unwrap();
}

#[test]
fn a_fleet_file_over_the_size_limit_is_refused_naming_file_and_limit() {
    let dir = scratch("fleet");
    let path = dir.join("huge.toml");
    oversized(&path);
    let errs = load_file(&path, &opts()).unwrap_err();
    let shown = errs.to_string() + &errs.listing();
    assert!(shown.contains("huge.toml"), "{shown}");
    assert!(shown.contains("larger than 256 MiB"), "{shown}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_imported_file_over_the_size_limit_is_refused_at_its_import_line() {
    let dir = scratch("import");
    oversized(&dir.join("hosts.csv"));
    let text = "[[import]]\ncsv = \"hosts.csv\"\n";
    let errs = load_str("fleet.toml", text, &dir, &opts()).unwrap_err();
    assert_eq!(errs.errors.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!(e.location, "fleet.toml:2:7");
    assert_eq!(e.field, "import[0].csv");
    assert!(e.message.contains("hosts.csv"), "{}", e.message);
    assert!(e.message.contains("larger than 256 MiB"), "{}", e.message);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_endless_device_as_an_import_is_refused_not_read_forever() {
    let text = "[[import]]\nansible = \"/dev/zero\"\n";
    let errs = load_str("fleet.toml", text, Path::new("."), &opts()).unwrap_err();
    let e = &errs.errors[0];
    assert!(e.message.contains("/dev/zero"), "{}", e.message);
    assert!(e.message.contains("larger than 256 MiB"), "{}", e.message);
}

#[test]
fn a_fleet_file_that_is_not_utf8_names_the_offset() {
    let dir = scratch("utf8");
    let path = dir.join("bin.toml");
    std::fs::write(&path, b"[fleet]\nname = \"\xff\"\n").unwrap();
    let errs = load_file(&path, &opts()).unwrap_err();
    assert!(
        errs.listing()
            .contains("not UTF-8 text (invalid byte at offset 16)"),
        "{}",
        errs.listing()
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn depth_error(text: &str) -> ConfigError {
    let errs = load_str("deep.toml", text, Path::new("."), &opts()).unwrap_err();
    assert_eq!(errs.errors.len(), 1, "{errs}");
    let e = errs.errors[0].clone();
    assert!(
        e.message
            .contains(&format!("deeper than {MAX_TOML_DEPTH} levels")),
        "{}",
        e.message
    );
    e
}

#[test]
fn deep_arrays_inline_tables_headers_and_dotted_keys_are_refused_with_a_location() {
    let e = depth_error(&format!(
        "[maintenance]\nname = \"x\"\nx = {}",
        "[".repeat(100)
    ));
    // `[maintenance]` is the first level: the 32nd `[` after `x = ` goes too deep
    assert_eq!(e.location, format!("deep.toml:3:{}", 4 + MAX_TOML_DEPTH));
    let e = depth_error(&format!("a = {}", "{b = ".repeat(100)));
    assert_eq!(e.line, Some(1));
    let e = depth_error(&format!("\n\n[{}a]\n", "a.".repeat(100)));
    assert_eq!(e.line, Some(3));
    let e = depth_error(&format!("{}a = 1\n", "a.".repeat(100)));
    assert_eq!(e.file, "deep.toml");
}

#[test]
fn nesting_up_to_the_limit_reaches_the_parser() {
    // 32 levels is fine for the depth check; the parser then judges the content
    let text = format!(
        "x = {}1{}",
        "[".repeat(MAX_TOML_DEPTH),
        "]".repeat(MAX_TOML_DEPTH)
    );
    let errs = load_str("ok.toml", &text, Path::new("."), &opts()).unwrap_err();
    assert!(
        errs.errors
            .iter()
            .all(|e| !e.message.contains("deeper than")),
        "{errs}"
    );
    assert!(
        errs.errors
            .iter()
            .any(|e| e.message.contains("unknown field")),
        "{errs}"
    );
}

#[test]
fn a_large_deeply_nested_file_is_refused_quickly() {
    // 9 MB of nested tables: the TOML parser took seconds and 455+ MB to refuse it
    let text = format!("a = {}", "{b = ".repeat((9 << 20) / 5));
    let t0 = std::time::Instant::now();
    depth_error(&text);
    // generous: the scan stops at the first byte too deep
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn the_example_fleets_pass_the_limits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for f in ["xsa-108.toml", "imported/fleet.toml"] {
        load_file(&root.join(f), &opts()).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

#[test]
fn a_file_of_millions_of_small_tables_is_refused_before_parsing() {
    // within the size and depth limits, yet the parser would need gigabytes for it
    let line = |i: usize| format!("[t{i}{}]\n", ".t".repeat(20));
    let text: String = (0..400_000).map(line).collect();
    let t0 = std::time::Instant::now();
    let errs = load_str("tables.toml", &text, Path::new("."), &opts()).unwrap_err();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(errs.errors.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert!(
        e.message.contains("more than 8000000 tables and arrays"),
        "{}",
        e.message
    );
    // 21 levels per header: the limit is passed in header 380,953 (line 380,953)
    assert_eq!(e.line, Some(8_000_000 / 21 + 1));
    assert!(e.field.chars().count() <= 81, "{}", e.field);
}

/// Found while fuzzing `import_yaml` (a 500-byte input peaked at 459 MB): aliases
/// copying a long string a million times. This 4 KB inventory took 23 s and 4.8 GB
/// before copied text counted against the alias budget.
#[test]
fn yaml_aliases_cannot_copy_long_strings_a_million_times() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/import_yaml");
    let name = "alias-copies-long-strings.yml";
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let t0 = std::time::Instant::now();
    let errs = import::parse_ansible(&error::SourceFile::new(name, text)).unwrap_err();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(e.file, name);
    assert!(
        e.message.contains("aliases expand to too large a document"),
        "{}",
        e.message
    );
    assert!(e.message.contains("2000000 nodes"), "{}", e.message);
    // refused at `f`, whose 10 copies of `e` hold 100,000 copies of the 4,000-byte string
    assert_eq!(e.line, Some(7));
}

fn inventory_error(name: &str) -> ConfigError {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/import_ini")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let errs = import::parse_ansible(&error::SourceFile::new(name, text)).unwrap_err();
    assert_eq!(errs.len(), 1, "reported once: {errs:?}");
    errs[0].clone()
}

/// Found by looking for other small inputs of large cost after the YAML case above
/// (the fuzzer's inputs expanded ranges, but each line alone stays under the range
/// limit): 31 range lines, 984 bytes, defined 3.1 million hosts in 30 s and 5.6 GB.
/// Now refused at the line that goes over the limit.
#[test]
fn an_inventory_of_ranges_is_refused_past_three_million_host_definitions() {
    let e = inventory_error("ranges-3m-hosts.ini");
    // each host has one variable, so counts twice: line 17 (the 16th range) goes over
    assert_eq!(e.line, Some(17));
    assert_eq!(e.field, "hosts.h15-[1:100000]");
    assert!(
        e.message.contains("more than 3000000 hosts"),
        "{}",
        e.message
    );
}

/// A range of 100,000 hosts in a chain of 300 nested groups: 30 million tags.
#[test]
fn an_inventory_whose_hosts_resolve_to_millions_of_tags_is_refused() {
    let e = inventory_error("chain-300-groups.ini");
    assert_eq!(e.line, Some(2));
    assert!(
        e.message.contains("more than 20000000 groups"),
        "{}",
        e.message
    );
}
