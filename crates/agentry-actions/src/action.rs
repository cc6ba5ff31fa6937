//! Declaring actions: the [`Action`] trait for typed actions (what `#[action]`
//! generates), [`FnAction`] for dynamic actions with an explicit JSON Schema, and the
//! [`ActionSpec`] the registry keeps for both.
//!
//! The runtime never calls a typed action directly: both kinds are erased behind
//! [`DynAction`], which takes and returns JSON, so the dispatcher treats every action
//! the same way and a schema violation is caught before any executor runs.
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use agentry_core::{ActionCallId, Diagnostic, ExecutionId, Severity};
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::record::CallSource;

/// How much an action can change the world. Ordered: `Read < Write < Exec`, so a
/// policy ceiling is a simple comparison.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum SideEffect {
    /// Observes only; safe to run concurrently and to repeat.
    #[default]
    Read,
    /// Changes stored state (files, records …).
    Write,
    /// Runs code or commands.
    Exec,
}

impl SideEffect {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SideEffect::Read => "read",
            SideEffect::Write => "write",
            SideEffect::Exec => "exec",
        }
    }
}

/// A managed resource an action needs before it can run (a shell, a browser, an MCP
/// session …). The runtime only records and reports requirements; `agentry-exec`
/// provides them through a [`ResourceResolver`](crate::ResourceResolver).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRequirement {
    /// Resource kind (`shell`, `python`, `browser` …).
    pub kind: String,
    /// Provider configuration. Values under any `env` key and secret-looking keys
    /// are redacted when the spec is listed.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
}

impl ResourceRequirement {
    /// A requirement of the given kind with no configuration.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            config: Value::Null,
        }
    }

    /// Sets the provider configuration.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }
}

/// Everything the registry knows about an action apart from its executor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionSpec {
    /// Unique id; also the tool name the model sees.
    pub id: String,
    /// What it does and when to use it, for the model.
    pub description: String,
    /// JSON Schema of the input (an object schema).
    pub input_schema: Value,
    /// JSON Schema of the output, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// How much it can change the world.
    pub side_effect: SideEffect,
    /// Every call needs approval first.
    pub approval_required: bool,
    /// Must run in a sandboxed executor; refused (blocked) otherwise.
    pub sandbox_required: bool,
    /// Offered to the model; hidden actions are host-only.
    pub expose_to_model: bool,
    /// Safe to execute again when a durable run resumes after a crash.
    pub replay_safe: bool,
    /// The executor isolates what it runs (satisfies `sandbox_required`).
    pub sandboxed: bool,
    /// Free labels that policies select on.
    pub tags: Vec<String>,
    /// Input keys only the host may set; stripped from model-planned calls and
    /// hidden from the schema the model sees.
    pub host_only_input_keys: Vec<String>,
    /// Managed resources the action needs.
    pub resources: Vec<ResourceRequirement>,
    /// Executor kind for observation (`function`, `closure`, `legacy_tool`, `mcp` …).
    pub executor_kind: String,
}

impl ActionSpec {
    /// A read-only, model-visible spec with the given schema.
    pub fn new(id: impl Into<String>, description: impl Into<String>, input_schema: Value) -> Self {
        Self {
            id: id.into(),
            description: description.into(),
            input_schema,
            output_schema: None,
            side_effect: SideEffect::Read,
            approval_required: false,
            sandbox_required: false,
            expose_to_model: true,
            replay_safe: true,
            sandboxed: false,
            tags: Vec::new(),
            host_only_input_keys: Vec::new(),
            resources: Vec::new(),
            executor_kind: "function".to_owned(),
        }
    }
}

/// Why an action failed, as the action reports it. Becomes an `error` record.
///
/// Any `std::error::Error` converts into it (code `action.execution.failed`), so action
/// bodies can use `?`. It deliberately does not implement `Error` itself, which is
/// what makes that blanket conversion possible.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionFailure {
    /// Stable dotted code.
    pub code: String,
    /// Human-readable message; the model reads it.
    pub message: String,
    /// Structured detail returned with the error.
    pub data: Option<Value>,
    /// A rule refused the call (workdir escape, command not allowed, write not
    /// granted …): the record is `blocked`, not `error`.
    pub blocked: bool,
}

impl ActionFailure {
    /// A failure with a code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            data: None,
            blocked: false,
        }
    }

    /// A refusal by a rule: the record becomes `blocked` with this code.
    pub fn blocked(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            blocked: true,
            ..Self::new(code, message)
        }
    }

    /// A failure with the generic code `action.execution.failed`.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::new(crate::codes::EXECUTION_FAILED, message)
    }

    /// Attaches structured detail.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for ActionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ActionFailure {
    fn from(e: E) -> Self {
        Self::msg(e.to_string())
    }
}

#[derive(Debug, Default)]
struct Notes {
    diagnostics: Vec<Diagnostic>,
    partial: Option<String>,
}

/// What an executing action may know about its call, and how it reports notes.
///
/// Cheap to clone (one `Arc`). Diagnostics and a partial-success mark set here end up
/// in the call's record.
#[derive(Debug, Clone)]
pub struct ActionContext {
    inner: Arc<ContextInner>,
}

#[derive(Debug)]
struct ContextInner {
    call_id: ActionCallId,
    action_id: String,
    purpose: String,
    source: CallSource,
    approved: bool,
    resources: Vec<(String, Arc<dyn std::any::Any + Send + Sync>)>,
    notes: Mutex<Notes>,
}

impl ActionContext {
    pub(crate) fn new(
        call_id: ActionCallId,
        action_id: String,
        purpose: String,
        source: CallSource,
        approved: bool,
        resources: Vec<(String, Arc<dyn std::any::Any + Send + Sync>)>,
    ) -> Self {
        Self {
            inner: Arc::new(ContextInner {
                call_id,
                action_id,
                purpose,
                source,
                approved,
                resources,
                notes: Mutex::new(Notes::default()),
            }),
        }
    }

    /// A context for calling an action outside the runtime (unit tests of actions).
    pub fn detached(action_id: impl Into<String>) -> Self {
        Self::new(
            ActionCallId::new(ExecutionId::new(), 0, 0),
            action_id.into(),
            String::new(),
            CallSource::Host,
            false,
            Vec::new(),
        )
    }

    /// The stable id of this call.
    pub fn call_id(&self) -> &ActionCallId {
        &self.inner.call_id
    }
    /// The execution the call belongs to.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.inner.call_id.execution
    }
    /// The action being called.
    pub fn action_id(&self) -> &str {
        &self.inner.action_id
    }
    /// Why the call was made (planner's purpose or host text).
    pub fn purpose(&self) -> &str {
        &self.inner.purpose
    }
    /// Who asked for the call.
    pub fn source(&self) -> CallSource {
        self.inner.source
    }
    /// Whether an approval handler approved this call.
    pub fn approved(&self) -> bool {
        self.inner.approved
    }
    /// A resource ensured for this call by the [`ResourceResolver`](crate::ResourceResolver),
    /// by requirement kind.
    pub fn resource<T: Send + Sync + 'static>(&self, kind: &str) -> Option<Arc<T>> {
        self.inner
            .resources
            .iter()
            .find(|(k, _)| k == kind)
            .and_then(|(_, r)| r.clone().downcast::<T>().ok())
    }
    /// Adds a diagnostic to the call's record.
    pub fn note(&self, diagnostic: Diagnostic) {
        if let Ok(mut n) = self.inner.notes.lock() {
            n.diagnostics.push(diagnostic);
        }
    }
    /// Marks the result as `partial_success` (some of the work was done).
    pub fn partial_success(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if let Ok(mut n) = self.inner.notes.lock() {
            n.diagnostics.push(Diagnostic::new(
                crate::codes::PARTIAL_SUCCESS,
                Severity::Warning,
                reason.clone(),
            ));
            n.partial = Some(reason);
        }
    }

    pub(crate) fn take_notes(&self) -> (Vec<Diagnostic>, Option<String>) {
        match self.inner.notes.lock() {
            Ok(mut n) => (std::mem::take(&mut n.diagnostics), n.partial.take()),
            Err(_) => (Vec::new(), None),
        }
    }
}

/// A typed action. `#[action]` implements this for an `async fn`; implement it by
/// hand for actions that carry state.
///
/// Only `id`, `description` and `call` are required; everything else has the
/// conservative default (read-only, model-visible, no approval).
pub trait Action: Send + Sync + 'static {
    /// The input, decoded from validated JSON.
    type Input: DeserializeOwned + JsonSchema + Send + 'static;
    /// The output, encoded to JSON for the record.
    type Output: Serialize + Send + 'static;

    /// Unique id; also the tool name the model sees.
    fn id(&self) -> &str;
    /// What it does and when to use it.
    fn description(&self) -> &str;
    /// JSON Schema of the input; by default derived from `Input`.
    fn input_schema(&self) -> Value {
        schema_for::<Self::Input>()
    }
    /// JSON Schema of the output, when you want the model or host to see it.
    fn output_schema(&self) -> Option<Value> {
        None
    }
    /// How much it can change the world.
    fn side_effect(&self) -> SideEffect {
        SideEffect::Read
    }
    /// Every call needs approval first.
    fn approval_required(&self) -> bool {
        false
    }
    /// Must run in a sandboxed executor.
    fn sandbox_required(&self) -> bool {
        false
    }
    /// The executor isolates what it runs.
    fn sandboxed(&self) -> bool {
        false
    }
    /// Offered to the model.
    fn expose_to_model(&self) -> bool {
        true
    }
    /// Safe to repeat on resume. Defaults to true only for read-only actions.
    fn replay_safe(&self) -> bool {
        self.side_effect() == SideEffect::Read
    }
    /// Labels for policy selection.
    fn tags(&self) -> Vec<String> {
        Vec::new()
    }
    /// Input keys only the host may set.
    fn host_only_input_keys(&self) -> Vec<String> {
        Vec::new()
    }
    /// Managed resources the action needs.
    fn resources(&self) -> Vec<ResourceRequirement> {
        Vec::new()
    }
    /// Runs the action.
    fn call(
        &self,
        ctx: ActionContext,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, ActionFailure>> + Send;

    /// The full spec, assembled from the methods above.
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            id: self.id().to_owned(),
            description: self.description().to_owned(),
            input_schema: self.input_schema(),
            output_schema: self.output_schema(),
            side_effect: self.side_effect(),
            approval_required: self.approval_required(),
            sandbox_required: self.sandbox_required(),
            expose_to_model: self.expose_to_model(),
            replay_safe: self.replay_safe(),
            sandboxed: self.sandboxed(),
            tags: self.tags(),
            host_only_input_keys: self.host_only_input_keys(),
            resources: self.resources(),
            executor_kind: "function".to_owned(),
        }
    }
}

/// The JSON Schema of `T` as the runtime uses it: subschemas inlined where possible,
/// no `$schema`/`title` noise at the top (providers reject or ignore them).
pub fn schema_for<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .for_deserialize()
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    value
}

/// The object-safe form every action is stored as: JSON in, JSON out.
pub trait DynAction: Send + Sync + fmt::Debug {
    /// The spec to register.
    fn spec(&self) -> ActionSpec;
    /// Runs the action on already-validated input.
    fn invoke(
        &self,
        ctx: ActionContext,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, ActionFailure>>;
}

/// Wraps a typed [`Action`] as a [`DynAction`].
pub(crate) struct Typed<A>(pub(crate) Arc<A>);

impl<A: Action> fmt::Debug for Typed<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Typed").field(&self.0.id()).finish()
    }
}

impl<A: Action> DynAction for Typed<A> {
    fn spec(&self) -> ActionSpec {
        Action::spec(&*self.0)
    }

    fn invoke(
        &self,
        ctx: ActionContext,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, ActionFailure>> {
        let action = self.0.clone();
        Box::pin(async move {
            let input: A::Input = serde_json::from_value(input).map_err(|e| {
                ActionFailure::new(
                    crate::codes::INPUT_TYPE_ERROR,
                    format!("input does not fit the action: {e}"),
                )
            })?;
            let out = action.call(ctx, input).await?;
            serde_json::to_value(out).map_err(|e| {
                ActionFailure::new(
                    crate::codes::OUTPUT_NOT_JSON,
                    format!("output is not JSON-encodable: {e}"),
                )
            })
        })
    }
}

type Handler = Arc<
    dyn Fn(ActionContext, Value) -> BoxFuture<'static, Result<Value, ActionFailure>> + Send + Sync,
>;

/// A dynamic action: an explicit JSON Schema and a closure taking JSON.
///
/// ```
/// use agentry_actions::{FnAction, SideEffect};
/// use serde_json::json;
/// let echo = FnAction::new(
///     "echo",
///     "Returns its input.",
///     json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
///     |_ctx, input| async move { Ok(input) },
/// )
/// .side_effect(SideEffect::Read)
/// .tag("demo");
/// assert_eq!(echo.spec_ref().id, "echo");
/// ```
#[derive(Clone)]
pub struct FnAction {
    spec: ActionSpec,
    handler: Handler,
}

impl fmt::Debug for FnAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnAction")
            .field("id", &self.spec.id)
            .finish()
    }
}

impl FnAction {
    /// A read-only, model-visible action.
    pub fn new<F, Fut>(
        id: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        f: F,
    ) -> Self
    where
        F: Fn(ActionContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ActionFailure>> + Send + 'static,
    {
        let mut spec = ActionSpec::new(id, description, input_schema);
        spec.executor_kind = "closure".to_owned();
        Self {
            spec,
            handler: Arc::new(move |ctx, input| Box::pin(f(ctx, input))),
        }
    }

    /// The spec as declared so far.
    pub fn spec_ref(&self) -> &ActionSpec {
        &self.spec
    }
    /// Sets the side-effect level (and `replay_safe` to match unless set later).
    pub fn side_effect(mut self, level: SideEffect) -> Self {
        self.spec.side_effect = level;
        self.spec.replay_safe = level == SideEffect::Read;
        self
    }
    /// Requires approval for every call.
    pub fn approval_required(mut self, yes: bool) -> Self {
        self.spec.approval_required = yes;
        self
    }
    /// Requires a sandboxed executor.
    pub fn sandbox_required(mut self, yes: bool) -> Self {
        self.spec.sandbox_required = yes;
        self
    }
    /// Declares that the closure isolates what it runs.
    pub fn sandboxed(mut self, yes: bool) -> Self {
        self.spec.sandboxed = yes;
        self
    }
    /// Offers (or hides) the action to the model.
    pub fn expose_to_model(mut self, yes: bool) -> Self {
        self.spec.expose_to_model = yes;
        self
    }
    /// Marks the action safe (or unsafe) to repeat on resume.
    pub fn replay_safe(mut self, yes: bool) -> Self {
        self.spec.replay_safe = yes;
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.spec.tags.push(tag.into());
        self
    }
    /// Declares an input key only the host may set.
    pub fn host_only_input_key(mut self, key: impl Into<String>) -> Self {
        self.spec.host_only_input_keys.push(key.into());
        self
    }
    /// Declares a managed resource requirement.
    pub fn resource(mut self, requirement: ResourceRequirement) -> Self {
        self.spec.resources.push(requirement);
        self
    }
    /// Declares the output schema.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.spec.output_schema = Some(schema);
        self
    }
    /// Sets the executor kind shown in events.
    pub fn executor_kind(mut self, kind: impl Into<String>) -> Self {
        self.spec.executor_kind = kind.into();
        self
    }
}

impl DynAction for FnAction {
    fn spec(&self) -> ActionSpec {
        self.spec.clone()
    }

    fn invoke(
        &self,
        ctx: ActionContext,
        input: Value,
    ) -> BoxFuture<'static, Result<Value, ActionFailure>> {
        (self.handler)(ctx, input)
    }
}

/// Object keys declared by an object schema's `properties`, or `None` when the schema
/// accepts any keys (no `properties`, or `additionalProperties` not `false`-like).
pub(crate) fn declared_keys(schema: &Value) -> Option<Vec<String>> {
    let obj = schema.as_object()?;
    let props = obj.get("properties")?.as_object()?;
    match obj.get("additionalProperties") {
        Some(Value::Bool(true)) | Some(Value::Object(_)) => return None,
        _ => {}
    }
    if obj.contains_key("patternProperties") {
        return None;
    }
    Some(props.keys().cloned().collect())
}

/// The `required` list of an object schema.
pub(crate) fn required_keys(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The schema the model sees: host-only keys removed from `properties` and `required`.
pub(crate) fn model_schema(schema: &Value, host_only: &[String]) -> Value {
    if host_only.is_empty() {
        return schema.clone();
    }
    let mut s = schema.clone();
    if let Some(obj) = s.as_object_mut() {
        if let Some(Value::Object(props)) = obj.get_mut("properties") {
            for k in host_only {
                props.remove(k);
            }
        }
        if let Some(Value::Array(req)) = obj.get_mut("required") {
            req.retain(|v| v.as_str().is_none_or(|k| !host_only.iter().any(|h| h == k)));
        }
    }
    s
}

/// An empty object schema (`{"type":"object","properties":{}}`), for actions without input.
pub fn empty_object_schema() -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String("object".into()));
    m.insert("properties".into(), Value::Object(Map::new()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct In {
        /// The first.
        a: i64,
        b: Option<String>,
    }

    #[test]
    fn schema_for_marks_options_optional() {
        let s = schema_for::<In>();
        assert_eq!(s["type"], "object");
        assert_eq!(required_keys(&s), vec!["a".to_owned()]);
        assert_eq!(s["properties"]["a"]["description"], "The first.");
        assert!(s.get("$schema").is_none());
        assert_eq!(
            declared_keys(&s).unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }

    #[test]
    fn model_schema_hides_host_only_keys() {
        let s = json!({"type":"object","properties":{"cmd":{},"allow_unsafe":{}},"required":["cmd","allow_unsafe"]});
        let m = model_schema(&s, &["allow_unsafe".to_owned()]);
        assert_eq!(
            m,
            json!({"type":"object","properties":{"cmd":{}},"required":["cmd"]})
        );
    }

    #[test]
    fn open_schemas_declare_no_keys() {
        assert!(declared_keys(&json!({"type":"object"})).is_none());
        assert!(
            declared_keys(&json!({"properties":{"a":{}},"additionalProperties":true})).is_none()
        );
        assert!(
            declared_keys(&json!({"properties":{"a":{}},"additionalProperties":false})).is_some()
        );
    }

    #[test]
    fn failure_from_error() {
        let f: ActionFailure = std::io::Error::other("disk").into();
        assert_eq!(f.code, crate::codes::EXECUTION_FAILED);
        assert_eq!(f.message, "disk");
    }

    #[test]
    fn context_notes() {
        let ctx = ActionContext::detached("x");
        ctx.partial_success("half");
        let (d, p) = ctx.take_notes();
        assert_eq!(d.len(), 1);
        assert_eq!(p.as_deref(), Some("half"));
    }
}
