#![allow(dead_code)]
//! What only the web tests share: an HTTP client that does not follow redirects (the
//! rest comes from `rollcall-testkit`).

pub mod chrome;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A request that must get an answer (any status).
pub trait Sent {
    fn sent(self) -> impl Future<Output = reqwest::Response>;
}

impl Sent for reqwest::RequestBuilder {
    async fn sent(self) -> reqwest::Response {
        self.send().await.expect("an answer")
    }
}

/// GET `url`: the body as text, whatever the status.
pub async fn get_text(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    c.get(url).sent().await.text().await.expect("a text body")
}
