//! The admin API's request bodies (`POST /api/v1/admin/notices`, `POST` and `PATCH`
//! `/api/v1/admin/maintenances`): parsed and checked against the fleet of
//! `examples/imported/` as the handlers do. The first byte picks the body type;
//! the rest is the body.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/web/src/admin_body.rs"]
mod admin_body;

use admin_body::{MaintenancePatch, NewMaintenance, NewNotice, Schedule};
use libfuzzer_sys::fuzz_target;
use rollcall_fleet::{LoadOptions, load_file};
use rollcall_core::model::Fleet;
use std::path::Path;
use std::sync::OnceLock;

fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/imported/fleet.toml"
        ));
        load_file(path, &LoadOptions { now: 0 }).expect("example fleet")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let now = 1_796_162_400;
    match kind % 3 {
        0 => {
            if let Ok(n) = admin_body::parse_body::<NewNotice>(body) {
                let _ = admin_body::check_notice(&n, fleet(), now);
            }
        }
        1 => {
            if let Ok(n) = admin_body::parse_body::<NewMaintenance>(body) {
                let _ = admin_body::check_maintenance(&n, fleet());
            }
        }
        _ => {
            if let Ok(p) = admin_body::parse_body::<MaintenancePatch>(body) {
                let old = Schedule {
                    title: "kernel update".into(),
                    body: String::new(),
                    starts_at: now,
                    ends_at: now + 3600,
                    state: if kind & 4 == 0 { "scheduled" } else { "cancelled" }.into(),
                    sequence: if kind & 8 == 0 { 0 } else { u32::MAX },
                };
                let _ = admin_body::apply_patch(&old, &p);
            }
        }
    }
});
