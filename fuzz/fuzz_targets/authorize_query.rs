//! Authorization requests (query string or form POST): `Params::from_form` then every check of
//! `grants::authorize::check`, for a public and a confidential client. Properties: an accepted
//! request's redirect URI is registered and its scope allowed; the success and error redirects
//! carry `code`/`error`, `state` and `iss` back unchanged.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::domain::model::AuthMethod;
use autional::domain::scope::Scope;
use autional::grants::authorize::{check, redirect_with, AuthorizeError};
use autional::params::Params;
use common::*;
use libfuzzer_sys::fuzz_target;

fn pairs(location: &str) -> Vec<(String, String)> {
    let u = url::Url::parse(location).expect("redirect Location is a URL");
    u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Params::from_form(data) else { return };
    let custom = ["api:read".to_string()];
    let types = ["payment_initiation".to_string()];
    for method in [AuthMethod::None, AuthMethod::ClientSecretBasic] {
        let client = client("client-1", method);
        match check(client.clone(), &p, false, &custom, &types) {
            Ok(req) => {
                assert!(client.redirect_uris.contains(&req.redirect_uri));
                assert!(!req.scope.is_empty());
                assert!(req
                    .scope
                    .is_subset_of(&Scope::parse(&client.scope).expect("client scope")));
                assert!(req.code_challenge.is_some() || method != AuthMethod::None);
                let mut q = vec![("code", "c")];
                if let Some(s) = &req.state {
                    q.push(("state", s));
                }
                q.push(("iss", ISSUER));
                let got = pairs(&redirect_with(&req.redirect_uri, &q));
                let want: Vec<(String, String)> = q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                assert!(got.ends_with(&want), "{got:?} does not end with {want:?}");
            }
            Err(AuthorizeError::Redirect {
                redirect_uri,
                error,
                state,
            }) => {
                assert!(client.redirect_uris.contains(&redirect_uri));
                let got = pairs(&AuthorizeError::location(
                    &redirect_uri,
                    &error,
                    state.as_deref(),
                    ISSUER,
                ));
                assert!(got.contains(&("error".to_string(), error.code.as_str().to_string())));
                if let Some(s) = state {
                    assert!(got.contains(&("state".to_string(), s)));
                }
                assert_eq!(got.last(), Some(&("iss".to_string(), ISSUER.to_string())));
            }
            Err(AuthorizeError::Page(e)) => assert!(e.status >= 400 && e.status < 500),
        }
    }
});
