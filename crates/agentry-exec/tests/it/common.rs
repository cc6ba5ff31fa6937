use std::sync::Arc;

use agentry_actions::{
    ActionContext, ActionFailure, ActionPolicy, ActionRecord, ActionRegistry, CallScope,
    Dispatcher, DynAction, FnAction, HostCall,
};
use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
use agentry_exec::ResourceManager;
use serde_json::Value;

/// Calls an action directly (no dispatcher), as host code would in a unit test.
pub async fn call(action: &FnAction, input: Value) -> Result<Value, ActionFailure> {
    action
        .invoke(ActionContext::detached(action.spec_ref().id.clone()), input)
        .await
}

pub fn bwrap_available() -> bool {
    let ok = agentry_exec::sandbox::Sandbox::detect().available();
    if !ok {
        eprintln!(
            "note: bubblewrap unavailable ({}); isolation assertions skipped",
            agentry_exec::sandbox::Sandbox::detect().reason()
        );
    }
    ok
}

/// A refusal by a rule: `blocked` as the record status (not only in the data).
pub fn blocked(f: &ActionFailure) -> bool {
    f.blocked && f.data.as_ref().is_some_and(|d| d["status"] == "blocked")
}

/// A dispatcher over `registry` with `manager` as its resource resolver.
pub struct Harness {
    pub dispatcher: Dispatcher,
    pub scope: CallScope,
    pub emitter: agentry_core::Emitter,
}

impl Harness {
    pub fn new(registry: ActionRegistry, manager: &ResourceManager) -> Self {
        let center = EventCenter::new();
        let emitter = center.recording_emitter("test");
        let dispatcher = Dispatcher::new(registry, &ActionPolicy::new())
            .with_resources(Arc::new(manager.clone()));
        let scope = CallScope::new(
            emitter.clone(),
            RunContext::root(RunKind::REQUEST),
            ExecutionId::new(),
        );
        Self {
            dispatcher,
            scope,
            emitter,
        }
    }

    pub async fn call(&self, id: &str, input: Value) -> ActionRecord {
        self.dispatcher
            .call(&self.scope, HostCall::new(id, input))
            .await
    }
}

/// A unique marker and whether any live (non-zombie) process has it in its argv.
pub fn marker() -> String {
    format!(
        "agentry-test-marker-{}-{}",
        std::process::id(),
        rand_suffix()
    )
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub fn processes_with(marker: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let Ok(cmd) = std::fs::read(p.join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains(marker) {
            continue;
        }
        let zombie = std::fs::read_to_string(p.join("stat"))
            .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
            .unwrap_or(true);
        if !zombie {
            n += 1;
        }
    }
    n
}

/// A record as the `Result` an action returned (for uniform assertions).
pub fn outcome(r: ActionRecord) -> Result<Value, ActionFailure> {
    if r.is_ok() {
        return Ok(r.data.unwrap_or(Value::Null));
    }
    let e = r.error.clone().unwrap();
    let mut f = if r.status == agentry_actions::ActionStatus::Blocked {
        ActionFailure::blocked(e.code, e.message)
    } else {
        ActionFailure::new(e.code, e.message)
    };
    f.data = r.data;
    Err(f)
}

impl Harness {
    pub async fn run(&self, id: &str, input: Value) -> Result<Value, ActionFailure> {
        outcome(self.call(id, input).await)
    }
}
