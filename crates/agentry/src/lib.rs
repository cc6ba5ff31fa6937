//! **Agentry** — an agent runtime for Rust.
//!
//! A [`Runtime`] owns a pool of models and an event center; an [`Agent`] holds
//! standing instructions; `agent.input(..)` drafts an [`Execution`] that runs one
//! request with limits, streams [`RuntimeEvent`]s and reports text, structured
//! data and meta.
//!
//! ```
//! use agentry::{Limits, Runtime};
//! use futures::StreamExt;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), agentry::AgentryError> {
//! let runtime = Runtime::builder().test_model().build()?;
//! let agent = runtime.agent("helper").instructions("Be brief.");
//! let execution = agent
//!     .input("Say hello")
//!     .limits(Limits::new().max_seconds(30.0).max_model_requests(2))
//!     .start()?;
//! let text = execution.text().await?;
//! let meta = execution.meta().await;
//! let events: Vec<_> = execution.events().collect().await;
//! assert!(!text.is_empty());
//! assert_eq!(meta.diagnostics.budget.model_requests_used, 1);
//! assert_eq!(events.first().map(|e| e.event_type.as_str()), Some("agent_execution.started"));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod agent;
mod error;
mod execution;
mod limits;
mod meta;
mod output;
mod runtime;
mod structured;

pub use agent::Agent;
pub use error::AgentryError;
pub use execution::{Execution, ExecutionBuilder, ExecutionResult};
pub use limits::Limits;
pub use meta::{
    ActionLoopMeta, AgentRef, Budget, Diagnostics, ExecutionMeta, ExecutionStatus, LimitEvent,
    Lineage, ModelRequestLog, Route,
};
pub use runtime::{Runtime, RuntimeBuilder, Settings};

/// The Action Runtime: actions, registry, dispatcher, policy, approval, loop.
/// `#[action(crate = "::agentry::actions")]` generates code against this path.
pub use agentry_actions as actions;
pub use agentry_actions::{
    Action, ActionPolicy, ActionRecord, ActionStatus, FnAction, SideEffect, action,
};
/// Shared foundations: ids, events, the event center, redaction, diagnostics.
pub use agentry_core as core;
pub use agentry_core::{
    Diagnostic, ErrorCode, EventCenter, EventType, Hook, HookOptions, RunContext, RunKind,
    RuntimeEvent, Severity, hook_fn,
};
/// The model layer: providers, pool, request and stream types.
pub use agentry_model as model;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
