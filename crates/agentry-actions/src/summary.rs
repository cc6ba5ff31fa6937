//! `summarize_records`: what a list of records says about the work done — commands
//! run, failed actions, and the latest validation (test/lint) result.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{ActionRecord, ActionStatus};

/// Commands that count as validation unless the caller passes its own markers
/// (case-insensitive substring match; the last matching command wins).
pub const DEFAULT_VALIDATION_MARKERS: &[&str] = &[
    "pytest",
    "pyright",
    "ruff",
    "mypy",
    "cargo test",
    "cargo clippy",
    "npm test",
    "pnpm test",
    "yarn test",
    "go test",
];

/// A failed action in a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedAction {
    /// Position in the records.
    pub index: usize,
    /// The action.
    pub action_id: String,
    /// Its status.
    pub status: ActionStatus,
    /// Its error message.
    pub error: Option<String>,
    /// Its command, when it ran one.
    pub command: Option<String>,
}

/// The latest validation command and whether it passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationResult {
    /// Position in the records.
    pub index: usize,
    /// The action.
    pub action_id: String,
    /// The command.
    pub command: String,
    /// Whether it passed (ok status and a zero or absent return code).
    pub passed: bool,
    /// Its return code, when reported.
    pub returncode: Option<i64>,
}

/// The summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSummary {
    /// Records that were real calls (runtime notes excluded).
    pub actions_attempted: usize,
    /// Commands of successful calls, in order.
    pub commands_run: Vec<String>,
    /// Commands of every call, in order.
    pub commands_attempted: Vec<String>,
    /// Calls that did not succeed.
    pub failed_actions: Vec<FailedAction>,
    /// The last validation command.
    pub latest_validation: Option<ValidationResult>,
}

impl RecordSummary {
    /// Whether the latest validation passed (`None` when there was none).
    pub fn validation_passed(&self) -> Option<bool> {
        self.latest_validation.as_ref().map(|v| v.passed)
    }
}

fn command_of(r: &ActionRecord) -> Option<String> {
    let c = r.input.get("cmd").or_else(|| r.input.get("command"))?;
    match c {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => Some(
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

fn returncode_of(r: &ActionRecord) -> Option<i64> {
    let d = r.data.as_ref()?;
    ["returncode", "return_code", "exit_code"]
        .iter()
        .find_map(|k| d.get(*k).and_then(Value::as_i64))
}

/// Summarizes records. `validation_markers` select validation commands
/// (see [`DEFAULT_VALIDATION_MARKERS`]).
pub fn summarize_records(records: &[ActionRecord], validation_markers: &[&str]) -> RecordSummary {
    let markers: Vec<String> = validation_markers
        .iter()
        .map(|m| m.to_ascii_lowercase())
        .collect();
    let mut s = RecordSummary {
        actions_attempted: 0,
        commands_run: Vec::new(),
        commands_attempted: Vec::new(),
        failed_actions: Vec::new(),
        latest_validation: None,
    };
    for (index, r) in records.iter().enumerate() {
        if r.source == crate::record::CallSource::Runtime {
            continue;
        }
        s.actions_attempted += 1;
        let command = command_of(r);
        let rc = returncode_of(r);
        let ok = r.is_ok() && rc.is_none_or(|c| c == 0);
        if let Some(c) = &command {
            s.commands_attempted.push(c.clone());
            if r.is_ok() {
                s.commands_run.push(c.clone());
            }
            let lower = c.to_ascii_lowercase();
            if markers.iter().any(|m| lower.contains(m.as_str())) {
                s.latest_validation = Some(ValidationResult {
                    index,
                    action_id: r.action_id.clone(),
                    command: c.clone(),
                    passed: ok,
                    returncode: rc,
                });
            }
        }
        if !ok {
            s.failed_actions.push(FailedAction {
                index,
                action_id: r.action_id.clone(),
                status: r.status,
                error: r.error.as_ref().map(|e| e.message.clone()),
                command,
            });
        }
    }
    s
}
