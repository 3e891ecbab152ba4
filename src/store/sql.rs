//! The one SQL layer's vocabulary, shared by both backends: a statement written once ([`Stmt`],
//! in PostgreSQL's `$n` placeholder style, rendered for SQLite once per process), a bound value
//! both drivers accept ([`Arg`], the [`args!`] macro), a result row of either driver
//! ([`RowRef`]), and the connection a statement runs on ([`Conn`]: a SQLite connection inside
//! the writer's or a reader's transaction, or a pooled PostgreSQL connection).
//!
//! Everything that is the same on both databases (statements, column lists, row mappings,
//! cascades) is written against these types in `store::ops` and `store::rows`; only what truly
//! differs lives in `store::sqlite` and `store::postgres` (see docs/design/storage.md).

use super::{Result, StoreError};
use std::future::Future;
use std::sync::OnceLock;

/// One SQL statement, written once in PostgreSQL's dialect. Its SQLite text is derived on first
/// use (`$n` → `?n`; row-lock clauses dropped: the SQLite writer is the only writer, so there is
/// nothing to lock), or given explicitly where the dialects truly differ ([`Stmt::dialects`]).
pub struct Stmt {
    pg: &'static str,
    lite: Option<&'static str>,
    rendered: OnceLock<String>,
}

impl Stmt {
    pub const fn new(pg: &'static str) -> Stmt {
        Stmt {
            pg,
            lite: None,
            rendered: OnceLock::new(),
        }
    }

    /// A statement whose SQLite text is not a rendering of its PostgreSQL text.
    pub const fn dialects(pg: &'static str, lite: &'static str) -> Stmt {
        Stmt {
            pg,
            lite: Some(lite),
            rendered: OnceLock::new(),
        }
    }

    pub fn pg(&self) -> &'static str {
        self.pg
    }

    pub fn sqlite(&self) -> &str {
        match self.lite {
            Some(s) => s,
            None => self.rendered.get_or_init(|| to_sqlite(self.pg)),
        }
    }
}

/// PostgreSQL text → SQLite text: `$n` placeholders become `?n`, ` FOR UPDATE` / ` FOR SHARE`
/// (row locks, only ever at the end of a SELECT or subquery) disappear.
fn to_sqlite(pg: &str) -> String {
    let s = pg.replace(" FOR UPDATE", "").replace(" FOR SHARE", "");
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// A value bound to a statement: anything both drivers can encode (integers, text, bytes,
/// booleans, and `Option`s of them for NULL).
pub trait Arg: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync> Arg for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        self
    }
}

/// The domain's named enums (revocation reasons, audit kinds, device statuses) bind as their
/// names.
macro_rules! bind_as_name {
    ($($t:ty),*) => {$(
        impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(
                    self.as_str().as_bytes(),
                )))
            }
        }
        impl tokio_postgres::types::ToSql for $t {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }
            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }
            tokio_postgres::types::to_sql_checked!();
        }
    )*};
}
bind_as_name!(
    crate::domain::model::RevocationReason,
    crate::domain::model::AuditKind,
    crate::domain::model::DeviceStatus
);

/// A scope binds as its space-separated text.
impl rusqlite::ToSql for crate::domain::scope::Scope {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Text(
            self.to_string(),
        )))
    }
}
impl tokio_postgres::types::ToSql for crate::domain::scope::Scope {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_string().to_sql(ty, out)
    }
    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <String as tokio_postgres::types::ToSql>::accepts(ty)
    }
    tokio_postgres::types::to_sql_checked!();
}

/// The values of a statement's `$1, $2, …`, in order.
#[macro_export]
#[doc(hidden)]
macro_rules! store_args {
    ($($a:expr),* $(,)?) => {
        &[$(&$a as &dyn $crate::store::sql::Arg),*]
    };
}
pub use crate::store_args as args;

/// A column value both drivers can decode.
pub trait Col: Sized {
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self>;
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self>;
}

impl<T> Col for T
where
    T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>,
{
    fn sqlite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self> {
        Ok(r.get(i)?)
    }
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self> {
        Ok(r.try_get(i)?)
    }
}

/// A result row of either driver.
pub enum RowRef<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a tokio_postgres::Row),
}

impl RowRef<'_> {
    pub fn get<T: Col>(&self, i: usize) -> Result<T> {
        match self {
            RowRef::Sqlite(r) => T::sqlite(r, i),
            RowRef::Pg(r) => T::pg(r, i),
        }
    }

    /// A column holding a scope (validated when it was granted: a bad one is a broken row).
    pub fn scope(&self, i: usize) -> Result<crate::domain::scope::Scope> {
        let s: String = self.get(i)?;
        crate::domain::scope::Scope::parse(&s)
            .map_err(|e| StoreError::Backend(format!("stored scope {s:?} is invalid: {e}")))
    }

    /// A column holding JSON text (a list of redirect URIs, secrets, …).
    pub fn json<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T> {
        serde_json::from_str(&self.get::<String>(i)?)
            .map_err(|e| StoreError::Backend(format!("stored JSON is invalid: {e}")))
    }
}

/// Maps one row to a value (a plain function, so the futures that hold it stay `Send`).
pub type Map<T> = fn(&RowRef<'_>) -> Result<T>;

/// A connection that runs [`Stmt`]s: the operations of `store::ops` are written once against
/// it. Every future is `Send`, so the same operation runs on the async runtime (PostgreSQL) and
/// on the SQLite writer's thread (where it never waits).
pub trait Conn: Send {
    /// Runs a statement; the number of rows it changed.
    fn exec(&mut self, st: &'static Stmt, args: &[&dyn Arg]) -> impl Future<Output = Result<u64>> + Send;
    /// The first row, if any.
    fn one<T: Send>(
        &mut self,
        st: &'static Stmt,
        args: &[&dyn Arg],
        map: Map<T>,
    ) -> impl Future<Output = Result<Option<T>>> + Send;
    /// Every row.
    fn all<T: Send>(
        &mut self,
        st: &'static Stmt,
        args: &[&dyn Arg],
        map: Map<T>,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;
}

impl Conn for rusqlite::Connection {
    async fn exec(&mut self, st: &'static Stmt, args: &[&dyn Arg]) -> Result<u64> {
        let mut s = self.prepare_cached(st.sqlite())?;
        Ok(s.execute(rusqlite::params_from_iter(args.iter().map(|a| a.sqlite())))? as u64)
    }

    async fn one<T: Send>(&mut self, st: &'static Stmt, args: &[&dyn Arg], map: Map<T>) -> Result<Option<T>> {
        let mut s = self.prepare_cached(st.sqlite())?;
        let mut rows = s.query(rusqlite::params_from_iter(args.iter().map(|a| a.sqlite())))?;
        match rows.next()? {
            Some(r) => Ok(Some(map(&RowRef::Sqlite(r))?)),
            None => Ok(None),
        }
    }

    async fn all<T: Send>(&mut self, st: &'static Stmt, args: &[&dyn Arg], map: Map<T>) -> Result<Vec<T>> {
        let mut s = self.prepare_cached(st.sqlite())?;
        let mut rows = s.query(rusqlite::params_from_iter(args.iter().map(|a| a.sqlite())))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(map(&RowRef::Sqlite(r))?);
        }
        Ok(out)
    }
}

impl Conn for deadpool_postgres::Object {
    async fn exec(&mut self, st: &'static Stmt, args: &[&dyn Arg]) -> Result<u64> {
        let s = self.prepare_cached(st.pg()).await?;
        let a: Vec<_> = args.iter().map(|a| a.pg()).collect();
        Ok(self.execute(&s, &a).await?)
    }

    async fn one<T: Send>(&mut self, st: &'static Stmt, args: &[&dyn Arg], map: Map<T>) -> Result<Option<T>> {
        let s = self.prepare_cached(st.pg()).await?;
        let a: Vec<_> = args.iter().map(|a| a.pg()).collect();
        match self.query_opt(&s, &a).await? {
            Some(r) => Ok(Some(map(&RowRef::Pg(&r))?)),
            None => Ok(None),
        }
    }

    async fn all<T: Send>(&mut self, st: &'static Stmt, args: &[&dyn Arg], map: Map<T>) -> Result<Vec<T>> {
        let s = self.prepare_cached(st.pg()).await?;
        let a: Vec<_> = args.iter().map(|a| a.pg()).collect();
        self.query(&s, &a).await?.iter().map(|r| map(&RowRef::Pg(r))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_drops_row_locks_for_sqlite() {
        assert_eq!(
            to_sqlite("SELECT a FROM t WHERE x = $1 AND y = $12 AND z = '$' FOR UPDATE"),
            "SELECT a FROM t WHERE x = ?1 AND y = ?12 AND z = '$'"
        );
        static S: Stmt = Stmt::dialects("SELECT pg_advisory_xact_lock(1)", "SELECT 1");
        assert_eq!(S.sqlite(), "SELECT 1");
        assert!(S.pg().contains("pg_advisory_xact_lock"));
    }
}
