//! The PostgreSQL store, for several worker processes on several machines sharing
//! executions.
//!
//! Everything that must hold across processes is enforced by the database inside
//! one transaction: CAS is a conditional `UPDATE`/`INSERT … ON CONFLICT` on the
//! snapshot head row, a claim is a single conditional upsert on the lease row, a
//! fenced write first locks the lease row (`FOR SHARE`) and checks its token, and
//! every lease time is read from the database clock (`clock_timestamp()`), so worker
//! clock skew is irrelevant. Migrations are versioned in a table and applied under
//! an advisory lock; a schema newer than this build is refused untouched.
//!
//! URL: `postgres://user@host:port/db?schema=name` — the `schema` parameter (default
//! `agentry`) selects the schema the tables live in.
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use agentry_core::Timestamp;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::error::WorkspaceError;
use crate::store::{Store, StoreFuture};
use crate::types::*;

/// The schema version this build writes and reads.
pub const PG_SCHEMA_VERSION: i32 = 1;

/// Bytes of text indexed per record (a `tsvector` is limited to 1 MiB).
const PG_INDEX_TEXT_LIMIT: usize = 256 * 1024;

const PG_SCHEMA_V1: &str = r#"
CREATE TABLE records(
  rid bigserial PRIMARY KEY, id text NOT NULL UNIQUE, collection text NOT NULL, kind text, path text,
  scope jsonb NOT NULL, meta jsonb NOT NULL, summary text NOT NULL, content_type text NOT NULL,
  size bigint NOT NULL, sha256 text NOT NULL, created_at bigint NOT NULL, content bytea NOT NULL,
  body_text text,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, summary || ' ' || coalesce(body_text, ''))) STORED);
CREATE INDEX records_tsv ON records USING GIN (tsv);
CREATE INDEX records_scope ON records USING GIN (scope jsonb_path_ops);
CREATE INDEX records_meta ON records USING GIN (meta jsonb_path_ops);
CREATE INDEX records_collection ON records(collection, rid);
CREATE INDEX records_path ON records(path);
CREATE TABLE links(
  lid bigserial PRIMARY KEY, id text NOT NULL UNIQUE, source_id text NOT NULL, target_id text NOT NULL,
  relation text NOT NULL, meta jsonb NOT NULL, created_at bigint NOT NULL);
CREATE INDEX links_source ON links(source_id);
CREATE INDEX links_target ON links(target_id);
CREATE TABLE snapshot_heads(run_id text PRIMARY KEY, state_version bigint NOT NULL);
CREATE TABLE snapshots(
  run_id text NOT NULL, state_version bigint NOT NULL, schema_version int NOT NULL, step_id text,
  digest text NOT NULL, size bigint NOT NULL, created_at bigint NOT NULL, state bytea NOT NULL,
  PRIMARY KEY(run_id, state_version));
CREATE TABLE leases(
  key text PRIMARY KEY, owner text NOT NULL, token bigint NOT NULL, ttl_ms bigint NOT NULL,
  expires_at timestamptz NOT NULL, released boolean NOT NULL);
CREATE TABLE event_heads(execution_id text PRIMARY KEY, last_seq bigint NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE events(
  execution_id text NOT NULL, seq bigint NOT NULL, idem_key text NOT NULL, event_type text NOT NULL,
  at_ms bigint NOT NULL, digest text NOT NULL, body text NOT NULL,
  PRIMARY KEY(execution_id, seq), UNIQUE(execution_id, idem_key));
"#;

fn classify(e: tokio_postgres::Error) -> WorkspaceError {
    if let Some(db) = e.as_db_error() {
        let msg = format!("{}: {}", db.code().code(), db.message());
        return match *db.code() {
            SqlState::DISK_FULL => WorkspaceError::DiskFull(msg),
            SqlState::T_R_SERIALIZATION_FAILURE
            | SqlState::T_R_DEADLOCK_DETECTED
            | SqlState::LOCK_NOT_AVAILABLE => WorkspaceError::Busy(msg),
            SqlState::READ_ONLY_SQL_TRANSACTION => WorkspaceError::StoreReadOnly,
            _ => WorkspaceError::Backend(msg),
        };
    }
    if e.is_closed() {
        return WorkspaceError::Connection(e.to_string());
    }
    WorkspaceError::Connection(e.to_string())
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Splits our `schema=` parameter off a PostgreSQL URL.
pub fn split_schema(url: &str) -> Result<(String, String), WorkspaceError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut schema = "agentry".to_owned();
    let mut rest = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.strip_prefix("schema=") {
            Some(s) => schema = s.to_owned(),
            None => rest.push(kv),
        }
    }
    if schema.is_empty()
        || schema.len() > 63
        || !schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(WorkspaceError::InvalidInput(format!(
            "schema name `{schema}` must be [a-z0-9_]{{1,63}}"
        )));
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, schema))
}

struct Pool {
    config: Config,
    schema: String,
    idle: Mutex<Vec<Arc<Client>>>,
    permits: Semaphore,
}

/// A checked-out connection. It goes back to the pool on drop unless a
/// transaction is still open on it (a cancelled future): then it is discarded, the
/// connection closes and the server rolls the transaction back.
struct PooledClient<'a> {
    client: Arc<Client>,
    in_tx: bool,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for PooledClient<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        if !self.in_tx
            && !self.client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(self.client.clone());
        }
    }
}

impl PooledClient<'_> {
    async fn begin(&mut self) -> Result<(), WorkspaceError> {
        self.in_tx = true;
        self.client.batch_execute("BEGIN").await.map_err(classify)
    }

    async fn commit(&mut self) -> Result<(), WorkspaceError> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(classify)?;
        self.in_tx = false;
        Ok(())
    }

    async fn rollback(&mut self) {
        if self.client.batch_execute("ROLLBACK").await.is_ok() {
            self.in_tx = false;
        }
    }
}

impl Pool {
    async fn get(&self) -> Result<PooledClient<'_>, WorkspaceError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| WorkspaceError::Closed)?;
        let reused = self.idle.lock().ok().and_then(|mut v| v.pop());
        let client = match reused {
            Some(c) => c,
            None => {
                let (client, conn) = self.config.connect(NoTls).await.map_err(classify)?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "postgres connection ended");
                    }
                });
                client
                    .batch_execute(&format!("SET search_path TO \"{}\"", self.schema))
                    .await
                    .map_err(classify)?;
                Arc::new(client)
            }
        };
        Ok(PooledClient {
            client,
            in_tx: false,
            pool: self,
            _permit: permit,
        })
    }
}

/// The PostgreSQL [`Store`]. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.pool.schema)
            .finish()
    }
}

impl PgStore {
    /// Connects, creates the schema if needed and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, WorkspaceError> {
        Self::connect_with(url, 16).await
    }

    /// [`connect`](Self::connect) with a pool size.
    pub async fn connect_with(url: &str, max_connections: usize) -> Result<Self, WorkspaceError> {
        let (url, schema) = split_schema(url)?;
        let config = Config::from_str(&url)
            .map_err(|e| WorkspaceError::InvalidInput(format!("bad postgres url: {e}")))?;
        let pool = Pool {
            config,
            schema,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections.max(1)),
        };
        let store = Self {
            pool: Arc::new(pool),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.pool.schema
    }

    async fn migrate(&self) -> Result<(), WorkspaceError> {
        let mut c = self.pool.get().await?;
        let schema = self.pool.schema.clone();
        c.begin().await?;
        let r = self.migrate_in(&c, &schema).await;
        match r {
            Ok(()) => c.commit().await,
            Err(e) => {
                c.rollback().await;
                Err(e)
            }
        }
    }

    async fn migrate_in(&self, tx: &Client, schema: &str) -> Result<(), WorkspaceError> {
        // One migrator at a time per schema, across processes and machines.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("agentry-migrate:{schema}")],
        )
        .await
        .map_err(classify)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; \
             CREATE TABLE IF NOT EXISTS \"{schema}\".agentry_schema_migrations(version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .map_err(classify)?;
        let current: i32 = tx
            .query_one(
                &format!(
                    "SELECT coalesce(max(version), 0) FROM \"{schema}\".agentry_schema_migrations"
                ),
                &[],
            )
            .await
            .map_err(classify)?
            .get(0);
        if current > PG_SCHEMA_VERSION {
            return Err(WorkspaceError::SchemaTooNew {
                found: i64::from(current),
                supported: i64::from(PG_SCHEMA_VERSION),
            });
        }
        if current < 1 {
            tracing::info!(schema, version = 1, "applying workspace schema migration");
            tx.batch_execute(&format!(
                "SET LOCAL search_path TO \"{schema}\"; {PG_SCHEMA_V1}"
            ))
            .await
            .map_err(classify)?;
            tx.execute(
                &format!("INSERT INTO \"{schema}\".agentry_schema_migrations(version) VALUES (1)"),
                &[],
            )
            .await
            .map_err(classify)?;
        }
        Ok(())
    }

    /// Drops the whole schema with every table in it. For test teardown and
    /// decommissioning; irreversible.
    pub async fn drop_schema(&self) -> Result<(), WorkspaceError> {
        let c = self.pool.get().await?;
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.pool.schema
        ))
        .await
        .map_err(classify)
    }

    /// Runs `f` in a transaction, retrying a few times on serialization failures,
    /// deadlocks and unique-key races.
    async fn tx<T, F>(&self, f: F) -> Result<T, WorkspaceError>
    where
        F: for<'t> Fn(&'t Client) -> StoreFuture<'t, T> + Send + Sync,
        T: Send,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut c = self.pool.get().await?;
            c.begin().await?;
            let outcome = match f(&c).await {
                Ok(v) => match c.commit().await {
                    Ok(()) => return Ok(v),
                    Err(e) => Err(e),
                },
                Err(e) => {
                    c.rollback().await;
                    Err(e)
                }
            };
            match outcome {
                Err(WorkspaceError::Busy(_)) if attempt < 4 => continue,
                other => return other,
            }
        }
    }
}

/// A unique-key race inside a transaction: retried by [`PgStore::tx`].
fn race(e: tokio_postgres::Error) -> WorkspaceError {
    if is_unique_violation(&e) {
        WorkspaceError::Busy(format!("unique race: {e}"))
    } else {
        classify(e)
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn json_map(
    s: &str,
) -> Result<std::collections::BTreeMap<String, serde_json::Value>, WorkspaceError> {
    serde_json::from_str(s).map_err(|e| WorkspaceError::Decode(e.to_string()))
}

fn to_json(m: &impl serde::Serialize) -> Result<String, WorkspaceError> {
    serde_json::to_string(m).map_err(|e| WorkspaceError::Decode(e.to_string()))
}

const RECORD_COLS: &str = "id, collection, kind, path, scope::text, meta::text, summary, content_type, size, sha256, created_at";

fn record_ref(row: &Row) -> Result<RecordRef, WorkspaceError> {
    let g = |e: tokio_postgres::Error| WorkspaceError::Decode(e.to_string());
    Ok(RecordRef {
        id: RecordId::parse(row.try_get::<_, String>(0).map_err(g)?)?,
        collection: row.try_get(1).map_err(g)?,
        kind: row.try_get(2).map_err(g)?,
        path: row.try_get(3).map_err(g)?,
        scope: json_map(&row.try_get::<_, String>(4).map_err(g)?)?,
        meta: json_map(&row.try_get::<_, String>(5).map_err(g)?)?,
        summary: row.try_get(6).map_err(g)?,
        content_type: row.try_get(7).map_err(g)?,
        size: u64_of(row.try_get(8).map_err(g)?),
        sha256: row.try_get(9).map_err(g)?,
        created_at: Timestamp::from_millis(row.try_get(10).map_err(g)?),
    })
}

const LEASE_COLS: &str =
    "key, owner, token, ttl_ms, (extract(epoch from expires_at) * 1000)::bigint, released";

fn lease_of(row: &Row) -> Result<Lease, WorkspaceError> {
    let g = |e: tokio_postgres::Error| WorkspaceError::Decode(e.to_string());
    Ok(Lease {
        key: row.try_get(0).map_err(g)?,
        owner: row.try_get(1).map_err(g)?,
        token: FencingToken(u64_of(row.try_get(2).map_err(g)?)),
        ttl_ms: u64_of(row.try_get(3).map_err(g)?),
        expires_at: Timestamp::from_millis(row.try_get(4).map_err(g)?),
        released: row.try_get(5).map_err(g)?,
    })
}

const SNAP_COLS: &str = "run_id, state_version, schema_version, step_id, digest, size, created_at";

fn snapshot_meta(row: &Row) -> Result<SnapshotMeta, WorkspaceError> {
    let g = |e: tokio_postgres::Error| WorkspaceError::Decode(e.to_string());
    Ok(SnapshotMeta {
        run_id: row.try_get(0).map_err(g)?,
        state_version: StateVersion(u64_of(row.try_get(1).map_err(g)?)),
        schema_version: u32::try_from(row.try_get::<_, i32>(2).map_err(g)?).unwrap_or(0),
        step_id: row.try_get(3).map_err(g)?,
        digest: row.try_get(4).map_err(g)?,
        size: u64_of(row.try_get(5).map_err(g)?),
        created_at: Timestamp::from_millis(row.try_get(6).map_err(g)?),
    })
}

/// Locks the lease row (shared) and checks the fence; the lock keeps a competing
/// claim from committing until this transaction ends.
async fn check_fence(tx: &Client, fence: &Fence) -> Result<(), WorkspaceError> {
    let row = tx
        .query_opt(
            "SELECT token, released, expires_at > clock_timestamp() FROM leases WHERE key = $1 FOR SHARE",
            &[&fence.key],
        )
        .await
        .map_err(classify)?
        .ok_or_else(|| WorkspaceError::LeaseNotActive(fence.key.clone()))?;
    let token: i64 = row.get(0);
    if u64_of(token) != fence.token.0 {
        return Err(WorkspaceError::LeaseStaleToken {
            key: fence.key.clone(),
            presented: fence.token,
            current: FencingToken(u64_of(token)),
        });
    }
    if row.get::<_, bool>(1) {
        return Err(WorkspaceError::LeaseNotActive(fence.key.clone()));
    }
    if !row.get::<_, bool>(2) {
        return Err(WorkspaceError::LeaseExpired(fence.key.clone()));
    }
    Ok(())
}

async fn check_run_lease(
    tx: &Client,
    run_id: &str,
    fence: Option<&Fence>,
) -> Result<(), WorkspaceError> {
    if let Some(f) = fence {
        check_fence(tx, f).await?;
        if f.key == run_id {
            return Ok(());
        }
    }
    let active = tx
        .query_opt(
            "SELECT 1 FROM leases WHERE key = $1 AND NOT released AND expires_at > clock_timestamp() FOR SHARE",
            &[&run_id],
        )
        .await
        .map_err(classify)?;
    if active.is_some() {
        return Err(WorkspaceError::LeaseRequired(run_id.to_owned()));
    }
    Ok(())
}

async fn prune(tx: &Client, run_id: &str, keep_last: u32) -> Result<Pruned, WorkspaceError> {
    let keep = i64::from(keep_last.max(1));
    let deleted = tx
        .execute(
            "DELETE FROM snapshots WHERE run_id = $1 AND state_version NOT IN \
             (SELECT state_version FROM snapshots WHERE run_id = $1 ORDER BY state_version DESC LIMIT $2)",
            &[&run_id, &keep],
        )
        .await
        .map_err(classify)?;
    let retained: i64 = tx
        .query_one(
            "SELECT count(*) FROM snapshots WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .map_err(classify)?
        .get(0);
    Ok(Pruned {
        retained: u64_of(retained),
        deleted,
    })
}

/// Appends the events of one execution with a fixed number of statements,
/// whatever the batch size: one idempotency lookup, one counter bump, one insert.
async fn append_group(
    tx: &Client,
    exe: &str,
    evs: &[&PreparedEvent],
) -> Result<Vec<Appended>, WorkspaceError> {
    let mut fences: Vec<&Fence> = Vec::new();
    for f in evs.iter().filter_map(|e| e.fence.as_ref()) {
        if !fences.contains(&f) {
            fences.push(f);
        }
    }
    for f in fences {
        check_fence(tx, f).await?;
    }
    let keys: Vec<&str> = evs.iter().map(|e| e.key.as_str()).collect();
    let rows = tx
        .query(
            "SELECT idem_key, seq, digest FROM events WHERE execution_id = $1 AND idem_key = ANY($2)",
            &[&exe, &keys],
        )
        .await
        .map_err(classify)?;
    // key -> (stored seq, or index into `fresh` for keys new in this batch; digest)
    let mut known: HashMap<String, (Result<i64, usize>, String)> = HashMap::new();
    for r in rows {
        known.insert(r.get(0), (Ok(r.get(1)), r.get(2)));
    }
    let mut slots: Vec<(Result<i64, usize>, bool)> = Vec::with_capacity(evs.len());
    let mut fresh: Vec<&PreparedEvent> = Vec::new();
    for ev in evs {
        match known.get(&ev.key) {
            Some((at, digest)) => {
                if *digest != ev.digest {
                    return Err(WorkspaceError::IdempotencyConflict {
                        execution_id: exe.to_owned(),
                        key: ev.key.clone(),
                    });
                }
                slots.push((*at, true));
            }
            None => {
                known.insert(ev.key.clone(), (Err(fresh.len()), ev.digest.clone()));
                slots.push((Err(fresh.len()), false));
                fresh.push(ev);
            }
        }
    }
    let mut base = 0i64;
    if !fresh.is_empty() {
        let n = fresh.len() as i64;
        // The head row is the per-execution counter; its row lock serialises
        // appenders of one execution, and a rollback returns the numbers, so
        // there are no gaps.
        let last: i64 = tx
            .query_one(
                "INSERT INTO event_heads(execution_id, last_seq, updated_at) VALUES ($1, $2::bigint, clock_timestamp()) \
                 ON CONFLICT (execution_id) DO UPDATE SET last_seq = event_heads.last_seq + $2::bigint, updated_at = clock_timestamp() \
                 RETURNING last_seq",
                &[&exe, &n],
            )
            .await
            .map_err(classify)?
            .get(0);
        base = last - n;
        let seqs: Vec<i64> = (1..=n).map(|i| base + i).collect();
        let keys: Vec<&str> = fresh.iter().map(|e| e.key.as_str()).collect();
        let types: Vec<&str> = fresh.iter().map(|e| e.event_type.as_str()).collect();
        let ats: Vec<i64> = fresh.iter().map(|e| e.at_ms).collect();
        let digests: Vec<&str> = fresh.iter().map(|e| e.digest.as_str()).collect();
        let bodies: Vec<&str> = fresh.iter().map(|e| e.body.as_str()).collect();
        tx.execute(
            "INSERT INTO events(execution_id, seq, idem_key, event_type, at_ms, digest, body) \
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[])",
            &[&exe, &seqs, &keys, &types, &ats, &digests, &bodies],
        )
        .await
        .map_err(race)?;
    }
    Ok(evs
        .iter()
        .zip(slots)
        .map(|(ev, (at, duplicate))| Appended {
            execution_id: exe.to_owned(),
            seq: u64_of(match at {
                Ok(seq) => seq,
                Err(i) => base + 1 + i as i64,
            }),
            idempotency_key: ev.key.clone(),
            duplicate,
        })
        .collect())
}

/// Appends events of any executions: grouped per execution (first-appearance
/// order), results returned in the caller's order.
async fn append_all(
    tx: &Client,
    prepared: &[PreparedEvent],
) -> Result<Vec<Appended>, WorkspaceError> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, ev) in prepared.iter().enumerate() {
        match groups.iter_mut().find(|(e, _)| *e == ev.execution_id) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((ev.execution_id.as_str(), vec![i])),
        }
    }
    let mut out: Vec<Option<Appended>> = vec![None; prepared.len()];
    for (exe, idx) in groups {
        let evs: Vec<&PreparedEvent> = idx.iter().map(|&i| &prepared[i]).collect();
        for (i, a) in idx.into_iter().zip(append_group(tx, exe, &evs).await?) {
            out[i] = Some(a);
        }
    }
    out.into_iter()
        .map(|a| a.ok_or_else(|| WorkspaceError::Backend("append lost a result".into())))
        .collect()
}

async fn insert_record(c: &Client, p: &PreparedRecord) -> Result<(), WorkspaceError> {
    let r = &p.reference;
    let scope = to_json(&r.scope)?;
    let meta = to_json(&r.meta)?;
    let size = i64_of(r.size);
    let created = r.created_at.as_millis();
    // PostgreSQL text cannot hold NUL; the bytes column keeps the exact body.
    let body = p
        .index_text
        .as_deref()
        .map(|t| truncate_utf8(t, PG_INDEX_TEXT_LIMIT).replace('\0', ""));
    c.execute(
        "INSERT INTO records(id, collection, kind, path, scope, meta, summary, content_type, size, sha256, created_at, content, body_text) \
         VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &r.id.as_str(),
            &r.collection,
            &r.kind,
            &r.path,
            &scope,
            &meta,
            &r.summary.replace('\0', ""),
            &r.content_type,
            &size,
            &r.sha256,
            &created,
            &p.bytes,
            &body,
        ],
    )
    .await
    .map_err(classify)?;
    Ok(())
}

/// Lease check, CAS on the head row, insert, retention: the whole snapshot write.
async fn write_snapshot(
    tx: &Client,
    snap: &PreparedSnapshot,
) -> Result<SnapshotMeta, WorkspaceError> {
    let run = &snap.run_id;
    check_run_lease(tx, run, snap.fence.as_ref()).await?;
    let won: Option<i64> = match snap.expected {
        Some(StateVersion(0)) => tx
            .query_opt(
                "INSERT INTO snapshot_heads(run_id, state_version) VALUES ($1, 1) ON CONFLICT DO NOTHING RETURNING state_version",
                &[run],
            )
            .await
            .map_err(classify)?
            .map(|r| r.get(0)),
        Some(v) => tx
            .query_opt(
                "UPDATE snapshot_heads SET state_version = state_version + 1 WHERE run_id = $1 AND state_version = $2 \
                 RETURNING state_version",
                &[run, &i64_of(v.0)],
            )
            .await
            .map_err(classify)?
            .map(|r| r.get(0)),
        None => tx
            .query_opt(
                "INSERT INTO snapshot_heads(run_id, state_version) VALUES ($1, 1) ON CONFLICT (run_id) \
                 DO UPDATE SET state_version = snapshot_heads.state_version + 1 RETURNING state_version",
                &[run],
            )
            .await
            .map_err(classify)?
            .map(|r| r.get(0)),
    };
    let Some(version) = won else {
        let current: i64 = tx
            .query_opt(
                "SELECT state_version FROM snapshot_heads WHERE run_id = $1",
                &[run],
            )
            .await
            .map_err(classify)?
            .map(|r| r.get(0))
            .unwrap_or(0);
        return Err(WorkspaceError::CasConflict {
            run_id: run.clone(),
            expected: snap.expected.unwrap_or_default(),
            current: StateVersion(u64_of(current)),
        });
    };
    let now = now_ms();
    let schema = i32::try_from(snap.schema_version).unwrap_or(i32::MAX);
    let size = snap.state.len() as i64;
    let state: &[u8] = snap.state.as_slice();
    tx.execute(
        &format!(
            "INSERT INTO snapshots({SNAP_COLS}, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            run,
            &version,
            &schema,
            &snap.step_id,
            &snap.digest,
            &size,
            &now,
            &state,
        ],
    )
    .await
    .map_err(classify)?;
    if let Some(k) = snap.keep_last {
        prune(tx, run, k).await?;
    }
    Ok(SnapshotMeta {
        run_id: run.clone(),
        state_version: StateVersion(u64_of(version)),
        schema_version: snap.schema_version,
        step_id: snap.step_id.clone(),
        digest: snap.digest.clone(),
        size: snap.state.len() as u64,
        created_at: Timestamp::from_millis(now),
    })
}

async fn lease_diagnosis(tx: &Client, fence: &Fence, owner: &str) -> WorkspaceError {
    match tx
        .query_opt(
            &format!(
                "SELECT {LEASE_COLS}, expires_at > clock_timestamp() FROM leases WHERE key = $1"
            ),
            &[&fence.key],
        )
        .await
    {
        Err(e) => classify(e),
        Ok(None) => WorkspaceError::LeaseNotActive(fence.key.clone()),
        Ok(Some(row)) => match lease_of(&row) {
            Err(e) => e,
            Ok(l) if l.token != fence.token => WorkspaceError::LeaseStaleToken {
                key: fence.key.clone(),
                presented: fence.token,
                current: l.token,
            },
            Ok(l) if l.owner != owner => WorkspaceError::LeaseHeld {
                key: fence.key.clone(),
                owner: l.owner,
            },
            Ok(l) if l.released => WorkspaceError::LeaseNotActive(fence.key.clone()),
            Ok(_) if !row.get::<_, bool>(6) => WorkspaceError::LeaseExpired(fence.key.clone()),
            Ok(_) => WorkspaceError::Backend("lease update matched no row".into()),
        },
    }
}

impl Store for PgStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            backend: "postgres".into(),
            cas: true,
            leases: true,
            range_reads: true,
            retention: true,
            event_sequencing: true,
            full_text: true,
            read_only: false,
            distributed: true,
        }
    }

    fn put(&self, record: NewRecord) -> StoreFuture<'_, RecordRef> {
        Box::pin(async move {
            let p = record.prepare()?;
            let c = self.pool.get().await?;
            insert_record(&c, &p).await?;
            Ok(p.reference)
        })
    }

    fn get_ref(&self, id: &RecordId) -> StoreFuture<'_, RecordRef> {
        let id = id.clone();
        Box::pin(async move {
            let c = self.pool.get().await?;
            let row = c
                .query_opt(
                    &format!("SELECT {RECORD_COLS} FROM records WHERE id = $1"),
                    &[&id.as_str()],
                )
                .await
                .map_err(classify)?
                .ok_or_else(|| WorkspaceError::NotFound {
                    kind: "record",
                    id: id.to_string(),
                })?;
            record_ref(&row)
        })
    }

    fn get(&self, id: &RecordId) -> StoreFuture<'_, StoredRecord> {
        let id = id.clone();
        Box::pin(async move {
            let c = self.pool.get().await?;
            let row = c
                .query_opt(
                    &format!("SELECT {RECORD_COLS}, content FROM records WHERE id = $1"),
                    &[&id.as_str()],
                )
                .await
                .map_err(classify)?
                .ok_or_else(|| WorkspaceError::NotFound {
                    kind: "record",
                    id: id.to_string(),
                })?;
            Ok(StoredRecord {
                reference: record_ref(&row)?,
                bytes: row.get(11),
            })
        })
    }

    fn search(&self, query: RecordQuery) -> StoreFuture<'_, Vec<RecordRef>> {
        Box::pin(async move {
            let limit = i64::from(query.validate()?);
            let tokens = query.text.as_deref().map(query_tokens).unwrap_or_default();
            let mut clauses: Vec<String> = Vec::new();
            let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            let next = |v: Box<dyn ToSql + Sync + Send>,
                        args: &mut Vec<Box<dyn ToSql + Sync + Send>>| {
                args.push(v);
                args.len()
            };
            let mut rank = String::new();
            if !tokens.is_empty() {
                let n = next(Box::new(tokens.join(" | ")), &mut args);
                clauses.push(format!("tsv @@ to_tsquery('simple'::regconfig, ${n})"));
                rank = format!("ts_rank(tsv, to_tsquery('simple'::regconfig, ${n})) DESC, ");
            }
            for (col, v) in [
                ("collection", &query.collection),
                ("kind", &query.kind),
                ("path", &query.path),
                ("id", &query.id.as_ref().map(|i| i.to_string())),
            ] {
                if let Some(v) = v {
                    let n = next(Box::new(v.clone()), &mut args);
                    clauses.push(format!("{col} = ${n}"));
                }
            }
            for (col, map) in [("scope", &query.scope), ("meta", &query.meta)] {
                if !map.is_empty() {
                    let n = next(Box::new(to_json(map)?), &mut args);
                    clauses.push(format!("{col} @> ${n}::text::jsonb"));
                }
            }
            let n = next(Box::new(limit), &mut args);
            let where_ = if clauses.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", clauses.join(" AND "))
            };
            let sql = format!(
                "SELECT {RECORD_COLS} FROM records {where_} ORDER BY {rank}rid DESC LIMIT ${n}"
            );
            let refs: Vec<&(dyn ToSql + Sync)> = args
                .iter()
                .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let c = self.pool.get().await?;
            let rows = c.query(&sql, &refs).await.map_err(classify)?;
            rows.iter().map(record_ref).collect()
        })
    }

    fn read_bounded(&self, id: &RecordId, offset: u64, limit: u64) -> StoreFuture<'_, BoundedRead> {
        let id = id.clone();
        Box::pin(async move {
            if limit == 0 {
                return Err(WorkspaceError::InvalidInput("limit must be > 0".into()));
            }
            if offset > i32::MAX as u64 {
                return Err(WorkspaceError::InvalidInput("offset beyond 2 GiB".into()));
            }
            let lim = limit.min(64 << 20);
            let c = self.pool.get().await?;
            let row = c
                .query_opt(
                    "SELECT size, sha256, content_type, substring(content from ($2::bigint + 1)::int for ($3::bigint)::int) \
                     FROM records WHERE id = $1",
                    &[&id.as_str(), &i64_of(offset), &i64_of(lim + 6)],
                )
                .await
                .map_err(classify)?
                .ok_or_else(|| WorkspaceError::NotFound { kind: "record", id: id.to_string() })?;
            let total = u64_of(row.get(0));
            let ct: String = row.get(2);
            let raw: Vec<u8> = row.get(3);
            let (off, bytes) = utf8_window(
                &raw,
                offset.min(total),
                usize::try_from(lim).unwrap_or(usize::MAX),
                ct != "application/octet-stream",
            );
            let next = off + bytes.len() as u64;
            Ok(BoundedRead {
                record_id: id,
                offset: off,
                bytes,
                total_size: total,
                next_offset: next,
                eof: next >= total,
                digest: row.get(1),
                content_type: ct,
            })
        })
    }

    fn link(&self, link: NewLink) -> StoreFuture<'_, Link> {
        Box::pin(async move {
            let link = link.into_link()?;
            let meta = to_json(&link.meta)?;
            let c = self.pool.get().await?;
            c.execute(
                "INSERT INTO links(id, source_id, target_id, relation, meta, created_at) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)",
                &[&link.id, &link.source_id, &link.target_id, &link.relation, &meta, &link.created_at.as_millis()],
            )
            .await
            .map_err(classify)?;
            Ok(link)
        })
    }

    fn links(&self, query: LinkQuery) -> StoreFuture<'_, Vec<Link>> {
        Box::pin(async move {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT id, source_id, target_id, relation, meta::text, created_at FROM links \
                     WHERE ($1::text IS NULL OR source_id = $1 OR target_id = $1) AND ($2::text IS NULL OR source_id = $2) \
                     AND ($3::text IS NULL OR target_id = $3) AND ($4::text IS NULL OR relation = $4) ORDER BY lid",
                    &[&query.either, &query.source, &query.target, &query.relation],
                )
                .await
                .map_err(classify)?;
            rows.iter()
                .map(|r| {
                    Ok(Link {
                        id: r.get(0),
                        source_id: r.get(1),
                        target_id: r.get(2),
                        relation: r.get(3),
                        meta: json_map(&r.get::<_, String>(4))?,
                        created_at: Timestamp::from_millis(r.get(5)),
                    })
                })
                .collect()
        })
    }

    fn put_snapshot(&self, snapshot: NewSnapshot) -> StoreFuture<'_, SnapshotMeta> {
        Box::pin(async move {
            let snap = snapshot.prepare()?;
            self.tx(move |tx| {
                let snap = snap.clone();
                Box::pin(async move { write_snapshot(tx, &snap).await })
            })
            .await
        })
    }

    fn get_snapshot(
        &self,
        run_id: &str,
        version: Option<StateVersion>,
    ) -> StoreFuture<'_, Option<Snapshot>> {
        let run_id = run_id.to_owned();
        Box::pin(async move {
            let c = self.pool.get().await?;
            let v = version.map(|v| i64_of(v.0));
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {SNAP_COLS}, state FROM snapshots WHERE run_id = $1 AND ($2::bigint IS NULL OR state_version = $2) \
                         ORDER BY state_version DESC LIMIT 1"
                    ),
                    &[&run_id, &v],
                )
                .await
                .map_err(classify)?;
            match row {
                None => Ok(None),
                Some(r) => {
                    let bytes: Vec<u8> = r.get(7);
                    let state = serde_json::from_slice(&bytes)
                        .map_err(|e| WorkspaceError::Decode(e.to_string()))?;
                    Ok(Some(Snapshot {
                        meta: snapshot_meta(&r)?,
                        state,
                    }))
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
        Box::pin(async move {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    &format!("SELECT {SNAP_COLS} FROM snapshots WHERE run_id = $1 ORDER BY state_version DESC LIMIT $2"),
                    &[&run_id, &lim],
                )
                .await
                .map_err(classify)?;
            rows.iter().map(snapshot_meta).collect()
        })
    }

    fn prune_snapshots(&self, run_id: &str, keep_last: u32) -> StoreFuture<'_, Pruned> {
        let run_id = run_id.to_owned();
        Box::pin(async move {
            if keep_last == 0 {
                return Err(WorkspaceError::InvalidInput(
                    "keep_last must be at least 1".into(),
                ));
            }
            self.tx(move |tx| {
                let run_id = run_id.clone();
                Box::pin(async move { prune(tx, &run_id, keep_last).await })
            })
            .await
        })
    }

    fn list_snapshot_heads(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<SnapshotHead>> {
        Box::pin(async move {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT h.run_id, h.state_version, (SELECT count(*) FROM snapshots s WHERE s.run_id = h.run_id) \
                     FROM snapshot_heads h ORDER BY h.run_id LIMIT $1",
                    &[&lim],
                )
                .await
                .map_err(classify)?;
            Ok(rows
                .iter()
                .map(|r| SnapshotHead {
                    run_id: r.get(0),
                    state_version: StateVersion(u64_of(r.get(1))),
                    retained: u64_of(r.get(2)),
                })
                .collect())
        })
    }

    fn claim_lease(&self, key: &str, owner: &str, ttl_ms: u64) -> StoreFuture<'_, Lease> {
        let key = key.to_owned();
        let owner = owner.to_owned();
        Box::pin(async move {
            check_lease_args(&key, &owner, ttl_ms)?;
            let ttl = i64_of(ttl_ms);
            let c = self.pool.get().await?;
            // One statement: the row lock makes concurrent claims serialise, and the
            // WHERE on the update decides the winner by the database clock.
            let row = c
                .query_opt(
                    &format!(
                        "INSERT INTO leases(key, owner, token, ttl_ms, expires_at, released) \
                         VALUES ($1, $2, 1, $3::bigint, clock_timestamp() + $3::bigint * interval '1 millisecond', false) \
                         ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, token = leases.token + 1, \
                           ttl_ms = excluded.ttl_ms, expires_at = clock_timestamp() + excluded.ttl_ms * interval '1 millisecond', released = false \
                         WHERE leases.released OR leases.expires_at <= clock_timestamp() OR leases.owner = excluded.owner \
                         RETURNING {LEASE_COLS}"
                    ),
                    &[&key, &owner, &ttl],
                )
                .await
                .map_err(classify)?;
            match row {
                Some(r) => lease_of(&r),
                None => {
                    let holder: String = c
                        .query_opt("SELECT owner FROM leases WHERE key = $1", &[&key])
                        .await
                        .map_err(classify)?
                        .map(|r| r.get(0))
                        .unwrap_or_default();
                    Err(WorkspaceError::LeaseHeld { key, owner: holder })
                }
            }
        })
    }

    fn heartbeat_lease(&self, fence: &Fence, owner: &str) -> StoreFuture<'_, Lease> {
        let fence = fence.clone();
        let owner = owner.to_owned();
        Box::pin(async move {
            self.tx(move |tx| {
                let (fence, owner) = (fence.clone(), owner.clone());
                Box::pin(async move {
                    let (fence, owner) = (&fence, &owner);
                    let row = tx
                        .query_opt(
                            &format!(
                                "UPDATE leases SET expires_at = clock_timestamp() + ttl_ms * interval '1 millisecond' \
                                 WHERE key = $1 AND token = $2 AND owner = $3 AND NOT released AND expires_at > clock_timestamp() \
                                 RETURNING {LEASE_COLS}"
                            ),
                            &[&fence.key, &i64_of(fence.token.0), owner],
                        )
                        .await
                        .map_err(classify)?;
                    match row {
                        Some(r) => lease_of(&r),
                        None => Err(lease_diagnosis(tx, fence, owner).await),
                    }
                })
            })
            .await
        })
    }

    fn release_lease(&self, fence: &Fence, owner: &str) -> StoreFuture<'_, ()> {
        let fence = fence.clone();
        let owner = owner.to_owned();
        Box::pin(async move {
            self.tx(move |tx| {
                let (fence, owner) = (fence.clone(), owner.clone());
                Box::pin(async move {
                    let (fence, owner) = (&fence, &owner);
                    let n = tx
                        .execute(
                            "UPDATE leases SET released = true, expires_at = least(expires_at, clock_timestamp()) \
                             WHERE key = $1 AND token = $2 AND owner = $3",
                            &[&fence.key, &i64_of(fence.token.0), owner],
                        )
                        .await
                        .map_err(classify)?;
                    if n == 1 { Ok(()) } else { Err(lease_diagnosis(tx, fence, owner).await) }
                })
            })
            .await
        })
    }

    fn get_lease(&self, key: &str) -> StoreFuture<'_, Option<Lease>> {
        let key = key.to_owned();
        Box::pin(async move {
            let c = self.pool.get().await?;
            let row = c
                .query_opt(
                    &format!("SELECT {LEASE_COLS} FROM leases WHERE key = $1"),
                    &[&key],
                )
                .await
                .map_err(classify)?;
            row.as_ref().map(lease_of).transpose()
        })
    }

    fn list_leases(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<Lease>> {
        Box::pin(async move {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    &format!("SELECT {LEASE_COLS} FROM leases ORDER BY key LIMIT $1"),
                    &[&lim],
                )
                .await
                .map_err(classify)?;
            rows.iter().map(lease_of).collect()
        })
    }

    fn commit(&self, batch: WriteBatch) -> StoreFuture<'_, Committed> {
        Box::pin(async move {
            let b = Arc::new(batch.prepare()?);
            self.tx(move |tx| {
                let b = b.clone();
                Box::pin(async move {
                    if let Some(f) = &b.fence {
                        check_fence(tx, f).await?;
                    }
                    let snapshot = match &b.snapshot {
                        Some(snap) => Some(write_snapshot(tx, snap).await?),
                        None => None,
                    };
                    let events = append_all(tx, &b.events).await?;
                    let mut records = Vec::with_capacity(b.records.len());
                    for r in &b.records {
                        insert_record(tx, r).await?;
                        records.push(r.reference.clone());
                    }
                    Ok(Committed {
                        snapshot,
                        events,
                        records,
                    })
                })
            })
            .await
        })
    }

    fn append_batch(&self, events: Vec<EventAppend>) -> StoreFuture<'_, Vec<Appended>> {
        Box::pin(async move {
            let prepared = Arc::new(
                events
                    .into_iter()
                    .map(EventAppend::prepare)
                    .collect::<Result<Vec<_>, _>>()?,
            );
            if prepared.is_empty() {
                return Ok(Vec::new());
            }
            self.tx(move |tx| {
                let prepared = prepared.clone();
                Box::pin(async move { append_all(tx, &prepared).await })
            })
            .await
        })
    }

    fn query_events(&self, query: EventQuery) -> StoreFuture<'_, Vec<StoredEvent>> {
        Box::pin(async move {
            let c = self.pool.get().await?;
            let types: Option<Vec<String>> = (!query.types.is_empty()).then(|| query.types.clone());
            let rows = c
                .query(
                    "SELECT execution_id, seq, idem_key, event_type, at_ms, body FROM events WHERE execution_id = $1 \
                     AND ($2::bigint IS NULL OR seq >= $2) AND ($3::bigint IS NULL OR seq <= $3) \
                     AND ($4::bigint IS NULL OR at_ms >= $4) AND ($5::bigint IS NULL OR at_ms <= $5) \
                     AND ($6::text IS NULL OR left(event_type, length($6)) = $6) \
                     AND ($7::text[] IS NULL OR event_type = ANY($7)) ORDER BY seq LIMIT $8",
                    &[
                        &query.execution_id,
                        &query.seq_from.map(i64_of),
                        &query.seq_to.map(i64_of),
                        &query.at_from.map(|t| t.as_millis()),
                        &query.at_to.map(|t| t.as_millis()),
                        &query.type_prefix,
                        &types,
                        &query.effective_limit(),
                    ],
                )
                .await
                .map_err(classify)?;
            rows.iter()
                .map(|r| {
                    Ok(StoredEvent {
                        execution_id: r.get(0),
                        seq: u64_of(r.get(1)),
                        idempotency_key: r.get(2),
                        event_type: r.get(3),
                        at: Timestamp::from_millis(r.get(4)),
                        body: serde_json::from_str(&r.get::<_, String>(5))
                            .map_err(|e| WorkspaceError::Decode(e.to_string()))?,
                    })
                })
                .collect()
        })
    }

    fn list_event_logs(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<EventLogHead>> {
        Box::pin(async move {
            let lim = i64::from(limit.unwrap_or(100).clamp(1, 10_000));
            let c = self.pool.get().await?;
            let rows = c
                .query("SELECT execution_id, last_seq FROM event_heads ORDER BY updated_at DESC, execution_id LIMIT $1", &[&lim])
                .await
                .map_err(classify)?;
            Ok(rows
                .iter()
                .map(|r| EventLogHead {
                    execution_id: r.get(0),
                    last_seq: u64_of(r.get(1)),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_param_is_split_and_checked() {
        let (u, s) = split_schema("postgres://u@h/db?schema=t_1&sslmode=disable").unwrap();
        assert_eq!(
            (u.as_str(), s.as_str()),
            ("postgres://u@h/db?sslmode=disable", "t_1")
        );
        assert_eq!(split_schema("postgres://u@h/db").unwrap().1, "agentry");
        assert!(split_schema("postgres://h/db?schema=x\";drop").is_err());
    }
}
