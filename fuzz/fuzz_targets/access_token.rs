//! Bearer access tokens and `id_token_hint`s we are asked to accept: `jose::jwt::verify_access`
//! and `verify_id_token_hint` with a real key set. Mode bit 0 set: the rest is the claims,
//! signed by the server's own key (header `at+jwt`, or `JWT` with bit 1), so the claim checks
//! are reached; bit 2: a fresh `exp` is put in.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::jose::jwt::{verify_access, verify_id_token_hint};
use autional::jose::keys::{generate, KeySet};
use autional::util::b64url;
use common::*;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

fn keys() -> &'static KeySet {
    static K: OnceLock<KeySet> = OnceLock::new();
    K.get_or_init(|| {
        let rec = generate(None, 0).expect("key");
        KeySet::from_records(&[rec], None, 0, 0).expect("keyset")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = keys();
    let now = autional::util::now_ms() / 1000;
    let token = if mode & 1 == 0 {
        text(rest)
    } else {
        let mut payload = rest.to_vec();
        if mode & 4 != 0 {
            if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(rest) {
                m.insert("exp".into(), (now + 60).into());
                payload = serde_json::to_vec(&m).expect("json");
            }
        }
        let header = if mode & 2 == 0 {
            &keys.signer.header_at
        } else {
            &keys.signer.header_jwt
        };
        let mut t = format!("{header}.{}", b64url(&payload));
        let sig = keys.signer.sign(t.as_bytes());
        t.push('.');
        t.push_str(&b64url(&sig));
        t
    };
    if let Ok(c) = verify_access(keys, &token, ISSUER) {
        assert_eq!(c.iss, ISSUER);
        assert!(c.exp >= now - 1);
    }
    if let Ok(c) = verify_id_token_hint(keys, &token, ISSUER) {
        assert_eq!(c.iss, ISSUER);
    }
});
