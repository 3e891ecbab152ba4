//! `Cookie` headers (`http::session::cookie`, which finds the session and CSRF cookies). Input
//! lines are separate `Cookie` headers. Properties: a found value has no `;` and appears in a
//! header as `name=value`; a session cookie put after arbitrary other cookies is found.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::http::{cookie, CSRF_COOKIE, SESSION_COOKIE};
use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, v);
        }
    }
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Some(v) = cookie(&headers, name) {
            assert!(!v.contains(';'));
            let needle = format!("{name}={v}");
            assert!(headers
                .get_all(header::COOKIE)
                .iter()
                .any(|h| h.to_str().is_ok_and(|h| h.contains(&needle))));
        }
    }
    // Our own cookie value (base64url) behind whatever the input sends, in one header.
    let others = common::text(data).replace(['\n', '\r'], "");
    if !others.contains(SESSION_COOKIE) && !others.chars().any(|c| c.is_control() || !c.is_ascii()) {
        let v = format!("{others}; {SESSION_COOKIE}=abc_DEF-123");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&v).expect("visible ASCII"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc_DEF-123"));
    }
});
