//! The HTTP gate's JSON judging on arbitrary bodies and expectations. The input is
//! the body, a NUL byte, then expectations one a line as `path=JSON value` (a JSON
//! pointer `/a/0` or a dotted path `a.0`), as a fleet file's `expect` table gives them.
#![no_main]

#[allow(dead_code)] // each target uses part of the module
#[path = "../../crates/drivers/src/judge.rs"]
mod judge;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (body, expect) = text.split_once('\0').unwrap_or((text, ""));
    let expect: Vec<(String, serde_json::Value)> = expect
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(p, v)| Some((p.to_string(), serde_json::from_str(v).ok()?)))
        .collect();
    let _ = judge::judge_json(body, &expect);
});
