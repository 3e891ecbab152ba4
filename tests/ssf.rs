//! The OpenID Shared Signals Framework transmitter (docs/design/events.md, "Security events"):
//! stream management with a client's own token, the verification event, and the Security Event
//! Tokens a revocation sends — against a real receiver, a small HTTP server inside the test that
//! records what it gets; every SET is verified with PyPI `joserfc` against the server's JWKS
//! (`tests/py/verify_sets.py`).
//!
//! Runs on the backend `AUTIONAL_TEST_BACKEND` names.

mod common;

use common::admin::client_token;
use common::receiver::{Got, Receiver};
use common::{form_field, Backend, Server, REDIRECT};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_COMPROMISE: &str = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

const ENV: &[(&str, &str)] = &[
    ("AUTIONAL_RATE_LIMIT__ENABLED", "false"),
    ("AUTIONAL_EVENTS__ALLOW_HTTP_LOOPBACK", "true"),
    ("AUTIONAL_EVENTS__RECEIVER_ALLOW", "127.0.0.1"),
    ("AUTIONAL_EVENTS__POLL_MS", "100"),
    ("AUTIONAL_EVENTS__RETRY_BASE_MS", "200"),
    ("AUTIONAL_EVENTS__RETRY_MAX", "1"),
    ("AUTIONAL_EVENTS__TIMEOUT", "2"),
];

/// A confidential client `id` (user grants and `client_credentials`); its secret.
fn rp(s: &Server, id: &str) -> String {
    s.cli(&[
        "client",
        "create",
        "--name",
        id,
        "--redirect-uri",
        REDIRECT,
        "--client-id",
        id,
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
        "--scope",
        "openid offline_access",
    ])["client_secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A stream management call with `token` (none: no header).
async fn call(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s.http.request(method, s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates the stream of the client of `token` to `url`, asking for `events`; its id.
async fn stream(s: &Server, token: &str, url: &str, events: &[&str]) -> String {
    let (st, body) = call(
        s,
        reqwest::Method::POST,
        "/ssf/stream",
        Some(token),
        Some(json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": url}, "events_requested": events})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    body["stream_id"].as_str().unwrap().to_string()
}

/// A grant of `user` to the confidential client `id`: (session cookies, token response).
async fn grant(s: &Server, user: &str, id: &str, secret: &str, scope: &str) -> (String, Value) {
    let a = s.authorize_as(user, id, scope).await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", a.code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", a.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (a.cookies, r.json().await.unwrap())
}

async fn refresh(s: &Server, id: &str, secret: &str, rt: &str) -> reqwest::Response {
    s.http
        .post(s.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap()
}

/// Verifies every SET with joserfc against the server's JWKS, each for the client whose receiver
/// path it arrived at; returns the claims.
async fn verified(s: &Server, got: &[Got]) -> Vec<Value> {
    let sets: Vec<Value> = got
        .iter()
        .map(|g| {
            assert_eq!(g.content_type, "application/secevent+jwt");
            assert_eq!(g.accept, "application/json");
            json!({"token": g.token, "aud": g.path.trim_start_matches("/ssf/")})
        })
        .collect();
    s.verify_with_python("verify_sets.py", "sets", "secevent+jwt", sets)
        .await
}

/// (aud, event type, reason, sub) of each SET, sorted.
fn summary(claims: &[Value]) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = claims
        .iter()
        .map(|c| {
            let (uri, ev) = c["events"].as_object().unwrap().iter().next().unwrap();
            (
                c["aud"].as_str().unwrap().to_string(),
                uri.clone(),
                ev["reason_admin"]["en"].as_str().unwrap_or("").to_string(),
                c["sub_id"]["sub"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Posts the form of `/account` whose action is `action` (its CSRF token and `fields`); the
/// status.
async fn account_form(s: &Server, cookies: &str, action: &str, fields: &[(&str, &str)]) -> u16 {
    let html = s.page("/account", cookies).await;
    let csrf = form_field(&html, action, "csrf_token").expect("the form");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = s
        .http
        .post(s.url(action))
        .header("cookie", cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// The SETs that arrived after the first `seen`, once `n` more did.
async fn next(rcv: &Receiver, seen: &mut usize, n: usize) -> Vec<Got> {
    let got = rcv.wait_for(*seen + n).await;
    let new = got[*seen..].to_vec();
    *seen = got.len();
    new
}

fn row(aud: &str, uri: &str, reason: &str, sub: &str) -> (String, String, String, String) {
    (aud.into(), uri.into(), reason.into(), sub.into())
}

#[tokio::test]
async fn the_transmitter_metadata_names_the_endpoints() {
    let s = Server::start(ENV).await;
    let m = s.get_json("/.well-known/ssf-configuration").await;
    assert_eq!(m["spec_version"], "1_0");
    assert_eq!(m["issuer"], s.base.as_str());
    assert_eq!(m["jwks_uri"], format!("{}/oauth/jwks", s.base));
    assert_eq!(m["delivery_methods_supported"], json!(["urn:ietf:rfc:8935"]));
    assert_eq!(m["configuration_endpoint"], format!("{}/ssf/stream", s.base));
    assert_eq!(m["verification_endpoint"], format!("{}/ssf/verify", s.base));
    assert_eq!(m["authorization_schemes"], json!([{"spec_urn": "urn:ietf:rfc:6749"}]));
    assert_eq!(m["default_subjects"], "ALL");
}

/// Create, read, update, replace, delete; each refusal precise and changing nothing: no token, a
/// user's token, another client's stream, a second stream, bad delivery settings.
#[tokio::test]
async fn a_client_manages_its_own_stream_and_only_it() {
    use reqwest::Method;
    let s = Server::start(ENV).await;
    let (sec1, sec2) = (rp(&s, "rp1"), rp(&s, "rp2"));
    let t1 = client_token(&s, "rp1", &sec1, None).await;
    let t2 = client_token(&s, "rp2", &sec2, None).await;
    let url = "https://rp1.example/ssf";
    let create = |d: Value| Some(json!({"delivery": d, "events_requested": [SESSION_REVOKED, "urn:example:unknown"]}));
    let push = json!({"method": "urn:ietf:rfc:8935", "endpoint_url": url});

    // No token, a user's token: 401, nothing stored.
    let (st, _) = call(&s, Method::POST, "/ssf/stream", None, create(push.clone())).await;
    assert_eq!(st, 401);
    let (_, user) = grant(&s, "alice", "rp1", &sec1, "openid").await;
    let user_at = user["access_token"].as_str().unwrap();
    let (st, body) = call(&s, Method::POST, "/ssf/stream", Some(user_at), create(push.clone())).await;
    assert_eq!((st, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
    let (st, _) = call(&s, Method::GET, "/ssf/stream", Some(user_at), None).await;
    assert_eq!(st, 401);
    // Bad delivery settings: 400 naming the field.
    for (bad, says) in [
        (json!({"method": "urn:ietf:rfc:8936"}), "poll"),
        (json!({"method": "urn:ietf:rfc:8935"}), "endpoint_url"),
        (
            json!({"method": "urn:ietf:rfc:8935", "endpoint_url": "http://rp1.example/ssf"}),
            "https",
        ),
        (
            json!({"method": "urn:ietf:rfc:8935", "endpoint_url": url, "authorization_header": "x"}),
            "authorization_header",
        ),
    ] {
        let (st, body) = call(&s, Method::POST, "/ssf/stream", Some(&t1), create(bad)).await;
        assert_eq!(st, 400, "{body}");
        assert!(body["error_description"].as_str().unwrap().contains(says), "{body}");
    }
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM ssf_streams"), 0);

    // Created: what was asked, what is delivered.
    let (st, c) = call(&s, Method::POST, "/ssf/stream", Some(&t1), create(push.clone())).await;
    assert_eq!(st, 201, "{c}");
    let id1 = c["stream_id"].as_str().unwrap().to_string();
    assert_eq!(c["iss"], s.base.as_str());
    assert_eq!(c["aud"], "rp1");
    assert_eq!(c["delivery"], push);
    assert_eq!(c["events_supported"], json!([SESSION_REVOKED, CREDENTIAL_COMPROMISE]));
    assert_eq!(c["events_requested"], json!([SESSION_REVOKED, "urn:example:unknown"]));
    assert_eq!(c["events_delivered"], json!([SESSION_REVOKED]));
    // One per client.
    let (st, _) = call(&s, Method::POST, "/ssf/stream", Some(&t1), create(push.clone())).await;
    assert_eq!(st, 409);
    let (st, c2) = call(
        &s,
        Method::POST,
        "/ssf/stream",
        Some(&t2),
        create(json!({"method": "urn:ietf:rfc:8935", "endpoint_url": "https://rp2.example/ssf"})),
    )
    .await;
    assert_eq!(st, 201);
    let id2 = c2["stream_id"].as_str().unwrap().to_string();

    // Read: by id, and the list.
    let (st, r) = call(
        &s,
        Method::GET,
        &format!("/ssf/stream?stream_id={id1}"),
        Some(&t1),
        None,
    )
    .await;
    assert_eq!((st, &r), (200, &c));
    let (st, list) = call(&s, Method::GET, "/ssf/stream", Some(&t1), None).await;
    assert_eq!((st, list), (200, json!([c])));

    // Another client's stream cannot be read, changed, verified or deleted: 404, as unknown.
    for (m, path, body) in [
        (Method::GET, format!("/ssf/stream?stream_id={id2}"), None),
        (
            Method::PATCH,
            "/ssf/stream".to_string(),
            Some(json!({"stream_id": id2, "description": "mine"})),
        ),
        (
            Method::PUT,
            "/ssf/stream".to_string(),
            Some(json!({"stream_id": id2, "delivery": push})),
        ),
        (Method::POST, "/ssf/verify".to_string(), Some(json!({"stream_id": id2}))),
        (Method::DELETE, format!("/ssf/stream?stream_id={id2}"), None),
        (Method::GET, "/ssf/stream?stream_id=nope".to_string(), None),
    ] {
        let (st, b) = call(&s, m.clone(), &path, Some(&t1), body).await;
        assert_eq!(st, 404, "{m} {path}: {b}");
    }
    let (_, still) = call(
        &s,
        Method::GET,
        &format!("/ssf/stream?stream_id={id2}"),
        Some(&t2),
        None,
    )
    .await;
    assert_eq!(still, c2, "rp2's stream is unchanged");
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM event_outbox"),
        0,
        "no verification queued"
    );

    // PATCH changes what it names; a wrong transmitter-supplied value is refused.
    let (st, u) = call(
        &s,
        Method::PATCH,
        "/ssf/stream",
        Some(&t1),
        Some(
            json!({"stream_id": id1, "events_requested": [SESSION_REVOKED, CREDENTIAL_COMPROMISE], "description": "d"}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["events_delivered"], json!([SESSION_REVOKED, CREDENTIAL_COMPROMISE]));
    assert_eq!((u["description"].as_str(), &u["delivery"]), (Some("d"), &push));
    let (st, _) = call(
        &s,
        Method::PATCH,
        "/ssf/stream",
        Some(&t1),
        Some(json!({"stream_id": id1, "aud": "rp2"})),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = call(
        &s,
        Method::PATCH,
        "/ssf/stream",
        Some(&t1),
        Some(json!({"description": "x"})),
    )
    .await;
    assert_eq!(st, 400, "stream_id is required");
    // PUT replaces: what is missing is gone.
    let other = json!({"method": "urn:ietf:rfc:8935", "endpoint_url": "https://rp1.example/other"});
    let (st, p) = call(
        &s,
        Method::PUT,
        "/ssf/stream",
        Some(&t1),
        Some(json!({"stream_id": id1, "delivery": other})),
    )
    .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        (&p["delivery"], &p["events_delivered"], p.get("description")),
        (&other, &json!([]), None)
    );
    let (st, _) = call(
        &s,
        Method::PUT,
        "/ssf/stream",
        Some(&t1),
        Some(json!({"stream_id": id1})),
    )
    .await;
    assert_eq!(st, 400, "delivery is required");

    // DELETE: gone; the list is empty.
    let (st, _) = call(&s, Method::DELETE, "/ssf/stream", Some(&t1), None).await;
    assert_eq!(st, 400, "stream_id is required");
    let (st, _) = call(
        &s,
        Method::DELETE,
        &format!("/ssf/stream?stream_id={id1}"),
        Some(&t1),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, list) = call(&s, Method::GET, "/ssf/stream", Some(&t1), None).await;
    assert_eq!((st, list), (200, json!([])));
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM ssf_streams"), 1);
}

/// The verification event: a verified SET naming the stream, with the state.
#[tokio::test]
async fn the_verification_event_reaches_the_stream() {
    let rcv = Receiver::started("ssf", 202).await;
    let s = Server::start(ENV).await;
    let sec = rp(&s, "rp1");
    let t = client_token(&s, "rp1", &sec, None).await;
    let id = stream(&s, &t, &rcv.url("rp1"), &[SESSION_REVOKED]).await;
    let (st, _) = call(
        &s,
        reqwest::Method::POST,
        "/ssf/verify",
        Some(&t),
        Some(json!({"stream_id": id, "state": "st-42"})),
    )
    .await;
    assert_eq!(st, 204);
    let got = rcv.wait_for(1).await;
    let c = verified(&s, &got).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["sub_id"], json!({"format": "opaque", "id": id}));
    assert_eq!(c[0]["events"], json!({VERIFICATION: {"state": "st-42"}}));
    assert_eq!(c[0]["aud"], "rp1");
}

/// Reuse detection and each ending: rp1 (asked for both types) gets `session-revoked` with the
/// cause, and `credential-compromise` for reuse; rp2 (asked only for `credential-compromise`)
/// gets nothing but that; rp3 (no stream) gets nothing. All verified with joserfc.
#[tokio::test]
async fn revocations_send_verified_sets_to_the_clients_that_asked() {
    let rcv = Receiver::started("ssf", 202).await;
    let s = Server::start(ENV).await;
    let (sec1, sec2, sec3) = (rp(&s, "rp1"), rp(&s, "rp2"), rp(&s, "rp3"));
    let t1 = client_token(&s, "rp1", &sec1, None).await;
    let t2 = client_token(&s, "rp2", &sec2, None).await;
    stream(&s, &t1, &rcv.url("rp1"), &[SESSION_REVOKED, CREDENTIAL_COMPROMISE]).await;
    stream(&s, &t2, &rcv.url("rp2"), &[CREDENTIAL_COMPROMISE]).await;
    let mut seen = 0;
    let alice = s.scalar_str("SELECT id FROM users WHERE username = 'alice'").unwrap();

    // Reuse: rp1 gets both events (one txn, the family's sid), rp2 the compromise.
    let (_, g1) = grant(&s, "alice", "rp1", &sec1, "openid offline_access").await;
    let sid1 = common::claims(g1["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, g2) = grant(&s, "alice", "rp2", &sec2, "openid offline_access").await;
    let (_, g3) = grant(&s, "alice", "rp3", &sec3, "openid offline_access").await;
    for (id, sec, g) in [("rp1", &sec1, &g1), ("rp2", &sec2, &g2), ("rp3", &sec3, &g3)] {
        let rt = g["refresh_token"].as_str().unwrap();
        assert_eq!(refresh(&s, id, sec, rt).await.status(), 200);
        assert_eq!(refresh(&s, id, sec, rt).await.status(), 400, "reuse");
    }
    let new = verified(&s, &next(&rcv, &mut seen, 3).await).await;
    assert_eq!(
        summary(&new),
        [
            row("rp1", SESSION_REVOKED, "refresh_token_reuse", &alice),
            row("rp1", CREDENTIAL_COMPROMISE, "refresh_token_reuse", &alice),
            row("rp2", CREDENTIAL_COMPROMISE, "refresh_token_reuse", &alice),
        ],
        "reuse"
    );
    let rp1: Vec<&Value> = new.iter().filter(|c| c["aud"] == "rp1").collect();
    assert_eq!(rp1[0]["txn"], rp1[1]["txn"], "one cause, one txn");
    assert!(rp1.iter().all(|c| c["sid"] == sid1.as_str()), "the family's sid");
    assert!(new.iter().all(|c| c["events"]
        .as_object()
        .unwrap()
        .values()
        .all(|e| e["initiating_entity"] == "policy")));

    // Logout: the session's families end; only rp1 asked for session-revoked.
    let (cookies, _) = grant(&s, "alice", "rp1", &sec1, "openid").await;
    grant(&s, "alice", "rp2", &sec2, "openid").await;
    s.sign_out(&cookies).await;
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "session_ended", &alice)],
        "logout"
    );

    // Consent withdrawal on /account (rp1's grants of alice).
    let (cookies, _) = grant(&s, "alice", "rp1", &sec1, "openid offline_access").await;
    assert_eq!(
        account_form(&s, &cookies, "/account/revoke", &[("client_id", "rp1")]).await,
        303
    );
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "consent_revoked", &alice)],
        "consent withdrawal"
    );

    // Admin revocation of alice's grants, at once.
    grant(&s, "alice", "rp1", &sec1, "openid offline_access").await;
    let admin = s.admin_token("ops").await;
    let r = s
        .http
        .delete(s.admin_url(0, &format!("/admin/oauth/tokens/user/{alice}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "revoked_by_admin", &alice)],
        "admin revocation"
    );
    assert_eq!(new[0]["events"][SESSION_REVOKED]["initiating_entity"], "admin");

    // Admin revocation with a grace period: sent when it takes effect, not before.
    grant(&s, "alice", "rp1", &sec1, "openid offline_access").await;
    let r = s
        .http
        .delete(s.admin_url(0, &format!("/admin/oauth/tokens/user/{alice}?grace_period=2")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let asked = Instant::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rcv.got().len(), seen, "nothing before the grace period ends");
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert!(asked.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "revoked_by_admin", &alice)],
        "scheduled revocation"
    );

    // One grant ended on /account (`grant_id`): that family only.
    let (cookies, t) = grant(&s, "alice", "rp1", &sec1, "openid offline_access").await;
    let family = common::token_family(t["refresh_token"].as_str().unwrap()).0;
    assert_eq!(
        account_form(&s, &cookies, "/account/revoke", &[("grant_id", family.as_str())]).await,
        303
    );
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "revoked_by_user", &alice)],
        "a grant ended on /account"
    );

    // The client revokes its refresh token (RFC 7009): its family ends.
    let (_, t) = grant(&s, "alice", "rp1", &sec1, "openid offline_access").await;
    let r = s
        .http
        .post(s.url("/oauth/revoke"))
        .basic_auth("rp1", Some(&sec1))
        .form(&[("token", t["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "revoked_by_client", &alice)],
        "revocation at /oauth/revoke"
    );

    // A password change ends every family of the user.
    grant(&s, "alice", "rp1", &sec1, "openid offline_access").await;
    s.run_cli_stdin(
        &["user", "set-password", "--username", "alice", "--password-stdin"],
        "alice-password-2",
    );
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "password_changed", &alice)],
        "password change"
    );

    // Deleting a user ends their families.
    s.run_cli_stdin(
        &["user", "create", "--username", "bob", "--password-stdin"],
        common::PASSWORD,
    );
    let (_, t) = grant(&s, "bob", "rp1", &sec1, "openid offline_access").await;
    let bob = common::claims(t["access_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_string();
    s.cli(&["user", "delete", "--username", "bob"]);
    let new = verified(&s, &next(&rcv, &mut seen, 1).await).await;
    assert_eq!(
        summary(&new),
        [row("rp1", SESSION_REVOKED, "user_deleted", &bob)],
        "user deletion"
    );

    // Nothing went to rp3 (no stream) or anywhere else; every jti is its own.
    let all = rcv.got();
    assert!(all.iter().all(|g| g.path == "/ssf/rp1" || g.path == "/ssf/rp2"));
    let claims = verified(&s, &all).await;
    let mut jtis: Vec<&str> = claims.iter().map(|c| c["jti"].as_str().unwrap()).collect();
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), all.len());
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE client_id = 'rp3'"),
        0
    );
}

/// A revocation that rolls back leaves no event: the event row is written in the revocation's
/// transaction (a user's deletion that fails at its last statement), and in PostgreSQL's
/// one-statement reuse revocation (an audit insert that fails).
#[tokio::test]
async fn a_revocation_that_rolls_back_leaves_no_event() {
    let rcv = Receiver::started("ssf", 202).await;
    let s = Server::start(ENV).await;
    let sec = rp(&s, "rp1");
    let t = client_token(&s, "rp1", &sec, None).await;
    stream(&s, &t, &rcv.url("rp1"), &[SESSION_REVOKED, CREDENTIAL_COMPROMISE]).await;
    let (_, g) = grant(&s, "alice", "rp1", &sec, "openid offline_access").await;
    let plant = |table: &str, op: &str| {
        match s.backend {
        Backend::Sqlite => format!("CREATE TRIGGER fail_{table} BEFORE {op} ON {table} BEGIN SELECT RAISE(ABORT, 'planted failure'); END"),
        Backend::Postgres => format!(
            "CREATE FUNCTION fail_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'planted failure'; END $$; \
             CREATE TRIGGER fail_{table} BEFORE {op} ON {table} FOR EACH ROW EXECUTE FUNCTION fail_{table}()"
        ),
    }
    };
    let unplant = |table: &str| match s.backend {
        Backend::Sqlite => format!("DROP TRIGGER fail_{table}"),
        Backend::Postgres => format!("DROP TRIGGER fail_{table} ON {table}"),
    };

    // Reuse whose audit fails: no revocation, no event.
    let rt = g["refresh_token"].as_str().unwrap();
    let r = refresh(&s, "rp1", &sec, rt).await;
    assert_eq!(r.status(), 200);
    let rt2 = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    s.exec(&plant("audit_events", "INSERT"));
    assert!(refresh(&s, "rp1", &sec, rt).await.status().is_server_error());
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM event_outbox"), 0, "no event");
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM families WHERE revoked_at_ms IS NOT NULL"),
        0
    );
    s.exec(&unplant("audit_events"));

    // A user deletion that fails: no revocation, no event.
    s.exec(&plant("users", "DELETE"));
    let out = s.run_cli_raw(&["user", "delete", "--username", "alice"]);
    assert!(!out.status.success(), "the deletion failed");
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM event_outbox"), 0, "no event");
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM families WHERE revoked_at_ms IS NOT NULL"),
        0
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(rcv.got().is_empty(), "nothing sent");
    s.exec(&unplant("users"));

    // Without the failures, the same revocations commit with their events.
    assert_eq!(refresh(&s, "rp1", &sec, rt).await.status(), 400);
    let got = rcv.wait_for(2).await;
    assert_eq!(
        verified(&s, &got).await.len(),
        2,
        "reuse: session-revoked and credential-compromise"
    );
    assert_eq!(
        refresh(&s, "rp1", &sec, &rt2).await.status(),
        400,
        "the family is revoked"
    );
}
