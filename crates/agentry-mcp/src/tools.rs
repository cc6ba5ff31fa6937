//! MCP tools as actions: [`use_mcp`] lists a server's tools and registers each one in
//! an [`ActionRegistry`], so every call goes through the same dispatcher, policy and
//! approval as any other action.
//!
//! # Ids
//!
//! A tool keeps its own name as action id unless that id is taken (by another action
//! or another server's tool); then it becomes `server.tool` (DESIGN §4.6). Pass
//! [`ToolNaming::Always`] to namespace every tool. Names with characters the registry
//! does not accept are rewritten (`[^A-Za-z0-9_.-]` → `_`, at most 64 characters).
//! Tools are registered in the server's listing order, so the same server gives the
//! same ids; once a tool has an id, refreshes keep it.
//!
//! # Tool specs
//!
//! Description and input schema are the server's. A tool whose schema is not valid
//! JSON Schema for an object is not registered; it is reported in
//! [`McpToolSet::skipped`] with `mcp.invalid_tool_schema` (the other tools still
//! register). Side effect: `read` when the server marks the tool `readOnlyHint: true`,
//! otherwise [`UseMcpOptions::side_effect`] (default `write`: a tool that does not say
//! it only reads is not treated as harmless). Tags: `mcp`, `mcp:<server>` and the
//! caller's. Executor kind `mcp`.
//!
//! # Results
//!
//! See [`tool_result_value`]. `isError: true` becomes an `error` record with code
//! `mcp.tool_error` and the server's text as message (the full result in `data`).
//!
//! # `notifications/tools/list_changed`
//!
//! [`McpToolSet::refresh`] re-lists and updates the registry (adds new tools, replaces
//! changed ones in place, removes vanished ones). [`McpToolSet::auto_refresh`] runs it
//! whenever the server sends the notification, on a [`SharedRegistry`].
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use agentry_actions::{
    ActionContext, ActionError, ActionFailure, ActionRegistry, ActionSpec, DynAction, SideEffect,
};
use agentry_core::ErrorCode;
use futures::future::BoxFuture;
use rmcp::model::CallToolResult;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::client::{CallLimits, McpServer, ToolInfo};
use crate::error::McpError;

/// How tool names become action ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolNaming {
    /// The tool's name, or `server.tool` when that id is taken.
    #[default]
    OnCollision,
    /// Always `server.tool`.
    Always,
}

/// Options of [`use_mcp`].
#[derive(Debug, Clone)]
pub struct UseMcpOptions {
    /// Id scheme.
    pub naming: ToolNaming,
    /// Side effect of tools not marked `readOnlyHint: true`.
    pub side_effect: SideEffect,
    /// Every tool needs approval.
    pub approval_required: bool,
    /// Extra tags on every tool.
    pub tags: Vec<String>,
    /// Per-call limits (default: the server config's).
    pub limits: CallLimits,
}

impl Default for UseMcpOptions {
    fn default() -> Self {
        Self {
            naming: ToolNaming::OnCollision,
            side_effect: SideEffect::Write,
            approval_required: false,
            tags: Vec::new(),
            limits: CallLimits::default(),
        }
    }
}

/// A tool that was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredTool {
    /// The tool's name on the server.
    pub tool: String,
    /// Its action id.
    pub action_id: String,
}

/// A tool that was not registered, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedTool {
    /// The tool's name on the server.
    pub tool: String,
    /// Stable code (`mcp.invalid_tool_schema`, `mcp.tool_name_collision`).
    pub code: String,
    /// Details.
    pub message: String,
}

/// What a refresh changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// Newly registered action ids.
    pub added: Vec<String>,
    /// Action ids whose spec changed.
    pub updated: Vec<String>,
    /// Action ids removed because the server no longer lists them.
    pub removed: Vec<String>,
    /// Tools refused this time.
    pub skipped: Vec<SkippedTool>,
}

/// A registry several tasks update and read: the host builds dispatchers from a
/// snapshot (`registry.read()…clone()`), an auto-refresh task writes it.
pub type SharedRegistry = Arc<RwLock<ActionRegistry>>;

/// The tools of one server registered in a registry.
#[derive(Clone)]
pub struct McpToolSet {
    server: McpServer,
    options: UseMcpOptions,
    /// tool name → action id, in registration order.
    ids: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    skipped: Arc<std::sync::Mutex<Vec<SkippedTool>>>,
}

impl fmt::Debug for McpToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpToolSet")
            .field("server", &self.server.name())
            .field("tools", &self.tools())
            .finish()
    }
}

/// Registers every tool of `server` in `registry` (connecting if needed).
///
/// ```no_run
/// use agentry_actions::{ActionPolicy, ActionRegistry, Dispatcher, HostCall, CallScope};
/// use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
/// use agentry_mcp::{McpServer, McpServerConfig, UseMcpOptions, use_mcp};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = McpServer::new("web", McpServerConfig::http("http://127.0.0.1:8080/mcp"))?;
/// let mut registry = ActionRegistry::new();
/// let set = use_mcp(&mut registry, &server, UseMcpOptions::default()).await?;
/// println!("registered {:?}, skipped {:?}", set.tools(), set.skipped());
///
/// let dispatcher = Dispatcher::new(registry, &ActionPolicy::new());
/// let scope = CallScope::new(EventCenter::new().emitter("demo"), RunContext::root(RunKind::REQUEST), ExecutionId::new());
/// let record = dispatcher.call(&scope, HostCall::new("fetch", serde_json::json!({"url": "https://example.org"}))).await;
/// println!("{}", record.model_view());
/// # Ok(()) }
/// ```
pub async fn use_mcp(
    registry: &mut ActionRegistry,
    server: &McpServer,
    options: UseMcpOptions,
) -> Result<McpToolSet, McpError> {
    let set = McpToolSet {
        server: server.clone(),
        options,
        ids: Arc::default(),
        skipped: Arc::default(),
    };
    set.refresh(registry).await?;
    Ok(set)
}

/// Connects every server of `config` (in name order) and registers their tools, all
/// or nothing: if one server fails, the registry is left as it was, the servers
/// already started are released, and the error names the failing server.
pub async fn use_mcp_servers(
    registry: &mut ActionRegistry,
    config: &crate::McpServersConfig,
    options: UseMcpOptions,
) -> Result<Vec<McpToolSet>, McpError> {
    let mut next = registry.clone();
    let mut sets: Vec<McpToolSet> = Vec::with_capacity(config.servers.len());
    for (name, server_config) in &config.servers {
        let attempt = match McpServer::new(name.clone(), server_config.clone()) {
            Ok(server) => use_mcp(&mut next, &server, options.clone()).await,
            Err(e) => Err(e),
        };
        match attempt {
            Ok(set) => sets.push(set),
            Err(e) => {
                for set in &sets {
                    set.server().release().await;
                }
                return Err(e);
            }
        }
    }
    *registry = next;
    Ok(sets)
}

impl McpToolSet {
    /// The server.
    pub fn server(&self) -> &McpServer {
        &self.server
    }

    /// Registered tools in order.
    pub fn tools(&self) -> Vec<RegisteredTool> {
        self.ids
            .lock()
            .map(|ids| {
                ids.iter()
                    .map(|(t, a)| RegisteredTool {
                        tool: t.clone(),
                        action_id: a.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tools refused at the last (re)listing.
    pub fn skipped(&self) -> Vec<SkippedTool> {
        self.skipped.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Re-lists the server's tools and brings `registry` in line: new tools are added,
    /// changed ones replaced in place, vanished ones removed. Ids already given keep.
    pub async fn refresh(&self, registry: &mut ActionRegistry) -> Result<RefreshReport, McpError> {
        let listed = self.server.list_raw_tools().await?;
        let tools: Vec<ToolInfo> = listed.iter().map(ToolInfo::from_tool).collect();
        Ok(self.apply(registry, tools))
    }

    fn apply(&self, registry: &mut ActionRegistry, tools: Vec<ToolInfo>) -> RefreshReport {
        let mut report = RefreshReport::default();
        let old: Vec<(String, String)> = self.ids.lock().map(|i| i.clone()).unwrap_or_default();
        let old_map: BTreeMap<&str, &str> =
            old.iter().map(|(t, a)| (t.as_str(), a.as_str())).collect();
        let mut next: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for tool in tools {
            if !seen.insert(tool.name.clone()) {
                report.skipped.push(SkippedTool {
                    tool: tool.name.clone(),
                    code: "mcp.tool_name_collision".into(),
                    message: "the server lists this tool name twice; the first is used".into(),
                });
                continue;
            }
            let known = old_map.get(tool.name.as_str()).map(|s| (*s).to_owned());
            let id = match &known {
                Some(id) => id.clone(),
                None => match self.pick_id(registry, &tool.name, &next) {
                    Ok(id) => id,
                    Err(e) => {
                        report.skipped.push(skip(&tool.name, &e));
                        continue;
                    }
                },
            };
            if let Err(reason) = check_schema(&tool.input_schema) {
                let e = McpError::InvalidToolSchema {
                    tool: tool.name.clone(),
                    reason,
                };
                report.skipped.push(skip(&tool.name, &e));
                continue;
            }
            let action = Arc::new(McpToolAction {
                spec: self.spec_for(&id, &tool),
                server: self.server.clone(),
                tool: tool.name.clone(),
                limits: self.options.limits,
            });
            let changed = registry
                .get(&id)
                .map(|e| e.spec() != &action.spec)
                .unwrap_or(true);
            if known.is_some() && !changed {
                next.push((tool.name.clone(), id));
                continue;
            }
            match registry.register_dyn(action, known.is_some()) {
                Ok(()) => {
                    if known.is_some() {
                        report.updated.push(id.clone());
                    } else {
                        report.added.push(id.clone());
                    }
                    next.push((tool.name.clone(), id));
                }
                Err(ActionError::InvalidSpec { reason, .. }) => {
                    let e = McpError::InvalidToolSchema {
                        tool: tool.name.clone(),
                        reason,
                    };
                    report.skipped.push(skip(&tool.name, &e));
                }
                Err(other) => {
                    let e = McpError::ToolNameCollision {
                        tool: tool.name.clone(),
                        action_id: id.clone(),
                        reason: other.to_string(),
                    };
                    report.skipped.push(skip(&tool.name, &e));
                }
            }
        }
        for (tool, id) in &old {
            if !next.iter().any(|(t, _)| t == tool) && registry.remove(id) {
                report.removed.push(id.clone());
            }
        }
        if let Ok(mut ids) = self.ids.lock() {
            *ids = next;
        }
        if let Ok(mut s) = self.skipped.lock() {
            *s = report.skipped.clone();
        }
        report
    }

    fn pick_id(
        &self,
        registry: &ActionRegistry,
        tool: &str,
        taken: &[(String, String)],
    ) -> Result<String, McpError> {
        let free = |id: &str| !registry.contains(id) && !taken.iter().any(|(_, a)| a == id);
        let plain = sanitize(tool);
        let namespaced = sanitize(&format!("{}.{}", self.server.name(), tool));
        if self.options.naming == ToolNaming::OnCollision && free(&plain) {
            return Ok(plain);
        }
        if free(&namespaced) {
            return Ok(namespaced);
        }
        Err(McpError::ToolNameCollision {
            tool: tool.to_owned(),
            action_id: namespaced,
            reason: "the id is already registered".into(),
        })
    }

    fn spec_for(&self, id: &str, tool: &ToolInfo) -> ActionSpec {
        let mut spec = ActionSpec::new(id, tool.description.clone(), tool.input_schema.clone());
        if spec.description.is_empty() {
            spec.description = format!(
                "MCP tool `{}` of server `{}`",
                tool.name,
                self.server.name()
            );
        }
        spec.output_schema = tool.output_schema.clone();
        spec.side_effect = if tool.read_only() {
            SideEffect::Read
        } else {
            self.options.side_effect
        };
        spec.replay_safe = spec.side_effect == SideEffect::Read;
        spec.approval_required = self.options.approval_required;
        spec.executor_kind = "mcp".into();
        spec.tags = vec!["mcp".into(), format!("mcp:{}", self.server.name())];
        spec.tags.extend(self.options.tags.iter().cloned());
        spec
    }

    /// Spawns a task that refreshes `registry` whenever the server sends
    /// `notifications/tools/list_changed`. The task runs until the returned
    /// [`AutoRefresh`] guard is dropped. A failed re-listing is logged and leaves the
    /// registry as it was; the next notification tries again.
    pub fn auto_refresh(&self, registry: SharedRegistry) -> AutoRefresh {
        let set = self.clone();
        let mut rx = self.server.tools_changed();
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                // Re-list outside the lock, then apply under it.
                let listed = match set.server.list_raw_tools().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(server = %set.server.name(), code = e.code(), "MCP tools refresh failed: {e}");
                        continue;
                    }
                };
                let tools = listed.iter().map(ToolInfo::from_tool).collect();
                let report = match registry.write() {
                    Ok(mut reg) => set.apply(&mut reg, tools),
                    Err(_) => break,
                };
                tracing::debug!(server = %set.server.name(), ?report, "MCP tools refreshed");
            }
        });
        AutoRefresh { task }
    }
}

/// Keeps an auto-refresh task alive; aborts it when dropped.
#[derive(Debug)]
pub struct AutoRefresh {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AutoRefresh {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn skip(tool: &str, e: &McpError) -> SkippedTool {
    SkippedTool {
        tool: tool.to_owned(),
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

fn check_schema(schema: &Value) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Err("the input schema is not a JSON object".into());
    };
    match obj.get("type") {
        None => {}
        Some(Value::String(t)) if t == "object" => {}
        Some(other) => {
            return Err(format!(
                "the input schema's type is {other}, not \"object\""
            ));
        }
    }
    Ok(())
}

fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// One MCP tool as an action.
struct McpToolAction {
    spec: ActionSpec,
    server: McpServer,
    tool: String,
    limits: CallLimits,
}

impl fmt::Debug for McpToolAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpToolAction")
            .field("id", &self.spec.id)
            .field("server", &self.server.name())
            .field("tool", &self.tool)
            .finish()
    }
}

impl DynAction for McpToolAction {
    fn spec(&self) -> ActionSpec {
        self.spec.clone()
    }

    fn invoke(
        &self,
        _ctx: ActionContext,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, ActionFailure>> {
        let server = self.server.clone();
        let tool = self.tool.clone();
        let limits = self.limits;
        Box::pin(async move {
            let args = match input {
                Value::Object(m) => Some(m),
                _ => None,
            };
            let result = server
                .call_tool_raw(&tool, args, limits)
                .await
                .map_err(|e| ActionFailure::new(e.code(), e.to_string()))?;
            match tool_result_value(&tool, result) {
                Ok(v) => Ok(v),
                Err(McpError::ToolError { message, .. }) => {
                    Err(ActionFailure::new("mcp.tool_error", message))
                }
                Err(e) => Err(ActionFailure::new(e.code(), e.to_string())),
            }
        })
    }
}

/// Converts a `tools/call` result to the value an action returns:
///
/// - `isError: true` → [`McpError::ToolError`] with the text parts joined (or the
///   structured content as JSON when there is no text);
/// - `structuredContent` present → that JSON;
/// - exactly one text part → its text parsed as JSON, or the text as a string;
/// - no content → `null`;
/// - otherwise → `{"content": [parts…]}`, each part typed as MCP types it (`text`,
///   `image` with `data` and `mimeType`, `audio`, `resource`, `resource_link`).
pub fn tool_result_value(tool: &str, result: CallToolResult) -> Result<Value, McpError> {
    if result.is_error == Some(true) {
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        let message = if !text.is_empty() {
            text.join("\n")
        } else if let Some(s) = &result.structured_content {
            s.to_string()
        } else {
            "the tool reported an error without text".into()
        };
        return Err(McpError::ToolError {
            tool: tool.to_owned(),
            message,
        });
    }
    if let Some(s) = result.structured_content {
        return Ok(s);
    }
    match result.content.as_slice() {
        [] => Ok(Value::Null),
        [only] if only.as_text().is_some() => {
            let text = only.as_text().map(|t| t.text.as_str()).unwrap_or_default();
            Ok(serde_json::from_str::<Value>(text)
                .ok()
                .filter(|v| v.is_object() || v.is_array())
                .unwrap_or_else(|| Value::String(text.to_owned())))
        }
        parts => {
            let parts: Vec<Value> = parts
                .iter()
                .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                .collect();
            let mut m = Map::new();
            m.insert("content".into(), Value::Array(parts));
            Ok(Value::Object(m))
        }
    }
}

/// The JSON form of a raw result, for `agentry mcp call --raw`.
pub fn tool_result_json(result: &CallToolResult) -> Value {
    serde_json::to_value(result).unwrap_or_else(|e| json!({"error": e.to_string()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize("get weather/now"), "get_weather_now");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize(&"x".repeat(80)).len(), 64);
    }

    #[test]
    fn schemas_must_describe_objects() {
        assert!(check_schema(&json!({"type": "object"})).is_ok());
        assert!(check_schema(&json!({"properties": {}})).is_ok());
        assert!(check_schema(&json!({"type": "string"})).is_err());
        assert!(check_schema(&json!([1])).is_err());
    }
}
