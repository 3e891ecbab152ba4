//! Redirect URIs as registered (any absolute URI) with the parameters we append
//! (`grants::authorize::redirect_with`). Input: the URI, a newline, the `state`. Property: when
//! the URI parses, the Location parses and ends with exactly the appended parameters.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::grants::authorize::redirect_with;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = common::text(data);
    let (uri, state) = s.split_once('\n').unwrap_or((&s, ""));
    let q = [("code", "c"), ("state", state), ("iss", common::ISSUER)];
    let loc = redirect_with(uri, &q);
    if url::Url::parse(uri).is_ok() {
        let u = url::Url::parse(&loc).expect("Location parses");
        let got: Vec<(String, String)> = u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let want: Vec<(String, String)> = q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(got.ends_with(&want), "{uri:?} -> {loc:?}: {got:?}");
    } else {
        assert_eq!(loc, uri);
    }
});
