//! The `sim` driver: simulated hosts that live outside the orchestrator process.
//!
//! The world's state is its reboot log, a text file with one line per action
//! (`reboot <host-id> <time>`, `replace <host-id> <time>`). Each action is written
//! (and flushed to the OS) before it takes effect, so a simulated host keeps rebooting
//! whether or not the orchestrator that asked for it survives, and a resumed
//! orchestrator sees the same world. Everything else about a host (how long it is
//! down, whether it comes back, gate flapping) is a pure function of the seed.

use crate::{BoxFuture, Driver};
use rollcall_core::engine::{Command, Event};
use rollcall_core::simworld::{SimParams, World};
use rollcall_core::{Fleet, HostIx};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct SimDriver {
    world: Mutex<World>,
    log: Mutex<File>,
    path: PathBuf,
    checks: AtomicU64,
}

/// What is wrong with the sim world's reboot log; each names the file (and line).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{}: cannot read the sim world: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot open the sim world: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Creating its directory, trimming a cut line, or appending to it failed.
    #[error("{}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {source}", .path.display())]
    ReadLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: bad time `{at}`", .path.display())]
    BadTime {
        path: PathBuf,
        line: usize,
        at: String,
    },
    #[error("{}:{line}: not a sim world line: `{text}`", .path.display())]
    BadLine {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{}: the sim world names host `{host}`, which is not in this fleet", .path.display())]
    UnknownHost { path: PathBuf, host: String },
    #[error("sim log lock poisoned")]
    Poisoned,
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
    move |source| SimError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// One line of the reboot log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub action: String,
    pub host: String,
    pub at: i64,
}

/// Read a reboot log. Errors name the file and line.
pub fn read_log(path: &Path) -> Result<Vec<LogEntry>, SimError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SimError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| SimError::ReadLine {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            [action @ ("reboot" | "replace"), host, at] => {
                let at = at.parse::<i64>().map_err(|_| SimError::BadTime {
                    path: path.to_path_buf(),
                    line: i + 1,
                    at: at.to_string(),
                })?;
                out.push(LogEntry {
                    action: action.to_string(),
                    host: host.to_string(),
                    at,
                });
            }
            _ => {
                return Err(SimError::BadLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    text: line.clone(),
                });
            }
        }
    }
    Ok(out)
}

impl SimDriver {
    /// Open (or create) the world at `path` for this fleet.
    pub fn open(fleet: Arc<Fleet>, params: SimParams, path: &Path) -> Result<SimDriver, SimError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        }
        // a line cut short by a crash mid-write never took effect: drop it
        if let Ok(bytes) = std::fs::read(path)
            && !bytes.is_empty()
            && bytes.last() != Some(&b'\n')
        {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(write_err(path))?;
            f.set_len(keep as u64).map_err(write_err(path))?;
        }
        let ix: HashMap<&str, HostIx> = fleet
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.id.as_str(), i as HostIx))
            .collect();
        let mut world = World::new(fleet.clone(), params);
        for e in read_log(path)? {
            let Some(&h) = ix.get(e.host.as_str()) else {
                return Err(SimError::UnknownHost {
                    path: path.to_path_buf(),
                    host: e.host,
                });
            };
            match e.action.as_str() {
                "reboot" => world.reboot(h, e.at),
                _ => world.replace(h, e.at),
            }
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SimError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(SimDriver {
            world: Mutex::new(world),
            log: Mutex::new(log),
            path: path.to_path_buf(),
            checks: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&self, action: &str, h: HostIx, at: i64, world: &World) -> Result<(), SimError> {
        let line = format!("{action} {} {at}\n", world.fleet.hosts[h as usize].id);
        let mut f = self.log.lock().map_err(|_| SimError::Poisoned)?;
        f.write_all(line.as_bytes())
            .map_err(write_err(&self.path))?;
        f.flush().map_err(write_err(&self.path))
    }

    fn run(&self, cmd: &Command, now: i64) -> Event {
        let check = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut world) = self.world.lock() else {
            return Event::failed(cmd, "sim world lock poisoned".into());
        };
        match *cmd {
            Command::Reboot { host, .. } if world.boot_id(host, now).is_some() => {
                if let Err(e) = self.record("reboot", host, now, &world) {
                    return Event::failed(cmd, e.to_string());
                }
            }
            Command::Replace { host } => {
                if let Err(e) = self.record("replace", host, now, &world) {
                    return Event::failed(cmd, e.to_string());
                }
            }
            _ => {}
        }
        world.execute(cmd, now, check)
    }
}

impl Driver for SimDriver {
    fn execute(&self, cmd: Command, now: i64) -> BoxFuture<'_, Event> {
        let ev = self.run(&cmd, now);
        Box::pin(async move { ev })
    }
    fn name(&self) -> &'static str {
        "sim"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::generate::{GenParams, generate};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rollcall-sim-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.join("world.log")
    }

    #[test]
    fn the_world_outlives_the_driver() {
        let fleet = Arc::new(generate(&GenParams::new(20, 3, 1)));
        let path = tmp("outlives");
        let d = SimDriver::open(fleet.clone(), SimParams::default(), &path).unwrap();
        let before = d.run(&Command::Probe { host: 0 }, 100);
        let Event::Probed {
            boot_id: Some(b0), ..
        } = before
        else {
            panic!("{before:?}")
        };
        d.run(
            &Command::Reboot {
                host: 0,
                boot_id: b0.clone(),
                attempt: 1,
            },
            100,
        );
        drop(d);
        // a new orchestrator opens the same world: the host is down, then back with a new boot id
        let d = SimDriver::open(fleet, SimParams::default(), &path).unwrap();
        assert_eq!(
            d.run(&Command::Probe { host: 0 }, 101),
            Event::Probed {
                host: 0,
                boot_id: None
            }
        );
        let Event::Probed {
            boot_id: Some(b1), ..
        } = d.run(&Command::Probe { host: 0 }, 100 + 3600)
        else {
            panic!()
        };
        assert_ne!(b0, b1);
        assert_eq!(read_log(&path).unwrap().len(), 1);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_dropped_and_garbage_is_an_error() {
        let fleet = Arc::new(generate(&GenParams::new(20, 3, 1)));
        let path = tmp("cut");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let id = fleet.hosts[1].id.clone();
        std::fs::write(&path, format!("reboot {id} 50\nreboot {id} 6")).unwrap();
        let d = SimDriver::open(fleet.clone(), SimParams::default(), &path).unwrap();
        drop(d);
        assert_eq!(
            read_log(&path).unwrap(),
            vec![LogEntry {
                action: "reboot".into(),
                host: id.clone(),
                at: 50
            }]
        );

        std::fs::write(&path, "reboot nosuchhost 5\n").unwrap();
        let e = SimDriver::open(fleet.clone(), SimParams::default(), &path)
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("nosuchhost") && e.to_string().contains("not in this fleet"),
            "{e}"
        );
        std::fs::write(&path, "hello world\nreboot x 1\n").unwrap();
        let e = SimDriver::open(fleet, SimParams::default(), &path)
            .err()
            .unwrap();
        assert!(e.to_string().contains("world.log:1"), "{e}");
    }
}
