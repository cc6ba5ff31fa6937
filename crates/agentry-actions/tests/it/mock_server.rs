//! The loop against the mock OpenAI-compatible server through the real OpenAI chat provider.
use std::sync::Arc;

use agentry_actions::*;
use agentry_model::{OpenAiChat, OpenAiConfig};
use agentry_testkit::{MockServer, MockToolCall, Reply, Rule, Scenario};
use serde_json::json;

use crate::common::*;

fn provider(server: &MockServer) -> Arc<OpenAiChat> {
    Arc::new(
        OpenAiChat::new(OpenAiConfig::new(server.base_url(), "mock-model").api_key("test-key"))
            .unwrap(),
    )
}

#[tokio::test]
async fn native_tool_calls_over_http() {
    let scenario = Scenario::new()
        .rule(Rule::when_no_tool_results().reply(Reply::tool_calls(vec![
            MockToolCall::new("call_1", "add", json!({"a": 2, "b": 3})),
            MockToolCall::new("call_2", "add", json!({"a": "two", "b": 3})),
            MockToolCall::new("call_3", "ghost", json!({})),
            MockToolCall::raw("call_4", "add", "{\"a\": 1,"),
        ])))
        .rule(Rule::when_tool_results().reply(Reply::text("2 + 3 = 5")));
    let server = MockServer::start(scenario).await.unwrap();
    let caller = ProviderCaller::single(provider(&server));
    let env = Env::new();
    let out = lp(registry(vec![add_action()]))
        .run(env.input(&caller, "What is 2+3?"))
        .await
        .unwrap();
    assert_eq!(out.final_response.text, "2 + 3 = 5");
    let codes_seen: Vec<Option<&str>> = out.records.iter().map(|r| r.error_code()).collect();
    assert_eq!(
        codes_seen,
        vec![
            None,
            Some(codes::INPUT_SCHEMA_VIOLATION),
            Some(codes::UNKNOWN_ACTION),
            Some(codes::INPUT_NOT_JSON),
            Some(codes::NATIVE_TOOL_CALLS_EMPTY)
        ]
    );
    assert_eq!(out.records[0].data, Some(json!(5)));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "plan, plan, answer");
    assert_eq!(reqs[0].body["tools"][0]["function"]["name"], "add");
    let msgs = reqs[1].body["messages"].as_array().unwrap();
    let tool_ids: Vec<&str> = msgs
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(tool_ids, vec!["call_1", "call_2", "call_3", "call_4"]);
    assert!(reqs[2].body.get("tools").is_none());
}

#[tokio::test]
async fn json_plan_over_http() {
    let plan = json!({"next_action": "execute", "execution_commands": [
        {"purpose": "sum", "action_id": "add", "action_input": {"a": 20, "b": 22}}]});
    let scenario = Scenario::new()
        .rule(
            Rule::when_user_contains("Results of round")
                .and(Rule::when(|r| r.raw_body.contains("planning round")))
                .reply(Reply::text(
                    "{\"next_action\": \"response\", \"execution_commands\": []}",
                )),
        )
        .rule(Rule::when_user_contains("final answer").reply(Reply::text("It is 42.")))
        .rule(Rule::always().reply(Reply::text(plan.to_string())));
    let server = MockServer::start(scenario).await.unwrap();
    let caller = ProviderCaller::single(provider(&server));
    let env = Env::new();
    let out = lp_with(
        registry(vec![add_action()]),
        LoopOptions {
            protocol: PlanningProtocol::JsonPlan,
            ..Default::default()
        },
    )
    .run(env.input(&caller, "What is 20+22?"))
    .await
    .unwrap();
    assert_eq!(out.records[0].data, Some(json!(42)));
    assert_eq!(out.final_response.text, "It is 42.");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn scripted_model_through_provider_caller() {
    use agentry_model::{ModelError, ScriptedModel, ScriptedTurn};
    let planner = Arc::new(ScriptedModel::new(vec![
        ScriptedTurn::tool_calls(vec![("c1", "add", json!({"a": 1, "b": 1}))]),
        ScriptedTurn::raw_tool_call("c2", "add", "not json"),
        ScriptedTurn::text(""),
    ]));
    let answer = Arc::new(ScriptedModel::new(vec![ScriptedTurn::text("two")]));
    let caller = ProviderCaller {
        planner: planner.clone(),
        answer: answer.clone(),
    };
    let env = Env::new();
    let out = lp(registry(vec![add_action()]))
        .run(env.input(&caller, "1+1?"))
        .await
        .unwrap();
    assert_eq!(out.final_response.text, "two");
    assert_eq!(planner.requests().len(), 3);
    assert_eq!(answer.requests().len(), 1);
    assert_eq!(out.records[1].error_code(), Some(codes::INPUT_NOT_JSON));

    // A model error ends the loop with the model's own code.
    let failing = Arc::new(ScriptedModel::new(vec![ScriptedTurn::error(
        ModelError::Cancelled,
    )]));
    let caller = ProviderCaller::single(failing);
    let err = lp(registry(vec![add_action()]))
        .run(env.input(&caller, "x"))
        .await
        .unwrap_err();
    assert_eq!(agentry_core::ErrorCode::code(&err), "model.cancelled");
}
