use agentry_actions::{
    Action, ActionContext, ActionFailure, ActionRegistry, ActionStatus, HostCall, SideEffect,
    action, codes,
};
use serde_json::json;

use crate::common::*;

/// Adds two integers.
///
/// Use it for arithmetic.
#[action(tags("math"))]
async fn add_numbers(
    /// The first addend.
    a: i64,
    /// The second addend.
    #[action(default = 10)]
    b: i64,
    /// An optional label.
    label: Option<String>,
) -> Result<serde_json::Value, ActionFailure> {
    Ok(json!({"sum": a + b, "label": label}))
}

/// Deletes a path.
#[action(
    id = "delete_path",
    side_effect = "write",
    approval_required,
    host_only("force")
)]
async fn delete(path: String, #[action(default)] force: bool, ctx: ActionContext) -> String {
    format!("{path}:{force}:{}", ctx.action_id())
}

/// Fails on purpose.
#[action(name = "Failing")]
async fn failing() -> std::io::Result<u8> {
    Err(std::io::Error::other("nope"))
}

#[test]
fn generated_spec() {
    let spec = AddNumbers.spec();
    assert_eq!(spec.id, "add_numbers");
    assert_eq!(
        spec.description,
        "Adds two integers.\n\nUse it for arithmetic."
    );
    assert_eq!(spec.tags, vec!["math"]);
    assert_eq!(spec.side_effect, SideEffect::Read);
    let s = &spec.input_schema;
    assert_eq!(s["required"], json!(["a"]));
    assert_eq!(s["properties"]["a"]["description"], "The first addend.");
    assert_eq!(s["properties"]["b"]["default"], 10);
    let d = Delete.spec();
    assert_eq!(d.id, "delete_path");
    assert!(d.approval_required);
    assert_eq!(d.side_effect, SideEffect::Write);
    assert_eq!(d.host_only_input_keys, vec!["force"]);
    assert!(d.input_schema["properties"].get("ctx").is_none());
    assert!(!d.replay_safe);
}

#[tokio::test]
async fn generated_actions_run_through_the_dispatcher() {
    let env = Env::new();
    let mut reg = ActionRegistry::new();
    reg.register(AddNumbers).unwrap();
    reg.register(Delete).unwrap();
    reg.register(Failing).unwrap();
    assert!(reg.register(AddNumbers).is_err());
    let d = agentry_actions::Dispatcher::new(reg, &agentry_actions::ActionPolicy::new());
    let s = env.scope();
    let rec = d
        .call(&s, HostCall::new("add_numbers", json!({"a": 1})))
        .await;
    assert_eq!(rec.data, Some(json!({"sum": 11, "label": null})));
    let rec = d
        .call(
            &s,
            HostCall::new("delete_path", json!({"path": "/x", "force": true}))
                .approval_granted(true),
        )
        .await;
    assert_eq!(rec.data, Some(json!("/x:true:delete_path")));
    let rec = d.call(&s, HostCall::new("failing", json!({}))).await;
    assert_eq!(rec.status, ActionStatus::Error);
    assert_eq!(rec.error_code(), Some(codes::EXECUTION_FAILED));
    // The function itself is still callable.
    assert_eq!(add_numbers(1, 2, None).await.unwrap()["sum"], 3);
}
