//! Host drivers: they carry out the engine's commands and answer with events.
//!
//! A driver never decides anything. Every failure becomes the failing event
//! ([`Event::failed`]): an error, a timeout or an answer that cannot be parsed is
//! unhealthy, never healthy.

pub mod config;
pub mod ec2;
pub mod error;
pub mod etcd;
pub mod etcd_json;
pub mod gates;
pub mod judge;
pub mod onhost;
pub mod remote;
pub mod search;
pub mod sim;
pub mod transport;

pub use error::DriverError;
use rollcall_core::engine::{Command, Event, Hold};
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Executes engine commands. `now` is the run clock (seconds) when the command starts.
pub trait Driver: Send + Sync + 'static {
    fn execute(&self, cmd: Command, now: i64) -> BoxFuture<'_, Event>;
    /// A short name for logs and the run record.
    fn name(&self) -> &'static str;
    /// Take over what drains of a restored run still hold (from its journal), so that
    /// restores and releases put back the values from before the drains.
    fn adopt(&self, _holds: &[(rollcall_core::HostIx, Hold)]) -> Result<(), DriverError> {
        Ok(())
    }
    /// Hosts that should go last among their clusters' members, each with why (an
    /// Elasticsearch cluster's elected manager). Asked when a run starts or resumes;
    /// a cluster that cannot say is left in plan order (`None`, with the reason).
    fn go_last(&self) -> BoxFuture<'_, Vec<LastHost>> {
        Box::pin(async { Vec::new() })
    }
    /// Once when a stored run is resumed, before it is driven: take back what this driver
    /// did before the restart that the journal does not carry (the ec2 driver: the
    /// instances it launched as replacements). What it took back, to be said.
    fn resumed(&self) -> BoxFuture<'_, Result<Vec<String>, DriverError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A host that should go last among its cluster's members, and why; `host: None` when
/// the cluster cannot say (`why` then says why not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastHost {
    pub host: Option<rollcall_core::HostIx>,
    pub why: String,
}

/// The transport of the `ssh` or `exec` driver, from its driver settings (also what
/// [`onhost::OnHost`] reads metadata through).
pub fn transport(
    kind: &str,
    cfg: &config::RemoteConfig,
) -> Result<Box<dyn transport::Transport>, DriverError> {
    Ok(match kind {
        "ssh" => Box::new(transport::SshTransport {
            settings: cfg.ssh.clone(),
        }),
        "exec" => match &cfg.exec {
            Some(t) => Box::new(transport::ExecTransport {
                template: t.clone(),
            }),
            None => return Err(DriverError::ExecWithoutCommand),
        },
        k => return Err(DriverError::UnknownDriver(k.to_string())),
    })
}

/// Build the `ssh` or `exec` driver for a fleet from its driver settings.
pub fn remote_driver(
    kind: &str,
    fleet: std::sync::Arc<rollcall_core::Fleet>,
    cfg: config::RemoteConfig,
) -> Result<remote::RemoteDriver, DriverError> {
    let transport = transport(kind, &cfg)?;
    Ok(remote::RemoteDriver::new(
        fleet,
        std::sync::Arc::new(cfg),
        transport,
    ))
}
