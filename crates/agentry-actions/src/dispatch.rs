//! The one dispatcher every call passes through, whether host code asked for it
//! ([`HostCall`]) or a model planned it ([`PlannedCall`]).
//!
//! Order of a call: look up → decode arguments → strip undeclared and host-only keys
//! (model calls only) → required keys → JSON Schema → policy → sandbox → resources →
//! approval → execute (timeout, panic capture) → digest. Every outcome, including
//! refusals, is an [`ActionRecord`]; nothing here returns an error or panics.
//!
//! The two call types keep the trust boundary in the compiler: only a `HostCall` can
//! carry an approval grant or host-only keys.
use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agentry_core::{
    ActionCallId, Diagnostic, Emitter, EventType, ExecutionId, Level, NewEvent, RunContext,
    RunKind, Severity,
};
use agentry_model::{ToolArguments, ToolCall, ToolSpec};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};

use crate::action::{ActionContext, ActionFailure, ResourceRequirement, SideEffect};
use crate::approval::{ApprovalDecision, ApprovalHandler, ApprovalRequest, default_handler};
use crate::artifact::{
    self, ARTIFACT_RESOURCE, ArtifactScope, DigestOptions, READ_ARTIFACT_ACTION_ID,
};
use crate::codes;
use crate::events;
use crate::policy::{ActionPolicy, ApprovalNeed, ResolvedPolicy};
use crate::record::{
    ActionRecord, ActionStatus, ApprovalInfo, ApprovalOutcome, CallSource, micros,
};
use crate::registry::{RegisteredAction, RegistryView};

/// The round number host calls carry in their [`ActionCallId`], so they never collide
/// with a loop's planned rounds.
pub const HOST_ROUND: u32 = u32::MAX;

const SOURCE: &str = "ActionDispatcher";

/// A call requested by trusted host code.
///
/// ```
/// use agentry_actions::HostCall;
/// use serde_json::json;
/// let call = HostCall::new("run_bash", json!({"cmd": "ls", "allow_unsafe": true}))
///     .purpose("list files")
///     .approval_granted(true);
/// # let _ = call;
/// ```
#[derive(Debug, Clone)]
pub struct HostCall {
    action_id: String,
    input: Value,
    purpose: Option<String>,
    timeout: Option<Duration>,
    approval_granted: bool,
}

impl HostCall {
    /// A call of `action_id` with `input` (a JSON object).
    pub fn new(action_id: impl Into<String>, input: Value) -> Self {
        Self {
            action_id: action_id.into(),
            input,
            purpose: None,
            timeout: None,
            approval_granted: false,
        }
    }
    /// Why the host calls it.
    pub fn purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self
    }
    /// A timeout for this call only.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// The host has already approved this call (skips the approval handler).
    pub fn approval_granted(mut self, granted: bool) -> Self {
        self.approval_granted = granted;
        self
    }

    /// The call a host runs once a human approved a pending (`approval_required`)
    /// record: same action, same (already validated and stripped) input, approval
    /// granted. Returns `None` for records that are not pending approval.
    pub fn approved_from(record: &ActionRecord) -> Option<Self> {
        (record.status == ActionStatus::ApprovalRequired).then(|| {
            Self::new(record.action_id.clone(), record.input.clone())
                .purpose(record.purpose.clone())
                .approval_granted(true)
        })
    }
}

/// Arguments as a model produced them.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedArguments {
    /// Parsed JSON (may still be a string holding JSON; decoded once).
    Json(Value),
    /// Text that was not JSON.
    Raw(String),
}

/// A call planned by a model. Untrusted: host-only keys are stripped, there is no way
/// to grant approval or set a timeout.
#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub(crate) action_id: String,
    pub(crate) arguments: PlannedArguments,
    pub(crate) purpose: Option<String>,
    pub(crate) source: CallSource,
    pub(crate) tool_call_id: Option<String>,
}

impl PlannedCall {
    /// A native tool call.
    pub fn from_tool_call(call: &ToolCall) -> Self {
        Self {
            action_id: call.name.clone(),
            arguments: match &call.arguments {
                ToolArguments::Json(v) => PlannedArguments::Json(v.clone()),
                ToolArguments::Raw(s) => PlannedArguments::Raw(s.clone()),
            },
            purpose: None,
            source: CallSource::NativeToolCalls,
            tool_call_id: Some(call.id.clone()),
        }
    }

    /// A command of a JSON plan.
    pub fn from_json_plan(
        action_id: impl Into<String>,
        input: Value,
        purpose: Option<String>,
    ) -> Self {
        Self {
            action_id: action_id.into(),
            arguments: PlannedArguments::Json(input),
            purpose,
            source: CallSource::JsonPlan,
            tool_call_id: None,
        }
    }

    /// The action the model named.
    pub fn action_id(&self) -> &str {
        &self.action_id
    }
    /// The raw arguments.
    pub fn arguments(&self) -> &PlannedArguments {
        &self.arguments
    }
    /// The provider's tool-call id, for native calls.
    pub fn tool_call_id(&self) -> Option<&str> {
        self.tool_call_id.as_deref()
    }
    /// Planning protocol the call came from.
    pub fn source(&self) -> CallSource {
        self.source
    }
    /// The purpose given by the planner, or `Use <action>`.
    pub fn purpose(&self) -> String {
        self.purpose
            .clone()
            .unwrap_or_else(|| format!("Use {}", self.action_id))
    }
    pub(crate) fn raw_input_for_record(&self) -> Value {
        match &self.arguments {
            PlannedArguments::Json(v) => v.clone(),
            PlannedArguments::Raw(s) => Value::String(s.clone()),
        }
    }
}

/// Either kind of call.
#[derive(Debug, Clone)]
pub enum AnyCall {
    /// From host code.
    Host(HostCall),
    /// From a model.
    Planned(PlannedCall),
}

impl From<HostCall> for AnyCall {
    fn from(c: HostCall) -> Self {
        AnyCall::Host(c)
    }
}
impl From<PlannedCall> for AnyCall {
    fn from(c: PlannedCall) -> Self {
        AnyCall::Planned(c)
    }
}

/// The result of a dry run: the call as it would execute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NormalizedCall {
    /// The call id it would run under.
    pub call_id: ActionCallId,
    /// The action.
    pub action_id: String,
    /// The input after decoding and stripping.
    pub input: Value,
    /// The purpose.
    pub purpose: String,
    /// Who asked.
    pub source: CallSource,
    /// The action's side effect.
    pub side_effect: SideEffect,
    /// Whether the approval handler would be consulted (`not_needed`, `ask`, `refuse`).
    pub approval: &'static str,
    /// Notes from normalization (stripped keys, decoded strings).
    pub diagnostics: Vec<Diagnostic>,
}

/// Provides managed resources an action declares (implemented by `agentry-exec`).
pub trait ResourceResolver: Send + Sync + fmt::Debug {
    /// Ensures one resource for a call.
    fn ensure<'a>(
        &'a self,
        requirement: &'a ResourceRequirement,
        call_id: &'a ActionCallId,
    ) -> BoxFuture<'a, Result<Arc<dyn Any + Send + Sync>, ActionFailure>>;
    /// Releases the call's resources after it ran (or failed).
    fn release<'a>(&'a self, _call_id: &'a ActionCallId) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Where calls run: the event emitter, the run their `action` runs hang under, the
/// execution and its artifact scope.
#[derive(Debug, Clone)]
pub struct CallScope {
    /// Emits the call's events.
    pub emitter: Emitter,
    /// Parent of each call's `action` run (an `action_loop` run inside a loop).
    pub run: Arc<RunContext>,
    /// The execution.
    pub execution_id: ExecutionId,
    /// Where large outputs are kept.
    pub artifacts: ArtifactScope,
    host_calls: Arc<AtomicU32>,
}

impl CallScope {
    /// A scope with a fresh artifact scope for the execution.
    pub fn new(emitter: Emitter, run: Arc<RunContext>, execution_id: ExecutionId) -> Self {
        let artifacts = ArtifactScope::new(execution_id.clone());
        Self::with_artifacts(emitter, run, execution_id, artifacts)
    }

    /// A scope sharing an existing artifact scope.
    pub fn with_artifacts(
        emitter: Emitter,
        run: Arc<RunContext>,
        execution_id: ExecutionId,
        artifacts: ArtifactScope,
    ) -> Self {
        Self {
            emitter,
            run,
            execution_id,
            artifacts,
            host_calls: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The same scope with another parent run.
    pub fn under(&self, run: Arc<RunContext>) -> Self {
        Self {
            run,
            ..self.clone()
        }
    }
}

/// Dispatcher settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DispatchOptions {
    /// Per-call timeout when neither the host call nor the policy sets one.
    pub action_timeout: Duration,
    /// Output compaction.
    pub digest: DigestOptions,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        Self {
            action_timeout: Duration::from_secs(120),
            digest: DigestOptions::default(),
        }
    }
}

/// Validates, gates and runs calls. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    registry: RegistryView,
    policy: Arc<ResolvedPolicy>,
    approval: Arc<dyn ApprovalHandler>,
    resources: Option<Arc<dyn ResourceResolver>>,
    options: DispatchOptions,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("actions", &self.inner.registry.ids())
            .field("approval", &self.inner.approval.name())
            .finish()
    }
}

struct Prepared {
    entry: Arc<RegisteredAction>,
    record: ActionRecord,
    input: Value,
    need: ApprovalNeed,
    timeout: Option<Duration>,
    builtin_reader: bool,
}

impl Dispatcher {
    /// A dispatcher over a registry view, with the policy resolved now and the default
    /// (fail-closed) approval handler.
    pub fn new(registry: impl Into<RegistryView>, policy: &ActionPolicy) -> Self {
        Self::build(
            registry.into(),
            policy.resolve(),
            default_handler(),
            None,
            DispatchOptions::default(),
        )
    }

    pub(crate) fn build(
        registry: RegistryView,
        policy: Arc<ResolvedPolicy>,
        approval: Arc<dyn ApprovalHandler>,
        resources: Option<Arc<dyn ResourceResolver>>,
        options: DispatchOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                policy,
                approval,
                resources,
                options,
            }),
        }
    }

    fn rebuild(&self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            registry: self.inner.registry.clone(),
            policy: self.inner.policy.clone(),
            approval: self.inner.approval.clone(),
            resources: self.inner.resources.clone(),
            options: self.inner.options,
        };
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Uses another approval handler.
    pub fn with_approval(&self, handler: Arc<dyn ApprovalHandler>) -> Self {
        self.rebuild(|i| i.approval = handler)
    }
    /// Uses a resource resolver.
    pub fn with_resources(&self, resolver: Arc<dyn ResourceResolver>) -> Self {
        self.rebuild(|i| i.resources = Some(resolver))
    }
    /// Uses other options.
    pub fn with_options(&self, options: DispatchOptions) -> Self {
        self.rebuild(|i| i.options = options)
    }

    /// The actions it dispatches to.
    pub fn registry(&self) -> &RegistryView {
        &self.inner.registry
    }

    /// The resolved policy.
    pub fn policy(&self) -> &Arc<ResolvedPolicy> {
        &self.inner.policy
    }

    /// Tools offered to the model: exposed actions the policy allows, in order, plus
    /// `read_action_artifact` when `with_reader`.
    pub fn offered_tools(&self, with_reader: bool) -> Vec<ToolSpec> {
        let mut tools: Vec<ToolSpec> = self
            .inner
            .registry
            .entries()
            .filter(|e| e.spec.expose_to_model && self.inner.policy.check(&e.spec).is_ok())
            .map(|e| e.tool.clone())
            .collect();
        if with_reader && let Some(e) = artifact::reader_entry() {
            tools.push(e.tool.clone());
        }
        tools
    }

    /// Runs a host call. Its id is `(execution, HOST_ROUND, n)` with `n` counting the
    /// scope's host calls.
    pub async fn call(&self, scope: &CallScope, call: HostCall) -> ActionRecord {
        let index = scope.host_calls.fetch_add(1, Ordering::Relaxed);
        let id = ActionCallId::new(scope.execution_id.clone(), HOST_ROUND, index);
        self.dispatch(scope, id, AnyCall::Host(call)).await
    }

    /// Runs a model-planned call under the given id.
    pub async fn call_planned(
        &self,
        scope: &CallScope,
        call_id: ActionCallId,
        call: PlannedCall,
    ) -> ActionRecord {
        self.dispatch(scope, call_id, AnyCall::Planned(call)).await
    }

    /// Validates and normalizes a call without running it (nor asking for approval).
    /// A call that would be refused comes back as its refusal record.
    pub fn dry_run(
        &self,
        call_id: ActionCallId,
        call: impl Into<AnyCall>,
    ) -> Result<NormalizedCall, Box<ActionRecord>> {
        let p = self.prepare(call_id, call.into()).map_err(Box::new)?;
        Ok(NormalizedCall {
            call_id: p.record.call_id.clone(),
            action_id: p.record.action_id.clone(),
            input: p.input,
            purpose: p.record.purpose.clone(),
            source: p.record.source,
            side_effect: p.entry.spec.side_effect,
            approval: match p.need {
                ApprovalNeed::NotNeeded => "not_needed",
                ApprovalNeed::Ask => "ask",
                ApprovalNeed::Refuse => "refuse",
            },
            diagnostics: p.record.diagnostics,
        })
    }

    /// Side effect of an action, if known (the loop uses it to order a round).
    pub(crate) fn side_effect_of(&self, id: &str) -> Option<SideEffect> {
        self.inner.registry.get(id).map(|e| e.spec.side_effect)
    }

    fn lookup(&self, id: &str, from_model: bool) -> Option<(Arc<RegisteredAction>, bool)> {
        if id == READ_ARTIFACT_ACTION_ID && self.inner.registry.get(id).is_none() {
            return artifact::reader_entry().map(|e| (e.clone(), true));
        }
        let e = self.inner.registry.get(id)?;
        if from_model && !e.spec.expose_to_model {
            return None;
        }
        Some((e.clone(), false))
    }

    // Both variants carry a record (the Ok side inside `Prepared`), so boxing the
    // refusal would not shrink the result; it lives on the stack of one call only.
    #[allow(clippy::result_large_err)]
    fn prepare(&self, call_id: ActionCallId, call: AnyCall) -> Result<Prepared, ActionRecord> {
        let (action_id, purpose, source, tool_call_id, raw, timeout, granted) = match call {
            AnyCall::Host(h) => {
                let purpose = h.purpose.unwrap_or_else(|| format!("Use {}", h.action_id));
                (
                    h.action_id,
                    purpose,
                    CallSource::Host,
                    None,
                    PlannedArguments::Json(h.input),
                    h.timeout,
                    h.approval_granted,
                )
            }
            AnyCall::Planned(p) => {
                let purpose = p.purpose();
                (
                    p.action_id,
                    purpose,
                    p.source,
                    p.tool_call_id,
                    p.arguments,
                    None,
                    false,
                )
            }
        };
        let from_model = source.is_model();
        let mut r = ActionRecord::new(call_id, action_id, purpose, source);
        r.tool_call_id = tool_call_id;
        r.input = match &raw {
            PlannedArguments::Json(v) => v.clone(),
            PlannedArguments::Raw(s) => Value::String(s.clone()),
        };

        let Some((entry, builtin_reader)) = self.lookup(&r.action_id, from_model) else {
            let available: Vec<String> = self
                .offered_tools(false)
                .into_iter()
                .take(64)
                .map(|t| t.name)
                .collect();
            let msg = format!("there is no action named `{}`", r.action_id);
            let mut r = r.fail(ActionStatus::Error, codes::UNKNOWN_ACTION, msg);
            r.data = Some(json!({ "available_actions": available }));
            return Err(r);
        };
        let spec = &entry.spec;
        r.side_effect = Some(spec.side_effect);
        r.expose_to_model = spec.expose_to_model || from_model;
        let schema = || json!({ "schema": entry.tool.parameters });

        // Decode the arguments.
        let mut input = match raw {
            PlannedArguments::Raw(text) => match serde_json::from_str::<Value>(text.trim()) {
                Ok(v) => v,
                Err(e) => {
                    let mut r = r.fail(
                        ActionStatus::Error,
                        codes::INPUT_NOT_JSON,
                        format!("the arguments are not JSON: {e}"),
                    );
                    r.data = Some(schema());
                    return Err(r);
                }
            },
            PlannedArguments::Json(v) => v,
        };
        if let Value::String(s) = &input
            && let Ok(decoded @ Value::Object(_)) = serde_json::from_str::<Value>(s.trim())
        {
            r.diagnostics.push(Diagnostic::new(
                codes::INPUT_DECODED_JSON_STRING,
                Severity::Warning,
                "the arguments were a JSON object inside a string; decoded once",
            ));
            input = decoded;
        }
        if input.is_null() {
            input = Value::Object(Default::default());
        }
        let Value::Object(mut map) = input else {
            let mut r = r.fail(
                ActionStatus::Error,
                codes::INPUT_NOT_OBJECT,
                "the arguments must be a JSON object",
            );
            r.data = Some(schema());
            return Err(r);
        };

        // Strip what the model may not set.
        if from_model {
            let mut stripped = BTreeSet::new();
            let mut host_only = BTreeSet::new();
            map.retain(|k, _| {
                if spec.host_only_input_keys.iter().any(|h| h == k) {
                    host_only.insert(k.clone());
                    stripped.insert(k.clone());
                    return false;
                }
                if let Some(declared) = &entry.declared
                    && !declared.iter().any(|d| d == k)
                {
                    stripped.insert(k.clone());
                    return false;
                }
                true
            });
            if !stripped.is_empty() {
                r.diagnostics.push(
                    Diagnostic::new(
                        codes::UNEXPECTED_KEYS_STRIPPED,
                        Severity::Warning,
                        format!("removed keys the action does not accept from the model: {}", join(&stripped)),
                    )
                    .with_detail(json!({"stripped_keys": stripped, "host_only_keys": host_only, "source_protocol": source})),
                );
            }
        }
        let input = Value::Object(map);
        r.input = input.clone();

        let missing: Vec<&String> = entry
            .required
            .iter()
            .filter(|k| input.get(k.as_str()).is_none())
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "missing required keys: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut r = r.fail(ActionStatus::Error, codes::REQUIRED_KEYS_MISSING, msg);
            r.data = Some(json!({"missing": missing, "schema": entry.tool.parameters}));
            return Err(r);
        }
        // Fast path: most calls are valid, and `is_valid` allocates nothing.
        if !entry.validator.is_valid(&input) {
            let errors: Vec<Value> = entry
                .validator
                .iter_errors(&input)
                .take(10)
                .map(|e| json!({"path": e.instance_path().to_string(), "message": e.to_string()}))
                .collect();
            let first = errors
                .first()
                .and_then(|e| e["message"].as_str())
                .unwrap_or("invalid input")
                .to_owned();
            let mut r = r.fail(
                ActionStatus::Error,
                codes::INPUT_SCHEMA_VIOLATION,
                format!("the arguments do not match the schema: {first}"),
            );
            r.data = Some(json!({"errors": errors, "schema": entry.tool.parameters}));
            return Err(r);
        }

        if !builtin_reader && let Err(refusal) = self.inner.policy.check(spec) {
            return Err(r.fail(ActionStatus::Blocked, refusal.code, refusal.reason));
        }
        if spec.sandbox_required && !spec.sandboxed {
            return Err(r.fail(
                ActionStatus::Blocked,
                codes::SANDBOX_REQUIRED,
                format!("action `{}` requires a sandboxed executor", spec.id),
            ));
        }
        if !spec.resources.is_empty() && self.inner.resources.is_none() {
            let kinds: Vec<&str> = spec.resources.iter().map(|x| x.kind.as_str()).collect();
            return Err(r.fail(
                ActionStatus::Blocked,
                codes::RESOURCE_PROVIDER_MISSING,
                format!(
                    "no resource provider is configured for: {}",
                    kinds.join(", ")
                ),
            ));
        }
        let need = if granted || builtin_reader {
            ApprovalNeed::NotNeeded
        } else {
            self.inner.policy.approval_need(spec)
        };
        Ok(Prepared {
            entry,
            record: r,
            input,
            need,
            timeout,
            builtin_reader,
        })
    }

    pub(crate) async fn dispatch(
        &self,
        scope: &CallScope,
        call_id: ActionCallId,
        call: AnyCall,
    ) -> ActionRecord {
        let (timing, clock) = crate::record::Timing::start();
        let (action_name, command) = match &call {
            AnyCall::Host(h) => (
                h.action_id.clone(),
                json!({"action_id": h.action_id, "action_input": h.input, "purpose": h.purpose}),
            ),
            AnyCall::Planned(p) => (
                p.action_id.clone(),
                json!({"action_id": p.action_id, "action_input": p.raw_input_for_record(), "purpose": p.purpose()}),
            ),
        };
        let run = Arc::new(
            scope
                .run
                .child(RunKind::ACTION)
                .with_meta("action_name", action_name.clone())
                .with_meta("action_call_id", call_id.to_string()),
        );
        let prepared = self.prepare(call_id, call);
        let action_type = match &prepared {
            Ok(p) => p.entry.spec.executor_kind.clone(),
            Err(_) => "unknown".to_owned(),
        };
        scope
            .emitter
            .emit(
                &run,
                NewEvent::new(events::ACTION_STARTED)
                    .source(SOURCE)
                    .message(format!("action `{action_name}` started"))
                    .payload(json!({"action_name": action_name, "action_type": action_type, "command": command})),
            )
            .await;
        let mut record = match prepared {
            Err(r) => r,
            Ok(p) => self.execute(scope, &run, p).await,
        };
        record.timing = crate::record::Timing {
            duration_us: micros(clock.elapsed()),
            ..timing
        }
        .with_executor(record.timing.executor_us);
        emit_outcome(scope, &run, &record).await;
        record
    }

    async fn execute(&self, scope: &CallScope, run: &Arc<RunContext>, p: Prepared) -> ActionRecord {
        let Prepared {
            entry,
            mut record,
            mut input,
            need,
            timeout,
            builtin_reader,
        } = p;
        let spec = &entry.spec;
        let mut approved = false;
        match need {
            ApprovalNeed::NotNeeded => {}
            ApprovalNeed::Refuse => {
                record.approval = Some(ApprovalInfo {
                    request_id: format!("apr:{}", record.call_id),
                    handler: "policy".into(),
                    outcome: ApprovalOutcome::Denied,
                    reason: Some("approval mode is `never`".into()),
                    input_edited: false,
                });
                return record.fail(
                    ActionStatus::Blocked,
                    codes::APPROVAL_MODE_NEVER,
                    format!(
                        "action `{}` needs approval and the run's approval mode is `never`",
                        spec.id
                    ),
                );
            }
            ApprovalNeed::Ask => {
                let request = ApprovalRequest {
                    request_id: format!("apr:{}", record.call_id),
                    call_id: record.call_id.clone(),
                    action_id: spec.id.clone(),
                    side_effect: spec.side_effect,
                    input: input.clone(),
                    purpose: record.purpose.clone(),
                    source: record.source,
                    approval_mode: self.inner.policy.approval_mode(),
                };
                let handler = self.inner.approval.clone();
                scope
                    .emitter
                    .emit(
                        run,
                        NewEvent::new(events::APPROVAL_REQUESTED)
                            .source(SOURCE)
                            .payload(json!({"request": request, "handler": handler.name()})),
                    )
                    .await;
                let decision = guarded(|| handler.decide(&request))
                    .await
                    .unwrap_or_else(|_| ApprovalDecision::Deny {
                        reason: "the approval handler panicked".into(),
                    });
                let mut info = ApprovalInfo {
                    request_id: request.request_id.clone(),
                    handler: handler.name().to_owned(),
                    outcome: ApprovalOutcome::Approved,
                    reason: None,
                    input_edited: false,
                };
                let verdict: Result<(), (ActionStatus, &str, String)> = match decision {
                    ApprovalDecision::Approve => Ok(()),
                    ApprovalDecision::ApproveWithInput(edited) => {
                        info.input_edited = true;
                        if edited.is_object() && entry.validator.is_valid(&edited) {
                            input = edited;
                            record.input = input.clone();
                            Ok(())
                        } else {
                            info.outcome = ApprovalOutcome::Denied;
                            Err((
                                ActionStatus::Error,
                                codes::APPROVAL_EDITED_INPUT_INVALID,
                                "the approver's edited input does not match the schema".into(),
                            ))
                        }
                    }
                    ApprovalDecision::Deny { reason } => {
                        info.outcome = ApprovalOutcome::Denied;
                        info.reason = Some(reason.clone());
                        Err((ActionStatus::Blocked, codes::APPROVAL_DENIED, reason))
                    }
                    ApprovalDecision::Pending => {
                        info.outcome = ApprovalOutcome::Pending;
                        Err((
                            ActionStatus::ApprovalRequired,
                            codes::APPROVAL_PENDING,
                            format!(
                                "action `{}` is waiting for approval ({})",
                                spec.id, info.request_id
                            ),
                        ))
                    }
                };
                let (ty, level) = match info.outcome {
                    ApprovalOutcome::Approved => (events::APPROVAL_APPROVED, Level::Info),
                    ApprovalOutcome::Denied => (events::APPROVAL_DENIED, Level::Warning),
                    ApprovalOutcome::Pending => (events::APPROVAL_PENDING, Level::Warning),
                };
                scope
                    .emitter
                    .emit(
                        run,
                        NewEvent::new(ty)
                            .source(SOURCE)
                            .level(level)
                            .payload(json!({"decision": info})),
                    )
                    .await;
                record.approval = Some(info);
                if let Err((status, code, msg)) = verdict {
                    return record.fail(status, code, msg);
                }
                approved = true;
            }
        }

        let limit = timeout
            .or(self.inner.policy.action_timeout())
            .unwrap_or(self.inner.options.action_timeout);
        let mut resources: Vec<(String, Arc<dyn Any + Send + Sync>)> = Vec::new();
        if builtin_reader {
            resources.push((
                ARTIFACT_RESOURCE.to_owned(),
                Arc::new(scope.artifacts.clone()),
            ));
        }
        let resolver = if spec.resources.is_empty() {
            None
        } else {
            self.inner.resources.clone()
        };
        if let Some(resolver) = &resolver {
            for req in &spec.resources {
                let ensured =
                    tokio::time::timeout(limit, guarded(|| resolver.ensure(req, &record.call_id)))
                        .await;
                let failure = match ensured {
                    Ok(Ok(Ok(handle))) => {
                        resources.push((req.kind.clone(), handle));
                        continue;
                    }
                    Ok(Ok(Err(f))) => f.message,
                    Ok(Err(p)) => format!("the resource provider panicked: {}", panic_message(&*p)),
                    Err(_) => format!(
                        "resource `{}` was not ready within {} ms",
                        req.kind,
                        limit.as_millis()
                    ),
                };
                resolver.release(&record.call_id).await;
                return record.fail(ActionStatus::Error, codes::RESOURCE_UNAVAILABLE, failure);
            }
        }

        let ctx = ActionContext::new(
            record.call_id.clone(),
            spec.id.clone(),
            record.purpose.clone(),
            record.source,
            approved,
            resources,
        );
        let started = Instant::now();
        let fut = guarded(|| entry.action.invoke(ctx.clone(), input));
        let outcome = tokio::time::timeout(limit, fut).await;
        record.timing.executor_us = micros(started.elapsed());
        if let Some(resolver) = &resolver {
            resolver.release(&record.call_id).await;
        }
        let (notes, partial) = ctx.take_notes();
        record.diagnostics.extend(notes);
        match outcome {
            Err(_) => record.fail(
                ActionStatus::Error,
                codes::EXECUTION_TIMEOUT,
                format!(
                    "action `{}` did not finish within {} ms",
                    spec.id,
                    limit.as_millis()
                ),
            ),
            Ok(Err(panic)) => record.fail(
                ActionStatus::Error,
                codes::EXECUTION_PANICKED,
                format!("action `{}` panicked: {}", spec.id, panic_message(&*panic)),
            ),
            Ok(Ok(Err(f))) => {
                record.data = f.data;
                let status = if f.blocked {
                    ActionStatus::Blocked
                } else {
                    ActionStatus::Error
                };
                record.fail(status, &f.code, f.message)
            }
            Ok(Ok(Ok(value))) => {
                record.status = if partial.is_some() {
                    ActionStatus::PartialSuccess
                } else {
                    ActionStatus::Success
                };
                if !builtin_reader {
                    self.attach_digest(scope, &mut record, &value);
                }
                record.data = Some(value);
                record
            }
        }
    }

    fn attach_digest(&self, scope: &CallScope, record: &mut ActionRecord, value: &Value) {
        let opts = &self.inner.options.digest;
        // Cheap pre-check: small scalars never need a digest.
        if matches!(value, Value::Null | Value::Bool(_) | Value::Number(_)) {
            return;
        }
        // Measure without building the text: most outputs stay inline.
        if artifact::json_len(value) <= opts.inline_limit {
            return;
        }
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        let len = json.len();
        let key = scope
            .artifacts
            .store(&record.call_id, &record.action_id, Arc::from(json));
        record.digest = Some(artifact::digest(value, len, opts, key));
    }
}

impl crate::record::Timing {
    fn with_executor(mut self, us: u64) -> Self {
        self.executor_us = us;
        self
    }
}

pub(crate) async fn emit_outcome(scope: &CallScope, run: &Arc<RunContext>, record: &ActionRecord) {
    let (ty, level): (EventType, Level) = match record.status {
        ActionStatus::Success | ActionStatus::PartialSuccess => {
            (events::ACTION_COMPLETED, Level::Info)
        }
        ActionStatus::ApprovalRequired => (events::ACTION_APPROVAL_REQUIRED, Level::Warning),
        ActionStatus::Blocked => (events::ACTION_BLOCKED, Level::Warning),
        ActionStatus::Error | ActionStatus::Skipped => (events::ACTION_FAILED, Level::Error),
    };
    let mut ev = NewEvent::new(ty)
        .source(SOURCE)
        .level(level)
        .message(format!("action `{}` {}", record.action_id, record.status.as_str()))
        .payload(json!({"action_name": record.action_id, "status": record.status, "record": record.event_view()}));
    if let Some(e) = &record.error {
        ev = ev.error(agentry_core::ErrorInfo {
            error_type: std::borrow::Cow::Owned(e.code.clone()),
            message: e.message.clone(),
            code: Some(e.code.clone()),
            retryable: Some(false),
            details: None,
        });
        if record.status != ActionStatus::Error {
            ev = ev.level(Level::Warning);
        }
    }
    scope.emitter.emit(run, ev).await;
}

/// Runs host or action code that builds a future, catching a panic both while the
/// future is built (closures run their synchronous part eagerly) and while it runs.
async fn guarded<F: std::future::Future>(
    make: impl FnOnce() -> F,
) -> Result<F::Output, Box<dyn Any + Send>> {
    let fut = std::panic::catch_unwind(AssertUnwindSafe(make))?;
    AssertUnwindSafe(fut).catch_unwind().await
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

fn join(keys: &BTreeSet<String>) -> String {
    keys.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
