//! SQLite's direct path: statements run on the raw `sqlite3*` handle of
//! sqlx's own connection, on the caller's thread, with rows decoded straight
//! from the statement into the entity.
//!
//! sqlx's SQLite driver runs every statement on a worker thread and sends
//! each row through a channel (a few microseconds a statement, a hop per
//! row). [`SqliteConnection::lock_handle`] stops the worker and hands out
//! the handle; while the lock is held nothing of sqlx touches the database.
//! The lock is taken once, by the first statement of a transaction, and
//! released before anything of sqlx runs again: [`Direct`] is owned by
//! [`SqliteConn`](super::SqliteConn), whose only way to the sqlx connection
//! drops it first.
//!
//! The prepared statements outlive the lock: they belong to the
//! connection's [`Statements`], kept across transactions and sessions (a
//! repeated lookup or insert is prepared once per connection, not once per
//! transaction). Between locks they sit reset, holding no lock of the
//! database, and nothing touches them; sqlx finalizes them when it closes
//! the connection (see [`Statements`]).
//!
//! At under 800 lines this file is over the crate's 600-line guide on
//! purpose: it holds all of persist's `unsafe`, and keeping it in one file
//! keeps every FFI call and its safety argument reviewable together.
//!
//! The only `unsafe` of persist is in this module.
//!
//! While locked, the busy timeout is zero: a statement that would wait for
//! another connection's lock returns at once and runs through sqlx instead,
//! which waits on its worker thread rather than on the caller's.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CStr, c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::LockedSqliteHandle;
use uuid::Uuid;

use super::sqlite::Arg;
use super::{RowColumns, RowMap, StmtError};
use crate::error::BoxDynError;
use crate::model::value::RowReader;

/// How many prepared statements one connection keeps (past it, the least
/// recently used one is finalized to make room, so dynamic queries with
/// varying SQL cost a prepare each).
const MAX_STATEMENTS: usize = 64;

thread_local! {
    /// Statements the direct path prepared on this thread (its statements
    /// run on the caller's thread, so a test on a current-thread runtime
    /// sees its own).
    static PREPARED: Cell<u64> = const { Cell::new(0) };
}

/// How many statements the direct path has prepared on the calling thread
/// (a cached statement reused counts nothing): for tests that check
/// statements are prepared once per connection.
#[doc(hidden)]
pub fn prepared_on_this_thread() -> u64 {
    PREPARED.with(Cell::get)
}

/// The prepared statements of one SQLite connection, kept from one lock of
/// it to the next (so across transactions and the sessions that get the
/// connection from the parking).
///
/// They must be finalized while the connection is open and nothing else
/// uses it, and before sqlx closes it (`sqlite3_close` fails on a
/// connection with statements left, and sqlx panics then). sqlx gives
/// exactly one place with both: the rollback hook's closure, which it drops
/// when the hook is replaced or removed through a [`LockedSqliteHandle`]
/// (under the lock) and in the teardown of the connection's state, before
/// the handle is closed, by the one thread that still holds it. So the
/// statements live in a [`Finalizer`] owned by a rollback hook installed
/// on the connection (a hook that does nothing when called); whoever drops
/// the hook finalizes them. persist owns the rollback hook of its SQLite
/// connections: nothing else of persist sets one.
#[derive(Default)]
pub(crate) struct Statements {
    /// The cache shared with the hook's [`Finalizer`]; `None` until the
    /// first lock installs the hook.
    shared: Option<Arc<Mutex<Option<Stmts>>>>,
}

/// Prepared statements by SQL text; each finalized when dropped (evicted,
/// or with the hook, see [`Statements`]).
struct Stmts {
    map: HashMap<Box<str>, Stmt, foldhash::fast::RandomState>,
    /// A clock of statement uses, for evicting the least recently used.
    uses: u64,
}

// SAFETY: the statements are used (stepped, reset, finalized) only by a
// thread that holds the connection: under sqlx's lock (`Direct`), or in the
// teardown of sqlx's connection state, which runs once nothing else refers
// to it. SQLite connections opened by sqlx (multi-thread mode) and their
// statements are usable from any thread, one at a time.
unsafe impl Send for Stmts {}

/// Owns the statements of a connection on behalf of its rollback hook:
/// finalizes them when sqlx drops the hook (see [`Statements`]).
struct Finalizer(Arc<Mutex<Option<Stmts>>>);

impl Drop for Finalizer {
    fn drop(&mut self) {
        // Taken out, so a `Direct` that still has the `Arc` sees the cache
        // gone rather than finalized statements.
        let stmts = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(stmts); // each finalized by `Stmt::drop`
    }
}

/// The direct path of one SQLite connection, locked.
pub(crate) struct Direct {
    /// The connection's statements (installed by [`Direct::lock`]).
    stmts: Arc<Mutex<Option<Stmts>>>,
    db: NonNull<ffi::sqlite3>,
    /// The busy timeout to restore (milliseconds).
    busy_ms: c_int,
    /// sqlx's lock on the connection. Its lifetime is widened to `'static`:
    /// see [`Direct::lock`].
    _lock: LockedSqliteHandle<'static>,
}

// SAFETY: the handle and statements are only used through `&mut Direct`,
// one thread at a time; SQLite connections opened by sqlx are usable from
// any thread (never at once, which the lock guarantees).
unsafe impl Send for Direct {}

/// One prepared statement, finalized exactly once: when it is dropped.
struct Stmt {
    raw: NonNull<ffi::sqlite3_stmt>,
    /// The [`Stmts::uses`] clock at its last use.
    used: u64,
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: the statement belongs to the connection and is owned by
        // this value alone; it is dropped only by a thread that holds the
        // open connection (evicted under the lock, or by the `Finalizer`,
        // see `Statements`) and it is reset (see `Running`).
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// What a statement run on the direct path gave.
pub(crate) enum Ran<T> {
    /// It ran.
    Done(T),
    /// It cannot run here (several statements in one string, or a lock held
    /// by another connection); nothing of it happened: run it through sqlx.
    Fallback,
}

impl<T> Ran<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Ran<U> {
        match self {
            Ran::Done(t) => Ran::Done(f(t)),
            Ran::Fallback => Ran::Fallback,
        }
    }
}

impl Direct {
    /// Takes the lock of `conn` (the worker thread parks until it is
    /// dropped), with `statements`, the connection's prepared statements
    /// (installed on it at the first lock). `busy` is the connection's busy
    /// timeout, restored on drop.
    pub(crate) async fn lock(
        conn: &mut SqliteConnection,
        statements: &mut Statements,
        busy: std::time::Duration,
    ) -> Result<Direct, sqlx::Error> {
        let mut handle = conn.lock_handle().await?;
        // Nothing below awaits: a dropped future leaves `statements` as it was.
        let db = handle.as_raw_handle();
        // SAFETY: the guard inside `LockedSqliteHandle` refers to the mutex in
        // sqlx's worker state, which sits behind an `Arc` owned by the
        // connection: it does not move when the connection does and lives as
        // long as the connection. `SqliteConn` declares `direct` before the
        // connection (dropped first) and hands the connection out only after
        // dropping `direct`, so the guard never outlives its mutex and no
        // sqlx call reaches the connection while it is held.
        let mut handle: LockedSqliteHandle<'static> = unsafe { std::mem::transmute(handle) };
        let live = statements
            .shared
            .as_ref()
            .filter(|c| c.lock().unwrap_or_else(PoisonError::into_inner).is_some())
            .cloned();
        let stmts = match live {
            Some(c) => c,
            None => {
                // First lock of this connection by this `SqliteConn`: a hook
                // left by an earlier one (the connection went through the
                // pool) is replaced, which finalizes its statements now,
                // under the lock.
                let c = Arc::new(Mutex::new(Some(Stmts {
                    map: HashMap::default(),
                    uses: 0,
                })));
                let owner = Finalizer(Arc::clone(&c));
                handle.set_rollback_hook(move || {
                    let _owned = &owner;
                });
                statements.shared = Some(Arc::clone(&c));
                c
            }
        };
        // SAFETY: `db` is the open handle, locked for this thread.
        unsafe { ffi::sqlite3_busy_timeout(db.as_ptr(), 0) };
        Ok(Direct {
            stmts,
            db,
            busy_ms: c_int::try_from(busy.as_millis()).unwrap_or(c_int::MAX),
            _lock: handle,
        })
    }

    /// The prepared statement of `sql` (prepared on first use on this
    /// connection), or `None` when `sql` is not exactly one statement.
    fn prepare(&mut self, sql: &str) -> Result<Option<NonNull<ffi::sqlite3_stmt>>, StmtError> {
        let mut guard = self.stmts.lock().unwrap_or_else(PoisonError::into_inner);
        // Gone only if the hook was dropped, which takes the lock this
        // `Direct` holds: cannot happen, but sqlx can run the statement.
        let Some(cache) = guard.as_mut() else {
            return Ok(None);
        };
        cache.uses += 1;
        if let Some(s) = cache.map.get_mut(sql) {
            s.used = cache.uses;
            return Ok(Some(s.raw));
        }
        let len =
            c_int::try_from(sql.len()).map_err(|_| sqlx::Error::Protocol("SQL too long".into()))?;
        let mut stmt = ptr::null_mut();
        let mut tail = ptr::null();
        PREPARED.with(|n| n.set(n.get() + 1));
        // SAFETY: `sql` is valid for `len` bytes; out-pointers are valid.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(last_error(self.db));
        }
        let Some(stmt) = NonNull::new(stmt) else {
            return Ok(None); // only whitespace or comments
        };
        // SAFETY: `tail` points into `sql` (or one past its end).
        let used = unsafe { tail.cast::<u8>().offset_from(sql.as_ptr()) } as usize;
        if !sql[used.min(sql.len())..].trim().is_empty() {
            // SAFETY: `stmt` was just prepared and is not stored.
            unsafe { ffi::sqlite3_finalize(stmt.as_ptr()) };
            return Ok(None);
        }
        let stmt = Stmt {
            raw: stmt,
            used: cache.uses,
        };
        if cache.map.len() >= MAX_STATEMENTS {
            // Only a miss past the limit pays for the scan.
            let oldest = cache.map.iter().min_by_key(|(_, s)| s.used);
            if let Some(sql) = oldest.map(|(sql, _)| sql.clone()) {
                cache.map.remove(&sql); // finalized by `Stmt::drop`, locked
            }
        }
        let raw = stmt.raw;
        cache.map.insert(sql.into(), stmt);
        Ok(Some(raw))
    }

    /// Runs `sql` with `args` and decodes every row with `m`.
    pub(crate) fn query<M: RowMap>(
        &mut self,
        sql: &str,
        args: &[Arg],
        m: &M,
    ) -> Result<Ran<Vec<M::Out>>, StmtError> {
        let mut out = Vec::new();
        let ran = self.rows(sql, args, |row| {
            out.push(m.map(row)?);
            Ok(true)
        })?;
        Ok(ran.map(|_| out))
    }

    /// Runs `sql` with `args` and decodes its first row, if any, with `m`
    /// (no vector for the one row).
    pub(crate) fn query_first<M: RowMap>(
        &mut self,
        sql: &str,
        args: &[Arg],
        m: &M,
    ) -> Result<Ran<Option<M::Out>>, StmtError> {
        let mut out = None;
        let ran = self.rows(sql, args, |row| {
            out = Some(m.map(row)?);
            Ok(false)
        })?;
        Ok(ran.map(|_| out))
    }

    /// Steps `sql` with `args`, handing each row to `each` while it answers
    /// `true`; answers the statement that ran.
    fn rows(
        &mut self,
        sql: &str,
        args: &[Arg],
        mut each: impl FnMut(&RawRow<'_>) -> Result<bool, crate::error::Error>,
    ) -> Result<Ran<NonNull<ffi::sqlite3_stmt>>, StmtError> {
        let Some(stmt) = self.prepare(sql)? else {
            return Ok(Ran::Fallback);
        };
        let mut run = Running::bind(self.db, stmt, args)?;
        let mut first = true;
        loop {
            match run.step() {
                ffi::SQLITE_ROW => {
                    first = false;
                    if !each(&run.row())? {
                        break;
                    }
                }
                ffi::SQLITE_DONE => break,
                rc if first && busy(rc) => return Ok(Ran::Fallback),
                _ => return Err(last_error(self.db)),
            }
        }
        Ok(Ran::Done(stmt))
    }

    /// Runs `sql` with `args` to its end; answers the rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<Ran<u64>, StmtError> {
        let Ran::Done(stmt) = self.rows(sql, args, |_| Ok(true))? else {
            return Ok(Ran::Fallback);
        };
        // SAFETY: `stmt` is a live statement of `db`.
        let changes = if unsafe { ffi::sqlite3_stmt_readonly(stmt.as_ptr()) } != 0 {
            0
        } else {
            // SAFETY: `db` is the open, locked handle.
            unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) }
        };
        Ok(Ran::Done(changes.max(0) as u64))
    }
}

/// The connection's last error, as sqlx reports a database error.
fn last_error(db: NonNull<ffi::sqlite3>) -> StmtError {
    // SAFETY: `db` is the open, locked handle; `sqlite3_errmsg` returns a
    // NUL-terminated string valid until the next call on it.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        let msg = CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr()));
        (code, msg.to_string_lossy().into_owned())
    };
    StmtError::Db(sqlx::Error::Database(Box::new(DirectError {
        code,
        message,
    })))
}

impl Drop for Direct {
    fn drop(&mut self) {
        // The statements stay prepared, reset (see `Running`), for the next
        // lock; the busy timeout is restored while the lock is held (`_lock`
        // drops after this body).
        // SAFETY: `db` is the open, locked handle.
        unsafe { ffi::sqlite3_busy_timeout(self.db.as_ptr(), self.busy_ms) };
    }
}

fn busy(rc: c_int) -> bool {
    matches!(rc & 0xff, ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED)
}

/// A statement with its arguments bound, reset and unbound when dropped (so
/// no statement keeps a read transaction open or points at freed text).
struct Running<'a> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    _args: std::marker::PhantomData<&'a [Arg]>,
}

impl<'a> Running<'a> {
    fn bind(
        db: NonNull<ffi::sqlite3>,
        stmt: NonNull<ffi::sqlite3_stmt>,
        args: &'a [Arg],
    ) -> Result<Running<'a>, StmtError> {
        let run = Running {
            stmt,
            _args: std::marker::PhantomData,
        };
        let s = stmt.as_ptr();
        // SAFETY: `s` is a reset statement of `db`; text and blobs are bound
        // as SQLITE_STATIC: `args` outlives `run`, which unbinds on drop.
        unsafe {
            let count = ffi::sqlite3_bind_parameter_count(s);
            for (i, a) in args.iter().enumerate().take(count.max(0) as usize) {
                let n = i as c_int + 1;
                let rc = match a {
                    Arg::Null => ffi::sqlite3_bind_null(s, n),
                    Arg::Int(v) => ffi::sqlite3_bind_int64(s, n, *v),
                    Arg::Double(v) => ffi::sqlite3_bind_double(s, n, *v),
                    Arg::Text(v) => ffi::sqlite3_bind_text64(
                        s,
                        n,
                        v.as_ptr().cast(),
                        v.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Arg::Blob(v) => ffi::sqlite3_bind_blob64(
                        s,
                        n,
                        v.as_ptr().cast::<c_void>(),
                        v.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                };
                if rc != ffi::SQLITE_OK {
                    return Err(last_error(db));
                }
            }
        }
        Ok(run)
    }

    fn step(&mut self) -> c_int {
        // SAFETY: a bound statement of the locked connection.
        unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) }
    }

    fn row(&self) -> RawRow<'_> {
        RawRow {
            stmt: self.stmt,
            _run: std::marker::PhantomData,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live; reset ends its read, clearing the
        // bindings forgets pointers into the arguments.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
    }
}

/// The current row of a stepping statement.
struct RawRow<'r> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    _run: std::marker::PhantomData<&'r Running<'r>>,
}

/// SQLite's storage classes of a value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Integer,
    Float,
    Text,
    Blob,
    Null,
}

impl RawRow<'_> {
    fn class(&self, i: usize) -> Result<Class, BoxDynError> {
        let s = self.stmt.as_ptr();
        // SAFETY: the statement is on a row; the index is checked first.
        let t = unsafe {
            if i >= ffi::sqlite3_column_count(s).max(0) as usize {
                return Err(format!("no column at index {i}").into());
            }
            ffi::sqlite3_column_type(s, i as c_int)
        };
        Ok(match t {
            ffi::SQLITE_INTEGER => Class::Integer,
            ffi::SQLITE_FLOAT => Class::Float,
            ffi::SQLITE_TEXT => Class::Text,
            ffi::SQLITE_BLOB => Class::Blob,
            _ => Class::Null,
        })
    }

    fn int(&self, i: usize) -> Result<Option<i64>, BoxDynError> {
        match self.class(i)? {
            Class::Null => Ok(None),
            // SAFETY: a checked column of the current row.
            Class::Integer => Ok(Some(unsafe {
                ffi::sqlite3_column_int64(self.stmt.as_ptr(), i as c_int)
            })),
            other => Err(mismatch("an integer", other)),
        }
    }

    fn float(&self, i: usize) -> Result<Option<f64>, BoxDynError> {
        match self.class(i)? {
            Class::Null => Ok(None),
            // SAFETY: a checked column of the current row.
            Class::Integer | Class::Float => Ok(Some(unsafe {
                ffi::sqlite3_column_double(self.stmt.as_ptr(), i as c_int)
            })),
            other => Err(mismatch("a number", other)),
        }
    }

    /// The column as text (numbers are converted by SQLite), borrowed until
    /// the next call on this row.
    fn text(&self, i: usize) -> Result<Option<&str>, BoxDynError> {
        match self.class(i)? {
            Class::Null => Ok(None),
            Class::Blob => Err(mismatch("text", Class::Blob)),
            _ => {
                // SAFETY: a checked column of the current row; SQLite
                // converts it to UTF-8 text.
                let p = unsafe { ffi::sqlite3_column_text(self.stmt.as_ptr(), i as c_int) };
                Ok(Some(std::str::from_utf8(self.column_bytes(i, p))?))
            }
        }
    }

    /// The bytes at `p`, which `sqlite3_column_text` or `_blob` just gave for
    /// column `i` (null for an empty value).
    fn column_bytes(&self, i: usize, p: *const u8) -> &[u8] {
        if p.is_null() {
            return &[];
        }
        // SAFETY: `p` points at the column's value, whose length SQLite
        // reports; it stays valid until the column is read again or the row
        // changes, neither of which can happen while the caller holds the
        // slice borrowed from this row.
        unsafe {
            let n = ffi::sqlite3_column_bytes(self.stmt.as_ptr(), i as c_int).max(0) as usize;
            std::slice::from_raw_parts(p, n)
        }
    }

    fn blob(&self, i: usize) -> Result<Option<&[u8]>, BoxDynError> {
        match self.class(i)? {
            Class::Null => Ok(None),
            Class::Blob | Class::Text => {
                // SAFETY: a checked column of the current row.
                let p = unsafe { ffi::sqlite3_column_blob(self.stmt.as_ptr(), i as c_int) };
                Ok(Some(self.column_bytes(i, p.cast())))
            }
            other => Err(mismatch("a blob", other)),
        }
    }

    fn datetime(&self, i: usize) -> Result<Option<DateTime<FixedOffset>>, BoxDynError> {
        let dt = match self.class(i)? {
            Class::Null => return Ok(None),
            Class::Text => {
                let t = self.text(i)?.unwrap_or_default();
                datetime_from_text(t).ok_or_else(|| format!("invalid datetime: {t}"))?
            }
            Class::Integer => {
                let v = self.int(i)?.unwrap_or_default();
                Utc.fix()
                    .timestamp_opt(v, 0)
                    .single()
                    .ok_or_else(|| format!("invalid datetime: {v}"))?
            }
            Class::Float => {
                let v = self.float(i)?.unwrap_or_default();
                datetime_from_julian(v).ok_or_else(|| format!("invalid datetime: {v}"))?
            }
            Class::Blob => return Err(mismatch("a datetime", Class::Blob)),
        };
        Ok(Some(dt))
    }
}

fn mismatch(wanted: &str, got: Class) -> BoxDynError {
    format!("mismatched types: expected {wanted}, the column holds {got:?}").into()
}

/// The formats sqlx's SQLite driver reads (the same rows must read the same
/// on both paths).
fn datetime_from_text(value: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        return Some(dt);
    }
    const FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    for f in FORMATS {
        if let Ok(dt) = DateTime::parse_from_str(value, f) {
            return Some(dt);
        }
        if let Ok(dt) = NaiveDateTime::parse_from_str(value, f) {
            return Some(Utc.fix().from_utc_datetime(&dt));
        }
    }
    None
}

fn datetime_from_julian(value: f64) -> Option<DateTime<FixedOffset>> {
    let ts = (value - 2_440_587.5) * 86_400.0;
    if !ts.is_finite() {
        return None;
    }
    let secs = ts.trunc() as i64;
    let nanos = (ts.fract() * 1e9).abs() as u32;
    Utc.fix().timestamp_opt(secs, nanos).single()
}

impl RowColumns for RawRow<'_> {
    fn column_count(&self) -> usize {
        // SAFETY: a live statement of the locked connection.
        unsafe { ffi::sqlite3_column_count(self.stmt.as_ptr()) }.max(0) as usize
    }

    fn column_name(&self, i: usize) -> Option<String> {
        if i >= self.column_count() {
            return None;
        }
        // SAFETY: a checked column of a live statement; the name is a
        // NUL-terminated string valid until the statement is finalized or
        // re-prepared, and is copied at once.
        unsafe {
            let p = ffi::sqlite3_column_name(self.stmt.as_ptr(), i as c_int);
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }
}

impl RowReader for RawRow<'_> {
    fn bool(&self, i: usize) -> Result<Option<bool>, BoxDynError> {
        Ok(self.int(i)?.map(|v| v != 0))
    }
    fn i16(&self, i: usize) -> Result<Option<i16>, BoxDynError> {
        Ok(self.int(i)?.map(i16::try_from).transpose()?)
    }
    fn i32(&self, i: usize) -> Result<Option<i32>, BoxDynError> {
        Ok(self.int(i)?.map(i32::try_from).transpose()?)
    }
    fn i64(&self, i: usize) -> Result<Option<i64>, BoxDynError> {
        self.int(i)
    }
    fn f32(&self, i: usize) -> Result<Option<f32>, BoxDynError> {
        Ok(self.float(i)?.map(|v| v as f32))
    }
    fn f64(&self, i: usize) -> Result<Option<f64>, BoxDynError> {
        self.float(i)
    }
    fn string(&self, i: usize) -> Result<Option<String>, BoxDynError> {
        Ok(self.text(i)?.map(str::to_owned))
    }
    fn bytes(&self, i: usize) -> Result<Option<Vec<u8>>, BoxDynError> {
        Ok(self.blob(i)?.map(<[u8]>::to_vec))
    }
    fn json(&self, i: usize) -> Result<Option<serde_json::Value>, BoxDynError> {
        match self.text(i)? {
            None => Ok(None),
            Some(s) => Ok(Some(serde_json::from_str(s)?)),
        }
    }
    fn timestamptz(&self, i: usize) -> Result<Option<DateTime<Utc>>, BoxDynError> {
        Ok(self
            .datetime(i)?
            .map(|d| Utc.from_utc_datetime(&d.naive_utc())))
    }
    fn timestamp(&self, i: usize) -> Result<Option<NaiveDateTime>, BoxDynError> {
        Ok(self.datetime(i)?.map(|d| d.naive_local()))
    }
    fn date(&self, i: usize) -> Result<Option<NaiveDate>, BoxDynError> {
        match self.text(i)? {
            None => Ok(None),
            Some(s) => Ok(Some(NaiveDate::parse_from_str(s, "%F")?)),
        }
    }
    fn time(&self, i: usize) -> Result<Option<NaiveTime>, BoxDynError> {
        let Some(s) = self.text(i)? else {
            return Ok(None);
        };
        const FORMATS: [&str; 7] = ["%T.f", "%T%.f", "%R", "%RZ", "%T%.fZ", "%R%:z", "%T%.f%:z"];
        for f in FORMATS {
            if let Ok(t) = NaiveTime::parse_from_str(s, f) {
                return Ok(Some(t));
            }
        }
        Err(format!("invalid time: {s}").into())
    }
    fn uuid(&self, i: usize) -> Result<Option<Uuid>, BoxDynError> {
        match self.class(i)? {
            Class::Null => Ok(None),
            Class::Blob => Ok(Some(Uuid::from_slice(self.blob(i)?.unwrap_or_default())?)),
            other => Err(mismatch("a UUID blob", other)),
        }
    }
    #[cfg(feature = "decimal")]
    fn decimal(&self, i: usize) -> Result<Option<rust_decimal::Decimal>, BoxDynError> {
        use super::sqlite::StoredDecimal;
        let stored = match self.class(i)? {
            Class::Null => return Ok(None),
            Class::Text => StoredDecimal::Text(self.text(i)?.unwrap_or_default()),
            Class::Integer => StoredDecimal::Int(self.int(i)?.unwrap_or_default()),
            Class::Float => StoredDecimal::Real(self.float(i)?.unwrap_or_default()),
            other => return Err(mismatch("a decimal", other)),
        };
        stored.decimal().map(Some)
    }
}

/// A database error raised on the direct path, reported as sqlx reports
/// SQLite's (same codes, same kinds), so errors map the same on both paths.
#[derive(Debug)]
struct DirectError {
    /// The extended result code.
    code: c_int,
    message: String,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DirectError {}

impl DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
