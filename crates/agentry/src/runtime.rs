//! The [`Runtime`]: settings, model pool and event center. No global state: a
//! process may hold several runtimes, each with its own models and hooks.
use std::sync::Arc;
use std::time::Duration;

use agentry_core::{EventCenter, HookOptions};
use agentry_model::{ModelPool, ModelProvider, TestModel};
use agentry_workspace::Workspace;

use crate::agent::Agent;
use crate::error::AgentryError;
use crate::limits::Limits;

/// Name of the hook that persists events into a bound Workspace.
pub const WORKSPACE_SINK: &str = "workspace";

/// Runtime-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Limits applied to executions that set none of their own.
    pub default_limits: Limits,
    /// How often a running execution emits `agent_execution.heartbeat`. Heartbeats
    /// show liveness; they never count as progress.
    pub heartbeat_interval: Duration,
    /// Keep every event of an execution in memory so
    /// [`Execution::events`](crate::Execution::events) replays from the first one. Turn off for very
    /// high execution counts when nobody subscribes late. (The one-shot
    /// `agent.input(..).text()` / `.data()` / `.result()` never keep it: their
    /// execution is never handed out, so no one can subscribe late.)
    pub keep_event_log: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_limits: Limits::default(),
            heartbeat_interval: Duration::from_secs(10),
            keep_event_log: true,
        }
    }
}

/// Entry point of the library: owns the model pool, the event center and settings.
/// Cheap to clone.
///
/// ```
/// use agentry::Runtime;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentry::AgentryError> {
/// let runtime = Runtime::builder().test_model().build()?;
/// let agent = runtime.agent("helper").instructions("Answer briefly.");
/// let text = agent.input("What is Agentry?").text().await?;
/// assert!(!text.is_empty());
/// runtime.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

#[derive(Debug)]
pub(crate) struct RuntimeInner {
    pub(crate) models: ModelPool,
    pub(crate) events: EventCenter,
    pub(crate) settings: Settings,
    pub(crate) workspace: Option<Workspace>,
}

impl Runtime {
    /// Starts building a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A new agent with this name, bound to this runtime.
    pub fn agent(&self, name: impl Into<String>) -> Agent {
        Agent::new(self.clone(), name.into())
    }

    /// The event center: register hooks here.
    pub fn events(&self) -> &EventCenter {
        &self.inner.events
    }

    /// The model pool.
    pub fn models(&self) -> &ModelPool {
        &self.inner.models
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The Workspace bound to this runtime, if any.
    pub fn workspace(&self) -> Option<&Workspace> {
        self.inner.workspace.as_ref()
    }

    /// Delivers every buffered event and stops background hooks. Call before the
    /// process exits so no event is lost.
    pub async fn shutdown(&self) {
        self.inner.events.shutdown().await;
    }
}

/// Builds a [`Runtime`].
#[derive(Debug, Default)]
pub struct RuntimeBuilder {
    models: ModelPool,
    events: Option<EventCenter>,
    settings: Settings,
    secrets: Vec<String>,
    workspace: Option<Workspace>,
    persist_events: bool,
}

impl RuntimeBuilder {
    /// Registers a model under a pool key (`default`, `planner` …).
    pub fn model(mut self, key: impl Into<String>, model: Arc<dyn ModelProvider>) -> Self {
        self.models.insert(key, model);
        self
    }

    /// Uses the built-in deterministic `test` model as `default` (and as `test`).
    pub fn test_model(mut self) -> Self {
        let model: Arc<dyn ModelProvider> = Arc::new(TestModel::new());
        self.models.insert(ModelPool::DEFAULT, model.clone());
        self.models.insert("test", model);
        self
    }

    /// Uses an existing event center (to share hooks between runtimes).
    pub fn event_center(mut self, center: EventCenter) -> Self {
        self.events = Some(center);
        self
    }

    /// Replaces the settings.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Default limits for every execution.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.settings.default_limits = limits;
        self
    }

    /// Binds a Workspace: every execution's RuntimeEvents are persisted to it (in the
    /// background; [`Runtime::shutdown`] flushes), and
    /// [`Execution::record_workspace`](crate::Execution::record_workspace) writes
    /// there. Building then needs a Tokio runtime. Binding creates nothing on disk.
    pub fn workspace(mut self, workspace: Workspace) -> Self {
        self.workspace = Some(workspace);
        self.persist_events = true;
        self
    }

    /// Whether a bound Workspace receives every RuntimeEvent (default true).
    pub fn persist_events(mut self, yes: bool) -> Self {
        self.persist_events = yes;
        self
    }

    /// A secret value (an API key, say) that must never appear in any event.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Builds the runtime; refuses invalid default limits and an empty model pool.
    pub fn build(self) -> Result<Runtime, AgentryError> {
        self.settings.default_limits.validate()?;
        if self.models.is_empty() {
            return Err(AgentryError::Config(
                "no model registered: add one with .model(\"default\", …) or use .test_model()"
                    .into(),
            ));
        }
        if self.settings.heartbeat_interval.is_zero() {
            return Err(AgentryError::Config(
                "heartbeat_interval must be positive".into(),
            ));
        }
        let events = self.events.unwrap_or_default();
        for s in self.secrets {
            events.redactor().register_secret(s);
        }
        if let (Some(ws), true) = (&self.workspace, self.persist_events) {
            events
                .register(
                    HookOptions::new(WORKSPACE_SINK).background(),
                    ws.event_sink(),
                )
                .map_err(|e| {
                    AgentryError::Config(format!("cannot persist events to the Workspace: {e}"))
                })?;
        }
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                models: self.models,
                events,
                settings: self.settings,
                workspace: self.workspace,
            }),
        })
    }
}
