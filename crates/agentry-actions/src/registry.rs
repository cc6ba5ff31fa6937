//! Where actions live: an [`ActionRegistry`] per agent, and a [`RegistryView`] per
//! execution that layers execution-local actions over the agent's without changing
//! the agent's registry.
//!
//! Order is registration order everywhere (listing, tools offered to the model), so
//! the same setup always produces the same prompt. Registering an id twice is an
//! error unless replacement is asked for.
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use agentry_core::{REDACTED, Redactor};
use agentry_model::ToolSpec;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::action::{
    Action, ActionSpec, DynAction, FnAction, Typed, declared_keys, model_schema, required_keys,
};
use crate::error::ActionError;

/// One registered action with everything precomputed that the dispatcher needs per
/// call (compiled validator, declared and required keys, the model's tool spec).
pub struct RegisteredAction {
    pub(crate) spec: ActionSpec,
    pub(crate) tool: ToolSpec,
    pub(crate) validator: jsonschema::Validator,
    pub(crate) declared: Option<Vec<String>>,
    pub(crate) required: Vec<String>,
    pub(crate) action: Arc<dyn DynAction>,
}

impl fmt::Debug for RegisteredAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredAction")
            .field("id", &self.spec.id)
            .finish()
    }
}

impl RegisteredAction {
    pub(crate) fn build(action: Arc<dyn DynAction>) -> Result<Self, ActionError> {
        let spec = action.spec();
        let invalid = |reason: String| ActionError::InvalidSpec {
            action: spec.id.clone(),
            reason,
        };
        if spec.id.is_empty() || spec.id.len() > 64 {
            return Err(invalid("the id must be 1 to 64 characters".into()));
        }
        if !spec
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                "the id may only hold ASCII letters, digits, `_`, `-` and `.`".into(),
            ));
        }
        let schema = &spec.input_schema;
        let is_object = schema.get("type").and_then(Value::as_str) == Some("object")
            || schema.get("properties").is_some();
        if !is_object {
            return Err(invalid(
                "the input schema must describe a JSON object".into(),
            ));
        }
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| invalid(format!("the input schema does not compile: {e}")))?;
        let required = required_keys(schema);
        if let Some(k) = spec
            .host_only_input_keys
            .iter()
            .find(|k| required.contains(k))
        {
            return Err(invalid(format!("host-only key `{k}` cannot be required")));
        }
        let tool = ToolSpec {
            name: spec.id.clone(),
            description: spec.description.clone(),
            parameters: model_schema(schema, &spec.host_only_input_keys),
        };
        Ok(Self {
            declared: declared_keys(schema),
            required,
            tool,
            validator,
            spec,
            action,
        })
    }

    /// The action's spec.
    pub fn spec(&self) -> &ActionSpec {
        &self.spec
    }
}

/// The registered actions of one agent (or of one execution), in registration order.
///
/// Cloning is cheap: entries are shared.
///
/// ```
/// use agentry_actions::{ActionRegistry, FnAction};
/// use serde_json::json;
/// let mut reg = ActionRegistry::new();
/// let ping = FnAction::new("ping", "Answers pong.", json!({"type": "object"}), |_, _| async { Ok(json!("pong")) });
/// reg.register_fn(ping.clone()).unwrap();
/// assert!(reg.register_fn(ping.clone()).is_err()); // duplicate ids are refused
/// reg.replace_fn(ping).unwrap();                    // unless replacement is asked for
/// assert_eq!(reg.ids(), vec!["ping"]);
/// ```
#[derive(Clone, Default)]
pub struct ActionRegistry {
    entries: Vec<Arc<RegisteredAction>>,
    index: HashMap<String, usize>,
}

impl fmt::Debug for ActionRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionRegistry")
            .field("ids", &self.ids())
            .finish()
    }
}

impl ActionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a typed action; refuses an existing id.
    pub fn register<A: Action>(&mut self, action: A) -> Result<(), ActionError> {
        self.insert(Arc::new(Typed(Arc::new(action))), false)
    }

    /// Registers a typed action, replacing one with the same id.
    pub fn replace<A: Action>(&mut self, action: A) -> Result<(), ActionError> {
        self.insert(Arc::new(Typed(Arc::new(action))), true)
    }

    /// Registers a closure action; refuses an existing id.
    pub fn register_fn(&mut self, action: FnAction) -> Result<(), ActionError> {
        self.insert(Arc::new(action), false)
    }

    /// Registers a closure action, replacing one with the same id.
    pub fn replace_fn(&mut self, action: FnAction) -> Result<(), ActionError> {
        self.insert(Arc::new(action), true)
    }

    /// Registers any erased action; `replace` allows overwriting an existing id
    /// (the replacement keeps the original's position).
    pub fn register_dyn(
        &mut self,
        action: Arc<dyn DynAction>,
        replace: bool,
    ) -> Result<(), ActionError> {
        self.insert(action, replace)
    }

    /// Registers several actions atomically: either all are added or none.
    pub fn register_all(&mut self, actions: Vec<Arc<dyn DynAction>>) -> Result<(), ActionError> {
        let mut next = self.clone();
        for a in actions {
            next.insert(a, false)?;
        }
        *self = next;
        Ok(())
    }

    fn insert(&mut self, action: Arc<dyn DynAction>, replace: bool) -> Result<(), ActionError> {
        let entry = Arc::new(RegisteredAction::build(action)?);
        let id = entry.spec.id.clone();
        match self.index.get(&id) {
            Some(&i) if replace => {
                self.entries[i] = entry;
                Ok(())
            }
            Some(_) => Err(ActionError::DuplicateId(id)),
            None => {
                self.index.insert(id, self.entries.len());
                self.entries.push(entry);
                Ok(())
            }
        }
    }

    /// Removes an action; returns whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.index.remove(id) else {
            return false;
        };
        self.entries.remove(i);
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.spec.id.clone(), i))
            .collect();
        true
    }

    /// The entry for an id.
    pub fn get(&self, id: &str) -> Option<&Arc<RegisteredAction>> {
        self.index.get(id).and_then(|&i| self.entries.get(i))
    }

    /// Whether the id is registered.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Registered ids in order.
    pub fn ids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.spec.id.as_str()).collect()
    }

    /// Number of actions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in order.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<RegisteredAction>> {
        self.entries.iter()
    }

    /// Model-visible actions keyed by id, specs redacted (see [`ActionInfo`]).
    pub fn action_info(&self) -> Map<String, Value> {
        info_map(self.entries.iter())
    }

    /// Model-visible actions as a list, specs redacted.
    pub fn action_list(&self) -> Vec<ActionInfo> {
        info_list(self.entries.iter())
    }
}

/// The listing form of a spec: what hosts and UIs may show. Values under any `env` key
/// and secret-looking keys in resource configuration are `[REDACTED]`; the raw values
/// still reach the resource resolver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionInfo {
    /// Id.
    pub id: String,
    /// Description.
    pub description: String,
    /// Input schema as the model sees it (host-only keys removed).
    pub input_schema: Value,
    /// Output schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Side effect.
    pub side_effect: crate::SideEffect,
    /// Approval required.
    pub approval_required: bool,
    /// Sandbox required.
    pub sandbox_required: bool,
    /// Replay safe.
    pub replay_safe: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// Resource requirements, redacted.
    pub resources: Vec<crate::ResourceRequirement>,
    /// Executor kind.
    pub executor_kind: String,
}

fn info_list<'a>(entries: impl Iterator<Item = &'a Arc<RegisteredAction>>) -> Vec<ActionInfo> {
    let redactor = Redactor::default();
    entries
        .filter(|e| e.spec.expose_to_model)
        .map(|e| {
            let s = &e.spec;
            let resources = s
                .resources
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    redact_env(&mut r.config);
                    redactor.redact_value(&mut r.config);
                    r
                })
                .collect();
            ActionInfo {
                id: s.id.clone(),
                description: s.description.clone(),
                input_schema: e.tool.parameters.clone(),
                output_schema: s.output_schema.clone(),
                side_effect: s.side_effect,
                approval_required: s.approval_required,
                sandbox_required: s.sandbox_required,
                replay_safe: s.replay_safe,
                tags: s.tags.clone(),
                resources,
                executor_kind: s.executor_kind.clone(),
            }
        })
        .collect()
}

fn info_map<'a>(entries: impl Iterator<Item = &'a Arc<RegisteredAction>>) -> Map<String, Value> {
    info_list(entries)
        .into_iter()
        .map(|i| {
            (
                i.id.clone(),
                serde_json::to_value(&i).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// Replaces every value under a key named `env`: objects keep their keys, arrays
/// their length; `null` stays `null`.
pub(crate) fn redact_env(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "env" {
                    match child {
                        Value::Object(inner) => {
                            for x in inner.values_mut() {
                                *x = Value::String(REDACTED.into());
                            }
                        }
                        Value::Array(items) => {
                            for x in items.iter_mut() {
                                *x = Value::String(REDACTED.into());
                            }
                        }
                        Value::Null => {}
                        other => *other = Value::String(REDACTED.into()),
                    }
                } else {
                    redact_env(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_env),
        _ => {}
    }
}

/// The actions one execution sees: the agent's registry plus execution-local actions.
///
/// Local actions never leak into the agent's registry; an id already present in the
/// agent layer is refused unless it is replaced locally with
/// [`replace_local_dyn`](Self::replace_local_dyn), which shadows it for this execution only.
#[derive(Clone, Debug, Default)]
pub struct RegistryView {
    agent: Arc<ActionRegistry>,
    local: ActionRegistry,
}

impl From<ActionRegistry> for RegistryView {
    fn from(r: ActionRegistry) -> Self {
        Self::new(Arc::new(r))
    }
}

impl RegistryView {
    /// A view of the agent's registry with no local actions.
    pub fn new(agent: Arc<ActionRegistry>) -> Self {
        Self {
            agent,
            local: ActionRegistry::new(),
        }
    }

    /// Adds an execution-local action; refuses ids present in either layer.
    pub fn register_local_dyn(&mut self, action: Arc<dyn DynAction>) -> Result<(), ActionError> {
        let entry = RegisteredAction::build(action.clone())?;
        if self.agent.contains(&entry.spec.id) {
            return Err(ActionError::DuplicateId(entry.spec.id));
        }
        self.local.register_dyn(action, false)
    }

    /// Adds an execution-local typed action.
    pub fn register_local<A: Action>(&mut self, action: A) -> Result<(), ActionError> {
        self.register_local_dyn(Arc::new(Typed(Arc::new(action))))
    }

    /// Adds an execution-local closure action.
    pub fn register_local_fn(&mut self, action: FnAction) -> Result<(), ActionError> {
        self.register_local_dyn(Arc::new(action))
    }

    /// Adds or replaces an execution-local action, shadowing an agent action of the
    /// same id for this execution.
    pub fn replace_local_dyn(&mut self, action: Arc<dyn DynAction>) -> Result<(), ActionError> {
        self.local.register_dyn(action, true)
    }

    /// The entry for an id (local layer first).
    pub fn get(&self, id: &str) -> Option<&Arc<RegisteredAction>> {
        self.local.get(id).or_else(|| self.agent.get(id))
    }

    /// Every visible entry: agent actions in order (shadowed ones replaced in place),
    /// then local-only actions in order.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<RegisteredAction>> {
        let agent = self
            .agent
            .entries()
            .map(|e| self.local.get(&e.spec.id).unwrap_or(e));
        let local = self
            .local
            .entries()
            .filter(|e| !self.agent.contains(&e.spec.id));
        agent.chain(local)
    }

    /// Visible ids in order.
    pub fn ids(&self) -> Vec<&str> {
        self.entries().map(|e| e.spec.id.as_str()).collect()
    }

    /// The local layer.
    pub fn local(&self) -> &ActionRegistry {
        &self.local
    }

    /// The agent layer.
    pub fn agent(&self) -> &Arc<ActionRegistry> {
        &self.agent
    }

    /// Model-visible actions keyed by id, redacted.
    pub fn action_info(&self) -> Map<String, Value> {
        info_map(self.entries())
    }

    /// Model-visible actions as a list, redacted.
    pub fn action_list(&self) -> Vec<ActionInfo> {
        info_list(self.entries())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResourceRequirement;
    use serde_json::json;

    fn act(id: &str) -> FnAction {
        FnAction::new(
            id,
            "d",
            json!({"type":"object","properties":{"a":{"type":"integer"}}}),
            |_, v| async { Ok(v) },
        )
    }

    #[test]
    fn duplicates_and_replacement() {
        let mut r = ActionRegistry::new();
        r.register_fn(act("a")).unwrap();
        r.register_fn(act("b")).unwrap();
        assert!(matches!(
            r.register_fn(act("a")),
            Err(ActionError::DuplicateId(_))
        ));
        r.replace_fn(act("a").tag("new")).unwrap();
        assert_eq!(r.ids(), vec!["a", "b"]);
        assert_eq!(r.get("a").unwrap().spec.tags, vec!["new".to_owned()]);
        assert!(r.remove("a"));
        assert_eq!(r.ids(), vec!["b"]);
        assert!(r.get("b").is_some());
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut r = ActionRegistry::new();
        assert!(
            r.register_fn(FnAction::new(
                "",
                "d",
                json!({"type":"object"}),
                |_, v| async { Ok(v) }
            ))
            .is_err()
        );
        assert!(
            r.register_fn(FnAction::new(
                "a b",
                "d",
                json!({"type":"object"}),
                |_, v| async { Ok(v) }
            ))
            .is_err()
        );
        assert!(
            r.register_fn(FnAction::new(
                "s",
                "d",
                json!({"type":"string"}),
                |_, v| async { Ok(v) }
            ))
            .is_err()
        );
        let bad = FnAction::new(
            "h",
            "d",
            json!({"type":"object","properties":{"k":{}},"required":["k"]}),
            |_, v| async { Ok(v) },
        )
        .host_only_input_key("k");
        assert!(r.register_fn(bad).is_err());
    }

    #[test]
    fn atomic_batch() {
        let mut r = ActionRegistry::new();
        r.register_fn(act("a")).unwrap();
        let batch: Vec<Arc<dyn DynAction>> = vec![Arc::new(act("x")), Arc::new(act("a"))];
        assert!(r.register_all(batch).is_err());
        assert_eq!(r.ids(), vec!["a"]);
    }

    #[test]
    fn view_layers_do_not_leak() {
        let mut agent = ActionRegistry::new();
        agent.register_fn(act("a")).unwrap();
        let agent = Arc::new(agent);
        let mut view = RegistryView::new(agent.clone());
        view.register_local_fn(act("l")).unwrap();
        assert!(view.register_local_fn(act("a")).is_err());
        assert_eq!(view.ids(), vec!["a", "l"]);
        assert_eq!(agent.ids(), vec!["a"]);
        view.replace_local_dyn(Arc::new(act("a").tag("shadow")))
            .unwrap();
        assert_eq!(view.ids(), vec!["a", "l"]);
        assert_eq!(view.get("a").unwrap().spec.tags, vec!["shadow".to_owned()]);
        assert!(agent.get("a").unwrap().spec.tags.is_empty());
    }

    #[test]
    fn info_redacts_env_and_hides_private_actions() {
        let mut r = ActionRegistry::new();
        r.register_fn(
            act("a").resource(ResourceRequirement::new("shell").with_config(
                json!({"env": {"TOKEN": "s3cret", "HOME": "/x"}, "api_key": "k", "cwd": "/w", "args": {"env": ["a"]}}),
            )),
        )
        .unwrap();
        r.register_fn(act("hidden").expose_to_model(false)).unwrap();
        let info = r.action_info();
        assert_eq!(info.len(), 1);
        let cfg = &info["a"]["resources"][0]["config"];
        assert_eq!(
            cfg["env"],
            json!({"TOKEN": "[REDACTED]", "HOME": "[REDACTED]"})
        );
        assert_eq!(cfg["args"]["env"], json!(["[REDACTED]"]));
        assert_eq!(cfg["api_key"], "[REDACTED]");
        assert_eq!(cfg["cwd"], "/w");
        assert_eq!(r.action_list()[0].id, "a");
    }
}
