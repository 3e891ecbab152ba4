//! Scopes as sets (RFC 6749 §3.3): parsing, validation against what a client may ask for,
//! and the subset check used when a refresh narrows the scope (SPEC §4 rule 6).

use std::collections::BTreeSet;

/// The scopes this server knows. Anything else is `invalid_scope`.
pub const SUPPORTED: &[&str] = &["openid", "profile", "email", "offline_access"];

/// A set of scope tokens in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a space-separated scope string. Rejects empty tokens' characters outside
    /// RFC 6749's `NQCHAR` set.
    pub fn parse(s: &str) -> Result<Scope, &'static str> {
        let mut set = BTreeSet::new();
        for tok in s.split(' ') {
            if tok.is_empty() {
                continue;
            }
            if !tok
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err("scope contains characters outside RFC 6749 §3.3");
            }
            set.insert(tok.to_string());
        }
        Ok(Scope(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }

    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| s.as_str())
    }

    /// Tokens this server does not know, if any (`custom` are the configured API scopes; the
    /// consent API's scope is known, and only clients registered with it may ask for it).
    pub fn unknown(&self, custom: &[String]) -> Vec<&str> {
        self.iter()
            .filter(|s| {
                !SUPPORTED.contains(s) && !super::consents::is_consents_scope(s) && !custom.iter().any(|c| c == s)
            })
            .collect()
    }

    pub fn to_string_sorted(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string_sorted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let s = Scope::parse("profile  openid").unwrap();
        assert_eq!(s.to_string(), "openid profile");
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("").unwrap().is_empty());
    }

    #[test]
    fn subset() {
        let g = Scope::parse("openid profile email").unwrap();
        assert!(Scope::parse("openid email").unwrap().is_subset_of(&g));
        assert!(!Scope::parse("openid offline_access").unwrap().is_subset_of(&g));
    }

    #[test]
    fn unknown_tokens() {
        assert_eq!(Scope::parse("openid admin").unwrap().unknown(&[]), vec!["admin"]);
        assert!(Scope::parse("openid admin")
            .unwrap()
            .unknown(&["admin".to_string()])
            .is_empty());
    }
}
