use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_core::{
    Delivery, Dispatch, EventCenter, EventType, HookError, HookOptions, Level, NewEvent, REDACTED,
    RunContext, RunKind, RuntimeEvent, hook_fn,
};
use futures::StreamExt;
use serde_json::json;

type Seen = Arc<Mutex<Vec<Arc<RuntimeEvent>>>>;

fn collector(center: &EventCenter, options: HookOptions) -> Seen {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    center
        .register(
            options,
            hook_fn(move |ev| {
                let s = s.clone();
                async move {
                    s.lock().unwrap().push(ev);
                    Ok::<(), HookError>(())
                }
            }),
        )
        .unwrap();
    seen
}

fn delta(i: usize) -> NewEvent {
    NewEvent::new(EventType::MODEL_STREAMING).payload(json!({"delta": format!("d{i}")}))
}

#[tokio::test]
async fn seq_is_gap_free_and_hooks_see_it_in_order_under_concurrency() {
    let center = EventCenter::new();
    let seen = collector(&center, HookOptions::new("all"));
    let emitter = center.emitter("exe_concurrent");
    let run = RunContext::root(RunKind::AGENT_EXECUTION);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let emitter = emitter.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                emitter
                    .emit(
                        &run,
                        NewEvent::new(EventType::new(format!("test.t{t}_{i}"))),
                    )
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
    let ids: std::collections::HashSet<_> = seen.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids.len(), 400);
}

#[tokio::test]
async fn summary_coalesces_deltas_and_flushes_early_on_other_events() {
    let center = EventCenter::new();
    let seen = collector(
        &center,
        HookOptions::new("summary").summary(3, Duration::from_secs(60)),
    );
    let emitter = center.emitter("exe_s");
    let run = RunContext::root(RunKind::MODEL_REQUEST);
    for i in 0..7 {
        emitter.emit(&run, delta(i)).await;
    }
    // 7 deltas with max_items 3: two summaries delivered, one delta buffered.
    assert_eq!(seen.lock().unwrap().len(), 2);
    emitter
        .emit(&run, NewEvent::new(EventType::MODEL_COMPLETED))
        .await;
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        4,
        "buffered delta flushed before the non-delta event"
    );
    assert_eq!(seen[0].meta["coalesced"], true);
    assert_eq!(seen[0].meta["coalesced_count"], 3);
    assert_eq!(seen[0].payload["count"], 3);
    assert_eq!(seen[0].payload["events"][0]["payload"]["delta"], "d0");
    assert_eq!(
        seen[0].message.as_deref(),
        Some("3 coalesced runtime events")
    );
    // A single buffered delta is delivered as itself, not as a summary of one.
    assert_eq!(seen[2].event_type, EventType::MODEL_STREAMING);
    assert_eq!(seen[2].payload["delta"], "d6");
    assert_eq!(seen[3].event_type, EventType::MODEL_COMPLETED);
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn summary_flushes_by_interval_in_background() {
    let center = EventCenter::new();
    let seen = collector(
        &center,
        HookOptions::new("bg")
            .summary(1000, Duration::from_millis(50))
            .background(),
    );
    let emitter = center.emitter("exe_bg");
    let run = RunContext::root(RunKind::MODEL_REQUEST);
    for i in 0..5 {
        emitter.emit(&run, delta(i)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        1,
        "one summary after the interval, without any flush call"
    );
    assert_eq!(seen[0].meta["coalesced_count"], 5);
}

#[tokio::test]
async fn background_hooks_are_drained_by_flush_and_shutdown() {
    let center = EventCenter::new();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    center
        .register(
            HookOptions::new("slow").dispatch(Dispatch::Background),
            hook_fn(move |ev| {
                let s = s.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    s.lock().unwrap().push(ev);
                    Ok::<(), HookError>(())
                }
            }),
        )
        .unwrap();
    let emitter = center.emitter("exe_flush");
    let run = RunContext::root(RunKind::REQUEST);
    for i in 0..20 {
        emitter
            .emit(&run, NewEvent::new(EventType::new(format!("test.e{i}"))))
            .await;
    }
    center.flush().await;
    assert_eq!(seen.lock().unwrap().len(), 20);
    emitter
        .emit(&run, NewEvent::new(EventType::REQUEST_COMPLETED))
        .await;
    center.shutdown().await;
    assert_eq!(seen.lock().unwrap().len(), 21);
    assert_eq!(center.hook_stats("slow").unwrap().delivered, 21);
}

#[tokio::test]
async fn failing_and_panicking_hooks_never_break_the_run() {
    let center = EventCenter::new();
    center
        .register(
            HookOptions::new("fails"),
            hook_fn(|_| async { Err::<(), HookError>("sink is down".into()) }),
        )
        .unwrap();
    center
        .register(
            HookOptions::new("panics"),
            hook_fn(|ev: Arc<RuntimeEvent>| async move {
                if ev.seq > 0 {
                    panic!("hook bug");
                }
                Ok::<(), HookError>(())
            }),
        )
        .unwrap();
    let seen = collector(&center, HookOptions::new("healthy"));
    let emitter = center.emitter("exe_f");
    let run = RunContext::root(RunKind::REQUEST);
    for _ in 0..3 {
        emitter
            .emit(&run, NewEvent::new(EventType::REQUEST_STARTED))
            .await;
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(center.hook_stats("fails").unwrap().failed, 3);
    assert_eq!(center.hook_stats("panics").unwrap().failed, 3);
    assert_eq!(center.hook_stats("healthy").unwrap().delivered, 3);
}

#[tokio::test]
async fn redaction_happens_before_any_hook() {
    let center = EventCenter::new();
    center.redactor().register_secret("sk-test-0123456789");
    let seen = collector(&center, HookOptions::new("sink"));
    let emitter = center.recording_emitter("exe_r");
    let run = RunContext::root(RunKind::REQUEST);
    emitter
        .emit(
            &run,
            NewEvent::new(EventType::MODEL_REQUESTING)
                .message("calling with sk-test-0123456789")
                .payload(json!({"headers": {"authorization": "Bearer x"}, "prompt": "key is sk-test-0123456789"}))
                .meta("api_key", "plain"),
        )
        .await;
    let ev = seen.lock().unwrap()[0].clone();
    let text = serde_json::to_string(&*ev).unwrap();
    assert!(!text.contains("sk-test-0123456789"), "{text}");
    assert_eq!(ev.payload["headers"]["authorization"], REDACTED);
    assert_eq!(ev.meta["api_key"], REDACTED);
    assert_eq!(ev.message.as_deref(), Some("calling with [REDACTED]"));
    // The recorded log holds the same redacted event.
    assert_eq!(emitter.recorded()[0], ev);
}

#[tokio::test]
async fn filters_select_by_name_and_prefix() {
    let center = EventCenter::new();
    let models = collector(&center, HookOptions::new("models").event_types(["model.*"]));
    let exact = collector(
        &center,
        HookOptions::new("exact").event_types(["request.completed"]),
    );
    let emitter = center.emitter("exe_filter");
    let run = RunContext::root(RunKind::REQUEST);
    for t in [
        EventType::REQUEST_STARTED,
        EventType::MODEL_REQUESTING,
        EventType::MODEL_COMPLETED,
        EventType::REQUEST_COMPLETED,
    ] {
        emitter.emit(&run, NewEvent::new(t)).await;
    }
    assert_eq!(models.lock().unwrap().len(), 2);
    assert_eq!(exact.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn subscribers_replay_history_and_end_on_close() {
    let center = EventCenter::new();
    let emitter = center.recording_emitter("exe_sub");
    let run = RunContext::root(RunKind::REQUEST);
    emitter
        .emit(&run, NewEvent::new(EventType::REQUEST_STARTED))
        .await;
    let stream = emitter.subscribe();
    emitter
        .emit(
            &run,
            NewEvent::new(EventType::REQUEST_COMPLETED).level(Level::Warning),
        )
        .await;
    emitter.close();
    let events: Vec<_> = stream.collect().await;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
}

#[tokio::test]
async fn registration_rules() {
    let center = EventCenter::new();
    center
        .register(
            HookOptions::new("a"),
            hook_fn(|_| async { Ok::<(), HookError>(()) }),
        )
        .unwrap();
    let dup = center.register(
        HookOptions::new("a"),
        hook_fn(|_| async { Ok::<(), HookError>(()) }),
    );
    assert_eq!(
        agentry_core::ErrorCode::code(&dup.unwrap_err()),
        "core.hook_duplicate"
    );
    let bad = center.register(
        HookOptions::new("b").delivery(Delivery::Summary {
            max_items: 0,
            emit_interval: Duration::from_millis(1),
            max_summary_items: 1,
        }),
        hook_fn(|_| async { Ok::<(), HookError>(()) }),
    );
    assert!(bad.is_err());
    assert!(center.unregister("a").await);
    assert!(!center.unregister("a").await);
    assert!(center.hook_names().is_empty());
}

#[test]
fn background_hook_outside_a_runtime_is_refused() {
    let center = EventCenter::new();
    let err = center
        .register(
            HookOptions::new("bg").background(),
            hook_fn(|_| async { Ok::<(), HookError>(()) }),
        )
        .unwrap_err();
    assert_eq!(agentry_core::ErrorCode::code(&err), "core.no_async_runtime");
}
