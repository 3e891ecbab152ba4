//! SPEC §7 "every bad input gets a clear error of the right kind and changes no stored state",
//! table-driven over authorize, token, refresh, revoke and introspect, against a real `autional`
//! process on a real SQLite file. Every case checks the exact status and error code, the
//! `Cache-Control: no-store` of JSON errors, and that `Server::snapshot()` is unchanged; at the
//! end the tokens and the code that were attacked still work.

mod common;

use base64::Engine;
use common::{hidden, pkce, rand_suffix, Server, REDIRECT};
use reqwest::header::{HeaderMap, CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::Method;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

const SCOPE: &str = "openid profile offline_access";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";
/// The `state` sent on every authorization request of the table.
const STATE: &str = "st-bad";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Which server a case is sent to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum On {
    Main,
    /// A second server with `code.ttl = 1s`, for the expired code.
    ShortCodeTtl,
}

#[derive(Debug)]
enum Expect {
    /// API endpoints: a JSON `error` with `Cache-Control: no-store`; `challenge` says whether a
    /// `WWW-Authenticate: Basic` header comes with it (RFC 6749 §5.2: when Basic was tried).
    Json {
        status: u16,
        error: &'static str,
        challenge: bool,
    },
    /// Authorization errors sent back to the client (RFC 6749 §4.1.2.1, RFC 9207): a redirect to
    /// the registered URI with `error`, our `state` and `iss`, and no `code`.
    Redirect { status: u16, error: &'static str },
    /// Errors shown to the user (client or redirect URI not trusted, ambiguous request, CSRF):
    /// an HTML page naming the error, and no Location.
    Page { status: u16, error: &'static str },
}

struct Case {
    name: &'static str,
    on: On,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expect: Expect,
}

impl Case {
    fn post(
        name: &'static str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
        expect: Expect,
    ) -> Case {
        Case {
            name,
            on: On::Main,
            method: Method::POST,
            path: path.to_string(),
            headers: content_type
                .map(|c| vec![("content-type", c.to_string())])
                .unwrap_or_default(),
            body: body.into(),
            expect,
        }
    }

    fn get(name: &'static str, path: String, expect: Expect) -> Case {
        Case {
            name,
            on: On::Main,
            method: Method::GET,
            path,
            headers: Vec::new(),
            body: Vec::new(),
            expect,
        }
    }

    fn header(mut self, k: &'static str, v: impl Into<String>) -> Case {
        self.headers.push((k, v.into()));
        self
    }

    fn basic(self, id: &str, secret: &str) -> Case {
        self.header("authorization", basic(id, secret))
    }

    fn on(mut self, on: On) -> Case {
        self.on = on;
        self
    }
}

fn json_err(status: u16, error: &'static str) -> Expect {
    Expect::Json {
        status,
        error,
        challenge: false,
    }
}

fn json_challenge(status: u16, error: &'static str) -> Expect {
    Expect::Json {
        status,
        error,
        challenge: true,
    }
}

fn redirect(error: &'static str) -> Expect {
    Expect::Redirect { status: 302, error }
}

fn page(status: u16, error: &'static str) -> Expect {
    Expect::Page { status, error }
}

fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish().into_bytes()
}

/// A valid authorization request for `client_id` (the query pairs), to break one piece at a time.
fn authz_pairs(client_id: &str, challenge: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", STATE),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `/oauth/authorize?` with the valid pub request, `set` replacing or adding and `drop` removing.
fn authz(set: &[(&str, &str)], drop: &[&str]) -> String {
    let mut pairs = authz_pairs("pub", &pkce(&"c".repeat(43)));
    pairs.retain(|(k, _)| !drop.contains(&k.as_str()));
    for (k, v) in set {
        match pairs.iter_mut().find(|(a, _)| a == k) {
            Some(p) => p.1 = v.to_string(),
            None => pairs.push((k.to_string(), v.to_string())),
        }
    }
    let q: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    format!("/oauth/authorize?{}", String::from_utf8(form(&q)).unwrap())
}

/// Sends `case` and checks the answer and that nothing stored changed.
async fn run(s: &Server, n: usize, case: &Case) {
    let name = case.name;
    let before = s.snapshot();
    let mut rb = s.http.request(case.method.clone(), s.url(&case.path));
    for (k, v) in &case.headers {
        rb = rb.header(*k, v);
    }
    if case.method == Method::POST {
        rb = rb.body(case.body.clone());
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: request failed: {e}"));
    let status = r.status().as_u16();
    let headers: HeaderMap = r.headers().clone();
    let text = r.text().await.unwrap();
    let h = |k| headers.get(k).map(|v| v.to_str().unwrap().to_string());
    let shown = match &case.expect {
        Expect::Json {
            status: want,
            error,
            challenge,
        } => {
            let body: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: not JSON ({status}): {text}"));
            assert_eq!(
                (status, body["error"].as_str().unwrap_or("")),
                (*want, *error),
                "{name}: body {body}"
            );
            assert_eq!(
                h(CACHE_CONTROL).as_deref(),
                Some("no-store"),
                "{name}: JSON errors are not cacheable"
            );
            let www = h(WWW_AUTHENTICATE);
            assert_eq!(www.is_some(), *challenge, "{name}: WWW-Authenticate {www:?}");
            if *challenge {
                assert!(www.unwrap().starts_with("Basic "), "{name}: Basic challenge");
            }
            format!("{status} {error}")
        }
        Expect::Redirect { status: want, error } => {
            assert_eq!(status, *want, "{name}: body {text}");
            let loc = h(LOCATION).unwrap_or_else(|| panic!("{name}: no Location"));
            let u = url::Url::parse(&loc).unwrap();
            assert_eq!(
                format!("{}://{}{}", u.scheme(), u.authority(), u.path()),
                REDIRECT,
                "{name}: redirects to the registered URI"
            );
            let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
            let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
            assert_eq!(get("error"), Some(*error), "{name}: {loc}");
            assert_eq!(get("state"), Some(STATE), "{name}: state in {loc}");
            assert_eq!(get("iss"), Some(s.base.as_str()), "{name}: iss in {loc}");
            assert_eq!(get("code"), None, "{name}: no code in {loc}");
            format!("{status} -> error={error}")
        }
        Expect::Page { status: want, error } => {
            assert_eq!(status, *want, "{name}: body {text}");
            assert_eq!(h(LOCATION), None, "{name}: an error page never redirects");
            let ct = h(CONTENT_TYPE).unwrap_or_default();
            assert!(ct.starts_with("text/html"), "{name}: content-type {ct}");
            assert!(
                text.contains(&format!("<code>{error}</code>")),
                "{name}: page names {error}: {text}"
            );
            format!("{status} page {error}")
        }
    };
    let after = s.snapshot();
    assert_eq!(before, after, "{name}: a failed request changed stored state");
    let _ = writeln!(
        std::io::stderr(),
        "case {n:2} {:<10} {name:<62} {shown}",
        case.path.split('?').next().unwrap().trim_start_matches("/oauth/")
    );
}

async fn status_body(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn bad_requests_get_the_right_error_and_change_nothing() {
    // The expired code first: it needs a second server and time to pass.
    let short = Server::start(&[("AUTIONAL_CODE__TTL", "1")]).await;
    let expired = short.authorize("pub", SCOPE).await;
    let expired_at = Instant::now();

    let s = Server::start(&[]).await;
    // A good refresh token of `pub`, with its access token.
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let at = t["access_token"].as_str().unwrap().to_string();
    // A refresh token of the confidential `conf` (client_secret_basic).
    let a = s.authorize("conf", SCOPE).await;
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("conf", Some(&s.conf_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &a.code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &a.verifier),
        ])
        .send()
        .await
        .unwrap();
    let (st, body) = status_body(r).await;
    assert_eq!(st, 200, "conf code exchange: {body}");
    let conf_rt = serde_json::from_str::<Value>(&body).unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // A good, unexchanged code of `pub`, attacked below and exchanged at the end.
    let code = s.authorize("pub", SCOPE).await;
    // Two sign-in sessions of alice, and a consent form token of the first one, for `pub2`
    // (which alice has not consented to yet).
    let pub2_pairs = authz_pairs("pub2", &pkce(&"d".repeat(43)));
    let pub2_q: Vec<(&str, &str)> = pub2_pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let pub2_path = format!("/oauth/authorize?{}", String::from_utf8(form(&pub2_q)).unwrap());
    let (cookies_a, _) = s.sign_in(&pub2_path).await;
    let (cookies_b, _) = s.sign_in(&pub2_path).await;
    let r = s
        .http
        .get(s.url(&pub2_path))
        .header("cookie", &cookies_a)
        .send()
        .await
        .unwrap();
    let (st, html) = status_body(r).await;
    assert_eq!(st, 200, "consent page for pub2");
    let csrf_a = hidden(&html, "csrf_token").expect("consent csrf token");
    let consent = |csrf: Option<&str>| {
        let mut p = pub2_q.clone();
        if let Some(c) = csrf {
            p.push(("csrf_token", c));
        }
        p.push(("approved", "true"));
        form(&p)
    };

    // A public device client (a TV) with the device grant.
    s.cli(&[
        "client",
        "create",
        "--name",
        "TV",
        "--public",
        "--client-id",
        "tv",
        "--grant-type",
        DEVICE_GRANT,
        "--grant-type",
        "refresh_token",
    ]);

    let unknown_rt = format!("rt_{}", "A".repeat(43));
    let good_refresh = serde_json::json!({"refresh_token": rt, "client_id": "pub"});
    let code_form = |client: &str, redirect: &str, verifier: &str| {
        let mut p = vec![("grant_type", "authorization_code"), ("code", &code.code)];
        if !redirect.is_empty() {
            p.push(("redirect_uri", redirect));
        }
        if !client.is_empty() {
            p.push(("client_id", client));
        }
        if !verifier.is_empty() {
            p.push(("code_verifier", verifier));
        }
        form(&p)
    };
    let wrong_verifier = format!("w{}", "x".repeat(50)) + &rand_suffix();

    const R: &str = "/oauth/refresh";
    const T: &str = "/oauth/token";
    const V: &str = "/oauth/revoke";
    const I: &str = "/oauth/introspect";
    const D: &str = "/oauth/device/authorize";
    let cases: Vec<Case> = vec![
        // ---- POST /oauth/refresh (SPEC §4: JSON or form; invalid_grant is 401 here) ----
        Case::post(
            "refresh: Content-Type text/plain",
            R,
            Some("text/plain"),
            good_refresh.to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: no Content-Type",
            R,
            None,
            good_refresh.to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: malformed JSON",
            R,
            Some(JSON),
            r#"{"refresh_token":"#,
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: JSON array",
            R,
            Some(JSON),
            "[]",
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: empty JSON body",
            R,
            Some(JSON),
            "",
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: JSON object with trailing garbage",
            R,
            Some(JSON),
            format!("{good_refresh} x"),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: missing refresh_token",
            R,
            Some(JSON),
            r#"{"client_id":"pub"}"#,
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: missing client_id, no Basic",
            R,
            Some(JSON),
            serde_json::json!({ "refresh_token": rt }).to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: refresh_token twice in a form body",
            R,
            Some(FORM),
            form(&[
                ("refresh_token", "rt_other"),
                ("refresh_token", &rt),
                ("client_id", "pub"),
            ]),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: duplicate key in JSON",
            R,
            Some(JSON),
            format!(r#"{{"refresh_token":"rt_other","refresh_token":"{rt}","client_id":"pub"}}"#),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: refresh_token is a number",
            R,
            Some(JSON),
            r#"{"refresh_token":12345,"client_id":"pub"}"#,
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: body over 64 KiB",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": rt, "client_id": "pub", "pad": "x".repeat(70 * 1024)}).to_string(),
            json_err(413, "invalid_request"),
        ),
        Case::post(
            "refresh: grant_type=authorization_code",
            R,
            Some(FORM),
            form(&[
                ("grant_type", "authorization_code"),
                ("refresh_token", &rt),
                ("client_id", "pub"),
            ]),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "refresh: unknown refresh token",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": unknown_rt, "client_id": "pub"}).to_string(),
            json_err(401, "invalid_grant"),
        ),
        Case::post(
            "refresh: unknown client",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": rt, "client_id": "nobody"}).to_string(),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "refresh: pub2 presents pub's token",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": rt, "client_id": "pub2"}).to_string(),
            json_err(401, "invalid_grant"),
        ),
        Case::post(
            "refresh: public client sends a client_secret",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": rt, "client_id": "pub", "client_secret": "x"}).to_string(),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "refresh: public client uses Basic",
            R,
            Some(FORM),
            form(&[("refresh_token", &rt)]),
            json_challenge(401, "invalid_client"),
        )
        .basic("pub", "x"),
        Case::post(
            "refresh: conf's token with client_id only (auth skipped)",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": conf_rt, "client_id": "conf"}).to_string(),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "refresh: malformed Basic header",
            R,
            Some(FORM),
            form(&[("refresh_token", &conf_rt)]),
            json_err(400, "invalid_request"),
        )
        .header("authorization", "Basic !!!notbase64"),
        Case::post(
            "refresh: Basic with a wrong secret",
            R,
            Some(FORM),
            form(&[("refresh_token", &conf_rt)]),
            json_challenge(401, "invalid_client"),
        )
        .basic("conf", "wrong-secret"),
        Case::post(
            "refresh: authorization_details the grant does not have",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": rt, "client_id": "pub", "authorization_details": [{"type": "account_information"}]}).to_string(),
            json_err(400, "invalid_authorization_details"),
        ),
        Case::post(
            "refresh: authorization_details of an unknown type",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": rt, "client_id": "pub", "authorization_details": [{"type": "root_access"}]}).to_string(),
            json_err(400, "invalid_authorization_details"),
        ),
        Case::post(
            "refresh: malformed DPoP header",
            R,
            Some(JSON),
            good_refresh.to_string(),
            json_err(400, "invalid_dpop_proof"),
        )
        .header("dpop", "not.a.proof".to_string()),
        Case::post(
            "refresh: scope wider than the grant",
            R,
            Some(JSON),
            serde_json::json!({"refresh_token": rt, "client_id": "pub", "scope": "openid email"}).to_string(),
            json_err(400, "invalid_scope"),
        ),
        // ---- POST /oauth/token (RFC 6749 §5.2 status codes) ----
        Case::post(
            "token: missing grant_type",
            T,
            Some(FORM),
            form(&[("code", &code.code), ("client_id", "pub")]),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "token: grant_type=password",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", common::PASSWORD),
                ("client_id", "pub"),
            ]),
            json_err(400, "unsupported_grant_type"),
        ),
        Case::post(
            "token: unknown grant_type with a refresh_token (no fall-through to refresh)",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("refresh_token", &rt),
                ("client_id", "pub"),
            ]),
            json_err(400, "unsupported_grant_type"),
        ),
        Case::post(
            "token: JSON body",
            T,
            Some(JSON),
            serde_json::json!({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "pub"}).to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "token: wrong PKCE code_verifier",
            T,
            Some(FORM),
            code_form("pub", REDIRECT, &wrong_verifier),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: code_verifier too short",
            T,
            Some(FORM),
            code_form("pub", REDIRECT, "short"),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "token: missing code_verifier for a PKCE code",
            T,
            Some(FORM),
            code_form("pub", REDIRECT, ""),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: wrong redirect_uri",
            T,
            Some(FORM),
            code_form("pub", "http://127.0.0.1:9/other", &code.verifier),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: missing redirect_uri that the request had",
            T,
            Some(FORM),
            code_form("pub", "", &code.verifier),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: code used by another client (pub2)",
            T,
            Some(FORM),
            code_form("pub2", REDIRECT, &code.verifier),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: pub's code used by confidential conf",
            T,
            Some(FORM),
            code_form("", REDIRECT, &code.verifier),
            json_err(400, "invalid_grant"),
        )
        .basic("conf", &s.conf_secret),
        Case::post(
            "token: expired code",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "authorization_code"),
                ("code", &expired.code),
                ("redirect_uri", REDIRECT),
                ("client_id", "pub"),
                ("code_verifier", &expired.verifier),
            ]),
            json_err(400, "invalid_grant"),
        )
        .on(On::ShortCodeTtl),
        Case::post(
            "token: missing code",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT),
                ("client_id", "pub"),
                ("code_verifier", &code.verifier),
            ]),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "token: refresh_token grant, unknown token",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &unknown_rt),
                ("client_id", "pub"),
            ]),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: refresh_token grant, pub2 presents pub's token",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", "pub2"),
            ]),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: Basic and client_secret in the body",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &conf_rt),
                ("client_secret", &s.conf_secret),
            ]),
            json_err(400, "invalid_request"),
        )
        .basic("conf", &s.conf_secret),
        Case::post(
            "token: Basic client differs from body client_id",
            T,
            Some(FORM),
            form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &conf_rt),
                ("client_id", "pub"),
            ]),
            json_err(400, "invalid_request"),
        )
        .basic("conf", &s.conf_secret),
        Case::post(
            "token: client_secret_post client uses Basic",
            T,
            Some(FORM),
            form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]),
            json_challenge(401, "invalid_client"),
        )
        .basic("post", &s.post_secret),
        Case::post(
            "token: unknown client via Basic",
            T,
            Some(FORM),
            form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]),
            json_challenge(401, "invalid_client"),
        )
        .basic("nobody", "secret"),
        // ---- GET /oauth/authorize ----
        Case::get(
            "authorize: missing client_id",
            authz(&[], &["client_id"]),
            page(400, "invalid_request"),
        ),
        Case::get(
            "authorize: unknown client_id",
            authz(&[("client_id", "nobody")], &[]),
            page(400, "invalid_client"),
        ),
        Case::get(
            "authorize: unregistered redirect_uri",
            authz(&[("redirect_uri", "https://evil.example/cb")], &[]),
            page(400, "invalid_request"),
        ),
        Case::get(
            "authorize: redirect_uri not exactly the registered one",
            authz(&[("redirect_uri", "http://127.0.0.1:9/cb/")], &[]),
            page(400, "invalid_request"),
        ),
        Case::get(
            "authorize: state given twice",
            authz(&[], &[]) + "&state=again",
            page(400, "invalid_request"),
        ),
        Case::get(
            "authorize: missing response_type",
            authz(&[], &["response_type"]),
            redirect("invalid_request"),
        ),
        Case::get(
            "authorize: response_type=token",
            authz(&[("response_type", "token")], &[]),
            redirect("unsupported_response_type"),
        ),
        Case::get(
            "authorize: code_challenge_method=plain",
            authz(&[("code_challenge_method", "plain")], &[]),
            redirect("invalid_request"),
        ),
        Case::get(
            "authorize: public client without code_challenge",
            authz(&[], &["code_challenge", "code_challenge_method"]),
            redirect("invalid_request"),
        ),
        Case::get(
            "authorize: unknown scope",
            authz(&[("scope", "openid admin")], &[]),
            redirect("invalid_scope"),
        ),
        Case::get(
            "authorize: unknown request_uri",
            authz(&[("request_uri", "urn:ietf:params:oauth:request_uri:x")], &[]),
            page(400, "invalid_request_uri"),
        ),
        Case::get(
            "authorize: unknown authorization_details type",
            authz(&[("authorization_details", r#"[{"type":"root_access"}]"#)], &[]),
            redirect("invalid_authorization_details"),
        ),
        Case::get(
            "authorize: authorization_details not JSON",
            authz(&[("authorization_details", "[{")], &[]),
            redirect("invalid_request"),
        ),
        Case::get(
            "authorize: authorization_details with an unknown field",
            authz(&[("authorization_details", r#"[{"type":"account_information","admin":true}]"#)], &[]),
            redirect("invalid_authorization_details"),
        ),
        Case::get(
            "authorize: malformed dpop_jkt",
            authz(&[("dpop_jkt", "not-a-thumbprint")], &[]),
            redirect("invalid_request"),
        ),
        // ---- POST /oauth/pushed-authorization (PAR) ----
        Case::post(
            "par: no client authentication",
            "/oauth/pushed-authorization",
            Some(FORM),
            form(&[("response_type", "code"), ("redirect_uri", REDIRECT), ("scope", "openid")]),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "par: request_uri inside a pushed request",
            "/oauth/pushed-authorization",
            Some(FORM),
            authz(&[("request_uri", "urn:x")], &[]).split_once('?').unwrap().1.to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "par: unregistered redirect_uri",
            "/oauth/pushed-authorization",
            Some(FORM),
            authz(&[("redirect_uri", "https://evil.example/cb")], &[]).split_once('?').unwrap().1.to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "par: unknown authorization_details type",
            "/oauth/pushed-authorization",
            Some(FORM),
            authz(&[("authorization_details", r#"[{"type":"root_access"}]"#)], &[]).split_once('?').unwrap().1.to_string(),
            json_err(400, "invalid_authorization_details"),
        ),
        Case::post(
            "par: JSON body that is not an object",
            "/oauth/pushed-authorization",
            Some(JSON),
            r#"["client_id","pub"]"#.to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "par: JSON body with a non-string client_id",
            "/oauth/pushed-authorization",
            Some(JSON),
            r#"{"client_id":["pub"],"response_type":"code"}"#.to_string(),
            json_err(400, "invalid_request"),
        ),
        // ---- POST /oauth/authorize (the consent decision), signed in ----
        Case::post(
            "consent: bogus csrf_token",
            "/oauth/authorize",
            Some(FORM),
            consent(Some("bogus")),
            page(403, "invalid_request"),
        )
        .header("cookie", cookies_b.clone()),
        Case::post(
            "consent: no csrf_token",
            "/oauth/authorize",
            Some(FORM),
            consent(None),
            page(403, "invalid_request"),
        )
        .header("cookie", cookies_b.clone()),
        Case::post(
            "consent: csrf_token of another session",
            "/oauth/authorize",
            Some(FORM),
            consent(Some(&csrf_a)),
            page(403, "invalid_request"),
        )
        .header("cookie", cookies_b.clone()),
        // ---- POST /oauth/revoke (RFC 7009) ----
        Case::post(
            "revoke: missing token",
            V,
            Some(FORM),
            form(&[("client_id", "pub")]),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "revoke: another client's refresh token",
            V,
            Some(FORM),
            form(&[("token", &rt), ("client_id", "pub2")]),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "revoke: another client's access token",
            V,
            Some(FORM),
            form(&[("token", &at), ("client_id", "pub2")]),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "revoke: unknown client",
            V,
            Some(FORM),
            form(&[("token", &rt), ("client_id", "nobody")]),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "revoke: malformed JSON body",
            V,
            Some(JSON),
            format!("{{\"token\": \"{rt}\", \"client_id\": "),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "revoke: JSON body with a repeated token",
            V,
            Some(JSON),
            format!("{{\"token\": \"{rt}\", \"token\": \"{rt}\", \"client_id\": \"pub\"}}"),
            json_err(400, "invalid_request"),
        ),
        // ---- POST /oauth/introspect (RFC 7662) ----
        Case::post(
            "introspect: public client",
            I,
            Some(FORM),
            form(&[("token", &rt), ("client_id", "pub")]),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "introspect: no client authentication",
            I,
            Some(FORM),
            form(&[("token", &rt)]),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "introspect: Basic with a wrong secret",
            I,
            Some(FORM),
            form(&[("token", &rt)]),
            json_challenge(401, "invalid_client"),
        )
        .basic("conf", "wrong-secret"),
        Case::post(
            "introspect: missing token",
            I,
            Some(FORM),
            form(&[]),
            json_err(400, "invalid_request"),
        )
        .basic("conf", &s.conf_secret),
        Case::post(
            "introspect: Content-Type application/json",
            I,
            Some(JSON),
            serde_json::json!({ "token": rt }).to_string(),
            json_err(400, "invalid_request"),
        )
        .basic("conf", &s.conf_secret),
        // ---- POST /oauth/device/authorize (RFC 8628 §3.1–3.2) ----
        Case::post(
            "device: unknown client",
            D,
            Some(FORM),
            form(&[("client_id", "nobody"), ("scope", "openid")]),
            json_err(401, "invalid_client"),
        ),
        Case::post(
            "device: client without the device grant (pub)",
            D,
            Some(FORM),
            form(&[("client_id", "pub"), ("scope", "openid")]),
            json_err(400, "unauthorized_client"),
        ),
        Case::post(
            "device: unknown scope",
            D,
            Some(FORM),
            form(&[("client_id", "tv"), ("scope", "openid admin")]),
            json_err(400, "invalid_scope"),
        ),
        Case::post(
            "device: scope the client may not request",
            D,
            Some(FORM),
            form(&[("client_id", "tv"), ("scope", "openid api.read")]),
            json_err(400, "invalid_scope"),
        ),
        Case::post(
            "device: JSON body with a non-string scope",
            D,
            Some(JSON),
            serde_json::json!({"client_id": "tv", "scope": ["openid"]}).to_string(),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "device: public client sends a client_secret",
            D,
            Some(FORM),
            form(&[("client_id", "tv"), ("client_secret", "x"), ("scope", "openid")]),
            json_err(401, "invalid_client"),
        ),
        // ---- POST /oauth/token, device_code and client_credentials grants ----
        Case::post(
            "token: device_code grant, missing device_code",
            T,
            Some(FORM),
            form(&[("grant_type", DEVICE_GRANT), ("client_id", "tv")]),
            json_err(400, "invalid_request"),
        ),
        Case::post(
            "token: device_code grant, unknown device_code",
            T,
            Some(FORM),
            form(&[
                ("grant_type", DEVICE_GRANT),
                ("device_code", "unknown-device-code"),
                ("client_id", "tv"),
            ]),
            json_err(400, "invalid_grant"),
        ),
        Case::post(
            "token: device_code grant by a client without it (pub)",
            T,
            Some(FORM),
            form(&[
                ("grant_type", DEVICE_GRANT),
                ("device_code", "unknown-device-code"),
                ("client_id", "pub"),
            ]),
            json_err(400, "unauthorized_client"),
        ),
        Case::post(
            "token: client_credentials by the public client pub",
            T,
            Some(FORM),
            form(&[("grant_type", "client_credentials"), ("client_id", "pub")]),
            json_err(400, "unauthorized_client"),
        ),
        Case::post(
            "token: client_credentials by conf, which lacks the grant",
            T,
            Some(FORM),
            form(&[("grant_type", "client_credentials")]),
            json_err(400, "unauthorized_client"),
        )
        .basic("conf", &s.conf_secret),
        // ---- Dynamic registration (RFC 7591/7592), off by default ----
        Case::post(
            "register: registration disabled",
            "/oauth/register",
            Some(JSON),
            serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}).to_string(),
            json_err(403, "access_denied"),
        ),
        Case::get(
            "register: management while disabled",
            "/oauth/register/pub".to_string(),
            json_err(403, "access_denied"),
        )
        .header("authorization", "Bearer some-token"),
        // ---- GET /oauth/logout (OIDC RP-Initiated Logout) ----
        Case::get(
            "logout: garbage id_token_hint",
            "/oauth/logout?id_token_hint=not.an.idtoken".to_string(),
            page(400, "invalid_request"),
        ),
        Case::get(
            "logout: post_logout_redirect_uri without hint or client_id",
            format!(
                "/oauth/logout?post_logout_redirect_uri={}&state=s1",
                common::enc("http://127.0.0.1:9/bye")
            ),
            page(400, "invalid_request"),
        ),
        Case::get(
            "logout: post_logout_redirect_uri not registered for the client",
            format!(
                "/oauth/logout?client_id=pub&post_logout_redirect_uri={}",
                common::enc("https://evil.example/bye")
            ),
            page(400, "invalid_request"),
        ),
        Case::get(
            "logout: unknown client_id",
            "/oauth/logout?client_id=nobody".to_string(),
            page(400, "invalid_request"),
        ),
    ];
    assert!(cases.len() >= 30);

    // The short-lived code must be past its 1 s lifetime.
    let wait = Duration::from_millis(1200).saturating_sub(expired_at.elapsed());
    tokio::time::sleep(wait).await;

    for (i, case) in cases.iter().enumerate() {
        let server = match case.on {
            On::Main => &s,
            On::ShortCodeTtl => &short,
        };
        run(server, i + 1, case).await;
    }
    let _ = writeln!(std::io::stderr(), "{} cases passed", cases.len());

    // Nothing changed for real: the attacked refresh tokens still refresh...
    let (st, body) = status_body(s.refresh("pub", &rt).await).await;
    assert_eq!(st, 200, "pub's refresh token still refreshes: {body}");
    let r = s
        .http
        .post(s.url("/oauth/refresh"))
        .basic_auth("conf", Some(&s.conf_secret))
        .form(&[("refresh_token", &conf_rt)])
        .send()
        .await
        .unwrap();
    let (st, body) = status_body(r).await;
    assert_eq!(st, 200, "conf's refresh token still refreshes: {body}");
    // ...and the code attacked with a wrong verifier, redirect_uri and client still exchanges.
    let (st, body) = status_body(s.exchange("pub", &code.code, &code.verifier).await).await;
    assert_eq!(st, 200, "the attacked code still exchanges: {body}");
}
