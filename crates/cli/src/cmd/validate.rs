//! `rollcall validate FLEET`: every error with file, line and field; or what the file holds.

use super::load;
use crate::run::{check_notify, remote_config};
use rollcall_core::Fleet;
use rollcall_drivers::config::RemoteConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The fleet file (TOML).
    fleet: PathBuf,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let name = self.fleet.display().to_string();
        let f = load(&self.fleet)?;
        let text = std::fs::read_to_string(&self.fleet).unwrap_or_default();
        let subscribers = check_notify(&name, &text, &f)?;
        let in_scope = f.hosts.iter().filter(|h| h.in_scope).count();
        println!(
            "{name}: ok: {} hosts ({in_scope} in scope) in {} regions, {} clusters, {} tenants, {} notices",
            f.hosts.len(),
            f.regions.len(),
            f.clusters.len(),
            f.tenants.len(),
            f.notices.len()
        );
        println!("  action: {}", f.maintenance.action.describe());
        if subscribers > 0 {
            println!("  {subscribers} notification subscribers");
        }
        let base = self
            .fleet
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let rc = remote_config(&name, &text, &base, &f)?;
        say_gates(&f, &rc);
        say_sources(&name, &text, &f)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The notice sources (`[aws]`, `[azure]`, `[gcp]`), checked, with their hosts.
fn say_sources(name: &str, text: &str, f: &Fleet) -> miette::Result<()> {
    use rollcall_providers::{aws::config::AwsSettings, settings::ProviderSettings};
    let ids: Vec<&str> = f.hosts.iter().map(|h| h.id.as_str()).collect();
    let ps = ProviderSettings::load(name, text, &ids).map_err(crate::run::config_report)?;
    let aws = AwsSettings::load(name, text, f).map_err(crate::run::config_report)?;
    let mut said = Vec::new();
    if let Some(a) = &aws {
        let imds = if a.imds.is_some() {
            " and their metadata"
        } else {
            ""
        };
        said.push(format!("aws: {} instance(s){imds}", a.hosts.len()));
    }
    for (table, s) in [("azure", &ps.azure), ("gcp", &ps.gcp)] {
        if let Some(s) = s {
            said.push(format!("{table}: {} host(s)", s.hosts.len()));
        }
    }
    if !said.is_empty() {
        println!("  notice sources: {}", said.join("; "));
    }
    Ok(())
}

/// The ssh/exec drivers' settings: each kind of gate once, with its clusters.
fn say_gates(f: &Fleet, rc: &RemoteConfig) {
    let mut kinds: Vec<(String, Vec<&str>)> = Vec::new();
    for (g, c) in rc.gates.iter().zip(&f.clusters) {
        let d = g.spec.describe();
        match kinds.iter_mut().find(|(k, _)| *k == d) {
            Some((_, ids)) => ids.push(&c.id),
            None => kinds.push((d, vec![&c.id])),
        }
    }
    for (d, ids) in kinds {
        let more = if ids.len() > 3 { ", ..." } else { "" };
        let list = ids.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        println!("  {} clusters ({list}{more}): {d}", ids.len());
    }
}
