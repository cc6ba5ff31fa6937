//! Deterministic sample values for JSON Schemas.
//!
//! The test model answers structured-output requests and calls tools with values
//! produced here, so that every layer above (output parsing, argument validation,
//! the action loop) can run end to end without a model server. The generator aims
//! at values that validate against the schema for the schemas real programs use —
//! hand-written ones and `schemars` output with `$defs` — not at covering every
//! corner of JSON Schema. Nothing here is random: the same schema always gives the
//! same value.
//!
//! ```
//! use agentry_model::schema_sample::sample_for_schema;
//! use serde_json::json;
//! let schema = json!({
//!     "type": "object",
//!     "properties": {
//!         "city": {"type": "string", "minLength": 2},
//!         "days": {"type": "integer", "minimum": 1, "maximum": 7},
//!         "unit": {"enum": ["C", "F"]},
//!         "when": {"type": "string", "format": "date"}
//!     },
//!     "required": ["city", "days"]
//! });
//! let v = sample_for_schema(&schema);
//! assert_eq!(v["days"], 1);
//! assert_eq!(v["unit"], "C");
//! assert_eq!(v["when"], "2024-01-01");
//! ```
use std::borrow::Cow;

use serde_json::{Map, Number, Value, json};

/// Below this nesting depth every property is generated; deeper, only required
/// properties and the fewest array items, so recursive schemas terminate.
const FULL_DEPTH: usize = 8;
/// Beyond this depth generation stops with `null`.
const MAX_DEPTH: usize = 32;
/// Most `$ref` / `allOf` / `anyOf` rewrites applied to one schema node.
const MAX_REWRITES: usize = 32;

/// Property names where a free-text hint reads naturally.
const HINT_NAMES: &[&str] = &[
    "answer",
    "text",
    "summary",
    "content",
    "message",
    "reply",
    "response",
    "result",
    "query",
    "question",
    "input",
    "prompt",
    "topic",
    "subject",
    "title",
    "description",
    "q",
    "search",
    "keyword",
    "keywords",
    "term",
    "request",
    "task",
    "goal",
    "note",
    "comment",
];

/// A value that validates against `schema` for common schemas.
///
/// Handles `type` (also arrays of types and nullable types), `properties` /
/// `required` (all properties are generated), `additionalProperties`,
/// `min/maxProperties`, `items` / `prefixItems` / `contains`, `min/maxItems`,
/// `uniqueItems`, `enum`, `const`, `examples`, `default`, numeric bounds and
/// `multipleOf`, `min/maxLength`, simple `pattern`s, common `format`s, `anyOf` /
/// `oneOf` (first usable branch), `allOf` (merged), and local `$ref`s
/// (`#/$defs/..`, `#/definitions/..`, any `#/` pointer) with a recursion cap.
pub fn sample_for_schema(schema: &Value) -> Value {
    Sampler::new(schema, None, false).sample(schema, 0, 0, None)
}

/// Like [`sample_for_schema`], but puts `hint` (for instance the user's request)
/// into one string field: a field with a natural name (`answer`, `text`,
/// `query` …) when there is one, else the first free-form string. Fields with a
/// `pattern`, `format`, `enum` or `const` are never used; `maxLength` is respected.
///
/// ```
/// use agentry_model::schema_sample::sample_for_schema_with_hint;
/// use serde_json::json;
/// let schema = json!({"type": "object", "properties": {"id": {"type": "string"}, "summary": {"type": "string"}}});
/// let v = sample_for_schema_with_hint(&schema, "weather in Paris");
/// assert_eq!(v["summary"], "weather in Paris");
/// ```
pub fn sample_for_schema_with_hint(schema: &Value, hint: &str) -> Value {
    let mut preferred = Sampler::new(schema, Some(hint), false);
    let value = preferred.sample(schema, 0, 0, None);
    if preferred.hint_used {
        return value;
    }
    Sampler::new(schema, Some(hint), true).sample(schema, 0, 0, None)
}

struct Sampler<'a> {
    root: &'a Value,
    hint: Option<&'a str>,
    /// Use the hint in any free-form string, not only naturally named ones.
    hint_anywhere: bool,
    hint_used: bool,
    /// `$ref`s being expanded by the enclosing nodes, to notice recursion.
    stack: Vec<String>,
    /// How many enclosing nodes re-entered a `$ref` already being expanded; inside
    /// such a node only what is required is generated.
    cycles: usize,
}

impl<'a> Sampler<'a> {
    fn new(root: &'a Value, hint: Option<&'a str>, hint_anywhere: bool) -> Self {
        Self {
            root,
            hint: hint.map(str::trim).filter(|h| !h.is_empty()),
            hint_anywhere,
            hint_used: false,
            stack: Vec::new(),
            cycles: 0,
        }
    }

    fn sample(
        &mut self,
        schema: &Value,
        depth: usize,
        variant: usize,
        name: Option<&str>,
    ) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let Some(map) = schema.as_object() else {
            // `true` accepts anything; `false` nothing — null is as good as any.
            return Value::Null;
        };
        let mut minimal = depth > FULL_DEPTH || self.cycles > 0;
        let mut resolved = Vec::new();
        let schema = self.effective(map, minimal, &mut resolved);
        let repeated = resolved.iter().any(|r| self.stack.contains(r));
        minimal |= repeated;
        let outer = self.stack.len();
        self.stack.extend(resolved);
        self.cycles += usize::from(repeated);
        let value = self.generate(&schema, depth, variant, name, minimal);
        self.cycles -= usize::from(repeated);
        self.stack.truncate(outer);
        value
    }

    /// The value for a schema already rewritten by [`Self::effective`].
    fn generate(
        &mut self,
        s: &Map<String, Value>,
        depth: usize,
        variant: usize,
        name: Option<&str>,
        minimal: bool,
    ) -> Value {
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.is_empty()
        {
            let allowed: Vec<&Value> = options.iter().filter(|v| quick_check(v, s)).collect();
            let pool: Vec<&Value> = if allowed.is_empty() {
                options.iter().collect()
            } else {
                allowed
            };
            if let Some(v) = pool.get(variant % pool.len()) {
                return (*v).clone();
            }
        }
        if variant == 0 {
            if let Some(Value::Array(examples)) = s.get("examples")
                && let Some(e) = examples.iter().find(|e| quick_check(e, s))
            {
                return e.clone();
            }
            if let Some(d) = s.get("default")
                && quick_check(d, s)
            {
                return d.clone();
            }
        }
        match pick_type(s) {
            Some("object") => self.object(s, depth, minimal),
            Some("array") => self.array(s, depth, minimal),
            Some("string") => self.string(s, variant, name),
            Some("integer") => number(s, true, variant),
            Some("number") => number(s, false, variant),
            Some("boolean") => Value::Bool(variant.is_multiple_of(2)),
            _ => Value::Null,
        }
    }

    /// Rewrites `$ref`, `allOf`, `anyOf` and `oneOf` away by merging, so the rest
    /// of the sampler sees one plain schema.
    fn effective<'s>(
        &self,
        schema: &'s Map<String, Value>,
        minimal: bool,
        resolved: &mut Vec<String>,
    ) -> Cow<'s, Map<String, Value>> {
        let mut cur: Cow<'s, Map<String, Value>> = Cow::Borrowed(schema);
        for _ in 0..MAX_REWRITES {
            if let Some(reference) = cur.get("$ref").and_then(Value::as_str) {
                resolved.push(reference.to_owned());
                let mut rest = cur.clone().into_owned();
                rest.remove("$ref");
                let mut merged = match self.lookup(reference) {
                    Some(Value::Object(target)) => target.clone(),
                    _ => Map::new(),
                };
                merge_into(&mut merged, &rest);
                cur = Cow::Owned(merged);
                continue;
            }
            if let Some(Value::Array(parts)) = cur.get("allOf") {
                let parts = parts.clone();
                let mut merged = cur.clone().into_owned();
                merged.remove("allOf");
                for part in &parts {
                    if let Value::Object(p) = part {
                        merge_into(&mut merged, p);
                    }
                }
                cur = Cow::Owned(merged);
                continue;
            }
            let key = if cur.get("anyOf").is_some_and(Value::is_array) {
                "anyOf"
            } else if cur.get("oneOf").is_some_and(Value::is_array) {
                "oneOf"
            } else {
                break;
            };
            let branches = match cur.get(key) {
                Some(Value::Array(b)) => b.clone(),
                _ => break,
            };
            let mut merged = cur.clone().into_owned();
            merged.remove(key);
            if let Some(Value::Object(branch)) = choose_branch(&branches, minimal, &self.stack) {
                merge_into(&mut merged, branch);
            }
            cur = Cow::Owned(merged);
        }
        cur
    }

    fn lookup(&self, reference: &str) -> Option<&'a Value> {
        if reference == "#" {
            return Some(self.root);
        }
        let pointer = reference.strip_prefix('#')?;
        if !pointer.starts_with('/') {
            return None;
        }
        self.root.pointer(&percent_decode(pointer))
    }

    fn object(&mut self, s: &Map<String, Value>, depth: usize, minimal: bool) -> Value {
        let required: Vec<&str> = match s.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut out = Map::new();
        let mut skipped: Vec<(&String, &Value)> = Vec::new();
        if let Some(Value::Object(props)) = s.get("properties") {
            for (name, sub) in props {
                if minimal && !required.contains(&name.as_str()) {
                    skipped.push((name, sub));
                    continue;
                }
                let v = self.sample(sub, depth + 1, 0, Some(name));
                out.insert(name.clone(), v);
            }
        }
        let extra = match s.get("additionalProperties") {
            Some(Value::Bool(false)) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            _ => Some(Value::Bool(true)),
        };
        for name in &required {
            if !out.contains_key(*name) {
                let sub = pattern_property(s, name)
                    .or_else(|| extra.clone())
                    .unwrap_or(Value::Bool(true));
                let v = self.sample(&sub, depth + 1, 0, Some(name));
                out.insert((*name).to_owned(), v);
            }
        }
        let min = count(s, "minProperties").unwrap_or(0);
        let mut n = 0;
        while out.len() < min && n < min + skipped.len() + 1 {
            if let Some((name, sub)) = skipped.pop() {
                let v = self.sample(sub, depth + 1, 0, Some(name));
                out.insert(name.clone(), v);
            } else if let Some(sub) = &extra {
                let key = format!("key{n}");
                if !out.contains_key(&key) {
                    let v = self.sample(sub, depth + 1, n, Some(&key));
                    out.insert(key, v);
                }
            } else {
                break;
            }
            n += 1;
        }
        if let Some(max) = count(s, "maxProperties") {
            let optional: Vec<String> = out
                .keys()
                .filter(|k| !required.contains(&k.as_str()))
                .cloned()
                .collect();
            for key in optional.into_iter().rev() {
                if out.len() <= max {
                    break;
                }
                out.remove(&key);
            }
        }
        Value::Object(out)
    }

    fn array(&mut self, s: &Map<String, Value>, depth: usize, minimal: bool) -> Value {
        let min = count(s, "minItems").unwrap_or(0);
        let max = count(s, "maxItems");
        let tuple: &[Value] = match (s.get("prefixItems"), s.get("items")) {
            (Some(Value::Array(t)), _) | (None, Some(Value::Array(t))) => t,
            _ => &[],
        };
        // 2020-12 `prefixItems` + `items`, or draft-7 tuple `items` + `additionalItems`.
        let rest: Option<&Value> = if s.contains_key("prefixItems") || tuple.is_empty() {
            s.get("items")
        } else {
            s.get("additionalItems")
        };
        let rest_allowed = !matches!(rest, Some(Value::Bool(false)));
        let mut n = if minimal { min } else { min.max(1) };
        if !tuple.is_empty() && !minimal {
            n = n.max(tuple.len());
        }
        if !rest_allowed {
            n = n.min(tuple.len());
        }
        if let Some(max) = max {
            n = n.min(max);
        }
        let contains = s.get("contains");
        if contains.is_some() && n == 0 && max != Some(0) {
            n = 1;
        }
        let mut items = Vec::with_capacity(n);
        for i in 0..n {
            let sub = match (i, contains) {
                (0, Some(c)) if tuple.is_empty() => c,
                _ => tuple.get(i).or(rest).unwrap_or(&Value::Bool(true)),
            };
            let v = self.sample(sub, depth + 1, i, None);
            items.push(v);
        }
        Value::Array(items)
    }

    fn string(&mut self, s: &Map<String, Value>, variant: usize, name: Option<&str>) -> Value {
        let min = count(s, "minLength").unwrap_or(0);
        let max = count(s, "maxLength");
        if let Some(format) = s.get("format").and_then(Value::as_str)
            && let Some(v) = format_sample(format, variant)
        {
            return Value::String(v);
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && let Some(v) = pattern_sample(pattern)
        {
            return Value::String(v);
        }
        let plain = !s.contains_key("format") && !s.contains_key("pattern");
        if let Some(hint) = self.hint.filter(|_| !self.hint_used && plain) {
            let natural =
                name.is_some_and(|n| HINT_NAMES.contains(&n.to_ascii_lowercase().as_str()));
            if natural || self.hint_anywhere {
                let mut text: String = match max {
                    Some(max) => hint.chars().take(max).collect(),
                    None => hint.to_owned(),
                };
                if text.chars().count() >= min {
                    self.hint_used = true;
                    if variant > 0 {
                        text = format!("{text} {variant}");
                        if let Some(max) = max {
                            text = text.chars().take(max).collect();
                        }
                    }
                    return Value::String(text);
                }
            }
        }
        let mut text = if variant == 0 {
            "example".to_owned()
        } else {
            format!("example-{variant}")
        };
        let len = text.chars().count();
        if len < min {
            text.extend(std::iter::repeat_n('x', min - len));
        }
        if let Some(max) = max
            && text.chars().count() > max
        {
            // Keep the distinguishing suffix for unique items.
            let chars: Vec<char> = text.chars().collect();
            text = chars
                .get(chars.len().saturating_sub(max)..)
                .unwrap_or_default()
                .iter()
                .collect();
        }
        Value::String(text)
    }
}

/// Picks the branch of `anyOf`/`oneOf` to sample: the first, except that a bare
/// `null` branch is passed over when another exists (a value says more than
/// `null`), a branch that re-enters a `$ref` being expanded is avoided (so
/// `Option<Box<Self>>` ends in `null`), and deep inside recursion a non-recursive
/// branch is preferred.
fn choose_branch<'v>(branches: &'v [Value], minimal: bool, stack: &[String]) -> Option<&'v Value> {
    let is_null = |b: &Value| b.get("type").and_then(Value::as_str) == Some("null");
    let is_ref = |b: &Value| b.get("$ref").is_some();
    let recursive = |b: &Value| {
        b.get("$ref")
            .and_then(Value::as_str)
            .is_some_and(|r| stack.iter().any(|s| s == r))
    };
    if minimal {
        branches
            .iter()
            .find(|b| is_null(b))
            .or_else(|| branches.iter().find(|b| !is_ref(b)))
            .or_else(|| branches.first())
    } else {
        branches
            .iter()
            .find(|b| !is_null(b) && !recursive(b))
            .or_else(|| branches.iter().find(|b| is_null(b)))
            .or_else(|| branches.first())
    }
}

/// `allOf` semantics, approximately: the merged schema is at least as strict as
/// both parts for the keywords the sampler reads.
fn merge_into(dst: &mut Map<String, Value>, src: &Map<String, Value>) {
    for (key, value) in src {
        let Some(existing) = dst.get_mut(key) else {
            dst.insert(key.clone(), value.clone());
            continue;
        };
        match key.as_str() {
            "properties" => {
                if let (Value::Object(d), Value::Object(s)) = (existing, value) {
                    for (name, sub) in s {
                        match d.get_mut(name) {
                            Some(old) if old != sub => {
                                *old = json!({"allOf": [old.clone(), sub.clone()]});
                            }
                            Some(_) => {}
                            None => {
                                d.insert(name.clone(), sub.clone());
                            }
                        }
                    }
                }
            }
            "required" => {
                if let (Value::Array(d), Value::Array(s)) = (existing, value) {
                    for r in s {
                        if !d.contains(r) {
                            d.push(r.clone());
                        }
                    }
                }
            }
            "type" => {
                let a = type_set(existing);
                let b = type_set(value);
                let both: Vec<Value> = a
                    .iter()
                    .filter_map(|t| {
                        if b.contains(t) {
                            Some(*t)
                        } else if (*t == "integer" && b.contains(&"number"))
                            || (*t == "number" && b.contains(&"integer"))
                        {
                            Some("integer")
                        } else {
                            None
                        }
                    })
                    .map(|t| Value::String(t.to_owned()))
                    .collect();
                if !both.is_empty() {
                    *existing = Value::Array(both);
                }
            }
            "minimum" | "minLength" | "minItems" | "minProperties" => {
                if let (Some(a), Some(b)) = (existing.as_f64(), value.as_f64())
                    && b > a
                {
                    *existing = value.clone();
                }
            }
            "maximum" | "maxLength" | "maxItems" | "maxProperties" => {
                if let (Some(a), Some(b)) = (existing.as_f64(), value.as_f64())
                    && b < a
                {
                    *existing = value.clone();
                }
            }
            "exclusiveMinimum" => {
                if let (Some(a), Some(b)) = (existing.as_f64(), value.as_f64())
                    && b > a
                {
                    *existing = value.clone();
                }
            }
            "exclusiveMaximum" => {
                if let (Some(a), Some(b)) = (existing.as_f64(), value.as_f64())
                    && b < a
                {
                    *existing = value.clone();
                }
            }
            "enum" => {
                if let (Value::Array(d), Value::Array(s)) = (existing, value) {
                    let kept: Vec<Value> = d.iter().filter(|v| s.contains(v)).cloned().collect();
                    if !kept.is_empty() {
                        *d = kept;
                    }
                }
            }
            "items" | "additionalProperties" if existing != value => match (&*existing, value) {
                (Value::Bool(false), _) => {}
                (_, Value::Bool(false)) => *existing = Value::Bool(false),
                (Value::Bool(true), _) => *existing = value.clone(),
                (_, Value::Bool(true)) => {}
                _ => *existing = json!({"allOf": [existing.clone(), value.clone()]}),
            },
            "allOf" => {
                if let (Value::Array(d), Value::Array(s)) = (existing, value) {
                    d.extend(s.iter().cloned());
                }
            }
            "$ref" | "anyOf" | "oneOf" => {
                // Keep both constraints: the second goes through `allOf`.
                let wrapped = json!({ key.clone(): value.clone() });
                match dst.get_mut("allOf") {
                    Some(Value::Array(all)) => all.push(wrapped),
                    _ => {
                        dst.insert("allOf".into(), Value::Array(vec![wrapped]));
                    }
                }
            }
            _ => {}
        }
    }
}

fn type_set(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The type to generate: the first non-null listed type, else inferred from the
/// keywords present.
fn pick_type(s: &Map<String, Value>) -> Option<&str> {
    if let Some(t) = s.get("type") {
        let types = type_set(t);
        return types
            .iter()
            .find(|t| **t != "null")
            .or_else(|| types.first())
            .copied();
    }
    let has = |keys: &[&str]| keys.iter().any(|k| s.contains_key(*k));
    if has(&[
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
    ]) {
        Some("object")
    } else if has(&["items", "prefixItems", "minItems", "maxItems", "contains"]) {
        Some("array")
    } else if has(&["minLength", "maxLength", "pattern", "format"]) {
        Some("string")
    } else if has(&[
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    ]) {
        Some("number")
    } else {
        None
    }
}

fn count(s: &Map<String, Value>, key: &str) -> Option<usize> {
    let v = s.get(key)?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f.ceil() as u64))
        .map(|n| usize::try_from(n.min(10_000)).unwrap_or(10_000))
}

fn pattern_property(s: &Map<String, Value>, name: &str) -> Option<Value> {
    // Only exact-literal patterns can be checked without a regex engine.
    let Some(Value::Object(pp)) = s.get("patternProperties") else {
        return None;
    };
    pp.iter()
        .find(|(p, _)| p.trim_start_matches('^').trim_end_matches('$') == name)
        .map(|(_, v)| v.clone())
}

/// A cheap check that a schema-provided `default` or example fits.
fn quick_check(v: &Value, s: &Map<String, Value>) -> bool {
    if let Some(t) = s.get("type") {
        let types = type_set(t);
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            _ => true,
        });
        if !ok && !types.is_empty() {
            return false;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        return false;
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        return false;
    }
    match v {
        Value::String(text) => {
            let len = text.chars().count();
            count(s, "minLength").is_none_or(|m| len >= m)
                && count(s, "maxLength").is_none_or(|m| len <= m)
                && !s.contains_key("pattern")
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            s.get("minimum")
                .and_then(Value::as_f64)
                .is_none_or(|m| x >= m)
                && s.get("maximum")
                    .and_then(Value::as_f64)
                    .is_none_or(|m| x <= m)
                && s.get("exclusiveMinimum")
                    .and_then(Value::as_f64)
                    .is_none_or(|m| x > m)
                && s.get("exclusiveMaximum")
                    .and_then(Value::as_f64)
                    .is_none_or(|m| x < m)
                && !s.contains_key("multipleOf")
        }
        Value::Array(items) => {
            count(s, "minItems").is_none_or(|m| items.len() >= m)
                && count(s, "maxItems").is_none_or(|m| items.len() <= m)
                && !s.contains_key("items")
                && !s.contains_key("prefixItems")
        }
        Value::Object(map) => {
            let required_ok = match s.get("required") {
                Some(Value::Array(r)) => r
                    .iter()
                    .filter_map(Value::as_str)
                    .all(|k| map.contains_key(k)),
                _ => true,
            };
            // Property values are not checked here, so only accept objects whose
            // properties carry no schema of their own.
            required_ok && !s.contains_key("properties") && !s.contains_key("additionalProperties")
        }
        _ => true,
    }
}

fn number(s: &Map<String, Value>, integer: bool, variant: usize) -> Value {
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
    // Draft 4 spells exclusive bounds as booleans next to minimum/maximum.
    let lo = match (num("exclusiveMinimum"), num("minimum")) {
        (Some(e), Some(m)) if e >= m => Some((e, true)),
        (_, Some(m)) => Some((m, flag("exclusiveMinimum"))),
        (Some(e), None) => Some((e, true)),
        (None, None) => None,
    };
    let hi = match (num("exclusiveMaximum"), num("maximum")) {
        (Some(e), Some(m)) if e <= m => Some((e, true)),
        (_, Some(m)) => Some((m, flag("exclusiveMaximum"))),
        (Some(e), None) => Some((e, true)),
        (None, None) => None,
    };
    let step = num("multipleOf").filter(|m| *m > 0.0 && m.is_finite());
    let offset = variant as f64;
    let value = if integer {
        let lo_i = lo.map(|(v, ex)| if ex { v.floor() + 1.0 } else { v.ceil() });
        let hi_i = hi.map(|(v, ex)| if ex { v.ceil() - 1.0 } else { v.floor() });
        let mut c = 1.0 + offset;
        if let Some(l) = lo_i {
            c = if c < l { l + offset } else { c };
        }
        if let Some(h) = hi_i
            && c > h
        {
            c = (h - offset).max(lo_i.unwrap_or(f64::MIN)).min(h);
        }
        if let Some(m) = step {
            c = align(c, m, lo_i, hi_i);
        }
        c
    } else {
        let mut c = 1.0 + offset;
        if let Some((l, ex)) = lo
            && (c < l || (ex && c <= l))
        {
            c = match hi {
                Some((h, _)) if ex => l + ((h - l) / 2.0).min(1.0 + offset),
                _ if ex => l + 1.0 + offset,
                _ => l + offset,
            };
        }
        if let Some((h, ex)) = hi
            && (c > h || (ex && c >= h))
        {
            c = match lo {
                Some((l, _)) => l + (h - l) / 2.0,
                None if ex => h - 1.0 - offset,
                None => h - offset,
            };
        }
        if let Some(m) = step {
            c = align(
                c,
                m,
                lo.map(|(l, ex)| if ex { l + f64::EPSILON } else { l }),
                hi.map(|(h, _)| h),
            );
        }
        c
    };
    to_json_number(value, integer)
}

/// The multiple of `m` nearest above `c` that stays within the bounds.
fn align(c: f64, m: f64, lo: Option<f64>, hi: Option<f64>) -> f64 {
    let up = (c / m).ceil() * m;
    if hi.is_none_or(|h| up <= h) {
        return up;
    }
    let down = (c / m).floor() * m;
    if lo.is_none_or(|l| down >= l) {
        down
    } else {
        up
    }
}

fn to_json_number(v: f64, integer: bool) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return Value::Number(Number::from(v as i64));
    }
    if integer {
        return Value::Number(Number::from(v.round() as i64));
    }
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn format_sample(format: &str, variant: usize) -> Option<String> {
    let v = variant;
    Some(match format {
        "date-time" => format!("2024-01-{:02}T00:00:00Z", 1 + v % 28),
        "date" => format!("2024-01-{:02}", 1 + v % 28),
        "time" => format!("12:00:{:02}Z", v % 60),
        "email" | "idn-email" => {
            if v == 0 {
                "user@example.com".into()
            } else {
                format!("user{v}@example.com")
            }
        }
        "uri" | "iri" | "url" | "uri-reference" | "iri-reference" => {
            if v == 0 {
                "https://example.com/".into()
            } else {
                format!("https://example.com/{v}")
            }
        }
        "uri-template" => "https://example.com/{id}".into(),
        "hostname" | "idn-hostname" => {
            if v == 0 {
                "example.com".into()
            } else {
                format!("host{v}.example.com")
            }
        }
        "ipv4" => format!("192.0.2.{}", 1 + v % 254),
        "ipv6" => format!("2001:db8::{:x}", 1 + v % 0xfffe),
        "uuid" => format!("00000000-0000-4000-8000-{:012x}", v),
        "duration" => format!("P{}D", 1 + v),
        "json-pointer" => "/example".into(),
        "relative-json-pointer" => "0".into(),
        "regex" => ".*".into(),
        "byte" => "ZXhhbXBsZQ==".into(),
        _ => return None,
    })
}

/// Decodes `%xx` escapes of a URI fragment pointer.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(n) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(n);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A string matching a simple regular expression: literals, escapes (`\d \w \s`
/// …), classes, groups with alternation (first branch), `.`, anchors and
/// quantifiers (the least count, at least one). `None` for anything it does not
/// understand (look-arounds, back-references, Unicode classes).
pub(crate) fn pattern_sample(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pos = 0;
    let out = parse_alternation(&chars, &mut pos, 0)?;
    (pos == chars.len()).then_some(out)
}

fn parse_alternation(c: &[char], pos: &mut usize, depth: usize) -> Option<String> {
    if depth > 20 {
        return None;
    }
    let first = parse_sequence(c, pos, depth)?;
    while c.get(*pos) == Some(&'|') {
        *pos += 1;
        parse_sequence(c, pos, depth)?;
    }
    Some(first)
}

fn parse_sequence(c: &[char], pos: &mut usize, depth: usize) -> Option<String> {
    let mut out = String::new();
    while let Some(&ch) = c.get(*pos) {
        let atom: String = match ch {
            '|' | ')' => break,
            '^' | '$' => {
                *pos += 1;
                continue;
            }
            '(' => {
                *pos += 1;
                if c.get(*pos) == Some(&'?') {
                    if c.get(*pos + 1) == Some(&':') {
                        *pos += 2;
                    } else {
                        return None;
                    }
                }
                let inner = parse_alternation(c, pos, depth + 1)?;
                if c.get(*pos) != Some(&')') {
                    return None;
                }
                *pos += 1;
                inner
            }
            '[' => parse_class(c, pos)?.to_string(),
            '\\' => {
                let e = *c.get(*pos + 1)?;
                *pos += 2;
                match e {
                    'd' => "0".into(),
                    'w' | 'D' | 'S' => "a".into(),
                    's' => " ".into(),
                    'W' => "-".into(),
                    'b' | 'B' => String::new(),
                    'n' => "\n".into(),
                    't' => "\t".into(),
                    'p' | 'P' | 'k' | 'u' | 'x' | 'c' => return None,
                    d if d.is_ascii_digit() => return None,
                    other => other.to_string(),
                }
            }
            '.' => {
                *pos += 1;
                "a".into()
            }
            '*' | '+' | '?' | '{' => return None,
            other => {
                *pos += 1;
                other.to_string()
            }
        };
        let times = parse_quantifier(c, pos)?;
        for _ in 0..times {
            out.push_str(&atom);
        }
    }
    Some(out)
}

fn parse_quantifier(c: &[char], pos: &mut usize) -> Option<usize> {
    let times = match c.get(*pos) {
        Some('*' | '+' | '?') => {
            *pos += 1;
            1
        }
        Some('{') => {
            let close = c.get(*pos..)?.iter().position(|&x| x == '}')? + *pos;
            let body: String = c.get(*pos + 1..close)?.iter().collect();
            let min_text = body.split(',').next()?.trim();
            let max_text = body.split(',').nth(1).map(str::trim);
            let min: usize = min_text.parse().ok()?;
            let max: Option<usize> = match max_text {
                Some("") | None => None,
                Some(m) => Some(m.parse().ok()?),
            };
            *pos = close + 1;
            let want = min.max(1);
            match max {
                Some(m) if body.contains(',') => want.min(m),
                _ if !body.contains(',') => min,
                _ => want,
            }
        }
        _ => return Some(1),
    };
    if matches!(c.get(*pos), Some('?' | '+')) {
        *pos += 1; // lazy or possessive
    }
    Some(times.min(1000))
}

fn parse_class(c: &[char], pos: &mut usize) -> Option<char> {
    *pos += 1; // '['
    let negated = c.get(*pos) == Some(&'^');
    if negated {
        *pos += 1;
    }
    let mut members: Vec<(char, char)> = Vec::new();
    let mut first = true;
    loop {
        let ch = *c.get(*pos)?;
        if ch == ']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            let e = *c.get(*pos + 1)?;
            *pos += 2;
            match e {
                'd' => {
                    members.push(('0', '9'));
                    continue;
                }
                'w' => {
                    members.extend([('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]);
                    continue;
                }
                's' => {
                    members.push((' ', ' '));
                    continue;
                }
                'p' | 'P' | 'D' | 'W' | 'S' => return None,
                'n' => '\n',
                't' => '\t',
                other => other,
            }
        } else {
            *pos += 1;
            ch
        };
        if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|n| *n != ']') {
            let hi = *c.get(*pos + 1)?;
            if hi == '\\' {
                return None;
            }
            *pos += 2;
            members.push((lo, hi));
        } else {
            members.push((lo, lo));
        }
    }
    let inside = |x: char| members.iter().any(|(a, b)| *a <= x && x <= *b);
    if negated {
        ['a', 'x', '0', 'A', '_', '-', ' ', '~']
            .into_iter()
            .find(|x| !inside(*x))
    } else {
        let preferred = ['a', 'x', '0', '1', 'A'];
        preferred
            .into_iter()
            .find(|x| inside(*x))
            .or_else(|| members.first().map(|(a, _)| *a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validates(schema: &Value, value: &Value) -> Result<(), String> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| format!("bad schema: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{value} does not validate against {schema}: {errors:?}"
            ))
        }
    }

    fn check(schema: Value) -> Value {
        let v = sample_for_schema(&schema);
        if let Err(e) = validates(&schema, &v) {
            panic!("{e}");
        }
        let h = sample_for_schema_with_hint(&schema, "find flights to Oslo");
        if let Err(e) = validates(&schema, &h) {
            panic!("with hint: {e}");
        }
        assert_eq!(v, sample_for_schema(&schema), "deterministic");
        v
    }

    #[test]
    fn scalars() {
        assert_eq!(check(json!({"type": "string"})), "example");
        assert_eq!(check(json!({"type": "integer"})), 1);
        assert_eq!(check(json!({"type": "boolean"})), true);
        assert_eq!(check(json!({"type": "null"})), Value::Null);
        assert_eq!(check(json!({"type": ["null", "string"]})), "example");
        assert_eq!(check(json!({"const": 42})), 42);
        assert_eq!(check(json!({"enum": ["b", "a"]})), "b");
        assert_eq!(check(json!({"type": "string", "default": "dflt"})), "dflt");
        assert_eq!(check(json!({"type": "string", "examples": ["ex"]})), "ex");
        // An invalid default is not used.
        assert_eq!(
            check(json!({"type": "integer", "minimum": 5, "default": 1})),
            5
        );
        check(json!({}));
        check(json!(true));
    }

    #[test]
    fn numbers() {
        for schema in [
            json!({"type": "integer", "minimum": 10}),
            json!({"type": "integer", "maximum": -3}),
            json!({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 3}),
            json!({"type": "integer", "minimum": 7, "multipleOf": 5}),
            json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5}),
            json!({"type": "number", "minimum": 0.25, "maximum": 0.75, "multipleOf": 0.25}),
            json!({"type": "number", "maximum": -10.5}),
            json!({"type": "number", "exclusiveMaximum": 1}),
            json!({"type": "integer", "minimum": 0, "maximum": 0}),
            json!({"minimum": 3}),
        ] {
            check(schema);
        }
    }

    #[test]
    fn strings() {
        for schema in [
            json!({"type": "string", "minLength": 20}),
            json!({"type": "string", "maxLength": 3}),
            json!({"type": "string", "minLength": 2, "maxLength": 2}),
            json!({"type": "string", "format": "date-time"}),
            json!({"type": "string", "format": "date"}),
            json!({"type": "string", "format": "time"}),
            json!({"type": "string", "format": "email"}),
            json!({"type": "string", "format": "uri"}),
            json!({"type": "string", "format": "uuid"}),
            json!({"type": "string", "format": "ipv4"}),
            json!({"type": "string", "format": "ipv6"}),
            json!({"type": "string", "format": "hostname"}),
            json!({"type": "string", "format": "duration"}),
            json!({"type": "string", "format": "something-custom"}),
            json!({"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"}),
            json!({"type": "string", "pattern": "^(foo|bar)+_[a-z0-9]*$"}),
            json!({"type": "string", "pattern": "^\\w+@\\w+\\.com$"}),
            json!({"type": "string", "pattern": "^[^\\s]{2,5}$"}),
            json!({"type": "string", "pattern": "^(?:v)?\\d+\\.\\d+\\.\\d+$"}),
            json!({"type": "string", "pattern": "ab?c{2}d{1,3}e{2,}"}),
            json!({"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}),
        ] {
            check(schema);
        }
        // Patterns it cannot read still give a string.
        assert!(sample_for_schema(&json!({"type": "string", "pattern": "^(?=x)"})).is_string());
    }

    #[test]
    fn objects_and_arrays() {
        let v = check(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": true},
                "scores": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 0},
                "nested": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false},
                "maybe": {"type": ["integer", "null"]},
                "map": {"type": "object", "additionalProperties": {"type": "number"}, "minProperties": 2}
            },
            "required": ["name", "tags", "extra"],
            "additionalProperties": {"type": "string"}
        }));
        assert_eq!(v["tags"].as_array().unwrap().len(), 2);
        assert!(v["extra"].is_string());
        check(
            json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": false}),
        );
        check(
            json!({"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": true}),
        );
        check(
            json!({"type": "array", "contains": {"const": "needle"}, "items": {"type": "string"}}),
        );
        check(json!({"type": "object", "minProperties": 1, "maxProperties": 1}));
        check(
            json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "maxProperties": 1}),
        );
    }

    #[test]
    fn combinators_and_refs() {
        check(json!({"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3}]}));
        check(json!({"oneOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]}));
        check(json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"a": {"minimum": 10}, "b": {"type": "string"}}, "required": ["b"]}
        ]}));
        check(json!({
            "type": "object",
            "properties": {"p": {"$ref": "#/definitions/P"}, "q": {"$ref": "#/definitions/P", "description": "x"}},
            "definitions": {"P": {"type": "string", "format": "email"}}
        }));
        // Recursive tree: children are optional, so deep levels stop.
        let tree = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }, "required": ["value"]}}
        });
        check(tree);
        // A required recursive link through a nullable branch.
        check(json!({
            "$defs": {"List": {"type": "object", "properties": {
                "head": {"type": "string"},
                "tail": {"anyOf": [{"$ref": "#/$defs/List"}, {"type": "null"}]}
            }, "required": ["head", "tail"]}},
            "$ref": "#/$defs/List"
        }));
        // A self reference with no way out still terminates.
        let _ = sample_for_schema(&json!({"$ref": "#"}));
        let _ =
            sample_for_schema(&json!({"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}));
    }

    /// Shapes `schemars` 1.x emits for typical derive(JsonSchema) types.
    #[test]
    fn schemars_style_output() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "TripPlan",
            "type": "object",
            "properties": {
                "destination": {"type": "string"},
                "days": {"type": "integer", "format": "uint32", "minimum": 0},
                "budget": {"type": ["number", "null"], "format": "double"},
                "traveler": {"$ref": "#/$defs/Traveler"},
                "legs": {"type": "array", "items": {"$ref": "#/$defs/Leg"}},
                "mode": {"$ref": "#/$defs/Mode"},
                "extra": {"anyOf": [{"$ref": "#/$defs/Traveler"}, {"type": "null"}]},
                "status": {"oneOf": [
                    {"type": "string", "const": "draft"},
                    {"type": "object", "properties": {"booked": {"type": "object", "properties": {"ref": {"type": "string"}}, "required": ["ref"]}}, "required": ["booked"], "additionalProperties": false}
                ]}
            },
            "required": ["destination", "days", "traveler", "legs", "mode", "status"],
            "$defs": {
                "Traveler": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "email": {"type": "string", "format": "email"},
                    "age": {"type": ["integer", "null"], "format": "uint8", "minimum": 0, "maximum": 255}
                }, "required": ["name", "email"]},
                "Leg": {"type": "object", "properties": {
                    "from": {"type": "string"}, "to": {"type": "string"},
                    "depart": {"type": "string", "format": "date-time"}
                }, "required": ["from", "to", "depart"]},
                "Mode": {"type": "string", "enum": ["train", "plane", "car"]}
            }
        });
        let v = check(schema.clone());
        assert_eq!(v["mode"], "train");
        assert_eq!(v["traveler"]["email"], "user@example.com");
        let hinted = sample_for_schema_with_hint(&schema, "Oslo in May");
        validates(&schema, &hinted).unwrap();
        // `destination` is not a "natural" name, so the first free string gets it.
        assert_eq!(hinted["destination"], "Oslo in May");

        // Unit-variant enums as oneOf of consts, and an internally tagged enum.
        check(
            json!({"oneOf": [{"type": "string", "const": "A"}, {"type": "string", "const": "B"}]}),
        );
        check(json!({
            "oneOf": [
                {"type": "object", "properties": {"kind": {"type": "string", "const": "circle"}, "r": {"type": "number"}}, "required": ["kind", "r"]},
                {"type": "object", "properties": {"kind": {"type": "string", "const": "square"}, "side": {"type": "number"}}, "required": ["kind", "side"]}
            ]
        }));
        // Draft-07 style from older schemars.
        check(json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"inner": {"$ref": "#/definitions/Inner"}, "n": {"type": "integer", "minimum": 1.0, "exclusiveMaximum": 5.0}},
            "required": ["inner"],
            "definitions": {"Inner": {"type": "object", "properties": {"flag": {"type": "boolean"}}, "required": ["flag"]}}
        }));
    }

    #[test]
    fn hint_prefers_natural_names_and_respects_limits() {
        let schema = json!({"type": "object", "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]+$"},
            "title": {"type": "string", "maxLength": 5},
            "answer": {"type": "string"}
        }, "required": ["code", "title", "answer"]});
        let v = sample_for_schema_with_hint(&schema, "hello world");
        assert_eq!(v["title"], "hello");
        assert_eq!(v["answer"], "example");
        validates(&schema, &v).unwrap();
    }
}
