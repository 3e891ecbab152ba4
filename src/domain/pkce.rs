//! PKCE (RFC 7636), S256 only: challenge syntax and verifier check.

use crate::util::{b64url, ct_eq, sha256};

fn is_unreserved(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A `code_verifier` or S256 `code_challenge` must be 43–128 unreserved characters.
pub fn valid_syntax(s: &str) -> bool {
    (43..=128).contains(&s.len()) && is_unreserved(s)
}

/// True when `BASE64URL(SHA256(verifier)) == challenge`, compared in constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    valid_syntax(verifier) && ct_eq(b64url(&sha256(verifier.as_bytes())).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!verify_s256("short", challenge));
    }
}
