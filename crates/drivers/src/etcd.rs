//! etcd through its v3 JSON gateway: the HTTP API every etcd (3.4 and later) serves on
//! its client port, beside gRPC (`POST /v3/maintenance/status`, `/v3/kv/range`, ...).
//!
//! rollcall speaks to etcd this way rather than through a gRPC client so that it builds
//! with the Rust toolchain alone: the gRPC crates need `protoc` and the protobuf includes
//! at build time. The gateway's bodies are protobuf's JSON mapping: 64-bit integers are
//! strings, fields equal to their default (0, empty) are left out, enums are names.
//! Every parse is strict about what it needs: a missing header, an `error` answer or a
//! number that is not one is an error, never a default that could read as healthy.

pub use crate::etcd_json::{
    EtcdStatus, b64, header, parse_alarms, parse_answer, parse_members, parse_range, parse_status,
};
use crate::judge::Unhealthy;
use serde_json::{Value, json};
use std::time::Duration;

/// Why an etcd endpoint gave no usable answer; every variant names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{endpoint}: http client: {source}")]
    Client {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request failed (refused, timed out).
    #[error("{endpoint}: {path}: {source}")]
    Request {
        endpoint: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint}: {path}: reading the answer: {source}")]
    Read {
        endpoint: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer is an error, not JSON, or lacks what `what` needs.
    #[error("{endpoint}: {what}: {why}")]
    Answer {
        endpoint: String,
        what: String,
        #[source]
        why: Unhealthy,
    },
}

/// A client for one endpoint (`http://ADDRESS:PORT`).
pub struct EtcdHttp {
    client: reqwest::Client,
    endpoint: String,
}

impl EtcdHttp {
    /// Every request gives up after `timeout` (connecting included).
    pub fn new(endpoint: &str, timeout: Duration) -> Result<EtcdHttp, EtcdError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|source| EtcdError::Client {
                endpoint: endpoint.to_string(),
                source,
            })?;
        Ok(EtcdHttp {
            client,
            endpoint: endpoint.trim_end_matches('/').to_string(),
        })
    }

    fn bad(&self, what: &str, why: Unhealthy) -> EtcdError {
        EtcdError::Answer {
            endpoint: self.endpoint.clone(),
            what: what.to_string(),
            why,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `POST /v3/<path>` with a JSON body; the answer's JSON, or why there is none.
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let url = format!("{}/v3/{path}", self.endpoint);
        let resp = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|source| EtcdError::Request {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                source,
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|source| EtcdError::Read {
            endpoint: self.endpoint.clone(),
            path: path.to_string(),
            source,
        })?;
        parse_answer(status, &text).map_err(|why| self.bad(path, why))
    }

    pub async fn status(&self) -> Result<EtcdStatus, EtcdError> {
        let v = self.call("maintenance/status", json!({})).await?;
        parse_status(&self.endpoint, &v).map_err(|why| self.bad("status", why))
    }

    /// A linearizable read through this member (the check `etcdctl endpoint health` does).
    pub async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let v = self
            .call("kv/range", json!({ "key": b64::encode(key.as_bytes()) }))
            .await?;
        parse_range(&v).map_err(|why| self.bad("range", why))
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), EtcdError> {
        let body = json!({ "key": b64::encode(key.as_bytes()), "value": b64::encode(value) });
        let v = self.call("kv/put", body).await?;
        header(&v).map(|_| ()).map_err(|why| self.bad("put", why))
    }

    /// Raised alarms, each as `KIND on member ID`.
    pub async fn alarms(&self) -> Result<Vec<String>, EtcdError> {
        let v = self
            .call(
                "maintenance/alarm",
                json!({ "action": "GET", "alarm": "NONE" }),
            )
            .await?;
        parse_alarms(&v).map_err(|why| self.bad("alarm list", why))
    }

    /// How many members the cluster's member list has.
    pub async fn member_count(&self) -> Result<usize, EtcdError> {
        let v = self.call("cluster/member/list", json!({})).await?;
        parse_members(&v).map_err(|why| self.bad("member list", why))
    }

    /// Ask this member (the leader) to hand the leadership to `target`.
    pub async fn move_leader(&self, target: u64) -> Result<(), EtcdError> {
        let body = json!({ "targetID": target.to_string() });
        let v = self.call("maintenance/transfer-leadership", body).await?;
        header(&v)
            .map(|_| ())
            .map_err(|why| self.bad("move-leader", why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Answers captured from etcd 3.4.23's gateway.
    const STATUS: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"3319814642761637952","raftIndex":"4","raftTerm":"2","raftAppliedIndex":"4","dbSizeInUse":"16384"}"#;
    const RANGE: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"},"kvs":[{"key":"aGVhbHRo","create_revision":"2","mod_revision":"2","version":"1","value":"eA=="}],"count":"1"}"#;
    const MEMBERS: &str = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","raft_term":"2"},"members":[{"ID":"3319814642761637952","name":"default","peerURLs":["http://127.0.0.1:23800"],"clientURLs":["http://127.0.0.1:23790"]}]}"#;
    const ERROR: &str = r#"{"error":"etcdserver: bad leader transferee","message":"etcdserver: bad leader transferee","code":9}"#;

    fn ok(text: &str) -> Value {
        parse_answer(200, text).unwrap()
    }

    #[test]
    fn a_status_answer_is_read() {
        let s = parse_status("e1", &ok(STATUS)).unwrap();
        assert_eq!(s.member_id, 3319814642761637952);
        assert_eq!(s.leader, 3319814642761637952);
        assert_eq!((s.raft_index, s.raft_term), (4, 2));
        // a member with no leader leaves the field out
        let v = ok(&STATUS.replace(r#""leader":"3319814642761637952","#, ""));
        assert_eq!(parse_status("e1", &v).unwrap().leader, 0);
        let v = ok(&STATUS.replace(r#""dbSizeInUse""#, r#""errors":["NOSPACE"],"x""#));
        assert_eq!(parse_status("e1", &v).unwrap_err(), "NOSPACE");
    }

    #[test]
    fn errors_and_garbage_are_never_healthy() {
        assert!(
            parse_answer(500, ERROR)
                .unwrap_err()
                .to_string()
                .contains("bad leader transferee")
        );
        assert!(
            parse_answer(200, ERROR)
                .unwrap_err()
                .to_string()
                .contains("bad leader transferee")
        );
        assert!(
            parse_answer(200, "<html>")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(
            parse_answer(503, "{}")
                .unwrap_err()
                .to_string()
                .contains("503")
        );
        assert!(parse_answer(200, "[1]").is_err());
        assert!(
            parse_status("e", &ok("{}"))
                .unwrap_err()
                .to_string()
                .contains("no header")
        );
        let v = ok(&STATUS.replace(r#""raftIndex":"4""#, r#""raftIndex":"four""#));
        assert!(
            parse_status("e", &v)
                .unwrap_err()
                .to_string()
                .contains("raftIndex")
        );
        let v = ok(r#"{"header":{"cluster_id":"1"}}"#);
        assert!(
            parse_status("e", &v)
                .unwrap_err()
                .to_string()
                .contains("no member")
        );
    }

    #[test]
    fn ranges_members_and_alarms_are_read() {
        assert_eq!(parse_range(&ok(RANGE)).unwrap(), Some(b"x".to_vec()));
        let empty = r#"{"header":{"member_id":"1"}}"#;
        assert_eq!(parse_range(&ok(empty)).unwrap(), None);
        assert_eq!(parse_members(&ok(MEMBERS)).unwrap(), 1);
        assert_eq!(parse_alarms(&ok(empty)).unwrap(), Vec::<String>::new());
        assert_eq!(parse_alarms(&ok("{}")).unwrap(), Vec::<String>::new());
        assert!(parse_alarms(&ok(r#"{"alarms":{}}"#)).is_err());
        let raised =
            r#"{"header":{"member_id":"1"},"alarms":[{"memberID":"255","alarm":"NOSPACE"}]}"#;
        assert_eq!(
            parse_alarms(&ok(raised)).unwrap(),
            vec!["NOSPACE on member ff"]
        );
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "h", "he", "hea", "health", "w/12345"] {
            let e = b64::encode(s.as_bytes());
            assert_eq!(b64::decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(b64::encode(b"health"), "aGVhbHRo");
        assert_eq!(b64::encode(b"x"), "eA==");
        assert!(b64::decode("eA=").is_err());
        assert!(b64::decode("e===").is_err());
        assert!(b64::decode("eA==eA==").is_err());
        assert!(b64::decode("e!A=").is_err());
    }
}
