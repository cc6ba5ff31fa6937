//! The OpenAI-compatible Chat Completions provider (`POST {base_url}/chat/completions`).
use std::collections::VecDeque;
use std::sync::Arc;

use agentry_core::Redactor;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::OpenAiConfig;
use crate::error::ModelError;
use crate::http::{DecodeError, Transport, WireDecoder};
use crate::provider::{ModelProvider, ModelStream, ProviderInfo};
use crate::sse::{Flow, SseEvent};
use crate::types::{
    Completion, Message, ModelRequest, StreamEvent, ToolCall, ToolChoice, ToolSpec, Usage,
};
use crate::wire::{Text, data_excerpt, first_of, lenient_arguments, lenient_count, lenient_text};

/// A model served over the OpenAI Chat Completions protocol: OpenAI itself, or any
/// compatible server (vLLM, Ollama, llama.cpp, LM Studio, gateways …).
///
/// Streaming (SSE) is the default; `stream(false)` in the config asks for one JSON
/// body, which is turned into the same [`StreamEvent`]s. One HTTP client (with its
/// connection pool) is shared by all requests of a provider and its clones.
///
/// Request body notes: the token cap goes out as `max_tokens`, the field every
/// compatible server understands; for OpenAI reasoning models that require
/// `max_completion_tokens`, leave [`ModelRequest::max_output_tokens`] unset and put
/// `max_completion_tokens` in [`ModelRequest::extra`]. Keys in `extra` replace the
/// provider's own fields of the same name.
///
/// ```
/// use agentry_model::{OpenAiChat, OpenAiConfig, ModelProvider};
/// let model = OpenAiChat::new(OpenAiConfig::new("http://127.0.0.1:11434/v1", "llama3.2")).unwrap();
/// assert_eq!(model.info().provider, "openai_chat");
/// assert_eq!(model.info().endpoint.as_deref(), Some("http://127.0.0.1:11434/v1/chat/completions"));
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    transport: Arc<Transport>,
    include_usage: bool,
}

impl OpenAiChat {
    /// Builds the provider; fails with [`ModelError::Config`] on an empty model
    /// name, an unusable base URL, zero attempts or an invalid header.
    pub fn new(config: OpenAiConfig) -> Result<Self, ModelError> {
        Ok(Self {
            transport: Arc::new(Transport::new(&config, "chat/completions", "openai_chat")?),
            include_usage: config.include_usage,
        })
    }

    /// Registers this provider's secrets (API key, sensitive headers) with another
    /// redactor, such as the event center's, so they never reach an event.
    pub fn register_secrets(&self, redactor: &Redactor) {
        self.transport.register_secrets(redactor);
    }

    /// The JSON body this provider would send for `request`.
    pub fn request_body(&self, request: &ModelRequest) -> Result<Vec<u8>, ModelError> {
        serde_json::to_vec(&ChatBody {
            model: self.transport.model(),
            request,
            stream: self.transport.stream(),
            include_usage: self.include_usage,
        })
        .map_err(|e| ModelError::Config(format!("cannot encode the request: {e}")))
    }
}

impl ModelProvider for OpenAiChat {
    fn info(&self) -> ProviderInfo {
        self.transport.info()
    }

    fn stream(&self, request: ModelRequest) -> ModelStream {
        match self.request_body(&request) {
            Ok(body) => self.transport.start::<ChatDecoder>(body),
            Err(e) => Box::pin(futures::stream::once(async move { Err(e) })),
        }
    }
}

// ---------------------------------------------------------------------------
// Request body

struct ChatBody<'a> {
    model: &'a str,
    request: &'a ModelRequest,
    stream: bool,
    include_usage: bool,
}

/// Writes `key: value` unless `extra` replaces the key.
macro_rules! put {
    ($map:ident, $extra:expr, $key:expr, $value:expr) => {
        if !$extra.contains_key($key) {
            $map.serialize_entry($key, $value)?;
        }
    };
}
pub(crate) use put;

impl Serialize for ChatBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.request;
        let extra = &r.extra;
        let mut map = serializer.serialize_map(None)?;
        put!(map, extra, "model", self.model);
        put!(map, extra, "messages", &Messages(&r.messages));
        if !r.tools.is_empty() {
            put!(map, extra, "tools", &Tools(&r.tools));
            if let Some(choice) = &r.tool_choice {
                put!(map, extra, "tool_choice", &Choice(choice));
            }
        }
        if let Some(schema) = &r.output_schema {
            let format = ResponseFormat {
                kind: "json_schema",
                json_schema: JsonSchema {
                    name: &schema.name,
                    schema: &schema.schema,
                    strict: schema.strict,
                },
            };
            put!(map, extra, "response_format", &format);
        }
        if let Some(t) = r.temperature {
            put!(map, extra, "temperature", &t);
        }
        if let Some(n) = r.max_output_tokens
            && !extra.contains_key("max_completion_tokens")
        {
            put!(map, extra, "max_tokens", &n);
        }
        put!(map, extra, "stream", &self.stream);
        if self.stream && self.include_usage {
            put!(
                map,
                extra,
                "stream_options",
                &StreamOptions {
                    include_usage: true
                }
            );
        }
        for (k, v) in extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

struct Messages<'a>(&'a [Message]);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(WireMessage::from))
    }
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum WireMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        content: Option<&'a str>,
        #[serde(
            skip_serializing_if = "<[_]>::is_empty",
            serialize_with = "serialize_calls"
        )]
        tool_calls: &'a [ToolCall],
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

impl<'a> From<&'a Message> for WireMessage<'a> {
    fn from(m: &'a Message) -> Self {
        match m {
            Message::System { content } => WireMessage::System { content },
            Message::User { content } => WireMessage::User { content },
            Message::Assistant {
                content,
                tool_calls,
            } => WireMessage::Assistant {
                content: match (content, tool_calls.is_empty()) {
                    (Some(c), _) => Some(c),
                    (None, true) => Some(""),
                    (None, false) => None,
                },
                tool_calls,
            },
            Message::Tool {
                tool_call_id,
                content,
            } => WireMessage::Tool {
                tool_call_id,
                content,
            },
        }
    }
}

/// Serializes tool calls in the Chat Completions shape:
/// `{id, type: "function", function: {name, arguments: "<json text>"}}`.
fn serialize_calls<S: Serializer>(calls: &&[ToolCall], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Call<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        function: Function<'a>,
    }
    #[derive(Serialize)]
    struct Function<'a> {
        name: &'a str,
        arguments: std::borrow::Cow<'a, str>,
    }
    s.collect_seq(calls.iter().map(|c| Call {
        id: &c.id,
        kind: "function",
        function: Function {
            name: &c.name,
            arguments: match &c.arguments {
                crate::types::ToolArguments::Raw(raw) => std::borrow::Cow::Borrowed(raw.as_str()),
                json => std::borrow::Cow::Owned(json.to_wire_string()),
            },
        },
    }))
}

struct Tools<'a>(&'a [ToolSpec]);

impl Serialize for Tools<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tool<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            description: &'a str,
            parameters: &'a Value,
        }
        s.collect_seq(self.0.iter().map(|t| Tool {
            kind: "function",
            function: Function {
                name: &t.name,
                description: &t.description,
                parameters: &t.parameters,
            },
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
                m.serialize_entry("function", &serde_json::json!({ "name": name }))?;
                m.end()
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Response decoding

/// One streamed chunk or a whole completion; the two share their shape except
/// that a chunk carries `delta` and a completion `message`.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Text<'a>>,
    #[serde(default, borrow)]
    model: Option<Text<'a>>,
    #[serde(default, borrow, deserialize_with = "first_of")]
    choices: Option<ChunkChoice<'a>>,
    // Boxed: rare fields stay small in the per-chunk struct, which serde moves
    // around several times while building it.
    #[serde(default)]
    usage: Option<Box<WireUsage>>,
    #[serde(default)]
    error: Option<Box<Value>>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    /// `delta` in a stream chunk, `message` in a whole completion.
    #[serde(default, alias = "message")]
    delta: Option<Delta>,
    #[serde(default, borrow)]
    finish_reason: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default, deserialize_with = "lenient_text")]
    content: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    reasoning_content: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    reasoning: Option<String>,
    /// Boxed: most chunks carry text, and the fragments' inline size made every
    /// chunk larger to move while serde builds it; a chunk with fragments pays one
    /// small allocation instead.
    #[serde(default)]
    tool_calls: Option<Box<Fragments>>,
}

/// The tool-call fragments of one chunk. Servers send one per chunk almost always,
/// so the first is kept inline and a vector is allocated only for more.
#[derive(Default)]
struct Fragments {
    first: Option<CallFragment>,
    rest: Vec<CallFragment>,
}

impl<'de> Deserialize<'de> for Fragments {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Fragments;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of tool-call fragments")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Fragments, E> {
                Ok(Fragments::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Fragments, A::Error> {
                let first = seq.next_element()?;
                let mut rest = Vec::new();
                while let Some(f) = seq.next_element()? {
                    rest.push(f);
                }
                Ok(Fragments { first, rest })
            }
        }
        d.deserialize_any(V)
    }
}

impl IntoIterator for Fragments {
    type Item = CallFragment;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<CallFragment>, std::vec::IntoIter<CallFragment>>;
    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

#[derive(Deserialize)]
struct CallFragment {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionFragment>,
}

#[derive(Deserialize)]
struct FunctionFragment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_arguments")]
    arguments: Option<String>,
}

/// Usage in the Chat Completions shape (also accepts the Responses names, which
/// some compatible servers mix in).
#[derive(Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default, alias = "input_tokens", deserialize_with = "lenient_count")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens", deserialize_with = "lenient_count")]
    completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    total_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens_details")]
    completion_tokens_details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default, deserialize_with = "lenient_count")]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn to_usage(&self) -> Usage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let completion = self.completion_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self.total_tokens.unwrap_or(prompt + completion),
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens),
        }
    }
}

/// Decodes Chat Completions chunks.
///
/// Policy on bad input: a `data:` line that is not JSON (or not an object) fails
/// the stream with [`ModelError::Protocol`] at `response_first_event` or
/// `response_stream`. Skipping it silently could drop a piece of text or of a
/// tool call's arguments, and the caller would act on a corrupted answer.
#[derive(Debug, Default)]
pub(crate) struct ChatDecoder {
    finish_reason: Option<String>,
    response_id: Option<String>,
    model: Option<String>,
    /// Next dense index for a call that arrives without `index`.
    next_call_index: u32,
    /// Index and id of the call the last fragment belonged to.
    last_call: Option<(u32, Option<String>)>,
}

impl ChatDecoder {
    fn completion(&mut self) -> Completion {
        Completion {
            finish_reason: self.finish_reason.take(),
            response_id: self.response_id.take(),
            model: self.model.take(),
        }
    }

    /// The index of a fragment: the server's, or (for servers that omit it) a new
    /// index when a fragment brings a new id, else the previous call's.
    fn call_index(&mut self, wire: Option<u32>, id: Option<&str>) -> u32 {
        let index = match (wire, &self.last_call) {
            (Some(i), _) => i,
            (None, Some((last, last_id))) => match id {
                Some(id) if last_id.as_deref() != Some(id) => self.next_call_index,
                _ => *last,
            },
            (None, None) => self.next_call_index,
        };
        let same = matches!(&self.last_call, Some((i, last_id)) if *i == index && (id.is_none() || last_id.as_deref() == id));
        if !same {
            self.last_call = Some((index, id.map(str::to_owned)));
        }
        self.next_call_index = self.next_call_index.max(index.saturating_add(1));
        index
    }

    fn take_chunk(
        &mut self,
        chunk: Chunk<'_>,
        out: &mut VecDeque<StreamEvent>,
        whole: bool,
    ) -> Result<(), DecodeError> {
        if let Some(error) = chunk.error {
            return Err(failed(*error));
        }
        if self.response_id.is_none() {
            self.response_id = chunk.id.map(Text::into_string);
        }
        if self.model.is_none() {
            self.model = chunk.model.map(Text::into_string);
        }
        if let Some(choice) = chunk.choices {
            if let Some(delta) = choice.delta {
                let reasoning = delta.reasoning_content.or(delta.reasoning);
                if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
                    out.push_back(StreamEvent::ReasoningDelta { text });
                }
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push_back(StreamEvent::TextDelta { text });
                }
                for (position, call) in delta
                    .tool_calls
                    .map(|f| *f)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let id = call.id.filter(|s| !s.is_empty());
                    let index = if whole {
                        u32::try_from(position).unwrap_or(u32::MAX)
                    } else {
                        self.call_index(call.index, id.as_deref())
                    };
                    let (name, arguments) = match call.function {
                        Some(f) => (
                            f.name.filter(|s| !s.is_empty()),
                            f.arguments.unwrap_or_default(),
                        ),
                        None => (None, String::new()),
                    };
                    if id.is_some() || name.is_some() || !arguments.is_empty() {
                        out.push_back(StreamEvent::ToolCallDelta {
                            index,
                            id,
                            name,
                            arguments,
                        });
                    }
                }
            }
            if let Some(reason) = choice.finish_reason
                && !reason.0.is_empty()
            {
                self.finish_reason = Some(reason.into_string());
            }
        }
        if let Some(usage) = chunk.usage {
            out.push_back(StreamEvent::Usage(usage.to_usage()));
        }
        Ok(())
    }
}

/// An in-band `{"error": …}` object as a typed failure.
pub(crate) fn failed(error: Value) -> DecodeError {
    let (code, message) = match &error {
        Value::Object(map) => (
            map.get("code")
                .or_else(|| map.get("type"))
                .and_then(|c| match c {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }),
            map.get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned),
        ),
        Value::String(s) => (None, s.clone()),
        other => (None, other.to_string()),
    };
    DecodeError::Failed { code, message }
}

impl WireDecoder for ChatDecoder {
    fn on_event(
        &mut self,
        event: SseEvent<'_>,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, DecodeError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        if data == "[DONE]" {
            let completion = self.completion();
            out.push_back(StreamEvent::Done(completion));
            return Ok(Flow::Stop);
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|e| {
            DecodeError::Malformed(format!(
                "a stream chunk is not valid JSON ({e}): {}",
                data_excerpt(data)
            ))
        })?;
        self.take_chunk(chunk, out, false)?;
        Ok(Flow::Continue)
    }

    fn on_eof(&mut self, out: &mut VecDeque<StreamEvent>) -> bool {
        if self.finish_reason.is_some() {
            let completion = self.completion();
            out.push_back(StreamEvent::Done(completion));
            true
        } else {
            false
        }
    }

    fn on_body(&mut self, body: &[u8], out: &mut VecDeque<StreamEvent>) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| DecodeError::Malformed("the response body is not UTF-8".into()))?;
        let chunk: Chunk<'_> = serde_json::from_str(text).map_err(|e| {
            DecodeError::Malformed(format!("the response body is not a chat completion ({e})"))
        })?;
        if chunk.choices.is_none() && chunk.error.is_none() {
            return Err(DecodeError::Malformed(
                "the response body has no choices".into(),
            ));
        }
        self.take_chunk(chunk, out, true)?;
        let completion = self.completion();
        out.push_back(StreamEvent::Done(completion));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{OutputSchema, ToolArguments};
    use serde_json::json;

    fn decode(lines: &[&str]) -> (Vec<StreamEvent>, Result<Flow, DecodeError>) {
        let mut d = ChatDecoder::default();
        let mut out = VecDeque::new();
        let mut last = Ok(Flow::Continue);
        for l in lines {
            last = d.on_event(SseEvent { event: "", data: l }, &mut out);
            if !matches!(last, Ok(Flow::Continue)) {
                break;
            }
        }
        (out.into_iter().collect(), last)
    }

    #[test]
    fn text_reasoning_tools_usage_done() {
        let (events, flow) = decode(&[
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel\"lo"}}],"x-unknown":{"a":[1]}}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":""}},{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            "[DONE]",
        ]);
        assert!(matches!(flow, Ok(Flow::Stop)));
        assert_eq!(
            events[0],
            StreamEvent::ReasoningDelta {
                text: "think".into()
            }
        );
        assert_eq!(
            events[1],
            StreamEvent::TextDelta {
                text: "Hel\"lo".into()
            }
        );
        assert_eq!(
            events[2],
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("a".into()),
                name: Some("f".into()),
                arguments: String::new()
            }
        );
        assert_eq!(
            events[4],
            StreamEvent::ToolCallDelta {
                index: 0,
                id: None,
                name: None,
                arguments: "{\"x\":1}".into()
            }
        );
        assert_eq!(
            events[5],
            StreamEvent::Usage(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7,
                reasoning_tokens: Some(2)
            })
        );
        assert_eq!(
            events[6],
            StreamEvent::Done(Completion {
                finish_reason: Some("tool_calls".into()),
                response_id: Some("c1".into()),
                model: Some("m".into())
            })
        );
    }

    #[test]
    fn malformed_chunk_fails() {
        let (_, flow) = decode(&[r#"{"choices":[{"delta":{"content":"a"}}"#]);
        assert!(matches!(flow, Err(DecodeError::Malformed(_))));
        let (_, flow) = decode(&["42"]);
        assert!(matches!(flow, Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn in_band_error_is_failed() {
        let (_, flow) = decode(&[r#"{"error":{"message":"overloaded","code":"server_error"}}"#]);
        match flow {
            Err(DecodeError::Failed { code, message }) => {
                assert_eq!(code.as_deref(), Some("server_error"));
                assert_eq!(message, "overloaded");
            }
            _ => panic!("expected failure"),
        }
    }

    #[test]
    fn calls_without_index_are_told_apart_by_id() {
        let (events, _) = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
        ]);
        let idx: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallDelta { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(idx, vec![0, 0, 1]);
    }

    #[test]
    fn eof_after_finish_reason_completes() {
        let mut d = ChatDecoder::default();
        let mut out = VecDeque::new();
        assert!(!d.on_eof(&mut out));
        d.on_event(
            SseEvent {
                event: "",
                data: r#"{"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}"#,
            },
            &mut out,
        )
        .unwrap();
        assert!(d.on_eof(&mut out));
        assert!(
            matches!(out.back(), Some(StreamEvent::Done(c)) if c.finish_reason.as_deref() == Some("stop"))
        );
    }

    #[test]
    fn whole_body() {
        let mut d = ChatDecoder::default();
        let mut out = VecDeque::new();
        d.on_body(
            br#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"d","type":"function","function":{"name":"g","arguments":{"b":2}}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            &mut out,
        )
        .unwrap();
        let r = {
            let mut a = crate::ResponseAssembler::default();
            for e in &out {
                a.push(e);
            }
            a.finish()
        };
        assert_eq!(r.text, "hi");
        assert_eq!(
            r.tool_calls[1].arguments,
            ToolArguments::Json(json!({"b": 2}))
        );
        assert_eq!(r.usage.unwrap().total_tokens, 3);
        assert_eq!(r.completion.finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn body_shape() {
        let model = OpenAiChat::new(OpenAiConfig::new("http://127.0.0.1:9/v1", "m")).unwrap();
        let mut req = ModelRequest::new(vec![
            Message::system("s"),
            Message::user("u"),
            Message::Assistant {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    arguments: ToolArguments::Json(json!({"a": 1})),
                }],
            },
            Message::tool_result("c1", "ok"),
        ]);
        req.tools = vec![ToolSpec {
            name: "f".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        }];
        req.tool_choice = Some(ToolChoice::Tool("f".into()));
        req.output_schema = Some(OutputSchema {
            name: "o".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
        req.max_output_tokens = Some(5);
        req.extra.insert("temperature".into(), json!(0.5));
        req.extra.insert("seed".into(), json!(1));
        req.temperature = Some(1.0);
        let body: Value = serde_json::from_slice(&model.request_body(&req).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "ok"}
                ],
                "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}, "strict": true}},
                "max_tokens": 5,
                "stream": true,
                "stream_options": {"include_usage": true},
                "temperature": 0.5,
                "seed": 1
            })
        );
    }
}
