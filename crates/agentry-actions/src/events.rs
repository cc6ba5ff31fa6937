//! Event type names this crate emits. They follow the DevTools console's vocabulary:
//! `action.*` on `action_loop` and `action` runs (status from the last word), and the
//! reference's `policy.approval.*` namespace for approval steps.
use agentry_core::EventType;

/// A loop began (`action_loop` run).
pub const ACTION_LOOP_STARTED: EventType = EventType::from_static("action.loop_started");
/// A planning round produced its decision (payload `round_index`, `decision`).
pub const ACTION_PLAN_READY: EventType = EventType::from_static("action.plan_ready");
/// A call began (`action` run; payload `action_name`, `action_type`, `command`).
pub const ACTION_STARTED: EventType = EventType::from_static("action.started");
/// A call succeeded (payload `action_name`, `record`).
pub const ACTION_COMPLETED: EventType = EventType::from_static("action.completed");
/// A call failed or was refused as an error.
pub const ACTION_FAILED: EventType = EventType::from_static("action.failed");
/// A call was blocked (policy, sandbox, denial, loop guard).
pub const ACTION_BLOCKED: EventType = EventType::from_static("action.blocked");
/// A call waits for approval.
pub const ACTION_APPROVAL_REQUIRED: EventType = EventType::from_static("action.approval_required");
/// The loop finished with an answer.
pub const ACTION_LOOP_COMPLETED: EventType = EventType::from_static("action.loop_completed");
/// The loop failed (model error, stall, cancellation).
pub const ACTION_LOOP_FAILED: EventType = EventType::from_static("action.loop_failed");
/// An approval handler was asked.
pub const APPROVAL_REQUESTED: EventType = EventType::from_static("policy.approval.requested");
/// The handler approved.
pub const APPROVAL_APPROVED: EventType = EventType::from_static("policy.approval.approved");
/// The handler denied (or the mode is `never`).
pub const APPROVAL_DENIED: EventType = EventType::from_static("policy.approval.denied");
/// The handler left the request pending.
pub const APPROVAL_PENDING: EventType = EventType::from_static("policy.approval.pending");
