//! Requests as the mock server recorded them, with helpers for the questions tests ask about them.

use serde_json::Value;

/// One HTTP request the mock server received, recorded before it was answered (faulted ones included),
/// so tests can assert what a client sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The request method, e.g. `"POST"`.
    pub method: String,
    /// The request target as sent, including any query string, e.g. `"/v1/chat/completions"`.
    pub path: String,
    /// The headers in the order received, names as sent (look them up with [`RecordedRequest::header`]).
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::Null` when it is empty or not JSON.
    pub body: Value,
    /// The body as text (invalid UTF-8 replaced).
    pub raw_body: String,
}

impl RecordedRequest {
    /// The first header named `name` (ASCII case-insensitive), e.g. `header("authorization")`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The text of the last user message: the last `role: "user"` entry of chat `messages`, or of
    /// Responses `input` (a string `input` is itself the user message). Text parts (`text`,
    /// `input_text`) are joined with newlines; `None` when there is no user text.
    pub fn last_user_message(&self) -> Option<String> {
        if let Some(messages) = self.body.get("messages").and_then(Value::as_array) {
            return messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|m| m.get("content"))
                .and_then(content_text);
        }
        match self.body.get("input") {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Array(items)) => items
                .iter()
                .rev()
                .find(|item| {
                    item.get("role").and_then(Value::as_str) == Some("user")
                        && item
                            .get("type")
                            .and_then(Value::as_str)
                            .is_none_or(|t| t == "message")
                })
                .and_then(|item| item.get("content"))
                .and_then(content_text),
            _ => None,
        }
    }

    /// Whether the request carries tool results: a chat message with `role: "tool"` or a Responses
    /// `function_call_output` input item.
    pub fn has_tool_results(&self) -> bool {
        let chat = self
            .body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|messages| {
                messages
                    .iter()
                    .any(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
            });
        let responses = self
            .body
            .get("input")
            .and_then(Value::as_array)
            .is_some_and(|items| {
                items.iter().any(|item| {
                    item.get("type").and_then(Value::as_str) == Some("function_call_output")
                })
            });
        chat || responses
    }

    /// Whether the body asks for a streamed answer (`"stream": true`).
    pub fn is_stream(&self) -> bool {
        self.body
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The requested `model`, if any.
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// The names of the tools offered in the body (chat `tools[].function.name` or Responses
    /// `tools[].name`), in order.
    pub fn tool_names(&self) -> Vec<String> {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|tool| {
                        tool.get("function")
                            .and_then(|f| f.get("name"))
                            .or_else(|| tool.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The path without its query string.
    pub fn path_without_query(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(self.path.as_str(), |(path, _)| path)
    }

    /// Whether the body has `stream_options.include_usage: true` (chat streaming usage chunk).
    pub(crate) fn wants_stream_usage(&self) -> bool {
        self.body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The text of a message `content`: a string, or the text parts of a content array joined by newlines.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|part| match part {
                    Value::String(text) => Some(text.as_str()),
                    Value::Object(_) => {
                        let kind = part.get("type").and_then(Value::as_str);
                        if matches!(kind, Some("text" | "input_text" | "output_text")) {
                            part.get("text").and_then(Value::as_str)
                        } else {
                            None
                        }
                    }
                    _ => None,
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn request(body: Value) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/v1/responses".into(),
            headers: vec![("Authorization".into(), "Bearer k".into())],
            raw_body: body.to_string(),
            body,
        }
    }

    #[test]
    fn headers_are_case_insensitive() {
        let r = request(Value::Null);
        assert_eq!(r.header("authorization"), Some("Bearer k"));
        assert_eq!(r.header("x-missing"), None);
    }

    #[test]
    fn last_user_message_of_chat_messages() {
        let r = request(json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}, {"type": "text", "text": "part"}]},
            {"role": "tool", "content": "r"}
        ]}));
        assert_eq!(r.last_user_message().as_deref(), Some("second\npart"));
        assert!(r.has_tool_results());
    }

    #[test]
    fn last_user_message_of_responses_input() {
        assert_eq!(
            request(json!({"input": "plain"}))
                .last_user_message()
                .as_deref(),
            Some("plain")
        );
        let r = request(json!({"input": [
            {"role": "user", "content": "old"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "new"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "42"}
        ]}));
        assert_eq!(r.last_user_message().as_deref(), Some("new"));
        assert!(r.has_tool_results());
        assert!(!request(json!({"input": "x"})).has_tool_results());
        assert_eq!(request(Value::Null).last_user_message(), None);
    }

    #[test]
    fn body_helpers() {
        let r = request(json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "name": "b"}]
        }));
        assert!(r.is_stream());
        assert!(r.wants_stream_usage());
        assert_eq!(r.model(), Some("m"));
        assert_eq!(r.tool_names(), vec!["a", "b"]);
        let mut q = request(Value::Null);
        q.path = "/v1/models?limit=2".into();
        assert_eq!(q.path_without_query(), "/v1/models");
        assert!(!q.is_stream());
    }
}
