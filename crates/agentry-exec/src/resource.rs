//! The resource manager: requirements declared by actions, providers registered by
//! kind, ensure → a ready, reference-counted, health-checked resource, release by
//! call and by scope, permission profiles and approval.
//!
//! # Keys and reuse
//!
//! A resource is identified by `(kind, scope, owner, config)`. The owner follows the
//! scope: the call id for [`ResourceScope::ActionCall`] (so two concurrent calls
//! never share a per-call resource), the execution id for
//! [`ResourceScope::Execution`], and the declared owner (default `default`) for
//! [`ResourceScope::Agent`] and [`ResourceScope::Session`]. An `ensure` for a key
//! that is live runs the provider's health check and hands out the same resource
//! (`resource.reused`, `ref_count + 1`); an unhealthy one is released and replaced
//! (`resource.unhealthy`). Each key has its own async lock, so concurrent ensures of
//! one key create one resource.
//!
//! # Release
//!
//! The dispatcher calls [`ResourceResolver::release`] after each call: every
//! resource the call acquired is released once (`ref_count - 1`); call-scoped ones
//! are closed when the count reaches zero. Wider scopes stay until
//! [`ResourceManager::release_scope`]. A provider that fails to release is reported
//! (`resource.failed`, a `tracing` warning, and [`ResourceManager::release_failures`]),
//! never silently dropped.
//!
//! # Encoding in an `ActionSpec`
//!
//! `agentry_actions::ResourceRequirement` has a kind and a JSON config only; a
//! [`ResourceSpec`] travels in it as `{"scope", "owner", "approval_required",
//! "needs", "settings"}` ([`ResourceSpec::to_requirement`]). A foreign requirement
//! whose config is not in that shape is read as call-scoped with the whole config as
//! settings.
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use agentry_actions::{
    ActionFailure, ApprovalDecision, ApprovalHandler, ApprovalMode, ApprovalRequest, CallSource,
    FailClosed, HOST_ROUND, ResourceRequirement, ResourceResolver, SideEffect,
};
use agentry_core::{
    ActionCallId, Emitter, ErrorCode, EventType, ExecutionId, Level, NewEvent, RunContext,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ExecError;

/// A live resource as providers hand it out; actions downcast it with
/// `ActionContext::resource::<T>(kind)`.
pub type Resource = Arc<dyn Any + Send + Sync>;

/// How long a resource lives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceScope {
    /// One action call; closed when the call ends.
    #[default]
    ActionCall,
    /// One execution; closed by `release_scope(Execution, execution_id)`.
    Execution,
    /// An agent (owner = agent name); closed by the host.
    Agent,
    /// A session (owner = session id); closed by the host.
    Session,
}

impl ResourceScope {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActionCall => "action_call",
            Self::Execution => "execution",
            Self::Agent => "agent",
            Self::Session => "session",
        }
    }
}

/// What a resource needs from the permission profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Change files or databases.
    Write,
    /// Run programs or code.
    Exec,
    /// Reach the network.
    Network,
    /// Install packages (network + writes outside the workspace).
    Install,
}

/// What a host allows its resources to do. There is deliberately no profile that
/// means "anything" without the host naming it: `trusted` must be chosen explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionProfile {
    /// Reads only: file listing/reading, read-only SQLite, read-only shell diagnostics.
    ReadOnly,
    /// Local work: file writes, SQLite writes, shell build/test tools, sandboxed
    /// Python/Node.js. No network.
    #[default]
    LocalFiles,
    /// Reads plus network reads (search/browse resources). No writes, no exec.
    NetworkRead,
    /// Local work plus package installation and network, for explicit maintenance.
    InstallCapableShell,
    /// Everything, including running unsandboxed; the host takes responsibility.
    Trusted,
}

impl PermissionProfile {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::LocalFiles => "local_files",
            Self::NetworkRead => "network_read",
            Self::InstallCapableShell => "install_capable_shell",
            Self::Trusted => "trusted",
        }
    }

    /// Whether the profile grants a capability.
    pub fn allows(self, cap: Capability) -> bool {
        use Capability::*;
        use PermissionProfile::*;
        matches!(
            (self, cap),
            (Trusted | InstallCapableShell, _)
                | (LocalFiles, Write | Exec)
                | (NetworkRead, Network)
        )
    }

    /// Checks every capability in `needs`.
    pub fn check(self, needs: &[Capability]) -> Result<(), ExecError> {
        match needs.iter().find(|c| !self.allows(**c)) {
            None => Ok(()),
            Some(c) => Err(ExecError::PermissionDenied {
                profile: self.as_str(),
                what: format!("{c:?}").to_lowercase(),
            }),
        }
    }
}

impl FromStr for PermissionProfile {
    type Err = ExecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "read_only" => Ok(Self::ReadOnly),
            "local_files" => Ok(Self::LocalFiles),
            "network_read" => Ok(Self::NetworkRead),
            "install_capable_shell" => Ok(Self::InstallCapableShell),
            "trusted" => Ok(Self::Trusted),
            other => Err(ExecError::InvalidOption(format!(
                "permission profile `{other}`"
            ))),
        }
    }
}

/// A typed requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// Provider kind.
    pub kind: String,
    /// Lifetime.
    #[serde(default)]
    pub scope: ResourceScope,
    /// Owner for agent/session scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Ask the approval handler before creating it.
    #[serde(default)]
    pub approval_required: bool,
    /// Capabilities the permission profile must grant.
    #[serde(default)]
    pub needs: Vec<Capability>,
    /// Provider settings (part of the reuse key).
    #[serde(default)]
    pub settings: Value,
}

impl ResourceSpec {
    /// A call-scoped requirement of `kind` with no settings.
    pub fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            scope: ResourceScope::ActionCall,
            owner: None,
            approval_required: false,
            needs: Vec::new(),
            settings: Value::Null,
        }
    }
    /// Sets the scope.
    pub fn scope(mut self, scope: ResourceScope) -> Self {
        self.scope = scope;
        self
    }
    /// Sets the owner (agent or session scopes).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }
    /// Needs a capability.
    pub fn needs(mut self, cap: Capability) -> Self {
        if !self.needs.contains(&cap) {
            self.needs.push(cap);
            self.needs.sort();
        }
        self
    }
    /// Requires approval.
    pub fn approval_required(mut self, yes: bool) -> Self {
        self.approval_required = yes;
        self
    }
    /// Sets the provider settings.
    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = settings;
        self
    }

    /// The requirement to put in an `ActionSpec`.
    pub fn to_requirement(&self) -> ResourceRequirement {
        ResourceRequirement::new(self.kind.clone())
            .with_config(serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// Reads a requirement back (see the module docs for foreign shapes).
    pub fn from_requirement(req: &ResourceRequirement) -> Result<Self, ExecError> {
        let envelope = req
            .config
            .as_object()
            .is_some_and(|o| o.contains_key("settings") || o.contains_key("scope"));
        if envelope {
            let mut v = req.config.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert("kind".into(), Value::String(req.kind.clone()));
            }
            serde_json::from_value(v).map_err(|e| ExecError::InvalidRequirement(e.to_string()))
        } else {
            Ok(Self::new(req.kind.clone()).settings(req.config.clone()))
        }
    }
}

/// What a provider is asked to create.
#[derive(Debug, Clone)]
pub struct EnsureRequest {
    /// The requirement.
    pub spec: ResourceSpec,
    /// The resolved owner (call id, execution id, or declared owner).
    pub owner: String,
    /// The profile in force.
    pub profile: PermissionProfile,
}

/// Creates, checks and closes resources of one kind.
pub trait ResourceProvider: Send + Sync + fmt::Debug {
    /// The kind it provides.
    fn kind(&self) -> &str;
    /// Creates a ready resource.
    fn ensure<'a>(
        &'a self,
        request: &'a EnsureRequest,
    ) -> BoxFuture<'a, Result<Resource, ExecError>>;
    /// Whether a live resource is still usable (run before every reuse).
    fn health_check<'a>(&'a self, _resource: &'a Resource) -> BoxFuture<'a, bool> {
        Box::pin(async { true })
    }
    /// Closes a resource.
    fn release(&self, _resource: Resource) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async { Ok(()) })
    }
}

type EnsureFn = dyn Fn(&EnsureRequest) -> Result<Resource, ExecError> + Send + Sync;
type HealthFn = dyn Fn(&Resource) -> bool + Send + Sync;

/// A provider from closures, for resources that are cheap to build synchronously.
///
/// ```
/// use agentry_exec::resource::{FnProvider, ResourceManager, ResourceSpec, PermissionProfile};
/// use std::sync::Arc;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentry_exec::ExecError> {
/// let manager = ResourceManager::new(PermissionProfile::LocalFiles);
/// manager.register_provider(FnProvider::new("counter", |_req| Ok(Arc::new(41u32))));
/// let handle = manager.ensure(&ResourceSpec::new("counter"), None).await?;
/// assert_eq!(handle.get::<u32>().map(|v| *v + 1), Some(42));
/// manager.release(handle).await?;
/// # Ok(()) }
/// ```
pub struct FnProvider {
    kind: String,
    ensure: Box<EnsureFn>,
    health: Option<Box<HealthFn>>,
}

impl fmt::Debug for FnProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnProvider")
            .field("kind", &self.kind)
            .finish()
    }
}

impl FnProvider {
    /// A provider of `kind` building resources with `ensure`.
    pub fn new(
        kind: impl Into<String>,
        ensure: impl Fn(&EnsureRequest) -> Result<Resource, ExecError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind: kind.into(),
            ensure: Box::new(ensure),
            health: None,
        }
    }
    /// Adds a health check.
    pub fn health(mut self, f: impl Fn(&Resource) -> bool + Send + Sync + 'static) -> Self {
        self.health = Some(Box::new(f));
        self
    }
}

impl ResourceProvider for FnProvider {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn ensure<'a>(
        &'a self,
        request: &'a EnsureRequest,
    ) -> BoxFuture<'a, Result<Resource, ExecError>> {
        Box::pin(async move { (self.ensure)(request) })
    }
    fn health_check<'a>(&'a self, resource: &'a Resource) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.health.as_ref().is_none_or(|h| h(resource)) })
    }
}

/// The identity of a live resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// Kind.
    pub kind: String,
    /// Scope.
    pub scope: ResourceScope,
    /// Resolved owner.
    pub owner: String,
    /// Canonical JSON of the settings and needs.
    pub config: String,
}

/// A resource handed out by [`ResourceManager::ensure`]; give it back with
/// [`ResourceManager::release`].
#[derive(Clone)]
pub struct ResourceHandle {
    key: ResourceKey,
    id: String,
    resource: Resource,
}

impl fmt::Debug for ResourceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceHandle")
            .field("id", &self.id)
            .field("key", &self.key)
            .finish()
    }
}

impl ResourceHandle {
    /// The resource id (`<kind>:<n>`), the same for every reuse.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Its key.
    pub fn key(&self) -> &ResourceKey {
        &self.key
    }
    /// The resource, downcast.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.resource.clone().downcast::<T>().ok()
    }
    /// The untyped resource.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }
}

/// A release that failed; the resource is quarantined (dropped from the registry,
/// kept here for the host to inspect).
#[derive(Debug, Clone)]
pub struct ReleaseFailure {
    /// The resource id.
    pub id: String,
    /// Its key.
    pub key: ResourceKey,
    /// The provider's error.
    pub message: String,
}

struct Live {
    id: String,
    resource: Resource,
    provider: Arc<dyn ResourceProvider>,
    ref_count: usize,
}

type Slot = Arc<tokio::sync::Mutex<Option<Live>>>;

struct Inner {
    profile: PermissionProfile,
    providers: Mutex<HashMap<String, Arc<dyn ResourceProvider>>>,
    slots: Mutex<HashMap<ResourceKey, Slot>>,
    holds: Mutex<HashMap<ActionCallId, Vec<ResourceHandle>>>,
    failures: Mutex<Vec<ReleaseFailure>>,
    approval: Arc<dyn ApprovalHandler>,
    approval_mode: ApprovalMode,
    events: Option<(Emitter, Arc<RunContext>)>,
    next_id: AtomicU64,
}

/// Ensures and releases execution resources. Cheap to clone; implements
/// [`ResourceResolver`] so the dispatcher can use it directly:
/// `ActionLoop::with_resources(Arc::new(manager.clone()))` or
/// `Dispatcher::with_resources(…)`.
#[derive(Clone)]
pub struct ResourceManager {
    inner: Arc<Inner>,
}

impl fmt::Debug for ResourceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceManager")
            .field("profile", &self.inner.profile)
            .field("live", &self.live_count())
            .finish()
    }
}

const SOURCE: &str = "ResourceManager";

impl ResourceManager {
    /// A manager with no providers, the fail-closed approval handler and mode `auto`.
    pub fn new(profile: PermissionProfile) -> Self {
        Self::build(profile, Arc::new(FailClosed), ApprovalMode::Auto, None)
    }

    fn build(
        profile: PermissionProfile,
        approval: Arc<dyn ApprovalHandler>,
        approval_mode: ApprovalMode,
        events: Option<(Emitter, Arc<RunContext>)>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                profile,
                providers: Mutex::new(HashMap::new()),
                slots: Mutex::new(HashMap::new()),
                holds: Mutex::new(HashMap::new()),
                failures: Mutex::new(Vec::new()),
                approval,
                approval_mode,
                events,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    fn rebuild(
        &self,
        f: impl FnOnce(
            &mut (
                Arc<dyn ApprovalHandler>,
                ApprovalMode,
                Option<(Emitter, Arc<RunContext>)>,
            ),
        ),
    ) -> Self {
        let mut parts = (
            self.inner.approval.clone(),
            self.inner.approval_mode,
            self.inner.events.clone(),
        );
        f(&mut parts);
        let m = Self::build(self.inner.profile, parts.0, parts.1, parts.2);
        if let (Ok(src), Ok(mut dst)) = (self.inner.providers.lock(), m.inner.providers.lock()) {
            dst.extend(src.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        m
    }

    /// The same providers with the run's approval handler and mode (the same policy
    /// that gates actions). Call before any resource is live: live resources are not
    /// carried over.
    pub fn with_approval(&self, handler: Arc<dyn ApprovalHandler>, mode: ApprovalMode) -> Self {
        self.rebuild(|p| {
            p.0 = handler;
            p.1 = mode;
        })
    }

    /// The same providers, emitting `resource.*` events on `run`.
    pub fn with_events(&self, emitter: Emitter, run: Arc<RunContext>) -> Self {
        self.rebuild(|p| p.2 = Some((emitter, run)))
    }

    /// The profile in force.
    pub fn profile(&self) -> PermissionProfile {
        self.inner.profile
    }

    /// Registers (or replaces) the provider of its kind.
    pub fn register_provider(&self, provider: impl ResourceProvider + 'static) {
        if let Ok(mut p) = self.inner.providers.lock() {
            p.insert(provider.kind().to_owned(), Arc::new(provider));
        }
    }

    /// Number of live resources.
    pub fn live_count(&self) -> usize {
        let slots: Vec<Slot> = match self.inner.slots.lock() {
            Ok(s) => s.values().cloned().collect(),
            Err(_) => return 0,
        };
        slots
            .iter()
            .filter(|s| s.try_lock().map(|g| g.is_some()).unwrap_or(true))
            .count()
    }

    /// Releases that failed so far (drained).
    pub fn release_failures(&self) -> Vec<ReleaseFailure> {
        self.inner
            .failures
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    async fn emit(
        &self,
        ty: &'static str,
        level: Level,
        payload: Value,
        error: Option<&ExecError>,
    ) {
        if let Some((emitter, run)) = &self.inner.events {
            let mut ev = NewEvent::new(EventType::from_static(ty))
                .source(SOURCE)
                .level(level)
                .payload(payload);
            if let Some(e) = error {
                ev = ev.error(e.error_info());
            }
            emitter.emit(run, ev).await;
        }
    }

    /// Records a requirement (event `resource.declared`); creates nothing.
    pub async fn declare(&self, spec: &ResourceSpec) {
        self.emit(
            "resource.declared",
            Level::Info,
            json!({"kind": spec.kind, "scope": spec.scope, "needs": spec.needs}),
            None,
        )
        .await;
    }

    fn owner_of(spec: &ResourceSpec, call: Option<&ActionCallId>) -> String {
        match (spec.scope, call) {
            (ResourceScope::ActionCall, Some(c)) => c.to_string(),
            (ResourceScope::Execution, Some(c)) => c.execution.to_string(),
            _ => spec.owner.clone().unwrap_or_else(|| "default".into()),
        }
    }

    fn key_of(spec: &ResourceSpec, owner: &str) -> ResourceKey {
        ResourceKey {
            kind: spec.kind.clone(),
            scope: spec.scope,
            owner: owner.to_owned(),
            config: json!({"settings": spec.settings, "needs": spec.needs}).to_string(),
        }
    }

    /// A ready resource for `spec`: reused when live and healthy, created otherwise.
    /// `call` gives the owner for call and execution scopes (without it, they fall
    /// back to the declared owner).
    pub async fn ensure(
        &self,
        spec: &ResourceSpec,
        call: Option<&ActionCallId>,
    ) -> Result<ResourceHandle, ExecError> {
        let owner = Self::owner_of(spec, call);
        let key = Self::key_of(spec, &owner);
        let payload = |id: Option<&str>, refs: usize| json!({"kind": key.kind, "scope": key.scope, "owner": key.owner, "resource_id": id, "ref_count": refs});
        let fail = |e: ExecError| async {
            self.emit("resource.failed", Level::Error, payload(None, 0), Some(&e))
                .await;
            Err(e)
        };
        if let Err(e) = self.inner.profile.check(&spec.needs) {
            return fail(e).await;
        }
        let provider = self
            .inner
            .providers
            .lock()
            .ok()
            .and_then(|p| p.get(&spec.kind).cloned());
        let Some(provider) = provider else {
            return fail(ExecError::ProviderMissing(spec.kind.clone())).await;
        };
        let slot: Option<Slot> = self
            .inner
            .slots
            .lock()
            .ok()
            .map(|mut s| s.entry(key.clone()).or_default().clone());
        let Some(slot) = slot else {
            return fail(ExecError::ResourceFailed {
                kind: spec.kind.clone(),
                message: "registry poisoned".into(),
            })
            .await;
        };
        let mut guard = slot.lock().await;
        if let Some(live) = guard.as_mut() {
            if live.provider.health_check(&live.resource).await {
                live.ref_count += 1;
                let handle = ResourceHandle {
                    key: key.clone(),
                    id: live.id.clone(),
                    resource: live.resource.clone(),
                };
                self.emit(
                    "resource.reused",
                    Level::Info,
                    payload(Some(&live.id), live.ref_count),
                    None,
                )
                .await;
                return Ok(handle);
            }
            self.emit(
                "resource.unhealthy",
                Level::Warning,
                payload(Some(&live.id), live.ref_count),
                None,
            )
            .await;
            if let Some(old) = guard.take() {
                self.close(&key, old).await;
            }
        }
        self.emit(
            "resource.declared",
            Level::Info,
            json!({"kind": key.kind, "scope": key.scope, "owner": key.owner, "needs": spec.needs}),
            None,
        )
        .await;
        if let Err(e) = self.approve(spec, &owner, call).await {
            return fail(e).await;
        }
        let request = EnsureRequest {
            spec: spec.clone(),
            owner: owner.clone(),
            profile: self.inner.profile,
        };
        let resource = match provider.ensure(&request).await {
            Ok(r) => r,
            Err(e) => return fail(e).await,
        };
        let id = format!(
            "{}:{}",
            spec.kind,
            self.inner.next_id.fetch_add(1, Ordering::Relaxed)
        );
        *guard = Some(Live {
            id: id.clone(),
            resource: resource.clone(),
            provider,
            ref_count: 1,
        });
        self.emit("resource.ready", Level::Info, payload(Some(&id), 1), None)
            .await;
        Ok(ResourceHandle { key, id, resource })
    }

    async fn approve(
        &self,
        spec: &ResourceSpec,
        owner: &str,
        call: Option<&ActionCallId>,
    ) -> Result<(), ExecError> {
        let needed = spec.approval_required || self.inner.approval_mode == ApprovalMode::Always;
        if !needed {
            return Ok(());
        }
        if self.inner.approval_mode == ApprovalMode::Never {
            return Err(ExecError::ResourceApprovalDenied {
                kind: spec.kind.clone(),
                reason: "approval mode is `never`".into(),
            });
        }
        let call_id = call
            .cloned()
            .unwrap_or_else(|| ActionCallId::new(ExecutionId::new(), HOST_ROUND, 0));
        let side_effect = if spec.needs.contains(&Capability::Exec)
            || spec.needs.contains(&Capability::Install)
        {
            SideEffect::Exec
        } else if spec.needs.contains(&Capability::Write) {
            SideEffect::Write
        } else {
            SideEffect::Read
        };
        let request = ApprovalRequest {
            request_id: format!("apr:resource:{}:{}", spec.kind, owner),
            call_id,
            action_id: format!("resource:{}", spec.kind),
            side_effect,
            input: json!({"kind": spec.kind, "scope": spec.scope, "owner": owner, "needs": spec.needs, "settings": spec.settings}),
            purpose: format!("make resource `{}` ready", spec.kind),
            source: CallSource::Runtime,
            approval_mode: self.inner.approval_mode,
        };
        match self.inner.approval.decide(&request).await {
            ApprovalDecision::Approve | ApprovalDecision::ApproveWithInput(_) => Ok(()),
            ApprovalDecision::Deny { reason } => Err(ExecError::ResourceApprovalDenied {
                kind: spec.kind.clone(),
                reason,
            }),
            ApprovalDecision::Pending => {
                self.emit(
                    "resource.approval_required",
                    Level::Warning,
                    json!({"kind": spec.kind, "request_id": request.request_id}),
                    None,
                )
                .await;
                Err(ExecError::ResourceApprovalRequired(spec.kind.clone()))
            }
        }
    }

    async fn close(&self, key: &ResourceKey, live: Live) -> Option<ExecError> {
        let payload = json!({"kind": key.kind, "scope": key.scope, "owner": key.owner, "resource_id": live.id});
        match live.provider.release(live.resource).await {
            Ok(()) => {
                self.emit("resource.released", Level::Info, payload, None)
                    .await;
                None
            }
            Err(e) => {
                let e = ExecError::ReleaseFailed {
                    kind: key.kind.clone(),
                    message: e.to_string(),
                };
                tracing::warn!(resource = %live.id, error = %e, "resource release failed");
                self.emit("resource.failed", Level::Error, payload, Some(&e))
                    .await;
                if let Ok(mut f) = self.inner.failures.lock() {
                    f.push(ReleaseFailure {
                        id: live.id,
                        key: key.clone(),
                        message: e.to_string(),
                    });
                }
                Some(e)
            }
        }
    }

    fn slot(&self, key: &ResourceKey) -> Option<Slot> {
        self.inner
            .slots
            .lock()
            .ok()
            .and_then(|s| s.get(key).cloned())
    }

    fn forget(&self, key: &ResourceKey) {
        if let Ok(mut s) = self.inner.slots.lock() {
            s.remove(key);
        }
    }

    /// Gives a handle back. A call-scoped resource is closed when its last handle
    /// returns; wider scopes stay live until [`release_scope`](Self::release_scope).
    pub async fn release(&self, handle: ResourceHandle) -> Result<(), ExecError> {
        let Some(slot) = self.slot(&handle.key) else {
            return Ok(());
        };
        let mut guard = slot.lock().await;
        let done = match guard.as_mut() {
            Some(live) if live.id == handle.id => {
                live.ref_count = live.ref_count.saturating_sub(1);
                live.ref_count == 0 && handle.key.scope == ResourceScope::ActionCall
            }
            _ => false,
        };
        if !done {
            return Ok(());
        }
        let live = guard.take();
        drop(guard);
        self.forget(&handle.key);
        match live {
            Some(live) => self.close(&handle.key, live).await.map_or(Ok(()), Err),
            None => Ok(()),
        }
    }

    /// Closes every live resource of `scope` owned by `owner` (e.g. an execution's
    /// resources when it ends). Returns how many were closed, or every release error.
    pub async fn release_scope(
        &self,
        scope: ResourceScope,
        owner: &str,
    ) -> Result<usize, Vec<ExecError>> {
        let keys: Vec<ResourceKey> = match self.inner.slots.lock() {
            Ok(s) => s
                .keys()
                .filter(|k| k.scope == scope && k.owner == owner)
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut closed = 0;
        let mut errors = Vec::new();
        for key in keys {
            let Some(slot) = self.slot(&key) else {
                continue;
            };
            let live = slot.lock().await.take();
            self.forget(&key);
            if let Some(live) = live {
                closed += 1;
                if let Some(e) = self.close(&key, live).await {
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(closed)
        } else {
            Err(errors)
        }
    }
}

impl ResourceResolver for ResourceManager {
    fn ensure<'a>(
        &'a self,
        requirement: &'a ResourceRequirement,
        call_id: &'a ActionCallId,
    ) -> BoxFuture<'a, Result<Resource, ActionFailure>> {
        Box::pin(async move {
            let spec =
                ResourceSpec::from_requirement(requirement).map_err(ExecError::into_failure)?;
            let handle = ResourceManager::ensure(self, &spec, Some(call_id))
                .await
                .map_err(|e| {
                    let code = e.code();
                    let mut f = e.into_failure();
                    f.message = format!("{code}: {}", f.message);
                    f
                })?;
            let resource = handle.resource.clone();
            if let Ok(mut h) = self.inner.holds.lock() {
                h.entry(call_id.clone()).or_default().push(handle);
            }
            Ok(resource)
        })
    }

    fn release<'a>(&'a self, call_id: &'a ActionCallId) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let held = self
                .inner
                .holds
                .lock()
                .ok()
                .and_then(|mut h| h.remove(call_id))
                .unwrap_or_default();
            for handle in held {
                // Failures are recorded by `close` (event, warning, release_failures).
                let _ = ResourceManager::release(self, handle).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_grant_capabilities() {
        use Capability::*;
        assert!(PermissionProfile::ReadOnly.check(&[Write]).is_err());
        assert!(PermissionProfile::LocalFiles.check(&[Write, Exec]).is_ok());
        assert!(PermissionProfile::LocalFiles.check(&[Network]).is_err());
        assert!(PermissionProfile::NetworkRead.check(&[Network]).is_ok());
        assert!(PermissionProfile::NetworkRead.check(&[Exec]).is_err());
        assert!(
            PermissionProfile::Trusted
                .check(&[Install, Network])
                .is_ok()
        );
        assert_eq!(
            "trusted".parse::<PermissionProfile>().unwrap(),
            PermissionProfile::Trusted
        );
    }

    #[test]
    fn spec_round_trips_through_requirement() {
        let s = ResourceSpec::new("sqlite")
            .scope(ResourceScope::Execution)
            .needs(Capability::Write)
            .settings(json!({"db": "x"}));
        let back = ResourceSpec::from_requirement(&s.to_requirement()).unwrap();
        assert_eq!(back, s);
        let foreign = ResourceRequirement::new("browser").with_config(json!({"headless": true}));
        let f = ResourceSpec::from_requirement(&foreign).unwrap();
        assert_eq!(f.scope, ResourceScope::ActionCall);
        assert_eq!(f.settings["headless"], true);
    }
}
