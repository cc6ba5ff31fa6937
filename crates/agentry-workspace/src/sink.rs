//! Persisting RuntimeEvents from the [`EventCenter`](agentry_core::EventCenter).
//!
//! The sink appends each event of an execution with the event id as idempotency
//! key, so a redelivered event is recognised instead of stored twice. Events that
//! belong to no execution are skipped (counted), since the store sequences events
//! per execution.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agentry_core::{Hook, HookError, RuntimeEvent};
use futures::future::BoxFuture;

use crate::error::WorkspaceError;
use crate::facade::Workspace;
use crate::store::Store;
use crate::types::EventAppend;

#[derive(Debug, Clone)]
enum Target {
    Store(Arc<dyn Store>),
    Workspace(Workspace),
}

/// Counters of a sink.
#[derive(Debug, Default)]
struct Counters {
    stored: AtomicU64,
    duplicates: AtomicU64,
    skipped: AtomicU64,
}

/// A hook that persists RuntimeEvents. Register it with
/// `EventCenter::register(HookOptions::new("workspace"), sink)`.
#[derive(Debug, Clone)]
pub struct WorkspaceEventSink {
    target: Target,
    counters: Arc<Counters>,
}

/// What a sink has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SinkStats {
    /// Events stored.
    pub stored: u64,
    /// Redelivered events recognised by id.
    pub duplicates: u64,
    /// Events without an execution id.
    pub skipped: u64,
}

impl WorkspaceEventSink {
    /// A sink writing to a store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            target: Target::Store(store),
            counters: Arc::default(),
        }
    }

    /// A sink writing to a Workspace's store (opened on the first event).
    pub fn for_workspace(ws: Workspace) -> Self {
        Self {
            target: Target::Workspace(ws),
            counters: Arc::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> SinkStats {
        SinkStats {
            stored: self.counters.stored.load(Ordering::Relaxed),
            duplicates: self.counters.duplicates.load(Ordering::Relaxed),
            skipped: self.counters.skipped.load(Ordering::Relaxed),
        }
    }

    /// Persists one event; `Ok(None)` when it belongs to no execution.
    pub async fn persist(
        &self,
        event: &RuntimeEvent,
    ) -> Result<Option<crate::types::Appended>, WorkspaceError> {
        if event.run.execution_id.is_none() {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let append = EventAppend::from_runtime_event(event)?;
        let store = match &self.target {
            Target::Store(s) => s.clone(),
            Target::Workspace(ws) => ws.store().await?,
        };
        let done = store.append(append).await?;
        let c = if done.duplicate {
            &self.counters.duplicates
        } else {
            &self.counters.stored
        };
        c.fetch_add(1, Ordering::Relaxed);
        Ok(Some(done))
    }
}

impl Hook for WorkspaceEventSink {
    fn on_event(&self, event: Arc<RuntimeEvent>) -> BoxFuture<'static, Result<(), HookError>> {
        let this = self.clone();
        Box::pin(async move {
            this.persist(&event)
                .await
                .map(|_| ())
                .map_err(|e| Box::new(e) as HookError)
        })
    }
}
