//! etcd through its v3 JSON gateway: the HTTP API every etcd (3.4 and later) serves on
//! its client port, beside gRPC (`POST /v3/maintenance/status`, `/v3/kv/range`, ...).
//!
//! rollcall speaks to etcd this way rather than through a gRPC client so that it builds
//! with the Rust toolchain alone: the gRPC crates need `protoc` and the protobuf includes
//! at build time. The gateway's bodies are protobuf's JSON mapping: 64-bit integers are
//! strings, fields equal to their default (0, empty) are left out, enums are names.
//! Every parse is strict about what it needs: a missing header, an `error` answer or a
//! number that is not one is an error, never a default that could read as healthy.

use serde_json::{Value, json};
use std::time::Duration;

/// One member's view, from `maintenance/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStatus {
    pub endpoint: String,
    pub member_id: u64,
    /// 0: this member sees no leader.
    pub leader: u64,
    pub raft_index: u64,
    pub raft_term: u64,
}

/// A client for one endpoint (`http://ADDRESS:PORT`).
pub struct EtcdHttp {
    client: reqwest::Client,
    endpoint: String,
}

impl EtcdHttp {
    /// Every request gives up after `timeout` (connecting included).
    pub fn new(endpoint: &str, timeout: Duration) -> Result<EtcdHttp, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("{endpoint}: http client: {e}"))?;
        Ok(EtcdHttp {
            client,
            endpoint: endpoint.trim_end_matches('/').to_string(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `POST /v3/<path>` with a JSON body; the answer's JSON, or why there is none.
    async fn call(&self, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/v3/{path}", self.endpoint);
        let resp = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{}: {path}: {e}", self.endpoint))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{}: {path}: reading the answer: {e}", self.endpoint))?;
        parse_answer(status, &text).map_err(|e| format!("{}: {path}: {e}", self.endpoint))
    }

    pub async fn status(&self) -> Result<EtcdStatus, String> {
        let v = self.call("maintenance/status", json!({})).await?;
        parse_status(&self.endpoint, &v).map_err(|e| format!("{}: status: {e}", self.endpoint))
    }

    /// A linearizable read through this member (the check `etcdctl endpoint health` does).
    pub async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let v = self
            .call("kv/range", json!({ "key": b64::encode(key.as_bytes()) }))
            .await?;
        parse_range(&v).map_err(|e| format!("{}: range: {e}", self.endpoint))
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let body = json!({ "key": b64::encode(key.as_bytes()), "value": b64::encode(value) });
        let v = self.call("kv/put", body).await?;
        header(&v)
            .map(|_| ())
            .map_err(|e| format!("{}: put: {e}", self.endpoint))
    }

    /// Raised alarms, each as `KIND on member ID`.
    pub async fn alarms(&self) -> Result<Vec<String>, String> {
        let v = self
            .call(
                "maintenance/alarm",
                json!({ "action": "GET", "alarm": "NONE" }),
            )
            .await?;
        parse_alarms(&v).map_err(|e| format!("{}: alarm list: {e}", self.endpoint))
    }

    /// How many members the cluster's member list has.
    pub async fn member_count(&self) -> Result<usize, String> {
        let v = self.call("cluster/member/list", json!({})).await?;
        parse_members(&v).map_err(|e| format!("{}: member list: {e}", self.endpoint))
    }

    /// Ask this member (the leader) to hand the leadership to `target`.
    pub async fn move_leader(&self, target: u64) -> Result<(), String> {
        let body = json!({ "targetID": target.to_string() });
        let v = self.call("maintenance/transfer-leadership", body).await?;
        header(&v)
            .map(|_| ())
            .map_err(|e| format!("{}: move-leader: {e}", self.endpoint))
    }
}

/// The gateway's answer: JSON with no `error`, under a 2xx status.
pub fn parse_answer(status: u16, text: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        format!(
            "HTTP {status}, not JSON: {}",
            crate::transport::truncate(text.trim(), 120)
        )
    })?;
    if let Some(e) = v.get("error").or_else(|| v.get("message")) {
        let e = e.as_str().map_or_else(|| e.to_string(), str::to_string);
        return Err(format!("HTTP {status}: {e}"));
    }
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    if !v.is_object() {
        return Err(format!("HTTP {status}, not a JSON object"));
    }
    Ok(v)
}

/// A protobuf JSON uint64: a string of digits or a number; absent means 0.
fn uint(v: &Value, key: &str) -> Result<u64, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("{key} is not a number: {s:?}")),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("{key} is not a uint64: {n}")),
        Some(other) => Err(format!("{key} is not a number: {other}")),
    }
}

/// Every answer carries a header naming the member that answered.
fn header(v: &Value) -> Result<&Value, String> {
    v.get("header")
        .filter(|h| h.is_object())
        .ok_or_else(|| "no header in the answer".to_string())
}

pub fn parse_status(endpoint: &str, v: &Value) -> Result<EtcdStatus, String> {
    let member_id = uint(header(v)?, "member_id")?;
    if member_id == 0 {
        return Err("the header names no member".into());
    }
    if let Some(errors) = v.get("errors") {
        let list: Vec<String> = errors
            .as_array()
            .ok_or("errors is not a list")?
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect();
        if !list.is_empty() {
            return Err(list.join("; "));
        }
    }
    Ok(EtcdStatus {
        endpoint: endpoint.to_string(),
        member_id,
        leader: uint(v, "leader")?,
        raft_index: uint(v, "raftIndex")?,
        raft_term: uint(v, "raftTerm")?,
    })
}

/// The value of the first key a range answered, if any.
pub fn parse_range(v: &Value) -> Result<Option<Vec<u8>>, String> {
    header(v)?;
    let Some(kvs) = v.get("kvs") else {
        return Ok(None);
    };
    let first = kvs.as_array().ok_or("kvs is not a list")?.first();
    let Some(kv) = first else { return Ok(None) };
    match kv.get("value") {
        None => Ok(Some(Vec::new())),
        Some(Value::String(s)) => b64::decode(s).map(Some),
        Some(other) => Err(format!("value is not base64 text: {other}")),
    }
}

/// etcd 3.4 answers an alarm list with no alarm as `{}`, without even a header.
pub fn parse_alarms(v: &Value) -> Result<Vec<String>, String> {
    let Some(list) = v.get("alarms") else {
        return Ok(Vec::new());
    };
    list.as_array()
        .ok_or("alarms is not a list")?
        .iter()
        .map(|a| {
            let kind = a.get("alarm").and_then(Value::as_str).unwrap_or("NONE");
            Ok(format!("{kind} on member {:x}", uint(a, "memberID")?))
        })
        .collect()
}

pub fn parse_members(v: &Value) -> Result<usize, String> {
    header(v)?;
    match v.get("members") {
        None => Ok(0),
        Some(m) => Ok(m.as_array().ok_or("members is not a list")?.len()),
    }
}

/// Standard base64 (RFC 4648, padded): the gateway's encoding of keys and values.
pub mod b64 {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(s: &str) -> Result<Vec<u8>, String> {
        let s = s.as_bytes();
        if s.len() % 4 != 0 {
            return Err("base64 text whose length is not a multiple of 4".into());
        }
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        for (ci, chunk) in s.chunks(4).enumerate() {
            let last = ci + 1 == s.len() / 4;
            let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && !last) {
                return Err("misplaced base64 padding".into());
            }
            let mut n = 0u32;
            for &c in &chunk[..4 - pad] {
                let d = ABC
                    .iter()
                    .position(|&a| a == c)
                    .ok_or_else(|| format!("not a base64 character: {:?}", c as char))?;
                n = (n << 6) | d as u32;
            }
            n <<= 6 * pad as u32;
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
        }
        Ok(out)
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
                .contains("bad leader transferee")
        );
        assert!(
            parse_answer(200, ERROR)
                .unwrap_err()
                .contains("bad leader transferee")
        );
        assert!(
            parse_answer(200, "<html>")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(parse_answer(503, "{}").unwrap_err().contains("503"));
        assert!(parse_answer(200, "[1]").is_err());
        assert!(
            parse_status("e", &ok("{}"))
                .unwrap_err()
                .contains("no header")
        );
        let v = ok(&STATUS.replace(r#""raftIndex":"4""#, r#""raftIndex":"four""#));
        assert!(parse_status("e", &v).unwrap_err().contains("raftIndex"));
        let v = ok(r#"{"header":{"cluster_id":"1"}}"#);
        assert!(parse_status("e", &v).unwrap_err().contains("no member"));
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
