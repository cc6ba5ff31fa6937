use agentry_core::{ErrorCode, StallError};

/// Errors of the model layer. Messages never contain request bodies or keys.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The provider or pool is misconfigured (missing base URL, bad header …).
    #[error("model configuration error: {0}")]
    Config(String),
    /// No model is registered under this pool key.
    #[error("no model named `{0}` in the model pool")]
    UnknownModel(String),
    /// The connection could not be made or broke before any output.
    #[error("could not reach the model server at {endpoint}: {detail}")]
    Connect {
        /// The endpoint (scheme, host, port and path; no query, no credentials).
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// The server answered with an HTTP error status.
    #[error("model server answered HTTP {status}: {message}")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The server's error message (bounded, redacted).
        message: String,
    },
    /// The response stopped making progress (first event or between events).
    #[error("model response {0}")]
    Stall(#[from] StallError),
    /// The server sent something that is not the protocol (malformed SSE, invalid
    /// JSON, an HTML page …).
    #[error("model protocol error at stage `{stage}`: {detail}")]
    Protocol {
        /// Where it happened (`response_first_event`, `response_stream` …).
        stage: &'static str,
        /// What was wrong (bounded; never the request).
        detail: String,
    },
    /// The stream broke after output had started; the partial output is not retried.
    #[error("model stream interrupted at stage `{stage}`: {detail}")]
    Interrupted {
        /// Where it happened.
        stage: &'static str,
        /// What failed.
        detail: String,
    },
    /// The server reported, inside a successful HTTP response, that generating the
    /// response failed (a Responses `response.failed` or `error` event, or an
    /// `{"error": …}` object in a Chat Completions stream).
    #[error("model response failed at stage `{stage}`: {message}")]
    ResponseFailed {
        /// Where it happened.
        stage: &'static str,
        /// The provider's error code, when it sent one (`server_error` …).
        code: Option<String>,
        /// The provider's message (bounded, redacted).
        message: String,
    },
    /// A scripted or replay model has no turn left for this request.
    #[error("scripted model has no turn left (request {0})")]
    ScriptExhausted(usize),
    /// The request was cancelled.
    #[error("model request cancelled")]
    Cancelled,
}

impl ErrorCode for ModelError {
    fn code(&self) -> &'static str {
        match self {
            ModelError::Config(_) => "model.config",
            ModelError::UnknownModel(_) => "model.unknown_key",
            ModelError::Connect { .. } => "model.connect",
            ModelError::HttpStatus { .. } => "model.http_status",
            ModelError::Stall(_) => "model.stall",
            ModelError::Protocol { .. } => "model.protocol",
            ModelError::Interrupted { .. } => "model.stream_interrupted",
            ModelError::ResponseFailed { .. } => "model.response_failed",
            ModelError::ScriptExhausted(_) => "model.script_exhausted",
            ModelError::Cancelled => "model.cancelled",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ModelError::Connect { .. } => true,
            ModelError::HttpStatus { status, .. } => *status == 429 || *status >= 500,
            ModelError::Stall(s) => s.stage == agentry_core::stage::RESPONSE_FIRST_EVENT,
            _ => false,
        }
    }
}

impl ModelError {
    /// The stage the error belongs to, when it has one.
    pub fn stage(&self) -> Option<&str> {
        match self {
            ModelError::Stall(s) => Some(&s.stage),
            ModelError::Protocol { stage, .. }
            | ModelError::Interrupted { stage, .. }
            | ModelError::ResponseFailed { stage, .. } => Some(stage),
            _ => None,
        }
    }
}
