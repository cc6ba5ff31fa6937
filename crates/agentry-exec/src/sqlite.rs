//! `sqlite_query`: one SQL statement against a database file per scope.
//!
//! Read-only by default, twice over: the connection is opened with
//! `SQLITE_OPEN_READ_ONLY` and `PRAGMA query_only`, and a statement SQLite itself
//! reports as writing (`sqlite3_stmt_readonly`) is refused as
//! `sqlite.write_blocked` before it runs. `ATTACH` is disabled (limit 0 attached
//! databases), so a query cannot open files outside its database. Each statement
//! has a time limit enforced by a progress handler, and rows and bytes are capped.
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_actions::{FnAction, SideEffect};
use futures::future::BoxFuture;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, limits::Limit};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ExecError;
use crate::files::{Root, blocking, typed};
use crate::resource::{
    Capability, EnsureRequest, Resource, ResourceProvider, ResourceScope, ResourceSpec,
};

/// Settings of `sqlite_query`.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Action id (default `sqlite_query`).
    pub action_id: String,
    /// The workspace root (databases live under it).
    pub root: Root,
    /// A database path relative to the root; default: one file per execution under
    /// `.agentry/sqlite/`.
    pub database: Option<String>,
    /// Allow writing statements (needs the `write` capability of the profile).
    pub write: bool,
    /// Per-statement time limit.
    pub timeout: Duration,
    /// Rows returned at most.
    pub max_rows: usize,
    /// Bytes of cell data returned at most.
    pub max_bytes: usize,
}

impl SqliteOptions {
    /// Read-only defaults: 5 s, 1 000 rows, 1 MiB.
    pub fn new(root: Root) -> Self {
        Self {
            action_id: "sqlite_query".into(),
            root,
            database: None,
            write: false,
            timeout: Duration::from_secs(5),
            max_rows: 1000,
            max_bytes: 1 << 20,
        }
    }
}

/// A live database connection (the `sqlite` resource).
#[derive(Debug)]
pub struct SqliteDb {
    conn: Mutex<Option<Connection>>,
    read_only: bool,
    path: PathBuf,
}

impl SqliteDb {
    /// Opens (creating an empty file first if needed) the database at `path`.
    pub fn open(path: PathBuf, read_only: bool) -> Result<SqliteDb, ExecError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !path.exists() {
            Connection::open(&path)?;
        }
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(&path, flags)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        if read_only {
            conn.pragma_update(None, "query_only", true)?;
        }
        Ok(SqliteDb {
            conn: Mutex::new(Some(conn)),
            read_only,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Runs one statement with limits.
    pub fn query(
        &self,
        sql: &str,
        params: &[Value],
        timeout: Duration,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Value, ExecError> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| ExecError::Sqlite("connection poisoned".into()))?;
        let conn = guard
            .as_mut()
            .ok_or_else(|| ExecError::Sqlite("connection closed".into()))?;
        let deadline = Instant::now() + timeout;
        conn.progress_handler(1000, Some(move || Instant::now() > deadline))?;
        let result = run_statement(conn, sql, params, self.read_only, max_rows, max_bytes);
        conn.progress_handler(0, None::<fn() -> bool>)?;
        result.map_err(|e| match e {
            ExecError::Sqlite(m) if m.contains("interrupted") => {
                ExecError::SqliteTimeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
            }
            ExecError::Sqlite(m) if self.read_only && m.contains("readonly") => {
                ExecError::SqliteWriteBlocked
            }
            other => other,
        })
    }

    fn healthy(&self) -> bool {
        self.conn
            .lock()
            .ok()
            .and_then(|g| {
                g.as_ref()
                    .map(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).is_ok())
            })
            .unwrap_or(false)
    }

    fn close(&self) -> Result<(), ExecError> {
        let conn = self.conn.lock().ok().and_then(|mut g| g.take());
        match conn {
            Some(c) => c.close().map_err(|(_, e)| ExecError::Sqlite(e.to_string())),
            None => Ok(()),
        }
    }
}

fn run_statement(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    read_only: bool,
    max_rows: usize,
    max_bytes: usize,
) -> Result<Value, ExecError> {
    let mut stmt = conn.prepare(sql)?;
    if read_only && !stmt.readonly() {
        return Err(ExecError::SqliteWriteBlocked);
    }
    let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
    let columns: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let ncol = columns.len();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    while let Some(row) = rows.next()? {
        if out.len() == max_rows {
            truncated = true;
            break;
        }
        let mut cells = Vec::with_capacity(ncol);
        for i in 0..ncol {
            let v = from_sql(row.get_ref(i)?);
            bytes += match &v {
                Value::String(s) => s.len(),
                _ => 8,
            };
            cells.push(v);
        }
        if bytes > max_bytes {
            truncated = true;
            break;
        }
        out.push(Value::Array(cells));
    }
    drop(rows);
    let changes = if ncol == 0 { conn.changes() } else { 0 };
    Ok(json!({
        "columns": columns,
        "rows": out,
        "row_count": out.len(),
        "truncated": truncated,
        "rows_affected": changes,
        "read_only": read_only,
    }))
}

fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(S::Integer)
            .or_else(|| n.as_f64().map(S::Real))
            .unwrap_or(S::Null),
        Value::String(s) => S::Text(s.clone()),
        other => S::Text(other.to_string()),
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => {
            json!({"blob_hex": hex::encode(&b[..b.len().min(4096)]), "bytes": b.len()})
        }
    }
}

/// Provides [`SqliteDb`] resources: the configured file, or one file per owner
/// (execution) under `.agentry/sqlite/`.
#[derive(Debug, Clone)]
pub struct SqliteProvider {
    root: Root,
}

impl SqliteProvider {
    /// A provider for databases under `root`.
    pub fn new(root: Root) -> Self {
        Self { root }
    }
}

impl ResourceProvider for SqliteProvider {
    fn kind(&self) -> &str {
        "sqlite"
    }
    fn ensure<'a>(
        &'a self,
        request: &'a EnsureRequest,
    ) -> BoxFuture<'a, Result<Resource, ExecError>> {
        Box::pin(async move {
            let settings = &request.spec.settings;
            let write = settings["write"].as_bool().unwrap_or(false);
            let path = match settings["database"].as_str() {
                Some(db) => self.root.resolve(db)?.as_path().to_path_buf(),
                None => {
                    let name: String = request
                        .owner
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    self.root
                        .path()
                        .join(agentry_workspace::files::RESERVED_DIR)
                        .join("sqlite")
                        .join(format!("{name}.db"))
                }
            };
            let db = tokio::task::spawn_blocking(move || SqliteDb::open(path, !write))
                .await
                .map_err(|e| ExecError::Sqlite(e.to_string()))??;
            Ok(Arc::new(db) as Resource)
        })
    }
    fn health_check<'a>(&'a self, resource: &'a Resource) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            resource
                .clone()
                .downcast::<SqliteDb>()
                .map(|db| db.healthy())
                .unwrap_or(false)
        })
    }
    fn release(&self, resource: Resource) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            match resource.downcast::<SqliteDb>() {
                Ok(db) => db.close(),
                Err(_) => Ok(()),
            }
        })
    }
}

/// Input of `sqlite_query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryInput {
    /// One SQL statement.
    pub query: String,
    /// Positional parameters for `?` placeholders.
    #[serde(default)]
    pub params: Vec<Value>,
}

/// The resource requirement `sqlite_query` declares for these options.
pub fn requirement(opts: &SqliteOptions) -> ResourceSpec {
    let mut spec = ResourceSpec::new("sqlite")
        .scope(ResourceScope::Execution)
        .settings(json!({"database": opts.database, "write": opts.write}));
    if opts.write {
        spec = spec.needs(Capability::Write);
    }
    spec
}

/// The `sqlite_query` action.
pub fn sqlite_action(opts: SqliteOptions) -> FnAction {
    let id = opts.action_id.clone();
    let spec = requirement(&opts);
    let opts = Arc::new(opts);
    let provider = SqliteProvider::new(opts.root.clone());
    let desc = if opts.write {
        "Run one SQL statement against the workspace SQLite database; returns columns and rows (bounded)."
    } else {
        "Run one read-only SQL statement (SELECT, WITH, EXPLAIN) against the workspace SQLite database; returns columns and rows (bounded). Writes are refused."
    };
    let spec_for_call = spec.clone();
    typed::<QueryInput, _, _>(&id, desc, move |ctx, input| {
        let opts = opts.clone();
        let provider = provider.clone();
        let spec = spec_for_call.clone();
        async move {
            let db = match ctx.resource::<SqliteDb>("sqlite") {
                Some(db) => db,
                None => {
                    // Outside a resource manager: a connection for this call only.
                    let req = EnsureRequest {
                        spec,
                        owner: ctx.execution_id().to_string(),
                        profile: crate::resource::PermissionProfile::LocalFiles,
                    };
                    provider
                        .ensure(&req)
                        .await
                        .map_err(ExecError::into_failure)?
                        .downcast::<SqliteDb>()
                        .map_err(|_| {
                            ExecError::Sqlite("unexpected resource".into()).into_failure()
                        })?
                }
            };
            blocking(move || {
                db.query(
                    &input.query,
                    &input.params,
                    opts.timeout,
                    opts.max_rows,
                    opts.max_bytes,
                )
            })
            .await
        }
    })
    .side_effect(if spec.needs.contains(&Capability::Write) {
        SideEffect::Write
    } else {
        SideEffect::Read
    })
    .tag("sqlite")
    .resource(spec.to_requirement())
}
