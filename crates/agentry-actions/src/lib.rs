//! The Agentry Action Runtime: everything a model can trigger passes through it.
//!
//! - **Declare** actions with the [`Action`] trait or `#[action]` on an `async fn`
//!   (typed input, JSON Schema derived with `schemars`), or as a [`FnAction`] closure
//!   with an explicit schema, or as an OpenAI-style [`LegacyTool`].
//! - **Register** them in an [`ActionRegistry`] per agent; an execution sees a
//!   [`RegistryView`] that can add local actions without touching the agent's.
//! - **Dispatch** through one [`Dispatcher`]: host calls ([`HostCall`], trusted) and
//!   model-planned calls ([`PlannedCall`], untrusted) are different types. Every call
//!   ends as an [`ActionRecord`] with one of six statuses and stable codes
//!   ([`codes`]); nothing panics or hangs on bad model output.
//! - **Gate** calls with an [`ActionPolicy`] (allow/deny by id or tag, side-effect
//!   ceiling, approval mode) and an [`ApprovalHandler`] (default [`FailClosed`]).
//! - **Loop** with [`ActionLoop`]: plan (native tool calls or a JSON plan) → dispatch
//!   concurrently → observe → plan again, with round, failure, evidence, deadline and
//!   idle guards. Models are reached through a host [`ModelCaller`].
//! - **Artifacts**: large outputs stay whole in an [`ArtifactScope`]; the model sees a
//!   [`Digest`] and can page with the built-in `read_action_artifact`.
//!
//! # Using it from a host
//!
//! A host (the `agentry` facade's `Execution`) builds an [`ActionLoop`] from the
//! agent's registry (or a [`RegistryView`] with execution-local actions), the run's
//! policy and approval handler, and calls [`ActionLoop::run`] with its emitter, its
//! run context and a [`ModelCaller`] that routes [`CallPurpose::Planning`] and
//! [`CallPurpose::Answer`] to the right model. See [`ActionLoop`] for a runnable
//! example.
//!
//! # Declaring an action with `#[action]`
//!
//! ```
//! use agentry_actions::{action, ActionFailure, ActionRegistry, Action};
//!
//! /// Looks up a user's display name.
//! #[action(tags("users"))]
//! async fn user_name(
//!     /// The user id.
//!     id: u64,
//!     /// Return the name in upper case.
//!     #[action(default)]
//!     upper: bool,
//! ) -> Result<String, ActionFailure> {
//!     let name = format!("user-{id}");
//!     Ok(if upper { name.to_uppercase() } else { name })
//! }
//!
//! let mut registry = ActionRegistry::new();
//! registry.register(UserName)?;
//! assert_eq!(UserName.spec().input_schema["required"], serde_json::json!(["id"]));
//! # Ok::<(), agentry_actions::ActionError>(())
//! ```
//!
//! The expansion names the runtime as `::agentry_actions` (serde, schemars and
//! serde_json through `::agentry_actions::__private`); code that reaches the runtime
//! through a re-export passes `#[action(crate = "path::to::agentry_actions")]`.
//!
//! # Events
//!
//! `action.loop_started`, `action.plan_ready`, `action.loop_completed` /
//! `action.loop_failed` on an `action_loop` run (child of the caller's run);
//! `action.started`, `action.completed` / `action.failed` / `action.blocked` /
//! `action.approval_required` on one `action` run per call (`run.meta.action_name`);
//! approval steps as `policy.approval.requested` / `policy.approval.<outcome>`.
//!
//! # Duplicate calls
//!
//! Identical calls in one round (same action, same argument text) run once; each copy
//! gets its own record (own call id and tool-call id) reusing the result, with the
//! diagnostic `action.call.duplicate_reused`. This holds for `write`/`exec` actions too:
//! repeating an effect because a model repeated itself is never what anyone wants.
#![deny(missing_docs)]

mod action;
#[path = "loop.rs"]
mod action_loop;
mod approval;
mod artifact;
pub mod codes;
mod dispatch;
mod error;
pub mod events;
mod legacy;
pub mod planner;
mod policy;
mod record;
mod registry;
mod summary;

pub use action::{
    Action, ActionContext, ActionFailure, ActionSpec, DynAction, FnAction, ResourceRequirement,
    SideEffect, empty_object_schema, schema_for,
};
pub use action_loop::{
    ActionLoop, CallPurpose, LoopInput, LoopOptions, LoopOutcome, ModelCaller, ProviderCaller,
    StopReason,
};
pub use approval::{
    ApprovalDecision, ApprovalHandler, ApprovalRequest, AutoApprove, CallbackApproval, DenyAll,
    FailClosed, default_handler,
};
pub use artifact::{
    ArtifactPage, ArtifactScope, DigestOptions, MAX_READ_BYTES, READ_ARTIFACT_ACTION_ID, compact,
};
pub use dispatch::{
    AnyCall, CallScope, DispatchOptions, Dispatcher, HOST_ROUND, HostCall, NormalizedCall,
    PlannedArguments, PlannedCall, ResourceResolver,
};
pub use error::ActionError;
pub use legacy::LegacyTool;
pub use planner::PlanningProtocol;
pub use policy::{
    ActionPolicy, ApprovalMode, ApprovalNeed, PolicyRefusal, ResolvedPolicy, Selector,
};
pub use record::{
    ActionRecord, ActionStatus, ApprovalInfo, ApprovalOutcome, CallSource, Digest, RecordError,
    Timing,
};
pub use registry::{ActionInfo, ActionRegistry, RegisteredAction, RegistryView};
pub use summary::{
    DEFAULT_VALIDATION_MARKERS, FailedAction, RecordSummary, ValidationResult, summarize_records,
};

/// `#[action]`: turns an `async fn` into an [`Action`]. See the `agentry-macros` crate.
pub use agentry_macros::action;

/// Paths the `#[action]` expansion uses. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use futures;
    pub use schemars;
    pub use serde;
    pub use serde_json;

    /// Turns an action body's result into the trait's result.
    pub fn into_result<T, E: Into<crate::ActionFailure>>(
        r: Result<T, E>,
    ) -> Result<T, crate::ActionFailure> {
        r.map_err(Into::into)
    }
}
