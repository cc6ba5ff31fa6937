//! The SQLite store: the embedded default, at `<root>/.agentry/workspace.db`.
//!
//! One writer thread owns the only write connection and is fed by a channel; it
//! runs queued writes as a group inside one `BEGIN IMMEDIATE` transaction (each
//! write in its own savepoint, so one failure never undoes another), which makes
//! concurrent appends cheap without giving up atomicity. Reads run on a few reader
//! threads, each owning a read-only connection and sharing one job channel. The
//! one exception is a small point read (a snapshot of at most
//! [`INLINE_READ_MAX`] bytes): it runs on the calling task with a pooled read-only
//! connection whose busy timeout is zero, because two thread hand-offs cost more
//! than the read itself; anything that would wait for a lock or read a large row
//! goes to the reader threads instead. WAL mode lets readers proceed
//! while the writer commits;
//! several processes may open the same file and are serialised by SQLite's lock
//! (with a busy timeout), which is what makes CAS and leases hold across processes.
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_core::Timestamp;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::WorkspaceError;
use crate::store::{Store, StoreFuture};
use crate::types::*;

/// `PRAGMA application_id` of an Agentry workspace database ("AGTY").
pub const APPLICATION_ID: i64 = 0x4147_5459;
/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = r#"
CREATE TABLE records(
  rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, collection TEXT NOT NULL, kind TEXT, path TEXT,
  scope TEXT NOT NULL, meta TEXT NOT NULL, summary TEXT NOT NULL, content_type TEXT NOT NULL,
  size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_at INTEGER NOT NULL, content BLOB NOT NULL);
CREATE INDEX records_collection ON records(collection, rid);
CREATE INDEX records_path ON records(path);
CREATE VIRTUAL TABLE records_fts USING fts5(summary, body, tokenize = 'unicode61');
CREATE TABLE links(
  lid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source_id TEXT NOT NULL, target_id TEXT NOT NULL,
  relation TEXT NOT NULL, meta TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX links_source ON links(source_id);
CREATE INDEX links_target ON links(target_id);
CREATE TABLE snapshot_heads(run_id TEXT PRIMARY KEY, state_version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE snapshots(
  run_id TEXT NOT NULL, state_version INTEGER NOT NULL, schema_version INTEGER NOT NULL, step_id TEXT,
  digest TEXT NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, state BLOB NOT NULL,
  PRIMARY KEY(run_id, state_version)) WITHOUT ROWID;
CREATE TABLE leases(
  key TEXT PRIMARY KEY, owner TEXT NOT NULL, token INTEGER NOT NULL, ttl_ms INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, released INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE event_heads(execution_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE events(
  execution_id TEXT NOT NULL, seq INTEGER NOT NULL, idem_key TEXT NOT NULL, event_type TEXT NOT NULL,
  at_ms INTEGER NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY(execution_id, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX events_idem ON events(execution_id, idem_key);
"#;

/// How to open a SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file.
    pub path: PathBuf,
    /// Open without a writer; every write fails with `workspace.store_read_only`.
    pub read_only: bool,
    /// How long to wait for another process's lock.
    pub busy_timeout: Duration,
    /// A size quota in pages (4 KiB); hitting it fails writes with `workspace.disk_full`.
    pub max_page_count: Option<u64>,
    /// `synchronous=FULL` (survives power loss) instead of `NORMAL` (survives
    /// process crashes, which is the default promise).
    pub synchronous_full: bool,
    /// Default snapshot retention per run.
    pub keep_last: Option<u32>,
    /// Most writes grouped into one transaction.
    pub max_group: usize,
    /// Reader threads (each with its own read-only connection).
    pub readers: usize,
}

impl SqliteOptions {
    /// Defaults for a file.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            read_only: false,
            busy_timeout: Duration::from_secs(10),
            max_page_count: None,
            synchronous_full: false,
            keep_last: None,
            max_group: 256,
            readers: 2,
        }
    }
}

/// The SQLite [`Store`]. Cheap to clone; clones share the writer and the readers.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    writer: Option<std_mpsc::Sender<Box<dyn WriteJob>>>,
    readers: std_mpsc::Sender<ReadJob>,
    /// Read-only connections for small reads on the calling task (see the module
    /// docs); taken out while in use, so concurrent callers never share one.
    inline: Mutex<InlinePool>,
}

/// Largest snapshot state read on the calling task; larger ones go to a reader
/// thread so a big row never holds up an async worker.
pub const INLINE_READ_MAX: u64 = 64 * 1024;

/// Most connections kept for reads on the calling task.
const INLINE_POOL_MAX: usize = 4;

#[derive(Debug, Default)]
struct InlinePool {
    idle: Vec<InlineConn>,
    open: usize,
}

/// A pooled read-only connection (rusqlite's `Connection` is not `Debug`).
struct InlineConn(Connection);

impl std::fmt::Debug for InlineConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InlineConn")
    }
}

/// The outcome of trying a read on the calling task.
enum Inline<T> {
    Done(Result<T, WorkspaceError>),
    /// Would wait for a lock, or the row is too large: use a reader thread.
    Defer,
}

/// Whether a SQLite error means "would have to wait for a lock".
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// One queued read: gets the reader's connection (or the error opening it).
type ReadJob = Box<dyn FnOnce(Result<&Connection, WorkspaceError>, &Path) + Send>;

/// One queued write: runs inside the group transaction, replies after the commit.
trait WriteJob: Send {
    fn run(&mut self, conn: &Connection) -> bool;
    fn finish(self: Box<Self>, commit: Result<(), WorkspaceError>);
}

impl std::fmt::Debug for dyn WriteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteJob")
    }
}

struct TypedJob<T, F> {
    f: Option<F>,
    result: Option<Result<T, WorkspaceError>>,
    reply: Option<oneshot::Sender<Result<T, WorkspaceError>>>,
}

impl<T, F> WriteJob for TypedJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, WorkspaceError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        match self.f.take() {
            Some(f) => {
                let r = f(conn);
                let ok = r.is_ok();
                self.result = Some(r);
                ok
            }
            None => false,
        }
    }

    fn finish(mut self: Box<Self>, commit: Result<(), WorkspaceError>) {
        let out = match (self.result.take(), commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Err(WorkspaceError::Busy(
                "write not run: its group transaction was aborted".into(),
            )),
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(out);
        }
    }
}

/// Maps a SQLite error to a typed workspace error.
pub(crate) fn classify(e: rusqlite::Error, path: &Path) -> WorkspaceError {
    use rusqlite::ErrorCode as C;
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let detail = msg.clone().unwrap_or_else(|| f.to_string());
        return match f.code {
            C::DiskFull => WorkspaceError::DiskFull(detail),
            C::NotADatabase | C::DatabaseCorrupt => WorkspaceError::CorruptDatabase {
                path: path.display().to_string(),
                detail,
            },
            C::DatabaseBusy | C::DatabaseLocked => WorkspaceError::Busy(detail),
            C::ReadOnly | C::PermissionDenied | C::CannotOpen => WorkspaceError::ReadOnlyLocation {
                path: path.display().to_string(),
                detail,
            },
            _ => WorkspaceError::Backend(detail),
        };
    }
    WorkspaceError::Backend(e.to_string())
}

/// A copy of an error for every write in a failed group (errors are not `Clone`).
fn dup(e: &WorkspaceError) -> WorkspaceError {
    match e {
        WorkspaceError::DiskFull(s) => WorkspaceError::DiskFull(s.clone()),
        WorkspaceError::Busy(s) => WorkspaceError::Busy(s.clone()),
        WorkspaceError::CorruptDatabase { path, detail } => WorkspaceError::CorruptDatabase {
            path: path.clone(),
            detail: detail.clone(),
        },
        WorkspaceError::ReadOnlyLocation { path, detail } => WorkspaceError::ReadOnlyLocation {
            path: path.clone(),
            detail: detail.clone(),
        },
        other => WorkspaceError::Backend(other.to_string()),
    }
}

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(options.busy_timeout)?;
    Ok(())
}

/// Checks what the file is before changing anything in it, then creates or
/// migrates the schema. Foreign, corrupt and too-new databases are left untouched.
fn init_schema(conn: &Connection, path: &Path) -> Result<(), WorkspaceError> {
    let c = |e| classify(e, path);
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(c)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(c)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(c)?;
    if app_id == 0 && tables == 0 {
        conn.execute_batch("PRAGMA journal_mode=WAL").map_err(c)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(c)?;
        // Another process may have initialised the file while we waited for the lock.
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(c)?;
        let result = if tables == 0 {
            conn.execute_batch(SCHEMA_V1)
                .and_then(|_| conn.pragma_update(None, "application_id", APPLICATION_ID))
                .and_then(|_| conn.pragma_update(None, "user_version", SCHEMA_VERSION))
                .map_err(c)
        } else {
            Ok(())
        };
        match result {
            Ok(()) => conn.execute_batch("COMMIT").map_err(c)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        return init_schema(conn, path);
    }
    if app_id != APPLICATION_ID {
        return Err(WorkspaceError::ForeignDatabase(path.display().to_string()));
    }
    if version > SCHEMA_VERSION {
        return Err(WorkspaceError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    // Version 1 is the only schema so far; future migrations run here, in order,
    // each in its own transaction that also bumps `user_version`.
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `options.path`.
    pub async fn open(options: SqliteOptions) -> Result<Self, WorkspaceError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(options))
            .await
            .map_err(|e| WorkspaceError::Backend(format!("open task failed: {e}")))?
    }

    /// Opens the store with default options.
    pub async fn open_path(path: impl Into<PathBuf>) -> Result<Self, WorkspaceError> {
        Self::open(SqliteOptions::new(path)).await
    }

    fn open_blocking(options: SqliteOptions) -> Result<Self, WorkspaceError> {
        let path = options.path.clone();
        let c = |e| classify(e, &path);
        if options.read_only {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(c)?;
            configure(&conn, &options).map_err(c)?;
            let app_id: i64 = conn
                .pragma_query_value(None, "application_id", |r| r.get(0))
                .map_err(c)?;
            if app_id != APPLICATION_ID {
                return Err(WorkspaceError::ForeignDatabase(path.display().to_string()));
            }
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(c)?;
            if version > SCHEMA_VERSION {
                return Err(WorkspaceError::SchemaTooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            let readers = start_readers(Some(conn), &path, &options)?;
            return Ok(Self {
                inner: Arc::new(Inner {
                    path,
                    options,
                    writer: None,
                    readers,
                    inline: Mutex::default(),
                }),
            });
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| WorkspaceError::io(parent, e))?;
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(c)?;
        configure(&conn, &options).map_err(c)?;
        init_schema(&conn, &path)?;
        let sync = if options.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.execute_batch(&format!("PRAGMA synchronous={sync}"))
            .map_err(c)?;
        if let Some(max) = options.max_page_count {
            conn.pragma_update(None, "max_page_count", i64_of(max))
                .map_err(c)?;
        }
        tracing::debug!(path = %path.display(), "sqlite workspace store opened");
        let (tx, rx) = std_mpsc::channel::<Box<dyn WriteJob>>();
        let max_group = options.max_group.max(1);
        let wpath = path.clone();
        std::thread::Builder::new()
            .name("agentry-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, max_group, wpath))
            .map_err(|e| WorkspaceError::Backend(format!("cannot start writer: {e}")))?;
        let readers = start_readers(None, &path, &options)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                writer: Some(tx),
                readers,
                inline: Mutex::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `PRAGMA integrity_check`; returns the problems found (empty when sound).
    pub async fn integrity_check(&self) -> Result<Vec<String>, WorkspaceError> {
        self.read(|conn, path| {
            let mut stmt = conn
                .prepare("PRAGMA integrity_check")
                .map_err(|e| classify(e, path))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| classify(e, path))?;
            Ok(rows.into_iter().filter(|r| r != "ok").collect())
        })
        .await
    }

    async fn write<T, F>(&self, f: F) -> Result<T, WorkspaceError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, WorkspaceError> + Send + 'static,
    {
        let writer = self
            .inner
            .writer
            .as_ref()
            .ok_or(WorkspaceError::StoreReadOnly)?;
        let (tx, rx) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(TypedJob {
            f: Some(f),
            result: None,
            reply: Some(tx),
        });
        writer.send(job).map_err(|_| WorkspaceError::Closed)?;
        await_reply(rx).await
    }

    /// Runs `f` on the calling task with a pooled read-only connection that never
    /// waits for a lock. `f` answers `Ok(None)` to hand the read to a reader thread
    /// (e.g. a row too large to read here); a busy database does the same.
    fn read_inline<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<Option<T>, rusqlite::Error>,
    ) -> Inline<T> {
        let taken = {
            let Ok(mut pool) = self.inner.inline.lock() else {
                return Inline::Defer;
            };
            match pool.idle.pop() {
                Some(c) => Some(c),
                None if pool.open < INLINE_POOL_MAX => {
                    pool.open += 1;
                    None
                }
                None => return Inline::Defer,
            }
        };
        let conn = match taken {
            Some(c) => c,
            None => {
                let opened = open_reader(&self.inner.path, &self.inner.options).and_then(|c| {
                    c.busy_timeout(Duration::ZERO)
                        .map_err(|e| classify(e, &self.inner.path))?;
                    Ok(c)
                });
                match opened {
                    Ok(c) => InlineConn(c),
                    Err(_) => {
                        if let Ok(mut pool) = self.inner.inline.lock() {
                            pool.open = pool.open.saturating_sub(1);
                        }
                        return Inline::Defer;
                    }
                }
            }
        };
        let outcome = f(&conn.0);
        // Each read is one autocommit statement, so a failed one leaves no
        // transaction open and the connection can go back either way.
        if let Ok(mut pool) = self.inner.inline.lock() {
            pool.idle.push(conn);
        }
        match outcome {
            Ok(Some(v)) => Inline::Done(Ok(v)),
            Ok(None) => Inline::Defer,
            Err(e) if is_busy(&e) => Inline::Defer,
            Err(e) => Inline::Done(Err(classify(e, &self.inner.path))),
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T, WorkspaceError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Path) -> Result<T, WorkspaceError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn, path| {
            let r = match conn {
                Ok(c) => f(c, path),
                Err(e) => Err(e),
            };
            let _ = tx.send(r);
        });
        self.inner
            .readers
            .send(job)
            .map_err(|_| WorkspaceError::Closed)?;
        await_reply(rx).await
    }
}

/// Waits for a reply from the writer or a reader. Most finish within tens of
/// microseconds, so re-poll a few times (yielding to other tasks) before parking:
/// the reply then does not pay for waking a sleeping runtime thread.
async fn await_reply<T>(
    mut rx: oneshot::Receiver<Result<T, WorkspaceError>>,
) -> Result<T, WorkspaceError> {
    let spin_until = std::time::Instant::now() + REPLY_SPIN;
    while std::time::Instant::now() < spin_until {
        match rx.try_recv() {
            Ok(r) => return r,
            Err(oneshot::error::TryRecvError::Closed) => return Err(WorkspaceError::Closed),
            Err(oneshot::error::TryRecvError::Empty) => tokio::task::yield_now().await,
        }
    }
    rx.await.map_err(|_| WorkspaceError::Closed)?
}

fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection, WorkspaceError> {
    let c = |e| classify(e, path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(c)?;
    configure(&conn, options).map_err(c)?;
    Ok(conn)
}

fn start_readers(
    first: Option<Connection>,
    path: &Path,
    options: &SqliteOptions,
) -> Result<std_mpsc::Sender<ReadJob>, WorkspaceError> {
    let (tx, rx) = std_mpsc::channel::<ReadJob>();
    let rx = Arc::new(Mutex::new(rx));
    let mut first = first;
    for i in 0..options.readers.max(1) {
        let (rx, path, options, conn) = (
            rx.clone(),
            path.to_path_buf(),
            options.clone(),
            first.take(),
        );
        std::thread::Builder::new()
            .name(format!("agentry-sqlite-reader-{i}"))
            .spawn(move || reader_loop(conn, &rx, &path, &options))
            .map_err(|e| WorkspaceError::Backend(format!("cannot start reader: {e}")))?;
    }
    Ok(tx)
}

/// A reader thread: the one waiting for work holds the receiver's lock (plain
/// thread, never an async task); the others queue on the lock.
fn reader_loop(
    mut conn: Option<Connection>,
    rx: &Mutex<std_mpsc::Receiver<ReadJob>>,
    path: &Path,
    options: &SqliteOptions,
) {
    loop {
        // Readers block at once: on a small machine a spinning reader would take
        // the core the writer or the caller needs.
        let job = match rx.lock() {
            Ok(guard) => guard.recv().ok(),
            Err(_) => None,
        };
        let Some(job) = job else { return };
        if conn.is_none() {
            match open_reader(path, options) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(e), path);
                    continue;
                }
            }
        }
        match &conn {
            Some(c) => job(Ok(c), path),
            None => job(Err(WorkspaceError::Closed), path),
        }
    }
}

/// How long the writer polls for the next write before blocking. A caller that
/// writes, reads its answer back and prepares the next write (a snapshot loop)
/// comes back within ~100 µs; sleeping in between makes every write pay a thread
/// wake-up, which costs more than the write on a busy machine. The poll yields
/// the core, so other threads are not starved on a small machine.
const WRITER_SPIN: Duration = Duration::from_micros(200);

/// How long a caller re-polls for its reply (yielding to other tasks, so a busy
/// runtime loses nothing) before parking its task: a typical write answers
/// within this, and a parked task pays a thread wake-up for its reply.
const REPLY_SPIN: Duration = Duration::from_micros(150);

fn writer_loop(
    conn: Connection,
    rx: std_mpsc::Receiver<Box<dyn WriteJob>>,
    max_group: usize,
    path: PathBuf,
) {
    loop {
        // Poll briefly before sleeping: a caller awaiting its reply usually sends
        // its next write within microseconds, and a futex wake-up costs more
        // than the write itself on a busy machine.
        let spin_until = std::time::Instant::now() + WRITER_SPIN;
        let first = loop {
            match rx.try_recv() {
                Ok(j) => break Some(j),
                Err(std_mpsc::TryRecvError::Disconnected) => break None,
                Err(std_mpsc::TryRecvError::Empty) if std::time::Instant::now() < spin_until => {
                    std::thread::yield_now();
                }
                Err(std_mpsc::TryRecvError::Empty) => break rx.recv().ok(),
            }
        };
        let Some(first) = first else { return };
        let mut jobs = vec![first];
        while jobs.len() < max_group {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        run_group(&conn, jobs, &path);
    }
}

fn run_group(conn: &Connection, mut jobs: Vec<Box<dyn WriteJob>>, path: &Path) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = classify(e, path);
        for j in jobs {
            j.finish(Err(dup(&e)));
        }
        return;
    }
    let single = jobs.len() == 1;
    let mut any_ok = false;
    for job in jobs.iter_mut() {
        if single {
            any_ok = job.run(conn);
            continue;
        }
        if conn.is_autocommit() {
            // SQLite aborted the group transaction (e.g. SQLITE_FULL): running the
            // rest would commit each statement on its own. Leave them un-run; they
            // report the group's failure and their callers may retry.
            break;
        }
        if conn.execute_batch("SAVEPOINT job").is_err() {
            continue; // the job stays un-run and reports a failure
        }
        if job.run(conn) {
            let _ = conn.execute_batch("RELEASE job");
            any_ok = true;
        } else if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
        }
    }
    let commit = if conn.is_autocommit() {
        // SQLite rolled the whole transaction back by itself (e.g. after SQLITE_FULL).
        Err(WorkspaceError::Backend(
            "transaction was rolled back by SQLite".into(),
        ))
    } else if !any_ok {
        conn.execute_batch("ROLLBACK")
            .map_err(|e| classify(e, path))
    } else {
        match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(classify(e, path))
            }
        }
    };
    for j in jobs {
        let c = match &commit {
            Ok(()) => Ok(()),
            Err(e) => Err(dup(e)),
        };
        j.finish(c);
    }
}

// ----- row mapping ---------------------------------------------------------------

const RECORD_COLS: &str = "r.id, r.collection, r.kind, r.path, r.scope, r.meta, r.summary, r.content_type, r.size, r.sha256, r.created_at";

fn json_map(s: &str) -> Result<std::collections::BTreeMap<String, Value>, WorkspaceError> {
    serde_json::from_str(s).map_err(|e| WorkspaceError::Decode(e.to_string()))
}

fn to_json(m: &impl serde::Serialize) -> Result<String, WorkspaceError> {
    serde_json::to_string(m).map_err(|e| WorkspaceError::Decode(e.to_string()))
}

type RawRef = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
);

fn raw_ref(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRef> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn cook_ref(r: RawRef) -> Result<RecordRef, WorkspaceError> {
    Ok(RecordRef {
        id: RecordId::parse(r.0)?,
        collection: r.1,
        kind: r.2,
        path: r.3,
        scope: json_map(&r.4)?,
        meta: json_map(&r.5)?,
        summary: r.6,
        content_type: r.7,
        size: u64::try_from(r.8).unwrap_or(0),
        sha256: r.9,
        created_at: Timestamp::from_millis(r.10),
    })
}

fn sql_scalar(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

// ----- leases and fences (run on the writer) ---------------------------------------

struct LeaseRow {
    owner: String,
    token: i64,
    ttl_ms: i64,
    expires_at: i64,
    released: bool,
}

fn lease_row(
    conn: &Connection,
    key: &str,
    path: &Path,
) -> Result<Option<LeaseRow>, WorkspaceError> {
    conn.prepare_cached(
        "SELECT owner, token, ttl_ms, expires_at, released FROM leases WHERE key = ?1",
    )
    .and_then(|mut s| {
        s.query_row([key], |r| {
            Ok(LeaseRow {
                owner: r.get(0)?,
                token: r.get(1)?,
                ttl_ms: r.get(2)?,
                expires_at: r.get(3)?,
                released: r.get::<_, i64>(4)? != 0,
            })
        })
        .optional()
    })
    .map_err(|e| classify(e, path))
}

fn lease_of(key: &str, r: &LeaseRow) -> Lease {
    Lease {
        key: key.to_owned(),
        owner: r.owner.clone(),
        token: FencingToken(u64_of(r.token)),
        ttl_ms: u64_of(r.ttl_ms),
        expires_at: Timestamp::from_millis(r.expires_at),
        released: r.released,
    }
}

/// The fence check every fenced write runs first, inside its own transaction.
fn check_fence(
    conn: &Connection,
    fence: &Fence,
    now: i64,
    path: &Path,
) -> Result<LeaseRow, WorkspaceError> {
    let row = lease_row(conn, &fence.key, path)?
        .ok_or_else(|| WorkspaceError::LeaseNotActive(fence.key.clone()))?;
    if u64_of(row.token) != fence.token.0 {
        return Err(WorkspaceError::LeaseStaleToken {
            key: fence.key.clone(),
            presented: fence.token,
            current: FencingToken(u64_of(row.token)),
        });
    }
    if row.released {
        return Err(WorkspaceError::LeaseNotActive(fence.key.clone()));
    }
    if row.expires_at <= now {
        return Err(WorkspaceError::LeaseExpired(fence.key.clone()));
    }
    Ok(row)
}

/// A run with an active lease accepts snapshot writes only under that lease.
fn check_run_lease(
    conn: &Connection,
    run_id: &str,
    fence: Option<&Fence>,
    now: i64,
    path: &Path,
) -> Result<(), WorkspaceError> {
    if let Some(f) = fence {
        check_fence(conn, f, now, path)?;
        if f.key == run_id {
            return Ok(());
        }
    }
    if let Some(row) = lease_row(conn, run_id, path)?
        && !row.released
        && row.expires_at > now
    {
        return Err(WorkspaceError::LeaseRequired(run_id.to_owned()));
    }
    Ok(())
}

fn prune(
    conn: &Connection,
    run_id: &str,
    keep_last: u32,
    path: &Path,
) -> Result<Pruned, WorkspaceError> {
    let c = |e| classify(e, path);
    let keep = i64::from(keep_last.max(1));
    let deleted = conn
        .prepare_cached(
            "DELETE FROM snapshots WHERE run_id = ?1 AND state_version NOT IN \
             (SELECT state_version FROM snapshots WHERE run_id = ?1 ORDER BY state_version DESC LIMIT ?2)",
        )
        .and_then(|mut s| s.execute(params![run_id, keep]))
        .map_err(c)?;
    let retained: i64 = conn
        .prepare_cached("SELECT count(*) FROM snapshots WHERE run_id = ?1")
        .and_then(|mut s| s.query_row([run_id], |r| r.get(0)))
        .map_err(c)?;
    Ok(Pruned {
        retained: u64_of(retained),
        deleted: deleted as u64,
    })
}

fn append_one(
    conn: &Connection,
    ev: &PreparedEvent,
    now: i64,
    path: &Path,
) -> Result<Appended, WorkspaceError> {
    let c = |e| classify(e, path);
    if let Some(f) = &ev.fence {
        check_fence(conn, f, now, path)?;
    }
    let existing: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, digest FROM events WHERE execution_id = ?1 AND idem_key = ?2")
        .and_then(|mut s| {
            s.query_row(params![ev.execution_id, ev.key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .map_err(c)?;
    if let Some((seq, digest)) = existing {
        if digest != ev.digest {
            return Err(WorkspaceError::IdempotencyConflict {
                execution_id: ev.execution_id.clone(),
                key: ev.key.clone(),
            });
        }
        return Ok(Appended {
            execution_id: ev.execution_id.clone(),
            seq: u64_of(seq),
            idempotency_key: ev.key.clone(),
            duplicate: true,
        });
    }
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO event_heads(execution_id, last_seq, updated_at) VALUES (?1, 1, ?2) \
             ON CONFLICT(execution_id) DO UPDATE SET last_seq = last_seq + 1, updated_at = excluded.updated_at \
             RETURNING last_seq",
        )
        .and_then(|mut s| s.query_row(params![ev.execution_id, now], |r| r.get(0)))
        .map_err(c)?;
    conn.prepare_cached(
        "INSERT INTO events(execution_id, seq, idem_key, event_type, at_ms, digest, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| s.execute(params![ev.execution_id, seq, ev.key, ev.event_type, ev.at_ms, ev.digest, ev.body]))
    .map_err(c)?;
    Ok(Appended {
        execution_id: ev.execution_id.clone(),
        seq: u64_of(seq),
        idempotency_key: ev.key.clone(),
        duplicate: false,
    })
}

fn insert_record(conn: &Connection, p: &PreparedRecord, path: &Path) -> Result<(), WorkspaceError> {
    let c = |e| classify(e, path);
    let r = &p.reference;
    conn.prepare_cached(
        "INSERT INTO records(id, collection, kind, path, scope, meta, summary, content_type, size, sha256, created_at, content) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.as_str(),
            r.collection,
            r.kind,
            r.path,
            to_json(&r.scope).unwrap_or_else(|_| "{}".into()),
            to_json(&r.meta).unwrap_or_else(|_| "{}".into()),
            r.summary,
            r.content_type,
            i64_of(r.size),
            r.sha256,
            r.created_at.as_millis(),
            p.bytes,
        ])
    })
    .map_err(c)?;
    let rid = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO records_fts(rowid, summary, body) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| {
            s.execute(params![
                rid,
                r.summary,
                p.index_text.as_deref().unwrap_or("")
            ])
        })
        .map_err(c)?;
    Ok(())
}

/// Lease check, CAS on the head row, insert, retention: the whole snapshot write.
fn write_snapshot(
    conn: &Connection,
    snap: &PreparedSnapshot,
    default_keep: Option<u32>,
    path: &Path,
) -> Result<SnapshotMeta, WorkspaceError> {
    let c = |e| classify(e, path);
    let now = now_ms();
    let run_id = &snap.run_id;
    check_run_lease(conn, run_id, snap.fence.as_ref(), now, path)?;
    let current: i64 = conn
        .prepare_cached("SELECT state_version FROM snapshot_heads WHERE run_id = ?1")
        .and_then(|mut s| s.query_row([run_id], |r| r.get(0)).optional())
        .map_err(c)?
        .unwrap_or(0);
    if let Some(exp) = snap.expected
        && exp.0 != u64_of(current)
    {
        return Err(WorkspaceError::CasConflict {
            run_id: run_id.clone(),
            expected: exp,
            current: StateVersion(u64_of(current)),
        });
    }
    let next = current + 1;
    conn.prepare_cached(
        "INSERT INTO snapshot_heads(run_id, state_version) VALUES (?1, ?2) \
         ON CONFLICT(run_id) DO UPDATE SET state_version = excluded.state_version",
    )
    .and_then(|mut s| s.execute(params![run_id, next]))
    .map_err(c)?;
    conn.prepare_cached(&format!(
        "INSERT INTO snapshots({SNAP_COLS}, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            run_id,
            next,
            i64::from(snap.schema_version),
            snap.step_id,
            snap.digest,
            snap.state.len() as i64,
            now,
            snap.state.as_slice()
        ])
    })
    .map_err(c)?;
    if let Some(k) = snap.keep_last.or(default_keep) {
        prune(conn, run_id, k, path)?;
    }
    Ok(SnapshotMeta {
        run_id: run_id.clone(),
        state_version: StateVersion(u64_of(next)),
        schema_version: snap.schema_version,
        step_id: snap.step_id.clone(),
        digest: snap.digest.clone(),
        size: snap.state.len() as u64,
        created_at: Timestamp::from_millis(now),
    })
}

fn snapshot_meta(row: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotMeta> {
    Ok(SnapshotMeta {
        run_id: row.get(0)?,
        state_version: StateVersion(u64_of(row.get(1)?)),
        schema_version: u32::try_from(row.get::<_, i64>(2)?).unwrap_or(u32::MAX),
        step_id: row.get(3)?,
        digest: row.get(4)?,
        size: u64_of(row.get(5)?),
        created_at: Timestamp::from_millis(row.get(6)?),
    })
}

const SNAP_COLS: &str = "run_id, state_version, schema_version, step_id, digest, size, created_at";

/// A snapshot's metadata and its state bytes, if they were read.
type SnapshotRow = (SnapshotMeta, Option<Vec<u8>>);

/// One snapshot (the newest, or `version`) with its state bytes; the bytes are
/// `None` when the state is larger than `max_state` (then they are not read).
fn query_snapshot(
    conn: &Connection,
    run_id: &str,
    version: Option<i64>,
    max_state: Option<u64>,
) -> Result<Option<SnapshotRow>, rusqlite::Error> {
    let sql = format!(
        "SELECT {SNAP_COLS}, CASE WHEN ?3 IS NULL OR size <= ?3 THEN state END FROM snapshots \
         WHERE run_id = ?1 AND (?2 IS NULL OR state_version = ?2) \
         ORDER BY state_version DESC LIMIT 1"
    );
    let max = max_state.map(i64_of);
    conn.prepare_cached(&sql)?
        .query_row(params![run_id, version, max], |r| {
            Ok((snapshot_meta(r)?, r.get::<_, Option<Vec<u8>>>(7)?))
        })
        .optional()
}

impl Store for SqliteStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: "sqlite".into(),
            cas: true,
            leases: true,
            range_reads: true,
            retention: true,
            event_sequencing: true,
            full_text: true,
            read_only: self.inner.writer.is_none(),
            distributed: false,
        }
    }

    fn put(&self, record: NewRecord) -> StoreFuture<'_, RecordRef> {
        Box::pin(async move {
            let p = record.prepare()?;
            let path = self.inner.path.clone();
            self.write(move |conn| {
                insert_record(conn, &p, &path)?;
                Ok(p.reference)
            })
            .await
        })
    }

    fn get_ref(&self, id: &RecordId) -> StoreFuture<'_, RecordRef> {
        let id = id.clone();
        Box::pin(self.read(move |conn, path| {
            let raw = conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLS} FROM records r WHERE r.id = ?1"
                ))
                .and_then(|mut s| s.query_row([id.as_str()], raw_ref).optional())
                .map_err(|e| classify(e, path))?
                .ok_or_else(|| WorkspaceError::NotFound {
                    kind: "record",
                    id: id.to_string(),
                })?;
            cook_ref(raw)
        }))
    }

    fn get(&self, id: &RecordId) -> StoreFuture<'_, StoredRecord> {
        let id = id.clone();
        Box::pin(self.read(move |conn, path| {
            let got = conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLS}, r.content FROM records r WHERE r.id = ?1"
                ))
                .and_then(|mut s| {
                    s.query_row([id.as_str()], |row| {
                        Ok((raw_ref(row)?, row.get::<_, Vec<u8>>(11)?))
                    })
                    .optional()
                })
                .map_err(|e| classify(e, path))?
                .ok_or_else(|| WorkspaceError::NotFound {
                    kind: "record",
                    id: id.to_string(),
                })?;
            Ok(StoredRecord {
                reference: cook_ref(got.0)?,
                bytes: got.1,
            })
        }))
    }

    fn search(&self, query: RecordQuery) -> StoreFuture<'_, Vec<RecordRef>> {
        Box::pin(async move {
            let limit = query.validate()?;
            self.read(move |conn, path| {
                let mut clauses: Vec<String> = Vec::new();
                let mut args: Vec<SqlValue> = Vec::new();
                let tokens = query.text.as_deref().map(query_tokens).unwrap_or_default();
                let from = if tokens.is_empty() {
                    "records r".to_owned()
                } else {
                    let expr = tokens
                        .iter()
                        .map(|t| format!("\"{t}\""))
                        .collect::<Vec<_>>()
                        .join(" OR ");
                    clauses.push("records_fts MATCH ?".into());
                    args.push(SqlValue::Text(expr));
                    "records_fts JOIN records r ON r.rid = records_fts.rowid".to_owned()
                };
                for (col, v) in [
                    ("r.collection", &query.collection),
                    ("r.kind", &query.kind),
                    ("r.path", &query.path),
                    ("r.id", &query.id.as_ref().map(|i| i.to_string())),
                ] {
                    if let Some(v) = v {
                        clauses.push(format!("{col} = ?"));
                        args.push(SqlValue::Text(v.clone()));
                    }
                }
                for (col, map) in [("r.scope", &query.scope), ("r.meta", &query.meta)] {
                    for (k, v) in map {
                        clauses.push(format!("json_extract({col}, ?) IS ?"));
                        args.push(SqlValue::Text(format!("$.{k}")));
                        args.push(sql_scalar(v));
                    }
                }
                let where_ = if clauses.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", clauses.join(" AND "))
                };
                let order = if tokens.is_empty() {
                    "r.rid DESC"
                } else {
                    "bm25(records_fts), r.rid DESC"
                };
                args.push(SqlValue::Integer(i64::from(limit)));
                let sql =
                    format!("SELECT {RECORD_COLS} FROM {from} {where_} ORDER BY {order} LIMIT ?");
                let raws = conn
                    .prepare_cached(&sql)
                    .and_then(|mut s| {
                        s.query_map(params_from_iter(args), raw_ref)?
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(|e| classify(e, path))?;
                raws.into_iter().map(cook_ref).collect()
            })
            .await
        })
    }

    fn read_bounded(&self, id: &RecordId, offset: u64, limit: u64) -> StoreFuture<'_, BoundedRead> {
        let id = id.clone();
        Box::pin(async move {
            if limit == 0 {
                return Err(WorkspaceError::InvalidInput("limit must be > 0".into()));
            }
            let lim = usize::try_from(limit.min(64 << 20)).unwrap_or(64 << 20);
            self.read(move |conn, path| {
                let row: Option<(i64, String, String, Vec<u8>)> = conn
                    .prepare_cached("SELECT size, sha256, content_type, substr(content, ?2, ?3) FROM records WHERE id = ?1")
                    .and_then(|mut s| {
                        s.query_row(params![id.as_str(), i64_of(offset) + 1, (lim + 6) as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                        })
                        .optional()
                    })
                    .map_err(|e| classify(e, path))?;
                let (size, digest, ct, raw) =
                    row.ok_or_else(|| WorkspaceError::NotFound { kind: "record", id: id.to_string() })?;
                let total = u64_of(size);
                let (off, bytes) = utf8_window(&raw, offset.min(total), lim, ct != "application/octet-stream");
                let next = off + bytes.len() as u64;
                Ok(BoundedRead {
                    record_id: id,
                    offset: off,
                    bytes,
                    total_size: total,
                    next_offset: next,
                    eof: next >= total,
                    digest,
                    content_type: ct,
                })
            })
            .await
        })
    }

    fn link(&self, link: NewLink) -> StoreFuture<'_, Link> {
        Box::pin(async move {
            let link = link.into_link()?;
            let meta = to_json(&link.meta)?;
            let path = self.inner.path.clone();
            self.write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO links(id, source_id, target_id, relation, meta, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![link.id, link.source_id, link.target_id, link.relation, meta, link.created_at.as_millis()])
                })
                .map_err(|e| classify(e, &path))?;
                Ok(link)
            })
            .await
        })
    }

    fn links(&self, query: LinkQuery) -> StoreFuture<'_, Vec<Link>> {
        Box::pin(self.read(move |conn, path| {
            let mut clauses = Vec::new();
            let mut args: Vec<SqlValue> = Vec::new();
            if let Some(e) = &query.either {
                clauses.push("(source_id = ? OR target_id = ?)");
                args.push(SqlValue::Text(e.clone()));
                args.push(SqlValue::Text(e.clone()));
            }
            for (clause, v) in [("source_id = ?", &query.source), ("target_id = ?", &query.target), ("relation = ?", &query.relation)] {
                if let Some(v) = v {
                    clauses.push(clause);
                    args.push(SqlValue::Text(v.clone()));
                }
            }
            let where_ = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
            let sql = format!("SELECT id, source_id, target_id, relation, meta, created_at FROM links {where_} ORDER BY lid");
            let rows: Vec<(String, String, String, String, String, i64)> = conn
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
                        .collect()
                })
                .map_err(|e| classify(e, path))?;
            rows.into_iter()
                .map(|r| {
                    Ok(Link {
                        id: r.0,
                        source_id: r.1,
                        target_id: r.2,
                        relation: r.3,
                        meta: json_map(&r.4)?,
                        created_at: Timestamp::from_millis(r.5),
                    })
                })
                .collect()
        }))
    }

    fn put_snapshot(&self, snapshot: NewSnapshot) -> StoreFuture<'_, SnapshotMeta> {
        Box::pin(async move {
            // Serialised and hashed here, so the writer thread (the one serial
            // resource) only does SQL; the JSON value never reaches it.
            let snap = snapshot.prepare()?;
            let keep = self.inner.options.keep_last;
            let path = self.inner.path.clone();
            self.write(move |conn| write_snapshot(conn, &snap, keep, &path))
                .await
        })
    }

    fn get_snapshot(
        &self,
        run_id: &str,
        version: Option<StateVersion>,
    ) -> StoreFuture<'_, Option<Snapshot>> {
        let run_id = run_id.to_owned();
        let v = version.map(|v| i64_of(v.0));
        Box::pin(async move {
            // A small state is read right here (see the module docs); the size
            // check is part of the query, so a large state is never loaded twice.
            let inline = self.read_inline(|conn| {
                Ok(
                    match query_snapshot(conn, &run_id, v, Some(INLINE_READ_MAX))? {
                        None => Some(None),
                        Some((meta, Some(bytes))) => Some(Some((meta, bytes))),
                        Some((_, None)) => None,
                    },
                )
            });
            let row = match inline {
                Inline::Done(r) => r?,
                Inline::Defer => {
                    self.read(move |conn, path| {
                        query_snapshot(conn, &run_id, v, None)
                            .map_err(|e| classify(e, path))
                            .map(|row| row.and_then(|(m, b)| b.map(|b| (m, b))))
                    })
                    .await?
                }
            };
            match row {
                None => Ok(None),
                Some((meta, bytes)) => {
                    let state = serde_json::from_slice(&bytes)
                        .map_err(|e| WorkspaceError::Decode(e.to_string()))?;
                    Ok(Some(Snapshot { meta, state }))
                }
            }
        })
    }

    fn snapshot_history(
        &self,
        run_id: &str,
        limit: Option<u32>,
    ) -> StoreFuture<'_, Vec<SnapshotMeta>> {
        let run_id = run_id.to_owned();
        Box::pin(self.read(move |conn, path| {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            conn.prepare_cached(&format!(
                "SELECT {SNAP_COLS} FROM snapshots WHERE run_id = ?1 ORDER BY state_version DESC LIMIT ?2"
            ))
            .and_then(|mut s| s.query_map(params![run_id, lim], snapshot_meta)?.collect())
            .map_err(|e| classify(e, path))
        }))
    }

    fn prune_snapshots(&self, run_id: &str, keep_last: u32) -> StoreFuture<'_, Pruned> {
        let run_id = run_id.to_owned();
        Box::pin(async move {
            if keep_last == 0 {
                return Err(WorkspaceError::InvalidInput(
                    "keep_last must be at least 1".into(),
                ));
            }
            let path = self.inner.path.clone();
            self.write(move |conn| prune(conn, &run_id, keep_last, &path))
                .await
        })
    }

    fn list_snapshot_heads(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<SnapshotHead>> {
        Box::pin(self.read(move |conn, path| {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            conn.prepare_cached(
                "SELECT h.run_id, h.state_version, (SELECT count(*) FROM snapshots s WHERE s.run_id = h.run_id) \
                 FROM snapshot_heads h ORDER BY h.run_id LIMIT ?1",
            )
            .and_then(|mut s| {
                s.query_map([lim], |r| {
                    Ok(SnapshotHead {
                        run_id: r.get(0)?,
                        state_version: StateVersion(u64_of(r.get(1)?)),
                        retained: u64_of(r.get(2)?),
                    })
                })?
                .collect()
            })
            .map_err(|e| classify(e, path))
        }))
    }

    fn claim_lease(&self, key: &str, owner: &str, ttl_ms: u64) -> StoreFuture<'_, Lease> {
        let key = key.to_owned();
        let owner = owner.to_owned();
        Box::pin(async move {
            check_lease_args(&key, &owner, ttl_ms)?;
            let path = self.inner.path.clone();
            self.write(move |conn| {
                let now = now_ms();
                let prev = lease_row(conn, &key, &path)?;
                if let Some(r) = &prev
                    && !r.released
                    && r.expires_at > now
                    && r.owner != owner
                {
                    return Err(WorkspaceError::LeaseHeld { key: key.clone(), owner: r.owner.clone() });
                }
                let row = LeaseRow {
                    owner,
                    token: prev.map(|p| p.token).unwrap_or(0) + 1,
                    ttl_ms: i64_of(ttl_ms),
                    expires_at: now.saturating_add(i64_of(ttl_ms)),
                    released: false,
                };
                conn.prepare_cached(
                    "INSERT INTO leases(key, owner, token, ttl_ms, expires_at, released) VALUES (?1, ?2, ?3, ?4, ?5, 0) \
                     ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, token = excluded.token, \
                     ttl_ms = excluded.ttl_ms, expires_at = excluded.expires_at, released = 0",
                )
                .and_then(|mut s| s.execute(params![key, row.owner, row.token, row.ttl_ms, row.expires_at]))
                .map_err(|e| classify(e, &path))?;
                Ok(lease_of(&key, &row))
            })
            .await
        })
    }

    fn heartbeat_lease(&self, fence: &Fence, owner: &str) -> StoreFuture<'_, Lease> {
        let fence = fence.clone();
        let owner = owner.to_owned();
        let path = self.inner.path.clone();
        Box::pin(self.write(move |conn| {
            let now = now_ms();
            let mut row = check_fence(conn, &fence, now, &path)?;
            if row.owner != owner {
                return Err(WorkspaceError::LeaseHeld {
                    key: fence.key.clone(),
                    owner: row.owner,
                });
            }
            row.expires_at = now.saturating_add(row.ttl_ms);
            conn.prepare_cached("UPDATE leases SET expires_at = ?2 WHERE key = ?1")
                .and_then(|mut s| s.execute(params![fence.key, row.expires_at]))
                .map_err(|e| classify(e, &path))?;
            Ok(lease_of(&fence.key, &row))
        }))
    }

    fn release_lease(&self, fence: &Fence, owner: &str) -> StoreFuture<'_, ()> {
        let fence = fence.clone();
        let owner = owner.to_owned();
        let path = self.inner.path.clone();
        Box::pin(self.write(move |conn| {
            let row = lease_row(conn, &fence.key, &path)?
                .ok_or_else(|| WorkspaceError::LeaseNotActive(fence.key.clone()))?;
            if u64_of(row.token) != fence.token.0 {
                return Err(WorkspaceError::LeaseStaleToken {
                    key: fence.key.clone(),
                    presented: fence.token,
                    current: FencingToken(u64_of(row.token)),
                });
            }
            if row.owner != owner {
                return Err(WorkspaceError::LeaseHeld {
                    key: fence.key.clone(),
                    owner: row.owner,
                });
            }
            conn.prepare_cached(
                "UPDATE leases SET released = 1, expires_at = min(expires_at, ?2) WHERE key = ?1",
            )
            .and_then(|mut s| s.execute(params![fence.key, now_ms()]))
            .map_err(|e| classify(e, &path))?;
            Ok(())
        }))
    }

    fn get_lease(&self, key: &str) -> StoreFuture<'_, Option<Lease>> {
        let key = key.to_owned();
        Box::pin(
            self.read(move |conn, path| {
                Ok(lease_row(conn, &key, path)?.map(|r| lease_of(&key, &r)))
            }),
        )
    }

    fn list_leases(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<Lease>> {
        Box::pin(self.read(move |conn, path| {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            conn.prepare_cached("SELECT key, owner, token, ttl_ms, expires_at, released FROM leases ORDER BY key LIMIT ?1")
                .and_then(|mut s| {
                    s.query_map([lim], |r| {
                        let key: String = r.get(0)?;
                        let row = LeaseRow {
                            owner: r.get(1)?,
                            token: r.get(2)?,
                            ttl_ms: r.get(3)?,
                            expires_at: r.get(4)?,
                            released: r.get::<_, i64>(5)? != 0,
                        };
                        Ok(lease_of(&key, &row))
                    })?
                    .collect()
                })
                .map_err(|e| classify(e, path))
        }))
    }

    fn commit(&self, batch: WriteBatch) -> StoreFuture<'_, Committed> {
        Box::pin(async move {
            let b = batch.prepare()?;
            let keep = self.inner.options.keep_last;
            let path = self.inner.path.clone();
            self.write(move |conn| {
                let now = now_ms();
                if let Some(f) = &b.fence {
                    check_fence(conn, f, now, &path)?;
                }
                let snapshot = match &b.snapshot {
                    Some(snap) => Some(write_snapshot(conn, snap, keep, &path)?),
                    None => None,
                };
                let events = b
                    .events
                    .iter()
                    .map(|ev| append_one(conn, ev, now, &path))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut records = Vec::with_capacity(b.records.len());
                for r in &b.records {
                    insert_record(conn, r, &path)?;
                    records.push(r.reference.clone());
                }
                Ok(Committed {
                    snapshot,
                    events,
                    records,
                })
            })
            .await
        })
    }

    fn append_batch(&self, events: Vec<EventAppend>) -> StoreFuture<'_, Vec<Appended>> {
        Box::pin(async move {
            let prepared = events
                .into_iter()
                .map(EventAppend::prepare)
                .collect::<Result<Vec<_>, _>>()?;
            if prepared.is_empty() {
                return Ok(Vec::new());
            }
            let path = self.inner.path.clone();
            self.write(move |conn| {
                let now = now_ms();
                prepared
                    .iter()
                    .map(|ev| append_one(conn, ev, now, &path))
                    .collect()
            })
            .await
        })
    }

    fn query_events(&self, query: EventQuery) -> StoreFuture<'_, Vec<StoredEvent>> {
        Box::pin(self.read(move |conn, path| {
            let mut sql = String::from(
                "SELECT execution_id, seq, idem_key, event_type, at_ms, body FROM events WHERE execution_id = ?",
            );
            let mut args = vec![SqlValue::Text(query.execution_id.clone())];
            let mut push = |clause: &str, v: SqlValue| {
                sql.push_str(clause);
                args.push(v);
            };
            if let Some(v) = query.seq_from {
                push(" AND seq >= ?", SqlValue::Integer(i64_of(v)));
            }
            if let Some(v) = query.seq_to {
                push(" AND seq <= ?", SqlValue::Integer(i64_of(v)));
            }
            if let Some(v) = query.at_from {
                push(" AND at_ms >= ?", SqlValue::Integer(v.as_millis()));
            }
            if let Some(v) = query.at_to {
                push(" AND at_ms <= ?", SqlValue::Integer(v.as_millis()));
            }
            if let Some(p) = &query.type_prefix {
                push(" AND substr(event_type, 1, length(?)) = ", SqlValue::Text(p.clone()));
                push("?", SqlValue::Text(p.clone()));
            }
            if !query.types.is_empty() {
                let marks = vec!["?"; query.types.len()].join(", ");
                sql.push_str(&format!(" AND event_type IN ({marks})"));
                args.extend(query.types.iter().map(|t| SqlValue::Text(t.clone())));
            }
            sql.push_str(" ORDER BY seq LIMIT ?");
            args.push(SqlValue::Integer(query.effective_limit()));
            let rows: Vec<(String, i64, String, String, i64, String)> = conn
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
                        .collect()
                })
                .map_err(|e| classify(e, path))?;
            rows.into_iter()
                .map(|r| {
                    Ok(StoredEvent {
                        execution_id: r.0,
                        seq: u64_of(r.1),
                        idempotency_key: r.2,
                        event_type: r.3,
                        at: Timestamp::from_millis(r.4),
                        body: serde_json::from_str(&r.5).map_err(|e| WorkspaceError::Decode(e.to_string()))?,
                    })
                })
                .collect()
        }))
    }

    fn list_event_logs(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<EventLogHead>> {
        Box::pin(self.read(move |conn, path| {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            conn.prepare_cached("SELECT execution_id, last_seq FROM event_heads ORDER BY updated_at DESC, execution_id LIMIT ?1")
                .and_then(|mut s| {
                    s.query_map([lim], |r| Ok(EventLogHead { execution_id: r.get(0)?, last_seq: u64_of(r.get(1)?) }))?
                        .collect()
                })
                .map_err(|e| classify(e, path))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    /// A read on the calling task never waits for a lock: busy hands it to a
    /// reader thread, any other failure is the read's answer.
    #[tokio::test]
    async fn inline_reads_defer_when_busy_and_fail_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_path(dir.path().join("ws.db"))
            .await
            .unwrap();
        let busy = store.read_inline::<()>(|_| Err(failure(rusqlite::ffi::SQLITE_BUSY)));
        assert!(matches!(busy, Inline::Defer));
        let locked = store.read_inline::<()>(|_| Err(failure(rusqlite::ffi::SQLITE_LOCKED)));
        assert!(matches!(locked, Inline::Defer));
        let too_large = store.read_inline::<()>(|_| Ok(None));
        assert!(matches!(too_large, Inline::Defer));
        let corrupt = store.read_inline::<()>(|_| Err(failure(rusqlite::ffi::SQLITE_CORRUPT)));
        assert!(matches!(
            corrupt,
            Inline::Done(Err(WorkspaceError::CorruptDatabase { .. }))
        ));
        let n = store.read_inline(|c| {
            c.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0))
                .map(Some)
        });
        assert!(matches!(n, Inline::Done(Ok(42))));
        // The connection went back to the pool after every use, failed or not.
        let pool = store.inner.inline.lock().unwrap();
        assert_eq!((pool.open, pool.idle.len()), (1, 1));
    }
}
