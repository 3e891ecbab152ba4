//! Interop and browser end-to-end tests: real third-party clients against a real server.
//! - npm `openid-client` 6: discovery, code flow with PKCE, ID token validation, refresh,
//!   userinfo, reuse detection (`tests/js/interop-openid-client.mjs`).
//! - Debian's headless Chromium via `playwright-core`: sign in, consent (allow and deny) using
//!   only the pages, then code exchange and `/oauth/refresh` (`tests/js/e2e-browser.mjs`).
//!
//! - npm `openid-client` 6 with DPoP (RFC 9449) against a server that requires nonces: the
//!   library's `use_dpop_nonce` retry at the token endpoint and userinfo, `cnf.jkt`, refresh
//!   bound to the key, a second key refused, every advertised algorithm
//!   (`tests/js/interop-dpop.mjs`).
//! - npm `oauth4webapi` 3: PAR (RFC 9126) carrying `authorization_details` (RFC 9396) for a
//!   client that must use PAR, consent in plain words, narrowing and widening refreshes,
//!   single-use `request_uri` (`tests/js/interop-par-rar.mjs`).
//! - Chromium again: an authorization request with `authorization_details`, the consent page's
//!   plain-words lines and screenshot `consent-rar.png`, the exchange
//!   (`tests/js/e2e-rar-browser.mjs`).
//!
//! - The device grant (RFC 8628): npm `openid-client` 6 initiates and polls while Chromium signs
//!   in on the device page, enters the user code and approves (and, a second time, denies)
//!   (`tests/js/device-flow.mjs`).
//! - `client_credentials` with `private_key_jwt` (RFC 7523) through `openid-client` 6, plus
//!   hand-made assertions: `jti` replay, `aud` as the token endpoint, a too-distant `exp`
//!   (`tests/js/client-credentials-pkjwt.mjs`).
//!
//! `scripts/setup` installs Chromium and the npm packages; these tests fail (not skip) without.

mod common;

use common::{Server, PASSWORD, REDIRECT};
use std::path::Path;
use std::process::Command;

fn run_node(s: &Server, script: &str, client_id: &str) {
    run_node_with(s, &[script], client_id, &[]);
}

/// Runs `node ARGS…` in tests/js with the standard environment plus `extra`; fails the test
/// when the script fails.
fn run_node_with(s: &Server, args: &[&str], client_id: &str, extra: &[(&str, &str)]) {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules").is_dir(),
        "tests/js/node_modules is missing: run scripts/setup (or `npm ci` in tests/js)"
    );
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Command::new("node")
        .args(args)
        .current_dir(&js)
        .env("AUTIONAL_ISSUER", &s.base)
        .env("CLIENT_ID", client_id)
        .env("REDIRECT_URI", REDIRECT)
        .env("USERNAME", "alice")
        .env("PASSWORD", PASSWORD)
        .env("ARTIFACT_DIR", &artifacts)
        .envs(extra.iter().copied())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
}

#[tokio::test]
async fn openid_client_6_code_flow_pkce_id_token_refresh() {
    let s = Server::start(&[]).await;
    run_node(&s, "interop-openid-client.mjs", "pub");
    // The library's refresh rotated the token and its reuse check revoked the family.
    assert!(s.audit_count("refresh.reuse_detected") >= 1);
}

#[tokio::test]
async fn chromium_sign_in_consent_exchange_refresh_using_only_the_pages() {
    let s = Server::start(&[]).await;
    run_node(&s, "e2e-browser.mjs", "pub2");
}

#[tokio::test]
async fn openid_client_6_dpop_with_nonce_retry_refresh_and_userinfo() {
    let s = Server::start(&[("AUTIONAL_DPOP__REQUIRE_NONCE", "true")]).await;
    run_node(&s, "interop-dpop.mjs", "pub");
    // One grant for the ES256 key plus one per other algorithm, each bound to its key; the
    // refresh with a second key was refused without revoking anything.
    assert!(s.scalar_i64("SELECT COUNT(*) FROM families WHERE client_id = 'pub' AND dpop_jkt IS NOT NULL") >= 5);
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM families WHERE dpop_jkt IS NULL"), 0);
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM families WHERE revoked_at_ms IS NOT NULL"),
        0
    );
}

#[tokio::test]
async fn oauth4webapi_par_with_authorization_details_and_narrowing_refresh() {
    let s = Server::start(&[]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "PAR app",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--require-par",
        "--client-id",
        "par",
    ]);
    run_node(&s, "interop-par-rar.mjs", "par");
    // The grant keeps the consented details; narrowing applied to single responses only.
    let details = s
        .scalar_str("SELECT authorization_details FROM families WHERE client_id = 'par'")
        .expect("the grant stores its authorization_details");
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(
        details[0]["actions"],
        serde_json::json!(["list_accounts", "read_balances"])
    );
    // Three pushed requests: the refused one stored nothing, the used one is marked used.
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM par_requests WHERE client_id = 'par'"),
        2
    );
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM par_requests WHERE used_at_ms IS NOT NULL"),
        1
    );
}

#[tokio::test]
async fn chromium_shows_authorization_details_on_the_consent_page() {
    let s = Server::start(&[]).await;
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-artifacts/consent-rar.png");
    let _ = std::fs::remove_file(&shot);
    run_node(&s, "e2e-rar-browser.mjs", "pub2");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
}

#[tokio::test]
async fn device_flow_chromium_page_and_openid_client_polling() {
    let s = Server::start(&[("AUTIONAL_DEVICE__INTERVAL", "1s")]).await;
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
        "--grant-type",
        "refresh_token",
    ]);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-artifacts/device.png");
    let _ = std::fs::remove_file(&shot);
    run_node_with(
        &s,
        &["device-flow.mjs"],
        "tv",
        &[("CLIENT_NAME", "TV"), ("DEVICE_INTERVAL", "1")],
    );
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    // One grant (approved, then refreshed once); the denied and the slow_down codes issued nothing.
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM families WHERE client_id = 'tv'"), 1);
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM families WHERE revoked_at_ms IS NOT NULL"),
        0
    );
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt_through_openid_client_and_replay_refused() {
    let s = Server::start(&[]).await;
    let dir = s.dir.path().join("pkjwt");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_s = dir.to_str().unwrap();
    // The script makes the key pair; the server only ever sees the public JWK Set.
    run_node_with(&s, &["client-credentials-pkjwt.mjs", "keygen", dir_s], "m2m", &[]);
    let jwks = dir.join("jwks.json");
    s.cli(&[
        "client",
        "create",
        "--name",
        "M2M",
        "--client-id",
        "m2m",
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        jwks.to_str().unwrap(),
        "--grant-type",
        "client_credentials",
        "--scope",
        "api.read",
    ]);
    run_node_with(&s, &["client-credentials-pkjwt.mjs", "run", dir_s], "m2m", &[]);
    // client_credentials makes no grant, so nothing to refresh or revoke.
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM families WHERE client_id = 'm2m'"), 0);
}
