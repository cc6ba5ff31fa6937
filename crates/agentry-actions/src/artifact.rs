//! Artifacts and digests: large outputs are kept whole, privately, and the model reads
//! a bounded digest plus a selection key it can page through with the built-in
//! `read_action_artifact(selection_key, offset, max_bytes)` action.
//!
//! Artifacts live in an [`ArtifactScope`] bound to one execution. Keys do not resolve
//! in any other scope, and [`ArtifactScope::release`] (or dropping the last handle)
//! frees everything: later reads answer `action.artifact.not_found`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use agentry_core::{ActionCallId, ExecutionId, Redactor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::action::{ActionFailure, FnAction};
use crate::codes;
use crate::record::Digest;
use crate::registry::RegisteredAction;

/// Id of the built-in artifact reader.
pub const READ_ARTIFACT_ACTION_ID: &str = "read_action_artifact";
pub(crate) const ARTIFACT_RESOURCE: &str = "__agentry_artifact_scope";

/// Largest page `read_action_artifact` returns.
pub const MAX_READ_BYTES: u64 = 64 * 1024;
const DEFAULT_READ_BYTES: u64 = 4096;

/// How outputs are compacted for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestOptions {
    /// Outputs up to this many bytes of JSON are shown to the model whole.
    pub inline_limit: usize,
    /// Budget of a digest's preview, in bytes of JSON.
    pub preview_bytes: usize,
}

impl Default for DigestOptions {
    fn default() -> Self {
        Self {
            inline_limit: 4096,
            preview_bytes: 1024,
        }
    }
}

#[derive(Debug)]
struct Stored {
    call_id: ActionCallId,
    action_id: String,
    json: Arc<str>,
}

#[derive(Debug, Default)]
struct ScopeState {
    released: bool,
    items: HashMap<String, Stored>,
}

/// The artifacts of one execution. Cloning shares the scope.
#[derive(Debug, Clone)]
pub struct ArtifactScope {
    inner: Arc<ScopeInner>,
}

#[derive(Debug)]
struct ScopeInner {
    execution_id: ExecutionId,
    state: Mutex<ScopeState>,
}

/// One page of an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactPage {
    /// The key read.
    pub selection_key: String,
    /// The action whose output this is.
    pub action_id: String,
    /// Size of the whole artifact (compact JSON), in bytes.
    pub total_bytes: u64,
    /// First byte of this page.
    pub offset: u64,
    /// One past the last byte of this page.
    pub end: u64,
    /// The page: a slice of the artifact's JSON text, cut on character boundaries.
    pub text: String,
    /// Whether more follows.
    pub truncated: bool,
    /// Where the next page starts, when more follows.
    pub next_offset: Option<u64>,
}

impl ArtifactScope {
    /// A fresh scope for an execution.
    pub fn new(execution_id: ExecutionId) -> Self {
        Self {
            inner: Arc::new(ScopeInner {
                execution_id,
                state: Mutex::new(ScopeState::default()),
            }),
        }
    }

    /// The execution the scope belongs to.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.inner.execution_id
    }

    /// Stores an output's JSON; returns its selection key, or `None` once released.
    pub(crate) fn store(
        &self,
        call_id: &ActionCallId,
        action_id: &str,
        json: Arc<str>,
    ) -> Option<String> {
        let mut st = self.inner.state.lock().ok()?;
        if st.released {
            return None;
        }
        let key = format!("sel_{}_{}", call_id.round, call_id.index);
        st.items.insert(
            key.clone(),
            Stored {
                call_id: call_id.clone(),
                action_id: action_id.to_owned(),
                json,
            },
        );
        Some(key)
    }

    /// Whether any artifact is held (the reader is offered to the model only then).
    pub fn has_artifacts(&self) -> bool {
        self.inner
            .state
            .lock()
            .map(|s| !s.items.is_empty())
            .unwrap_or(false)
    }

    /// Number of artifacts held.
    pub fn len(&self) -> usize {
        self.inner.state.lock().map(|s| s.items.len()).unwrap_or(0)
    }

    /// Whether no artifact is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The call that produced an artifact.
    pub fn owner(&self, selection_key: &str) -> Option<ActionCallId> {
        let st = self.inner.state.lock().ok()?;
        st.items.get(selection_key).map(|s| s.call_id.clone())
    }

    /// The full JSON of an artifact.
    pub fn full_json(&self, selection_key: &str) -> Option<Arc<str>> {
        let st = self.inner.state.lock().ok()?;
        st.items.get(selection_key).map(|s| s.json.clone())
    }

    /// Reads a byte range of an artifact's JSON text.
    pub fn read(
        &self,
        selection_key: &str,
        offset: u64,
        max_bytes: u64,
    ) -> Result<ArtifactPage, ActionFailure> {
        if max_bytes == 0 || max_bytes > MAX_READ_BYTES {
            return Err(ActionFailure::new(
                codes::ARTIFACT_BAD_RANGE,
                format!("max_bytes must be between 1 and {MAX_READ_BYTES}"),
            ));
        }
        let (json, action_id) = {
            let st = self.inner.state.lock().map_err(|_| {
                ActionFailure::new(codes::ARTIFACT_NOT_FOUND, "artifact store unavailable")
            })?;
            match st.items.get(selection_key) {
                Some(s) if !st.released => (s.json.clone(), s.action_id.clone()),
                _ => {
                    return Err(ActionFailure::new(
                        codes::ARTIFACT_NOT_FOUND,
                        "no artifact with this selection key is held in this execution",
                    ));
                }
            }
        };
        let total = json.len();
        let off = usize::try_from(offset).unwrap_or(usize::MAX);
        if off > total {
            return Err(ActionFailure::new(
                codes::ARTIFACT_BAD_RANGE,
                format!("offset {offset} is past the end ({total} bytes)"),
            ));
        }
        let start = floor_boundary(&json, off);
        let want = start.saturating_add(usize::try_from(max_bytes).unwrap_or(usize::MAX));
        let mut end = floor_boundary(&json, want.min(total));
        if end == start && start < total {
            // A single character wider than max_bytes: return it whole rather than nothing.
            end = ceil_boundary(&json, start + 1);
        }
        let text = json.get(start..end).unwrap_or_default().to_owned();
        let truncated = end < total;
        Ok(ArtifactPage {
            selection_key: selection_key.to_owned(),
            action_id,
            total_bytes: total as u64,
            offset: start as u64,
            end: end as u64,
            text,
            truncated,
            next_offset: truncated.then_some(end as u64),
        })
    }

    /// Frees every artifact; later reads fail with `action.artifact.not_found`.
    pub fn release(&self) {
        if let Ok(mut st) = self.inner.state.lock() {
            st.released = true;
            st.items.clear();
        }
    }

    /// Whether the scope was released.
    pub fn is_released(&self) -> bool {
        self.inner.state.lock().map(|s| s.released).unwrap_or(true)
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

/// The registry entry of the built-in reader, built once.
pub(crate) fn reader_entry() -> Option<&'static Arc<RegisteredAction>> {
    static ENTRY: OnceLock<Option<Arc<RegisteredAction>>> = OnceLock::new();
    ENTRY
        .get_or_init(|| {
            let schema = json!({
                "type": "object",
                "properties": {
                    "selection_key": {"type": "string", "description": "The selection_key from a digest."},
                    "offset": {"type": "integer", "minimum": 0, "description": "First byte to read (default 0)."},
                    "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_READ_BYTES,
                                   "description": "Most bytes to return (default 4096)."}
                },
                "required": ["selection_key"],
                "additionalProperties": false
            });
            let action = FnAction::new(
                READ_ARTIFACT_ACTION_ID,
                "Reads part of a stored action output that was shown only as a digest. \
                 Pass the digest's selection_key; page with offset and max_bytes.",
                schema,
                |ctx, input| async move {
                    let scope = ctx.resource::<ArtifactScope>(ARTIFACT_RESOURCE).ok_or_else(|| {
                        ActionFailure::new(codes::ARTIFACT_NOT_FOUND, "no artifact scope is bound to this call")
                    })?;
                    let key = input.get("selection_key").and_then(Value::as_str).unwrap_or_default();
                    let offset = input.get("offset").and_then(Value::as_u64).unwrap_or(0);
                    let max = input.get("max_bytes").and_then(Value::as_u64).unwrap_or(DEFAULT_READ_BYTES);
                    let page = scope.read(key, offset, max)?;
                    Ok(json!(page))
                },
            )
            .executor_kind("builtin");
            RegisteredAction::build(Arc::new(action)).ok().map(Arc::new)
        })
        .as_ref()
}

/// Builds the digest of an output whose JSON is `json_len` bytes long.
pub(crate) fn digest(
    data: &Value,
    json_len: usize,
    opts: &DigestOptions,
    selection_key: Option<String>,
) -> Digest {
    let mut preview = compact(data, opts.preview_bytes);
    Redactor::default().redact_value(&mut preview);
    let count = match data {
        Value::Array(a) => Some(a.len()),
        Value::Object(m) => Some(m.len()),
        _ => None,
    };
    Digest {
        preview,
        total_bytes: json_len,
        truncated: true,
        count,
        selection_key,
    }
}

#[derive(Clone, Copy)]
struct Limits {
    chars: usize,
    items: usize,
    depth: usize,
}

/// A bounded copy of a value: long strings cut, long lists and maps shortened, deep
/// nesting summarised, shrinking until its JSON fits `budget` bytes (roughly).
pub fn compact(value: &Value, budget: usize) -> Value {
    if json_len(value) <= budget {
        return value.clone();
    }
    let mut limits = Limits {
        chars: (budget / 4).clamp(16, 512),
        items: 16,
        depth: 4,
    };
    for _ in 0..6 {
        let v = shrink(value, limits, 0);
        let len = serde_json::to_string(&v)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if len <= budget {
            return v;
        }
        limits = Limits {
            chars: (limits.chars / 2).max(16),
            items: (limits.items / 2).max(2),
            depth: limits.depth.saturating_sub(1).max(1),
        };
    }
    let text = value.to_string();
    let cut = floor_boundary(&text, budget.min(text.len()));
    Value::String(format!(
        "{}… [{} more bytes]",
        &text[..cut],
        text.len() - cut
    ))
}

/// Length of a value's compact JSON, measured without building the text.
pub(crate) fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

fn shrink(v: &Value, l: Limits, depth: usize) -> Value {
    match v {
        Value::String(s) if s.chars().count() > l.chars => {
            let kept: String = s.chars().take(l.chars).collect();
            Value::String(format!("{kept}… [{} more bytes]", s.len() - kept.len()))
        }
        Value::Array(a) if depth >= l.depth => {
            Value::String(format!("[array of {} items]", a.len()))
        }
        Value::Object(m) if depth >= l.depth => {
            Value::String(format!("[object with {} keys]", m.len()))
        }
        Value::Array(a) => {
            let mut out: Vec<Value> = a
                .iter()
                .take(l.items)
                .map(|x| shrink(x, l, depth + 1))
                .collect();
            if a.len() > l.items {
                out.push(Value::String(format!("… {} more items", a.len() - l.items)));
            }
            Value::Array(out)
        }
        Value::Object(m) => {
            let mut out: Map<String, Value> = m
                .iter()
                .take(l.items * 2)
                .map(|(k, x)| (k.clone(), shrink(x, l, depth + 1)))
                .collect();
            if m.len() > l.items * 2 {
                out.insert(
                    "…".into(),
                    Value::String(format!("{} more keys", m.len() - l.items * 2)),
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid() -> ActionCallId {
        ActionCallId::new(ExecutionId::new(), 1, 2)
    }

    #[test]
    fn paging_and_release() {
        let scope = ArtifactScope::new(ExecutionId::new());
        let text: Arc<str> = Arc::from("\"héllo wörld\"");
        let key = scope.store(&cid(), "a", text.clone()).unwrap();
        assert_eq!(key, "sel_1_2");
        let p = scope.read(&key, 0, 3).unwrap();
        assert_eq!(p.text, "\"h");
        assert_eq!(p.next_offset, Some(2));
        let mut all = String::new();
        let mut off = 0;
        loop {
            let p = scope.read(&key, off, 3).unwrap();
            all.push_str(&p.text);
            match p.next_offset {
                Some(n) => off = n,
                None => break,
            }
        }
        assert_eq!(all, &*text);
        assert_eq!(
            scope.read(&key, 999, 3).unwrap_err().code,
            codes::ARTIFACT_BAD_RANGE
        );
        assert_eq!(
            scope.read(&key, 0, 0).unwrap_err().code,
            codes::ARTIFACT_BAD_RANGE
        );
        assert_eq!(
            scope.read("nope", 0, 3).unwrap_err().code,
            codes::ARTIFACT_NOT_FOUND
        );
        scope.release();
        assert_eq!(
            scope.read(&key, 0, 3).unwrap_err().code,
            codes::ARTIFACT_NOT_FOUND
        );
        assert!(scope.store(&cid(), "a", text).is_none());
    }

    #[test]
    fn keys_do_not_cross_scopes() {
        let a = ArtifactScope::new(ExecutionId::new());
        let b = ArtifactScope::new(ExecutionId::new());
        let key = a.store(&cid(), "x", Arc::from("1")).unwrap();
        assert!(b.read(&key, 0, 10).is_err());
    }

    #[test]
    fn compact_is_bounded() {
        let big = json!({"rows": (0..1000).map(|i| json!({"i": i, "text": "x".repeat(300)})).collect::<Vec<_>>(),
                         "password": "hunter22"});
        let d = digest(&big, 400_000, &DigestOptions::default(), Some("k".into()));
        let len = serde_json::to_string(&d.preview).unwrap().len();
        assert!(len <= 1100, "preview {len} bytes");
        assert_eq!(d.count, Some(2));
        assert_eq!(d.preview["password"], "[REDACTED]");
        let s = compact(&json!("y".repeat(10_000)), 200);
        assert!(s.as_str().unwrap().len() < 400);
    }
}
