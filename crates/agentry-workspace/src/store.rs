//! The [`Store`] trait: the durable half of a Workspace.
//!
//! The trait is object-safe (methods return boxed futures) so a Workspace can hold an
//! `Arc<dyn Store>` chosen at run time by URL. Backends implement the required
//! methods; convenience operations (artifact refs, evidence links, checkpoints,
//! streamed reads, single appends) are provided on top of them so every backend
//! behaves the same way.
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use serde_json::Value;

use crate::error::WorkspaceError;
use crate::types::*;

/// The future every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, WorkspaceError>> + Send + 'a>>;

/// A durable store of records, links, snapshots, leases and RuntimeEvents.
///
/// Rules every backend keeps (the conformance suite checks them):
/// - the store assigns state versions, fencing tokens and event sequence numbers;
///   callers can only present what they were given;
/// - a snapshot write with a stale expected version fails with
///   [`WorkspaceError::CasConflict`] and writes nothing;
/// - a write carrying a [`Fence`] commits only if the fence's token is still the
///   current, unreleased, unexpired token of its lease — checked inside the same
///   transaction as the write;
/// - a snapshot write for a run whose lease is active must carry that lease's fence;
/// - appending an event with a known idempotency key returns the original when the
///   body is the same and fails with [`WorkspaceError::IdempotencyConflict`] otherwise;
/// - event sequence numbers per execution are 1, 2, 3 … with no gaps.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// What this backend guarantees.
    fn capabilities(&self) -> Capabilities;

    /// Stores a record and indexes its text.
    fn put(&self, record: NewRecord) -> StoreFuture<'_, RecordRef>;
    /// A record's reference (no body).
    fn get_ref(&self, id: &RecordId) -> StoreFuture<'_, RecordRef>;
    /// A record with its body.
    fn get(&self, id: &RecordId) -> StoreFuture<'_, StoredRecord>;
    /// Records matching the structural filters, ranked by the text query if any,
    /// else newest first.
    fn search(&self, query: RecordQuery) -> StoreFuture<'_, Vec<RecordRef>>;
    /// Up to `limit` bytes of a body from byte `offset`; text bodies are cut on
    /// character boundaries.
    fn read_bounded(&self, id: &RecordId, offset: u64, limit: u64) -> StoreFuture<'_, BoundedRead>;

    /// Stores a link.
    fn link(&self, link: NewLink) -> StoreFuture<'_, Link>;
    /// Links matching every given clause, oldest first.
    fn links(&self, query: LinkQuery) -> StoreFuture<'_, Vec<Link>>;

    /// Writes a snapshot (CAS on `expected`, fenced by `fence`), returning its metadata.
    fn put_snapshot(&self, snapshot: NewSnapshot) -> StoreFuture<'_, SnapshotMeta>;
    /// The newest snapshot of a run, or a given version.
    fn get_snapshot(
        &self,
        run_id: &str,
        version: Option<StateVersion>,
    ) -> StoreFuture<'_, Option<Snapshot>>;
    /// Retained snapshots of a run, newest first.
    fn snapshot_history(
        &self,
        run_id: &str,
        limit: Option<u32>,
    ) -> StoreFuture<'_, Vec<SnapshotMeta>>;
    /// Deletes all but the newest `keep_last` (≥ 1) snapshots of a run.
    fn prune_snapshots(&self, run_id: &str, keep_last: u32) -> StoreFuture<'_, Pruned>;
    /// The head of every run (for listings).
    fn list_snapshot_heads(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<SnapshotHead>>;

    /// Claims `key` for `owner` for `ttl_ms`. Succeeds when the lease is free,
    /// released or expired (by the store's clock); every claim gets a new, larger token.
    fn claim_lease(&self, key: &str, owner: &str, ttl_ms: u64) -> StoreFuture<'_, Lease>;
    /// Extends a lease by its TTL; the fence must be current and unexpired.
    fn heartbeat_lease(&self, fence: &Fence, owner: &str) -> StoreFuture<'_, Lease>;
    /// Releases a lease; the fence must be current.
    fn release_lease(&self, fence: &Fence, owner: &str) -> StoreFuture<'_, ()>;
    /// The lease of a key, if one was ever claimed.
    fn get_lease(&self, key: &str) -> StoreFuture<'_, Option<Lease>>;
    /// All leases (for listings).
    fn list_leases(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<Lease>>;

    /// Appends events atomically: either all are stored (or recognised as
    /// duplicates) or none is.
    fn append_batch(&self, events: Vec<EventAppend>) -> StoreFuture<'_, Vec<Appended>>;
    /// Events of one execution in sequence order.
    fn query_events(&self, query: EventQuery) -> StoreFuture<'_, Vec<StoredEvent>>;
    /// Executions with events (for listings), most recently active first.
    fn list_event_logs(&self, limit: Option<u32>) -> StoreFuture<'_, Vec<EventLogHead>>;

    /// Commits a snapshot, events and records in one transaction: all or nothing.
    fn commit(&self, batch: WriteBatch) -> StoreFuture<'_, Committed>;

    /// Appends one event.
    fn append(&self, event: EventAppend) -> StoreFuture<'_, Appended> {
        Box::pin(async move {
            self.append_batch(vec![event])
                .await?
                .pop()
                .ok_or_else(|| WorkspaceError::Backend("append returned nothing".into()))
        })
    }

    /// The decoded body of a record.
    fn get_data(&self, id: &RecordId) -> StoreFuture<'_, Value> {
        let id = id.clone();
        Box::pin(async move { self.get(&id).await?.data() })
    }

    /// The envelope of a record, for passing a large payload by reference.
    fn ref_envelope(&self, id: &RecordId) -> StoreFuture<'_, RefEnvelope> {
        let id = id.clone();
        Box::pin(async move {
            let r = self.get_ref(&id).await?;
            Ok(r.envelope(&self.capabilities().backend))
        })
    }

    /// Stores an artifact reference for a run (collection `artifacts`).
    fn put_artifact_ref(
        &self,
        run_id: &str,
        artifact: Value,
        summary: Option<String>,
    ) -> StoreFuture<'_, RecordRef> {
        let mut rec = NewRecord::new("artifacts", Content::Json(artifact))
            .kind("artifact_ref")
            .scope("run_id", run_id)
            .meta("artifact_ref", true);
        rec.summary = summary;
        self.put(rec)
    }

    /// Links two ids with runtime evidence stored under `meta.evidence`.
    fn link_evidence(&self, mut link: NewLink, evidence: Evidence) -> StoreFuture<'_, Link> {
        Box::pin(async move {
            let ev = serde_json::to_value(evidence)
                .map_err(|e| WorkspaceError::Decode(e.to_string()))?;
            link.meta.insert("evidence".into(), ev);
            self.link(link).await
        })
    }

    /// Appends a checkpoint (a snapshot without CAS) to a run's history.
    fn put_checkpoint(
        &self,
        run_id: &str,
        step_id: Option<&str>,
        state: Value,
    ) -> StoreFuture<'_, SnapshotMeta> {
        let mut s = NewSnapshot::checkpoint(run_id, state);
        s.step_id = step_id.map(str::to_owned);
        self.put_snapshot(s)
    }
}

/// Streams a body in `chunk` byte pieces (character-safe for text), fetching each
/// piece with a bounded read so memory stays flat for large payloads.
pub fn stream_read(
    store: Arc<dyn Store>,
    id: RecordId,
    offset: u64,
    chunk: u64,
) -> BoxStream<'static, Result<BoundedRead, WorkspaceError>> {
    let chunk = chunk.max(1);
    stream::unfold(Some(offset), move |state| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let off = state?;
            match store.read_bounded(&id, off, chunk).await {
                Ok(r) => {
                    let next = if r.eof { None } else { Some(r.next_offset) };
                    Some((Ok(r), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
    .boxed()
}
