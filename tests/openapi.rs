//! The OpenAPI 3.1 documents (SPEC §8) against a live server: both (the public one at
//! `/openapi.json`, the admin listener's at its `/openapi.json`) validate with PyPI
//! `openapi-spec-validator` and use the reference service's schema names; PyPI `schemathesis`
//! then drives the live server from them — the OAuth endpoints with a client's credentials, the
//! admin API with an admin token — and every response must be no 5xx, of a documented status and
//! content type, and conform to its documented schema. (That every route is documented and every
//! documented operation routed is a unit test beside the documents, `http::openapi`.)
//!
//! `scripts/setup` installs both Python packages; these tests fail (not skip) without them.
//! Examples per operation are bounded (`SCHEMATHESIS_EXAMPLES`, default 25) so CI stays fast;
//! `scripts/fuzz-openapi` runs the same with many more.

mod common;

use common::Server;
use serde_json::Value;
use std::process::Command;

/// The examples per operation (schemathesis `-n`).
fn examples() -> String {
    std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into())
}

async fn document(s: &Server, url: String) -> Value {
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    r.json().await.unwrap()
}

/// Runs python3 with `args`; panics with its output unless it succeeds.
fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs (run scripts/setup)");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn write_temp(name: &str, v: &Value) -> tempfile::TempPath {
    let mut f = tempfile::Builder::new()
        .prefix(name)
        .suffix(".json")
        .tempfile()
        .unwrap();
    serde_json::to_writer(&mut f, v).unwrap();
    f.into_temp_path()
}

/// Both documents are OpenAPI 3.1 that a real validator accepts, with the reference's schema
/// names, and each operation has a unique id.
#[tokio::test]
async fn documents_validate_and_use_the_reference_names() {
    let s = Server::start(&[]).await;
    let public = document(&s, s.url("/openapi.json")).await;
    let admin = document(&s, s.admin_url(0, "/openapi.json")).await;
    for (name, doc) in [("public", &public), ("admin", &admin)] {
        assert_eq!(doc["openapi"], "3.1.0", "{name}");
        let path = write_temp(name, doc);
        let out = python(&[
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\n\
             print('valid')",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.trim(), "valid", "{name}");
    }
    let schemas = public["components"]["schemas"].as_object().unwrap();
    for name in [
        "OAuthTokenResponse",
        "OAuthErrorResponse",
        "AuthorizationDetailDTO",
        "PushedAuthorizationResponse",
        "TokenIntrospectionResponse",
        "DeviceAuthorizationResponse",
        "PublicClientInfo",
        "SimpleResponse",
    ] {
        assert!(
            schemas.contains_key(name),
            "public schemas lack {name}: {:?}",
            schemas.keys()
        );
    }
    let admin_schemas = admin["components"]["schemas"].as_object().unwrap();
    for name in [
        "GrantItem",
        "UserItem",
        "OAuthAuditLogItem",
        "DeviceAuthorizationListItem",
        "ClientStatsResponse",
        "SimpleResponse",
    ] {
        assert!(
            admin_schemas.contains_key(name),
            "admin schemas lack {name}: {:?}",
            admin_schemas.keys()
        );
    }
    // The admin document is only on the admin listener.
    assert!(public["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| !p.starts_with("/admin/")));
    assert!(admin["paths"]
        .as_object()
        .unwrap()
        .keys()
        .all(|p| p.starts_with("/admin/") || p == "/openapi.json"));
    assert_eq!(
        admin["components"]["securitySchemes"]["admin"]["flows"]["clientCredentials"]["scopes"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
}

/// Runs schemathesis against `base` with the document at `doc`, and the extra arguments.
fn schemathesis(doc: &std::path::Path, base: &str, extra: &[&str]) -> String {
    let examples = examples();
    let mut args = vec![
        "-m",
        "schemathesis.cli",
        "run",
        doc.to_str().unwrap(),
        "--url",
        base,
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "-n",
        &examples,
        "--seed",
        "20261202",
        "--no-color",
        "--request-timeout",
        "10",
        "--workers",
        "2",
    ];
    args.extend_from_slice(extra);
    let out = python(&args);
    println!("{out}");
    out
}

/// How many cases schemathesis generated and passed (its summary line).
fn passed(out: &str) -> u64 {
    out.lines()
        .find_map(|l| {
            let l = l.trim();
            let (generated, rest) = l.split_once(" generated, ")?;
            let (passed, _) = rest.split_once(" passed")?;
            assert_eq!(generated, passed, "every generated case passes: {l}");
            passed.parse().ok()
        })
        .expect("schemathesis printed its summary")
}

/// The OAuth endpoints (token, refresh, revocation, introspection, PAR, device authorization,
/// registration) and the other public JSON endpoints, driven with a confidential client's
/// credentials: no 5xx, every answer as documented. The HTML pages are left to the browser
/// tests (their forms carry CSRF tokens a fuzzer cannot make).
#[tokio::test]
async fn schemathesis_finds_nothing_on_the_public_endpoints() {
    let s = Server::start(&[
        ("AUTIONAL_RATE_LIMIT__ENABLED", "false"),
        ("AUTIONAL_REGISTRATION__ENABLED", "true"),
    ])
    .await;
    let client = s.cli(&[
        "client",
        "create",
        "--name",
        "Fuzzed",
        "--client-id",
        "fuzz",
        "--redirect-uri",
        "https://rp.example/cb",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]);
    let secret = client["client_secret"].as_str().unwrap();
    let doc = write_temp("public", &document(&s, s.url("/openapi.json")).await);
    let auth = format!("fuzz:{secret}");
    let out = schemathesis(&doc, &s.base, &["-a", &auth, "--exclude-tag", "pages"]);
    assert!(passed(&out) > 100, "{out}");
    // The client's credentials worked: tokens were issued to it.
    let issued = s.scalar_i64("SELECT COUNT(*) FROM clients WHERE id = 'fuzz'");
    assert_eq!(issued, 1, "the fuzzed client still exists");
}

/// Every admin operation, with an admin token of both scopes: no 5xx, every answer as
/// documented. (Stateful sequences are left out: they would delete the calling admin client
/// itself, after which every answer is a correct but uninformative 401.)
#[tokio::test]
async fn schemathesis_finds_nothing_on_the_admin_api() {
    let s = Server::start(&[("AUTIONAL_RATE_LIMIT__ENABLED", "false")]).await;
    let secret = s.cli(&["client", "create", "--name", "Admin", "--admin", "--client-id", "ops"])["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("ops", Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "admin:read admin:write"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = write_temp("admin", &document(&s, s.admin_url(0, "/openapi.json")).await);
    let base = s.admin_url(0, "");
    let header = format!("Authorization: Bearer {token}");
    let out = schemathesis(&doc, &base, &["-H", &header, "--phases", "coverage,fuzzing"]);
    assert!(passed(&out) > 100, "{out}");
    // The token kept working throughout (a 401 answer would still conform, and prove nothing).
    // A new connection: the pooled one idled past the server's header-read timeout meanwhile.
    let (status, _) = {
        let r = reqwest::Client::new()
            .get(s.admin_url(0, "/admin/oauth/users"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, 200);
}
