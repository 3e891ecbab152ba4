//! The end-user consent API's authorization rules (SPEC §8, `GET /oauth/consents`,
//! `DELETE /oauth/consents/{id}`): its one scope, and who may hold it. A token with the scope
//! lets its holder see and withdraw the user's consents to *other* clients, so the scope is
//! reserved like the admin scopes: only a client the operator makes with `client create
//! --account` ([`super::registration::Profile::Account`]) may ask for it, never a registered
//! client or `scopes.custom`; such a client has user-facing grants only (no
//! `client_credentials`), so the scope only ever reaches a token through the user's consent on
//! the consent page. See docs/design/consent-api.md.

use super::scope::Scope;

/// The scope of the consent API.
pub const SCOPE: &str = "consents";

/// What the consent page says the scope allows.
pub const DESCRIPTION: &str = "See the applications you have allowed, and withdraw that permission";

/// Whether `s` is the consent API's scope.
pub fn is_consents_scope(s: &str) -> bool {
    s == SCOPE
}

/// Whether an access token with `scope`, issued to a user (`has_user`: it belongs to a grant,
/// not to a client's own `client_credentials`), may use the consent API. `Err` says why not:
/// `NoUser` is an invalid token for this API (401), `Scope` an insufficient one (403).
pub fn permits(scope: &Scope, has_user: bool) -> Result<(), Refused> {
    if !has_user {
        return Err(Refused::NoUser);
    }
    if !scope.contains(SCOPE) {
        return Err(Refused::Scope);
    }
    Ok(())
}

/// Why a token may not use the consent API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A client's own token: there is no user whose consents it could name.
    NoUser,
    /// The token lacks [`SCOPE`].
    Scope,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_token_with_the_scope_and_nothing_else() {
        let s = |v: &str| Scope::parse(v).unwrap();
        assert_eq!(permits(&s("openid consents"), true), Ok(()));
        assert_eq!(permits(&s("openid consents"), false), Err(Refused::NoUser));
        assert_eq!(permits(&s("openid profile"), true), Err(Refused::Scope));
        assert_eq!(permits(&s("admin:write"), true), Err(Refused::Scope));
        assert!(is_consents_scope("consents") && !is_consents_scope("consent"));
    }
}
