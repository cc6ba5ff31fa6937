use agentry::workspace::{EventQuery, LinkQuery, RecordQuery, Workspace, WorkspaceMode};
use agentry::{ErrorCode, RecordOptions, Runtime};
use serde_json::json;

fn workspace(dir: &std::path::Path) -> Workspace {
    Workspace::open(dir)
        .mode(WorkspaceMode::ReadWrite)
        .build()
        .unwrap()
}

#[tokio::test]
async fn events_are_persisted_and_the_execution_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path());
    let runtime = Runtime::builder()
        .test_model()
        .workspace(ws.clone())
        .build()
        .unwrap();
    let execution = runtime
        .agent("recorder")
        .input("remember this")
        .start()
        .unwrap();
    execution.text().await.unwrap();
    let written = execution
        .record_workspace(
            RecordOptions::new("observations")
                .checkpoint(true)
                .step_id("final"),
        )
        .await
        .unwrap();
    runtime.shutdown().await;

    // Every event of the execution is in the store, gap-free, in order.
    let stored = ws
        .list_events(EventQuery::new(execution.id().to_string()))
        .await
        .unwrap();
    let count = execution.meta().await.event_count;
    assert!(
        stored.len() as u64 >= count,
        "{} stored, {count} emitted",
        stored.len()
    );
    let seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=stored.len() as u64).collect::<Vec<_>>());

    // The observation record, the checkpoint and the evidence link between them.
    let record = ws.get_data(&written.record.id).await.unwrap();
    assert_eq!(record["execution_id"], execution.id().to_string());
    assert_eq!(record["status"], "success");
    let found = ws
        .list_records(RecordQuery::new().text("remember"))
        .await
        .unwrap();
    assert!(
        found.iter().any(|r| r.id == written.record.id),
        "full-text search finds the observation"
    );
    let checkpoint = written.checkpoint.unwrap();
    assert_eq!(checkpoint.run_id, execution.id().to_string());
    assert_eq!(checkpoint.step_id.as_deref(), Some("final"));
    let link = written.evidence.unwrap();
    assert_eq!(link.relation, "checkpointed_by");
    let store = ws.store().await.unwrap();
    let links = store
        .links(LinkQuery {
            either: Some(written.record.id.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(
        links[0].meta["evidence"]["execution_id"],
        json!(execution.id().to_string())
    );

    // A second runtime bound to the same directory sees the same data.
    let again = workspace(dir.path());
    let heads = again.list_snapshots(None).await.unwrap();
    assert_eq!(heads.len(), 1);
}

#[tokio::test]
async fn recording_without_a_workspace_is_a_clear_error() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let execution = runtime.agent("a").input("x").start().unwrap();
    let err = execution
        .record_workspace(RecordOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "execution.no_workspace");
}
