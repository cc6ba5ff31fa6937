use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational: something notable that changed nothing.
    Info,
    /// Something was repaired, stripped or skipped.
    Warning,
    /// A step failed.
    Error,
}

/// A structured note attached to a response, a record or an execution, keyed by a
/// stable dotted code (`model.tool_call.arguments_not_json`,
/// `action.input.unexpected_keys_stripped` …) that tests and hosts may match on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Stable dotted code; never renamed once shipped.
    pub code: Cow<'static, str>,
    /// Severity.
    pub severity: Severity,
    /// Human-readable explanation.
    pub message: String,
    /// Structured detail.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl Diagnostic {
    /// A diagnostic with no detail.
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code: code.into(),
            severity,
            message: message.into(),
            detail: Value::Null,
        }
    }

    /// Attaches structured detail.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}
