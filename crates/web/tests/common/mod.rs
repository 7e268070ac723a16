//! What only the web tests share: an HTTP client that does not follow redirects (the
//! rest comes from `rollcall-testkit`).

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}
