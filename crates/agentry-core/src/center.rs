//! The [`EventCenter`]: hooks, delivery policies and dispatch.
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::emitter::Emitter;
use crate::error::CoreError;
use crate::event::RuntimeEvent;
use crate::redact::Redactor;
use crate::summary::{Coalescer, SummaryPolicy};

/// The error a hook may return. It is logged and counted; it never reaches the run.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// Receives runtime events. Implement it for a sink, or wrap a closure with
/// [`hook_fn`].
pub trait Hook: Send + Sync + 'static {
    /// Handles one event. Errors and panics are contained by the center.
    fn on_event(&self, event: Arc<RuntimeEvent>) -> BoxFuture<'static, Result<(), HookError>>;
}

struct FnHook<F>(F);

impl<F, Fut> Hook for FnHook<F>
where
    F: Fn(Arc<RuntimeEvent>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HookError>> + Send + 'static,
{
    fn on_event(&self, event: Arc<RuntimeEvent>) -> BoxFuture<'static, Result<(), HookError>> {
        (self.0)(event).boxed()
    }
}

/// Wraps an async closure as a [`Hook`].
///
/// ```
/// use agentry_core::{hook_fn, HookError};
/// let hook = hook_fn(|event| async move {
///     println!("{}", event.event_type);
///     Ok::<(), HookError>(())
/// });
/// # let _ = hook;
/// ```
pub fn hook_fn<F, Fut>(f: F) -> impl Hook
where
    F: Fn(Arc<RuntimeEvent>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HookError>> + Send + 'static,
{
    FnHook(f)
}

/// Which events a hook receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EventFilter {
    /// Every event.
    #[default]
    All,
    /// Events whose type equals one of the names, or starts with a pattern's prefix
    /// when the pattern ends in `*` (`model.*`).
    Types(Vec<String>),
}

impl EventFilter {
    fn matches(&self, event_type: &str) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Types(patterns) => patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => p == event_type,
            }),
        }
    }
}

/// Whether the emitter waits for the hook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dispatch {
    /// The emit call awaits the hook (ordering and back-pressure for cheap hooks).
    #[default]
    Await,
    /// The hook runs on its own task fed by a queue; `EventCenter::flush` drains it.
    Background,
}

/// How events reach a hook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Every event as it is emitted.
    #[default]
    Raw,
    /// High-frequency delta events coalesced into one summary event per run and type
    /// once `max_items` are buffered or the oldest is `emit_interval` old; any other
    /// event of the run flushes the buffer first.
    Summary {
        /// Buffer size that triggers a summary.
        max_items: usize,
        /// Age that triggers a summary.
        emit_interval: Duration,
        /// How many coalesced events a summary carries in full.
        max_summary_items: usize,
    },
}

/// Registration options of one hook.
///
/// ```
/// use std::time::Duration;
/// use agentry_core::HookOptions;
/// let opts = HookOptions::new("console")
///     .event_types(["model.*", "action.*"])
///     .summary(50, Duration::from_millis(250))
///     .background();
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
pub struct HookOptions {
    name: String,
    filter: EventFilter,
    delivery: Delivery,
    dispatch: Dispatch,
}

impl HookOptions {
    /// Raw, awaited delivery of every event.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filter: EventFilter::All,
            delivery: Delivery::Raw,
            dispatch: Dispatch::Await,
        }
    }
    /// Only events of these types (exact names or `prefix.*`).
    pub fn event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.filter = EventFilter::Types(types.into_iter().map(Into::into).collect());
        self
    }
    /// Summary delivery with at most `max_items` deltas or `emit_interval` per summary.
    pub fn summary(mut self, max_items: usize, emit_interval: Duration) -> Self {
        self.delivery = Delivery::Summary {
            max_items,
            emit_interval,
            max_summary_items: 20,
        };
        self
    }
    /// Sets the delivery policy.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }
    /// Runs the hook on its own task.
    pub fn background(mut self) -> Self {
        self.dispatch = Dispatch::Background;
        self
    }
    /// Sets the dispatch mode.
    pub fn dispatch(mut self, dispatch: Dispatch) -> Self {
        self.dispatch = dispatch;
        self
    }
}

/// Delivery counters of one hook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookStats {
    /// Events (or summaries) the hook handled without error.
    pub delivered: u64,
    /// Deliveries that returned an error or panicked.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
}

enum Msg {
    Event(Arc<RuntimeEvent>),
    Flush(oneshot::Sender<()>),
}

enum SlotKind {
    Inline {
        coalescer: Option<Mutex<Coalescer>>,
    },
    Background {
        tx: mpsc::UnboundedSender<Msg>,
        task: Mutex<Option<JoinHandle<()>>>,
    },
}

struct Slot {
    name: String,
    filter: EventFilter,
    hook: Arc<dyn Hook>,
    kind: SlotKind,
    counters: Arc<Counters>,
}

/// Fans runtime events out to registered hooks.
///
/// Owned by a `Runtime` (there is no global instance); cheap to clone. A hook that
/// fails or panics is logged through `tracing` and counted, and never breaks the run.
#[derive(Clone, Default)]
pub struct EventCenter {
    inner: Arc<CenterInner>,
}

#[derive(Default)]
struct CenterInner {
    slots: RwLock<Arc<[Arc<Slot>]>>,
    redactor: Redactor,
}

impl fmt::Debug for EventCenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.slots().iter().map(|s| s.name.clone()).collect();
        f.debug_struct("EventCenter")
            .field("hooks", &names)
            .finish()
    }
}

impl EventCenter {
    /// A center with no hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The redactor applied to every event before any hook sees it.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// An emitter numbering events in `scope` (usually an execution id).
    pub fn emitter(&self, scope: &str) -> Emitter {
        Emitter::new(self.clone(), scope, false)
    }

    /// An emitter that also keeps every event it emitted, so late subscribers replay
    /// the whole history.
    pub fn recording_emitter(&self, scope: &str) -> Emitter {
        Emitter::new(self.clone(), scope, true)
    }

    fn slots(&self) -> Arc<[Arc<Slot>]> {
        match self.inner.slots.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Registers a hook. Names are unique; background hooks need a Tokio runtime.
    pub fn register(&self, options: HookOptions, hook: impl Hook) -> Result<(), CoreError> {
        let HookOptions {
            name,
            filter,
            delivery,
            dispatch,
        } = options;
        let policy = match delivery {
            Delivery::Raw => None,
            Delivery::Summary {
                max_items,
                emit_interval,
                max_summary_items,
            } => {
                if max_items == 0 {
                    return Err(CoreError::InvalidDelivery {
                        hook: name,
                        reason: "max_items must be at least 1",
                    });
                }
                if emit_interval.is_zero() {
                    return Err(CoreError::InvalidDelivery {
                        hook: name,
                        reason: "emit_interval must be positive",
                    });
                }
                Some(SummaryPolicy {
                    max_items,
                    emit_interval,
                    max_summary_items,
                })
            }
        };
        let hook: Arc<dyn Hook> = Arc::new(hook);
        let counters = Arc::new(Counters::default());
        if self.slots().iter().any(|s| s.name == name) {
            return Err(CoreError::DuplicateHook(name));
        }
        let kind = match dispatch {
            Dispatch::Await => SlotKind::Inline {
                coalescer: policy.map(|p| Mutex::new(Coalescer::new(p))),
            },
            Dispatch::Background => {
                let handle = tokio::runtime::Handle::try_current()
                    .map_err(|_| CoreError::NoAsyncRuntime(name.clone()))?;
                let (tx, rx) = mpsc::unbounded_channel();
                let task = handle.spawn(background_worker(
                    name.clone(),
                    hook.clone(),
                    rx,
                    policy.map(Coalescer::new),
                    counters.clone(),
                ));
                SlotKind::Background {
                    tx,
                    task: Mutex::new(Some(task)),
                }
            }
        };
        let slot = Arc::new(Slot {
            name: name.clone(),
            filter,
            hook,
            kind,
            counters,
        });
        let mut guard = self
            .inner
            .slots
            .write()
            .map_err(|_| CoreError::DuplicateHook(name.clone()))?;
        if guard.iter().any(|s| s.name == name) {
            return Err(CoreError::DuplicateHook(name));
        }
        let mut next: Vec<Arc<Slot>> = guard.iter().cloned().collect();
        next.push(slot);
        *guard = next.into();
        Ok(())
    }

    /// Removes a hook after delivering what it has buffered. Returns whether it existed.
    pub async fn unregister(&self, name: &str) -> bool {
        let removed = {
            let Ok(mut guard) = self.inner.slots.write() else {
                return false;
            };
            let Some(slot) = guard.iter().find(|s| s.name == name).cloned() else {
                return false;
            };
            let next: Vec<Arc<Slot>> = guard.iter().filter(|s| s.name != name).cloned().collect();
            *guard = next.into();
            slot
        };
        flush_slot(&removed).await;
        stop_slot(&removed).await;
        true
    }

    /// Names of the registered hooks, in registration order.
    pub fn hook_names(&self) -> Vec<String> {
        self.slots().iter().map(|s| s.name.clone()).collect()
    }

    /// Delivery counters of a hook.
    pub fn hook_stats(&self, name: &str) -> Option<HookStats> {
        self.slots()
            .iter()
            .find(|s| s.name == name)
            .map(|s| HookStats {
                delivered: s.counters.delivered.load(Ordering::Relaxed),
                failed: s.counters.failed.load(Ordering::Relaxed),
            })
    }

    /// Delivers everything buffered (summary buffers, background queues) and waits
    /// until every hook has handled it.
    pub async fn flush(&self) {
        for slot in self.slots().iter() {
            flush_slot(slot).await;
        }
    }

    /// Flushes, then stops every background hook task. Hooks stay registered and
    /// inline hooks keep working; background hooks receive nothing more.
    pub async fn shutdown(&self) {
        let slots = self.slots();
        for slot in slots.iter() {
            flush_slot(slot).await;
            stop_slot(slot).await;
        }
    }

    pub(crate) async fn dispatch(&self, event: Arc<RuntimeEvent>) {
        let slots = self.slots();
        for slot in slots.iter() {
            if !slot.filter.matches(event.event_type.as_str()) {
                continue;
            }
            match &slot.kind {
                SlotKind::Inline { coalescer: None } => {
                    deliver(&slot.name, &slot.hook, event.clone(), &slot.counters).await;
                }
                SlotKind::Inline { coalescer: Some(c) } => {
                    let out = match c.lock() {
                        Ok(mut c) => c.push(event.clone(), Instant::now()),
                        Err(_) => vec![event.clone()],
                    };
                    for ev in out {
                        deliver(&slot.name, &slot.hook, ev, &slot.counters).await;
                    }
                }
                SlotKind::Background { tx, .. } => {
                    if tx.send(Msg::Event(event.clone())).is_err() {
                        tracing::debug!(hook = %slot.name, "background hook stopped; event not delivered");
                    }
                }
            }
        }
    }
}

async fn flush_slot(slot: &Slot) {
    match &slot.kind {
        SlotKind::Inline { coalescer: None } => {}
        SlotKind::Inline { coalescer: Some(c) } => {
            let out = c.lock().map(|mut c| c.drain()).unwrap_or_default();
            for ev in out {
                deliver(&slot.name, &slot.hook, ev, &slot.counters).await;
            }
        }
        SlotKind::Background { tx, .. } => {
            let (ack_tx, ack_rx) = oneshot::channel();
            if tx.send(Msg::Flush(ack_tx)).is_ok() {
                let _ = ack_rx.await;
            }
        }
    }
}

async fn stop_slot(slot: &Slot) {
    if let SlotKind::Background { task, .. } = &slot.kind {
        let handle = task.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
    }
}

async fn deliver(name: &str, hook: &Arc<dyn Hook>, event: Arc<RuntimeEvent>, counters: &Counters) {
    let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| hook.on_event(event.clone())))
    {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    match outcome {
        Ok(Ok(())) => {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Err(err)) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(hook = %name, event_type = %event.event_type, error = %err, "event hook failed");
        }
        Err(_) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(hook = %name, event_type = %event.event_type, "event hook panicked");
        }
    }
}

async fn background_worker(
    name: String,
    hook: Arc<dyn Hook>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut coalescer: Option<Coalescer>,
    counters: Arc<Counters>,
) {
    loop {
        let deadline = coalescer.as_ref().and_then(Coalescer::next_deadline);
        let msg = match deadline {
            Some(at) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(at) => {
                    let out = coalescer.as_mut().map(|c| c.due(Instant::now())).unwrap_or_default();
                    for ev in out {
                        deliver(&name, &hook, ev, &counters).await;
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match msg {
            Some(Msg::Event(ev)) => {
                let out = match coalescer.as_mut() {
                    Some(c) => c.push(ev, Instant::now()),
                    None => vec![ev],
                };
                for ev in out {
                    deliver(&name, &hook, ev, &counters).await;
                }
            }
            Some(Msg::Flush(ack)) => {
                let out = coalescer.as_mut().map(Coalescer::drain).unwrap_or_default();
                for ev in out {
                    deliver(&name, &hook, ev, &counters).await;
                }
                let _ = ack.send(());
            }
            None => {
                let out = coalescer.as_mut().map(Coalescer::drain).unwrap_or_default();
                for ev in out {
                    deliver(&name, &hook, ev, &counters).await;
                }
                break;
            }
        }
    }
}
