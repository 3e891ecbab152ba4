//! Interop tests with Python clients: PyPI Authlib's requests integration (`OAuth2Session`) as
//! a confidential client (`client_secret_basic`) through the code flow with PKCE S256, the
//! server's sign-in and consent pages walked with `requests`, ID token verification with
//! Authlib's `CodeIDToken`, userinfo, refresh with rotation and reuse detection
//! (`tests/py/authlib_code_flow.py`).
//!
//! `scripts/setup` installs `authlib` and `requests`; these tests fail (not skip) without.

mod common;

use common::{Server, PASSWORD, REDIRECT};
use std::path::Path;
use std::process::Command;

fn run_python(s: &Server, script: &str, envs: &[(&str, &str)]) {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let probe = Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .output()
        .expect("python3 runs (run scripts/setup)");
    assert!(
        probe.status.success(),
        "python3 cannot import authlib and requests: run scripts/setup \
         (python3 -m pip install 'authlib>=1.3' requests)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let out = Command::new("python3")
        .arg(script)
        .current_dir(&py)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("AUTIONAL_ISSUER", &s.base)
        .env("REDIRECT_URI", REDIRECT)
        .env("USERNAME", "alice")
        .env("PASSWORD", PASSWORD)
        .envs(envs.iter().copied())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
}

#[tokio::test]
async fn authlib_code_flow_client_secret_basic_and_refresh() {
    let s = Server::start(&[]).await;
    run_python(
        &s,
        "authlib_code_flow.py",
        &[("CLIENT_ID", "conf"), ("CLIENT_SECRET", &s.conf_secret)],
    );
    // Authlib's replay of the rotated token was detected and revoked the family.
    assert!(s.audit_count("refresh.reuse_detected") >= 1);
    assert_eq!(
        s.scalar_i64("SELECT COUNT(*) FROM families WHERE client_id = 'conf' AND revoked_at_ms IS NULL"),
        0
    );
}
