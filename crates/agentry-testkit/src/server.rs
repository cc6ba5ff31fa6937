//! The mock server: accepting connections, choosing replies, and delivering them with faults.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::http::{Conn, RawRequest, head};
use crate::render::{Ctx, Frames};
use crate::request::RecordedRequest;
use crate::scenario::{Fault, Reply, ReplyBody, Rule, Scenario, openai_error_body};

/// How often [`Fault::KeepAliveOnly`] sends its comment line.
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(50);

/// The model ids `GET /v1/models` lists.
pub(crate) const MODEL_IDS: [&str; 2] = ["mock-model", "mock-reasoning-model"];

/// State shared by all connections of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    rules: Vec<(Rule, AtomicUsize)>,
    fallback: Reply,
    log: Mutex<Vec<Arc<RecordedRequest>>>,
    next_answer: AtomicU64,
}

impl Shared {
    pub(crate) fn new(scenario: Scenario) -> Self {
        Self {
            rules: scenario
                .rules
                .into_iter()
                .map(|rule| (rule, AtomicUsize::new(0)))
                .collect(),
            fallback: scenario.fallback,
            log: Mutex::new(Vec::new()),
            next_answer: AtomicU64::new(1),
        }
    }

    fn record(&self, request: Arc<RecordedRequest>) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| RecordedRequest::clone(r))
            .collect()
    }

    pub(crate) fn request_count(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The first matching rule with uses left (claiming one use atomically); for model endpoints the
    /// fallback when none matches, for other paths only rules with a path condition count.
    fn select(&self, request: &RecordedRequest, model_endpoint: bool) -> Option<&Reply> {
        for (rule, used) in &self.rules {
            if !model_endpoint && !rule.has_path_condition() {
                continue;
            }
            if !rule.matches(request) {
                continue;
            }
            if let Some(limit) = rule.times {
                let claimed = used
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < limit).then_some(n + 1)
                    })
                    .is_ok();
                if !claimed {
                    continue;
                }
            }
            return Some(&rule.reply);
        }
        model_endpoint.then_some(&self.fallback)
    }
}

/// Accepts connections until `stop` fires or its sender is dropped, then closes every connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    // Usually fd exhaustion under heavy load; back off instead of spinning.
                    tracing::debug!(%error, "mock server: accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// What to do with the connection after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    KeepAlive,
    Close,
    Reset,
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "mock server: set_nodelay failed");
    }
    let mut conn = Conn::new(stream);
    loop {
        let raw = match conn.read_request().await {
            Ok(Some(raw)) => raw,
            Ok(None) => return,
            Err(error) => {
                if error.kind() == io::ErrorKind::InvalidData {
                    let body = openai_error_body(400);
                    conn.queue(&head(
                        400,
                        "application/json",
                        Some(body.len()),
                        "req_mock_bad",
                        false,
                        &[],
                    ));
                    conn.queue(body.as_bytes());
                    let _ = conn.flush().await;
                }
                return;
            }
        };
        let keep_alive = raw.keep_alive;
        let request = Arc::new(recorded(raw));
        shared.record(Arc::clone(&request));
        match respond(&mut conn, &shared, &request, keep_alive).await {
            Ok(After::KeepAlive) => {}
            Ok(After::Close) => {
                let _ = conn.stream.shutdown().await;
                return;
            }
            Ok(After::Reset) => {
                conn.reset();
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "mock server: connection ended while answering");
                return;
            }
        }
    }
}

fn recorded(raw: RawRequest) -> RecordedRequest {
    let raw_body = String::from_utf8_lossy(&raw.body).into_owned();
    let body = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    RecordedRequest {
        method: raw.method,
        path: raw.target,
        headers: raw.headers,
        body,
        raw_body,
    }
}

/// The endpoints the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Responses,
    Models,
    WrongMethod,
    NotFound,
}

impl Route {
    fn of(method: &str, path: &str) -> Self {
        let path = path.trim_end_matches('/');
        let post = method.eq_ignore_ascii_case("POST");
        let get = method.eq_ignore_ascii_case("GET");
        // Accept paths with and without the `/v1` prefix: clients differ in how they join base URLs.
        let endpoint = path.strip_prefix("/v1").unwrap_or(path);
        match endpoint {
            "/chat/completions" if post => Self::Chat,
            "/responses" if post => Self::Responses,
            "/models" if get => Self::Models,
            "/chat/completions" | "/responses" | "/models" => Self::WrongMethod,
            _ => Self::NotFound,
        }
    }
}

/// How a body-shaped (non-SSE) answer looks before faults.
#[derive(Debug)]
struct Body {
    status: u16,
    content_type: &'static str,
    text: String,
}

impl Body {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            text: value.to_string(),
        }
    }
}

async fn respond(
    conn: &mut Conn,
    shared: &Shared,
    request: &RecordedRequest,
    keep_alive: bool,
) -> io::Result<After> {
    let route = Route::of(&request.method, request.path_without_query());
    let model_endpoint = matches!(route, Route::Chat | Route::Responses);
    let answer = shared.next_answer.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("req_mock_{answer}");
    let done = if keep_alive {
        After::KeepAlive
    } else {
        After::Close
    };
    let reply = shared.select(request, model_endpoint);
    let out = Out {
        request_id: &request_id,
        keep_alive,
        done,
    };

    let Some(reply) = reply else {
        return out
            .body(conn, static_answer(route), None, Duration::ZERO)
            .await;
    };

    // Faults that do not depend on the content.
    match &reply.fault {
        Some(Fault::ResetBeforeFirstToken) => return Ok(After::Reset),
        Some(Fault::Hang) => {
            conn.hang().await?;
            return Ok(After::Close);
        }
        Some(Fault::HttpStatus { status, body }) => {
            return out.error(conn, reply, *status, body, &[]).await;
        }
        Some(Fault::HttpStatusWithHeaders {
            status,
            headers,
            body,
        }) => {
            return out.error(conn, reply, *status, body, headers).await;
        }
        Some(Fault::Html) => {
            let body = Body {
                status: 200,
                content_type: "text/html; charset=utf-8",
                text: HTML_PAGE.to_owned(),
            };
            return out.body(conn, body, None, reply.first_token_delay).await;
        }
        _ => {}
    }

    let fault = reply.fault.as_ref();
    match &reply.body {
        ReplyBody::Json(value) => {
            out.body(conn, Body::json(200, value), fault, reply.first_token_delay)
                .await
        }
        ReplyBody::RawSse(frames) => {
            let frames = frames
                .iter()
                .map(|f| {
                    if f.ends_with("\n\n") {
                        f.clone()
                    } else {
                        format!("{}\n\n", f.trim_end_matches('\n'))
                    }
                })
                .collect();
            let frames = Frames {
                frames,
                completion_tail: 0,
            };
            out.stream(conn, frames, reply, route).await
        }
        ReplyBody::Generated => {
            if !model_endpoint {
                return out
                    .body(conn, static_answer(route), fault, reply.first_token_delay)
                    .await;
            }
            let ctx = Ctx::new(answer, request, reply);
            let streamed = request.is_stream();
            match (route, streamed) {
                (Route::Responses, true) => {
                    out.stream(conn, ctx.responses_stream(), reply, route).await
                }
                (Route::Responses, false) => {
                    out.body(
                        conn,
                        Body::json(200, &ctx.responses_body()),
                        fault,
                        reply.first_token_delay,
                    )
                    .await
                }
                (_, true) => out.stream(conn, ctx.chat_stream(), reply, route).await,
                (_, false) => {
                    out.body(
                        conn,
                        Body::json(200, &ctx.chat_body()),
                        fault,
                        reply.first_token_delay,
                    )
                    .await
                }
            }
        }
    }
}

const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>\
<body><h1>Network login required</h1><p>This page was served by the agentry-testkit mock server \
in place of an API answer.</p></body></html>\n";

/// The answer for paths no rule changes: the model list, or a JSON error.
fn static_answer(route: Route) -> Body {
    match route {
        Route::Models => {
            let data: Vec<Value> = MODEL_IDS
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "agentry-testkit"}))
                .collect();
            Body::json(200, &json!({"object": "list", "data": data}))
        }
        Route::WrongMethod => Body {
            status: 405,
            content_type: "application/json",
            text: openai_error_body(405),
        },
        Route::Chat | Route::Responses | Route::NotFound => Body {
            status: 404,
            content_type: "application/json",
            text: openai_error_body(404),
        },
    }
}

/// Writes answers for one request.
#[derive(Debug)]
struct Out<'a> {
    request_id: &'a str,
    keep_alive: bool,
    done: After,
}

impl Out<'_> {
    async fn error(
        &self,
        conn: &mut Conn,
        reply: &Reply,
        status: u16,
        body: &str,
        headers: &[(String, String)],
    ) -> io::Result<After> {
        sleep(reply.first_token_delay).await;
        conn.queue(&head(
            status,
            "application/json",
            Some(body.len()),
            self.request_id,
            self.keep_alive,
            headers,
        ));
        conn.queue(body.as_bytes());
        conn.flush().await?;
        Ok(self.done)
    }

    /// A body-shaped answer, with the faults that make sense for it.
    async fn body(
        &self,
        conn: &mut Conn,
        body: Body,
        fault: Option<&Fault>,
        delay: Duration,
    ) -> io::Result<After> {
        sleep(delay).await;
        let Body {
            status,
            content_type,
            mut text,
        } = body;
        let half = floor_char_boundary(&text, text.len() / 2);
        match fault {
            Some(Fault::MalformedChunk) => {
                text.truncate(half);
                text.push_str("{broken json");
            }
            Some(Fault::TruncatedStream) => {
                text.truncate(half);
                conn.queue(&head(
                    status,
                    content_type,
                    Some(text.len()),
                    self.request_id,
                    false,
                    &[],
                ));
                conn.queue(text.as_bytes());
                conn.flush().await?;
                return Ok(After::Close);
            }
            Some(Fault::ResetAfterChunks(_) | Fault::HangAfterChunks(_)) => {
                conn.queue(&head(
                    status,
                    content_type,
                    Some(text.len()),
                    self.request_id,
                    self.keep_alive,
                    &[],
                ));
                conn.queue(&text.as_bytes()[..half]);
                conn.flush().await?;
                if matches!(fault, Some(Fault::ResetAfterChunks(_))) {
                    return Ok(After::Reset);
                }
                conn.hang().await?;
                return Ok(After::Close);
            }
            Some(Fault::KeepAliveOnly) => {
                conn.queue(&head(
                    status,
                    content_type,
                    None,
                    self.request_id,
                    self.keep_alive,
                    &[],
                ));
                conn.trickle(b"\n", KEEP_ALIVE_EVERY).await?;
                return Ok(After::Close);
            }
            _ => {}
        }
        conn.queue(&head(
            status,
            content_type,
            Some(text.len()),
            self.request_id,
            self.keep_alive,
            &[],
        ));
        conn.queue(text.as_bytes());
        conn.flush().await?;
        Ok(self.done)
    }

    /// An SSE answer, paced by the reply's delays and shaped by its fault.
    async fn stream(
        &self,
        conn: &mut Conn,
        frames: Frames,
        reply: &Reply,
        route: Route,
    ) -> io::Result<After> {
        let fault = reply.fault.as_ref();
        let truncated = fault == Some(&Fault::TruncatedStream);
        // A truncated stream ends with a clean close, so say so up front like a real server would.
        let keep_alive = self.keep_alive && !truncated;
        conn.queue(&head(
            200,
            "text/event-stream; charset=utf-8",
            None,
            self.request_id,
            keep_alive,
            &[],
        ));
        if fault == Some(&Fault::KeepAliveOnly) {
            conn.trickle(b": keep-alive\n\n", KEEP_ALIVE_EVERY).await?;
            return Ok(After::Close);
        }
        let Frames {
            mut frames,
            completion_tail,
        } = frames;
        match fault {
            Some(Fault::MalformedChunk) => {
                let broken = if route == Route::Responses {
                    "event: response.output_text.delta\ndata: {broken json\n\n"
                } else {
                    "data: {broken json\n\n"
                };
                frames.insert(frames.len().min(1), broken.to_owned());
            }
            Some(Fault::TruncatedStream) => {
                frames.truncate(frames.len().saturating_sub(completion_tail));
            }
            _ => {}
        }
        let limit = match fault {
            Some(Fault::ResetAfterChunks(n) | Fault::HangAfterChunks(n)) => (*n).min(frames.len()),
            _ => frames.len(),
        };
        for (i, frame) in frames.iter().take(limit).enumerate() {
            let delay = if i == 0 {
                reply.first_token_delay
            } else {
                reply.chunk_delay
            };
            if !delay.is_zero() {
                conn.flush().await?;
                tokio::time::sleep(delay).await;
            }
            conn.queue_chunk(frame.as_bytes());
        }
        match fault {
            Some(Fault::ResetAfterChunks(_)) => {
                conn.flush().await?;
                Ok(After::Reset)
            }
            Some(Fault::HangAfterChunks(_)) => {
                conn.hang().await?;
                Ok(After::Close)
            }
            _ => {
                conn.queue_last_chunk();
                conn.flush().await?;
                Ok(if truncated { After::Close } else { self.done })
            }
        }
    }
}

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::of("POST", "/v1/chat/completions"), Route::Chat);
        assert_eq!(Route::of("POST", "/chat/completions"), Route::Chat);
        assert_eq!(Route::of("POST", "/v1/responses/"), Route::Responses);
        assert_eq!(Route::of("GET", "/v1/models"), Route::Models);
        assert_eq!(Route::of("GET", "/v1/chat/completions"), Route::WrongMethod);
        assert_eq!(Route::of("POST", "/v1/embeddings"), Route::NotFound);
    }

    fn request(path: &str) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: path.into(),
            headers: vec![],
            body: Value::Null,
            raw_body: String::new(),
        }
    }

    #[test]
    fn times_limits_count_atomically_across_threads() {
        let shared = Arc::new(Shared::new(
            Scenario::new()
                .rule(Rule::always().times(7).reply(Reply::text("limited")))
                .fallback(Reply::text("fallback")),
        ));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let req = request("/v1/chat/completions");
                    (0..50)
                        .filter(|_| shared.select(&req, true).unwrap().text == ["limited"])
                        .count()
                })
            })
            .collect();
        let limited: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(limited, 7);
    }

    #[test]
    fn non_model_paths_only_see_path_rules() {
        let shared = Shared::new(
            Scenario::new()
                .rule(Rule::always().reply(Reply::text("any")))
                .rule(Rule::when_path("/v1/models").reply(Reply::failing(Fault::Hang))),
        );
        let reply = shared.select(&request("/v1/models"), false).unwrap();
        assert_eq!(reply.fault, Some(Fault::Hang));
        assert!(shared.select(&request("/v1/other"), false).is_none());
        assert_eq!(
            shared
                .select(&request("/v1/chat/completions"), true)
                .unwrap()
                .text,
            ["any"]
        );
    }

    #[test]
    fn floor_char_boundary_stays_on_chars() {
        let text = "aü";
        assert_eq!(floor_char_boundary(text, 2), 1);
        assert_eq!(floor_char_boundary(text, 1), 1);
        assert_eq!(floor_char_boundary(text, 0), 0);
    }
}
