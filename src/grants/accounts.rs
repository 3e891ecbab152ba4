//! User accounts: the password policy, user creation, password changes and sign-in (password
//! check under `crate::limits`, session creation, audit). Used by the sign-in page
//! (`http::session`), the command line (`cli`, `demo`) and whatever manages users next (an
//! admin API): the rules are written here once.

use crate::app::App;
use crate::domain::model::{AuditEvent, AuditKind, Session, User};
use crate::limits::{Limits, SignIn};
use crate::store::{DynStore, StoreError};
use crate::util::{now_ms, random_id, random_token, sha256};
use std::net::IpAddr;

/// Fewest bytes a password may have.
pub const PASSWORD_MIN_LEN: usize = 8;
/// Most bytes a username may have.
pub const USERNAME_MAX_LEN: usize = 200;

/// Why an account operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The input breaks a rule (username, password policy).
    #[error("{0}")]
    Invalid(&'static str),
    #[error("a user named {0} already exists")]
    UsernameTaken(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Store(e)
    }
}

/// The password policy.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.len() < PASSWORD_MIN_LEN {
        return Err(AccountError::Invalid("password must be at least 8 characters"));
    }
    Ok(())
}

pub fn check_username(username: &str) -> Result<(), AccountError> {
    if username.is_empty() || username.len() > USERNAME_MAX_LEN {
        return Err(AccountError::Invalid("username must be 1-200 characters"));
    }
    Ok(())
}

/// The argon2id hash of `password`, off the async threads.
async fn hash_password(password: &str) -> Result<String, AccountError> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || crate::password::hash(&pw))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))?
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Who a new user is.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Creates a user; returns its id.
pub async fn create_user(store: &DynStore, u: NewUser<'_>) -> Result<String, AccountError> {
    check_username(u.username)?;
    check_password(u.password)?;
    let hash = hash_password(u.password).await?;
    let id = random_id();
    store
        .insert_user(User {
            id: id.clone(),
            username: u.username.into(),
            password_hash: hash,
            email: u.email,
            name: u.name,
            created_at_ms: now_ms(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => AccountError::UsernameTaken(u.username.to_string()),
            e => e.into(),
        })?;
    Ok(id)
}

/// Sets a user's password; their sessions and grants end (the store's `set_password`).
pub async fn set_password(store: &DynStore, user_id: &str, password: &str) -> Result<(), AccountError> {
    check_password(password)?;
    let hash = hash_password(password).await?;
    store.set_password(user_id, &hash, now_ms()).await?;
    Ok(())
}

/// One sign-in attempt.
pub struct SignInRequest<'a> {
    /// The client address (its rate limit).
    pub ip: IpAddr,
    pub username: &'a str,
    pub password: String,
    pub user_agent: Option<&'a str>,
}

/// A new sign-in session: the cookie's secret (stored only as its SHA-256) and the session's id.
pub struct SignedIn {
    pub token: String,
    pub session_id: String,
}

/// Why a sign-in was refused.
#[derive(Debug)]
pub enum SignInRefused {
    /// Too many attempts from the address or on the account (`Retry-After`).
    Limited(Option<u64>),
    /// No password-hash slot free in time (`Retry-After`).
    Busy(Option<u64>),
    /// Unknown user or wrong password (audited as `login.failed`).
    WrongCredentials,
    /// The session could not be stored.
    Unavailable(StoreError),
}

/// Checks a username and password under the limits and, when they are right, starts a session.
pub async fn sign_in(app: &App, limits: &Limits, r: SignInRequest<'_>) -> Result<SignedIn, SignInRefused> {
    limits
        .begin_sign_in(r.ip, r.username)
        .map_err(|e| SignInRefused::Limited(e.retry_after))?;
    let user = app.store.find_user_by_username(r.username).await.ok().flatten();
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let verified = match limits.verify_password(r.password, phc).await {
        Ok(v) => v,
        Err(e) => {
            limits.end_sign_in(r.username, SignIn::NotChecked);
            return Err(SignInRefused::Busy(e.retry_after));
        }
    };
    let outcome = if verified && user.is_some() {
        SignIn::Succeeded
    } else {
        SignIn::Failed
    };
    limits.end_sign_in(r.username, outcome);
    let Some(user) = user.filter(|_| verified) else {
        let failed = AuditEvent {
            kind: AuditKind::LoginFailed,
            client_id: None,
            user_id: None,
            family_id: None,
            detail: None,
        };
        let _ = app.store.audit(failed, now_ms()).await;
        return Err(SignInRefused::WrongCredentials);
    };
    let token = random_token();
    let now = now_ms();
    let session = Session {
        id: random_id(),
        token_hash: sha256(token.as_bytes()).to_vec(),
        user_id: user.id.clone(),
        auth_time: now / 1000,
        expires_at_ms: now + app.cfg.session.ttl.as_ms(),
        ended_at_ms: None,
        user_agent: r.user_agent.map(|s| s.chars().take(256).collect()),
    };
    let session_id = session.id.clone();
    app.store
        .insert_session(session)
        .await
        .map_err(SignInRefused::Unavailable)?;
    Ok(SignedIn { token, session_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_and_username_rules() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username(&"u".repeat(201)).is_err());
        assert!(check_username(&"u".repeat(200)).is_ok());
    }
}
