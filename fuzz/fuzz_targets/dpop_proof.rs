//! DPoP proofs (RFC 9449) as the `DPoP` header carries them: `jose::dpop::check`, thumbprints
//! and server nonces. Mode bit 0 set: the rest of the input is the proof's claims, signed by
//! the harness's Ed25519 key (so the claim checks are reached); clear: the input is the proof.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::jose::dpop::{self, Expect, NonceCheck};
use common::*;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let nonce_key = [9u8; 32];
    let proof = if mode & 1 == 0 {
        text(rest)
    } else {
        let alg = if mode & 8 == 0 { "Ed25519" } else { "EdDSA" };
        sign_ed25519(&json!({"typ": "dpop+jwt", "alg": alg, "jwk": ed25519_jwk()}), rest)
    };
    let expect = Expect {
        htm: "POST",
        htu: "https://as.example/oauth/token",
        now_s: NOW_S,
        max_age_s: 60,
        access_token: (mode & 2 != 0).then_some("access-token"),
        nonce: NonceCheck {
            key: &nonce_key,
            window_s: 300,
            required: mode & 4 != 0,
        },
    };
    if let Ok(p) = dpop::check(&proof, &expect) {
        assert!(!p.jti.is_empty() && p.jti.len() <= 256);
        assert!((NOW_S - 60..=NOW_S + 60).contains(&p.iat));
        assert_eq!(p.jkt.len(), 43);
        assert!(dpop::ALGS.contains(&p.alg.as_str()));
        if mode & 1 != 0 {
            assert_eq!(Some(p.jkt), dpop::thumbprint(&ed25519_jwk()));
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(rest) {
        if let Some(t) = dpop::thumbprint(&v) {
            assert_eq!(t.len(), 43);
        }
    }
    let n = text(rest);
    if dpop::nonce_valid(&nonce_key, 300, NOW_S, &n) {
        // Only nonces we minted (this window or the previous one) are valid.
        assert!(n == dpop::nonce(&nonce_key, 300, NOW_S) || n == dpop::nonce(&nonce_key, 300, NOW_S - 300));
    }
});
