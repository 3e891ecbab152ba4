//! The [`Store`](super::Store) trait implemented once, for any SQL [`Backend`]. The trait and its
//! implementation are generated from one table in `store/mod.rs` (`store_api!`): each line names a
//! method, where it runs (a read, a write transaction, a one-statement write) and the operation
//! of `store::ops` it runs; every call goes through the store's [`Guard`] (time limit, fail
//! fast). Refresh rotation and code redemption, whose concurrency control is the backend's own,
//! go to [`Backend::rotate`] and [`Backend::redeem`]. A third backend implements [`Backend`]
//! (and [`Conn`](super::sql::Conn) for its connection type).

use super::guard::Guard;
use super::*;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The future of an operation on a connection (boxed: the same closure type for every backend;
/// `Send`, so that PostgreSQL's runs on the async runtime).
pub type OpFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// An operation a backend runs on one of its connections.
pub trait Op<C, T>: for<'c> FnOnce(&'c mut C) -> OpFuture<'c, T> + Send + 'static {}
impl<C, T, F: for<'c> FnOnce(&'c mut C) -> OpFuture<'c, T> + Send + 'static> Op<C, T> for F {}

/// What differs between SQL databases: where an operation runs, and the two operations whose
/// concurrency control is specific (see docs/design/storage.md).
pub trait Backend: Send + Sync + 'static {
    type Conn: super::sql::Conn;
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

/// A store on a SQL backend, behind its guard.
pub struct SqlStore<B> {
    pub(crate) backend: B,
    pub(crate) guard: Guard,
}

impl<B: Backend> SqlStore<B> {
    /// A store without a time limit (tests, the CLI); see [`SqlStore::with_timeout`].
    pub fn new(backend: B) -> Self {
        SqlStore {
            backend,
            guard: Guard::new(Duration::MAX),
        }
    }

    /// Bounds every call by `timeout` (`store.timeout`; see `store::guard`).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        SqlStore {
            guard: Guard::new(timeout),
            ..self
        }
    }

    /// One bounded round of the sweeper after another until a round is not full.
    pub(crate) async fn sweep_all(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        loop {
            let round = self
                .backend
                .write(move |c| Box::pin(async move { ops::sweep_chunk(c, now_ms, policy).await }));
            let r = self
                .guard
                .bounded("sweep", self.guard.timeout.saturating_mul(20), round)
                .await?;
            total.add(r);
            if !r.full() {
                return Ok(total);
            }
        }
    }
}

/// An argument of a store method, owned so that it can move into the operation.
pub trait Owned {
    type T: Send + 'static;
    fn owned(self) -> Self::T;
}

impl Owned for &str {
    type T = String;
    fn owned(self) -> String {
        self.to_owned()
    }
}

macro_rules! owned_as_is {
    ($($t:ty),*) => {
        $(impl Owned for $t {
            type T = $t;
            fn owned(self) -> $t {
                self
            }
        })*
    };
}

owned_as_is!(
    i64,
    [u8; 32],
    Vec<u8>,
    String,
    Vec<ClientSecret>,
    Vec<(String, i64)>,
    Option<(String, String, i64)>,
    crate::domain::model::RevocationReason,
    super::GrantsOf,
    super::AuditQuery,
    super::EventQuery,
    super::Settlement,
    crate::domain::ssf::Stream,
    Client,
    User,
    DeviceCode,
    KeyRecord,
    Session,
    AuthCode,
    AuditEvent,
    ParRequest,
    PollDevice,
    crate::domain::refresh_token::Presented
);

/// Generates the [`Store`](super::Store) trait and its implementation for [`SqlStore`] from a
/// table of `fn name(args) -> T = how op(call args);` lines (see `store/mod.rs`): the trait
/// method returns `Result<T>`; the implementation moves its arguments into `ops::op`, run by
/// `Backend::how` under the guard. `ping`, `sweep`, `rotate_refresh` and `redeem_code` are
/// written out here.
macro_rules! store_api {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $how:ident $op:ident($($call:expr),*);
    )*) => {
        #[async_trait]
        pub trait Store: Send + Sync + 'static {
            /// Whether the database answers (readiness); ignores the guard's fail-fast state.
            async fn ping(&self) -> Result<()>;
            /// The refresh grant's atomic step: load, decide (`domain::grant::decide`), write.
            async fn rotate_refresh(&self, req: RotateRequest) -> Result<RotateOutcome>;
            /// Checks and consumes a code and creates its family in one transaction; a replay
            /// revokes the family the first redemption created.
            async fn redeem_code(&self, req: RedeemCode) -> Result<RedeemOutcome>;
            /// Deletes what has expired (codes, sessions, families, refresh tokens, revocation
            /// entries, old audit events) so tables stay bounded: absolute-expired families at
            /// once; revoked families, ended sessions and expired codes after
            /// `policy.retention_ms`; a refresh token row once its family's absolute lifetime
            /// has passed since it was written, never before the family's absolute expiry.
            /// Works in chunks of [`SWEEP_CHUNK`] rows per transaction, each under a longer
            /// time limit than a request's.
            async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport>;
            $(
                $(#[doc = $doc])*
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret>;
            )*
        }

        #[async_trait]
        impl<B: $crate::store::sql_store::Backend> Store for $crate::store::sql_store::SqlStore<B> {
            async fn ping(&self) -> Result<()> {
                let op = self.backend.read(|c| Box::pin(async move { ops::ping(c).await }));
                self.guard.bounded("ping", self.guard.timeout, op).await
            }
            async fn rotate_refresh(&self, req: RotateRequest) -> Result<RotateOutcome> {
                self.guard.call("rotate_refresh", self.backend.rotate(req)).await
            }
            async fn redeem_code(&self, req: RedeemCode) -> Result<RedeemOutcome> {
                self.guard.call("redeem_code", self.backend.redeem(req)).await
            }
            async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
                self.sweep_all(now_ms, policy).await
            }
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    $(let $arg = $crate::store::sql_store::Owned::owned($arg);)*
                    let op = self.backend.$how(move |c| Box::pin(async move { ops::$op(c, $($call),*).await }));
                    self.guard.call(stringify!($name), op).await
                }
            )*
        }
    };
}
pub(crate) use store_api;
