//! The [`RuntimeEvent`] record and its parts.
//!
//! Event type names and run kinds follow the vocabulary the DevTools console already
//! renders (`model.requesting`, `action.completed`, `agent_execution` → `request` →
//! `model_request` …), so Agentry runs show up there with no mapping table.
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AgentId, EventId, ExecutionId, RunId};
use crate::time::Timestamp;

/// A dotted event type name such as `model.completed`.
///
/// An open set: crates define constants for the names they emit, plugins add their
/// own namespaces. The last word decides the status a console shows for the run
/// (`started`, `completed`, `failed`, `waiting` …).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventType(Cow<'static, str>);

impl EventType {
    /// An event type from a static name.
    pub const fn from_static(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// An event type from an owned name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(Cow::Owned(name.into()))
    }

    /// The dotted name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last word of the name (after the last `.` or `_`), which consoles read
    /// as the run's status.
    pub fn status_word(&self) -> &str {
        self.0.rsplit(['.', '_']).next().unwrap_or(&self.0)
    }

    /// High-frequency events (deltas) are the ones summary delivery coalesces.
    pub fn is_high_frequency(&self) -> bool {
        let s: &str = &self.0;
        s.ends_with(".delta") || s.ends_with("_delta") || s == "model.streaming"
    }

    /// `agent_execution.started`
    pub const AGENT_EXECUTION_STARTED: Self = Self::from_static("agent_execution.started");
    /// `agent_execution.completed`
    pub const AGENT_EXECUTION_COMPLETED: Self = Self::from_static("agent_execution.completed");
    /// `agent_execution.failed`
    pub const AGENT_EXECUTION_FAILED: Self = Self::from_static("agent_execution.failed");
    /// `agent_execution.cancelled`
    pub const AGENT_EXECUTION_CANCELLED: Self = Self::from_static("agent_execution.cancelled");
    /// `agent_execution.limit_exceeded`
    pub const AGENT_EXECUTION_LIMIT_EXCEEDED: Self =
        Self::from_static("agent_execution.limit_exceeded");
    /// `agent_execution.heartbeat`: liveness only, never counted as progress.
    pub const AGENT_EXECUTION_HEARTBEAT: Self = Self::from_static("agent_execution.heartbeat");
    /// `request.started`
    pub const REQUEST_STARTED: Self = Self::from_static("request.started");
    /// `request.completed`
    pub const REQUEST_COMPLETED: Self = Self::from_static("request.completed");
    /// `request.failed`
    pub const REQUEST_FAILED: Self = Self::from_static("request.failed");
    /// `model.request_started`
    pub const MODEL_REQUEST_STARTED: Self = Self::from_static("model.request_started");
    /// `prompt.built`
    pub const PROMPT_BUILT: Self = Self::from_static("prompt.built");
    /// `model.requesting`
    pub const MODEL_REQUESTING: Self = Self::from_static("model.requesting");
    /// `model.streaming` (high frequency)
    pub const MODEL_STREAMING: Self = Self::from_static("model.streaming");
    /// `model.reasoning.delta` (high frequency)
    pub const MODEL_REASONING_DELTA: Self = Self::from_static("model.reasoning.delta");
    /// `model.retrying`
    pub const MODEL_RETRYING: Self = Self::from_static("model.retrying");
    /// `model.meta`
    pub const MODEL_META: Self = Self::from_static("model.meta");
    /// `model.completed`
    pub const MODEL_COMPLETED: Self = Self::from_static("model.completed");
    /// `model.failed`
    pub const MODEL_FAILED: Self = Self::from_static("model.failed");
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a node in the run tree.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunKind(Cow<'static, str>);

impl RunKind {
    /// A run kind from a static name.
    pub const fn from_static(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }
    /// A run kind from an owned name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(Cow::Owned(name.into()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The root of an agent request.
    pub const AGENT_EXECUTION: Self = Self::from_static("agent_execution");
    /// One request to the model layer (may hold several attempts).
    pub const REQUEST: Self = Self::from_static("request");
    /// One attempt against a provider.
    pub const MODEL_REQUEST: Self = Self::from_static("model_request");
    /// A plan → act → observe loop.
    pub const ACTION_LOOP: Self = Self::from_static("action_loop");
    /// One action call.
    pub const ACTION: Self = Self::from_static("action");
    /// A flow execution.
    pub const WORKFLOW_EXECUTION: Self = Self::from_static("workflow_execution");
    /// One chunk (step) of a flow.
    pub const CHUNK_EXECUTION: Self = Self::from_static("chunk_execution");
}

impl fmt::Debug for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunKind({})", self.0)
    }
}

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Fine-grained detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the run survived.
    Warning,
    /// A failure of a step or of the run.
    Error,
    /// A failure of the runtime itself.
    Critical,
}

/// Where an event sits in the run tree, and the lineage of the execution it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunContext {
    /// This node's id.
    pub run_id: RunId,
    /// What kind of node it is.
    pub run_kind: RunKind,
    /// The node this one is nested in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<RunId>,
    /// The top of the tree (equal to `run_id` for a root).
    pub root_run_id: RunId,
    /// The execution this node belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<ExecutionId>,
    /// The execution that started this execution, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<ExecutionId>,
    /// The agent running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// The agent's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<Arc<str>>,
    /// The flow this run belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<Arc<str>>,
    /// A host-chosen session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Arc<str>>,
    /// Extra run attributes (`attempt_index`, `action_name`, `chunk_id` …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub meta: Map<String, Value>,
}

impl RunContext {
    /// A new root node.
    pub fn root(kind: RunKind) -> Arc<Self> {
        let id = RunId::new();
        Arc::new(Self {
            root_run_id: id.clone(),
            run_id: id,
            run_kind: kind,
            parent_run_id: None,
            execution_id: None,
            parent_execution_id: None,
            agent_id: None,
            agent_name: None,
            flow_name: None,
            session_id: None,
            meta: Map::new(),
        })
    }

    /// A new child node that inherits lineage (execution, agent, flow, session) and
    /// starts with empty `meta`.
    pub fn child(&self, kind: RunKind) -> Self {
        Self {
            run_id: RunId::new(),
            run_kind: kind,
            parent_run_id: Some(self.run_id.clone()),
            root_run_id: self.root_run_id.clone(),
            execution_id: self.execution_id.clone(),
            parent_execution_id: self.parent_execution_id.clone(),
            agent_id: self.agent_id.clone(),
            agent_name: self.agent_name.clone(),
            flow_name: self.flow_name.clone(),
            session_id: self.session_id.clone(),
            meta: Map::new(),
        }
    }

    /// Sets one `meta` attribute (builder style).
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta.insert(key.into(), value.into());
        self
    }
}

/// An error as carried by an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// A type name for the error (usually its code).
    #[serde(rename = "type")]
    pub error_type: Cow<'static, str>,
    /// Human-readable message (redacted like the rest of the event).
    pub message: String,
    /// The stable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Whether a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Structured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// One observation of the runtime: what happened, where in the run tree, and when.
///
/// Events are immutable once emitted and shared as `Arc<RuntimeEvent>`; payloads are
/// redacted and bounded before any hook sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeEvent {
    /// Unique, stable id.
    pub event_id: EventId,
    /// Position in its execution's event sequence: 1, 2, 3 … with no gaps.
    pub seq: u64,
    /// The dotted event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it was emitted.
    pub at: Timestamp,
    /// The run node it belongs to.
    pub run: Arc<RunContext>,
    /// The emitting component (`Agent`, `ModelRequest`, `ActionDispatcher` …).
    pub source: Cow<'static, str>,
    /// Severity.
    pub level: Level,
    /// One-line human text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Event-specific data.
    #[serde(default)]
    pub payload: Value,
    /// The error, for failure events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Free attributes (`coalesced`, `high_frequency` …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub meta: Map<String, Value>,
}

/// An event before the emitter has given it an id, a sequence number and a time.
///
/// The rarely set parts (an error, meta attributes) are boxed: a `NewEvent` is
/// moved through its builder methods and into the emit future, once per event,
/// and inline they made each move a copy of about 400 bytes.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub(crate) event_type: EventType,
    pub(crate) source: Cow<'static, str>,
    pub(crate) level: Level,
    pub(crate) message: Option<String>,
    pub(crate) payload: Value,
    pub(crate) error: Option<Box<ErrorInfo>>,
    pub(crate) meta: Option<Box<Map<String, Value>>>,
}

impl NewEvent {
    /// An `INFO` event of the given type from source `Agentry`.
    pub fn new(event_type: EventType) -> Self {
        Self {
            event_type,
            source: Cow::Borrowed("Agentry"),
            level: Level::Info,
            message: None,
            payload: Value::Null,
            error: None,
            meta: None,
        }
    }
    /// Sets the emitting component.
    pub fn source(mut self, source: impl Into<Cow<'static, str>>) -> Self {
        self.source = source.into();
        self
    }
    /// Sets the level.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
    /// Sets the human-readable message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
    /// Sets the payload.
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }
    /// Attaches an error and raises the level to `ERROR` if it was lower.
    pub fn error(mut self, error: ErrorInfo) -> Self {
        self.error = Some(Box::new(error));
        if self.level < Level::Error {
            self.level = Level::Error;
        }
        self
    }
    /// Sets one meta attribute.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.meta
            .get_or_insert_default()
            .insert(key.into(), value.into());
        self
    }
    /// The type of the event being built.
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_word_is_last_word() {
        assert_eq!(EventType::MODEL_COMPLETED.status_word(), "completed");
        assert_eq!(EventType::MODEL_REQUEST_STARTED.status_word(), "started");
        assert_eq!(EventType::new("plain").status_word(), "plain");
    }

    #[test]
    fn high_frequency_detection() {
        assert!(EventType::MODEL_STREAMING.is_high_frequency());
        assert!(EventType::MODEL_REASONING_DELTA.is_high_frequency());
        assert!(EventType::new("agent_execution.stream_delta").is_high_frequency());
        assert!(!EventType::MODEL_COMPLETED.is_high_frequency());
    }

    #[test]
    fn child_inherits_lineage() {
        let mut root = (*RunContext::root(RunKind::AGENT_EXECUTION)).clone();
        root.execution_id = Some(ExecutionId::new());
        root.agent_name = Some("writer".into());
        let child = root.child(RunKind::REQUEST);
        assert_eq!(child.parent_run_id.as_ref(), Some(&root.run_id));
        assert_eq!(child.root_run_id, root.run_id);
        assert_eq!(child.execution_id, root.execution_id);
        assert_eq!(child.agent_name, root.agent_name);
        assert_ne!(child.run_id, root.run_id);
    }

    #[test]
    fn event_serializes_with_wire_names() {
        let ev = RuntimeEvent {
            event_id: EventId::parse("e-1").unwrap(),
            seq: 1,
            event_type: EventType::REQUEST_STARTED,
            at: Timestamp::from_millis(5),
            run: RunContext::root(RunKind::REQUEST),
            source: "Agentry".into(),
            level: Level::Warning,
            message: None,
            payload: Value::Null,
            error: None,
            meta: Map::new(),
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "request.started");
        assert_eq!(v["level"], "WARNING");
        assert_eq!(v["run"]["run_kind"], "request");
        let back: RuntimeEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
    }
}
