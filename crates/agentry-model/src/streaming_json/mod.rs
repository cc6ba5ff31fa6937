//! Streaming JSON parser with per-path events.
//!
//! Models stream structured answers token by token. [`StreamingJsonParser`] consumes the text in
//! chunks of any size and reports, for every value of the document, how it grows
//! ([`JsonEvent::Delta`], strings only) and when it is complete ([`JsonEvent::Done`], or
//! [`JsonEvent::ContainerDone`] for an object or array whose value was not asked for),
//! addressed by a [`JsonPath`] such as `steps[2].detail`.
//!
//! # Event contract
//!
//! - `Delta { path, delta }` carries decoded string text (escapes resolved) in the order it
//!   arrives. Only string *values* produce deltas; object keys produce no events at all.
//! - `Done { path, value }` is emitted once per value when it is complete: a string at its
//!   closing quote, `true`/`false`/`null` at their last letter, a number when the byte after
//!   it arrives (or at [`StreamingJsonParser::finish`]), an object/array at its closing bracket
//!   with the whole sub-value. The root value has the empty path. (If an object repeats a key,
//!   each occurrence gets its own events and the last one wins in the final value.)
//! - Which objects/arrays carry their sub-value is chosen with [`ContainerValues`]
//!   ([`ParserOptions::container_values`], default [`ContainerValues::All`]). A container whose
//!   value was not asked for gets [`JsonEvent::ContainerDone`] `{ path }` instead of `Done`, at
//!   the same point of the sequence. Scalars always get `Done` with their value, and
//!   [`StreamingJsonParser::finish`] always returns the complete root value.
//! - **Split invariance**: the events produced for a text do not depend on how it is cut into
//!   chunks (with [`StreamingJsonParser::feed_bytes`], cuts may fall inside UTF-8 sequences),
//!   except that consecutive deltas for one path may be cut differently. Two event
//!   sequences are equivalent when they are equal after [`merge_deltas`], which joins
//!   consecutive `Delta` events of the same path. This holds for every [`ContainerValues`]
//!   setting, and the settings differ only in which container completions are `Done` and
//!   which are `ContainerDone`. Whether the stream fails, and with which
//!   error code, does not depend on chunking either, except when a limit is exceeded and the
//!   input has another defect: then which of the two is reported first may differ.
//!
//! # Tolerated input
//!
//! Prose and a Markdown fence before the first `{` or `[` and anything after the root value
//! ends are skipped (no events, no repairs). A bracket is taken as prose too when what
//! follows shows it is not JSON before any event was emitted: `see [below]`, `{@name}`,
//! `[free text]` (a word that is not `true`/`false`/`null`), `{some words}` (an unquoted key
//! without `:`). A top-level scalar is not looked for. While streaming, single-quoted strings, trailing commas, unquoted simple
//! keys (`[A-Za-z_$][A-Za-z0-9_$-]*`), a missing comma between values, unknown escapes and
//! lone UTF-16 surrogates (replaced by U+FFFD) are accepted, and raw control characters in
//! strings are kept as they are. [`StreamingJsonParser::finish`] also closes a truncated
//! document. Every tolerance except raw control characters is recorded as a [`Repair`].
//!
//! # Limits
//!
//! [`ParserLimits`] bounds nesting depth, the length of one string and the total input; the
//! parser uses an explicit stack (no recursion over the input). With
//! [`ContainerValues::None`] its work is linear in the input size (building the path of an
//! event takes one allocation plus a reference-count increment per segment). A container
//! `Done` value is a copy of its subtree, so with [`ContainerValues::All`] each value is copied
//! once per enclosing container (work grows with input size × nesting depth); with
//! [`ContainerValues::Matching`] only the matching subtrees are copied.
#![deny(missing_docs)]

mod error;
mod parser;
mod path;

#[cfg(test)]
mod tests;

pub use error::StreamingJsonError;
pub use parser::StreamingJsonParser;
pub use path::{JsonPath, PathPattern, PathSegment, PatternSegment};

/// Highest accepted [`ParserLimits::max_depth`]; larger values are clamped to it, because
/// `serde_json::Value` clones and drops recursively and a deeper document could overflow the
/// stack outside the parser.
pub const MAX_SUPPORTED_DEPTH: usize = 512;

/// Bounds on what one parser accepts; exceeding one is a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Deepest nesting of objects and arrays; the root container is depth 1. Default 128,
    /// at most [`MAX_SUPPORTED_DEPTH`].
    pub max_depth: usize,
    /// Longest single string value, key or number, in decoded bytes. Default 16 MiB.
    pub max_string_bytes: usize,
    /// Most bytes fed in total until the root value is complete, leading prose included
    /// (text after the root value is ignored). Default 64 MiB.
    pub max_total_bytes: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_depth: 128,
            max_string_bytes: 16 * 1024 * 1024,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Which completed objects and arrays get their value in a [`JsonEvent::Done`].
///
/// The value of a container is a copy of its whole subtree, so asking for every container
/// ([`All`](Self::All)) copies each value once per enclosing container. A consumer that only
/// needs the leaves, a few subtrees or the final value can ask for less; containers without a
/// value get [`JsonEvent::ContainerDone`]. The final value of
/// [`finish`](StreamingJsonParser::finish) is complete under every setting.
///
/// ```
/// use agentry_model::streaming_json::{
///     ContainerValues, JsonEvent, ParserOptions, PathPattern, StreamingJsonParser,
/// };
/// use serde_json::json;
///
/// let items: PathPattern = "items[*]".parse()?;
/// let mut parser = StreamingJsonParser::with_options(ParserOptions {
///     container_values: ContainerValues::Matching(vec![items]),
///     ..ParserOptions::default()
/// });
/// let mut events = parser.feed(r#"{"items": [{"n": 1}, {"n": 2}], "tags": ["x"]}"#)?;
/// let finished = parser.finish()?;
/// events.extend(finished.events);
///
/// let shown: Vec<String> = events
///     .iter()
///     .map(|event| match event {
///         JsonEvent::Delta { path, delta } => format!("delta {path} {delta}"),
///         JsonEvent::Done { path, value } => format!("done {path} {value}"),
///         JsonEvent::ContainerDone { path } => format!("closed {path}"),
///     })
///     .collect();
/// assert_eq!(shown, [
///     "done items[0].n 1",
///     r#"done items[0] {"n":1}"#,
///     "done items[1].n 2",
///     r#"done items[1] {"n":2}"#,
///     "closed items",
///     "delta tags[0] x",
///     r#"done tags[0] "x""#,
///     "closed tags",
///     "closed ",
/// ]);
/// // The final value does not depend on the setting.
/// assert_eq!(finished.value, json!({"items": [{"n": 1}, {"n": 2}], "tags": ["x"]}));
/// # Ok::<(), agentry_model::streaming_json::StreamingJsonError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ContainerValues {
    /// Every object and array, the root included, gets `Done` with its value.
    #[default]
    All,
    /// No object or array gets its value: all of them get `ContainerDone`. The cheapest
    /// setting, for consumers of the leaves or of the final value only.
    None,
    /// Objects and arrays whose path matches one of the patterns get `Done` with their value;
    /// the others get `ContainerDone`. Patterns match paths of their own length only, so
    /// `""` selects the root and `items[*]` the elements of `items`, not `items` itself.
    Matching(Vec<PathPattern>),
}

impl ContainerValues {
    /// Whether the container at `path` gets its value.
    pub fn wants(&self, path: &JsonPath) -> bool {
        match self {
            ContainerValues::All => true,
            ContainerValues::None => false,
            ContainerValues::Matching(patterns) => {
                patterns.iter().any(|pattern| pattern.matches(path))
            }
        }
    }
}

/// How a [`StreamingJsonParser`] is set up; see
/// [`StreamingJsonParser::with_options`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParserOptions {
    /// Bounds on the input.
    pub limits: ParserLimits,
    /// Which completed objects and arrays carry their value in their event.
    pub container_values: ContainerValues,
}

/// Something that happened to one value of the streamed document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonEvent {
    /// A string value grew by `delta` (decoded text).
    Delta {
        /// Where the string is.
        path: JsonPath,
        /// The new text, never empty.
        delta: String,
    },
    /// The value at `path` is complete.
    Done {
        /// Where the value is.
        path: JsonPath,
        /// The complete value (the whole subtree for objects and arrays).
        value: serde_json::Value,
    },
    /// The object or array at `path` is complete, and [`ContainerValues`] did not ask for its
    /// value (copying a subtree for every enclosing container is what makes streaming
    /// expensive, and many consumers only need the leaves or the final value).
    ContainerDone {
        /// Where the object or array is.
        path: JsonPath,
    },
}

impl JsonEvent {
    /// The path the event is about.
    pub fn path(&self) -> &JsonPath {
        match self {
            JsonEvent::Delta { path, .. }
            | JsonEvent::Done { path, .. }
            | JsonEvent::ContainerDone { path } => path,
        }
    }
}

/// Joins consecutive [`JsonEvent::Delta`] events of the same path into one.
///
/// Event sequences of the same text fed in different chunks are equal after this.
pub fn merge_deltas(events: impl IntoIterator<Item = JsonEvent>) -> Vec<JsonEvent> {
    let mut out: Vec<JsonEvent> = Vec::new();
    for event in events {
        if let JsonEvent::Delta { path, delta } = &event
            && let Some(JsonEvent::Delta {
                path: last_path,
                delta: last_delta,
            }) = out.last_mut()
            && last_path == path
        {
            last_delta.push_str(delta);
            continue;
        }
        out.push(event);
    }
    out
}

/// Result of [`StreamingJsonParser::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedJson {
    /// The complete (possibly repaired) root value.
    pub value: serde_json::Value,
    /// Events produced by finishing (a pending number, values closed by repairs, the root).
    pub events: Vec<JsonEvent>,
    /// Every repair applied over the whole stream, in input order.
    pub repairs: Vec<Repair>,
}

/// A defect of the input the parser fixed instead of failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repair {
    /// What was fixed.
    pub kind: RepairKind,
    /// Byte offset into everything fed (prose included) where it was fixed; for repairs done
    /// by `finish` on truncated input this is the input length.
    pub position: usize,
}

/// The kinds of [`Repair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RepairKind {
    /// A string delimited by `'` instead of `"`.
    SingleQuotedString,
    /// A `,` directly before `}` or `]` (or before the end of a truncated document).
    TrailingComma,
    /// An object key without quotes.
    UnquotedKey,
    /// Two values (or a value and the next key) without a `,` between them.
    MissingComma,
    /// A backslash escape JSON does not define (`\x`); the character was kept.
    InvalidEscape,
    /// A UTF-16 surrogate `\uD8xx` without its pair; replaced by U+FFFD.
    LoneSurrogate,
    /// The input ended inside a string; it was closed (an unfinished escape is dropped).
    UnterminatedString,
    /// The input ended inside a number like `1.` or `2e`; the incomplete tail was dropped.
    TruncatedNumber,
    /// The input ended inside `true`, `false` or `null`; the literal was completed.
    CompletedLiteral,
    /// The input ended inside or right after an object key; the key was dropped.
    DroppedKey,
    /// The input ended inside a value that cannot be completed (a lone `-`); it was dropped.
    DroppedValue,
    /// The input ended with this object or array still open; it was closed.
    ClosedContainer,
}

impl RepairKind {
    /// Stable machine-readable name, e.g. `trailing_comma`.
    pub fn code(&self) -> &'static str {
        match self {
            RepairKind::SingleQuotedString => "single_quoted_string",
            RepairKind::TrailingComma => "trailing_comma",
            RepairKind::UnquotedKey => "unquoted_key",
            RepairKind::MissingComma => "missing_comma",
            RepairKind::InvalidEscape => "invalid_escape",
            RepairKind::LoneSurrogate => "lone_surrogate",
            RepairKind::UnterminatedString => "unterminated_string",
            RepairKind::TruncatedNumber => "truncated_number",
            RepairKind::CompletedLiteral => "completed_literal",
            RepairKind::DroppedKey => "dropped_key",
            RepairKind::DroppedValue => "dropped_value",
            RepairKind::ClosedContainer => "closed_container",
        }
    }
}
