//! Behaviour that needs no server: config validation, the test and scripted models
//! through the public API.
use std::sync::Arc;
use std::time::Duration;

use agentry_model::schema_sample::sample_for_schema;
use agentry_model::{
    ApiKey, Message, ModelError, ModelPool, ModelProvider, ModelRequest, OpenAiChat, OpenAiConfig,
    OpenAiResponses, OutputSchema, RetryPolicy, ScriptedModel, ScriptedTurn, TestModel, Timeouts,
};
use serde_json::json;

#[test]
fn invalid_configs_are_refused() {
    let bad = [
        OpenAiConfig::new("http://127.0.0.1:1/v1", ""),
        OpenAiConfig::new("not a url", "m"),
        OpenAiConfig::new("file:///etc/passwd", "m"),
        OpenAiConfig::new("http://127.0.0.1:1/v1", "m").retry(RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        }),
        OpenAiConfig::new("http://127.0.0.1:1/v1", "m").header("bad header", "v"),
        OpenAiConfig::new("http://127.0.0.1:1/v1", "m").header("X-Ok", "line\nbreak"),
        OpenAiConfig::new("http://127.0.0.1:1/v1", "m").timeouts(Timeouts {
            stream_idle: Some(Duration::ZERO),
            ..Timeouts::default()
        }),
    ];
    for cfg in bad {
        assert!(
            matches!(OpenAiChat::new(cfg.clone()), Err(ModelError::Config(_))),
            "{cfg:?}"
        );
        assert!(
            matches!(
                OpenAiResponses::new(cfg.clone()),
                Err(ModelError::Config(_))
            ),
            "{cfg:?}"
        );
    }
}

#[test]
fn api_key_never_prints() {
    let cfg =
        OpenAiConfig::new("http://127.0.0.1:1/v1", "m").api_key(ApiKey::new("sk-very-secret"));
    assert!(!format!("{cfg:?}").contains("sk-very-secret"));
    let model = OpenAiChat::new(cfg).unwrap();
    assert!(!format!("{model:?}").contains("sk-very-secret"));
}

#[test]
fn secrets_can_be_shared_with_a_redactor() {
    let model = OpenAiChat::new(
        OpenAiConfig::new("http://127.0.0.1:1/v1", "m").api_key("sk-share-me-1234"),
    )
    .unwrap();
    let r = agentry_core::Redactor::default();
    model.register_secrets(&r);
    assert_eq!(r.redact_str("x sk-share-me-1234 y"), "x [REDACTED] y");
}

#[tokio::test]
async fn test_model_in_a_pool_answers_with_schema_valid_json() {
    let mut pool = ModelPool::new();
    pool.insert("default", Arc::new(TestModel::new()));
    let model = pool.get("default").unwrap();
    let schema = json!({
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        "required": ["title", "tags"]
    });
    let mut req = ModelRequest::new(vec![Message::user("Summarise the meeting")]);
    req.output_schema = Some(OutputSchema {
        name: "s".into(),
        schema: schema.clone(),
        strict: true,
    });
    let r = model.complete(req).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.text).unwrap();
    assert!(jsonschema::is_valid(&schema, &v));
    assert_eq!(v["title"], "Summarise the meeting");
    assert_eq!(
        v,
        json!({"title": "Summarise the meeting", "tags": ["example"]})
    );
    let _ = sample_for_schema(&schema);
}

#[tokio::test]
async fn scripted_model_is_shared_and_records() {
    let model = ScriptedModel::new(vec![ScriptedTurn::text("one"), ScriptedTurn::text("two")]);
    let clone = model.clone();
    let a = tokio::spawn(async move {
        clone
            .complete(ModelRequest::new(vec![Message::user("a")]))
            .await
    });
    let b = model
        .complete(ModelRequest::new(vec![Message::user("b")]))
        .await
        .unwrap();
    let a = a.await.unwrap().unwrap();
    let mut texts = vec![a.text, b.text];
    texts.sort();
    assert_eq!(texts, vec!["one", "two"]);
    assert_eq!(model.requests().len(), 2);
    assert!(matches!(
        model.complete(ModelRequest::default()).await,
        Err(ModelError::ScriptExhausted(3))
    ));
}
