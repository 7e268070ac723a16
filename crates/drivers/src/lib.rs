//! Host drivers: they carry out the engine's commands and answer with events.
//!
//! A driver never decides anything. Every failure becomes the failing event
//! ([`Event::failed`]): an error, a timeout or an answer that cannot be parsed is
//! unhealthy, never healthy.

pub mod sim;

use rollcall_core::engine::{Command, Event};
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Executes engine commands. `now` is the run clock (seconds) when the command starts.
pub trait Driver: Send + Sync + 'static {
    fn execute(&self, cmd: Command, now: i64) -> BoxFuture<'_, Event>;
    /// A short name for logs and the run record.
    fn name(&self) -> &'static str;
}
