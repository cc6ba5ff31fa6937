//! The run's action policy: which actions may run, how far their side effects may
//! reach, and when approval is asked. Built by the host, resolved once per run into a
//! [`ResolvedPolicy`] that the dispatcher consults for every call.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::{ActionSpec, SideEffect};
use crate::codes;

/// Selects actions by id or by tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// One action id.
    Id(String),
    /// Every action carrying the tag.
    Tag(String),
}

/// When approval handlers are consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Only for actions that declare `approval_required`.
    #[default]
    Auto,
    /// For every call.
    Always,
    /// Never ask: a call that needs approval is denied (`blocked`).
    Never,
}

/// What the host allows in a run.
///
/// ```
/// use agentry_actions::{ActionPolicy, ApprovalMode, SideEffect};
/// let policy = ActionPolicy::new()
///     .deny_tag("dangerous")
///     .max_side_effect(SideEffect::Write)
///     .approval_mode(ApprovalMode::Auto);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionPolicy {
    /// When set, only matching actions may run.
    pub allow: Option<Vec<Selector>>,
    /// Matching actions never run (wins over `allow`).
    pub deny: Vec<Selector>,
    /// Highest side effect allowed; `None` means no ceiling.
    pub max_side_effect: Option<SideEffect>,
    /// When approval is asked.
    pub approval_mode: ApprovalMode,
    /// Default per-call timeout (overrides the loop option when set).
    #[serde(default, with = "opt_ms", skip_serializing_if = "Option::is_none")]
    pub action_timeout: Option<Duration>,
}

impl ActionPolicy {
    /// Everything allowed, approval only where declared.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds an id to the allow list (creating it).
    pub fn allow_id(mut self, id: impl Into<String>) -> Self {
        self.allow
            .get_or_insert_with(Vec::new)
            .push(Selector::Id(id.into()));
        self
    }
    /// Adds a tag to the allow list (creating it).
    pub fn allow_tag(mut self, tag: impl Into<String>) -> Self {
        self.allow
            .get_or_insert_with(Vec::new)
            .push(Selector::Tag(tag.into()));
        self
    }
    /// Denies an id.
    pub fn deny_id(mut self, id: impl Into<String>) -> Self {
        self.deny.push(Selector::Id(id.into()));
        self
    }
    /// Denies a tag.
    pub fn deny_tag(mut self, tag: impl Into<String>) -> Self {
        self.deny.push(Selector::Tag(tag.into()));
        self
    }
    /// Sets the side-effect ceiling.
    pub fn max_side_effect(mut self, level: SideEffect) -> Self {
        self.max_side_effect = Some(level);
        self
    }
    /// Sets the approval mode.
    pub fn approval_mode(mut self, mode: ApprovalMode) -> Self {
        self.approval_mode = mode;
        self
    }
    /// Sets the default per-call timeout.
    pub fn action_timeout(mut self, t: Duration) -> Self {
        self.action_timeout = Some(t);
        self
    }

    /// Resolves the selectors into sets once, for cheap per-call checks.
    pub fn resolve(&self) -> Arc<ResolvedPolicy> {
        let split = |sel: &[Selector]| {
            let mut ids = HashSet::new();
            let mut tags = HashSet::new();
            for s in sel {
                match s {
                    Selector::Id(i) => ids.insert(i.clone()),
                    Selector::Tag(t) => tags.insert(t.clone()),
                };
            }
            (ids, tags)
        };
        let allow = self.allow.as_deref().map(split);
        let (deny_ids, deny_tags) = split(&self.deny);
        Arc::new(ResolvedPolicy {
            allow,
            deny_ids,
            deny_tags,
            max_side_effect: self.max_side_effect,
            approval_mode: self.approval_mode,
            action_timeout: self.action_timeout,
        })
    }
}

/// Why a policy refused an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// Stable code.
    pub code: &'static str,
    /// Explanation.
    pub reason: String,
}

/// Whether a call needs the approval handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalNeed {
    /// Run without asking.
    NotNeeded,
    /// Ask the handler.
    Ask,
    /// Needed, but the mode is `never`: deny without asking.
    Refuse,
}

/// A policy with its selectors resolved into sets.
#[derive(Debug, Clone)]
pub struct ResolvedPolicy {
    allow: Option<(HashSet<String>, HashSet<String>)>,
    deny_ids: HashSet<String>,
    deny_tags: HashSet<String>,
    max_side_effect: Option<SideEffect>,
    approval_mode: ApprovalMode,
    action_timeout: Option<Duration>,
}

impl Default for ResolvedPolicy {
    fn default() -> Self {
        Self {
            allow: None,
            deny_ids: HashSet::new(),
            deny_tags: HashSet::new(),
            max_side_effect: None,
            approval_mode: ApprovalMode::Auto,
            action_timeout: None,
        }
    }
}

impl ResolvedPolicy {
    /// Checks whether the action may run at all.
    pub fn check(&self, spec: &ActionSpec) -> Result<(), PolicyRefusal> {
        if self.deny_ids.contains(&spec.id) || spec.tags.iter().any(|t| self.deny_tags.contains(t))
        {
            return Err(PolicyRefusal {
                code: codes::POLICY_DENIED,
                reason: format!("the run's policy denies action `{}`", spec.id),
            });
        }
        if let Some((ids, tags)) = &self.allow
            && !ids.contains(&spec.id)
            && !spec.tags.iter().any(|t| tags.contains(t))
        {
            return Err(PolicyRefusal {
                code: codes::POLICY_DENIED,
                reason: format!("action `{}` is not on the run's allow list", spec.id),
            });
        }
        if let Some(max) = self.max_side_effect
            && spec.side_effect > max
        {
            return Err(PolicyRefusal {
                code: codes::POLICY_SIDE_EFFECT_EXCEEDED,
                reason: format!(
                    "action `{}` has side effect `{}` above the run's ceiling `{}`",
                    spec.id,
                    spec.side_effect.as_str(),
                    max.as_str()
                ),
            });
        }
        Ok(())
    }

    /// Whether a call of this action needs the approval handler.
    pub fn approval_need(&self, spec: &ActionSpec) -> ApprovalNeed {
        let needed = spec.approval_required || self.approval_mode == ApprovalMode::Always;
        match (needed, self.approval_mode) {
            (false, _) => ApprovalNeed::NotNeeded,
            (true, ApprovalMode::Never) => ApprovalNeed::Refuse,
            (true, _) => ApprovalNeed::Ask,
        }
    }

    /// The approval mode.
    pub fn approval_mode(&self) -> ApprovalMode {
        self.approval_mode
    }

    /// The policy's per-call timeout, if any.
    pub fn action_timeout(&self) -> Option<Duration> {
        self.action_timeout
    }
}

mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(id: &str, tags: &[&str], se: SideEffect, approval: bool) -> ActionSpec {
        let mut s = ActionSpec::new(id, "", json!({}));
        s.tags = tags.iter().map(|t| t.to_string()).collect();
        s.side_effect = se;
        s.approval_required = approval;
        s
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = ActionPolicy::new().allow_tag("fs").deny_id("rm").resolve();
        assert!(
            p.check(&spec("ls", &["fs"], SideEffect::Read, false))
                .is_ok()
        );
        assert_eq!(
            p.check(&spec("rm", &["fs"], SideEffect::Read, false))
                .unwrap_err()
                .code,
            codes::POLICY_DENIED
        );
        assert!(
            p.check(&spec("curl", &["net"], SideEffect::Read, false))
                .is_err()
        );
    }

    #[test]
    fn side_effect_ceiling() {
        let p = ActionPolicy::new()
            .max_side_effect(SideEffect::Write)
            .resolve();
        assert!(p.check(&spec("w", &[], SideEffect::Write, false)).is_ok());
        assert_eq!(
            p.check(&spec("x", &[], SideEffect::Exec, false))
                .unwrap_err()
                .code,
            codes::POLICY_SIDE_EFFECT_EXCEEDED
        );
    }

    #[test]
    fn approval_modes() {
        let s = spec("a", &[], SideEffect::Read, true);
        let plain = spec("b", &[], SideEffect::Read, false);
        let auto = ActionPolicy::new().resolve();
        assert_eq!(auto.approval_need(&s), ApprovalNeed::Ask);
        assert_eq!(auto.approval_need(&plain), ApprovalNeed::NotNeeded);
        let always = ActionPolicy::new()
            .approval_mode(ApprovalMode::Always)
            .resolve();
        assert_eq!(always.approval_need(&plain), ApprovalNeed::Ask);
        let never = ActionPolicy::new()
            .approval_mode(ApprovalMode::Never)
            .resolve();
        assert_eq!(never.approval_need(&s), ApprovalNeed::Refuse);
        assert_eq!(never.approval_need(&plain), ApprovalNeed::NotNeeded);
    }
}
