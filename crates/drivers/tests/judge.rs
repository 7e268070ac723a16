//! Inputs the gate judges once mishandled (found with the fuzz targets in `fuzz/`),
//! each kept under `tests/fuzz/<target>/`. A garbage answer is unhealthy with a reason,
//! never a panic and never healthy.

use rollcall_drivers::judge::{judge_redis_view, parse_nodes};
use std::path::Path;

fn input(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `gate_redis` target's input: expected node count, then CLUSTER INFO and
/// CLUSTER NODES separated by NUL bytes.
fn redis_parts(data: &[u8]) -> (usize, String, String) {
    let text = String::from_utf8(data[1..].to_vec()).unwrap();
    let mut parts = text.split('\0');
    let info = parts.next().unwrap_or("").to_string();
    let nodes = parts.next().unwrap_or("").to_string();
    (usize::from(data[0]), info, nodes)
}

#[test]
fn a_slot_range_beyond_the_16384_slots_is_malformed_not_an_overflow() {
    let (_, _, nodes) = redis_parts(&input("gate_redis", "slot-range-overflow"));
    let e = parse_nodes(&nodes).unwrap_err();
    assert_eq!(
        e,
        "malformed slot range `0-18446744073709551615` in CLUSTER NODES"
    );
    for bad in ["16384", "0-16384", "99999999999999999999"] {
        let line = format!("a 127.0.0.1:1@2 master - 0 0 1 connected {bad}");
        assert!(parse_nodes(&line).is_err(), "{bad}");
    }
    let ok = parse_nodes("a 127.0.0.1:1@2 master - 0 0 1 connected 0-16383").unwrap();
    assert_eq!(ok[0].slots, 16384);
}

#[test]
fn a_master_with_a_wrapping_slot_range_is_not_judged_slotless_and_healthy() {
    // before the fix a release build wrapped the count to 0 slots, so this master
    // without a replica passed the "every master with slots has a replica" check
    let info = "cluster_state:ok\ncluster_slots_assigned:16384\ncluster_slots_ok:16384\n\
                cluster_slots_pfail:0\ncluster_slots_fail:0\ncluster_known_nodes:1\n";
    let nodes = "a 127.0.0.1:1@2 myself,master - 0 0 1 connected 0-18446744073709551615\n";
    assert!(judge_redis_view(info, nodes, 1).is_err());
}
