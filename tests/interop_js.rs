//! Interop and browser end-to-end tests: real third-party clients against a real server.
//! - npm `openid-client` 6: discovery, code flow with PKCE, ID token validation, refresh,
//!   userinfo, reuse detection (`tests/js/interop-openid-client.mjs`).
//! - Debian's headless Chromium via `playwright-core`: sign in, consent (allow and deny) using
//!   only the pages, then code exchange and `/oauth/refresh` (`tests/js/e2e-browser.mjs`).
//!
//! `scripts/setup` installs Chromium and the npm packages; these tests fail (not skip) without.

mod common;

use common::{Server, PASSWORD, REDIRECT};
use std::path::Path;
use std::process::Command;

fn run_node(s: &Server, script: &str, client_id: &str) {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules").is_dir(),
        "tests/js/node_modules is missing: run scripts/setup (or `npm ci` in tests/js)"
    );
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = Command::new("node")
        .arg(script)
        .current_dir(&js)
        .env("AUTIONAL_ISSUER", &s.base)
        .env("CLIENT_ID", client_id)
        .env("REDIRECT_URI", REDIRECT)
        .env("USERNAME", "alice")
        .env("PASSWORD", PASSWORD)
        .env("ARTIFACT_DIR", &artifacts)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
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
