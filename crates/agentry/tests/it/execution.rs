use agentry::{AgentryError, ErrorCode, ExecutionStatus, Runtime, Settings};
use agentry_testkit::{Fault, Reply, Rule, Scenario};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::mock_runtime;

#[tokio::test]
async fn text_through_the_mock_server_with_request_log() {
    let scenario = Scenario::new().rule(
        Rule::when_user_contains("capital")
            .reply(Reply::text("Paris is the capital.").with_usage(12, 5)),
    );
    let (runtime, server) = mock_runtime(scenario, Settings::default()).await;
    let agent = runtime.agent("geo").instructions("Answer in one sentence.");
    let execution = agent
        .input("What is the capital of France?")
        .instruct("Be exact.")
        .start()
        .unwrap();
    assert_eq!(execution.text().await.unwrap(), "Paris is the capital.");
    let meta = execution.meta().await;
    assert_eq!(meta.status, ExecutionStatus::Success);
    assert_eq!(meta.model_requests.len(), 1);
    assert_eq!(meta.model_requests[0].provider.model, "mock-model");
    assert_eq!(meta.usage.prompt_tokens, 12);
    assert_eq!(meta.usage.completion_tokens, 5);
    assert_eq!(meta.agent.name, "geo");

    let sent = server.requests();
    assert_eq!(sent.len(), 1);
    let messages = sent[0].body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.contains("Answer in one sentence.") && system.contains("Be exact."),
        "{system}"
    );
    assert_eq!(messages[1]["content"], "What is the capital of France?");
}

#[tokio::test]
async fn structured_output_with_the_test_model() {
    #[derive(Debug, Deserialize)]
    struct Post {
        title: String,
        tags: Vec<String>,
    }
    let runtime = Runtime::builder().test_model().build().unwrap();
    let schema = json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2}
        },
        "required": ["title", "tags"],
        "additionalProperties": false
    });
    let execution = runtime
        .agent("writer")
        .input("Rust")
        .output_schema(schema)
        .start()
        .unwrap();
    let post: Post = execution.data_as().await.unwrap();
    assert!(!post.title.is_empty());
    assert!(post.tags.len() >= 2);
    let data = execution.data().await.unwrap();
    assert_eq!(data["title"], post.title.as_str());
}

#[tokio::test]
async fn data_without_schema_is_a_clear_error() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let execution = runtime.agent("a").input("hi").start().unwrap();
    let err = execution.data().await.unwrap_err();
    assert_eq!(err.code(), "execution.no_output_schema");
    assert!(execution.text().await.is_ok());
}

#[tokio::test]
async fn answer_violating_the_schema_is_output_invalid() {
    let scenario = Scenario::new().fallback(Reply::text("{\"title\": 3}"));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]});
    let execution = runtime
        .agent("a")
        .input("x")
        .output_schema(schema)
        .start()
        .unwrap();
    let err = execution.data().await.unwrap_err();
    assert_eq!(err.code(), "execution.output_invalid", "{err}");
    let meta = execution.meta().await;
    assert_eq!(meta.status, ExecutionStatus::Error);
    assert_eq!(
        meta.diagnostics.errors[0].code.as_deref(),
        Some("execution.output_invalid")
    );
}

#[tokio::test]
async fn prose_around_json_is_accepted() {
    let scenario = Scenario::new().fallback(Reply::text(
        "Sure! ```json\n{\"title\": \"ok\"}\n``` Hope it helps.",
    ));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]});
    let data = runtime
        .agent("a")
        .input("x")
        .output_schema(schema)
        .data()
        .await
        .unwrap();
    assert_eq!(data, json!({"title": "ok"}));
}

#[tokio::test]
async fn model_http_error_fails_the_execution_with_its_code() {
    let scenario = Scenario::new().fallback(Reply::text("x").fault(Fault::HttpStatus {
        status: 400,
        body: "{\"error\":{\"message\":\"bad request\"}}".into(),
    }));
    let (runtime, server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime.agent("a").input("x").start().unwrap();
    let err = execution.text().await.unwrap_err();
    assert!(matches!(err, AgentryError::Model(_)), "{err:?}");
    assert_eq!(err.code(), "model.http_status");
    assert_eq!(server.request_count(), 1, "4xx is never retried");
    let meta = execution.meta().await;
    assert_eq!(
        meta.model_requests[0]
            .error
            .as_ref()
            .unwrap()
            .code
            .as_deref(),
        Some("model.http_status")
    );
    let types: Vec<String> = execution
        .events()
        .map(|e| e.event_type.to_string())
        .collect()
        .await;
    for t in ["model.failed", "request.failed", "agent_execution.failed"] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
}

#[tokio::test]
async fn transient_failure_is_retried_and_reported() {
    let scenario = Scenario::new()
        .rule(
            Rule::always()
                .times(1)
                .reply(Reply::text("x").fault(Fault::HttpStatus {
                    status: 503,
                    body: "{}".into(),
                })),
        )
        .fallback(Reply::text("recovered"));
    let (runtime, server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime.agent("a").input("x").start().unwrap();
    assert_eq!(execution.text().await.unwrap(), "recovered");
    assert_eq!(server.request_count(), 2);
    let meta = execution.meta().await;
    assert_eq!(
        meta.model_requests.len(),
        1,
        "a retry is not a second model request"
    );
    assert_eq!(meta.model_requests[0].retries, 1);
    let events: Vec<_> = execution.events().collect().await;
    let retry = events
        .iter()
        .find(|e| e.event_type.as_str() == "model.retrying")
        .expect("retry event");
    assert_eq!(retry.payload["attempt_index"], 1);
    assert_eq!(retry.payload["next_attempt_index"], 2);
}

#[tokio::test]
async fn unknown_model_key_and_bad_schema_are_refused_before_running() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let err = runtime
        .agent("a")
        .input("x")
        .model("nope")
        .start()
        .unwrap_err();
    assert_eq!(err.code(), "model.unknown_key");
    let err = runtime
        .agent("a")
        .input("x")
        .output_schema(json!({"type": 12}))
        .start()
        .unwrap_err();
    assert_eq!(err.code(), "execution.config");
}

#[tokio::test]
async fn cancel_and_drop_end_the_run_with_an_event() {
    let scenario = Scenario::new()
        .fallback(Reply::text("late").first_token_delay(std::time::Duration::from_secs(20)));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime.agent("a").input("x").start().unwrap();
    let events = execution.events();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    execution.cancel();
    let err = execution.text().await.unwrap_err();
    assert_eq!(err.code(), "execution.cancelled");
    assert_eq!(execution.meta().await.status, ExecutionStatus::Cancelled);
    let types: Vec<String> = events.map(|e| e.event_type.to_string()).collect().await;
    assert_eq!(
        types.last().map(String::as_str),
        Some("agent_execution.cancelled")
    );

    // Dropping the handle cancels too; a hook sees the cancellation.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    runtime
        .events()
        .register(
            agentry::HookOptions::new("watch").event_types(["agent_execution.*"]),
            agentry::hook_fn(move |ev| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(ev.event_type.to_string());
                    Ok::<(), agentry::core::HookError>(())
                }
            }),
        )
        .unwrap();
    let execution = runtime.agent("a").input("x").start().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(execution);
    for _ in 0..100 {
        if seen
            .lock()
            .unwrap()
            .iter()
            .any(|t| t == "agent_execution.cancelled")
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "no cancellation event after drop: {:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn concurrent_executions_of_one_agent_do_not_share_drafts() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let agent = runtime.agent("shared");
    let a = agent.input("first request").start().unwrap();
    let b = agent.input("second request").start().unwrap();
    let (ta, tb) = (a.text().await.unwrap(), b.text().await.unwrap());
    assert!(ta.contains("first request"), "{ta}");
    assert!(tb.contains("second request"), "{tb}");
    assert_ne!(a.id(), b.id());
}
