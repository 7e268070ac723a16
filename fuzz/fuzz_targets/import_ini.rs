//! The Ansible inventory reader, INI format: a leading `[ungrouped]` section header
//! makes the reader take the INI path whatever follows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollcall_fleet::error::SourceFile;
use rollcall_fleet::import::parse_ansible;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_ansible(&SourceFile::new("inventory.ini", format!("[ungrouped]\n{text}")));
});
