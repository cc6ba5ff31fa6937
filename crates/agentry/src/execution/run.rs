//! The task that carries one execution from start to its outcome.
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agentry_actions::{ActionError, ActionLoop, CallPurpose, LoopInput, ModelCaller};
use agentry_core::{
    Diagnostic, ErrorCode, EventType, NewEvent, RunContext, Severity, StallStatus, Timestamp,
};
use agentry_model::streaming_json::PathPattern;
use agentry_model::{Message, ModelProvider, ModelRequest, ModelResponse, OutputSchema};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::liveness::{Progress, watchdog};
use super::{Answer, Outcome, Shared, gateway};
use crate::agent::Agent;
use crate::error::AgentryError;
use crate::limits::Limits;
use crate::meta::{ActionLoopMeta, ExecutionStatus, LimitEvent};
use crate::structured;

/// The structured answer passed validation (payload: the data).
const OUTPUT_VALIDATED: EventType = EventType::from_static("agent_execution.output_validated");

/// Everything the task needs, fixed when the draft was validated.
pub(crate) struct Plan {
    pub(crate) agent: Agent,
    pub(crate) provider: Arc<dyn ModelProvider>,
    pub(crate) model_key: String,
    pub(crate) planner: Arc<dyn ModelProvider>,
    pub(crate) planner_key: String,
    pub(crate) action_loop: Option<ActionLoop>,
    pub(crate) input: Option<Value>,
    pub(crate) instructions: Vec<String>,
    pub(crate) output_schema: Option<Value>,
    pub(crate) ensure_keys: Vec<(String, PathPattern)>,
    pub(crate) output_retries: u32,
    pub(crate) limits: Limits,
}

/// Per-execution state shared by the route, the gateway and the watchdog.
pub(crate) struct RunCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) root: Arc<RunContext>,
    pub(crate) progress: Progress,
    pub(crate) limits: Limits,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) requests_used: AtomicU32,
}

impl RunCtx {
    /// Emits an event that counts as progress.
    pub(crate) async fn emit(&self, run: &Arc<RunContext>, event: NewEvent) {
        self.progress.touch();
        self.shared.emitter.emit(run, event).await;
    }

    /// Emits a heartbeat, which is not progress.
    pub(crate) async fn emit_heartbeat(&self, event: NewEvent) {
        self.shared.emitter.emit(&self.root, event).await;
    }

    /// Takes one model request from the budget, or fails with `LimitExceeded`.
    pub(crate) async fn take_model_request(&self) -> Result<u32, AgentryError> {
        let used = self.requests_used.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(max) = self.limits.max_model_requests
            && used > max
        {
            self.requests_used.fetch_sub(1, Ordering::SeqCst);
            let err = AgentryError::LimitExceeded {
                limit: "max_model_requests",
                value: max.to_string(),
                used: max.to_string(),
            };
            self.shared.update_meta(|m| {
                m.diagnostics.limit_events.push(LimitEvent {
                    limit: "max_model_requests".into(),
                    value: max.to_string(),
                    used: max.to_string(),
                    at: Timestamp::now(),
                })
            });
            self.emit(
                &self.root,
                NewEvent::new(EventType::AGENT_EXECUTION_LIMIT_EXCEEDED)
                    .source("Agent")
                    .message(err.to_string())
                    .error(err.error_info())
                    .payload(json!({"limit": "max_model_requests", "value": max, "used": max})),
            )
            .await;
            return Err(err);
        }
        self.shared
            .update_meta(|m| m.diagnostics.budget.model_requests_used = used);
        Ok(used)
    }
}

pub(crate) async fn drive(
    shared: Arc<Shared>,
    plan: Plan,
    tx: watch::Sender<Option<Arc<Outcome>>>,
    mut cancel: watch::Receiver<bool>,
) {
    let agent = &plan.agent;
    let ctx = RunCtx {
        shared: shared.clone(),
        root: shared.root.clone(),
        progress: Progress::new(),
        limits: plan.limits,
        heartbeat_interval: agent.runtime.inner.settings.heartbeat_interval,
        requests_used: AtomicU32::new(0),
    };
    shared.update_meta(|m| m.status = ExecutionStatus::Running);
    ctx.emit(
        &ctx.root,
        NewEvent::new(EventType::AGENT_EXECUTION_STARTED)
            .source("Agent")
            .message(format!("{} started", agent.name))
            .payload(json!({
                "agent_name": &*agent.name,
                "execution_id": shared.id,
                "model_key": plan.model_key,
                "limits": plan.limits,
            })),
    )
    .await;

    let outcome = {
        // Boxed, each route on its own: the routes' state machines are several KiB,
        // and inline they made this future the sum of both, copied whole by every
        // move (into the task, into each `select!`).
        let work: BoxFuture<'_, Outcome> = match &plan.action_loop {
            Some(action_loop) => Box::pin(route_action_loop(&ctx, &plan, action_loop)),
            None => Box::pin(route_model_request(&ctx, &plan)),
        };
        let guarded = async {
            tokio::select! {
                r = work => r,
                e = watchdog(&ctx) => Err(e),
            }
        };
        tokio::select! {
            r = guarded => r,
            _ = cancel.wait_for(|c| *c) => Err(AgentryError::Cancelled),
        }
    };
    finish(&ctx, &outcome).await;
    shared.emitter.close();
    let _ = tx.send(Some(Arc::new(outcome)));
}

async fn finish(ctx: &RunCtx, outcome: &Outcome) {
    ctx.shared.keys.finish();
    let (status, event_type) = match outcome {
        Ok(_) => (
            ExecutionStatus::Success,
            EventType::AGENT_EXECUTION_COMPLETED,
        ),
        Err(AgentryError::Cancelled) => (
            ExecutionStatus::Cancelled,
            EventType::AGENT_EXECUTION_CANCELLED,
        ),
        Err(_) => (ExecutionStatus::Error, EventType::AGENT_EXECUTION_FAILED),
    };
    if let Err(err) = outcome {
        ctx.shared.update_meta(|m| {
            m.diagnostics.errors.push(err.error_info());
            if let AgentryError::Stall(s) = err {
                match s.status {
                    StallStatus::Stalled => m.diagnostics.stalls.push(s.clone()),
                    StallStatus::TimedOut => m.diagnostics.timeouts.push(s.clone()),
                }
            }
        });
    }
    let mut event = NewEvent::new(event_type).source("Agent").payload(json!({
        "status": status,
        "close_snapshot": {
            "terminal_result": match outcome {
                Ok(a) => json!({"text": a.text, "data": a.data}),
                Err(e) => json!({"error": e.code(), "message": e.to_string()}),
            }
        }
    }));
    match outcome {
        Ok(_) => event = event.message("execution completed"),
        Err(e) => event = event.message(e.to_string()).error(e.error_info()),
    }
    ctx.emit(&ctx.root, event).await;
    let count = ctx.shared.emitter.last_seq().await;
    ctx.shared.update_meta(|m| {
        m.status = status;
        m.finished_at = Some(Timestamp::now());
        m.event_count = count;
    });
}

/// Renders the prompt: agent instructions, request instructions and the output
/// contract as the system message; the input as the user message.
fn build_messages(plan: &Plan) -> Vec<Message> {
    let mut system: Vec<String> = plan
        .agent
        .instructions
        .iter()
        .map(|s| s.to_string())
        .collect();
    system.extend(plan.instructions.iter().cloned());
    if let Some(schema) = &plan.output_schema {
        system.push(crate::output::contract_instruction(schema));
    }
    let mut messages = Vec::with_capacity(2);
    if !system.is_empty() {
        messages.push(Message::system(system.join("\n\n")));
    }
    let user = match &plan.input {
        Some(Value::String(s)) => s.clone(),
        Some(v) => serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
        None => String::new(),
    };
    messages.push(Message::user(user));
    messages
}

fn output_schema(plan: &Plan) -> Option<OutputSchema> {
    plan.output_schema.as_ref().map(|schema| OutputSchema {
        name: "answer".into(),
        schema: schema.clone(),
        strict: false,
    })
}

async fn route_model_request(ctx: &RunCtx, plan: &Plan) -> Result<Answer, AgentryError> {
    let messages = build_messages(plan);
    let mut request = ModelRequest::new(messages.clone());
    request.output_schema = output_schema(plan);
    let parse = plan.output_schema.is_some();
    let provider = plan.provider.as_ref();
    let response = gateway::call(ctx, &ctx.root, &plan.model_key, provider, request, parse).await?;
    finalize(ctx, plan, messages, response.text).await
}

/// Turns the answer text into the result: for a structured request, reads (with
/// repair) and validates it, asking the model again with what is wrong at most
/// `output_retries` times.
async fn finalize(
    ctx: &RunCtx,
    plan: &Plan,
    mut messages: Vec<Message>,
    mut text: String,
) -> Result<Answer, AgentryError> {
    let Some(schema) = &plan.output_schema else {
        return Ok(Answer { text, data: None });
    };
    let mut attempt = 0;
    loop {
        let read = structured::read_answer(&text);
        let problems = match &read {
            Ok(r) => structured::check_answer(&r.value, schema, &plan.ensure_keys),
            Err(e) => structured::Problems {
                missing: Vec::new(),
                invalid: vec![e.to_string()],
            },
        };
        if let Ok(r) = &read {
            ctx.shared
                .update_meta(|m| m.diagnostics.items.extend(r.diagnostics.iter().cloned()));
        }
        if problems.is_empty()
            && let Ok(r) = read
        {
            ctx.emit(
                &ctx.root,
                NewEvent::new(OUTPUT_VALIDATED)
                    .source("AgentExecution")
                    .payload(json!({"data": r.value, "attempt": attempt + 1})),
            )
            .await;
            return Ok(Answer {
                text,
                data: Some(r.value),
            });
        }
        if attempt >= plan.output_retries {
            return Err(match read {
                Err(e) if problems.missing.is_empty() => e,
                _ => problems.into_error(),
            });
        }
        attempt += 1;
        let described = problems.describe();
        ctx.shared.update_meta(|m| {
            m.diagnostics.items.push(
                Diagnostic::new(
                    structured::OUTPUT_CORRECTIVE_REQUEST,
                    Severity::Warning,
                    format!("asked the model again: {described}"),
                )
                .with_detail(json!({
                    "attempt": attempt,
                    "missing": problems.missing,
                    "invalid": problems.invalid,
                })),
            )
        });
        messages.push(Message::assistant(text));
        messages.push(Message::user(format!(
            "Your previous reply cannot be used: {described}. Reply again with the complete JSON \
             value only, satisfying the schema and including every required key."
        )));
        let mut request = ModelRequest::new(messages.clone());
        request.output_schema = output_schema(plan);
        let provider = plan.provider.as_ref();
        text = gateway::call(ctx, &ctx.root, &plan.model_key, provider, request, true)
            .await?
            .text;
    }
}

/// The loop's way to the models: through the gateway, so budget, limits, events and
/// the request log apply to planning requests exactly as to answers.
struct GatewayCaller<'a> {
    ctx: &'a RunCtx,
    plan: &'a Plan,
    /// The facade error behind the last failed call, returned instead of its
    /// `ActionError` wrapper so hosts see the original code and type.
    failure: std::sync::Mutex<Option<AgentryError>>,
}

impl ModelCaller for GatewayCaller<'_> {
    fn call(
        &self,
        purpose: CallPurpose,
        request: ModelRequest,
    ) -> BoxFuture<'_, Result<ModelResponse, ActionError>> {
        Box::pin(async move {
            let (key, provider) = match purpose {
                CallPurpose::Planning => (&self.plan.planner_key, &self.plan.planner),
                CallPurpose::Answer => (&self.plan.model_key, &self.plan.provider),
            };
            let parse = purpose == CallPurpose::Answer && self.plan.output_schema.is_some();
            let provider = provider.as_ref();
            match gateway::call(self.ctx, &self.ctx.root, key, provider, request, parse).await {
                Ok(r) => Ok(r),
                Err(e) => {
                    let wrapped = ActionError::host(e.code(), e.to_string());
                    *self
                        .failure
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    Err(wrapped)
                }
            }
        })
    }
}

async fn route_action_loop(
    ctx: &RunCtx,
    plan: &Plan,
    action_loop: &ActionLoop,
) -> Result<Answer, AgentryError> {
    let caller = GatewayCaller {
        ctx,
        plan,
        failure: std::sync::Mutex::new(None),
    };
    let mut input = LoopInput::new(
        ctx.shared.emitter.clone(),
        ctx.root.clone(),
        ctx.shared.id.clone(),
        build_messages(plan),
        &caller,
    );
    if let Some(schema) = output_schema(plan) {
        input = input.output_schema(schema);
    }
    let outcome = match action_loop.run(input).await {
        Ok(o) => o,
        Err(e) => {
            let original = caller
                .failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            return Err(original.unwrap_or_else(|| e.into()));
        }
    };
    ctx.shared.update_meta(|m| {
        m.diagnostics
            .items
            .extend(outcome.diagnostics.iter().cloned());
        m.actions = Some(ActionLoopMeta {
            rounds: outcome.rounds,
            stop: outcome.stop.clone(),
            action_logs: outcome.records.clone(),
            tool_logs: outcome.tool_logs.clone(),
        });
    });
    finalize(ctx, plan, outcome.messages, outcome.final_response.text).await
}
