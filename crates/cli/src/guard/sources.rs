//! The notice sources a fleet file configures (`[aws]`, `[aws.imds]`, `[azure]`, `[gcp]`),
//! and how their metadata is read (on the host over the driver's transport, or directly).

use rollcall_core::Fleet;
use rollcall_providers::http::{Direct, HostFetch};
use rollcall_providers::{NoticeSource, Pulled};
use rollcall_runtime::DriverKind;
use std::path::Path;
use std::sync::Arc;

pub struct Sources {
    list: Vec<Box<dyn NoticeSource>>,
    fetch: Arc<dyn HostFetch>,
}

impl Sources {
    /// The sources of the fleet file; an error when it configures none.
    pub fn load(
        _driver: DriverKind,
        name: &str,
        _text: &str,
        _base: &Path,
        _fleet: &Fleet,
    ) -> miette::Result<Sources> {
        let list: Vec<Box<dyn NoticeSource>> = Vec::new();
        if list.is_empty() {
            return Err(miette::miette!(
                "{name}: no notice source: add [aws] (EC2 API), [aws.imds], [azure] or [gcp] with the hosts they cover"
            ));
        }
        Ok(Sources {
            list,
            fetch: Arc::new(Direct::default()),
        })
    }

    /// Every host of every source, read once (sources one after another; each reads its
    /// hosts as it sees fit).
    pub async fn pull(&self) -> Vec<Pulled> {
        let mut out = Vec::new();
        for s in &self.list {
            out.extend(s.pull(self.fetch.as_ref()).await);
        }
        out
    }

    /// How many hosts the sources cover.
    pub fn hosts(&self) -> usize {
        let mut h: Vec<String> = self.list.iter().flat_map(|s| s.hosts()).collect();
        h.sort();
        h.dedup();
        h.len()
    }

    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.list.iter().map(|s| s.source().as_str()).collect();
        names.join(", ")
    }
}
