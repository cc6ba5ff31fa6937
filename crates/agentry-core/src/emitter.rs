use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::center::EventCenter;
use crate::event::{NewEvent, RunContext, RuntimeEvent};
use crate::ids::EventId;
use crate::time::Timestamp;

/// Emits the events of one sequence scope (normally one execution) with a gap-free
/// `seq` 1, 2, 3 … and delivers them, in that order, to the [`EventCenter`]'s hooks
/// and to the scope's own subscribers.
///
/// Cloning shares the counter. Emission is serialised per emitter: concurrent tasks of
/// one execution get distinct, ordered sequence numbers, and every hook sees them in
/// sequence order.
#[derive(Debug, Clone)]
pub struct Emitter {
    inner: Arc<EmitterInner>,
}

#[derive(Debug)]
struct EmitterInner {
    center: EventCenter,
    scope: Arc<str>,
    /// Held across seq assignment and inline delivery to keep hooks in seq order.
    order: tokio::sync::Mutex<u64>,
    local: Mutex<Local>,
    keep_log: bool,
    /// The last assigned seq, readable without awaiting the ordering lock.
    emitted: AtomicU64,
}

#[derive(Debug, Default)]
struct Local {
    log: Vec<Arc<RuntimeEvent>>,
    subscribers: Vec<mpsc::UnboundedSender<Arc<RuntimeEvent>>>,
    closed: bool,
}

impl Emitter {
    pub(crate) fn new(center: EventCenter, scope: &str, keep_log: bool) -> Self {
        Self {
            inner: Arc::new(EmitterInner {
                center,
                scope: scope.into(),
                order: tokio::sync::Mutex::new(0),
                local: Mutex::new(Local::default()),
                keep_log,
                emitted: AtomicU64::new(0),
            }),
        }
    }

    /// The scope this emitter numbers events in.
    pub fn scope(&self) -> &str {
        &self.inner.scope
    }

    /// The center this emitter delivers to.
    pub fn center(&self) -> &EventCenter {
        &self.inner.center
    }

    /// Redacts, numbers, timestamps and delivers one event; returns it as delivered.
    ///
    /// Resolves once every inline (`await`) hook has handled the event; background
    /// hooks receive it through their queues.
    pub async fn emit(&self, run: &Arc<RunContext>, new: NewEvent) -> Arc<RuntimeEvent> {
        let NewEvent {
            event_type,
            source,
            level,
            message,
            mut payload,
            error,
            meta,
        } = new;
        let mut error = error.map(|e| *e);
        let mut meta = meta.map(|m| *m).unwrap_or_default();
        let redactor = self.inner.center.redactor();
        redactor.redact_value(&mut payload);
        redactor.redact_map(&mut meta);
        let message = message.map(|m| redactor.redact_str(&m));
        if let Some(err) = error.as_mut() {
            err.message = redactor.redact_str(&err.message);
            if let Some(d) = err.details.as_mut() {
                redactor.redact_value(d);
            }
        }

        let mut seq_guard = self.inner.order.lock().await;
        *seq_guard += 1;
        let seq = *seq_guard;
        self.inner.emitted.store(seq, Ordering::Release);
        let event = Arc::new(RuntimeEvent {
            event_id: EventId::for_seq(&self.inner.scope, seq),
            seq,
            event_type,
            at: Timestamp::now(),
            run: run.clone(),
            source,
            level,
            message,
            payload,
            error,
            meta,
        });
        if let Ok(mut local) = self.inner.local.lock() {
            if self.inner.keep_log {
                local.log.push(event.clone());
            }
            local
                .subscribers
                .retain(|tx| tx.send(event.clone()).is_ok());
        }
        self.inner.center.dispatch(event.clone()).await;
        drop(seq_guard);
        event
    }

    /// The number of events emitted so far.
    pub async fn last_seq(&self) -> u64 {
        *self.inner.order.lock().await
    }

    /// The number of events emitted so far, without waiting for an emit in progress
    /// (cheap; for liveness checks).
    pub fn emitted(&self) -> u64 {
        self.inner.emitted.load(Ordering::Acquire)
    }

    /// A stream of this scope's events: first every event recorded so far (when the
    /// emitter keeps a log), then new ones as they are emitted. It ends when the
    /// emitter is [closed](Self::close).
    pub fn subscribe(&self) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut local) = self.inner.local.lock() {
            for ev in &local.log {
                let _ = tx.send(ev.clone());
            }
            if !local.closed {
                local.subscribers.push(tx);
            }
        }
        EventStream { rx }
    }

    /// Every event recorded so far (empty unless the emitter keeps a log).
    pub fn recorded(&self) -> Vec<Arc<RuntimeEvent>> {
        self.inner
            .local
            .lock()
            .map(|l| l.log.clone())
            .unwrap_or_default()
    }

    /// Ends every subscriber stream once it has drained. Later events still reach
    /// the center's hooks.
    pub fn close(&self) {
        if let Ok(mut local) = self.inner.local.lock() {
            local.closed = true;
            local.subscribers.clear();
        }
    }
}

/// A stream of [`RuntimeEvent`]s from one emitter.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Arc<RuntimeEvent>>,
}

impl Stream for EventStream {
    type Item = Arc<RuntimeEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
