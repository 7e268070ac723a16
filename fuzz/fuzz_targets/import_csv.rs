//! The CSV host list reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollcall_fleet::error::SourceFile;
use rollcall_fleet::import::parse_csv;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_csv(&SourceFile::new("hosts.csv", text));
});
