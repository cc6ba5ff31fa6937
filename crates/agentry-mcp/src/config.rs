//! Server configuration: one [`McpServerConfig`] per server, several at once in an
//! [`McpServersConfig`] read from `agentry.toml` (`[mcp.servers.NAME]`) or from the
//! common JSON shape (`{"mcpServers": {...}}`) that editors and other clients use, and
//! [`parse_mcp_arg`] for the CLI's `--mcp NAME=CMD ARGS…|URL`.
//!
//! A server is either a command (stdio: `command`, `args`, `env`, `cwd`) or a URL
//! (Streamable HTTP: `url`, `headers`). A URL server that only speaks the legacy
//! HTTP+SSE transport of MCP 2024-11-05 is marked with `type = "sse"` (JSON
//! `"type": "sse"`, TOML also `transport = "sse"`) or, on the command line, with an
//! `sse+` prefix (`NAME=sse+https://host/sse`): the two transports cannot be told
//! apart from the URL, and guessing would send the wrong first request.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::McpError;

/// Default connect (initialize) timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default per-call inactivity timeout (reset by progress notifications).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default maximum total time of one call, progress or not. Below the dispatcher's
/// default action timeout (120 s), so an MCP call ends with its own typed error (and a
/// cancellation sent to the server) before the dispatcher gives up on it.
pub const DEFAULT_MAX_TOTAL: Duration = Duration::from_secs(100);
/// Default grace period between closing a child's stdin and killing it.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Default largest message accepted from a stdio server (bytes, one line).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The variables a stdio server inherits from this process by default: enough to find
/// programs and a home directory (`npx`, `uvx` need them), nothing that usually holds
/// a secret.
pub const INHERITED_ENV_VARS: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ",
];

/// When a server that died may be started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum RestartPolicy {
    /// Never: once the connection is lost every call fails with `mcp.restart_refused`.
    Never,
    /// On the next call after a failure, up to `max_restarts` times over the life of
    /// the handle (a server that keeps crashing is not restarted forever).
    OnFailure {
        /// Restarts allowed in total.
        max_restarts: u32,
    },
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy::OnFailure { max_restarts: 3 }
    }
}

/// How to reach one MCP server, and its limits.
///
/// Deserializes from the keys `command`, `args`, `env`, `inherit_env`, `cwd`, `url`, `headers`,
/// `timeout_seconds`, `max_total_seconds`, `connect_timeout_seconds`, `restart`
/// and `type` (alias `transport`): `"sse"` selects the legacy HTTP+SSE transport for a
/// `url`; other values (`stdio`, `http`, `streamable-http` …) are accepted for
/// compatibility with the JSON shape and change nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Program to start (stdio transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments (an argv array; never interpolated by a shell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables for the child. The child does not inherit this
    /// process's environment (which may hold API keys) except the variables in
    /// [`INHERITED_ENV_VARS`], unless `inherit_env` is set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Pass this process's whole environment to the child.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inherit_env: bool,
    /// Working directory of the child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint, or the SSE endpoint (`GET`) of a legacy HTTP+SSE
    /// server when `type` is `sse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP headers sent with every request (e.g. `Authorization: Bearer …`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Per-call inactivity timeout in seconds; progress notifications reset it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Maximum total seconds of one call, whatever the progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_seconds: Option<f64>,
    /// Seconds allowed for start-up and `initialize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_seconds: Option<f64>,
    /// Restart policy; default: on failure, 3 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Transport hint from the JSON shape (`stdio`, `http`, `streamable-http`, `sse`);
    /// `sse` selects [`Transport::Sse`], `ws`/`websocket` are refused as unsupported.
    #[serde(
        default,
        rename = "type",
        alias = "transport",
        skip_serializing_if = "Option::is_none"
    )]
    pub transport_type: Option<String>,
}

/// The transport a config resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// The legacy HTTP+SSE transport (MCP 2024-11-05): a `GET` event stream carries
    /// the server's messages, the client's messages are POSTed to the endpoint the
    /// stream names.
    Sse,
}

fn seconds(v: Option<f64>, default: Duration) -> Duration {
    match v {
        Some(s) if s.is_finite() && s > 0.0 => Duration::try_from_secs_f64(s).unwrap_or(default),
        _ => default,
    }
}

impl McpServerConfig {
    /// A stdio server.
    pub fn stdio(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            command: Some(command.into()),
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// A Streamable HTTP server.
    pub fn http(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::default()
        }
    }

    /// A legacy HTTP+SSE server; `url` is its SSE endpoint (often `…/sse`).
    pub fn sse(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            transport_type: Some("sse".into()),
            ..Self::default()
        }
    }

    /// Adds a header (HTTP and SSE only; sent with every request).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Passes this process's whole environment to the child (stdio only).
    pub fn inherit_env(mut self, yes: bool) -> Self {
        self.inherit_env = yes;
        self
    }

    /// Adds an environment variable (stdio only).
    pub fn env_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets the per-call inactivity timeout.
    pub fn call_timeout(mut self, t: Duration) -> Self {
        self.timeout_seconds = Some(t.as_secs_f64());
        self
    }

    /// Sets the maximum total time of one call.
    pub fn max_total(mut self, t: Duration) -> Self {
        self.max_total_seconds = Some(t.as_secs_f64());
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout_seconds = Some(t.as_secs_f64());
        self
    }

    /// Sets the restart policy.
    pub fn restart_policy(mut self, p: RestartPolicy) -> Self {
        self.restart = Some(p);
        self
    }

    /// The per-call inactivity timeout in force.
    pub fn call_timeout_value(&self) -> Duration {
        seconds(self.timeout_seconds, DEFAULT_CALL_TIMEOUT)
    }

    /// The maximum total in force (never below the inactivity timeout).
    pub fn max_total_value(&self) -> Duration {
        seconds(self.max_total_seconds, DEFAULT_MAX_TOTAL).max(self.call_timeout_value())
    }

    /// The connect timeout in force.
    pub fn connect_timeout_value(&self) -> Duration {
        seconds(self.connect_timeout_seconds, DEFAULT_CONNECT_TIMEOUT)
    }

    /// The restart policy in force.
    pub fn restart_value(&self) -> RestartPolicy {
        self.restart.unwrap_or_default()
    }

    /// Which transport this config uses; refuses ambiguous and empty configs, and
    /// transports this crate has no client for (WebSocket).
    pub fn transport(&self, server: &str) -> Result<Transport, McpError> {
        let bad = |reason: &str| McpError::Config {
            server: Some(server.to_owned()),
            reason: reason.to_owned(),
        };
        let ty = self
            .transport_type
            .as_deref()
            .map(|t| t.trim().to_ascii_lowercase());
        if matches!(ty.as_deref(), Some("ws" | "websocket")) {
            return Err(McpError::UnsupportedTransport {
                server: server.to_owned(),
                reason: "there is no WebSocket client here; use the server's Streamable HTTP or SSE endpoint".into(),
            });
        }
        let sse = ty.as_deref() == Some("sse");
        if sse && self.command.is_some() {
            return Err(bad(
                "`type = \"sse\"` needs `url` (the SSE endpoint), not `command`",
            ));
        }
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => Err(bad("set either `command` or `url`, not both")),
            (None, None) => Err(bad("set `command` (stdio) or `url` (Streamable HTTP)")),
            (Some(c), None) if c.trim().is_empty() => Err(bad("`command` is empty")),
            (Some(_), None) => {
                if !self.headers.is_empty() {
                    return Err(bad("`headers` only apply to URL servers"));
                }
                Ok(Transport::Stdio)
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad("`url` must start with http:// or https://"));
                }
                if !self.env.is_empty()
                    || !self.args.is_empty()
                    || self.cwd.is_some()
                    || self.inherit_env
                {
                    return Err(bad(
                        "`args`, `env`, `inherit_env` and `cwd` only apply to command servers",
                    ));
                }
                Ok(if sse { Transport::Sse } else { Transport::Http })
            }
        }
    }
}

/// Several named servers, in name order (deterministic).
///
/// Deserializes from `{"servers": {...}}`, `{"mcpServers": {...}}` or a bare map of
/// names to servers; [`from_toml_str`](Self::from_toml_str) also finds
/// `[mcp.servers.NAME]` tables inside a whole `agentry.toml`.
///
/// ```
/// use agentry_mcp::McpServersConfig;
/// let json = McpServersConfig::from_json_str(r#"{"mcpServers": {
///     "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
///     "remote": {"url": "https://example.invalid/mcp", "headers": {"Authorization": "Bearer t"}}
/// }}"#)?;
/// let toml = McpServersConfig::from_toml_str(r#"
///     [mcp.servers.files]
///     command = "npx"
///     args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
///     [mcp.servers.remote]
///     url = "https://example.invalid/mcp"
///     headers = { Authorization = "Bearer t" }
/// "#)?;
/// assert_eq!(json, toml);
/// assert_eq!(json.names(), vec!["files", "remote"]);
/// # Ok::<(), agentry_mcp::McpError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct McpServersConfig {
    /// Servers by name.
    pub servers: BTreeMap<String, McpServerConfig>,
}

impl<'de> Deserialize<'de> for McpServersConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Through a JSON value so that a typo is reported by field name, not as
        // "did not match any variant".
        let v = serde_json::Value::deserialize(d)?;
        let inner = match &v {
            serde_json::Value::Object(m) if m.len() == 1 => m
                .get("servers")
                .or_else(|| m.get("mcpServers"))
                .cloned()
                .unwrap_or(v),
            _ => v,
        };
        let servers: BTreeMap<String, McpServerConfig> =
            serde_json::from_value(inner).map_err(D::Error::custom)?;
        Ok(Self { servers })
    }
}

impl McpServersConfig {
    /// Parses the JSON shape (`{"mcpServers": {...}}` or `{"servers": {...}}`).
    pub fn from_json_str(s: &str) -> Result<Self, McpError> {
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| McpError::Config {
            server: None,
            reason: format!("not JSON: {e}"),
        })?;
        let v = match v.get("mcp") {
            Some(inner) if v.get("mcpServers").is_none() => inner.clone(),
            _ => v,
        };
        serde_json::from_value(v).map_err(|e| McpError::Config {
            server: None,
            reason: format!("bad MCP servers config: {e}"),
        })
    }

    /// Parses TOML: a whole `agentry.toml` with `[mcp.servers.NAME]` tables, an `mcp`
    /// table's content, or `[servers.NAME]` / `[mcpServers.NAME]` tables.
    pub fn from_toml_str(s: &str) -> Result<Self, McpError> {
        let v: toml::Table = toml::from_str(s).map_err(|e| McpError::Config {
            server: None,
            reason: format!("not TOML: {e}"),
        })?;
        let inner = match v.get("mcp") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => v,
        };
        inner
            .try_into()
            .map_err(|e: toml::de::Error| McpError::Config {
                server: None,
                reason: format!("bad MCP servers config: {e}"),
            })
    }

    /// Server names in order.
    pub fn names(&self) -> Vec<&str> {
        self.servers.keys().map(String::as_str).collect()
    }

    /// Checks every server's transport.
    pub fn validate(&self) -> Result<(), McpError> {
        for (name, c) in &self.servers {
            c.transport(name)?;
        }
        Ok(())
    }
}

/// Parses the CLI form `NAME=CMD ARGS…`, `NAME=URL` or `NAME=sse+URL`.
///
/// An `http://` or `https://` URL is a Streamable HTTP server; the same URL with an
/// `sse+` prefix (`sse+https://host/sse`) is a legacy HTTP+SSE server. The prefix is
/// explicit because the URL alone does not tell the transports apart. Anything else
/// is a command, split like a shell would split words (spaces, single and double
/// quotes, backslash escapes) but never run through a shell.
///
/// ```
/// use agentry_mcp::parse_mcp_arg;
/// let (name, cfg) = parse_mcp_arg("files=npx -y @modelcontextprotocol/server-filesystem '/my dir'")?;
/// assert_eq!(name, "files");
/// assert_eq!(cfg.command.as_deref(), Some("npx"));
/// assert_eq!(cfg.args, vec!["-y", "@modelcontextprotocol/server-filesystem", "/my dir"]);
/// let (_, web) = parse_mcp_arg("web=http://127.0.0.1:8080/mcp")?;
/// assert_eq!(web.url.as_deref(), Some("http://127.0.0.1:8080/mcp"));
/// let (_, old) = parse_mcp_arg("old=sse+http://127.0.0.1:3001/sse")?;
/// assert_eq!(old.url.as_deref(), Some("http://127.0.0.1:3001/sse"));
/// assert_eq!(old.transport("old")?, agentry_mcp::Transport::Sse);
/// # Ok::<(), agentry_mcp::McpError>(())
/// ```
pub fn parse_mcp_arg(arg: &str) -> Result<(String, McpServerConfig), McpError> {
    let bad = |reason: String| McpError::Config {
        server: None,
        reason,
    };
    let Some((name, rest)) = arg.split_once('=') else {
        return Err(bad(format!(
            "expected NAME=CMD ARGS… or NAME=URL, got `{arg}`"
        )));
    };
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(bad(format!(
            "server name `{name}` must be non-empty ASCII letters, digits, `_` or `-`"
        )));
    }
    let rest = rest.trim();
    let is_url = |s: &str| s.starts_with("http://") || s.starts_with("https://");
    if is_url(rest) {
        return Ok((name.to_owned(), McpServerConfig::http(rest)));
    }
    if let Some(url) = rest.strip_prefix("sse+") {
        if !is_url(url) {
            return Err(bad(format!(
                "`{name}`: `sse+` must be followed by an http:// or https:// URL"
            )));
        }
        return Ok((name.to_owned(), McpServerConfig::sse(url)));
    }
    let words = split_words(rest).map_err(|e| bad(format!("`{name}`: {e}")))?;
    let mut it = words.into_iter();
    let Some(command) = it.next() else {
        return Err(bad(format!("`{name}`: no command given")));
    };
    Ok((name.to_owned(), McpServerConfig::stdio(command, it)))
}

fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err("trailing backslash".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(x) => cur.push(x),
                    None => return Err("trailing backslash".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_are_checked() {
        assert_eq!(
            McpServerConfig::stdio("x", ["a"]).transport("s").ok(),
            Some(Transport::Stdio)
        );
        assert!(McpServerConfig::default().transport("s").is_err());
        let mut both = McpServerConfig::http("http://a");
        both.command = Some("x".into());
        assert!(both.transport("s").is_err());
        assert_eq!(
            McpServerConfig::sse("http://a/sse").transport("s").ok(),
            Some(Transport::Sse)
        );
        let mut upper = McpServerConfig::http("http://a/sse");
        upper.transport_type = Some(" SSE ".into());
        assert_eq!(upper.transport("s").ok(), Some(Transport::Sse));
        let mut sse_cmd = McpServerConfig::stdio("x", ["y"]);
        sse_cmd.transport_type = Some("sse".into());
        assert!(matches!(
            sse_cmd.transport("s"),
            Err(McpError::Config { .. })
        ));
        assert!(McpServerConfig::sse("ftp://a").transport("s").is_err());
        let mut ws = McpServerConfig::http("http://a/ws");
        ws.transport_type = Some("websocket".into());
        assert!(matches!(
            ws.transport("s"),
            Err(McpError::UnsupportedTransport { .. })
        ));
        assert!(McpServerConfig::http("ftp://a").transport("s").is_err());
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"a "b c" 'd e' f\ g"#).ok(),
            Some(vec!["a".into(), "b c".into(), "d e".into(), "f g".into()])
        );
        assert!(split_words("'open").is_err());
        assert!(parse_mcp_arg("noequals").is_err());
        assert!(parse_mcp_arg("x=").is_err());
        assert!(parse_mcp_arg("bad name=cmd").is_err());
        let (_, sse) = parse_mcp_arg("old = sse+https://h/sse").unwrap_or_default();
        assert_eq!(sse, McpServerConfig::sse("https://h/sse"));
        assert!(parse_mcp_arg("old=sse+ftp://h/sse").is_err());
        assert!(parse_mcp_arg("old=sse+").is_err());
    }

    #[test]
    fn sse_is_selected_by_type_or_transport() {
        let json = McpServersConfig::from_json_str(
            r#"{"mcpServers": {"old": {"type": "sse", "url": "https://h/sse", "headers": {"Authorization": "Bearer t"}}}}"#,
        );
        let toml = McpServersConfig::from_toml_str(
            "[mcp.servers.old]\ntransport = \"sse\"\nurl = \"https://h/sse\"\nheaders = { Authorization = \"Bearer t\" }\n",
        );
        let expected = McpServerConfig::sse("https://h/sse").header("Authorization", "Bearer t");
        for parsed in [json, toml] {
            let servers = parsed.map(|c| c.servers).unwrap_or_default();
            assert_eq!(servers.get("old"), Some(&expected));
            assert_eq!(
                servers.get("old").map(|c| c.transport("old").ok()),
                Some(Some(Transport::Sse))
            );
        }
    }

    #[test]
    fn timeouts_default_and_clamp() {
        let c = McpServerConfig::stdio("x", Vec::<String>::new());
        assert_eq!(c.call_timeout_value(), DEFAULT_CALL_TIMEOUT);
        let c = c
            .call_timeout(Duration::from_secs(5))
            .max_total(Duration::from_secs(1));
        assert_eq!(c.max_total_value(), Duration::from_secs(5));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = McpServersConfig::from_json_str(r#"{"mcpServers":{"a":{"comand":"x"}}}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("comand"), "the typo is named: {err}");
        let t = McpServersConfig::from_toml_str(
            "[mcp.servers.a]\ncommand = \"x\"\ntimeout_seconds = 3\n",
        );
        assert_eq!(
            t.ok().map(|c| c.servers["a"].call_timeout_value()),
            Some(Duration::from_secs(3))
        );
    }
}
