//! Rendering a [`Reply`] in the wire shapes of the OpenAI chat completions and Responses APIs.
//!
//! Streams are rendered up front into complete SSE frames (each ending in a blank line) so the transport
//! can pace, cut, corrupt or truncate them frame by frame without knowing the protocol.

use serde_json::{Map, Value, json};

use crate::request::RecordedRequest;
use crate::scenario::{Fault, Reply};

/// A rendered event stream.
#[derive(Debug)]
pub(crate) struct Frames {
    /// Complete SSE frames, each ending with `\n\n`.
    pub frames: Vec<String>,
    /// How many trailing frames mark a complete answer (final chunk, usage, `[DONE]`, or
    /// `response.completed`); [`Fault::TruncatedStream`] drops them.
    pub completion_tail: usize,
}

/// Token counts reported for one answer.
#[derive(Debug, Clone, Copy)]
struct Usage {
    prompt: u64,
    completion: u64,
    reasoning: u64,
}

/// Everything needed to render one answer.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    n: u64,
    created: u64,
    model: String,
    include_usage: bool,
    unknown_fields: bool,
    usage: Usage,
    reply: &'a Reply,
}

fn tokens_for(bytes: usize) -> u64 {
    u64::try_from(bytes.div_ceil(4)).unwrap_or(u64::MAX)
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(n: u64, request: &RecordedRequest, reply: &'a Reply) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reasoning_bytes: usize = reply.reasoning.iter().map(String::len).sum();
        let reasoning = tokens_for(reasoning_bytes);
        let usage = match reply.usage {
            Some((prompt, completion)) => Usage {
                prompt,
                completion,
                reasoning: reasoning.min(completion),
            },
            None => {
                let content: usize = reply.text.iter().map(String::len).sum::<usize>()
                    + reply
                        .tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len())
                        .sum::<usize>();
                Usage {
                    prompt: tokens_for(request.raw_body.len()).max(1),
                    completion: (tokens_for(content) + reasoning).max(1),
                    reasoning,
                }
            }
        };
        Self {
            n,
            created,
            model: request.model().unwrap_or("mock-model").to_owned(),
            include_usage: request.wants_stream_usage(),
            unknown_fields: reply.fault == Some(Fault::UnknownFields),
            usage,
            reply,
        }
    }

    fn text(&self) -> String {
        self.reply.text.concat()
    }

    fn reasoning(&self) -> String {
        self.reply.reasoning.concat()
    }
}

/// Splits tool-call arguments into up to four fragments on character boundaries, so clients must
/// reassemble them; arguments of two or more characters always give at least two fragments.
pub(crate) fn fragments(arguments: &str) -> Vec<&str> {
    let count = arguments.chars().count();
    if count == 0 {
        return Vec::new();
    }
    let size = count.div_ceil(count.min(4));
    let mut out = Vec::new();
    let mut start = 0;
    for (i, (offset, _)) in arguments.char_indices().enumerate() {
        if i > 0 && i % size == 0 {
            out.push(&arguments[start..offset]);
            start = offset;
        }
    }
    out.push(&arguments[start..]);
    out
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn unknown_value() -> Value {
    json!({"nested": [1, "two", null], "flag": true})
}

// ---------------------------------------------------------------------------------------------------
// Chat completions
// ---------------------------------------------------------------------------------------------------

impl Ctx<'_> {
    fn chat_id(&self) -> String {
        format!("chatcmpl-mock-{}", self.n)
    }

    fn chat_finish_reason(&self) -> &'static str {
        if self.reply.tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    fn chat_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.usage.prompt,
            "completion_tokens": self.usage.completion,
            "total_tokens": self.usage.prompt + self.usage.completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.usage.reasoning}
        })
    }

    fn chat_chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        let mut choice = object(json!({
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }));
        if self.unknown_fields {
            if let Some(Value::Object(delta)) = choice.get_mut("delta") {
                delta.insert("x_mock_delta_extra".into(), json!("ignore me"));
            }
            choice.insert("x_mock_choice_extra".into(), json!(42));
        }
        let mut chunk = object(json!({
            "id": self.chat_id(),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mock",
            "choices": [Value::Object(choice)],
        }));
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        self.data_frame(chunk)
    }

    fn data_frame(&self, mut chunk: Map<String, Value>) -> String {
        if self.unknown_fields {
            chunk.insert("x_mock_unknown".into(), unknown_value());
        }
        format!("data: {}\n\n", Value::Object(chunk))
    }

    /// The `chat.completion.chunk` frames of a streamed chat answer, ending with `data: [DONE]`.
    pub(crate) fn chat_stream(&self) -> Frames {
        let reply = self.reply;
        let mut frames = vec![self.chat_chunk(json!({"role": "assistant", "content": ""}), None)];
        for piece in &reply.reasoning {
            frames.push(self.chat_chunk(json!({"reasoning_content": piece}), None));
        }
        for piece in &reply.text {
            frames.push(self.chat_chunk(json!({"content": piece}), None));
        }
        for (index, call) in reply.tool_calls.iter().enumerate() {
            let parts = fragments(&call.arguments);
            frames.push(self.chat_chunk(
                json!({"tool_calls": [{
                    "index": index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""}
                }]}),
                None,
            ));
            for part in parts {
                frames.push(self.chat_chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                    None,
                ));
            }
        }
        let mut completion_tail = 2;
        frames.push(self.chat_chunk(json!({}), Some(self.chat_finish_reason())));
        if self.include_usage {
            let chunk = object(json!({
                "id": self.chat_id(),
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_mock",
                "choices": [],
                "usage": self.chat_usage(),
            }));
            frames.push(self.data_frame(chunk));
            completion_tail += 1;
        }
        frames.push("data: [DONE]\n\n".to_owned());
        Frames {
            frames,
            completion_tail,
        }
    }

    /// The `chat.completion` object of a non-streamed chat answer.
    pub(crate) fn chat_body(&self) -> Value {
        let reply = self.reply;
        let mut message = object(json!({"role": "assistant"}));
        let text = self.text();
        let content = if text.is_empty() && !reply.tool_calls.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        };
        message.insert("content".into(), content);
        message.insert("refusal".into(), Value::Null);
        if !reply.reasoning.is_empty() {
            message.insert("reasoning_content".into(), Value::String(self.reasoning()));
        }
        if !reply.tool_calls.is_empty() {
            let calls: Vec<Value> = reply
                .tool_calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments}
                    })
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let mut choice = object(json!({"index": 0, "logprobs": null}));
        if self.unknown_fields {
            message.insert("x_mock_message_extra".into(), json!("ignore me"));
            choice.insert("x_mock_choice_extra".into(), json!(42));
        }
        choice.insert("message".into(), Value::Object(message));
        choice.insert("finish_reason".into(), json!(self.chat_finish_reason()));
        let mut body = object(json!({
            "id": self.chat_id(),
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mock",
        }));
        body.insert("choices".into(), Value::Array(vec![Value::Object(choice)]));
        body.insert("usage".into(), self.chat_usage());
        if self.unknown_fields {
            body.insert("x_mock_unknown".into(), unknown_value());
        }
        Value::Object(body)
    }
}

// ---------------------------------------------------------------------------------------------------
// Responses API
// ---------------------------------------------------------------------------------------------------

/// Collects Responses API events with increasing `sequence_number`s.
struct Events {
    frames: Vec<String>,
    sequence: u64,
    unknown_fields: bool,
}

impl Events {
    fn push(&mut self, kind: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("type".into(), json!(kind));
        event.insert("sequence_number".into(), json!(self.sequence));
        self.sequence += 1;
        event.extend(object(fields));
        if self.unknown_fields {
            event.insert("x_mock_unknown".into(), unknown_value());
            if let Some(Value::Object(item)) = event.get_mut("item") {
                item.insert("x_mock_item_extra".into(), json!(true));
            }
        }
        self.frames
            .push(format!("event: {kind}\ndata: {}\n\n", Value::Object(event)));
    }
}

impl Ctx<'_> {
    fn response_id(&self) -> String {
        format!("resp_mock_{}", self.n)
    }

    fn responses_usage(&self) -> Value {
        json!({
            "input_tokens": self.usage.prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.usage.completion,
            "output_tokens_details": {"reasoning_tokens": self.usage.reasoning},
            "total_tokens": self.usage.prompt + self.usage.completion
        })
    }

    fn response_object(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        let mut response = object(json!({
            "id": self.response_id(),
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": null,
            "incomplete_details": null,
            "instructions": null,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }));
        if self.unknown_fields {
            response.insert("x_mock_unknown".into(), unknown_value());
        }
        Value::Object(response)
    }

    fn reasoning_item(&self, text: Option<&str>) -> Value {
        let summary = match text {
            Some(text) => json!([{"type": "summary_text", "text": text}]),
            None => json!([]),
        };
        json!({"id": format!("rs_mock_{}", self.n), "type": "reasoning", "summary": summary})
    }

    fn message_item(&self, text: Option<&str>) -> Value {
        let (status, content) = match text {
            Some(text) => (
                "completed",
                json!([{"type": "output_text", "text": text, "annotations": []}]),
            ),
            None => ("in_progress", json!([])),
        };
        json!({
            "id": format!("msg_mock_{}", self.n),
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content
        })
    }

    fn function_call_item(&self, index: usize, done: bool) -> Value {
        let call = self.reply.tool_calls.get(index);
        json!({
            "id": format!("fc_mock_{}_{}", self.n, index),
            "type": "function_call",
            "status": if done { "completed" } else { "in_progress" },
            "call_id": call.map(|c| c.id.as_str()),
            "name": call.map(|c| c.name.as_str()),
            "arguments": if done { call.map_or("", |c| c.arguments.as_str()) } else { "" }
        })
    }

    /// Whether the answer has a message item: when it has text, or when it has nothing else.
    fn has_message(&self) -> bool {
        !self.reply.text.is_empty() || self.reply.tool_calls.is_empty()
    }

    /// The final output items, in stream order: reasoning, message, function calls.
    fn output_items(&self) -> Vec<Value> {
        let mut output = Vec::new();
        if !self.reply.reasoning.is_empty() {
            output.push(self.reasoning_item(Some(&self.reasoning())));
        }
        if self.has_message() {
            output.push(self.message_item(Some(&self.text())));
        }
        for index in 0..self.reply.tool_calls.len() {
            output.push(self.function_call_item(index, true));
        }
        output
    }

    /// The event frames of a streamed Responses answer, ending with `response.completed`.
    pub(crate) fn responses_stream(&self) -> Frames {
        let reply = self.reply;
        let mut events = Events {
            frames: Vec::new(),
            sequence: 0,
            unknown_fields: self.unknown_fields,
        };
        let in_progress = self.response_object("in_progress", Vec::new(), Value::Null);
        events.push("response.created", json!({"response": in_progress}));
        if self.unknown_fields {
            events.push("response.x_mock_unknown_event", json!({"ignored": true}));
        }
        events.push("response.in_progress", json!({"response": in_progress}));
        let mut output_index = 0usize;

        if !reply.reasoning.is_empty() {
            let item_id = format!("rs_mock_{}", self.n);
            let text = self.reasoning();
            events.push(
                "response.output_item.added",
                json!({"output_index": output_index, "item": self.reasoning_item(None)}),
            );
            events.push(
                "response.reasoning_summary_part.added",
                json!({"item_id": item_id, "output_index": output_index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": ""}}),
            );
            for piece in &reply.reasoning {
                events.push(
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": item_id, "output_index": output_index, "summary_index": 0,
                           "delta": piece}),
                );
            }
            events.push(
                "response.reasoning_summary_text.done",
                json!({"item_id": item_id, "output_index": output_index, "summary_index": 0,
                       "text": text}),
            );
            events.push(
                "response.reasoning_summary_part.done",
                json!({"item_id": item_id, "output_index": output_index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": text}}),
            );
            events.push(
                "response.output_item.done",
                json!({"output_index": output_index, "item": self.reasoning_item(Some(&text))}),
            );
            output_index += 1;
        }

        if self.has_message() {
            let item_id = format!("msg_mock_{}", self.n);
            let text = self.text();
            events.push(
                "response.output_item.added",
                json!({"output_index": output_index, "item": self.message_item(None)}),
            );
            events.push(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                       "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
            for piece in &reply.text {
                events.push(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                           "delta": piece, "logprobs": []}),
                );
            }
            events.push(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                       "text": text, "logprobs": []}),
            );
            events.push(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                       "part": {"type": "output_text", "text": text, "annotations": []}}),
            );
            events.push(
                "response.output_item.done",
                json!({"output_index": output_index, "item": self.message_item(Some(&text))}),
            );
            output_index += 1;
        }

        for (index, call) in reply.tool_calls.iter().enumerate() {
            let item_id = format!("fc_mock_{}_{}", self.n, index);
            events.push(
                "response.output_item.added",
                json!({"output_index": output_index, "item": self.function_call_item(index, false)}),
            );
            for part in fragments(&call.arguments) {
                events.push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": output_index, "delta": part}),
                );
            }
            events.push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": output_index, "name": call.name,
                       "arguments": call.arguments}),
            );
            events.push(
                "response.output_item.done",
                json!({"output_index": output_index, "item": self.function_call_item(index, true)}),
            );
            output_index += 1;
        }

        let completed =
            self.response_object("completed", self.output_items(), self.responses_usage());
        events.push("response.completed", json!({"response": completed}));
        Frames {
            frames: events.frames,
            completion_tail: 1,
        }
    }

    /// The response object of a non-streamed Responses answer.
    pub(crate) fn responses_body(&self) -> Value {
        let mut output = self.output_items();
        if self.unknown_fields {
            for item in &mut output {
                if let Value::Object(item) = item {
                    item.insert("x_mock_item_extra".into(), json!(true));
                }
            }
        }
        self.response_object("completed", output, self.responses_usage())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::scenario::MockToolCall;

    fn request(body: Value) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            headers: vec![],
            raw_body: body.to_string(),
            body,
        }
    }

    fn data(frame: &str) -> Value {
        let json = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fragments_split_on_char_boundaries() {
        assert!(fragments("").is_empty());
        assert_eq!(fragments("a"), vec!["a"]);
        assert_eq!(fragments("ab"), vec!["a", "b"]);
        let args = r#"{"city":"Zürich","days":3}"#;
        let parts = fragments(args);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.concat(), args);
    }

    #[test]
    fn chat_stream_shape() {
        let reply = Reply::tool_calls(vec![
            MockToolCall::new("call_a", "alpha", json!({"x": 1})),
            MockToolCall::raw("call_b", "beta", "{broken"),
        ])
        .with_text("calling tools")
        .with_reasoning("hmm ok")
        .with_usage(7, 9);
        let req = request(json!({"model": "gpt-x", "stream": true,
                                 "stream_options": {"include_usage": true}}));
        let ctx = Ctx::new(5, &req, &reply);
        let Frames {
            frames,
            completion_tail,
        } = ctx.chat_stream();
        assert_eq!(completion_tail, 3);
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        assert!(frames.iter().all(|f| f.ends_with("\n\n")));
        let chunks: Vec<Value> = frames[..frames.len() - 1].iter().map(|f| data(f)).collect();
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(chunks[0]["id"], "chatcmpl-mock-5");
        assert_eq!(chunks[0]["model"], "gpt-x");
        assert!(chunks[0]["usage"].is_null());
        let reasoning: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
            .collect();
        assert_eq!(reasoning, "hmm ok");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "calling tools");
        let mut args = [String::new(), String::new()];
        for c in &chunks {
            if let Some(calls) = c["choices"][0]["delta"]["tool_calls"].as_array() {
                let i = calls[0]["index"].as_u64().unwrap() as usize;
                args[i].push_str(calls[0]["function"]["arguments"].as_str().unwrap());
            }
        }
        assert_eq!(args, [r#"{"x":1}"#.to_owned(), "{broken".to_owned()]);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 16);
    }

    #[test]
    fn responses_stream_has_increasing_sequence_and_completed_last() {
        let reply = Reply::text("hi there")
            .with_reasoning("think")
            .fault(Fault::UnknownFields);
        let req = request(json!({"model": "m", "stream": true, "input": "q"}));
        let ctx = Ctx::new(1, &req, &reply);
        let Frames { frames, .. } = ctx.responses_stream();
        let events: Vec<Value> = frames.iter().map(|f| data(f)).collect();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i as u64);
            assert!(e["x_mock_unknown"].is_object());
            let name = frames[i].lines().next().unwrap();
            assert_eq!(name, format!("event: {}", e["type"].as_str().unwrap()));
        }
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["response"]["output"][0]["type"], "reasoning");
        assert_eq!(
            last["response"]["output"][1]["content"][0]["text"],
            "hi there"
        );
        assert!(
            events
                .iter()
                .any(|e| e["type"] == "response.x_mock_unknown_event")
        );
    }

    #[test]
    fn default_usage_is_plausible() {
        let reply = Reply::text("four byte words here");
        let req = request(json!({"messages": [{"role": "user", "content": "hello there"}]}));
        let body = Ctx::new(1, &req, &reply).chat_body();
        let usage = &body["usage"];
        assert!(usage["prompt_tokens"].as_u64().unwrap() >= 1);
        assert_eq!(usage["completion_tokens"], 5);
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "four byte words here"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
    }
}
