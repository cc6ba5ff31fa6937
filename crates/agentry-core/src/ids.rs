//! Newtype identifiers. Each is a cheap-to-clone shared string so events and records
//! can carry them without reallocating; the types keep an execution id from being
//! passed where an agent id is expected.
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::CoreError;

const MAX_ID_LEN: usize = 256;

fn validate(kind: &'static str, s: &str) -> Result<(), CoreError> {
    if s.is_empty() {
        return Err(CoreError::InvalidId {
            kind,
            reason: "empty",
        });
    }
    if s.len() > MAX_ID_LEN {
        return Err(CoreError::InvalidId {
            kind,
            reason: "longer than 256 bytes",
        });
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(CoreError::InvalidId {
            kind,
            reason: "contains control characters",
        });
    }
    Ok(())
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// A fresh, time-ordered, globally unique id.
            pub fn new() -> Self {
                // Several ids per execution: the hex is encoded straight into a
                // buffer, without the `fmt` machinery `format!` would go through.
                let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
                let hex = uuid::Uuid::now_v7().simple().encode_lower(&mut hex);
                let mut id = String::with_capacity($prefix.len() + 1 + hex.len());
                id.push_str($prefix);
                id.push('_');
                id.push_str(hex);
                Self(id.into())
            }

            /// Wraps an existing id after checking it is non-empty, at most 256 bytes
            /// and free of control characters.
            pub fn parse(s: impl AsRef<str>) -> Result<Self, CoreError> {
                let s = s.as_ref();
                validate($kind, s)?;
                Ok(Self(s.into()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// Identifies one execution: a single run of an agent request, loop or flow.
    ExecutionId, "exe", "execution"
);
define_id!(
    /// Identifies an agent.
    AgentId, "agt", "agent"
);
define_id!(
    /// Identifies one node of the run tree (an execution, a request, a model attempt,
    /// an action loop, an action…), as the DevTools console groups events.
    RunId, "run", "run"
);
define_id!(
    /// Identifies one RuntimeEvent. Events emitted through an
    /// [`Emitter`](crate::Emitter) get `<scope>-<seq>`, which is unique and stable
    /// across retries, so sinks can deduplicate.
    EventId, "evt", "event"
);

impl EventId {
    pub(crate) fn for_seq(scope: &str, seq: u64) -> Self {
        // One id per event, so this is on the emit path: `itoa` formats the number
        // without the `fmt` machinery, and the string is sized up front.
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(seq);
        let mut id = String::with_capacity(scope.len() + 1 + digits.len());
        id.push_str(scope);
        id.push('-');
        id.push_str(digits);
        Self(id.into())
    }
}

/// The stable id of one action call: `(execution, round, index)`.
///
/// A resumed execution finds the memoised result of a call by this id, so it must be
/// derived from the plan, never from a clock or a counter shared across rounds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActionCallId {
    /// The execution the call belongs to.
    pub execution: ExecutionId,
    /// The planning round (0-based).
    pub round: u32,
    /// The call's position in the round's plan (0-based).
    pub index: u32,
}

impl ActionCallId {
    /// Builds a call id.
    pub fn new(execution: ExecutionId, round: u32, index: u32) -> Self {
        Self {
            execution,
            round,
            index,
        }
    }
}

impl fmt::Display for ActionCallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:r{}:i{}", self.execution, self.round, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_unique_and_prefixed() {
        let a = ExecutionId::new();
        let b = ExecutionId::new();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("exe_"));
    }

    #[test]
    fn event_ids_name_scope_and_seq() {
        let long = "s".repeat(200);
        for scope in ["exe_x", "exé_ü", &"s".repeat(74), &"s".repeat(75), &long] {
            for seq in [0, 1, 9, 10, 99, 100, 12_345, u64::MAX] {
                assert_eq!(
                    EventId::for_seq(scope, seq).as_str(),
                    format!("{scope}-{seq}")
                );
            }
        }
    }

    #[test]
    fn parse_refuses_bad_ids() {
        assert!(AgentId::parse("").is_err());
        assert!(AgentId::parse("a\u{0}b").is_err());
        assert!(AgentId::parse("x".repeat(300)).is_err());
        assert_eq!(AgentId::parse("writer").unwrap().as_str(), "writer");
    }

    #[test]
    fn serde_round_trip_validates() {
        let id = ExecutionId::new();
        let json = serde_json::to_string(&id).unwrap();
        let back: ExecutionId = serde_json::from_str(&json).unwrap();
        assert_eq!(id, back);
        assert!(serde_json::from_str::<ExecutionId>("\"\"").is_err());
    }

    #[test]
    fn action_call_id_display() {
        let exe = ExecutionId::parse("exe_1").unwrap();
        assert_eq!(ActionCallId::new(exe, 2, 3).to_string(), "exe_1:r2:i3");
    }
}
