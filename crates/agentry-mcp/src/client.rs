//! Connections to MCP servers: [`McpServer`] owns one server (a child process over
//! stdio, a Streamable HTTP endpoint or a legacy HTTP+SSE endpoint), connects lazily,
//! restarts it after a failure when its [`RestartPolicy`] allows, and shuts it down
//! cleanly.
//!
//! The handle is shaped like an execution resource (`ensure` → `health` → `release`)
//! so the resource manager in `agentry-exec` can own it later without changes here.
//!
//! # Stdio
//!
//! The child is started from an argv array (never a shell string) with
//! `kill_on_drop`, in the configured `cwd`, with only the configured `env` plus a few
//! harmless inherited variables (`INHERITED_ENV_VARS`): this process's API keys do not
//! leak into third-party servers unless `inherit_env` asks for it. Its stdout is read here, not by `rmcp`, so that anything that is
//! not a JSON-RPC message (a log line, a banner, garbage) or a line above the size
//! limit ends the connection with a typed error (`mcp.protocol`,
//! `mcp.message_too_large`) instead of being skipped while the caller waits for a
//! timeout. Stderr is drained into a bounded tail that error messages quote.
//! Shutdown follows the spec: close stdin, wait a grace period, then kill.
//!
//! # Legacy HTTP+SSE
//!
//! `rmcp` has no client for the 2024-11-05 transport, so `crate::sse` implements
//! one as an `rmcp` transport. Like the stdio reader it leaves the reason it stopped
//! in the connection's `fatal` slot, so the same code turns a lost connection into
//! a typed error and the same restart policy and call timeouts apply.
//!
//! # Timeouts
//!
//! Every call has an inactivity timeout that each progress notification for that call
//! resets, and a maximum total that nothing extends (rmcp#834). When either fires the
//! request is cancelled on the server (`notifications/cancelled`) and the call ends
//! with `mcp.call_timeout`. The connection stays up if the server still answers a
//! `ping` (one slow tool is not a dead server); a server that does not answer within
//! a second is treated as hung: its connection is dropped (the child killed) and the
//! next call restarts it as the restart policy allows.
use std::collections::VecDeque;
use std::fmt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientJsonRpcMessage,
    ClientRequest, Implementation, JsonObject, PingRequest, Request, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, Peer, RoleClient, ServiceError, ServiceExt};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::config::{
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_SHUTDOWN_GRACE, INHERITED_ENV_VARS, McpServerConfig,
    RestartPolicy, Transport,
};
use crate::error::McpError;

const STDERR_TAIL_BYTES: usize = 4096;
const PREVIEW_CHARS: usize = 160;
/// Longest wait for the ping that decides whether a timed-out server is hung.
const HUNG_PROBE: Duration = Duration::from_secs(1);

/// A tool as a server lists it; what `agentry mcp list` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolInfo {
    /// The tool's name on the server.
    pub name: String,
    /// Display title, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    pub description: String,
    /// JSON Schema of the arguments.
    pub input_schema: Value,
    /// JSON Schema of the structured result, when declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// The server's hints (`readOnlyHint`, `destructiveHint` …), as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
}

impl ToolInfo {
    pub(crate) fn from_tool(t: &rmcp::model::Tool) -> Self {
        Self {
            name: t.name.to_string(),
            title: t.title.clone(),
            description: t.description.as_deref().unwrap_or_default().to_owned(),
            input_schema: Value::Object((*t.input_schema).clone()),
            output_schema: t
                .output_schema
                .as_ref()
                .map(|s| Value::Object((**s).clone())),
            annotations: t
                .annotations
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok()),
        }
    }

    /// Whether the server declares the tool read-only (`readOnlyHint: true`).
    pub fn read_only(&self) -> bool {
        self.annotations
            .as_ref()
            .and_then(|a| a.get("readOnlyHint"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// Per-call limits; `None` fields fall back to the server config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallLimits {
    /// Inactivity timeout (reset by progress).
    pub timeout: Option<Duration>,
    /// Maximum total.
    pub max_total: Option<Duration>,
}

/// The client side of one connection: counts list changes and progress.
#[derive(Debug, Clone)]
struct Handler {
    tools_changed: watch::Sender<u64>,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("agentry", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// Why a connection ended from our side: set by the stdio stdout reader and by the
/// legacy SSE transport, read by [`Connection::loss_reason`], because `rmcp` only
/// reports "transport closed".
pub(crate) type Fatal = Arc<StdMutex<Option<McpError>>>;

struct Connection {
    generation: u64,
    peer: Peer<RoleClient>,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, Handler>>>,
    child: Option<tokio::sync::Mutex<Child>>,
    fatal: Fatal,
    stderr_tail: Arc<StdMutex<VecDeque<u8>>>,
    stderr_task: StdMutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Lets the stderr reader catch up with an exited child (bounded: a grandchild may
/// keep the pipe open).
async fn settle_stderr(task: Option<tokio::task::JoinHandle<()>>) {
    if let Some(t) = task {
        let _ = tokio::time::timeout(Duration::from_millis(300), t).await;
    }
}

impl Connection {
    fn is_alive(&self) -> bool {
        if self.peer.is_transport_closed() {
            return false;
        }
        self.fatal.lock().map(|f| f.is_none()).unwrap_or(false)
    }

    fn stderr_tail(&self) -> String {
        tail_text(&self.stderr_tail)
    }

    /// Closes the session, then (stdio) waits `grace` for the child and kills it.
    async fn shutdown(&self, grace: Duration) {
        if let Some(mut svc) = self.service.lock().await.take() {
            let _ = svc.close_with_timeout(grace).await;
            drop(svc);
        }
        if let Some(child) = &self.child {
            let mut child = child.lock().await;
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill().await;
                }
            }
        }
    }

    /// The error that explains a closed transport.
    async fn loss_reason(&self, server: &str) -> McpError {
        if let Some(e) = self.fatal.lock().ok().and_then(|f| f.clone()) {
            // The slot keeps it for later callers on this connection.
            return e;
        }
        let mut status = None;
        if let Some(child) = &self.child {
            let mut child = child.lock().await;
            // The child usually exits right after closing stdout; give it a moment.
            let waited = tokio::time::timeout(Duration::from_millis(200), child.wait()).await;
            status = match waited {
                Ok(Ok(s)) => Some(s.to_string()),
                _ => None,
            };
        }
        let task = self.stderr_task.lock().ok().and_then(|mut t| t.take());
        settle_stderr(task).await;
        McpError::ServerExited {
            server: server.to_owned(),
            status,
            stderr_tail: self.stderr_tail(),
        }
    }
}

fn tail_text(buf: &StdMutex<VecDeque<u8>>) -> String {
    match buf.lock() {
        Ok(b) => {
            let (a, c) = b.as_slices();
            let mut v = Vec::with_capacity(a.len() + c.len());
            v.extend_from_slice(a);
            v.extend_from_slice(c);
            String::from_utf8_lossy(&v).into_owned()
        }
        Err(_) => String::new(),
    }
}

pub(crate) fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(PREVIEW_CHARS).collect();
    if s.chars().count() > PREVIEW_CHARS {
        p.push('…');
    }
    p
}

#[derive(Default)]
struct State {
    conn: Option<Arc<Connection>>,
    attempts: u32,
    closed: bool,
}

struct Inner {
    name: String,
    config: McpServerConfig,
    transport: Transport,
    state: tokio::sync::Mutex<State>,
    tools_changed: watch::Sender<u64>,
    generation: AtomicU64,
    restarts: AtomicU32,
    grace: Duration,
    max_message_bytes: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Children are `kill_on_drop`; dropping the connection cancels the rmcp
        // service task and kills the process. `release()` is the graceful path.
        if let Ok(state) = self.state.try_lock()
            && state.conn.is_some()
        {
            tracing::debug!(server = %self.name, "MCP server handle dropped without release()");
        }
    }
}

/// One MCP server: its config, its (lazily opened) connection and its restart budget.
///
/// Cheap to clone: clones share the connection. The connection opens on the first
/// [`ensure`](Self::ensure) (or any call), is probed with [`health`](Self::health)
/// (MCP `ping`), is re-opened after a failure as the [`RestartPolicy`] allows, and is
/// closed by [`release`](Self::release) (graceful) or when the last clone is dropped
/// (the child is killed).
///
/// ```no_run
/// use agentry_mcp::{McpServer, McpServerConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentry_mcp::McpError> {
/// let server = McpServer::new("files", McpServerConfig::stdio("npx", ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]))?;
/// for tool in server.list_tools().await? {
///     println!("{}: {}", tool.name, tool.description);
/// }
/// server.release().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for McpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.inner.name)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

impl McpServer {
    /// A handle for a server; checks the config, connects nothing yet.
    pub fn new(name: impl Into<String>, config: McpServerConfig) -> Result<Self, McpError> {
        let name = name.into();
        let transport = config.transport(&name)?;
        let (tools_changed, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                config,
                transport,
                state: tokio::sync::Mutex::new(State::default()),
                tools_changed,
                generation: AtomicU64::new(0),
                restarts: AtomicU32::new(0),
                grace: DEFAULT_SHUTDOWN_GRACE,
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            }),
        })
    }

    /// Overrides the stdio shutdown grace period and the largest accepted message.
    /// Only before the handle is shared.
    pub fn with_limits(mut self, grace: Duration, max_message_bytes: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.grace = grace;
            inner.max_message_bytes = max_message_bytes.max(1);
        }
        self
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its configuration.
    pub fn config(&self) -> &McpServerConfig {
        &self.inner.config
    }

    /// Its transport.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// How many times the connection was re-opened after the first one.
    pub fn restarts(&self) -> u32 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// A receiver that changes whenever the server sends
    /// `notifications/tools/list_changed` (on any of its connections).
    pub fn tools_changed(&self) -> watch::Receiver<u64> {
        self.inner.tools_changed.subscribe()
    }

    /// The process id of the current stdio child, if one is running.
    pub async fn pid(&self) -> Option<u32> {
        let conn = self.inner.state.lock().await.conn.clone()?;
        let child = conn.child.as_ref()?;
        child.lock().await.id()
    }

    /// Opens the connection if none is alive (resource `ensure`). A lost connection
    /// is re-opened only as the restart policy allows.
    pub async fn ensure(&self) -> Result<(), McpError> {
        self.connection().await.map(|_| ())
    }

    /// Sends an MCP `ping` and waits for the answer within the call timeout
    /// (resource `health`). Does not open a connection.
    pub async fn health(&self) -> Result<Duration, McpError> {
        let conn = {
            let state = self.inner.state.lock().await;
            state.conn.clone()
        };
        let Some(conn) = conn else {
            return Err(McpError::ServerExited {
                server: self.inner.name.clone(),
                status: Some("not connected".into()),
                stderr_tail: String::new(),
            });
        };
        let started = std::time::Instant::now();
        let limit = self.inner.config.call_timeout_value();
        let sent = conn
            .peer
            .send_request_with_option(
                ClientRequest::PingRequest(PingRequest::default()),
                PeerRequestOptions::with_timeout(limit),
            )
            .await;
        let res = match sent {
            Ok(h) => h.await_response().await,
            Err(e) => Err(e),
        };
        match res {
            Ok(_) => Ok(started.elapsed()),
            Err(e) => Err(self.map_service_error(&conn, e, "ping", limit, limit).await),
        }
    }

    /// Closes the connection gracefully (resource `release`): the session ends, a
    /// child's stdin is closed, it gets the grace period to exit, then it is killed.
    /// The handle stays usable: the next call connects again (not counted as a restart).
    pub async fn release(&self) {
        let conn = {
            let mut state = self.inner.state.lock().await;
            state.attempts = 0;
            state.conn.take()
        };
        if let Some(conn) = conn {
            conn.shutdown(self.inner.grace).await;
        }
    }

    /// Releases the connection and refuses every later call.
    pub async fn close(&self) {
        self.inner.state.lock().await.closed = true;
        self.release().await;
    }

    /// Lists every tool (all pages).
    pub async fn list_tools(&self) -> Result<Vec<ToolInfo>, McpError> {
        Ok(self
            .list_raw_tools()
            .await?
            .iter()
            .map(ToolInfo::from_tool)
            .collect())
    }

    pub(crate) async fn list_raw_tools(&self) -> Result<Vec<rmcp::model::Tool>, McpError> {
        let conn = self.connection().await?;
        let limit = self.inner.config.call_timeout_value();
        let listed = tokio::time::timeout(limit, conn.peer.list_all_tools()).await;
        match listed {
            Ok(Ok(tools)) => Ok(tools),
            Ok(Err(e)) => Err(self
                .map_service_error(&conn, e, "tools/list", limit, limit)
                .await),
            Err(_) => Err(McpError::CallTimeout {
                server: self.inner.name.clone(),
                tool: "tools/list".into(),
                what: "saw no response",
                limit,
            }),
        }
    }

    /// Calls a tool and returns the server's result as sent (`isError` included).
    pub async fn call_tool_raw(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
        limits: CallLimits,
    ) -> Result<CallToolResult, McpError> {
        let conn = self.connection().await?;
        let idle = limits
            .timeout
            .unwrap_or_else(|| self.inner.config.call_timeout_value());
        let total = limits
            .max_total
            .unwrap_or_else(|| self.inner.config.max_total_value())
            .max(idle);
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
        let options = PeerRequestOptions::with_timeout(idle)
            .reset_timeout_on_progress()
            .with_max_total_timeout(total);
        let sent = conn
            .peer
            .send_request_with_option(
                ClientRequest::CallToolRequest(Request::new(params)),
                options,
            )
            .await;
        let res = match sent {
            Ok(h) => h.await_response().await,
            Err(e) => Err(e),
        };
        match res {
            Ok(ServerResult::CallToolResult(r)) => Ok(r),
            Ok(other) => Err(McpError::Protocol {
                server: self.inner.name.clone(),
                reason: format!(
                    "unexpected answer to tools/call: {}",
                    preview(&serde_json::to_string(&other).unwrap_or_default())
                ),
            }),
            Err(e) => Err(self.map_service_error(&conn, e, tool, idle, total).await),
        }
    }

    /// Calls a tool and converts the result: `isError` → [`McpError::ToolError`]
    /// with the server's text; otherwise the JSON value described in
    /// [`tool_result_value`](crate::tool_result_value).
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Value,
        limits: CallLimits,
    ) -> Result<Value, McpError> {
        let args = match arguments {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                return Err(McpError::Config {
                    server: Some(self.inner.name.clone()),
                    reason: format!("tool arguments must be a JSON object, got {other}"),
                });
            }
        };
        let result = self.call_tool_raw(tool, args, limits).await?;
        crate::tools::tool_result_value(tool, result)
    }

    async fn map_service_error(
        &self,
        conn: &Arc<Connection>,
        e: ServiceError,
        what: &str,
        idle: Duration,
        total: Duration,
    ) -> McpError {
        let server = self.inner.name.clone();
        let auth = e.is_authorization_required();
        let err = match e {
            _ if auth => McpError::Auth {
                server,
                reason: e.to_string(),
            },
            ServiceError::Timeout { timeout } => McpError::CallTimeout {
                server,
                tool: what.to_owned(),
                what: if timeout == total && total != idle {
                    "ran past its maximum total time"
                } else {
                    "saw no response or progress"
                },
                limit: timeout,
            },
            ServiceError::McpError(data) => McpError::Rpc {
                server,
                code: data.code.0,
                message: data.message.to_string(),
            },
            ServiceError::UnexpectedResponse => McpError::Protocol {
                server,
                reason: format!("unexpected response to `{what}`"),
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                let text = error_chain(&e);
                if self.inner.transport == Transport::Http
                    && (conn.peer.is_transport_closed()
                        || matches!(e, ServiceError::TransportClosed))
                {
                    // rmcp's HTTP worker only logs why it stopped (e.g. a response
                    // above `max_json_response_size`); the cause is not ours to see.
                    McpError::ServerExited {
                        server,
                        status: Some(
                            "the HTTP transport closed; the rmcp log has the cause".into(),
                        ),
                        stderr_tail: String::new(),
                    }
                } else if self.inner.transport == Transport::Http {
                    classify_http(&server, &text, self.inner.max_message_bytes)
                } else {
                    conn.loss_reason(&server).await
                }
            }
            other => McpError::Protocol {
                server,
                reason: other.to_string(),
            },
        };
        let hung = match &err {
            // A failed health check means the server is not answering at all.
            McpError::CallTimeout { .. } if what == "ping" => true,
            // One slow tool is not a dead server: probe with a ping before giving up
            // on the connection.
            McpError::CallTimeout { .. } => !self.answers_ping(conn, idle).await,
            _ => false,
        };
        if hung || err.is_connection_lost() || !conn.is_alive() {
            self.drop_connection(conn.generation).await;
        }
        err
    }

    /// Whether the server answers a `ping` within `min(limit, 1 s)`.
    async fn answers_ping(&self, conn: &Connection, limit: Duration) -> bool {
        let limit = limit.min(HUNG_PROBE);
        let sent = conn
            .peer
            .send_request_with_option(
                ClientRequest::PingRequest(PingRequest::default()),
                PeerRequestOptions::with_timeout(limit),
            )
            .await;
        match sent {
            Ok(h) => h.await_response().await.is_ok(),
            Err(_) => false,
        }
    }

    async fn drop_connection(&self, generation: u64) {
        let conn = {
            let mut state = self.inner.state.lock().await;
            match &state.conn {
                Some(c) if c.generation == generation => state.conn.take(),
                _ => None,
            }
        };
        if let Some(conn) = conn {
            let grace = self.inner.grace;
            tokio::spawn(async move { conn.shutdown(grace).await });
        }
    }

    /// The live connection, opening one if needed.
    async fn connection(&self) -> Result<Arc<Connection>, McpError> {
        let mut state = self.inner.state.lock().await;
        if state.closed {
            return Err(McpError::RestartRefused {
                server: self.inner.name.clone(),
                reason: "the handle was closed".into(),
            });
        }
        if let Some(c) = &state.conn {
            if c.is_alive() {
                return Ok(c.clone());
            }
            if let Some(dead) = state.conn.take() {
                let grace = self.inner.grace;
                tokio::spawn(async move { dead.shutdown(grace).await });
            }
        }
        if state.attempts > 0 {
            match self.inner.config.restart_value() {
                RestartPolicy::Never => {
                    return Err(McpError::RestartRefused {
                        server: self.inner.name.clone(),
                        reason: "restart policy is `never`".into(),
                    });
                }
                RestartPolicy::OnFailure { max_restarts } => {
                    let used = self.inner.restarts.load(Ordering::Relaxed);
                    if used >= max_restarts {
                        return Err(McpError::RestartRefused {
                            server: self.inner.name.clone(),
                            reason: format!(
                                "restarted {used} times already (limit {max_restarts})"
                            ),
                        });
                    }
                    self.inner.restarts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        state.attempts = state.attempts.saturating_add(1);
        let conn = Arc::new(self.open().await?);
        state.conn = Some(conn.clone());
        Ok(conn)
    }

    async fn open(&self) -> Result<Connection, McpError> {
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let handler = Handler {
            tools_changed: self.inner.tools_changed.clone(),
        };
        match self.inner.transport {
            Transport::Stdio => self.open_stdio(generation, handler).await,
            Transport::Http => self.open_http(generation, handler).await,
            Transport::Sse => self.open_sse(generation, handler).await,
        }
    }

    async fn open_http(&self, generation: u64, handler: Handler) -> Result<Connection, McpError> {
        let name = &self.inner.name;
        let cfg = &self.inner.config;
        let url = cfg.url.clone().unwrap_or_default();
        let headers: std::collections::HashMap<_, _> = header_map(name, cfg)?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(url)
                .custom_headers(headers)
                .max_json_response_size(self.inner.max_message_bytes)
                .max_sse_event_size(self.inner.max_message_bytes),
        );
        let limit = cfg.connect_timeout_value();
        let service = match tokio::time::timeout(limit, handler.serve(transport)).await {
            Err(_) => {
                return Err(McpError::ConnectTimeout {
                    server: name.clone(),
                    timeout: limit,
                });
            }
            Ok(Err(e)) => {
                if e.is_authorization_required() || e.auth_challenge().is_some() {
                    return Err(McpError::Auth {
                        server: name.clone(),
                        reason: e.to_string(),
                    });
                }
                return Err(classify_http(
                    name,
                    &error_chain(&e),
                    self.inner.max_message_bytes,
                ));
            }
            Ok(Ok(s)) => s,
        };
        Ok(Connection {
            generation,
            peer: service.peer().clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            child: None,
            fatal: Arc::new(StdMutex::new(None)),
            stderr_tail: Arc::new(StdMutex::new(VecDeque::new())),
            stderr_task: StdMutex::new(None),
        })
    }

    async fn open_sse(&self, generation: u64, handler: Handler) -> Result<Connection, McpError> {
        let name = self.inner.name.clone();
        let cfg = &self.inner.config;
        let raw_url = cfg.url.clone().unwrap_or_default();
        let url = reqwest::Url::parse(&raw_url).map_err(|e| McpError::Config {
            server: Some(name.clone()),
            reason: format!("bad `url` `{raw_url}`: {e}"),
        })?;
        let fatal: Fatal = Arc::new(StdMutex::new(None));
        let options = crate::sse::SseOptions {
            server: name.clone(),
            url,
            headers: header_map(&name, cfg)?,
            max_event_bytes: self.inner.max_message_bytes,
            post_timeout: cfg.call_timeout_value(),
            fatal: fatal.clone(),
        };
        let limit = cfg.connect_timeout_value();
        // One limit for the whole opening: the GET, the `endpoint` event and
        // `initialize`, so a server that keeps the stream open without ever naming an
        // endpoint ends in `mcp.connect_timeout` like any other silent server.
        let opened = tokio::time::timeout(limit, async {
            let transport = crate::sse::connect(options).await?;
            handler.serve(transport).await.map_err(|e| {
                // The transport's own reason (a failed POST, a closed or garbled
                // stream) explains more than rmcp's "connection closed".
                if let Some(f) = fatal.lock().ok().and_then(|f| f.clone()) {
                    return f;
                }
                match e {
                    rmcp::service::ClientInitializeError::ConnectionClosed(_)
                    | rmcp::service::ClientInitializeError::TransportError { .. } => {
                        McpError::ServerExited {
                            server: name.clone(),
                            status: Some(format!("the SSE session ended during initialize: {e}")),
                            stderr_tail: String::new(),
                        }
                    }
                    other => McpError::Protocol {
                        server: name.clone(),
                        reason: format!("initialize failed: {other}"),
                    },
                }
            })
        })
        .await;
        let service = match opened {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(McpError::ConnectTimeout {
                    server: name,
                    timeout: limit,
                });
            }
        };
        Ok(Connection {
            generation,
            peer: service.peer().clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            child: None,
            fatal,
            stderr_tail: Arc::new(StdMutex::new(VecDeque::new())),
            stderr_task: StdMutex::new(None),
        })
    }

    async fn open_stdio(&self, generation: u64, handler: Handler) -> Result<Connection, McpError> {
        let name = self.inner.name.clone();
        let cfg = &self.inner.config;
        let command = cfg.command.clone().unwrap_or_default();
        let mut cmd = tokio::process::Command::new(&command);
        if !cfg.inherit_env {
            cmd.env_clear();
            for key in INHERITED_ENV_VARS {
                if let Some(v) = std::env::var_os(key) {
                    cmd.env(key, v);
                }
            }
        }
        cmd.args(&cfg.args)
            .envs(&cfg.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &cfg.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|e| McpError::Spawn {
            server: name.clone(),
            command: command.clone(),
            reason: e.to_string(),
        })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(McpError::Spawn {
                server: name,
                command,
                reason: "stdio pipes were not created".into(),
            });
        };
        let stderr_tail = Arc::new(StdMutex::new(VecDeque::with_capacity(STDERR_TAIL_BYTES)));
        let mut stderr_task = None;
        if let Some(mut stderr) = child.stderr.take() {
            let tail = stderr_tail.clone();
            stderr_task = Some(tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stderr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.extend(buf.iter().take(n));
                        let excess = t.len().saturating_sub(STDERR_TAIL_BYTES);
                        t.drain(..excess);
                    }
                }
            }));
        }
        let fatal: Fatal = Arc::new(StdMutex::new(None));
        let stream = stdout_stream(
            stdout,
            name.clone(),
            self.inner.max_message_bytes,
            fatal.clone(),
        );
        let sink = stdin_sink(stdin);
        let limit = cfg.connect_timeout_value();
        let served = tokio::time::timeout(limit, handler.serve((sink, stream))).await;
        let service = match served {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let reason_fatal = fatal.lock().ok().and_then(|mut f| f.take());
                let _ = child.start_kill();
                if let Some(f) = reason_fatal {
                    return Err(f);
                }
                let status =
                    match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
                        Ok(Ok(s)) => Some(s.to_string()),
                        _ => None,
                    };
                settle_stderr(stderr_task).await;
                return Err(match e {
                    rmcp::service::ClientInitializeError::ConnectionClosed(_)
                    | rmcp::service::ClientInitializeError::TransportError { .. } => {
                        McpError::ServerExited {
                            server: name,
                            status,
                            stderr_tail: tail_text(&stderr_tail),
                        }
                    }
                    other => McpError::Protocol {
                        server: name,
                        reason: format!("initialize failed: {other}"),
                    },
                });
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(McpError::ConnectTimeout {
                    server: name,
                    timeout: limit,
                });
            }
        };
        Ok(Connection {
            generation,
            peer: service.peer().clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            child: Some(tokio::sync::Mutex::new(child)),
            fatal,
            stderr_tail,
            stderr_task: StdMutex::new(stderr_task),
        })
    }
}

/// The configured headers, checked (HTTP and SSE send them with every request).
fn header_map(name: &str, cfg: &McpServerConfig) -> Result<reqwest::header::HeaderMap, McpError> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let hn = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| {
            McpError::Config {
                server: Some(name.to_owned()),
                reason: format!("bad header name `{k}`: {e}"),
            }
        })?;
        let hv = reqwest::header::HeaderValue::from_str(v).map_err(|e| McpError::Config {
            server: Some(name.to_owned()),
            reason: format!("bad value for header `{k}`: {e}"),
        })?;
        headers.insert(hn, hv);
    }
    Ok(headers)
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// Sorts a Streamable HTTP failure into auth, protocol or connection trouble.
fn classify_http(server: &str, text: &str, limit: usize) -> McpError {
    let lower = text.to_ascii_lowercase();
    let server = server.to_owned();
    if lower.contains("exceeded the maximum size") || lower.contains("too large") {
        McpError::MessageTooLarge { server, limit }
    } else if lower.contains("401")
        || lower.contains("403")
        || lower.contains("unauthorized")
        || lower.contains("forbidden")
        || lower.contains("auth required")
    {
        McpError::Auth {
            server,
            reason: preview(text),
        }
    } else if lower.contains("content type")
        || lower.contains("content-type")
        || lower.contains("deserialize")
        || lower.contains("unexpected server response")
        || lower.contains("expect initialized")
        || lower.contains("json")
    {
        McpError::Protocol {
            server,
            reason: preview(text),
        }
    } else {
        McpError::Connect {
            server,
            reason: preview(text),
        }
    }
}

fn stdin_sink(
    stdin: ChildStdin,
) -> impl futures::Sink<ClientJsonRpcMessage, Error = std::io::Error> + Send + Unpin + 'static {
    Box::pin(futures::sink::unfold(
        (stdin, Vec::<u8>::with_capacity(1024)),
        |(mut stdin, mut buf), msg: ClientJsonRpcMessage| async move {
            buf.clear();
            serde_json::to_writer(&mut buf, &msg).map_err(std::io::Error::other)?;
            buf.push(b'\n');
            stdin.write_all(&buf).await?;
            stdin.flush().await?;
            Ok::<_, std::io::Error>((stdin, buf))
        },
    ))
}

fn stdout_stream(
    stdout: ChildStdout,
    server: String,
    max: usize,
    fatal: Fatal,
) -> impl futures::Stream<Item = ServerJsonRpcMessage> + Send + Unpin + 'static {
    let lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(max));
    let set = move |e: McpError| {
        if let Ok(mut f) = fatal.lock()
            && f.is_none()
        {
            *f = Some(e);
        }
    };
    Box::pin(futures::stream::unfold(
        (lines, server, set),
        |(mut lines, server, set)| async move {
            loop {
                let line = match lines.next().await {
                    None => return None,
                    Some(Ok(l)) => l,
                    Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                        set(McpError::MessageTooLarge {
                            server: server.clone(),
                            limit: lines.decoder().max_length(),
                        });
                        return None;
                    }
                    Some(Err(LinesCodecError::Io(e))) => {
                        set(McpError::Protocol {
                            server: server.clone(),
                            reason: format!("stdout is not readable text: {e}"),
                        });
                        return None;
                    }
                };
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_str::<ServerJsonRpcMessage>(text) {
                    Ok(m) => return Some((m, (lines, server, set))),
                    Err(e) => {
                        let what = if e.is_syntax() || e.is_eof() {
                            "a line on stdout is not JSON"
                        } else {
                            "a message on stdout is not valid JSON-RPC"
                        };
                        set(McpError::Protocol {
                            server: server.clone(),
                            reason: format!("{what}: `{}`", preview(text)),
                        });
                        return None;
                    }
                }
            }
        },
    ))
}
