//! The OpenAI Responses API provider (`POST {base_url}/responses`).
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use agentry_core::Redactor;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::OpenAiConfig;
use crate::error::ModelError;
use crate::http::{DecodeError, Transport, WireDecoder};
use crate::openai_chat::{WireUsage, failed, put};
use crate::provider::{ModelProvider, ModelStream, ProviderInfo};
use crate::sse::{Flow, SseEvent};
use crate::types::{Completion, Message, ModelRequest, StreamEvent, ToolChoice, ToolSpec};
use crate::wire::{Text, arguments_of, data_excerpt, lenient_arguments, lenient_text, text_of};

/// A model served over the OpenAI Responses API.
///
/// Same configuration, timeouts and retry rules as [`OpenAiChat`](crate::OpenAiChat).
/// Mapping of the request: leading system messages become `instructions`; other
/// messages become input items (`message` items by role, `function_call` items for
/// the assistant's tool calls, `function_call_output` items for tool results);
/// tools are sent as non-strict function tools (strict mode would reject ordinary
/// schemas); an output schema becomes `text.format` of type `json_schema`; the token
/// cap is `max_output_tokens`. Keys in [`ModelRequest::extra`] replace the
/// provider's own.
///
/// Mapping of the response: output text and refusals → `TextDelta`, reasoning
/// text and summaries → `ReasoningDelta`, function calls → `ToolCallDelta` with a
/// dense 0-based index in the order the calls appear; `response.completed` and
/// `response.incomplete` end the stream with `Usage` and `Done`, whose finish
/// reason is normalised to the Chat Completions words (`stop`, `tool_calls`,
/// `length`, or the provider's incomplete reason); `response.failed` and `error`
/// events become [`ModelError::ResponseFailed`].
///
/// ```
/// use agentry_model::{OpenAiResponses, OpenAiConfig, ModelProvider};
/// let model = OpenAiResponses::new(OpenAiConfig::new("https://api.openai.com/v1", "gpt-4.1-mini")).unwrap();
/// assert_eq!(model.info().endpoint.as_deref(), Some("https://api.openai.com/v1/responses"));
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiResponses {
    transport: Arc<Transport>,
}

impl OpenAiResponses {
    /// Builds the provider; fails with [`ModelError::Config`] on an invalid config.
    pub fn new(config: OpenAiConfig) -> Result<Self, ModelError> {
        Ok(Self {
            transport: Arc::new(Transport::new(&config, "responses", "openai_responses")?),
        })
    }

    /// Registers this provider's secrets with another redactor.
    pub fn register_secrets(&self, redactor: &Redactor) {
        self.transport.register_secrets(redactor);
    }

    /// The JSON body this provider would send for `request`.
    pub fn request_body(&self, request: &ModelRequest) -> Result<Vec<u8>, ModelError> {
        serde_json::to_vec(&ResponsesBody {
            model: self.transport.model(),
            request,
            stream: self.transport.stream(),
        })
        .map_err(|e| ModelError::Config(format!("cannot encode the request: {e}")))
    }
}

impl ModelProvider for OpenAiResponses {
    fn info(&self) -> ProviderInfo {
        self.transport.info()
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        match self.request_body(&request) {
            Ok(body) => self.transport.start::<ResponsesDecoder>(body),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }
}

// ---------------------------------------------------------------------------
// Request body

struct ResponsesBody<'a> {
    model: &'a str,
    request: &'a ModelRequest,
    stream: bool,
}

impl Serialize for ResponsesBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let extra = &r.extra;
        let leading = r
            .messages
            .iter()
            .take_while(|m| matches!(m, Message::System { .. }))
            .count();
        let (head, rest) = r.messages.split_at(leading);
        let instructions: Option<Cow<'_, str>> = match head {
            [] => None,
            [Message::System { content }] => Some(Cow::Borrowed(content)),
            many => Some(Cow::Owned(
                many.iter()
                    .filter_map(|m| match m {
                        Message::System { content } => Some(content.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            )),
        };
        let mut map = serializer.serialize_map(None)?;
        put!(map, extra, "model", self.model);
        if let Some(text) = &instructions {
            put!(map, extra, "instructions", text);
        }
        put!(map, extra, "input", &Input(rest));
        if !r.tools.is_empty() {
            put!(map, extra, "tools", &Tools(&r.tools));
            if let Some(choice) = &r.tool_choice {
                put!(map, extra, "tool_choice", &Choice(choice));
            }
        }
        if let Some(schema) = &r.output_schema {
            #[derive(Serialize)]
            struct TextParam<'a> {
                format: Format<'a>,
            }
            #[derive(Serialize)]
            struct Format<'a> {
                #[serde(rename = "type")]
                kind: &'static str,
                name: &'a str,
                schema: &'a Value,
                strict: bool,
            }
            let text = TextParam {
                format: Format {
                    kind: "json_schema",
                    name: &schema.name,
                    schema: &schema.schema,
                    strict: schema.strict,
                },
            };
            put!(map, extra, "text", &text);
        }
        if let Some(t) = r.temperature {
            put!(map, extra, "temperature", &t);
        }
        if let Some(n) = r.max_output_tokens {
            put!(map, extra, "max_output_tokens", &n);
        }
        put!(map, extra, "stream", &self.stream);
        for (k, v) in extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

struct Input<'a>(&'a [Message]);

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item<'a> {
    Message {
        role: &'static str,
        content: &'a str,
    },
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: Cow<'a, str>,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: &'a str,
    },
}

impl Serialize for Input<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().flat_map(|m| {
            let (first, calls): (Option<Item<'_>>, &[crate::types::ToolCall]) = match m {
                Message::System { content } => (
                    Some(Item::Message {
                        role: "system",
                        content,
                    }),
                    &[],
                ),
                Message::User { content } => (
                    Some(Item::Message {
                        role: "user",
                        content,
                    }),
                    &[],
                ),
                Message::Assistant {
                    content,
                    tool_calls,
                } => (
                    content
                        .as_deref()
                        .filter(|c| !c.is_empty() || tool_calls.is_empty())
                        .map(|content| Item::Message {
                            role: "assistant",
                            content,
                        }),
                    tool_calls.as_slice(),
                ),
                Message::Tool {
                    tool_call_id,
                    content,
                } => (
                    Some(Item::FunctionCallOutput {
                        call_id: tool_call_id,
                        output: content,
                    }),
                    &[],
                ),
            };
            first
                .into_iter()
                .chain(calls.iter().map(|c| Item::FunctionCall {
                    call_id: &c.id,
                    name: &c.name,
                    arguments: match &c.arguments {
                        crate::types::ToolArguments::Raw(raw) => Cow::Borrowed(raw.as_str()),
                        json => Cow::Owned(json.to_wire_string()),
                    },
                }))
        }))
    }
}

struct Tools<'a>(&'a [ToolSpec]);

impl Serialize for Tools<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tool<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            name: &'a str,
            description: &'a str,
            parameters: &'a Value,
            strict: bool,
        }
        s.collect_seq(self.0.iter().map(|t| Tool {
            kind: "function",
            name: &t.name,
            description: &t.description,
            parameters: &t.parameters,
            strict: false,
        }))
    }
}

struct Choice<'a>(&'a ToolChoice);

impl Serialize for Choice<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => s.serialize_str("auto"),
            ToolChoice::None => s.serialize_str("none"),
            ToolChoice::Required => s.serialize_str("required"),
            ToolChoice::Tool(name) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "function")?;
                m.serialize_entry("name", name)?;
                m.end()
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Response decoding

/// One stream event. Fields that only some events carry are boxed so the struct
/// serde builds (and moves) for every delta stays small.
#[derive(Deserialize)]
struct Event<'a> {
    /// The event type; when absent, the SSE `event:` name is used.
    #[serde(rename = "type", default, borrow)]
    kind: Option<Text<'a>>,
    #[serde(default, deserialize_with = "lenient_text")]
    delta: Option<String>,
    #[serde(default)]
    output_index: Option<u32>,
    #[serde(default, borrow)]
    item_id: Option<Text<'a>>,
    #[serde(default)]
    item: Option<Box<OutputItem>>,
    #[serde(default, borrow)]
    response: Option<Box<ResponseHead<'a>>>,
    #[serde(default, deserialize_with = "lenient_arguments")]
    arguments: Option<String>,
    #[serde(default)]
    code: Option<Box<Value>>,
    #[serde(default)]
    message: Option<Box<Value>>,
    #[serde(default)]
    error: Option<Box<Value>>,
}

/// The parts of a response object the stream needs; `output` is skipped because
/// the deltas already carried it.
#[derive(Deserialize)]
struct ResponseHead<'a> {
    #[serde(default, borrow)]
    id: Option<Text<'a>>,
    #[serde(default, borrow)]
    model: Option<Text<'a>>,
    #[serde(default, borrow)]
    status: Option<Text<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct IncompleteDetails {
    #[serde(default)]
    reason: Option<String>,
}

/// A whole non-streamed response.
#[derive(Deserialize)]
struct FullResponse<'a> {
    #[serde(default, borrow)]
    id: Option<Text<'a>>,
    #[serde(default, borrow)]
    model: Option<Text<'a>>,
    #[serde(default, borrow)]
    status: Option<Text<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    output: Vec<OutputItem>,
}

#[derive(Deserialize)]
struct OutputItem {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default)]
    content: Vec<Part>,
    #[serde(default)]
    summary: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

struct CallSlot {
    output_index: Option<u32>,
    item_id: Option<String>,
    got_arguments: bool,
}

/// Decodes Responses API events. Unknown event types are ignored; malformed JSON
/// fails the stream (see [`ChatDecoder`](crate::openai_chat) for why).
#[derive(Default)]
pub(crate) struct ResponsesDecoder {
    response_id: Option<String>,
    model: Option<String>,
    calls: Vec<CallSlot>,
}

impl std::fmt::Debug for ResponsesDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsesDecoder")
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl ResponsesDecoder {
    fn find(&self, output_index: Option<u32>, item_id: Option<&str>) -> Option<usize> {
        self.calls.iter().position(|c| {
            (output_index.is_some() && c.output_index == output_index)
                || (item_id.is_some() && c.item_id.as_deref() == item_id)
        })
    }

    fn new_call(&mut self, output_index: Option<u32>, item_id: Option<String>) -> usize {
        self.calls.push(CallSlot {
            output_index,
            item_id,
            got_arguments: false,
        });
        self.calls.len() - 1
    }

    fn remember(&mut self, head: &mut ResponseHead<'_>) {
        if self.response_id.is_none() {
            self.response_id = head.id.take().map(Text::into_string);
        }
        if self.model.is_none() {
            self.model = head.model.take().map(Text::into_string);
        }
    }

    /// `Usage` and `Done` from a final response object.
    fn finish(&mut self, mut head: ResponseHead<'_>, out: &mut VecDeque<StreamEvent>) {
        self.remember(&mut head);
        if let Some(usage) = &head.usage {
            out.push_back(StreamEvent::Usage(usage.to_usage()));
        }
        let incomplete = head.status.as_ref().is_some_and(|s| s.0 == "incomplete")
            || head.incomplete_details.is_some();
        let finish_reason = if incomplete {
            match head.incomplete_details.and_then(|d| d.reason) {
                Some(r) if r == "max_output_tokens" => "length".to_owned(),
                Some(r) => r,
                None => "incomplete".to_owned(),
            }
        } else if self.calls.is_empty() {
            "stop".to_owned()
        } else {
            "tool_calls".to_owned()
        };
        out.push_back(StreamEvent::Done(Completion {
            finish_reason: Some(finish_reason),
            response_id: self.response_id.take(),
            model: self.model.take(),
        }));
    }

    fn function_call_item(
        &mut self,
        item: OutputItem,
        output_index: Option<u32>,
        done: bool,
        out: &mut VecDeque<StreamEvent>,
    ) {
        let arguments = item.arguments.map(arguments_of).unwrap_or_default();
        match self.find(output_index, item.id.as_deref()) {
            Some(slot) if done => {
                // Already announced; send the arguments only if no delta carried them.
                if let Some(call) = self.calls.get_mut(slot)
                    && !call.got_arguments
                    && !arguments.is_empty()
                {
                    call.got_arguments = true;
                    out.push_back(StreamEvent::ToolCallDelta {
                        index: dense(slot),
                        id: None,
                        name: None,
                        arguments,
                    });
                }
            }
            Some(_) => {}
            None => {
                let slot = self.new_call(output_index, item.id);
                if let Some(call) = self.calls.get_mut(slot) {
                    call.got_arguments = !arguments.is_empty();
                }
                out.push_back(StreamEvent::ToolCallDelta {
                    index: dense(slot),
                    id: item.call_id.filter(|s| !s.is_empty()),
                    name: item.name.filter(|s| !s.is_empty()),
                    arguments,
                });
            }
        }
    }
}

fn dense(slot: usize) -> u32 {
    u32::try_from(slot).unwrap_or(u32::MAX)
}

fn in_band_failure(
    code: Option<Value>,
    message: Option<Value>,
    error: Option<Value>,
) -> DecodeError {
    match error {
        Some(e @ Value::Object(_)) => failed(e),
        _ => DecodeError::Failed {
            code: code.and_then(|c| match c {
                Value::String(s) => Some(s),
                Value::Null => None,
                other => Some(other.to_string()),
            }),
            message: message
                .and_then(text_of)
                .unwrap_or_else(|| "the server reported an error".to_owned()),
        },
    }
}

impl WireDecoder for ResponsesDecoder {
    fn on_event(
        &mut self,
        event: SseEvent<'_>,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, DecodeError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Flow::Continue);
        }
        let ev: Event<'_> = serde_json::from_str(data).map_err(|e| {
            DecodeError::Malformed(format!(
                "a stream event is not valid JSON ({e}): {}",
                data_excerpt(data)
            ))
        })?;
        let kind: &str = match &ev.kind {
            Some(k) => &k.0,
            None => event.event,
        };
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(text) = ev.delta.filter(|t| !t.is_empty()) {
                    out.push_back(StreamEvent::TextDelta { text });
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(text) = ev.delta.filter(|t| !t.is_empty()) {
                    out.push_back(StreamEvent::ReasoningDelta { text });
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = ev.item.filter(|i| i.kind == "function_call") {
                    let done = kind == "response.output_item.done";
                    self.function_call_item(*item, ev.output_index, done, out);
                }
            }
            "response.function_call_arguments.delta" | "response.function_call_arguments.done" => {
                let is_delta = kind.ends_with(".delta");
                let item_id = ev.item_id.as_ref().map(|t| t.0.as_ref());
                let slot = match self.find(ev.output_index, item_id) {
                    Some(slot) => slot,
                    None => self.new_call(ev.output_index, item_id.map(str::to_owned)),
                };
                let text = if is_delta {
                    ev.delta.unwrap_or_default()
                } else {
                    ev.arguments.unwrap_or_default()
                };
                if let Some(call) = self.calls.get_mut(slot)
                    && !text.is_empty()
                    && (is_delta || !call.got_arguments)
                {
                    call.got_arguments = true;
                    out.push_back(StreamEvent::ToolCallDelta {
                        index: dense(slot),
                        id: None,
                        name: None,
                        arguments: text,
                    });
                }
            }
            "response.created" | "response.in_progress" => {
                if let Some(mut head) = ev.response {
                    self.remember(&mut head);
                }
            }
            "response.completed" | "response.incomplete" => {
                let head = ev.response.map(|b| *b).unwrap_or(ResponseHead {
                    id: None,
                    model: None,
                    status: None,
                    usage: None,
                    incomplete_details: None,
                    error: None,
                });
                self.finish(head, out);
                return Ok(Flow::Stop);
            }
            "response.failed" => {
                let error = ev.response.and_then(|r| r.error);
                return Err(in_band_failure(None, None, error));
            }
            "error" => {
                return Err(in_band_failure(
                    ev.code.map(|b| *b),
                    ev.message.map(|b| *b),
                    ev.error.map(|b| *b),
                ));
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn on_eof(&mut self, _out: &mut VecDeque<StreamEvent>) -> bool {
        // A Responses stream is complete only with its terminal event.
        false
    }

    fn on_body(&mut self, body: &[u8], out: &mut VecDeque<StreamEvent>) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| DecodeError::Malformed("the response body is not UTF-8".into()))?;
        let full: FullResponse<'_> = serde_json::from_str(text).map_err(|e| {
            DecodeError::Malformed(format!("the response body is not a response object ({e})"))
        })?;
        let head = ResponseHead {
            id: full.id,
            model: full.model,
            status: full.status,
            usage: full.usage,
            incomplete_details: full.incomplete_details,
            error: None,
        };
        if let Some(error) = full.error.filter(|e| !e.is_null()) {
            return Err(in_band_failure(None, None, Some(error)));
        }
        if head.status.as_ref().is_some_and(|s| s.0 == "failed") {
            return Err(in_band_failure(None, None, None));
        }
        if head.status.is_none() && full.output.is_empty() && head.id.is_none() {
            return Err(DecodeError::Malformed(
                "the response body is not a response object".into(),
            ));
        }
        for item in full.output {
            match item.kind.as_str() {
                "message" => {
                    for part in item.content {
                        let text = match part.kind.as_str() {
                            "refusal" => part.refusal.or(part.text),
                            _ => part.text,
                        };
                        if let Some(text) = text.filter(|t| !t.is_empty()) {
                            out.push_back(StreamEvent::TextDelta { text });
                        }
                    }
                }
                "reasoning" => {
                    for part in item.summary.into_iter().chain(item.content) {
                        if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                            out.push_back(StreamEvent::ReasoningDelta { text });
                        }
                    }
                }
                "function_call" => self.function_call_item(item, None, false, out),
                _ => {}
            }
        }
        self.finish(head, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{OutputSchema, ToolArguments, ToolCall, Usage};
    use serde_json::json;

    fn run(lines: &[&str]) -> (Vec<StreamEvent>, Result<Flow, DecodeError>) {
        let mut d = ResponsesDecoder::default();
        let mut out = VecDeque::new();
        let mut last = Ok(Flow::Continue);
        for l in lines {
            last = d.on_event(
                SseEvent {
                    event: "x",
                    data: l,
                },
                &mut out,
            );
            if !matches!(last, Ok(Flow::Continue)) {
                break;
            }
        }
        (out.into_iter().collect(), last)
    }

    #[test]
    fn stream_events() {
        let (events, flow) = run(&[
            r#"{"type":"response.created","response":{"id":"resp_1","model":"gpt","status":"in_progress","output":[],"tools":[{"type":"function"}]}}"#,
            r#"{"type":"response.reasoning_summary_text.delta","delta":"hm","output_index":0}"#,
            r#"{"type":"response.output_text.delta","delta":"Hi","output_index":1,"item_id":"m"}"#,
            r#"{"type":"response.output_item.added","output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_a","name":"f","arguments":""}}"#,
            r#"{"type":"response.output_item.added","output_index":3,"item":{"type":"function_call","id":"fc_2","call_id":"call_b","name":"g","arguments":""}}"#,
            r#"{"type":"response.function_call_arguments.delta","output_index":2,"item_id":"fc_1","delta":"{\"a\""}"#,
            r#"{"type":"response.function_call_arguments.delta","output_index":3,"item_id":"fc_2","delta":"{}"}"#,
            r#"{"type":"response.function_call_arguments.delta","output_index":2,"item_id":"fc_1","delta":":1}"}"#,
            r#"{"type":"response.function_call_arguments.done","output_index":2,"item_id":"fc_1","arguments":"{\"a\":1}"}"#,
            r#"{"type":"response.output_item.done","output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_a","name":"f","arguments":"{\"a\":1}"}}"#,
            r#"{"type":"response.brand_new_event","foo":1}"#,
            r#"{"type":"response.completed","response":{"id":"resp_1","status":"completed","output":[{"type":"message"}],"usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11,"output_tokens_details":{"reasoning_tokens":2}}}}"#,
        ]);
        assert!(matches!(flow, Ok(Flow::Stop)));
        let mut a = crate::ResponseAssembler::default();
        for e in &events {
            a.push(e);
        }
        let r = a.finish();
        assert_eq!(r.text, "Hi");
        assert_eq!(r.reasoning, "hm");
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].id, "call_a");
        assert_eq!(
            r.tool_calls[0].arguments,
            ToolArguments::Json(json!({"a": 1}))
        );
        assert_eq!(r.tool_calls[1].name, "g");
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 6,
                total_tokens: 11,
                reasoning_tokens: Some(2)
            })
        );
        assert_eq!(r.completion.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.completion.response_id.as_deref(), Some("resp_1"));
        assert_eq!(r.completion.model.as_deref(), Some("gpt"));
    }

    #[test]
    fn event_name_stands_in_for_a_missing_type() {
        let mut d = ResponsesDecoder::default();
        let mut out = VecDeque::new();
        d.on_event(
            SseEvent {
                event: "response.output_text.delta",
                data: r#"{"delta":"hi"}"#,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out.pop_front(),
            Some(StreamEvent::TextDelta { text: "hi".into() })
        );
    }

    #[test]
    fn arguments_only_in_done_events_are_used() {
        let (events, _) = run(&[
            r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc","call_id":"c","name":"f"}}"#,
            r#"{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc","call_id":"c","name":"f","arguments":"{\"z\":true}"}}"#,
            r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}}"#,
        ]);
        let mut a = crate::ResponseAssembler::default();
        events.iter().for_each(|e| a.push(e));
        let r = a.finish();
        assert_eq!(
            r.tool_calls[0].arguments,
            ToolArguments::Json(json!({"z": true}))
        );
        assert_eq!(r.completion.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn failures() {
        let (_, flow) = run(&[
            r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"}}}"#,
        ]);
        assert!(
            matches!(flow, Err(DecodeError::Failed { code: Some(c), message }) if c == "server_error" && message == "boom")
        );
        let (_, flow) =
            run(&[r#"{"type":"error","code":"rate_limit_exceeded","message":"slow down"}"#]);
        assert!(
            matches!(flow, Err(DecodeError::Failed { code: Some(c), .. }) if c == "rate_limit_exceeded")
        );
        let (_, flow) = run(&["{nope"]);
        assert!(matches!(flow, Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn whole_body() {
        let mut d = ResponsesDecoder::default();
        let mut out = VecDeque::new();
        d.on_body(
            br#"{"id":"r","object":"response","model":"m","status":"completed","output":[
                {"type":"reasoning","id":"rs","summary":[{"type":"summary_text","text":"why"}]},
                {"type":"message","id":"msg","role":"assistant","content":[{"type":"output_text","text":"hello","annotations":[]}]},
                {"type":"function_call","id":"fc","call_id":"c1","name":"f","arguments":"{}"}
            ],"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}"#,
            &mut out,
        )
        .unwrap();
        let mut a = crate::ResponseAssembler::default();
        out.iter().for_each(|e| a.push(e));
        let r = a.finish();
        assert_eq!((r.text.as_str(), r.reasoning.as_str()), ("hello", "why"));
        assert_eq!(r.tool_calls[0].id, "c1");
        assert_eq!(r.usage.unwrap().total_tokens, 3);
        let mut out = VecDeque::new();
        let err = ResponsesDecoder::default()
            .on_body(
                br#"{"id":"r","status":"failed","error":{"code":"x","message":"bad"}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(err, DecodeError::Failed { .. }));
    }

    #[test]
    fn body_shape() {
        let model = OpenAiResponses::new(OpenAiConfig::new("http://127.0.0.1:9/v1", "m")).unwrap();
        let mut req = ModelRequest::new(vec![
            Message::system("be brief"),
            Message::system("be kind"),
            Message::user("u"),
            Message::Assistant {
                content: Some("calling".into()),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    arguments: ToolArguments::Raw("not json".into()),
                }],
            },
            Message::tool_result("c1", "ok"),
            Message::system("late"),
        ]);
        req.tools = vec![ToolSpec {
            name: "f".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        }];
        req.tool_choice = Some(ToolChoice::Required);
        req.output_schema = Some(OutputSchema {
            name: "o".into(),
            schema: json!({"type": "object"}),
            strict: false,
        });
        req.max_output_tokens = Some(9);
        let body: Value = serde_json::from_slice(&model.request_body(&req).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "instructions": "be brief\n\nbe kind",
                "input": [
                    {"type": "message", "role": "user", "content": "u"},
                    {"type": "message", "role": "assistant", "content": "calling"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "not json"},
                    {"type": "function_call_output", "call_id": "c1", "output": "ok"},
                    {"type": "message", "role": "system", "content": "late"}
                ],
                "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": false}],
                "tool_choice": "required",
                "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}, "strict": false}},
                "max_output_tokens": 9,
                "stream": true
            })
        );
    }
}
