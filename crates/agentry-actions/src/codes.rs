//! Stable diagnostic and record codes. Tests and hosts match on these strings; a code,
//! once shipped, is never renamed.

/// No action with the requested id (or it is hidden from the model).
pub const UNKNOWN_ACTION: &str = "action.unknown";
/// Model-planned input carried keys the action does not declare, or host-only keys; they were removed.
pub const UNEXPECTED_KEYS_STRIPPED: &str = "action.input.unexpected_keys_stripped";
/// A required input key is missing.
pub const REQUIRED_KEYS_MISSING: &str = "action.input.required_keys_missing";
/// The input does not satisfy the action's JSON Schema.
pub const INPUT_SCHEMA_VIOLATION: &str = "action.input.schema_violation";
/// The input is not a JSON object.
pub const INPUT_NOT_OBJECT: &str = "action.input.not_object";
/// The arguments were text that is not JSON.
pub const INPUT_NOT_JSON: &str = "action.input.not_json";
/// The arguments were a JSON object encoded as a string; decoded once.
pub const INPUT_DECODED_JSON_STRING: &str = "action.input.decoded_json_string";
/// Validated input still failed to decode into the action's input type.
pub const INPUT_TYPE_ERROR: &str = "action.input.type_error";
/// The action returned an error.
pub const EXECUTION_FAILED: &str = "action.execution.failed";
/// The action panicked.
pub const EXECUTION_PANICKED: &str = "action.execution.panicked";
/// The action did not finish within its timeout.
pub const EXECUTION_TIMEOUT: &str = "action.execution.timeout";
/// The action needs a sandboxed executor and does not have one.
pub const SANDBOX_REQUIRED: &str = "action.execution.sandbox_required";
/// The action's output could not be encoded as JSON.
pub const OUTPUT_NOT_JSON: &str = "action.output.not_json";
/// The action reported partial success.
pub const PARTIAL_SUCCESS: &str = "action.execution.partial_success";
/// The run's policy denies the action (deny list, or not on the allow list).
pub const POLICY_DENIED: &str = "action.policy.denied";
/// The action's side effect is above the run's ceiling.
pub const POLICY_SIDE_EFFECT_EXCEEDED: &str = "action.policy.side_effect_exceeded";
/// Approval was needed but the policy's approval mode is `never`.
pub const APPROVAL_MODE_NEVER: &str = "approval.mode_never";
/// The approval handler denied the call.
pub const APPROVAL_DENIED: &str = "approval.denied";
/// The approval handler left the call pending.
pub const APPROVAL_PENDING: &str = "approval.pending";
/// The approval handler edited the input and the edit does not fit the schema.
pub const APPROVAL_EDITED_INPUT_INVALID: &str = "approval.edited_input_invalid";
/// The action declares resources and no resolver is configured.
pub const RESOURCE_PROVIDER_MISSING: &str = "resource.provider_missing";
/// The resolver failed to provide a resource.
pub const RESOURCE_UNAVAILABLE: &str = "resource.unavailable";
/// An identical call (same action, same input) earlier in the round was reused.
pub const DUPLICATE_CALL_REUSED: &str = "action.call.duplicate_reused";
/// More calls in one round than the configured cap; the rest were not run.
pub const CALLS_PER_ROUND_EXCEEDED: &str = "action_loop.calls_per_round_exceeded";
/// `dry_run`: validated and normalized, not executed.
pub const DRY_RUN: &str = "action.dry_run";
/// Native tool-call planning returned no tool calls.
pub const NATIVE_TOOL_CALLS_EMPTY: &str = "action_runtime.native_tool_calls.empty";
/// A JSON plan could not be parsed.
pub const JSON_PLAN_UNPARSEABLE: &str = "action_runtime.json_plan.unparseable";
/// A JSON plan command had no action id and was dropped.
pub const JSON_PLAN_COMMAND_INVALID: &str = "action_runtime.json_plan.command_invalid";
/// The loop reached `max_rounds` while the planner still wanted to act.
pub const MAX_ROUNDS_REACHED: &str = "action_loop.max_rounds_reached";
/// The same action failed in consecutive rounds; the loop stopped.
pub const REPEATED_FAILURE: &str = "action_loop.repeated_failure";
/// The evidence gathered did not change for several rounds; the loop stopped.
pub const UNCHANGED_EVIDENCE: &str = "action_loop.unchanged_evidence";
/// An artifact selection key did not resolve in this scope.
pub const ARTIFACT_NOT_FOUND: &str = "action.artifact.not_found";
/// `read_action_artifact` arguments out of range.
pub const ARTIFACT_BAD_RANGE: &str = "action.artifact.bad_range";
