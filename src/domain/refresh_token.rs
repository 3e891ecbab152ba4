//! The refresh token's format (SPEC §5): `rt_` + base64url of
//!
//! ```text
//! version (1 byte, 2) | key id (4) | generation (8, big-endian) | family id length (1) |
//! family id | secret (32 random bytes) | tag (16)
//! ```
//!
//! where the tag is HMAC-SHA256 under a server key (named by its key id) over everything before
//! it, truncated to 128 bits. The token says which family and generation it belongs to, and only
//! the server can make one that says so: an old token is recognised as one of the family's
//! without a stored row (reuse detection at any age with storage bounded per family), and a
//! forged one (a guessed family id, any generation) is refused before the store is asked, so it
//! can revoke nothing. The store keeps only the SHA-256 of the family's live tokens (the current
//! generation's, grace siblings included): a copy of the database yields no token that
//! refreshes. See docs/design/refresh-token-format.md for the threat model.
//!
//! Tokens of the earlier format (`rt_` + 32 random bytes, one stored row per token) are
//! [`Presented::Legacy`]: they keep working until they are rotated once.

use crate::util::{b64url, b64url_decode, ct_eq, sha256};
use aws_lc_rs::hmac;

/// What begins every refresh token of ours.
pub const PREFIX: &str = "rt_";
const VERSION: u8 = 2;
const KID_LEN: usize = 4;
const SECRET_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The longest family id a token carries (ours are 22 characters).
const MAX_FAMILY_ID: usize = 64;
/// Version, key id, generation, family id length, secret, tag: the bytes besides the family id.
const FIXED_LEN: usize = 1 + KID_LEN + 8 + 1 + SECRET_LEN + TAG_LEN;
/// The length of a legacy token's decoded body.
const LEGACY_LEN: usize = 32;

/// The server keys that authenticate refresh tokens: the first makes new tokens, every one
/// verifies (so a key can be replaced without logging anybody out: keep the old one second
/// until the families it signed for have rotated or expired).
pub struct TokenKeys {
    keys: Vec<([u8; KID_LEN], hmac::Key)>,
}

impl TokenKeys {
    /// Keys from their secret bytes, the current one first. Panics on an empty list (the
    /// configuration always yields one).
    pub fn new(secrets: &[Vec<u8>]) -> TokenKeys {
        assert!(!secrets.is_empty(), "at least one refresh-token key");
        TokenKeys {
            keys: secrets
                .iter()
                .map(|s| {
                    let mut kid = [0u8; KID_LEN];
                    kid.copy_from_slice(&sha256(s)[..KID_LEN]);
                    (kid, hmac::Key::new(hmac::HMAC_SHA256, s))
                })
                .collect(),
        }
    }

    fn key(&self, kid: &[u8]) -> Option<&hmac::Key> {
        self.keys.iter().find(|(k, _)| k[..] == *kid).map(|(_, key)| key)
    }
}

/// A refresh token as presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    /// A token of ours: its family, generation and stored hash.
    Bound {
        family_id: String,
        generation: i64,
        hash: [u8; 32],
    },
    /// A token of the earlier format, stored under its hash.
    Legacy([u8; 32]),
    /// Looks like ours but is not: a bad tag, an unknown key, a malformed body. Nothing of the
    /// store is touched for it.
    Forged,
}

/// The key a refresh token's live copy is stored under (its SHA-256).
pub fn hash(token: &str) -> [u8; 32] {
    sha256(token.as_bytes())
}

/// A new token of `generation` of `family_id` around `secret` (256 random bits from the
/// caller), and its hash.
pub fn mint(keys: &TokenKeys, family_id: &str, generation: i64, secret: [u8; SECRET_LEN]) -> (String, [u8; 32]) {
    let (kid, key) = &keys.keys[0];
    let id = family_id.as_bytes();
    assert!(id.len() <= MAX_FAMILY_ID, "family id too long for a token");
    let mut body = Vec::with_capacity(FIXED_LEN + id.len());
    body.push(VERSION);
    body.extend_from_slice(kid);
    body.extend_from_slice(&generation.to_be_bytes());
    body.push(id.len() as u8);
    body.extend_from_slice(id);
    body.extend_from_slice(&secret);
    let tag = hmac::sign(key, &body);
    body.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
    let token = format!("{PREFIX}{}", b64url(&body));
    let h = hash(&token);
    (token, h)
}

/// Reads a presented token; `None` when it is not a refresh token at all (no `rt_` prefix: an
/// access token, or garbage), so introspection and revocation can tell the kinds apart.
pub fn read(keys: &TokenKeys, token: &str) -> Option<Presented> {
    let body = token.strip_prefix(PREFIX)?;
    // The longest token we make is far below this; longer input is not ours (and is not decoded).
    if body.len() > 4 * (FIXED_LEN + MAX_FAMILY_ID) / 3 + 4 {
        return Some(Presented::Forged);
    }
    let Some(raw) = b64url_decode(body) else {
        return Some(Presented::Forged);
    };
    if raw.len() == LEGACY_LEN {
        return Some(Presented::Legacy(hash(token)));
    }
    Some(
        verify(keys, &raw).map_or(Presented::Forged, |(family_id, generation)| Presented::Bound {
            family_id,
            generation,
            hash: hash(token),
        }),
    )
}

/// The family id and generation of a well-formed body whose tag verifies.
fn verify(keys: &TokenKeys, raw: &[u8]) -> Option<(String, i64)> {
    if raw.len() < FIXED_LEN || raw[0] != VERSION {
        return None;
    }
    let id_len = raw[1 + KID_LEN + 8] as usize;
    if id_len > MAX_FAMILY_ID || raw.len() != FIXED_LEN + id_len {
        return None;
    }
    let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
    let key = keys.key(&raw[1..1 + KID_LEN])?;
    if !ct_eq(&hmac::sign(key, signed).as_ref()[..TAG_LEN], tag) {
        return None;
    }
    let generation = i64::from_be_bytes(raw[1 + KID_LEN..1 + KID_LEN + 8].try_into().ok()?);
    let id_at = 1 + KID_LEN + 8 + 1;
    let family_id = std::str::from_utf8(&raw[id_at..id_at + id_len]).ok()?.to_string();
    Some((family_id, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seeds: &[u8]) -> TokenKeys {
        TokenKeys::new(&seeds.iter().map(|s| vec![*s; 32]).collect::<Vec<_>>())
    }

    #[test]
    fn a_token_carries_its_family_and_generation_and_is_stored_by_hash() {
        let k = keys(&[1]);
        let (token, h) = mint(&k, "fam-1", 41, [7; 32]);
        assert!(token.starts_with("rt_"));
        assert_eq!(
            read(&k, &token),
            Some(Presented::Bound {
                family_id: "fam-1".into(),
                generation: 41,
                hash: h
            })
        );
        let (other, h2) = mint(&k, "fam-1", 41, [8; 32]);
        assert_ne!((token, h), (other, h2), "the secret is in the token");
    }

    #[test]
    fn a_forged_or_altered_token_is_not_ours() {
        let k = keys(&[1]);
        let (token, _) = mint(&k, "fam-1", 7, [7; 32]);
        // Made with another key (the attacker's), or any byte changed.
        let (foreign, _) = mint(&keys(&[9]), "fam-1", 3, [7; 32]);
        assert_eq!(read(&k, &foreign), Some(Presented::Forged));
        let mut raw = b64url_decode(&token[3..]).unwrap();
        for i in [0, 2, 6, 12, 14, 30, raw.len() - 1] {
            raw[i] ^= 1;
            let t = format!("rt_{}", b64url(&raw));
            assert_eq!(read(&k, &t), Some(Presented::Forged), "byte {i}");
            raw[i] ^= 1;
        }
        assert_eq!(read(&k, "rt_"), Some(Presented::Forged));
        assert_eq!(read(&k, "rt_!!"), Some(Presented::Forged));
        assert_eq!(read(&k, &format!("rt_{}", "A".repeat(5000))), Some(Presented::Forged));
        assert_eq!(read(&k, "eyJhbGciOiJFUzI1NiJ9.e30.sig"), None);
    }

    #[test]
    fn a_replaced_key_still_verifies_while_it_is_kept() {
        let old = keys(&[1]);
        let (token, h) = mint(&old, "fam-1", 2, [7; 32]);
        let rotated = keys(&[5, 1]);
        assert!(matches!(read(&rotated, &token), Some(Presented::Bound { hash, .. }) if hash == h));
        let (fresh, _) = mint(&rotated, "fam-1", 3, [7; 32]);
        assert!(matches!(
            read(&rotated, &fresh),
            Some(Presented::Bound { generation: 3, .. })
        ));
        assert_eq!(
            read(&keys(&[5]), &token),
            Some(Presented::Forged),
            "once dropped, refused"
        );
    }

    #[test]
    fn a_legacy_token_is_read_by_its_hash() {
        let k = keys(&[1]);
        let legacy = format!("rt_{}", b64url(&[3u8; 32]));
        assert_eq!(read(&k, &legacy), Some(Presented::Legacy(hash(&legacy))));
    }
}
