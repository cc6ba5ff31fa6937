//! The legacy HTTP+SSE client transport (MCP protocol 2024-11-05), which `rmcp` does
//! not ship: many deployed servers still speak only this.
//!
//! The exchange: `GET <url>` with `Accept: text/event-stream` opens one long-lived
//! Server-Sent Events stream. Its first event is `endpoint`, whose data is the URI
//! (often relative, carrying a session id) that every client→server JSON-RPC message
//! is POSTed to; the server acknowledges a POST with 2xx and delivers the real
//! response, and everything else it sends, as `message` events on the stream.
//!
//! What this module adds to that, and why:
//!
//! - **Same origin only.** The endpoint must have the configured URL's scheme, host
//!   and port. The POSTs carry the configured headers (usually a bearer token) and
//!   every tool argument, so a server — or anything that can inject into its
//!   stream — must not be able to redirect them elsewhere. Redirects of the GET and
//!   the POSTs are followed only within the origin, for the same reason.
//! - **Typed failures instead of waiting.** A wrong status, a non-SSE content type, an
//!   event above the size limit, a `message` that is not JSON-RPC, a failed POST and
//!   the end of the stream each close the transport at once and leave the
//!   [`McpError`] that explains it in the connection's `fatal` slot, where the
//!   client reads it (as it does for stdio) instead of letting the caller run into a
//!   timeout.
//! - **No stream resumption.** `id:` and `retry:` are parsed and ignored: a legacy
//!   session lives exactly as long as its stream (servers forget the session id when
//!   the GET ends), so reconnecting the stream alone cannot resume anything. A lost
//!   stream is a lost connection, which the client re-opens as its restart policy
//!   allows, with a fresh `initialize`.
//!
//! Timeouts for the endpoint event and `initialize` come from the client's connect
//! timeout around [`connect`]; per-call timeouts live above the transport, in `rmcp`'s
//! request handling, exactly as for the other transports.
use std::collections::VecDeque;
use std::fmt::{self, Display};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio_util::sync::CancellationToken;

use agentry_model::sse::Flow;

use crate::client::{Fatal, error_chain, preview};
use crate::error::McpError;

/// Redirects followed per request (all within the origin).
const MAX_REDIRECTS: usize = 5;
/// How much of an unexpected response body is quoted in an error.
const BODY_PREVIEW_BYTES: usize = 1024;
/// How long reading that quote may take (the body may be a never-ending stream).
const BODY_PREVIEW_WAIT: Duration = Duration::from_millis(500);

/// One complete Server-Sent Event, owned (it outlives the chunk it came in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field; `message` when the server gave none (the SSE default).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An event (or a line still waiting for its end) grew past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventTooLarge;

/// The model providers' incremental SSE parser ([`agentry_model::sse`]), collecting
/// owned events: the transport hands them on after the chunk is gone.
#[derive(Debug)]
pub(crate) struct SseParser {
    inner: agentry_model::sse::SseParser,
}

impl SseParser {
    /// A parser that refuses events larger than `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            inner: agentry_model::sse::SseParser::with_max_event_bytes(max),
        }
    }

    /// The cap on one line or event, in bytes.
    pub(crate) fn max_event_bytes(&self) -> usize {
        self.inner.max_event_bytes()
    }

    /// Feeds one chunk; appends every event it completes to `out`.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<SseEvent>,
    ) -> Result<(), EventTooLarge> {
        self.inner
            .feed(chunk, |ev| {
                out.push(SseEvent {
                    event: if ev.event.is_empty() {
                        "message"
                    } else {
                        ev.event
                    }
                    .to_owned(),
                    data: ev.data.to_owned(),
                });
                Ok::<_, std::convert::Infallible>(Flow::Continue)
            })
            .map(drop)
            .map_err(|_| EventTooLarge)
    }
}

/// Everything [`connect`] needs.
#[derive(Debug)]
pub(crate) struct SseOptions {
    /// The server's name, for errors.
    pub server: String,
    /// The SSE URL (GET).
    pub url: Url,
    /// Headers sent with the GET and with every POST.
    pub headers: HeaderMap,
    /// The largest event accepted.
    pub max_event_bytes: usize,
    /// How long a POST may take to be acknowledged. Legacy servers acknowledge at
    /// once (the answer comes on the stream); a POST that hangs means a hung or
    /// confused server, e.g. one that lost the session and never answers.
    pub post_timeout: Duration,
    /// Where the reason the transport closed is left for the client.
    pub fatal: Fatal,
}

/// Opens the stream, waits for the `endpoint` event and returns the transport.
///
/// Not bounded in time by itself: the caller wraps it (with `initialize`) in the
/// connect timeout, which is thereby also the timeout for the endpoint event.
pub(crate) async fn connect(
    opts: SseOptions,
) -> Result<
    SseTransport<
        impl Stream<Item = Result<impl AsRef<[u8]> + Send, reqwest::Error>> + Send + Unpin,
    >,
    McpError,
> {
    let SseOptions {
        server,
        url,
        headers,
        max_event_bytes,
        post_timeout,
        fatal,
    } = opts;
    let client = reqwest::Client::builder()
        .redirect(same_origin_redirects())
        .build()
        .map_err(|e| McpError::Connect {
            server: server.clone(),
            reason: format!("cannot build the HTTP client: {}", error_chain(&e)),
        })?;
    let response = client
        .get(url.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .send()
        .await
        .map_err(|e| McpError::Connect {
            server: server.clone(),
            reason: format!(
                "GET {}: {}",
                shown(&url),
                preview(&error_chain(&e.without_url()))
            ),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(status_error(&server, "GET", &url, response).await);
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type != "text/event-stream" {
        let quoted = body_preview(response).await;
        return Err(McpError::Protocol {
            server,
            reason: format!(
                "GET {} answered with content type `{content_type}`, not an SSE stream \
                 (text/event-stream){quoted}",
                shown(&url)
            ),
        });
    }
    // Relative endpoints resolve against where the stream really came from (after
    // same-origin redirects).
    let base = response.url().clone();
    let mut body = Box::pin(response.bytes_stream());
    let mut parser = SseParser::new(max_event_bytes);
    let mut events = Vec::new();
    let (endpoint, early) = 'found: loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                parser.feed(chunk.as_ref(), &mut events).map_err(|_| {
                    McpError::MessageTooLarge {
                        server: server.clone(),
                        limit: max_event_bytes,
                    }
                })?;
            }
            Some(Err(e)) => {
                return Err(McpError::Connect {
                    server,
                    reason: format!(
                        "the SSE stream broke before the `endpoint` event: {}",
                        preview(&error_chain(&e.without_url()))
                    ),
                });
            }
            None => {
                return Err(McpError::Protocol {
                    server,
                    reason: "the SSE stream closed before the `endpoint` event".into(),
                });
            }
        }
        let mut drained = events.drain(..);
        while let Some(ev) = drained.next() {
            match ev.event.as_str() {
                "endpoint" => break 'found (ev.data, drained.collect::<Vec<_>>()),
                "message" => {
                    return Err(McpError::Protocol {
                        server,
                        reason: format!(
                            "the server sent a `message` event before the `endpoint` event: `{}`",
                            preview(&ev.data)
                        ),
                    });
                }
                other => {
                    tracing::debug!(server = %server, event = other, "SSE event before `endpoint` ignored")
                }
            }
        }
    };
    let endpoint = resolve_endpoint(&server, &url, &base, &endpoint)?;
    tracing::debug!(server = %server, %endpoint, "legacy SSE endpoint");
    let closed = CancellationToken::new();
    let poster = Arc::new(Poster {
        client,
        endpoint,
        headers,
        server,
        timeout: post_timeout,
        fatal: fatal.clone(),
        closed: closed.clone(),
    });
    let mut transport = SseTransport {
        body,
        parser,
        events: Vec::new(),
        pending: VecDeque::new(),
        poster,
        done: false,
    };
    // Events that came in the same chunk as the endpoint.
    for ev in early {
        transport.absorb(ev);
    }
    Ok(transport)
}

/// Follows a redirect only while it stays on the origin of the first URL; otherwise
/// the 3xx response itself is returned (and reported as an error).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Resolves the `endpoint` event's URI and refuses other origins (see module docs).
fn resolve_endpoint(server: &str, url: &Url, base: &Url, data: &str) -> Result<Url, McpError> {
    let raw = data.trim();
    if raw.is_empty() {
        return Err(McpError::Protocol {
            server: server.to_owned(),
            reason: "the `endpoint` event is empty".into(),
        });
    }
    let endpoint = base.join(raw).map_err(|e| McpError::Protocol {
        server: server.to_owned(),
        reason: format!("the `endpoint` event `{}` is not a URI: {e}", preview(raw)),
    })?;
    if endpoint.origin() != url.origin() {
        return Err(McpError::Protocol {
            server: server.to_owned(),
            reason: format!(
                "refusing the endpoint `{}`: it is not on the origin of `{}`, and the \
                 messages and headers must not leave it",
                preview(endpoint.as_str()),
                shown(url)
            ),
        });
    }
    Ok(endpoint)
}

/// A URL for an error message: without query, fragment and password, which may hold
/// a key (some servers take `?api_key=`) and would end up in logs and in the model's
/// context.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    u.to_string()
}

/// The typed error for a non-2xx answer to the GET or a POST.
async fn status_error(
    server: &str,
    method: &str,
    url: &Url,
    response: reqwest::Response,
) -> McpError {
    let status = response.status();
    let server = server.to_owned();
    let url = shown(url);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(|c| format!(" (WWW-Authenticate: {})", preview(c)))
            .unwrap_or_default();
        return McpError::Auth {
            server,
            reason: format!("{method} {url} answered HTTP {status}{challenge}"),
        };
    }
    if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return McpError::Protocol {
            server,
            reason: format!(
                "{method} {url} answered HTTP {status} to `{}`; redirects to another origin \
                 (or too many) are not followed",
                preview(to)
            ),
        };
    }
    let quoted = body_preview(response).await;
    if method == "POST" && (status == StatusCode::NOT_FOUND || status == StatusCode::GONE) {
        // The usual answer of a server that no longer knows the session (it
        // restarted, or timed the session out): the connection is gone.
        return McpError::ServerExited {
            server,
            status: Some(format!(
                "the server no longer knows the session: POST answered HTTP {status}{quoted}"
            )),
            stderr_tail: String::new(),
        };
    }
    if status.is_server_error() {
        return McpError::Connect {
            server,
            reason: format!("{method} {url} answered HTTP {status}{quoted}"),
        };
    }
    McpError::Protocol {
        server,
        reason: format!("{method} {url} answered HTTP {status}{quoted}"),
    }
}

/// The start of a response body, quoted for an error (`""` when there is none or it
/// does not come quickly).
async fn body_preview(response: reqwest::Response) -> String {
    let mut body = Box::pin(response.bytes_stream());
    let mut buf = Vec::new();
    let read = async {
        while buf.len() < BODY_PREVIEW_BYTES {
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(chunk.as_ref()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(BODY_PREVIEW_WAIT, read).await;
    let text = String::from_utf8_lossy(&buf);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": `{}`", preview(text))
    }
}

/// Sends client messages; shared by the concurrent send futures.
struct Poster {
    client: reqwest::Client,
    endpoint: Url,
    headers: HeaderMap,
    server: String,
    timeout: Duration,
    fatal: Fatal,
    closed: CancellationToken,
}

impl Poster {
    async fn post(&self, message: ClientJsonRpcMessage) -> Result<(), McpError> {
        if let Some(e) = self.fatal_error() {
            return Err(e);
        }
        let body = serde_json::to_vec(&message).map_err(|e| McpError::Protocol {
            server: self.server.clone(),
            reason: format!("cannot encode a message: {e}"),
        })?;
        let sent = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let status = if e.is_timeout() {
                    format!(
                        "a POST to the endpoint was not acknowledged within {} ms",
                        self.timeout.as_millis()
                    )
                } else {
                    format!(
                        "a POST to the endpoint failed: {}",
                        preview(&error_chain(&e.without_url()))
                    )
                };
                return Err(self.fail(McpError::ServerExited {
                    server: self.server.clone(),
                    status: Some(status),
                    stderr_tail: String::new(),
                }));
            }
        };
        if response.status().is_success() {
            return Ok(());
        }
        let err = status_error(&self.server, "POST", &self.endpoint, response).await;
        Err(self.fail(err))
    }

    fn fatal_error(&self) -> Option<McpError> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    /// Records why the transport ends (the first reason wins) and closes the stream,
    /// so the service loop stops and the connection is seen as lost.
    fn fail(&self, e: McpError) -> McpError {
        if let Ok(mut f) = self.fatal.lock()
            && f.is_none()
        {
            *f = Some(e.clone());
        }
        self.closed.cancel();
        e
    }
}

/// The client side of one legacy SSE session, as an `rmcp` transport.
///
/// Sends are concurrent (one POST each); receiving reads the stream. Receiving is
/// cancel-safe: the only await point is the next chunk of the stream, and a chunk is
/// parsed into `pending` before anything else can happen.
pub(crate) struct SseTransport<S> {
    body: S,
    parser: SseParser,
    /// Reused buffer for the events of one chunk.
    events: Vec<SseEvent>,
    /// Messages parsed and not yet handed out.
    pending: VecDeque<ServerJsonRpcMessage>,
    poster: Arc<Poster>,
    /// The stream is finished (closed, broken or refused); nothing more is read.
    done: bool,
}

impl<S> fmt::Debug for SseTransport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseTransport")
            .field("server", &self.poster.server)
            .field("endpoint", &self.poster.endpoint.as_str())
            .field("done", &self.done)
            .finish()
    }
}

impl<S, B, E> SseTransport<S>
where
    S: Stream<Item = Result<B, E>> + Send + Unpin,
    B: AsRef<[u8]>,
    E: Display,
{
    /// Ends the stream with `e` as the reason.
    fn fail(&mut self, e: McpError) {
        self.done = true;
        let _ = self.poster.fail(e);
    }

    /// Turns one event into a pending message, or ends the stream on garbage.
    fn absorb(&mut self, ev: SseEvent) {
        if self.done {
            return;
        }
        match ev.event.as_str() {
            "message" => match serde_json::from_str::<ServerJsonRpcMessage>(&ev.data) {
                Ok(m) => self.pending.push_back(m),
                Err(e) => {
                    let what = if e.is_syntax() || e.is_eof() {
                        "is not JSON"
                    } else {
                        "is not a valid JSON-RPC message"
                    };
                    let server = self.poster.server.clone();
                    self.fail(McpError::Protocol {
                        server,
                        reason: format!("an SSE `message` event {what}: `{}`", preview(&ev.data)),
                    });
                }
            },
            // A repeated `endpoint` is not part of the protocol; the session keeps the
            // first (checked) one.
            other => {
                tracing::debug!(server = %self.poster.server, event = other, "SSE event ignored");
            }
        }
    }

    async fn next_message(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            if self.done {
                return None;
            }
            let chunk = tokio::select! {
                biased;
                () = self.poster.closed.cancelled() => {
                    self.done = true;
                    continue;
                }
                c = self.body.next() => c,
            };
            let server = self.poster.server.clone();
            match chunk {
                Some(Ok(bytes)) => {
                    let mut events = std::mem::take(&mut self.events);
                    let fed = self.parser.feed(bytes.as_ref(), &mut events);
                    for ev in events.drain(..) {
                        self.absorb(ev);
                    }
                    self.events = events;
                    if fed.is_err() {
                        let limit = self.parser.max_event_bytes();
                        self.fail(McpError::MessageTooLarge { server, limit });
                    }
                }
                Some(Err(e)) => self.fail(McpError::ServerExited {
                    server,
                    status: Some(format!("the SSE stream broke: {}", preview(&e.to_string()))),
                    stderr_tail: String::new(),
                }),
                None => self.fail(McpError::ServerExited {
                    server,
                    status: Some("the server closed the SSE stream".into()),
                    stderr_tail: String::new(),
                }),
            }
        }
    }
}

impl<S, B, E> Transport<RoleClient> for SseTransport<S>
where
    S: Stream<Item = Result<B, E>> + Send + Unpin + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: Display + Send + 'static,
{
    type Error = McpError;

    fn name() -> std::borrow::Cow<'static, str> {
        "legacy-sse".into()
    }

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), McpError>> + Send + 'static {
        let poster = self.poster.clone();
        async move { poster.post(item).await }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.next_message()
    }

    async fn close(&mut self) -> Result<(), McpError> {
        self.done = true;
        self.poster.closed.cancel();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]], max: usize) -> Result<Vec<SseEvent>, EventTooLarge> {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out)?;
        }
        Ok(out)
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_survive_any_split_and_any_line_ending() {
        let stream: &[u8] = b"\xEF\xBB\xBF: keep-alive\r\nevent: endpoint\r\ndata: /m?s=1\r\n\r\n\
            id: 7\nretry: 10\ndata:{\"a\":\ndata:  1}\n\n\
            event:message\rdata: \xC3\xA9\r\r\
            data: no blank line at the end";
        let expected = vec![
            ev("endpoint", "/m?s=1"),
            ev("message", "{\"a\":\n 1}"),
            ev("message", "é"),
        ];
        // Every split point, including inside `\r\n` and inside the two-byte `é`.
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                parse_chunks(&[a, b], 1024),
                Ok(expected.clone()),
                "cut at {cut}"
            );
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes, 1024), Ok(expected));
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let out = parse_chunks(&[b"event: endpoint\n\n: comment\n\ndata\n\n"], 64);
        assert_eq!(out, Ok(vec![ev("message", "")]));
    }

    #[test]
    fn oversized_events_and_endless_lines_are_refused() {
        let big = format!("data: {}\n\n", "x".repeat(200));
        assert_eq!(parse_chunks(&[big.as_bytes()], 100), Err(EventTooLarge));
        // Many small data lines add up.
        let lines = "data: xxxxxxxxxx\n".repeat(20);
        assert_eq!(parse_chunks(&[lines.as_bytes()], 100), Err(EventTooLarge));
        // A line that never ends, fed in small pieces.
        let piece = [b'y'; 30];
        assert_eq!(
            parse_chunks(&[&piece, &piece, &piece, &piece], 100),
            Err(EventTooLarge)
        );
        // Under the limit is fine, however many events: the cap is on one event (its
        // bytes as sent, `data: ` included), not on the stream.
        let ok = format!("data: {}\n\n", "z".repeat(90)).repeat(5);
        assert_eq!(parse_chunks(&[ok.as_bytes()], 100).map(|v| v.len()), Ok(5));
    }

    #[test]
    fn endpoints_resolve_relative_and_stay_on_the_origin() {
        let url = Url::parse("http://127.0.0.1:8000/sse").unwrap();
        let ok = resolve_endpoint("s", &url, &url, " /message?sessionId=abc ");
        assert_eq!(
            ok.ok().map(|u| u.to_string()),
            Some("http://127.0.0.1:8000/message?sessionId=abc".to_owned())
        );
        let abs = resolve_endpoint("s", &url, &url, "http://127.0.0.1:8000/x");
        assert!(abs.is_ok());
        for other in [
            "http://127.0.0.1:8001/message",
            "https://127.0.0.1:8000/message",
            "http://evil.example/message",
            "//evil.example/message",
        ] {
            let err = resolve_endpoint("s", &url, &url, other);
            assert!(
                matches!(&err, Err(McpError::Protocol { reason, .. }) if reason.contains("origin")),
                "{other}: {err:?}"
            );
        }
        assert!(resolve_endpoint("s", &url, &url, "").is_err());
        let keyed = Url::parse("https://u:pw@h/sse?api_key=secret#x").unwrap();
        assert_eq!(shown(&keyed), "https://u@h/sse");
        assert!(resolve_endpoint("s", &url, &url, "http://[::1").is_err());
    }
}
