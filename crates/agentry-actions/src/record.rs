//! [`ActionRecord`]: what one call produced, in the shape hosts, events and the model
//! each read. The record keeps the exact output (`data`); the model reads
//! [`ActionRecord::model_view`], which carries a bounded [`Digest`] instead when the
//! output is large.
use std::time::Duration;

use agentry_core::{ActionCallId, Diagnostic, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::action::SideEffect;

/// The outcome of one call. The six values are a stable contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Ran and succeeded.
    Success,
    /// Refused before running, or failed while running.
    Error,
    /// Not run: policy, sandbox, resource or denial, or a loop guard.
    Blocked,
    /// Not run: waiting for approval (see the record's `approval.request_id`).
    ApprovalRequired,
    /// Not run and not an error (planning notes, dry runs).
    Skipped,
    /// Ran; part of the work was done.
    PartialSuccess,
}

impl ActionStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Success => "success",
            ActionStatus::Error => "error",
            ActionStatus::Blocked => "blocked",
            ActionStatus::ApprovalRequired => "approval_required",
            ActionStatus::Skipped => "skipped",
            ActionStatus::PartialSuccess => "partial_success",
        }
    }

    /// `success` or `partial_success`.
    pub fn is_ok(self) -> bool {
        matches!(self, ActionStatus::Success | ActionStatus::PartialSuccess)
    }
}

/// Who asked for a call. Model-planned sources are the untrusted ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSource {
    /// Host code ([`HostCall`](crate::HostCall)).
    Host,
    /// The model, through native tool calls.
    NativeToolCalls,
    /// The model, through the JSON-plan protocol.
    JsonPlan,
    /// The runtime itself (loop guards, planning notes).
    Runtime,
}

impl CallSource {
    /// Whether the call's input came from a model.
    pub fn is_model(self) -> bool {
        matches!(self, CallSource::NativeToolCalls | CallSource::JsonPlan)
    }
}

/// Why a record failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordError {
    /// Stable dotted code (see [`codes`](crate::codes)).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// What the approval step decided for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// Approved; the call ran.
    Approved,
    /// Denied; the call is `blocked`.
    Denied,
    /// Left pending; the call is `approval_required`.
    Pending,
}

/// The approval part of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalInfo {
    /// Stable id of the approval request (`apr:<call id>`); a host resumes by it.
    pub request_id: String,
    /// The handler that decided.
    pub handler: String,
    /// What it decided.
    pub outcome: ApprovalOutcome,
    /// Its reason, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the handler replaced the input.
    #[serde(default)]
    pub input_edited: bool,
}

/// When a call ran and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Wall-clock start.
    pub started_at: Timestamp,
    /// Time spent in the runtime and the action, in microseconds.
    pub duration_us: u64,
    /// Time spent inside the action's executor only, in microseconds.
    #[serde(default)]
    pub executor_us: u64,
}

impl Timing {
    pub(crate) fn start() -> (Self, std::time::Instant) {
        (
            Self {
                started_at: Timestamp::now(),
                duration_us: 0,
                executor_us: 0,
            },
            std::time::Instant::now(),
        )
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The compact form of a large output that the model sees instead of the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// A bounded, redacted preview of the output.
    pub preview: Value,
    /// Size of the full output as compact JSON, in bytes.
    pub total_bytes: usize,
    /// Whether the preview omits part of the output.
    pub truncated: bool,
    /// Top-level item count (arrays) or key count (objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Key for `read_action_artifact`; absent once the artifact scope is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_key: Option<String>,
}

/// What one action call produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Stable id `(execution, round, index)`.
    pub call_id: ActionCallId,
    /// The action called (as the caller named it; may be unknown).
    pub action_id: String,
    /// Why it was called.
    pub purpose: String,
    /// Who asked.
    pub source: CallSource,
    /// Outcome.
    pub status: ActionStatus,
    /// The input as executed (after decoding and stripping), or as received when refused early.
    pub input: Value,
    /// The exact output (success), or structured detail of a refusal (validation errors, schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordError>,
    /// Notes with stable codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// Timing.
    pub timing: Timing,
    /// Approval, when the call went through the approval step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalInfo>,
    /// The model's view of a large output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Whether the model sees this record (tool logs).
    pub expose_to_model: bool,
    /// The action's side effect, when the action is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_effect: Option<SideEffect>,
    /// The provider's tool-call id (native tool calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ActionRecord {
    pub(crate) fn new(
        call_id: ActionCallId,
        action_id: String,
        purpose: String,
        source: CallSource,
    ) -> Self {
        Self {
            call_id,
            action_id,
            purpose,
            source,
            status: ActionStatus::Skipped,
            input: Value::Null,
            data: None,
            error: None,
            diagnostics: Vec::new(),
            timing: Timing {
                started_at: Timestamp::now(),
                duration_us: 0,
                executor_us: 0,
            },
            approval: None,
            digest: None,
            expose_to_model: true,
            side_effect: None,
            tool_call_id: None,
        }
    }

    pub(crate) fn fail(
        mut self,
        status: ActionStatus,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        self.status = status;
        self.error = Some(RecordError {
            code: code.to_owned(),
            message: message.into(),
        });
        self
    }

    /// Whether the call succeeded (fully or partly).
    pub fn is_ok(&self) -> bool {
        self.status.is_ok()
    }

    /// The error code, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.error.as_ref().map(|e| e.code.as_str())
    }

    /// Whether any diagnostic carries this code.
    pub fn has_diagnostic(&self, code: &str) -> bool {
        self.diagnostics.iter().any(|d| d.code == code)
    }

    /// What the model reads for this call: status, the output or its digest, the
    /// error and the codes of the diagnostics. Never the artifact's full value.
    pub fn model_view(&self) -> Value {
        let mut m = Map::new();
        m.insert("action_id".into(), Value::String(self.action_id.clone()));
        m.insert("status".into(), Value::String(self.status.as_str().into()));
        match (&self.digest, &self.data) {
            (Some(d), _) => {
                m.insert("digest".into(), json!(d));
            }
            (None, Some(data)) => {
                m.insert("data".into(), data.clone());
            }
            (None, None) => {}
        }
        if let Some(e) = &self.error {
            m.insert(
                "error".into(),
                json!({"code": e.code, "message": e.message}),
            );
        }
        if let Some(a) = &self.approval {
            m.insert(
                "approval".into(),
                json!({"request_id": a.request_id, "outcome": a.outcome}),
            );
        }
        if !self.diagnostics.is_empty() {
            let notes: Vec<Value> = self
                .diagnostics
                .iter()
                .map(|d| json!({"code": d.code, "message": d.message}))
                .collect();
            m.insert("notes".into(), Value::Array(notes));
        }
        Value::Object(m)
    }

    /// A bounded view for event payloads: ids, status, error, and the output or digest.
    pub(crate) fn event_view(&self) -> Value {
        let mut v = self.model_view();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("call_id".into(), Value::String(self.call_id.to_string()));
            obj.insert("ok".into(), Value::Bool(self.is_ok()));
            obj.insert("kwargs".into(), self.input.clone());
            obj.insert("purpose".into(), Value::String(self.purpose.clone()));
            if let Some(data) = obj.remove("data") {
                obj.insert("result".into(), crate::artifact::compact(&data, 2048));
            }
            obj.insert("timing".into(), json!(self.timing));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::ExecutionId;

    #[test]
    fn status_wire_names() {
        let all = [
            ActionStatus::Success,
            ActionStatus::Error,
            ActionStatus::Blocked,
            ActionStatus::ApprovalRequired,
            ActionStatus::Skipped,
            ActionStatus::PartialSuccess,
        ];
        for s in all {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(ActionStatus::PartialSuccess.is_ok());
        assert!(!ActionStatus::Blocked.is_ok());
    }

    #[test]
    fn model_view_prefers_digest() {
        let mut r = ActionRecord::new(
            ActionCallId::new(ExecutionId::new(), 0, 0),
            "a".into(),
            "p".into(),
            CallSource::Host,
        );
        r.status = ActionStatus::Success;
        r.data = Some(json!({"big": "x"}));
        assert_eq!(r.model_view()["data"]["big"], "x");
        r.digest = Some(Digest {
            preview: json!("x"),
            total_bytes: 10,
            truncated: true,
            count: None,
            selection_key: Some("sel_1".into()),
        });
        let v = r.model_view();
        assert!(v.get("data").is_none());
        assert_eq!(v["digest"]["selection_key"], "sel_1");
    }
}
