//! Chat completions protocol shapes.

use agentry_testkit::{MockServer, MockToolCall, Reply, Rule, Scenario};
use serde_json::json;

use crate::{chat_body, frames, json_frames, post};

#[tokio::test]
async fn streamed_text_has_openai_shape() {
    let server = MockServer::start(Scenario::new().fallback(Reply::text("Hello brave new world")))
        .await
        .unwrap();
    let resp = post(&server, "/chat/completions", chat_body("hi", true)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let text = resp.text().await.unwrap();
    let all = frames(&text);
    assert_eq!(all.last().unwrap(), "data: [DONE]");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(all.iter().all(|f| f.starts_with("data: ")));

    let chunks = json_frames(&text);
    assert_eq!(chunks.len(), 1 + 4 + 1, "role + 4 words + finish");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-test");
        assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
        assert!(c["created"].as_u64().unwrap() > 1_600_000_000);
        assert!(c.get("usage").is_none(), "no usage without include_usage");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, ["", "Hello", " brave", " new", " world"]);
    let finish = chunks.last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
}

#[tokio::test]
async fn stream_usage_chunk_when_requested() {
    let server = MockServer::start(Scenario::new().fallback(Reply::text("ok").with_usage(11, 3)))
        .await
        .unwrap();
    let mut body = chat_body("hi", true);
    body["stream_options"] = json!({"include_usage": true});
    let text = post(&server, "/chat/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let chunks = json_frames(&text);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 11);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(usage["usage"]["total_tokens"], 14);
    for c in &chunks[..chunks.len() - 1] {
        assert!(c["usage"].is_null(), "usage is null before the last chunk");
    }
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn streamed_tool_calls_are_fragmented_and_indexed() {
    let reply = Reply::tool_calls(vec![
        MockToolCall::new(
            "call_1",
            "get_weather",
            json!({"city": "Paris", "unit": "c"}),
        ),
        MockToolCall::raw("call_2", "broken", "{not json"),
    ])
    .with_text("Let me check.");
    let server = MockServer::start(Scenario::new().fallback(reply))
        .await
        .unwrap();
    let text = post(&server, "/chat/completions", chat_body("weather?", true))
        .await
        .text()
        .await
        .unwrap();
    let chunks = json_frames(&text);
    let mut heads = Vec::new();
    let mut args = [String::new(), String::new()];
    let mut fragments = [0usize; 2];
    for c in &chunks {
        let Some(calls) = c["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        let index = call["index"].as_u64().unwrap() as usize;
        if call.get("id").is_some() {
            assert_eq!(call["type"], "function");
            assert_eq!(call["function"]["arguments"], "");
            heads.push((index, call["id"].clone(), call["function"]["name"].clone()));
        } else {
            assert!(call.get("type").is_none());
            assert!(call["function"].get("name").is_none());
            args[index].push_str(call["function"]["arguments"].as_str().unwrap());
            fragments[index] += 1;
        }
    }
    assert_eq!(
        heads,
        vec![
            (0, json!("call_1"), json!("get_weather")),
            (1, json!("call_2"), json!("broken"))
        ]
    );
    assert_eq!(args[0], r#"{"city":"Paris","unit":"c"}"#);
    assert_eq!(args[1], "{not json");
    assert!(
        fragments.iter().all(|n| *n >= 2),
        "arguments arrive in several fragments"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Let me check.");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn streamed_reasoning_uses_reasoning_content() {
    let server = MockServer::start(
        Scenario::new().fallback(Reply::text("42").with_reasoning("Think it through.")),
    )
    .await
    .unwrap();
    let text = post(&server, "/chat/completions", chat_body("q", true))
        .await
        .text()
        .await
        .unwrap();
    let chunks = json_frames(&text);
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Think it through.");
    let first_content = chunks
        .iter()
        .position(|c| c["choices"][0]["delta"]["content"] == "42")
        .unwrap();
    let last_reasoning = chunks
        .iter()
        .rposition(|c| c["choices"][0]["delta"].get("reasoning_content").is_some())
        .unwrap();
    assert!(
        last_reasoning < first_content,
        "reasoning streams before the answer"
    );
}

#[tokio::test]
async fn text_chunks_are_streamed_verbatim() {
    let server = MockServer::start(
        Scenario::new().fallback(Reply::text_chunks(["{\"a\":", " 1", "}", "é"])),
    )
    .await
    .unwrap();
    let text = post(&server, "/chat/completions", chat_body("q", true))
        .await
        .text()
        .await
        .unwrap();
    let content: Vec<String> = json_frames(&text)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(content, ["{\"a\":", " 1", "}", "é"]);
}

#[tokio::test]
async fn non_stream_completion_object() {
    let reply = Reply::tool_calls(vec![MockToolCall::new(
        "call_9",
        "lookup",
        json!({"q": "x"}),
    )])
    .with_reasoning("why")
    .with_usage(5, 6);
    let server = MockServer::start(
        Scenario::new()
            .rule(Rule::when_user_contains("tool").reply(reply))
            .fallback(Reply::text("plain answer")),
    )
    .await
    .unwrap();

    let resp = post(&server, "/chat/completions", chat_body("just talk", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-test");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "plain answer");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    let body: serde_json::Value =
        post(&server, "/chat/completions", chat_body("use a tool", false))
            .await
            .json()
            .await
            .unwrap();
    let message = &body["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(message["reasoning_content"], "why");
    assert_eq!(message["tool_calls"][0]["id"], "call_9");
    assert_eq!(message["tool_calls"][0]["type"], "function");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        r#"{"q":"x"}"#
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["usage"]["total_tokens"], 11);
}

#[tokio::test]
async fn answer_ids_are_distinct_and_model_defaults() {
    let server = MockServer::start(Scenario::new()).await.unwrap();
    let a: serde_json::Value = post(&server, "/chat/completions", json!({"messages": []}))
        .await
        .json()
        .await
        .unwrap();
    let b: serde_json::Value = post(&server, "/chat/completions", json!({"messages": []}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["model"], "mock-model");
    assert_eq!(a["choices"][0]["message"]["content"], "mock answer");
}
