//! Scenario scripts: which reply the mock server gives to which request.
//!
//! A [`Scenario`] is an ordered list of [`Rule`]s plus a fallback [`Reply`]. For every model request the
//! server walks the rules in order and answers with the first rule that matches (and still has uses left
//! under [`Rule::times`]); when none matches it answers with the fallback. Scenarios are plain values, so a
//! test can build one, clone it, and start several servers from it; use counters live in the running
//! server, never in the scenario.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::request::RecordedRequest;

/// Ordered reply rules for a [`MockServer`](crate::MockServer); the first matching rule wins.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub(crate) rules: Vec<Rule>,
    pub(crate) fallback: Reply,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::new()
    }
}

impl Scenario {
    /// An empty scenario: every model request gets the fallback `Reply::text("mock answer")`.
    pub fn new() -> Self {
        Self {
            rules: Vec::new(),
            fallback: Reply::text("mock answer"),
        }
    }

    /// Appends a rule. Rules are tried in the order they were added, so put specific rules first.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Replaces the reply used when no rule matches (default: `Reply::text("mock answer")`).
    pub fn fallback(mut self, reply: Reply) -> Self {
        self.fallback = reply;
        self
    }
}

/// A user-supplied request predicate for [`Rule::when`].
pub type RequestPredicate = Arc<dyn Fn(&RecordedRequest) -> bool + Send + Sync>;

/// One condition of a rule; a rule matches when all of its conditions hold.
#[derive(Clone)]
pub(crate) enum Condition {
    Always,
    UserContains(String),
    ToolResults(bool),
    Path(String),
    Custom(RequestPredicate),
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("Always"),
            Self::UserContains(text) => f.debug_tuple("UserContains").field(text).finish(),
            Self::ToolResults(wanted) => f.debug_tuple("ToolResults").field(wanted).finish(),
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Condition {
    fn holds(&self, request: &RecordedRequest) -> bool {
        match self {
            Self::Always => true,
            Self::UserContains(text) => request
                .last_user_message()
                .is_some_and(|message| message.contains(text.as_str())),
            Self::ToolResults(wanted) => request.has_tool_results() == *wanted,
            Self::Path(path) => request.path_without_query() == path,
            Self::Custom(predicate) => predicate(request),
        }
    }
}

/// A request condition plus the reply to give when it matches.
///
/// Build one with a `when_*` constructor, optionally narrow it with [`Rule::and`] or limit it with
/// [`Rule::times`], and set the answer with [`Rule::reply`] (default: `Reply::text("mock answer")`).
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) conditions: Vec<Condition>,
    pub(crate) times: Option<usize>,
    pub(crate) reply: Reply,
}

impl Rule {
    fn with(condition: Condition) -> Self {
        Self {
            conditions: vec![condition],
            times: None,
            reply: Reply::text("mock answer"),
        }
    }

    /// Matches every model request (use with [`Rule::times`] for "first attempt fails" scripts).
    pub fn always() -> Self {
        Self::with(Condition::Always)
    }

    /// Matches when the last user message contains `text`.
    ///
    /// The last user message is the last `role: "user"` entry of chat `messages`, or of Responses `input`
    /// (a plain string `input` counts as the user message); text parts are joined with newlines.
    pub fn when_user_contains(text: impl Into<String>) -> Self {
        Self::with(Condition::UserContains(text.into()))
    }

    /// Matches when the request carries tool results: a chat message with `role: "tool"` or a Responses
    /// `function_call_output` input item. This is the second leg of a tool-calling loop.
    pub fn when_tool_results() -> Self {
        Self::with(Condition::ToolResults(true))
    }

    /// Matches when the request carries no tool results (the first leg of a tool-calling loop).
    pub fn when_no_tool_results() -> Self {
        Self::with(Condition::ToolResults(false))
    }

    /// Matches when the request path, without its query string, equals `path` (e.g. `"/v1/responses"`).
    ///
    /// Path rules are also consulted for paths the server does not generate answers for (such as
    /// `/v1/models` or `/v1/embeddings`); there only [`Reply::json_object`], [`Reply::raw_sse`] and faults
    /// change the answer.
    pub fn when_path(path: impl Into<String>) -> Self {
        Self::with(Condition::Path(path.into()))
    }

    /// Matches when `predicate` returns true for the recorded request; for conditions the other
    /// constructors cannot express.
    pub fn when(predicate: impl Fn(&RecordedRequest) -> bool + Send + Sync + 'static) -> Self {
        Self::with(Condition::Custom(Arc::new(predicate)))
    }

    /// Adds the conditions of `other` to this rule (both must hold); `other`'s reply and limit are ignored.
    pub fn and(mut self, other: Rule) -> Self {
        self.conditions.extend(other.conditions);
        self
    }

    /// Uses the rule at most `n` times, then skips it. The count is shared atomically by all concurrent
    /// requests, so `Rule::always().times(1).reply(503)` fails exactly one attempt even under load.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Sets the reply given when this rule is chosen.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    pub(crate) fn matches(&self, request: &RecordedRequest) -> bool {
        self.conditions.iter().all(|c| c.holds(request))
    }

    pub(crate) fn has_path_condition(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| matches!(c, Condition::Path(_)))
    }
}

/// What the body of a reply is made of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyBody {
    /// Text, reasoning and tool calls rendered in the protocol of the requested endpoint.
    Generated,
    /// A fixed JSON document sent as a non-streaming 200 answer.
    Json(Value),
    /// Fixed SSE frames sent verbatim as a 200 event stream.
    RawSse(Vec<String>),
}

/// The answer to one request: content (text, reasoning, tool calls), usage, pacing and an optional fault.
///
/// The same reply renders as a chat completion or a Responses API answer, streamed or not, depending on
/// the request it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub(crate) body: ReplyBody,
    pub(crate) text: Vec<String>,
    pub(crate) reasoning: Vec<String>,
    pub(crate) tool_calls: Vec<MockToolCall>,
    pub(crate) usage: Option<(u64, u64)>,
    pub(crate) first_token_delay: Duration,
    pub(crate) chunk_delay: Duration,
    pub(crate) fault: Option<Fault>,
}

impl Reply {
    fn empty() -> Self {
        Self {
            body: ReplyBody::Generated,
            text: Vec::new(),
            reasoning: Vec::new(),
            tool_calls: Vec::new(),
            usage: None,
            first_token_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            fault: None,
        }
    }

    /// A text answer, streamed in word-sized pieces (each piece after the first starts with the
    /// whitespace before its word, as real tokenizers do), so clients must concatenate deltas.
    pub fn text(text: impl Into<String>) -> Self {
        Self::empty().with_text(text)
    }

    /// A text answer streamed in exactly the given pieces (one SSE delta per piece), for tests that care
    /// about chunk boundaries, e.g. a multi-byte character or a JSON document split mid-token.
    pub fn text_chunks<I, S>(chunks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut reply = Self::empty();
        reply.text = chunks.into_iter().map(Into::into).collect();
        reply
    }

    /// An answer that calls tools; several calls get index 0, 1, … and their arguments are streamed in
    /// several fragments. Combine with [`Reply::with_text`] for text before the calls.
    pub fn tool_calls(calls: Vec<MockToolCall>) -> Self {
        let mut reply = Self::empty();
        reply.tool_calls = calls;
        reply
    }

    /// A fixed JSON document answered with status 200 and `application/json`, whatever the request asked
    /// for (also for streaming requests, to test clients against servers that ignore `stream`).
    pub fn json_object(value: Value) -> Self {
        let mut reply = Self::empty();
        reply.body = ReplyBody::Json(value);
        reply
    }

    /// Fixed SSE frames answered as a 200 `text/event-stream`, verbatim; each item is one frame such as
    /// `"data: {...}"` or `"event: x\ndata: {...}"` (the blank line between frames is added). For protocol
    /// shapes the generator does not produce.
    pub fn raw_sse<I, S>(frames: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut reply = Self::empty();
        reply.body = ReplyBody::RawSse(frames.into_iter().map(Into::into).collect());
        reply
    }

    /// Sets (replaces) the answer text, split into word-sized pieces like [`Reply::text`].
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = split_words(&text.into());
        self
    }

    /// Adds reasoning, streamed before the answer: chat `delta.reasoning_content`, Responses reasoning
    /// summary deltas.
    pub fn with_reasoning(mut self, text: impl Into<String>) -> Self {
        self.reasoning = split_words(&text.into());
        self
    }

    /// Sets the reported token usage; without it the server reports an estimate (about four bytes per
    /// token of request body and of generated content).
    pub fn with_usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Some((prompt_tokens, completion_tokens));
        self
    }

    /// Waits `d` before the first SSE frame (headers are sent at once), or before the whole answer when
    /// not streaming; for time-to-first-token and request-timeout tests.
    pub fn first_token_delay(mut self, d: Duration) -> Self {
        self.first_token_delay = d;
        self
    }

    /// Waits `d` before every SSE frame after the first; for idle-timeout and slow-stream tests.
    pub fn chunk_delay(mut self, d: Duration) -> Self {
        self.chunk_delay = d;
        self
    }

    /// Injects a transport or protocol fault into the answer.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// A reply that only carries a fault (no content); shorthand for `Reply::text("").fault(fault)`.
    pub fn failing(fault: Fault) -> Self {
        Self::empty().fault(fault)
    }
}

/// A tool call the mock model makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockToolCall {
    /// The call id (`call_…` in OpenAI); Responses answers use it as `call_id`.
    pub id: String,
    /// The tool (function) name.
    pub name: String,
    /// The raw argument text exactly as streamed; may be invalid JSON on purpose.
    pub arguments: String,
}

impl MockToolCall {
    /// A call whose arguments are the compact JSON text of `arguments`.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.to_string(),
        }
    }

    /// A call with verbatim argument text, e.g. broken JSON to test argument repair or rejection.
    pub fn raw(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// A fault injected into an answer, to test how clients cope with broken servers and networks.
///
/// "Chunks" are SSE frames (one `data:` event for chat, one `event:`/`data:` pair for Responses), counted
/// from the first frame after the headers. For non-streaming answers, chunk-count faults cut the JSON body
/// in the middle instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The request is read, then the connection is reset (TCP RST) before any response byte.
    ResetBeforeFirstToken,
    /// Status, headers and this many chunks are sent, then the connection is reset (TCP RST).
    ResetAfterChunks(usize),
    /// An error answer with this status and body (OpenAI-style JSON error; see [`Fault::status`]).
    HttpStatus {
        /// The HTTP status code, e.g. 429 or 503.
        status: u16,
        /// The response body, sent as `application/json`.
        body: String,
    },
    /// Like [`Fault::HttpStatus`] with extra response headers, e.g. `retry-after` on a 429.
    HttpStatusWithHeaders {
        /// The HTTP status code.
        status: u16,
        /// Extra headers as (name, value) pairs.
        headers: Vec<(String, String)>,
        /// The response body, sent as `application/json`.
        body: String,
    },
    /// One `data: {broken json` frame right after the first frame of an otherwise valid stream (a
    /// non-streaming answer gets a broken JSON body).
    MalformedChunk,
    /// A 200 `text/html` page instead of JSON or SSE, as a proxy or captive portal would send.
    Html,
    /// The request is read, then nothing is sent; the socket stays open until the client closes it or the
    /// server shuts down.
    Hang,
    /// Headers and this many chunks are sent, then the stream goes silent but stays open.
    HangAfterChunks(usize),
    /// Headers, then only SSE comment lines (`: keep-alive`) every 50 ms, never data; a non-streaming
    /// answer trickles JSON whitespace instead. Tests idle timers that must not count comments as data.
    KeepAliveOnly,
    /// Valid chunks, then a clean end of the body and connection close without the final chunk, usage,
    /// `data: [DONE]` (chat) or `response.completed` (Responses); a non-streaming body is cut in half.
    TruncatedStream,
    /// Unknown extra fields in every chunk (and an unknown event type for Responses); clients must ignore
    /// them.
    UnknownFields,
}

impl Fault {
    /// An [`Fault::HttpStatus`] with an OpenAI-style error body fitting the status (e.g. 429
    /// `rate_limit_exceeded`, 401 `invalid_api_key`, 503 `server_error`).
    pub fn status(status: u16) -> Self {
        Self::HttpStatus {
            status,
            body: openai_error_body(status),
        }
    }

    /// A 429 with an OpenAI-style body and a `retry-after` header of `seconds`.
    pub fn rate_limited(seconds: u64) -> Self {
        Self::HttpStatusWithHeaders {
            status: 429,
            headers: vec![("retry-after".to_owned(), seconds.to_string())],
            body: openai_error_body(429),
        }
    }
}

/// The JSON error document OpenAI returns for `status`, e.g.
/// `{"error":{"message":"…","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`.
pub fn openai_error_body(status: u16) -> String {
    let (message, kind, code) = match status {
        400 => (
            "Invalid request (mock).",
            "invalid_request_error",
            Value::Null,
        ),
        401 => (
            "Incorrect API key provided (mock).",
            "invalid_request_error",
            Value::from("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to access this resource (mock).",
            "permission_error",
            Value::Null,
        ),
        404 => (
            "The requested resource does not exist (mock).",
            "invalid_request_error",
            Value::from("not_found"),
        ),
        429 => (
            "Rate limit reached for requests (mock).",
            "rate_limit_error",
            Value::from("rate_limit_exceeded"),
        ),
        503 => (
            "The server is overloaded or not ready yet (mock).",
            "server_error",
            Value::Null,
        ),
        s if s >= 500 => (
            "The server had an error while processing your request (mock).",
            "server_error",
            Value::Null,
        ),
        _ => (
            "The request failed (mock).",
            "invalid_request_error",
            Value::Null,
        ),
    };
    serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    })
    .to_string()
}

/// Splits text into word-sized pieces whose concatenation is the original text; every piece after the
/// first starts with the whitespace that precedes its word.
pub(crate) fn split_words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut previous_was_space = false;
    for ch in text.chars() {
        let is_space = ch.is_whitespace();
        if is_space && !previous_was_space && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(ch);
        previous_was_space = is_space;
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn split_words_keeps_all_text_and_leads_with_spaces() {
        assert_eq!(
            split_words("Hello  brave world"),
            vec!["Hello", "  brave", " world"]
        );
        assert_eq!(split_words(" lead"), vec![" lead"]);
        assert_eq!(split_words("trail "), vec!["trail", " "]);
        assert!(split_words("").is_empty());
        let text = "multi\nline ünïcødé text\t ok";
        assert_eq!(split_words(text).concat(), text);
    }

    #[test]
    fn reply_builders_compose() {
        let reply = Reply::tool_calls(vec![MockToolCall::new(
            "call_1",
            "f",
            serde_json::json!({"a": 1}),
        )])
        .with_text("before call")
        .with_reasoning("think")
        .with_usage(3, 4)
        .chunk_delay(Duration::from_millis(1))
        .fault(Fault::UnknownFields);
        assert_eq!(reply.text, vec!["before", " call"]);
        assert_eq!(reply.tool_calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(reply.reasoning, vec!["think"]);
        assert_eq!(reply.usage, Some((3, 4)));
        assert_eq!(reply.fault, Some(Fault::UnknownFields));
    }

    #[test]
    fn error_bodies_look_like_openai() {
        let body: Value = serde_json::from_str(&openai_error_body(429)).unwrap();
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        let body: Value = serde_json::from_str(&openai_error_body(500)).unwrap();
        assert_eq!(body["error"]["type"], "server_error");
        assert!(matches!(
            Fault::status(503),
            Fault::HttpStatus { status: 503, .. }
        ));
    }

    fn request(body: Value) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/v1/chat/completions?x=1".into(),
            headers: vec![],
            raw_body: body.to_string(),
            body,
        }
    }

    #[test]
    fn rules_match_on_user_text_tool_results_path_and_predicates() {
        let first = request(serde_json::json!({
            "messages": [{"role": "user", "content": "what is the weather?"}]
        }));
        let second = request(serde_json::json!({
            "messages": [
                {"role": "user", "content": "what is the weather?"},
                {"role": "assistant", "tool_calls": []},
                {"role": "tool", "tool_call_id": "c", "content": "sunny"}
            ]
        }));
        assert!(Rule::when_user_contains("weather").matches(&first));
        assert!(!Rule::when_user_contains("stock").matches(&first));
        assert!(Rule::when_no_tool_results().matches(&first));
        assert!(!Rule::when_tool_results().matches(&first));
        assert!(Rule::when_tool_results().matches(&second));
        assert!(Rule::when_path("/v1/chat/completions").matches(&first));
        assert!(
            Rule::when_user_contains("weather")
                .and(Rule::when_tool_results())
                .matches(&second)
        );
        assert!(
            !Rule::when_user_contains("weather")
                .and(Rule::when_tool_results())
                .matches(&first)
        );
        assert!(Rule::when(|r| r.method == "POST").matches(&first));
        assert!(Rule::when_path("/x").has_path_condition());
        assert!(!Rule::always().has_path_condition());
    }
}
