//! Recall, the EventCenter sink, the registry and the listing functions.
use std::sync::Arc;

use agentry_core::{
    ErrorCode, EventCenter, EventType, ExecutionId, HookOptions, NewEvent, RunContext, RunKind,
};
use agentry_workspace::recall::{CandidateSource, ItemRef};
use agentry_workspace::{
    Budget, Content, EventQuery, NewRecord, RecallScope, RecordQuery, SqliteStore, Store,
    StoreFactoryFn, StoreRegistry, Workspace,
};
use serde_json::json;

#[tokio::test]
async fn recall_builds_a_bounded_package_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("NOTES.md"),
        "The deploy pipeline uses a blue/green switch.",
    )
    .unwrap();
    let ws = Workspace::open(dir.path()).build().unwrap();
    let long = format!("deploy failure analysis: {}", "details ".repeat(2_000));
    ws.put(NewRecord::new("obs", Content::Text(long)).scope("session", "s1"))
        .await
        .unwrap();
    ws.put(
        NewRecord::new("obs", Content::Text("deploy succeeded after retry".into()))
            .scope("session", "s1"),
    )
    .await
    .unwrap();
    ws.put(
        NewRecord::new("obs", Content::Text("deploy in another session".into()))
            .scope("session", "s2"),
    )
    .await
    .unwrap();
    ws.put(
        NewRecord::new("obs", Content::Bytes(vec![1, 2, 3]))
            .summary("deploy binary")
            .scope("session", "s1"),
    )
    .await
    .unwrap();
    let scope = RecallScope {
        records: RecordQuery::new().scope("session", "s1"),
        files: vec!["NOTES.md".into(), "missing.md".into()],
    };
    let budget = Budget {
        chars: 1_000,
        item_chars: 600,
        max_candidates: 10,
    };
    let pack = ws.build_context("deploy", &scope, budget).await.unwrap();
    assert!(
        pack.diagnostics.used_chars <= 1_000 + 40,
        "{}",
        pack.diagnostics.used_chars
    );
    assert_eq!(pack.diagnostics.retriever, "keyword");
    assert!(!pack.items.is_empty());
    assert!(pack.items.iter().all(|i| !i.why.is_empty()));
    assert!(
        pack.items.iter().any(|i| i.truncated),
        "the long record is excerpted"
    );
    assert!(
        pack.items
            .iter()
            .all(|i| !i.content.contains("another session")),
        "scope is respected"
    );
    assert!(
        pack.items
            .iter()
            .any(|i| matches!(&i.reference, ItemRef::File { file } if file.path == "NOTES.md"))
            || pack.omitted.iter().any(|o| o.id == "NOTES.md")
    );
    assert!(pack.omitted.iter().any(|o| o.reason == "binary"));
    assert!(
        pack.omitted
            .iter()
            .any(|o| o.id == "missing.md" && o.reason == "unreadable")
    );
    // A tiny budget keeps what fits and records the rest as omitted for budget.
    let small = ws
        .build_context(
            "deploy",
            &scope,
            Budget {
                chars: 250,
                item_chars: 250,
                max_candidates: 10,
            },
        )
        .await
        .unwrap();
    assert!(!small.items.is_empty() && small.items.len() < pack.items.len());
    assert!(small.diagnostics.used_chars <= 250);
    assert!(small.omitted.iter().any(|o| o.reason == "budget"));
    // The package serialises for hosts.
    let v = serde_json::to_value(&pack).unwrap();
    assert!(v["items"][0]["why"].is_string());
}

#[derive(Debug)]
struct FixedRetriever;

impl agentry_workspace::Retriever for FixedRetriever {
    fn name(&self) -> &str {
        "fixed"
    }
    fn retrieve<'a>(
        &'a self,
        ws: &'a Workspace,
        _goal: &'a str,
        _scope: &'a RecallScope,
        _max: u32,
    ) -> agentry_workspace::StoreFuture<'a, Vec<agentry_workspace::Candidate>> {
        Box::pin(async move {
            let r = ws.search(RecordQuery::new().kind("pinned")).await?;
            Ok(r.into_iter()
                .map(|r| agentry_workspace::Candidate {
                    source: CandidateSource::Record {
                        reference: Box::new(r),
                    },
                    score: 1.0,
                    why: "pinned".into(),
                })
                .collect())
        })
    }
}

#[tokio::test]
async fn recall_retriever_is_pluggable() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).build().unwrap();
    ws.put(NewRecord::new("m", Content::Text("always include me".into())).kind("pinned"))
        .await
        .unwrap();
    let pack = ws
        .build_context_with(
            &FixedRetriever,
            "unrelated",
            &RecallScope::default(),
            Budget::default(),
        )
        .await
        .unwrap();
    assert_eq!(pack.items.len(), 1);
    assert_eq!(pack.items[0].why, "pinned");
    assert_eq!(pack.diagnostics.retriever, "fixed");
}

#[tokio::test]
async fn event_sink_persists_runtime_events_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).build().unwrap();
    let sink = ws.event_sink();
    let center = EventCenter::new();
    center
        .register(HookOptions::new("workspace"), sink.clone())
        .unwrap();
    let emitter = center.emitter("exe-test");
    let exe = ExecutionId::new();
    let mut run = (*RunContext::root(RunKind::AGENT_EXECUTION)).clone();
    run.execution_id = Some(exe.clone());
    let run = Arc::new(run);
    let mut emitted = Vec::new();
    for i in 0..5 {
        emitted.push(
            emitter
                .emit(
                    &run,
                    NewEvent::new(EventType::MODEL_COMPLETED).payload(json!({"i": i})),
                )
                .await,
        );
    }
    // An event outside any execution is skipped, not stored.
    emitter
        .emit(
            &RunContext::root(RunKind::REQUEST),
            NewEvent::new(EventType::REQUEST_STARTED),
        )
        .await;
    center.flush().await;
    // Redelivery is recognised by event id.
    let again = sink.persist(&emitted[2]).await.unwrap().unwrap();
    assert!(again.duplicate);
    let stats = sink.stats();
    assert_eq!((stats.stored, stats.duplicates, stats.skipped), (5, 1, 1));
    let stored = ws.list_events(EventQuery::new(exe.as_str())).await.unwrap();
    assert_eq!(stored.len(), 5);
    for (s, e) in stored.iter().zip(&emitted) {
        assert_eq!(s.runtime_event().unwrap(), **e);
        assert_eq!(s.idempotency_key, e.event_id.as_str());
    }
    let logs = ws.list_event_logs(None).await.unwrap();
    assert_eq!(logs[0].last_seq, 5);
    // Listings serialise for the CLI.
    serde_json::to_string(&stored).unwrap();
    serde_json::to_string(&ws.list_records(RecordQuery::new()).await.unwrap()).unwrap();
    serde_json::to_string(&ws.list_snapshots(None).await.unwrap()).unwrap();
    serde_json::to_string(&ws.list_leases(None).await.unwrap()).unwrap();
}

#[tokio::test]
async fn registry_selects_backends_by_scheme_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let registry = StoreRegistry::with_builtins();
    let db = dir.path().join("custom.db");
    let db2 = db.clone();
    // A custom backend registered by name (here it wraps SQLite at a fixed path).
    let factory: StoreFactoryFn = Arc::new(move |_spec| {
        let db = db2.clone();
        Box::pin(async move { Ok(Arc::new(SqliteStore::open_path(db).await?) as Arc<dyn Store>) })
    });
    registry.register("memoryish", factory.clone()).unwrap();
    assert_eq!(
        registry.register("memoryish", factory).unwrap_err().code(),
        "workspace.duplicate_backend"
    );
    let ws = Workspace::open(dir.path())
        .registry(registry.clone())
        .store_url("memoryish")
        .build()
        .unwrap();
    ws.put(NewRecord::new("c", Content::Text("x".into())))
        .await
        .unwrap();
    assert!(db.exists());
    assert!(!dir.path().join(".agentry").exists());
    // By URL scheme.
    let url = format!("sqlite://{}", dir.path().join("by-url.db").display());
    let s = registry.open(&url, None).await.unwrap();
    assert_eq!(s.capabilities().backend, "sqlite");
    let bad = Workspace::open(dir.path())
        .store_url("mongodb://x")
        .build()
        .unwrap();
    assert_eq!(
        bad.put(NewRecord::new("c", Content::Text("x".into())))
            .await
            .unwrap_err()
            .code(),
        "workspace.unknown_backend"
    );
}

#[tokio::test]
async fn postgres_workspace_by_url() {
    let Some(pg) = crate::common::pg_store().await else {
        return;
    };
    let url = format!("{}?schema={}", crate::common::pg_base_url(), pg.schema());
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).store_url(url).build().unwrap();
    let r = ws
        .put(NewRecord::new("c", Content::Text("on postgres".into())))
        .await
        .unwrap();
    assert_eq!(pg.get(&r.id).await.unwrap().bytes, b"on postgres");
    assert!(ws.info().store.unwrap().distributed);
    pg.drop_schema().await.unwrap();
}
