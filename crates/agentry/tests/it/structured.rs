use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry::{AgentryError, ErrorCode, Runtime, Settings};
use agentry_testkit::{Reply, Rule, Scenario};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::mock_runtime;

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "steps": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "detail": {"type": "string"}}}}
        },
        "required": ["title", "steps"]
    })
}

const ANSWER: &str = r#"{"title": "Brew tea", "steps": [{"name": "boil", "detail": "Boil water"}, {"name": "steep", "detail": "Steep 3 minutes"}]}"#;

fn chunks(text: &str, size: usize) -> Vec<String> {
    text.as_bytes()
        .chunks(size)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn keys_stream_before_the_answer_ends() {
    // Slow chunks: the title is complete long before the whole answer.
    let scenario = Scenario::new()
        .fallback(Reply::text_chunks(chunks(ANSWER, 7)).chunk_delay(Duration::from_millis(15)));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime
        .agent("a")
        .input("tea")
        .output_schema(schema())
        .start()
        .unwrap();
    let title = execution.get_key_result("title").await.unwrap();
    assert_eq!(title, "Brew tea");
    assert!(
        execution.meta_now().finished_at.is_none(),
        "the title arrived while the answer was still streaming"
    );

    let names: Vec<(String, Value)> = execution
        .wait_keys(["steps[*].name"])
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        names,
        vec![
            ("steps[0].name".into(), json!("boil")),
            ("steps[1].name".into(), json!("steep"))
        ]
    );
    let data = execution.data().await.unwrap();
    assert_eq!(data["steps"][1]["detail"], "Steep 3 minutes");

    let events: Vec<_> = execution.events().collect().await;
    let deltas: String = events
        .iter()
        .filter(|e| {
            e.event_type.as_str() == "agent_execution.stream.delta" && e.payload["path"] == "title"
        })
        .map(|e| e.payload["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, "Brew tea");
    let done = events
        .iter()
        .find(|e| {
            e.event_type.as_str() == "agent_execution.stream.done"
                && e.payload["path"] == "steps[0].detail"
        })
        .unwrap();
    assert_eq!(done.payload["provisional"], true);
    assert!(
        events
            .iter()
            .any(|e| e.event_type.as_str() == "agent_execution.output_validated")
    );
}

#[tokio::test]
async fn when_key_callbacks_fire_while_running() {
    let scenario = Scenario::new().fallback(Reply::text_chunks(chunks(ANSWER, 5)));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime
        .agent("a")
        .input("tea")
        .output_schema(schema())
        .start()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    execution
        .when_key("steps[*].detail", move |path, value| {
            s.lock().unwrap().push((path, value))
        })
        .unwrap();
    execution.data().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn key_paths_are_checked_against_the_contract() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let plain = runtime.agent("a").input("x").start().unwrap();
    assert_eq!(
        plain.get_key_result("title").await.unwrap_err().code(),
        "execution.no_output_schema"
    );
    assert!(plain.wait_keys(["title"]).is_err());

    let structured = runtime
        .agent("a")
        .input("x")
        .output_schema(schema())
        .start()
        .unwrap();
    let err = structured.get_key_result("author.name").await.unwrap_err();
    assert_eq!(err.code(), "execution.unknown_key_path", "{err}");
    assert!(structured.wait_keys(["steps[*].nope"]).is_err());
    assert!(
        structured.get_key_result("steps[*].name").await.is_ok() || structured.data().await.is_ok()
    );

    let err = runtime
        .agent("a")
        .input("x")
        .output_schema(schema())
        .ensure_keys(["missing.key"])
        .start()
        .unwrap_err();
    assert_eq!(err.code(), "execution.unknown_key_path");
    let err = runtime
        .agent("a")
        .input("x")
        .ensure_keys(["title"])
        .start()
        .unwrap_err();
    assert_eq!(err.code(), "execution.no_output_schema");
}

#[tokio::test]
async fn defective_json_is_repaired_with_a_diagnostic() {
    let broken = "Sure:\n```json\n{'title': 'Tea', 'steps': [{'name': 'boil',},],";
    let scenario = Scenario::new().fallback(Reply::text(broken));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime
        .agent("a")
        .input("x")
        .output_schema(schema())
        .start()
        .unwrap();
    let data = execution.data().await.unwrap();
    assert_eq!(data, json!({"title": "Tea", "steps": [{"name": "boil"}]}));
    let meta = execution.meta().await;
    let repaired = meta
        .diagnostics
        .items
        .iter()
        .find(|d| d.code == "output.repaired")
        .expect("repair diagnostic");
    let kinds: Vec<&str> = repaired.detail["repairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"single_quoted_string") && kinds.contains(&"closed_container"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn missing_keys_trigger_bounded_corrective_requests() {
    let incomplete = r#"{"title": "Tea", "steps": [{"name": "boil"}]}"#;
    let scenario = Scenario::new()
        .rule(
            Rule::when_user_contains("cannot be used")
                .times(1)
                .reply(Reply::text(incomplete)),
        )
        .rule(Rule::when_user_contains("cannot be used").reply(Reply::text(ANSWER)))
        .fallback(Reply::text(incomplete));
    let (runtime, server) = mock_runtime(scenario, Settings::default()).await;
    let execution = runtime
        .agent("a")
        .input("tea")
        .output_schema(schema())
        .ensure_keys(["steps[*].detail"])
        .start()
        .unwrap();
    let data = execution.data().await.unwrap();
    assert_eq!(data["steps"].as_array().unwrap().len(), 2);
    assert_eq!(server.request_count(), 3, "two corrective re-requests");
    let correction = server.requests()[1].last_user_message().unwrap();
    assert!(correction.contains("steps[0].detail"), "{correction}");
    let meta = execution.meta().await;
    assert_eq!(meta.diagnostics.budget.model_requests_used, 3);
    assert_eq!(
        meta.diagnostics
            .items
            .iter()
            .filter(|d| d.code == "output.corrective_request")
            .count(),
        2
    );

    // With fewer retries than needed, a typed error lists what is missing.
    let scenario = Scenario::new().fallback(Reply::text(incomplete));
    let (runtime, server) = mock_runtime(scenario, Settings::default()).await;
    let err = runtime
        .agent("a")
        .input("tea")
        .output_schema(schema())
        .ensure_keys(["steps[*].detail"])
        .output_retries(1)
        .data()
        .await
        .unwrap_err();
    assert_eq!(server.request_count(), 2);
    let AgentryError::OutputMissingKeys { missing, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(missing, &vec!["steps[0].detail".to_string()]);
    assert_eq!(err.code(), "execution.output_missing_keys");
}

#[tokio::test]
async fn json_shaped_contracts_and_typed_outputs() {
    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Recipe {
        /// The dish.
        name: String,
        steps: Vec<String>,
        minutes: Option<u32>,
    }
    let runtime = Runtime::builder().test_model().build().unwrap();
    let shape = json!({"title": ["string", "A short title"], "tips": [["string", "One tip"]], "rating": "integer?"});
    let execution = runtime
        .agent("a")
        .input("tea")
        .output_shape(shape)
        .start()
        .unwrap();
    let data = execution.data().await.unwrap();
    assert!(data["title"].is_string() && data["tips"].is_array());
    // The rendered contract reached the model with its descriptions.
    let events: Vec<_> = execution.events().collect().await;
    let prompt = events
        .iter()
        .find(|e| e.event_type.as_str() == "prompt.built")
        .unwrap();
    assert!(prompt.payload.to_string().contains("A short title"));

    let recipe: Recipe = runtime
        .agent("a")
        .input("tea")
        .output::<Recipe>()
        .start()
        .unwrap()
        .data_as()
        .await
        .unwrap();
    assert!(!recipe.name.is_empty());

    let err = runtime
        .agent("a")
        .input("x")
        .output_shape(json!({"a": "strng"}))
        .start()
        .unwrap_err();
    assert_eq!(err.code(), "execution.config");
}
