//! The Ansible inventory reader, YAML format: a leading `---` makes the reader take
//! the YAML path whatever follows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollcall_fleet::error::SourceFile;
use rollcall_fleet::import::parse_ansible;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_ansible(&SourceFile::new("inventory.yml", format!("---\n{text}")));
});
