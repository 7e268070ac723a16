//! Fleet files the tests share, kept as TOML in `crates/testkit/fixtures/` (each is the
//! exact text the tests used inline before, a leading newline included).

/// 11 hosts in dfw and ord, tenants acme and globex, one cluster per kind
/// (elasticsearch, redis-cluster, etcd, http); `on_missing = "continue"`.
pub const NOTIFY: &str = include_str!("../fixtures/notify.toml");

/// 6 hosts in dfw and ord, an acme search cluster and a globex etcd cluster.
pub const NOTIFY_CLI: &str = include_str!("../fixtures/notify-cli.toml");
