//! Approval handlers: who decides whether a gated call may run.
//!
//! The default is [`FailClosed`]: library code never prompts on a terminal, and a call
//! nobody approved does not run; it becomes an `approval_required` record whose
//! `approval.request_id` the host can surface and resume by.
//!
//! Events use the reference vocabulary `policy.approval.requested` and
//! `policy.approval.<approved|denied|pending>`, emitted on the call's `action` run.
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use agentry_core::ActionCallId;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;

use crate::action::SideEffect;
use crate::policy::ApprovalMode;
use crate::record::CallSource;

/// What the handler is asked to decide.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRequest {
    /// Stable id (`apr:<call id>`), the same on every retry of the same call.
    pub request_id: String,
    /// The call.
    pub call_id: ActionCallId,
    /// The action.
    pub action_id: String,
    /// Its side effect.
    pub side_effect: SideEffect,
    /// The input that would run (validated).
    pub input: Value,
    /// The caller's purpose.
    pub purpose: String,
    /// Who asked for the call.
    pub source: CallSource,
    /// The mode that led here.
    pub approval_mode: ApprovalMode,
}

/// A handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalDecision {
    /// Run as requested.
    Approve,
    /// Run with this input instead (validated again against the schema).
    ApproveWithInput(Value),
    /// Do not run (`blocked`).
    Deny {
        /// Why, for the record and the model.
        reason: String,
    },
    /// Nobody decided yet (`approval_required`).
    Pending,
}

/// Decides gated calls. Implement it for interactive or remote approval; the CLI's
/// `--approve ask` handler is one.
pub trait ApprovalHandler: Send + Sync + fmt::Debug {
    /// A short name for records and events.
    fn name(&self) -> &str;
    /// Decides one request.
    fn decide<'a>(&'a self, request: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision>;
}

/// Approves everything. For tests and trusted hosts.
#[derive(Debug, Clone, Copy, Default)]
pub struct AutoApprove;

impl ApprovalHandler for AutoApprove {
    fn name(&self) -> &str {
        "auto_approve"
    }
    fn decide<'a>(&'a self, _: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async { ApprovalDecision::Approve })
    }
}

/// Denies everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

impl ApprovalHandler for DenyAll {
    fn name(&self) -> &str {
        "deny"
    }
    fn decide<'a>(&'a self, r: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async move {
            ApprovalDecision::Deny {
                reason: format!("approval handler `deny` refuses `{}`", r.action_id),
            }
        })
    }
}

/// Leaves every request pending (the default): the call does not run and its record
/// carries the request id.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailClosed;

impl ApprovalHandler for FailClosed {
    fn name(&self) -> &str {
        "fail_closed"
    }
    fn decide<'a>(&'a self, _: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async { ApprovalDecision::Pending })
    }
}

type CallbackFn = dyn Fn(ApprovalRequest) -> BoxFuture<'static, ApprovalDecision> + Send + Sync;

/// A host callback: async, may approve, deny, edit the input or leave pending.
///
/// ```
/// use agentry_actions::{ApprovalDecision, CallbackApproval};
/// let handler = CallbackApproval::new("ops", |req| async move {
///     if req.action_id == "delete" { ApprovalDecision::Deny { reason: "no".into() } } else { ApprovalDecision::Approve }
/// });
/// # let _ = handler;
/// ```
#[derive(Clone)]
pub struct CallbackApproval {
    name: String,
    f: Arc<CallbackFn>,
}

impl fmt::Debug for CallbackApproval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackApproval")
            .field("name", &self.name)
            .finish()
    }
}

impl CallbackApproval {
    /// Wraps an async closure.
    pub fn new<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(ApprovalRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ApprovalDecision> + Send + 'static,
    {
        Self {
            name: name.into(),
            f: Arc::new(move |r| Box::pin(f(r))),
        }
    }
}

impl ApprovalHandler for CallbackApproval {
    fn name(&self) -> &str {
        &self.name
    }
    fn decide<'a>(&'a self, request: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        (self.f)(request.clone())
    }
}

/// The default handler: [`FailClosed`].
pub fn default_handler() -> Arc<dyn ApprovalHandler> {
    Arc::new(FailClosed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::ExecutionId;
    use serde_json::json;

    fn req() -> ApprovalRequest {
        let call_id = ActionCallId::new(ExecutionId::new(), 0, 0);
        ApprovalRequest {
            request_id: format!("apr:{call_id}"),
            call_id,
            action_id: "rm".into(),
            side_effect: SideEffect::Write,
            input: json!({}),
            purpose: "clean up".into(),
            source: CallSource::Host,
            approval_mode: ApprovalMode::Auto,
        }
    }

    #[tokio::test]
    async fn builtin_handlers() {
        let r = req();
        assert_eq!(AutoApprove.decide(&r).await, ApprovalDecision::Approve);
        assert_eq!(FailClosed.decide(&r).await, ApprovalDecision::Pending);
        assert!(matches!(
            DenyAll.decide(&r).await,
            ApprovalDecision::Deny { .. }
        ));
        assert_eq!(default_handler().name(), "fail_closed");
        let cb = CallbackApproval::new("cb", |r| async move {
            ApprovalDecision::ApproveWithInput(json!({"purpose": r.purpose}))
        });
        assert_eq!(
            cb.decide(&r).await,
            ApprovalDecision::ApproveWithInput(json!({"purpose": "clean up"}))
        );
    }
}
