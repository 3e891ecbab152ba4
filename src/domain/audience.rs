//! The audience (`aud`) of an access token (RFC 9068 §3, RFC 7519 §4.1.3), derived from its
//! scopes so that a token names the resource servers it is meant for instead of the issuer:
//!
//! - OpenID user scopes (`openid`, `profile`, `email`) are for the userinfo endpoint: its URL;
//! - an API scope (`scopes.custom`) is for its resource server: `scopes.audiences[scope]` when
//!   configured, else `scopes.api_audience` (default `<issuer>/api`);
//! - a token whose scopes name no resource (only `offline_access`, or none) keeps the issuer:
//!   it is good for nothing but introspection here.
//!
//! One audience is a string, several an array (sorted, no duplicates). The values are computed
//! once at start-up; a token only picks from them. See docs/design/registration-policy.md.

use super::scope::Scope;
use std::collections::BTreeMap;

/// The OpenID scopes whose claims the userinfo endpoint serves.
const USERINFO_SCOPES: &[&str] = &["openid", "profile", "email"];

#[derive(Clone, Debug)]
pub struct Audiences {
    issuer: String,
    userinfo: String,
    /// `scopes.custom` with each scope's audience.
    api: BTreeMap<String, String>,
}

impl Audiences {
    /// `custom` are the API scopes, `api_default` the audience of those without an entry in
    /// `per_scope`.
    pub fn new(
        issuer: &str,
        userinfo: &str,
        custom: &[String],
        api_default: &str,
        per_scope: &BTreeMap<String, String>,
    ) -> Audiences {
        Audiences {
            issuer: issuer.to_string(),
            userinfo: userinfo.to_string(),
            api: custom
                .iter()
                .map(|s| {
                    (
                        s.clone(),
                        per_scope.get(s).cloned().unwrap_or_else(|| api_default.to_string()),
                    )
                })
                .collect(),
        }
    }

    /// The audiences of an access token with `scope`: never empty, sorted, without duplicates.
    pub fn for_scope(&self, scope: &Scope) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(2);
        for s in scope.iter() {
            let aud = if USERINFO_SCOPES.contains(&s) {
                Some(&self.userinfo)
            } else {
                self.api.get(s)
            };
            if let Some(a) = aud {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        if out.is_empty() {
            out.push(self.issuer.clone());
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auds() -> Audiences {
        let per: BTreeMap<String, String> = [("api.write".to_string(), "https://writer.example".to_string())].into();
        Audiences::new(
            "https://as.example",
            "https://as.example/oauth/userinfo",
            &["api.read".into(), "api.write".into(), "api.admin".into()],
            "https://as.example/api",
            &per,
        )
    }

    fn aud(s: &str) -> Vec<String> {
        auds().for_scope(&Scope::parse(s).unwrap())
    }

    #[test]
    fn user_scopes_name_the_userinfo_endpoint() {
        assert_eq!(
            aud("openid profile email offline_access"),
            ["https://as.example/oauth/userinfo"]
        );
        assert_eq!(aud("profile"), ["https://as.example/oauth/userinfo"]);
    }

    #[test]
    fn api_scopes_name_their_resource_server() {
        assert_eq!(aud("api.read"), ["https://as.example/api"]);
        assert_eq!(aud("api.read api.admin"), ["https://as.example/api"]);
        assert_eq!(aud("api.write"), ["https://writer.example"]);
        assert_eq!(
            aud("openid api.read api.write"),
            [
                "https://as.example/api",
                "https://as.example/oauth/userinfo",
                "https://writer.example"
            ]
        );
    }

    #[test]
    fn nothing_to_name_falls_back_to_the_issuer() {
        assert_eq!(aud(""), ["https://as.example"]);
        assert_eq!(aud("offline_access"), ["https://as.example"]);
    }
}
