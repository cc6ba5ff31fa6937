//! The backend conformance suite (feature `conformance`).
//!
//! One set of checks every [`Store`] must pass; the SQLite and PostgreSQL stores
//! run it in this crate's tests, and a third-party backend runs it by implementing
//! [`StoreFactory`] and invoking [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! fn my_factory() -> futures::future::BoxFuture<'static, Box<dyn StoreFactory>> { … }
//! mod my_backend { agentry_workspace::conformance_tests!(super::my_factory); }
//! ```
//!
//! Each check gets a fresh factory (an isolated, empty backing store); calling
//! [`StoreFactory::open`] twice yields two independent handles on the same data, as
//! two workers would have. Checks assert and therefore panic on failure: this
//! module is test support, which is why panicking is allowed here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use agentry_core::{
    ErrorCode, EventId, EventType, ExecutionId, Level, RunContext, RunKind, RuntimeEvent, Timestamp,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;

use crate::error::WorkspaceError;
use crate::store::{Store, StoreFuture, stream_read};
use crate::types::*;

/// Opens handles on one isolated backing store.
pub trait StoreFactory: Send + Sync {
    /// A new handle on this factory's backing store.
    fn open(&self) -> StoreFuture<'_, Arc<dyn Store>>;
    /// Set when the backend was explicitly disabled for this run (for example by an
    /// environment variable); the check then reports it and passes. Never use it
    /// for "backend unreachable" — that must fail.
    fn skip_reason(&self) -> Option<String> {
        None
    }
    /// Removes the backing store (drop a schema, delete a directory).
    fn teardown(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// One conformance check.
pub type Check = for<'a> fn(&'a dyn StoreFactory) -> BoxFuture<'a, ()>;

/// Makes a fresh factory for one check.
pub type MakeFactory = fn() -> BoxFuture<'static, Box<dyn StoreFactory>>;

/// Runs one check on a fresh factory inside its own runtime, tearing the backing
/// store down even when the check fails.
pub fn run_check(check: Check, make: MakeFactory) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let factory = make().await;
        if let Some(reason) = factory.skip_reason() {
            eprintln!("conformance check skipped: {reason}");
            return;
        }
        let outcome = std::panic::AssertUnwindSafe(check(factory.as_ref()))
            .catch_unwind()
            .await;
        if let Err(e) = factory.teardown().await {
            eprintln!("conformance teardown failed: {e}");
        }
        if let Err(p) = outcome {
            std::panic::resume_unwind(p);
        }
    });
}

/// Generates one `#[test]` per conformance check for a factory function of type
/// [`MakeFactory`].
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            capabilities_are_declared records_put_get records_search links_and_evidence bounded_reads
            snapshots_cas snapshot_retention leases fencing events_idempotency events_query
            runtime_event_roundtrip atomic_commit shared_handles race_cas_tasks race_lease_tasks race_event_appends);
    };
    (@each $make:path; $($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::run_check($crate::conformance::$name, $make);
            }
        )*
    };
}

fn code<T: std::fmt::Debug>(r: Result<T, WorkspaceError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

fn exe(name: &str) -> ExecutionId {
    ExecutionId::parse(format!("exe_{name}_{}", uuid::Uuid::new_v4().simple())).unwrap()
}

/// Capabilities name the backend and claim what the suite then verifies.
pub fn capabilities_are_declared(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let c = s.capabilities();
        assert!(!c.backend.is_empty());
        assert!(
            c.cas && c.leases && c.range_reads && c.retention && c.event_sequencing && c.full_text
        );
        assert!(!c.read_only);
    })
}

/// Text, JSON and binary records round-trip with digest and size.
pub fn records_put_get(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let t = s
            .put(
                NewRecord::new("notes", Content::Text("hello\nworld".into()))
                    .kind("k")
                    .path("a/b.txt")
                    .scope("run_id", "r1"),
            )
            .await
            .unwrap();
        assert_eq!(t.size, 11);
        assert_eq!(t.sha256, sha256_hex(b"hello\nworld"));
        assert_eq!(t.summary, "hello world");
        let got = s.get(&t.id).await.unwrap();
        assert_eq!(got.bytes, b"hello\nworld");
        assert_eq!(got.reference, t);
        assert_eq!(s.get_ref(&t.id).await.unwrap(), t);
        let j = s
            .put(NewRecord::new(
                "data",
                Content::Json(json!({"b": 2, "a": [1, "x"]})),
            ))
            .await
            .unwrap();
        assert_eq!(
            s.get_data(&j.id).await.unwrap(),
            json!({"a": [1, "x"], "b": 2})
        );
        assert_eq!(j.content_type, "application/json");
        let b = s
            .put(NewRecord::new("blobs", Content::Bytes(vec![0, 255, 1])))
            .await
            .unwrap();
        assert_eq!(s.get(&b.id).await.unwrap().bytes, vec![0, 255, 1]);
        assert_eq!(b.summary, "");
        assert_eq!(code(s.get(&RecordId::new()).await), "workspace.not_found");
        assert_eq!(
            code(s.put(NewRecord::new("", Content::Text("x".into()))).await),
            "workspace.invalid_input"
        );
        assert_eq!(
            code(
                s.put(NewRecord::new("c", Content::Text("x".into())).scope("bad.key", 1))
                    .await
            ),
            "workspace.invalid_input"
        );
    })
}

/// Structural filters and the full-text query.
pub fn records_search(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let a = s
            .put(
                NewRecord::new(
                    "obs",
                    Content::Text("The database migration failed on Tuesday".into()),
                )
                .kind("finding")
                .path("db/migrate.sql")
                .scope("execution_id", "e1")
                .meta("severity", 3)
                .meta("reviewed", true),
            )
            .await
            .unwrap();
        let b = s
            .put(
                NewRecord::new("obs", Content::Text("Cache warmed; latency is fine".into()))
                    .kind("note")
                    .scope("execution_id", "e2"),
            )
            .await
            .unwrap();
        let c = s
            .put(
                NewRecord::new(
                    "decisions",
                    Content::Json(json!({"text": "retry the migration later"})),
                )
                .scope("execution_id", "e1"),
            )
            .await
            .unwrap();
        let ids = |v: Vec<RecordRef>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        // No query: newest first.
        assert_eq!(
            ids(s.search(RecordQuery::new()).await.unwrap()),
            vec![c.id.clone(), b.id.clone(), a.id.clone()]
        );
        assert_eq!(
            ids(s
                .search(RecordQuery::new().collection("obs"))
                .await
                .unwrap()),
            vec![b.id.clone(), a.id.clone()]
        );
        assert_eq!(
            ids(s.search(RecordQuery::new().kind("finding")).await.unwrap()),
            vec![a.id.clone()]
        );
        assert_eq!(
            ids(s
                .search(RecordQuery::new().path("db/migrate.sql"))
                .await
                .unwrap()),
            vec![a.id.clone()]
        );
        assert_eq!(
            ids(s.search(RecordQuery::new().id(b.id.clone())).await.unwrap()),
            vec![b.id.clone()]
        );
        assert_eq!(
            ids(s
                .search(RecordQuery::new().scope("execution_id", "e1"))
                .await
                .unwrap()),
            vec![c.id.clone(), a.id.clone()]
        );
        assert_eq!(
            ids(s
                .search(RecordQuery::new().meta("severity", 3))
                .await
                .unwrap()),
            vec![a.id.clone()]
        );
        assert_eq!(
            ids(s
                .search(RecordQuery::new().meta("reviewed", true))
                .await
                .unwrap()),
            vec![a.id.clone()]
        );
        assert!(
            s.search(RecordQuery::new().meta("severity", 4))
                .await
                .unwrap()
                .is_empty()
        );
        // Full text: words from the body, any order, case-insensitive; JSON bodies too.
        let hits = ids(s
            .search(RecordQuery::new().text("MIGRATION"))
            .await
            .unwrap());
        assert_eq!(
            hits.iter().collect::<BTreeSet<_>>(),
            [&a.id, &c.id].into_iter().collect()
        );
        assert_eq!(
            ids(s.search(RecordQuery::new().text("latency")).await.unwrap()),
            vec![b.id.clone()]
        );
        assert_eq!(
            ids(s
                .search(RecordQuery::new().text("migration").collection("decisions"))
                .await
                .unwrap()),
            vec![c.id.clone()]
        );
        assert!(
            s.search(RecordQuery::new().text("nonexistentword"))
                .await
                .unwrap()
                .is_empty()
        );
        // Query syntax never reaches the engine unescaped.
        s.search(RecordQuery::new().text("\"unbalanced * OR ( NEAR"))
            .await
            .unwrap();
        assert_eq!(
            s.search(RecordQuery::new().limit(1)).await.unwrap().len(),
            1
        );
        assert_eq!(
            code(
                s.search(RecordQuery::new().scope("x", json!({"a": 1})))
                    .await
            ),
            "workspace.invalid_input"
        );
    })
}

/// Links, evidence links, artifact refs and envelopes.
pub fn links_and_evidence(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let art = s
            .put_artifact_ref("run-1", json!({"uri": "file:///x"}), Some("report".into()))
            .await
            .unwrap();
        assert_eq!(art.collection, "artifacts");
        assert_eq!(art.scope.get("run_id"), Some(&json!("run-1")));
        let env = s.ref_envelope(&art.id).await.unwrap();
        assert_eq!(
            (env.digest.as_str(), env.size),
            (art.sha256.as_str(), art.size)
        );
        assert_eq!(env.backend, s.capabilities().backend);
        let l1 = s
            .link(NewLink::new("rec_a", "rec_b", "derived_from"))
            .await
            .unwrap();
        let ev = Evidence {
            execution_id: Some("exe_1".into()),
            event_id: Some("evt_9".into()),
            snapshot: Some(("run-1".into(), StateVersion(2))),
            artifacts: vec![env.clone()],
        };
        let l2 = s
            .link_evidence(NewLink::new("rec_b", "rec_c", "supports"), ev.clone())
            .await
            .unwrap();
        assert_eq!(
            s.links(LinkQuery::default()).await.unwrap(),
            vec![l1.clone(), l2.clone()]
        );
        assert_eq!(
            s.links(LinkQuery {
                either: Some("rec_b".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
            2
        );
        assert_eq!(
            s.links(LinkQuery {
                source: Some("rec_b".into()),
                ..Default::default()
            })
            .await
            .unwrap(),
            vec![l2.clone()]
        );
        assert_eq!(
            s.links(LinkQuery {
                target: Some("rec_b".into()),
                relation: Some("derived_from".into()),
                ..Default::default()
            })
            .await
            .unwrap(),
            vec![l1]
        );
        let stored: Evidence = serde_json::from_value(l2.meta["evidence"].clone()).unwrap();
        assert_eq!(stored, ev);
    })
}

/// Bounded reads and streams never split a character and reassemble exactly.
pub fn bounded_reads(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let text: String = "aé漢😀 ".repeat(300);
        let r = s
            .put(NewRecord::new("big", Content::Text(text.clone())))
            .await
            .unwrap();
        for chunk in [1u64, 2, 3, 5, 7, 64] {
            let mut off = 0;
            let mut out = String::new();
            loop {
                let piece = s.read_bounded(&r.id, off, chunk).await.unwrap();
                assert_eq!(piece.total_size, text.len() as u64);
                assert_eq!(piece.digest, r.sha256);
                out.push_str(piece.text().expect("whole characters"));
                off = piece.next_offset;
                if piece.eof {
                    break;
                }
            }
            assert_eq!(out, text, "chunk {chunk}");
        }
        // An offset inside a character moves forward to the next boundary.
        let mid = s.read_bounded(&r.id, 2, 4).await.unwrap();
        assert_eq!(mid.offset, 3);
        assert!(mid.text().is_some());
        let past = s
            .read_bounded(&r.id, 10 * text.len() as u64, 10)
            .await
            .unwrap();
        assert!(past.eof && past.bytes.is_empty());
        assert_eq!(
            code(s.read_bounded(&r.id, 0, 0).await),
            "workspace.invalid_input"
        );
        let streamed: Vec<BoundedRead> =
            futures::StreamExt::collect::<Vec<_>>(stream_read(s.clone(), r.id.clone(), 0, 100))
                .await
                .into_iter()
                .map(|p| p.unwrap())
                .collect();
        let joined: Vec<u8> = streamed.iter().flat_map(|p| p.bytes.clone()).collect();
        assert_eq!(joined, text.as_bytes());
        let bin = s
            .put(NewRecord::new("b", Content::Bytes((0..=255u8).collect())))
            .await
            .unwrap();
        let p = s.read_bounded(&bin.id, 250, 100).await.unwrap();
        assert_eq!(p.bytes, (250..=255u8).collect::<Vec<_>>());
        assert!(p.eof);
    })
}

/// Compare-and-set on snapshots; the store owns the version counter.
pub fn snapshots_cas(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        assert!(s.get_snapshot("r", None).await.unwrap().is_none());
        let m1 = s
            .put_snapshot(NewSnapshot::new("r", json!({"n": 1}), StateVersion::ZERO).step("s1"))
            .await
            .unwrap();
        assert_eq!(m1.state_version, StateVersion(1));
        let err = s
            .put_snapshot(NewSnapshot::new("r", json!({"n": 99}), StateVersion::ZERO))
            .await
            .unwrap_err();
        match &err {
            WorkspaceError::CasConflict {
                expected, current, ..
            } => {
                assert_eq!((*expected, *current), (StateVersion(0), StateVersion(1)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.code(), "workspace.cas_conflict");
        assert_eq!(
            code(
                s.put_snapshot(NewSnapshot::new("r", json!({}), StateVersion(5)))
                    .await
            ),
            "workspace.cas_conflict"
        );
        let m2 = s
            .put_snapshot(NewSnapshot::new("r", json!({"n": 2}), StateVersion(1)).schema_version(3))
            .await
            .unwrap();
        assert_eq!(m2.state_version, StateVersion(2));
        let latest = s.get_snapshot("r", None).await.unwrap().unwrap();
        assert_eq!(
            (latest.state.clone(), latest.meta.schema_version),
            (json!({"n": 2}), 3)
        );
        assert_eq!(
            latest.meta.digest,
            sha256_hex(canonical_json(&json!({"n": 2})).as_bytes())
        );
        assert_eq!(
            code(latest.state_for(2)),
            "workspace.snapshot_schema_too_new"
        );
        assert!(latest.state_for(3).is_ok());
        let first = s
            .get_snapshot("r", Some(StateVersion(1)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.state, first.meta.step_id),
            (json!({"n": 1}), Some("s1".into()))
        );
        // Checkpoints append after whatever the head is.
        let c = s
            .put_checkpoint("r", Some("s3"), json!({"n": 3}))
            .await
            .unwrap();
        assert_eq!(c.state_version, StateVersion(3));
        let hist: Vec<u64> = s
            .snapshot_history("r", None)
            .await
            .unwrap()
            .iter()
            .map(|m| m.state_version.0)
            .collect();
        assert_eq!(hist, vec![3, 2, 1]);
        assert_eq!(s.snapshot_history("r", Some(1)).await.unwrap().len(), 1);
        // Nothing written by the failed attempts.
        assert!(
            s.snapshot_history("r", None)
                .await
                .unwrap()
                .iter()
                .all(|m| m.digest != sha256_hex(b"{\"n\":99}"))
        );
    })
}

/// Retention keeps the newest N and never the head's counter back.
pub fn snapshot_retention(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        for i in 0..5u64 {
            s.put_snapshot(NewSnapshot::new("keep", json!({"i": i}), StateVersion(i)))
                .await
                .unwrap();
        }
        let m = s
            .put_snapshot(NewSnapshot::new("keep", json!({"i": 5}), StateVersion(5)).keep_last(3))
            .await
            .unwrap();
        assert_eq!(m.state_version, StateVersion(6));
        let hist: Vec<u64> = s
            .snapshot_history("keep", None)
            .await
            .unwrap()
            .iter()
            .map(|m| m.state_version.0)
            .collect();
        assert_eq!(hist, vec![6, 5, 4]);
        let p = s.prune_snapshots("keep", 1).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                retained: 1,
                deleted: 2
            }
        );
        assert_eq!(
            code(s.prune_snapshots("keep", 0).await),
            "workspace.invalid_input"
        );
        // The counter continues after pruning.
        let m = s
            .put_snapshot(NewSnapshot::new("keep", json!({}), StateVersion(6)))
            .await
            .unwrap();
        assert_eq!(m.state_version, StateVersion(7));
        s.put_snapshot(NewSnapshot::new("other", json!({}), StateVersion(0)))
            .await
            .unwrap();
        let heads = s.list_snapshot_heads(None).await.unwrap();
        assert_eq!(
            heads,
            vec![
                SnapshotHead {
                    run_id: "keep".into(),
                    state_version: StateVersion(7),
                    retained: 2
                },
                SnapshotHead {
                    run_id: "other".into(),
                    state_version: StateVersion(1),
                    retained: 1
                },
            ]
        );
        // Other runs are untouched by pruning.
        assert_eq!(s.snapshot_history("other", None).await.unwrap().len(), 1);
    })
}

/// Claim, heartbeat, release, expiry; tokens only grow.
pub fn leases(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        assert!(s.get_lease("k").await.unwrap().is_none());
        let a = s.claim_lease("k", "a", 30_000).await.unwrap();
        assert_eq!((a.owner.as_str(), a.released), ("a", false));
        assert_eq!(
            code(s.claim_lease("k", "b", 30_000).await),
            "workspace.lease_held"
        );
        let a2 = s.claim_lease("k", "a", 30_000).await.unwrap();
        assert!(a2.token > a.token, "a re-claim gets a new token");
        assert_eq!(
            code(s.heartbeat_lease(&a.fence(), "a").await),
            "workspace.lease_stale_token"
        );
        let hb = s.heartbeat_lease(&a2.fence(), "a").await.unwrap();
        assert!(hb.expires_at >= a2.expires_at);
        assert_eq!(
            code(s.heartbeat_lease(&a2.fence(), "b").await),
            "workspace.lease_held"
        );
        assert_eq!(
            code(s.release_lease(&a.fence(), "a").await),
            "workspace.lease_stale_token"
        );
        s.release_lease(&a2.fence(), "a").await.unwrap();
        assert_eq!(
            code(s.heartbeat_lease(&a2.fence(), "a").await),
            "workspace.lease_not_active"
        );
        let b = s.claim_lease("k", "b", 200).await.unwrap();
        assert!(b.token > a2.token);
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            code(s.heartbeat_lease(&b.fence(), "b").await),
            "workspace.lease_expired"
        );
        let c = s.claim_lease("k", "c", 30_000).await.unwrap();
        assert!(c.token > b.token, "an expired lease can be taken over");
        assert_eq!(s.get_lease("k").await.unwrap().unwrap().owner, "c");
        assert_eq!(
            code(s.claim_lease("k", "", 10).await),
            "workspace.invalid_input"
        );
        assert_eq!(
            code(s.claim_lease("k", "x", 0).await),
            "workspace.invalid_input"
        );
        assert_eq!(
            code(s.claim_lease("k", "x", MAX_LEASE_TTL_MS + 1).await),
            "workspace.invalid_input"
        );
        assert_eq!(
            code(
                s.heartbeat_lease(
                    &Fence {
                        key: "none".into(),
                        token: FencingToken(1)
                    },
                    "x"
                )
                .await
            ),
            "workspace.lease_not_active"
        );
        s.claim_lease("j", "z", 1000).await.unwrap();
        let keys: Vec<String> = s
            .list_leases(None)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(keys, vec!["j".to_owned(), "k".to_owned()]);
    })
}

/// Writes under a lease must carry its current token; stale or expired fences
/// write nothing.
pub fn fencing(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let old = s.claim_lease("run", "w1", 30_000).await.unwrap();
        s.put_snapshot(
            NewSnapshot::new("run", json!({"by": "w1"}), StateVersion(0)).fenced(old.fence()),
        )
        .await
        .unwrap();
        // Without the fence, a leased run refuses snapshot writes.
        assert_eq!(
            code(
                s.put_snapshot(NewSnapshot::new("run", json!({}), StateVersion(1)))
                    .await
            ),
            "workspace.lease_required"
        );
        assert_eq!(
            code(s.put_checkpoint("run", None, json!({})).await),
            "workspace.lease_required"
        );
        // w1 releases, w2 takes over: w1's token is now stale.
        s.release_lease(&old.fence(), "w1").await.unwrap();
        let new = s.claim_lease("run", "w2", 30_000).await.unwrap();
        let stale = s
            .put_snapshot(
                NewSnapshot::new("run", json!({"by": "w1"}), StateVersion(1)).fenced(old.fence()),
            )
            .await;
        assert_eq!(code(stale), "workspace.lease_stale_token");
        assert_eq!(
            s.get_snapshot("run", None)
                .await
                .unwrap()
                .unwrap()
                .meta
                .state_version,
            StateVersion(1)
        );
        let e = exe("fence");
        let mut ev = EventAppend::new(e.clone(), "k1", "step.completed", json!({}));
        ev.fence = Some(old.fence());
        assert_eq!(
            code(s.append(ev.clone()).await),
            "workspace.lease_stale_token"
        );
        assert!(
            s.query_events(EventQuery::new(e.as_str()))
                .await
                .unwrap()
                .is_empty()
        );
        ev.fence = Some(new.fence());
        assert_eq!(s.append(ev).await.unwrap().seq, 1);
        s.put_snapshot(
            NewSnapshot::new("run", json!({"by": "w2"}), StateVersion(1)).fenced(new.fence()),
        )
        .await
        .unwrap();
        // An expired lease fences nothing.
        let short = s.claim_lease("run2", "w3", 150).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = s
            .put_snapshot(
                NewSnapshot::new("run2", json!({}), StateVersion(0)).fenced(short.fence()),
            )
            .await;
        assert_eq!(code(r), "workspace.lease_expired");
        // Once expired, the run is no longer leased: an unfenced write is accepted.
        s.put_snapshot(NewSnapshot::new("run2", json!({}), StateVersion(0)))
            .await
            .unwrap();
    })
}

/// Idempotency keys: same payload returns the original, different payload
/// conflicts; batches are atomic; sequences are gap-free.
pub fn events_idempotency(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let e = exe("idem");
        let a1 = s
            .append(EventAppend::new(
                e.clone(),
                "k1",
                "t.started",
                json!({"x": 1, "y": 2}),
            ))
            .await
            .unwrap();
        assert_eq!((a1.seq, a1.duplicate), (1, false));
        // Same key, same payload (key order irrelevant): the original.
        let again = s
            .append(EventAppend::new(
                e.clone(),
                "k1",
                "t.started",
                json!({"y": 2, "x": 1}),
            ))
            .await
            .unwrap();
        assert_eq!((again.seq, again.duplicate), (1, true));
        let conflict = s
            .append(EventAppend::new(
                e.clone(),
                "k1",
                "t.started",
                json!({"x": 2}),
            ))
            .await;
        assert_eq!(code(conflict), "workspace.idempotency_conflict");
        // A batch with a conflicting member stores nothing.
        let batch = vec![
            EventAppend::new(e.clone(), "k2", "t.a", json!(2)),
            EventAppend::new(e.clone(), "k1", "t.started", json!("different")),
        ];
        assert_eq!(
            code(s.append_batch(batch).await),
            "workspace.idempotency_conflict"
        );
        assert_eq!(
            s.query_events(EventQuery::new(e.as_str()))
                .await
                .unwrap()
                .len(),
            1
        );
        let batch: Vec<EventAppend> = (2..=50)
            .map(|i| EventAppend::new(e.clone(), format!("k{i}"), "t.step", json!({"i": i})))
            .collect();
        let done = s.append_batch(batch).await.unwrap();
        assert_eq!(
            done.iter().map(|a| a.seq).collect::<Vec<_>>(),
            (2..=50).collect::<Vec<_>>()
        );
        // Another execution has its own sequence.
        let other = s
            .append(EventAppend::new(exe("other"), "k1", "t", json!(null)))
            .await
            .unwrap();
        assert_eq!(other.seq, 1);
        let seqs: Vec<u64> = s
            .query_events(EventQuery::new(e.as_str()))
            .await
            .unwrap()
            .iter()
            .map(|x| x.seq)
            .collect();
        assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
        assert_eq!(
            code(
                s.append(EventAppend::new(e.clone(), "", "t", json!(1)))
                    .await
            ),
            "workspace.invalid_input"
        );
        // Keys repeated inside one batch, and batches spanning executions.
        let (x, y) = (exe("x"), exe("y"));
        let mixed = vec![
            EventAppend::new(x.clone(), "a", "t", json!(1)),
            EventAppend::new(y.clone(), "a", "t", json!(1)),
            EventAppend::new(x.clone(), "b", "t", json!(2)),
            EventAppend::new(x.clone(), "a", "t", json!(1)),
        ];
        let got: Vec<(String, u64, bool)> = s
            .append_batch(mixed)
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.execution_id, a.seq, a.duplicate))
            .collect();
        assert_eq!(
            got,
            vec![
                (x.to_string(), 1, false),
                (y.to_string(), 1, false),
                (x.to_string(), 2, false),
                (x.to_string(), 1, true),
            ]
        );
        let clash = vec![
            EventAppend::new(x.clone(), "c", "t", json!(1)),
            EventAppend::new(x.clone(), "c", "t", json!(2)),
        ];
        assert_eq!(
            code(s.append_batch(clash).await),
            "workspace.idempotency_conflict"
        );
        assert_eq!(
            s.query_events(EventQuery::new(x.as_str()))
                .await
                .unwrap()
                .len(),
            2
        );
    })
}

/// Range queries by sequence, time and type.
pub fn events_query(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let e = exe("q");
        let types = [
            "model.requesting",
            "model.completed",
            "action.started",
            "action.completed",
        ];
        let batch: Vec<EventAppend> = (0..20)
            .map(|i| {
                let mut a =
                    EventAppend::new(e.clone(), format!("k{i}"), types[i % 4], json!({"i": i}));
                a.at = Timestamp::from_millis(1_000 + i as i64 * 10);
                a
            })
            .collect();
        s.append_batch(batch).await.unwrap();
        let seqs = |v: Vec<StoredEvent>| v.iter().map(|x| x.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(
                s.query_events(EventQuery::new(e.as_str()).seq(5, 8))
                    .await
                    .unwrap()
            ),
            vec![5, 6, 7, 8]
        );
        let by_time = EventQuery::new(e.as_str())
            .at(Timestamp::from_millis(1_050), Timestamp::from_millis(1_070));
        assert_eq!(seqs(s.query_events(by_time).await.unwrap()), vec![6, 7, 8]);
        let by_type = s
            .query_events(EventQuery::new(e.as_str()).event_type("action.started"))
            .await
            .unwrap();
        assert_eq!(seqs(by_type), vec![3, 7, 11, 15, 19]);
        let prefix = s
            .query_events(EventQuery::new(e.as_str()).type_prefix("model.").limit(3))
            .await
            .unwrap();
        assert_eq!(seqs(prefix), vec![1, 2, 5]);
        let first = &s
            .query_events(EventQuery::new(e.as_str()).seq(1, 1))
            .await
            .unwrap()[0];
        assert_eq!(
            (first.event_type.as_str(), first.body.clone(), first.at),
            (
                "model.requesting",
                json!({"i": 0}),
                Timestamp::from_millis(1_000)
            )
        );
        let logs = s.list_event_logs(None).await.unwrap();
        assert!(logs.contains(&EventLogHead {
            execution_id: e.to_string(),
            last_seq: 20
        }));
    })
}

/// A RuntimeEvent survives the round trip and is idempotent by event id.
pub fn runtime_event_roundtrip(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let e = exe("rt");
        let mut run = (*RunContext::root(RunKind::AGENT_EXECUTION)).clone();
        run.execution_id = Some(e.clone());
        let ev = RuntimeEvent {
            event_id: EventId::parse("evt-rt-1").unwrap(),
            seq: 1,
            event_type: EventType::MODEL_COMPLETED,
            at: Timestamp::now(),
            run: Arc::new(run),
            source: "ModelRequest".into(),
            level: Level::Info,
            message: Some("done".into()),
            payload: json!({"tokens": 12}),
            error: None,
            meta: Default::default(),
        };
        let a = s
            .append(EventAppend::from_runtime_event(&ev).unwrap())
            .await
            .unwrap();
        let b = s
            .append(EventAppend::from_runtime_event(&ev).unwrap())
            .await
            .unwrap();
        assert!(!a.duplicate && b.duplicate && a.seq == b.seq);
        let stored = s.query_events(EventQuery::new(e.as_str())).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].idempotency_key, "evt-rt-1");
        assert_eq!(stored[0].runtime_event().unwrap(), ev);
    })
}

/// A batch commits its snapshot, events and records together or not at all.
pub fn atomic_commit(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let s = f.open().await.unwrap();
        let e = exe("commit");
        let lease = s.claim_lease("step-run", "w1", 30_000).await.unwrap();
        let batch = |expected: u64, keys: &[&str], note: &str| WriteBatch {
            fence: Some(lease.fence()),
            snapshot: Some(NewSnapshot::new(
                "step-run",
                json!({ "note": note }),
                StateVersion(expected),
            )),
            events: keys
                .iter()
                .map(|k| EventAppend::new(e.clone(), *k, "step.completed", json!({ "k": k })))
                .collect(),
            records: vec![
                NewRecord::new("results", Content::Text(format!("result {note}")))
                    .scope("run_id", "step-run"),
            ],
        };
        let done = s.commit(batch(0, &["a", "b"], "first")).await.unwrap();
        assert_eq!(done.snapshot.unwrap().state_version, StateVersion(1));
        assert_eq!(
            done.events.iter().map(|a| a.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(done.records.len(), 1);
        let results = |s: Arc<dyn Store>| async move {
            s.search(RecordQuery::new().collection("results"))
                .await
                .unwrap()
                .len()
        };
        // A lost CAS writes none of the batch's events or records.
        assert_eq!(
            code(s.commit(batch(0, &["c"], "stale")).await),
            "workspace.cas_conflict"
        );
        assert_eq!(
            s.query_events(EventQuery::new(e.as_str()))
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(results(s.clone()).await, 1);
        // A conflicting event writes no snapshot.
        let mut bad = batch(1, &["d"], "second");
        bad.events.push(EventAppend::new(
            e.clone(),
            "a",
            "step.completed",
            json!("other"),
        ));
        assert_eq!(code(s.commit(bad).await), "workspace.idempotency_conflict");
        assert_eq!(
            s.get_snapshot("step-run", None)
                .await
                .unwrap()
                .unwrap()
                .meta
                .state_version,
            StateVersion(1)
        );
        assert_eq!(
            s.query_events(EventQuery::new(e.as_str()))
                .await
                .unwrap()
                .len(),
            2
        );
        // A stale batch fence writes nothing at all.
        let lease2 = s.claim_lease("step-run", "w1", 30_000).await.unwrap();
        let mut stale = batch(1, &["e"], "third");
        stale.snapshot = None;
        assert_eq!(code(s.commit(stale).await), "workspace.lease_stale_token");
        assert_eq!(results(s.clone()).await, 1);
        // The current holder commits; a replayed step is recognised by its keys.
        let mut ok = batch(1, &["a", "f"], "fourth");
        ok.fence = Some(lease2.fence());
        let done = s.commit(ok).await.unwrap();
        assert_eq!(
            done.events
                .iter()
                .map(|a| (a.seq, a.duplicate))
                .collect::<Vec<_>>(),
            vec![(1, true), (3, false)]
        );
        assert_eq!(results(s.clone()).await, 2);
    })
}

/// Two handles on one backing store see each other's writes.
pub fn shared_handles(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let a = f.open().await.unwrap();
        let b = f.open().await.unwrap();
        let r = a
            .put(NewRecord::new(
                "shared",
                Content::Text("seen by both".into()),
            ))
            .await
            .unwrap();
        assert_eq!(b.get(&r.id).await.unwrap().reference, r);
        a.put_snapshot(NewSnapshot::new("run", json!(1), StateVersion(0)))
            .await
            .unwrap();
        assert_eq!(
            code(
                b.put_snapshot(NewSnapshot::new("run", json!(2), StateVersion(0)))
                    .await
            ),
            "workspace.cas_conflict"
        );
        let l = b.claim_lease("key", "b", 30_000).await.unwrap();
        assert_eq!(
            code(a.claim_lease("key", "a", 30_000).await),
            "workspace.lease_held"
        );
        assert_eq!(a.get_lease("key").await.unwrap().unwrap().token, l.token);
    })
}

const RACERS: usize = 12;

/// N tasks on N handles race one CAS: exactly one wins.
pub fn race_cas_tasks(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let mut handles = Vec::new();
        for _ in 0..RACERS {
            handles.push(f.open().await.unwrap());
        }
        for round in 0..3u64 {
            let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
            let tasks: Vec<_> = handles
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let s = s.clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        s.put_snapshot(NewSnapshot::new(
                            "race",
                            json!({"winner": i}),
                            StateVersion(round),
                        ))
                        .await
                    })
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(m) => {
                        assert_eq!(m.state_version, StateVersion(round + 1));
                        wins += 1;
                    }
                    Err(e) => assert_eq!(e.code(), "workspace.cas_conflict", "{e}"),
                }
            }
            assert_eq!(wins, 1, "round {round}");
        }
        assert_eq!(
            handles[0]
                .snapshot_history("race", None)
                .await
                .unwrap()
                .len(),
            3
        );
    })
}

/// N tasks on N handles race one lease: exactly one wins, and tokens are unique.
pub fn race_lease_tasks(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let mut handles = Vec::new();
        for _ in 0..RACERS {
            handles.push(f.open().await.unwrap());
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
        let tasks: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = s.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.claim_lease("contended", &format!("worker-{i}"), 30_000)
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(l) => winners.push(l),
                Err(e) => assert_eq!(e.code(), "workspace.lease_held", "{e}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(
            handles[0].get_lease("contended").await.unwrap().unwrap(),
            winners[0]
        );
    })
}

/// Concurrent appends to one execution from many handles stay gap-free.
pub fn race_event_appends(f: &dyn StoreFactory) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let e = exe("race");
        let mut tasks = Vec::new();
        for w in 0..8 {
            let s = f.open().await.unwrap();
            let e = e.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    // Every worker also re-sends worker 0's keys: duplicates, not new events.
                    s.append(EventAppend::new(
                        e.clone(),
                        format!("w{w}-{i}"),
                        "t",
                        json!({"w": w, "i": i}),
                    ))
                    .await
                    .unwrap();
                    let d = s
                        .append(EventAppend::new(
                            e.clone(),
                            format!("w0-{i}"),
                            "t",
                            json!({"w": 0, "i": i}),
                        ))
                        .await;
                    d.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = f.open().await.unwrap();
        let all = s.query_events(EventQuery::new(e.as_str())).await.unwrap();
        assert_eq!(
            all.iter().map(|x| x.seq).collect::<Vec<_>>(),
            (1..=200).collect::<Vec<_>>()
        );
        let keys: BTreeSet<&str> = all.iter().map(|x| x.idempotency_key.as_str()).collect();
        assert_eq!(keys.len(), 200);
    })
}

/// One contender of a cross-process race (run it in N processes on one backing
/// store at the same instant): tries the snapshot CAS and the lease claim every
/// contender tries, and reports `RESULT cas=<ok|code> lease=<ok|code>`.
pub async fn race_contender(store: &dyn Store, me: &str) -> String {
    let word = |r: Result<(), WorkspaceError>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.code().to_owned(),
    };
    let cas = store
        .put_snapshot(NewSnapshot::new(
            "process-race",
            json!({ "by": me }),
            StateVersion(0),
        ))
        .await
        .map(|_| ());
    let lease = store
        .claim_lease("process-race-lock", me, 60_000)
        .await
        .map(|_| ());
    format!("RESULT cas={} lease={}", word(cas), word(lease))
}

/// Checks the outputs of all contenders (each containing a `RESULT` line from
/// [`race_contender`]): exactly one won each race, every other lost it with the
/// conflict code.
pub fn assert_single_winners(outputs: &[String]) {
    let mut cas_ok = 0;
    let mut lease_ok = 0;
    for out in outputs {
        // A test harness may print other text on the same line, so look anywhere.
        let line = out
            .lines()
            .find_map(|l| l.find("RESULT ").map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no RESULT line in {out:?}"));
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned()
        };
        match field("cas=").as_str() {
            "ok" => cas_ok += 1,
            other => assert_eq!(other, "workspace.cas_conflict"),
        }
        match field("lease=").as_str() {
            "ok" => lease_ok += 1,
            other => assert_eq!(other, "workspace.lease_held"),
        }
    }
    assert_eq!(
        (cas_ok, lease_ok),
        (1, 1),
        "exactly one contender wins each race"
    );
}
