//! The MCP adapter of Agentry: MCP servers' tools become actions, and a registry of
//! actions becomes an MCP server. This is the only crate that imports `rmcp`; its
//! types never appear in this crate's API apart from the raw tool result
//! ([`McpServer::call_tool_raw`]).
//!
//! - **Configure** servers with [`McpServerConfig`] (stdio command, Streamable HTTP
//!   URL with headers, or legacy HTTP+SSE URL with headers, `type = "sse"`), several at
//!   once with [`McpServersConfig`] (`[mcp.servers.NAME]` in TOML or
//!   `{"mcpServers": {...}}` in JSON), or parse the CLI's `NAME=CMD|URL|sse+URL` with
//!   [`parse_mcp_arg`].
//! - **Connect** with an [`McpServer`] handle: lazy connect with a connect timeout,
//!   `ping` health check, restart after failure per [`RestartPolicy`], graceful release
//!   (close stdin, grace period, kill) and kill on drop.
//! - **Use tools as actions** with [`use_mcp`]: each tool is registered in an
//!   `ActionRegistry` so the dispatcher's validation, policy and approval apply;
//!   `notifications/tools/list_changed` refreshes the set ([`McpToolSet::refresh`],
//!   [`McpToolSet::auto_refresh`]).
//! - **Serve** a dispatcher's actions over stdio ([`serve_stdio`]) or Streamable HTTP
//!   ([`serve_http`], [`McpHttpServer`]).
//! - **Fail typed**: every failure is an [`McpError`] with a stable `mcp.*` code.
//!
//! Three client transports ([`Transport`]): stdio, Streamable HTTP (`rmcp`'s client),
//! and the legacy HTTP+SSE transport of MCP 2024-11-05, which `rmcp` does not ship and
//! this crate implements itself (same-origin endpoint only, size-capped events, typed
//! errors), for the many servers that still speak only that. All three share the
//! restart policy, the timeouts and the error codes.
//!
//! # For the CLI
//!
//! | command | function |
//! |---|---|
//! | `agentry mcp list --server NAME` | [`list_server_tools`] |
//! | `agentry mcp call NAME TOOL JSON` | [`call_server_tool`] |
//! | `agentry mcp serve` / `--http ADDR` | [`serve_stdio`] / [`serve_http`] |
//! | `agentry run --mcp NAME=CMD\|URL\|sse+URL` | [`parse_mcp_arg`] then [`McpServer::new`] + [`use_mcp`] |
//! | `[mcp.servers.*]` in `agentry.toml` | [`McpServersConfig::from_toml_str`] then [`use_mcp_servers`] |
//!
//! # Example
//!
//! ```no_run
//! use agentry_actions::{ActionPolicy, ActionRegistry, CallScope, Dispatcher, HostCall};
//! use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
//! use agentry_mcp::{McpServer, UseMcpOptions, parse_mcp_arg, use_mcp};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (name, config) = parse_mcp_arg("everything=npx -y @modelcontextprotocol/server-everything")?;
//! let server = McpServer::new(name, config)?;
//! let mut registry = ActionRegistry::new();
//! let tools = use_mcp(&mut registry, &server, UseMcpOptions::default()).await?;
//! println!("{:?}", tools.tools());
//!
//! let dispatcher = Dispatcher::new(registry, &ActionPolicy::new());
//! let scope = CallScope::new(EventCenter::new().emitter("demo"), RunContext::root(RunKind::REQUEST), ExecutionId::new());
//! let record = dispatcher.call(&scope, HostCall::new("echo", serde_json::json!({"message": "hi"}))).await;
//! assert!(record.is_ok());
//! server.release().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod server;
mod sse;
mod tools;

pub use client::{CallLimits, McpServer, ToolInfo};
pub use config::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_TOTAL,
    DEFAULT_SHUTDOWN_GRACE, INHERITED_ENV_VARS, McpServerConfig, McpServersConfig, RestartPolicy,
    Transport, parse_mcp_arg,
};
pub use error::McpError;
pub use server::{McpHttpServer, ServeOptions, serve_http, serve_io, serve_stdio};
pub use tools::{
    AutoRefresh, McpToolSet, RefreshReport, RegisteredTool, SharedRegistry, SkippedTool,
    ToolNaming, UseMcpOptions, tool_result_json, tool_result_value, use_mcp, use_mcp_servers,
};

/// Connects to one configured server, lists its tools and releases it
/// (`agentry mcp list --server NAME`).
pub async fn list_server_tools(
    name: &str,
    config: &McpServerConfig,
) -> Result<Vec<ToolInfo>, McpError> {
    let server = McpServer::new(name, config.clone())?;
    let listed = server.list_tools().await;
    server.release().await;
    listed
}

/// Connects to one configured server, calls one tool with a JSON object and releases
/// it (`agentry mcp call`). Returns the converted result ([`tool_result_value`]); a
/// tool error is [`McpError::ToolError`].
pub async fn call_server_tool(
    name: &str,
    config: &McpServerConfig,
    tool: &str,
    arguments: serde_json::Value,
) -> Result<serde_json::Value, McpError> {
    let server = McpServer::new(name, config.clone())?;
    let result = server
        .call_tool(tool, arguments, CallLimits::default())
        .await;
    server.release().await;
    result
}
