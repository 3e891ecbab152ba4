//! The [`Store`] trait implemented once, for any SQL [`Backend`]: every method is an operation
//! of `store::ops` run where the backend says (a read, a write transaction), except refresh
//! rotation and code redemption, whose concurrency control is the backend's own. A third
//! backend implements [`Backend`] (and [`Conn`](super::sql::Conn) for its connection type).

use super::sql::Conn;
use super::*;
use crate::domain::model::RevocationReason;
use std::future::Future;
use std::pin::Pin;

/// The future of an operation on a connection (boxed: the same closure type for every backend;
/// `Send`, so that PostgreSQL's runs on the async runtime).
pub type OpFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// An operation a backend runs on one of its connections.
pub trait Op<C, T>: for<'c> FnOnce(&'c mut C) -> OpFuture<'c, T> + Send + 'static {}
impl<C, T, F: for<'c> FnOnce(&'c mut C) -> OpFuture<'c, T> + Send + 'static> Op<C, T> for F {}

/// What differs between SQL databases: where an operation runs, and the two operations whose
/// concurrency control is specific (see docs/design/storage.md).
pub trait Backend: Send + Sync + 'static {
    type Conn: Conn;
    /// Runs a read-only operation.
    fn read<T: Send + 'static>(&self, op: impl Op<Self::Conn, T>) -> impl Future<Output = Result<T>> + Send;
    /// Runs an operation in one transaction; resolves once it is durable.
    fn write<T: Send + 'static>(&self, op: impl Op<Self::Conn, T>) -> impl Future<Output = Result<T>> + Send;
    /// Runs an operation of one statement (atomic without a transaction where the database
    /// allows it).
    fn write_one<T: Send + 'static>(&self, op: impl Op<Self::Conn, T>) -> impl Future<Output = Result<T>> + Send {
        self.write(op)
    }
    fn rotate(&self, req: RotateRequest) -> impl Future<Output = Result<RotateOutcome>> + Send;
    fn redeem(&self, req: RedeemCode) -> impl Future<Output = Result<RedeemOutcome>> + Send;
}

/// A store on a SQL backend.
pub struct SqlStore<B>(pub(crate) B);

/// `self.0.<how>(op)` for an operation of `store::ops` taking the connection and `$args`
/// (owned values moved into the operation, passed to it by reference).
macro_rules! run {
    ($self:ident . $how:ident, $op:ident ( $($a:ident),* ) $(, $v:ident)*) => {
        $self.0.$how(move |c| Box::pin(async move { ops::$op(c, $(&$a,)* $($v),*).await })).await
    };
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> Result<()> {
        self.0
            .read(|c| Box::pin(async move { c.one(&ops::PING, &[], super::rows::exists).await.map(|_| ()) }))
            .await
    }

    async fn insert_client(&self, cl: Client) -> Result<()> {
        run!(self.write_one, insert_client(cl))
    }
    async fn get_client(&self, id: &str) -> Result<Option<Client>> {
        let id = id.to_string();
        run!(self.read, get_client(id))
    }
    async fn list_clients(&self) -> Result<Vec<Client>> {
        run!(self.read, list_clients())
    }
    async fn delete_client(&self, id: &str, now_ms: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, delete_client(id), now_ms)
    }
    async fn set_client_secrets(&self, id: &str, secrets: Vec<SecretHash>) -> Result<bool> {
        let id = id.to_string();
        run!(self.write_one, set_client_secrets(id, secrets))
    }
    async fn update_client(&self, cl: Client) -> Result<bool> {
        run!(self.write_one, update_client(cl))
    }

    async fn insert_user(&self, u: User) -> Result<()> {
        run!(self.write_one, insert_user(u))
    }
    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_string();
        run!(self.read, get_user(id))
    }
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let username = username.to_string();
        run!(self.read, find_user_by_username(username))
    }
    async fn set_password(&self, user_id: &str, password_hash: &str, now_ms: i64) -> Result<bool> {
        let (id, hash) = (user_id.to_string(), password_hash.to_string());
        run!(self.write, set_password(id, hash), now_ms)
    }
    async fn delete_user(&self, user_id: &str, now_ms: i64) -> Result<bool> {
        let id = user_id.to_string();
        run!(self.write, delete_user(id), now_ms)
    }
    async fn revoke_consent(&self, user_id: &str, client_id: &str, now_ms: i64) -> Result<u64> {
        let (u, cl) = (user_id.to_string(), client_id.to_string());
        run!(self.write, revoke_consent(u, cl), now_ms)
    }
    async fn list_user_families(&self, user_id: &str) -> Result<Vec<Family>> {
        let id = user_id.to_string();
        run!(self.read, list_user_families(id))
    }
    async fn revoke_user_family(
        &self,
        user_id: &str,
        family_id: &str,
        reason: RevocationReason,
        now_ms: i64,
    ) -> Result<bool> {
        let (u, f) = (user_id.to_string(), family_id.to_string());
        run!(self.write_one, revoke_user_family(u, f), reason, now_ms)
    }

    async fn insert_device(&self, d: DeviceCode) -> Result<()> {
        run!(self.write_one, insert_device(d))
    }
    async fn find_device(&self, user_code: &str) -> Result<Option<DeviceCode>> {
        let code = user_code.to_string();
        run!(self.read, find_device(code))
    }
    async fn decide_device(
        &self,
        user_code: &str,
        approval: Option<(String, String, i64)>,
        now_ms: i64,
    ) -> Result<bool> {
        let code = user_code.to_string();
        run!(self.write_one, decide_device(code), approval, now_ms)
    }
    async fn poll_device(&self, req: PollDevice) -> Result<DeviceOutcome> {
        run!(self.write, poll_device(req))
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        run!(self.read, list_keys())
    }
    async fn add_key(&self, k: KeyRecord) -> Result<()> {
        run!(self.write, add_key(k))
    }
    async fn ensure_key(&self, k: KeyRecord) -> Result<()> {
        run!(self.write, ensure_key(k))
    }
    async fn server_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>> {
        let name = name.to_string();
        run!(self.write, server_secret(name, candidate))
    }

    async fn insert_session(&self, s: Session) -> Result<()> {
        run!(self.write_one, insert_session(s))
    }
    async fn get_session_by_token(&self, token_hash: [u8; 32]) -> Result<Option<Session>> {
        run!(self.read, get_session_by_token(token_hash))
    }
    async fn end_session(&self, id: &str, now_ms: i64) -> Result<u64> {
        let id = id.to_string();
        run!(self.write, end_session(id), now_ms)
    }
    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let id = user_id.to_string();
        run!(self.read, list_user_sessions(id))
    }

    async fn get_consent(&self, user_id: &str, client_id: &str) -> Result<Option<String>> {
        let (u, cl) = (user_id.to_string(), client_id.to_string());
        run!(self.read, get_consent(u, cl))
    }
    async fn save_consent(&self, user_id: &str, client_id: &str, scope: &str, now_ms: i64) -> Result<()> {
        let (u, cl, s) = (user_id.to_string(), client_id.to_string(), scope.to_string());
        run!(self.write_one, save_consent(u, cl, s), now_ms)
    }

    async fn insert_code(&self, code: AuthCode) -> Result<()> {
        run!(self.write_one, insert_code(code))
    }
    async fn redeem_code(&self, req: RedeemCode) -> Result<RedeemOutcome> {
        self.0.redeem(req).await
    }

    async fn rotate_refresh(&self, req: RotateRequest) -> Result<RotateOutcome> {
        self.0.rotate(req).await
    }
    async fn find_refresh(&self, hash: [u8; 32]) -> Result<Option<(i64, Family)>> {
        run!(self.read, find_refresh(hash))
    }
    async fn get_family(&self, id: &str) -> Result<Option<Family>> {
        let id = id.to_string();
        run!(self.read, get_family(id))
    }
    async fn revoke_family(&self, id: &str, reason: RevocationReason, now_ms: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write_one, revoke_family(id), reason, now_ms)
    }

    async fn revoke_access_token(&self, jti: &str, expires_at_ms: i64) -> Result<()> {
        let jti = jti.to_string();
        run!(self.write_one, revoke_access_token(jti), expires_at_ms)
    }
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool> {
        let jti = jti.to_string();
        run!(self.read, is_access_token_revoked(jti))
    }

    async fn audit(&self, e: AuditEvent, now_ms: i64) -> Result<()> {
        run!(self.write_one, audit(e), now_ms)
    }

    async fn use_dpop_jti(&self, key: [u8; 32], expires_at_ms: i64) -> Result<bool> {
        run!(self.write_one, use_jti(key), expires_at_ms)
    }

    async fn insert_par(&self, p: ParRequest) -> Result<()> {
        run!(self.write_one, insert_par(p))
    }
    async fn get_par(&self, hash: [u8; 32]) -> Result<Option<ParRequest>> {
        run!(self.read, get_par(hash))
    }
    async fn mark_par_used(&self, hash: [u8; 32], now_ms: i64) -> Result<bool> {
        run!(self.write_one, mark_par_used(hash), now_ms)
    }

    async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        loop {
            let r = run!(self.write, sweep_chunk(), now_ms, policy)?;
            total.add(r);
            if !r.full() {
                return Ok(total);
            }
        }
    }
}
