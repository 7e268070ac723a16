//! The one HTTP exchange every source goes through, so a payload can be fetched directly
//! (rollcall on the instance, or a reachable endpoint) or read on the host over the
//! driver's transport (`curl` over SSH: the metadata services answer only on the instance).

use crate::ProviderError;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Duration,
}

impl Request {
    pub fn get(url: impl Into<String>) -> Request {
        Request {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Request {
        self.headers.push((k.into(), v.into()));
        self
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Performs one HTTP exchange. A transport failure is an error; any HTTP status is a
/// response (the source judges it).
pub trait Fetch: Send + Sync {
    fn fetch(&self, req: Request) -> BoxFuture<'_, Result<Response, ProviderError>>;
}

/// Direct HTTP from this process (reqwest).
#[derive(Debug, Clone, Default)]
pub struct Direct {
    client: reqwest::Client,
}

impl Fetch for Direct {
    fn fetch(&self, req: Request) -> BoxFuture<'_, Result<Response, ProviderError>> {
        Box::pin(async move {
            let method = match req.method {
                Method::Get => reqwest::Method::GET,
                Method::Put => reqwest::Method::PUT,
                Method::Post => reqwest::Method::POST,
            };
            let mut b = self.client.request(method, &req.url).timeout(req.timeout);
            for (k, v) in &req.headers {
                b = b.header(k, v);
            }
            if let Some(body) = req.body {
                b = b.body(body);
            }
            let io = |e: reqwest::Error| ProviderError::Http {
                url: req.url.clone(),
                error: e.to_string(),
            };
            let r = b.send().await.map_err(io)?;
            let status = r.status().as_u16();
            let body = r.text().await.map_err(io)?;
            Ok(Response { status, body })
        })
    }
}

/// Performs an exchange as seen from a fleet host: the metadata services answer only on
/// the instance, so the guard reads them on the host (`curl` over the driver's transport,
/// `rollcall_drivers::onhost`), or directly where rollcall itself can reach the endpoint.
pub trait HostFetch: Send + Sync {
    fn fetch_on<'a>(
        &'a self,
        host: &'a str,
        req: Request,
    ) -> BoxFuture<'a, Result<Response, ProviderError>>;
}

impl HostFetch for Direct {
    fn fetch_on<'a>(
        &'a self,
        _host: &'a str,
        req: Request,
    ) -> BoxFuture<'a, Result<Response, ProviderError>> {
        self.fetch(req)
    }
}
