//! Journal records as the store keeps them (one record's `data` JSON per line),
//! decoded into engine records the way the runtime does (`serde_json` into
//! `engine::Output`), then checked by the journal checker and replayed by
//! `Engine::restore` on the fleet of `examples/imported/`, which then takes a step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollcall_fleet::{LoadOptions, load_file};
use rollcall_core::engine::{Engine, EngineConfig, Output, check_journal};
use rollcall_core::model::Fleet;
use rollcall_core::plan::{Plan, plan};
use std::path::Path;
use std::sync::{Arc, OnceLock};

fn fleet() -> &'static (Arc<Fleet>, Plan) {
    static FLEET: OnceLock<(Arc<Fleet>, Plan)> = OnceLock::new();
    FLEET.get_or_init(|| {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/imported/fleet.toml"
        ));
        let fleet = Arc::new(load_file(path, &LoadOptions { now: 0 }).expect("example fleet"));
        let p = plan(&fleet);
        (fleet, p)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut records = Vec::new();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let Ok(record) = serde_json::from_value::<Output>(value) else {
            return;
        };
        records.push(record);
    }
    let (fleet, p) = fleet();
    let _ = check_journal(fleet, p, &records);
    let now = records.iter().map(Output::at).max().unwrap_or(0);
    if let Ok(mut engine) = Engine::restore(fleet.clone(), p, EngineConfig::default(), &records) {
        engine.step(now);
        let _ = engine.drain_outputs();
        let _ = engine.next_wakeup(now);
        let _ = engine.progress();
    }
});
