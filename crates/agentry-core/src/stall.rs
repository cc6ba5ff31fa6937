use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Names of the stages a stall can be reported at. Hosts match on these strings.
pub mod stage {
    /// Waiting for the first meaningful event of a streamed model response.
    pub const RESPONSE_FIRST_EVENT: &str = "response_first_event";
    /// Waiting between events of a streamed model response.
    pub const RESPONSE_STREAM: &str = "response_stream";
    /// Waiting for a non-streamed response body.
    pub const RESPONSE_MATERIALIZATION: &str = "response_materialization";
    /// The whole execution (`max_seconds` / `max_no_progress_seconds`).
    pub const AGENT_EXECUTION: &str = "agent_execution";
    /// Closing an action loop.
    pub const ACTION_LOOP_CLOSE: &str = "action_loop_close";
    /// Running one action.
    pub const ACTION_EXECUTION: &str = "action_execution";
}

/// Whether a deadline or an idle limit was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallStatus {
    /// Nothing happened for longer than the idle limit.
    Stalled,
    /// The hard deadline passed.
    TimedOut,
}

/// A step stopped making progress or ran past its deadline.
///
/// Carried inside the model, action and execution error enums so every crate reports
/// stalls the same way, naming the stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{} at stage `{stage}` after {elapsed:?} (limit {limit:?})", match status { StallStatus::Stalled => "stalled", StallStatus::TimedOut => "timed out" })]
pub struct StallError {
    /// The stage that stalled (see [`stage`]).
    pub stage: Cow<'static, str>,
    /// Idle or deadline.
    pub status: StallStatus,
    /// Time since the stage began.
    #[serde(with = "millis")]
    pub elapsed: Duration,
    /// The limit that was exceeded.
    #[serde(with = "millis")]
    pub limit: Duration,
}

impl StallError {
    /// A stall report.
    pub fn new(
        stage: impl Into<Cow<'static, str>>,
        status: StallStatus,
        elapsed: Duration,
        limit: Duration,
    ) -> Self {
        Self {
            stage: stage.into(),
            status,
            elapsed,
            limit,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
