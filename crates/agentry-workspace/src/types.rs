//! Value types shared by the [`Store`](crate::Store) trait and its backends.
//!
//! Versions, fencing tokens and record ids are newtypes so a state version cannot be
//! passed where a fencing token is expected; all of them are assigned by the store,
//! never chosen by the caller.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use agentry_core::{ExecutionId, RuntimeEvent, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::WorkspaceError;

/// The version of a run's snapshot chain. `0` means "no snapshot yet"; the store
/// increments it by one on every successful write.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StateVersion(pub u64);

impl StateVersion {
    /// The version before the first snapshot.
    pub const ZERO: StateVersion = StateVersion(0);
}

impl fmt::Display for StateVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A lease's fencing token: strictly increasing per lease key across claims, so a
/// write carrying an older token can always be told apart from the current holder.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A record id (`rec_<uuid v7 hex>`); time-ordered so listings are stable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(String);

impl RecordId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(format!("rec_{}", uuid::Uuid::now_v7().simple()))
    }
    /// Wraps an existing id (non-empty, no control characters).
    pub fn parse(s: impl Into<String>) -> Result<Self, WorkspaceError> {
        let s = s.into();
        if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
            return Err(WorkspaceError::InvalidInput(format!("bad record id `{s}`")));
        }
        Ok(Self(s))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RecordId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// JSON with object keys sorted at every level, so two equal values always hash the
/// same regardless of the order their keys were inserted in. Written in one pass
/// without building a sorted copy of the value (snapshots can be megabytes).
pub fn canonical_json(value: &Value) -> String {
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    // Writing to a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut *out, k);
                    out.push(b':');
                    write(v, out);
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(v, out);
                }
                out.push(b']');
            }
            other => {
                let _ = serde_json::to_writer(&mut *out, other);
            }
        }
    }
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Current time in milliseconds (the host clock; PostgreSQL uses its own).
pub(crate) fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

/// The body of a record: text, JSON or raw bytes. Decides the content type and how
/// the bytes are indexed (text and JSON are full-text indexed).
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// UTF-8 text (`text/plain`).
    Text(String),
    /// A JSON value, stored in its canonical form (`application/json`).
    Json(Value),
    /// Opaque bytes (`application/octet-stream`), not indexed.
    Bytes(Vec<u8>),
}

impl Content {
    /// The stored bytes and the content type.
    pub fn into_parts(self) -> (Vec<u8>, &'static str) {
        match self {
            Content::Text(s) => (s.into_bytes(), "text/plain"),
            Content::Json(v) => (canonical_json(&v).into_bytes(), "application/json"),
            Content::Bytes(b) => (b, "application/octet-stream"),
        }
    }
}

/// A record to store.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Collection name (`observations`, `decisions`, `artifacts` …).
    pub collection: String,
    /// Free kind label.
    pub kind: Option<String>,
    /// A logical path the record describes (a file, a URL …).
    pub path: Option<String>,
    /// Scope keys (`execution_id`, `session_id` …) used by structural filters.
    pub scope: BTreeMap<String, Value>,
    /// Free metadata, filterable by top-level key.
    pub meta: BTreeMap<String, Value>,
    /// One-line summary; defaults to the first 240 characters of text content.
    pub summary: Option<String>,
    /// The body.
    pub content: Content,
}

impl NewRecord {
    /// A record in `collection` with the given body.
    pub fn new(collection: impl Into<String>, content: Content) -> Self {
        Self {
            collection: collection.into(),
            kind: None,
            path: None,
            scope: BTreeMap::new(),
            meta: BTreeMap::new(),
            summary: None,
            content,
        }
    }
    /// Sets the kind.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }
    /// Sets the path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
    /// Adds a scope key.
    pub fn scope(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.scope.insert(key.into(), value.into());
        self
    }
    /// Adds a meta key.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }
    /// Sets the summary.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Validates names and computes what a backend stores (for custom backends).
    pub fn prepare(self) -> Result<PreparedRecord, WorkspaceError> {
        check_name("collection", &self.collection)?;
        for k in self.scope.keys().chain(self.meta.keys()) {
            check_key(k)?;
        }
        let (bytes, content_type) = self.content.into_parts();
        let text = if content_type == "application/octet-stream" {
            None
        } else {
            String::from_utf8(bytes.clone()).ok()
        };
        let summary = self.summary.unwrap_or_else(|| {
            text.as_deref()
                .map(|t| {
                    t.chars()
                        .take(240)
                        .map(|c| if c == '\n' { ' ' } else { c })
                        .collect()
                })
                .unwrap_or_default()
        });
        let reference = RecordRef {
            id: RecordId::new(),
            collection: self.collection,
            kind: self.kind,
            path: self.path,
            scope: self.scope,
            meta: self.meta,
            summary,
            content_type: content_type.to_owned(),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            created_at: Timestamp::from_millis(now_ms()),
        };
        // Only a bounded prefix of the text goes into the full-text index.
        let index_text = text.map(|t| truncate_utf8(&t, INDEX_TEXT_LIMIT).to_owned());
        Ok(PreparedRecord {
            reference,
            bytes,
            index_text,
        })
    }
}

/// Text beyond this many bytes is stored but not full-text indexed.
pub(crate) const INDEX_TEXT_LIMIT: usize = 1 << 20;

/// The longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A record ready for a backend: its reference, bytes and index text.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    /// The reference the store returns.
    pub reference: RecordRef,
    /// The bytes to store.
    pub bytes: Vec<u8>,
    /// The text to index (None for binary content).
    pub index_text: Option<String>,
}

fn check_name(what: &str, s: &str) -> Result<(), WorkspaceError> {
    if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        return Err(WorkspaceError::InvalidInput(format!(
            "bad {what} name `{s}`"
        )));
    }
    Ok(())
}

/// Scope and meta keys become JSON paths in SQL, so they are restricted to a safe
/// alphabet instead of being escaped.
pub(crate) fn check_key(k: &str) -> Result<(), WorkspaceError> {
    if k.is_empty()
        || k.len() > 64
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(WorkspaceError::InvalidInput(format!(
            "filter key `{k}` must be 1-64 chars of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

/// What the store returns for a record: everything but the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordRef {
    /// The id.
    pub id: RecordId,
    /// Collection.
    pub collection: String,
    /// Kind.
    pub kind: Option<String>,
    /// Logical path.
    pub path: Option<String>,
    /// Scope keys.
    pub scope: BTreeMap<String, Value>,
    /// Metadata.
    pub meta: BTreeMap<String, Value>,
    /// Summary.
    pub summary: String,
    /// MIME type of the body.
    pub content_type: String,
    /// Body size in bytes.
    pub size: u64,
    /// Hex sha256 of the body.
    pub sha256: String,
    /// When it was stored.
    pub created_at: Timestamp,
}

impl RecordRef {
    /// The envelope other components pass around instead of the body.
    pub fn envelope(&self, backend: &str) -> RefEnvelope {
        RefEnvelope {
            record_id: self.id.clone(),
            collection: self.collection.clone(),
            kind: self.kind.clone(),
            digest: self.sha256.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            created_at: self.created_at,
            backend: backend.to_owned(),
        }
    }
}

/// A pointer to a stored payload: enough to verify and fetch it in bounded pieces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefEnvelope {
    /// The record holding the payload.
    pub record_id: RecordId,
    /// Its collection.
    pub collection: String,
    /// Its kind.
    pub kind: Option<String>,
    /// Hex sha256 of the payload.
    pub digest: String,
    /// Payload size in bytes.
    pub size: u64,
    /// MIME type.
    pub content_type: String,
    /// When it was stored.
    pub created_at: Timestamp,
    /// The backend name that holds it.
    pub backend: String,
}

/// A record with its body.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The reference.
    pub reference: RecordRef,
    /// The body.
    pub bytes: Vec<u8>,
}

impl StoredRecord {
    /// The body decoded by content type: JSON parsed, text as a JSON string, bytes
    /// as an array of numbers.
    pub fn data(&self) -> Result<Value, WorkspaceError> {
        match self.reference.content_type.as_str() {
            "application/json" => serde_json::from_slice(&self.bytes)
                .map_err(|e| WorkspaceError::Decode(e.to_string())),
            "application/octet-stream" => Ok(Value::from(self.bytes.clone())),
            _ => Ok(Value::String(
                String::from_utf8_lossy(&self.bytes).into_owned(),
            )),
        }
    }
}

/// Structural filters plus an optional full-text query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RecordQuery {
    /// Full-text query (tokens OR-ed, ranked by relevance).
    pub text: Option<String>,
    /// Exact collection.
    pub collection: Option<String>,
    /// Exact kind.
    pub kind: Option<String>,
    /// Exact id.
    pub id: Option<RecordId>,
    /// Exact path.
    pub path: Option<String>,
    /// Every key must equal (JSON equality).
    pub scope: BTreeMap<String, Value>,
    /// Every key must equal (JSON equality).
    pub meta: BTreeMap<String, Value>,
    /// Maximum results (default 50, at most 1000).
    pub limit: Option<u32>,
}

impl RecordQuery {
    /// A query matching everything.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the text query.
    pub fn text(mut self, q: impl Into<String>) -> Self {
        self.text = Some(q.into());
        self
    }
    /// Filters by collection.
    pub fn collection(mut self, c: impl Into<String>) -> Self {
        self.collection = Some(c.into());
        self
    }
    /// Filters by kind.
    pub fn kind(mut self, k: impl Into<String>) -> Self {
        self.kind = Some(k.into());
        self
    }
    /// Filters by path.
    pub fn path(mut self, p: impl Into<String>) -> Self {
        self.path = Some(p.into());
        self
    }
    /// Filters by id.
    pub fn id(mut self, id: RecordId) -> Self {
        self.id = Some(id);
        self
    }
    /// Adds a scope equality filter.
    pub fn scope(mut self, k: impl Into<String>, v: impl Into<Value>) -> Self {
        self.scope.insert(k.into(), v.into());
        self
    }
    /// Adds a meta equality filter.
    pub fn meta(mut self, k: impl Into<String>, v: impl Into<Value>) -> Self {
        self.meta.insert(k.into(), v.into());
        self
    }
    /// Sets the limit.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
    pub(crate) fn validate(&self) -> Result<u32, WorkspaceError> {
        for k in self.scope.keys().chain(self.meta.keys()) {
            check_key(k)?;
        }
        for v in self.scope.values().chain(self.meta.values()) {
            if v.is_object() || v.is_array() {
                return Err(WorkspaceError::InvalidInput(
                    "scope/meta filters compare scalar values only".into(),
                ));
            }
        }
        Ok(self.limit.unwrap_or(50).clamp(1, 1000))
    }
}

/// The tokens of a text query: words of letters, digits and `_`, at most 16,
/// so user text never reaches a query parser unescaped.
pub(crate) fn query_tokens(q: &str) -> Vec<String> {
    q.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
        .take(16)
        .map(|t| t.to_lowercase())
        .collect()
}

/// A directed, typed relation between two ids (records, events, snapshots …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// `lnk_<hex>`.
    pub id: String,
    /// Source id.
    pub source_id: String,
    /// Target id.
    pub target_id: String,
    /// Relation name.
    pub relation: String,
    /// Metadata (evidence links keep their evidence under `evidence`).
    pub meta: BTreeMap<String, Value>,
    /// When it was stored.
    pub created_at: Timestamp,
}

/// A link to store.
#[derive(Debug, Clone)]
pub struct NewLink {
    /// Source id.
    pub source_id: String,
    /// Target id.
    pub target_id: String,
    /// Relation.
    pub relation: String,
    /// Metadata.
    pub meta: BTreeMap<String, Value>,
}

impl NewLink {
    /// A link without metadata.
    pub fn new(
        source: impl Into<String>,
        target: impl Into<String>,
        relation: impl Into<String>,
    ) -> Self {
        Self {
            source_id: source.into(),
            target_id: target.into(),
            relation: relation.into(),
            meta: BTreeMap::new(),
        }
    }
    pub(crate) fn into_link(self) -> Result<Link, WorkspaceError> {
        for (what, v) in [
            ("source", &self.source_id),
            ("target", &self.target_id),
            ("relation", &self.relation),
        ] {
            check_name(what, v)?;
        }
        Ok(Link {
            id: format!("lnk_{}", uuid::Uuid::now_v7().simple()),
            source_id: self.source_id,
            target_id: self.target_id,
            relation: self.relation,
            meta: self.meta,
            created_at: Timestamp::from_millis(now_ms()),
        })
    }
}

/// What ties a link to the runtime: the execution, event, snapshot and artifacts
/// that justify it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The execution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// The RuntimeEvent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The snapshot `(run, version)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<(String, StateVersion)>,
    /// Artifacts as envelopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<RefEnvelope>,
}

/// Link query: clauses are AND-ed.
#[derive(Debug, Clone, Default)]
pub struct LinkQuery {
    /// Matches either end.
    pub either: Option<String>,
    /// Source id.
    pub source: Option<String>,
    /// Target id.
    pub target: Option<String>,
    /// Relation.
    pub relation: Option<String>,
}

/// A piece of a stored body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundedRead {
    /// The record.
    pub record_id: RecordId,
    /// Byte offset of `bytes` (moved forward past a split character for text).
    pub offset: u64,
    /// The bytes. For text bodies they always form whole UTF-8 characters.
    pub bytes: Vec<u8>,
    /// Total body size.
    pub total_size: u64,
    /// Offset to continue from.
    pub next_offset: u64,
    /// Whether the end was reached.
    pub eof: bool,
    /// Hex sha256 of the whole body.
    pub digest: String,
    /// MIME type.
    pub content_type: String,
}

impl BoundedRead {
    /// The bytes as text when they are valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

/// Cuts a raw window read at `offset` (which may hold up to 6 bytes past `limit`)
/// so that a text body yields whole characters: leading continuation bytes belong
/// to the previous piece, and a character split by `limit` is completed.
pub(crate) fn utf8_window(raw: &[u8], offset: u64, limit: usize, is_text: bool) -> (u64, Vec<u8>) {
    if !is_text {
        return (offset, raw[..raw.len().min(limit)].to_vec());
    }
    let is_cont = |b: u8| b & 0xC0 == 0x80;
    let mut start = 0;
    while start < raw.len() && start < 3 && is_cont(raw[start]) {
        start += 1;
    }
    let mut end = (start + limit).min(raw.len());
    while end < raw.len() && is_cont(raw[end]) {
        end += 1;
    }
    (offset + start as u64, raw[start..end].to_vec())
}

/// A snapshot write.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    /// The run (flow execution, agent execution …).
    pub run_id: String,
    /// The state.
    pub state: Value,
    /// The schema of `state`, so a newer reader can migrate or refuse.
    pub schema_version: u32,
    /// The step the snapshot was taken at.
    pub step_id: Option<String>,
    /// CAS: the version the writer read. `None` appends unconditionally (checkpoint).
    pub expected: Option<StateVersion>,
    /// The lease the write is made under.
    pub fence: Option<Fence>,
    /// Keep only this many newest snapshots of the run after the write.
    pub keep_last: Option<u32>,
}

impl NewSnapshot {
    /// A snapshot of `state` expected to follow `expected`.
    pub fn new(run_id: impl Into<String>, state: Value, expected: StateVersion) -> Self {
        Self {
            run_id: run_id.into(),
            state,
            schema_version: 1,
            step_id: None,
            expected: Some(expected),
            fence: None,
            keep_last: None,
        }
    }
    /// A checkpoint: appended after whatever the current version is.
    pub fn checkpoint(run_id: impl Into<String>, state: Value) -> Self {
        Self {
            expected: None,
            ..Self::new(run_id, state, StateVersion::ZERO)
        }
    }
    /// Sets the schema version.
    pub fn schema_version(mut self, v: u32) -> Self {
        self.schema_version = v;
        self
    }
    /// Sets the step.
    pub fn step(mut self, step: impl Into<String>) -> Self {
        self.step_id = Some(step.into());
        self
    }
    /// Writes under a lease.
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }
    /// Applies retention after the write.
    pub fn keep_last(mut self, n: u32) -> Self {
        self.keep_last = Some(n);
        self
    }
}

impl NewSnapshot {
    /// Serialises the state canonically and hashes it, once, so retries and
    /// backends never touch the JSON value again (for custom backends too).
    pub fn prepare(self) -> Result<PreparedSnapshot, WorkspaceError> {
        if self.run_id.is_empty() || self.run_id.len() > 256 {
            return Err(WorkspaceError::InvalidInput(
                "run id must be 1-256 bytes".into(),
            ));
        }
        let state = canonical_json(&self.state).into_bytes();
        Ok(PreparedSnapshot {
            digest: sha256_hex(&state),
            state: Arc::new(state),
            run_id: self.run_id,
            schema_version: self.schema_version,
            step_id: self.step_id,
            expected: self.expected,
            fence: self.fence,
            keep_last: self.keep_last,
        })
    }
}

/// A snapshot ready for a backend. Cheap to clone (the state is shared).
#[derive(Debug, Clone)]
pub struct PreparedSnapshot {
    /// The run.
    pub run_id: String,
    /// Canonical JSON bytes of the state.
    pub state: Arc<Vec<u8>>,
    /// Hex sha256 of `state`.
    pub digest: String,
    /// Schema of the state.
    pub schema_version: u32,
    /// Step label.
    pub step_id: Option<String>,
    /// CAS expectation.
    pub expected: Option<StateVersion>,
    /// Lease.
    pub fence: Option<Fence>,
    /// Retention.
    pub keep_last: Option<u32>,
}

/// Several writes that commit together or not at all — for example a flow step's
/// snapshot, the events it emitted and the records it produced. A batch-level
/// fence is checked once and applies to the snapshot and events that carry none.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// The lease the whole batch is written under.
    pub fence: Option<Fence>,
    /// A snapshot (with its CAS expectation).
    pub snapshot: Option<NewSnapshot>,
    /// Events to append.
    pub events: Vec<EventAppend>,
    /// Records to store.
    pub records: Vec<NewRecord>,
}

/// A batch prepared for a backend.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// The batch fence.
    pub fence: Option<Fence>,
    /// The snapshot, with the batch fence applied.
    pub snapshot: Option<PreparedSnapshot>,
    /// The events, with the batch fence applied.
    pub events: Vec<PreparedEvent>,
    /// The records.
    pub records: Vec<PreparedRecord>,
}

impl WriteBatch {
    /// Validates and serialises everything before any backend work.
    pub fn prepare(self) -> Result<PreparedBatch, WorkspaceError> {
        let fence = self.fence;
        let snapshot = match self.snapshot {
            Some(mut s) => {
                if s.fence.is_none() {
                    s.fence = fence.clone();
                }
                Some(s.prepare()?)
            }
            None => None,
        };
        let events = self
            .events
            .into_iter()
            .map(|mut e| {
                if e.fence.is_none() {
                    e.fence = fence.clone();
                }
                e.prepare()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let records = self
            .records
            .into_iter()
            .map(NewRecord::prepare)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PreparedBatch {
            fence,
            snapshot,
            events,
            records,
        })
    }
}

/// What a committed batch wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    /// The snapshot written.
    pub snapshot: Option<SnapshotMeta>,
    /// The events (new or recognised duplicates).
    pub events: Vec<Appended>,
    /// The records stored.
    pub records: Vec<RecordRef>,
}

/// A stored snapshot without its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The run.
    pub run_id: String,
    /// Its version.
    pub state_version: StateVersion,
    /// Schema of the state.
    pub schema_version: u32,
    /// Step label.
    pub step_id: Option<String>,
    /// Hex sha256 of the canonical state.
    pub digest: String,
    /// Size of the canonical state in bytes.
    pub size: u64,
    /// When it was stored.
    pub created_at: Timestamp,
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its metadata.
    pub meta: SnapshotMeta,
    /// The state.
    pub state: Value,
}

impl Snapshot {
    /// The state, refusing one written by a schema newer than `supported`.
    pub fn state_for(&self, supported: u32) -> Result<&Value, WorkspaceError> {
        if self.meta.schema_version > supported {
            return Err(WorkspaceError::SnapshotSchemaTooNew {
                found: self.meta.schema_version,
                supported,
            });
        }
        Ok(&self.state)
    }
}

/// The newest snapshot of each run (for listings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotHead {
    /// The run.
    pub run_id: String,
    /// Its current version.
    pub state_version: StateVersion,
    /// How many snapshots are retained.
    pub retained: u64,
}

/// The result of applying retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Snapshots kept.
    pub retained: u64,
    /// Snapshots deleted.
    pub deleted: u64,
}

/// Proof of holding a lease, presented with every write made under it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// The lease key.
    pub key: String,
    /// The token the claim returned.
    pub token: FencingToken,
}

/// A lease as the store sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The leased key (usually a run or execution id).
    pub key: String,
    /// The holder.
    pub owner: String,
    /// The fencing token of this claim.
    pub token: FencingToken,
    /// TTL in milliseconds.
    pub ttl_ms: u64,
    /// Expiry by the store's clock.
    pub expires_at: Timestamp,
    /// Whether it was released.
    pub released: bool,
}

impl Lease {
    /// The fence to attach to writes under this lease.
    pub fn fence(&self) -> Fence {
        Fence {
            key: self.key.clone(),
            token: self.token,
        }
    }
}

/// The longest lease a claim may ask for (7 days): long enough for any heartbeat
/// cadence, short enough that a forgotten lease still expires.
pub const MAX_LEASE_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

pub(crate) fn check_lease_args(key: &str, owner: &str, ttl_ms: u64) -> Result<(), WorkspaceError> {
    if key.is_empty() || owner.is_empty() || ttl_ms == 0 || ttl_ms > MAX_LEASE_TTL_MS {
        return Err(WorkspaceError::InvalidInput(format!(
            "lease needs a key, an owner and 0 < ttl_ms <= {MAX_LEASE_TTL_MS}"
        )));
    }
    Ok(())
}

/// A RuntimeEvent (or any event-shaped JSON) to persist.
#[derive(Debug, Clone)]
pub struct EventAppend {
    /// The execution whose sequence it joins.
    pub execution_id: ExecutionId,
    /// Same key and same body ⇒ the original is returned; different body ⇒ conflict.
    pub idempotency_key: String,
    /// Dotted event type.
    pub event_type: String,
    /// When it happened.
    pub at: Timestamp,
    /// The event body.
    pub body: Value,
    /// Optional lease the append is made under.
    pub fence: Option<Fence>,
}

impl EventAppend {
    /// An append keyed by the event's id. Fails when the event has no execution id.
    pub fn from_runtime_event(event: &RuntimeEvent) -> Result<Self, WorkspaceError> {
        let execution_id = event
            .run
            .execution_id
            .clone()
            .ok_or_else(|| WorkspaceError::InvalidInput("event has no execution_id".into()))?;
        let body =
            serde_json::to_value(event).map_err(|e| WorkspaceError::Decode(e.to_string()))?;
        Ok(Self {
            execution_id,
            idempotency_key: event.event_id.as_str().to_owned(),
            event_type: event.event_type.as_str().to_owned(),
            at: event.at,
            body,
            fence: None,
        })
    }

    /// A generic append.
    pub fn new(
        execution_id: ExecutionId,
        key: impl Into<String>,
        event_type: impl Into<String>,
        body: Value,
    ) -> Self {
        Self {
            execution_id,
            idempotency_key: key.into(),
            event_type: event_type.into(),
            at: Timestamp::now(),
            body,
            fence: None,
        }
    }

    /// Validates and serialises the event (for custom backends).
    pub fn prepare(self) -> Result<PreparedEvent, WorkspaceError> {
        if self.idempotency_key.is_empty() || self.event_type.is_empty() {
            return Err(WorkspaceError::InvalidInput(
                "empty idempotency key or event type".into(),
            ));
        }
        let body = canonical_json(&self.body);
        let digest = sha256_hex(body.as_bytes());
        Ok(PreparedEvent {
            execution_id: self.execution_id.as_str().to_owned(),
            key: self.idempotency_key,
            event_type: self.event_type,
            at_ms: self.at.as_millis(),
            body,
            digest,
            fence: self.fence,
        })
    }
}

/// An event ready for a backend.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// Execution.
    pub execution_id: String,
    /// Idempotency key.
    pub key: String,
    /// Type.
    pub event_type: String,
    /// Time in ms.
    pub at_ms: i64,
    /// Canonical JSON body.
    pub body: String,
    /// sha256 of `body`.
    pub digest: String,
    /// Lease.
    pub fence: Option<Fence>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// The execution.
    pub execution_id: String,
    /// The store's gap-free sequence number.
    pub seq: u64,
    /// The idempotency key.
    pub idempotency_key: String,
    /// True when the key was already stored with the same body (nothing written).
    pub duplicate: bool,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The execution.
    pub execution_id: String,
    /// Gap-free sequence number.
    pub seq: u64,
    /// Idempotency key (the event id for RuntimeEvents).
    pub idempotency_key: String,
    /// Dotted type.
    pub event_type: String,
    /// When it happened.
    pub at: Timestamp,
    /// The body.
    pub body: Value,
}

impl StoredEvent {
    /// The body as a RuntimeEvent (when it is one).
    pub fn runtime_event(&self) -> Result<RuntimeEvent, WorkspaceError> {
        serde_json::from_value(self.body.clone()).map_err(|e| WorkspaceError::Decode(e.to_string()))
    }
}

/// Event range query; bounds are inclusive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventQuery {
    /// The execution.
    pub execution_id: String,
    /// First sequence.
    pub seq_from: Option<u64>,
    /// Last sequence.
    pub seq_to: Option<u64>,
    /// Earliest time.
    pub at_from: Option<Timestamp>,
    /// Latest time.
    pub at_to: Option<Timestamp>,
    /// Exact types (any of).
    pub types: Vec<String>,
    /// Type prefix such as `model.`.
    pub type_prefix: Option<String>,
    /// Maximum results (default 1000, at most 10000).
    pub limit: Option<u32>,
}

impl EventQuery {
    /// All events of an execution.
    pub fn new(execution_id: impl Into<String>) -> Self {
        Self {
            execution_id: execution_id.into(),
            seq_from: None,
            seq_to: None,
            at_from: None,
            at_to: None,
            types: Vec::new(),
            type_prefix: None,
            limit: None,
        }
    }
    /// Sequence range.
    pub fn seq(mut self, from: u64, to: u64) -> Self {
        self.seq_from = Some(from);
        self.seq_to = Some(to);
        self
    }
    /// Time range.
    pub fn at(mut self, from: Timestamp, to: Timestamp) -> Self {
        self.at_from = Some(from);
        self.at_to = Some(to);
        self
    }
    /// Type filter.
    pub fn event_type(mut self, t: impl Into<String>) -> Self {
        self.types.push(t.into());
        self
    }
    /// Type prefix filter.
    pub fn type_prefix(mut self, p: impl Into<String>) -> Self {
        self.type_prefix = Some(p.into());
        self
    }
    /// Limit.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }
    pub(crate) fn effective_limit(&self) -> i64 {
        i64::from(self.limit.unwrap_or(1000).clamp(1, 10_000))
    }
}

/// One execution's event log summary (for listings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLogHead {
    /// The execution.
    pub execution_id: String,
    /// Its last sequence number.
    pub last_seq: u64,
}

/// What a backend guarantees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Backend name (`sqlite`, `postgres` …).
    pub backend: String,
    /// Snapshot compare-and-set.
    pub cas: bool,
    /// Leases with fencing tokens.
    pub leases: bool,
    /// Byte-range reads without loading the whole body.
    pub range_reads: bool,
    /// Snapshot retention.
    pub retention: bool,
    /// Gap-free per-execution event sequences with idempotency.
    pub event_sequencing: bool,
    /// Full-text search used by queries.
    pub full_text: bool,
    /// The store refuses writes.
    pub read_only: bool,
    /// Several processes on several machines may share it.
    pub distributed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":[3,"é\"x"]},"n":null,"t":true,"f":1.5}"#)
                .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"t":true,"n":null,"f":1.5,"a":{"c":[3,"é\"x"],"d":2},"b":1}"#)
                .unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":[3,"é\"x"],"d":2},"b":1,"f":1.5,"n":null,"t":true}"#
        );
        let back: Value = serde_json::from_str(&canonical_json(&a)).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn utf8_window_never_splits_chars() {
        let s = "aé漢b".as_bytes(); // a(1) é(2) 漢(3) b(1)
        let (off, bytes) = utf8_window(&s[2..], 2, 1, true);
        assert_eq!((off, bytes), (3, "漢".as_bytes().to_vec()));
        let (off, bytes) = utf8_window(&s[0..], 0, 2, true);
        assert_eq!(off, 0);
        assert_eq!(bytes, "aé".as_bytes());
        assert_eq!(utf8_window(&s[0..], 0, 2, false).1, &s[..2]);
    }

    #[test]
    fn query_tokens_are_sanitized() {
        assert_eq!(
            query_tokens("Foo \"bar\" OR* baz-qux"),
            vec!["foo", "bar", "or", "baz", "qux"]
        );
        assert!(query_tokens("\"*()").is_empty());
    }

    #[test]
    fn keys_are_restricted() {
        assert!(check_key("run_id").is_ok());
        assert!(check_key("a.b").is_err());
        assert!(check_key("x'").is_err());
    }
}
