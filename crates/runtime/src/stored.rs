//! A run's fleet as stored with it: the fleet file's text and the files it imported
//! (`runs.fleet_imports`, a [`StoredImports`] with a digest). Everything that rebuilds the
//! fleet of a stored run (resume, status, notify, the status page) goes through
//! [`stored_fleet`], which never reads the disk.

use rollcall_core::Fleet;
use rollcall_fleet::sources::{FleetFiles, StoredImports, load_stored};
use rollcall_fleet::{ConfigError, ConfigErrors, LoadOptions};
use rollcall_store::RunRow;
use std::path::Path;

/// How a stored run's fleet file is named in messages.
pub fn stored_name(row: &RunRow) -> String {
    format!("{} (as stored with run {})", row.fleet_path, row.id)
}

/// The directory the run's fleet file was in (names imported files in messages).
pub fn stored_base(row: &RunRow) -> std::path::PathBuf {
    Path::new(&row.fleet_path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The value to store in `NewRun::fleet_imports` for the files a run starts with.
pub fn imports_value(files: &FleetFiles) -> Option<serde_json::Value> {
    serde_json::to_value(files.stored()).ok()
}

/// The imported files stored with a run (`None`: a run stored before they were kept).
pub fn stored_imports(row: &RunRow) -> Result<Option<StoredImports>, ConfigErrors> {
    let Some(v) = &row.fleet_imports else {
        return Ok(None);
    };
    serde_json::from_value(v.clone()).map(Some).map_err(|e| {
        let name = stored_name(row);
        ConfigErrors {
            file: name.clone(),
            errors: vec![ConfigError::file(
                &name,
                "fleet_imports",
                format!(
                    "the imported files stored with run {} are not understood: {e}",
                    row.id
                ),
            )],
        }
    })
}

/// The run's fleet exactly as it started: its stored text and imports, the maintenance
/// start it used. Never touches the disk.
pub fn stored_fleet(row: &RunRow, start: Option<i64>) -> Result<Fleet, ConfigErrors> {
    let opts = match start {
        Some(now) => LoadOptions { now },
        None => LoadOptions::default(),
    };
    let imports = stored_imports(row)?;
    let mut fleet = load_stored(
        &stored_name(row),
        &row.fleet_text,
        &stored_base(row),
        imports.as_ref(),
        &row.id,
        &opts,
    )?;
    for id in done_before(row) {
        if let Some(h) = fleet.hosts.iter_mut().find(|h| h.id == id) {
            h.in_scope = false;
        }
    }
    Ok(fleet)
}

/// Hosts a replanned run inherits as done from the run it replaced (`params.replan.done`):
/// out of its scope, never touched again.
pub fn done_before(row: &RunRow) -> Vec<String> {
    row.params
        .get("replan")
        .and_then(|r| r.get("done"))
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
