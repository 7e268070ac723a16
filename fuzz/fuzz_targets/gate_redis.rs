//! The Redis gate's parsers and judges on arbitrary answers: CLUSTER INFO and
//! CLUSTER NODES (`judge_redis_view`, `parse_nodes`) and INFO replication
//! (`kv_lines`, `judge_rejoined`). The input is the answers separated by NUL bytes;
//! the first byte is the expected number of nodes.
#![no_main]

#[allow(dead_code)] // each target uses part of the module
#[path = "../../crates/drivers/src/judge.rs"]
mod judge;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&expected, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = text.split('\0');
    let info = parts.next().unwrap_or("");
    let nodes = parts.next().unwrap_or("");
    let replication = parts.next().unwrap_or("");
    let _ = judge::judge_redis_view(info, nodes, usize::from(expected));
    let _ = judge::parse_nodes(nodes);
    let _ = judge::judge_rejoined(&judge::kv_lines(replication));
});
