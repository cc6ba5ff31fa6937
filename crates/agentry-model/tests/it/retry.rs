//! Retry rules: transient failures before output are retried with `Retry` events;
//! client errors and failures after output are not.
use std::time::Duration;

use agentry_core::ErrorCode;
use agentry_model::{ModelError, RetryPolicy, StreamEvent};
use agentry_testkit::{Fault, Reply, Rule, Scenario};

use crate::common::{BOTH, ask, config, provider, run, server};

fn fail_first(times: usize, fault: Fault) -> Scenario {
    Scenario::new()
        .rule(Rule::always().times(times).reply(Reply::failing(fault)))
        .fallback(Reply::text("recovered answer"))
}

#[tokio::test]
async fn retries_503_then_succeeds_with_same_body() {
    for api in BOTH {
        let server = server(fail_first(1, Fault::status(503))).await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("please")).await;
        out.ok();
        assert_eq!(out.text(), "recovered answer", "{api:?}");
        let retries = out.retries();
        assert_eq!(retries.len(), 1, "{api:?}");
        assert_eq!((retries[0].attempt, retries[0].next_attempt), (1, 2));
        assert_eq!(retries[0].error_code, "model.http_status");
        assert!(retries[0].reason.contains("503"), "{}", retries[0].reason);
        assert!(retries[0].delay <= Duration::from_millis(50));
        // The Retry event comes before any output.
        assert!(matches!(out.events[0], StreamEvent::Retry(_)));
        assert_eq!(out.response().retries, 1);
        let sent = server.requests();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent[0].raw_body, sent[1].raw_body,
            "the same bytes are resent"
        );
    }
}

#[tokio::test]
async fn retries_429_honouring_retry_after_capped() {
    for api in BOTH {
        let server = server(fail_first(1, Fault::rate_limited(30))).await;
        let model = provider(api, config(&server));
        let started = std::time::Instant::now();
        let out = run(model.as_ref(), ask("please")).await;
        out.ok();
        let retries = out.retries();
        assert_eq!(retries.len(), 1);
        // `retry-after: 30` is capped at max_backoff (50 ms).
        assert_eq!(retries[0].delay, Duration::from_millis(50), "{api:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn retries_reset_before_first_token() {
    for api in BOTH {
        let server = server(fail_first(2, Fault::ResetBeforeFirstToken)).await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("please")).await;
        out.ok();
        assert_eq!(out.text(), "recovered answer", "{api:?}");
        let retries = out.retries();
        assert_eq!(retries.len(), 2, "{api:?}");
        assert_eq!(retries[0].error_code, "model.connect");
        assert_eq!(retries[1].attempt, 2);
        assert_eq!(server.requests().len(), 3);
    }
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    for api in BOTH {
        let server = server(Scenario::new().fallback(Reply::failing(Fault::status(500)))).await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("please")).await;
        assert_eq!(out.retries().len(), 2, "{api:?}");
        assert_eq!(out.output_events(), 0);
        match out.err() {
            ModelError::HttpStatus {
                status: 500,
                message,
            } => {
                assert!(message.contains("server had an error"), "{message}");
            }
            other => panic!("{api:?}: {other:?}"),
        }
        assert_eq!(server.requests().len(), 3);
    }
}

#[tokio::test]
async fn no_retry_on_client_errors_and_no_secrets_in_errors() {
    for status in [400u16, 401, 404] {
        for api in BOTH {
            let server =
                server(Scenario::new().fallback(Reply::failing(Fault::status(status)))).await;
            let secret = "sk-test-SECRET-0123456789";
            let prompt = "my private prompt text 98765";
            let model = provider(api, config(&server).api_key(secret));
            let out = run(model.as_ref(), ask(prompt)).await;
            assert!(out.events.is_empty(), "{api:?} {status}: {:?}", out.events);
            let err = out.err();
            assert!(
                matches!(err, ModelError::HttpStatus { status: s, .. } if *s == status),
                "{err:?}"
            );
            assert!(!err.retryable());
            assert_eq!(server.requests().len(), 1, "{api:?} {status}: not retried");
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(secret), "key leaked: {text}");
                assert!(!text.contains(prompt), "request body leaked: {text}");
                assert!(!text.contains("messages"), "request body leaked: {text}");
            }
            if status == 401 {
                assert!(err.to_string().contains("Incorrect API key"), "{err}");
            }
        }
    }
}

#[tokio::test]
async fn key_echoed_by_the_server_is_redacted() {
    let secret = "sk-echoed-ABCDEFGHIJ";
    let body = format!(r#"{{"error":{{"message":"key {secret} is revoked"}}}}"#);
    let server =
        server(Scenario::new().fallback(Reply::failing(Fault::HttpStatus { status: 403, body })))
            .await;
    let model = provider(crate::common::Api::Chat, config(&server).api_key(secret));
    let out = run(model.as_ref(), ask("x")).await;
    let text = out.err().to_string();
    assert!(text.contains("is revoked"), "{text}");
    assert!(!text.contains(secret), "{text}");
}

#[tokio::test]
async fn no_retry_after_output_started() {
    for api in BOTH {
        // Chunks up to and including two text deltas.
        let chunks = match api {
            crate::common::Api::Chat => 3,
            crate::common::Api::Responses => 6,
        };
        let server = server(
            Scenario::new()
                .rule(
                    Rule::always().times(1).reply(
                        Reply::text("one two three four five six")
                            .fault(Fault::ResetAfterChunks(chunks)),
                    ),
                )
                .fallback(Reply::text("should not be used")),
        )
        .await;
        let model = provider(api, config(&server));
        let out = run(model.as_ref(), ask("x")).await;
        assert!(out.output_events() > 0, "{api:?}: some output arrived");
        assert!(out.retries().is_empty());
        match out.err() {
            ModelError::Interrupted { stage, .. } => assert_eq!(*stage, "response_stream"),
            other => panic!("{api:?}: {other:?}"),
        }
        assert_eq!(server.requests().len(), 1, "{api:?}");
    }
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = agentry_model::OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"), "m").retry(
        RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(5),
        },
    );
    for api in BOTH {
        let model = provider(api, cfg.clone());
        let out = run(model.as_ref(), ask("x")).await;
        assert_eq!(out.retries().len(), 1);
        match out.err() {
            ModelError::Connect { endpoint, detail } => {
                assert!(
                    endpoint.starts_with(&format!("http://127.0.0.1:{port}/v1/")),
                    "{endpoint}"
                );
                // The cause, once: not reqwest's "error sending request for url (…)",
                // which repeats the endpoint the message already names.
                assert!(detail.contains("refused"), "{detail}");
                assert!(!detail.contains("error sending request"), "{detail}");
                assert!(!detail.contains(endpoint.as_str()), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
