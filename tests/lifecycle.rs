//! Endings and the device grant: every way a grant should end ends exactly the affected
//! families (logout, RP-initiated logout, password change, user deletion, client deletion,
//! consent revocation, revocation from the account page) and their access tokens turn inactive
//! at introspection and userinfo; the device flow over the real page and token endpoint.

mod common;

use common::{form_field, hidden, Server, REDIRECT};
use serde_json::{json, Value};
use std::time::Duration;

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn dead(s: &Server, client: &str, t: &Value) {
    let r = s.refresh(client, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401, "refresh token ended");
    assert_eq!(
        s.introspect(t["access_token"].as_str().unwrap()).await["active"],
        false,
        "access token inactive"
    );
    assert_eq!(
        s.userinfo(t["access_token"].as_str().unwrap()).await.status(),
        401,
        "userinfo refuses it"
    );
}

async fn alive(s: &Server, client: &str, t: &Value) -> Value {
    assert_eq!(s.introspect(t["access_token"].as_str().unwrap()).await["active"], true);
    ok(s.refresh(client, t["refresh_token"].as_str().unwrap()).await).await
}

#[tokio::test]
async fn password_change_ends_the_users_grants_and_sessions() {
    let s = Server::start(&[]).await;
    let (t, a) = s.tokens("pub", "openid profile offline_access").await;
    s.run_cli_stdin(
        &["user", "set-password", "--username", "alice", "--password-stdin"],
        "a-new-password-2",
    );
    dead(&s, "pub", &t).await;
    let r = s
        .http
        .get(s.url("/account"))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the session ended too");
    // The old password no longer signs in; the new one does (the harness signs in as alice).
    let r = s.http.get(s.url("/login")).send().await.unwrap();
    let csrf_cookie = common::set_cookie(r.headers(), "autional_csrf").unwrap();
    let token = hidden(&r.text().await.unwrap(), "csrf_token").unwrap();
    let login = |pw: &'static str| {
        s.http
            .post(s.url("/login"))
            .header("cookie", format!("autional_csrf={csrf_cookie}"))
            .form(&[("username", "alice"), ("password", pw), ("csrf_token", token.as_str())])
            .send()
    };
    assert_eq!(login(common::PASSWORD).await.unwrap().status(), 401);
    assert_eq!(login("a-new-password-2").await.unwrap().status(), 303);
}

#[tokio::test]
async fn user_deletion_ends_everything_of_that_user() {
    let s = Server::start(&[]).await;
    let (t, _) = s.tokens("pub", "openid offline_access").await;
    s.cli(&["user", "delete", "--username", "alice"]);
    dead(&s, "pub", &t).await;
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM users"), 0);
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM consents"), 0);
}

#[tokio::test]
async fn client_deletion_ends_exactly_that_clients_grants() {
    let s = Server::start(&[]).await;
    let (t1, _) = s.tokens("pub", "openid offline_access").await;
    let (t2, _) = s.tokens("pub2", "openid offline_access").await;
    s.cli(&["client", "delete", "pub"]);
    let r = s.refresh("pub", t1["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401, "the client is gone");
    assert_eq!(
        s.introspect(t1["access_token"].as_str().unwrap()).await["active"],
        false
    );
    alive(&s, "pub2", &t2).await;
}

#[tokio::test]
async fn consent_revocation_and_grant_revocation_from_the_account_page() {
    let s = Server::start(&[]).await;
    let (a1, a) = s.tokens("pub", "openid profile offline_access").await;
    let (a2, _) = s.tokens("pub", "openid offline_access").await;
    let (b1, _) = s.tokens("pub2", "openid offline_access").await;
    // Use one so it has a last use and a user agent.
    let a2 = ok(s
        .http
        .post(s.url("/oauth/refresh"))
        .header("user-agent", "TestAgent/1.0")
        .json(&json!({"refresh_token": a2["refresh_token"], "client_id": "pub"}))
        .send()
        .await
        .unwrap())
    .await;
    let html = s
        .http
        .get(s.url("/account"))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("App pub") && html.contains("App pub2"),
        "connected apps listed"
    );
    assert!(html.contains("TestAgent/1.0"), "user agent of the last refresh shown");
    assert!(html.contains("first used") && html.contains("last used"));
    let csrf = form_field(&html, "/account/revoke", "csrf_token").unwrap();
    let family_of = |t: &Value| {
        common::claims(t["access_token"].as_str().unwrap())["grant_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let post = |form: Vec<(&'static str, String)>| {
        s.http
            .post(s.url("/account/revoke"))
            .header("cookie", &a.cookies)
            .form(&form)
            .send()
    };
    // A forged CSRF token changes nothing.
    let before = s.snapshot();
    let r = post(vec![("csrf_token", "forged".into()), ("grant_id", family_of(&a1))])
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(before, s.snapshot());
    // Revoking one grant ends it at once; the other grant of the same client stays.
    let r = post(vec![("csrf_token", csrf.clone()), ("grant_id", family_of(&a1))])
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    dead(&s, "pub", &a1).await;
    let a2 = alive(&s, "pub", &a2).await;
    // Another user's grant id cannot be revoked from this account (nothing changes).
    // Withdrawing consent from pub ends its remaining grant; pub2 is untouched.
    let r = post(vec![("csrf_token", csrf.clone()), ("client_id", "pub".into())])
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    dead(&s, "pub", &a2).await;
    alive(&s, "pub2", &b1).await;
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM consents WHERE client_id = 'pub'"), 0);
    // The next authorization asks for consent again.
    let again = s.authorize("pub", "openid").await;
    assert!(again.consent_html.is_some());
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_bound_families_offline_survives() {
    let s = Server::start(&[]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "RP",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        "rp",
        "--post-logout-redirect-uri",
        "http://127.0.0.1:9/bye",
    ]);
    let (online, a) = s.tokens("rp", "openid").await;
    // A second grant in the same browser session, with offline_access.
    let r = s
        .http
        .get(s.url(&format!(
            "/oauth/authorize?response_type=code&client_id=rp&redirect_uri={}&scope=openid%20offline_access&state=x&code_challenge={}&code_challenge_method=S256&prompt=consent",
            common::enc(REDIRECT),
            common::pkce(&"v".repeat(43))
        )))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap();
    let mut form = common::hidden_all(&r.text().await.unwrap());
    form.push(("approved".into(), "true".into()));
    let r = s
        .http
        .post(s.url("/oauth/authorize"))
        .header("cookie", &a.cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let code = url::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let offline = ok(s.exchange("rp", &code, &"v".repeat(43)).await).await;
    let hint = online["id_token"].as_str().unwrap();
    // An unregistered post_logout_redirect_uri: an error page, nothing ends.
    let before = s.snapshot();
    let r = s
        .http
        .get(s.url(&format!(
            "/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
            common::enc("http://evil.example/")
        )))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert_eq!(before, s.snapshot());
    // With a valid hint for this session: signed out at once, back to the client with state.
    let r = s
        .http
        .get(s.url(&format!(
            "/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye-1",
            common::enc("http://127.0.0.1:9/bye")
        )))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/bye?state=bye-1");
    let r = s
        .http
        .get(s.url("/account"))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the session is over");
    dead(&s, "rp", &online).await;
    alive(&s, "rp", &offline).await;
}

/// RFC 9700 §4.11.2: RP-initiated logout redirects only to a registered
/// `post_logout_redirect_uri` of the client named by a valid `id_token_hint`. A `client_id`
/// alone (which anyone can write into a link) never makes the server redirect, with or without
/// a session, and changes nothing.
#[tokio::test]
async fn rp_initiated_logout_redirects_only_for_a_valid_id_token_hint() {
    let s = Server::start(&[]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "RP",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        "rp",
        "--post-logout-redirect-uri",
        "http://127.0.0.1:9/bye",
    ]);
    let bye = common::enc("http://127.0.0.1:9/bye");
    let (t, a) = s.tokens("rp", "openid").await;
    for (what, cookies) in [("without a session", None), ("with a session", Some(&a.cookies))] {
        let before = s.snapshot();
        let mut req = s.http.get(s.url(&format!(
            "/oauth/logout?client_id=rp&post_logout_redirect_uri={bye}&state=x"
        )));
        if let Some(c) = cookies {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        assert!(
            r.headers().get("location").is_none(),
            "{what}: no redirect without a hint"
        );
        assert_eq!(status, 400, "{what}");
        assert!(
            r.text().await.unwrap().contains("id_token_hint"),
            "{what}: the page says why"
        );
        assert_eq!(before, s.snapshot(), "{what}: nothing ended");
    }
    // A valid hint names the client: back to its registered URI, with state, even when the
    // user has no session here any more.
    let hint = t["id_token"].as_str().unwrap();
    let r = s
        .http
        .get(s.url(&format!(
            "/oauth/logout?id_token_hint={hint}&post_logout_redirect_uri={bye}&state=x"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/bye?state=x");
}

#[tokio::test]
async fn rp_initiated_logout_without_a_hint_asks_once() {
    let s = Server::start(&[]).await;
    let (t, a) = s.tokens("pub", "openid").await;
    let r = s
        .http
        .get(s.url("/oauth/logout"))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Sign out?"));
    let csrf = form_field(&html, "/oauth/logout", "csrf_token").unwrap();
    // Without the CSRF token the POST only shows the question again.
    let r = s
        .http
        .post(s.url("/oauth/logout"))
        .header("cookie", &a.cookies)
        .form(&[("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.introspect(t["access_token"].as_str().unwrap()).await["active"], true);
    let r = s
        .http
        .post(s.url("/oauth/logout"))
        .header("cookie", &a.cookies)
        .form(&[("confirm", "yes"), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("signed out"));
    dead(&s, "pub", &t).await;
}

/// Signs in for the device page and returns (cookies, csrf token of the entry form).
async fn device_session(s: &Server) -> (String, String) {
    let (cookies, back) = s.sign_in("/oauth/device").await;
    assert_eq!(back, "/oauth/device");
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
    assert!(html.contains("name=\"user_code\""));
    (
        cookies.clone(),
        form_field(&html, "/oauth/device", "csrf_token").unwrap(),
    )
}

async fn device_authorize(s: &Server) -> Value {
    ok(s.http
        .post(s.url("/oauth/device/authorize"))
        .form(&[("client_id", "tv"), ("scope", "openid offline_access")])
        .send()
        .await
        .unwrap())
    .await
}

async fn poll(s: &Server, device_code: &str) -> reqwest::Response {
    s.http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", DEVICE),
            ("device_code", device_code),
            ("client_id", "tv"),
        ])
        .send()
        .await
        .unwrap()
}

async fn poll_err(s: &Server, device_code: &str) -> String {
    let r = poll(s, device_code).await;
    assert_eq!(r.status(), 400);
    r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn device_flow_through_the_page_and_polling() {
    let s = Server::start(&[("AUTIONAL_DEVICE__INTERVAL", "1s")]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "Living Room TV",
        "--public",
        "--client-id",
        "tv",
        "--grant-type",
        DEVICE,
        "--grant-type",
        "refresh_token",
    ]);
    let d = device_authorize(&s).await;
    let user_code = d["user_code"].as_str().unwrap().to_string();
    assert!(user_code.len() == 9 && user_code.as_bytes()[4] == b'-', "{user_code}");
    assert!(user_code
        .chars()
        .filter(|c| *c != '-')
        .all(|c| "BCDFGHJKMNPQRSTVWXZ".contains(c)));
    assert_eq!(d["verification_uri"], format!("{}/oauth/device", s.base));
    assert_eq!(
        d["verification_uri_complete"],
        format!("{}/oauth/device?user_code={user_code}", s.base)
    );
    assert_eq!((d["expires_in"].as_i64(), d["interval"].as_i64()), (Some(600), Some(1)));
    let dc = d["device_code"].as_str().unwrap().to_string();
    assert_eq!(poll_err(&s, &dc).await, "authorization_pending");
    assert_eq!(poll_err(&s, &dc).await, "slow_down", "polled faster than the interval");
    // The user enters the code (lower case, no dash) and sees the client and scopes.
    let (cookies, csrf) = device_session(&s).await;
    let typed = user_code.replace('-', "").to_lowercase();
    let r = s
        .http
        .post(s.url("/oauth/device"))
        .header("cookie", &cookies)
        .form(&[("user_code", typed.as_str()), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Living Room TV") && html.contains("offline_access"));
    assert!(html.contains("name=\"approved\" value=\"true\"") && html.contains("name=\"approved\" value=\"false\""));
    let confirm_csrf = form_field(&html, "/oauth/device", "csrf_token").unwrap();
    let r = s
        .http
        .post(s.url("/oauth/device"))
        .header("cookie", &cookies)
        .form(&[
            ("user_code", user_code.as_str()),
            ("csrf_token", confirm_csrf.as_str()),
            ("approved", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Device connected"));
    tokio::time::sleep(Duration::from_millis(6100)).await; // the interval grew by 5 s with slow_down
    let t = ok(poll(&s, &dc).await).await;
    assert!(t["refresh_token"].as_str().unwrap().starts_with("rt_") && t["id_token"].is_string());
    // The refresh token's lifetime: the configured idle one (14 d), shorter than the absolute.
    assert_eq!(t["refresh_token_expires_in"], 14 * 86400, "{t}");
    // Single use.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(poll_err(&s, &dc).await, "invalid_grant");
    let r = ok(s.refresh("tv", t["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(r["refresh_token_expires_in"], 14 * 86400, "{r}");
}

#[tokio::test]
async fn device_flow_denied_expired_and_guessing_limited() {
    let s = Server::start(&[
        ("AUTIONAL_DEVICE__INTERVAL", "1s"),
        ("AUTIONAL_DEVICE__TTL", "3s"),
        // The deny below is one of the four codes entered (every path counts, §5.1).
        ("AUTIONAL_DEVICE__USER_CODE_ATTEMPTS_PER_MINUTE", "4"),
    ])
    .await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "TV",
        "--public",
        "--client-id",
        "tv",
        "--grant-type",
        DEVICE,
    ]);
    let denied = device_authorize(&s).await;
    let expiring = device_authorize(&s).await;
    let (cookies, csrf) = device_session(&s).await;
    let code = denied["user_code"].as_str().unwrap();
    let r = s
        .http
        .post(s.url("/oauth/device"))
        .header("cookie", &cookies)
        .form(&[
            ("user_code", code),
            ("csrf_token", csrf.as_str()),
            ("approved", "false"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Request denied"));
    assert_eq!(
        poll_err(&s, denied["device_code"].as_str().unwrap()).await,
        "access_denied"
    );
    // Wrong codes: an error, and after the limit 429 even for a right one.
    let wrong = |c: &'static str| {
        s.http
            .post(s.url("/oauth/device"))
            .header("cookie", &cookies)
            .form(&[("user_code", c), ("csrf_token", csrf.as_str())])
            .send()
    };
    assert_eq!(wrong("BBBB-BBBB").await.unwrap().status(), 400);
    assert_eq!(wrong("CCCC-CCCC").await.unwrap().status(), 400);
    assert_eq!(wrong("DDDD-DDDD").await.unwrap().status(), 400);
    let r = wrong("FFFF-FFFF").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        poll_err(&s, expiring["device_code"].as_str().unwrap()).await,
        "expired_token"
    );
}

#[tokio::test]
async fn sessions_on_the_account_page_can_be_ended_from_another_browser() {
    let s = Server::start(&[]).await;
    // Two browsers: the grant is bound to the first one's session.
    let (t, first) = s.tokens("pub", "openid").await;
    let (second, _) = s.sign_in("/account").await;
    let html = s
        .http
        .get(s.url("/account"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("(this browser)"));
    let csrf = form_field(&html, "/account/revoke", "csrf_token").unwrap();
    let other = html
        .split("data-session-id=\"")
        .skip(1)
        .map(|p| p.split('"').next().unwrap().to_string())
        .find(|id| html.contains(&format!("name=\"session_id\" value=\"{id}\"")))
        .expect("the other session has a sign-out button");
    let r = s
        .http
        .post(s.url("/account/revoke"))
        .header("cookie", &second)
        .form(&[("csrf_token", csrf.as_str()), ("session_id", other.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = s
        .http
        .get(s.url("/account"))
        .header("cookie", &first.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the first browser is signed out");
    dead(&s, "pub", &t).await;
    let r = s
        .http
        .get(s.url("/account"))
        .header("cookie", &second)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "this browser stays signed in");
}

/// The code is refused with `invalid_grant` and no family or token is created.
async fn code_is_dead(s: &Server, client: &str, a: &common::Authorized, why: &str) {
    let before = s.scalar_i64("SELECT COUNT(*) FROM families");
    let r = s.exchange(client, &a.code, &a.verifier).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{why}: {body}"
    );
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM families"),
        before,
        "{why}: nothing created"
    );
}

/// Finding 7 of issue 10: a code obtained before the session ended (logout, password change)
/// or consent was withdrawn is not exchanged — `offline_access` included, since a family
/// outlives its session but an unredeemed code does not.
#[tokio::test]
async fn codes_end_with_their_session_password_change_and_consent() {
    let s = Server::start(&[]).await;
    // Logout.
    let a = s.authorize("pub", "openid offline_access").await;
    s.sign_out(&a.cookies).await;
    code_is_dead(&s, "pub", &a, "after logout").await;
    // RP-initiated logout (confirmed on the page).
    let a = s.authorize("pub", "openid").await;
    let html = s
        .http
        .get(s.url("/oauth/logout"))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_field(&html, "/oauth/logout", "csrf_token").unwrap();
    let r = s
        .http
        .post(s.url("/oauth/logout"))
        .header("cookie", &a.cookies)
        .form(&[("csrf_token", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    code_is_dead(&s, "pub", &a, "after RP-initiated logout").await;
    // Password change (set to the same password: the change itself ends everything).
    let a = s.authorize("pub", "openid offline_access").await;
    s.run_cli_stdin(
        &["user", "set-password", "--username", "alice", "--password-stdin"],
        common::PASSWORD,
    );
    code_is_dead(&s, "pub", &a, "after a password change").await;
    // Consent withdrawn from the account page: that client's code ends, another client's code
    // from the same session does not. (A redeemed grant first, so the page lists the client.)
    let used = s.authorize("pub", "openid offline_access").await;
    ok(s.exchange("pub", &used.code, &used.verifier).await).await;
    let a = s.authorize("pub", "openid offline_access").await;
    let html = s
        .http
        .get(s.url("/account"))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = form_field(&html, "/account/revoke", "csrf_token").unwrap();
    let other = s.authorize("pub2", "openid").await;
    let r = s
        .http
        .post(s.url("/account/revoke"))
        .header("cookie", &a.cookies)
        .form(&[("csrf_token", csrf.as_str()), ("client_id", "pub")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    code_is_dead(&s, "pub", &a, "after consent withdrawal").await;
    ok(s.exchange("pub2", &other.code, &other.verifier).await).await;
    // A code whose session is live still works.
    let a = s.authorize("pub", "openid").await;
    ok(s.exchange("pub", &a.code, &a.verifier).await).await;
}

/// Finding 7: an approved device code whose session ended before the device collected it is
/// refused with `expired_token` (RFC 8628 §3.5: start over), even with `offline_access`.
#[tokio::test]
async fn device_approval_ends_with_the_session() {
    let s = Server::start(&[("AUTIONAL_DEVICE__INTERVAL", "1s")]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "TV",
        "--public",
        "--client-id",
        "tv",
        "--grant-type",
        DEVICE,
        "--grant-type",
        "refresh_token",
    ]);
    let d = device_authorize(&s).await;
    let (cookies, csrf) = device_session(&s).await;
    let r = s
        .http
        .post(s.url("/oauth/device"))
        .header("cookie", &cookies)
        .form(&[
            ("user_code", d["user_code"].as_str().unwrap()),
            ("csrf_token", csrf.as_str()),
            ("approved", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Device connected"));
    s.sign_out(&cookies).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(poll_err(&s, d["device_code"].as_str().unwrap()).await, "expired_token");
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM families"), 0, "nothing created");
}
