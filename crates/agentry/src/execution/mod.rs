//! Executions: one run of an agent request, from draft to result.
mod gateway;
mod liveness;
mod run;

use std::sync::{Arc, Mutex, PoisonError};

use agentry_actions::{Action, ApprovalHandler, FnAction, RegistryView};
use agentry_core::{
    Emitter, ErrorCode, EventStream, EventType, ExecutionId, NewEvent, RunContext, RunKind,
    Timestamp,
};
use agentry_model::Usage;
use agentry_workspace::{
    Content, Evidence, Link, NewLink, NewRecord, RecordRef, SnapshotMeta, Workspace,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::json;
use tokio::sync::watch;

use crate::agent::Agent;
use crate::error::AgentryError;
use crate::limits::Limits;
use crate::structured;

/// Corrective re-requests a structured answer may take by default.
const DEFAULT_OUTPUT_RETRIES: u32 = 2;
use crate::meta::{AgentRef, Budget, Diagnostics, ExecutionMeta, ExecutionStatus, Lineage, Route};

/// A request being drafted: input, instructions, output contract, model and limits.
/// Owned by the execution it becomes, never by the agent.
///
/// ```
/// use agentry::Runtime;
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentry::AgentryError> {
/// let runtime = Runtime::builder().test_model().build()?;
/// let schema = json!({
///     "type": "object",
///     "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
///     "required": ["title", "tags"]
/// });
/// let execution = runtime.agent("writer").input("a post about Rust").output_schema(schema).start()?;
/// let data = execution.data().await?;
/// assert!(data["title"].is_string());
/// assert_eq!(execution.meta().await.model_requests.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ExecutionBuilder {
    agent: Agent,
    input: Option<Value>,
    instructions: Vec<String>,
    output_schema: Option<Value>,
    model_key: Option<String>,
    limits: Limits,
    lineage: Lineage,
    actions: RegistryView,
    approval: Option<Arc<dyn ApprovalHandler>>,
    max_rounds: Option<u32>,
    ensure_keys: Vec<String>,
    output_retries: u32,
    /// A registration error, reported by `start()` so the builder chain stays fluent.
    pending_error: Option<AgentryError>,
}

impl std::fmt::Debug for ExecutionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionBuilder")
            .field("agent", &self.agent.name)
            .field("input", &self.input)
            .field("model_key", &self.model_key)
            .field("actions", &self.actions.ids())
            .finish()
    }
}

impl ExecutionBuilder {
    pub(crate) fn new(agent: Agent) -> Self {
        let actions = RegistryView::new(agent.actions.clone());
        Self {
            agent,
            input: None,
            instructions: Vec::new(),
            output_schema: None,
            model_key: None,
            limits: Limits::default(),
            lineage: Lineage::default(),
            actions,
            approval: None,
            max_rounds: None,
            ensure_keys: Vec::new(),
            output_retries: DEFAULT_OUTPUT_RETRIES,
            pending_error: None,
        }
    }

    /// Keys the structured answer must have (`a.b`, `items[*].name`). When some are
    /// missing, or the answer breaks the schema, the model is asked again with what is
    /// wrong, at most [`output_retries`](Self::output_retries) times; then the
    /// execution fails with `execution.output_missing_keys`.
    pub fn ensure_keys<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ensure_keys.extend(paths.into_iter().map(Into::into));
        self
    }

    /// How many corrective re-requests a structured answer may take (default 2).
    pub fn output_retries(mut self, n: u32) -> Self {
        self.output_retries = n;
        self
    }

    /// Adds an action for this execution only; the agent never sees it.
    pub fn action<A: Action>(mut self, action: A) -> Self {
        if let Err(e) = self.actions.register_local(action) {
            self.pending_error.get_or_insert(e.into());
        }
        self
    }

    /// Adds a closure action for this execution only.
    pub fn action_fn(mut self, action: FnAction) -> Self {
        if let Err(e) = self.actions.register_local_fn(action) {
            self.pending_error.get_or_insert(e.into());
        }
        self
    }

    /// Uses this approval handler instead of the agent's.
    pub fn approval(mut self, handler: Arc<dyn ApprovalHandler>) -> Self {
        self.approval = Some(handler);
        self
    }

    /// Most planning rounds that execute actions.
    pub fn max_rounds(mut self, rounds: u32) -> Self {
        self.max_rounds = Some(rounds);
        self
    }

    /// Sets the input (a string, or any JSON value, rendered for the model).
    pub fn input(mut self, input: impl Into<Value>) -> Self {
        self.input = Some(input.into());
        self
    }

    /// Adds an instruction for this request only.
    pub fn instruct(mut self, text: impl Into<String>) -> Self {
        self.instructions.push(text.into());
        self
    }

    /// Asks for a JSON answer satisfying this JSON Schema; read it with
    /// [`Execution::data`].
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Asks for a JSON answer shaped like `T`: the output contract is `T`'s JSON
    /// Schema (field docs become descriptions). Read it with
    /// [`Execution::data_as`].
    ///
    /// ```
    /// use agentry::Runtime;
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Post {
    ///     /// A short title.
    ///     title: String,
    ///     tags: Vec<String>,
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), agentry::AgentryError> {
    /// let runtime = Runtime::builder().test_model().build()?;
    /// let post: Post = runtime.agent("w").input("Rust").output::<Post>().start()?.data_as().await?;
    /// assert!(!post.title.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn output<T: schemars::JsonSchema>(mut self) -> Self {
        self.output_schema = Some(Value::from(schemars::schema_for!(T)));
        self
    }

    /// Asks for a JSON answer described by a JSON-shaped contract (see
    /// [`contract_from_shape`](crate::contract_from_shape)); a malformed shape is
    /// reported by `start()`.
    pub fn output_shape(mut self, shape: Value) -> Self {
        match crate::contract::contract_from_shape(&shape) {
            Ok(schema) => self.output_schema = Some(schema),
            Err(e) => {
                self.pending_error.get_or_insert(e);
            }
        }
        self
    }

    /// Uses this model-pool key instead of the agent's.
    pub fn model(mut self, key: impl Into<String>) -> Self {
        self.model_key = Some(key.into());
        self
    }

    /// Limits for this execution (the agent's and then the runtime's fill gaps).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Records the execution that started this one.
    pub fn parent(mut self, parent: &ExecutionId) -> Self {
        self.lineage.parent_execution_id = Some(parent.clone());
        self
    }

    /// Records the flow this execution belongs to.
    pub fn flow(mut self, flow: impl Into<String>) -> Self {
        self.lineage.flow = Some(flow.into());
        self
    }

    /// Validates the draft and starts running it on the current Tokio runtime.
    ///
    /// Fails at once (nothing runs) on invalid limits, an unknown model key or an
    /// invalid output schema.
    pub fn start(self) -> Result<Execution, AgentryError> {
        let replay = self.agent.runtime.inner.settings.keep_event_log;
        self.start_with(replay)
    }

    /// Starts the execution; `replay` keeps its events for late
    /// [`Execution::events`] subscribers. The one-shot methods (`text`, `data`,
    /// `result`) never hand the execution out, so nobody could subscribe late and
    /// they skip the log: hooks and sinks still see every event.
    fn start_with(self, replay: bool) -> Result<Execution, AgentryError> {
        if let Some(e) = self.pending_error {
            return Err(e);
        }
        let runtime = self.agent.runtime.clone();
        let limits = self
            .limits
            .or(self.agent.limits)
            .or(runtime.inner.settings.default_limits);
        limits.validate()?;
        let model_key = self
            .model_key
            .unwrap_or_else(|| self.agent.model_key.to_string());
        let provider = runtime.inner.models.get(&model_key)?;
        let planner_key = self
            .agent
            .planner_key
            .as_deref()
            .map(str::to_owned)
            .unwrap_or_else(|| model_key.clone());
        let planner = runtime.inner.models.get(&planner_key)?;
        let mut loop_options = self.agent.loop_options.clone();
        if let Some(r) = self.max_rounds {
            loop_options.max_rounds = r;
        }
        // Only checks visibility: building the redacted listing here would clone every
        // schema on each start.
        let uses_actions = self.actions.entries().any(|a| a.spec().expose_to_model);
        let action_loop = if uses_actions {
            let approval = self
                .approval
                .clone()
                .unwrap_or_else(|| self.agent.approval.clone());
            let mut action_loop = agentry_actions::ActionLoop::new(
                self.actions.clone(),
                &self.agent.policy,
                approval,
                loop_options,
            )?;
            if let Some(resources) = &self.agent.resources {
                action_loop = action_loop.with_resources(resources.clone());
            }
            Some(action_loop)
        } else {
            None
        };
        let mut ensure = Vec::with_capacity(self.ensure_keys.len());
        match &self.output_schema {
            Some(schema) => {
                for path in &self.ensure_keys {
                    ensure.push((path.clone(), structured::check_path(schema, path)?));
                }
            }
            None if !self.ensure_keys.is_empty() => return Err(AgentryError::NoOutputSchema),
            None => {}
        }
        if let Some(schema) = &self.output_schema {
            jsonschema::validator_for(schema).map_err(|e| {
                AgentryError::Config(format!("the output schema is not a valid JSON Schema: {e}"))
            })?;
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            AgentryError::Config("executions must be started inside a Tokio runtime".into())
        })?;

        let id = ExecutionId::new();
        let mut root = (*RunContext::root(RunKind::AGENT_EXECUTION)).clone();
        root.execution_id = Some(id.clone());
        root.agent_id = Some(self.agent.id.clone());
        root.agent_name = Some(self.agent.name.clone());
        root.parent_execution_id = self.lineage.parent_execution_id.clone();
        root.flow_name = self.lineage.flow.as_deref().map(Into::into);
        let events = &runtime.inner.events;
        let emitter = if replay {
            events.recording_emitter(id.as_str())
        } else {
            events.emitter(id.as_str())
        };
        let meta = ExecutionMeta {
            execution_id: id.clone(),
            agent: AgentRef {
                id: self.agent.id.clone(),
                name: self.agent.name.to_string(),
            },
            lineage: self.lineage.clone(),
            status: ExecutionStatus::Created,
            route: if uses_actions {
                Route::ActionLoop
            } else {
                Route::ModelRequest
            },
            actions: None,
            limits,
            usage: Usage::default(),
            model_requests: Vec::new(),
            diagnostics: Diagnostics {
                budget: Budget {
                    model_requests_used: 0,
                    max_model_requests: limits.max_model_requests,
                },
                ..Diagnostics::default()
            },
            started_at: Timestamp::now(),
            finished_at: None,
            event_count: 0,
        };
        let (tx, rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            id,
            emitter,
            meta: Mutex::new(meta),
            outcome: rx,
            schema: self.output_schema.clone(),
            root: Arc::new(root),
            workspace: runtime.inner.workspace.clone(),
            keys: structured::KeyStore::new(),
        });
        let plan = run::Plan {
            agent: self.agent,
            provider,
            model_key,
            planner,
            planner_key,
            action_loop,
            input: self.input,
            instructions: self.instructions,
            output_schema: self.output_schema,
            ensure_keys: ensure,
            output_retries: self.output_retries,
            limits,
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        // Boxed: the run's state machine is many KiB, and Tokio copies a task's
        // future into its cell and its output over it; behind a box each copy is a
        // pointer.
        handle.spawn(Box::pin(run::drive(shared.clone(), plan, tx, cancel_rx)));
        Ok(Execution {
            shared,
            cancel: CancelOnDrop(cancel_tx),
        })
    }

    /// Starts the execution and waits for its text answer.
    pub async fn text(self) -> Result<String, AgentryError> {
        self.start_with(false)?.text().await
    }

    /// Starts the execution and waits for its structured answer.
    pub async fn data(self) -> Result<Value, AgentryError> {
        self.start_with(false)?.data().await
    }

    /// Starts the execution and waits for its whole result.
    pub async fn result(self) -> Result<ExecutionResult, AgentryError> {
        self.start_with(false)?.result().await
    }
}

/// What [`Execution::record_workspace`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptions {
    /// Collection of the record (default `observations`).
    pub collection: String,
    /// Kind of the record (default `agent_execution_observation`).
    pub kind: String,
    /// Also write a checkpoint and link the record to it as evidence.
    pub checkpoint: bool,
    /// The checkpoint's state (default: the execution summary).
    pub checkpoint_state: Option<Value>,
    /// The checkpoint's step label.
    pub step_id: Option<String>,
}

impl RecordOptions {
    /// A record in `collection`, no checkpoint.
    pub fn new(collection: impl Into<String>) -> Self {
        Self {
            collection: collection.into(),
            kind: "agent_execution_observation".into(),
            checkpoint: false,
            checkpoint_state: None,
            step_id: None,
        }
    }
    /// Also writes a checkpoint with an evidence link.
    pub fn checkpoint(mut self, yes: bool) -> Self {
        self.checkpoint = yes;
        self
    }
    /// The checkpoint's state.
    pub fn checkpoint_state(mut self, state: Value) -> Self {
        self.checkpoint_state = Some(state);
        self
    }
    /// The checkpoint's step label.
    pub fn step_id(mut self, step: impl Into<String>) -> Self {
        self.step_id = Some(step.into());
        self
    }
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self::new("observations")
    }
}

/// What [`Execution::record_workspace`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceRecord {
    /// The observation record.
    pub record: RecordRef,
    /// The checkpoint, when one was asked for.
    pub checkpoint: Option<SnapshotMeta>,
    /// The evidence link from the record to the checkpoint.
    pub evidence: Option<Link>,
}

/// The answer of a finished execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionResult {
    /// The answer text as the model wrote it.
    pub text: String,
    /// The validated structured answer, when an output schema was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Route, usage, model request log and diagnostics.
    pub meta: ExecutionMeta,
}

#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) data: Option<Value>,
}

pub(crate) type Outcome = Result<Answer, AgentryError>;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: ExecutionId,
    pub(crate) emitter: Emitter,
    pub(crate) meta: Mutex<ExecutionMeta>,
    outcome: watch::Receiver<Option<Arc<Outcome>>>,
    pub(crate) schema: Option<Value>,
    pub(crate) keys: structured::KeyStore,
    /// The execution's root run (`agent_execution`).
    pub(crate) root: Arc<RunContext>,
    pub(crate) workspace: Option<Workspace>,
}

impl Shared {
    pub(crate) fn update_meta(&self, f: impl FnOnce(&mut ExecutionMeta)) {
        f(&mut self.meta.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub(crate) fn meta_snapshot(&self) -> ExecutionMeta {
        self.meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Cancels the run when the last handle goes away, letting the task record the
/// cancellation (event, status) instead of vanishing mid-step.
#[derive(Debug)]
struct CancelOnDrop(watch::Sender<bool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// A running (or finished) execution.
///
/// Dropping it cancels the run. Every reader waits for completion; results are
/// kept, so they may be read any number of times.
#[derive(Debug)]
pub struct Execution {
    shared: Arc<Shared>,
    cancel: CancelOnDrop,
}

impl Execution {
    /// The execution's id.
    pub fn id(&self) -> &ExecutionId {
        &self.shared.id
    }

    /// The execution's RuntimeEvents: every event so far, then new ones until the
    /// execution ends.
    pub fn events(&self) -> EventStream {
        self.shared.emitter.subscribe()
    }

    /// Cancels the run. Readers then get [`AgentryError::Cancelled`].
    pub fn cancel(&self) {
        let _ = self.cancel.0.send(true);
    }

    async fn outcome(&self) -> Arc<Outcome> {
        let mut rx = self.shared.outcome.clone();
        let result = match rx.wait_for(Option::is_some).await {
            Ok(guard) => guard.clone(),
            Err(_) => None,
        };
        match result {
            Some(o) => o,
            None => {
                // The task is gone without reporting: it was aborted or panicked.
                let err =
                    AgentryError::Internal("the execution task ended without an outcome".into());
                self.shared.update_meta(|m| {
                    if matches!(
                        m.status,
                        ExecutionStatus::Running | ExecutionStatus::Created
                    ) {
                        m.status = ExecutionStatus::Error;
                        m.finished_at = Some(Timestamp::now());
                    }
                });
                Arc::new(Err(err))
            }
        }
    }

    /// Waits for the answer text.
    pub async fn text(&self) -> Result<String, AgentryError> {
        match &*self.outcome().await {
            Ok(a) => Ok(a.text.clone()),
            Err(e) => Err(e.clone()),
        }
    }

    /// Waits for the validated structured answer. Errors with
    /// [`AgentryError::NoOutputSchema`] when the request had no output schema.
    pub async fn data(&self) -> Result<Value, AgentryError> {
        if self.shared.schema.is_none() {
            return Err(AgentryError::NoOutputSchema);
        }
        match &*self.outcome().await {
            Ok(a) => a.data.clone().ok_or(AgentryError::NoOutputSchema),
            Err(e) => Err(e.clone()),
        }
    }

    /// Waits for the structured answer and converts it to `T`.
    pub async fn data_as<T: DeserializeOwned>(&self) -> Result<T, AgentryError> {
        let value = self.data().await?;
        serde_json::from_value(value).map_err(|e| AgentryError::DataType(Arc::new(e)))
    }

    /// Waits for completion and returns the meta (also after a failure).
    pub async fn meta(&self) -> ExecutionMeta {
        let _ = self.outcome().await;
        self.meta_now()
    }

    /// The meta as it is now, without waiting.
    pub fn meta_now(&self) -> ExecutionMeta {
        self.shared.meta_snapshot()
    }

    /// The output contract, or `NoOutputSchema` for a plain-text request.
    fn contract(&self) -> Result<&Value, AgentryError> {
        self.shared
            .schema
            .as_ref()
            .ok_or(AgentryError::NoOutputSchema)
    }

    /// Waits until the value at `path` is complete in the streamed answer and
    /// returns it — before the whole answer is done. The path is checked against the
    /// output contract first. A wildcard path (`steps[*].title`) returns the first
    /// matching value. Values are provisional until the final validation passes; after
    /// a corrective re-request the latest value is returned.
    pub async fn get_key_result(&self, path: &str) -> Result<Value, AgentryError> {
        let pattern = structured::check_path(self.contract()?, path)?;
        let mut version = self.shared.keys.subscribe();
        loop {
            let found = self.shared.keys.with(|s| {
                let hit = s
                    .values
                    .iter()
                    .find(|(p, _)| pattern.matches(p))
                    .map(|(_, v)| v.clone());
                (hit, s.finished)
            });
            match found {
                (Some(v), _) => return Ok(v),
                (None, true) => return Err(AgentryError::KeyUnavailable(path.to_owned())),
                (None, false) => {
                    if version.changed().await.is_err() {
                        return Err(AgentryError::KeyUnavailable(path.to_owned()));
                    }
                }
            }
        }
    }

    /// A stream of `(path, value)` for every completed value matching one of the
    /// patterns, each concrete path once, in completion order, ending with the
    /// execution. Unknown paths are refused up front.
    pub fn wait_keys<I, S>(
        &self,
        paths: I,
    ) -> Result<futures::stream::BoxStream<'static, (String, Value)>, AgentryError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let schema = self.contract()?;
        let patterns = paths
            .into_iter()
            .map(|p| structured::check_path(schema, p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = self.shared.clone();
        let version = shared.keys.subscribe();
        Ok(Box::pin(futures::stream::unfold(
            (shared, version, 0usize),
            move |(shared, mut version, mut next)| {
                let patterns = patterns.clone();
                async move {
                    loop {
                        let (hit, finished, len) =
                            shared.keys.with(|s| {
                                let hit =
                                    s.values.iter().enumerate().skip(next).find(|(_, (p, _))| {
                                        patterns.iter().any(|pat| pat.matches(p))
                                    });
                                (
                                    hit.map(|(i, (p, v))| (i, p.to_string(), v.clone())),
                                    s.finished,
                                    s.values.len(),
                                )
                            });
                        if let Some((i, path, value)) = hit {
                            next = i + 1;
                            return Some(((path, value), (shared, version, next)));
                        }
                        next = len;
                        if finished || version.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            },
        )))
    }

    /// Calls `handler` with each completed value matching `path` while the execution
    /// runs (on a Tokio task). The path is checked against the output contract.
    pub fn when_key<F>(&self, path: &str, handler: F) -> Result<(), AgentryError>
    where
        F: Fn(String, Value) + Send + 'static,
    {
        let mut stream = self.wait_keys([path.to_owned()])?;
        tokio::spawn(async move {
            while let Some((p, v)) = futures::StreamExt::next(&mut stream).await {
                handler(p, v);
            }
        });
        Ok(())
    }

    /// Writes this execution's observation to the bound Workspace, after waiting
    /// for it to finish: a record (in `options.collection`) summarising what happened,
    /// and with `options.checkpoint` a checkpoint plus an evidence link
    /// (`checkpointed_by`) from the record to it.
    ///
    /// ```
    /// use agentry::{RecordOptions, Runtime};
    /// use agentry::workspace::{Workspace, WorkspaceMode};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), agentry::AgentryError> {
    /// let dir = tempfile::tempdir().map_err(|e| agentry::AgentryError::Config(e.to_string()))?;
    /// let workspace = Workspace::open(dir.path()).mode(WorkspaceMode::ReadWrite).build()?;
    /// let runtime = Runtime::builder().test_model().workspace(workspace).build()?;
    /// let execution = runtime.agent("a").input("hello").start()?;
    /// let written = execution.record_workspace(RecordOptions::new("observations").checkpoint(true)).await?;
    /// assert!(written.evidence.is_some());
    /// runtime.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn record_workspace(
        &self,
        options: RecordOptions,
    ) -> Result<WorkspaceRecord, AgentryError> {
        let workspace = self
            .shared
            .workspace
            .clone()
            .ok_or(AgentryError::NoWorkspace)?;
        let outcome = self.outcome().await;
        let meta = self.meta_now();
        let id = self.shared.id.to_string();
        let summary = json!({
            "execution_id": id,
            "agent": meta.agent,
            "status": meta.status,
            "route": meta.route,
            "text": outcome.as_ref().as_ref().ok().map(|a| a.text.clone()),
            "data": outcome.as_ref().as_ref().ok().and_then(|a| a.data.clone()),
            "error": outcome.as_ref().as_ref().err().map(|e| json!({"code": e.code(), "message": e.to_string()})),
            "usage": meta.usage,
            "model_requests": meta.model_requests.len(),
            "actions": meta.actions.as_ref().map(|a| a.action_logs.iter().map(|r| json!({"action_id": r.action_id, "status": r.status})).collect::<Vec<_>>()),
            "diagnostics": meta.diagnostics.items.iter().map(|d| d.code.clone()).collect::<Vec<_>>(),
        });
        let mut record = NewRecord::new(options.collection.clone(), Content::Json(summary.clone()));
        record.kind = Some(options.kind.clone());
        record.scope.insert("execution_id".into(), json!(id));
        record.scope.insert("agent".into(), json!(meta.agent.name));
        record.meta.insert("execution_id".into(), json!(id));
        record.meta.insert("lineage".into(), json!(meta.lineage));
        let record = workspace.put(record).await?;
        let (checkpoint, evidence) = if options.checkpoint {
            let store = workspace.store().await?;
            let state = options.checkpoint_state.clone().unwrap_or(summary);
            let snapshot = store
                .put_checkpoint(&id, options.step_id.as_deref(), state)
                .await?;
            let target = format!("snapshot:{}@{}", snapshot.run_id, snapshot.state_version);
            let mut link = NewLink::new(record.id.to_string(), target, "checkpointed_by");
            link.meta.insert("owner".into(), json!("Execution"));
            let evidence = Evidence {
                execution_id: Some(id.clone()),
                event_id: None,
                snapshot: Some((snapshot.run_id.clone(), snapshot.state_version)),
                artifacts: Vec::new(),
            };
            let link = store.link_evidence(link, evidence).await?;
            (Some(snapshot), Some(link))
        } else {
            (None, None)
        };
        self.shared
            .emitter
            .emit(
                &self.shared.root,
                NewEvent::new(EventType::from_static("agent_execution.workspace_recorded"))
                    .source("AgentExecution")
                    .payload(json!({
                        "record_id": record.id,
                        "collection": record.collection,
                        "checkpoint": checkpoint.as_ref().map(|c| json!({"run_id": c.run_id, "state_version": c.state_version})),
                    })),
            )
            .await;
        Ok(WorkspaceRecord {
            record,
            checkpoint,
            evidence,
        })
    }

    /// Waits for the whole result.
    pub async fn result(&self) -> Result<ExecutionResult, AgentryError> {
        let outcome = self.outcome().await;
        match &*outcome {
            Ok(a) => Ok(ExecutionResult {
                text: a.text.clone(),
                data: a.data.clone(),
                meta: self.meta_now(),
            }),
            Err(e) => Err(e.clone()),
        }
    }
}
