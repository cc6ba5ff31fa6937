use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_actions::*;
use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind, RuntimeEvent};
use agentry_model::{Message, ModelRequest, ModelResponse, ToolArguments, ToolCall};
use futures::future::BoxFuture;
use serde_json::{Value, json};

/// A scripted model: answers planning and answer requests from a queue, records requests.
#[derive(Default)]
pub struct Script {
    turns: Mutex<VecDeque<Turn>>,
    pub requests: Mutex<Vec<(CallPurpose, ModelRequest)>>,
}

pub enum Turn {
    Resp(ModelResponse),
    Sleep(Duration, ModelResponse),
    Fail,
}

impl Script {
    pub fn new(turns: Vec<Turn>) -> Self {
        Self {
            turns: Mutex::new(turns.into()),
            requests: Mutex::new(Vec::new()),
        }
    }
    pub fn requests(&self) -> Vec<(CallPurpose, ModelRequest)> {
        self.requests.lock().unwrap().clone()
    }
}

impl ModelCaller for Script {
    fn call(
        &self,
        purpose: CallPurpose,
        request: ModelRequest,
    ) -> BoxFuture<'_, Result<ModelResponse, ActionError>> {
        self.requests.lock().unwrap().push((purpose, request));
        let turn = self.turns.lock().unwrap().pop_front();
        Box::pin(async move {
            match turn {
                Some(Turn::Resp(r)) => Ok(r),
                Some(Turn::Sleep(d, r)) => {
                    tokio::time::sleep(d).await;
                    Ok(r)
                }
                Some(Turn::Fail) => Err(ActionError::host("test.model_down", "model down")),
                None => Ok(text("final answer")),
            }
        })
    }
}

pub fn text(t: &str) -> ModelResponse {
    ModelResponse {
        text: t.into(),
        ..Default::default()
    }
}

pub fn calls(cs: &[(&str, &str, Value)]) -> ModelResponse {
    ModelResponse {
        tool_calls: cs
            .iter()
            .map(|(id, name, args)| ToolCall {
                id: (*id).into(),
                name: (*name).into(),
                arguments: ToolArguments::Json(args.clone()),
            })
            .collect(),
        ..Default::default()
    }
}

pub fn raw_call(id: &str, name: &str, args: &str) -> ModelResponse {
    ModelResponse {
        tool_calls: vec![ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: ToolArguments::Raw(args.into()),
        }],
        ..Default::default()
    }
}

pub fn r(resp: ModelResponse) -> Turn {
    Turn::Resp(resp)
}

pub fn add_action() -> FnAction {
    FnAction::new(
        "add",
        "Adds two integers.",
        json!({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"}},"required":["a","b"],"additionalProperties":false}),
        |_ctx, v| async move { Ok(json!(v["a"].as_i64().unwrap() + v["b"].as_i64().unwrap())) },
    )
}

pub fn registry(actions: Vec<FnAction>) -> ActionRegistry {
    let mut reg = ActionRegistry::new();
    for a in actions {
        reg.register_fn(a).unwrap();
    }
    reg
}

pub struct Env {
    pub emitter: agentry_core::Emitter,
    pub run: Arc<RunContext>,
    pub exe: ExecutionId,
}

impl Env {
    pub fn new() -> Self {
        let center = EventCenter::new();
        let emitter = center.recording_emitter("test");
        let exe = ExecutionId::new();
        let mut run = (*RunContext::root(RunKind::REQUEST)).clone();
        run.execution_id = Some(exe.clone());
        Self {
            emitter,
            run: Arc::new(run),
            exe,
        }
    }
    pub fn scope(&self) -> CallScope {
        CallScope::new(self.emitter.clone(), self.run.clone(), self.exe.clone())
    }
    pub fn input<'a>(&self, caller: &'a dyn ModelCaller, prompt: &str) -> LoopInput<'a> {
        LoopInput::new(
            self.emitter.clone(),
            self.run.clone(),
            self.exe.clone(),
            vec![Message::user(prompt)],
            caller,
        )
    }
    pub fn events(&self) -> Vec<Arc<RuntimeEvent>> {
        self.emitter.recorded()
    }
    pub fn event_types(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e.event_type.as_str().to_owned())
            .collect()
    }
}

pub fn lp(reg: ActionRegistry) -> ActionLoop {
    ActionLoop::new(
        reg,
        &ActionPolicy::new(),
        Arc::new(AutoApprove),
        LoopOptions::default(),
    )
    .unwrap()
}

pub fn lp_with(reg: ActionRegistry, options: LoopOptions) -> ActionLoop {
    ActionLoop::new(reg, &ActionPolicy::new(), Arc::new(AutoApprove), options).unwrap()
}

pub fn tool_messages(req: &ModelRequest) -> Vec<(String, Value)> {
    req.messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool {
                tool_call_id,
                content,
            } => Some((tool_call_id.clone(), serde_json::from_str(content).unwrap())),
            _ => None,
        })
        .collect()
}
