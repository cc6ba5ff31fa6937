//! The action loop: plan → dispatch → observe → plan again, until the model answers.
//!
//! Calls of one round run concurrently (up to `concurrency`), their records kept in
//! call order; `write` and `exec` actions run one at a time, in plan order, by default.
//! Guards end the loop with a visible `blocked` record and then ask for the answer from
//! what was gathered: `max_rounds`, the same action failing in consecutive rounds,
//! and unchanged evidence. Deadlines (`loop_timeout`, `idle_timeout`) and
//! cancellation end it with an [`ActionError`] instead.
//!
//! The loop never calls a model provider itself: it goes through a [`ModelCaller`]
//! the host implements, so the host keeps model accounting, limits and `model.*`
//! events in one place.
use std::collections::{HashMap, hash_map::DefaultHasher};
use std::fmt;
use std::future::pending;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentry_core::{
    ActionCallId, Diagnostic, Emitter, ErrorCode, ExecutionId, Level, NewEvent, RunContext,
    RunKind, Severity, StallError, StallStatus, stage,
};
use agentry_model::{Message, ModelProvider, ModelRequest, ModelResponse, OutputSchema};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::SideEffect;
use crate::approval::{ApprovalHandler, default_handler};
use crate::artifact::ArtifactScope;
use crate::codes;
use crate::dispatch::{CallScope, DispatchOptions, Dispatcher, PlannedCall, ResourceResolver};
use crate::error::ActionError;
use crate::events;
use crate::planner::{Plan, PlanningProtocol, json_plan, native};
use crate::policy::ActionPolicy;
use crate::record::{ActionRecord, ActionStatus, CallSource};
use crate::registry::RegistryView;

const SOURCE: &str = "ActionLoop";

/// Why the loop asks the model: lets the host pick the model-pool key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPurpose {
    /// Choosing the next actions.
    Planning,
    /// Writing the final answer.
    Answer,
}

/// How the loop reaches a model. The host implements it (accounting, limits,
/// `model.*` events); [`ProviderCaller`] is the plain version.
pub trait ModelCaller: Send + Sync {
    /// Sends one request.
    fn call(
        &self,
        purpose: CallPurpose,
        request: ModelRequest,
    ) -> BoxFuture<'_, Result<ModelResponse, ActionError>>;
}

/// A [`ModelCaller`] over two providers: one plans, one answers (may be the same).
#[derive(Debug, Clone)]
pub struct ProviderCaller {
    /// Used for planning requests.
    pub planner: Arc<dyn ModelProvider>,
    /// Used for the final answer.
    pub answer: Arc<dyn ModelProvider>,
}

impl ProviderCaller {
    /// One provider for both purposes.
    pub fn single(model: Arc<dyn ModelProvider>) -> Self {
        Self {
            planner: model.clone(),
            answer: model,
        }
    }
}

impl ModelCaller for ProviderCaller {
    fn call(
        &self,
        purpose: CallPurpose,
        request: ModelRequest,
    ) -> BoxFuture<'_, Result<ModelResponse, ActionError>> {
        let model = match purpose {
            CallPurpose::Planning => &self.planner,
            CallPurpose::Answer => &self.answer,
        };
        let fut = model.complete(request);
        Box::pin(async move { fut.await.map_err(ActionError::from) })
    }
}

/// Loop settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopOptions {
    /// Planning protocol.
    pub protocol: PlanningProtocol,
    /// Most planning rounds that execute actions (default 10).
    pub max_rounds: u32,
    /// Most calls of one round in flight at once (default 8).
    pub concurrency: usize,
    /// Run `write`/`exec` actions one at a time, in plan order (default true).
    pub sequential_side_effects: bool,
    /// Most calls executed per round; the rest are recorded as `blocked` (default 64).
    pub max_calls_per_round: usize,
    /// Stop when one action failed in this many consecutive rounds (default 2).
    pub max_consecutive_failed_rounds: u32,
    /// Stop when the successful evidence was identical in this many consecutive rounds (default 3).
    pub max_unchanged_evidence_rounds: u32,
    /// Deadline of the whole loop.
    pub loop_timeout: Option<Duration>,
    /// Longest time without progress (a model response or a finished call).
    pub idle_timeout: Option<Duration>,
    /// Run identical calls of one round (same action, same arguments) once and reuse
    /// the record for the copies (default true).
    pub dedupe_identical_calls: bool,
    /// With native tool calls, when the planner answers in text without calling a tool
    /// and no output schema is requested, use that text as the final answer instead of
    /// asking again (default false: the answer always comes from a separate
    /// [`CallPurpose::Answer`] request, which may use another model).
    pub reuse_planner_answer: bool,
    /// Dispatcher settings (per-call timeout, digests).
    pub dispatch: DispatchOptions,
}

impl Default for LoopOptions {
    fn default() -> Self {
        Self {
            protocol: PlanningProtocol::NativeToolCalls,
            max_rounds: 10,
            concurrency: 8,
            sequential_side_effects: true,
            max_calls_per_round: 64,
            max_consecutive_failed_rounds: 2,
            max_unchanged_evidence_rounds: 3,
            loop_timeout: None,
            idle_timeout: None,
            dedupe_identical_calls: true,
            reuse_planner_answer: false,
            dispatch: DispatchOptions::default(),
        }
    }
}

impl LoopOptions {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ActionError> {
        let bad = |m: &str| Err(ActionError::InvalidOptions(m.to_owned()));
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if self.max_calls_per_round == 0 {
            return bad("max_calls_per_round must be at least 1");
        }
        if self.max_consecutive_failed_rounds == 0 || self.max_unchanged_evidence_rounds == 0 {
            return bad("convergence guards must be at least 1");
        }
        if self.loop_timeout.is_some_and(|t| t.is_zero())
            || self.idle_timeout.is_some_and(|t| t.is_zero())
        {
            return bad("timeouts must be positive");
        }
        if self.dispatch.action_timeout.is_zero() {
            return bad("the action timeout must be positive");
        }
        Ok(())
    }
}

/// Why the loop stopped planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum StopReason {
    /// The model chose to answer.
    Answered,
    /// `max_rounds` rounds executed actions and the model still wanted more.
    MaxRounds,
    /// An action failed in consecutive rounds.
    RepeatedFailure {
        /// The action.
        action_id: String,
    },
    /// The evidence did not change for several rounds.
    UnchangedEvidence,
}

/// What one loop run needs from its caller.
pub struct LoopInput<'a> {
    /// Emits the loop's events.
    pub emitter: Emitter,
    /// The caller's run; the loop's `action_loop` run hangs under it.
    pub parent_run: Arc<RunContext>,
    /// The execution.
    pub execution_id: ExecutionId,
    /// The conversation so far (system and user messages).
    pub messages: Vec<Message>,
    /// The schema the final answer must satisfy.
    pub output_schema: Option<OutputSchema>,
    /// How to reach models.
    pub caller: &'a dyn ModelCaller,
    /// Resolves when the caller cancels.
    pub cancel: Option<BoxFuture<'a, ()>>,
    /// The execution's artifact scope; a fresh one when `None` (returned in the outcome).
    pub artifacts: Option<ArtifactScope>,
}

impl fmt::Debug for LoopInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopInput")
            .field("execution_id", &self.execution_id)
            .field("messages", &self.messages.len())
            .finish()
    }
}

impl<'a> LoopInput<'a> {
    /// The required parts; no output schema, no cancellation, a fresh artifact scope.
    pub fn new(
        emitter: Emitter,
        parent_run: Arc<RunContext>,
        execution_id: ExecutionId,
        messages: Vec<Message>,
        caller: &'a dyn ModelCaller,
    ) -> Self {
        Self {
            emitter,
            parent_run,
            execution_id,
            messages,
            output_schema: None,
            caller,
            cancel: None,
            artifacts: None,
        }
    }
    /// Sets the answer's schema.
    pub fn output_schema(mut self, schema: OutputSchema) -> Self {
        self.output_schema = Some(schema);
        self
    }
    /// Sets a cancellation future.
    pub fn cancel(mut self, cancel: BoxFuture<'a, ()>) -> Self {
        self.cancel = Some(cancel);
        self
    }
    /// Uses the execution's artifact scope.
    pub fn artifacts(mut self, scope: ArtifactScope) -> Self {
        self.artifacts = Some(scope);
        self
    }
}

/// What a loop run produced.
#[derive(Debug, Clone)]
pub struct LoopOutcome {
    /// The model's final answer.
    pub final_response: ModelResponse,
    /// Every record, in order (planning notes and guard records included).
    pub records: Vec<ActionRecord>,
    /// The records the model saw (legacy `tool_logs`).
    pub tool_logs: Vec<ActionRecord>,
    /// Planning rounds that executed actions.
    pub rounds: u32,
    /// The whole conversation, final answer included.
    pub messages: Vec<Message>,
    /// Loop-level notes.
    pub diagnostics: Vec<Diagnostic>,
    /// Why planning stopped.
    pub stop: StopReason,
    /// The artifact scope the records' selection keys resolve in.
    pub artifacts: ArtifactScope,
}

/// A configured loop: registry view, policy (resolved once), approval handler, options.
///
/// ```
/// use std::sync::Arc;
/// use agentry_actions::*;
/// use agentry_core::{EventCenter, ExecutionId, RunContext, RunKind};
/// use agentry_model::{Message, ModelRequest, ModelResponse, ToolArguments, ToolCall};
/// use futures::future::BoxFuture;
/// use serde_json::json;
///
/// // A tiny model: first asks for `add`, then answers with what it got back.
/// struct Caller;
/// impl ModelCaller for Caller {
///     fn call(&self, _p: CallPurpose, req: ModelRequest) -> BoxFuture<'_, Result<ModelResponse, ActionError>> {
///         Box::pin(async move {
///             let result = req.messages.iter().find_map(|m| match m {
///                 Message::Tool { content, .. } => Some(content.clone()),
///                 _ => None,
///             });
///             Ok(match result {
///                 None => ModelResponse {
///                     tool_calls: vec![ToolCall { id: "c1".into(), name: "add".into(),
///                                                 arguments: ToolArguments::Json(json!({"a": 2, "b": 3})) }],
///                     ..Default::default()
///                 },
///                 Some(r) => ModelResponse { text: format!("result: {r}"), ..Default::default() },
///             })
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ActionError> {
/// let mut registry = ActionRegistry::new();
/// registry.register_fn(FnAction::new(
///     "add",
///     "Adds two integers.",
///     json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
///            "required": ["a", "b"]}),
///     |_ctx, input| async move { Ok(json!(input["a"].as_i64().unwrap_or(0) + input["b"].as_i64().unwrap_or(0))) },
/// ))?;
/// let action_loop = ActionLoop::new(registry, &ActionPolicy::new(), Arc::new(FailClosed), LoopOptions::default())?;
///
/// let center = EventCenter::new();
/// let outcome = action_loop
///     .run(LoopInput::new(
///         center.emitter("demo"),
///         RunContext::root(RunKind::REQUEST),
///         ExecutionId::new(),
///         vec![Message::user("What is 2 + 3?")],
///         &Caller,
///     ))
///     .await?;
/// assert_eq!(outcome.records[0].data, Some(json!(5)));
/// assert!(outcome.final_response.text.contains('5'));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ActionLoop {
    dispatcher: Dispatcher,
    options: LoopOptions,
}

#[derive(Debug)]
struct Progress {
    start: Instant,
    last_us: AtomicU64,
}

impl Progress {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_us: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_us.store(us, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.start + Duration::from_micros(self.last_us.load(Ordering::Relaxed))
    }
}

impl ActionLoop {
    /// A loop over the given actions. The policy is resolved here, once.
    pub fn new(
        registry: impl Into<RegistryView>,
        policy: &ActionPolicy,
        approval: Arc<dyn ApprovalHandler>,
        options: LoopOptions,
    ) -> Result<Self, ActionError> {
        options.validate()?;
        let dispatcher = Dispatcher::build(
            registry.into(),
            policy.resolve(),
            approval,
            None,
            options.dispatch,
        );
        Ok(Self {
            dispatcher,
            options,
        })
    }

    /// A loop with the default (fail-closed) approval handler and default options.
    pub fn with_defaults(registry: impl Into<RegistryView>, policy: &ActionPolicy) -> Self {
        let options = LoopOptions::default();
        let dispatcher = Dispatcher::build(
            registry.into(),
            policy.resolve(),
            default_handler(),
            None,
            options.dispatch,
        );
        Self {
            dispatcher,
            options,
        }
    }

    /// Uses a resource resolver for actions that declare requirements.
    pub fn with_resources(mut self, resolver: Arc<dyn ResourceResolver>) -> Self {
        self.dispatcher = self.dispatcher.with_resources(resolver);
        self
    }

    /// The dispatcher (for host calls that should share the loop's policy).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The options.
    pub fn options(&self) -> &LoopOptions {
        &self.options
    }

    /// Runs the loop to a final answer.
    pub async fn run(&self, input: LoopInput<'_>) -> Result<LoopOutcome, ActionError> {
        let LoopInput {
            emitter,
            parent_run,
            execution_id,
            messages,
            output_schema,
            caller,
            cancel,
            artifacts,
        } = input;
        let loop_run = Arc::new(
            parent_run
                .child(RunKind::ACTION_LOOP)
                .with_meta("planning_protocol", self.options.protocol.as_str()),
        );
        let artifacts = artifacts.unwrap_or_else(|| ArtifactScope::new(execution_id.clone()));
        let scope = CallScope::with_artifacts(emitter, loop_run.clone(), execution_id, artifacts);
        let o = &self.options;
        scope
            .emitter
            .emit(
                &loop_run,
                NewEvent::new(events::ACTION_LOOP_STARTED)
                    .source(SOURCE)
                    .payload(json!({
                        "planning_protocol": o.protocol.as_str(),
                        "max_rounds": o.max_rounds,
                        "concurrency": o.concurrency,
                        "actions": self.dispatcher.registry().ids(),
                    })),
            )
            .await;

        let progress = Progress::new();
        let body = self.body(&scope, messages, output_schema, caller, &progress);
        let cancel = async {
            match cancel {
                Some(c) => c.await,
                None => pending().await,
            }
        };
        let deadline = async {
            match o.loop_timeout {
                Some(t) => {
                    tokio::time::sleep(t).await;
                    StallError::new(
                        stage::ACTION_LOOP_CLOSE,
                        StallStatus::TimedOut,
                        progress.start.elapsed(),
                        t,
                    )
                }
                None => pending().await,
            }
        };
        let idle = async {
            match o.idle_timeout {
                Some(limit) => loop {
                    let due = progress.last() + limit;
                    if Instant::now() >= due {
                        break StallError::new(
                            stage::ACTION_LOOP_CLOSE,
                            StallStatus::Stalled,
                            Instant::now().saturating_duration_since(progress.last()),
                            limit,
                        );
                    }
                    tokio::time::sleep_until(due.into()).await;
                },
                None => pending().await,
            }
        };
        let result = tokio::select! {
            biased;
            r = body => r,
            () = cancel => Err(ActionError::Cancelled),
            e = deadline => Err(ActionError::Stall(e)),
            e = idle => Err(ActionError::Stall(e)),
        };
        match &result {
            Ok(out) => {
                let mut counts: HashMap<&'static str, usize> = HashMap::new();
                for r in &out.records {
                    *counts.entry(r.status.as_str()).or_default() += 1;
                }
                scope
                    .emitter
                    .emit(
                        &loop_run,
                        NewEvent::new(events::ACTION_LOOP_COMPLETED)
                            .source(SOURCE)
                            .payload(json!({
                                "rounds": out.rounds,
                                "record_count": out.records.len(),
                                "statuses": counts,
                                "stop": out.stop,
                            })),
                    )
                    .await;
            }
            Err(e) => {
                scope
                    .emitter
                    .emit(
                        &loop_run,
                        NewEvent::new(events::ACTION_LOOP_FAILED)
                            .source(SOURCE)
                            .message(e.to_string())
                            .error(e.error_info()),
                    )
                    .await;
            }
        }
        result
    }

    fn planning_request(&self, conv: &[Message], round: u32, with_reader: bool) -> ModelRequest {
        let tools = self.dispatcher.offered_tools(with_reader);
        match self.options.protocol {
            PlanningProtocol::NativeToolCalls => native::request(conv, tools),
            PlanningProtocol::JsonPlan => {
                json_plan::request(conv, &tools, round, self.options.max_rounds)
            }
        }
    }

    async fn body(
        &self,
        scope: &CallScope,
        mut conv: Vec<Message>,
        output_schema: Option<OutputSchema>,
        caller: &dyn ModelCaller,
        progress: &Progress,
    ) -> Result<LoopOutcome, ActionError> {
        let o = &self.options;
        let mut records: Vec<ActionRecord> = Vec::new();
        let mut diagnostics: Vec<Diagnostic> = Vec::new();
        let mut fail_counts: HashMap<String, u32> = HashMap::new();
        let mut last_evidence: Option<u64> = None;
        let mut unchanged = 0u32;
        let mut rounds = 0u32;
        let mut notes: Vec<String> = Vec::new();
        let mut planner_answer: Option<ModelResponse> = None;
        let stop = loop {
            if rounds >= o.max_rounds {
                let r = self.guard_record(
                    scope,
                    rounds,
                    codes::MAX_ROUNDS_REACHED,
                    format!(
                        "the loop reached its limit of {} rounds; answering with what was gathered",
                        o.max_rounds
                    ),
                );
                notes.push(
                    r.error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                );
                records.push(r);
                break StopReason::MaxRounds;
            }
            let request = self.planning_request(&conv, rounds, scope.artifacts.has_artifacts());
            let response = caller.call(CallPurpose::Planning, request).await?;
            progress.touch();
            diagnostics.extend(response.diagnostics.iter().cloned());
            let plan: Plan = match o.protocol {
                PlanningProtocol::NativeToolCalls => native::parse(&response),
                PlanningProtocol::JsonPlan => json_plan::parse(&response.text),
            };
            scope
                .emitter
                .emit(
                    &scope.run,
                    NewEvent::new(events::ACTION_PLAN_READY)
                        .source(SOURCE)
                        .payload(json!({"round_index": rounds, "decision": plan.decision_view()})),
                )
                .await;
            for d in &plan.diagnostics {
                if d.code == codes::JSON_PLAN_COMMAND_INVALID {
                    diagnostics.push(d.clone());
                    continue;
                }
                let mut r = ActionRecord::new(
                    ActionCallId::new(scope.execution_id.clone(), rounds, 0),
                    "action_planning".into(),
                    "planning".into(),
                    CallSource::Runtime,
                );
                r.expose_to_model = false;
                r.data = Some(json!(d));
                r.diagnostics.push(d.clone());
                records.push(r.fail(ActionStatus::Skipped, &d.code, d.message.clone()));
                diagnostics.push(d.clone());
            }
            if plan.calls.is_empty() {
                if o.reuse_planner_answer
                    && o.protocol == PlanningProtocol::NativeToolCalls
                    && output_schema.is_none()
                    && !response.text.trim().is_empty()
                {
                    planner_answer = Some(response);
                }
                break StopReason::Answered;
            }
            conv.push(plan.assistant);
            let round_records = self.run_round(scope, rounds, plan.calls, progress).await;
            match o.protocol {
                PlanningProtocol::NativeToolCalls => {
                    for r in &round_records {
                        if let Some(id) = &r.tool_call_id {
                            conv.push(Message::tool_result(id.clone(), r.model_view().to_string()));
                        }
                    }
                }
                PlanningProtocol::JsonPlan => {
                    conv.push(json_plan::results_message(rounds, &round_records))
                }
            }
            rounds += 1;

            // Convergence guards.
            let mut round_fail: HashMap<&str, bool> = HashMap::new();
            for r in &round_records {
                let failed = r.status == ActionStatus::Error;
                round_fail
                    .entry(r.action_id.as_str())
                    .and_modify(|f| *f &= failed)
                    .or_insert(failed);
            }
            fail_counts.retain(|id, _| round_fail.get(id.as_str()).copied().unwrap_or(false));
            for (id, failed) in &round_fail {
                if *failed {
                    *fail_counts.entry((*id).to_owned()).or_insert(0) += 1;
                }
            }
            // First in plan order, so the same run always names the same action.
            let repeated = round_records
                .iter()
                .map(|r| r.action_id.as_str())
                .find(|id| {
                    fail_counts
                        .get(*id)
                        .is_some_and(|c| *c >= o.max_consecutive_failed_rounds)
                })
                .map(str::to_owned);
            let evidence = evidence_fingerprint(&round_records);
            match (evidence, last_evidence) {
                (Some(e), Some(prev)) if e == prev => unchanged += 1,
                (Some(_), _) => unchanged = 1,
                (None, _) => unchanged = 0,
            }
            last_evidence = evidence;
            records.extend(round_records);
            if let Some(id) = repeated {
                let r = self.guard_record(
                    scope,
                    rounds,
                    codes::REPEATED_FAILURE,
                    format!(
                        "action `{id}` failed in {} consecutive rounds; the loop stopped",
                        o.max_consecutive_failed_rounds
                    ),
                );
                notes.push(
                    r.error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                );
                records.push(r);
                break StopReason::RepeatedFailure { action_id: id };
            }
            if unchanged >= o.max_unchanged_evidence_rounds {
                let r = self.guard_record(scope, rounds, codes::UNCHANGED_EVIDENCE, format!(
                    "the results did not change in {unchanged} consecutive rounds; the loop stopped"
                ));
                notes.push(
                    r.error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                );
                records.push(r);
                break StopReason::UnchangedEvidence;
            }
        };
        for r in records
            .iter()
            .filter(|r| r.source == CallSource::Runtime && r.status == ActionStatus::Blocked)
        {
            if let Some(e) = &r.error {
                diagnostics.push(Diagnostic::new(
                    e.code.clone(),
                    Severity::Warning,
                    e.message.clone(),
                ));
            }
        }

        let final_response = match planner_answer {
            Some(r) => r,
            None => {
                let mut answer_conv = conv.clone();
                let mut closing = String::new();
                if !notes.is_empty() {
                    closing.push_str("Note from the runtime: ");
                    closing.push_str(&notes.join(" "));
                    closing.push(' ');
                }
                if o.protocol == PlanningProtocol::JsonPlan && rounds > 0 {
                    closing.push_str("Now write the final answer to the original request using the results above; do not reply with a plan.");
                } else if !notes.is_empty() {
                    closing.push_str("Answer now with what was gathered.");
                }
                if !closing.is_empty() {
                    answer_conv.push(Message::user(closing));
                }
                let mut request = ModelRequest::new(answer_conv);
                request.output_schema = output_schema;
                let final_response = caller.call(CallPurpose::Answer, request).await?;
                progress.touch();
                final_response
            }
        };
        conv.push(Message::assistant(final_response.text.clone()));
        let tool_logs = records
            .iter()
            .filter(|r| r.expose_to_model)
            .cloned()
            .collect();
        Ok(LoopOutcome {
            final_response,
            records,
            tool_logs,
            rounds,
            messages: conv,
            diagnostics,
            stop,
            artifacts: scope.artifacts.clone(),
        })
    }

    fn guard_record(
        &self,
        scope: &CallScope,
        round: u32,
        code: &str,
        message: String,
    ) -> ActionRecord {
        ActionRecord::new(
            ActionCallId::new(scope.execution_id.clone(), round, 0),
            "action_loop".into(),
            "loop guard".into(),
            CallSource::Runtime,
        )
        .fail(ActionStatus::Blocked, code, message)
    }

    async fn run_round(
        &self,
        scope: &CallScope,
        round: u32,
        calls: Vec<PlannedCall>,
        progress: &Progress,
    ) -> Vec<ActionRecord> {
        let o = &self.options;
        let n = calls.len();
        let mut slots: Vec<Option<ActionRecord>> = (0..n).map(|_| None).collect();
        let mut runnable: Vec<(usize, ActionCallId, PlannedCall)> =
            Vec::with_capacity(n.min(o.max_calls_per_round));
        let mut duplicates: Vec<(usize, usize, ActionCallId, Option<String>)> = Vec::new();
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        let mut over_cap = 0usize;
        for (i, call) in calls.into_iter().enumerate() {
            let id = ActionCallId::new(
                scope.execution_id.clone(),
                round,
                u32::try_from(i).unwrap_or(u32::MAX),
            );
            if i >= o.max_calls_per_round {
                over_cap += 1;
                let mut r = ActionRecord::new(
                    id,
                    call.action_id().to_owned(),
                    call.purpose(),
                    call.source(),
                );
                r.tool_call_id = call.tool_call_id().map(str::to_owned);
                r.input = call.raw_input_for_record();
                slots[i] = Some(r.fail(
                    ActionStatus::Blocked,
                    codes::CALLS_PER_ROUND_EXCEEDED,
                    format!(
                        "only {} calls run per round; this one was not run",
                        o.max_calls_per_round
                    ),
                ));
                continue;
            }
            if o.dedupe_identical_calls {
                let key = (
                    call.action_id().to_owned(),
                    call.raw_input_for_record().to_string(),
                );
                if let Some(&first) = seen.get(&key) {
                    duplicates.push((i, first, id, call.tool_call_id().map(str::to_owned)));
                    continue;
                }
                seen.insert(key, i);
            }
            runnable.push((i, id, call));
        }
        if over_cap > 0 {
            scope
                .emitter
                .emit(
                    &scope.run,
                    NewEvent::new(events::ACTION_BLOCKED)
                        .source(SOURCE)
                        .level(Level::Warning)
                        .message(format!("{over_cap} calls over the per-round cap were not run"))
                        .payload(json!({"code": codes::CALLS_PER_ROUND_EXCEEDED, "round_index": round,
                                        "blocked_count": over_cap, "max_calls_per_round": o.max_calls_per_round})),
                )
                .await;
        }

        while !runnable.is_empty() {
            let sequential = |c: &PlannedCall| {
                o.sequential_side_effects
                    && self
                        .dispatcher
                        .side_effect_of(c.action_id())
                        .is_some_and(|s| s != SideEffect::Read)
            };
            let mut end = 1;
            if !sequential(&runnable[0].2) {
                while end < runnable.len() && !sequential(&runnable[end].2) {
                    end += 1;
                }
            }
            let batch: Vec<(usize, ActionCallId, PlannedCall)> = runnable.drain(..end).collect();
            let done: Vec<(usize, ActionRecord)> = futures::stream::iter(batch)
                .map(|(i, id, call)| async move {
                    let r = self.dispatcher.call_planned(scope, id, call).await;
                    progress.touch();
                    (i, r)
                })
                .buffered(o.concurrency)
                .collect()
                .await;
            for (i, r) in done {
                slots[i] = Some(r);
            }
        }
        for (i, first, id, tool_call_id) in duplicates {
            if let Some(Some(orig)) = slots.get(first).cloned() {
                let mut r = orig;
                r.call_id = id;
                r.tool_call_id = tool_call_id;
                r.diagnostics.push(
                    Diagnostic::new(
                        codes::DUPLICATE_CALL_REUSED,
                        Severity::Info,
                        format!("identical to call {first} of this round; its result is reused"),
                    )
                    .with_detail(json!({"duplicate_of": first})),
                );
                slots[i] = Some(r);
            }
        }
        slots.into_iter().flatten().collect()
    }
}

/// A fingerprint of a round's successful evidence (action, input, output), or `None`
/// when nothing succeeded.
fn evidence_fingerprint(records: &[ActionRecord]) -> Option<u64> {
    let mut parts: Vec<u64> = records
        .iter()
        .filter(|r| r.is_ok())
        .map(|r| {
            let mut h = DefaultHasher::new();
            r.action_id.hash(&mut h);
            hash_value(&r.input, &mut h);
            if let Some(d) = &r.data {
                hash_value(d, &mut h);
            }
            h.finish()
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort_unstable();
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    Some(h.finish())
}

fn hash_value(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => b.hash(h),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.hash(h),
            (_, Some(u), _) => u.hash(h),
            (_, _, Some(f)) => f.to_bits().hash(h),
            _ => 0u8.hash(h),
        },
        Value::String(s) => s.hash(h),
        Value::Array(a) => {
            a.len().hash(h);
            a.iter().for_each(|x| hash_value(x, h));
        }
        Value::Object(m) => {
            m.len().hash(h);
            for (k, x) in m {
                k.hash(h);
                hash_value(x, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::ExecutionId;

    fn rec(id: &str, data: Value, status: ActionStatus) -> ActionRecord {
        let mut r = ActionRecord::new(
            ActionCallId::new(ExecutionId::new(), 0, 0),
            id.into(),
            String::new(),
            CallSource::Host,
        );
        r.status = status;
        r.data = Some(data);
        r
    }

    #[test]
    fn evidence_ignores_order_and_failures() {
        let a = rec("a", json!({"x": 1}), ActionStatus::Success);
        let b = rec("b", json!([1.5, "s"]), ActionStatus::Success);
        let f = rec("c", json!(null), ActionStatus::Error);
        let one = evidence_fingerprint(&[a.clone(), b.clone(), f]);
        let two = evidence_fingerprint(&[b, a.clone()]);
        assert_eq!(one, two);
        assert_ne!(one, evidence_fingerprint(&[a]));
        assert_eq!(
            evidence_fingerprint(&[rec("c", json!(1), ActionStatus::Error)]),
            None
        );
    }

    #[test]
    fn option_validation() {
        assert!(LoopOptions::default().validate().is_ok());
        let bad = [
            LoopOptions {
                concurrency: 0,
                ..Default::default()
            },
            LoopOptions {
                max_calls_per_round: 0,
                ..Default::default()
            },
            LoopOptions {
                max_consecutive_failed_rounds: 0,
                ..Default::default()
            },
            LoopOptions {
                idle_timeout: Some(Duration::ZERO),
                ..Default::default()
            },
        ];
        for o in bad {
            assert_eq!(
                agentry_core::ErrorCode::code(&o.validate().unwrap_err()),
                "action.options.invalid"
            );
        }
    }
}
