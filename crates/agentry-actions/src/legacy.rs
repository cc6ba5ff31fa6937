//! The legacy tool surface: OpenAI-style function tools (name, description, parameters
//! schema, handler) registered as actions. They go through the same dispatcher and
//! loop; the loop's [`tool_logs`](crate::LoopOutcome::tool_logs) lists the records the
//! model saw, beside the full `records` (action logs).
use std::fmt;
use std::future::Future;

use serde_json::Value;

use crate::action::{ActionFailure, FnAction, SideEffect};
use crate::codes;
use crate::error::ActionError;
use crate::registry::ActionRegistry;

/// An OpenAI-style function tool.
///
/// ```
/// use agentry_actions::{ActionRegistry, LegacyTool};
/// use serde_json::json;
/// let weather = LegacyTool::new(
///     "get_weather",
///     "Current weather for a city.",
///     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
///     |args| async move { Ok(json!({"city": args["city"], "temp_c": 21})) },
/// );
/// let mut registry = ActionRegistry::new();
/// registry.register_tool(weather).unwrap();
/// ```
pub struct LegacyTool {
    action: FnAction,
}

impl fmt::Debug for LegacyTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyTool")
            .field("name", &self.action.spec_ref().id)
            .finish()
    }
}

impl LegacyTool {
    /// A tool whose handler takes the arguments object and returns a JSON result or an
    /// error message.
    pub fn new<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        handler: F,
    ) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        let action = FnAction::new(name, description, parameters, move |_ctx, args| {
            let fut = handler(args);
            async move {
                fut.await
                    .map_err(|m| ActionFailure::new(codes::EXECUTION_FAILED, m))
            }
        })
        .executor_kind("legacy_tool");
        Self { action }
    }

    /// Declares the tool's side effect (tools are `read` unless said otherwise).
    pub fn side_effect(mut self, level: SideEffect) -> Self {
        self.action = self.action.side_effect(level);
        self
    }

    /// Requires approval for every call.
    pub fn approval_required(mut self, yes: bool) -> Self {
        self.action = self.action.approval_required(yes);
        self
    }

    /// The action it maps onto.
    pub fn into_action(self) -> FnAction {
        self.action
    }
}

impl ActionRegistry {
    /// Registers a legacy tool as an action (duplicate names refused).
    pub fn register_tool(&mut self, tool: LegacyTool) -> Result<(), ActionError> {
        self.register_fn(tool.into_action())
    }
}
