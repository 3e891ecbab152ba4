//! JWK Set documents as a client registers them (`jwks`) or serves them (`jwks_uri`): parsed as
//! `app::client_jwks` and the registration check do, every key turned into a verifier as an
//! assertion check would, thumbprinted, and used to check an assertion of the harness.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::grants::client_auth::{assertion_header, assertion_key, verify_assertion_with};
use common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::sync::OnceLock;

fn assertion() -> &'static str {
    static A: OnceLock<String> = OnceLock::new();
    A.get_or_init(|| {
        let claims = json!({"iss": "client-1", "sub": "client-1", "aud": ISSUER, "jti": "j", "exp": 4_000_000_000i64});
        sign_es256(&json!({"alg": "ES256", "kid": "k1"}), claims.to_string().as_bytes())
    })
}

fuzz_target!(|data: &[u8]| {
    // As registration checks an inline set, and as client_keys reads it back.
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        if v.get("keys").is_some_and(|k| k.is_array()) {
            let _ = serde_json::from_str::<JwkSet>(&v.to_string());
        }
        if let Some(arr) = v.get("keys").and_then(Value::as_array) {
            for k in arr {
                if let Some(t) = autional::jose::dpop::thumbprint(k) {
                    assert_eq!(t.len(), 43);
                }
            }
        }
    }
    // As `App::client_jwks` parses a fetched document.
    let Ok(set) = serde_json::from_slice::<JwkSet>(data) else {
        return;
    };
    for k in &set.keys {
        let _ = DecodingKey::from_jwk(k);
    }
    let a = assertion();
    let header = assertion_header(a).expect("harness assertion");
    if let Some(jwk) = assertion_key(&set, &header) {
        // A set without the harness's key can never verify the harness's assertion.
        let audiences = [ISSUER.to_string()];
        let r = verify_assertion_with(a, &header, &jwk, "client-1", &audiences, 4_000_000_000 - 100);
        if r.is_ok() {
            let ours = p256_jwk("k1");
            assert!(set.keys.iter().any(|k| {
                let v = serde_json::to_value(k).unwrap_or_default();
                v.get("x") == ours.get("x") && v.get("y") == ours.get("y")
            }));
        }
    }
});
