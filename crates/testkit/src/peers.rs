//! Test peers installed by `scripts/test`, found here once: the Statuspage clients' venv
//! (PyPI statuspage-prometheus-exporter, feedparser, icalendar, jsonschema, pinned in
//! `scripts/test`), at `$ROLLCALL_CLIENTS_VENV`, default
//! `~/.cache/rollcall/statuspage-clients-1`; OR-Tools for the plan-quality oracle, at
//! `$ROLLCALL_ORTOOLS_VENV`, default `~/.cache/rollcall/ortools-9.15.6755`. Without them
//! the tests fail, saying how to install them.

use std::path::PathBuf;

/// The clients venv's python.
pub fn clients_python() -> PathBuf {
    let venv = match std::env::var_os("ROLLCALL_CLIENTS_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/rollcall/statuspage-clients-1")
        }
    };
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "the Statuspage clients are not installed: {} is missing. Run scripts/test (it \
         creates the venv and installs the pinned clients from PyPI), or set \
         ROLLCALL_CLIENTS_VENV to a venv that has them",
        py.display()
    );
    py
}

/// The OR-Tools version `scripts/test` installs for the plan-quality oracle.
pub const ORTOOLS_VERSION: &str = "9.15.6755";

/// The OR-Tools venv's python (the oracle, crates/core/tests/oracle/oracle.py).
pub fn ortools_python() -> PathBuf {
    let venv = match std::env::var_os("ROLLCALL_ORTOOLS_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(format!(".cache/rollcall/ortools-{ORTOOLS_VERSION}"))
        }
    };
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "OR-Tools is not installed: {} is missing. Run scripts/test (it creates the venv \
         and installs ortools=={ORTOOLS_VERSION} from PyPI), or set ROLLCALL_ORTOOLS_VENV \
         to a venv that has it",
        py.display()
    );
    py
}
