//! AWS Signature Version 4 (header form), for the EC2 Query API.
//!
//! [`sign`] adds `X-Amz-Date`, `X-Amz-Security-Token` (with temporary credentials; it is
//! signed, as the suite's `post-sts-header-before` does) and `Authorization` to a
//! [`Request`]. Every header already on the request is signed, and so is `host` (taken
//! from the URL, as the HTTP client sends it). Checked against AWS's published SigV4
//! test suite (the unit tests below).

use super::credentials::Credentials;
use crate::http::Request;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Where a request is signed for: `us-east-1` / `ec2`.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// Sign `req` at `now` (adds the date, the session token and the `Authorization` header).
pub fn sign(req: &mut Request, creds: &Credentials, scope: Scope<'_>, now: jiff::Timestamp) {
    let amz_date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    req.headers.push(("X-Amz-Date".into(), amz_date.clone()));
    if let Some(t) = &creds.session_token {
        req.headers.push(("X-Amz-Security-Token".into(), t.clone()));
    }
    let canon = canonical_request(req);
    let day = &amz_date[..8];
    let cred_scope = format!("{day}/{}/{}/aws4_request", scope.region, scope.service);
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{cred_scope}\n{}",
        hex::encode(Sha256::digest(canon.text.as_bytes()))
    );
    let key = signing_key(&creds.secret_access_key, day, scope);
    let signature = hex::encode(hmac(&key, sts.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{cred_scope}, SignedHeaders={}, Signature={signature}",
        creds.access_key_id, canon.signed_headers
    );
    req.headers.push(("Authorization".into(), auth));
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, day: &str, scope: Scope<'_>) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    let k = hmac(&k, scope.region.as_bytes());
    let k = hmac(&k, scope.service.as_bytes());
    hmac(&k, b"aws4_request")
}

struct Canonical {
    text: String,
    signed_headers: String,
}

/// The parts of a URL SigV4 signs: `host[:port]` as the client sends it in `Host` (the
/// scheme's default port left out), the path and the query.
fn split_url(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let (authority, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        ":443"
    };
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    (authority, path, query)
}

fn canonical_request(req: &Request) -> Canonical {
    let (host, path, query) = split_url(&req.url);
    let mut headers: Vec<(String, String)> = vec![("host".into(), host.to_string())];
    for (k, v) in &req.headers {
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
            Some((_, old)) => *old = format!("{old},{v}"),
            None => headers.push((k.to_ascii_lowercase(), v)),
        }
    }
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canon_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let body = req.body.as_deref().unwrap_or("");
    let text = format!(
        "{}\n{}\n{}\n{canon_headers}\n{signed_headers}\n{}",
        req.method.as_str(),
        canonical_path(path),
        canonical_query(query),
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    Canonical {
        text,
        signed_headers,
    }
}

fn canonical_path(path: &str) -> String {
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is
/// `%XX` (upper case). Also the form encoding of the EC2 Query API's bodies.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    //! Vectors from AWS's Signature Version 4 test suite (`aws-sig-v4-test-suite`, as
    //! published in the AWS General Reference and shipped with the AWS SDKs and botocore):
    //! credentials `AKIDEXAMPLE`, region `us-east-1`, service `service`,
    //! 2015-08-30T12:36:00Z, host `example.amazonaws.com`.
    use super::*;
    use crate::http::Method;

    const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
        }
    }

    fn signed(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Request {
        signed_with(method, url, headers, body, None)
    }

    fn signed_with(
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
        token: Option<&str>,
    ) -> Request {
        let mut r = Request::get(url);
        r.method = method;
        r.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r.body = (!body.is_empty()).then(|| body.to_string());
        let scope = Scope {
            region: "us-east-1",
            service: "service",
        };
        let at: jiff::Timestamp = "2015-08-30T12:36:00Z".parse().unwrap();
        sign(&mut r, &creds(token), scope, at);
        r
    }

    fn header<'a>(r: &'a Request, name: &str) -> &'a str {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    fn authz(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    #[test]
    fn get_vanilla_matches_the_suite() {
        let r = signed(Method::Get, "https://example.amazonaws.com/", &[], "");
        assert_eq!(header(&r, "x-amz-date"), "20150830T123600Z");
        let want = authz(
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
        assert_eq!(header(&r, "authorization"), want);
    }

    #[test]
    fn get_vanilla_canonical_request_and_string_to_sign_match_the_suite() {
        let mut r = Request::get("https://example.amazonaws.com/");
        r.headers
            .push(("X-Amz-Date".into(), "20150830T123600Z".into()));
        let c = canonical_request(&r);
        assert_eq!(
            c.text,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(Sha256::digest(c.text.as_bytes())),
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    #[test]
    fn query_order_key_case_matches_the_suite() {
        let url = "https://example.amazonaws.com/?Param2=value2&Param1=value1";
        let r = signed(Method::Get, url, &[], "");
        let want = authz(
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        );
        assert_eq!(header(&r, "authorization"), want);
    }

    #[test]
    fn post_vanilla_and_post_vanilla_query_match_the_suite() {
        let r = signed(Method::Post, "https://example.amazonaws.com/", &[], "");
        let want = authz(
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        );
        assert_eq!(header(&r, "authorization"), want);
        let url = "https://example.amazonaws.com/?Param1=value1";
        let r = signed(Method::Post, url, &[], "");
        let want = authz(
            "host;x-amz-date",
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        );
        assert_eq!(header(&r, "authorization"), want);
    }

    #[test]
    fn a_form_encoded_body_matches_the_suite() {
        let ct = [("Content-Type", "application/x-www-form-urlencoded")];
        let r = signed(
            Method::Post,
            "https://example.amazonaws.com/",
            &ct,
            "Param1=value1",
        );
        let want = authz(
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        );
        assert_eq!(header(&r, "authorization"), want);
    }

    #[test]
    fn a_session_token_is_sent_and_signed_as_the_suite_does() {
        let url = "https://example.amazonaws.com/";
        let r = signed_with(Method::Post, url, &[], "", Some(SUITE_TOKEN));
        assert_eq!(header(&r, "x-amz-security-token"), SUITE_TOKEN);
        let want = authz(
            "host;x-amz-date;x-amz-security-token",
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        );
        assert_eq!(header(&r, "authorization"), want);
    }

    #[test]
    fn a_port_in_the_url_is_part_of_the_signed_host() {
        let a = signed(Method::Get, "http://127.0.0.1:5000/", &[], "");
        let b = signed(Method::Get, "http://127.0.0.1:5001/", &[], "");
        assert_ne!(header(&a, "authorization"), header(&b, "authorization"));
        let c = canonical_request(&Request::get("http://127.0.0.1:5000/"));
        assert!(c.text.contains("\nhost:127.0.0.1:5000\n"), "{}", c.text);
        let c = canonical_request(&Request::get("https://example.amazonaws.com:443/"));
        assert!(
            c.text.contains("\nhost:example.amazonaws.com\n"),
            "{}",
            c.text
        );
        let c = canonical_request(&Request::get("http://example.amazonaws.com:80"));
        assert!(
            c.text.starts_with("GET\n/\n\nhost:example.amazonaws.com\n"),
            "{}",
            c.text
        );
    }

    #[test]
    fn uri_encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(uri_encode("a b/c+d=é"), "a%20b%2Fc%2Bd%3D%C3%A9");
        assert_eq!(percent_decode("a%20b%zz"), "a b%zz");
    }
}
