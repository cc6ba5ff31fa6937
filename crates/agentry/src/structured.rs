//! Structured output beyond the prompt: per-key streaming, the KeyWaiter store,
//! reading (with repair) and validating the final answer, and ensure-keys.
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use agentry_core::{Diagnostic, Severity};
use agentry_model::streaming_json::{
    ContainerValues, JsonEvent, JsonPath, ParserOptions, PathPattern, PatternSegment,
    StreamingJsonParser,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::error::AgentryError;

/// Code of the diagnostic listing repairs made to the model's JSON.
pub const OUTPUT_REPAIRED: &str = "output.repaired";
/// Code of the diagnostic recorded when the streamed answer could not be parsed
/// incrementally (the final parse still runs).
pub const OUTPUT_STREAM_PARSE_FAILED: &str = "output.stream_parse_failed";
/// Code of the diagnostic recorded for each corrective re-request.
pub const OUTPUT_CORRECTIVE_REQUEST: &str = "output.corrective_request";

/// Parses a path pattern and checks that the output contract can have a value there.
pub(crate) fn check_path(schema: &Value, path: &str) -> Result<PathPattern, AgentryError> {
    let pattern: PathPattern = path.parse().map_err(|e| AgentryError::UnknownKeyPath {
        path: path.to_owned(),
        reason: format!("not a valid path: {e}"),
    })?;
    let mut node = schema;
    for segment in pattern.segments() {
        node = step(schema, node, segment).ok_or_else(|| AgentryError::UnknownKeyPath {
            path: path.to_owned(),
            reason: "the output schema has no value at this path".into(),
        })?;
    }
    Ok(pattern)
}

/// Follows a local `$ref` (`#/$defs/..`, `#/definitions/..`), a few levels deep.
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = node.get("$ref").and_then(Value::as_str) else {
            return node;
        };
        let Some(pointer) = r.strip_prefix('#') else {
            return node;
        };
        match root.pointer(pointer) {
            Some(target) => node = target,
            None => return node,
        }
    }
    node
}

fn step<'a>(root: &'a Value, node: &'a Value, segment: &PatternSegment) -> Option<&'a Value> {
    let node = resolve(root, node);
    let direct = match segment {
        PatternSegment::Key(k) => node
            .get("properties")
            .and_then(|p| p.get(k))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
        PatternSegment::AnyKey => node
            .get("additionalProperties")
            .filter(|a| a.is_object())
            .or_else(|| {
                node.get("properties")
                    .and_then(Value::as_object)
                    .and_then(|p| p.values().next())
            }),
        PatternSegment::Index(_) | PatternSegment::AnyIndex => node
            .get("items")
            .or_else(|| node.get("prefixItems").and_then(|p| p.get(0))),
    };
    if direct.is_some() {
        return direct;
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = node.get(combinator).and_then(Value::as_array)
            && let Some(found) = branches.iter().find_map(|b| step(root, b, segment))
        {
            return Some(found);
        }
    }
    None
}

/// Values completed so far, for [`Execution::get_key_result`](crate::Execution::get_key_result)
/// and friends. Later values for a path (a corrective re-request) replace earlier ones.
#[derive(Debug)]
pub(crate) struct KeyStore {
    state: Mutex<KeyState>,
    version: watch::Sender<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct KeyState {
    /// In completion order.
    pub(crate) values: Vec<(JsonPath, Value)>,
    /// Position of each path in `values`, so recording stays cheap for answers with many
    /// values (a linear search made streaming a large answer quadratic).
    positions: HashMap<JsonPath, usize>,
    /// Set when the execution ended.
    pub(crate) finished: bool,
}

impl KeyStore {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(KeyState::default()),
            version: watch::channel(0).0,
        }
    }

    pub(crate) fn record(&self, path: JsonPath, value: Value) {
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let s = &mut *s;
            match s.positions.get(&path).and_then(|&i| s.values.get_mut(i)) {
                Some(slot) => slot.1 = value,
                None => {
                    s.positions.insert(path.clone(), s.values.len());
                    s.values.push((path, value));
                }
            }
        }
        self.version.send_modify(|v| *v += 1);
    }

    pub(crate) fn finish(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finished = true;
        self.version.send_modify(|v| *v += 1);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Runs `f` on the current state.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&KeyState) -> R) -> R {
        f(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Incremental parsing of one streamed answer.
#[derive(Debug)]
pub(crate) struct OutputStream {
    parser: Option<StreamingJsonParser>,
    pub(crate) failed: Option<String>,
}

impl OutputStream {
    /// Every completed path gets its value, containers included
    /// ([`ContainerValues::All`]): the KeyWaiter serves any path and the `done` events carry
    /// the values.
    pub(crate) fn new() -> Self {
        Self {
            parser: Some(StreamingJsonParser::with_options(ParserOptions {
                container_values: ContainerValues::All,
                ..ParserOptions::default()
            })),
            failed: None,
        }
    }

    /// Feeds a text delta; returns the per-path events it completed. After a parse
    /// error the stream goes quiet (the final read decides).
    pub(crate) fn feed(&mut self, text: &str) -> Vec<JsonEvent> {
        let Some(parser) = self.parser.as_mut() else {
            return Vec::new();
        };
        match parser.feed(text) {
            Ok(events) => events,
            Err(e) => {
                self.failed = Some(format!("{} ({})", e, e.code()));
                self.parser = None;
                Vec::new()
            }
        }
    }

    /// Ends the stream: events for values the end of input completed.
    pub(crate) fn finish(mut self) -> Vec<JsonEvent> {
        match self.parser.take().map(StreamingJsonParser::finish) {
            Some(Ok(done)) => done.events,
            _ => Vec::new(),
        }
    }
}

/// The final structured answer, read and repaired.
#[derive(Debug)]
pub(crate) struct ReadAnswer {
    pub(crate) value: Value,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Reads the JSON value out of an answer: prose and code fences around it are
/// skipped; common defects (trailing commas, single quotes, missing closing
/// brackets …) are repaired and reported.
pub(crate) fn read_answer(text: &str) -> Result<ReadAnswer, AgentryError> {
    // A well-formed answer (of any JSON type, a top-level string included) needs no
    // search or repair; the tolerant reader below only starts at `{` or `[`.
    if let Ok(value) = serde_json::from_str::<Value>(text.trim()) {
        return Ok(ReadAnswer {
            value,
            diagnostics: Vec::new(),
        });
    }
    // Only the final value is used: no container gets a copy of its subtree in its event.
    let mut parser = StreamingJsonParser::with_options(ParserOptions {
        container_values: ContainerValues::None,
        ..ParserOptions::default()
    });
    let parsed = parser.feed(text).and_then(|_| parser.finish());
    match parsed {
        Ok(done) => {
            let mut diagnostics = Vec::new();
            if !done.repairs.is_empty() {
                let kinds: Vec<&str> = done.repairs.iter().map(|r| r.kind.code()).collect();
                diagnostics.push(
                    Diagnostic::new(
                        OUTPUT_REPAIRED,
                        Severity::Warning,
                        format!("the answer's JSON was repaired: {}", kinds.join(", ")),
                    )
                    .with_detail(json!({
                        "repairs": done.repairs.iter().map(|r| json!({"kind": r.kind.code(), "position": r.position})).collect::<Vec<_>>()
                    })),
                );
            }
            Ok(ReadAnswer {
                value: done.value,
                diagnostics,
            })
        }
        Err(e) => match crate::output::extract_json(text) {
            Some(value) => Ok(ReadAnswer {
                value,
                diagnostics: Vec::new(),
            }),
            None => Err(AgentryError::OutputInvalid(format!(
                "the answer contains no usable JSON value: {e}"
            ))),
        },
    }
}

/// What is wrong with a structured answer.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) missing: Vec<String>,
    pub(crate) invalid: Vec<String>,
}

impl Problems {
    pub(crate) fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }

    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing keys: {}", self.missing.join(", ")));
        }
        if !self.invalid.is_empty() {
            parts.push(format!("schema violations: {}", self.invalid.join("; ")));
        }
        parts.join("; ")
    }

    pub(crate) fn into_error(self) -> AgentryError {
        if self.missing.is_empty() {
            AgentryError::OutputInvalid(self.invalid.join("; "))
        } else {
            AgentryError::OutputMissingKeys {
                missing: self.missing,
                detail: self.invalid.join("; "),
            }
        }
    }
}

/// Checks the value against the schema and the keys that must be present.
pub(crate) fn check_answer(
    value: &Value,
    schema: &Value,
    ensure: &[(String, PathPattern)],
) -> Problems {
    let mut problems = Problems::default();
    for (shown, pattern) in ensure {
        problems
            .missing
            .extend(missing_paths(value, pattern, shown));
    }
    if let Ok(validator) = jsonschema::validator_for(schema) {
        for e in validator.iter_errors(value).take(10) {
            let at = e.instance_path().to_string();
            let msg = e.to_string();
            problems.invalid.push(if at.is_empty() {
                msg
            } else {
                format!("{at}: {msg}")
            });
        }
    }
    problems
}

/// Concrete paths matching `pattern` whose value is absent or null. `[*]` requires
/// the key in every element; an empty array satisfies it.
fn missing_paths(value: &Value, pattern: &PathPattern, shown: &str) -> Vec<String> {
    fn walk(node: Option<&Value>, segs: &[PatternSegment], here: String, out: &mut Vec<String>) {
        let Some((first, rest)) = segs.split_first() else {
            if node.is_none_or(Value::is_null) {
                out.push(if here.is_empty() { "$".into() } else { here });
            }
            return;
        };
        let Some(node) = node.filter(|n| !n.is_null()) else {
            out.push(if here.is_empty() { "$".into() } else { here });
            return;
        };
        match first {
            PatternSegment::Key(k) => {
                let next = if here.is_empty() {
                    k.clone()
                } else {
                    format!("{here}.{k}")
                };
                walk(node.get(k), rest, next, out);
            }
            PatternSegment::Index(i) => walk(node.get(*i), rest, format!("{here}[{i}]"), out),
            PatternSegment::AnyIndex => match node.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        walk(Some(item), rest, format!("{here}[{i}]"), out);
                    }
                }
                None => out.push(here),
            },
            PatternSegment::AnyKey => match node.as_object() {
                Some(map) => {
                    for (k, v) in map {
                        let next = if here.is_empty() {
                            k.clone()
                        } else {
                            format!("{here}.{k}")
                        };
                        walk(Some(v), rest, next, out);
                    }
                }
                None => out.push(here),
            },
        }
    }
    let mut out = Vec::new();
    walk(Some(value), pattern.segments(), String::new(), &mut out);
    if out.len() > 20 {
        let n = out.len();
        out.truncate(20);
        out.push(format!("… {} more under {shown}", n - 20));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}}
            },
            "required": ["title", "steps"],
            "$defs": {"step": {"type": "object", "properties": {"detail": {"type": "string"}}}}
        })
    }

    #[test]
    fn paths_are_checked_against_the_contract() {
        let s = schema();
        for ok in [
            "title",
            "steps",
            "steps[2]",
            "steps[*].detail",
            "meta.anything",
            "meta.*",
        ] {
            assert!(check_path(&s, ok).is_ok(), "{ok}");
        }
        for bad in [
            "nope",
            "title.x",
            "steps[0].missing",
            "steps[*].detail.deeper",
        ] {
            let err = check_path(&s, bad).unwrap_err();
            assert!(
                matches!(err, AgentryError::UnknownKeyPath { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn missing_keys_under_wildcards() {
        let v = json!({"title": "t", "steps": [{"detail": "a"}, {}, {"detail": null}]});
        let p: PathPattern = "steps[*].detail".parse().unwrap();
        assert_eq!(
            missing_paths(&v, &p, "steps[*].detail"),
            vec!["steps[1].detail", "steps[2].detail"]
        );
        let p: PathPattern = "author.name".parse().unwrap();
        assert_eq!(missing_paths(&v, &p, "author.name"), vec!["author"]);
    }

    #[test]
    fn read_answer_repairs_and_reports() {
        let r = read_answer("Here you go: {'title': 'x', 'steps': [1, 2,],").unwrap();
        assert_eq!(r.value, json!({"title": "x", "steps": [1, 2]}));
        assert_eq!(r.diagnostics[0].code, OUTPUT_REPAIRED);
        let kinds = r.diagnostics[0].detail["repairs"].as_array().unwrap().len();
        assert!(kinds >= 2);
        assert!(read_answer("no json at all").is_err());
        // A top-level string whose text looks like JSON stays a string.
        assert_eq!(read_answer("\"{}\"").unwrap().value, json!("{}"));
        assert_eq!(read_answer(" 42 ").unwrap().value, json!(42));
        // Nested and repaired: the final value is complete although no container event
        // carries a value.
        let r = read_answer("```json\n{\"a\": [{\"b\": [1, {\"c\": \"d\"}]}], \"e\": {}").unwrap();
        assert_eq!(r.value, json!({"a": [{"b": [1, {"c": "d"}]}], "e": {}}));
    }

    #[test]
    fn output_stream_gives_every_container_its_value() {
        let mut stream = OutputStream::new();
        let mut events = stream.feed("{\"steps\": [{\"t\": \"x\"}], \"n\": ");
        events.extend(stream.feed("1}"));
        events.extend(stream.finish());
        let done: Vec<(String, Value)> = events
            .into_iter()
            .filter_map(|event| match event {
                JsonEvent::Done { path, value } => Some((path.to_string(), value)),
                JsonEvent::Delta { .. } => None,
                JsonEvent::ContainerDone { path } => panic!("no value for `{path}`"),
            })
            .collect();
        assert_eq!(
            done,
            [
                ("steps[0].t".to_owned(), json!("x")),
                ("steps[0]".to_owned(), json!({"t": "x"})),
                ("steps".to_owned(), json!([{"t": "x"}])),
                ("n".to_owned(), json!(1)),
                (String::new(), json!({"steps": [{"t": "x"}], "n": 1})),
            ]
        );
    }

    #[test]
    fn key_store_replaces_values_in_place_and_keeps_completion_order() {
        let store = KeyStore::new();
        let path = |text: &str| text.parse::<JsonPath>().unwrap();
        for i in 0..1000 {
            store.record(path(&format!("items[{i}]")), json!(i));
        }
        store.record(path("title"), json!("first"));
        store.record(path("items[500]"), json!("again"));
        store.record(path("title"), json!("second"));
        store.with(|s| {
            assert_eq!(s.values.len(), 1001);
            assert_eq!(s.values[500], (path("items[500]"), json!("again")));
            assert_eq!(s.values[999], (path("items[999]"), json!(999)));
            assert_eq!(s.values[1000], (path("title"), json!("second")));
        });
    }
}
