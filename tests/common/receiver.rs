//! A relying party's event endpoint on a loopback port, for the events tests: `/{kind}/{client}`
//! records every request (path, content type, `Accept`, and the token: the `logout_token` field
//! of a form for Back-Channel Logout, the body for a Security Event Token, RFC 8935), answers
//! with `status` after `delay_ms`, and closes every connection (so that when it is down,
//! nothing reaches it).

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the receiver got.
#[derive(Clone, Debug)]
pub struct Got {
    pub path: String,
    pub content_type: String,
    pub accept: String,
    pub token: String,
}

pub struct Receiver {
    kind: &'static str,
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    pub status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver for `/{kind}/…` answering `status`, on a free port, not listening yet.
    pub fn new(kind: &'static str, status: u16) -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Receiver {
            kind,
            port,
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(status)),
            delay_ms: Arc::default(),
            task: None,
        }
    }

    pub async fn started(kind: &'static str, status: u16) -> Receiver {
        let mut r = Receiver::new(kind, status);
        r.up().await;
        r
    }

    pub async fn up(&mut self) {
        let (got, status, delay) = (self.got.clone(), self.status.clone(), self.delay_ms.clone());
        let app = axum::Router::new().route(
            &format!("/{}/{{client}}", self.kind),
            axum::routing::post(
                move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (got, status, delay) = (got.clone(), status.clone(), delay.clone());
                    async move {
                        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                        let content_type = h("content-type");
                        let token = if content_type == "application/x-www-form-urlencoded" {
                            form_urlencoded::parse(&body)
                                .find(|(k, _)| k == "logout_token")
                                .map(|(_, v)| v.into_owned())
                                .unwrap_or_default()
                        } else {
                            String::from_utf8_lossy(&body).into_owned()
                        };
                        got.lock().unwrap().push(Got {
                            path: uri.path().to_string(),
                            content_type,
                            accept: h("accept"),
                            token,
                        });
                        tokio::time::sleep(Duration::from_millis(delay.load(Ordering::SeqCst))).await;
                        (
                            axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap(),
                            [("connection", "close")],
                        )
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    pub fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub fn url(&self, client: &str) -> String {
        format!("http://127.0.0.1:{}/{}/{client}", self.port, self.kind)
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (at most 20 s), then a little more so that an
    /// extra one would show.
    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        let start = Instant::now();
        while self.got().len() < n && start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        self.got()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}
