//! [`Agent`]: a named set of instructions and defaults that executions start from.
use std::sync::Arc;

use agentry_core::AgentId;
use agentry_model::ModelPool;
use serde_json::Value;

use crate::execution::ExecutionBuilder;
use crate::limits::Limits;
use crate::runtime::Runtime;

/// An agent: name, id, standing instructions, default model key and limits.
///
/// An agent holds no per-request state: `input(..)`, `instruct(..)` and the other
/// request methods return an [`ExecutionBuilder`] that owns its own prompt draft,
/// so concurrent requests of one agent never see each other's input.
#[derive(Debug, Clone)]
pub struct Agent {
    pub(crate) runtime: Runtime,
    pub(crate) id: AgentId,
    pub(crate) name: Arc<str>,
    pub(crate) instructions: Vec<Arc<str>>,
    pub(crate) model_key: Arc<str>,
    pub(crate) limits: Limits,
}

impl Agent {
    pub(crate) fn new(runtime: Runtime, name: String) -> Self {
        Self {
            runtime,
            id: AgentId::new(),
            name: name.into(),
            instructions: Vec::new(),
            model_key: ModelPool::DEFAULT.into(),
            limits: Limits::default(),
        }
    }

    /// Adds standing instructions (system prompt) used by every execution.
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions.push(text.into().into());
        self
    }

    /// Chooses the model-pool key this agent's executions use by default.
    pub fn model(mut self, key: impl Into<String>) -> Self {
        self.model_key = key.into().into();
        self
    }

    /// Default limits for this agent's executions (the runtime's fill the gaps).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
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
