//! An axum app served on its own thread and runtime (so that it outlives a crashed
//! test runtime), stopped and joined on drop.

use std::time::Duration;

pub struct Served {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Serve `app` on `ip`, a port of the kernel's choice, with `workers` worker threads.
pub fn serve(ip: &str, app: axum::Router, workers: usize) -> Served {
    let bind = format!("{ip}:0");
    let (ptx, prx) = std::sync::mpsc::channel();
    let (stop, srx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind(&bind)
                .await
                .unwrap_or_else(|e| panic!("bind {bind}: {e}"));
            ptx.send(l.local_addr().unwrap().port()).unwrap();
            axum::serve(l, app)
                .with_graceful_shutdown(async {
                    let _ = srx.await;
                })
                .await
                .unwrap();
        });
    });
    Served {
        port: prx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server started"),
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
