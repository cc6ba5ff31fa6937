//! Native tool calls: actions are offered as `tools`; every tool call the model makes
//! (parallel calls included) becomes a [`PlannedCall`] carrying the provider's call
//! id, and each result goes back as a `tool` message with that id.
use agentry_core::{Diagnostic, Severity};
use agentry_model::{Message, ModelRequest, ModelResponse, ToolChoice, ToolSpec};
use serde_json::json;

use super::Plan;
use crate::codes;
use crate::dispatch::PlannedCall;

/// The planning request: the conversation so far plus the offered tools.
pub fn request(messages: &[Message], tools: Vec<ToolSpec>) -> ModelRequest {
    let mut r = ModelRequest::new(messages.to_vec());
    if !tools.is_empty() {
        r.tool_choice = Some(ToolChoice::Auto);
    }
    r.tools = tools;
    r
}

/// Reads the model's tool calls. No calls means the model is ready to answer; that
/// round is noted with `action_runtime.native_tool_calls.empty`.
pub fn parse(response: &ModelResponse) -> Plan {
    let calls: Vec<PlannedCall> = response
        .tool_calls
        .iter()
        .map(PlannedCall::from_tool_call)
        .collect();
    let mut diagnostics = Vec::new();
    if calls.is_empty() {
        let markup = ["<bash", "<tool", "<command", "```bash", "<function"]
            .iter()
            .any(|m| response.text.contains(m));
        diagnostics.push(
            Diagnostic::new(
                codes::NATIVE_TOOL_CALLS_EMPTY,
                Severity::Warning,
                "the model made no tool calls in this planning round",
            )
            .with_detail(json!({"planning_protocol": "native_tool_calls", "textual_tool_markup_detected": markup})),
        );
    }
    let assistant = Message::Assistant {
        content: (!response.text.is_empty()).then(|| response.text.clone()),
        tool_calls: response.tool_calls.clone(),
    };
    Plan {
        calls,
        diagnostics,
        assistant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_model::{ToolArguments, ToolCall};

    #[test]
    fn parallel_calls_keep_ids_and_order() {
        let r = ModelResponse {
            tool_calls: vec![
                ToolCall {
                    id: "c1".into(),
                    name: "a".into(),
                    arguments: ToolArguments::Json(json!({"x": 1})),
                },
                ToolCall {
                    id: "c2".into(),
                    name: "b".into(),
                    arguments: ToolArguments::Raw("{oops".into()),
                },
            ],
            ..Default::default()
        };
        let p = parse(&r);
        assert_eq!(p.calls.len(), 2);
        assert_eq!(p.calls[1].tool_call_id(), Some("c2"));
        assert!(p.diagnostics.is_empty());
    }

    #[test]
    fn empty_round_is_noted() {
        let r = ModelResponse {
            text: "<bash>ls</bash>".into(),
            ..Default::default()
        };
        let p = parse(&r);
        assert!(p.calls.is_empty());
        assert_eq!(p.diagnostics[0].code, codes::NATIVE_TOOL_CALLS_EMPTY);
        assert_eq!(
            p.diagnostics[0].detail["textual_tool_markup_detected"],
            true
        );
    }
}
