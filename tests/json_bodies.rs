//! Wire compatibility with the reference service (SPEC §8, issue 13): pushed authorization
//! requests, device authorization and revocation take a JSON object as well as a form, with
//! the same rules (one value per parameter, strings, structured `authorization_details`);
//! introspection stays form-only (RFC 7662). Bad JSON bodies are in `tests/bad_requests.rs`.

mod common;

use common::{enc, Server};
use serde_json::{json, Map, Value};

const SCOPE: &str = "openid offline_access";

#[tokio::test]
async fn par_device_authorization_and_revocation_take_json() {
    let s = Server::start(&[]).await;

    // PAR with a JSON object: the request_uri it returns runs the whole flow.
    let (pairs, verifier, nonce) = Server::authorization_params("pub", SCOPE, &[]);
    let body: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let r = s
        .http
        .post(s.url("/oauth/pushed-authorization"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let a = s
        .walk(
            &format!("/oauth/authorize?client_id=pub&request_uri={}", enc(&uri)),
            verifier,
            nonce,
        )
        .await;
    let r = s.exchange("pub", &a.code, &a.verifier).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();

    // Device authorization with a JSON object.
    s.cli(&[
        "client",
        "create",
        "--name",
        "TV",
        "--public",
        "--client-id",
        "tv",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]);
    let r = s
        .http
        .post(s.url("/oauth/device/authorize"))
        .json(&json!({"client_id": "tv", "scope": "openid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert!(d["device_code"].is_string() && d["user_code"].is_string(), "{d}");

    // Revocation with a JSON object: the token stops working.
    assert_eq!(s.introspect(&rt).await["active"], true);
    let r = s
        .http
        .post(s.url("/oauth/revoke"))
        .json(&json!({"token": rt, "client_id": "pub"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.introspect(&rt).await["active"], false);
    assert!(s.refresh("pub", &rt).await.status().is_client_error());

    // Introspection stays form-only.
    let r = s
        .http
        .post(s.url("/oauth/introspect"))
        .basic_auth("conf", Some(&s.conf_secret))
        .json(&json!({"token": rt}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// `GET /oauth/client/{client_id}`: the reference's `PublicClientInfo` in its envelope, nothing
/// secret in it, 404 for an unknown client, and charged to the caller's address (429 with
/// `Retry-After` past the budget).
#[tokio::test]
async fn public_client_information_for_consent_screens() {
    let s = Server::start(&[
        ("AUTIONAL_RATE_LIMIT__ADDRESS_PER_SECOND", "1"),
        ("AUTIONAL_RATE_LIMIT__ADDRESS_BURST", "5"),
    ])
    .await;
    let r = s.http.get(s.url("/oauth/client/conf")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 200);
    assert_eq!(body["data"]["client_name"], "Confidential");
    assert!(body["data"]["scopes"].as_array().unwrap().contains(&json!("openid")));
    let text = body.to_string();
    assert!(!text.contains("redirect") && !text.contains(&s.conf_secret), "{text}");
    let r = s.http.get(s.url("/oauth/client/nobody")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 404);
    let mut limited = None;
    for _ in 0..10 {
        let r = s.http.get(s.url("/oauth/client/conf")).send().await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the address budget runs out");
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 429);
}
