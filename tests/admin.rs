//! The admin API (SPEC §8) over HTTP, on the backend the run selects: who may call it (an admin
//! client's `client_credentials` token with the right scope, nobody else; nothing changes when
//! refused), the clients it manages (list with cursor pagination and a name filter, get,
//! create through the one metadata validator, delete with its cascade), its envelope, and the
//! admin scopes no other client can obtain.

mod common;

use common::admin::{admin_token, call, client_token};
use common::Server;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CLIENTS: &str = "/admin/oauth/clients";

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_string())
        .collect()
}

/// Who may call it. Refused: no token, another scheme, a token that is not ours, a normal
/// client's token, a user's, the read scope on a write; every refusal is a 401/403 with a
/// Bearer challenge and the envelope's error body, and changes nothing.
#[tokio::test]
async fn only_an_admin_clients_token_with_the_right_scope_gets_in() {
    let s = Server::start(&[]).await;
    let write = admin_token(&s, "adm", None).await;
    let read = admin_token(&s, "adm-ro", Some("admin:read")).await;
    // A normal confidential client that may use client_credentials, with an API scope.
    let api = s.cli(&[
        "client",
        "create",
        "--name",
        "Api",
        "--client-id",
        "api",
        "--grant-type",
        "client_credentials",
        "--scope",
        "profile",
    ]);
    let api_token = client_token(&s, "api", api["client_secret"].as_str().unwrap(), None).await;
    let user_token = s.tokens("pub", "openid profile").await.0["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let expired = {
        let t = admin_token(&s, "adm-short", None).await;
        s.cli(&["client", "delete", "adm-short"]);
        t
    };
    let clients = "SELECT id FROM clients ORDER BY id";
    let before = (s.rows(clients), s.snapshot());

    // (what, method, path, token, status, error in the challenge)
    type Case<'a> = (
        &'a str,
        reqwest::Method,
        &'a str,
        Option<&'a str>,
        StatusCode,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "no token",
            reqwest::Method::GET,
            CLIENTS,
            None,
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            "garbage",
            reqwest::Method::GET,
            CLIENTS,
            Some("not-a-token"),
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
        ),
        (
            "a normal client's token",
            reqwest::Method::GET,
            CLIENTS,
            Some(&api_token),
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
        ),
        (
            "a user's token",
            reqwest::Method::GET,
            CLIENTS,
            Some(&user_token),
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
        ),
        (
            "a deleted admin client's token",
            reqwest::Method::GET,
            CLIENTS,
            Some(&expired),
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
        ),
        (
            "read scope on a delete",
            reqwest::Method::DELETE,
            "/admin/oauth/clients/api",
            Some(&read),
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
        ),
        (
            "read scope on a create",
            reqwest::Method::POST,
            CLIENTS,
            Some(&read),
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
        ),
        (
            "a normal client's token on a delete",
            reqwest::Method::DELETE,
            "/admin/oauth/clients/conf",
            Some(&api_token),
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
        ),
    ];
    for (what, method, path, token, status, error) in cases {
        let body =
            (method == reqwest::Method::POST).then(|| json!({"name": "X", "redirect_uris": ["https://x.example/cb"]}));
        let (got, body, headers) = call(&s, method, path, token, body).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["code"], status.as_u16(), "{what}: envelope {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        let challenge = headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(challenge.starts_with("Bearer "), "{what}: challenge {challenge:?}");
        if let Some(e) = error {
            assert!(challenge.contains(&format!("error=\"{e}\"")), "{what}: {challenge}");
        }
    }
    assert_eq!(
        (s.rows(clients), s.snapshot()),
        before,
        "no refused call changed anything"
    );

    // The read scope reads; the write scope reads and writes.
    assert_eq!(
        call(&s, reqwest::Method::GET, CLIENTS, Some(&read), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s, reqwest::Method::GET, CLIENTS, Some(&write), None).await.0,
        StatusCode::OK
    );
    let (st, _, _) = call(
        &s,
        reqwest::Method::DELETE,
        "/admin/oauth/clients/api",
        Some(&write),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // The public listener does not serve it.
    let r = s.http.get(s.url(CLIENTS)).bearer_auth(&write).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// The admin scopes belong to admin clients only: registration refuses them, an operator's
/// ordinary client cannot be given them, a client cannot ask for more than it has.
#[tokio::test]
async fn nobody_else_can_obtain_the_admin_scopes() {
    let s = Server::start(&[
        ("AUTIONAL_REGISTRATION__ENABLED", "true"),
        (
            "AUTIONAL_REGISTRATION__ALLOWED_GRANT_TYPES",
            "[authorization_code, refresh_token, client_credentials]",
        ),
    ])
    .await;
    let r = s
        .http
        .post(s.url("/oauth/register"))
        .json(&json!({"redirect_uris": ["https://rp.example/cb"], "grant_types": ["client_credentials"], "scope": "admin:write"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata", "{body}");
    let out = s.run_cli_raw(&[
        "client",
        "create",
        "--name",
        "X",
        "--grant-type",
        "client_credentials",
        "--scope",
        "admin:read",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved for admin clients"));
    // A read-only admin client cannot get the write scope.
    let secret = s.cli(&[
        "client",
        "create",
        "--name",
        "RO",
        "--admin",
        "--scope",
        "admin:read",
        "--client-id",
        "ro",
    ])["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("ro", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "admin:write")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    // An admin client has no user-facing grant.
    let out = s.run_cli_raw(&[
        "client",
        "create",
        "--name",
        "X",
        "--admin",
        "--grant-type",
        "authorization_code",
        "--redirect-uri",
        "https://x.example/cb",
    ]);
    assert!(!out.status.success());
}

/// Clients: list (by id, name filter, cursor pages, tampered cursor refused), get, create
/// (validated by the one validator, the field named; the secret shown once), delete (its grants
/// revoked), unknown ids 404.
/// An admin client cannot delete itself (409, nothing changes, its token keeps working);
/// another admin client can.
#[tokio::test]
async fn an_admin_client_cannot_delete_itself() {
    let s = Server::start(&[]).await;
    let own = admin_token(&s, "ops", None).await;
    let other = admin_token(&s, "ops2", None).await;
    let before = s.snapshot();
    let (st, body, _) = call(
        &s,
        reqwest::Method::DELETE,
        "/admin/oauth/clients/ops",
        Some(&own),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("making this request"),
        "{body}"
    );
    assert_eq!(s.snapshot(), before, "nothing changed");
    let (st, _, _) = call(&s, reqwest::Method::GET, "/admin/oauth/clients/ops", Some(&own), None).await;
    assert_eq!(st, StatusCode::OK, "its token still works");
    let (st, _, _) = call(
        &s,
        reqwest::Method::DELETE,
        "/admin/oauth/clients/ops",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "another admin client may delete it");
    let (st, _, _) = call(&s, reqwest::Method::GET, "/admin/oauth/users", Some(&own), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "its token ended with it");
}

#[tokio::test]
async fn clients_are_listed_read_created_and_deleted() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let get = |path: String| {
        let (s, t) = (&s, &t);
        async move { call(s, reqwest::Method::GET, &path, Some(t), None).await }
    };
    // The standard fixtures plus the admin client.
    let (st, all, _) = get(format!("{CLIENTS}?page_size=100")).await;
    assert_eq!(st, StatusCode::OK, "{all}");
    assert_eq!(all["code"], 200);
    let everyone = ids(&all);
    assert!(everyone.contains(&"conf".to_string()) && everyone.contains(&"adm".to_string()));
    assert_eq!(all["total"], everyone.len());
    let mut sorted = everyone.clone();
    sorted.sort();
    assert_eq!(everyone, sorted, "by id");
    // Pages of 2 through the cursor give every client once, in order.
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let path = match &cursor {
            Some(c) => format!("{CLIENTS}?page_size=2&cursor={c}"),
            None => format!("{CLIENTS}?page_size=2"),
        };
        let (st, page, _) = get(path).await;
        assert_eq!(st, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, everyone);
    // A cursor that was changed (another id, a bit flipped in its tag) is refused.
    let (_, first, _) = get(format!("{CLIENTS}?page_size=1")).await;
    let good = first["pagination"]["next_cursor"].as_str().unwrap().to_string();
    let (id_part, tag) = good.split_once('.').unwrap();
    let other_id = format!("{}.{tag}", base64url("zzz"));
    let mut flipped = tag.to_string();
    flipped.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
    for bad in [
        other_id,
        format!("{id_part}.{flipped}"),
        "garbage".to_string(),
        String::new(),
    ] {
        let (st, body, _) = get(format!("{CLIENTS}?cursor={bad}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "cursor {bad:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains("cursor"), "{body}");
    }
    for (q, word) in [
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("pagesize=5", "unknown query parameter"),
        ("status=gone", "status"),
    ] {
        let (st, body, _) = get(format!("{CLIENTS}?{q}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(body["message"].as_str().unwrap().contains(word), "{q}: {body}");
    }
    // The name filter (case-insensitive substring).
    let (_, conf, _) = get(format!("{CLIENTS}?name=CONFID")).await;
    assert_eq!(ids(&conf), ["conf"]);

    // Get one; an unknown id is 404.
    let (st, one, _) = get(format!("{CLIENTS}/conf")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["data"]["client_id"], "conf");
    assert_eq!(one["data"]["is_confidential"], true);
    assert!(one["data"].get("client_secret").is_none() && !one.to_string().contains(&s.conf_secret));
    let (st, body, _) = get(format!("{CLIENTS}/nobody")).await;
    assert_eq!((st, body["code"].as_u64()), (StatusCode::NOT_FOUND, Some(404)));

    // Create: invalid metadata names the field and stores nothing.
    let create = |body: Value| {
        let (s, t) = (&s, &t);
        async move { call(s, reqwest::Method::POST, CLIENTS, Some(t), Some(body)).await }
    };
    let count = everyone.len();
    for (body, field) in [
        (
            json!({"name": "A", "redirect_uris": ["http://evil.example/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "scopes": ["openid", "nope"]}),
            "scopes",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "scopes": ["admin:write"]}),
            "scopes",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]}),
            "grant_types",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "is_confidential": false, "client_auth_methods": ["client_secret_basic"]}),
            "client_auth_methods",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "jwks": "{not json"}),
            "jwks",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "logo_url": "http://a.example/l.png"}),
            "logo_url",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "fapi_profile": "fapi2"}),
            "fapi_profile",
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/cb"], "colour": "red"}),
            "colour",
        ),
        (json!({"redirect_uris": ["https://a.example/cb"]}), "name"),
    ] {
        let (st, resp, _) = create(body.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert!(
            resp["message"].as_str().unwrap().contains(field),
            "{body}: names {field}: {resp}"
        );
    }
    let (_, after, _) = get(format!("{CLIENTS}?page_size=100")).await;
    assert_eq!(ids(&after).len(), count, "nothing stored");
    let (st, made, _) = create(
        json!({"name": "Shop", "redirect_uris": ["https://shop.example/cb"], "scopes": ["openid", "offline_access"]}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let id = made["data"]["client_id"].as_str().unwrap().to_string();
    let secret = made["data"]["client_secret"].as_str().unwrap().to_string();
    assert_eq!(made["data"]["scopes"], json!(["offline_access", "openid"]));
    // The secret works at the token endpoint, and is not shown again.
    let r = s
        .http
        .post(s.url("/oauth/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, again, _) = get(format!("{CLIENTS}/{id}")).await;
    assert!(!again.to_string().contains(&secret));

    // Delete: its grants stop working; a second delete and an unknown id are 404.
    let (tokens, _) = s.tokens("pub", "openid offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let (st, _, _) = call(&s, reqwest::Method::DELETE, "/admin/oauth/clients/pub", Some(&t), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let r = s.refresh("pub", rt).await;
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(s.introspect(rt).await["active"], false);
    for path in ["/admin/oauth/clients/pub", "/admin/oauth/clients/nobody"] {
        let (st, body, _) = call(&s, reqwest::Method::DELETE, path, Some(&t), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (st, body, _) = get("/admin/oauth/nothing".into()).await;
    assert_eq!((st, body["code"].as_u64()), (StatusCode::NOT_FOUND, Some(404)));
}

fn base64url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// Grants: a client's and a user's live grants are listed; one grant, all of a client's and all
/// of a user's are revoked, and a revoked grant stops working at once at `/oauth/refresh`,
/// introspection and userinfo; a `grace_period` beyond 30 days or not a number is refused and
/// changes nothing; unknown ids are 404; the read scope cannot revoke.
#[tokio::test]
async fn grants_are_listed_and_revoked_and_stop_working_at_once() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let read = admin_token(&s, "adm-ro", Some("admin:read")).await;
    let grant = |client: &'static str| {
        let s = &s;
        async move {
            let (tokens, _) = s.tokens(client, "openid offline_access").await;
            let at = tokens["access_token"].as_str().unwrap().to_string();
            let rt = tokens["refresh_token"].as_str().unwrap().to_string();
            (common::claims(&at)["sub"].as_str().unwrap().to_string(), at, rt)
        }
    };
    let (alice, at1, rt1) = grant("pub").await;
    let (_, at2, rt2) = grant("pub").await;
    let (_, at3, rt3) = grant("pub2").await;
    let works = |at: String, rt: String| {
        let s = &s;
        async move {
            let userinfo = s.userinfo(&at).await.status() == StatusCode::OK;
            let introspected = s.introspect(&rt).await["active"] == true;
            (userinfo, introspected)
        }
    };
    let listed = |path: String, token: String| {
        let s = &s;
        async move {
            let (st, body, _) = call(s, reqwest::Method::GET, &path, Some(&token), None).await;
            assert_eq!(st, StatusCode::OK, "{path}: {body}");
            body["items"].as_array().unwrap().clone()
        }
    };
    let client_grants = listed("/admin/oauth/clients/pub/tokens".into(), read.clone()).await;
    assert_eq!(client_grants.len(), 2);
    assert!(client_grants
        .iter()
        .all(|g| g["user_id"] == alice.as_str() && g["token_type"] == "refresh_token"));
    assert_eq!(
        listed(format!("/admin/oauth/tokens/user/{alice}"), read.clone())
            .await
            .len(),
        3
    );

    // Refused: unknown ids, the read scope, a delayed revocation; nothing changes.
    let before = s.snapshot();
    for (path, token, status) in [
        ("/admin/oauth/clients/nobody/tokens", &t, StatusCode::NOT_FOUND),
        ("/admin/oauth/tokens/user/nobody", &t, StatusCode::NOT_FOUND),
        ("/admin/oauth/tokens/no-such-grant", &t, StatusCode::NOT_FOUND),
        ("/admin/oauth/clients/pub/tokens", &read, StatusCode::FORBIDDEN),
        (
            "/admin/oauth/clients/pub/tokens?grace_period=2592001",
            &t,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/admin/oauth/clients/pub/tokens?grace_period=soon",
            &t,
            StatusCode::BAD_REQUEST,
        ),
        ("/admin/oauth/clients/pub/tokens?grace=0", &t, StatusCode::BAD_REQUEST),
    ] {
        let (st, body, _) = call(&s, reqwest::Method::DELETE, path, Some(token), None).await;
        assert_eq!(st, status, "{path}: {body}");
    }
    assert_eq!(s.snapshot(), before, "refusals change nothing");

    // One grant.
    let g1 = client_grants
        .iter()
        .find(|g| common::token_family(&rt1).0 == g["grant_id"].as_str().unwrap())
        .expect("the first grant is listed")["grant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _, _) = call(
        &s,
        reqwest::Method::DELETE,
        &format!("/admin/oauth/tokens/{g1}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(works(at1.clone(), rt1.clone()).await, (false, false), "revoked at once");
    assert!(s.refresh("pub", &rt1).await.status().is_client_error());
    assert_eq!(works(at2.clone(), rt2.clone()).await, (true, true), "the others work");
    let (st, _, _) = call(
        &s,
        reqwest::Method::DELETE,
        &format!("/admin/oauth/tokens/{g1}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "already revoked");

    // All of a client's: pub's second grant ends, pub2's does not.
    let (st, body, _) = call(
        &s,
        reqwest::Method::DELETE,
        "/admin/oauth/clients/pub/tokens",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revoked_refresh_tokens"], 1);
    assert_eq!(works(at2, rt2.clone()).await, (false, false));
    assert!(s.refresh("pub", &rt2).await.status().is_client_error());
    assert_eq!(works(at3.clone(), rt3.clone()).await, (true, true));
    assert_eq!(s.audit_count("admin.grants_revoked"), 1);

    // All of a user's.
    let (st, body, _) = call(
        &s,
        reqwest::Method::DELETE,
        &format!("/admin/oauth/tokens/user/{alice}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revoked_refresh_tokens"], 1);
    assert_eq!(works(at3, rt3.clone()).await, (false, false));
    assert!(s.refresh("pub2", &rt3).await.status().is_client_error());
    assert!(listed(format!("/admin/oauth/tokens/user/{alice}"), read)
        .await
        .is_empty());
}

/// Revoking all of a user's grants while 32 refresh chains of that user run concurrently: once
/// the revocation has answered, no chain can refresh any more, whatever it had done meanwhile.
#[tokio::test]
async fn revoking_a_users_grants_under_32_racing_chains_leaves_none_alive() {
    // 32 sign-ins in a row from one address would meet the sign-in rate limit.
    let s = Server::start(&[("AUTIONAL_RATE_LIMIT__ENABLED", "false")]).await;
    let t = admin_token(&s, "adm", None).await;
    let mut chains = Vec::new();
    let mut alice = String::new();
    for _ in 0..32 {
        let (tokens, _) = s.tokens("pub", "openid offline_access").await;
        alice = common::claims(tokens["access_token"].as_str().unwrap())["sub"]
            .as_str()
            .unwrap()
            .to_string();
        chains.push(tokens["refresh_token"].as_str().unwrap().to_string());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refreshed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s = std::sync::Arc::new(s);
    let runners: Vec<_> = chains
        .into_iter()
        .map(|mut rt| {
            let (s, stop, refreshed) = (s.clone(), stop.clone(), refreshed.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let r = s.refresh("pub", &rt).await;
                    if r.status() != StatusCode::OK {
                        break;
                    }
                    refreshed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    rt = r.json::<Value>().await.unwrap()["refresh_token"]
                        .as_str()
                        .unwrap()
                        .to_string();
                }
                rt
            })
        })
        .collect();
    // Let every chain get going, then revoke in the middle of the traffic.
    while refreshed.load(std::sync::atomic::Ordering::SeqCst) < 64 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (st, body, _) = call(
        &s,
        reqwest::Method::DELETE,
        &format!("/admin/oauth/tokens/user/{alice}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let during = refreshed.load(std::sync::atomic::Ordering::SeqCst);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut alive = 0;
    for r in runners {
        let rt = r.await.unwrap();
        if s.refresh("pub", &rt).await.status() == StatusCode::OK {
            alive += 1;
        }
    }
    assert!(during >= 64, "the chains were running when the revocation came");
    assert_eq!(alive, 0, "no chain refreshes after the revocation answered");
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM families WHERE revoked_at_ms IS NULL"),
        0
    );
}

/// Users: listed (no password hash anywhere), created with the CLI's account rules (short
/// password 400, a taken name 409, unknown fields 400), read, given a new password (their grants
/// end), deleted (their grants end); unknown ids 404.
#[tokio::test]
async fn users_are_listed_created_given_a_password_and_deleted() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let go = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (s, t) = (&s, &t);
        async move { call(s, method, &path, Some(t), body).await }
    };
    let (st, list, _) = go(reqwest::Method::GET, "/admin/oauth/users".into(), None).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["username"], "alice");
    assert!(!list.to_string().contains("argon2"), "no password hash: {list}");

    let users = "/admin/oauth/users".to_string();
    for (body, status, word) in [
        (
            json!({"username": "bob", "password": "short"}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            json!({"username": "", "password": "long enough pw"}),
            StatusCode::BAD_REQUEST,
            "username",
        ),
        (
            json!({"username": "alice", "password": "long enough pw"}),
            StatusCode::CONFLICT,
            "alice",
        ),
        (
            json!({"username": "bob", "password": "long enough pw", "role": "root"}),
            StatusCode::BAD_REQUEST,
            "role",
        ),
    ] {
        let (st, resp, _) = go(reqwest::Method::POST, users.clone(), Some(body.clone())).await;
        assert_eq!(st, status, "{body}: {resp}");
        assert!(resp["message"].as_str().unwrap().contains(word), "{body}: {resp}");
    }
    let (st, bob, _) = go(
        reqwest::Method::POST,
        users.clone(),
        Some(json!({"username": "bob", "password": "long enough pw", "email": "bob@example.com"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{bob}");
    let bob_id = bob["data"]["id"].as_str().unwrap().to_string();
    let (st, one, _) = go(reqwest::Method::GET, format!("{users}/{bob_id}"), None).await;
    assert_eq!(
        (st, one["data"]["email"].as_str()),
        (StatusCode::OK, Some("bob@example.com"))
    );
    let (_, found, _) = go(reqwest::Method::GET, format!("{users}?username=BO"), None).await;
    assert_eq!(found["total"], 1);

    // A new password for alice ends her grants.
    let (tokens, _) = s.tokens("pub", "openid offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let alice = common::claims(tokens["access_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, resp, _) = go(
        reqwest::Method::PUT,
        format!("{users}/{alice}/password"),
        Some(json!({"password": "short"})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{resp}");
    assert_eq!(s.introspect(&rt).await["active"], true, "a refused change ends nothing");
    let (st, _, _) = go(
        reqwest::Method::PUT,
        format!("{users}/{alice}/password"),
        Some(json!({"password": "a new long password"})),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(s.introspect(&rt).await["active"], false);
    assert!(s.refresh("pub", &rt).await.status().is_client_error());

    // Delete, then 404s.
    let (st, _, _) = go(reqwest::Method::DELETE, format!("{users}/{bob_id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    for (method, path, body) in [
        (reqwest::Method::GET, format!("{users}/{bob_id}"), None),
        (reqwest::Method::DELETE, format!("{users}/{bob_id}"), None),
        (
            reqwest::Method::PUT,
            format!("{users}/nobody/password"),
            Some(json!({"password": "long enough pw"})),
        ),
    ] {
        let (st, resp, _) = go(method, path.clone(), body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {resp}");
    }
}

/// Audit: reuse detections and admin revocations can be queried (kind, client, user, time
/// range), newest first, page by page through a cursor (a changed one is refused), and as a
/// client's audit log in the reference's shape.
#[tokio::test]
async fn audit_events_are_queried_by_kind_client_user_and_time() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let get = |path: String| {
        let (s, t) = (&s, &t);
        async move {
            let (st, body, _) = call(s, reqwest::Method::GET, &path, Some(t), None).await;
            (st, body)
        }
    };
    let start = common::claims(&t)["iat"].as_i64().unwrap();
    // A reuse detection on pub (the rotated token presented again), and an admin revocation.
    let (tokens, _) = s.tokens("pub", "openid offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let alice = common::claims(tokens["access_token"].as_str().unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.refresh("pub", rt).await.status(), StatusCode::OK);
    assert_eq!(s.refresh("pub", rt).await.status(), StatusCode::UNAUTHORIZED);
    let (st, _, _) = call(
        &s,
        reqwest::Method::DELETE,
        "/admin/oauth/clients/pub2/tokens",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);

    let (st, all) = get("/admin/oauth/audit-events".into()).await;
    assert_eq!(st, StatusCode::OK, "{all}");
    let kinds: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["admin.grants_revoked", "refresh.reuse_detected"],
        "newest first"
    );
    let (_, reuse) = get("/admin/oauth/audit-events?kind=refresh.reuse_detected".into()).await;
    let e = &reuse["items"][0];
    assert_eq!(
        (e["client_id"].as_str(), e["user_id"].as_str()),
        (Some("pub"), Some(alice.as_str()))
    );
    assert_eq!(e["detail"]["presented_generation"], 0);
    assert_eq!(reuse["items"].as_array().unwrap().len(), 1);
    for (query, n) in [
        ("client_id=pub2".to_string(), 1),
        (format!("user_id={alice}"), 1),
        (format!("since={}", start - 5), 2),
        (format!("since={}", start + 3600), 0),
        (format!("until={}", start - 5), 0),
        ("kind=login.failed".to_string(), 0),
    ] {
        let (st, page) = get(format!("/admin/oauth/audit-events?{query}")).await;
        assert_eq!(st, StatusCode::OK, "{query}: {page}");
        assert_eq!(page["items"].as_array().unwrap().len(), n, "{query}: {page}");
    }
    // Pages of one, through the cursor.
    let (_, first) = get("/admin/oauth/audit-events?page_size=1".into()).await;
    assert_eq!(first["items"][0]["kind"], "admin.grants_revoked");
    let cursor = first["pagination"]["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = get(format!("/admin/oauth/audit-events?page_size=1&cursor={cursor}")).await;
    assert_eq!(second["items"][0]["kind"], "refresh.reuse_detected");
    assert!(second["pagination"]["next_cursor"].is_null(), "{second}");
    for bad in [
        format!("cursor={}x", cursor),
        "since=yesterday".to_string(),
        "until=-5".to_string(),
        "page_size=500".to_string(),
        "type=reuse".to_string(),
    ] {
        let (st, body) = get(format!("/admin/oauth/audit-events?{bad}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // The reference's per-client audit log.
    let (st, log) = get("/admin/oauth/clients/pub/audit-logs".into()).await;
    assert_eq!(st, StatusCode::OK, "{log}");
    assert_eq!(log["items"][0]["action"], "refresh.reuse_detected");
    assert_eq!(log["items"][0]["level"], "warning");
    assert_eq!(
        get("/admin/oauth/clients/nobody/audit-logs".into()).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Client update (PUT): partial, validated as a whole by the one validator; a refused update
/// names the field and changes nothing; the authentication method and confidentiality cannot
/// change; an admin client stays an admin client.
#[tokio::test]
async fn clients_are_updated_partially_through_the_one_validator() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let put = |path: &'static str, body: Value| {
        let (s, t) = (&s, &t);
        async move { call(s, reqwest::Method::PUT, path, Some(t), Some(body)).await }
    };
    let conf = "/admin/oauth/clients/conf";
    let before = call(&s, reqwest::Method::GET, conf, Some(&t), None).await.1;
    let snapshot = s.snapshot();
    for (body, word) in [
        (json!({"redirect_uris": ["http://evil.example/cb"]}), "redirect_uris"),
        (json!({"scopes": ["admin:read"]}), "scopes"),
        (json!({"grant_types": ["password"]}), "grant_types"),
        (json!({"client_auth_methods": ["client_secret_post"]}), "cannot change"),
        (json!({"is_confidential": false}), "is_confidential"),
        (json!({"status": "disabled"}), "status"),
        (json!({"website": "http://a.example"}), "website"),
        (json!({"fapi_profile": "fapi2"}), "fapi_profile"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (st, resp, _) = put(conf, body.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert!(resp["message"].as_str().unwrap().contains(word), "{body}: {resp}");
    }
    assert_eq!(s.snapshot(), snapshot, "refused updates change nothing");
    assert_eq!(
        call(&s, reqwest::Method::GET, conf, Some(&t), None).await.1["data"],
        before["data"]
    );

    let (st, after, _) = put(conf, json!({"name": "Renamed", "scopes": ["openid", "profile"]})).await;
    assert_eq!(st, StatusCode::OK, "{after}");
    assert_eq!(after["data"]["name"], "Renamed");
    assert_eq!(after["data"]["scopes"], json!(["openid", "profile"]));
    assert_eq!(
        after["data"]["redirect_uris"], before["data"]["redirect_uris"],
        "the rest kept"
    );
    let (_, read, _) = call(&s, reqwest::Method::GET, conf, Some(&t), None).await;
    assert_eq!(read["data"], after["data"]);
    // The secret still works.
    let r = s
        .http
        .post(s.url("/oauth/introspect"))
        .basic_auth("conf", Some(&s.conf_secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // An admin client keeps the admin profile.
    let (st, resp, _) = put("/admin/oauth/clients/adm", json!({"scopes": ["openid"]})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{resp}");
    let (st, resp, _) = put("/admin/oauth/clients/adm", json!({"scopes": ["admin:read"]})).await;
    assert_eq!(st, StatusCode::OK, "{resp}");
    let (st, _, _) = put("/admin/oauth/clients/nobody", json!({"name": "x"})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// Device authorizations: listed (by status and client; the device code itself is never
/// shown), deleted by user code (the device's next poll is refused); unknown 404.
#[tokio::test]
async fn device_authorizations_are_listed_and_deleted() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    s.cli(&[
        "client",
        "create",
        "--name",
        "TV",
        "--public",
        "--client-id",
        "tv",
        "--grant-type",
        grant,
    ]);
    let mut devices = Vec::new();
    for _ in 0..2 {
        let r = s
            .http
            .post(s.url("/oauth/device/authorize"))
            .form(&[("client_id", "tv"), ("scope", "openid")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        devices.push(r.json::<Value>().await.unwrap());
    }
    let get = |path: String| {
        let (s, t) = (&s, &t);
        async move { call(s, reqwest::Method::GET, &path, Some(t), None).await }
    };
    let (st, list, _) = get("/admin/oauth/devices?status=pending".into()).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 2);
    let text = list.to_string();
    for d in &devices {
        assert!(
            !text.contains(d["device_code"].as_str().unwrap()),
            "the device code is secret"
        );
    }
    assert_eq!(get("/admin/oauth/devices?status=approved".into()).await.1["total"], 0);
    assert_eq!(get("/admin/oauth/devices?client_id=pub".into()).await.1["total"], 0);
    assert_eq!(
        get("/admin/oauth/devices?status=lost".into()).await.0,
        StatusCode::BAD_REQUEST
    );

    let user_code = devices[0]["user_code"].as_str().unwrap();
    let path = format!("/admin/oauth/devices/{user_code}");
    let (st, _, _) = call(&s, reqwest::Method::DELETE, &path, Some(&t), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", grant),
            ("device_code", devices[0]["device_code"].as_str().unwrap()),
            ("client_id", "tv"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(get("/admin/oauth/devices".into()).await.1["total"], 1);
    let (st, _, _) = call(&s, reqwest::Method::DELETE, &path, Some(&t), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// `grace_period`: the grants keep working (refresh, introspection, userinfo) until it ends,
/// then stop everywhere; a reuse detected meanwhile still ends its family at once.
#[tokio::test]
async fn a_grace_period_lets_grants_work_until_it_ends() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let (tokens, _) = s.tokens("pub", "openid offline_access").await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let (other, signed_in) = s.tokens("pub", "openid offline_access").await;
    let other_rt = other["refresh_token"].as_str().unwrap().to_string();
    let other_at = other["access_token"].as_str().unwrap().to_string();
    let account = || async {
        let r = s
            .http
            .get(s.url("/account"))
            .header("cookie", &signed_in.cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    };
    assert!(!account().await.contains("Access ends"), "nothing scheduled yet");
    let path = "/admin/oauth/clients/pub/tokens?grace_period=3";
    let (st, body, _) = call(&s, reqwest::Method::DELETE, path, Some(&t), None).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["grace_period"], 3);
    // Meanwhile: everything works, and the chain moves on.
    let r = s.refresh("pub", &rt).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next: Value = r.json().await.unwrap();
    let new_rt = next["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(s.introspect(&new_rt).await["active"], true);
    assert_eq!(s.userinfo(&other_at).await.status(), StatusCode::OK);
    let (_, listed, _) = call(
        &s,
        reqwest::Method::GET,
        "/admin/oauth/clients/pub/tokens",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(listed["total"], 2, "still live: {listed}");
    // Both say when it ends: the admin API's list and the user's account page.
    let now = common::dpop::now();
    for g in listed["items"].as_array().unwrap() {
        let at = g["revoked_at"].as_i64().unwrap();
        assert!((now..=now + 4).contains(&at), "{g}");
    }
    let page = account().await;
    assert_eq!(page.matches("Access ends").count(), 2, "{page}");
    // A reuse during the grace period ends that family now.
    assert_eq!(s.refresh("pub", &rt).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.introspect(&new_rt).await["active"], false);
    assert_eq!(
        s.introspect(&other_rt).await["active"],
        true,
        "the other grant is still in its grace"
    );
    // After it: the other grant stops everywhere.
    tokio::time::sleep(std::time::Duration::from_millis(3300)).await;
    assert_eq!(s.introspect(&other_rt).await["active"], false);
    assert_eq!(s.userinfo(&other_at).await.status(), StatusCode::UNAUTHORIZED);
    assert!(s.refresh("pub", &other_rt).await.status().is_client_error());
    let (_, listed, _) = call(
        &s,
        reqwest::Method::GET,
        "/admin/oauth/clients/pub/tokens",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(listed["total"], 0);
}

/// `refreshes_24h` of the client `pub`.
async fn refreshes(s: &Server, t: &str) -> i64 {
    let (st, stats, _) = call(s, reqwest::Method::GET, "/admin/oauth/clients/pub/stats", Some(t), None).await;
    assert_eq!(st, StatusCode::OK, "{stats}");
    stats["data"]["refreshes_24h"].as_i64().unwrap()
}

/// Per-client stats count refreshes: at once in the process that served them, and, once a
/// process stopped (it stores its counts as it goes), from the database; a refused reuse and
/// another client's refreshes are not counted.
#[tokio::test]
async fn client_stats_count_refreshes_across_a_restart() {
    let mut s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let (b, _) = s.tokens("pub", "openid offline_access").await;
    let mut rt = b["refresh_token"].as_str().unwrap().to_string();
    let first = rt.clone();
    for _ in 0..3 {
        let r = s.refresh("pub", &rt).await;
        assert_eq!(r.status(), StatusCode::OK);
        rt = r.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
    }
    assert_eq!(
        s.refresh("pub", &first).await.status(),
        StatusCode::UNAUTHORIZED,
        "reuse"
    );
    let (other, _) = s.tokens("pub2", "openid offline_access").await;
    assert_eq!(
        s.refresh("pub2", other["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(refreshes(&s, &t).await, 3);
    // A graceful stop stores the counts; the next process reads them from the database.
    let pid = s.pid(0).to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| st.contains(") Z "))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    s.restart(&[]).await;
    let t = admin_token(&s, "adm2", None).await;
    assert_eq!(refreshes(&s, &t).await, 3);
    assert_eq!(
        s.scalar_i64("SELECT CAST(SUM(count) AS BIGINT) FROM refresh_counts WHERE client_id = 'pub'"),
        3
    );
}

/// Per-client stats: live grants, the last request, grants used and reuse detections over 24 h.
#[tokio::test]
async fn client_stats_count_live_grants_and_reuse() {
    let s = Server::start(&[]).await;
    let t = admin_token(&s, "adm", None).await;
    let (a, _) = s.tokens("pub", "openid offline_access").await;
    let (b, _) = s.tokens("pub", "openid offline_access").await;
    let rt = b["refresh_token"].as_str().unwrap();
    assert_eq!(s.refresh("pub", rt).await.status(), StatusCode::OK);
    assert_eq!(
        s.refresh("pub", rt).await.status(),
        StatusCode::UNAUTHORIZED,
        "reuse: b is revoked"
    );
    let (st, stats, _) = call(
        &s,
        reqwest::Method::GET,
        "/admin/oauth/clients/pub/stats",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{stats}");
    let d = &stats["data"];
    assert_eq!(
        (d["active_refresh_tokens"].as_u64(), d["reuse_detections_24h"].as_u64()),
        (Some(1), Some(1)),
        "{d}"
    );
    assert_eq!(d["grants_used_24h"], 1);
    assert!(d["last_request_at"].as_i64().is_some());
    assert_eq!(s.introspect(a["refresh_token"].as_str().unwrap()).await["active"], true);
    let (st, _, _) = call(
        &s,
        reqwest::Method::GET,
        "/admin/oauth/clients/nobody/stats",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// A client's grace rule over the admin API: `reuse_grace_seconds` and `reuse_grace_count` set
/// on create and update within the configured settings' limits (400 naming the field and the
/// limit otherwise, nothing changed), shown in the item (null: the configured value), reset by
/// null; a client made with grace 0 detects the reuse of its previous token at once although
/// the configured grace is 30 s.
#[tokio::test]
async fn a_clients_grace_rule_is_set_within_the_configured_limits() {
    let s = Server::start(&[
        ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "30"),
        ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "2"),
    ])
    .await;
    let t = admin_token(&s, "adm", None).await;
    let new = |extra: Value| {
        let mut body = json!({"name": "Strict", "redirect_uris": [common::REDIRECT], "is_confidential": false});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let snapshot = s.snapshot();
    for (extra, message) in [
        (
            json!({"reuse_grace_seconds": 61}),
            "reuse_grace_seconds: 61 is above the maximum of 60",
        ),
        (
            json!({"reuse_grace_seconds": -1}),
            "reuse_grace_seconds: -1 is below the minimum of 0",
        ),
        (
            json!({"reuse_grace_count": 11}),
            "reuse_grace_count: 11 is above the maximum of 10",
        ),
        (json!({"reuse_grace_count": "2"}), "reuse_grace_count: invalid type"),
    ] {
        let (st, resp, _) = call(&s, reqwest::Method::POST, CLIENTS, Some(&t), Some(new(extra.clone()))).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{extra}: {resp}");
        let got = resp["message"].as_str().unwrap();
        assert!(got.contains(message), "{extra}: {got}");
    }
    assert_eq!(s.snapshot(), snapshot, "refused creations store nothing");

    let (st, made, _) = call(
        &s,
        reqwest::Method::POST,
        CLIENTS,
        Some(&t),
        Some(new(json!({"reuse_grace_seconds": 0}))),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    assert_eq!(
        (&made["data"]["reuse_grace_seconds"], &made["data"]["reuse_grace_count"]),
        (&json!(0), &Value::Null)
    );
    let id = made["data"]["client_id"].as_str().unwrap().to_string();
    let path = format!("{CLIENTS}/{id}");

    // Grace 0: the predecessor presented at once is reuse; the family ends.
    let (tokens, _) = s.tokens(&id, "openid offline_access").await;
    let rt0 = tokens["refresh_token"].as_str().unwrap();
    let r = s.refresh(&id, rt0).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rt1 = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.refresh(&id, rt0).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.refresh(&id, &rt1).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.audit_count("refresh.reuse_detected"), 1);

    // Update: refused out of range (nothing changes), set, then back to the configured value.
    let snapshot = s.snapshot();
    let (st, resp, _) = call(
        &s,
        reqwest::Method::PUT,
        &path,
        Some(&t),
        Some(json!({"name": "Renamed", "reuse_grace_count": 100})),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{resp}");
    assert_eq!(resp["message"], "reuse_grace_count: 100 is above the maximum of 10");
    assert_eq!(s.snapshot(), snapshot, "a refused update changes nothing");
    let (st, resp, _) = call(
        &s,
        reqwest::Method::PUT,
        &path,
        Some(&t),
        Some(json!({"reuse_grace_count": 5})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{resp}");
    assert_eq!(
        (&resp["data"]["reuse_grace_seconds"], &resp["data"]["reuse_grace_count"]),
        (&json!(0), &json!(5)),
        "an update changes only what it names"
    );
    let (st, resp, _) = call(
        &s,
        reqwest::Method::PUT,
        &path,
        Some(&t),
        Some(json!({"reuse_grace_seconds": null})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{resp}");
    let (_, read, _) = call(&s, reqwest::Method::GET, &path, Some(&t), None).await;
    assert_eq!(
        (&read["data"]["reuse_grace_seconds"], &read["data"]["reuse_grace_count"]),
        (&Value::Null, &json!(5))
    );
    assert_eq!(
        s.rows(&format!(
            "SELECT CAST(reuse_grace_seconds AS TEXT), CAST(reuse_grace_count AS TEXT) FROM clients WHERE id = '{id}'"
        )),
        vec![vec![None, Some("5".into())]]
    );
}
