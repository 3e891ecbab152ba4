//! Scope strings (RFC 6749 §3.3): `Scope::parse`. Properties: the normal form parses to the same
//! set, every token is non-empty NQCHAR, a scope is a subset of itself.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::domain::scope::Scope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = common::text(data);
    let Ok(scope) = Scope::parse(&s) else { return };
    let normal = scope.to_string();
    assert_eq!(Scope::parse(&normal).as_ref(), Ok(&scope));
    assert!(normal.len() <= s.len());
    for t in scope.iter() {
        assert!(!t.is_empty() && !t.contains(' ') && !t.contains('"') && !t.contains('\\'));
    }
    assert!(scope.is_subset_of(&scope));
    let _ = scope.unknown(&["api:read".to_string()]);
});
