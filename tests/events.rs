//! Events pushed to relying parties (docs/design/events.md): OpenID Connect Back-Channel Logout
//! through the transactional outbox and the delivery worker, against a real receiver — a small
//! HTTP server inside the test that records what it gets; every Logout Token it got is verified
//! with PyPI `joserfc` against the server's JWKS (`tests/py/verify_logout_tokens.py`).
//!
//! Runs on the backend `AUTIONAL_TEST_BACKEND` names; the three-process test on PostgreSQL.

mod common;

use common::receiver::{Got, Receiver};
use common::{form_field, hidden_all, Backend, Server, PASSWORD, REDIRECT};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The server settings the tests run with: loopback receivers allowed, a fast worker.
const ENV: &[(&str, &str)] = &[
    ("AUTIONAL_RATE_LIMIT__ENABLED", "false"),
    ("AUTIONAL_EVENTS__ALLOW_HTTP_LOOPBACK", "true"),
    ("AUTIONAL_EVENTS__RECEIVER_ALLOW", "127.0.0.1"),
    ("AUTIONAL_EVENTS__POLL_MS", "100"),
    ("AUTIONAL_EVENTS__RETRY_BASE_MS", "200"),
    ("AUTIONAL_EVENTS__RETRY_MAX", "1"),
    ("AUTIONAL_EVENTS__TIMEOUT", "2"),
];

fn env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    ENV.iter().chain(extra).copied().collect()
}

/// A public client `id` whose back-channel logout endpoint is `uri` (none when `None`).
fn rp(s: &Server, id: &str, uri: Option<&str>) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        id,
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        id,
        "--scope",
        "openid offline_access",
    ];
    if let Some(u) = uri {
        args.extend(["--backchannel-logout-uri", u, "--backchannel-logout-session-required"]);
    }
    s.cli(&args);
}

/// A grant for `client` in a new sign-in session of `user`: (session cookies, sid, sub).
async fn signed_in(s: &Server, user: &str, client: &str, scope: &str) -> (String, String, String) {
    let a = s.authorize_as(user, client, scope).await;
    let t = redeem(s, client, &a.code, &a.verifier).await;
    let c = common::claims(t["id_token"].as_str().unwrap());
    (
        a.cookies,
        c["sid"].as_str().unwrap().to_string(),
        c["sub"].as_str().unwrap().to_string(),
    )
}

async fn redeem(s: &Server, client: &str, code: &str, verifier: &str) -> Value {
    let r = s.exchange(client, code, verifier).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A grant for `client` in the session of `cookies` (no new sign-in); its sid.
async fn also(s: &Server, cookies: &str, client: &str, scope: &str) -> String {
    let (path, verifier, _) = Server::authorize_path(client, scope);
    let r = s.http.get(s.url(&path)).header("cookie", cookies).send().await.unwrap();
    let location = if r.status() == 200 {
        let mut form = hidden_all(&r.text().await.unwrap());
        form.push(("approved".into(), "true".into()));
        let r = s
            .http
            .post(s.url("/oauth/authorize"))
            .header("cookie", cookies)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        r.headers()["location"].to_str().unwrap().to_string()
    } else {
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().to_string()
    };
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let t = redeem(s, client, &code, &verifier).await;
    common::claims(t["id_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Verifies every token with joserfc against the server's JWKS, each for the client whose
/// receiver path it arrived at; returns the claims.
async fn verified(s: &Server, got: &[Got]) -> Vec<Value> {
    let tokens: Vec<Value> = got
        .iter()
        .map(|g| {
            assert_eq!(g.content_type, "application/x-www-form-urlencoded");
            json!({"token": g.token, "aud": g.path.trim_start_matches("/bcl/")})
        })
        .collect();
    s.verify_with_python("verify_logout_tokens.py", "tokens", "logout+jwt", tokens)
        .await
}

/// (aud, sid, sub) of each token, sorted.
fn endings(claims: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = claims
        .iter()
        .map(|c| {
            (
                c["aud"].as_str().unwrap().to_string(),
                c["sid"].as_str().unwrap().to_string(),
                c["sub"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn triple(aud: &str, sid: &str, sub: &str) -> (String, String, String) {
    (aud.to_string(), sid.to_string(), sub.to_string())
}

/// Each way a sign-in session ends sends one verified Logout Token to each client with a
/// back-channel logout URI and a grant in that session — and to no other client.
#[tokio::test]
async fn every_session_ending_sends_a_verified_logout_token_to_the_clients_of_that_session() {
    let rcv = Receiver::started("bcl", 200).await;
    let s = Server::start(&env(&[])).await;
    rp(&s, "rp1", Some(&rcv.url("rp1")));
    rp(&s, "rp2", Some(&rcv.url("rp2")));
    rp(&s, "rp3", None);
    // What arrived since the previous ending.
    let mut seen = 0;
    let mut news = |got: Vec<Got>| {
        let new = got[seen..].to_vec();
        seen = got.len();
        new
    };

    // Logout: session A has rp1 and rp3 (no URI); rp2 has a grant only in session B.
    let (a, sid_a, alice) = signed_in(&s, "alice", "rp1", "openid").await;
    also(&s, &a, "rp3", "openid").await;
    let (b, sid_b, _) = signed_in(&s, "alice", "rp2", "openid").await;
    s.sign_out(&a).await;
    let new = news(rcv.wait_for(1).await);
    assert_eq!(
        endings(&verified(&s, &new).await),
        [triple("rp1", &sid_a, &alice)],
        "logout"
    );

    // RP-initiated logout (confirmed on the page) of session B: rp2 only.
    let html = s.page("/oauth/logout", &b).await;
    let csrf = form_field(&html, "/oauth/logout", "csrf_token").unwrap();
    let r = s
        .http
        .post(s.url("/oauth/logout"))
        .header("cookie", &b)
        .form(&[("csrf_token", csrf.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new = news(rcv.wait_for(2).await);
    assert_eq!(
        endings(&verified(&s, &new).await),
        [triple("rp2", &sid_b, &alice)],
        "RP-initiated logout"
    );

    // A session ended from another browser on /account: its offline_access grant counts too.
    let (c, sid_c, _) = signed_in(&s, "alice", "rp1", "openid offline_access").await;
    let (d, _) = s.sign_in("/account").await;
    let html = s.page("/account", &d).await;
    let csrf = form_field(&html, "/account/revoke", "csrf_token").unwrap();
    let r = s
        .http
        .post(s.url("/account/revoke"))
        .header("cookie", &d)
        .form(&[("csrf_token", csrf.as_str()), ("session_id", sid_c.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = s.http.get(s.url("/account")).header("cookie", &c).send().await.unwrap();
    assert_eq!(r.status(), 303, "session C is over");
    let new = news(rcv.wait_for(3).await);
    assert_eq!(
        endings(&verified(&s, &new).await),
        [triple("rp1", &sid_c, &alice)],
        "session ended on /account"
    );

    // A password change ends every session of the user: E (rp1) and F (rp2), not D (no grant).
    let (_, sid_e, _) = signed_in(&s, "alice", "rp1", "openid").await;
    let (_, sid_f, _) = signed_in(&s, "alice", "rp2", "openid").await;
    s.run_cli_stdin(
        &["user", "set-password", "--username", "alice", "--password-stdin"],
        PASSWORD,
    );
    let mut want = vec![triple("rp1", &sid_e, &alice), triple("rp2", &sid_f, &alice)];
    want.sort();
    let new = news(rcv.wait_for(5).await);
    assert_eq!(endings(&verified(&s, &new).await), want, "password change");

    // Deleting a user: both clients of bob's session, with bob's subject.
    s.run_cli_stdin(&["user", "create", "--username", "bob", "--password-stdin"], PASSWORD);
    let (g, sid_g, bob) = signed_in(&s, "bob", "rp1", "openid").await;
    also(&s, &g, "rp2", "openid").await;
    s.cli(&["user", "delete", "--username", "bob"]);
    let mut want = vec![triple("rp1", &sid_g, &bob), triple("rp2", &sid_g, &bob)];
    want.sort();
    let new = news(rcv.wait_for(7).await);
    assert_eq!(endings(&verified(&s, &new).await), want, "user deletion");

    // Every token went to its client's exact URL (`verified` checks aud against the path), once,
    // with a jti of its own; all delivered at the first attempt.
    let all = rcv.got();
    assert_eq!(all.len(), 7);
    let claims = verified(&s, &all).await;
    let mut jtis: Vec<&str> = claims.iter().map(|c| c["jti"].as_str().unwrap()).collect();
    jtis.sort();
    jtis.dedup();
    assert_eq!(jtis.len(), 7);
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE state = 'delivered' AND attempts = 1"),
        7
    );
    // Refreshes (the hot path) wrote nothing to the outbox.
    let (t, _) = s.tokens("pub", "openid offline_access").await;
    let r = s.refresh("pub", t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM event_outbox"), 7);
}

/// Lost nothing: a logout committed while the receiver is down is delivered once it is back;
/// one committed before the server is killed (SIGKILL) and before it could be delivered is
/// delivered by the restarted server; each once.
#[tokio::test]
async fn events_survive_a_receiver_outage_and_a_killed_server() {
    let mut rcv = Receiver::new("bcl", 200);
    let mut s = Server::start(&env(&[])).await;
    rp(&s, "rp1", Some(&rcv.url("rp1")));

    let (a, sid_a, _) = signed_in(&s, "alice", "rp1", "openid").await;
    s.sign_out(&a).await;
    // Tried, refused, kept.
    let start = Instant::now();
    while s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE attempts >= 2 AND state = 'pending'") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no retry while the receiver is down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = s.scalar_str("SELECT last_error FROM event_outbox").unwrap();
    assert!(err.contains("unreachable"), "{err}");
    rcv.up().await;
    let got = rcv.wait_for(1).await;
    let c = verified(&s, &got).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["sid"], sid_a.as_str());

    // Receiver down again; a logout commits; the server is killed (SIGKILL) before it could
    // deliver, and started again; the receiver comes back.
    rcv.down();
    let (b, sid_b, _) = signed_in(&s, "alice", "rp1", "openid").await;
    s.sign_out(&b).await;
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE state = 'pending'"),
        1,
        "committed with the logout"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = s.pid(0);
    s.restart(&[]).await;
    assert_ne!(s.pid(0), old);
    assert_eq!(rcv.got().len(), 1, "nothing more was delivered before the kill");
    rcv.up().await;
    let got = rcv.wait_for(2).await;
    assert_eq!(
        got.len(),
        2,
        "delivered after the restart, once: {:?}",
        s.rows("SELECT state, CAST(attempts AS TEXT), last_error, CAST(lease_until_ms AS TEXT), CAST(next_attempt_at_ms AS TEXT) FROM event_outbox")
    );
    let c = verified(&s, &got[1..]).await;
    assert_eq!(c[0]["sid"], sid_b.as_str());
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE state = 'delivered'"),
        2
    );
}

/// A session ending that fails (here the user's deletion, refused by a trigger planted in the
/// database at its last statement) rolls back whole: nothing ended, no event queued or sent.
#[tokio::test]
async fn a_rolled_back_ending_leaves_no_event() {
    let rcv = Receiver::started("bcl", 200).await;
    let s = Server::start(&env(&[])).await;
    rp(&s, "rp1", Some(&rcv.url("rp1")));
    let (a, _, _) = signed_in(&s, "alice", "rp1", "openid").await;
    s.exec(match s.backend {
        Backend::Sqlite => {
            "CREATE TRIGGER fail_delete BEFORE DELETE ON users BEGIN SELECT RAISE(ABORT, 'planted failure'); END"
        }
        Backend::Postgres => {
            "CREATE FUNCTION fail_delete() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'planted failure'; END $$; \
             CREATE TRIGGER fail_delete BEFORE DELETE ON users FOR EACH ROW EXECUTE FUNCTION fail_delete()"
        }
    });
    let out = s.run_cli_raw(&["user", "delete", "--username", "alice"]);
    assert!(!out.status.success(), "the deletion failed");
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM event_outbox"), 0, "no event");
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM sessions WHERE ended_at_ms IS NOT NULL"),
        0,
        "no session ended"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(rcv.got().is_empty(), "nothing sent");
    // The same ending, without the planted failure, commits with its event.
    s.exec(match s.backend {
        Backend::Sqlite => "DROP TRIGGER fail_delete",
        Backend::Postgres => "DROP TRIGGER fail_delete ON users",
    });
    s.sign_out(&a).await;
    assert_eq!(rcv.wait_for(1).await.len(), 1);
}

/// The value of the counter `name{kind="backchannel_logout"}` on the first node.
async fn counter(s: &Server, name: &str) -> f64 {
    let text = s.http.get(s.metric_url()).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix("{kind=\"backchannel_logout\"} ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// A receiver that always fails: the event is tried again with back-off until `events.max_age`,
/// then marked failed, counted in the metrics; every attempt carried the same `jti`.
#[tokio::test]
async fn a_receiver_that_always_fails_is_given_up_after_max_age() {
    let rcv = Receiver::started("bcl", 200).await;
    rcv.status.store(500, Ordering::SeqCst);
    let s = Server::start(&env(&[("AUTIONAL_EVENTS__MAX_AGE", "3")])).await;
    rp(&s, "rp1", Some(&rcv.url("rp1")));
    let (a, _, _) = signed_in(&s, "alice", "rp1", "openid").await;
    s.sign_out(&a).await;
    let start = Instant::now();
    while s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE state = 'failed'") == 0 {
        assert!(start.elapsed() < Duration::from_secs(15), "not given up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500),
        "given up before max_age: {elapsed:?}"
    );
    let row = s.rows("SELECT CAST(attempts AS TEXT), last_error FROM event_outbox");
    let attempts: usize = row[0][0].as_deref().unwrap().parse().unwrap();
    assert!(attempts >= 3, "{attempts} attempts");
    assert_eq!(row[0][1].as_deref(), Some("bad response: status 500"));
    let got = rcv.got();
    assert_eq!(got.len(), attempts);
    let claims = verified(&s, &got).await;
    assert!(claims.iter().all(|c| c["jti"] == claims[0]["jti"]), "one jti");
    assert_eq!(counter(&s, "autional_events_failed_total").await, 1.0);
    assert_eq!(
        counter(&s, "autional_events_retried_total").await,
        (attempts - 1) as f64
    );
    assert_eq!(counter(&s, "autional_events_delivered_total").await, 0.0);
    // Given up: not tried again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rcv.got().len(), attempts);
    // The admin API lists it, with why and after how many attempts; filters and refusals.
    let t = common::admin::admin_token(&s, "ops", None).await;
    let list = |path: &'static str| {
        let (s, t) = (&s, t.clone());
        async move { common::admin::call(s, reqwest::Method::GET, path, Some(&t), None).await }
    };
    let (st, body, _) = list("/admin/oauth/events?state=failed").await;
    assert_eq!(st, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["kind"], "backchannel_logout");
    assert_eq!(items[0]["client_id"], "rp1");
    assert_eq!(items[0]["jti"], claims[0]["jti"]);
    assert_eq!(items[0]["attempts"], attempts as u64);
    assert_eq!(items[0]["last_error"], "bad response: status 500");
    assert_eq!(items[0]["endpoint"], rcv.url("rp1").as_str());
    let (_, body, _) = list("/admin/oauth/events?state=delivered").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0);
    let (_, body, _) = list("/admin/oauth/events?client_id=nobody").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0);
    for bad in [
        "/admin/oauth/events?state=lost",
        "/admin/oauth/events?cursor=forged",
        "/admin/oauth/events?kind=x",
    ] {
        let (st, body, _) = list(bad).await;
        assert_eq!(st, 400, "{bad}: {body}");
    }
}

/// Three server processes on one PostgreSQL database, one slow receiver: every event is
/// delivered, and none twice (counted at the receiver, by jti). Two processes can claim all the
/// events (a batch of 6 each), so the third polls, idle, all the while the others deliver: only
/// the leases keep it off their events.
#[tokio::test]
async fn three_processes_deliver_each_event_once() {
    if common::backend() != Backend::Postgres {
        return;
    }
    let rcv = Receiver::started("bcl", 200).await;
    rcv.delay_ms.store(300, Ordering::SeqCst);
    let s = Server::start_cluster(
        3,
        &env(&[
            ("AUTIONAL_EVENTS__BATCH", "6"),
            ("AUTIONAL_EVENTS__PER_RECEIVER", "2"),
            ("AUTIONAL_EVENTS__POLL_MS", "50"),
        ]),
    )
    .await;
    rp(&s, "rp1", Some(&rcv.url("rp1")));
    const N: usize = 12;
    for _ in 0..N {
        signed_in(&s, "alice", "rp1", "openid").await;
    }
    // One password change ends the N sessions: N events at once, for three workers.
    s.run_cli_stdin(
        &["user", "set-password", "--username", "alice", "--password-stdin"],
        PASSWORD,
    );
    let got = rcv.wait_for(N).await;
    let claims = verified(&s, &got).await;
    let mut by_jti: HashMap<String, usize> = HashMap::new();
    for c in &claims {
        *by_jti.entry(c["jti"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(by_jti.len(), N, "every event delivered");
    let twice: Vec<_> = by_jti.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE state = 'delivered' AND attempts = 1"),
        N as i64
    );
}

/// Receiver URLs: https, or http on loopback when the operator allows it. An http URL elsewhere
/// is refused with a precise error by registration, RFC 7592, the CLI and the admin API, and
/// nothing is stored; discovery advertises the support.
#[tokio::test]
async fn http_receivers_off_loopback_are_refused_everywhere() {
    let s = Server::start(&[("AUTIONAL_REGISTRATION__ENABLED", "true")]).await;
    let d = s.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
    let clients = || s.scalar_i64("SELECT COUNT(*) FROM clients");
    let before = clients();
    const WANT: &str = "backchannel_logout_uri must use https (http only on a loopback host, in development)";
    let register = |uri: &str| {
        s.http
            .post(s.url("/oauth/register"))
            .json(&json!({"redirect_uris": ["https://rp.example/cb"], "backchannel_logout_uri": uri}))
            .send()
    };
    let r = register("http://rp.example/bcl").await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    assert_eq!(body["error_description"], WANT);
    // Loopback http is refused too unless the operator allows it (not here).
    let r = register("http://127.0.0.1:9/bcl").await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("events.allow_http_loopback"),
        "{body}"
    );
    assert_eq!(clients(), before);
    // https is accepted and read back; RFC 7592 cannot change it to http.
    let r = register("https://rp.example/bcl").await.unwrap();
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["backchannel_logout_uri"], "https://rp.example/bcl");
    assert_eq!(made["backchannel_logout_session_required"], false);
    let id = made["client_id"].as_str().unwrap();
    let mut update = made.clone();
    for k in [
        "registration_access_token",
        "registration_client_uri",
        "client_secret",
        "client_secret_expires_at",
        "client_id_issued_at",
    ] {
        update.as_object_mut().unwrap().remove(k);
    }
    update["backchannel_logout_uri"] = "http://rp.example/bcl".into();
    let r = s
        .http
        .put(s.url(&format!("/oauth/register/{id}")))
        .bearer_auth(made["registration_access_token"].as_str().unwrap())
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_description"], WANT);
    assert_eq!(
        s.scalar_str(&format!("SELECT backchannel_logout_uri FROM clients WHERE id = '{id}'"))
            .as_deref(),
        Some("https://rp.example/bcl")
    );
    // The CLI.
    let out = s.run_cli_raw(&[
        "client",
        "create",
        "--name",
        "x",
        "--redirect-uri",
        REDIRECT,
        "--backchannel-logout-uri",
        "http://rp.example/bcl",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--backchannel-logout-uri") && err.contains(WANT), "{err}");
    // The admin API.
    let token = s.admin_token("adm").await;
    let before = clients();
    let r = s
        .http
        .post(s.admin_url(0, "/admin/oauth/clients"))
        .bearer_auth(&token)
        .json(&json!({"name": "x", "redirect_uris": [REDIRECT], "backchannel_logout_uri": "http://rp.example/bcl"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], format!("backchannel_logout_uri: {WANT}"));
    assert_eq!(clients(), before);
    let r = s
        .http
        .post(s.admin_url(0, "/admin/oauth/clients"))
        .bearer_auth(&token)
        .json(
            &json!({"name": "x", "redirect_uris": [REDIRECT], "backchannel_logout_uri": "https://rp.example/bcl",
            "backchannel_logout_session_required": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["backchannel_logout_uri"], "https://rp.example/bcl");
    assert_eq!(body["data"]["backchannel_logout_session_required"], true);
}

/// At delivery the receiver's address is checked again (`events.receiver_allow`, as
/// `outbound` does for `jwks_uri`): a loopback receiver the operator did not allow is never
/// called, however its URL was registered.
#[tokio::test]
async fn a_receiver_address_outside_the_policy_is_never_called() {
    let rcv = Receiver::started("bcl", 200).await;
    let s = Server::start(&[
        ("AUTIONAL_EVENTS__ALLOW_HTTP_LOOPBACK", "true"),
        ("AUTIONAL_EVENTS__POLL_MS", "100"),
        ("AUTIONAL_EVENTS__RETRY_BASE_MS", "100"),
    ])
    .await;
    rp(&s, "rp1", Some(&rcv.url("rp1")));
    let (a, _, _) = signed_in(&s, "alice", "rp1", "openid").await;
    s.sign_out(&a).await;
    let start = Instant::now();
    while s.scalar_i64("SELECT COUNT(*) FROM event_outbox WHERE attempts >= 2") == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "not attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        s.scalar_str("SELECT last_error FROM event_outbox").as_deref(),
        Some("refused: 127.0.0.1 is not a permitted address")
    );
    assert!(rcv.got().is_empty(), "the receiver was called");
}
