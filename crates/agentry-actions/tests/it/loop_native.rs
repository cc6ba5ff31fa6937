use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_actions::*;
use agentry_core::ErrorCode;
use agentry_model::{Message, OutputSchema};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn parallel_calls_results_in_order_with_tool_messages() {
    let env = Env::new();
    let slow_first = FnAction::new(
        "wait",
        "Waits n ms.",
        json!({"type":"object","properties":{"ms":{"type":"integer"}},"required":["ms"]}),
        |_c, v| async move {
            tokio::time::sleep(Duration::from_millis(v["ms"].as_u64().unwrap())).await;
            Ok(v["ms"].clone())
        },
    );
    let script = Script::new(vec![
        r(calls(&[
            ("c1", "wait", json!({"ms": 60})),
            ("c2", "wait", json!({"ms": 1})),
            ("c3", "add", json!({"a":1,"b":2})),
        ])),
        r(text("planner done")),
        r(text("The answer")),
    ]);
    let out = lp(registry(vec![slow_first, add_action()]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    assert_eq!(out.final_response.text, "The answer");
    assert_eq!(out.rounds, 1);
    let ok: Vec<_> = out
        .records
        .iter()
        .filter(|r| r.is_ok())
        .map(|r| r.data.clone().unwrap())
        .collect();
    assert_eq!(ok, vec![json!(60), json!(1), json!(3)]);
    // Call ids follow the plan.
    assert_eq!(out.records[1].call_id.index, 1);
    assert_eq!(out.records[0].call_id.round, 0);
    // The zero-call planning round is a skipped note, not shown to the model.
    let note = out.records.last().unwrap();
    assert_eq!(note.status, ActionStatus::Skipped);
    assert_eq!(note.error_code(), Some(codes::NATIVE_TOOL_CALLS_EMPTY));
    assert!(!note.expose_to_model);
    assert_eq!(out.tool_logs.len(), 3);
    // Second planning request carries tool results with matching ids, in order.
    let reqs = script.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].0, CallPurpose::Planning);
    assert_eq!(reqs[0].1.tools.len(), 2);
    let tm = tool_messages(&reqs[1].1);
    assert_eq!(
        tm.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        vec!["c1", "c2", "c3"]
    );
    assert_eq!(tm[2].1["data"], 3);
    assert!(
        matches!(&reqs[1].1.messages[1], Message::Assistant { tool_calls, .. } if tool_calls.len() == 3)
    );
    // The answer request has no tools.
    assert_eq!(reqs[2].0, CallPurpose::Answer);
    assert!(reqs[2].1.tools.is_empty());
    assert!(
        matches!(out.messages.last(), Some(Message::Assistant { content: Some(c), .. }) if c == "The answer")
    );
}

#[tokio::test]
async fn loop_events_and_runs() {
    let env = Env::new();
    let script = Script::new(vec![
        r(calls(&[("c1", "add", json!({"a":1,"b":2}))])),
        r(text("")),
        r(text("3")),
    ]);
    lp(registry(vec![add_action()]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    let ev = env.events();
    let types: Vec<&str> = ev.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "action.loop_started",
            "action.plan_ready",
            "action.started",
            "action.completed",
            "action.plan_ready",
            "action.loop_completed"
        ]
    );
    let loop_run = &ev[0].run;
    assert_eq!(loop_run.run_kind.as_str(), "action_loop");
    assert_eq!(loop_run.parent_run_id.as_ref(), Some(&env.run.run_id));
    assert_eq!(ev[2].run.parent_run_id.as_ref(), Some(&loop_run.run_id));
    assert_eq!(ev[2].run.meta["action_name"], "add");
    assert_eq!(ev[1].payload["round_index"], 0);
    assert_eq!(
        ev[1].payload["decision"]["execution_commands"][0]["action_id"],
        "add"
    );
    // seq has no gaps
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
}

#[tokio::test]
async fn max_rounds_gives_a_visible_blocked_record_and_an_answer() {
    let env = Env::new();
    let turns = (0..5)
        .map(|i| r(calls(&[(&format!("c{i}"), "add", json!({"a": i, "b": 1}))])))
        .collect();
    let script = Script::new(turns);
    let out = lp_with(
        registry(vec![add_action()]),
        LoopOptions {
            max_rounds: 3,
            ..Default::default()
        },
    )
    .run(env.input(&script, "go"))
    .await
    .unwrap();
    assert_eq!(out.rounds, 3);
    assert_eq!(out.stop, StopReason::MaxRounds);
    let last = out.records.last().unwrap();
    assert_eq!(
        (last.status, last.error_code()),
        (ActionStatus::Blocked, Some(codes::MAX_ROUNDS_REACHED))
    );
    assert!(last.expose_to_model);
    let reqs = script.requests();
    assert_eq!(reqs.len(), 4, "3 planning + 1 answer");
    let (purpose, answer) = reqs.last().unwrap();
    assert_eq!(*purpose, CallPurpose::Answer);
    assert!(
        matches!(answer.messages.last(), Some(Message::User { content }) if content.contains("limit of 3 rounds"))
    );
    assert!(
        out.diagnostics
            .iter()
            .any(|d| d.code == codes::MAX_ROUNDS_REACHED)
    );
}

#[tokio::test]
async fn same_action_failing_twice_stops_the_loop() {
    let env = Env::new();
    let turns = (0..5)
        .map(|i| {
            r(calls(&[(
                &format!("c{i}"),
                "add",
                json!({"a": "x", "b": i}),
            )]))
        })
        .collect();
    let script = Script::new(turns);
    let out = lp(registry(vec![add_action()]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    assert_eq!(out.rounds, 2);
    assert_eq!(
        out.stop,
        StopReason::RepeatedFailure {
            action_id: "add".into()
        }
    );
    assert_eq!(
        out.records.last().unwrap().error_code(),
        Some(codes::REPEATED_FAILURE)
    );
}

#[tokio::test]
async fn unchanged_evidence_stops_after_three_rounds() {
    let env = Env::new();
    let turns = (0..6)
        .map(|i| r(calls(&[(&format!("c{i}"), "add", json!({"a": 1, "b": 1}))])))
        .collect();
    let script = Script::new(turns);
    let out = lp(registry(vec![add_action()]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    assert_eq!(out.rounds, 3);
    assert_eq!(out.stop, StopReason::UnchangedEvidence);
}

#[tokio::test]
async fn hallucinations_wrong_types_and_raw_text_end_as_records() {
    let env = Env::new();
    let script = Script::new(vec![
        r(calls(&[
            ("c1", "teleport", json!({})),
            ("c2", "add", json!({"a": [1], "b": 2})),
            ("c3", "add", json!("{\"a\":2,\"b\":2}")),
        ])),
        r(raw_call("c4", "add", "a=1, b=2")),
        r(text("")),
        r(text("ok")),
    ]);
    let out = lp(registry(vec![add_action()]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    let codes_seen: Vec<Option<&str>> = out.records.iter().map(|r| r.error_code()).collect();
    assert_eq!(
        codes_seen,
        vec![
            Some(codes::UNKNOWN_ACTION),
            Some(codes::INPUT_SCHEMA_VIOLATION),
            None,
            Some(codes::INPUT_NOT_JSON),
            Some(codes::NATIVE_TOOL_CALLS_EMPTY)
        ]
    );
    assert!(out.records[2].has_diagnostic(codes::INPUT_DECODED_JSON_STRING));
    // Every tool call got a tool message.
    let reqs = script.requests();
    assert_eq!(tool_messages(&reqs[2].1).len(), 4);
    assert_eq!(
        tool_messages(&reqs[1].1)[1].1["data"]["schema"]["required"],
        json!(["a", "b"])
    );
}

#[tokio::test]
async fn ten_thousand_calls_are_capped() {
    let env = Env::new();
    let many: Vec<(String, &str, serde_json::Value)> = (0..10_000)
        .map(|i| (format!("c{i}"), "add", json!({"a": i, "b": 0})))
        .collect();
    let refs: Vec<(&str, &str, serde_json::Value)> = many
        .iter()
        .map(|(a, b, c)| (a.as_str(), *b, c.clone()))
        .collect();
    let script = Script::new(vec![r(calls(&refs)), r(text("")), r(text("done"))]);
    let out = lp_with(
        registry(vec![add_action()]),
        LoopOptions {
            max_calls_per_round: 16,
            ..Default::default()
        },
    )
    .run(env.input(&script, "go"))
    .await
    .unwrap();
    let ran = out
        .records
        .iter()
        .filter(|r| r.status == ActionStatus::Success)
        .count();
    let blocked = out
        .records
        .iter()
        .filter(|r| r.error_code() == Some(codes::CALLS_PER_ROUND_EXCEEDED))
        .count();
    assert_eq!((ran, blocked), (16, 9_984));
    assert_eq!(tool_messages(&script.requests()[1].1).len(), 10_000);
    // One summary event, not ten thousand.
    assert_eq!(
        env.event_types()
            .iter()
            .filter(|t| *t == "action.blocked")
            .count(),
        1
    );
}

#[tokio::test]
async fn identical_calls_run_once() {
    let env = Env::new();
    let count = Arc::new(Mutex::new(0));
    let c2 = count.clone();
    let inc = FnAction::new(
        "inc",
        "Counts.",
        json!({"type":"object","properties":{"k":{"type":"string"}}}),
        move |_c, _v| {
            *c2.lock().unwrap() += 1;
            async { Ok(json!("ok")) }
        },
    )
    .side_effect(SideEffect::Write);
    let script = Script::new(vec![
        r(calls(&[
            ("a", "inc", json!({"k":"x"})),
            ("b", "inc", json!({"k":"x"})),
            ("c", "inc", json!({"k":"y"})),
        ])),
        r(text("")),
    ]);
    let out = lp(registry(vec![inc]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    assert_eq!(*count.lock().unwrap(), 2);
    assert_eq!(out.records[1].tool_call_id.as_deref(), Some("b"));
    assert_eq!(out.records[1].call_id.index, 1);
    assert!(out.records[1].has_diagnostic(codes::DUPLICATE_CALL_REUSED));
    assert_eq!(tool_messages(&script.requests()[1].1).len(), 3);
}

#[tokio::test]
async fn writes_run_sequentially_reads_concurrently() {
    let env = Env::new();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let read = FnAction::new(
        "read",
        "Reads.",
        json!({"type":"object","properties":{"i":{"type":"integer"}}}),
        move |_c, v| {
            let l = l1.clone();
            async move {
                l.lock().unwrap().push(format!("r{}+", v["i"]));
                tokio::time::sleep(Duration::from_millis(20)).await;
                l.lock().unwrap().push(format!("r{}-", v["i"]));
                Ok(json!(null))
            }
        },
    );
    let write = FnAction::new(
        "write",
        "Writes.",
        json!({"type":"object","properties":{"i":{"type":"integer"}}}),
        move |_c, v| {
            let l = l2.clone();
            async move {
                l.lock().unwrap().push(format!("w{}+", v["i"]));
                tokio::time::sleep(Duration::from_millis(5)).await;
                l.lock().unwrap().push(format!("w{}-", v["i"]));
                Ok(json!(null))
            }
        },
    )
    .side_effect(SideEffect::Write);
    let script = Script::new(vec![
        r(calls(&[
            ("1", "read", json!({"i":1})),
            ("2", "read", json!({"i":2})),
            ("3", "write", json!({"i":3})),
            ("4", "write", json!({"i":4})),
            ("5", "read", json!({"i":5})),
        ])),
        r(text("")),
    ]);
    lp(registry(vec![read, write]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(&log[..2], &["r1+", "r2+"], "reads overlap: {log:?}");
    let w3 = log.iter().position(|x| x == "w3+").unwrap();
    assert!(log[..w3].contains(&"r1-".to_owned()) && log[..w3].contains(&"r2-".to_owned()));
    assert_eq!(log[w3 + 1], "w3-");
    assert_eq!(log[w3 + 2], "w4+");
    assert_eq!(log[w3 + 3], "w4-");
    assert_eq!(log[w3 + 4], "r5+");
}

#[tokio::test]
async fn loop_timeout_idle_timeout_and_cancel_are_typed() {
    let env = Env::new();
    let script = Script::new(vec![Turn::Sleep(Duration::from_secs(30), text(""))]);
    let started = std::time::Instant::now();
    let err = lp_with(
        registry(vec![add_action()]),
        LoopOptions {
            loop_timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        },
    )
    .run(env.input(&script, "go"))
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.code(), "action_loop.stalled");
    match &err {
        ActionError::Stall(s) => {
            assert_eq!(s.stage, agentry_core::stage::ACTION_LOOP_CLOSE);
            assert_eq!(s.status, agentry_core::StallStatus::TimedOut);
            assert_eq!(s.limit, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    assert!(env.event_types().contains(&"action.loop_failed".to_owned()));

    let script = Script::new(vec![Turn::Sleep(Duration::from_secs(30), text(""))]);
    let err = lp_with(
        registry(vec![add_action()]),
        LoopOptions {
            idle_timeout: Some(Duration::from_millis(80)),
            ..Default::default()
        },
    )
    .run(env.input(&script, "go"))
    .await
    .unwrap_err();
    assert!(
        matches!(err, ActionError::Stall(ref s) if s.status == agentry_core::StallStatus::Stalled)
    );

    let script = Script::new(vec![Turn::Sleep(Duration::from_secs(30), text(""))]);
    let input = env
        .input(&script, "go")
        .cancel(Box::pin(tokio::time::sleep(Duration::from_millis(20))));
    let err = lp(registry(vec![add_action()]))
        .run(input)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "action_loop.cancelled");

    let script = Script::new(vec![Turn::Fail]);
    let err = lp(registry(vec![add_action()]))
        .run(env.input(&script, "go"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "test.model_down");
}

#[tokio::test]
async fn an_action_that_never_returns_times_out_as_a_record() {
    let env = Env::new();
    let hang = FnAction::new("hang", "Hangs.", json!({"type":"object"}), |_c, _v| async {
        futures::future::pending::<()>().await;
        Ok(json!(null))
    });
    let mut o = LoopOptions::default();
    o.dispatch.action_timeout = Duration::from_millis(50);
    let script = Script::new(vec![r(calls(&[("h", "hang", json!({}))])), r(text(""))]);
    let out = lp_with(registry(vec![hang]), o)
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    assert_eq!(out.records[0].error_code(), Some(codes::EXECUTION_TIMEOUT));
}

#[tokio::test]
async fn large_outputs_become_artifacts_and_the_reader_appears() {
    let env = Env::new();
    let big = FnAction::new(
        "big",
        "Big output.",
        json!({"type":"object"}),
        |_c, _v| async {
            Ok(json!({"rows": (0..2000).map(|i| format!("row {i}")).collect::<Vec<_>>()}))
        },
    );
    let script = Script::new(vec![
        r(calls(&[("b", "big", json!({}))])),
        r(calls(&[(
            "r",
            READ_ARTIFACT_ACTION_ID,
            json!({"selection_key": "sel_0_0", "offset": 0, "max_bytes": 100}),
        )])),
        r(calls(&[(
            "x",
            READ_ARTIFACT_ACTION_ID,
            json!({"selection_key": "sel_9_9"}),
        )])),
        r(text("")),
    ]);
    let out = lp(registry(vec![big]))
        .run(env.input(&script, "go"))
        .await
        .unwrap();
    let reqs = script.requests();
    assert!(
        !reqs[0]
            .1
            .tools
            .iter()
            .any(|t| t.name == READ_ARTIFACT_ACTION_ID)
    );
    assert!(
        reqs[1]
            .1
            .tools
            .iter()
            .any(|t| t.name == READ_ARTIFACT_ACTION_ID)
    );
    let first = &out.records[0];
    let digest = first.digest.as_ref().unwrap();
    assert_eq!(digest.selection_key.as_deref(), Some("sel_0_0"));
    assert!(
        first.data.as_ref().unwrap()["rows"]
            .as_array()
            .unwrap()
            .len()
            == 2000,
        "exact output kept"
    );
    let seen = &tool_messages(&reqs[1].1)[0].1;
    assert!(seen.get("data").is_none());
    assert!(seen["digest"]["total_bytes"].as_u64().unwrap() > 4096);
    let page = out.records[1].data.as_ref().unwrap();
    assert_eq!(page["text"].as_str().unwrap().len(), 100);
    assert_eq!(page["next_offset"], 100);
    assert_eq!(out.records[2].error_code(), Some(codes::ARTIFACT_NOT_FOUND));
    // Released with the scope.
    out.artifacts.release();
    assert!(out.artifacts.read("sel_0_0", 0, 10).is_err());
}

#[tokio::test]
async fn answer_uses_output_schema_and_answer_purpose() {
    let env = Env::new();
    let script = Script::new(vec![r(text("")), r(text("{\"x\":1}"))]);
    let schema = OutputSchema {
        name: "x".into(),
        schema: json!({"type":"object"}),
        strict: false,
    };
    let out = lp(registry(vec![add_action()]))
        .run(env.input(&script, "go").output_schema(schema.clone()))
        .await
        .unwrap();
    assert_eq!(out.rounds, 0);
    let reqs = script.requests();
    assert_eq!(reqs[1].1.output_schema, Some(schema));
    assert!(reqs[0].1.output_schema.is_none());
}

#[tokio::test]
async fn approval_required_calls_go_back_to_the_model() {
    let env = Env::new();
    let rm = FnAction::new(
        "rm",
        "Deletes.",
        json!({"type":"object"}),
        |_c, v| async move { Ok(v) },
    )
    .approval_required(true);
    let script = Script::new(vec![r(calls(&[("c", "rm", json!({}))])), r(text(""))]);
    let out = ActionLoop::new(
        registry(vec![rm]),
        &ActionPolicy::new(),
        default_handler(),
        LoopOptions::default(),
    )
    .unwrap()
    .run(env.input(&script, "go"))
    .await
    .unwrap();
    assert_eq!(out.records[0].status, ActionStatus::ApprovalRequired);
    let tm = tool_messages(&script.requests()[1].1);
    assert_eq!(tm[0].1["status"], "approval_required");
    assert!(
        env.event_types()
            .contains(&"action.approval_required".to_owned())
    );
    // Once a human approves, the host resumes the call by its record.
    let resumed = HostCall::approved_from(&out.records[0]).unwrap();
    let done = out_dispatcher_call(&env, resumed).await;
    assert_eq!(done.status, ActionStatus::Success);
    assert!(HostCall::approved_from(&done).is_none());
}

#[tokio::test]
async fn provider_caller_routes_by_purpose() {
    // Options are validated.
    assert!(
        ActionLoop::new(
            ActionRegistry::new(),
            &ActionPolicy::new(),
            default_handler(),
            LoopOptions {
                concurrency: 0,
                ..Default::default()
            }
        )
        .is_err()
    );
    assert!(
        ActionLoop::new(
            ActionRegistry::new(),
            &ActionPolicy::new(),
            default_handler(),
            LoopOptions {
                loop_timeout: Some(Duration::ZERO),
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[tokio::test]
async fn planner_text_can_be_the_answer() {
    let env = Env::new();
    let script = Script::new(vec![
        r(calls(&[("c1", "add", json!({"a":1,"b":2}))])),
        r(text("It is 3.")),
    ]);
    let out = lp_with(
        registry(vec![add_action()]),
        LoopOptions {
            reuse_planner_answer: true,
            ..Default::default()
        },
    )
    .run(env.input(&script, "1+2?"))
    .await
    .unwrap();
    assert_eq!(out.final_response.text, "It is 3.");
    let reqs = script.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|(p, _)| *p == CallPurpose::Planning));
}

async fn out_dispatcher_call(env: &Env, call: HostCall) -> ActionRecord {
    let rm = FnAction::new(
        "rm",
        "Deletes.",
        json!({"type":"object"}),
        |_c, v| async move { Ok(v) },
    )
    .approval_required(true);
    Dispatcher::new(registry(vec![rm]), &ActionPolicy::new())
        .call(&env.scope(), call)
        .await
}
