//! Coalescing of high-frequency events for hooks with summary delivery.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::event::{EventType, RuntimeEvent};
use crate::ids::{EventId, RunId};

/// Limits of summary delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryPolicy {
    /// Deliver a summary once this many deltas are buffered for one run and type.
    pub max_items: usize,
    /// Deliver a summary once the oldest buffered delta is this old.
    pub emit_interval: Duration,
    /// How many of the coalesced events a summary carries in full.
    pub max_summary_items: usize,
}

struct Buffer {
    run_id: RunId,
    event_type: EventType,
    first_at: Instant,
    events: Vec<Arc<RuntimeEvent>>,
}

/// Buffers deltas per (run, event type). Non-delta events of a run first flush that
/// run's buffers, so a hook always sees events of one run in sequence order.
pub(crate) struct Coalescer {
    policy: SummaryPolicy,
    buffers: Vec<Buffer>,
}

impl Coalescer {
    pub(crate) fn new(policy: SummaryPolicy) -> Self {
        Self {
            policy,
            buffers: Vec::new(),
        }
    }

    /// Takes one event; returns what must be delivered now, in order.
    pub(crate) fn push(&mut self, ev: Arc<RuntimeEvent>, now: Instant) -> Vec<Arc<RuntimeEvent>> {
        let mut out = self.due(now);
        if ev.event_type.is_high_frequency() {
            let pos = self
                .buffers
                .iter()
                .position(|b| b.run_id == ev.run.run_id && b.event_type == ev.event_type);
            let idx = match pos {
                Some(i) => i,
                None => {
                    self.buffers.push(Buffer {
                        run_id: ev.run.run_id.clone(),
                        event_type: ev.event_type.clone(),
                        first_at: now,
                        events: Vec::new(),
                    });
                    self.buffers.len() - 1
                }
            };
            self.buffers[idx].events.push(ev);
            if self.buffers[idx].events.len() >= self.policy.max_items {
                let b = self.buffers.remove(idx);
                out.push(self.summarize(b));
            }
        } else {
            let run_id = ev.run.run_id.clone();
            let mut i = 0;
            while i < self.buffers.len() {
                if self.buffers[i].run_id == run_id {
                    let b = self.buffers.remove(i);
                    out.push(self.summarize(b));
                } else {
                    i += 1;
                }
            }
            out.push(ev);
        }
        out
    }

    /// Buffers whose interval has passed.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Arc<RuntimeEvent>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.buffers.len() {
            if now.duration_since(self.buffers[i].first_at) >= self.policy.emit_interval {
                let b = self.buffers.remove(i);
                out.push(self.summarize(b));
            } else {
                i += 1;
            }
        }
        out
    }

    /// Everything buffered, in the order the buffers were opened.
    pub(crate) fn drain(&mut self) -> Vec<Arc<RuntimeEvent>> {
        let buffers = std::mem::take(&mut self.buffers);
        buffers.into_iter().map(|b| self.summarize(b)).collect()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.buffers
            .iter()
            .map(|b| b.first_at + self.policy.emit_interval)
            .min()
    }

    fn summarize(&self, buffer: Buffer) -> Arc<RuntimeEvent> {
        let mut events = buffer.events;
        if events.len() == 1
            && let Some(only) = events.pop()
        {
            return only;
        }
        let count = events.len();
        let (Some(first), Some(last)) = (events.first().cloned(), events.last().cloned()) else {
            // A buffer is only created with one event in it; an empty one cannot be
            // summarised, so deliver an empty marker rather than panic.
            return Arc::new(empty_marker(&buffer.event_type));
        };
        let keep = self.policy.max_summary_items.max(1);
        let compact: Vec<Value> = events
            .iter()
            .skip(count.saturating_sub(keep))
            .map(
                |e| json!({"event_id": e.event_id, "seq": e.seq, "at": e.at, "payload": e.payload}),
            )
            .collect();
        let mut meta = last.meta.clone();
        meta.insert("coalesced".into(), Value::Bool(true));
        meta.insert("coalesced_count".into(), json!(count));
        meta.insert("coalesced_event_type".into(), json!(last.event_type));
        meta.insert("first_event_id".into(), json!(first.event_id));
        meta.insert("last_event_id".into(), json!(last.event_id));
        meta.insert("first_event_at".into(), json!(first.at));
        meta.insert("last_event_at".into(), json!(last.at));
        meta.insert("first_seq".into(), json!(first.seq));
        Arc::new(RuntimeEvent {
            event_id: EventId::for_seq(last.event_id.as_str(), count as u64),
            seq: last.seq,
            event_type: last.event_type.clone(),
            at: last.at,
            run: last.run.clone(),
            source: last.source.clone(),
            level: last.level,
            message: Some(format!("{count} coalesced runtime events")),
            payload: json!({
                "count": count,
                "events": compact,
                "last_payload": last.payload,
                "truncated": count > keep,
            }),
            error: None,
            meta,
        })
    }
}

fn empty_marker(event_type: &EventType) -> RuntimeEvent {
    RuntimeEvent {
        event_id: EventId::new(),
        seq: 0,
        event_type: event_type.clone(),
        at: crate::time::Timestamp::now(),
        run: crate::event::RunContext::root(crate::event::RunKind::new("unknown")),
        source: "EventCenter".into(),
        level: crate::event::Level::Debug,
        message: Some("0 coalesced runtime events".into()),
        payload: Value::Null,
        error: None,
        meta: Map::new(),
    }
}
