use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentry_actions::*;
use agentry_core::{ActionCallId, ExecutionId};
use agentry_model::{ToolArguments, ToolCall};
use serde_json::{Value, json};

use crate::common::*;

fn planned(name: &str, args: Value) -> PlannedCall {
    PlannedCall::from_tool_call(&ToolCall {
        id: "c1".into(),
        name: name.into(),
        arguments: ToolArguments::Json(args),
    })
}

fn cid(env: &Env) -> ActionCallId {
    ActionCallId::new(env.exe.clone(), 0, 0)
}

fn bash_like() -> FnAction {
    FnAction::new(
        "run",
        "Runs a command.",
        json!({"type":"object","properties":{"cmd":{"type":"string"},"allow_unsafe":{"type":"boolean"}},"required":["cmd"]}),
        |_ctx, v| async move { Ok(v) },
    )
    .host_only_input_key("allow_unsafe")
}

#[tokio::test]
async fn unknown_action_is_an_error_record_listing_available_actions() {
    let env = Env::new();
    let d = Dispatcher::new(registry(vec![add_action()]), &ActionPolicy::new());
    let rec = d
        .call_planned(&env.scope(), cid(&env), planned("nope", json!({})))
        .await;
    assert_eq!(rec.status, ActionStatus::Error);
    assert_eq!(rec.error_code(), Some(codes::UNKNOWN_ACTION));
    assert_eq!(
        rec.data.as_ref().unwrap()["available_actions"],
        json!(["add"])
    );
    assert!(rec.expose_to_model);
    assert_eq!(rec.tool_call_id.as_deref(), Some("c1"));
}

#[tokio::test]
async fn model_keys_are_stripped_host_keys_kept() {
    let env = Env::new();
    let d = Dispatcher::new(registry(vec![bash_like()]), &ActionPolicy::new());
    let rec = d
        .call_planned(
            &env.scope(),
            cid(&env),
            planned("run", json!({"cmd":"ls","allow_unsafe":true,"extra":1})),
        )
        .await;
    assert_eq!(rec.status, ActionStatus::Success);
    assert_eq!(rec.data, Some(json!({"cmd":"ls"})));
    let diag = rec
        .diagnostics
        .iter()
        .find(|d| d.code == codes::UNEXPECTED_KEYS_STRIPPED)
        .unwrap();
    assert_eq!(
        diag.detail["stripped_keys"],
        json!(["allow_unsafe", "extra"])
    );
    assert_eq!(diag.detail["host_only_keys"], json!(["allow_unsafe"]));
    // The host may set host-only keys.
    let rec = d
        .call(
            &env.scope(),
            HostCall::new("run", json!({"cmd":"ls","allow_unsafe":true})),
        )
        .await;
    assert_eq!(rec.data, Some(json!({"cmd":"ls","allow_unsafe":true})));
    assert!(rec.diagnostics.is_empty());
    assert_eq!(rec.call_id.round, HOST_ROUND);
    // And the model never sees them in the schema.
    let tools = d.offered_tools(false);
    assert!(
        tools[0].parameters["properties"]
            .get("allow_unsafe")
            .is_none()
    );
}

#[tokio::test]
async fn required_keys_and_schema_are_enforced_before_execution() {
    let env = Env::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    let a = FnAction::new(
        "add",
        "Adds.",
        json!({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"]}),
        move |_c, v| {
            ran2.fetch_add(1, Ordering::SeqCst);
            async move { Ok(v) }
        },
    );
    let d = Dispatcher::new(registry(vec![a]), &ActionPolicy::new());
    let rec = d
        .call_planned(&env.scope(), cid(&env), planned("add", json!({"a":1})))
        .await;
    assert_eq!(rec.error_code(), Some(codes::REQUIRED_KEYS_MISSING));
    assert_eq!(rec.data.as_ref().unwrap()["missing"], json!(["b"]));
    let rec = d
        .call_planned(
            &env.scope(),
            cid(&env),
            planned("add", json!({"a":"one","b":2})),
        )
        .await;
    assert_eq!(rec.error_code(), Some(codes::INPUT_SCHEMA_VIOLATION));
    let data = rec.data.as_ref().unwrap();
    assert_eq!(data["errors"][0]["path"], "/a");
    assert_eq!(data["schema"]["required"], json!(["a", "b"]));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn json_in_a_string_is_decoded_once_and_raw_text_refused() {
    let env = Env::new();
    let d = Dispatcher::new(registry(vec![add_action()]), &ActionPolicy::new());
    let rec = d
        .call_planned(
            &env.scope(),
            cid(&env),
            planned("add", Value::String("{\"a\":1,\"b\":2}".into())),
        )
        .await;
    assert_eq!(rec.status, ActionStatus::Success);
    assert_eq!(rec.data, Some(json!(3)));
    assert!(rec.has_diagnostic(codes::INPUT_DECODED_JSON_STRING));
    // A string holding a JSON string holding JSON is decoded only once: still not an object.
    let twice =
        Value::String(serde_json::to_string(&Value::String("{\"a\":1,\"b\":2}".into())).unwrap());
    let rec = d
        .call_planned(&env.scope(), cid(&env), planned("add", twice))
        .await;
    assert_eq!(rec.error_code(), Some(codes::INPUT_NOT_OBJECT));
    let raw = PlannedCall::from_tool_call(&ToolCall {
        id: "c".into(),
        name: "add".into(),
        arguments: ToolArguments::Raw("{a: 1".into()),
    });
    let rec = d.call_planned(&env.scope(), cid(&env), raw).await;
    assert_eq!(rec.error_code(), Some(codes::INPUT_NOT_JSON));
    assert!(rec.data.as_ref().unwrap().get("schema").is_some());
}

#[tokio::test]
async fn timeouts_panics_and_failures_become_records() {
    let env = Env::new();
    let slow = FnAction::new(
        "slow",
        "Never returns.",
        json!({"type":"object"}),
        |_c, _v| async {
            futures::future::pending::<()>().await;
            Ok(json!(null))
        },
    );
    let boom = FnAction::new(
        "boom",
        "Panics.",
        json!({"type":"object"}),
        |_c, _v| async {
            if true {
                panic!("kaboom");
            }
            Ok(json!(null))
        },
    );
    let fail = FnAction::new("fail", "Fails.", json!({"type":"object"}), |_c, _v| async {
        Err(ActionFailure::new("demo.bad", "went wrong").with_data(json!({"why": 1})))
    });
    let eager = FnAction::new(
        "eager",
        "Panics before its future exists.",
        json!({"type":"object"}),
        |_c, _v| {
            if true {
                panic!("eager boom");
            }
            async { Ok(json!(null)) }
        },
    );
    let half = FnAction::new(
        "half",
        "Half.",
        json!({"type":"object"}),
        |c, _v| async move {
            c.partial_success("only some rows");
            Ok(json!([1]))
        },
    );
    let d = Dispatcher::new(
        registry(vec![slow, boom, eager, fail, half]),
        &ActionPolicy::new(),
    );
    let s = env.scope();
    let rec = d
        .call(
            &s,
            HostCall::new("slow", json!({})).timeout(Duration::from_millis(50)),
        )
        .await;
    assert_eq!(rec.error_code(), Some(codes::EXECUTION_TIMEOUT));
    let rec = d.call(&s, HostCall::new("boom", json!({}))).await;
    assert_eq!(rec.error_code(), Some(codes::EXECUTION_PANICKED));
    assert!(rec.error.unwrap().message.contains("kaboom"));
    let rec = d.call(&s, HostCall::new("eager", json!({}))).await;
    assert_eq!(rec.error_code(), Some(codes::EXECUTION_PANICKED));
    let rec = d.call(&s, HostCall::new("fail", json!({}))).await;
    assert_eq!(rec.error_code(), Some("demo.bad"));
    assert_eq!(rec.data, Some(json!({"why": 1})));
    let rec = d.call(&s, HostCall::new("half", json!({}))).await;
    assert_eq!(rec.status, ActionStatus::PartialSuccess);
    assert!(rec.has_diagnostic(codes::PARTIAL_SUCCESS));
    // Policy timeouts apply too.
    let d2 = Dispatcher::new(
        d.registry().clone(),
        &ActionPolicy::new().action_timeout(Duration::from_millis(20)),
    );
    assert_eq!(
        d2.call(&s, HostCall::new("slow", json!({})))
            .await
            .error_code(),
        Some(codes::EXECUTION_TIMEOUT)
    );
}

#[tokio::test]
async fn dry_run_normalizes_without_executing() {
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    let a = bash_like();
    let counting = FnAction::new(
        "count",
        "Counts.",
        json!({"type":"object","properties":{"n":{"type":"integer"}}}),
        move |_c, v| {
            ran2.fetch_add(1, Ordering::SeqCst);
            async move { Ok(v) }
        },
    )
    .approval_required(true);
    let d = Dispatcher::new(registry(vec![a, counting]), &ActionPolicy::new());
    let id = ActionCallId::new(ExecutionId::new(), 0, 0);
    let n = d
        .dry_run(
            id.clone(),
            planned("run", json!({"cmd":"ls","allow_unsafe":true})),
        )
        .unwrap();
    assert_eq!(n.input, json!({"cmd":"ls"}));
    assert_eq!(n.diagnostics[0].code, codes::UNEXPECTED_KEYS_STRIPPED);
    let n = d
        .dry_run(id.clone(), HostCall::new("count", json!({"n": 1})))
        .unwrap();
    assert_eq!(n.approval, "ask");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let refused = d
        .dry_run(id, planned("count", json!({"n": "x"})))
        .unwrap_err();
    assert_eq!(refused.error_code(), Some(codes::INPUT_SCHEMA_VIOLATION));
}

#[tokio::test]
async fn policy_sandbox_and_resources_block() {
    let env = Env::new();
    let w = FnAction::new(
        "write",
        "Writes.",
        json!({"type":"object"}),
        |_c, v| async move { Ok(v) },
    )
    .side_effect(SideEffect::Write)
    .tag("fs");
    let sb = FnAction::new(
        "sb",
        "Needs a sandbox.",
        json!({"type":"object"}),
        |_c, v| async move { Ok(v) },
    )
    .sandbox_required(true);
    let res = FnAction::new(
        "res",
        "Needs a shell.",
        json!({"type":"object"}),
        |_c, v| async move { Ok(v) },
    )
    .resource(ResourceRequirement::new("shell"));
    let reg = registry(vec![w, sb, res, add_action()]);
    let s = env.scope();
    let d = Dispatcher::new(
        reg.clone(),
        &ActionPolicy::new().max_side_effect(SideEffect::Read),
    );
    assert_eq!(
        d.call(&s, HostCall::new("write", json!({})))
            .await
            .error_code(),
        Some(codes::POLICY_SIDE_EFFECT_EXCEEDED)
    );
    let d = Dispatcher::new(reg.clone(), &ActionPolicy::new().deny_tag("fs"));
    let rec = d.call(&s, HostCall::new("write", json!({}))).await;
    assert_eq!(rec.status, ActionStatus::Blocked);
    assert_eq!(rec.error_code(), Some(codes::POLICY_DENIED));
    assert!(!d.offered_tools(false).iter().any(|t| t.name == "write"));
    let d = Dispatcher::new(reg.clone(), &ActionPolicy::new().allow_id("add"));
    assert_eq!(
        d.call(&s, HostCall::new("sb", json!({})))
            .await
            .error_code(),
        Some(codes::POLICY_DENIED)
    );
    let d = Dispatcher::new(reg, &ActionPolicy::new());
    let rec = d.call(&s, HostCall::new("sb", json!({}))).await;
    assert_eq!(
        (rec.status, rec.error_code()),
        (ActionStatus::Blocked, Some(codes::SANDBOX_REQUIRED))
    );
    let rec = d.call(&s, HostCall::new("res", json!({}))).await;
    assert_eq!(
        (rec.status, rec.error_code()),
        (
            ActionStatus::Blocked,
            Some(codes::RESOURCE_PROVIDER_MISSING)
        )
    );
}

#[derive(Debug)]
struct Shells;
impl ResourceResolver for Shells {
    fn ensure<'a>(
        &'a self,
        _r: &'a ResourceRequirement,
        _c: &'a ActionCallId,
    ) -> futures::future::BoxFuture<'a, Result<Arc<dyn std::any::Any + Send + Sync>, ActionFailure>>
    {
        Box::pin(async {
            Ok(Arc::new(String::from("shell-1")) as Arc<dyn std::any::Any + Send + Sync>)
        })
    }
}

#[derive(Debug)]
struct Stuck;
impl ResourceResolver for Stuck {
    fn ensure<'a>(
        &'a self,
        _r: &'a ResourceRequirement,
        _c: &'a ActionCallId,
    ) -> futures::future::BoxFuture<'a, Result<Arc<dyn std::any::Any + Send + Sync>, ActionFailure>>
    {
        Box::pin(futures::future::pending())
    }
}

#[tokio::test]
async fn a_stuck_resource_provider_times_out() {
    let env = Env::new();
    let res = FnAction::new(
        "res",
        "Needs a shell.",
        json!({"type":"object"}),
        |_c, _v| async { Ok(json!(1)) },
    )
    .resource(ResourceRequirement::new("shell"));
    let d = Dispatcher::new(
        registry(vec![res]),
        &ActionPolicy::new().action_timeout(Duration::from_millis(30)),
    )
    .with_resources(Arc::new(Stuck));
    let rec = d.call(&env.scope(), HostCall::new("res", json!({}))).await;
    assert_eq!(rec.error_code(), Some(codes::RESOURCE_UNAVAILABLE));
}

#[tokio::test]
async fn resources_reach_the_action() {
    let env = Env::new();
    let res = FnAction::new(
        "res",
        "Needs a shell.",
        json!({"type":"object"}),
        |c, _v| async move { Ok(json!(*c.resource::<String>("shell").unwrap())) },
    )
    .resource(ResourceRequirement::new("shell"));
    let d =
        Dispatcher::new(registry(vec![res]), &ActionPolicy::new()).with_resources(Arc::new(Shells));
    assert_eq!(
        d.call(&env.scope(), HostCall::new("res", json!({})))
            .await
            .data,
        Some(json!("shell-1"))
    );
}

fn gated() -> FnAction {
    FnAction::new(
        "rm",
        "Deletes.",
        json!({"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}),
        |c, v| async move { Ok(json!({"deleted": v["path"], "approved": c.approved()})) },
    )
    .side_effect(SideEffect::Write)
    .approval_required(true)
}

#[tokio::test]
async fn approval_handlers() {
    let env = Env::new();
    let s = env.scope();
    let reg = registry(vec![gated(), add_action()]);
    // Default: fail closed.
    let d = Dispatcher::new(reg.clone(), &ActionPolicy::new());
    let rec = d
        .call_planned(&s, cid(&env), planned("rm", json!({"path":"/x"})))
        .await;
    assert_eq!(rec.status, ActionStatus::ApprovalRequired);
    let approval = rec.approval.unwrap();
    assert_eq!(approval.outcome, ApprovalOutcome::Pending);
    assert_eq!(approval.request_id, format!("apr:{}", cid(&env)));
    // Deny.
    let rec = d
        .with_approval(Arc::new(DenyAll))
        .call(&s, HostCall::new("rm", json!({"path":"/x"})))
        .await;
    assert_eq!(
        (rec.status, rec.error_code()),
        (ActionStatus::Blocked, Some(codes::APPROVAL_DENIED))
    );
    // Auto.
    let rec = d
        .with_approval(Arc::new(AutoApprove))
        .call(&s, HostCall::new("rm", json!({"path":"/x"})))
        .await;
    assert_eq!(rec.data, Some(json!({"deleted":"/x","approved":true})));
    // A host grant skips the handler.
    let rec = d
        .call(
            &s,
            HostCall::new("rm", json!({"path":"/y"})).approval_granted(true),
        )
        .await;
    assert_eq!(rec.status, ActionStatus::Success);
    assert!(rec.approval.is_none());
    // Callback that edits the input; an invalid edit is refused.
    let cb = CallbackApproval::new("host", |req| async move {
        if req.input["path"] == "/etc" {
            ApprovalDecision::ApproveWithInput(json!({"path": 5}))
        } else {
            ApprovalDecision::ApproveWithInput(json!({"path": "/tmp/safe"}))
        }
    });
    let d2 = d.with_approval(Arc::new(cb));
    let rec = d2.call(&s, HostCall::new("rm", json!({"path":"/x"}))).await;
    assert_eq!(rec.data.unwrap()["deleted"], "/tmp/safe");
    assert!(rec.approval.unwrap().input_edited);
    let rec = d2
        .call(&s, HostCall::new("rm", json!({"path":"/etc"})))
        .await;
    assert_eq!(rec.error_code(), Some(codes::APPROVAL_EDITED_INPUT_INVALID));
    // Mode never denies without asking; mode always asks for everything.
    let never = Dispatcher::new(
        reg.clone(),
        &ActionPolicy::new().approval_mode(ApprovalMode::Never),
    )
    .with_approval(Arc::new(AutoApprove));
    assert_eq!(
        never
            .call(&s, HostCall::new("rm", json!({"path":"/x"})))
            .await
            .error_code(),
        Some(codes::APPROVAL_MODE_NEVER)
    );
    assert_eq!(
        never
            .call(&s, HostCall::new("add", json!({"a":1,"b":1})))
            .await
            .status,
        ActionStatus::Success
    );
    let always = Dispatcher::new(
        reg,
        &ActionPolicy::new().approval_mode(ApprovalMode::Always),
    );
    assert_eq!(
        always
            .call(&s, HostCall::new("add", json!({"a":1,"b":1})))
            .await
            .status,
        ActionStatus::ApprovalRequired
    );
    let types = env.event_types();
    assert!(types.contains(&"policy.approval.requested".to_owned()));
    assert!(types.contains(&"policy.approval.pending".to_owned()));
    assert!(types.contains(&"policy.approval.denied".to_owned()));
    assert!(types.contains(&"policy.approval.approved".to_owned()));
    assert!(types.contains(&"action.approval_required".to_owned()));
}

#[tokio::test]
async fn hidden_actions_are_host_only() {
    let env = Env::new();
    let hidden = FnAction::new(
        "secret",
        "Host only.",
        json!({"type":"object"}),
        |_c, v| async move { Ok(v) },
    )
    .expose_to_model(false);
    let d = Dispatcher::new(registry(vec![hidden]), &ActionPolicy::new());
    assert_eq!(
        d.call_planned(&env.scope(), cid(&env), planned("secret", json!({})))
            .await
            .error_code(),
        Some(codes::UNKNOWN_ACTION)
    );
    assert_eq!(
        d.call(&env.scope(), HostCall::new("secret", json!({})))
            .await
            .status,
        ActionStatus::Success
    );
    assert!(d.offered_tools(false).is_empty());
}

#[tokio::test]
async fn action_events_have_runs_and_payloads() {
    let env = Env::new();
    let d = Dispatcher::new(registry(vec![add_action()]), &ActionPolicy::new());
    d.call_planned(
        &env.scope(),
        cid(&env),
        planned("add", json!({"a":1,"b":2})),
    )
    .await;
    let ev = env.events();
    assert_eq!(ev[0].event_type.as_str(), "action.started");
    assert_eq!(ev[0].run.run_kind.as_str(), "action");
    assert_eq!(ev[0].run.meta["action_name"], "add");
    assert_eq!(ev[0].run.parent_run_id.as_ref(), Some(&env.run.run_id));
    assert_eq!(
        ev[0].payload["command"]["action_input"],
        json!({"a":1,"b":2})
    );
    assert_eq!(ev[1].event_type.as_str(), "action.completed");
    assert_eq!(ev[1].payload["record"]["result"], 3);
    assert_eq!(ev[1].payload["action_name"], "add");
    assert_eq!(ev[1].run.run_id, ev[0].run.run_id);
}
