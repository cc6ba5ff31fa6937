//! Shared foundations of Agentry: identifiers, the [`RuntimeEvent`] record, the
//! [`EventCenter`] that fans events out to hooks, payload redaction, diagnostics and
//! the stable error-code convention every other crate follows.
//!
//! Nothing here knows about agents, models or actions; higher crates build on these
//! types so that every step of an execution can be observed the same way.
//!
//! ```
//! use agentry_core::{EventCenter, EventType, NewEvent, RunContext, RunKind};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let center = EventCenter::new();
//! let emitter = center.emitter("demo");
//! let run = RunContext::root(RunKind::REQUEST);
//! let event = emitter
//!     .emit(&run, NewEvent::new(EventType::REQUEST_STARTED).message("hello"))
//!     .await;
//! assert_eq!(event.seq, 1);
//! # }
//! ```
#![deny(missing_docs)]

mod center;
mod diagnostic;
mod emitter;
mod error;
mod event;
mod ids;
mod redact;
mod stall;
mod summary;
mod time;
mod tracing_hook;

pub use center::{
    Delivery, Dispatch, EventCenter, EventFilter, Hook, HookError, HookOptions, HookStats, hook_fn,
};
pub use diagnostic::{Diagnostic, Severity};
pub use emitter::{Emitter, EventStream};
pub use error::{CoreError, ErrorCode};
pub use event::{ErrorInfo, EventType, Level, NewEvent, RunContext, RunKind, RuntimeEvent};
pub use ids::{ActionCallId, AgentId, EventId, ExecutionId, RunId};
pub use redact::{REDACTED, Redactor};
pub use stall::{StallError, StallStatus, stage};
pub use time::Timestamp;
pub use tracing_hook::TracingHook;
