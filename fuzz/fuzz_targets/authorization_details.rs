//! `authorization_details` (RFC 9396) as a request carries it: JSON (form-encoded string or
//! JSON body value) through `rar::parse`, narrowing and the consent-page words. Properties:
//! valid details are covered by themselves; they survive the JSON round trip of
//! storage; the description has one line per entry.
#![no_main]

use autional::domain::rar::{self, Detail};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let types = ["payment_initiation".to_string(), "account_information".to_string()];
    let Ok(details) = rar::parse(&v, &types) else { return };
    assert!(!details.is_empty() && details.len() <= 20);
    // Everything granted is covered by the grant (a left-out field may take another granted
    // entry's value, so the result is not always identical).
    let narrowed = rar::narrow(&details, &details).expect("details cover themselves");
    assert_eq!(narrowed.len(), details.len());
    assert!(narrowed.iter().zip(&details).all(|(n, d)| n.kind == d.kind));
    let stored = serde_json::to_string(&details).expect("serialize");
    let back: Vec<Detail> = serde_json::from_str(&stored).expect("stored details parse");
    assert_eq!(back, details);
    assert_eq!(rar::describe(&details).len(), details.len());
});
