//! The pure part of the etcd gate: etcd's v3 JSON gateway answers parsed (protobuf's
//! JSON mapping: 64-bit integers are strings, fields at their default are left out).
//! No I/O and only `std` and `serde_json`, so that the fuzz target `gate_etcd_json`
//! compiles this file (with `judge.rs`) on its own. Every parse is strict about what
//! it needs: a missing header, an `error` answer or a number that is not one is an
//! error, never a default that could read as healthy.

use crate::judge::Unhealthy;
use serde_json::Value;

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

/// The gateway's answer: JSON with no `error`, under a 2xx status.
pub fn parse_answer(status: u16, text: &str) -> Result<Value, Unhealthy> {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        format!(
            "HTTP {status}, not JSON: {}",
            crate::judge::truncate(text.trim(), 120)
        )
    })?;
    if let Some(e) = v.get("error").or_else(|| v.get("message")) {
        let e = e.as_str().map_or_else(|| e.to_string(), str::to_string);
        return Err(format!("HTTP {status}: {e}").into());
    }
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}").into());
    }
    if !v.is_object() {
        return Err(format!("HTTP {status}, not a JSON object").into());
    }
    Ok(v)
}

/// A protobuf JSON uint64: a string of digits or a number; absent means 0.
fn uint(v: &Value, key: &str) -> Result<u64, Unhealthy> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("{key} is not a number: {s:?}").into()),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("{key} is not a uint64: {n}").into()),
        Some(other) => Err(format!("{key} is not a number: {other}").into()),
    }
}

/// Every answer carries a header naming the member that answered.
pub fn header(v: &Value) -> Result<&Value, Unhealthy> {
    v.get("header")
        .filter(|h| h.is_object())
        .ok_or_else(|| "no header in the answer".into())
}

pub fn parse_status(endpoint: &str, v: &Value) -> Result<EtcdStatus, Unhealthy> {
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
            return Err(Unhealthy(list.join("; ")));
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
pub fn parse_range(v: &Value) -> Result<Option<Vec<u8>>, Unhealthy> {
    header(v)?;
    let Some(kvs) = v.get("kvs") else {
        return Ok(None);
    };
    let first = kvs.as_array().ok_or("kvs is not a list")?.first();
    let Some(kv) = first else { return Ok(None) };
    match kv.get("value") {
        None => Ok(Some(Vec::new())),
        Some(Value::String(s)) => b64::decode(s).map(Some),
        Some(other) => Err(format!("value is not base64 text: {other}").into()),
    }
}

/// etcd 3.4 answers an alarm list with no alarm as `{}`, without even a header.
pub fn parse_alarms(v: &Value) -> Result<Vec<String>, Unhealthy> {
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

pub fn parse_members(v: &Value) -> Result<usize, Unhealthy> {
    header(v)?;
    match v.get("members") {
        None => Ok(0),
        Some(m) => Ok(m.as_array().ok_or("members is not a list")?.len()),
    }
}

/// Standard base64 (RFC 4648, padded): the gateway's encoding of keys and values.
pub mod b64 {
    use super::Unhealthy;

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

    pub fn decode(s: &str) -> Result<Vec<u8>, Unhealthy> {
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
