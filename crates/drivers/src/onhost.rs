//! Reading an HTTP endpoint as a fleet host sees it: `curl` run on the host over the
//! driver's [`Transport`] (the metadata services of Azure, GCP and AWS answer only on
//! the instance). `OnHost` is the guard's [`HostFetch`] for `via = "ssh"`.
//!
//! The command is `curl -sS -m T -X METHOD -H … -w '\n%{http_code}' URL`, a body piped
//! in (`printf %s BODY | curl … --data-binary @-`), every value shell-quoted; the last
//! line of its output is the status. A transport failure or a non-zero curl exit is a
//! [`ProviderError::Http`] naming the host and the URL. [`host_fetch`] picks `OnHost` or
//! `Direct` by a table's `via`; the transport is the run's (`crate::transport(kind, cfg)`).

use crate::BoxFuture;
use crate::transport::{CmdOutput, HostRef, Transport, shell_quote, truncate};
use rollcall_core::Fleet;
use rollcall_providers::http::{Direct, HostFetch, Request, Response};
use rollcall_providers::{ProviderError, Via};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Extra time the transport allows beyond curl's own `-m`, for the login.
const SLACK: Duration = Duration::from_secs(10);

pub struct OnHost {
    transport: Arc<dyn Transport>,
    hosts: HashMap<String, HostRef>,
}

impl OnHost {
    /// Reads on the hosts of `fleet` through `transport`.
    pub fn new(transport: Arc<dyn Transport>, fleet: &Fleet) -> OnHost {
        let hosts = fleet
            .hosts
            .iter()
            .map(|h| (h.id.clone(), HostRef::of(h)))
            .collect();
        OnHost { transport, hosts }
    }
}

/// What a metadata table's `via` asks for: `curl` on the host over `transport`
/// (`ssh`), or HTTP from this process (`direct`).
pub fn host_fetch(via: Via, transport: Arc<dyn Transport>, fleet: &Fleet) -> Box<dyn HostFetch> {
    match via {
        Via::Ssh => Box::new(OnHost::new(transport, fleet)),
        Via::Direct => Box::new(Direct::default()),
    }
}

/// The shell command that performs `req` with curl.
pub fn curl_command(req: &Request) -> String {
    let secs = req.timeout.as_secs().max(1);
    let mut c = format!("curl -sS -m {secs} -X {}", req.method.as_str());
    for (k, v) in &req.headers {
        c.push_str(&format!(" -H {}", shell_quote(&format!("{k}: {v}"))));
    }
    c.push_str(&format!(" -w {}", shell_quote("\n%{http_code}")));
    if req.body.is_some() {
        c.push_str(" --data-binary @-");
    }
    c.push_str(&format!(" {}", shell_quote(&req.url)));
    match &req.body {
        Some(b) => format!("printf %s {} | {c}", shell_quote(b)),
        None => c,
    }
}

/// The response in curl's output (`-w '\n%{http_code}'`: the status on the last line).
pub fn parse_curl(stdout: &str) -> Option<Response> {
    let (body, code) = stdout.rsplit_once('\n')?;
    let status = code.trim().parse::<u16>().ok().filter(|s| *s >= 100)?;
    Some(Response {
        status,
        body: body.to_string(),
    })
}

fn http_err(host: &str, req: &Request, error: String) -> ProviderError {
    ProviderError::Http {
        url: req.url.clone(),
        error: format!("on {host}: {error}"),
    }
}

fn judge(host: &str, req: &Request, out: CmdOutput) -> Result<Response, ProviderError> {
    if !out.ok() {
        return Err(http_err(host, req, format!("curl: {}", out.describe())));
    }
    parse_curl(&out.stdout).ok_or_else(|| {
        let got = truncate(out.stdout.trim(), 120);
        http_err(host, req, format!("curl printed no status: `{got}`"))
    })
}

impl HostFetch for OnHost {
    fn fetch_on<'a>(
        &'a self,
        host: &'a str,
        req: Request,
    ) -> BoxFuture<'a, Result<Response, ProviderError>> {
        Box::pin(async move {
            let Some(h) = self.hosts.get(host) else {
                return Err(http_err(host, &req, "not a host of this fleet".into()));
            };
            let cmd = curl_command(&req);
            let out = self.transport.run(h, &cmd, req.timeout + SLACK).await;
            let out = out.map_err(|e| http_err(host, &req, e.to_string()))?;
            judge(host, &req, out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_providers::http::Method;

    #[test]
    fn a_get_quotes_its_headers_and_url() {
        let r =
            Request::get("http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01")
                .header("Metadata", "true");
        assert_eq!(
            curl_command(&r),
            "curl -sS -m 10 -X GET -H 'Metadata: true' -w '\n%{http_code}' 'http://169.254.169.254/metadata/scheduledevents?api-version=2020-07-01'"
        );
    }

    #[test]
    fn a_body_is_piped_in_shell_quoted() {
        let mut r = Request::get("http://x/y");
        r.method = Method::Post;
        r.body = Some(r#"{"StartRequests":[{"EventId":"it's"}]}"#.into());
        let c = curl_command(&r);
        assert!(
            c.starts_with(
                r#"printf %s '{"StartRequests":[{"EventId":"it'\''s"}]}' | curl -sS -m 10 -X POST"#
            ),
            "{c}"
        );
        assert!(c.ends_with(" --data-binary @- http://x/y"), "{c}");
    }

    #[test]
    fn the_status_is_the_last_line() {
        let r = parse_curl("{\"a\":1}\nmore\n200").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{\"a\":1}\nmore"));
        assert_eq!(parse_curl("\n404").unwrap().status, 404);
        assert!(parse_curl("200").is_none());
        assert!(parse_curl("body\n000").is_none());
    }
}
