//! The drivers' errors: what went wrong, with what an operator needs to find it (the
//! cluster, the host or URL asked, the command run, the underlying error as the source).
//! Their texts are the details the failing events carry, so they read as one sentence.

use crate::etcd::EtcdError;
pub use crate::judge::Unhealthy;
use crate::transport::{CmdOutput, RunError};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A cluster or host answered, and the answer is unhealthy or cannot be judged.
    #[error(transparent)]
    Unhealthy(#[from] Unhealthy),
    /// About one cluster of the fleet.
    #[error("{cluster}: {source}")]
    Cluster {
        cluster: String,
        #[source]
        source: Box<DriverError>,
    },
    /// A gate that did not answer in time.
    #[error("{cluster}: no answer within {}s", .timeout.as_secs_f64())]
    GateTimeout { cluster: String, timeout: Duration },
    /// What was asked (a URL, a Redis node and command) when `source` happened.
    #[error("{at}: {source}")]
    At {
        at: String,
        #[source]
        source: Box<DriverError>,
    },
    /// An HTTP request that got no answer (refused, timed out, TLS); `doing` names the
    /// method and URL.
    #[error("{doing}: {}", http_detail(.source, *.chain))]
    Http {
        doing: String,
        #[source]
        source: reqwest::Error,
        /// Whether the message lists the error's sources ("error sending request"
        /// alone says nothing).
        chain: bool,
    },
    /// An HTTP answer with a status that is not the one wanted.
    #[error("{doing}: {why}")]
    HttpStatus {
        doing: String,
        status: u16,
        why: String,
    },
    #[error("http client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("tls_ca {}: {source}", .path.display())]
    TlsCa {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// A Redis node could not be reached, or a command to it failed.
    #[error("{node}{}: {source}", .command.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Redis {
        node: String,
        command: Option<String>,
        #[source]
        source: redis::RedisError,
    },
    /// A Redis node whose own view of the cluster is unhealthy.
    #[error("{node} says {why}")]
    Says {
        node: String,
        #[source]
        why: Unhealthy,
    },
    /// A command (on a host, or a local gate command) that could not run.
    #[error("`{command}`: {source}")]
    Run {
        command: String,
        #[source]
        source: RunError,
    },
    /// A command that could not run (its text is said by the caller).
    #[error(transparent)]
    Transport(#[from] RunError),
    /// An action's check command that could not run.
    #[error("check `{check}`: {source}")]
    CheckRun {
        check: String,
        #[source]
        source: RunError,
    },
    /// An action's check command that ended without an exit status.
    #[error("check `{check}`: {outcome}")]
    CheckExit { check: String, outcome: String },
    /// A command that ran and failed; `outcome` is its exit status and first line.
    #[error("`{command}`: {outcome}")]
    Exit { command: String, outcome: String },
    /// Every one asked failed (each member, each replica): `what` did not happen.
    #[error("{what}: {}", join(.errors))]
    Every {
        what: String,
        errors: Vec<DriverError>,
    },
    /// Several failures, each told (restores of a host's clusters).
    #[error("{}", join(.0))]
    All(Vec<DriverError>),
    /// A drain that failed after others of the host's clusters were drained; undoing
    /// those failed as `undo_errors` say.
    #[error("{source}{}", undo_failures(.undo_errors))]
    DrainFailed {
        #[source]
        source: Box<DriverError>,
        undo_errors: Vec<DriverError>,
    },
    /// A change that failed and was undone (`undone` says what was put back).
    #[error("{source} ({undone})")]
    Undone {
        #[source]
        source: Box<DriverError>,
        undone: String,
    },
    /// A change that failed, and undoing it (`undo`) failed too: the cluster may be left
    /// changed.
    #[error("{source}; and {undo} failed too: {undo_error}")]
    UndoFailed {
        #[source]
        source: Box<DriverError>,
        undo: String,
        undo_error: Box<DriverError>,
    },
    /// A host the command is about is not a member of the cluster the gate asks.
    #[error("host is not a member")]
    NotAMember,
    #[error("host not in its cluster")]
    NotInCluster,
    /// A journalled drain hold names a cluster the fleet does not have.
    #[error("cluster index {0} not in this fleet")]
    UnknownClusterIx(u32),
    /// A journalled drain hold whose saved value cannot be read back.
    #[error("{cluster}: the journalled allocation `{undo}` of {host} is not understood ({source})")]
    BadHold {
        cluster: String,
        host: String,
        undo: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no driver `{0}` (sim, ssh, exec)")]
    UnknownDriver(String),
    #[error("the exec driver needs `[exec] command = \"...{{command}}...\"` in the fleet file")]
    ExecWithoutCommand,
    /// The simulator's world file.
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    /// The EC2 API (the ec2 driver), or its credentials.
    #[error(transparent)]
    Provider(#[from] rollcall_providers::ProviderError),
    /// The ec2 driver about one host: a replacement that did not come up, ...
    #[error("{host}: {what}")]
    Ec2 { host: String, what: String },
}

impl DriverError {
    /// `command` ran and failed as `o` tells.
    pub fn exited(command: impl Into<String>, o: &CmdOutput) -> DriverError {
        DriverError::Exit {
            command: command.into(),
            outcome: o.describe(),
        }
    }
    /// `command` could not run.
    pub fn run(command: impl Into<String>, source: RunError) -> DriverError {
        DriverError::Run {
            command: command.into(),
            source,
        }
    }
    /// This error, about `cluster`.
    pub fn in_cluster(self, cluster: &str) -> DriverError {
        DriverError::Cluster {
            cluster: cluster.to_string(),
            source: Box::new(self),
        }
    }
    /// This change failed and was undone as `undone` says.
    pub fn undone(self, undone: impl Into<String>) -> DriverError {
        DriverError::Undone {
            source: Box::new(self),
            undone: undone.into(),
        }
    }
    /// This change failed, and `undo` failed too with `undo_error`.
    pub fn undo_failed(self, undo: impl Into<String>, undo_error: DriverError) -> DriverError {
        DriverError::UndoFailed {
            source: Box::new(self),
            undo: undo.into(),
            undo_error: Box::new(undo_error),
        }
    }
    /// This error, from asking `at`.
    pub fn at(self, at: impl Into<String>) -> DriverError {
        DriverError::At {
            at: at.into(),
            source: Box::new(self),
        }
    }
}

/// An unhealthy verdict with this reason.
pub fn unhealthy(why: impl Into<String>) -> DriverError {
    DriverError::Unhealthy(Unhealthy(why.into()))
}

/// Several problems found together (a preflight's, a verify's), each told.
pub fn problems(all: &[String]) -> DriverError {
    unhealthy(all.join("; "))
}

fn join(errors: &[DriverError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("; ")
}

fn undo_failures(errors: &[DriverError]) -> String {
    errors
        .iter()
        .map(|u| format!("; undoing the drain failed: {u}"))
        .collect()
}

/// reqwest's message, with its sources when `chain`.
fn http_detail(e: &reqwest::Error, chain: bool) -> String {
    use std::error::Error;
    if !chain {
        return e.to_string();
    }
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(&format!(": {x}"));
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(s: &str) -> DriverError {
        unhealthy(s)
    }

    #[test]
    fn composed_errors_read_as_the_sentences_they_replaced() {
        let says = DriverError::Says {
            node: "10.0.0.1:6379".into(),
            why: Unhealthy("cluster_state:fail (want ok)".into()),
        };
        assert_eq!(
            says.in_cluster("cache").to_string(),
            "cache: 10.0.0.1:6379 says cluster_state:fail (want ok)"
        );
        let timeout = DriverError::GateTimeout {
            cluster: "kv".into(),
            timeout: Duration::from_millis(1500),
        };
        assert_eq!(timeout.to_string(), "kv: no answer within 1.5s");
        assert_eq!(
            why("not acknowledged")
                .undone("put back: primaries")
                .to_string(),
            "not acknowledged (put back: primaries)"
        );
        assert_eq!(
            why("e")
                .undo_failed("putting it back", why("u"))
                .at("raising x")
                .to_string(),
            "raising x: e; and putting it back failed too: u"
        );
        let drain = DriverError::DrainFailed {
            source: Box::new(why("second: `false`: exit 1")),
            undo_errors: vec![why("a"), why("b")],
        };
        assert_eq!(
            drain.to_string(),
            "second: `false`: exit 1; undoing the drain failed: a; undoing the drain failed: b"
        );
        let every = DriverError::Every {
            what: "no member answers".into(),
            errors: vec![why("x"), DriverError::NotAMember],
        };
        assert_eq!(
            every.to_string(),
            "no member answers: x; host is not a member"
        );
        assert_eq!(
            DriverError::run("sleep 9", RunError::Timeout(Duration::from_secs(2))).to_string(),
            "`sleep 9`: no answer within 2s"
        );
        assert_eq!(
            DriverError::UnknownDriver("ftp".into()).to_string(),
            "no driver `ftp` (sim, ssh, exec)"
        );
        assert_eq!(
            DriverError::ExecWithoutCommand.to_string(),
            "the exec driver needs `[exec] command = \"...{command}...\"` in the fleet file"
        );
    }

    #[test]
    fn the_underlying_error_stays_reachable_as_the_source() {
        use std::error::Error;
        let e = DriverError::NotAMember.in_cluster("web");
        let inner = e.source().expect("a cluster error has its cause as source");
        assert_eq!(inner.to_string(), "host is not a member");
        let bad = serde_json::from_str::<u8>("x").unwrap_err();
        let hold = DriverError::BadHold {
            cluster: "search".into(),
            host: "os1".into(),
            undo: "x".into(),
            source: bad,
        };
        assert!(hold.source().is_some());
        assert!(
            hold.to_string()
                .starts_with("search: the journalled allocation `x` of os1 is not understood (")
        );
    }
}
