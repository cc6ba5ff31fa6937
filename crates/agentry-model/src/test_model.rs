//! The built-in deterministic `test` model.
use serde_json::Value;

use crate::provider::{ModelProvider, ModelStream, ProviderInfo};
use crate::schema_sample::{sample_for_schema, sample_for_schema_with_hint};
use crate::types::{Completion, Message, ModelRequest, StreamEvent, ToolChoice, Usage};

/// Longest piece of the user's request echoed back, in characters.
const MAX_ECHO_CHARS: usize = 200;

/// A model that needs no server and always answers the same way, so agents,
/// action loops and structured output can be exercised in tests and demos.
///
/// Behaviour, per request:
/// 1. If tools are offered (and `tool_choice` is not `none`) and some offered tool
///    has not been called yet in the conversation (no assistant tool call with its
///    name), it calls every such tool once, in one turn (parallel calls with ids
///    `call_test_<n>`), with arguments generated from the tool's JSON Schema
///    ([`schema_sample`](crate::schema_sample)); a `Tool(name)` choice restricts
///    this to that tool.
/// 2. Otherwise it answers. With an output schema: a schema-valid JSON document,
///    carrying the last user message in a natural string field. Without: a short
///    text restating the request and counting the tool results since it.
///
/// The answer streams as several `TextDelta`s (one per word), then `Usage`
/// (estimated at four characters per token) and `Done`.
///
/// ```
/// use agentry_model::{Message, ModelProvider, ModelRequest, TestModel, ToolSpec};
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let model = TestModel::new();
/// let mut request = ModelRequest::new(vec![Message::user("weather in Oslo?")]);
/// request.tools.push(ToolSpec {
///     name: "weather".into(),
///     description: "Current weather".into(),
///     parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
/// });
/// let first = model.complete(request.clone()).await.unwrap();
/// assert_eq!(first.tool_calls[0].name, "weather");
/// assert_eq!(first.tool_calls[0].id, "call_test_1");
///
/// request.messages.push(Message::Assistant { content: None, tool_calls: first.tool_calls.clone() });
/// request.messages.push(Message::tool_result("call_test_1", "{\"temp\": 3}"));
/// let second = model.complete(request).await.unwrap();
/// assert!(second.text.contains("received 1 tool result"));
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct TestModel {
    _private: (),
}

impl TestModel {
    /// The test model.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events the model produces for `request` (what [`ModelProvider::stream`]
    /// yields).
    pub fn events_for(&self, request: &ModelRequest) -> Vec<StreamEvent> {
        let prompt_chars: usize = request.messages.iter().map(message_chars).sum::<usize>()
            + request
                .tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
                .sum::<usize>();
        let mut events = Vec::new();
        let mut output_chars = 0;
        let calls = self.tool_calls_for(request);
        let finish_reason = if calls.is_empty() {
            let text = answer(request);
            output_chars = text.len();
            for word in split_words(&text) {
                events.push(StreamEvent::TextDelta {
                    text: word.to_owned(),
                });
            }
            "stop"
        } else {
            for (index, (id, name, arguments)) in calls.into_iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                let args = arguments.to_string();
                output_chars += name.len() + args.len();
                // Two fragments, as real servers send them, so assemblers are exercised.
                let cut = char_boundary(&args, args.len() / 2);
                let (head, tail) = args.split_at(cut);
                events.push(StreamEvent::ToolCallDelta {
                    index,
                    id: Some(id),
                    name: Some(name),
                    arguments: head.to_owned(),
                });
                if !tail.is_empty() {
                    events.push(StreamEvent::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: tail.to_owned(),
                    });
                }
            }
            "tool_calls"
        };
        let prompt_tokens = tokens(prompt_chars);
        let completion_tokens = tokens(output_chars);
        events.push(StreamEvent::Usage(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            reasoning_tokens: None,
        }));
        events.push(StreamEvent::Done(Completion {
            finish_reason: Some(finish_reason.to_owned()),
            response_id: Some(format!("test-{}", request.messages.len())),
            model: Some("test".to_owned()),
        }));
        events
    }

    /// The calls to make: (id, name, arguments).
    fn tool_calls_for(&self, request: &ModelRequest) -> Vec<(String, String, Value)> {
        if request.tools.is_empty() || request.tool_choice == Some(ToolChoice::None) {
            return Vec::new();
        }
        let mut called: Vec<&str> = Vec::new();
        for m in &request.messages {
            if let Message::Assistant { tool_calls, .. } = m {
                called.extend(tool_calls.iter().map(|c| c.name.as_str()));
            }
        }
        let previous = called.len();
        let only = match &request.tool_choice {
            Some(ToolChoice::Tool(name)) => Some(name.as_str()),
            _ => None,
        };
        let hint = request
            .last_user_text()
            .map(|t| truncate(t, MAX_ECHO_CHARS));
        request
            .tools
            .iter()
            .filter(|t| !called.contains(&t.name.as_str()))
            .filter(|t| only.is_none_or(|o| o == t.name))
            .enumerate()
            .map(|(i, t)| {
                let arguments = match &hint {
                    Some(h) => sample_for_schema_with_hint(&t.parameters, h),
                    None => sample_for_schema(&t.parameters),
                };
                let arguments = if arguments.is_object() {
                    arguments
                } else {
                    Value::Object(serde_json::Map::new())
                };
                (
                    format!("call_test_{}", previous + i + 1),
                    t.name.clone(),
                    arguments,
                )
            })
            .collect()
    }
}

impl ModelProvider for TestModel {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            provider: "test".to_owned(),
            model: "test".to_owned(),
            endpoint: None,
        }
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        let events = self.events_for(&request);
        Box::pin(futures::stream::iter(events.into_iter().map(Ok)))
    }
}

/// The answer text (without tool calls).
fn answer(request: &ModelRequest) -> String {
    let user = request
        .last_user_text()
        .map(|t| truncate(t.trim(), MAX_ECHO_CHARS));
    if let Some(schema) = &request.output_schema {
        let value = match &user {
            Some(u) if !u.is_empty() => sample_for_schema_with_hint(&schema.schema, u),
            _ => sample_for_schema(&schema.schema),
        };
        return value.to_string();
    }
    // Tool results since the last user message, with the names of their calls.
    let last_user = request
        .messages
        .iter()
        .rposition(|m| matches!(m, Message::User { .. }))
        .map_or(0, |i| i + 1);
    let recent = request.messages.get(last_user..).unwrap_or_default();
    let results: Vec<&str> = recent
        .iter()
        .filter_map(|m| match m {
            Message::Tool { tool_call_id, .. } => Some(tool_call_id.as_str()),
            _ => None,
        })
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for id in &results {
        for m in &request.messages {
            if let Message::Assistant { tool_calls, .. } = m {
                for c in tool_calls.iter().filter(|c| c.id == *id) {
                    if !names.contains(&c.name.as_str()) {
                        names.push(&c.name);
                    }
                }
            }
        }
    }
    let mut text = match user.as_deref() {
        Some(u) if !u.is_empty() => format!("test model reply to: {u}"),
        _ => "test model reply".to_owned(),
    };
    if !results.is_empty() {
        let plural = if results.len() == 1 { "" } else { "s" };
        text.push_str(&format!(
            " — test model: received {} tool result{plural}",
            results.len()
        ));
        if !names.is_empty() {
            text.push_str(&format!(" ({})", names.join(", ")));
        }
    }
    text
}

fn message_chars(m: &Message) -> usize {
    match m {
        Message::System { content } | Message::User { content } => content.len(),
        Message::Assistant {
            content,
            tool_calls,
        } => {
            content.as_ref().map_or(0, String::len)
                + tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.to_wire_string().len())
                    .sum::<usize>()
        }
        Message::Tool { content, .. } => content.len(),
    }
}

fn tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4).max(1)).unwrap_or(u64::MAX)
}

/// Splits after each run of whitespace, so the pieces concatenate to the text.
fn split_words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            pieces.push(text.get(start..i).unwrap_or_default());
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        pieces.push(text.get(start..).unwrap_or_default());
    }
    pieces
}

fn char_boundary(s: &str, mut at: usize) -> usize {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{OutputSchema, ToolSpec};
    use crate::{ModelProvider, ToolArguments};
    use serde_json::json;

    fn tool(name: &str, params: Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: format!("{name} tool"),
            parameters: params,
        }
    }

    #[tokio::test]
    async fn text_answer_streams_in_words() {
        let m = TestModel::new();
        let req = ModelRequest::new(vec![Message::user("tell me a joke")]);
        let events = m.events_for(&req);
        let deltas = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
            .count();
        assert!(deltas >= 3);
        let r = m.complete(req.clone()).await.unwrap();
        assert_eq!(r.text, "test model reply to: tell me a joke");
        assert_eq!(r.completion.finish_reason.as_deref(), Some("stop"));
        assert!(r.usage.unwrap().total_tokens > 0);
        assert_eq!(m.events_for(&req), events, "deterministic");
    }

    #[tokio::test]
    async fn calls_each_uncalled_tool_once_then_answers() {
        let m = TestModel::new();
        let mut req = ModelRequest::new(vec![Message::user("find rust books")]);
        req.tools = vec![
            tool(
                "search",
                json!({"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}}, "required": ["query"]}),
            ),
            tool("clock", json!({"type": "object", "properties": {}})),
        ];
        let r = m.complete(req.clone()).await.unwrap();
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].id, "call_test_1");
        assert_eq!(r.tool_calls[1].id, "call_test_2");
        assert_eq!(
            r.tool_calls[0].arguments,
            ToolArguments::Json(json!({"query": "find rust books", "limit": 1}))
        );
        assert_eq!(r.completion.finish_reason.as_deref(), Some("tool_calls"));
        assert!(r.diagnostics.is_empty());

        // Only `search` answered so far and only it was called: `clock` is still due.
        req.messages.push(Message::Assistant {
            content: None,
            tool_calls: vec![r.tool_calls[0].clone()],
        });
        req.messages.push(Message::tool_result("call_test_1", "[]"));
        let r2 = m.complete(req.clone()).await.unwrap();
        assert_eq!(r2.tool_calls.len(), 1);
        assert_eq!(r2.tool_calls[0].name, "clock");
        assert_eq!(r2.tool_calls[0].id, "call_test_2");

        req.messages.push(Message::Assistant {
            content: None,
            tool_calls: r2.tool_calls.clone(),
        });
        req.messages
            .push(Message::tool_result("call_test_2", "12:00"));
        let r3 = m.complete(req).await.unwrap();
        assert!(r3.tool_calls.is_empty());
        assert_eq!(
            r3.text,
            "test model reply to: find rust books — test model: received 2 tool results (search, clock)"
        );
    }

    #[tokio::test]
    async fn tool_choice_is_respected() {
        let m = TestModel::new();
        let mut req = ModelRequest::new(vec![Message::user("x")]);
        req.tools = vec![
            tool("a", json!({"type": "object"})),
            tool("b", json!({"type": "object"})),
        ];
        req.tool_choice = Some(ToolChoice::None);
        assert!(m.complete(req.clone()).await.unwrap().tool_calls.is_empty());
        req.tool_choice = Some(ToolChoice::Tool("b".into()));
        let r = m.complete(req).await.unwrap();
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "b");
    }

    #[tokio::test]
    async fn structured_answer_validates() {
        let m = TestModel::new();
        let schema = json!({"type": "object", "properties": {
            "answer": {"type": "string"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "sources": {"type": "array", "items": {"type": "string", "format": "uri"}}
        }, "required": ["answer", "confidence", "sources"], "additionalProperties": false});
        let mut req = ModelRequest::new(vec![Message::user("What is Rust?")]);
        req.output_schema = Some(OutputSchema {
            name: "a".into(),
            schema: schema.clone(),
            strict: true,
        });
        let r = m.complete(req).await.unwrap();
        let v: Value = serde_json::from_str(&r.text).unwrap();
        assert_eq!(v["answer"], "What is Rust?");
        assert!(jsonschema::is_valid(&schema, &v));
    }

    #[test]
    fn words_concatenate_back() {
        let t = "a  b\tc é ";
        assert_eq!(split_words(t).concat(), t);
        assert_eq!(split_words(t), vec!["a  ", "b\t", "c ", "é "]);
    }
}
