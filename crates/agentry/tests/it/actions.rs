use std::sync::Arc;

use agentry::actions::{ActionStatus, AutoApprove, FnAction, SideEffect};
use agentry::model::{ScriptedModel, ScriptedTurn, TestModel};
use agentry::{AgentryError, ErrorCode, Limits, Route, Runtime, Settings};
use agentry_testkit::{MockToolCall, Reply, Rule, Scenario};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::mock_runtime;

fn add_action() -> FnAction {
    FnAction::new(
        "add",
        "Adds two integers.",
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
        |_ctx, input| async move { Ok(json!({"sum": input["a"].as_i64().unwrap_or(0) + input["b"].as_i64().unwrap_or(0)})) },
    )
    .side_effect(SideEffect::Read)
}

#[tokio::test]
async fn test_model_calls_each_action_then_answers() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let agent = runtime.agent("calc").action_fn(add_action()).unwrap();
    let execution = agent.input("add numbers").start().unwrap();
    let text = execution.text().await.unwrap();
    assert!(!text.is_empty());
    let meta = execution.meta().await;
    assert_eq!(meta.route, Route::ActionLoop);
    let actions = meta.actions.expect("loop meta");
    let adds: Vec<_> = actions
        .action_logs
        .iter()
        .filter(|r| r.action_id == "add")
        .collect();
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0].status, ActionStatus::Success);
    // The last planning round called nothing: recorded as a visible `skipped` record.
    let last = actions.action_logs.last().unwrap();
    assert_eq!(last.status, ActionStatus::Skipped);
    assert!(
        meta.diagnostics.budget.model_requests_used >= 2,
        "planning and answer both go through the gateway"
    );
    let types: Vec<String> = execution
        .events()
        .map(|e| e.event_type.to_string())
        .collect()
        .await;
    for t in [
        "action.loop_started",
        "action.started",
        "action.completed",
        "action.loop_completed",
        "model.requesting",
    ] {
        assert!(types.contains(&t.to_string()), "{t} missing in {types:?}");
    }
}

#[tokio::test]
async fn native_tool_calls_through_the_mock_server() {
    let scenario = Scenario::new()
        .rule(Rule::when_no_tool_results().reply(Reply::tool_calls(vec![
            MockToolCall::new("call_a", "add", json!({"a": 2, "b": 3})),
            MockToolCall::new("call_b", "add", json!({"a": 10, "b": 1})),
        ])))
        .rule(Rule::when_tool_results().reply(Reply::text("The sums are 5 and 11.")));
    let (runtime, server) = mock_runtime(scenario, Settings::default()).await;
    let agent = runtime.agent("calc").action_fn(add_action()).unwrap();
    let execution = agent.input("add 2+3 and 10+1").start().unwrap();
    assert_eq!(execution.text().await.unwrap(), "The sums are 5 and 11.");
    let actions = execution.meta().await.actions.unwrap();
    let sums: Vec<Value> = actions
        .action_logs
        .iter()
        .filter(|r| r.action_id == "add")
        .map(|r| r.data.clone().unwrap()["sum"].clone())
        .collect();
    assert_eq!(sums, vec![json!(5), json!(11)]);
    // The tools were offered, and the results went back as tool messages with their ids.
    let requests = server.requests();
    assert!(requests[0].tool_names().contains(&"add".to_string()));
    let with_results = requests
        .iter()
        .find(|r| r.has_tool_results())
        .expect("a request carrying tool results");
    let tool_ids: Vec<&str> = with_results.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(tool_ids, vec!["call_a", "call_b"]);
}

#[tokio::test]
async fn the_model_request_budget_covers_planning_requests() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let agent = runtime.agent("calc").action_fn(add_action()).unwrap();
    let execution = agent
        .input("x")
        .limits(Limits::new().max_model_requests(1))
        .start()
        .unwrap();
    let err = execution.text().await.unwrap_err();
    assert!(
        matches!(
            err,
            AgentryError::LimitExceeded {
                limit: "max_model_requests",
                ..
            }
        ),
        "{err:?}"
    );
    let meta = execution.meta().await;
    assert_eq!(meta.diagnostics.limit_events.len(), 1);
    assert_eq!(meta.diagnostics.budget.model_requests_used, 1);
    let types: Vec<String> = execution
        .events()
        .map(|e| e.event_type.to_string())
        .collect()
        .await;
    assert!(
        types.contains(&"agent_execution.limit_exceeded".to_string()),
        "{types:?}"
    );
}

#[tokio::test]
async fn execution_local_actions_do_not_leak_into_the_agent() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let agent = runtime.agent("a");
    let execution = agent.input("x").action_fn(add_action()).start().unwrap();
    execution.text().await.unwrap();
    let logs = execution.meta().await.actions.unwrap().action_logs;
    assert_eq!(logs.iter().filter(|r| r.action_id == "add").count(), 1);
    assert!(agent.actions().is_empty());
    let plain = agent.input("y").start().unwrap();
    plain.text().await.unwrap();
    assert_eq!(plain.meta().await.route, Route::ModelRequest);
    // A duplicate id is refused when the execution starts.
    let err = runtime
        .agent("b")
        .action_fn(add_action())
        .unwrap()
        .input("z")
        .action_fn(add_action())
        .start()
        .unwrap_err();
    assert!(err.code().starts_with("action"), "{err}");
}

#[tokio::test]
async fn approval_fails_closed_by_default_and_auto_approve_runs() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let guarded = add_action().approval_required(true);
    let agent = runtime.agent("a").action_fn(guarded).unwrap();
    let execution = agent.input("x").start().unwrap();
    execution.text().await.unwrap();
    let record = &execution.meta().await.actions.unwrap().action_logs[0];
    assert_eq!(record.status, ActionStatus::ApprovalRequired);
    let types: Vec<String> = execution
        .events()
        .map(|e| e.event_type.to_string())
        .collect()
        .await;
    assert!(
        types.iter().any(|t| t.starts_with("policy.approval.")),
        "{types:?}"
    );

    let execution = agent
        .input("x")
        .approval(Arc::new(AutoApprove))
        .start()
        .unwrap();
    execution.text().await.unwrap();
    assert_eq!(
        execution.meta().await.actions.unwrap().action_logs[0].status,
        ActionStatus::Success
    );
}

#[tokio::test]
async fn planner_uses_its_own_model_key() {
    let planner = Arc::new(ScriptedModel::new(vec![
        ScriptedTurn::tool_calls(vec![("p1", "add", json!({"a": 1, "b": 1}))]),
        ScriptedTurn::text("no more actions"),
    ]));
    let runtime = Runtime::builder()
        .model("default", Arc::new(TestModel::new()))
        .model("planner", planner.clone())
        .build()
        .unwrap();
    let agent = runtime
        .agent("a")
        .planner_model("planner")
        .action_fn(add_action())
        .unwrap();
    let execution = agent.input("x").start().unwrap();
    execution.text().await.unwrap();
    let meta = execution.meta().await;
    let keys: Vec<&str> = meta
        .model_requests
        .iter()
        .map(|r| r.model_key.as_str())
        .collect();
    assert_eq!(keys.first(), Some(&"planner"));
    assert_eq!(
        keys.last(),
        Some(&"default"),
        "the answer comes from the answer model: {keys:?}"
    );
    assert!(!planner.requests()[0].tools.is_empty());
    assert_eq!(
        meta.actions.unwrap().action_logs[0].data.clone().unwrap()["sum"],
        2
    );
}

#[tokio::test]
async fn structured_answer_after_actions() {
    let runtime = Runtime::builder().test_model().build().unwrap();
    let agent = runtime.agent("a").action_fn(add_action()).unwrap();
    let schema = json!({"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]});
    let data = agent.input("x").output_schema(schema).data().await.unwrap();
    assert!(data["total"].is_i64());
}
