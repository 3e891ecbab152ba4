//! Dynamic registration bodies (RFC 7591/7592): JSON into `Metadata`, `registration::apply`,
//! `describe`. Property: what `describe` returns (what a client reads back with RFC 7592 GET)
//! is accepted again unchanged when sent back with PUT.
#![no_main]
#[path = "common/mod.rs"]
mod common;

use autional::domain::model::{AuthMethod, Client};
use autional::domain::registration::{apply, describe, Metadata, Policy, Profile};
use libfuzzer_sys::fuzz_target;

fn fields(c: &Client) -> impl PartialEq + std::fmt::Debug {
    (
        c.name.clone(),
        c.auth_method,
        c.redirect_uris.clone(),
        c.grant_types.clone(),
        c.scope.clone(),
        c.jwks
            .as_deref()
            .map(|j| serde_json::from_str::<serde_json::Value>(j).expect("stored jwks is JSON")),
        c.jwks_uri.clone(),
        (c.post_logout_redirect_uris.clone(), c.dpop_bound, c.require_par),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<Metadata>(data) else {
        return;
    };
    let custom = ["api:read".to_string()];
    let grants: Vec<String> = autional::domain::model::GRANT_TYPES
        .iter()
        .map(|g| g.to_string())
        .collect();
    let scopes = [
        "openid".to_string(),
        "profile".to_string(),
        "offline_access".to_string(),
        custom[0].clone(),
    ];
    let policy = Policy {
        profile: Profile::Registrant,
        custom_scopes: &custom,
        allowed_grant_types: &grants,
        allowed_scopes: &scopes,
    };
    let mut c = common::client("client-1", AuthMethod::ClientSecretBasic);
    if apply(&m, &mut c, &policy).is_err() {
        return;
    }
    assert!(c.name.chars().count() <= 200);
    let shown = describe(&c);
    let m2: Metadata = serde_json::from_value(shown).expect("described metadata parses");
    let mut c2 = common::client("client-1", AuthMethod::ClientSecretBasic);
    if let Err(e) = apply(&m2, &mut c2, &policy) {
        panic!("described metadata refused: {e:?}");
    }
    assert_eq!(fields(&c), fields(&c2));
});
