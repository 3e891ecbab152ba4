//! Client credentials from `Authorization: Basic` and the body (`http::body::credentials`).
//! Mode byte even: the rest is the header value, a newline, and a form body. Odd: the rest is
//! `id` newline `secret`, encoded as RFC 6749 §2.3.1 says (form-encode each, base64 `id:secret`);
//! the parser must give them back exactly.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::http::credentials;
use autional::params::Params;
use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn form(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    if mode & 1 == 0 {
        let (h, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        let Ok(v) = HeaderValue::from_bytes(h) else { return };
        headers.insert(header::AUTHORIZATION, v);
        let Ok(p) = Params::from_form(body) else { return };
        if let Ok(c) = credentials(&headers, &p) {
            let (id, _) = c.basic.expect("an Authorization header yields Basic credentials");
            assert!(!id.is_empty());
        }
    } else {
        let s = common::text(rest);
        let (id, secret) = s.split_once('\n').unwrap_or((&s, ""));
        let raw = format!("{}:{}", form(id), form(secret));
        let v = format!("Basic {}", autional::util::b64(raw.as_bytes()));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&v).expect("base64 is a header value"),
        );
        match credentials(&headers, &Params::default()) {
            Ok(c) => assert_eq!(c.basic, Some((id.to_string(), secret.to_string()))),
            Err(e) => assert!(id.is_empty(), "{id:?}/{secret:?} refused: {e:?}"),
        }
    }
});
