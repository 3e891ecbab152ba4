//! The HTTP layer against hostile clients (issue 10 findings 8 and 9), on a real server over raw
//! TCP: a request head or body sent too slowly is cut off at its timeout, an idle keep-alive
//! connection is closed, connections above the cap are not served until one closes; cookies are
//! `__Host-` and Secure with an https issuer, and a cookie name sent twice counts as absent.

mod common;

use common::Server;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn connect(s: &Server) -> TcpStream {
    let stream = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    stream
}

/// Reads until the server closes the connection, sending `trickle` one byte at a time (every
/// 250 ms) meanwhile. Returns what the server sent and when it closed, or `None` if the
/// connection was still open after `limit`.
fn until_closed(stream: &mut TcpStream, limit: Duration, trickle: &[u8]) -> Option<(String, Duration)> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut next = 0;
    let mut last_write = Instant::now();
    while start.elapsed() < limit {
        if next < trickle.len() && last_write.elapsed() >= Duration::from_millis(250) {
            let _ = stream.write_all(&trickle[next..next + 1]);
            next += 1;
            last_write = Instant::now();
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some((String::from_utf8_lossy(&out).into_owned(), start.elapsed())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some((String::from_utf8_lossy(&out).into_owned(), start.elapsed())),
        }
    }
    None
}

/// Finding 8: a half-sent request line and headers is closed at `http.header_read_timeout`
/// (here 1 s), and so is an idle keep-alive connection after its response.
#[tokio::test]
async fn slow_request_heads_and_idle_connections_are_closed() {
    let s = Server::start(&[("AUTIONAL_HTTP__HEADER_READ_TIMEOUT", "1")]).await;
    let mut c = connect(&s);
    c.write_all(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .unwrap();
    let (_, took) = until_closed(&mut c, Duration::from_secs(4), b"").expect("closed within the header timeout");
    assert!(took >= Duration::from_millis(800), "not before the timeout: {took:?}");
    // Trickling the head byte by byte does not keep it open either.
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let trickle = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    until_closed(&mut c, Duration::from_secs(4), trickle).expect("a trickled head is closed too");
    // Idle keep-alive: the response comes, then the connection is closed after the timeout.
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (resp, _) = until_closed(&mut c, Duration::from_secs(4), b"").expect("idle connection closed");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

/// Finding 8: a request body that does not arrive within `http.body_timeout` of its headers
/// (here 1 s) is answered 408 and the connection closed, also when it trickles in byte by byte
/// (the timeout is for the whole body, not between bytes).
#[tokio::test]
async fn slow_request_bodies_are_cut_off() {
    let s = Server::start(&[("AUTIONAL_HTTP__BODY_TIMEOUT", "1")]).await;
    let head = "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n";
    for trickle in [&b""[..], &[b'a'; 40][..]] {
        let mut c = connect(&s);
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(b"grant_type=refresh_token&refresh_token=").unwrap();
        let (resp, took) =
            until_closed(&mut c, Duration::from_secs(4), trickle).expect("closed within the body timeout");
        assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
        assert!(took >= Duration::from_millis(800), "not before the timeout: {took:?}");
    }
}

/// Finding 8: above `http.max_connections` nothing more is served until a connection closes.
#[tokio::test]
async fn connections_above_the_cap_wait() {
    let s = Server::start(&[
        ("AUTIONAL_HTTP__MAX_CONNECTIONS", "2"),
        ("AUTIONAL_HTTP__HEADER_READ_TIMEOUT", "30"),
    ])
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // Two connections that hold their slots (a request head in progress).
    let mut held: Vec<TcpStream> = (0..2).map(|_| connect(&s)).collect();
    for c in &mut held {
        c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(&s);
    third.write_all(request).unwrap();
    assert!(
        until_closed(&mut third, Duration::from_millis(1500), b"").is_none(),
        "the third connection is not served while two are open"
    );
    drop(held.pop());
    let (resp, _) = until_closed(&mut third, Duration::from_secs(5), b"").expect("served once a slot frees");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

/// Finding 9: with an https issuer (TLS ends at a proxy; the server itself speaks http on
/// loopback) both cookies are `__Host-` prefixed, Secure, `Path=/`, without `Domain`, and the
/// unprefixed names are not read.
#[tokio::test]
async fn https_issuer_sets_host_prefixed_secure_cookies() {
    let s = Server::start(&[("AUTIONAL_ISSUER", "https://login.example.test")]).await;
    let r = s.http.get(s.url("/login")).send().await.unwrap();
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let host_cookie = |c: &str, name: &str| {
        assert!(c.starts_with(&format!("__Host-{name}=")), "{c}");
        assert!(
            c.contains("; Secure") && c.contains("Path=/;") && !c.to_ascii_lowercase().contains("domain"),
            "{c}"
        );
    };
    assert_eq!(set.len(), 1, "{set:?}");
    host_cookie(&set[0], "autional_csrf");
    let csrf_cookie = common::set_cookie(r.headers(), "__Host-autional_csrf").unwrap();
    let token = common::hidden(&r.text().await.unwrap(), "csrf_token").unwrap();
    let login = |cookie: String| {
        s.http
            .post(s.url("/login"))
            .header("cookie", cookie)
            .form(&[
                ("username", "alice"),
                ("password", common::PASSWORD),
                ("csrf_token", token.as_str()),
            ])
            .send()
    };
    // The unprefixed name is not the CSRF cookie here.
    assert_eq!(
        login(format!("autional_csrf={csrf_cookie}")).await.unwrap().status(),
        403
    );
    let r = login(format!("__Host-autional_csrf={csrf_cookie}")).await.unwrap();
    assert_eq!(r.status(), 303);
    let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
    host_cookie(&c, "autional_session");
    let session = common::set_cookie(r.headers(), "__Host-autional_session").unwrap();
    let account = |cookie: String| s.http.get(s.url("/account")).header("cookie", cookie).send();
    assert_eq!(
        account(format!("__Host-autional_session={session}"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        account(format!("autional_session={session}")).await.unwrap().status(),
        303
    );
}

/// Finding 9: a session or CSRF cookie sent twice is not read at all (the first one is not
/// taken: it may be one an attacker planted with a more specific path or a parent domain).
#[tokio::test]
async fn duplicate_session_and_csrf_cookies_are_refused() {
    let s = Server::start(&[]).await;
    let (cookies, _) = s.sign_in("/account").await;
    let session = cookies.split("autional_session=").nth(1).unwrap().to_string();
    let account = |cookie: String| s.http.get(s.url("/account")).header("cookie", cookie).send();
    assert_eq!(
        account(format!("autional_session={session}")).await.unwrap().status(),
        200
    );
    for dup in [
        format!("autional_session={session}; autional_session=planted"),
        format!("autional_session={session}; autional_session={session}"),
    ] {
        assert_eq!(account(dup.clone()).await.unwrap().status(), 303, "{dup}");
    }
    // Two Cookie headers count too.
    let r = s
        .http
        .get(s.url("/account"))
        .header("cookie", format!("autional_session={session}"))
        .header("cookie", "autional_session=planted")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // The login form's CSRF cookie, duplicated: refused, no session.
    let r = s.http.get(s.url("/login")).send().await.unwrap();
    let csrf_cookie = common::set_cookie(r.headers(), "autional_csrf").unwrap();
    let token = common::hidden(&r.text().await.unwrap(), "csrf_token").unwrap();
    let r = s
        .http
        .post(s.url("/login"))
        .header("cookie", format!("autional_csrf={csrf_cookie}; autional_csrf=planted"))
        .form(&[
            ("username", "alice"),
            ("password", common::PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(common::set_cookie(r.headers(), "autional_session").is_none());
}

/// The accept loop keeps graceful shutdown: on SIGTERM new connections are refused, the
/// request in flight is answered, and the process exits 0.
#[tokio::test]
async fn sigterm_answers_the_request_in_flight_then_exits() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = std::process::Command::new(common::bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "AUTIONAL_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("a.db").display()),
        )
        .env("AUTIONAL_LISTEN", addr.to_string())
        .env("AUTIONAL_ISSUER", format!("http://{addr}"))
        .env("AUTIONAL_LOG", "warn")
        .env("AUTIONAL_ADMIN__LISTEN", "")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let body = b"grant_type=password&";
    c.write_all(
        format!(
            "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(TcpStream::connect(addr).is_err(), "no new connections after SIGTERM");
    c.write_all(body).unwrap();
    let (resp, _) = until_closed(&mut c, Duration::from_secs(5), b"").expect("answered, then closed");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the process exits");
        std::thread::sleep(Duration::from_millis(50));
    }
}
