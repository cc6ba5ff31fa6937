use std::sync::Arc;

use futures::future::BoxFuture;

use crate::center::{Hook, HookError};
use crate::event::{Level, RuntimeEvent};

/// A hook that writes every event to `tracing` under the target `agentry::event`,
/// with the event's level, type, sequence number and run ids as fields.
///
/// ```
/// use agentry_core::{EventCenter, HookOptions, TracingHook};
/// let center = EventCenter::new();
/// center.register(HookOptions::new("tracing"), TracingHook::default()).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingHook;

impl Hook for TracingHook {
    fn on_event(&self, ev: Arc<RuntimeEvent>) -> BoxFuture<'static, Result<(), HookError>> {
        let message = ev.message.as_deref().unwrap_or("");
        let execution = ev
            .run
            .execution_id
            .as_ref()
            .map(|e| e.as_str())
            .unwrap_or("");
        macro_rules! log {
            ($lvl:ident) => {
                tracing::$lvl!(
                    target: "agentry::event",
                    event_type = %ev.event_type,
                    seq = ev.seq,
                    run_id = %ev.run.run_id,
                    run_kind = ev.run.run_kind.as_str(),
                    execution_id = execution,
                    source = %ev.source,
                    "{message}"
                )
            };
        }
        match ev.level {
            Level::Debug => log!(debug),
            Level::Info => log!(info),
            Level::Warning => log!(warn),
            Level::Error | Level::Critical => log!(error),
        }
        Box::pin(async { Ok(()) })
    }
}
