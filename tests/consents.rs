//! The end-user consent API (SPEC §8, docs/design/consent-api.md): `GET /oauth/consents` and
//! `DELETE /oauth/consents/{id}` with the user's own token carrying the `consents` scope. A
//! withdrawn consent ends that client's grants for the user at once (and only those), another
//! user's consent cannot be named, and only an account client can obtain the scope.

mod common;

use common::dpop::{DpopKey, Opts};
use common::{Server, PASSWORD, REDIRECT};
use serde_json::Value;

const NO_LIMITS: (&str, &str) = ("AUTIONAL_RATE_LIMIT__ENABLED", "false");
const USER_SCOPE: &str = "openid profile";

/// A server with a second user (bob) and the account client `account` (public, `--account`).
async fn server() -> Server {
    let s = Server::start(&[NO_LIMITS]).await;
    s.run_cli_stdin(&["user", "create", "--username", "bob", "--password-stdin"], PASSWORD);
    s.cli(&[
        "client",
        "create",
        "--name",
        "My account",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        "account",
        "--account",
        "--scope",
        "openid consents",
    ]);
    s
}

/// The token response of the code flow of `username` with the public client `client_id`.
async fn tokens_as(s: &Server, username: &str, client_id: &str, scope: &str) -> Value {
    let a = s.authorize_as(username, client_id, scope).await;
    let r = s.exchange(client_id, &a.code, &a.verifier).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn at(t: &Value) -> &str {
    t["access_token"].as_str().unwrap()
}

fn rt(t: &Value) -> &str {
    t["refresh_token"].as_str().unwrap()
}

/// `GET /oauth/consents` with `token` as a Bearer token (none: no header).
async fn list(s: &Server, token: Option<&str>) -> reqwest::Response {
    let mut r = s.http.get(s.url("/oauth/consents"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// The consents listed for `token`, as (id, client_id, scopes).
async fn listed(s: &Server, token: &str) -> Vec<(String, String, String)> {
    let r = list(s, Some(token)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["code"].as_i64(), body["message"].as_str()),
        (Some(200), Some("success"))
    );
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let scopes: Vec<&str> = c["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap())
                .collect();
            assert!(c["granted_at"].as_i64().unwrap() > 1_600_000_000, "{c}");
            (
                c["id"].as_str().unwrap().to_string(),
                c["client_id"].as_str().unwrap().to_string(),
                scopes.join(" "),
            )
        })
        .collect()
}

async fn delete(s: &Server, token: &str, id: &str) -> reqwest::Response {
    s.http
        .delete(s.url(&format!("/oauth/consents/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Whether a user's tokens of one client still work: refresh, introspection, userinfo.
async fn alive(s: &Server, client_id: &str, t: &Value) -> (u16, bool, u16) {
    let introspected = s.introspect(at(t)).await["active"].as_bool().unwrap();
    let userinfo = s.userinfo(at(t)).await.status().as_u16();
    let r = s.refresh(client_id, rt(t)).await;
    let status = r.status().as_u16();
    if status != 200 {
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    (status, introspected, userinfo)
}

#[tokio::test]
async fn withdrawing_a_consent_ends_that_clients_grants_only_and_asks_again() {
    let s = server().await;
    let one = tokens_as(&s, "alice", "pub", USER_SCOPE).await;
    let two = tokens_as(&s, "alice", "pub2", USER_SCOPE).await;
    let acc = tokens_as(&s, "alice", "account", "openid consents").await;
    let mine = at(&acc).to_string();

    let r = list(&s, Some(&mine)).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    let pub_item = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "pub")
        .unwrap()
        .clone();
    assert_eq!(pub_item["client_name"], "App pub");
    assert_eq!(
        listed(&s, &mine).await,
        [
            ("account".into(), "account".into(), "consents openid".into()),
            ("pub".into(), "pub".into(), USER_SCOPE.into()),
            ("pub2".into(), "pub2".into(), USER_SCOPE.into()),
        ]
    );

    let r = delete(&s, &mine, "pub").await;
    assert_eq!(r.status(), 204);
    assert_eq!(alive(&s, "pub", &one).await, (401, false, 401), "pub's tokens must die");
    assert_eq!(
        alive(&s, "pub2", &two).await,
        (200, true, 200),
        "pub2's tokens must live"
    );
    let ids: Vec<String> = listed(&s, &mine).await.into_iter().map(|c| c.0).collect();
    assert_eq!(ids, ["account", "pub2"]);
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM consents WHERE client_id = 'pub'"), 0);
    // Gone: a second withdrawal finds nothing.
    let r = delete(&s, &mine, "pub").await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 404);

    // The next authorization to pub asks again; pub2's consent is still remembered.
    assert!(s.authorize_as("alice", "pub", USER_SCOPE).await.consent_html.is_some());
    assert!(s.authorize_as("alice", "pub2", USER_SCOPE).await.consent_html.is_none());
}

#[tokio::test]
async fn another_users_consent_cannot_be_named_or_withdrawn() {
    let s = server().await;
    let bobs = tokens_as(&s, "bob", "pub2", USER_SCOPE).await;
    let bob_acc = tokens_as(&s, "bob", "account", "openid consents").await;
    let _alices = tokens_as(&s, "alice", "pub", USER_SCOPE).await;
    let acc = tokens_as(&s, "alice", "account", "openid consents").await;
    let mine = at(&acc).to_string();

    // Alice sees her own consents only.
    let ids: Vec<String> = listed(&s, &mine).await.into_iter().map(|c| c.0).collect();
    assert_eq!(ids, ["account", "pub"]);

    // Bob's consent to pub2 (alice has none): 404, and nothing changed.
    let before = s.snapshot();
    for id in ["pub2", "nope", "pub2%00", "%2A"] {
        let r = delete(&s, &mine, id).await;
        assert_eq!(r.status(), 404, "{id}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], 404);
    }
    assert_eq!(s.snapshot(), before);
    assert_eq!(alive(&s, "pub2", &bobs).await, (200, true, 200));
    let bob_ids: Vec<String> = listed(&s, at(&bob_acc)).await.into_iter().map(|c| c.0).collect();
    assert_eq!(bob_ids, ["account", "pub2"]);
}

#[tokio::test]
async fn tokens_without_a_user_or_the_scope_are_refused() {
    let s = server().await;
    let plain = tokens_as(&s, "alice", "pub", USER_SCOPE).await;
    let before = s.snapshot();

    // No token: 401 with a bare Bearer challenge.
    let r = list(&s, None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer "));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 401);
    // Another scheme, a forged token: 401.
    let r = s
        .http
        .get(s.url("/oauth/consents"))
        .header("Authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for bad in ["nope", &format!("{}x", at(&plain))] {
        let r = delete(&s, bad, "pub").await;
        assert_eq!(r.status(), 401);
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(www.starts_with("Bearer ") && www.contains("invalid_token"), "{www}");
    }
    // A user's token without the scope: 403 insufficient_scope, naming it.
    for r in [list(&s, Some(at(&plain))).await, delete(&s, at(&plain), "pub").await] {
        assert_eq!(r.status(), 403);
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(
            www.contains("insufficient_scope") && www.contains("scope=\"consents\""),
            "{www}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], 403);
    }
    // A client's own token (client_credentials): no user, 401.
    let cc = s.admin_token("ops").await;
    let r = delete(&s, &cc, "pub").await;
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(www.contains("invalid_token"), "{www}");
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("no user"), "{body}");
    // Nothing changed (the admin client's creation aside).
    let after = s.snapshot();
    let strip = |snap: &str| {
        snap.lines()
            .filter(|l| !l.starts_with("clients:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&after), strip(&before));
}

#[tokio::test]
async fn only_an_account_client_can_ask_for_the_scope() {
    let s = Server::start(&[("AUTIONAL_REGISTRATION__ENABLED", "true"), NO_LIMITS]).await;
    // The operator's ordinary client.
    let out = s.run_cli_raw(&[
        "client",
        "create",
        "--name",
        "X",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--scope",
        "openid consents",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--scope") && err.contains("reserved for account clients"),
        "{err}"
    );
    // Dynamic registration, even with the scope opened to registrants.
    let r = s
        .http
        .post(s.url("/oauth/register"))
        .json(&serde_json::json!({"redirect_uris": ["https://app.example/cb"], "scope": "openid consents"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"].as_str().unwrap().contains("reserved"),
        "{body}"
    );
    // The configuration cannot declare it as an API scope.
    let out = common::run_raw(
        &[
            ("AUTIONAL_SCOPES__CUSTOM", "[consents]"),
            ("AUTIONAL_DATABASE_URL", &s.db_url),
        ],
        &["migrate"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved for account clients"));
    // An account client: user-facing grants only.
    let out = s.run_cli_raw(&[
        "client",
        "create",
        "--name",
        "A",
        "--account",
        "--grant-type",
        "client_credentials",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--grant-type"));
    // An ordinary client cannot request it at the authorization endpoint either.
    let (path, _, _) = Server::authorize_path("pub", "openid consents");
    let r = s.http.get(s.url(&path)).send().await.unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("error=invalid_scope"), "{location}");
}

#[tokio::test]
async fn a_dpop_bound_token_works_with_its_proof() {
    let s = server().await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "Bound account",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        "bound",
        "--account",
        "--dpop-bound",
    ]);
    let key = DpopKey::new();
    let a = s.authorize("bound", "openid consents").await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .header("DPoP", key.proof("POST", &s.url("/oauth/token")))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", a.code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "bound"),
            ("code_verifier", a.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let token = at(&t).to_string();
    let url = s.url("/oauth/consents");
    let proof = |htm: &str, htu: &str| {
        key.proof_with(
            htm,
            htu,
            Opts {
                ath_for: Some(token.clone()),
                ..Opts::default()
            },
        )
    };
    // Bearer: refused (it is bound); a proof for another URL: refused; the right one: listed.
    assert_eq!(list(&s, Some(&token)).await.status(), 401);
    let send = |p: String| {
        s.http
            .get(&url)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", p)
            .send()
    };
    let r = send(proof("GET", &s.url("/oauth/userinfo"))).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_dpop_proof"));
    let r = send(proof("GET", &url)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["id"], "bound");
    // DELETE's proof is for its own URL.
    let one = s.url("/oauth/consents/bound");
    let r = s
        .http
        .delete(&one)
        .header("Authorization", format!("DPoP {token}"))
        .header("DPoP", proof("DELETE", &one))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Its own consent withdrawn: the token itself is dead now.
    let r = send(proof("GET", &url)).await.unwrap();
    assert_eq!(r.status(), 401);
}
