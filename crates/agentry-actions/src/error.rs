//! The crate's one error enum. Most failures of a *call* are not errors at all: they
//! become [`ActionRecord`](crate::ActionRecord)s with a status and a code, so a model
//! can read them and try again. `ActionError` is reserved for what stops a
//! registration or a whole loop.
use std::borrow::Cow;

use agentry_core::{ErrorCode, StallError};
use agentry_model::ModelError;

/// Errors of registration, configuration and of the action loop as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// An action with this id is already registered and replacement was not asked for.
    #[error("an action with id `{0}` is already registered")]
    DuplicateId(String),
    /// The action's declaration is unusable (empty id, bad schema, required host-only key …).
    #[error("invalid declaration of action `{action}`: {reason}")]
    InvalidSpec {
        /// The action id.
        action: String,
        /// What is wrong.
        reason: String,
    },
    /// Loop or dispatcher options out of range.
    #[error("invalid action options: {0}")]
    InvalidOptions(String),
    /// The model call failed; the code is the model layer's own.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The host's [`ModelCaller`](crate::ModelCaller) refused or failed the call
    /// (a limit was reached, say); the code is the host's.
    #[error("{message}")]
    Host {
        /// The host's stable code.
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// The loop ran past its deadline or made no progress for its idle limit
    /// (`stage = "action_loop_close"`).
    #[error("action loop {0}")]
    Stall(#[from] StallError),
    /// The loop was cancelled by its caller.
    #[error("action loop cancelled")]
    Cancelled,
}

impl ActionError {
    /// An error raised by a host [`ModelCaller`](crate::ModelCaller).
    pub fn host(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Host {
            code,
            message: message.into().into_owned(),
        }
    }
}

impl ErrorCode for ActionError {
    fn code(&self) -> &'static str {
        match self {
            ActionError::DuplicateId(_) => "action.registry.duplicate_id",
            ActionError::InvalidSpec { .. } => "action.registry.invalid_spec",
            ActionError::InvalidOptions(_) => "action.options.invalid",
            ActionError::Model(e) => e.code(),
            ActionError::Host { code, .. } => code,
            ActionError::Stall(_) => "action_loop.stalled",
            ActionError::Cancelled => "action_loop.cancelled",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ActionError::Model(e) => e.retryable(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::{StallStatus, stage};
    use std::time::Duration;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            ActionError::DuplicateId("x".into()).code(),
            "action.registry.duplicate_id"
        );
        assert_eq!(ActionError::Cancelled.code(), "action_loop.cancelled");
        let stall = StallError::new(
            stage::ACTION_LOOP_CLOSE,
            StallStatus::TimedOut,
            Duration::from_millis(5),
            Duration::from_millis(5),
        );
        assert_eq!(ActionError::from(stall).code(), "action_loop.stalled");
        assert_eq!(
            ActionError::from(ModelError::Cancelled).code(),
            "model.cancelled"
        );
        assert_eq!(
            ActionError::host("limits.exceeded", "x").code(),
            "limits.exceeded"
        );
    }
}
