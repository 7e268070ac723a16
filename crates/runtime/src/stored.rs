//! A run as stored: its parameters ([`RunParams`]), its fleet exactly as it started (the
//! fleet file's text and the files it imported, `runs.fleet_imports`, a [`StoredImports`]
//! with a digest) and its row. Everything that rebuilds a stored run (resume, status,
//! replan, notify, the status page) goes through [`StoredRun::load`], which never reads
//! the disk, so they all see the same fleet: the same start, the same `--on-missing`, the
//! same hosts left out by a replan.

use rollcall_core::simworld::SimParams;
use rollcall_core::{Fleet, OnMissing};
use rollcall_fleet::sources::{FleetFiles, HostDiff, StoredImports, load_stored};
use rollcall_fleet::{ConfigError, ConfigErrors, LoadOptions};
use rollcall_store::RunRow;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Clock;

/// The host driver a run uses; stored with it as `"sim"`, `"ssh"` or `"exec"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Simulated hosts (the default): the simulator's world, on a scaled clock.
    Sim,
    /// Real hosts over SSH.
    Ssh,
    /// Real hosts through local commands.
    Exec,
    /// EC2 instances: SSH for everything but the reboot (`RebootInstances`), status
    /// checks beside the boot id, replacement of missing instances (`[aws]`).
    Ec2,
}

impl DriverKind {
    pub const ALL: [DriverKind; 4] = [
        DriverKind::Sim,
        DriverKind::Ssh,
        DriverKind::Exec,
        DriverKind::Ec2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Sim => "sim",
            DriverKind::Ssh => "ssh",
            DriverKind::Exec => "exec",
            DriverKind::Ec2 => "ec2",
        }
    }

    /// How a real driver reaches its hosts (`ssh` or `exec`; EC2 instances over SSH).
    pub fn transport(self) -> &'static str {
        match self {
            DriverKind::Ec2 => "ssh",
            k => k.name(),
        }
    }

    pub fn parse(s: &str) -> Option<DriverKind> {
        DriverKind::ALL.into_iter().find(|d| d.name() == s)
    }

    /// Real hosts on the wall clock.
    pub fn is_real(self) -> bool {
        self != DriverKind::Sim
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a run needs to be resumed, stored with it (`runs.params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunParams {
    pub driver: DriverKind,
    pub clock: Clock,
    pub sim: Option<SimParams>,
    /// The simulated world (sim driver): its reboot log.
    pub world: Option<PathBuf>,
    /// The maintenance start the run used (the fleet file may leave it to "now").
    #[serde(default)]
    pub start: Option<i64>,
    /// `--on-missing` given to `run`, applied again whenever the run is loaded.
    #[serde(default)]
    pub on_missing: Option<OnMissing>,
    /// The run this one replaced (`resume --replan`) and the hosts it had done.
    #[serde(default)]
    pub replan: Option<Replan>,
}

/// What a replanned run records about the run it replaced (`RunParams::replan`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replan {
    /// The run it replaced.
    pub from: String,
    /// Host ids done before it started: out of its scope, never touched again.
    pub done: Vec<String>,
    /// Hosts added, removed and changed from the replaced run's fleet.
    pub diff: HostDiff,
}

impl RunParams {
    /// The options a stored fleet is loaded with: the run's own start.
    pub fn load_options(&self) -> LoadOptions {
        match self.start {
            Some(now) => LoadOptions { now },
            None => LoadOptions::default(),
        }
    }

    /// Hosts a replanned run inherits as done from the run it replaced.
    pub fn done_before(&self) -> &[String] {
        self.replan.as_ref().map(|r| &r.done[..]).unwrap_or(&[])
    }

    /// The run's overrides applied to a freshly loaded fleet (`--on-missing`, hosts done
    /// before a replan).
    pub fn apply(&self, fleet: &mut Fleet) {
        if let Some(p) = self.on_missing {
            fleet.maintenance.on_missing = p;
        }
        for id in self.done_before() {
            if let Some(h) = fleet.hosts.iter_mut().find(|h| &h.id == id) {
                h.in_scope = false;
            }
        }
    }
}

/// Why a stored run cannot be rebuilt.
#[derive(Debug)]
pub enum LoadError {
    /// `runs.params` is not a [`RunParams`].
    Params { run: String, error: String },
    /// The stored fleet no longer loads (or its imports do not match their digest).
    Fleet(ConfigErrors),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Params { run, error } => {
                write!(f, "run {run}: its parameters are not understood: {error}")
            }
            LoadError::Fleet(e) => write!(f, "{}", e.listing()),
        }
    }
}

impl std::error::Error for LoadError {}

/// A run as stored, with its parameters and its fleet rebuilt from the store alone.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub row: RunRow,
    pub params: RunParams,
    pub fleet: Arc<Fleet>,
}

impl StoredRun {
    /// Rebuild run `row`: its parameters, and its fleet from the stored text and imports
    /// with the run's start and overrides. Never touches the disk.
    pub fn load(row: RunRow) -> Result<StoredRun, LoadError> {
        let params: RunParams =
            serde_json::from_value(row.params.clone()).map_err(|e| LoadError::Params {
                run: row.id.clone(),
                error: e.to_string(),
            })?;
        let imports = stored_imports(&row).map_err(LoadError::Fleet)?;
        let mut fleet = load_stored(
            &stored_name(&row),
            &row.fleet_text,
            &stored_base(&row),
            imports.as_ref(),
            &row.id,
            &params.load_options(),
        )
        .map_err(LoadError::Fleet)?;
        params.apply(&mut fleet);
        Ok(StoredRun {
            row,
            params,
            fleet: Arc::new(fleet),
        })
    }

    pub fn id(&self) -> &str {
        &self.row.id
    }

    /// How the stored fleet file is named in messages.
    pub fn name(&self) -> String {
        stored_name(&self.row)
    }

    /// The directory the fleet file was in (resolves relative paths in its settings).
    pub fn base(&self) -> PathBuf {
        stored_base(&self.row)
    }
}

/// How a stored run's fleet file is named in messages.
fn stored_name(row: &RunRow) -> String {
    format!("{} (as stored with run {})", row.fleet_path, row.id)
}

/// The directory the run's fleet file was in (names imported files in messages).
fn stored_base(row: &RunRow) -> PathBuf {
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
