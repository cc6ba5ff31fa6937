//! The durable Agentry Workspace.
//!
//! A [`Workspace`] is a file root with a write policy (external files are
//! read-only unless the host grants `read_write` or a scoped grant; new files then
//! land in the execution's private `.agentry/files/<execution-id>/` area) plus a
//! [`Store`]: records with full-text search, links and evidence, ref envelopes and
//! bounded reads, snapshots with compare-and-set, leases with fencing tokens and
//! RuntimeEvents with idempotent, gap-free per-execution sequences.
//!
//! Two backends ship: [`SqliteStore`] (default, `<root>/.agentry/workspace.db`, one
//! writer thread, WAL) and [`PgStore`] (several processes on several machines;
//! CAS, leases and fencing enforced in SQL with the database clock). Others plug in
//! through [`StoreRegistry`] and prove themselves with the `conformance` feature.
//!
//! Where to look:
//!
//! | module | what it holds |
//! |---|---|
//! | [`facade`] | [`Workspace`]: root, mode, grants, lazy store, listings for the CLI |
//! | [`files`] | path containment and file references |
//! | [`store`] | the object-safe [`Store`] trait and [`stream_read`] |
//! | [`types`] | ids, versions, tokens, records, snapshots, leases, events, batches |
//! | [`sqlite`] / [`postgres`] | the two backends (the only modules that touch SQL) |
//! | [`registry`] | backends by URL scheme or name |
//! | [`recall`] | `build_context` and the [`Retriever`] seam |
//! | [`sink`] | the EventCenter hook persisting RuntimeEvents |
//! | [`error`] | [`WorkspaceError`] and its stable codes |
//! | `conformance` | the backend test suite (feature `conformance`) |
//!
//! ```
//! use agentry_workspace::{NewSnapshot, StateVersion, Workspace, WorkspaceError};
//! use serde_json::json;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), WorkspaceError> {
//! let dir = tempfile::tempdir().unwrap();
//! let ws = Workspace::open(dir.path()).build()?;
//! let store = ws.store().await?; // creates .agentry/workspace.db
//!
//! // Only the holder of the current lease may write the run's snapshots.
//! let lease = store.claim_lease("run-1", "worker-a", 30_000).await?;
//! let snap = NewSnapshot::new("run-1", json!({"step": 1}), StateVersion::ZERO).fenced(lease.fence());
//! let meta = store.put_snapshot(snap).await?;
//! assert_eq!(meta.state_version, StateVersion(1));
//!
//! // A writer that read an old version loses the compare-and-set.
//! let stale = NewSnapshot::new("run-1", json!({"step": 9}), StateVersion::ZERO).fenced(lease.fence());
//! let err = store.put_snapshot(stale).await.unwrap_err();
//! assert_eq!(agentry_core::ErrorCode::code(&err), "workspace.cas_conflict");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod facade;
pub mod files;
pub mod postgres;
pub mod recall;
pub mod registry;
pub mod sink;
pub mod sqlite;
pub mod store;
pub mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::WorkspaceError;
pub use facade::{Retrieved, Workspace, WorkspaceBuilder, WorkspaceInfo, WorkspaceMode};
pub use files::{FileContent, FileLocation, FileRef};
pub use postgres::PgStore;
pub use recall::{
    Budget, Candidate, CandidateSource, ContextItem, ContextPackage, KeywordRetriever, RecallScope,
    Retriever,
};
pub use registry::{StoreFactoryFn, StoreRegistry, StoreSpec};
pub use sink::{SinkStats, WorkspaceEventSink};
pub use sqlite::{INLINE_READ_MAX, SqliteOptions, SqliteStore};
pub use store::{Store, StoreFuture, stream_read};
pub use types::*;
