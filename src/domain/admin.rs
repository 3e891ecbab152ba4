//! The admin API's authorization rules (SPEC §8): its two scopes, which one an operation needs,
//! and that only the operator can give a client either of them (`client create --admin`, the
//! [`super::registration::Profile::Admin`] profile). A client cannot register, or be configured
//! (`scopes.custom`), into them, and a user's grant never carries them (an admin client has
//! only the `client_credentials` grant). See docs/design/admin-api.md.

use super::scope::Scope;

/// Reads through the admin API.
pub const READ: &str = "admin:read";
/// Changes through the admin API (also allows reading).
pub const WRITE: &str = "admin:write";
/// Both, in the order a new admin client gets them.
pub const SCOPES: [&str; 2] = [READ, WRITE];

/// Whether `s` is one of the admin scopes.
pub fn is_admin_scope(s: &str) -> bool {
    SCOPES.contains(&s)
}

/// What an admin operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
}

impl Need {
    /// The scope to name in an `insufficient_scope` challenge.
    pub fn scope(self) -> &'static str {
        match self {
            Need::Read => READ,
            Need::Write => WRITE,
        }
    }
}

/// Whether an admin client would delete itself: refused, since the API would then lock its
/// caller out mid-operation (another admin client, or the CLI, can delete it).
pub fn deletes_itself(caller_client_id: &str, target_client_id: &str) -> bool {
    caller_client_id == target_client_id
}

/// Whether a token with `scope` may do what `need` says: a read needs `admin:read` or
/// `admin:write`, a change `admin:write`.
pub fn permits(scope: &Scope, need: Need) -> bool {
    match need {
        Need::Read => scope.contains(READ) || scope.contains(WRITE),
        Need::Write => scope.contains(WRITE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_needs_the_write_scope_and_a_read_either() {
        let s = |v: &str| Scope::parse(v).unwrap();
        assert!(permits(&s("admin:read"), Need::Read));
        assert!(!permits(&s("admin:read"), Need::Write));
        assert!(permits(&s("admin:write"), Need::Read));
        assert!(permits(&s("admin:write"), Need::Write));
        assert!(!permits(&s("openid profile api.write"), Need::Read));
        assert!(is_admin_scope("admin:write") && !is_admin_scope("admin"));
    }
}
