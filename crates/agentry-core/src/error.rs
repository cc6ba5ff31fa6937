use std::borrow::Cow;

use crate::event::ErrorInfo;

/// Every error enum in Agentry implements this: a stable dotted code that hosts and
/// tests may key on. A code, once shipped, is never renamed.
pub trait ErrorCode: std::error::Error {
    /// The stable dotted code, e.g. `model.stall`.
    fn code(&self) -> &'static str;

    /// Whether retrying the same operation may succeed.
    fn retryable(&self) -> bool {
        false
    }

    /// The error as it appears inside a [`RuntimeEvent`](crate::RuntimeEvent).
    fn error_info(&self) -> ErrorInfo {
        ErrorInfo {
            error_type: Cow::Borrowed(self.code()),
            message: self.to_string(),
            code: Some(self.code().to_owned()),
            retryable: Some(self.retryable()),
            details: None,
        }
    }
}

/// Errors raised by this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// An identifier was empty, too long or held control characters.
    #[error("invalid {kind} id: {reason}")]
    InvalidId {
        /// Which id type was being parsed.
        kind: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A hook with this name is already registered.
    #[error("a hook named `{0}` is already registered")]
    DuplicateHook(String),
    /// A background hook needs a running Tokio runtime.
    #[error("background hook `{0}` needs a running Tokio runtime")]
    NoAsyncRuntime(String),
    /// A delivery policy value was out of range.
    #[error("invalid delivery policy for hook `{hook}`: {reason}")]
    InvalidDelivery {
        /// The hook's name.
        hook: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ErrorCode for CoreError {
    fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidId { .. } => "core.invalid_id",
            CoreError::DuplicateHook(_) => "core.hook_duplicate",
            CoreError::NoAsyncRuntime(_) => "core.no_async_runtime",
            CoreError::InvalidDelivery { .. } => "core.invalid_delivery",
        }
    }
}
