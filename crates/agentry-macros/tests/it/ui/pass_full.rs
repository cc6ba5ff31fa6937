use agentry_actions::{action, Action, ActionContext, ActionFailure};
use serde_json::json;

/// Adds two integers.
#[action(tags("math"), replay_safe = true)]
async fn add(
    /// The first addend.
    a: i64,
    /// The second addend.
    #[action(default = 1)]
    b: i64,
    /// A label.
    label: Option<String>,
) -> Result<i64, ActionFailure> {
    let _ = label;
    Ok(a + b)
}

/// Says hello.
#[action(id = "greet", name = "Greeter", side_effect = "exec", approval_required, sandbox_required, sandboxed, hidden, host_only("secret"))]
pub async fn hello(ctx: ActionContext, name: String, #[action(default)] secret: bool) -> String {
    format!("{} {name} {secret}", ctx.action_id())
}

/// Does nothing.
#[action]
async fn noop() {}

/// Uses an io result.
#[action]
async fn io_result(path: String) -> std::io::Result<usize> {
    Ok(path.len())
}

#[derive(serde::Serialize)]
struct Out {
    n: u32,
}

/// Returns a struct.
#[action(description = "Counts something.")]
async fn counts(items: Vec<String>) -> Out {
    Out { n: items.len() as u32 }
}

fn main() {
    let s = Add.spec();
    assert_eq!(s.id, "add");
    assert_eq!(s.input_schema["required"], json!(["a"]));
    let g = Greeter.spec();
    assert_eq!(g.id, "greet");
    assert!(g.approval_required && g.sandbox_required && g.sandboxed && !g.expose_to_model);
    assert_eq!(g.host_only_input_keys, vec!["secret"]);
    assert_eq!(Noop.id(), "noop");
    assert_eq!(IoResult.id(), "io_result");
    assert_eq!(Counts.description(), "Counts something.");
    let _input = AddInput { a: 1, b: 2, label: None };
}
