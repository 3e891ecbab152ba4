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
/// Its text is a literal, or joined once from parts (a [`Record`]'s column list and the rest).
pub struct Stmt {
    text: Text,
    lite: Option<&'static str>,
    joined: OnceLock<String>,
    rendered: OnceLock<String>,
}

enum Text {
    Literal(&'static str),
    Parts(&'static [&'static str]),
    /// `INSERT INTO <table> (<columns>) VALUES ($1, …)`.
    Insert(&'static str, &'static str),
}

impl Stmt {
    const fn with(text: Text, lite: Option<&'static str>) -> Stmt {
        Stmt {
            text,
            lite,
            joined: OnceLock::new(),
            rendered: OnceLock::new(),
        }
    }

    pub const fn new(pg: &'static str) -> Stmt {
        Stmt::with(Text::Literal(pg), None)
    }

    /// A statement whose text is `parts` joined (e.g. `&["SELECT ", User::COLS, " FROM …"]`).
    pub const fn parts(parts: &'static [&'static str]) -> Stmt {
        Stmt::with(Text::Parts(parts), None)
    }

    /// The INSERT of one [`Record`] (its arguments: [`Record::bind`]).
    pub const fn insert<R: Record>() -> Stmt {
        Stmt::with(Text::Insert(R::TABLE, R::COLS), None)
    }

    /// A statement whose SQLite text is not a rendering of its PostgreSQL text (`lite` is
    /// written in the same `$n` style and rendered as any other).
    pub const fn dialects(pg: &'static str, lite: &'static str) -> Stmt {
        Stmt::with(Text::Literal(pg), Some(lite))
    }

    pub fn pg(&self) -> &str {
        match self.text {
            Text::Literal(s) => s,
            Text::Parts(p) => self.joined.get_or_init(|| p.concat()),
            Text::Insert(table, cols) => self.joined.get_or_init(|| {
                let n = cols.split(',').count();
                let values: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
                format!("INSERT INTO {table} ({cols}) VALUES ({})", values.join(", "))
            }),
        }
    }

    pub fn sqlite(&self) -> &str {
        self.rendered
            .get_or_init(|| to_sqlite(self.lite.unwrap_or_else(|| self.pg())))
    }
}

/// PostgreSQL text → SQLite text: `$n` placeholders become `?n`, ` FOR UPDATE` / ` FOR SHARE`
/// (row locks, only ever at the end of a SELECT or subquery) and their ` SKIP LOCKED` disappear.
fn to_sqlite(pg: &str) -> String {
    let s = pg
        .replace(" FOR UPDATE", "")
        .replace(" FOR SHARE", "")
        .replace(" SKIP LOCKED", "");
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

/// Domain types stored as text: the named enums (revocation reasons, audit kinds, device
/// statuses, authentication methods) as their names, a scope as its space-separated text. Each
/// binds and decodes on both drivers (a stored text that does not parse is a broken row).
macro_rules! text_column {
    ($t:ty, |$v:ident| $encode:expr, |$s:ident| $decode:expr) => {
        impl rusqlite::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                let $v = self;
                Ok(match std::borrow::Cow::<str>::from($encode) {
                    std::borrow::Cow::Borrowed(b) => {
                        rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(b.as_bytes()))
                    }
                    std::borrow::Cow::Owned(o) => rusqlite::types::ToSqlOutput::Owned(rusqlite::types::Value::Text(o)),
                })
            }
        }
        impl rusqlite::types::FromSql for $t {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let $s = v.as_str()?;
                $decode.ok_or_else(|| rusqlite::types::FromSqlError::Other(format!("invalid stored {:?}", $s).into()))
            }
        }
        impl tokio_postgres::types::ToSql for $t {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                let $v = self;
                std::borrow::Cow::<str>::from($encode).as_ref().to_sql(ty, out)
            }
            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }
            tokio_postgres::types::to_sql_checked!();
        }
        impl<'a> tokio_postgres::types::FromSql<'a> for $t {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let $s = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                $decode.ok_or_else(|| format!("invalid stored {:?}", $s).into())
            }
            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    };
}

macro_rules! named_column {
    ($($t:ty),*) => {$(
        text_column!($t, |v| v.as_str(), |s| <$t>::parse(s));
    )*};
}
named_column!(
    crate::domain::model::RevocationReason,
    crate::domain::model::AuditKind,
    crate::domain::model::DeviceStatus,
    crate::domain::model::AuthMethod,
    crate::domain::model::EventKind,
    crate::domain::model::EventState
);
text_column!(crate::domain::scope::Scope, |v| v.to_string(), |s| {
    crate::domain::scope::Scope::parse(s).ok()
});

/// A statement argument a [`Record`] binds: one of its fields, text made from one (JSON), or
/// bytes.
#[derive(Debug)]
pub enum Bound<'a> {
    Field(&'a dyn Arg),
    Text(String),
    Bytes(&'a [u8]),
}

impl Bound<'_> {
    fn arg(&self) -> &dyn Arg {
        match self {
            Bound::Field(a) => *a,
            Bound::Text(t) => t,
            Bound::Bytes(b) => b,
        }
    }
}

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.arg().sqlite().to_sql()
    }
}

impl tokio_postgres::types::ToSql for Bound<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.arg().pg().to_sql_checked(ty, out)
    }
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true // `to_sql` checks with the field's own `to_sql_checked`
    }
    tokio_postgres::types::to_sql_checked!();
}

/// A domain type stored as one row of a table, declared with [`record!`]: the columns (in the
/// order of [`Record::read`] and [`Record::bind`]) are listed once, so the column list, the row
/// mapping and the INSERT's arguments cannot drift apart.
pub trait Record: Sized {
    const TABLE: &'static str;
    const COLS: &'static str;
    /// The columns qualified with the table's alias, for joins (`f.id, f.client_id, …`).
    const ALIASED: &'static str;
    /// How many columns.
    const WIDTH: usize;
    /// The value whose columns start at `at`.
    fn read(r: &RowRef<'_>, at: usize) -> Result<Self>;
    /// The values of `COLS`, in order.
    fn bind(&self) -> Vec<Bound<'_>>;
    /// Its INSERT statement ([`Stmt::insert`]).
    fn insert() -> &'static Stmt;
}

/// `record!(Type, "table" as "alias" { field, field: json, field: hash32, … })` implements
/// [`Record`]: a plain field is a column of its own type, `json` is stored as JSON text,
/// `hash32` is a 32-byte array stored as bytes.
macro_rules! record {
    ($ty:ident, $table:literal as $alias:literal { $f0:ident $(: $c0:ident)? $(, $f:ident $(: $c:ident)?)* $(,)? }) => {
        impl $crate::store::sql::Record for $ty {
            const TABLE: &'static str = $table;
            const COLS: &'static str = concat!(stringify!($f0) $(, ", ", stringify!($f))*);
            const ALIASED: &'static str =
                concat!($alias, ".", stringify!($f0) $(, ", ", $alias, ".", stringify!($f))*);
            const WIDTH: usize = [stringify!($f0) $(, stringify!($f))*].len();
            fn read(r: &$crate::store::sql::RowRef<'_>, at: usize) -> $crate::store::Result<Self> {
                let mut i = at;
                let mut next = || {
                    i += 1;
                    i - 1
                };
                Ok($ty {
                    $f0: $crate::store::sql::read_col!(r, next() $(, $c0)?),
                    $($f: $crate::store::sql::read_col!(r, next() $(, $c)?),)*
                })
            }
            fn insert() -> &'static $crate::store::sql::Stmt {
                static INSERT: $crate::store::sql::Stmt = $crate::store::sql::Stmt::insert::<$ty>();
                &INSERT
            }
            fn bind(&self) -> Vec<$crate::store::sql::Bound<'_>> {
                vec![
                    $crate::store::sql::bind_col!(self.$f0 $(, $c0)?),
                    $($crate::store::sql::bind_col!(self.$f $(, $c)?),)*
                ]
            }
        }
    };
}

macro_rules! read_col {
    ($r:ident, $i:expr) => {
        $r.get($i)?
    };
    ($r:ident, $i:expr, json) => {
        $r.json($i)?
    };
    ($r:ident, $i:expr, hash32) => {
        $r.get::<Vec<u8>>($i)?
            .try_into()
            .map_err(|_| $crate::store::StoreError::Backend("a stored hash is not 32 bytes".into()))?
    };
}

macro_rules! bind_col {
    ($v:expr) => {
        $crate::store::sql::Bound::Field(&$v)
    };
    ($v:expr, json) => {
        $crate::store::sql::Bound::Text(serde_json::to_string(&$v).unwrap_or_else(|_| "[]".into()))
    };
    ($v:expr, hash32) => {
        $crate::store::sql::Bound::Bytes(&$v[..])
    };
}
pub(crate) use {bind_col, read_col, record};

/// A record's arguments as a statement's (`Conn::exec` takes `&[&dyn Arg]`).
pub fn refs<'a>(bound: &'a [Bound<'_>]) -> Vec<&'a dyn Arg> {
    bound.iter().map(|b| b as &dyn Arg).collect()
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
        assert_eq!(
            to_sqlite("UPDATE t SET a = 1 WHERE id IN (SELECT id FROM t LIMIT $1 FOR UPDATE SKIP LOCKED)"),
            "UPDATE t SET a = 1 WHERE id IN (SELECT id FROM t LIMIT ?1)"
        );
        static S: Stmt = Stmt::dialects("SELECT pg_advisory_xact_lock(1)", "SELECT 1");
        assert_eq!(S.sqlite(), "SELECT 1");
        assert!(S.pg().contains("pg_advisory_xact_lock"));
    }
}
