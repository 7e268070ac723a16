//! Test peers installed by `scripts/test`, found here once: the Statuspage clients' venv
//! (PyPI statuspage-prometheus-exporter, feedparser, icalendar, jsonschema, pinned in
//! `scripts/test`), at `$ROLLCALL_CLIENTS_VENV`, default
//! `~/.cache/rollcall/statuspage-clients-1`; OR-Tools for the plan-quality oracle, at
//! `$ROLLCALL_ORTOOLS_VENV`, default `~/.cache/rollcall/ortools-9.15.6755`. Without them
//! the tests fail, saying how to install them.

use std::path::PathBuf;

/// The python of a venv `scripts/test` installs: `$env`, else `~/.cache/rollcall/<dir>`.
/// Missing, the test fails saying that `what` is not installed and how `scripts/test`
/// installs it (`how`), or which variable names another venv.
pub fn venv_python(env: &str, dir: &str, what: &str, how: &str) -> PathBuf {
    let venv = match std::env::var_os(env) {
        Some(v) => PathBuf::from(v),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/rollcall").join(dir)
        }
    };
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{what} is not installed: {} is missing. Run scripts/test (it {how}), or set {env} \
         to a venv that has it",
        py.display()
    );
    py
}

/// The clients venv's python.
pub fn clients_python() -> PathBuf {
    venv_python(
        "ROLLCALL_CLIENTS_VENV",
        "statuspage-clients-1",
        "the Statuspage clients",
        "creates the venv and installs the pinned clients from PyPI",
    )
}

/// The OR-Tools version `scripts/test` installs for the plan-quality oracle.
pub const ORTOOLS_VERSION: &str = "9.15.6755";

/// The OR-Tools venv's python (the oracle, crates/core/tests/oracle/oracle.py).
pub fn ortools_python() -> PathBuf {
    venv_python(
        "ROLLCALL_ORTOOLS_VENV",
        &format!("ortools-{ORTOOLS_VERSION}"),
        "OR-Tools",
        &format!("creates the venv and installs ortools=={ORTOOLS_VERSION} from PyPI"),
    )
}
