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

/// `rollcall_web::start` on a loopback port for run `run` of a live run's store `db`,
/// once the run has created it (within 10 s).
pub async fn serve_live(db: &std::path::Path, run: &str) -> rollcall_web::Server {
    let t0 = std::time::Instant::now();
    loop {
        if db.exists() {
            let mut o = rollcall_web::ServeOptions::new(db, "127.0.0.1:0".parse().unwrap());
            o.run = Some(run.into());
            if let Ok(s) = rollcall_web::start(o).await {
                return s;
            }
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "server starts"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
