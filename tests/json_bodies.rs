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
