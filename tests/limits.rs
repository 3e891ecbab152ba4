//! Abuse limits (`src/limits`, `docs/design/rate-limits.md`): user-code guessing on every path of
//! the device page, per-client budgets charged only after authentication, failed client
//! authentication per address, introspection and revocation limits, per-account sign-in
//! back-off, IPv6 addresses aggregated by /64, and the bound on concurrent password hashes.
//! Attacker and victim addresses are told apart with `http.forwarded_hops = 1` and
//! `X-Forwarded-For` (all test traffic comes from 127.0.0.1).

mod common;

use common::{form_field, hidden, set_cookie, Server, PASSWORD};
use serde_json::Value;
use std::time::Duration;

const HOPS: (&str, &str) = ("AUTIONAL_HTTP__FORWARDED_HOPS", "1");

/// A signed-in session on the device page: (cookie header, the form's CSRF token).
async fn device_session(s: &Server) -> (String, String) {
    let (cookies, _) = s.sign_in("/oauth/device").await;
    let html = s
        .http
        .get(s.url("/oauth/device"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (cookies, form_field(&html, "/oauth/device", "csrf_token").unwrap())
}

/// A well-formed user code that (almost certainly) names no device authorization.
fn guess(i: usize) -> String {
    const A: &[u8] = b"BCDFGHJKMNPQRSTVWXZ";
    let c: String = (0..8).map(|k| A[(i * 7 + k * 13 + i / 20) % A.len()] as char).collect();
    format!("{}-{}", &c[..4], &c[4..])
}

#[tokio::test]
async fn device_decisions_count_against_the_user_code_limit() {
    // Default: 10 user codes per minute per address and per user.
    let s = Server::start(&[]).await;
    let (cookies, csrf) = device_session(&s).await;
    let mut statuses = Vec::new();
    for i in 0..200 {
        let approved = if i % 2 == 0 { "true" } else { "false" };
        let r = s
            .http
            .post(s.url("/oauth/device"))
            .header("cookie", &cookies)
            .form(&[
                ("user_code", guess(i).as_str()),
                ("csrf_token", csrf.as_str()),
                ("approved", approved),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(status);
    }
    let misses = statuses.iter().filter(|s| **s == 400).count();
    assert_eq!(misses, 10, "guesses answered before the limit: {statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn user_code_guesses_are_limited_per_user_across_addresses() {
    let s = Server::start(&[HOPS, ("AUTIONAL_DEVICE__USER_CODE_ATTEMPTS_PER_MINUTE", "3")]).await;
    let (cookies, csrf) = device_session(&s).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let code = guess(i);
        let mut form = vec![("user_code", code.as_str()), ("csrf_token", csrf.as_str())];
        if i % 2 == 1 {
            form.push(("approved", "true"));
        }
        let r = s
            .http
            .post(s.url("/oauth/device"))
            .header("cookie", &cookies)
            // A fresh address for every guess: only the per-user budget can stop them.
            .header("x-forwarded-for", format!("198.51.100.{}", i + 1))
            .form(&form)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 429, 429, 429, 429, 429]);
}

/// `POST /oauth/token` (refresh grant, an unknown token) as `conf` with `secret` from `ip`.
async fn token_as_conf(s: &Server, secret: &str, ip: &str) -> reqwest::Response {
    s.http
        .post(s.url("/oauth/token"))
        .basic_auth("conf", Some(secret))
        .header("x-forwarded-for", ip)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "rt_unknown")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn wrong_secrets_for_a_client_do_not_spend_its_budget() {
    let s = Server::start(&[
        HOPS,
        ("AUTIONAL_RATE_LIMIT__TOKEN_PER_SECOND", "1"),
        ("AUTIONAL_RATE_LIMIT__TOKEN_BURST", "5"),
        ("AUTIONAL_RATE_LIMIT__FAILED_CLIENT_AUTH_PER_MINUTE", "10"),
    ])
    .await;
    // The attacker floods with conf's id and a wrong secret: 401 until the address's
    // failed-authentication budget is spent, then 429 without checking anything.
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let r = token_as_conf(&s, "wrong-secret", "203.0.113.66").await;
        let status = r.status().as_u16();
        if status == 429 {
            assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(status);
    }
    // The real client, elsewhere, still has its whole budget.
    for _ in 0..5 {
        let r = token_as_conf(&s, &s.conf_secret, "198.51.100.7").await;
        assert_eq!(r.status(), 400, "the victim's authenticated requests are not limited");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 10, "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn introspection_and_revocation_are_rate_limited() {
    let s = Server::start(&[
        HOPS,
        ("AUTIONAL_RATE_LIMIT__INTROSPECTION_PER_SECOND", "1"),
        ("AUTIONAL_RATE_LIMIT__INTROSPECTION_BURST", "3"),
        ("AUTIONAL_RATE_LIMIT__ADDRESS_PER_SECOND", "1"),
        ("AUTIONAL_RATE_LIMIT__ADDRESS_BURST", "10"),
    ])
    .await;
    let call = |path: &'static str, ip: &'static str, conf: bool| {
        let mut rb = s
            .http
            .post(s.url(path))
            .header("x-forwarded-for", ip)
            .form(&[("token", "not-a-token"), ("client_id", "pub")]);
        if conf {
            rb = s
                .http
                .post(s.url(path))
                .header("x-forwarded-for", ip)
                .basic_auth("conf", Some(&s.conf_secret))
                .form(&[("token", "not-a-token")]);
        }
        rb.send()
    };
    // Per authenticated client: introspection and revocation share one budget.
    for _ in 0..3 {
        assert_eq!(
            call("/oauth/introspect", "192.0.2.1", true).await.unwrap().status(),
            200
        );
    }
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let r = call(path, "192.0.2.1", true).await.unwrap();
        assert_eq!(r.status(), 429, "{path}");
        assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "rate_limit_exceeded");
    }
    // Per address: a public client (no budget of its own) flooding revocations.
    for _ in 0..10 {
        assert_eq!(call("/oauth/revoke", "192.0.2.2", false).await.unwrap().status(), 200);
    }
    let r = call("/oauth/revoke", "192.0.2.2", false).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

/// A sign-in form's CSRF cookie and token.
async fn login_form(s: &Server) -> (String, String) {
    let r = s.http.get(s.url("/login")).send().await.unwrap();
    let cookie = set_cookie(r.headers(), "autional_csrf").unwrap();
    let token = hidden(&r.text().await.unwrap(), "csrf_token").unwrap();
    (cookie, token)
}

async fn login(s: &Server, form: &(String, String), user: &str, password: &str, ip: &str) -> reqwest::Response {
    s.http
        .post(s.url("/login"))
        .header("cookie", format!("autional_csrf={}", form.0))
        .header("x-forwarded-for", ip)
        .form(&[("username", user), ("password", password), ("csrf_token", &form.1)])
        .send()
        .await
        .unwrap()
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn sign_in_backs_off_per_account_across_addresses() {
    let s = Server::start(&[
        HOPS,
        ("AUTIONAL_RATE_LIMIT__ACCOUNT_FREE_FAILURES", "2"),
        ("AUTIONAL_RATE_LIMIT__ACCOUNT_MAX_BACKOFF", "2s"),
    ])
    .await;
    let f = login_form(&s).await;
    // Two free failures, each from another address.
    assert_eq!(login(&s, &f, "alice", "wrong-1", "198.51.100.1").await.status(), 401);
    assert_eq!(login(&s, &f, "alice", "wrong-2", "198.51.100.2").await.status(), 401);
    // Then a 1 s wait, for any address and even for the right password.
    let r = login(&s, &f, "alice", PASSWORD, "198.51.100.3").await;
    assert_eq!(r.status(), 429);
    assert_eq!(retry_after(&r), 1);
    assert!(set_cookie(r.headers(), "autional_session").is_none());
    // An unknown username is treated the same way (the throttle does not reveal accounts).
    assert_eq!(login(&s, &f, "nobody", "x", "198.51.100.4").await.status(), 401);
    assert_eq!(login(&s, &f, "nobody", "x", "198.51.100.4").await.status(), 401);
    assert_eq!(login(&s, &f, "nobody", "x", "198.51.100.4").await.status(), 429);
    // After the wait one attempt; failing doubles the wait (capped at 2 s here).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(login(&s, &f, "alice", "wrong-3", "198.51.100.5").await.status(), 401);
    let r = login(&s, &f, "alice", PASSWORD, "198.51.100.6").await;
    assert_eq!(r.status(), 429);
    assert_eq!(retry_after(&r), 2);
    // The right password after the back-off works, and resets it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = login(&s, &f, "alice", PASSWORD, "198.51.100.7").await;
    assert_eq!(r.status(), 303);
    assert!(set_cookie(r.headers(), "autional_session").is_some());
    let r = login(&s, &f, "alice", "wrong-4", "198.51.100.8").await;
    assert_eq!(r.status(), 401, "{:?}", r.headers().get("retry-after"));
    let r = login(&s, &f, "alice", "wrong-5", "198.51.100.9").await;
    assert_eq!(r.status(), 401, "{:?}", r.headers().get("retry-after"));
}

#[tokio::test]
async fn address_limits_aggregate_ipv6_by_64_and_map_ipv4() {
    let s = Server::start(&[HOPS, ("AUTIONAL_RATE_LIMIT__LOGIN_PER_MINUTE", "2")]).await;
    let f = login_form(&s).await;
    // Distinct usernames: only the per-address limit is in play.
    let mut statuses = Vec::new();
    for (i, ip) in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::abcd",
        // Another address of the same /64: the same budget.
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        // The next /64 has its own.
        "2001:db8:1:3::1",
        // An IPv4-mapped IPv6 address is its IPv4 address.
        "::ffff:192.0.2.9",
        "192.0.2.9",
        "::ffff:192.0.2.9",
    ]
    .into_iter()
    .enumerate()
    {
        statuses.push(login(&s, &f, &format!("user{i}"), "x", ip).await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429, 401, 401, 401, 429]);
}

#[tokio::test]
async fn concurrent_password_hashes_are_bounded() {
    let s = Server::start(&[
        ("AUTIONAL_RATE_LIMIT__MAX_CONCURRENT_HASHES", "1"),
        ("AUTIONAL_RATE_LIMIT__HASH_WAIT_MS", "0"),
        ("AUTIONAL_RATE_LIMIT__LOGIN_PER_MINUTE", "1000"),
    ])
    .await;
    let f = login_form(&s).await;
    let attempts = (0..48).map(|i| {
        let (s, f) = (&s, &f);
        async move {
            let r = login(s, f, &format!("user{i}"), "x", "127.0.0.1").await;
            let status = r.status().as_u16();
            if status == 503 {
                assert!(retry_after(&r) >= 1);
                assert!(r.text().await.unwrap().contains("busy"));
            }
            status
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert!(statuses.iter().all(|s| *s == 401 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&503), "one hash slot, 48 at once: {statuses:?}");
    assert!(statuses.contains(&401), "{statuses:?}");
    // Alone, a sign-in gets the slot.
    assert_eq!(login(&s, &f, "alice", PASSWORD, "127.0.0.1").await.status(), 303);
}
