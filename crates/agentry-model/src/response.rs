//! The collected response and the assembler that builds it from stream events.
use std::collections::BTreeMap;

use agentry_core::{Diagnostic, Severity};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::types::{Completion, StreamEvent, ToolArguments, ToolCall, Usage};

/// Code of the diagnostic attached when tool-call arguments are not valid JSON.
pub const TOOL_ARGUMENTS_NOT_JSON: &str = "model.tool_call.arguments_not_json";
/// Code of the diagnostic attached when a tool call arrived without a name.
pub const TOOL_CALL_MISSING_NAME: &str = "model.tool_call.missing_name";

/// A complete model response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    /// The answer text.
    pub text: String,
    /// Reasoning text, when the provider exposed it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// Tool calls, in index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Token usage, if reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// How the response ended.
    #[serde(default)]
    pub completion: Completion,
    /// How many retries happened before the answer.
    #[serde(default)]
    pub retries: u32,
    /// Notes about repairs or oddities (non-JSON arguments, nameless calls …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

/// Builds a [`ModelResponse`] from [`StreamEvent`]s: concatenates text, assembles
/// tool calls by index from their fragments, sums usage.
///
/// ```
/// use agentry_model::{ResponseAssembler, StreamEvent, ToolArguments};
/// let mut a = ResponseAssembler::default();
/// a.push(&StreamEvent::ToolCallDelta { index: 0, id: Some("c1".into()), name: Some("add".into()), arguments: "{\"a\":".into() });
/// a.push(&StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "1}".into() });
/// let r = a.finish();
/// assert_eq!(r.tool_calls[0].arguments, ToolArguments::Json(serde_json::json!({"a": 1})));
/// ```
#[derive(Default)]
pub struct ResponseAssembler {
    text: String,
    reasoning: String,
    calls: BTreeMap<u32, PartialCall>,
    usage: Option<Usage>,
    completion: Completion,
    retries: u32,
}

impl std::fmt::Debug for ResponseAssembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseAssembler")
            .field("text_len", &self.text.len())
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl ResponseAssembler {
    /// Takes one stream event.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.text.push_str(text),
            StreamEvent::ReasoningDelta { text } => self.reasoning.push_str(text),
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                let call = self.calls.entry(*index).or_default();
                if let Some(id) = id
                    && call.id.is_none()
                {
                    call.id = Some(id.clone());
                }
                if let Some(name) = name {
                    match &mut call.name {
                        Some(existing) if existing != name => existing.push_str(name),
                        Some(_) => {}
                        None => call.name = Some(name.clone()),
                    }
                }
                call.arguments.push_str(arguments);
            }
            StreamEvent::Usage(u) => match &mut self.usage {
                Some(existing) => *existing = *u,
                None => self.usage = Some(*u),
            },
            StreamEvent::Retry(_) => {
                // Output never precedes a retry, so nothing collected is discarded.
                self.retries += 1;
            }
            StreamEvent::Done(c) => self.completion = c.clone(),
        }
    }

    /// Text collected so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Finishes the response. Arguments that are not valid JSON are kept verbatim
    /// as [`ToolArguments::Raw`] with a diagnostic; empty arguments become `{}`.
    pub fn finish(self) -> ModelResponse {
        let mut diagnostics = Vec::new();
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (index, call) in self.calls {
            let id = call.id.unwrap_or_else(|| format!("call_{index}"));
            let name = match call.name {
                Some(n) if !n.is_empty() => n,
                _ => {
                    diagnostics.push(
                        Diagnostic::new(
                            TOOL_CALL_MISSING_NAME,
                            Severity::Warning,
                            "a tool call arrived without a name",
                        )
                        .with_detail(json!({"index": index, "id": id})),
                    );
                    String::new()
                }
            };
            let trimmed = call.arguments.trim();
            let arguments = if trimmed.is_empty() {
                ToolArguments::Json(json!({}))
            } else {
                match serde_json::from_str(trimmed) {
                    Ok(v) => ToolArguments::Json(v),
                    Err(e) => {
                        diagnostics.push(
                            Diagnostic::new(
                                TOOL_ARGUMENTS_NOT_JSON,
                                Severity::Warning,
                                format!("arguments of tool call `{name}` are not valid JSON: {e}"),
                            )
                            .with_detail(json!({"index": index, "id": id, "tool": name})),
                        );
                        ToolArguments::Raw(call.arguments)
                    }
                }
            };
            tool_calls.push(ToolCall {
                id,
                name,
                arguments,
            });
        }
        ModelResponse {
            text: self.text,
            reasoning: self.reasoning,
            tool_calls,
            usage: self.usage,
            completion: self.completion,
            retries: self.retries,
            diagnostics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_interleaved_calls_by_index() {
        let mut a = ResponseAssembler::default();
        for ev in [
            StreamEvent::ToolCallDelta {
                index: 1,
                id: Some("b".into()),
                name: Some("two".into()),
                arguments: "{".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("a".into()),
                name: Some("one".into()),
                arguments: "{}".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                id: None,
                name: None,
                arguments: "\"x\":1}".into(),
            },
            StreamEvent::TextDelta { text: "hi".into() },
        ] {
            a.push(&ev);
        }
        let r = a.finish();
        assert_eq!(r.text, "hi");
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].name, "one");
        assert_eq!(
            r.tool_calls[1].arguments,
            ToolArguments::Json(json!({"x": 1}))
        );
        assert!(r.diagnostics.is_empty());
    }

    #[test]
    fn non_json_arguments_are_kept_raw_with_diagnostic() {
        let mut a = ResponseAssembler::default();
        a.push(&StreamEvent::ToolCallDelta {
            index: 0,
            id: None,
            name: Some("f".into()),
            arguments: "{oops".into(),
        });
        let r = a.finish();
        assert_eq!(
            r.tool_calls[0].arguments,
            ToolArguments::Raw("{oops".into())
        );
        assert_eq!(r.tool_calls[0].id, "call_0");
        assert_eq!(r.diagnostics[0].code, TOOL_ARGUMENTS_NOT_JSON);
    }
}
