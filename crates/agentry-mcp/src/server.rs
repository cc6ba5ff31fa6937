//! Exposing actions as an MCP server, over stdio ([`serve_stdio`], [`serve_io`]) or
//! Streamable HTTP ([`McpHttpServer`], [`serve_http`]).
//!
//! Every `tools/call` goes through the [`Dispatcher`] it was given, as a
//! model-planned call: an MCP client is as untrusted as a model, so host-only keys are
//! stripped, undeclared keys dropped, the schema enforced, and the dispatcher's policy
//! and approval handler decide. A call that is refused or fails is an MCP tool error
//! (`isError: true`) whose text is `<status>: <code>: <message>`; with the default
//! fail-closed handler an approval-required action answers
//! `approval_required: approval.pending: …`. Structured results are sent as
//! `structuredContent` (objects) or text. Unknown tools are a JSON-RPC
//! `invalid params` error, as the spec asks.
//!
//! `tools/list` offers the actions the dispatcher offers a model (exposed and allowed
//! by policy), in registration order, with the schema the model would see.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use agentry_actions::{ActionRecord, CallScope, Dispatcher, PlannedCall};
use agentry_core::{ActionCallId, Emitter, EventCenter, ExecutionId, RunContext, RunKind};
use agentry_model::{ToolArguments, ToolCall};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::McpError;

/// How an exposed registry presents itself.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Server name in `initialize` (default `agentry`).
    pub name: Option<String>,
    /// Instructions sent in `initialize`.
    pub instructions: Option<String>,
    /// Where call events go; default: a private event center (events dropped).
    pub emitter: Option<Emitter>,
    /// Extra `Host` values accepted over HTTP (loopback names are always accepted,
    /// and so is the bound address).
    pub allowed_hosts: Vec<String>,
}

/// The MCP server side of one session over a dispatcher.
#[derive(Clone)]
struct ActionServer {
    dispatcher: Dispatcher,
    scope: CallScope,
    counter: Arc<AtomicU32>,
    info: ServerConfig,
}

impl ActionServer {
    fn new(dispatcher: Dispatcher, options: &ServeOptions) -> Self {
        let emitter = options
            .emitter
            .clone()
            .unwrap_or_else(|| EventCenter::new().emitter("mcp-serve"));
        let execution = ExecutionId::new();
        let mut run = (*RunContext::root(RunKind::REQUEST)).clone();
        run.execution_id = Some(execution.clone());
        let run = Arc::new(run.with_meta("mcp_session", true));
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new(
            options.name.clone().unwrap_or_else(|| "agentry".into()),
            env!("CARGO_PKG_VERSION"),
        );
        info.instructions = options.instructions.clone();
        Self {
            dispatcher,
            scope: CallScope::new(emitter, run, execution),
            counter: Arc::new(AtomicU32::new(0)),
            info,
        }
    }

    fn tools(&self) -> Vec<Tool> {
        let registry = self.dispatcher.registry();
        self.dispatcher
            .offered_tools(false)
            .into_iter()
            .map(|t| {
                let schema = match t.parameters {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                let mut tool = Tool::new(t.name.clone(), t.description, schema);
                if let Some(entry) = registry.get(&t.name) {
                    let spec = entry.spec();
                    let mut hints = rmcp::model::ToolAnnotations::new();
                    hints.read_only_hint =
                        Some(spec.side_effect == agentry_actions::SideEffect::Read);
                    tool.annotations = Some(hints);
                }
                tool
            })
            .collect()
    }
}

fn record_to_result(record: &ActionRecord) -> CallToolResult {
    if record.is_ok() {
        return match &record.data {
            Some(v @ Value::Object(_)) => CallToolResult::structured(v.clone()),
            Some(Value::String(s)) => CallToolResult::success(vec![ContentBlock::text(s.clone())]),
            Some(Value::Null) | None => CallToolResult::success(Vec::new()),
            Some(other) => CallToolResult::success(vec![ContentBlock::text(other.to_string())]),
        };
    }
    let (code, message) = record
        .error
        .as_ref()
        .map(|e| (e.code.as_str(), e.message.as_str()))
        .unwrap_or(("action.failed", "the action failed"));
    let text = format!("{}: {code}: {message}", record.status.as_str());
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    let mut detail = json!({"status": record.status, "error": {"code": code, "message": message}});
    if let Some(a) = &record.approval {
        detail["approval"] = json!({"request_id": a.request_id, "outcome": a.outcome});
    }
    if let Some(d) = &record.data {
        detail["data"] = d.clone();
    }
    result.structured_content = Some(detail);
    result
}

impl ServerHandler for ActionServer {
    fn get_info(&self) -> ServerConfig {
        self.info.clone()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let offered = self
            .dispatcher
            .registry()
            .get(&name)
            .is_some_and(|e| e.spec().expose_to_model);
        if !offered {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{name}`"),
                None,
            ));
        }
        let index = self.counter.fetch_add(1, Ordering::Relaxed);
        let call = PlannedCall::from_tool_call(&ToolCall {
            id: format!("mcp_{index}"),
            name,
            arguments: ToolArguments::Json(Value::Object(request.arguments.unwrap_or_default())),
        });
        let call_id = ActionCallId::new(self.scope.execution_id.clone(), 0, index);
        let record = self
            .dispatcher
            .call_planned(&self.scope, call_id, call)
            .await;
        Ok(CallToolResponse::Complete(record_to_result(&record)))
    }
}

/// Serves the dispatcher's actions over any byte stream pair (a socket, a pipe,
/// `tokio::io::duplex` in tests) until the peer closes or `shutdown` resolves.
pub async fn serve_io<R, W>(
    dispatcher: Dispatcher,
    options: ServeOptions,
    reader: R,
    writer: W,
    shutdown: impl Future<Output = ()>,
) -> Result<(), McpError>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let ct = CancellationToken::new();
    let handler = ActionServer::new(dispatcher, &options);
    let serving = async {
        let running = handler
            .serve_with_ct((reader, writer), ct.clone())
            .await
            .map_err(|e| McpError::Serve(format!("initialize failed: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| McpError::Serve(e.to_string()))?;
        Ok(())
    };
    tokio::select! {
        r = serving => r,
        () = shutdown => {
            ct.cancel();
            Ok(())
        }
    }
}

/// Serves the dispatcher's actions on this process's stdin/stdout (what
/// `agentry mcp serve` runs) until the client closes stdin or `shutdown` resolves.
/// Nothing else may write to stdout meanwhile: log to stderr.
pub async fn serve_stdio(
    dispatcher: Dispatcher,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), McpError> {
    serve_io(
        dispatcher,
        options,
        tokio::io::stdin(),
        tokio::io::stdout(),
        shutdown,
    )
    .await
}

/// A bound Streamable HTTP MCP server; the endpoint is `/mcp`.
#[derive(Debug)]
pub struct McpHttpServer {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    dispatcher: Dispatcher,
    options: ServeOptions,
}

impl McpHttpServer {
    /// Binds the address (port 0 picks a free port).
    pub async fn bind(
        addr: SocketAddr,
        dispatcher: Dispatcher,
        options: ServeOptions,
    ) -> Result<Self, McpError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| McpError::Serve(format!("cannot bind {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| McpError::Serve(e.to_string()))?;
        Ok(Self {
            listener,
            addr,
            dispatcher,
            options,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL (`http://ADDR/mcp`).
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Serves until `shutdown` resolves; then ends every session and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), McpError> {
        let ct = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default();
        config.cancellation_token = ct.child_token();
        let mut hosts = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "[::1]".to_owned(),
            self.addr.ip().to_string(),
            self.addr.to_string(),
        ];
        hosts.extend(self.options.allowed_hosts.iter().cloned());
        config.allowed_hosts = hosts;
        let dispatcher = self.dispatcher.clone();
        let options = self.options.clone();
        let service = StreamableHttpService::new(
            move || Ok(ActionServer::new(dispatcher.clone(), &options)),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let router = axum::Router::new().nest_service("/mcp", service);
        let stop = ct.clone();
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                stop.cancel();
            })
            .await
            .map_err(|e| McpError::Serve(e.to_string()))
    }
}

/// Binds `addr` and serves the dispatcher's actions over Streamable HTTP at `/mcp`
/// until `shutdown` resolves (what `agentry mcp serve --http ADDR` runs).
pub async fn serve_http(
    dispatcher: Dispatcher,
    addr: SocketAddr,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), McpError> {
    McpHttpServer::bind(addr, dispatcher, options)
        .await?
        .run(shutdown)
        .await
}
