//! Happy paths of both providers: text, tools, reasoning, usage, streamed and not.
use agentry_model::{StreamEvent, TOOL_ARGUMENTS_NOT_JSON, ToolArguments};
use agentry_testkit::{Fault, MockToolCall, Reply};
use serde_json::json;

use crate::common::{Api, BOTH, ask, config, provider, run, serve};

#[tokio::test]
async fn text_streams_in_pieces() {
    for api in BOTH {
        let server = serve(Reply::text("Hello brave new world, élan ✓")).await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("hi")).await;
        out.ok();
        assert_eq!(out.text(), "Hello brave new world, élan ✓", "{api:?}");
        let deltas = out
            .events
            .iter()
            .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
            .count();
        assert!(
            deltas >= 4,
            "{api:?}: expected several deltas, got {deltas}"
        );
        let r = out.response();
        assert_eq!(
            r.completion.finish_reason.as_deref(),
            Some("stop"),
            "{api:?}"
        );
        assert!(r.completion.response_id.is_some(), "{api:?}");
        assert_eq!(r.retries, 0);
        let sent = server.requests();
        assert_eq!(sent.len(), 1);
        let path = match api {
            Api::Chat => "/v1/chat/completions",
            Api::Responses => "/v1/responses",
        };
        assert_eq!(sent[0].path, path);
        assert_eq!(sent[0].body["stream"], true);
    }
}

#[tokio::test]
async fn non_streamed_answers_give_the_same_events() {
    for api in BOTH {
        let reply = Reply::text("One two three")
            .with_reasoning("because")
            .with_usage(7, 3);
        let server = serve(reply).await;
        let model = provider(api, config(&server).stream(false));
        let out = run(model.as_ref(), ask("count")).await;
        out.ok();
        let r = out.response();
        assert_eq!(r.text, "One two three", "{api:?}");
        assert_eq!(r.reasoning, "because", "{api:?}");
        assert_eq!(r.usage.unwrap().prompt_tokens, 7, "{api:?}");
        assert_eq!(r.usage.unwrap().total_tokens, 10, "{api:?}");
        let sent = server.requests();
        assert_eq!(sent[0].body["stream"], false, "{api:?}");
        assert!(sent[0].body.get("stream_options").is_none(), "{api:?}");
    }
}

#[tokio::test]
async fn parallel_tool_calls_are_assembled_from_fragments() {
    for stream in [true, false] {
        for api in BOTH {
            let server = serve(
                Reply::tool_calls(vec![
                    MockToolCall::new(
                        "call_1",
                        "search",
                        json!({"query": "rust streams", "limit": 5}),
                    ),
                    MockToolCall::raw("call_2", "calc", "{not json"),
                    MockToolCall::new("call_3", "clock", json!({})),
                ])
                .with_text("Let me check."),
            )
            .await;
            let model = provider(api, config(&server).stream(stream));
            let out = run(model.as_ref(), ask("find")).await;
            out.ok();
            let r = out.response();
            let ctx = format!("{api:?} stream={stream}");
            assert_eq!(r.text, "Let me check.", "{ctx}");
            assert_eq!(r.tool_calls.len(), 3, "{ctx}");
            assert_eq!(r.tool_calls[0].id, "call_1", "{ctx}");
            assert_eq!(r.tool_calls[0].name, "search", "{ctx}");
            assert_eq!(
                r.tool_calls[0].arguments,
                ToolArguments::Json(json!({"query": "rust streams", "limit": 5})),
                "{ctx}"
            );
            assert_eq!(
                r.tool_calls[1].arguments,
                ToolArguments::Raw("{not json".into()),
                "{ctx}"
            );
            assert_eq!(r.tool_calls[2].name, "clock", "{ctx}");
            assert_eq!(r.diagnostics.len(), 1, "{ctx}");
            assert_eq!(r.diagnostics[0].code, TOOL_ARGUMENTS_NOT_JSON, "{ctx}");
            assert_eq!(
                r.completion.finish_reason.as_deref(),
                Some("tool_calls"),
                "{ctx}"
            );
            if stream {
                let fragments = out
                    .events
                    .iter()
                    .filter(|e| matches!(e, StreamEvent::ToolCallDelta { index: 0, .. }))
                    .count();
                assert!(
                    fragments >= 2,
                    "{ctx}: arguments should arrive in fragments"
                );
            }
        }
    }
}

#[tokio::test]
async fn reasoning_and_usage() {
    for api in BOTH {
        let server = serve(
            Reply::text("42")
                .with_reasoning("Think about the question carefully")
                .with_usage(11, 22),
        )
        .await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("meaning?")).await;
        out.ok();
        let r = out.response();
        assert_eq!(r.reasoning, "Think about the question carefully", "{api:?}");
        assert_eq!(r.text, "42");
        let u = r.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (11, 22, 33),
            "{api:?}"
        );
        // Reasoning comes before the answer.
        let first_reasoning = out
            .events
            .iter()
            .position(|e| matches!(e, StreamEvent::ReasoningDelta { .. }));
        let first_text = out
            .events
            .iter()
            .position(|e| matches!(e, StreamEvent::TextDelta { .. }));
        assert!(first_reasoning < first_text, "{api:?}");
    }
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    for api in BOTH {
        let server = serve(
            Reply::tool_calls(vec![MockToolCall::new("c", "f", json!({"a": 1}))])
                .with_text("fine")
                .fault(Fault::UnknownFields),
        )
        .await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("x")).await;
        out.ok();
        let r = out.response();
        assert_eq!(r.text, "fine", "{api:?}");
        assert_eq!(
            r.tool_calls[0].arguments,
            ToolArguments::Json(json!({"a": 1}))
        );
    }
}

#[tokio::test]
async fn chat_server_ignoring_stream_flag_is_accepted() {
    let server = serve(Reply::json_object(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole body"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    })))
    .await;
    let model = provider(Api::Chat, config(&server));
    let out = run(model.as_ref(), ask("x")).await;
    out.ok();
    assert_eq!(out.text(), "whole body");
}

#[tokio::test]
async fn raw_sse_variants_parse() {
    // CRLF line endings, no space after `data:`, a comment and a multi-line data
    // field are all valid SSE.
    let server = serve(Reply::raw_sse([
        ": hello\r\ndata:{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r",
        "data: {\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}",
        "data: [DONE]",
    ]))
    .await;
    let model = provider(Api::Chat, config(&server));
    let out = run(model.as_ref(), ask("x")).await;
    out.ok();
    assert_eq!(out.text(), "ab");
}

#[tokio::test]
async fn slow_consumer_is_not_a_stall() {
    use futures::StreamExt;
    use std::time::Duration;
    for api in BOTH {
        // Frames come faster than the idle limit, but the consumer takes longer than
        // it for every event: only server silence may count as a stall.
        let server = serve(Reply::text("a b c d").chunk_delay(Duration::from_millis(60))).await;
        let model = provider(
            api,
            config(&server).stream_idle_timeout(Some(Duration::from_millis(200))),
        );
        let mut stream = model.stream(ask("x"));
        let mut text = String::new();
        while let Some(item) = stream.next().await {
            match item.unwrap() {
                StreamEvent::TextDelta { text: t } => {
                    text.push_str(&t);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                StreamEvent::Done(_) => break,
                _ => {}
            }
        }
        assert_eq!(text, "a b c d", "{api:?}");
    }
}
