//! Rich Authorization Requests (RFC 9396, SPEC §4 rule 7) and Pushed Authorization Requests
//! (RFC 9126): details shown on consent, returned in tokens, narrowed on refresh; `request_uri`
//! single use and expiry; clients that require PAR; PAR with DPoP binding the code.

mod common;

use common::dpop::DpopKey;
use common::{claims, Server, REDIRECT};
use serde_json::{json, Value};

const SCOPE: &str = "openid offline_access";

fn granted() -> Value {
    json!([{
        "type": "account_information",
        "actions": ["list_accounts", "read_balances"],
        "locations": ["https://example.com/accounts"],
        "data_types": ["balances"],
        "identifier": "account-12345"
    }])
}

async fn refresh_with(s: &Server, rt: &str, details: Option<Value>) -> reqwest::Response {
    let mut body = json!({"refresh_token": rt, "client_id": "pub"});
    if let Some(d) = details {
        body["authorization_details"] = d;
    }
    s.refresh_json(body).await
}

#[tokio::test]
async fn rule7_rar_details_on_consent_in_tokens_and_narrowed_on_refresh() {
    let s = Server::start(&[]).await;
    let a = s
        .authorize_with("pub", SCOPE, &[("authorization_details", &granted().to_string())])
        .await;
    let html = a.consent_html.clone().expect("details are always asked");
    assert!(
        html.contains("account information: list accounts, read balances of balances for account-12345 at https://example.com/accounts"),
        "consent shows the details in plain words"
    );
    let r = s.exchange("pub", &a.code, &a.verifier).await;
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["authorization_details"], granted());
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["authorization_details"],
        granted()
    );
    // Narrower: only read_balances; left-out fields take the granted values.
    let r = refresh_with(
        &s,
        t["refresh_token"].as_str().unwrap(),
        Some(json!([{"type": "account_information", "actions": ["read_balances"]}])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let n: Value = r.json().await.unwrap();
    let expected = json!([{
        "type": "account_information", "actions": ["read_balances"], "locations": ["https://example.com/accounts"],
        "data_types": ["balances"], "identifier": "account-12345"
    }]);
    assert_eq!(n["authorization_details"], expected);
    assert_eq!(
        claims(n["access_token"].as_str().unwrap())["authorization_details"],
        expected
    );
    // The new refresh token keeps the grant's full set.
    let rt = n["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(s.introspect(&rt).await["authorization_details"], granted());
    // Refused: wider actions, another type, another identifier, another location — nothing rotates.
    for wider in [
        json!([{"type": "account_information", "actions": ["transfer"]}]),
        json!([{"type": "payment_initiation"}]),
        json!([{"type": "account_information", "identifier": "account-999"}]),
        json!([{"type": "account_information", "locations": ["https://evil.example"]}]),
    ] {
        let before = s.snapshot();
        let r = refresh_with(&s, &rt, Some(wider.clone())).await;
        assert_eq!(r.status(), 400, "{wider}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "invalid_authorization_details"
        );
        assert_eq!(before, s.snapshot(), "{wider}: nothing changed");
    }
    // Without details: the grant's full set.
    let r = refresh_with(&s, &rt, None).await;
    assert_eq!(r.json::<Value>().await.unwrap()["authorization_details"], granted());
}

#[tokio::test]
async fn par_request_uri_is_single_use_and_expires() {
    let s = Server::start(&[("AUTIONAL_PAR__TTL", "2s")]).await;
    let (a, path) = s.authorize_par("pub", SCOPE, &[]).await;
    assert_eq!(s.exchange("pub", &a.code, &a.verifier).await.status(), 200);
    // The same request_uri again, by the same signed-in browser: an error page, no redirect.
    let r = s
        .http
        .get(s.url(&path))
        .header("cookie", &a.cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("invalid_request_uri"));
    // Expired: pushed, not used within par.ttl.
    let (pairs, _, _) = Server::authorization_params("pub", SCOPE, &[]);
    let r = s
        .http
        .post(s.url("/oauth/pushed-authorization"))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    let uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let r = s
        .http
        .get(s.url(&format!(
            "/oauth/authorize?client_id=pub&request_uri={}",
            common::enc(&uri)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_request_uri"));
    // Another client cannot use someone else's request_uri.
    let (pairs, _, _) = Server::authorization_params("pub", SCOPE, &[]);
    let r = s
        .http
        .post(s.url("/oauth/pushed-authorization"))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    let uri = r.json::<Value>().await.unwrap()["request_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .get(s.url(&format!(
            "/oauth/authorize?client_id=pub2&request_uri={}",
            common::enc(&uri)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn par_required_client_cannot_skip_it() {
    let s = Server::start(&[]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "Strict",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        "strict",
        "--require-par",
    ]);
    let (pairs, _, _) = Server::authorization_params("strict", SCOPE, &[]);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let r = s
        .http
        .get(s.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(REDIRECT) && loc.contains("error=invalid_request"),
        "{loc}"
    );
    let (a, _) = s.authorize_par("strict", SCOPE, &[]).await;
    assert_eq!(s.exchange("strict", &a.code, &a.verifier).await.status(), 200);
}

#[tokio::test]
async fn par_with_a_dpop_proof_binds_the_code_to_its_key() {
    let s = Server::start(&[]).await;
    let key = DpopKey::new();
    let (pairs, verifier, nonce) = Server::authorization_params("pub", SCOPE, &[]);
    let r = s
        .http
        .post(s.url("/oauth/pushed-authorization"))
        .header("DPoP", key.proof("POST", &s.url("/oauth/pushed-authorization")))
        .form(&pairs)
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
            &format!("/oauth/authorize?client_id=pub&request_uri={}", common::enc(&uri)),
            verifier,
            nonce,
        )
        .await;
    let without = s.exchange("pub", &a.code, &a.verifier).await;
    assert_eq!(without.status(), 400);
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .header("DPoP", key.proof("POST", &s.url("/oauth/token")))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &a.code),
            ("redirect_uri", REDIRECT),
            ("client_id", "pub"),
            ("code_verifier", &a.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "DPoP");
}
