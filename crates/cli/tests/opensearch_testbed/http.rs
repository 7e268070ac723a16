//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream` for the load generator:
//! one connection per request (`Connection: close`), one deadline for connect, send and
//! receive, so a node that is "powered off" (no ARP answer) costs at most the timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A status code and the body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The body as JSON, or why not.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("HTTP {}: not JSON ({e}): {}", self.status, cut(&self.body)))
    }
}

/// The first 200 characters of `s` (error messages).
pub fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

/// `METHOD http://node{path}` with an optional JSON body; `node` is `host:port`.
pub fn call(
    node: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Reply, String> {
    let deadline = Instant::now() + timeout;
    let addr: SocketAddr = node.parse().map_err(|e| format!("{node}: {e}"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{node}: connect: {e}"))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {node}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    left(&s, deadline)?;
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{node}: send: {e}"))?;
    let raw = receive(&mut s, deadline).map_err(|e| format!("{node}: {method} {path}: {e}"))?;
    parse(&raw).map_err(|e| format!("{node}: {method} {path}: {e}"))
}

/// Sets the socket's timeouts to what is left before `deadline`.
fn left(s: &TcpStream, deadline: Instant) -> Result<(), String> {
    let rest = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or("timed out")?;
    s.set_read_timeout(Some(rest)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(rest)).map_err(|e| e.to_string())
}

/// Reads until the response is complete (Content-Length, chunked end, or EOF).
fn receive(s: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if complete(&buf) {
            return Ok(buf);
        }
        left(s, deadline)?;
        match s.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("no answer within the timeout".into());
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

fn split(raw: &[u8]) -> Option<(&str, &[u8])> {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((std::str::from_utf8(&raw[..at]).ok()?, &raw[at + 4..]))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn complete(raw: &[u8]) -> bool {
    let Some((head, rest)) = split(raw) else {
        return false;
    };
    if let Some(n) = header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        return rest.len() >= n;
    }
    header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        && rest.ends_with(b"0\r\n\r\n")
}

fn parse(raw: &[u8]) -> Result<Reply, String> {
    let (head, rest) = split(raw).ok_or_else(|| {
        format!(
            "not an HTTP response: {:?}",
            cut(&String::from_utf8_lossy(raw))
        )
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .filter(|_| head.starts_with("HTTP/"))
        .ok_or_else(|| format!("not an HTTP status line: {:?}", cut(head)))?;
    let body = match header(head, "transfer-encoding") {
        Some(v) if v.eq_ignore_ascii_case("chunked") => dechunk(rest)?,
        _ => match header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
            Some(n) if rest.len() < n => return Err("response cut short".into()),
            Some(n) => rest[..n].to_vec(),
            None => rest.to_vec(),
        },
    };
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let at = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size = std::str::from_utf8(&rest[..at]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        rest = &rest[at + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked_bodies_and_refuses_garbage() {
        let r = parse(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "{}"));
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, "abcd");
        assert!(parse(b"garbage\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}").is_err());
    }
}
