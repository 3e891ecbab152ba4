//! User passwords: argon2id (PHC strings). Only user passwords get a slow hash; client secrets
//! and tokens are random and stored as SHA-256.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = crate::util::random_bytes::<16>();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

pub fn verify(password: &str, phc: &str) -> bool {
    PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), phc).is_ok()
}

/// A valid hash of a random password, verified against when the user is unknown so that the
/// response time does not reveal which usernames exist.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash(&crate::util::random_token()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn argon2id_round_trip() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong", &h));
    }
}
