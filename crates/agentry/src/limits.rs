//! Execution limits, validated when the execution is built.
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AgentryError;

/// Bounds on one execution. Each one, when exceeded, ends the execution with a typed
/// error and a diagnostic entry. Unset means unlimited.
///
/// ```
/// use agentry::Limits;
/// let limits = Limits::new().max_seconds(30.0).max_no_progress_seconds(5.0).max_model_requests(4);
/// assert!(limits.validate().is_ok());
/// assert!(Limits::new().max_seconds(-1.0).validate().is_err());
/// ```
///
/// Deserializing refuses unknown names: limits come from configuration (`[limits]`
/// in `agentry.toml`, a host's JSON), where a misspelt `max_secnds` would otherwise
/// leave the execution silently unbounded.
///
/// ```
/// let typo = serde_json::from_str::<agentry::Limits>(r#"{"max_secnds": 5}"#);
/// assert!(typo.unwrap_err().to_string().contains("unknown field `max_secnds`"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Hard deadline for the whole execution, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<f64>,
    /// Longest time without progress, in seconds. Heartbeats are not progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_no_progress_seconds: Option<f64>,
    /// Most model requests (attempts after a retry do not count twice; each
    /// request to the model layer does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_requests: Option<u32>,
}

impl Limits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the hard deadline in seconds.
    pub fn max_seconds(mut self, seconds: f64) -> Self {
        self.max_seconds = Some(seconds);
        self
    }

    /// Sets the idle limit in seconds.
    pub fn max_no_progress_seconds(mut self, seconds: f64) -> Self {
        self.max_no_progress_seconds = Some(seconds);
        self
    }

    /// Sets the model request budget.
    pub fn max_model_requests(mut self, n: u32) -> Self {
        self.max_model_requests = Some(n);
        self
    }

    /// Fills unset fields from `defaults`.
    pub fn or(self, defaults: Limits) -> Self {
        Self {
            max_seconds: self.max_seconds.or(defaults.max_seconds),
            max_no_progress_seconds: self
                .max_no_progress_seconds
                .or(defaults.max_no_progress_seconds),
            max_model_requests: self.max_model_requests.or(defaults.max_model_requests),
        }
    }

    /// Checks every limit: seconds must be finite and positive (at most ten years),
    /// the request budget at least 1.
    pub fn validate(&self) -> Result<(), AgentryError> {
        for (name, value) in [
            ("max_seconds", self.max_seconds),
            ("max_no_progress_seconds", self.max_no_progress_seconds),
        ] {
            if let Some(v) = value
                && (!v.is_finite() || v <= 0.0 || v > 315_360_000.0)
            {
                return Err(AgentryError::InvalidLimit {
                    limit: name,
                    value: v.to_string(),
                    reason: "must be a finite number of seconds greater than 0",
                });
            }
        }
        if self.max_model_requests == Some(0) {
            return Err(AgentryError::InvalidLimit {
                limit: "max_model_requests",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Ok(())
    }

    pub(crate) fn deadline(&self) -> Option<Duration> {
        self.max_seconds.map(Duration::from_secs_f64)
    }

    pub(crate) fn idle(&self) -> Option<Duration> {
        self.max_no_progress_seconds.map(Duration::from_secs_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_limits_are_rejected() {
        for bad in [
            Limits::new().max_seconds(0.0),
            Limits::new().max_seconds(f64::NAN),
            Limits::new().max_seconds(f64::INFINITY),
            Limits::new().max_no_progress_seconds(-2.0),
            Limits::new().max_model_requests(0),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(matches!(err, AgentryError::InvalidLimit { .. }), "{err}");
        }
    }

    #[test]
    fn or_fills_unset() {
        let l = Limits::new()
            .max_seconds(3.0)
            .or(Limits::new().max_seconds(9.0).max_model_requests(2));
        assert_eq!(l.max_seconds, Some(3.0));
        assert_eq!(l.max_model_requests, Some(2));
    }
}
