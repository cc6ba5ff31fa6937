//! Progress tracking, the deadline and idle watchdog, and heartbeats.
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentry_core::{EventType, Level, NewEvent, StallError, StallStatus, stage};
use serde_json::json;
use tokio::time::Instant;

use super::run::RunCtx;
use crate::error::AgentryError;

/// When the execution last made progress, and in which stage.
#[derive(Debug)]
pub(crate) struct Progress {
    started: Instant,
    /// Milliseconds after `started` of the last progress.
    last_ms: AtomicU64,
    stage: Mutex<&'static str>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            stage: Mutex::new(stage::AGENT_EXECUTION),
        }
    }

    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub(crate) fn set_stage(&self, stage: &'static str) {
        *self.stage.lock().unwrap_or_else(PoisonError::into_inner) = stage;
    }

    fn stage(&self) -> &'static str {
        *self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn last_progress(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Runs until the deadline passes or progress stops for longer than the idle limit,
/// emitting heartbeats meanwhile. Never returns while the execution is healthy.
pub(crate) async fn watchdog(ctx: &RunCtx) -> AgentryError {
    let deadline = ctx.limits.deadline().map(|d| (ctx.progress.started + d, d));
    let idle = ctx.limits.idle();
    let heartbeat = ctx.heartbeat_interval;
    let mut next_heartbeat = ctx.progress.started + heartbeat;
    // Events emitted by any component (the action loop, actions, hooks' callers)
    // count as progress; only the watchdog's own heartbeats do not.
    let mut seen = ctx.shared.emitter.emitted();
    let mut own_heartbeats: u64 = 0;
    loop {
        let now = Instant::now();
        let emitted = ctx.shared.emitter.emitted();
        if emitted > seen {
            if emitted - seen > own_heartbeats {
                ctx.progress.touch();
            }
            seen = emitted;
            own_heartbeats = 0;
        }
        if let Some((at, limit)) = deadline
            && now >= at
        {
            return AgentryError::Stall(StallError::new(
                ctx.progress.stage(),
                StallStatus::TimedOut,
                now - ctx.progress.started,
                limit,
            ));
        }
        if let Some(limit) = idle {
            let last = ctx.progress.last_progress();
            if now.saturating_duration_since(last) >= limit {
                return AgentryError::Stall(StallError::new(
                    ctx.progress.stage(),
                    StallStatus::Stalled,
                    now - ctx.progress.started,
                    limit,
                ));
            }
        }
        if now >= next_heartbeat {
            let elapsed = now - ctx.progress.started;
            let idle_for = now.saturating_duration_since(ctx.progress.last_progress());
            ctx.emit_heartbeat(
                NewEvent::new(EventType::AGENT_EXECUTION_HEARTBEAT)
                    .source("Agent")
                    .level(Level::Debug)
                    .payload(json!({
                        "elapsed_ms": elapsed.as_millis() as u64,
                        "idle_ms": idle_for.as_millis() as u64,
                        "stage": ctx.progress.stage(),
                    })),
            )
            .await;
            own_heartbeats += 1;
            next_heartbeat = now + heartbeat;
        }
        let mut wake = next_heartbeat;
        if let Some((at, _)) = deadline {
            wake = wake.min(at);
        }
        if let Some(limit) = idle {
            wake = wake.min(ctx.progress.last_progress() + limit);
        }
        tokio::time::sleep_until(wake.max(Instant::now() + Duration::from_millis(1))).await;
    }
}
