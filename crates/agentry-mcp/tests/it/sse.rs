//! The legacy HTTP+SSE client transport (MCP 2024-11-05).
//!
//! Well-behaved sessions run against a small stdio→SSE gateway written here (the way
//! deployed legacy servers are often built): each `GET /sse` starts our test server
//! binary, its stdout lines become `event: message` events (pretty-printed over several
//! `data:` lines with `\r\n` endings and cut into two chunks, to exercise the parser),
//! and each `POST /message?session=N` goes to its stdin. Misbehaviour comes from the
//! test server itself (crash, garbage, oversized output) or from a `Fault` of the
//! gateway; the servers that break the handshake are raw sockets writing canned bytes.
//! server-everything's own SSE mode is exercised in `third_party.rs`.
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_actions::{ActionPolicy, ActionStatus};
use agentry_core::ErrorCode;
use agentry_mcp::{
    CallLimits, McpError, McpServer, McpServerConfig, McpServersConfig, RestartPolicy, Transport,
    UseMcpOptions, parse_mcp_arg,
};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::ChildStdin;
use tokio::sync::mpsc;

use crate::common::*;

/// What the gateway does wrong in its first session (later sessions behave, so
/// reconnection can be observed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Ends the SSE stream when a `tools/call` is POSTed (the server process lives on).
    CloseOnCall,
    /// Answers the `tools/call` POST with 401.
    UnauthorizedOnCall,
    /// Acknowledges everything from the `tools/call` on but forwards nothing back.
    HangOnCall,
}

#[derive(Clone)]
struct Session {
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    /// `None` ends the stream.
    events: mpsc::UnboundedSender<Option<String>>,
    hung: Arc<AtomicBool>,
}

struct Gateway {
    origin: String,
    server_args: Vec<String>,
    fault: Fault,
    absolute_endpoint: bool,
    next: AtomicU64,
    sessions: Mutex<HashMap<u64, Session>>,
    /// Every request: method and its `Authorization` header.
    seen: Mutex<Vec<(&'static str, Option<String>)>>,
}

impl Gateway {
    fn record(&self, method: &'static str, headers: &HeaderMap) {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().unwrap().push((method, auth));
    }
}

/// One SSE `message` event for a line of server output: valid JSON is spread over
/// several `data:` lines (legal SSE, rejoined with `\n` by the client), anything else
/// is sent verbatim.
fn message_event(line: &str) -> String {
    let text = match serde_json::from_str::<Value>(line) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap(),
        Err(_) => line.to_owned(),
    };
    let mut ev = String::from("event: message\r\n");
    for l in text.lines() {
        ev.push_str("data: ");
        ev.push_str(l);
        ev.push_str("\r\n");
    }
    ev.push_str("\r\n");
    ev
}

async fn open_stream(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    gw.record("GET", &headers);
    let id = gw.next.fetch_add(1, Ordering::SeqCst) + 1;
    let mut child = tokio::process::Command::new(TEST_SERVER)
        .args(&gw.server_args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::unbounded_channel::<Option<String>>();
    let endpoint = if gw.absolute_endpoint {
        format!("{}/message?session={id}", gw.origin)
    } else {
        format!("/message?session={id}")
    };
    tx.send(Some(": stdio-to-sse gateway\n\n".into())).unwrap();
    tx.send(Some(format!("event: endpoint\ndata: {endpoint}\n\n")))
        .unwrap();
    let hung = Arc::new(AtomicBool::new(false));
    gw.sessions.lock().unwrap().insert(
        id,
        Session {
            stdin: Arc::new(tokio::sync::Mutex::new(stdin)),
            events: tx.clone(),
            hung: hung.clone(),
        },
    );
    let gw2 = gw.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if hung.load(Ordering::SeqCst) {
                continue;
            }
            let ev = message_event(&line);
            let (a, b) = ev.split_at(ev.len() / 2);
            let (a, b) = if ev.is_char_boundary(ev.len() / 2) {
                (a.to_owned(), b.to_owned())
            } else {
                (ev.clone(), String::new())
            };
            if tx.send(Some(a)).is_err() || tx.send(Some(b)).is_err() {
                break;
            }
        }
        // The server process ended (or the client left): so does the stream.
        let _ = tx.send(None);
        gw2.sessions.lock().unwrap().remove(&id);
        drop(child);
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Some(chunk)) => Some((Ok::<String, Infallible>(chunk), rx)),
            _ => None,
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap()
}

async fn post_message(
    State(gw): State<Arc<Gateway>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    gw.record("POST", &headers);
    let Some(id) = query.get("session").and_then(|s| s.parse::<u64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "no session").into_response();
    };
    let session = gw.sessions.lock().unwrap().get(&id).cloned();
    let Some(session) = session else {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    };
    if id == 1 && body.contains("\"tools/call\"") {
        match gw.fault {
            Fault::None => {}
            Fault::CloseOnCall => {
                let _ = session.events.send(None);
                return (StatusCode::ACCEPTED, "Accepted").into_response();
            }
            Fault::UnauthorizedOnCall => {
                return (StatusCode::UNAUTHORIZED, "token expired").into_response();
            }
            Fault::HangOnCall => session.hung.store(true, Ordering::SeqCst),
        }
    }
    let mut stdin = session.stdin.lock().await;
    if stdin
        .write_all(format!("{}\n", body.trim()).as_bytes())
        .await
        .is_err()
    {
        return (StatusCode::NOT_FOUND, "session ended").into_response();
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}

struct Running {
    url: String,
    gw: Arc<Gateway>,
}

impl Running {
    /// Starts the gateway in front of `agentry-mcp-test-server ARGS…`.
    async fn start(server_args: &[&str], fault: Fault, absolute_endpoint: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let gw = Arc::new(Gateway {
            origin: origin.clone(),
            server_args: server_args.iter().map(|s| s.to_string()).collect(),
            fault,
            absolute_endpoint,
            next: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/sse", get(open_stream))
            .route(
                "/old-sse",
                get(|| async { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/sse")]) }),
            )
            .route("/message", post(post_message))
            .with_state(gw.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("{origin}/sse"),
            gw,
        }
    }

    fn sessions_opened(&self) -> u64 {
        self.gw.next.load(Ordering::SeqCst)
    }
}

fn sse(url: &str) -> McpServerConfig {
    McpServerConfig::sse(url).connect_timeout(Duration::from_secs(20))
}

fn add(a: i64, b: i64) -> Value {
    json!({"a": a, "b": b})
}

#[tokio::test]
async fn sse_round_trip_sends_the_headers_with_every_request() {
    let running = Running::start(&[], Fault::None, false).await;
    let config = sse(&running.url).header("Authorization", "Bearer sse-token");
    let s = Setup::new(
        "legacy",
        config,
        UseMcpOptions::default(),
        &ActionPolicy::new(),
    )
    .await;
    assert_eq!(s.server.transport(), &Transport::Sse);
    let ids: Vec<String> = s.set.tools().into_iter().map(|t| t.action_id).collect();
    assert!(
        ["echo", "add", "sleep", "crash", "big"]
            .iter()
            .all(|t| ids.iter().any(|i| i == t)),
        "{ids:?}"
    );

    let r = s.call("add", add(20, 22)).await;
    assert_eq!(r.status, ActionStatus::Success, "{r:?}");
    assert_eq!(r.data, Some(json!({"sum": 42})));
    // Text that needs escaping survives the multi-line `data:` framing.
    let text = "line one\nline two\r\n\"quoted\" ünïcödé data: x";
    let r = s.call("echo", json!({"text": text})).await;
    assert_eq!(r.data, Some(json!({"text": text})), "{r:?}");

    // Calls may overlap: each is its own POST, answers come back on the one stream.
    let (a, b, c) = tokio::join!(
        s.server
            .call_tool("sleep", json!({"ms": 200}), CallLimits::default()),
        s.server.call_tool("add", add(1, 1), CallLimits::default()),
        s.server.call_tool("add", add(2, 2), CallLimits::default()),
    );
    assert_eq!(a.unwrap()["slept_ms"], 200);
    assert_eq!(b.unwrap()["sum"], 2);
    assert_eq!(c.unwrap()["sum"], 4);

    let err = s
        .server
        .call_tool("nope", json!({}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.rpc_error", "{err}");
    assert!(s.server.health().await.is_ok());
    s.server.release().await;

    let seen = running.gw.seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|(m, _)| *m == "GET").count(), 1);
    assert!(seen.iter().filter(|(m, _)| *m == "POST").count() >= 6);
    assert!(
        seen.iter()
            .all(|(_, auth)| auth.as_deref() == Some("Bearer sse-token")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn an_absolute_endpoint_on_the_same_origin_and_the_cli_syntax_work() {
    let running = Running::start(&[], Fault::None, true).await;
    let (name, config) = parse_mcp_arg(&format!("legacy=sse+{}", running.url)).unwrap();
    assert_eq!(config.transport(&name).unwrap(), Transport::Sse);
    let tools = agentry_mcp::list_server_tools(&name, &config)
        .await
        .unwrap();
    assert!(tools.iter().any(|t| t.name == "add"));
    let v = agentry_mcp::call_server_tool(&name, &config, "add", add(3, 4))
        .await
        .unwrap();
    assert_eq!(v, json!({"sum": 7}));

    // The config file shapes select it too.
    let file = McpServersConfig::from_toml_str(&format!(
        "[mcp.servers.legacy]\ntransport = \"sse\"\nurl = \"{}\"\n",
        running.url
    ))
    .unwrap();
    let v = agentry_mcp::call_server_tool("legacy", &file.servers["legacy"], "add", add(5, 5))
        .await
        .unwrap();
    assert_eq!(v["sum"], 10);
}

#[tokio::test]
async fn progress_resets_the_call_timeout_and_timeouts_keep_a_live_session() {
    let running = Running::start(&["raw"], Fault::None, false).await;
    let server = McpServer::new("legacy", sse(&running.url)).unwrap();
    // 6 × 100 ms of work with a 250 ms inactivity timeout: progress keeps it alive.
    let limits = CallLimits {
        timeout: Some(Duration::from_millis(250)),
        max_total: Some(Duration::from_secs(5)),
    };
    server
        .call_tool("progress", json!({"steps": 6, "interval_ms": 100}), limits)
        .await
        .unwrap();
    let limits = CallLimits {
        timeout: Some(Duration::from_millis(250)),
        max_total: Some(Duration::from_millis(400)),
    };
    let err = server
        .call_tool("progress", json!({"steps": 20, "interval_ms": 100}), limits)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            McpError::CallTimeout {
                what: "ran past its maximum total time",
                ..
            }
        ),
        "{err}"
    );
    // The session still answers pings: kept, no restart.
    assert!(server.health().await.is_ok());
    assert_eq!(server.restarts(), 0);
    assert_eq!(running.sessions_opened(), 1);
    server.release().await;
}

#[tokio::test]
async fn a_hung_session_times_out_and_the_next_call_reconnects() {
    let running = Running::start(&[], Fault::HangOnCall, false).await;
    let server = McpServer::new("legacy", sse(&running.url)).unwrap();
    let limits = CallLimits {
        timeout: Some(Duration::from_millis(300)),
        max_total: None,
    };
    let started = Instant::now();
    let err = server
        .call_tool("add", add(1, 2), limits)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.call_timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Pings go unanswered too, so the session was dropped: a new one serves the call.
    let v = server
        .call_tool("add", add(1, 2), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v["sum"], 3);
    assert_eq!(server.restarts(), 1);
    assert_eq!(running.sessions_opened(), 2);
    server.release().await;
}

#[tokio::test]
async fn a_stream_closed_mid_call_is_a_lost_connection_and_restarts_as_allowed() {
    let running = Running::start(&[], Fault::CloseOnCall, false).await;
    let server = McpServer::new("legacy", sse(&running.url)).unwrap();
    let err = server
        .call_tool("add", add(1, 2), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.server_exited", "{err}");
    assert!(err.to_string().contains("closed the SSE stream"), "{err}");
    let v = server
        .call_tool("add", add(1, 2), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(v["sum"], 3);
    assert_eq!(server.restarts(), 1);
    server.release().await;

    // The server process dies mid-call (its stream ends with it); policy `never`.
    let running = Running::start(&[], Fault::None, false).await;
    let never = McpServer::new(
        "legacy",
        sse(&running.url).restart_policy(RestartPolicy::Never),
    )
    .unwrap();
    let err = never
        .call_tool("crash", json!({}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.server_exited", "{err}");
    let err = never
        .call_tool("add", add(1, 2), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.restart_refused", "{err}");
}

#[tokio::test]
async fn garbage_in_a_message_event_is_a_protocol_error_and_the_next_call_restarts() {
    let running = Running::start(&["raw"], Fault::None, false).await;
    let server = McpServer::new("legacy", sse(&running.url)).unwrap();
    let err = server
        .call_tool("garbage", json!({}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    assert!(err.to_string().contains("message` event"), "{err}");
    server
        .call_tool("structured", json!({}), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(server.restarts(), 1);
    server.release().await;
}

#[tokio::test]
async fn oversized_events_end_the_session_with_a_typed_error() {
    let running = Running::start(&[], Fault::None, false).await;
    let server = McpServer::new("legacy", sse(&running.url))
        .unwrap()
        .with_limits(Duration::from_secs(1), 8192);
    let v = server
        .call_tool("big", json!({"bytes": 100}), CallLimits::default())
        .await
        .unwrap();
    assert!(v.to_string().contains(&"x".repeat(100)), "{v}");
    let err = server
        .call_tool("big", json!({"bytes": 100_000}), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.message_too_large", "{err}");
    assert!(matches!(err, McpError::MessageTooLarge { limit: 8192, .. }));
    server
        .call_tool("add", add(1, 1), CallLimits::default())
        .await
        .unwrap();
    assert_eq!(server.restarts(), 1);
    server.release().await;
}

#[tokio::test]
async fn a_post_refused_with_401_is_an_auth_error() {
    let running = Running::start(&[], Fault::UnauthorizedOnCall, false).await;
    let server = McpServer::new(
        "legacy",
        sse(&running.url).header("Authorization", "Bearer old"),
    )
    .unwrap();
    let err = server
        .call_tool("add", add(1, 2), CallLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "mcp.auth", "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    server.release().await;
}

// ---------------------------------------------------------------------------
// Servers that break the handshake: raw sockets writing canned bytes.

/// A loopback server that answers every connection with `head` and then `parts`,
/// then either keeps the socket open (`hold`) or closes it. Counts connections.
async fn canned(head: &str, parts: Vec<String>, hold: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let head = head.to_owned();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let head = head.clone();
            let parts = parts.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(head.as_bytes()).await;
                for p in parts {
                    let _ = sock.write_all(p.as_bytes()).await;
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if hold {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/sse"), count)
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

async fn connect_err(config: McpServerConfig) -> McpError {
    let server = McpServer::new("bad", config).unwrap();
    let started = Instant::now();
    let err = server.ensure().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    err
}

fn quick(url: &str) -> McpServerConfig {
    McpServerConfig::sse(url).connect_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn an_html_page_is_a_protocol_error() {
    let (url, _) = canned(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 36\r\nConnection: close\r\n\r\n",
        vec!["<html><body>Log in</body></html>\n\n\n\n".into()],
        false,
    )
    .await;
    let err = connect_err(quick(&url)).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("text/html") && text.contains("Log in"),
        "{text}"
    );

    // A 404 (not an SSE endpoint at all) is a protocol error too.
    let (url, _) = canned(
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        vec![],
        false,
    )
    .await;
    let err = connect_err(quick(&url)).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error() {
    let (url, _) = canned(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"mcp\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        vec![],
        false,
    )
    .await;
    let err = connect_err(quick(&url).header("Authorization", "Bearer wrong")).await;
    assert_eq!(err.code(), "mcp.auth", "{err}");
    assert!(err.to_string().contains("realm"), "{err}");
    let (url, _) = canned(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        vec![],
        false,
    )
    .await;
    assert_eq!(connect_err(quick(&url)).await.code(), "mcp.auth");
}

#[tokio::test]
async fn no_endpoint_event_hits_the_connect_timeout() {
    // Keep-alive comments and an unknown event, but never an endpoint.
    let (url, _) = canned(
        SSE_HEAD,
        vec![
            ": ping\n\n".into(),
            "event: hello\ndata: hi\n\n".into(),
            ": ping\n\n".into(),
        ],
        true,
    )
    .await;
    let started = Instant::now();
    let err =
        connect_err(McpServerConfig::sse(&url).connect_timeout(Duration::from_millis(400))).await;
    assert_eq!(err.code(), "mcp.connect_timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_stream_that_ends_or_talks_before_the_endpoint_is_a_protocol_error() {
    let (url, _) = canned(SSE_HEAD, vec![": bye\n\n".into()], false).await;
    let err = connect_err(quick(&url)).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    assert!(err.to_string().contains("before the `endpoint`"), "{err}");

    let (url, _) = canned(
        SSE_HEAD,
        vec!["event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n".into()],
        true,
    )
    .await;
    let err = connect_err(quick(&url)).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
}

#[tokio::test]
async fn an_endpoint_on_another_origin_is_refused_and_never_contacted() {
    let (elsewhere, contacted) = canned(
        "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        vec![],
        false,
    )
    .await;
    let elsewhere = elsewhere.trim_end_matches("/sse").to_owned();
    for endpoint in [
        format!("{elsewhere}/message?session=1"),
        "//attacker.invalid/message".to_owned(),
        "https://attacker.invalid/message".to_owned(),
    ] {
        let (url, _) = canned(
            SSE_HEAD,
            vec![format!("event: endpoint\ndata: {endpoint}\n\n")],
            true,
        )
        .await;
        let err = connect_err(quick(&url).header("Authorization", "Bearer secret")).await;
        assert_eq!(err.code(), "mcp.protocol", "{endpoint}: {err}");
        assert!(err.to_string().contains("origin"), "{err}");
    }
    // Nor is a redirect of the GET to another origin followed.
    let (url, _) = canned(
        &format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}/sse\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        vec![],
        false,
    )
    .await;
    let err = connect_err(quick(&url).header("Authorization", "Bearer secret")).await;
    assert_eq!(err.code(), "mcp.protocol", "{err}");
    assert!(err.to_string().contains("307"), "{err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(contacted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed() {
    // The gateway answers `/old-sse` with `307 → /sse`.
    let running = Running::start(&[], Fault::None, false).await;
    let moved = running.url.replace("/sse", "/old-sse");
    let v = agentry_mcp::call_server_tool("legacy", &sse(&moved), "add", add(2, 3))
        .await
        .unwrap();
    assert_eq!(v["sum"], 5);
    assert_eq!(running.sessions_opened(), 1);
}

#[tokio::test]
async fn an_oversized_event_before_the_endpoint_is_refused() {
    // One data line that never ends, in many chunks.
    let mut parts = vec!["event: endpoint\ndata: /".to_owned()];
    parts.extend(std::iter::repeat_n("a".repeat(4096), 8));
    let (url, _) = canned(SSE_HEAD, parts, true).await;
    let server = McpServer::new("bad", quick(&url))
        .unwrap()
        .with_limits(Duration::from_secs(1), 8192);
    let err = server.ensure().await.unwrap_err();
    assert_eq!(err.code(), "mcp.message_too_large", "{err}");
}

#[tokio::test]
async fn a_refused_connection_and_a_failing_server_are_connect_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = connect_err(quick(&format!("http://{addr}/sse"))).await;
    assert_eq!(err.code(), "mcp.connect_failed", "{err}");

    let (url, _) = canned(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
        vec![],
        false,
    )
    .await;
    let err = connect_err(quick(&url)).await;
    assert_eq!(err.code(), "mcp.connect_failed", "{err}");
    assert!(err.retryable());
}
