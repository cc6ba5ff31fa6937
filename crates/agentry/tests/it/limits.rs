use std::time::Duration;

use agentry::core::StallStatus;
use agentry::{AgentryError, ErrorCode, ExecutionStatus, Limits, Runtime, Settings};
use agentry_testkit::{Fault, Reply, Scenario};
use futures::StreamExt;

use crate::mock_runtime;

#[tokio::test]
async fn invalid_limits_are_rejected_at_build_time() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    for limits in [
        Limits::new().max_seconds(0.0),
        Limits::new().max_no_progress_seconds(f64::NAN),
        Limits::new().max_model_requests(0),
    ] {
        let err = runtime
            .agent("a")
            .input("x")
            .limits(limits)
            .start()
            .unwrap_err();
        assert_eq!(err.code(), "execution.invalid_limit");
    }
    let err = Runtime::builder()
        .test_model()
        .limits(Limits::new().max_seconds(-1.0))
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "execution.invalid_limit");
}

#[tokio::test]
async fn max_seconds_ends_a_slow_execution_with_a_timeout() {
    let scenario =
        Scenario::new().fallback(Reply::text("slow").first_token_delay(Duration::from_secs(20)));
    let (runtime, _server) = mock_runtime(scenario, Settings::default()).await;
    let started = std::time::Instant::now();
    let execution = runtime
        .agent("a")
        .input("x")
        .limits(Limits::new().max_seconds(0.4))
        .start()
        .unwrap();
    let err = execution.text().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let AgentryError::Stall(stall) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(stall.status, StallStatus::TimedOut);
    assert_eq!(
        stall.stage, "response_first_event",
        "the stage in progress is named"
    );
    let meta = execution.meta().await;
    assert_eq!(meta.status, ExecutionStatus::Error);
    assert_eq!(meta.diagnostics.timeouts.len(), 1);
    assert_eq!(
        meta.diagnostics.errors[0].code.as_deref(),
        Some("execution.stall")
    );
}

#[tokio::test]
async fn heartbeats_are_not_progress() {
    let scenario = Scenario::new().fallback(Reply::text("x").fault(Fault::Hang));
    let settings = Settings {
        heartbeat_interval: Duration::from_millis(40),
        ..Settings::default()
    };
    let (runtime, _server) = mock_runtime(scenario, settings).await;
    let execution = runtime
        .agent("a")
        .input("x")
        .limits(Limits::new().max_no_progress_seconds(0.4))
        .start()
        .unwrap();
    let err = execution.text().await.unwrap_err();
    let AgentryError::Stall(stall) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(stall.status, StallStatus::Stalled);
    let events: Vec<_> = execution.events().collect().await;
    let heartbeats = events
        .iter()
        .filter(|e| e.event_type.as_str() == "agent_execution.heartbeat")
        .count();
    assert!(
        heartbeats >= 3,
        "heartbeats were emitted while idle: {heartbeats}"
    );
    assert_eq!(execution.meta().await.diagnostics.stalls.len(), 1);
}

#[tokio::test]
async fn model_request_budget_is_accounted() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let execution = runtime
        .agent("a")
        .input("x")
        .limits(Limits::new().max_model_requests(1))
        .start()
        .unwrap();
    execution.text().await.unwrap();
    let meta = execution.meta().await;
    assert_eq!(meta.diagnostics.budget.model_requests_used, 1);
    assert_eq!(meta.diagnostics.budget.max_model_requests, Some(1));
    assert!(meta.diagnostics.limit_events.is_empty());
}
