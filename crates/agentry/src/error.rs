use std::sync::Arc;

use agentry_actions::ActionError;
use agentry_core::{ErrorCode, StallError};
use agentry_model::ModelError;
use agentry_workspace::WorkspaceError;

/// Errors of the facade: building, running and reading executions.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AgentryError {
    /// A limit was given an impossible value; refused before anything runs.
    #[error("invalid limit {limit} = {value}: {reason}")]
    InvalidLimit {
        /// The limit's name.
        limit: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The runtime or a request is misconfigured.
    #[error("configuration error: {0}")]
    Config(String),
    /// A model request failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The action loop failed (or an action was refused at registration).
    #[error(transparent)]
    Action(Arc<ActionError>),
    /// A Workspace operation failed.
    #[error(transparent)]
    Workspace(Arc<WorkspaceError>),
    /// The operation needs a Workspace and none is bound to the runtime.
    #[error("no Workspace is bound: build the runtime with .workspace(..)")]
    NoWorkspace,
    /// A limit was reached.
    #[error("limit {limit} = {value} exceeded (used {used})")]
    LimitExceeded {
        /// The limit's name.
        limit: &'static str,
        /// Its configured value.
        value: String,
        /// How much was used when it tripped.
        used: String,
    },
    /// The execution ran past `max_seconds` or made no progress for
    /// `max_no_progress_seconds`.
    #[error("execution {0}")]
    Stall(StallError),
    /// The answer did not satisfy the output contract.
    #[error("the answer does not satisfy the output schema: {0}")]
    OutputInvalid(String),
    /// Required keys were still missing after the corrective re-requests.
    #[error("the answer is missing required keys: {}{}", missing.join(", "), if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    OutputMissingKeys {
        /// The concrete paths that are absent or null.
        missing: Vec<String>,
        /// Other schema violations, if any.
        detail: String,
    },
    /// A key path that the output contract cannot have.
    #[error("unknown key path `{path}`: {reason}")]
    UnknownKeyPath {
        /// The path as given.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// The execution ended without a value at this path.
    #[error("no value at `{0}`: the execution ended without producing it")]
    KeyUnavailable(String),
    /// `data()` was asked of an execution that has no output schema.
    #[error("this execution has no output schema; use text() or give .output_schema(..)")]
    NoOutputSchema,
    /// The structured answer could not be converted to the requested Rust type.
    #[error("the answer does not fit the requested type: {0}")]
    DataType(Arc<serde_json::Error>),
    /// The execution was cancelled.
    #[error("execution cancelled")]
    Cancelled,
    /// The execution task ended without a result (it panicked or was aborted).
    #[error("execution task ended abnormally: {0}")]
    Internal(String),
}

impl From<WorkspaceError> for AgentryError {
    fn from(e: WorkspaceError) -> Self {
        AgentryError::Workspace(Arc::new(e))
    }
}

impl From<ActionError> for AgentryError {
    fn from(e: ActionError) -> Self {
        AgentryError::Action(Arc::new(e))
    }
}

impl ErrorCode for AgentryError {
    fn code(&self) -> &'static str {
        match self {
            AgentryError::InvalidLimit { .. } => "execution.invalid_limit",
            AgentryError::Config(_) => "execution.config",
            AgentryError::Model(e) => e.code(),
            AgentryError::Action(e) => e.code(),
            AgentryError::Workspace(e) => e.code(),
            AgentryError::NoWorkspace => "execution.no_workspace",
            AgentryError::LimitExceeded { .. } => "execution.limit_exceeded",
            AgentryError::Stall(_) => "execution.stall",
            AgentryError::OutputInvalid(_) => "execution.output_invalid",
            AgentryError::NoOutputSchema => "execution.no_output_schema",
            AgentryError::OutputMissingKeys { .. } => "execution.output_missing_keys",
            AgentryError::UnknownKeyPath { .. } => "execution.unknown_key_path",
            AgentryError::KeyUnavailable(_) => "execution.key_unavailable",
            AgentryError::DataType(_) => "execution.data_type",
            AgentryError::Cancelled => "execution.cancelled",
            AgentryError::Internal(_) => "execution.internal",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            AgentryError::Model(e) => e.retryable(),
            _ => false,
        }
    }
}
