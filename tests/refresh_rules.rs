//! SPEC §4, one test per implemented rule, over HTTP against a real `autional` process on a real
//! SQLite file. Tokens are obtained through the real pages (sign-in, consent) and code exchange.

mod common;

use common::race::{concurrent_refreshes, RACE_ENV};
use common::{claims, Server};
use serde_json::{json, Value};
use std::time::Duration;

const SCOPE: &str = "openid profile email offline_access";

async fn ok_json(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "expected 200, got {status}: {body}");
    body
}

/// Refreshes `rt` as the public client `pub` (expecting 200) and returns the new refresh token.
async fn rotated(s: &Server, rt: &str) -> String {
    ok_json(s.refresh("pub", rt).await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn err(r: reqwest::Response, status: u16, error: &str) -> Value {
    let got = r.status().as_u16();
    let cc = r
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (got, body["error"].as_str().unwrap_or("")),
        (status, error),
        "body: {body}"
    );
    assert_eq!(cc.as_deref(), Some("no-store"));
    body
}

/// Rotates a fresh family once, waits `wait_ms`, then presents the predecessor: reuse (401), and
/// the family is revoked (its successor is refused too).
async fn replay_predecessor_after(s: &Server, wait_ms: u64) {
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap().to_string();
    let rt1 = ok_json(s.refresh("pub", &rt0).await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    err(s.refresh("pub", &rt0).await, 401, "invalid_grant").await;
    err(s.refresh("pub", &rt1).await, 401, "invalid_grant").await;
}

#[tokio::test]
async fn rule1_rotation_returns_new_token_and_old_stops_working() {
    let s = Server::start(&[]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap();
    // `rt_` + base64url of: version, key id, generation, family id, 256 random bits, tag
    // (docs/design/refresh-token-format.md): 84 bytes for our 22-character family ids.
    let body = autional::util::b64url_decode(rt0.strip_prefix("rt_").unwrap()).expect("base64url");
    assert_eq!((body.len(), body[0]), (84, 2), "{rt0}");
    assert_eq!(common::token_family(rt0).1, 0, "the first token is generation 0");
    // JSON body.
    let r1 = ok_json(s.refresh("pub", rt0).await).await;
    let rt1 = r1["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt0);
    for k in [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "id_token",
    ] {
        assert!(r1.get(k).is_some(), "flat response has {k}: {r1}");
    }
    assert_eq!(r1["token_type"], "Bearer");
    assert!(r1.get("code").is_none() && r1.get("data").is_none(), "no envelope");
    // Form body with the ignored grant_type, on the same endpoint.
    let r = s
        .http
        .post(s.url("/oauth/refresh"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt1),
            ("client_id", "pub"),
        ])
        .send()
        .await
        .unwrap();
    let r2 = ok_json(r).await;
    let rt2 = r2["refresh_token"].as_str().unwrap().to_string();
    // /oauth/token runs the same code path.
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", "pub"),
        ])
        .send()
        .await
        .unwrap();
    let r3 = ok_json(r).await;
    // Only the SHA-256 of the live token is stored (in its family's row), never the token, and
    // no row per token.
    let token = r3["refresh_token"].as_str().unwrap();
    let held = s.token_rows(&[token.to_string()])[0].expect("its family");
    assert!(held.is_current(), "{held:?}");
    assert_eq!(
        s.scalar_i64(&format!(
            "SELECT COUNT(*) FROM families WHERE {} LIKE '%{}%'",
            s.hex("token_hashes"),
            common::hex_of(&common_sha(token))
        )),
        1
    );
    let plain = s.scalar_i64(&format!(
        "SELECT COUNT(*) FROM families WHERE {} LIKE '%{}%'",
        s.hex("token_hashes"),
        common::hex_of(token.as_bytes())
    ));
    assert_eq!(plain, 0);
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM refresh_tokens"), 0);
    // The presented (rotated) token stops working: on /oauth/refresh invalid_grant is 401.
    err(s.refresh("pub", rt0).await, 401, "invalid_grant").await;
}

fn common_sha(t: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes())
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn rule2_reuse_revokes_family_access_tokens_and_audits() {
    let s = Server::start(&[]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap();
    let r1 = ok_json(s.refresh("pub", rt0).await).await;
    let at1 = r1["access_token"].as_str().unwrap();
    let rt1 = r1["refresh_token"].as_str().unwrap();
    assert_eq!(s.introspect(at1).await["active"], true);
    assert_eq!(s.userinfo(at1).await.status(), 200);
    assert_eq!(s.audit_count("refresh.reuse_detected"), 0);
    // Replay of the rotated token.
    err(s.refresh("pub", rt0).await, 401, "invalid_grant").await;
    assert_eq!(s.audit_count("refresh.reuse_detected"), 1);
    // The whole family is gone: the current refresh token, and the access tokens.
    err(s.refresh("pub", rt1).await, 401, "invalid_grant").await;
    assert_eq!(s.introspect(rt1).await, json!({"active": false}));
    assert_eq!(s.introspect(at1).await, json!({"active": false}));
    let ui = s.userinfo(at1).await;
    assert_eq!(ui.status(), 401);
    assert!(ui.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let reason = s.scalar_str("SELECT revoked_reason FROM families").unwrap();
    assert_eq!(reason, "refresh_token_reuse");
    // /oauth/token reports the same as 400 (RFC 6749 §5.2).
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt1),
            ("client_id", "pub"),
        ])
        .send()
        .await
        .unwrap();
    err(r, 400, "invalid_grant").await;
}

#[tokio::test]
async fn rule3_grace_window_immediate_predecessor_only_count_times() {
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "30"),
        ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "2"),
    ])
    .await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap().to_string();
    let a = ok_json(s.refresh("pub", &rt0).await).await;
    // The response was "lost": the predecessor is presented again, twice (count 2).
    let b = ok_json(s.refresh("pub", &rt0).await).await;
    let c = ok_json(s.refresh("pub", &rt0).await).await;
    let (ra, rb, rc) = (
        a["refresh_token"].as_str().unwrap(),
        b["refresh_token"].as_str().unwrap(),
        c["refresh_token"].as_str().unwrap(),
    );
    assert!(
        ra != rb && rb != rc && ra != rc,
        "each grace reuse returns a fresh pair"
    );
    // The successors already issued stay valid: introspection says active for all three.
    for rt in [ra, rb, rc] {
        assert_eq!(s.introspect(rt).await["active"], true);
    }
    // Past the count: reuse, the family is revoked.
    err(s.refresh("pub", &rt0).await, 401, "invalid_grant").await;
    err(s.refresh("pub", rc).await, 401, "invalid_grant").await;
    assert_eq!(s.audit_count("refresh.reuse_detected"), 1);
}

#[tokio::test]
async fn rule3_grace_does_not_cover_older_generations_or_other_clients() {
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "30"),
        ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "5"),
    ])
    .await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap().to_string();
    let rt1 = ok_json(s.refresh("pub", &rt0).await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Another client presenting the predecessor inside the window: refused, nothing changes.
    let before = s.snapshot();
    err(s.refresh("pub2", &rt0).await, 401, "invalid_grant").await;
    assert_eq!(before, s.snapshot());
    let rt2 = ok_json(s.refresh("pub", &rt1).await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // rt0 is now two generations old: reuse even inside the window.
    err(s.refresh("pub", &rt0).await, 401, "invalid_grant").await;
    err(s.refresh("pub", &rt2).await, 401, "invalid_grant").await;
}

#[tokio::test]
async fn rule3_grace_predecessor_after_window_is_reuse_and_zero_grace_accepts_none() {
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "1"),
        ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "5"),
    ])
    .await;
    replay_predecessor_after(&s, 1300).await;

    // Default grace 0: an immediate replay (same millisecond or not) is reuse.
    let s = Server::start(&[]).await;
    replay_predecessor_after(&s, 0).await;
}

#[tokio::test]
async fn rule4_lifetimes_idle_is_sliding() {
    let s = Server::start(&[("AUTIONAL_REFRESH__IDLE_TTL", "2s")]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let mut rt = t["refresh_token"].as_str().unwrap().to_string();
    // Each rotation renews the idle lifetime: 3 × 1.2 s is longer than 2 s.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        rt = ok_json(s.refresh("pub", &rt).await).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let before = s.snapshot();
    let body = err(s.refresh("pub", &rt).await, 401, "invalid_grant").await;
    assert!(body["error_description"].as_str().unwrap().contains("expired"));
    assert_eq!(before, s.snapshot(), "an expired token changes nothing");
}

#[tokio::test]
async fn rule4_lifetimes_per_client_overrides() {
    let s = Server::start(&[]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "Short",
        "--redirect-uri",
        common::REDIRECT,
        "--public",
        "--client-id",
        "short",
        "--refresh-idle-ttl",
        "2s",
        "--refresh-absolute-ttl",
        "1h",
    ]);
    let (short, _) = s.tokens("short", SCOPE).await;
    let (long, _) = s.tokens("pub", SCOPE).await;
    let auth_time = claims(short["id_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    let abs = s.scalar_i64("SELECT absolute_expires_at_ms FROM families WHERE client_id = 'short'");
    assert_eq!(
        abs,
        auth_time * 1000 + 3_600_000,
        "the client's absolute_ttl, from the sign-in"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // The client's idle lifetime (2 s) has passed; the default one (14 d) has not.
    err(
        s.refresh("short", short["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_grant",
    )
    .await;
    ok_json(s.refresh("pub", long["refresh_token"].as_str().unwrap()).await).await;
}

#[tokio::test]
async fn rule4_lifetimes_absolute_counts_from_sign_in_and_rotation_never_extends() {
    let s = Server::start(&[("AUTIONAL_REFRESH__ABSOLUTE_TTL", "3s")]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let auth_time = claims(t["id_token"].as_str().unwrap())["auth_time"].as_i64().unwrap();
    let mut rt = t["refresh_token"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rt = ok_json(s.refresh("pub", &rt).await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let abs = s.scalar_i64("SELECT absolute_expires_at_ms FROM families");
    assert_eq!(
        abs,
        auth_time * 1000 + 3000,
        "absolute expiry is auth_time + absolute_ttl"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    err(s.refresh("pub", &rt).await, 401, "invalid_grant").await;
}

#[tokio::test]
async fn rule5_client_binding() {
    let s = Server::start(&[]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let before = s.snapshot();
    let body = err(s.refresh("pub2", rt).await, 401, "invalid_grant").await;
    assert!(body["error_description"].as_str().unwrap().contains("another client"));
    // A confidential client cannot use it either (after authenticating properly).
    let r = s
        .http
        .post(s.url("/oauth/refresh"))
        .basic_auth("conf", Some(&s.conf_secret))
        .json(&json!({"refresh_token": rt, "client_id": "conf"}))
        .send()
        .await
        .unwrap();
    err(r, 401, "invalid_grant").await;
    assert_eq!(before, s.snapshot(), "a foreign client changes nothing");
    ok_json(s.refresh("pub", rt).await).await;
}

#[tokio::test]
async fn rule5_confidential_client_cannot_skip_authentication() {
    let s = Server::start(&[]).await;
    let a = s.authorize("conf", SCOPE).await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("conf", Some(&s.conf_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &a.code),
            ("redirect_uri", common::REDIRECT),
            ("code_verifier", &a.verifier),
        ])
        .send()
        .await
        .unwrap();
    let t = ok_json(r).await;
    let rt = t["refresh_token"].as_str().unwrap();
    err(s.refresh("conf", rt).await, 401, "invalid_client").await;
    let r = s
        .http
        .post(s.url("/oauth/refresh"))
        .basic_auth("conf", Some("wrong"))
        .json(&json!({"refresh_token": rt}))
        .send()
        .await
        .unwrap();
    let www = r.headers().get("www-authenticate").cloned();
    err(r, 401, "invalid_client").await;
    assert!(www.is_some(), "Basic challenge on invalid_client");
    let r = s
        .http
        .post(s.url("/oauth/refresh"))
        .basic_auth("conf", Some(&s.conf_secret))
        .json(&json!({"refresh_token": rt}))
        .send()
        .await
        .unwrap();
    ok_json(r).await;
}

#[tokio::test]
async fn rule6_scope_narrowing() {
    let s = Server::start(&[]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap();
    let before = s.snapshot();
    let body = err(
        s.refresh_json(json!({"refresh_token": rt0, "client_id": "pub", "scope": "openid phone"}))
            .await,
        400,
        "invalid_scope",
    )
    .await;
    assert!(body["error_description"].is_string());
    assert_eq!(before, s.snapshot(), "a refused scope changes nothing");
    let r1 = ok_json(
        s.refresh_json(json!({"refresh_token": rt0, "client_id": "pub", "scope": "openid email"}))
            .await,
    )
    .await;
    assert_eq!(r1["scope"], "email openid");
    assert_eq!(claims(r1["access_token"].as_str().unwrap())["scope"], "email openid");
    // The new refresh token keeps the original grant scope.
    let r2 = ok_json(s.refresh("pub", r1["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(r2["scope"], "email offline_access openid profile");
    assert_eq!(
        claims(r2["access_token"].as_str().unwrap())["scope"],
        "email offline_access openid profile"
    );
}

#[tokio::test]
async fn rule9_id_token_on_refresh() {
    let s = Server::start(&[]).await;
    let (t, a) = s.tokens("pub", SCOPE).await;
    let id0 = claims(t["id_token"].as_str().unwrap());
    assert_eq!(id0["nonce"], a.nonce.as_str());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = ok_json(s.refresh("pub", t["refresh_token"].as_str().unwrap()).await).await;
    let id1 = claims(r["id_token"].as_str().unwrap());
    for k in ["iss", "sub", "aud", "azp", "auth_time"] {
        assert_eq!(id0[k], id1[k], "{k} is kept");
    }
    assert!(id1["iat"].as_i64().unwrap() > id0["iat"].as_i64().unwrap(), "new iat");
    assert!(id1.get("nonce").is_none(), "no nonce on refresh (OIDC Core §12.2)");
    assert_eq!(id1["iss"], s.base.as_str());
    assert_eq!(id1["aud"], "pub");
    // Without openid there is no ID token.
    let (t, _) = s.tokens("pub", "profile offline_access").await;
    assert!(t.get("id_token").is_none());
    let r = ok_json(s.refresh("pub", t["refresh_token"].as_str().unwrap()).await).await;
    assert!(r.get("id_token").is_none());
}

#[tokio::test]
async fn rule10_sessions_logout_ends_session_bound_families_offline_survives() {
    let s = Server::start(&[]).await;
    let (online, a) = s.tokens("pub", "openid profile").await;
    // Same browser session, second grant with offline_access.
    let (offline, b) = s.tokens("pub2", "openid offline_access").await;
    // Sign out of both sign-in sessions through /account's form.
    for cookies in [&a.cookies, &b.cookies] {
        let html = s
            .http
            .get(s.url("/account"))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = common::form_field(&html, "/logout", "csrf_token").unwrap();
        assert!(html.contains("action=\"/logout\""));
        // Without the CSRF token nothing happens.
        let before = s.snapshot();
        let r = s
            .http
            .post(s.url("/logout"))
            .header("cookie", cookies)
            .form(&[("csrf_token", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(before, s.snapshot());
        let r = s
            .http
            .post(s.url("/logout"))
            .header("cookie", cookies)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        // The session is over: /account asks to sign in again.
        let r = s
            .http
            .get(s.url("/account"))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    }
    // The session-bound family ended with its session; its access token too.
    err(
        s.refresh("pub", online["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        s.introspect(online["access_token"].as_str().unwrap()).await["active"],
        false
    );
    // The offline_access family outlives its session.
    ok_json(s.refresh("pub2", offline["refresh_token"].as_str().unwrap()).await).await;
}

#[tokio::test]
async fn rule10_revocation_endings() {
    let s = Server::start(&[]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    // Revoking an access token: inactive at introspection and userinfo; the refresh token still works.
    // A wrong hint only widens the search (RFC 7009 §2.1).
    let r = s
        .http
        .post(s.url("/oauth/revoke"))
        .form(&[
            ("token", at),
            ("client_id", "pub"),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.introspect(at).await, json!({"active": false}));
    assert_eq!(s.userinfo(at).await.status(), 401);
    let r1 = ok_json(s.refresh("pub", rt).await).await;
    let rt1 = r1["refresh_token"].as_str().unwrap();
    assert_eq!(s.userinfo(r1["access_token"].as_str().unwrap()).await.status(), 200);
    // Another client cannot revoke it.
    let before = s.snapshot();
    let r = s
        .http
        .post(s.url("/oauth/revoke"))
        .form(&[("token", rt1), ("client_id", "pub2")])
        .send()
        .await
        .unwrap();
    err(r, 400, "invalid_grant").await;
    assert_eq!(before, s.snapshot());
    // Revoking the refresh token revokes its family.
    let r = s
        .http
        .post(s.url("/oauth/revoke"))
        .form(&[
            ("token", rt1),
            ("client_id", "pub"),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    err(s.refresh("pub", rt1).await, 401, "invalid_grant").await;
    assert_eq!(
        s.introspect(r1["access_token"].as_str().unwrap()).await["active"],
        false
    );
    // Unknown tokens: 200 (RFC 7009 §2.2).
    let r = s
        .http
        .post(s.url("/oauth/revoke"))
        .form(&[("token", "rt_unknown"), ("client_id", "pub")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn race_50_concurrent_refreshes_exactly_one_wins() {
    let s = Server::start(&RACE_ENV).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    // All 50 in flight together, the database held until then (common::race).
    let results = concurrent_refreshes(&s, "pub", &rt, 50).await;
    let mut ok = Vec::new();
    let mut statuses = Vec::new();
    for (status, body) in results {
        statuses.push(status);
        if status == 200 {
            ok.push(body);
        }
    }
    assert_eq!(ok.len(), 1, "exactly one winner: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "no 500s: {statuses:?}");
    // The losers were replays of a rotated token: the family is revoked, once.
    assert_eq!(s.audit_count("refresh.reuse_detected"), 1);
    err(
        s.refresh("pub", ok[0]["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn race_grace_k_plus_one() {
    const K: usize = 3;
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "20"),
        ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "3"),
        RACE_ENV[0],
        RACE_ENV[1],
    ])
    .await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let results = concurrent_refreshes(&s, "pub", &rt, 50).await;
    let statuses: Vec<u16> = results.iter().map(|(status, _)| *status).collect();
    let wins = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "no 500s: {statuses:?}");
    assert!(
        (1..=K + 1).contains(&wins),
        "at most K+1 successes inside the window: {wins}"
    );
    assert_eq!(wins, K + 1, "a serialized writer gives exactly K+1");
    // The rest were reuse past the count: the family is revoked.
    assert_eq!(s.audit_count("refresh.reuse_detected"), 1);

    // Only the immediate predecessor, and not after the window.
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "1"),
        ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "3"),
    ])
    .await;
    replay_predecessor_after(&s, 1200).await;
}

#[tokio::test]
async fn code_replay_revokes_what_the_first_use_issued() {
    let s = Server::start(&[]).await;
    let a = s.authorize("pub", SCOPE).await;
    let t: Value = ok_json(s.exchange("pub", &a.code, &a.verifier).await).await;
    let r = s.exchange("pub", &a.code, &a.verifier).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    err(
        s.refresh("pub", t["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_grant",
    )
    .await;
    assert_eq!(s.introspect(t["access_token"].as_str().unwrap()).await["active"], false);
    assert_eq!(s.audit_count("code.replay_detected"), 1);
}

/// SPEC §5: a copy of the database yields no token that refreshes. After a code exchange, a
/// rotation and a grace-free reuse check, the SQLite file and its WAL hold neither any issued
/// refresh token nor the 256 random bits inside it (only SHA-256 hashes of the live ones). On
/// PostgreSQL the same holds by the same code path; this test reads the bytes on disk of SQLite.
#[tokio::test]
async fn a_copy_of_the_database_holds_no_refresh_token() {
    let s = Server::start(&[]).await;
    if s.backend != common::Backend::Sqlite {
        return;
    }
    let mut issued = Vec::new();
    for _ in 0..3 {
        let (t, _) = s.tokens("pub", SCOPE).await;
        let mut rt = t["refresh_token"].as_str().unwrap().to_string();
        for _ in 0..3 {
            issued.push(rt.clone());
            rt = rotated(&s, &rt).await;
        }
        issued.push(rt);
    }
    let path = s.db_url.trim_start_matches("sqlite://").to_string();
    let mut disk = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        disk.extend(wal);
    }
    let contains = |needle: &[u8]| disk.windows(needle.len()).any(|w| w == needle);
    for t in &issued {
        let body = autional::util::b64url_decode(&t[3..]).unwrap();
        let secret = &body[body.len() - 16 - 32..body.len() - 16];
        assert!(!contains(t.as_bytes()), "the token itself is on disk");
        assert!(!contains(secret), "the token's random bits are on disk");
    }
    // The live tokens' hashes are there (what the server compares with).
    let live = autional::util::sha256(issued.last().unwrap().as_bytes());
    assert!(contains(&live), "the live token's hash is stored");
}

/// Replacing the refresh-token key keeps sessions (SPEC §5, docs/design/refresh-token-format.md):
/// with the new key first and the old one kept second, a token made under the old key still
/// refreshes and an old one of its family is still reuse; once the old key is dropped its
/// tokens are refused as not ours, and nothing is revoked for them.
#[tokio::test]
async fn a_new_refresh_token_key_keeps_sessions_while_the_old_one_is_kept() {
    let b64 = |b: u8| autional::util::b64url(&[b; 32]);
    let (k1, k2) = (b64(0x41), b64(0x42));
    let mut s = Server::start(&[("AUTIONAL_REFRESH__TOKEN_KEYS", &format!("[{k1}]"))]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let a0 = t["refresh_token"].as_str().unwrap().to_string();
    let a1 = rotated(&s, &a0).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let b0 = t["refresh_token"].as_str().unwrap().to_string();

    s.restart(&[("AUTIONAL_REFRESH__TOKEN_KEYS", &format!("[{k2}, {k1}]"))])
        .await;
    let a2 = rotated(&s, &a1).await;
    assert_ne!(a2[3..12], a1[3..12], "the new token is made under the new key");
    err(s.refresh("pub", &a0).await, 401, "invalid_grant").await;
    let a = s.token_rows(std::slice::from_ref(&a2))[0].unwrap();
    assert!(a.revoked, "an old token made under the kept key is still reuse: {a:?}");

    s.restart(&[("AUTIONAL_REFRESH__TOKEN_KEYS", &format!("[{k2}]"))]).await;
    err(s.refresh("pub", &b0).await, 401, "invalid_grant").await;
    let b = s.token_rows(std::slice::from_ref(&b0))[0].unwrap();
    assert!(
        b.is_current(),
        "a token of a dropped key is refused, its family untouched: {b:?}"
    );
}

/// SPEC §5: nobody without the server key can make a token that the server takes for one of its
/// own. A real family's latest token with its generation lowered (believed, it would be a reuse
/// and revoke the family) or its tag altered is refused at refresh, inactive at introspection
/// and a no-op at revocation; the family and its current token are untouched.
#[tokio::test]
async fn a_forged_old_token_revokes_nothing() {
    let s = Server::start(&[]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt1 = rotated(&s, t["refresh_token"].as_str().unwrap()).await;
    let rt2 = rotated(&s, &rt1).await;
    let body = autional::util::b64url_decode(&rt2[3..]).unwrap();
    let mut older = body.clone();
    older[12] = 0; // generation 2 → 0 (big-endian, bytes 5..13)
    let mut retagged = body.clone();
    *retagged.last_mut().unwrap() ^= 1;
    for forged in [older, retagged] {
        let forged = format!("rt_{}", autional::util::b64url(&forged));
        err(s.refresh("pub", &forged).await, 401, "invalid_grant").await;
        assert_eq!(s.introspect(&forged).await["active"], false);
        let r = s
            .http
            .post(s.url("/oauth/revoke"))
            .form(&[("token", forged.as_str()), ("client_id", "pub")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let row = s.token_rows(std::slice::from_ref(&rt2))[0].unwrap();
    assert!(row.is_current(), "the family is untouched: {row:?}");
    rotated(&s, &rt2).await;
}

/// Creates the public client `id` (redirect URI `common::REDIRECT`) with `extra` options.
fn public_client(s: &Server, id: &str, extra: &[&str]) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        id,
        "--redirect-uri",
        common::REDIRECT,
        "--public",
        "--client-id",
        id,
    ];
    args.extend_from_slice(extra);
    s.cli(&args);
}

/// The access token's `iat`, the instant `refresh_token_expires_in` counts from.
fn iat(t: &Value) -> i64 {
    claims(t["access_token"].as_str().unwrap())["iat"].as_i64().unwrap()
}

/// SPEC §9: every response that issues a refresh token says in `refresh_token_expires_in` how
/// many seconds after the response's `iat` that token expires: its idle or absolute lifetime,
/// whichever ends first, configured or the client's own; a response without one has none.
#[tokio::test]
async fn refresh_token_expires_in_counts_to_the_nearer_expiry() {
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__IDLE_TTL", "1h"),
        ("AUTIONAL_REFRESH__ABSOLUTE_TTL", "2h"),
    ])
    .await;
    // The configured idle lifetime ends first: the code exchange, /oauth/refresh, /oauth/token.
    let (t, _) = s.tokens("pub", SCOPE).await;
    assert_eq!(t["refresh_token_expires_in"], 3600, "{t}");
    let r1 = ok_json(s.refresh("pub", t["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(r1["refresh_token_expires_in"], 3600, "{r1}");
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", r1["refresh_token"].as_str().unwrap()),
            ("client_id", "pub"),
        ])
        .send()
        .await
        .unwrap();
    let r2 = ok_json(r).await;
    assert_eq!(r2["refresh_token_expires_in"], 3600, "{r2}");

    // A client's own idle lifetime.
    public_client(
        &s,
        "short",
        &["--refresh-idle-ttl", "10m", "--refresh-absolute-ttl", "1d"],
    );
    let (t, _) = s.tokens("short", SCOPE).await;
    assert_eq!(t["refresh_token_expires_in"], 600, "{t}");
    let r = ok_json(s.refresh("short", t["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(r["refresh_token_expires_in"], 600, "{r}");

    // A client whose absolute lifetime (20 min from the sign-in) ends before its idle one (1 h):
    // the answer counts to the absolute expiry, and a rotation does not extend it.
    public_client(
        &s,
        "near",
        &["--refresh-idle-ttl", "1h", "--refresh-absolute-ttl", "20m"],
    );
    let (t, _) = s.tokens("near", SCOPE).await;
    let auth_time = claims(t["id_token"].as_str().unwrap())["auth_time"].as_i64().unwrap();
    assert_eq!(t["refresh_token_expires_in"], auth_time + 1200 - iat(&t), "{t}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = ok_json(s.refresh("near", t["refresh_token"].as_str().unwrap()).await).await;
    assert!(iat(&r) > iat(&t), "a later response");
    assert_eq!(r["refresh_token_expires_in"], auth_time + 1200 - iat(&r), "{r}");

    // No refresh token, no lifetime of one.
    public_client(&s, "once", &["--grant-type", "authorization_code"]);
    let (t, _) = s.tokens("once", SCOPE).await;
    assert!(
        t.get("refresh_token").is_none() && t.get("refresh_token_expires_in").is_none(),
        "{t}"
    );
}

/// SPEC §4 rule 3 per client: a client's own grace window and count replace the configured
/// ones (`client create --reuse-grace-seconds/--reuse-grace-count`), each on its own.
#[tokio::test]
async fn rule3_grace_per_client_overrides_the_configured_rule() {
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "30"),
        ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "1"),
    ])
    .await;
    public_client(&s, "strict", &["--reuse-grace-seconds", "0"]);
    public_client(&s, "lenient", &["--reuse-grace-count", "4"]);
    assert_eq!(
        s.rows("SELECT id, CAST(reuse_grace_seconds AS TEXT), CAST(reuse_grace_count AS TEXT) FROM clients WHERE id IN ('lenient', 'pub', 'strict') ORDER BY id"),
        vec![
            vec![Some("lenient".into()), None, Some("4".into())],
            vec![Some("pub".into()), None, None],
            vec![Some("strict".into()), Some("0".into()), None],
        ]
    );

    // The configured rule: one re-issue of the predecessor, the second replay is reuse.
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap().to_string();
    ok_json(s.refresh("pub", &rt0).await).await;
    ok_json(s.refresh("pub", &rt0).await).await;
    err(s.refresh("pub", &rt0).await, 401, "invalid_grant").await;

    // Grace 0: the predecessor presented at once, well inside the configured 30 s, is reuse,
    // and the family ends (its successor too).
    let (t, _) = s.tokens("strict", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap().to_string();
    let rt1 = ok_json(s.refresh("strict", &rt0).await).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let reuses = s.audit_count("refresh.reuse_detected");
    err(s.refresh("strict", &rt0).await, 401, "invalid_grant").await;
    assert_eq!(s.audit_count("refresh.reuse_detected"), reuses + 1);
    err(s.refresh("strict", &rt1).await, 401, "invalid_grant").await;

    // Count 4 (the configured window): four siblings, all live; a fifth replay is reuse.
    let (t, _) = s.tokens("lenient", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap().to_string();
    let first = ok_json(s.refresh("lenient", &rt0).await).await;
    let mut live = vec![first["refresh_token"].as_str().unwrap().to_string()];
    for _ in 0..4 {
        let r = ok_json(s.refresh("lenient", &rt0).await).await;
        // A sibling does not renew the idle lifetime: it expires with the current generation.
        let idle = s.scalar_i64("SELECT idle_expires_at_ms FROM families WHERE client_id = 'lenient'");
        assert_eq!(r["refresh_token_expires_in"], idle / 1000 - iat(&r), "{r}");
        live.push(r["refresh_token"].as_str().unwrap().to_string());
    }
    for rt in &live {
        assert_eq!(s.introspect(rt).await["active"], true);
    }
    err(s.refresh("lenient", &rt0).await, 401, "invalid_grant").await;
    err(s.refresh("lenient", &live[4]).await, 401, "invalid_grant").await;
}
