//! [`Agent`]: a named set of instructions, actions and defaults that executions
//! start from.
use std::sync::Arc;

use agentry_actions::{
    Action, ActionPolicy, ActionRegistry, ApprovalHandler, FnAction, LegacyTool, LoopOptions,
    ResourceResolver, default_handler,
};
use agentry_core::AgentId;
use agentry_model::ModelPool;
use serde_json::Value;

use crate::error::AgentryError;
use crate::execution::ExecutionBuilder;
use crate::limits::Limits;
use crate::runtime::Runtime;

/// An agent: name, id, standing instructions, actions, policy, default model key
/// and limits.
///
/// An agent holds no per-request state: `input(..)`, `instruct(..)` and the other
/// request methods return an [`ExecutionBuilder`] that owns its own prompt draft,
/// so concurrent requests of one agent never see each other's input. Configuration
/// methods consume and return the agent (it is cheap to clone).
///
/// ```
/// use agentry::Runtime;
/// use agentry::actions::{FnAction, SideEffect};
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentry::AgentryError> {
/// let runtime = Runtime::builder().test_model().build()?;
/// let add = FnAction::new(
///     "add",
///     "Adds two integers.",
///     json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
///     |_ctx, input| async move { Ok(json!(input["a"].as_i64().unwrap_or(0) + input["b"].as_i64().unwrap_or(0))) },
/// )
/// .side_effect(SideEffect::Read);
/// let agent = runtime.agent("calculator").action_fn(add)?;
/// let execution = agent.input("add 2 and 3").start()?;
/// execution.text().await?;
/// let actions = execution.meta().await.actions.expect("the action loop ran");
/// assert_eq!(actions.action_logs[0].action_id, "add");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Agent {
    pub(crate) runtime: Runtime,
    pub(crate) id: AgentId,
    pub(crate) name: Arc<str>,
    pub(crate) instructions: Vec<Arc<str>>,
    pub(crate) model_key: Arc<str>,
    pub(crate) planner_key: Option<Arc<str>>,
    pub(crate) limits: Limits,
    pub(crate) actions: Arc<ActionRegistry>,
    pub(crate) policy: ActionPolicy,
    pub(crate) approval: Arc<dyn ApprovalHandler>,
    pub(crate) loop_options: LoopOptions,
    pub(crate) resources: Option<Arc<dyn ResourceResolver>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("model_key", &self.model_key)
            .field("actions", &self.actions.ids())
            .finish()
    }
}

impl Agent {
    pub(crate) fn new(runtime: Runtime, name: String) -> Self {
        Self {
            runtime,
            id: AgentId::new(),
            name: name.into(),
            instructions: Vec::new(),
            model_key: ModelPool::DEFAULT.into(),
            planner_key: None,
            limits: Limits::default(),
            actions: Arc::new(ActionRegistry::new()),
            policy: ActionPolicy::default(),
            approval: default_handler(),
            loop_options: LoopOptions::default(),
            resources: None,
        }
    }

    /// Adds standing instructions (system prompt) used by every execution.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions.push(text.into().into());
        self
    }

    /// Chooses the model-pool key this agent's executions answer with.
    pub fn model(mut self, key: impl Into<String>) -> Self {
        self.model_key = key.into().into();
        self
    }

    /// Chooses the model-pool key used for planning actions (default: the answer
    /// model).
    pub fn planner_model(mut self, key: impl Into<String>) -> Self {
        self.planner_key = Some(key.into().into());
        self
    }

    /// Default limits for this agent's executions (the runtime's fill the gaps).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Registers a typed action. Ids are unique: registering an existing id fails.
    pub fn action<A: Action>(mut self, action: A) -> Result<Self, AgentryError> {
        Arc::make_mut(&mut self.actions).register(action)?;
        Ok(self)
    }

    /// Registers a closure action with an explicit JSON Schema.
    pub fn action_fn(mut self, action: FnAction) -> Result<Self, AgentryError> {
        Arc::make_mut(&mut self.actions).register_fn(action)?;
        Ok(self)
    }

    /// Registers an OpenAI-style function tool.
    pub fn tool(mut self, tool: LegacyTool) -> Result<Self, AgentryError> {
        Arc::make_mut(&mut self.actions).register_tool(tool)?;
        Ok(self)
    }

    /// Replaces this agent's actions with a prepared registry (built-in packages,
    /// MCP tools …).
    pub fn with_actions(mut self, registry: ActionRegistry) -> Self {
        self.actions = Arc::new(registry);
        self
    }

    /// The policy every action call of this agent is checked against.
    pub fn policy(mut self, policy: ActionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Who decides on calls that need approval (default: fail closed).
    pub fn approval(mut self, handler: Arc<dyn ApprovalHandler>) -> Self {
        self.approval = handler;
        self
    }

    /// Loop settings (rounds, concurrency, planning protocol, timeouts).
    pub fn loop_options(mut self, options: LoopOptions) -> Self {
        self.loop_options = options;
        self
    }

    /// Provides the execution resources (shell, interpreters, databases, MCP
    /// servers …) that actions declare; see `agentry_exec::ResourceManager`.
    pub fn resources(mut self, resolver: Arc<dyn ResourceResolver>) -> Self {
        self.resources = Some(resolver);
        self
    }

    /// Most planning rounds that execute actions.
    pub fn max_rounds(mut self, rounds: u32) -> Self {
        self.loop_options.max_rounds = rounds;
        self
    }

    /// The agent's id.
    pub fn id(&self) -> &AgentId {
        &self.id
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The agent's actions.
    pub fn actions(&self) -> &ActionRegistry {
        &self.actions
    }

    /// The runtime this agent belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Starts an execution draft with this input.
    pub fn input(&self, input: impl Into<Value>) -> ExecutionBuilder {
        ExecutionBuilder::new(self.clone()).input(input)
    }

    /// Starts an execution draft with this request-specific instruction.
    pub fn instruct(&self, text: impl Into<String>) -> ExecutionBuilder {
        ExecutionBuilder::new(self.clone()).instruct(text)
    }

    /// Starts an empty execution draft.
    pub fn request(&self) -> ExecutionBuilder {
        ExecutionBuilder::new(self.clone())
    }
}
