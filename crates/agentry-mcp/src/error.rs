//! The crate's one error enum. Every failure of a connection, a listing or a call
//! ends in one of these variants, each with a stable dotted code that hosts and tests
//! match on; a code, once shipped, is never renamed.
//!
//! Inside an action call the error becomes an `error` record whose code is
//! [`ErrorCode::code`] of the variant, so a model reads the same codes.
use std::time::Duration;

use agentry_core::ErrorCode;

/// What went wrong with an MCP server, a connection or a call.
///
/// `Clone`, because the failure that ended a connection is handed to every call that
/// was waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The server configuration is unusable (neither or both of `command` and `url`,
    /// a bad header, an unparsable `--mcp` argument …).
    #[error("invalid MCP configuration{}: {reason}", server_suffix(server))]
    Config {
        /// The server name, when known.
        server: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// The configured transport exists but has no client here (`"type": "websocket"`).
    #[error("MCP server `{server}`: unsupported transport: {reason}")]
    UnsupportedTransport {
        /// The server name.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server process could not be started.
    #[error("MCP server `{server}`: cannot start `{command}`: {reason}")]
    Spawn {
        /// The server name.
        server: String,
        /// The command.
        command: String,
        /// The OS error.
        reason: String,
    },
    /// The server did not complete `initialize` within the connect timeout.
    #[error("MCP server `{server}` did not complete initialization within {} ms", timeout.as_millis())]
    ConnectTimeout {
        /// The server name.
        server: String,
        /// The limit.
        timeout: Duration,
    },
    /// The connection could not be established (refused, DNS, TLS …).
    #[error("MCP server `{server}`: connection failed: {reason}")]
    Connect {
        /// The server name.
        server: String,
        /// The transport's message.
        reason: String,
    },
    /// The server refused our credentials (HTTP 401/403).
    #[error("MCP server `{server}` refused the credentials: {reason}")]
    Auth {
        /// The server name.
        server: String,
        /// Status and challenge, when given.
        reason: String,
    },
    /// The server broke the protocol: non-JSON on stdout, an HTML page instead of
    /// MCP, an unexpected response, a failed handshake.
    #[error("MCP server `{server}` broke the protocol: {reason}")]
    Protocol {
        /// The server name.
        server: String,
        /// What it sent or did.
        reason: String,
    },
    /// One message was larger than the configured limit; the connection was closed.
    #[error("MCP server `{server}` sent a message larger than {limit} bytes")]
    MessageTooLarge {
        /// The server name.
        server: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The server process exited or the connection closed.
    #[error("MCP server `{server}` exited{}{}", status.as_deref().map(|s| format!(" ({s})")).unwrap_or_default(), stderr_suffix(stderr_tail))]
    ServerExited {
        /// The server name.
        server: String,
        /// Exit status, when known.
        status: Option<String>,
        /// The last lines the server wrote to stderr.
        stderr_tail: String,
    },
    /// The server failed too often and its [`RestartPolicy`](crate::RestartPolicy)
    /// allows no further restart.
    #[error("MCP server `{server}` is down and may not be restarted: {reason}")]
    RestartRefused {
        /// The server name.
        server: String,
        /// Why (policy `never`, restart budget used up …).
        reason: String,
    },
    /// The call saw no response or progress for the per-call timeout, or ran past
    /// the maximum total. The request was cancelled on the server.
    #[error("MCP server `{server}`: tool `{tool}` {what} ({} ms)", limit.as_millis())]
    CallTimeout {
        /// The server name.
        server: String,
        /// The tool.
        tool: String,
        /// Which limit: `saw no response or progress` / `ran past its maximum total time`.
        what: &'static str,
        /// The limit that fired.
        limit: Duration,
    },
    /// The tool ran and reported an error (`isError: true`); the message is the
    /// server's text.
    #[error("MCP tool `{tool}` failed: {message}")]
    ToolError {
        /// The tool.
        tool: String,
        /// The server's text.
        message: String,
    },
    /// The server answered a request with a JSON-RPC error (unknown tool, bad params …).
    #[error("MCP server `{server}` answered with an error: {message}")]
    Rpc {
        /// The server name.
        server: String,
        /// JSON-RPC error code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// A tool's input schema is not valid JSON Schema for an object; the tool was
    /// not registered.
    #[error("MCP tool `{tool}` has an unusable input schema: {reason}")]
    InvalidToolSchema {
        /// The tool.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// A tool could not be given an action id (collision with an existing id).
    #[error("MCP tool `{tool}` cannot be registered as `{action_id}`: {reason}")]
    ToolNameCollision {
        /// The tool.
        tool: String,
        /// The id tried last.
        action_id: String,
        /// Why.
        reason: String,
    },
    /// Binding or serving the MCP server side failed.
    #[error("MCP serve failed: {0}")]
    Serve(String),
}

fn server_suffix(server: &Option<String>) -> String {
    server
        .as_deref()
        .map(|s| format!(" for server `{s}`"))
        .unwrap_or_default()
}

fn stderr_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", tail.trim())
    }
}

impl McpError {
    /// The server this error is about, when it names one.
    pub fn server(&self) -> Option<&str> {
        match self {
            McpError::Config { server, .. } => server.as_deref(),
            McpError::UnsupportedTransport { server, .. }
            | McpError::Spawn { server, .. }
            | McpError::ConnectTimeout { server, .. }
            | McpError::Connect { server, .. }
            | McpError::Auth { server, .. }
            | McpError::Protocol { server, .. }
            | McpError::MessageTooLarge { server, .. }
            | McpError::ServerExited { server, .. }
            | McpError::RestartRefused { server, .. }
            | McpError::CallTimeout { server, .. }
            | McpError::Rpc { server, .. } => Some(server),
            McpError::ToolError { .. }
            | McpError::InvalidToolSchema { .. }
            | McpError::ToolNameCollision { .. }
            | McpError::Serve(_) => None,
        }
    }

    /// Whether the error means the connection is gone (the next call reconnects
    /// when the restart policy allows).
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            McpError::ServerExited { .. }
                | McpError::Protocol { .. }
                | McpError::MessageTooLarge { .. }
        )
    }
}

impl ErrorCode for McpError {
    fn code(&self) -> &'static str {
        match self {
            McpError::Config { .. } => "mcp.config_invalid",
            McpError::UnsupportedTransport { .. } => "mcp.unsupported_transport",
            McpError::Spawn { .. } => "mcp.spawn_failed",
            McpError::ConnectTimeout { .. } => "mcp.connect_timeout",
            McpError::Connect { .. } => "mcp.connect_failed",
            McpError::Auth { .. } => "mcp.auth",
            McpError::Protocol { .. } => "mcp.protocol",
            McpError::MessageTooLarge { .. } => "mcp.message_too_large",
            McpError::ServerExited { .. } => "mcp.server_exited",
            McpError::RestartRefused { .. } => "mcp.restart_refused",
            McpError::CallTimeout { .. } => "mcp.call_timeout",
            McpError::ToolError { .. } => "mcp.tool_error",
            McpError::Rpc { .. } => "mcp.rpc_error",
            McpError::InvalidToolSchema { .. } => "mcp.invalid_tool_schema",
            McpError::ToolNameCollision { .. } => "mcp.tool_name_collision",
            McpError::Serve(_) => "mcp.serve_failed",
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            McpError::ConnectTimeout { .. }
                | McpError::Connect { .. }
                | McpError::ServerExited { .. }
                | McpError::CallTimeout { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let e = McpError::ConnectTimeout {
            server: "s".into(),
            timeout: Duration::from_millis(5),
        };
        assert_eq!(e.code(), "mcp.connect_timeout");
        assert!(e.retryable());
        assert_eq!(e.server(), Some("s"));
        let e = McpError::ToolError {
            tool: "t".into(),
            message: "boom".into(),
        };
        assert_eq!(e.code(), "mcp.tool_error");
        assert!(e.to_string().contains("boom"));
    }
}
