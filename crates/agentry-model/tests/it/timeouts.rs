//! Stall detection: first event, stream idle and non-streamed bodies, each naming
//! its stage, firing close to the configured limit.
use std::time::{Duration, Instant};

use agentry_core::StallStatus;
use agentry_model::{ModelError, OpenAiConfig, RetryPolicy, StreamEvent};
use agentry_testkit::{Fault, MockServer, Reply, Rule, Scenario};

use crate::common::{Api, BOTH, ask, config, provider, run, serve, server};

const LIMIT: Duration = Duration::from_millis(300);

fn short(server: &MockServer) -> OpenAiConfig {
    config(server)
        .first_event_timeout(Some(LIMIT))
        .stream_idle_timeout(Some(LIMIT))
        .request_timeout(Some(LIMIT))
        .retry(RetryPolicy::none())
}

fn assert_stall(err: &ModelError, stage: &str, elapsed: Duration) {
    match err {
        ModelError::Stall(s) => {
            assert_eq!(s.stage, stage, "{err:?}");
            assert_eq!(s.status, StallStatus::Stalled);
            assert_eq!(s.limit, LIMIT);
            assert!(s.elapsed >= LIMIT, "{s:?}");
        }
        other => panic!("expected a stall at {stage}, got {other:?}"),
    }
    // Loose bounds: never early, never hanging.
    assert!(elapsed >= LIMIT, "fired early after {elapsed:?}");
    assert!(elapsed < LIMIT * 6, "fired late after {elapsed:?}");
}

#[tokio::test]
async fn hang_is_a_first_event_stall() {
    for api in BOTH {
        let server = serve(Reply::text("never").fault(Fault::Hang)).await;
        let model = provider(api, short(&server));
        let started = Instant::now();
        let out = run(model.as_ref(), ask("x")).await;
        assert_stall(out.err(), "response_first_event", started.elapsed());
        assert!(out.events.is_empty());
    }
}

#[tokio::test]
async fn keep_alive_comments_do_not_count_as_progress() {
    for api in BOTH {
        let server = serve(Reply::text("never").fault(Fault::KeepAliveOnly)).await;
        let model = provider(api, short(&server));
        let started = Instant::now();
        let out = run(model.as_ref(), ask("x")).await;
        assert_stall(out.err(), "response_first_event", started.elapsed());
    }
}

#[tokio::test]
async fn silence_after_output_is_a_stream_stall() {
    for api in BOTH {
        let chunks = match api {
            Api::Chat => 3,
            Api::Responses => 6,
        };
        let server =
            serve(Reply::text("one two three four").fault(Fault::HangAfterChunks(chunks))).await;
        let model = provider(api, short(&server));
        let started = Instant::now();
        let out = run(model.as_ref(), ask("x")).await;
        assert!(out.output_events() > 0, "{api:?}");
        let last_output = started.elapsed();
        assert_stall(out.err(), "response_stream", last_output);
        assert!(out.retries().is_empty(), "no retry after output");
    }
}

#[tokio::test]
async fn first_event_stall_is_retried() {
    for api in BOTH {
        let server = server(
            Scenario::new()
                .rule(Rule::always().times(1).reply(Reply::failing(Fault::Hang)))
                .fallback(Reply::text("second try")),
        )
        .await;
        let model = provider(
            api,
            short(&server).retry(RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(10),
            }),
        );
        let out = run(model.as_ref(), ask("x")).await;
        out.ok();
        assert_eq!(out.text(), "second try");
        let retries = out.retries();
        assert_eq!(retries.len(), 1);
        assert_eq!(retries[0].error_code, "model.stall");
    }
}

#[tokio::test]
async fn slow_first_token_within_the_limit_is_fine() {
    for api in BOTH {
        let server =
            serve(Reply::text("late but fine").first_token_delay(Duration::from_millis(100))).await;
        let model = provider(
            api,
            short(&server).first_event_timeout(Some(Duration::from_secs(3))),
        );
        let out = run(model.as_ref(), ask("x")).await;
        out.ok();
        assert_eq!(out.text(), "late but fine");
    }
}

#[tokio::test]
async fn non_streamed_body_is_bounded() {
    for fault in [Fault::Hang, Fault::KeepAliveOnly] {
        for api in BOTH {
            let server = serve(Reply::text("never").fault(fault.clone())).await;
            let model = provider(api, short(&server).stream(false));
            let started = Instant::now();
            let out = run(model.as_ref(), ask("x")).await;
            assert_stall(out.err(), "response_materialization", started.elapsed());
        }
    }
}

#[tokio::test]
async fn unlimited_timeouts_still_stream() {
    let server = serve(Reply::text("no limits").chunk_delay(Duration::from_millis(5))).await;
    let model = provider(
        Api::Chat,
        config(&server)
            .first_event_timeout(None)
            .stream_idle_timeout(None),
    );
    let out = run(model.as_ref(), ask("x")).await;
    out.ok();
    assert!(matches!(out.events.last(), Some(StreamEvent::Done(_))));
}
