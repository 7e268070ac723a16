//! What the driver tests share beyond `rollcall-testkit` (which cannot depend on the
//! drivers: they depend on it).

use rollcall_core::engine::{Command, Event};
use rollcall_core::model::HostIx;
use rollcall_drivers::Driver;

/// A preflight of `host` alone (no peers): the driver's verdict, the boot id or why not.
pub async fn preflight<D: Driver + ?Sized>(drv: &D, host: HostIx) -> Result<String, String> {
    match drv
        .execute(Command::Preflight { host, with: vec![] }, 0)
        .await
    {
        Event::Preflight { host: h, result } if h == host => result,
        e => panic!("a preflight of host {host} answered {e:?}"),
    }
}
