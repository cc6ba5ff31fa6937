//! What an execution reports about itself besides its answer.
use agentry_actions::{ActionRecord, StopReason};
use agentry_core::{AgentId, Diagnostic, ErrorInfo, ExecutionId, StallError, Timestamp};
use agentry_model::{ProviderInfo, Usage};
use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// Lifecycle of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Built, not started.
    Created,
    /// Running.
    Running,
    /// Finished with an answer.
    Success,
    /// Finished with an error.
    Error,
    /// Cancelled by the host.
    Cancelled,
}

/// How the execution was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// One model request (with retries), no actions.
    ModelRequest,
    /// The plan → act → observe loop over the available actions, then an answer.
    ActionLoop,
}

/// What the action loop did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionLoopMeta {
    /// Planning rounds that executed actions.
    pub rounds: u32,
    /// Why planning stopped.
    pub stop: StopReason,
    /// Every action record, in call order (the host's view: full data).
    pub action_logs: Vec<ActionRecord>,
    /// The records as the model saw them (digests, previews).
    pub tool_logs: Vec<ActionRecord>,
}

/// One request to the model layer, as logged in the meta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRequestLog {
    /// 1-based position among the execution's model requests.
    pub index: u32,
    /// The pool key the model was chosen by.
    pub model_key: String,
    /// The provider that served it.
    pub provider: ProviderInfo,
    /// When the request started.
    pub started_at: Timestamp,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Milliseconds until the first output, if any arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_output_ms: Option<u64>,
    /// Retries before output.
    pub retries: u32,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Finish reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Provider response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// The failure, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// A limit that tripped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitEvent {
    /// The limit's name.
    pub limit: String,
    /// Its configured value.
    pub value: String,
    /// How much was used.
    pub used: String,
    /// When it tripped.
    pub at: Timestamp,
}

/// Budget accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Model requests made so far.
    pub model_requests_used: u32,
    /// The configured maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_requests: Option<u32>,
}

/// Everything that went wrong or was notable, keyed for machines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Budget accounting.
    pub budget: Budget,
    /// Limits that tripped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limit_events: Vec<LimitEvent>,
    /// Errors, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorInfo>,
    /// Idle-limit stalls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stalls: Vec<StallError>,
    /// Deadline timeouts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeouts: Vec<StallError>,
    /// Other coded notes (repairs, non-JSON tool arguments …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Diagnostic>,
}

/// The agent an execution ran for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRef {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
}

/// Lineage of an execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The execution that started this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_execution_id: Option<ExecutionId>,
    /// The flow this execution belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
}

/// What an execution reports about itself: route, usage, model request log and
/// diagnostics. Available whether it succeeded or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionMeta {
    /// The execution's id.
    pub execution_id: ExecutionId,
    /// The agent.
    pub agent: AgentRef,
    /// Lineage.
    pub lineage: Lineage,
    /// Final (or current) status.
    pub status: ExecutionStatus,
    /// How it was carried out.
    pub route: Route,
    /// Effective limits.
    pub limits: Limits,
    /// What the action loop did, when the execution used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<ActionLoopMeta>,
    /// Total usage over all model requests.
    pub usage: Usage,
    /// Every model request, in order.
    pub model_requests: Vec<ModelRequestLog>,
    /// Diagnostics.
    pub diagnostics: Diagnostics,
    /// When it started.
    pub started_at: Timestamp,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Number of RuntimeEvents emitted.
    pub event_count: u64,
}
