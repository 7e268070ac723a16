//! The fleet loader on arbitrary fleet text. Imports resolve against
//! `examples/imported/`, so inputs can pull in its inventory and CSV.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollcall_fleet::{LoadOptions, load_str};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/imported"));
    let opts = LoadOptions { now: 1_790_000_000 };
    let _ = load_str("fuzz.toml", text, base, &opts);
});
