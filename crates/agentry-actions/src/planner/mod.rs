//! Planning: turning a model response into [`PlannedCall`]s.
//!
//! Two protocols: [`native`] tool calls for models that support them (the default),
//! and a [`json_plan`] for models that do not, where the model answers with a JSON
//! object naming the next actions. Both yield the same `PlannedCall`s, so everything
//! after planning is shared.
use agentry_core::Diagnostic;
use agentry_model::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::dispatch::PlannedCall;

pub mod json_plan;
pub mod native;

/// How the loop asks the model for actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PlanningProtocol {
    /// OpenAI-style `tools` / `tool_calls`; results go back as `tool` messages.
    #[default]
    NativeToolCalls,
    /// A JSON object `{next_action, execution_commands}` in the answer text.
    JsonPlan,
}

impl PlanningProtocol {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanningProtocol::NativeToolCalls => "native_tool_calls",
            PlanningProtocol::JsonPlan => "json_plan",
        }
    }
}

/// One planning round's decision.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Calls to run (empty: the model is ready to answer).
    pub calls: Vec<PlannedCall>,
    /// Notes about the plan (empty tool calls, unparseable JSON …).
    pub diagnostics: Vec<Diagnostic>,
    /// The message that records the model's turn in the conversation.
    pub assistant: Message,
}

impl Plan {
    /// The decision as the `action.plan_ready` payload shows it (bounded to 50 calls).
    pub fn decision_view(&self) -> Value {
        let commands: Vec<Value> = self
            .calls
            .iter()
            .take(50)
            .map(|c| json!({"action_id": c.action_id(), "action_input": c.raw_input_for_record(), "purpose": c.purpose()}))
            .collect();
        json!({
            "next_action": if self.calls.is_empty() { "response" } else { "execute" },
            "execution_commands": commands,
            "command_count": self.calls.len(),
        })
    }
}
