//! `Cookie` headers (`http::cookies::Cookie::get`, which finds the session and CSRF cookies, for
//! an http and an https issuer). Input lines are separate `Cookie` headers. Properties: a found
//! value has no `;` and appears in a header as `name=value` pair (whitespace around name and
//! value allowed, RFC 6265 §5.2); a name sent twice is never found; a
//! session cookie put after arbitrary other cookies (that do not name it) is found.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::config::Config;
use autional::http::cookies::Cookie;
use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn configs() -> &'static [Config; 2] {
    static C: OnceLock<[Config; 2]> = OnceLock::new();
    C.get_or_init(|| {
        let http = Config::default();
        let mut https = Config::default();
        https.issuer = "https://auth.example".into();
        [http, https]
    })
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, v);
        }
    }
    for cfg in configs() {
        for c in [Cookie::Session, Cookie::Csrf] {
            let name = c.name(cfg);
            if let Some(v) = c.get(cfg, &headers) {
                assert!(!v.contains(';'));
                // From one `name=value` pair of one header (whitespace around either trimmed).
                assert!(headers
                    .get_all(header::COOKIE)
                    .iter()
                    .any(|h| h.to_str().is_ok_and(|h| {
                        h.split(';').any(|pair| {
                            pair.split_once('=')
                                .is_some_and(|(k, val)| k.trim() == name && val.trim() == v)
                        })
                    })));
            }
        }
        // Our own cookie value (base64url) behind whatever the input sends, in one header.
        let name = Cookie::Session.name(cfg);
        let others = common::text(data).replace(['\n', '\r'], "");
        if !others.contains(name) && !others.chars().any(|c| c.is_control() || !c.is_ascii()) {
            let v = format!("{others}; {name}=abc_DEF-123");
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, HeaderValue::from_str(&v).expect("visible ASCII"));
            assert_eq!(Cookie::Session.get(cfg, &h).as_deref(), Some("abc_DEF-123"));
            // Twice: refused.
            let twice = format!("{name}=x; {v}");
            h.insert(header::COOKIE, HeaderValue::from_str(&twice).expect("visible ASCII"));
            assert_eq!(Cookie::Session.get(cfg, &h), None);
        }
    }
});
