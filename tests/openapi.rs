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
use std::collections::{BTreeMap, BTreeSet};
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

/// What schemathesis saw: the statuses each operation (`"POST /oauth/token"`) answered.
type Seen = BTreeMap<String, BTreeSet<u16>>;

/// Runs schemathesis against `base` with the document at `doc`, fixed values for some path
/// parameters (`path.NAME`, so that operations on one object reach it), other values for some
/// operations (`(operation, NAME, value)`: a delete gets an object of its own, so that the
/// others keep theirs), and the extra arguments; every generated case must pass. Returns what
/// it saw.
fn schemathesis(
    doc: &std::path::Path,
    base: &str,
    params: &[(&str, &str)],
    per_operation: &[(&str, &str, &str)],
    extra: &[&str],
) -> Seen {
    let examples = examples();
    let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let mut toml = String::from("[parameters]\n");
    for (k, v) in params {
        toml.push_str(&format!("\"path.{k}\" = \"{v}\"\n"));
    }
    for (op, k, v) in per_operation {
        toml.push_str(&format!(
            "\n[[operations]]\ninclude-name = \"{op}\"\nparameters = {{ \"path.{k}\" = \"{v}\" }}\n"
        ));
    }
    std::io::Write::write_all(&mut config, toml.as_bytes()).unwrap();
    let report = tempfile::Builder::new()
        .suffix(".ndjson")
        .tempfile()
        .unwrap()
        .into_temp_path();
    let mut args = vec![
        "-m",
        "schemathesis.cli",
        "--config-file",
        config.path().to_str().unwrap(),
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
        // A pooled connection the server closed after `http.header_read_timeout` idle can race
        // with the next request on it: such network-level failures are retried (a server that
        // really stopped answering still fails every retry).
        "--request-retries",
        "2",
        "--workers",
        "2",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = python(&args);
    println!("{out}");
    let summary = out
        .lines()
        .find(|l| l.contains(" generated, "))
        .expect("schemathesis printed its summary");
    let (generated, rest) = summary.trim().split_once(" generated, ").unwrap();
    assert_eq!(
        rest,
        format!("{generated} passed"),
        "every generated case passes: {summary}"
    );
    let mut seen = Seen::new();
    for line in std::fs::read_to_string(&report).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let Some(finished) = event.get("ScenarioFinished") else {
            continue;
        };
        let label = finished["recorder"]["label"].as_str().unwrap().to_string();
        let statuses = seen.entry(label).or_default();
        let interactions = finished["recorder"]["interactions"].as_object();
        for i in interactions.into_iter().flat_map(|m| m.values()) {
            if let Some(code) = i["response"]["status_code"].as_u64() {
                statuses.insert(code as u16);
            }
        }
    }
    seen
}

/// Each of `ops` was answered with a success at least once, so its success schema was checked
/// against a real answer (not only its errors).
fn succeeded(seen: &Seen, ops: &[&str]) {
    for op in ops {
        let statuses = seen
            .get(*op)
            .unwrap_or_else(|| panic!("{op} was not exercised: {seen:?}"));
        assert!(
            statuses.iter().any(|s| (200..300).contains(s)),
            "{op} never succeeded (statuses {statuses:?})"
        );
    }
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
    let seen = schemathesis(
        &doc,
        &s.base,
        &[("client_id", "fuzz")],
        &[],
        &["-a", &auth, "--exclude-tag", "pages", "--exclude-tag", "ssf"],
    );
    succeeded(
        &seen,
        &[
            "POST /oauth/token",
            "POST /oauth/pushed-authorization",
            "POST /oauth/device/authorize",
            "POST /oauth/introspect",
            "POST /oauth/revoke",
            "GET /oauth/client/{client_id}",
            "GET /.well-known/openid-configuration",
            "GET /oauth/jwks",
            "GET /oauth/dpop/nonce",
            "GET /openapi.json",
        ],
    );
    // Refresh was reached with the client's credentials (its tokens are not in the document).
    assert!(seen["POST /oauth/refresh"].contains(&401), "{seen:?}");
    // The Shared Signals endpoints take the client's own access token (Bearer), not its
    // credentials: a run of their own.
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("fuzz", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer = format!("Authorization: Bearer {token}");
    let seen = schemathesis(&doc, &s.base, &[], &[], &["-H", &bearer, "--include-tag", "ssf"]);
    succeeded(&seen, &["GET /.well-known/ssf-configuration", "GET /ssf/stream"]);
}

/// Every admin operation, with an admin token of both scopes: no 5xx, every answer as
/// documented. (Stateful sequences are left out: they would delete the calling admin client
/// itself, after which every answer is a correct but uninformative 401.)
#[tokio::test]
async fn schemathesis_finds_nothing_on_the_admin_api() {
    let s = Server::start(&[("AUTIONAL_RATE_LIMIT__ENABLED", "false")]).await;
    // What the operations act on: a client and alice (kept), and a client and a user to delete.
    for id in ["target", "doomed"] {
        s.cli(&[
            "client",
            "create",
            "--name",
            id,
            "--client-id",
            id,
            "--redirect-uri",
            "https://rp.example/cb",
        ]);
    }
    s.run_cli_stdin(
        &["user", "create", "--username", "doomed", "--password-stdin"],
        common::PASSWORD,
    );
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
    let alice = s.scalar_str("SELECT id FROM users WHERE username = 'alice'").unwrap();
    let doomed = s.scalar_str("SELECT id FROM users WHERE username = 'doomed'").unwrap();
    let params = [("client_id", "target"), ("user_id", alice.as_str())];
    let deletes = [
        ("DELETE /admin/oauth/clients/{client_id}", "client_id", "doomed"),
        ("DELETE /admin/oauth/users/{user_id}", "user_id", doomed.as_str()),
    ];
    let seen = schemathesis(
        &doc,
        &base,
        &params,
        &deletes,
        &["-H", &header, "--phases", "examples,coverage,fuzzing"],
    );
    succeeded(
        &seen,
        &[
            "GET /admin/oauth/clients",
            "POST /admin/oauth/clients",
            "GET /admin/oauth/clients/{client_id}/stats",
            "GET /admin/oauth/clients/{client_id}/secrets",
            "POST /admin/oauth/clients/{client_id}/rotate-secret",
            "GET /admin/oauth/clients/{client_id}/tokens",
            "GET /admin/oauth/clients/{client_id}/audit-logs",
            "GET /admin/oauth/audit-events",
            "GET /admin/oauth/events",
            "GET /admin/oauth/devices",
            "GET /admin/oauth/users",
            "POST /admin/oauth/users",
            "GET /admin/oauth/tokens/user/{user_id}",
            "GET /openapi.json",
            "DELETE /admin/oauth/clients/{client_id}",
            "DELETE /admin/oauth/users/{user_id}",
        ],
    );
    // The token kept working throughout (a 401 answer would still conform, and prove nothing).
    let (status, _) = {
        let r = s
            .http
            .get(s.admin_url(0, "/admin/oauth/users"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, 200);
}
