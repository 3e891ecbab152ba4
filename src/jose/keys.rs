//! Signing keys. A key is generated once (ES256, aws-lc-rs), stored in the database as PKCS#8
//! (AES-256-GCM encrypted when `keys.encryption_key` is set), and parsed once into a
//! [`Signer`] kept in memory. [`Keyring`] holds the current [`KeySet`] and swaps it when the
//! store shows a newer key (`autional key rotate`).

use crate::domain::model::KeyRecord;
use crate::util::{b64url, random_bytes, random_id};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const ENC_PREFIX: &[u8] = b"enc:v1:";

/// An ES256 key parsed once, with its JWS headers pre-encoded.
pub struct Signer {
    pub kid: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// base64url of `{"alg":"ES256","kid":…,"typ":"at+jwt"}`.
    pub header_at: String,
    /// base64url of `{"alg":"ES256","kid":…,"typ":"JWT"}`.
    pub header_jwt: String,
}

impl Signer {
    /// ES256 signature (r‖s, 64 bytes) over `msg`.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key
            .sign(&self.rng, msg)
            .expect("ECDSA signing failed")
            .as_ref()
            .to_vec()
    }
}

/// Every key the server knows: the one that signs, and every one that still verifies.
pub struct KeySet {
    pub signer: Signer,
    pub verifiers: HashMap<String, DecodingKey>,
    /// The JWKS document, serialized once.
    pub jwks: String,
    /// The newest key's creation time (to notice rotations).
    pub newest_ms: i64,
}

/// A freshly generated key ready to store.
pub fn generate(encryption_key: Option<&[u8]>, now_ms: i64) -> anyhow::Result<KeyRecord> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("could not generate an ES256 key"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("generated key does not parse"))?;
    let kid = random_id();
    let jwk = public_jwk(&kid, pair.public_key().as_ref());
    let private_key = match encryption_key {
        Some(k) => encrypt(k, pkcs8.as_ref())?,
        None => pkcs8.as_ref().to_vec(),
    };
    Ok(KeyRecord {
        kid,
        alg: "ES256".into(),
        private_key,
        public_jwk: jwk.to_string(),
        created_at_ms: now_ms,
        retired_at_ms: None,
    })
}

fn public_jwk(kid: &str, point: &[u8]) -> serde_json::Value {
    // Uncompressed SEC1 point: 0x04 ‖ x (32) ‖ y (32).
    let (x, y) = (&point[1..33], &point[33..65]);
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y),
        "kid": kid, "alg": "ES256", "use": "sig"
    })
}

fn encrypt(key: &[u8], plain: &[u8]) -> anyhow::Result<Vec<u8>> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| anyhow::anyhow!("bad encryption key"))?);
    let nonce_bytes = random_bytes::<12>();
    let mut buf = plain.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::from(b"autional-signing-key"),
        &mut buf,
    )
    .map_err(|_| anyhow::anyhow!("key encryption failed"))?;
    let mut out = ENC_PREFIX.to_vec();
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&buf);
    Ok(out)
}

fn decrypt(key: Option<&[u8]>, stored: &[u8]) -> anyhow::Result<Vec<u8>> {
    let Some(body) = stored.strip_prefix(ENC_PREFIX) else {
        return Ok(stored.to_vec());
    };
    let key = key.ok_or_else(|| {
        anyhow::anyhow!("signing keys are encrypted: set keys.encryption_key (AUTIONAL_KEYS__ENCRYPTION_KEY)")
    })?;
    if body.len() < 12 + 16 {
        anyhow::bail!("encrypted signing key is truncated");
    }
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| anyhow::anyhow!("bad encryption key"))?);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&body[..12]);
    let mut buf = body[12..].to_vec();
    let plain = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"autional-signing-key"),
            &mut buf,
        )
        .map_err(|_| anyhow::anyhow!("cannot decrypt the signing key: wrong keys.encryption_key"))?;
    Ok(plain.to_vec())
}

/// The base64url JWS header of an ES256 token of type `typ` signed by `kid`.
pub(crate) fn header(kid: &str, typ: &str) -> String {
    let h = serde_json::json!({"alg": "ES256", "kid": kid, "typ": typ});
    b64url(h.to_string().as_bytes())
}

impl KeySet {
    /// Builds the set from stored records; the newest unretired key signs. Keys retired longer
    /// ago than `keep_ms` are left out of the JWKS.
    pub fn from_records(
        records: &[KeyRecord],
        encryption_key: Option<&[u8]>,
        now_ms: i64,
        keep_ms: i64,
    ) -> anyhow::Result<KeySet> {
        let active = records
            .iter()
            .filter(|r| r.retired_at_ms.is_none())
            .max_by_key(|r| r.created_at_ms)
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let pkcs8 = decrypt(encryption_key, &active.private_key)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| anyhow::anyhow!("stored signing key {} does not parse", active.kid))?;
        let signer = Signer {
            kid: active.kid.clone(),
            key,
            rng: SystemRandom::new(),
            header_at: header(&active.kid, "at+jwt"),
            header_jwt: header(&active.kid, "JWT"),
        };
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        for r in records {
            if let Some(ret) = r.retired_at_ms {
                if now_ms - ret > keep_ms {
                    continue;
                }
            }
            let jwk: serde_json::Value = serde_json::from_str(&r.public_jwk)?;
            let (x, y) = (jwk["x"].as_str().unwrap_or(""), jwk["y"].as_str().unwrap_or(""));
            let dk = DecodingKey::from_ec_components(x, y)
                .map_err(|e| anyhow::anyhow!("stored public key {} is invalid: {e}", r.kid))?;
            verifiers.insert(r.kid.clone(), dk);
            jwks.push(jwk);
        }
        let newest_ms = records.iter().map(|r| r.created_at_ms).max().unwrap_or(0);
        Ok(KeySet {
            signer,
            verifiers,
            jwks: serde_json::json!({ "keys": jwks }).to_string(),
            newest_ms,
        })
    }
}

/// The current key set, swapped atomically when keys change.
pub struct Keyring {
    current: RwLock<Arc<KeySet>>,
}

impl Keyring {
    pub fn new(set: KeySet) -> Self {
        Keyring {
            current: RwLock::new(Arc::new(set)),
        }
    }
    pub fn get(&self) -> Arc<KeySet> {
        self.current.read().expect("keyring lock poisoned").clone()
    }
    pub fn replace(&self, set: KeySet) {
        *self.current.write().expect("keyring lock poisoned") = Arc::new(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_round_trip_and_need_the_key() {
        let ek = [7u8; 32];
        let rec = generate(Some(&ek), 1).unwrap();
        assert!(rec.private_key.starts_with(ENC_PREFIX));
        let set = KeySet::from_records(std::slice::from_ref(&rec), Some(&ek), 2, 1000).unwrap();
        assert_eq!(set.signer.kid, rec.kid);
        assert!(KeySet::from_records(std::slice::from_ref(&rec), None, 2, 1000).is_err());
        assert!(KeySet::from_records(std::slice::from_ref(&rec), Some(&[8u8; 32]), 2, 1000).is_err());
    }

    #[test]
    fn newest_active_key_signs_and_old_keys_still_verify() {
        let mut old = generate(None, 1).unwrap();
        old.retired_at_ms = Some(5);
        let new = generate(None, 5).unwrap();
        let set = KeySet::from_records(&[old.clone(), new.clone()], None, 6, 1000).unwrap();
        assert_eq!(set.signer.kid, new.kid);
        assert!(set.verifiers.contains_key(&old.kid));
        let set = KeySet::from_records(&[old.clone(), new], None, 2000, 1000).unwrap();
        assert!(!set.verifiers.contains_key(&old.kid));
    }
}
