use agentry_actions::{ActionContext, ActionFailure, DynAction, FnAction};
use serde_json::Value;

pub async fn call(action: &FnAction, input: Value) -> Result<Value, ActionFailure> {
    action
        .invoke(ActionContext::detached(action.spec_ref().id.clone()), input)
        .await
}

pub fn bwrap_available() -> bool {
    agentry_exec::sandbox::Sandbox::detect().available()
}
