//! Fetching `private_key_jwt` clients' keys from their `jwks_uri` (docs/design/jwks-fetch.md),
//! against a real `autional` process and key servers run by the test on loopback that count
//! what reaches them: the body cap, single flight, the negative cache with back-off, the
//! address policy (SSRF), no fetch for assertions that fail the key-less checks, the outbound
//! concurrency cap, an RFC 7592 update of `jwks_uri` taking effect at once (over TLS, with the
//! test CA in `tests/fixtures/tls`), and the validation of the `client_auth.*` settings.

mod common;

use common::client_key::ClientKey;
use common::dpop::now;
use common::{rand_suffix, Server};
use reqwest::header::RETRY_AFTER;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Loopback key servers are reachable only when allow-listed.
const ALLOW_LOOPBACK: (&str, &str) = ("AUTIONAL_CLIENT_AUTH__JWKS_FETCH_ALLOW", "127.0.0.0/8, ::1");

/// Good assertion claims: iss = sub = the client, `aud` = the issuer, a fresh jti, 60 s life.
fn good_claims(client_id: &str, s: &Server) -> Value {
    let now = now();
    json!({
        "iss": client_id, "sub": client_id, "aud": s.base,
        "jti": format!("jti-{}", rand_suffix()), "iat": now, "exp": now + 60,
    })
}

/// A client credentials request authenticated with `assertion`.
async fn token(s: &Server, assertion: &str) -> (u16, Value, Option<String>) {
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body, retry)
}

/// Creates a `private_key_jwt` client (client credentials, `api.read`) with `jwks_uri`.
fn jwt_client(s: &Server, id: &str, jwks_uri: &str) {
    s.cli(&[
        "client",
        "create",
        "--name",
        "Remote keys",
        "--client-id",
        id,
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        jwks_uri,
        "--grant-type",
        "client_credentials",
        "--scope",
        "api.read",
    ]);
}

/// What the key server answers.
#[derive(Clone)]
enum Mode {
    /// 200 with this body after this delay.
    Serve(String, Duration),
    /// This status, empty body.
    Status(u16),
    /// 200 without a length, then spaces without end (64 MiB at most, then silence).
    Endless,
    /// A `Content-Length` of 100 MB, 1 KiB of it, then silence.
    HugeLength,
}

struct Shared {
    mode: Mutex<Mode>,
    /// TCP connections accepted.
    conns: AtomicUsize,
    /// Requests read.
    requests: AtomicUsize,
    /// Body bytes written.
    sent: AtomicU64,
    /// A body write failed: the peer closed the connection.
    peer_closed: AtomicBool,
}

/// A client's key server on 127.0.0.1 (plain HTTP, or TLS with the test certificate for
/// `localhost` and 127.0.0.1).
struct KeyServer {
    port: u16,
    tls: bool,
    shared: Arc<Shared>,
}

const MIB: u64 = 1024 * 1024;

impl KeyServer {
    async fn start(mode: Mode) -> KeyServer {
        KeyServer::start_with(mode, false).await
    }

    async fn start_with(mode: Mode, tls: bool) -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            conns: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            peer_closed: AtomicBool::new(false),
        });
        let acceptor = tls.then(tls_acceptor);
        let sh = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                sh.conns.fetch_add(1, Ordering::SeqCst);
                let (sh, acceptor) = (sh.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(sock).await {
                                handle(s, sh).await
                            }
                        }
                        None => handle(sock, sh).await,
                    }
                });
            }
        });
        KeyServer { port, tls, shared }
    }

    /// The key URL with `host` (`127.0.0.1` or `localhost`).
    fn url_at(&self, host: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}:{}/jwks.json", self.port)
    }

    fn url(&self) -> String {
        self.url_at("127.0.0.1")
    }

    fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    fn conns(&self) -> usize {
        self.shared.conns.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S, sh: Arc<Shared>) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    sh.requests.fetch_add(1, Ordering::SeqCst);
    let mode = sh.mode.lock().unwrap().clone();
    let head = |status: &str, len: Option<u64>| {
        let len = len.map(|n| format!("Content-Length: {n}\r\n")).unwrap_or_default();
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{len}Connection: close\r\n\r\n")
    };
    match mode {
        Mode::Serve(body, delay) => {
            tokio::time::sleep(delay).await;
            let _ = sock
                .write_all(format!("{}{body}", head("200 OK", Some(body.len() as u64))).as_bytes())
                .await;
        }
        Mode::Status(code) => {
            let _ = sock
                .write_all(head(&format!("{code} Failing"), Some(0)).as_bytes())
                .await;
        }
        Mode::Endless | Mode::HugeLength => {
            let huge = matches!(mode, Mode::HugeLength);
            let _ = sock
                .write_all(head("200 OK", huge.then_some(100_000_000)).as_bytes())
                .await;
            let chunk = vec![b' '; 16 * 1024];
            let limit = if huge { 1024 } else { 64 * MIB };
            let mut total = 0u64;
            while total < limit {
                let n = chunk.len().min((limit - total) as usize);
                if sock.write_all(&chunk[..n]).await.is_err() || sock.flush().await.is_err() {
                    sh.peer_closed.store(true, Ordering::SeqCst);
                    return;
                }
                total += n as u64;
                sh.sent.fetch_add(n as u64, Ordering::SeqCst);
            }
            // Then silence, with the connection open.
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
    }
    let _ = sock.shutdown().await;
}

/// The test certificate for `localhost` / 127.0.0.1, signed by `tests/fixtures/tls/ca.pem`.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::{crypto::aws_lc_rs, ServerConfig};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let cert = CertificateDer::from(std::fs::read(dir.join("leaf.der")).unwrap());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        std::fs::read(dir.join("leaf.key.der")).unwrap(),
    ));
    let cfg = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

fn test_ca() -> String {
    format!("{}/tests/fixtures/tls/ca.pem", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn an_oversized_or_endless_key_document_is_cut_at_the_cap_and_answered_promptly() {
    let s = Server::start(&[ALLOW_LOOPBACK]).await;
    let endless = KeyServer::start(Mode::Endless).await;
    jwt_client(&s, "endless", &endless.url());
    let key = ClientKey::new("k1");
    let started = Instant::now();
    let (status, body, _) = token(&s, &key.sign(&good_claims("endless", &s))).await;
    let took = started.elapsed();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert!(
        took < Duration::from_secs(3),
        "answered promptly, not at the timeout: {took:?}"
    );
    // The server stopped reading at the cap and closed the connection: the key server's writes
    // fail after what the cap and the socket buffers hold, far below what it would send.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !endless.shared.peer_closed.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = endless.shared.sent.load(Ordering::SeqCst);
    assert!(
        endless.shared.peer_closed.load(Ordering::SeqCst),
        "connection closed early ({sent} bytes sent)"
    );
    assert!(sent < 16 * MIB, "{sent} bytes were sent before the server hung up");
    assert_eq!(endless.requests(), 1);

    // A Content-Length above the cap is refused without waiting for the body.
    let huge = KeyServer::start(Mode::HugeLength).await;
    jwt_client(&s, "huge", &huge.url());
    let started = Instant::now();
    let (status, body, _) = token(&s, &key.sign(&good_claims("huge", &s))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(huge.requests(), 1);
}

#[tokio::test]
async fn concurrent_assertions_for_one_client_cause_one_fetch() {
    let s = Server::start(&[ALLOW_LOOPBACK]).await;
    let key = ClientKey::new("k1");
    // A slow key server, so that the requests overlap the fetch.
    let keys = KeyServer::start(Mode::Serve(key.jwks_json(), Duration::from_millis(700))).await;
    jwt_client(&s, "remote", &keys.url());
    let started = Instant::now();
    let assertions: Vec<String> = (0..8).map(|_| key.sign(&good_claims("remote", &s))).collect();
    let results = futures::future::join_all(assertions.iter().map(|a| token(&s, a))).await;
    let took = started.elapsed();
    for (status, body, _) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    assert!(
        took < Duration::from_millis(8 * 700),
        "the requests overlapped: {took:?}"
    );
    assert_eq!(
        keys.requests(),
        1,
        "one fetch for {} concurrent requests",
        results.len()
    );
    assert_eq!(keys.conns(), 1);
}

#[tokio::test]
async fn a_failing_key_url_is_not_fetched_on_every_request_and_is_retried_after_its_back_off() {
    let s = Server::start(&[ALLOW_LOOPBACK]).await;
    let key = ClientKey::new("k1");
    let keys = KeyServer::start(Mode::Status(500)).await;
    jwt_client(&s, "broken", &keys.url());
    for i in 0..6 {
        let (status, body, _) = token(&s, &key.sign(&good_claims("broken", &s))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "try {i}: {body}"
        );
    }
    let failed_at = Instant::now();
    assert_eq!(keys.requests(), 1, "the failure is cached");
    // The key server recovers; the URL is fetched again once the first back-off (5 s) passed.
    keys.set(Mode::Serve(key.jwks_json(), Duration::ZERO));
    let (status, _, _) = token(&s, &key.sign(&good_claims("broken", &s))).await;
    if failed_at.elapsed() < Duration::from_secs(4) {
        assert_eq!(status, 401, "still in the back-off");
        assert_eq!(keys.requests(), 1);
    }
    tokio::time::sleep(Duration::from_millis(5300).saturating_sub(failed_at.elapsed())).await;
    let (status, body, _) = token(&s, &key.sign(&good_claims("broken", &s))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests(), 2);

    // A key server that hangs up without answering is a transient failure: 503 with
    // Retry-After, cached like any other.
    let hangup = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hangup.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = hangup.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    jwt_client(&s, "hangup", &format!("http://127.0.0.1:{port}/jwks.json"));
    for _ in 0..3 {
        let (status, body, retry) = token(&s, &key.sign(&good_claims("hangup", &s))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("temporarily_unavailable")),
            "{body}"
        );
        let retry: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=5).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for three requests");
}

#[tokio::test]
async fn key_urls_on_loopback_are_refused_unless_allow_listed() {
    let mut s = Server::start(&[]).await;
    let key = ClientKey::new("k1");
    let keys = KeyServer::start(Mode::Serve(key.jwks_json(), Duration::ZERO)).await;
    // An address literal, and a name that resolves to loopback.
    jwt_client(&s, "literal", &keys.url());
    jwt_client(&s, "named", &keys.url_at("localhost"));
    for id in ["literal", "named"] {
        let (status, body, _) = token(&s, &key.sign(&good_claims(id, &s))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{id}: {body}"
        );
    }
    assert_eq!(keys.conns(), 0, "the key server saw no connection");

    // The operator allows loopback: both work.
    s.restart(&[("AUTIONAL_CLIENT_AUTH__JWKS_FETCH_ALLOW", "127.0.0.1,::1")])
        .await;
    for id in ["literal", "named"] {
        let (status, body, _) = token(&s, &key.sign(&good_claims(id, &s))).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    assert_eq!(keys.requests(), 2);
}

#[tokio::test]
async fn assertions_that_fail_the_keyless_checks_cause_no_fetch() {
    let s = Server::start(&[ALLOW_LOOPBACK]).await;
    let key = ClientKey::new("k1");
    let keys = KeyServer::start(Mode::Serve(key.jwks_json(), Duration::ZERO)).await;
    jwt_client(&s, "remote", &keys.url());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good_claims("remote", &s);
        f(&mut c);
        key.sign(&c)
    };
    let now = now();
    let bad = [
        ("wrong iss", with(&|c| c["iss"] = json!("other"))),
        ("wrong sub", with(&|c| c["sub"] = json!("other"))),
        ("wrong aud", with(&|c| c["aud"] = json!("https://elsewhere.example"))),
        (
            "aud list without us",
            with(&|c| c["aud"] = json!(["https://a.example", "b"])),
        ),
        (
            "no aud",
            with(&|c| c.as_object_mut().unwrap().remove("aud").map(drop).unwrap_or(())),
        ),
        ("expired", with(&|c| c["exp"] = json!(now - 60))),
        (
            "no exp",
            with(&|c| c.as_object_mut().unwrap().remove("exp").map(drop).unwrap_or(())),
        ),
        ("lives too long", with(&|c| c["exp"] = json!(now + 3600))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now + 120))),
        (
            "no jti",
            with(&|c| c.as_object_mut().unwrap().remove("jti").map(drop).unwrap_or(())),
        ),
        ("long jti", with(&|c| c["jti"] = json!("j".repeat(300)))),
        ("unsigned", {
            let a = with(&|_| ());
            format!("{}.", a.rsplit_once('.').unwrap().0)
        }),
        ("not a JWT", "garbage".to_string()),
    ];
    for (what, assertion) in &bad {
        let (status, body, _) = token(&s, assertion).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}: {body}"
        );
    }
    assert_eq!(
        keys.conns(),
        0,
        "no fetch for assertions that fail before the signature"
    );
    let (status, body, _) = token(&s, &with(&|_| ())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests(), 1);
}

#[tokio::test]
async fn an_rfc7592_update_of_jwks_uri_takes_effect_at_once() {
    let ca = test_ca();
    let s = Server::start(&[
        ("AUTIONAL_REGISTRATION__ENABLED", "true"),
        ("AUTIONAL_CLIENT_AUTH__JWKS_FETCH_ALLOW", "localhost"),
        ("SSL_CERT_FILE", ca.as_str()),
    ])
    .await;
    // Both sets use the same kid: nothing but the URL tells the server which key is current.
    let (k1, k2) = (ClientKey::new("k"), ClientKey::new("k"));
    let a = KeyServer::start_with(Mode::Serve(k1.jwks_json(), Duration::ZERO), true).await;
    let b = KeyServer::start_with(Mode::Serve(k2.jwks_json(), Duration::ZERO), true).await;
    let metadata = |jwks_uri: String| {
        json!({
            "client_name": "Rotating keys",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": jwks_uri,
            "grant_types": ["authorization_code"],
            "redirect_uris": ["https://client.example/cb"],
        })
    };
    let r = s
        .http
        .post(s.url("/oauth/register"))
        .json(&metadata(a.url_at("localhost")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap().to_string();
    let rat = reg["registration_access_token"].as_str().unwrap().to_string();
    // Client authentication at the introspection endpoint (any confidential client may).
    let introspect = |k: &ClientKey| {
        let mut c = good_claims(&id, &s);
        c["aud"] = json!(s.url("/oauth/introspect"));
        s.http.post(s.url("/oauth/introspect")).form(&[
            ("token", "rt_unknown".to_string()),
            ("client_assertion_type", ASSERTION_TYPE.to_string()),
            ("client_assertion", k.sign(&c)),
        ])
    };
    let r = introspect(&k1).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(a.requests(), 1);

    let r = s
        .http
        .put(s.url(&format!("/oauth/register/{id}")))
        .bearer_auth(&rat)
        .json(&metadata(b.url_at("localhost")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // At once: the new URL's key works, the old URL's key does not.
    let r = introspect(&k2).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the new keys count at once: {}",
        r.text().await.unwrap()
    );
    assert_eq!(b.requests(), 1);
    let r = introspect(&k1).send().await.unwrap();
    assert_eq!(r.status(), 401, "the old keys are gone");
    assert_eq!(a.requests(), 1);
}

#[tokio::test]
async fn at_the_outbound_cap_a_fetch_is_refused_at_once_with_503() {
    let s = Server::start(&[ALLOW_LOOPBACK, ("AUTIONAL_CLIENT_AUTH__JWKS_FETCH_CONCURRENCY", "1")]).await;
    let key = ClientKey::new("k1");
    let slow = KeyServer::start(Mode::Serve(key.jwks_json(), Duration::from_millis(1500))).await;
    let other = KeyServer::start(Mode::Serve(key.jwks_json(), Duration::ZERO)).await;
    jwt_client(&s, "slow", &slow.url());
    jwt_client(&s, "other", &other.url());
    let slow_assertion = key.sign(&good_claims("slow", &s));
    let first = token(&s, &slow_assertion);
    let second = async {
        // Once the slow fetch holds the only outbound slot.
        while slow.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        let r = token(&s, &key.sign(&good_claims("other", &s))).await;
        (r, started.elapsed())
    };
    let ((status, body, _), ((status2, body2, retry), took)) = tokio::join!(first, second);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (status2, body2["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body2}"
    );
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(
        took < Duration::from_millis(1000),
        "refused at once, not queued: {took:?}"
    );
    assert_eq!(other.conns(), 0);
    // Busy is not cached: with the slot free again, the other client's keys are fetched.
    let (status, body, _) = token(&s, &key.sign(&good_claims("other", &s))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(other.requests(), 1);
}

#[test]
fn a_bad_jwks_fetch_setting_stops_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    for (key, value, named) in [
        (
            "AUTIONAL_CLIENT_AUTH__JWKS_FETCH_ALLOW",
            "10.0.0.0/40",
            "client_auth.jwks_fetch_allow",
        ),
        (
            "AUTIONAL_CLIENT_AUTH__JWKS_FETCH_ALLOW",
            "[127.0.0.1, http://x]",
            "client_auth.jwks_fetch_allow",
        ),
        (
            "AUTIONAL_CLIENT_AUTH__JWKS_FETCH_MAX_BYTES",
            "10",
            "client_auth.jwks_fetch_max_bytes",
        ),
        (
            "AUTIONAL_CLIENT_AUTH__JWKS_FETCH_TIMEOUT",
            "0",
            "client_auth.jwks_fetch_timeout",
        ),
        (
            "AUTIONAL_CLIENT_AUTH__JWKS_FETCH_CONCURRENCY",
            "0",
            "client_auth.jwks_fetch_concurrency",
        ),
    ] {
        let out = common::run_raw(&[("AUTIONAL_DATABASE_URL", &db), (key, value)], &["migrate"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(named), "{key}={value} names {named}: {stderr}");
    }
    // A list in brackets and a separated string both load.
    for value in ["[127.0.0.0/8, ::1, keys.internal]", "127.0.0.0/8 ::1,keys.internal"] {
        let out = common::run_raw(
            &[
                ("AUTIONAL_DATABASE_URL", &db),
                ("AUTIONAL_CLIENT_AUTH__JWKS_FETCH_ALLOW", value),
            ],
            &["migrate"],
        );
        assert!(
            out.status.success(),
            "{value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
