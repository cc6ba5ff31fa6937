use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use agentry_actions::{
    ActionRegistry, ApprovalMode, AutoApprove, DenyAll, FnAction, empty_object_schema,
};
use agentry_core::{EventCenter, RunContext, RunKind};
use agentry_exec::ExecError;
use agentry_exec::resource::{
    Capability, EnsureRequest, FnProvider, PermissionProfile, Resource, ResourceManager,
    ResourceProvider, ResourceScope, ResourceSpec,
};
use futures::future::BoxFuture;
use serde_json::json;

use crate::common::Harness;

/// Counts creations and releases; health and release failure are switchable.
#[derive(Debug, Default)]
struct Counting {
    made: AtomicUsize,
    released: AtomicUsize,
    healthy: AtomicBool,
    fail_release: AtomicBool,
}

#[derive(Debug, Clone)]
struct Probe(Arc<Counting>);

impl ResourceProvider for Probe {
    fn kind(&self) -> &str {
        "probe"
    }
    fn ensure<'a>(&'a self, _r: &'a EnsureRequest) -> BoxFuture<'a, Result<Resource, ExecError>> {
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let n = self.0.made.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(n) as Resource)
        })
    }
    fn health_check<'a>(&'a self, _r: &'a Resource) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.0.healthy.load(Ordering::SeqCst) })
    }
    fn release(&self, _r: Resource) -> BoxFuture<'_, Result<(), ExecError>> {
        Box::pin(async move {
            self.0.released.fetch_add(1, Ordering::SeqCst);
            if self.0.fail_release.load(Ordering::SeqCst) {
                Err(ExecError::Io("disk gone".into()))
            } else {
                Ok(())
            }
        })
    }
}

fn manager() -> (ResourceManager, Arc<Counting>, agentry_core::Emitter) {
    let counts = Arc::new(Counting {
        healthy: AtomicBool::new(true),
        ..Default::default()
    });
    let center = EventCenter::new();
    let emitter = center.recording_emitter("res");
    let m = ResourceManager::new(PermissionProfile::LocalFiles)
        .with_events(emitter.clone(), RunContext::root(RunKind::REQUEST));
    m.register_provider(Probe(counts.clone()));
    (m, counts, emitter)
}

fn types(e: &agentry_core::Emitter) -> Vec<String> {
    e.recorded()
        .iter()
        .map(|e| e.event_type.to_string())
        .collect()
}

#[tokio::test]
async fn reuse_ref_count_and_release() {
    let (m, counts, ev) = manager();
    let spec = ResourceSpec::new("probe")
        .scope(ResourceScope::Agent)
        .owner("bot");
    let a = m.ensure(&spec, None).await.unwrap();
    let b = m.ensure(&spec, None).await.unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(counts.made.load(Ordering::SeqCst), 1);
    // Different settings → a different resource.
    let c = m
        .ensure(&spec.clone().settings(json!({"x": 1})), None)
        .await
        .unwrap();
    assert_ne!(a.id(), c.id());
    m.release(a).await.unwrap();
    m.release(b).await.unwrap();
    // Agent scope stays live until its scope is released.
    assert_eq!(m.live_count(), 2);
    assert_eq!(
        m.release_scope(ResourceScope::Agent, "bot").await.unwrap(),
        2
    );
    assert_eq!(counts.released.load(Ordering::SeqCst), 2);
    let t = types(&ev);
    for want in ["resource.ready", "resource.reused", "resource.released"] {
        assert!(t.iter().any(|x| x == want), "{want} missing in {t:?}");
    }
}

#[tokio::test]
async fn concurrent_ensures_create_one_resource() {
    let (m, counts, _ev) = manager();
    let spec = ResourceSpec::new("probe")
        .scope(ResourceScope::Session)
        .owner("s1");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let m = m.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            m.ensure(&spec, None).await.unwrap().id().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(counts.made.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unhealthy_resources_are_replaced() {
    let (m, counts, ev) = manager();
    let spec = ResourceSpec::new("probe").scope(ResourceScope::Agent);
    let a = m.ensure(&spec, None).await.unwrap();
    counts.healthy.store(false, Ordering::SeqCst);
    let b = m.ensure(&spec, None).await.unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(counts.made.load(Ordering::SeqCst), 2);
    assert_eq!(counts.released.load(Ordering::SeqCst), 1);
    assert!(types(&ev).iter().any(|t| t == "resource.unhealthy"));
}

#[tokio::test]
async fn failed_release_is_reported_not_dropped() {
    let (m, counts, ev) = manager();
    counts.fail_release.store(true, Ordering::SeqCst);
    let h = m.ensure(&ResourceSpec::new("probe"), None).await.unwrap();
    let err = m.release(h).await.unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&err),
        "resource.release_failed"
    );
    let failures = m.release_failures();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].message.contains("disk gone"));
    assert!(types(&ev).iter().any(|t| t == "resource.failed"));
}

#[tokio::test]
async fn unknown_kind_profiles_and_approval() {
    let (m, _c, _ev) = manager();
    let e = m.ensure(&ResourceSpec::new("gpu"), None).await.unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "resource.provider_missing"
    );
    let e = m
        .ensure(&ResourceSpec::new("probe").needs(Capability::Network), None)
        .await
        .unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "resource.permission_denied"
    );
    // Approval through the same handlers as actions: fail-closed by default.
    let gated = ResourceSpec::new("probe").approval_required(true);
    let e = m.ensure(&gated, None).await.unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "resource.approval_required"
    );
    let approved = m.with_approval(Arc::new(AutoApprove), ApprovalMode::Auto);
    assert!(approved.ensure(&gated, None).await.is_ok());
    let denied = m.with_approval(Arc::new(DenyAll), ApprovalMode::Auto);
    let e = denied.ensure(&gated, None).await.unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "resource.approval_denied"
    );
    let never = m.with_approval(Arc::new(AutoApprove), ApprovalMode::Never);
    let e = never.ensure(&gated, None).await.unwrap_err();
    assert_eq!(
        agentry_core::ErrorCode::code(&e),
        "resource.approval_denied"
    );
    let always = m.with_approval(Arc::new(DenyAll), ApprovalMode::Always);
    assert!(
        always
            .ensure(&ResourceSpec::new("probe"), None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_dispatcher_ensures_and_releases_per_call() {
    let (m, counts, _ev) = manager();
    let action = FnAction::new(
        "uses_probe",
        "test",
        empty_object_schema(),
        |ctx, _| async move {
            let n = ctx.resource::<usize>("probe").map(|v| *v);
            Ok(json!({"resource": n}))
        },
    )
    .resource(ResourceSpec::new("probe").to_requirement());
    let missing = FnAction::new(
        "uses_gpu",
        "test",
        empty_object_schema(),
        |_ctx, _| async move { Ok(json!(1)) },
    )
    .resource(ResourceSpec::new("gpu").to_requirement());
    let mut registry = ActionRegistry::new();
    registry.register_fn(action).unwrap();
    registry.register_fn(missing).unwrap();
    let h = Harness::new(registry, &m);
    let r = h.call("uses_probe", json!({})).await;
    assert_eq!(r.data.unwrap()["resource"], 0);
    // Call-scoped: released when the call ended.
    assert_eq!(counts.released.load(Ordering::SeqCst), 1);
    assert_eq!(m.live_count(), 0);
    let r = h.call("uses_probe", json!({})).await;
    assert_eq!(r.data.unwrap()["resource"], 1);
    let r = h.call("uses_gpu", json!({})).await;
    assert_eq!(r.error_code(), Some("resource.unavailable"));
    assert!(
        r.error
            .unwrap()
            .message
            .contains("resource.provider_missing")
    );
}

#[tokio::test]
async fn fn_provider_and_execution_scope() {
    let m = ResourceManager::new(PermissionProfile::ReadOnly);
    m.register_provider(FnProvider::new("const", |req| {
        Ok(Arc::new(req.owner.clone()) as Resource)
    }));
    let call = agentry_core::ActionCallId::new(agentry_core::ExecutionId::new(), 0, 0);
    let h = m
        .ensure(
            &ResourceSpec::new("const").scope(ResourceScope::Execution),
            Some(&call),
        )
        .await
        .unwrap();
    assert_eq!(*h.get::<String>().unwrap(), call.execution.to_string());
    assert_eq!(
        m.release_scope(ResourceScope::Execution, call.execution.as_str())
            .await
            .unwrap(),
        1
    );
}
