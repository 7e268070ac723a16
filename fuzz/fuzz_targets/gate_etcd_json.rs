//! The etcd gate's parsers on arbitrary gateway answers: the first two bytes are an
//! HTTP status, the rest is the body, read as `maintenance/status`, `kv/range`,
//! `maintenance/alarm` and `cluster/member/list` answers; base64 is round-tripped.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/drivers/src/judge.rs"]
mod judge;

#[allow(dead_code)]
#[path = "../../crates/drivers/src/etcd_json.rs"]
mod etcd_json;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [hi, lo, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let status = u16::from_be_bytes([*hi, *lo]) % 600;
    if let Ok(v) = etcd_json::parse_answer(status, text) {
        let _ = etcd_json::parse_status("http://127.0.0.1:2379", &v);
        let _ = etcd_json::parse_range(&v);
        let _ = etcd_json::parse_alarms(&v);
        let _ = etcd_json::parse_members(&v);
    }
    if let Ok(bytes) = etcd_json::b64::decode(text) {
        let again = etcd_json::b64::encode(&bytes);
        assert_eq!(etcd_json::b64::decode(&again).as_deref(), Ok(&bytes[..]));
    }
});
