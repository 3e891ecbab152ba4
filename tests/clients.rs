//! Clients beyond the code flow, over HTTP against a real `autional` process (SQLite file or
//! PostgreSQL per `AUTIONAL_TEST_BACKEND`): the client credentials grant (RFC 6749 §4.4),
//! `private_key_jwt` client authentication (RFC 7523 §2.2, RFC 7521 §4.2) with inline keys and
//! with a `jwks_uri` served by the test, client secret rotation with its overlap window, and
//! dynamic client registration and management (RFC 7591, RFC 7592). Every refused request is
//! checked for its exact status and `error`, and for changing nothing stored.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::client_key::{jwks, ClientKey};
use common::dpop::now;
use common::{claims, rand_suffix, Server, REDIRECT};
use reqwest::header::{CACHE_CONTROL, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::RequestBuilder;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CC: &str = "client_credentials";

/// A space-separated scope as a set (its order carries no meaning, RFC 6749 §3.3).
fn scopes(v: &Value) -> std::collections::BTreeSet<String> {
    v.as_str()
        .unwrap_or_else(|| panic!("scope string: {v}"))
        .split(' ')
        .map(str::to_string)
        .collect()
}

async fn ok_json(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "expected 200, got {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Sends `req`, which must fail with `status` and `error` (a no-store JSON error) and leave every
/// stored row as it was. Returns the body and the `WWW-Authenticate` header.
async fn refused(s: &Server, what: &str, req: RequestBuilder, status: u16, error: &str) -> (Value, Option<String>) {
    let before = s.snapshot();
    let r = req.send().await.unwrap();
    let got = r.status().as_u16();
    let h = |k| {
        r.headers()
            .get(k)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
    };
    let (cc, www) = (h(CACHE_CONTROL), h(WWW_AUTHENTICATE));
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON ({got}): {text}"));
    assert_eq!(
        (got, body["error"].as_str().unwrap_or("")),
        (status, error),
        "{what}: body {body}"
    );
    assert_eq!(cc.as_deref(), Some("no-store"), "{what}: errors are not cacheable");
    assert!(body.get("access_token").is_none(), "{what}: nothing issued: {body}");
    assert_eq!(s.snapshot(), before, "{what}: a refused request changed stored state");
    (body, www)
}

// ---------------------------------------------------------------------------------------------
// client_credentials

/// Creates a confidential client with only the client credentials grant; returns its secret.
fn service_client(s: &Server, id: &str, scope: &str) -> String {
    let out = s.cli(&[
        "client",
        "create",
        "--name",
        "Service",
        "--client-id",
        id,
        "--grant-type",
        CC,
        "--scope",
        scope,
    ]);
    out["client_secret"].as_str().unwrap().to_string()
}

fn cc_request(s: &Server, id: &str, secret: &str, scope: Option<&str>) -> RequestBuilder {
    let mut form = vec![("grant_type", CC)];
    if let Some(sc) = scope {
        form.push(("scope", sc));
    }
    s.http
        .post(s.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
}

#[tokio::test]
async fn client_credentials_issues_a_client_token_within_the_client_scope_and_revocation_ends_it() {
    let s = Server::start(&[]).await;
    let secret = service_client(&s, "svc", "api.read api.write");

    // No scope: everything the client may have.
    let t = ok_json(cc_request(&s, "svc", &secret, None).send().await.unwrap()).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(scopes(&t["scope"]), scopes(&json!("api.read api.write")));
    assert!(t["expires_in"].as_i64().unwrap() > 0);
    assert!(
        t.get("refresh_token").is_none(),
        "no refresh token (RFC 6749 §4.4.3): {t}"
    );
    assert!(t.get("id_token").is_none(), "no ID token without a user: {t}");
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!((c["sub"].as_str(), c["client_id"].as_str()), (Some("svc"), Some("svc")));
    assert_eq!(c["iss"].as_str(), Some(s.base.as_str()));

    // A requested scope narrows.
    let t = ok_json(cc_request(&s, "svc", &secret, Some("api.read")).send().await.unwrap()).await;
    assert_eq!(t["scope"], "api.read");
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    let at = t["access_token"].as_str().unwrap().to_string();
    let c = claims(&at);
    assert_eq!(c["scope"], "api.read");
    assert_eq!((c["sub"].as_str(), c["client_id"].as_str()), (Some("svc"), Some("svc")));

    // Wider than the client's scope, or user scopes.
    for (what, scope) in [
        ("a scope the client does not have", "api.read profile"),
        ("an unknown scope", "api.read api.admin"),
        ("openid", "openid"),
        ("openid with an allowed scope", "openid api.read"),
        ("offline_access", "api.read offline_access"),
    ] {
        refused(
            &s,
            what,
            cc_request(&s, "svc", &secret, Some(scope)),
            400,
            "invalid_scope",
        )
        .await;
    }

    // A public client, and a confidential client without the grant.
    refused(
        &s,
        "public client pub",
        s.http
            .post(s.url("/oauth/token"))
            .form(&[("grant_type", CC), ("client_id", "pub")]),
        400,
        "unauthorized_client",
    )
    .await;
    refused(
        &s,
        "conf without the client_credentials grant",
        cc_request(&s, "conf", &s.conf_secret, None),
        400,
        "unauthorized_client",
    )
    .await;
    refused(
        &s,
        "svc with a wrong secret",
        cc_request(&s, "svc", "wrong-secret", None),
        401,
        "invalid_client",
    )
    .await;

    // Introspection knows it; the client revokes it; then it is inactive.
    let i = s.introspect(&at).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], "svc", "{i}");
    assert_eq!(i["scope"], "api.read", "{i}");
    let r = s
        .http
        .post(s.url("/oauth/revoke"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "revoke: {}", r.text().await.unwrap());
    let i = s.introspect(&at).await;
    assert_eq!(i["active"], false, "revoked client token: {i}");
    // Other tokens of the client are unaffected.
    let t = ok_json(cc_request(&s, "svc", &secret, Some("api.write")).send().await.unwrap()).await;
    assert_eq!(s.introspect(t["access_token"].as_str().unwrap()).await["active"], true);
}

// ---------------------------------------------------------------------------------------------
// private_key_jwt

/// Good assertion claims (RFC 7523 §3): iss = sub = the client, `aud`, a fresh jti, 60 s life.
fn assertion_claims(client_id: &str, aud: &str) -> Value {
    let now = now();
    json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "jti": format!("jti-{}", rand_suffix()), "iat": now, "exp": now + 60,
    })
}

/// A client credentials request authenticated with `assertion`; `extra` adds or replaces fields.
fn assertion_request(s: &Server, assertion: &str, extra: &[(&str, &str)]) -> RequestBuilder {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", CC),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    for (k, v) in extra {
        form.retain(|(a, _)| a != k);
        form.push((k, v));
    }
    s.http.post(s.url("/oauth/token")).form(&form)
}

#[tokio::test]
async fn private_key_jwt_with_inline_keys_accepts_one_fresh_assertion_and_refuses_every_bad_one() {
    let s = Server::start(&[]).await;
    let key = ClientKey::new("k1");
    let path = s.dir.path().join("jwt-client-jwks.json");
    std::fs::write(&path, jwks(&[&key]).to_string()).unwrap();
    let out = s.cli(&[
        "client",
        "create",
        "--name",
        "JWT client",
        "--client-id",
        "jwtc",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        path.to_str().unwrap(),
        "--grant-type",
        CC,
        "--scope",
        "api.read",
    ]);
    assert!(
        out.get("client_secret").is_none(),
        "no secret for private_key_jwt: {out}"
    );
    let issuer = s.base.clone();
    let token_url = s.url("/oauth/token");

    // aud = the issuer, and aud = the token endpoint URL.
    let first = key.sign(&assertion_claims("jwtc", &issuer));
    let t = ok_json(assertion_request(&s, &first, &[]).send().await.unwrap()).await;
    assert_eq!(t["scope"], "api.read");
    assert_eq!(claims(t["access_token"].as_str().unwrap())["sub"], "jwtc");
    let t = ok_json(
        assertion_request(&s, &key.sign(&assertion_claims("jwtc", &token_url)), &[])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(claims(t["access_token"].as_str().unwrap())["client_id"], "jwtc");
    // aud = the URL of the endpoint it is sent to, when that is not the token endpoint.
    let r = s
        .http
        .post(s.url("/oauth/introspect"))
        .form(&[
            ("token", "rt_unknown"),
            ("client_assertion_type", ASSERTION_TYPE),
            (
                "client_assertion",
                &key.sign(&assertion_claims("jwtc", &s.url("/oauth/introspect"))),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok_json(r).await["active"], false);
    // An assertion naming its client with client_id too (RFC 7521 §4.2 allows it).
    let t = assertion_request(
        &s,
        &key.sign(&assertion_claims("jwtc", &issuer)),
        &[("client_id", "jwtc")],
    );
    ok_json(t.send().await.unwrap()).await;

    // Replay: the jti was used.
    refused(
        &s,
        "replayed assertion",
        assertion_request(&s, &first, &[]),
        401,
        "invalid_client",
    )
    .await;

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = assertion_claims("jwtc", &issuer);
        f(&mut c);
        key.sign(&c)
    };
    let other = ClientKey::new("k1");
    let bad: Vec<(&str, String)> = vec![
        ("exp 10 minutes ahead", with(&|c| c["exp"] = json!(now() + 600))),
        (
            "expired",
            with(&|c| {
                c["iat"] = json!(now() - 300);
                c["exp"] = json!(now() - 60);
            }),
        ),
        ("wrong aud", with(&|c| c["aud"] = json!("https://other.example"))),
        (
            "aud of another endpoint of ours",
            with(&|c| c["aud"] = json!(s.url("/oauth/introspect"))),
        ),
        (
            "signed by another key with the same kid",
            other.sign(&assertion_claims("jwtc", &issuer)),
        ),
        ("iss is not the client_id", with(&|c| c["iss"] = json!("pub"))),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "unknown kid",
            ClientKey::new("k9").sign(&assertion_claims("jwtc", &issuer)),
        ),
        ("not a JWT", "not-a-jwt".to_string()),
    ];
    for (what, assertion) in &bad {
        refused(&s, what, assertion_request(&s, assertion, &[]), 401, "invalid_client").await;
    }
    // alg none: the unsigned assertion with the client's sub.
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(assertion_claims("jwtc", &issuer).to_string())
    );
    refused(
        &s,
        "alg none",
        assertion_request(&s, &unsigned, &[]),
        401,
        "invalid_client",
    )
    .await;

    // Malformed requests: RFC 6749 §5.2 invalid_request.
    let good = key.sign(&assertion_claims("jwtc", &issuer));
    refused(
        &s,
        "wrong client_assertion_type",
        assertion_request(
            &s,
            &good,
            &[(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            )],
        ),
        400,
        "invalid_request",
    )
    .await;
    refused(
        &s,
        "client_assertion plus client_secret",
        assertion_request(&s, &good, &[("client_secret", "x")]),
        400,
        "invalid_request",
    )
    .await;
    // The same client with a method it is not registered for.
    let (_, www) = refused(
        &s,
        "private_key_jwt client uses client_secret_basic",
        s.http
            .post(s.url("/oauth/token"))
            .basic_auth("jwtc", Some("guess"))
            .form(&[("grant_type", CC)]),
        401,
        "invalid_client",
    )
    .await;
    assert!(
        www.is_some_and(|w| w.starts_with("Basic ")),
        "Basic challenge after Basic"
    );
    refused(
        &s,
        "private_key_jwt client sends client_id only",
        s.http
            .post(s.url("/oauth/token"))
            .form(&[("grant_type", CC), ("client_id", "jwtc")]),
        401,
        "invalid_client",
    )
    .await;
    // The good assertion refused above (its request was malformed) was not burned.
    ok_json(assertion_request(&s, &good, &[]).send().await.unwrap()).await;
}

/// A client's key server: GET answers with the current JWK Set; counts requests.
struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
    body: Arc<Mutex<String>>,
}

impl JwksServer {
    async fn start(set: &Value) -> JwksServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(Mutex::new(set.to_string()));
        let (h, b) = (hits.clone(), body.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (h, b) = (h.clone(), b.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let resp = if req.starts_with(b"GET /jwks.json ") {
                        h.fetch_add(1, Ordering::SeqCst);
                        let body = b.lock().unwrap().clone();
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        JwksServer { url, hits, body }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn serve(&self, set: &Value) {
        *self.body.lock().unwrap() = set.to_string();
    }
}

#[tokio::test]
async fn private_key_jwt_with_jwks_uri_caches_the_keys_and_refetches_on_an_unknown_kid() {
    // The key server runs on loopback, which key URLs may reach only when allow-listed.
    let s = Server::start(&[("AUTIONAL_CLIENT_AUTH__JWKS_FETCH_ALLOW", "127.0.0.1")]).await;
    let k1 = ClientKey::new("2024-k1");
    let keys = JwksServer::start(&jwks(&[&k1])).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "Remote keys",
        "--client-id",
        "remote",
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        &keys.url,
        "--grant-type",
        CC,
        "--scope",
        "api.read",
    ]);
    assert_eq!(keys.hits(), 0, "registration does not fetch");
    let assertion = |k: &ClientKey| k.sign(&assertion_claims("remote", &s.base));

    // The first assertion fetches the set.
    let t = ok_json(assertion_request(&s, &assertion(&k1), &[]).send().await.unwrap()).await;
    let fetched_at = Instant::now();
    assert_eq!(claims(t["access_token"].as_str().unwrap())["sub"], "remote");
    assert_eq!(keys.hits(), 1, "the first assertion fetches the client's keys");
    // The second uses the cache.
    ok_json(assertion_request(&s, &assertion(&k1), &[]).send().await.unwrap()).await;
    assert_eq!(keys.hits(), 1, "the keys are cached");

    // The client rotates: its set now has only a new key with a new kid.
    let k2 = ClientKey::new("2024-k2");
    keys.serve(&jwks(&[&k2]));
    // Right after a fetch, an unknown kid does not make the server fetch again (refetches are
    // throttled per client, so assertions with made-up kids cannot hammer the client's server).
    refused(
        &s,
        "new kid within the refetch throttle",
        assertion_request(&s, &assertion(&k2), &[]),
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(keys.hits(), 1, "no refetch right after a fetch");
    // Once the throttle (10 s) has passed, the unknown kid makes the server refetch.
    tokio::time::sleep(Duration::from_millis(10_500).saturating_sub(fetched_at.elapsed())).await;
    let t = ok_json(assertion_request(&s, &assertion(&k2), &[]).send().await.unwrap()).await;
    assert_eq!(claims(t["access_token"].as_str().unwrap())["client_id"], "remote");
    assert_eq!(keys.hits(), 2, "an unknown kid refetches the set");
    ok_json(assertion_request(&s, &assertion(&k2), &[]).send().await.unwrap()).await;
    assert_eq!(keys.hits(), 2, "the new set is cached");
    // The retired key is gone from the refetched set.
    refused(
        &s,
        "retired key after the refetch",
        assertion_request(&s, &assertion(&k1), &[]),
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(keys.hits(), 2, "no refetch right after a fetch");
}

// ---------------------------------------------------------------------------------------------
// Secret rotation

/// Client authentication with `secret` at the introspection endpoint: 200 when it is accepted.
fn introspect_as(s: &Server, id: &str, secret: &str) -> RequestBuilder {
    s.http
        .post(s.url("/oauth/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", "rt_unknown")])
}

#[tokio::test]
async fn rotated_client_secret_keeps_the_old_one_working_for_the_overlap_only() {
    let s = Server::start(&[("AUTIONAL_CLIENT_SECRET__ROTATION_OVERLAP", "2s")]).await;
    let old = s.conf_secret.clone();
    ok_json(introspect_as(&s, "conf", &old).send().await.unwrap()).await;

    let out = s.cli(&["client", "rotate-secret", "conf"]);
    let rotated_at = Instant::now();
    let new = out["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(new.len() >= 43, "at least 256 bits: {new}");
    assert_eq!(out["client_id"], "conf");
    // Both work right after.
    ok_json(introspect_as(&s, "conf", &old).send().await.unwrap()).await;
    ok_json(introspect_as(&s, "conf", &new).send().await.unwrap()).await;
    // The secret also works at the token endpoint (a code exchange with Basic).
    let a = s.authorize("conf", "openid").await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("conf", Some(&new))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", a.code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", a.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    ok_json(r).await;

    // After the overlap only the new one works.
    tokio::time::sleep(Duration::from_millis(2200).saturating_sub(rotated_at.elapsed())).await;
    let (_, www) = refused(
        &s,
        "old secret after the overlap",
        introspect_as(&s, "conf", &old),
        401,
        "invalid_client",
    )
    .await;
    assert!(www.is_some_and(|w| w.starts_with("Basic ")));
    refused(
        &s,
        "old secret after the overlap, at the token endpoint",
        s.http
            .post(s.url("/oauth/token"))
            .basic_auth("conf", Some(&old))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "rt_x")]),
        401,
        "invalid_client",
    )
    .await;
    ok_json(introspect_as(&s, "conf", &new).send().await.unwrap()).await;
}

// ---------------------------------------------------------------------------------------------
// Dynamic registration (RFC 7591) and management (RFC 7592)

const REGISTRATION_ON: (&str, &str) = ("AUTIONAL_REGISTRATION__ENABLED", "true");

fn register(s: &Server, metadata: &Value) -> RequestBuilder {
    s.http.post(s.url("/oauth/register")).json(metadata)
}

async fn registered(s: &Server, metadata: &Value) -> Value {
    let r = register(s, metadata).send().await.unwrap();
    let status = r.status();
    let cc = r.headers().get(CACHE_CONTROL).map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "registration: {text}");
    assert_eq!(cc.as_deref(), Some("no-store"), "the response carries credentials");
    serde_json::from_str(&text).unwrap()
}

async fn discovery(s: &Server) -> Value {
    ok_json(
        s.http
            .get(s.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn registration_is_off_by_default_and_only_advertised_when_on() {
    let mut s = Server::start(&[]).await;
    let meta = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    refused(&s, "register while disabled", register(&s, &meta), 403, "access_denied").await;
    refused(
        &s,
        "manage while disabled",
        s.http.get(s.url("/oauth/register/pub")).bearer_auth("anything"),
        403,
        "access_denied",
    )
    .await;
    let d = discovery(&s).await;
    assert!(d.get("registration_endpoint").is_none(), "not advertised when off: {d}");
    assert!(d.get("token_endpoint").is_some());

    s.restart(&[REGISTRATION_ON]).await;
    let d = discovery(&s).await;
    assert_eq!(
        d["registration_endpoint"].as_str(),
        Some(s.url("/oauth/register").as_str())
    );
    registered(&s, &meta).await;
}

/// `/oauth/authorize` for `client_id` with `redirect_uri` (PKCE S256), not signed in.
async fn authorize_status(s: &Server, client_id: &str, redirect_uri: &str) -> (u16, Option<String>) {
    let (mut pairs, _, _) = Server::authorization_params(client_id, "openid", &[]);
    for p in &mut pairs {
        if p.0 == "redirect_uri" {
            p.1 = redirect_uri.to_string();
        }
    }
    let q = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let r = s
        .http
        .get(s.url(&format!("/oauth/authorize?{q}")))
        .send()
        .await
        .unwrap();
    let loc = r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), loc)
}

#[tokio::test]
async fn registered_public_client_runs_the_code_flow_and_is_managed_with_its_registration_token() {
    let s = Server::start(&[REGISTRATION_ON]).await;
    let reg = registered(
        &s,
        &json!({
            "client_name": "Registered SPA",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "scope": "openid offline_access",
        }),
    )
    .await;
    let id = reg["client_id"].as_str().expect("client_id").to_string();
    let rat = reg["registration_access_token"]
        .as_str()
        .expect("registration_access_token")
        .to_string();
    let uri = reg["registration_client_uri"]
        .as_str()
        .expect("registration_client_uri")
        .to_string();
    assert_eq!(uri, s.url(&format!("/oauth/register/{id}")));
    assert!(
        reg.get("client_secret").is_none(),
        "a public client gets no secret: {reg}"
    );
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert_eq!(reg["redirect_uris"], json!([REDIRECT]));
    assert_eq!(scopes(&reg["scope"]), scopes(&json!("openid offline_access")));
    assert_eq!(reg["client_name"], "Registered SPA");
    assert!(reg["client_id_issued_at"].as_i64().unwrap() > 0);

    // It completes a code flow.
    let (t, _) = s.tokens(&id, "openid offline_access").await;
    let rt = t["refresh_token"].as_str().expect("refresh token").to_string();
    assert_eq!(claims(t["id_token"].as_str().unwrap())["aud"], id.as_str());

    // RFC 7592 §2.1: read with the registration access token.
    let r = s.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    let m = ok_json(r).await;
    assert_eq!(m["client_id"], id.as_str());
    assert_eq!(m["redirect_uris"], json!([REDIRECT]));
    assert_eq!(m["token_endpoint_auth_method"], "none");
    assert!(m.get("client_secret").is_none());
    // A wrong, missing, or another client's token.
    let other = registered(
        &s,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let other_rat = other["registration_access_token"].as_str().unwrap().to_string();
    for (what, req) in [
        ("wrong token", s.http.get(&uri).bearer_auth("not-the-token")),
        ("no token", s.http.get(&uri)),
        ("another client's token", s.http.get(&uri).bearer_auth(&other_rat)),
        (
            "token in Basic",
            s.http.get(&uri).basic_auth(&id, Some(&rat)),
        ),
        (
            "unknown client",
            s.http.get(s.url("/oauth/register/nobody")).bearer_auth(&rat),
        ),
        (
            "update with a wrong token",
            s.http
                .put(&uri)
                .bearer_auth("not-the-token")
                .json(&json!({"client_id": id, "redirect_uris": ["https://evil.example/cb"], "token_endpoint_auth_method": "none"})),
        ),
        ("delete with a wrong token", s.http.delete(&uri).bearer_auth(&other_rat)),
    ] {
        let (_, www) = refused(&s, what, req, 401, "invalid_token").await;
        assert!(
            www.as_deref().is_some_and(|w| w.starts_with("Bearer ") && w.contains("invalid_token")),
            "{what}: Bearer challenge {www:?}"
        );
    }

    // RFC 7592 §2.2: update. The new redirect URI is accepted at authorize, the old one refused.
    let new_redirect = "http://127.0.0.1:9/new-cb";
    let r = s
        .http
        .put(&uri)
        .bearer_auth(&rat)
        .json(&json!({
            "client_id": id,
            "client_name": "Registered SPA",
            "redirect_uris": [new_redirect],
            "token_endpoint_auth_method": "none",
            "scope": "openid offline_access",
        }))
        .send()
        .await
        .unwrap();
    let m = ok_json(r).await;
    assert_eq!(m["redirect_uris"], json!([new_redirect]));
    let (st, loc) = authorize_status(&s, &id, new_redirect).await;
    assert_eq!(st, 303, "the new redirect URI is accepted");
    assert!(loc.unwrap().starts_with("/login?"));
    let (st, loc) = authorize_status(&s, &id, REDIRECT).await;
    assert_eq!(
        (st, loc),
        (400, None),
        "the old redirect URI is refused, without a redirect"
    );
    // An update may not switch the authentication method, nor name another client.
    refused(
        &s,
        "update changing the auth method",
        s.http.put(&uri).bearer_auth(&rat).json(&json!({
            "client_id": id, "redirect_uris": [new_redirect], "token_endpoint_auth_method": "client_secret_basic",
        })),
        400,
        "invalid_client_metadata",
    )
    .await;
    refused(
        &s,
        "update with another client_id in the body",
        s.http.put(&uri).bearer_auth(&rat).json(&json!({
            "client_id": "pub", "redirect_uris": [new_redirect], "token_endpoint_auth_method": "none",
        })),
        400,
        "invalid_request",
    )
    .await;
    // Still usable with the old refresh token before deletion.
    let t = ok_json(s.refresh(&id, &rt).await).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();

    // RFC 7592 §2.3: delete. Its grants end, and its registration is gone.
    let r = s.http.delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.text().await.unwrap().is_empty());
    // 401 either way: `invalid_grant` (the grant is revoked) while a server process still has
    // the public client in its short token-path cache, `invalid_client` (unknown client, RFC 6749
    // §5.2) once it does not. The revocation itself is checked in the store below.
    let before = s.snapshot();
    let r = s
        .http
        .post(s.url("/oauth/refresh"))
        .json(&json!({"refresh_token": rt, "client_id": id}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(
        status == 401 && matches!(body["error"].as_str(), Some("invalid_grant" | "invalid_client")),
        "refresh token of the deleted client: {status} {body}"
    );
    assert_eq!(s.snapshot(), before, "the refused refresh changed nothing");
    refused(
        &s,
        "read after delete",
        s.http.get(&uri).bearer_auth(&rat),
        401,
        "invalid_token",
    )
    .await;
    let revoked = s.scalar_i64(&format!(
        "SELECT COUNT(*) FROM families WHERE client_id = '{id}' AND revoked_at_ms IS NULL"
    ));
    assert_eq!(revoked, 0, "every family of the deleted client is revoked");
    // The other registration is untouched.
    let r = s
        .http
        .get(other["registration_client_uri"].as_str().unwrap())
        .bearer_auth(&other_rat)
        .send()
        .await
        .unwrap();
    ok_json(r).await;
}

/// An operator who opens anonymous registration to service clients and API scopes.
const REGISTRATION_OPEN_TO_SERVICES: [(&str, &str); 2] = [
    (
        "AUTIONAL_REGISTRATION__ALLOWED_GRANT_TYPES",
        "[authorization_code, refresh_token, client_credentials]",
    ),
    (
        "AUTIONAL_REGISTRATION__ALLOWED_SCOPES",
        "[openid, profile, email, offline_access, api.read, api.write]",
    ),
];

#[tokio::test]
async fn registered_confidential_client_gets_a_secret_that_works_at_the_token_endpoint() {
    // client_credentials and API scopes are closed to anonymous registrants by default (see
    // `anonymous_registration_gets_neither_client_credentials_nor_api_scopes`).
    let [g, sc] = REGISTRATION_OPEN_TO_SERVICES;
    let s = Server::start(&[REGISTRATION_ON, g, sc]).await;
    let reg = registered(
        &s,
        &json!({
            "client_name": "Registered service",
            "grant_types": [CC],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "api.read",
        }),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().expect("client_secret").to_string();
    assert!(secret.len() >= 43, "at least 256 bits: {secret}");
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert_eq!(reg["grant_types"], json!([CC]));
    assert_eq!(reg["response_types"], json!([]));
    let t = ok_json(cc_request(&s, &id, &secret, None).send().await.unwrap()).await;
    assert_eq!(t["scope"], "api.read");
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], id.as_str());
    // The token is for the APIs (default audience `<issuer>/api`), not for the issuer.
    assert_eq!(c["aud"], s.url("/api"), "{c}");
    refused(
        &s,
        "registered client with a wrong secret",
        cc_request(&s, &id, "wrong", None),
        401,
        "invalid_client",
    )
    .await;
    // The management read never shows the secret again.
    let r = s
        .http
        .get(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let m = ok_json(r).await;
    assert!(m.get("client_secret").is_none(), "{m}");
    assert_eq!(m["token_endpoint_auth_method"], "client_secret_basic");

    // client_secret_post, registered the same way.
    let reg = registered(
        &s,
        &json!({"grant_types": [CC], "token_endpoint_auth_method": "client_secret_post", "scope": "api.write"}),
    )
    .await;
    let (id, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[("grant_type", CC), ("client_id", id), ("client_secret", secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok_json(r).await["scope"], "api.write");
}

#[tokio::test]
async fn invalid_registration_metadata_gets_the_rfc7591_error_and_stores_nothing() {
    let s = Server::start(&[REGISTRATION_ON, ("AUTIONAL_RATE_LIMIT__REGISTRATION_PER_HOUR", "100")]).await;
    let cases = [
        (
            "fragment in a redirect URI",
            json!({"redirect_uris": ["https://app.example/cb#frag"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            "relative redirect URI",
            json!({"redirect_uris": ["/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            "no redirect_uris for authorization_code",
            json!({"token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            "unknown auth method",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "magic"}),
            "invalid_client_metadata",
        ),
        (
            "unknown grant type",
            json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "password"]}),
            "invalid_client_metadata",
        ),
        (
            "implicit response type",
            json!({"redirect_uris": [REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            "private_key_jwt without keys",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            "jwks that is not a JWK Set",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt", "jwks": [{"kty": "EC"}]}),
            "invalid_client_metadata",
        ),
        (
            "public client with client_credentials",
            json!({"grant_types": [CC], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            "unknown scope",
            json!({"redirect_uris": [REDIRECT], "scope": "openid admin"}),
            "invalid_client_metadata",
        ),
        (
            "redirect_uris not an array",
            json!({"redirect_uris": REDIRECT, "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
    ];
    for (what, meta, error) in &cases {
        refused(&s, what, register(&s, meta), 400, error).await;
    }
    let good = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}).to_string();
    for (what, ct) in [
        ("form Content-Type", Some("application/x-www-form-urlencoded")),
        ("text/plain", Some("text/plain")),
        ("no Content-Type", None),
    ] {
        let mut req = s.http.post(s.url("/oauth/register")).body(good.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        refused(&s, what, req, 400, "invalid_request").await;
    }
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), 4, "only the fixtures");
}

#[tokio::test]
async fn registration_is_rate_limited_per_address() {
    let s = Server::start(&[REGISTRATION_ON, ("AUTIONAL_RATE_LIMIT__REGISTRATION_PER_HOUR", "2")]).await;
    let meta = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    registered(&s, &meta).await;
    registered(&s, &meta).await;
    let before = s.snapshot();
    let r = register(&s, &meta).send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limit_exceeded")),
        "{body}"
    );
    let retry: u64 = retry.expect("Retry-After").parse().expect("Retry-After in seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    assert!(body.get("client_id").is_none());
    assert_eq!(s.snapshot(), before, "a refused registration stores nothing");
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), 6, "fixtures + 2");
}

/// RFC 7591 §5, RFC 9700 §2.3: anonymous registration does not hand out API access. With the
/// default policy, a registrant gets neither `client_credentials` nor an API scope, at
/// registration or at an RFC 7592 update, and nothing is stored.
#[tokio::test]
async fn anonymous_registration_gets_neither_client_credentials_nor_api_scopes() {
    let s = Server::start(&[
        REGISTRATION_ON,
        ("AUTIONAL_RATE_LIMIT__REGISTRATION_PER_HOUR", "100"),
        ("AUTIONAL_SCOPES__CUSTOM", "[api.read, api.write, api.admin]"),
    ])
    .await;
    for (what, meta, says) in [
        (
            "client_credentials with an API scope",
            json!({"grant_types": [CC], "token_endpoint_auth_method": "client_secret_basic", "scope": "api.admin"}),
            "grant type `client_credentials` is not open to dynamic registration",
        ),
        (
            "client_credentials without a scope",
            json!({"grant_types": [CC], "token_endpoint_auth_method": "client_secret_basic"}),
            "grant type `client_credentials` is not open to dynamic registration",
        ),
        (
            "a code-flow client with an API scope",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "scope": "openid api.read"}),
            "scope `api.read` is not open to dynamic registration",
        ),
    ] {
        let (body, _) = refused(&s, what, register(&s, &meta), 400, "invalid_client_metadata").await;
        let d = body["error_description"].as_str().unwrap_or("");
        assert!(d.contains(says), "{what}: {d}");
    }
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), 4, "only the fixtures");

    // A registered client cannot widen itself through RFC 7592 either.
    let reg = registered(
        &s,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic", "scope": "openid"}),
    )
    .await;
    let (id, uri, rat, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["registration_client_uri"].as_str().unwrap(),
        reg["registration_access_token"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    for (what, meta) in [
        (
            "update adding client_credentials",
            json!({"client_id": id, "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", CC], "scope": "openid"}),
        ),
        (
            "update adding an API scope",
            json!({"client_id": id, "redirect_uris": [REDIRECT], "scope": "openid api.admin"}),
        ),
    ] {
        refused(
            &s,
            what,
            s.http.put(uri).bearer_auth(rat).json(&meta),
            400,
            "invalid_client_metadata",
        )
        .await;
    }
    let m = ok_json(s.http.get(uri).bearer_auth(rat).send().await.unwrap()).await;
    assert_eq!(
        (m["scope"].as_str(), &m["grant_types"]),
        (Some("openid"), &json!(["authorization_code", "refresh_token"]))
    );
    refused(
        &s,
        "the registered client tries client_credentials",
        cc_request(&s, id, secret, Some("api.admin")),
        400,
        "unauthorized_client",
    )
    .await;
    // Without scope and grant types, the defaults: the OpenID scopes and the code flow.
    let reg = registered(
        &s,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(
        scopes(&reg["scope"]),
        scopes(&json!("openid profile email offline_access"))
    );
    assert_eq!(reg["grant_types"], json!(["authorization_code", "refresh_token"]));
}

/// Access tokens name what they are for (RFC 9068 §3): a user token with OpenID scopes the
/// userinfo endpoint, a client token the configured API audience; introspection reports the
/// same `aud`, and userinfo keeps working.
#[tokio::test]
async fn access_tokens_carry_the_audience_of_their_scopes() {
    let s = Server::start(&[("AUTIONAL_SCOPES__API_AUDIENCE", "https://api.example")]).await;
    let (t, _) = s.tokens("pub", "openid profile").await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(claims(at)["aud"], s.url("/oauth/userinfo"));
    assert_eq!(s.introspect(at).await["aud"], s.url("/oauth/userinfo"));
    assert_eq!(s.userinfo(at).await.status(), 200);

    let secret = service_client(&s, "svc", "api.read api.write");
    let t = ok_json(cc_request(&s, "svc", &secret, Some("api.read")).send().await.unwrap()).await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(claims(at)["aud"], "https://api.example");
    let i = s.introspect(at).await;
    assert_eq!(
        (i["active"].as_bool(), i["aud"].as_str()),
        (Some(true), Some("https://api.example")),
        "{i}"
    );
}

/// RFC 9700 §4.11.2, RFC 8252 §7–8: redirect URIs that would make this server an open
/// redirector (plain http to a remote host, script schemes, user information) are refused at
/// registration and update; loopback IPs and private-use schemes of native apps are accepted.
#[tokio::test]
async fn registration_refuses_redirect_uris_that_make_an_open_redirector() {
    let s = Server::start(&[REGISTRATION_ON, ("AUTIONAL_RATE_LIMIT__REGISTRATION_PER_HOUR", "100")]).await;
    let with_redirect = |u: &str| json!({"redirect_uris": [u], "token_endpoint_auth_method": "none"});
    for (what, meta, error, says) in [
        (
            "http on a remote host",
            with_redirect("http://evil.example/cb"),
            "invalid_redirect_uri",
            "must use https",
        ),
        (
            "http on a private address",
            with_redirect("http://10.0.0.1/cb"),
            "invalid_redirect_uri",
            "must use https",
        ),
        (
            "http on localhost",
            with_redirect("http://localhost:9/cb"),
            "invalid_redirect_uri",
            "localhost",
        ),
        (
            "javascript://",
            with_redirect("javascript://x/%0aalert(1)"),
            "invalid_redirect_uri",
            "javascript scheme",
        ),
        (
            "javascript:",
            with_redirect("javascript:alert(1)"),
            "invalid_redirect_uri",
            "javascript scheme",
        ),
        (
            "data:",
            with_redirect("data:text/html,<script>alert(1)</script>"),
            "invalid_redirect_uri",
            "data scheme",
        ),
        (
            "a scheme without a dot",
            with_redirect("myapp://cb"),
            "invalid_redirect_uri",
            "myapp scheme",
        ),
        (
            "user information",
            with_redirect("https://app.example@evil.example/cb"),
            "invalid_redirect_uri",
            "user information",
        ),
        (
            "a javascript post-logout URI",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "post_logout_redirect_uris": ["javascript:alert(1)"]}),
            "invalid_client_metadata",
            "post_logout_redirect_uris",
        ),
        (
            "an http post-logout URI on a remote host",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "post_logout_redirect_uris": ["http://evil.example/bye"]}),
            "invalid_client_metadata",
            "must use https",
        ),
    ] {
        let (body, _) = refused(&s, what, register(&s, &meta), 400, error).await;
        let d = body["error_description"].as_str().unwrap_or("");
        assert!(d.contains(says), "{what}: {d}");
    }
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), 4, "only the fixtures");

    let native = [
        "http://127.0.0.1:9/cb",
        "http://[::1]:9/cb",
        "com.example.app:/oauth2redirect",
        "https://app.example/cb",
    ];
    let reg = registered(
        &s,
        &json!({"redirect_uris": native, "token_endpoint_auth_method": "none", "post_logout_redirect_uris": ["https://app.example/bye"]}),
    )
    .await;
    assert_eq!(reg["redirect_uris"], json!(native));
    refused(
        &s,
        "update to a javascript redirect URI",
        s.http
            .put(reg["registration_client_uri"].as_str().unwrap())
            .bearer_auth(reg["registration_access_token"].as_str().unwrap())
            .json(&json!({"client_id": reg["client_id"], "redirect_uris": ["javascript://x/%0aalert(1)"], "token_endpoint_auth_method": "none"})),
        400,
        "invalid_redirect_uri",
    )
    .await;
}

/// The CLI holds operators' clients to the same redirect rules (it calls the same function).
#[tokio::test]
async fn cli_client_create_refuses_open_redirect_uris() {
    let s = Server::start(&[]).await;
    for (flag, uri) in [
        ("--redirect-uri", "http://evil.example/cb"),
        ("--redirect-uri", "javascript://x/%0aalert(1)"),
        ("--post-logout-redirect-uri", "data:text/html,x"),
    ] {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "x",
            "--public",
            "--redirect-uri",
            REDIRECT,
        ];
        if flag == "--redirect-uri" {
            args[6] = uri;
        } else {
            args.extend([flag, uri]);
        }
        let out = common::run_raw(&[("AUTIONAL_DATABASE_URL", s.db_url.as_str())], &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{uri}: accepted");
        assert!(stderr.contains(flag), "{uri}: {stderr}");
    }
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), 4, "only the fixtures");
    // The README's examples keep working.
    s.cli(&[
        "client",
        "create",
        "--name",
        "web",
        "--redirect-uri",
        "https://app.example/cb",
        "--public",
    ]);
}

/// `client create` validates with the same function as dynamic registration
/// (`domain::registration::apply`, operator profile): what RFC 7591 forbids is refused on the
/// command line too — a public client with `client_credentials` (RFC 6749 §4.4), `--jwks`
/// together with `--jwks-uri` (RFC 7591 §2) — each naming its flag and storing nothing. What
/// the operator may do beyond an anonymous registrant stays allowed: `client_credentials` with
/// an API scope, and an http `jwks_uri` (a key server on the operator's network).
#[tokio::test]
async fn client_create_refuses_what_registration_refuses() {
    let s = Server::start(&[]).await;
    let key = ClientKey::new("k1");
    let path = s.dir.path().join("cli-jwks.json");
    std::fs::write(&path, jwks(&[&key]).to_string()).unwrap();
    let path = path.to_str().unwrap();
    let base = [
        "client",
        "create",
        "--name",
        "x",
        "--scope",
        "api.read",
        "--grant-type",
        CC,
    ];
    for (what, extra, flag) in [
        (
            "a public client with client_credentials",
            vec!["--public"],
            "--grant-type",
        ),
        (
            "inline keys and a jwks_uri",
            vec![
                "--auth-method",
                "private_key_jwt",
                "--jwks",
                path,
                "--jwks-uri",
                "https://keys.example/jwks",
            ],
            "--jwks-uri",
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let out = common::run_raw(&[("AUTIONAL_DATABASE_URL", s.db_url.as_str())], &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: accepted");
        assert!(stderr.contains(flag), "{what}: {stderr}");
    }
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), 4, "only the fixtures");
    // The operator's explicit differences from anonymous registration.
    let out = s.cli(&[
        "client",
        "create",
        "--name",
        "svc",
        "--scope",
        "api.read",
        "--grant-type",
        CC,
    ]);
    assert!(out["client_secret"].is_string(), "{out}");
    s.cli(&[
        "client",
        "create",
        "--name",
        "remote keys",
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        "http://127.0.0.1:9/jwks",
        "--grant-type",
        CC,
        "--scope",
        "api.read",
    ]);
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), 6);
}

/// RFC 7662 §2.2: a client's own token (`client_credentials`) is inactive once its client is
/// deleted, like the user tokens of the deleted client.
#[tokio::test]
async fn client_token_of_a_deleted_client_is_inactive() {
    let s = Server::start(&[]).await;
    let secret = service_client(&s, "svc", "api.read");
    let t = ok_json(cc_request(&s, "svc", &secret, None).send().await.unwrap()).await;
    let at = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(s.introspect(&at).await["active"], true);
    s.cli(&["client", "delete", "svc"]);
    let i = s.introspect(&at).await;
    assert_eq!(i, json!({"active": false}), "token of the deleted client");
    // The same id created again (a second later) is another client: the old token stays
    // inactive.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    service_client(&s, "svc", "api.read");
    assert_eq!(s.introspect(&at).await, json!({"active": false}));
}

/// A code issued before its client was deleted must not be exchangeable afterwards.
#[tokio::test]
async fn code_of_a_deleted_client_cannot_be_exchanged() {
    let s = Server::start(&[REGISTRATION_ON]).await;
    let reg = registered(
        &s,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "scope": "openid offline_access"}),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap().to_string();
    let a = s.authorize(&id, "openid offline_access").await;
    // The client is in use (any token request authenticates it) and is then deleted.
    refused(
        &s,
        "unknown refresh token",
        s.http.post(s.url("/oauth/token")).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt_unknown"),
            ("client_id", id.as_str()),
        ]),
        400,
        "invalid_grant",
    )
    .await;
    let r = s
        .http
        .delete(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The client may still be in a process's short public-client cache (then its deleted code
    // is unknown: 400 invalid_grant), or not (401 invalid_client); never tokens.
    let before = s.snapshot();
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", a.code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", id.as_str()),
            ("code_verifier", a.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(
        matches!(
            (got, body["error"].as_str().unwrap_or("")),
            (400, "invalid_grant") | (401, "invalid_client")
        ),
        "code exchange for the deleted client: {got} {body}"
    );
    assert!(body.get("access_token").is_none());
    assert_eq!(before, s.snapshot());
    let live = s.scalar_i64(&format!(
        "SELECT COUNT(*) FROM families WHERE client_id = '{id}' AND revoked_at_ms IS NULL"
    ));
    assert_eq!(live, 0, "no live grant of a deleted client");
}

/// A client's grace rule (SPEC §4 rule 3) is the operator's: `client create` refuses values
/// outside the configured settings' limits with the flag named, and registration (RFC 7591,
/// RFC 7592) refuses the settings by name; nothing is stored either way.
#[tokio::test]
async fn the_grace_rule_is_the_operators_within_the_configured_limits() {
    let s = Server::start(&[REGISTRATION_ON]).await;
    let before = s.snapshot();
    let create = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "G",
            "--public",
            "--redirect-uri",
            REDIRECT,
        ];
        args.extend_from_slice(extra);
        s.run_cli_raw(&args)
    };
    for (flag, value, why) in [
        ("--reuse-grace-seconds", "61", "61 is above the maximum of 60"),
        ("--reuse-grace-seconds", "-1", "-1 is below the minimum of 0"),
        ("--reuse-grace-count", "11", "11 is above the maximum of 10"),
        ("--reuse-grace-count", "-3", "-3 is below the minimum of 0"),
    ] {
        let out = create(&[flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value}");
        assert!(stderr.contains(&format!("{flag}: {why}")), "{flag} {value}: {stderr}");
    }
    assert_eq!(s.snapshot(), before, "a refused client create stores nothing");
    // The limits themselves are accepted.
    let out = create(&[
        "--client-id",
        "g",
        "--reuse-grace-seconds",
        "60",
        "--reuse-grace-count",
        "10",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        s.rows("SELECT CAST(reuse_grace_seconds AS TEXT), CAST(reuse_grace_count AS TEXT) FROM clients WHERE id = 'g'"),
        vec![vec![Some("60".into()), Some("10".into())]]
    );

    // Registration: refused by name, whatever the value.
    for field in ["reuse_grace_seconds", "reuse_grace_count"] {
        let meta = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", field: 0});
        let (body, _) = refused(&s, field, register(&s, &meta), 400, "invalid_client_metadata").await;
        let d = body["error_description"].as_str().unwrap();
        assert!(d.starts_with(&format!("{field} is set by the operator only")), "{d}");
    }
    // Nor through RFC 7592 management.
    let reg = registered(
        &s,
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap();
    let put = s
        .http
        .put(s.url(&format!("/oauth/register/{id}")))
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .json(&json!({"client_id": id, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", "reuse_grace_count": 10}));
    refused(&s, "RFC 7592 update", put, 400, "invalid_client_metadata").await;
}
