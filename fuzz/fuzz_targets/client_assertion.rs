//! Client assertions (RFC 7523 `private_key_jwt`): the unverified `sub` lookup, the header
//! check, key selection and every stateless check, against a JWK Set with a P-256 and an
//! Ed25519 key. Mode bit 0 set: the rest is the claims, signed by the harness's P-256 key
//! (`kid` k1); bit 1 set too: a fresh `exp` is put in, so the checks after `exp` are reached.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::grants::client_auth::{assertion_header, assertion_key, assertion_subject, verify_assertion_with};
use common::*;
use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::sync::OnceLock;

fn keys() -> &'static JwkSet {
    static K: OnceLock<JwkSet> = OnceLock::new();
    K.get_or_init(|| {
        let mut okp = ed25519_jwk();
        okp["kid"] = "k2".into();
        serde_json::from_value(json!({"keys": [p256_jwk("k1"), okp]})).expect("jwks")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = autional::util::now_ms() / 1000;
    let assertion = if mode & 1 == 0 {
        text(rest)
    } else {
        let mut payload = rest.to_vec();
        if mode & 2 != 0 {
            if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(rest) {
                m.insert("exp".into(), (now + 60).into());
                payload = serde_json::to_vec(&m).expect("json");
            }
        }
        sign_es256(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), &payload)
    };
    let _ = assertion_subject(&assertion);
    let Ok(header) = assertion_header(&assertion) else {
        return;
    };
    let Some(jwk) = assertion_key(keys(), &header) else {
        return;
    };
    let audiences = [ISSUER.to_string(), format!("{ISSUER}/oauth/token")];
    if let Ok(v) = verify_assertion_with(&assertion, &header, &jwk, "client-1", &audiences, now) {
        assert!(!v.jti.is_empty() && v.jti.len() <= 256);
        assert!(v.exp - now <= 300 && v.exp >= now - 5);
        assert_eq!(assertion_subject(&assertion).as_deref(), Some("client-1"));
    }
});
