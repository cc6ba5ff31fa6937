//! Broken servers: malformed chunks, HTML pages, truncated streams.
use agentry_model::{ModelError, RetryPolicy};
use agentry_testkit::{Fault, Reply};

use crate::common::{Api, BOTH, ask, config, provider, run, serve};

#[tokio::test]
async fn malformed_chunk_fails_with_protocol_error_and_no_retry() {
    for api in BOTH {
        let server = serve(Reply::text("a b c").fault(Fault::MalformedChunk)).await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("x")).await;
        match out.err() {
            ModelError::Protocol { stage, detail } => {
                // The broken frame comes right after the first (output-free) frame.
                assert_eq!(*stage, "response_first_event", "{api:?}");
                assert!(detail.contains("not valid JSON"), "{detail}");
                assert!(detail.len() < 700);
            }
            other => panic!("{api:?}: {other:?}"),
        }
        assert_eq!(server.requests().len(), 1);
    }
}

#[tokio::test]
async fn malformed_non_streamed_body() {
    for api in BOTH {
        let server = serve(Reply::text("a b c").fault(Fault::MalformedChunk)).await;
        let model = provider(api, config(&server).stream(false));
        let out = run(model.as_ref(), ask("x")).await;
        assert!(
            matches!(
                out.err(),
                ModelError::Protocol {
                    stage: "response_materialization",
                    ..
                }
            ),
            "{api:?}: {:?}",
            out.err()
        );
    }
}

#[tokio::test]
async fn html_page_is_a_protocol_error_with_an_excerpt() {
    for stream in [true, false] {
        for api in BOTH {
            let server = serve(Reply::text("x").fault(Fault::Html)).await;
            let model = provider(
                api,
                config(&server).stream(stream).api_key("sk-html-test-key"),
            );
            let out = run(model.as_ref(), ask("x")).await;
            match out.err() {
                ModelError::Protocol { stage, detail } => {
                    let want = if stream {
                        "response_first_event"
                    } else {
                        "response_materialization"
                    };
                    assert_eq!(*stage, want);
                    assert!(detail.contains("text/html"), "{detail}");
                    assert!(detail.contains('<'), "an excerpt of the page: {detail}");
                    assert!(detail.len() < 600, "bounded: {detail}");
                    assert!(!detail.contains("sk-html-test-key"));
                }
                other => panic!("{api:?} stream={stream}: {other:?}"),
            }
            assert_eq!(server.requests().len(), 1, "not retried");
        }
    }
}

#[tokio::test]
async fn truncated_stream_is_interrupted() {
    for api in BOTH {
        let server = serve(Reply::text("cut short here").fault(Fault::TruncatedStream)).await;
        let model = provider(api, config(&server).retry(RetryPolicy::none()));
        let out = run(model.as_ref(), ask("x")).await;
        assert!(out.output_events() > 0, "{api:?}");
        match out.err() {
            ModelError::Interrupted { stage, .. } => assert_eq!(*stage, "response_stream"),
            other => panic!("{api:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn truncated_non_streamed_body() {
    for api in BOTH {
        let server = serve(Reply::text("cut short here").fault(Fault::TruncatedStream)).await;
        let model = provider(
            api,
            config(&server).stream(false).retry(RetryPolicy::none()),
        );
        let out = run(model.as_ref(), ask("x")).await;
        assert!(out.events.is_empty());
        assert!(out.error.is_some(), "{api:?}");
    }
}

#[tokio::test]
async fn chat_stream_ending_after_finish_reason_without_done_completes() {
    let server = serve(Reply::raw_sse([
        r#"data: {"id":"c","choices":[{"index":0,"delta":{"content":"ok"}}]}"#,
        r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    ]))
    .await;
    let model = provider(Api::Chat, config(&server));
    let out = run(model.as_ref(), ask("x")).await;
    out.ok();
    assert_eq!(out.text(), "ok");
    assert_eq!(
        out.response().completion.finish_reason.as_deref(),
        Some("stop")
    );
}

#[tokio::test]
async fn in_band_errors_are_typed() {
    let server = serve(Reply::raw_sse([
        r#"event: response.created
data: {"type":"response.created","response":{"id":"r","status":"in_progress"}}"#,
        r#"event: response.failed
data: {"type":"response.failed","response":{"id":"r","status":"failed","error":{"code":"server_error","message":"model crashed"}}}"#,
    ]))
    .await;
    let model = provider(Api::Responses, config(&server));
    let out = run(model.as_ref(), ask("x")).await;
    match out.err() {
        ModelError::ResponseFailed { code, message, .. } => {
            assert_eq!(code.as_deref(), Some("server_error"));
            assert_eq!(message, "model crashed");
        }
        other => panic!("{other:?}"),
    }
}
