use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry::{HookOptions, Runtime, RuntimeEvent, Settings, hook_fn};
use agentry_testkit::{Reply, Scenario};
use futures::StreamExt;

use crate::mock_runtime;

#[tokio::test]
async fn events_form_a_gap_free_tree_the_console_can_render() {
    let scenario = Scenario::new().fallback(Reply::text("one two three four").with_usage(3, 4));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime.agent("observer").input("x").start().unwrap();
    execution.text().await.unwrap();
    let events: Vec<Arc<RuntimeEvent>> = execution.events().collect().await;

    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert_eq!(execution.meta().await.event_count, events.len() as u64);

    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let order = [
        "agent_execution.started",
        "request.started",
        "model.request_started",
        "prompt.built",
        "model.requesting",
        "model.streaming",
        "model.meta",
        "model.completed",
        "request.completed",
        "agent_execution.completed",
    ];
    let mut pos = 0;
    for want in order {
        let found = types[pos..]
            .iter()
            .position(|t| *t == want)
            .map(|p| p + pos);
        pos = found.unwrap_or_else(|| panic!("{want} missing or out of order in {types:?}"));
    }
    let streamed: String = events
        .iter()
        .filter(|e| e.event_type.as_str() == "model.streaming")
        .filter_map(|e| e.payload["delta"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(streamed, "one two three four");

    // Run tree: agent_execution → request → model_request, all under one root.
    let root = &events[0].run;
    assert_eq!(root.run_kind.as_str(), "agent_execution");
    assert_eq!(root.execution_id.as_ref(), Some(execution.id()));
    assert_eq!(root.agent_name.as_deref(), Some("observer"));
    let request = events
        .iter()
        .find(|e| e.event_type.as_str() == "request.started")
        .unwrap();
    assert_eq!(request.run.parent_run_id.as_ref(), Some(&root.run_id));
    let attempt = events
        .iter()
        .find(|e| e.event_type.as_str() == "model.requesting")
        .unwrap();
    assert_eq!(attempt.run.run_kind.as_str(), "model_request");
    assert_eq!(
        attempt.run.parent_run_id.as_ref(),
        Some(&request.run.run_id)
    );
    assert_eq!(attempt.run.meta["attempt_index"], 1);
    for e in &events {
        assert_eq!(e.run.root_run_id, root.run_id);
        assert_eq!(e.run.execution_id.as_ref(), Some(execution.id()));
    }
    let completed = events
        .iter()
        .find(|e| e.event_type.as_str() == "model.completed")
        .unwrap();
    assert_eq!(
        completed.payload["model_request_telemetry"]["usage"]["total_tokens"],
        7
    );
}

#[tokio::test]
async fn background_summary_hook_and_secret_redaction_end_to_end() {
    let secret = "sk-very-secret-key-42";
    let runtime = Runtime::builder()
        .test_model()
        .secret(secret)
        .build()
        .unwrap();
    let seen: Arc<Mutex<Vec<Arc<RuntimeEvent>>>> = Arc::default();
    let s = seen.clone();
    runtime
        .events()
        .register(
            HookOptions::new("console")
                .summary(1000, Duration::from_secs(60))
                .background(),
            hook_fn(move |ev| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(ev);
                    Ok::<(), agentry::core::HookError>(())
                }
            }),
        )
        .unwrap();
    let text = runtime
        .agent("a")
        .input(format!("my key is {secret}, repeat it please"))
        .text()
        .await
        .unwrap();
    runtime.shutdown().await;
    let seen = seen.lock().unwrap();
    let all = serde_json::to_string(&*seen).unwrap();
    assert!(!all.contains(secret), "the secret reached a hook");
    let coalesced = seen
        .iter()
        .filter(|e| e.meta.get("coalesced").is_some())
        .count();
    let streaming = seen
        .iter()
        .filter(|e| e.event_type.as_str() == "model.streaming")
        .count();
    assert!(
        streaming >= 1 && coalesced >= 1,
        "deltas were coalesced ({streaming} streaming events)"
    );
    // The host still gets its own answer unredacted: redaction is for observers.
    assert!(text.contains("repeat"), "{text}");
    let kinds: HashSet<&str> = seen.iter().map(|e| e.run.run_kind.as_str()).collect();
    assert!(kinds.contains("agent_execution") && kinds.contains("model_request"));
}
