use std::sync::Arc;

use agentry_actions::*;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn legacy_tools_and_tool_logs() {
    let env = Env::new();
    let mut reg = ActionRegistry::new();
    reg.register_tool(LegacyTool::new(
        "get_weather",
        "Weather for a city.",
        json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        |args| async move {
            if args["city"] == "Atlantis" {
                Err("unknown city".to_owned())
            } else {
                Ok(json!({"temp_c": 21}))
            }
        },
    ))
    .unwrap();
    let script = Script::new(vec![
        r(calls(&[
            ("w1", "get_weather", json!({"city":"Paris"})),
            ("w2", "get_weather", json!({"city":"Atlantis"})),
        ])),
        r(text("")),
        r(text("21C")),
    ]);
    let out = lp(reg).run(env.input(&script, "weather?")).await.unwrap();
    assert_eq!(out.tool_logs.len(), 2);
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        out.tool_logs[1].error.as_ref().unwrap().message,
        "unknown city"
    );
    assert_eq!(out.tool_logs[0].data, Some(json!({"temp_c": 21})));
}

#[tokio::test]
async fn execution_local_actions_do_not_leak() {
    let env = Env::new();
    let agent = Arc::new(registry(vec![add_action()]));
    let mut view = RegistryView::new(agent.clone());
    view.register_local_fn(FnAction::new(
        "local",
        "Local.",
        json!({"type":"object"}),
        |_c, _v| async { Ok(json!("L")) },
    ))
    .unwrap();
    let script = Script::new(vec![r(calls(&[("c", "local", json!({}))])), r(text(""))]);
    let out = lp(ActionRegistry::new()).run(env.input(&script, "x")).await;
    assert!(out.is_ok());
    let lp_view = ActionLoop::new(
        view,
        &ActionPolicy::new(),
        Arc::new(AutoApprove),
        LoopOptions::default(),
    )
    .unwrap();
    let script = Script::new(vec![r(calls(&[("c", "local", json!({}))])), r(text(""))]);
    let out = lp_view.run(env.input(&script, "x")).await.unwrap();
    assert_eq!(out.records[0].data, Some(json!("L")));
    assert_eq!(script.requests()[0].1.tools.len(), 2);
    assert_eq!(agent.ids(), vec!["add"]);
}

#[test]
fn summarize_records_finds_commands_failures_and_validation() {
    let exe = agentry_core::ExecutionId::new();
    let mk = |i: u32, cmd: &str, status: ActionStatus, rc: i64| {
        let mut r: ActionRecord = serde_json::from_value(json!({
            "call_id": {"execution": exe.as_str(), "round": 0, "index": i},
            "action_id": "run_bash", "purpose": "p", "source": "native_tool_calls", "status": status,
            "input": {"cmd": cmd}, "data": {"returncode": rc},
            "timing": {"started_at": 0, "duration_us": 0}, "expose_to_model": true
        }))
        .unwrap();
        if !status.is_ok() {
            r.error = Some(RecordError {
                code: "x".into(),
                message: "failed".into(),
            });
        }
        r
    };
    let records = vec![
        mk(0, "ls", ActionStatus::Success, 0),
        mk(1, "pytest -q", ActionStatus::Success, 1),
        mk(2, "cat missing", ActionStatus::Error, 1),
        mk(3, "cargo test", ActionStatus::Success, 0),
    ];
    let s = summarize_records(&records, DEFAULT_VALIDATION_MARKERS);
    assert_eq!(s.actions_attempted, 4);
    assert_eq!(s.commands_run, vec!["ls", "pytest -q", "cargo test"]);
    assert_eq!(s.commands_attempted.len(), 4);
    assert_eq!(
        s.failed_actions.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let v = s.latest_validation.as_ref().unwrap();
    assert_eq!((v.index, v.passed), (3, true));
    assert_eq!(s.validation_passed(), Some(true));
    let s = summarize_records(&records[..3], &["pytest"]);
    assert_eq!(s.validation_passed(), Some(false));
}

#[test]
fn action_info_lists_in_registration_order() {
    let reg = registry(vec![
        add_action(),
        FnAction::new("zeta", "Z.", json!({"type":"object"}), |_c, v| async {
            Ok(v)
        }),
    ]);
    let info = reg.action_info();
    let keys: Vec<&String> = info.keys().collect();
    assert_eq!(keys, vec!["add", "zeta"]);
}

#[test]
fn loop_and_dispatch_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let env = Env::new();
    let script = Script::new(vec![]);
    let lp = lp(registry(vec![add_action()]));
    let fut = lp.run(env.input(&script, "x"));
    assert_send(&fut);
    drop(fut);
    let scope = env.scope();
    let call = lp
        .dispatcher()
        .call(&scope, HostCall::new("add", json!({"a": 1, "b": 2})));
    assert_send(&call);
}
