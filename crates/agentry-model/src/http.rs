//! The HTTP side shared by the OpenAI-compatible providers: one pooled client per
//! provider, the attempt/retry loop, the first-event and idle timers, HTTP error
//! parsing and redaction. The wire formats plug in through [`WireDecoder`].
//!
//! Rules enforced here (see the crate docs for the reasoning):
//! - A request body is serialized once; every attempt sends the same bytes.
//! - Transient failures are retried only while nothing has been yielded to the
//!   consumer: connect errors, resets or end of stream before the first event,
//!   HTTP 429 and 5xx, and first-event stalls. Each retry yields
//!   [`StreamEvent::Retry`] before the wait. Other 4xx statuses, protocol errors and
//!   failures after output are never retried; a transport failure after output is
//!   [`ModelError::Interrupted`].
//! - The first-event timer runs from sending the request until the first frame
//!   that produces a [`StreamEvent`]; SSE comments (keep-alives), role-only chunks
//!   and lifecycle events (`response.created` …) do not stop it, so a server that
//!   only says "working" is still retried as a first-event stall. After that, the
//!   idle timer is reset by every data frame but never by comments. It is re-armed
//!   when the consumer asks for more, so a slow consumer is not mistaken for a
//!   stalled server.
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use agentry_core::{ErrorCode, Redactor, StallError, StallStatus, stage};
use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::time::{Instant, Sleep};

use crate::config::{ApiKey, OpenAiConfig, RetryPolicy, Timeouts, display_endpoint};
use crate::error::ModelError;
use crate::provider::{ModelStream, ProviderInfo};
use crate::sse::{Flow, SseError, SseEvent, SseParser};
use crate::types::{RetryInfo, StreamEvent};

/// Longest server-provided message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 500;
/// Longest excerpt of an unexpected body kept in an error, in characters.
const MAX_EXCERPT_CHARS: usize = 200;
/// Most bytes read from an error body.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Most bytes accepted for a non-streamed response body.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Why a wire decoder refused input.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The data is not the protocol (invalid JSON, wrong shape …).
    Malformed(String),
    /// The server reported a failure in-band.
    Failed {
        /// Provider error code.
        code: Option<String>,
        /// Provider message (not yet redacted or bounded).
        message: String,
    },
}

/// Turns one wire protocol into [`StreamEvent`]s. A fresh decoder is made for
/// every attempt.
pub(crate) trait WireDecoder: Default + Send + 'static {
    /// Decodes one SSE event, pushing stream events to `out`. Returns
    /// [`Flow::Stop`] once the response is complete (after pushing `Done`).
    fn on_event(
        &mut self,
        event: SseEvent<'_>,
        out: &mut VecDeque<StreamEvent>,
    ) -> Result<Flow, DecodeError>;

    /// The stream ended without a terminal event. Pushes `Done` and returns `true`
    /// when what was seen is a complete response (a finish reason arrived).
    fn on_eof(&mut self, out: &mut VecDeque<StreamEvent>) -> bool;

    /// Decodes a whole non-streamed JSON body, pushing every event including `Done`.
    fn on_body(&mut self, body: &[u8], out: &mut VecDeque<StreamEvent>) -> Result<(), DecodeError>;
}

/// Everything a request needs that does not change between requests.
pub(crate) struct Transport {
    client: reqwest::Client,
    url: Url,
    endpoint: String,
    timeouts: Timeouts,
    retry: RetryPolicy,
    stream: bool,
    redactor: Redactor,
    provider: &'static str,
    model: String,
    /// The key and sensitive header values, for [`Transport::register_secrets`].
    secrets: Vec<ApiKey>,
}

impl std::fmt::Debug for Transport {
    // Hand-written: the redactor's and the client's own `Debug` would print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("endpoint", &self.endpoint)
            .field("stream", &self.stream)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Validates `cfg` and builds the pooled client for `{base_url}/{path}`.
    pub(crate) fn new(
        cfg: &OpenAiConfig,
        path: &str,
        provider: &'static str,
    ) -> Result<Self, ModelError> {
        let url = cfg.validate(path)?;
        let redactor = Redactor::default();
        let mut secrets = Vec::new();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(if cfg.stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        if let Some(key) = &cfg.api_key {
            redactor.register_secret(key.expose());
            secrets.push(key.clone());
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    ModelError::Config("the API key is not a valid header value".into())
                })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        for (name, value) in &cfg.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ModelError::Config(format!("invalid header name `{name}`")))?;
            let mut header_value = HeaderValue::from_str(value).map_err(|_| {
                ModelError::Config(format!("invalid value for header `{header_name}`"))
            })?;
            if redactor.is_sensitive_key(name) {
                redactor.register_secret(value.clone());
                secrets.push(ApiKey::new(value.clone()));
                header_value.set_sensitive(true);
            }
            headers.insert(header_name, header_value);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.timeouts.connect)
            .default_headers(headers)
            .tcp_nodelay(true)
            .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            endpoint: display_endpoint(&url),
            url,
            timeouts: cfg.timeouts,
            retry: cfg.retry,
            stream: cfg.stream,
            redactor,
            provider,
            model: cfg.model.clone(),
            secrets,
        })
    }

    /// Registers the key and sensitive header values with `redactor`.
    pub(crate) fn register_secrets(&self, redactor: &Redactor) {
        for s in &self.secrets {
            redactor.register_secret(s.expose());
        }
    }

    /// Whether requests stream.
    pub(crate) fn stream(&self) -> bool {
        self.stream
    }

    /// The model name.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// The provider description.
    pub(crate) fn info(&self) -> ProviderInfo {
        ProviderInfo {
            provider: self.provider.to_owned(),
            model: self.model.clone(),
            endpoint: Some(self.endpoint.clone()),
        }
    }

    /// Starts the attempt loop for a serialized body. Nothing happens until the
    /// stream is polled; dropping it cancels the request.
    pub(crate) fn start<D: WireDecoder>(self: &Arc<Self>, body: Vec<u8>) -> ModelStream {
        let driver = Driver::<D> {
            transport: Arc::clone(self),
            body: Bytes::from(body),
            attempt: 0,
            pending: VecDeque::with_capacity(8),
            phase: Phase::Start,
            output_yielded: false,
        };
        // Boxed so the stream state is not moved for every item.
        Box::pin(futures::stream::unfold(
            Box::new(driver),
            |mut d| async move {
                let item = d.next().await?;
                Some((item, d))
            },
        ))
    }

    fn bounded_redacted(&self, text: &str, max_chars: usize) -> String {
        let collapsed = bound_chars(text.trim(), max_chars);
        self.redactor.redact_str(&collapsed)
    }

    fn connect_error(&self, detail: String) -> ModelError {
        ModelError::Connect {
            endpoint: self.endpoint.clone(),
            detail,
        }
    }

    fn transport_detail(&self, err: &reqwest::Error) -> String {
        let mut text = String::new();
        // A failed send says "error sending request for url (…)" above its cause; the
        // message already names the endpoint, so it starts at the cause.
        let mut source: Option<&dyn std::error::Error> = match std::error::Error::source(err) {
            Some(cause) if err.is_request() || err.is_connect() => Some(cause),
            _ => Some(err),
        };
        while let Some(e) = source {
            let piece = e.to_string();
            if !text.contains(&piece) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&piece);
            }
            source = e.source();
        }
        // The URL never carries the key, but strip it anyway to keep messages short.
        let text = text.replace(self.url.as_str(), &self.endpoint);
        self.bounded_redacted(&text, 300)
    }
}

/// A failed attempt, with what the server said about waiting.
struct Failure {
    error: ModelError,
    retry_after: Option<Duration>,
}

impl From<ModelError> for Failure {
    fn from(error: ModelError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

enum Phase<D> {
    /// Start the next attempt.
    Start,
    /// Wait, then start the next attempt.
    Backoff(Duration),
    /// Reading a streamed response.
    Streaming(Live<D>),
    /// Yield this error after the pending events.
    Fail(ModelError),
    /// Nothing more.
    Finished,
}

/// One streamed attempt in progress.
struct Live<D> {
    response: reqwest::Response,
    parser: SseParser,
    decoder: D,
    /// The active deadline (first event, then idle).
    deadline: Pin<Box<Sleep>>,
    /// Whether `deadline` is in force (its limit is not unlimited).
    armed: bool,
    /// When the attempt started.
    started: Instant,
    /// When the idle timer was last re-armed.
    last_progress: Instant,
    /// A meaningful event was decoded.
    progressed: bool,
    /// Events were handed out since the last read: re-arm the idle timer.
    rearm: bool,
}

enum ReadOutcome {
    /// Events are pending; keep streaming afterwards.
    Continue,
    /// The response is complete (`Done` is pending).
    Done,
}

struct Driver<D> {
    transport: Arc<Transport>,
    body: Bytes,
    /// Attempts started so far.
    attempt: u32,
    pending: VecDeque<StreamEvent>,
    phase: Phase<D>,
    /// An event other than `Retry` reached the consumer.
    output_yielded: bool,
}

fn is_output(event: &StreamEvent) -> bool {
    !matches!(event, StreamEvent::Retry(_))
}

impl<D: WireDecoder> Driver<D> {
    async fn next(&mut self) -> Option<Result<StreamEvent, ModelError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.output_yielded |= is_output(&event);
                return Some(Ok(event));
            }
            // The hot path borrows the live attempt in place: no per-event moves.
            if let Phase::Streaming(live) = &mut self.phase {
                match read(&self.transport, live, &mut self.pending).await {
                    Ok(ReadOutcome::Continue) => {}
                    Ok(ReadOutcome::Done) => self.phase = Phase::Finished,
                    Err(failure) => self.fail(failure),
                }
                continue;
            }
            match std::mem::replace(&mut self.phase, Phase::Finished) {
                Phase::Finished => return None,
                Phase::Fail(error) => return Some(Err(error)),
                Phase::Backoff(delay) => {
                    tokio::time::sleep(delay).await;
                    self.phase = Phase::Start;
                }
                Phase::Start => {
                    self.attempt += 1;
                    match self.open().await {
                        Ok(phase) => self.phase = phase,
                        Err(failure) => self.fail(failure),
                    }
                }
                Phase::Streaming(_) => {}
            }
        }
    }

    /// Decides between retrying and failing.
    fn fail(&mut self, failure: Failure) {
        let t = &self.transport;
        let output_started = self.output_yielded || self.pending.iter().any(is_output);
        if !output_started && self.attempt < t.retry.max_attempts && failure.error.retryable() {
            let delay = match failure.retry_after {
                Some(d) => d.min(t.retry.max_backoff),
                None => t.retry.backoff(self.attempt, fnv1a(&self.body)),
            };
            tracing::debug!(
                provider = t.provider,
                attempt = self.attempt,
                code = failure.error.code(),
                ?delay,
                "retrying model request"
            );
            self.pending.clear();
            self.pending.push_back(StreamEvent::Retry(RetryInfo {
                attempt: self.attempt,
                next_attempt: self.attempt + 1,
                reason: failure.error.to_string(),
                error_code: failure.error.code().to_owned(),
                delay,
            }));
            self.phase = Phase::Backoff(delay);
        } else {
            self.phase = Phase::Fail(failure.error);
        }
    }

    /// Sends the request and checks status and content type.
    async fn open(&mut self) -> Result<Phase<D>, Failure> {
        let t = Arc::clone(&self.transport);
        let started = Instant::now();
        let request = t.client.post(t.url.clone()).body(self.body.clone());
        if !t.stream {
            return self.open_materialized(request, started).await;
        }
        let (mut deadline, armed) = match t.timeouts.first_event {
            Some(limit) => (Box::pin(tokio::time::sleep_until(started + limit)), true),
            None => (
                Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
                false,
            ),
        };
        let stall = |started: Instant| -> Failure {
            ModelError::Stall(StallError::new(
                stage::RESPONSE_FIRST_EVENT,
                StallStatus::Stalled,
                started.elapsed(),
                t.timeouts.first_event.unwrap_or_default(),
            ))
            .into()
        };
        let sent = tokio::select! {
            biased;
            r = request.send() => r,
            () = expire(&mut deadline, armed) => return Err(stall(started)),
        };
        let mut response =
            sent.map_err(|e| Failure::from(t.connect_error(t.transport_detail(&e))))?;
        if !response.status().is_success() {
            let failure = tokio::select! {
                biased;
                body = read_bounded(&mut response, MAX_ERROR_BODY_BYTES) => {
                    http_failure(&t, &response, &body.unwrap_or_default())
                }
                () = expire(&mut deadline, armed) => stall(started),
            };
            return Err(failure);
        }
        let content_type = content_type(&response);
        if content_type.is_empty() || content_type.contains("event-stream") {
            return Ok(Phase::Streaming(Live {
                response,
                parser: SseParser::new(),
                decoder: D::default(),
                deadline,
                armed,
                started,
                last_progress: started,
                progressed: false,
                rearm: false,
            }));
        }
        // Not SSE. A JSON body means the server ignored `stream: true` and answered
        // in one piece; anything else (an HTML login page, a proxy error) is refused.
        let body = tokio::select! {
            biased;
            body = read_bounded(&mut response, MAX_BODY_BYTES) => body,
            () = expire(&mut deadline, armed) => return Err(stall(started)),
        };
        let body = body.map_err(|e| Failure::from(t.connect_error(t.transport_detail(&e))))?;
        if content_type.contains("json") {
            self.decode_body(&body, stage::RESPONSE_FIRST_EVENT)?;
            return Ok(Phase::Finished);
        }
        Err(ModelError::Protocol {
            stage: stage::RESPONSE_FIRST_EVENT,
            detail: format!(
                "expected an event stream but the server sent `{}`: {}",
                t.bounded_redacted(&content_type, 80),
                excerpt(&t, &body)
            ),
        }
        .into())
    }

    /// A non-streamed request, bounded as a whole by `timeouts.request`.
    async fn open_materialized(
        &mut self,
        request: reqwest::RequestBuilder,
        started: Instant,
    ) -> Result<Phase<D>, Failure> {
        let t = Arc::clone(&self.transport);
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| Failure::from(t.connect_error(t.transport_detail(&e))))?;
            if !response.status().is_success() {
                let body = read_bounded(&mut response, MAX_ERROR_BODY_BYTES)
                    .await
                    .unwrap_or_default();
                return Err(http_failure(&t, &response, &body));
            }
            let ct = content_type(&response);
            let body = read_bounded(&mut response, MAX_BODY_BYTES)
                .await
                .map_err(|e| Failure::from(t.connect_error(t.transport_detail(&e))))?;
            Ok((ct, body))
        };
        let outcome = match t.timeouts.request {
            Some(limit) => match tokio::time::timeout(limit, exchange).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(ModelError::Stall(StallError::new(
                        stage::RESPONSE_MATERIALIZATION,
                        StallStatus::Stalled,
                        started.elapsed(),
                        limit,
                    ))
                    .into());
                }
            },
            None => exchange.await,
        };
        let (content_type, body) = outcome?;
        if let Err(failure) = self.decode_body(&body, stage::RESPONSE_MATERIALIZATION) {
            if matches!(failure.error, ModelError::Protocol { .. })
                && !content_type.contains("json")
            {
                return Err(ModelError::Protocol {
                    stage: stage::RESPONSE_MATERIALIZATION,
                    detail: format!(
                        "expected a JSON body but the server sent `{}`: {}",
                        t.bounded_redacted(&content_type, 80),
                        excerpt(&t, &body)
                    ),
                }
                .into());
            }
            return Err(failure);
        }
        Ok(Phase::Finished)
    }

    fn decode_body(&mut self, body: &[u8], at: &'static str) -> Result<(), Failure> {
        let mut decoder = D::default();
        decoder
            .on_body(body, &mut self.pending)
            .map_err(|e| Failure::from(decode_error(&self.transport, e, at)))
    }
}

/// Reads until at least one event is pending, the response ends, or a timer fires.
async fn read<D: WireDecoder>(
    t: &Transport,
    live: &mut Live<D>,
    pending: &mut VecDeque<StreamEvent>,
) -> Result<ReadOutcome, Failure> {
    loop {
        if live.rearm {
            live.rearm = false;
            let now = Instant::now();
            live.last_progress = now;
            match t.timeouts.stream_idle {
                Some(idle) => {
                    live.deadline.as_mut().reset(now + idle);
                    live.armed = true;
                }
                None => live.armed = false,
            }
        }
        let chunk = tokio::select! {
            biased;
            c = live.response.chunk() => c,
            () = expire(&mut live.deadline, live.armed) => return Err(stall(t, live)),
        };
        let before = pending.len();
        let mut saw_data = false;
        let flow = match chunk {
            Ok(Some(bytes)) => {
                let Live {
                    parser,
                    decoder,
                    progressed,
                    ..
                } = live;

                parser.feed(&bytes, |event| {
                    saw_data = true;
                    let n = pending.len();
                    let flow = decoder
                        .on_event(event, pending)
                        .map_err(|e| (e, *progressed || pending.len() > n))?;
                    *progressed |= pending.len() > n;
                    Ok(flow)
                })
            }
            Ok(None) => {
                let Live {
                    parser,
                    decoder,
                    progressed,
                    ..
                } = live;

                let flow = parser.finish(|event| {
                    let n = pending.len();
                    let flow = decoder
                        .on_event(event, pending)
                        .map_err(|e| (e, *progressed || pending.len() > n))?;
                    *progressed |= pending.len() > n;
                    Ok(flow)
                });
                match flow {
                    Ok(Flow::Stop) => return Ok(ReadOutcome::Done),
                    Ok(Flow::Continue) => {}
                    Err(e) => return Err(sse_failure(t, e)),
                }
                if live.decoder.on_eof(pending) {
                    return Ok(ReadOutcome::Done);
                }
                let early = !live.progressed;
                return Err(if early {
                    t.connect_error("the server closed the stream before the first event".into())
                } else {
                    ModelError::Interrupted {
                        stage: stage::RESPONSE_STREAM,
                        detail: "the stream ended before the response was complete".into(),
                    }
                }
                .into());
            }
            Err(e) => {
                let detail = t.transport_detail(&e);
                return Err(if live.progressed {
                    ModelError::Interrupted {
                        stage: stage::RESPONSE_STREAM,
                        detail,
                    }
                } else {
                    t.connect_error(detail)
                }
                .into());
            }
        };
        match flow {
            Ok(Flow::Stop) => return Ok(ReadOutcome::Done),
            Ok(Flow::Continue) => {}
            Err(e) => return Err(sse_failure(t, e)),
        }
        if pending.len() > before {
            live.rearm = true;
            return Ok(ReadOutcome::Continue);
        }
        if saw_data && live.progressed {
            // Protocol frames without output (lifecycle events, role-only
            // chunks) still show the stream is alive once output has started.
            live.rearm = true;
        }
    }
}

fn stall<D>(t: &Transport, live: &Live<D>) -> Failure {
    let error = if live.progressed {
        StallError::new(
            stage::RESPONSE_STREAM,
            StallStatus::Stalled,
            live.last_progress.elapsed(),
            t.timeouts.stream_idle.unwrap_or_default(),
        )
    } else {
        StallError::new(
            stage::RESPONSE_FIRST_EVENT,
            StallStatus::Stalled,
            live.started.elapsed(),
            t.timeouts.first_event.unwrap_or_default(),
        )
    };
    ModelError::Stall(error).into()
}

fn sse_failure(t: &Transport, e: SseError<(DecodeError, bool)>) -> Failure {
    match e {
        SseError::TooLarge => ModelError::Protocol {
            stage: stage::RESPONSE_STREAM,
            detail: "an SSE event exceeded the size limit".into(),
        }
        .into(),
        SseError::Callback((e, progressed)) => {
            let at = if progressed {
                stage::RESPONSE_STREAM
            } else {
                stage::RESPONSE_FIRST_EVENT
            };
            decode_error(t, e, at).into()
        }
    }
}

/// Waits for the deadline, or forever when no limit is in force.
async fn expire(deadline: &mut Pin<Box<Sleep>>, armed: bool) {
    if armed {
        deadline.as_mut().await;
    } else {
        std::future::pending::<()>().await;
    }
}

fn decode_error(t: &Transport, e: DecodeError, at: &'static str) -> ModelError {
    match e {
        DecodeError::Malformed(detail) => ModelError::Protocol {
            stage: at,
            detail: t.bounded_redacted(&detail, MAX_MESSAGE_CHARS),
        },
        DecodeError::Failed { code, message } => ModelError::ResponseFailed {
            stage: at,
            code: code.map(|c| t.bounded_redacted(&c, 80)),
            message: t.bounded_redacted(&message, MAX_MESSAGE_CHARS),
        },
    }
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Reads at most `limit` bytes of the body (the rest is dropped with the response).
async fn read_bounded(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let hint = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(limit);
    let mut body = Vec::with_capacity(hint);
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// The error for an HTTP error status: the server's message, bounded and redacted,
/// plus what it said about waiting.
fn http_failure(t: &Transport, response: &reqwest::Response, body: &[u8]) -> Failure {
    let status = response.status();
    let message = match server_message(body) {
        Some(m) => t.bounded_redacted(&m, MAX_MESSAGE_CHARS),
        None if body.iter().all(u8::is_ascii_whitespace) => status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned(),
        None => excerpt(t, body),
    };
    Failure {
        error: ModelError::HttpStatus {
            status: status.as_u16(),
            message,
        },
        retry_after: retry_after(response.headers()),
    }
}

/// The message of an error body in the shapes servers use:
/// `{"error":{"message":…}}` (OpenAI), `{"error":"…"}` (Ollama), `{"message":…}`,
/// `{"detail":…}` (FastAPI).
pub(crate) fn server_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    match value.get("error") {
        Some(serde_json::Value::Object(e)) => e.get("message").and_then(text),
        Some(other) => text(other),
        None => value
            .get("message")
            .or_else(|| value.get("detail"))
            .and_then(text),
    }
}

/// `Retry-After` in seconds or `retry-after-ms`; HTTP dates are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let parse = |name: &str, scale: f64| -> Option<Duration> {
        let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64((v * scale).min(86_400.0)))
    };
    parse("retry-after-ms", 0.001).or_else(|| parse("retry-after", 1.0))
}

/// A short, single-line, redacted excerpt of an unexpected body.
fn excerpt(t: &Transport, body: &[u8]) -> String {
    let head = body
        .get(..body.len().min(MAX_EXCERPT_CHARS * 4))
        .unwrap_or_default();
    let text = String::from_utf8_lossy(head);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("`{}`", t.bounded_redacted(&one_line, MAX_EXCERPT_CHARS))
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub(crate) fn bound_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => {
            let mut out = s.get(..cut).unwrap_or_default().to_owned();
            out.push('…');
            out
        }
        None => s.to_owned(),
    }
}

/// FNV-1a, to seed the retry jitter from the request body.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_in_common_shapes() {
        assert_eq!(
            server_message(br#"{"error":{"message":"bad key","type":"x"}}"#).as_deref(),
            Some("bad key")
        );
        assert_eq!(
            server_message(br#"{"error":"model not found"}"#).as_deref(),
            Some("model not found")
        );
        assert_eq!(
            server_message(br#"{"detail":"nope"}"#).as_deref(),
            Some("nope")
        );
        assert_eq!(server_message(b"<html>"), None);
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut d = HeaderMap::new();
        d.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&d), None);
    }

    #[test]
    fn bounding_respects_chars() {
        assert_eq!(bound_chars("ééé", 2), "éé…");
        assert_eq!(bound_chars("ab", 2), "ab");
    }
}
