//! The server around the grants: configuration errors, discovery, JWKS and key rotation,
//! health, page security headers, sign-in CSRF and rate limits, and `serve --demo`.

mod common;

use common::{run_raw, Server};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn bad_config_stops_startup_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    for (env, key) in [
        (
            ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "61"),
            "refresh.reuse_grace_seconds",
        ),
        (("AUTIONAL_REFRESH__IDLE_TTL", "soon"), "refresh.idle_ttl"),
        (("AUTIONAL_ISSUER", "not a url"), "issuer"),
        (("AUTIONAL_LISTEN", "nowhere"), "listen"),
        (("AUTIONAL_DATABASE_URL", "mysql://x"), "database_url"),
        (("AUTIONAL_KEYS__ENCRYPTION_KEY", "c2hvcnQ="), "keys.encryption_key"),
        (
            ("AUTIONAL_REGISTRATION__ALLOWED_GRANT_TYPES", "[password]"),
            "registration.allowed_grant_types",
        ),
        (
            ("AUTIONAL_REGISTRATION__ALLOWED_SCOPES", "[openid, api.admin]"),
            "registration.allowed_scopes",
        ),
        (("AUTIONAL_SCOPES__API_AUDIENCE", "not a uri"), "scopes.api_audience"),
        (("AUTIONAL_SCOPES__CUSTOM", "[api.read, admin:write]"), "scopes.custom"),
        (("AUTIONAL_ADMIN__LISTEN", "not an address"), "admin.listen"),
    ] {
        let mut vars = vec![("AUTIONAL_DATABASE_URL", db.as_str())];
        vars.retain(|(k, _)| *k != env.0);
        vars.push(env);
        let out = run_raw(&vars, &["serve"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(key), "names {key}: {stderr}");
    }
    // A TOML file works the same way, and the environment overrides it.
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[refresh]\nreuse_grace_seconds = 99\n").unwrap();
    let out = run_raw(
        &[("AUTIONAL_DATABASE_URL", &db)],
        &["--config", file.to_str().unwrap(), "migrate"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run_raw(
        &[
            ("AUTIONAL_DATABASE_URL", &db),
            ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "5"),
        ],
        &["--config", file.to_str().unwrap(), "migrate"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn discovery_at_both_paths_advertises_what_is_implemented() {
    let s = Server::start(&[]).await;
    let a: Value = s
        .http
        .get(s.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b: Value = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a["issuer"], s.base.as_str());
    assert_eq!(a["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(
        a["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(a["authorization_response_iss_parameter_supported"], true);
    for k in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let u = a[k].as_str().unwrap();
        assert!(u.starts_with(&s.base), "{k}");
    }
    assert_eq!(
        a["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"])
    );
    assert_eq!(
        a["authorization_details_types_supported"],
        serde_json::json!(["account_information", "payment_initiation"])
    );
    assert_eq!(
        a["pushed_authorization_request_endpoint"],
        format!("{}/oauth/pushed-authorization", s.base)
    );
    // Not implemented yet, so not advertised.
    assert_eq!(
        a["device_authorization_endpoint"],
        format!("{}/oauth/device/authorize", s.base)
    );
    assert_eq!(a["end_session_endpoint"], format!("{}/oauth/logout", s.base));
    // Off by default, so not advertised.
    assert!(
        a.get("registration_endpoint").is_none(),
        "registration is off: not advertised"
    );
}

#[tokio::test]
async fn jwks_serves_the_signing_key_and_rotation_keeps_old_tokens_valid() {
    let mut s = Server::start(&[]).await;
    let jwks: Value = s
        .http
        .get(s.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0].get("d").is_none(), "no private part");
    // No private key material in the JWKS, and the private key is stored (not printed).
    let (t, _) = s.tokens("pub", "openid offline_access").await;
    let old_kid = keys[0]["kid"].as_str().unwrap().to_string();
    assert_eq!(
        common::claims(t["access_token"].as_str().unwrap())["iss"],
        s.base.as_str()
    );
    let rotated = s.cli(&["key", "rotate"]);
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    s.restart(&[]).await;
    let jwks: Value = s
        .http
        .get(s.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    // The old access token still verifies; new tokens use the new key.
    assert_eq!(s.introspect(t["access_token"].as_str().unwrap()).await["active"], true);
    let r: Value = s
        .refresh("pub", t["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let header = r["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    use base64::Engine;
    let h: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(h["kid"], new_kid.as_str());
    assert_eq!(h["typ"], "at+jwt");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    // Metrics are served on their own listener only (issue 10 finding 10).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let s = Server::start(&[("AUTIONAL_METRICS__LISTEN", metrics.as_str())]).await;
    assert_eq!(
        s.http.get(s.url("/metrics")).send().await.unwrap().status(),
        404,
        "not on the public listener"
    );
    assert_eq!(s.http.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(s.http.get(s.url("/readyz")).send().await.unwrap().status(), 200);
    let (t, _) = s.tokens("pub", "openid").await;
    assert_eq!(
        s.refresh("pub", t["refresh_token"].as_str().unwrap()).await.status(),
        200
    );
    let m = s
        .http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("autional_refresh_total"), "{m}");
}

#[tokio::test]
async fn pages_send_strict_headers_and_check_csrf() {
    let s = Server::start(&[("AUTIONAL_RATE_LIMIT__LOGIN_PER_MINUTE", "2")]).await;
    let r = s.http.get(s.url("/login")).send().await.unwrap();
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let csrf_cookie = common::set_cookie(&h, "autional_csrf").unwrap();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("name=\"username\"")
            && html.contains("name=\"password\"")
            && html.contains("button type=\"submit\"")
    );
    let token = common::hidden(&html, "csrf_token").unwrap();
    let post = |csrf: &str, pw: &str| {
        s.http
            .post(s.url("/login"))
            .header("cookie", format!("autional_csrf={csrf_cookie}"))
            .form(&[("username", "alice"), ("password", pw), ("csrf_token", csrf)])
            .send()
    };
    // Forged CSRF token: refused, no session.
    let before = s.snapshot();
    let r = post("forged", common::PASSWORD).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(common::set_cookie(r.headers(), "autional_session").is_none());
    assert_eq!(before, s.snapshot());
    // Wrong password: 401, no session.
    let r = post(&token, "wrong-password").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(common::set_cookie(r.headers(), "autional_session").is_none());
    // The right one: a session.
    let r = post(&token, common::PASSWORD).await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(common::set_cookie(r.headers(), "autional_session").is_some());
    // Rate limit (2 attempts per minute per address).
    let r = post(&token, common::PASSWORD).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn token_endpoints_are_rate_limited_per_client() {
    let s = Server::start(&[
        ("AUTIONAL_RATE_LIMIT__TOKEN_PER_SECOND", "1"),
        ("AUTIONAL_RATE_LIMIT__TOKEN_BURST", "2"),
    ])
    .await;
    // The per-client budget belongs to clients that authenticate (`conf`): anyone can name a
    // public client, so public clients are limited per address only (`tests/limits.rs`).
    let a = s.authorize("conf", "openid offline_access").await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("conf", Some(&s.conf_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", a.code.as_str()),
            ("redirect_uri", common::REDIRECT),
            ("code_verifier", a.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let refresh = |rt: String| {
        s.http
            .post(s.url("/oauth/refresh"))
            .basic_auth("conf", Some(&s.conf_secret))
            .json(&serde_json::json!({"refresh_token": rt}))
            .send()
    };
    // The code exchange used one of the two; the next refresh uses the other.
    let r1 = refresh(t["refresh_token"].as_str().unwrap().to_string()).await.unwrap();
    assert_eq!(r1.status(), 200);
    let rt1 = r1.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let before = s.snapshot();
    let r = refresh(rt1.clone()).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "rate_limit_exceeded");
    assert_eq!(before, s.snapshot(), "a limited request changes nothing");
    // Another client has its own budget.
    let other = s
        .http
        .post(s.url("/oauth/refresh"))
        .form(&[
            ("refresh_token", "rt_unknown"),
            ("client_id", "post"),
            ("client_secret", s.post_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    assert_eq!(other.json::<Value>().await.unwrap()["error"], "invalid_grant");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(refresh(rt1).await.unwrap().status(), 200);
}

#[tokio::test]
async fn demo_mode_prints_a_working_walkthrough() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(common::bin())
        .env(
            "AUTIONAL_DATABASE_URL",
            format!("sqlite://{}/d.db", dir.path().display()),
        )
        .env("AUTIONAL_LISTEN", format!("127.0.0.1:{port}"))
        .env("AUTIONAL_ISSUER", &base)
        .env("AUTIONAL_LOG", "warn")
        .env("AUTIONAL_ADMIN__LISTEN", "")
        .args(["serve", "--demo"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    while !out.contains("listening on") {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        out.push_str(&line);
    }
    let _guard = scopeguard(child);
    assert!(
        out.contains("password:") && out.contains("demo-app") && out.contains("/oauth/refresh"),
        "{out}"
    );
    let url = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{base}/oauth/authorize?")))
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303, "the printed URL is a valid authorization request");
    let r = http
        .get(format!("{base}/demo/callback?code=abc&state=demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("abc"));
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn scopeguard(c: std::process::Child) -> Kill {
    Kill(c)
}

#[tokio::test]
async fn background_sweeper_deletes_expired_rows() {
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__ABSOLUTE_TTL", "1s"),
        ("AUTIONAL_CODE__TTL", "1s"),
        ("AUTIONAL_STORE__SWEEP_INTERVAL", "1s"),
        ("AUTIONAL_STORE__SWEEP_RETENTION", "0s"),
    ])
    .await;
    let (t, _) = s.tokens("pub", "openid offline_access").await;
    let _unused_code = s.authorize("pub", "openid").await;
    let _ = s.refresh("pub", t["refresh_token"].as_str().unwrap()).await;
    assert!(s.scalar_i64("SELECT COUNT(*) FROM families") >= 1);
    assert!(s.scalar_i64("SELECT COUNT(*) FROM codes") >= 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    loop {
        let left = s.scalar_i64(
            "SELECT (SELECT COUNT(*) FROM families) + (SELECT COUNT(*) FROM refresh_tokens) + (SELECT COUNT(*) FROM codes)",
        );
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} expired rows left: {}",
            s.snapshot()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn per_address_limits_use_the_trusted_proxy_hop_only() {
    let s = Server::start(&[
        ("AUTIONAL_HTTP__FORWARDED_HOPS", "1"),
        ("AUTIONAL_RATE_LIMIT__ADDRESS_PER_SECOND", "1"),
        ("AUTIONAL_RATE_LIMIT__ADDRESS_BURST", "1"),
    ])
    .await;
    let send = |xff: &'static str| {
        s.http
            .post(s.url("/oauth/refresh"))
            .header("x-forwarded-for", xff)
            .json(&serde_json::json!({"refresh_token": "rt_x", "client_id": "pub"}))
            .send()
    };
    assert_eq!(send("1.1.1.1").await.unwrap().status(), 401);
    assert_eq!(send("1.1.1.1").await.unwrap().status(), 429);
    // Prepending addresses does not escape the limit: only the proxy's entry counts.
    assert_eq!(send("9.9.9.9, 1.1.1.1").await.unwrap().status(), 429);
    // Another client address behind the same proxy has its own budget.
    assert_eq!(send("2.2.2.2").await.unwrap().status(), 401);
}
