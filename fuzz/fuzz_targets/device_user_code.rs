//! What a person types as a device user code (RFC 8628 §6.1, `/oauth/device`):
//! `domain::device::normalize` and `display`. Property: a normalised code is 8 characters of the
//! alphabet and its display form normalises back to it.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::domain::device::{display, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = common::text(data);
    if let Some(code) = normalize(&s) {
        assert_eq!(code.len(), 8);
        assert_eq!(normalize(&display(&code)), Some(code.clone()));
        assert_eq!(normalize(&display(&code).to_lowercase()), Some(code));
    }
});
