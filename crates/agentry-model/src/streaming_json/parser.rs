//! The incremental state machine behind [`StreamingJsonParser`].

use std::sync::Arc;

use serde_json::{Map, Number, Value};

use super::{
    ContainerValues, FinishedJson, JsonEvent, JsonPath, MAX_SUPPORTED_DEPTH, ParserLimits,
    ParserOptions, PathSegment, Repair, RepairKind, StreamingJsonError,
};

const TRUE: &[u8] = b"true";
const FALSE: &[u8] = b"false";
const NULL: &[u8] = b"null";

/// Where the parser is relative to the root value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Skipping prose until the first `{` or `[`.
    Preamble,
    /// Inside the root value.
    Body,
    /// The root value is complete; everything else is ignored.
    Trailing,
}

/// The token being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Between tokens: whitespace and punctuation.
    Between,
    /// Inside a quoted string (key or value).
    Str,
    /// Inside a number; its text is in `buf`.
    Num,
    /// Inside `true`, `false` or `null`; `matched` bytes of `word` seen.
    Lit { word: &'static [u8], matched: usize },
    /// Inside an unquoted object key; its text is in `buf`.
    BareKey,
}

/// Escape state inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After `\`.
    Backslash,
    /// Inside `\uXXXX` with `digits` hex digits read.
    Unicode {
        digits: u8,
        acc: u32,
    },
    /// After a high surrogate escape, expecting `\` of the low one.
    AfterHigh,
    /// After a high surrogate escape and `\`, expecting `u`.
    AfterHighBackslash,
}

/// What a container expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Right after `{` / `[`.
    Open,
    /// After `,`.
    AfterComma,
    /// Object: key read, expecting `:`.
    Colon,
    /// Object: after `:`, expecting the value.
    NeedValue,
    /// A child value is being read.
    InValue,
    /// After a complete child value, expecting `,` or the closing bracket.
    AfterValue,
}

#[derive(Debug)]
enum Container {
    Object {
        map: Map<String, Value>,
        /// The key of the value being read; shared with the paths of everything below it.
        key: Option<Arc<str>>,
    },
    Array(Vec<Value>),
}

#[derive(Debug)]
struct Frame {
    container: Container,
    slot: Slot,
    /// Position of the last `,` (for trailing-comma repairs).
    comma_pos: usize,
}

impl Frame {
    fn is_empty(&self) -> bool {
        match &self.container {
            Container::Object { map, .. } => map.is_empty(),
            Container::Array(items) => items.is_empty(),
        }
    }
}

/// What the structural dispatcher did with a byte.
enum Step {
    Consumed,
    Retry,
}

/// Incremental JSON parser producing per-path [`JsonEvent`]s.
///
/// Feed text as it arrives with [`feed`](Self::feed) (or raw bytes with
/// [`feed_bytes`](Self::feed_bytes), where UTF-8 sequences may be split across chunks); each call
/// returns the events the new text completed. Call [`finish`](Self::finish) at the end of the
/// stream to get the final value, the last events and the repairs applied. See the
/// [module documentation](super) for the event contract and tolerated defects.
///
/// ```
/// use agentry_model::streaming_json::{JsonEvent, StreamingJsonParser};
/// use serde_json::json;
///
/// let mut parser = StreamingJsonParser::new();
/// let mut events = Vec::new();
/// for chunk in ["Sure! ```json\n{\"title\": \"Hel", "lo\", \"tips\": [1", "2, true]}\n```"] {
///     events.extend(parser.feed(chunk)?);
/// }
/// let finished = parser.finish()?;
/// assert_eq!(finished.value, json!({"title": "Hello", "tips": [12, true]}));
/// assert!(finished.repairs.is_empty());
///
/// let shown: Vec<String> = events
///     .iter()
///     .map(|event| match event {
///         JsonEvent::Delta { path, delta } => format!("delta {path} {delta:?}"),
///         JsonEvent::Done { path, value } => format!("done {path} {value}"),
///         JsonEvent::ContainerDone { path } => format!("closed {path}"),
///     })
///     .collect();
/// assert_eq!(shown, [
///     r#"delta title "Hel""#,
///     r#"delta title "lo""#,
///     r#"done title "Hello""#,
///     "done tips[0] 12",
///     "done tips[1] true",
///     "done tips [12,true]",
///     r#"done  {"title":"Hello","tips":[12,true]}"#,
/// ]);
///
/// // A truncated answer is repaired by `finish`.
/// let mut parser = StreamingJsonParser::new();
/// parser.feed("{\"steps\": [{\"detail\": \"unfinish")?;
/// let finished = parser.finish()?;
/// assert_eq!(finished.value, json!({"steps": [{"detail": "unfinish"}]}));
/// assert_eq!(finished.repairs.len(), 4); // the string and three containers
/// # Ok::<(), agentry_model::streaming_json::StreamingJsonError>(())
/// ```
#[derive(Debug)]
pub struct StreamingJsonParser {
    limits: ParserLimits,
    container_values: ContainerValues,
    phase: Phase,
    lex: Lex,
    stack: Vec<Frame>,
    /// Text of the current number or unquoted key.
    buf: Vec<u8>,
    /// Decoded text of the current string (key or value).
    text: String,
    /// The start of a UTF-8 sequence split by a chunk boundary.
    pending: [u8; 4],
    /// How many bytes of `pending` are in use.
    pending_len: usize,
    /// How many bytes of `text` were already sent as deltas.
    emitted: usize,
    /// Whether the current string is an object key.
    is_key: bool,
    /// Whether the last object key read was unquoted.
    key_is_bare: bool,
    /// The quote character of the current string.
    quote: u8,
    /// Path of the current string value, shared by its deltas and its `Done`; `None` between
    /// string values (even an empty `JsonPath` allocates).
    str_path: Option<JsonPath>,
    esc: Esc,
    /// A high surrogate waiting for its low half.
    high: Option<u32>,
    /// Where the current token started.
    token_start: usize,
    /// Bytes fed before the current chunk.
    offset: usize,
    root: Option<Value>,
    repairs: Vec<Repair>,
    /// `repairs.len()` when the root bracket was found (undone if it turns out to be prose).
    repairs_at_root: usize,
    error: Option<StreamingJsonError>,
}

impl Default for StreamingJsonParser {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamingJsonParser {
    /// A parser with the default [`ParserOptions`]: default limits, every container `Done`
    /// with its value.
    pub fn new() -> Self {
        Self::with_options(ParserOptions::default())
    }

    /// A parser with the given limits (`max_depth` is clamped to [`MAX_SUPPORTED_DEPTH`]) and
    /// every container `Done` with its value.
    pub fn with_limits(limits: ParserLimits) -> Self {
        Self::with_options(ParserOptions {
            limits,
            ..ParserOptions::default()
        })
    }

    /// A parser with the given limits (`max_depth` is clamped to [`MAX_SUPPORTED_DEPTH`]) and
    /// choice of container values (see [`ContainerValues`]).
    pub fn with_options(options: ParserOptions) -> Self {
        let ParserOptions {
            mut limits,
            container_values,
        } = options;
        limits.max_depth = limits.max_depth.min(MAX_SUPPORTED_DEPTH);
        StreamingJsonParser {
            limits,
            container_values,
            phase: Phase::Preamble,
            lex: Lex::Between,
            stack: Vec::new(),
            buf: Vec::new(),
            text: String::new(),
            pending: [0; 4],
            pending_len: 0,
            emitted: 0,
            is_key: false,
            key_is_bare: false,
            quote: b'"',
            str_path: None,
            esc: Esc::None,
            high: None,
            token_start: 0,
            offset: 0,
            root: None,
            repairs: Vec::new(),
            repairs_at_root: 0,
            error: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &ParserLimits {
        &self.limits
    }

    /// Which containers get their value in their `Done` event.
    pub fn container_values(&self) -> &ContainerValues {
        &self.container_values
    }

    /// Total bytes fed so far.
    pub fn bytes_fed(&self) -> usize {
        self.offset
    }

    /// Whether the root value is complete (later input is ignored).
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Trailing
    }

    /// Repairs applied so far (more may be added by [`finish`](Self::finish)).
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// Feeds the next piece of text and returns the events it completed.
    ///
    /// # Errors
    /// A typed [`StreamingJsonError`] on invalid JSON or an exceeded limit; the parser then
    /// keeps returning that error.
    pub fn feed(&mut self, chunk: &str) -> Result<Vec<JsonEvent>, StreamingJsonError> {
        self.feed_bytes(chunk.as_bytes())
    }

    /// Feeds the next piece of raw UTF-8 input; multi-byte sequences may be split across
    /// chunks. Returns the events the new input completed.
    ///
    /// # Errors
    /// Like [`feed`](Self::feed); also [`StreamingJsonError::InvalidUtf8`] for non-UTF-8 bytes
    /// inside a string (bytes outside the JSON value are not checked).
    pub fn feed_bytes(&mut self, chunk: &[u8]) -> Result<Vec<JsonEvent>, StreamingJsonError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let mut events = Vec::new();
        if self.phase == Phase::Trailing {
            // Text after the root value is ignored and does not count against the limit.
            self.offset = self.offset.saturating_add(chunk.len());
            return Ok(events);
        }
        let result = if self.offset.saturating_add(chunk.len()) > self.limits.max_total_bytes {
            Err(StreamingJsonError::SizeLimit {
                limit: self.limits.max_total_bytes,
            })
        } else {
            self.process(chunk, &mut events)
        };
        self.offset = self.offset.saturating_add(chunk.len());
        match result {
            Ok(()) => Ok(events),
            Err(error) => {
                self.error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Ends the stream: completes a pending number, repairs a truncated document and returns
    /// the root value with the remaining events and all repairs.
    ///
    /// # Errors
    /// The error a previous `feed` returned, [`StreamingJsonError::NoJsonValue`] when no `{`
    /// or `[` was seen, or a syntax error when the pending token cannot be completed.
    pub fn finish(mut self) -> Result<FinishedJson, StreamingJsonError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let mut events = Vec::new();
        match self.phase {
            Phase::Preamble => return Err(StreamingJsonError::NoJsonValue),
            Phase::Trailing => {}
            Phase::Body => self.close_truncated(&mut events)?,
        }
        let value = self.root.take().ok_or(StreamingJsonError::NoJsonValue)?;
        Ok(FinishedJson {
            value,
            events,
            repairs: self.repairs,
        })
    }

    // ----------------------------------------------------------------------------------------
    // Main loop

    fn process(
        &mut self,
        bytes: &[u8],
        events: &mut Vec<JsonEvent>,
    ) -> Result<(), StreamingJsonError> {
        let mut i = 0usize;
        while let Some(&b) = bytes.get(i) {
            match self.phase {
                Phase::Trailing => break,
                Phase::Preamble => {
                    let rest = bytes.get(i..).unwrap_or_default();
                    match rest.iter().position(|&c| c == b'{' || c == b'[') {
                        None => break,
                        Some(n) => {
                            i += n;
                            let pos = self.offset + i;
                            let open = rest.get(n).copied().unwrap_or(b'{');
                            self.phase = Phase::Body;
                            self.repairs_at_root = self.repairs.len();
                            self.open_container(open, pos)?;
                            i += 1;
                        }
                    }
                }
                Phase::Body => match self.lex {
                    Lex::Between => {
                        if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                            i += 1;
                            continue;
                        }
                        let pos = self.offset + i;
                        match self.structural(b, pos, events)? {
                            Step::Consumed => i += 1,
                            Step::Retry => {}
                        }
                    }
                    Lex::Str => i = self.lex_string(bytes, i, events)?,
                    Lex::Num => {
                        let rest = bytes.get(i..).unwrap_or_default();
                        let n = rest
                            .iter()
                            .position(|&c| !is_number_byte(c))
                            .unwrap_or(rest.len());
                        self.buf
                            .extend_from_slice(rest.get(..n).unwrap_or_default());
                        self.check_token_limit()?;
                        i += n;
                        if n < rest.len() {
                            // The delimiter is handled by the structural dispatcher.
                            self.end_number(events, false)?;
                        }
                    }
                    Lex::Lit { word, matched } => {
                        if word.get(matched) != Some(&b) {
                            if self.root_is_untouched_array() {
                                // `[free text]`: the bracket was prose. Only letters of the
                                // literal were read since it, so no bracket was skipped.
                                self.back_to_prose();
                                continue;
                            }
                            return Err(self.syntax(self.offset + i, "invalid literal"));
                        }
                        i += 1;
                        if matched + 1 == word.len() {
                            self.lex = Lex::Between;
                            self.complete_value(literal_value(word), events);
                        } else {
                            self.lex = Lex::Lit {
                                word,
                                matched: matched + 1,
                            };
                        }
                    }
                    Lex::BareKey => {
                        let rest = bytes.get(i..).unwrap_or_default();
                        let n = rest
                            .iter()
                            .position(|&c| !is_bare_key_byte(c))
                            .unwrap_or(rest.len());
                        self.buf
                            .extend_from_slice(rest.get(..n).unwrap_or_default());
                        self.check_token_limit()?;
                        i += n;
                        if n < rest.len() {
                            self.end_bare_key();
                        }
                    }
                },
            }
        }
        if self.phase == Phase::Body && self.lex == Lex::Str && !self.is_key {
            self.flush_delta(events);
        }
        Ok(())
    }

    /// Handles one non-whitespace byte between tokens.
    fn structural(
        &mut self,
        b: u8,
        pos: usize,
        events: &mut Vec<JsonEvent>,
    ) -> Result<Step, StreamingJsonError> {
        let depth = self.stack.len();
        let Some(frame) = self.stack.last_mut() else {
            return Err(self.syntax(pos, "unexpected input"));
        };
        let is_object = matches!(frame.container, Container::Object { .. });
        let untouched_root = depth == 1 && frame.is_empty();
        let prose = match frame.slot {
            Slot::Open => !can_follow_open(is_object, b),
            // `{some words}`: an unquoted key not followed by `:` in a still empty root object.
            Slot::Colon => b != b':' && self.key_is_bare,
            _ => false,
        };
        if untouched_root && prose {
            // The first bracket was prose ("see [below]"): forget it and keep looking.
            self.back_to_prose();
            return Ok(Step::Retry);
        }
        match (is_object, frame.slot) {
            (_, Slot::AfterValue) => match b {
                b',' => {
                    frame.slot = Slot::AfterComma;
                    frame.comma_pos = pos;
                }
                b'}' if is_object => self.close_container(events),
                b']' if !is_object => self.close_container(events),
                b'"' | b'\'' if is_object => return self.missing_comma(pos),
                _ if is_object && is_bare_key_start(b) => return self.missing_comma(pos),
                _ if !is_object && is_value_start(b) => return self.missing_comma(pos),
                _ => return Err(self.syntax(pos, "expected `,` or a closing bracket")),
            },
            (false, Slot::Open) if b == b']' => self.close_container(events),
            (false, Slot::AfterComma) if b == b']' => {
                let comma = frame.comma_pos;
                self.repair(RepairKind::TrailingComma, comma);
                self.close_container(events);
            }
            (false, Slot::Open | Slot::AfterComma) | (true, Slot::NeedValue) => {
                self.start_value(b, pos)?;
            }
            (true, Slot::Open | Slot::AfterComma) => match b {
                b'}' => {
                    if frame.slot == Slot::AfterComma {
                        let comma = frame.comma_pos;
                        self.repair(RepairKind::TrailingComma, comma);
                    }
                    self.close_container(events);
                }
                b'"' | b'\'' => {
                    frame.slot = Slot::InValue;
                    self.start_string(true, b, pos);
                }
                _ if is_bare_key_start(b) => {
                    frame.slot = Slot::InValue;
                    self.repair(RepairKind::UnquotedKey, pos);
                    self.buf.clear();
                    self.buf.push(b);
                    self.token_start = pos;
                    self.lex = Lex::BareKey;
                }
                _ => return Err(self.syntax(pos, "expected an object key or `}`")),
            },
            (true, Slot::Colon) => {
                if b == b':' {
                    frame.slot = Slot::NeedValue;
                } else {
                    return Err(self.syntax(pos, "expected `:` after the object key"));
                }
            }
            (true, Slot::InValue) | (false, Slot::InValue | Slot::Colon | Slot::NeedValue) => {
                return Err(self.syntax(pos, "unexpected input"));
            }
        }
        Ok(Step::Consumed)
    }

    /// Whether the root is an array whose first element is not complete yet, so no event
    /// has been emitted for the document.
    fn root_is_untouched_array(&self) -> bool {
        self.stack.len() == 1
            && self.stack.first().is_some_and(
                |frame| matches!(&frame.container, Container::Array(items) if items.is_empty()),
            )
    }

    /// Forgets the root bracket (it was prose) and looks for the next one.
    fn back_to_prose(&mut self) {
        self.stack.clear();
        self.phase = Phase::Preamble;
        self.lex = Lex::Between;
        self.buf.clear();
        self.text.clear();
        self.repairs.truncate(self.repairs_at_root);
    }

    fn missing_comma(&mut self, pos: usize) -> Result<Step, StreamingJsonError> {
        self.repair(RepairKind::MissingComma, pos);
        if let Some(frame) = self.stack.last_mut() {
            frame.slot = Slot::AfterComma;
            frame.comma_pos = pos;
        }
        Ok(Step::Retry)
    }

    /// Starts the value whose first byte is `b`; the top frame expects a value.
    fn start_value(&mut self, b: u8, pos: usize) -> Result<(), StreamingJsonError> {
        match b {
            b'{' | b'[' => {
                self.set_top_slot(Slot::InValue);
                self.open_container(b, pos)?;
            }
            b'"' | b'\'' => {
                self.set_top_slot(Slot::InValue);
                self.start_string(false, b, pos);
            }
            b'-' | b'0'..=b'9' => {
                self.set_top_slot(Slot::InValue);
                self.buf.clear();
                self.buf.push(b);
                self.token_start = pos;
                self.lex = Lex::Num;
            }
            b't' | b'f' | b'n' => {
                self.set_top_slot(Slot::InValue);
                let word = match b {
                    b't' => TRUE,
                    b'f' => FALSE,
                    _ => NULL,
                };
                self.token_start = pos;
                self.lex = Lex::Lit { word, matched: 1 };
            }
            _ => return Err(self.syntax(pos, "expected a JSON value")),
        }
        Ok(())
    }

    fn set_top_slot(&mut self, slot: Slot) {
        if let Some(frame) = self.stack.last_mut() {
            frame.slot = slot;
        }
    }

    fn open_container(&mut self, b: u8, pos: usize) -> Result<(), StreamingJsonError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(StreamingJsonError::DepthLimit {
                position: pos,
                limit: self.limits.max_depth,
            });
        }
        let container = if b == b'[' {
            Container::Array(Vec::new())
        } else {
            Container::Object {
                map: Map::new(),
                key: None,
            }
        };
        self.stack.push(Frame {
            container,
            slot: Slot::Open,
            comma_pos: 0,
        });
        Ok(())
    }

    /// Emits `Done` (with a copy of the value, if asked for) or `ContainerDone` for the top
    /// container and stores its value in its parent.
    fn close_container(&mut self, events: &mut Vec<JsonEvent>) {
        if let Some(frame) = self.stack.pop() {
            let value = match frame.container {
                Container::Object { map, .. } => Value::Object(map),
                Container::Array(items) => Value::Array(items),
            };
            let path = self.current_path();
            events.push(if self.container_values.wants(&path) {
                JsonEvent::Done {
                    path,
                    value: value.clone(),
                }
            } else {
                JsonEvent::ContainerDone { path }
            });
            self.store(value);
        }
    }

    /// Emits `Done` for the scalar at the current path and stores it in its parent.
    fn complete_value(&mut self, value: Value, events: &mut Vec<JsonEvent>) {
        let path = self.current_path();
        self.complete_value_at(path, value, events);
    }

    /// Like [`Self::complete_value`] with the path already known.
    fn complete_value_at(&mut self, path: JsonPath, value: Value, events: &mut Vec<JsonEvent>) {
        events.push(JsonEvent::Done {
            path,
            value: value.clone(),
        });
        self.store(value);
    }

    /// Puts a completed value into its parent container, or makes it the root.
    fn store(&mut self, value: Value) {
        match self.stack.last_mut() {
            Some(frame) => {
                match &mut frame.container {
                    Container::Object { map, key } => {
                        let key = key.take().map(|key| String::from(&*key));
                        map.insert(key.unwrap_or_default(), value);
                    }
                    Container::Array(items) => items.push(value),
                }
                frame.slot = Slot::AfterValue;
            }
            None => {
                self.root = Some(value);
                self.phase = Phase::Trailing;
            }
        }
    }

    /// The path of the value currently being read (the child of the top frame).
    fn current_path(&self) -> JsonPath {
        JsonPath::collect_exact(self.stack.iter().map(|frame| match &frame.container {
            Container::Object { key, .. } => PathSegment::Key(key.clone().unwrap_or_default()),
            Container::Array(items) => PathSegment::Index(items.len()),
        }))
    }

    // ----------------------------------------------------------------------------------------
    // Strings

    fn start_string(&mut self, is_key: bool, quote: u8, pos: usize) {
        if quote == b'\'' {
            self.repair(RepairKind::SingleQuotedString, pos);
        }
        self.lex = Lex::Str;
        self.is_key = is_key;
        self.quote = quote;
        self.esc = Esc::None;
        self.high = None;
        self.text.clear();
        self.pending_len = 0;
        self.emitted = 0;
        self.token_start = pos;
        if !is_key {
            self.str_path = Some(self.current_path());
        }
    }

    /// Reads string bytes from `bytes[i..]`; returns the index after what it consumed.
    fn lex_string(
        &mut self,
        bytes: &[u8],
        mut i: usize,
        events: &mut Vec<JsonEvent>,
    ) -> Result<usize, StreamingJsonError> {
        while let Some(&b) = bytes.get(i) {
            let pos = self.offset + i;
            match self.esc {
                Esc::None => {
                    let rest = bytes.get(i..).unwrap_or_default();
                    let n = find_quote_or_backslash(rest, self.quote);
                    if n > 0 {
                        self.append_raw(rest.get(..n).unwrap_or_default())?;
                        i += n;
                        continue;
                    }
                    // A quote or backslash: a split UTF-8 sequence cannot continue.
                    if self.pending_len > 0 {
                        return Err(self.invalid_utf8());
                    }
                    i += 1;
                    if b == b'\\' {
                        self.esc = Esc::Backslash;
                    } else {
                        self.end_string(events)?;
                        return Ok(i);
                    }
                }
                Esc::Backslash => {
                    i += 1;
                    self.esc = Esc::None;
                    let decoded = match b {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'\'' => '\'',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.esc = Esc::Unicode { digits: 0, acc: 0 };
                            continue;
                        }
                        other => {
                            // Unknown escape: keep the escaped byte itself (a non-ASCII
                            // byte starts raw string content again).
                            self.repair(RepairKind::InvalidEscape, pos);
                            if other.is_ascii() {
                                other as char
                            } else {
                                self.append_raw(&[other])?;
                                continue;
                            }
                        }
                    };
                    self.text.push(decoded);
                    self.check_string_limit()?;
                }
                Esc::Unicode { digits, acc } => {
                    let Some(digit) = (b as char).to_digit(16) else {
                        return Err(self.syntax(pos, "invalid \\u escape"));
                    };
                    i += 1;
                    let acc = acc * 16 + digit;
                    if digits == 3 {
                        self.esc = Esc::None;
                        self.code_unit(acc, pos);
                        self.check_string_limit()?;
                    } else {
                        self.esc = Esc::Unicode {
                            digits: digits + 1,
                            acc,
                        };
                    }
                }
                Esc::AfterHigh => {
                    if b == b'\\' {
                        i += 1;
                        self.esc = Esc::AfterHighBackslash;
                    } else {
                        // Lone high surrogate; `b` is read again as ordinary string content.
                        self.lone_surrogate(pos);
                        self.esc = Esc::None;
                    }
                }
                Esc::AfterHighBackslash => {
                    if b == b'u' {
                        i += 1;
                        self.esc = Esc::Unicode { digits: 0, acc: 0 };
                    } else {
                        // Lone high surrogate; `b` is read again as the escaped character.
                        self.lone_surrogate(pos);
                        self.esc = Esc::Backslash;
                    }
                }
            }
        }
        Ok(i)
    }

    /// Appends raw string content (no quote or backslash in it), checking UTF-8 in input
    /// order, so the first error reported does not depend on chunking. A sequence split at the
    /// end of the chunk waits in `pending`.
    fn append_raw(&mut self, mut run: &[u8]) -> Result<(), StreamingJsonError> {
        if self.pending_len > 0 {
            let width = utf8_width(self.pending[0]);
            let take = width.saturating_sub(self.pending_len).min(run.len());
            for &byte in run.get(..take).unwrap_or_default() {
                if let Some(slot) = self.pending.get_mut(self.pending_len) {
                    *slot = byte;
                    self.pending_len += 1;
                }
            }
            run = run.get(take..).unwrap_or_default();
            let sequence = self.pending.get(..self.pending_len).unwrap_or_default();
            match std::str::from_utf8(sequence) {
                Ok(text) => {
                    self.text.push_str(text);
                    self.pending_len = 0;
                }
                Err(error) if error.error_len().is_none() && self.pending_len < width => {
                    // Still a valid prefix; the rest comes with the next chunk.
                    return self.check_string_limit();
                }
                Err(_) => return Err(self.invalid_utf8()),
            }
        }
        match std::str::from_utf8(run) {
            Ok(text) => self.text.push_str(text),
            Err(error) => {
                if error.error_len().is_some() {
                    return Err(self.invalid_utf8());
                }
                let (valid, tail) = run.split_at(error.valid_up_to().min(run.len()));
                match std::str::from_utf8(valid) {
                    Ok(text) => self.text.push_str(text),
                    Err(_) => return Err(self.invalid_utf8()),
                }
                for (slot, &byte) in self.pending.iter_mut().zip(tail) {
                    *slot = byte;
                }
                self.pending_len = tail.len().min(self.pending.len());
            }
        }
        self.check_string_limit()
    }

    /// Handles one decoded `\uXXXX` code unit.
    fn code_unit(&mut self, unit: u32, pos: usize) {
        if self.high.is_some() {
            if (0xDC00..=0xDFFF).contains(&unit) {
                let high = self.high.take().unwrap_or(0xD800);
                let scalar = 0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00);
                self.text
                    .push(char::from_u32(scalar).unwrap_or(char::REPLACEMENT_CHARACTER));
                return;
            }
            self.lone_surrogate(pos);
        }
        match unit {
            0xD800..=0xDBFF => {
                self.high = Some(unit);
                self.esc = Esc::AfterHigh;
            }
            0xDC00..=0xDFFF => {
                self.repair(RepairKind::LoneSurrogate, pos);
                self.text.push(char::REPLACEMENT_CHARACTER);
            }
            _ => self
                .text
                .push(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)),
        }
    }

    fn lone_surrogate(&mut self, pos: usize) {
        self.high = None;
        self.repair(RepairKind::LoneSurrogate, pos);
        self.text.push(char::REPLACEMENT_CHARACTER);
    }

    /// Sends the not yet emitted text of the current string value as a delta.
    fn flush_delta(&mut self, events: &mut Vec<JsonEvent>) {
        if let Some(fresh) = self.text.get(self.emitted..)
            && !fresh.is_empty()
        {
            let path = match &self.str_path {
                Some(path) => path.clone(),
                None => self.current_path(),
            };
            events.push(JsonEvent::Delta {
                path,
                delta: fresh.to_owned(),
            });
        }
        self.emitted = self.text.len();
    }

    fn end_string(&mut self, events: &mut Vec<JsonEvent>) -> Result<(), StreamingJsonError> {
        if self.pending_len > 0 {
            return Err(self.invalid_utf8());
        }
        if self.is_key {
            let key = Arc::from(self.text.as_str());
            self.clear_text();
            self.set_key(key);
            return Ok(());
        }
        self.flush_delta(events);
        let text = self.take_text();
        self.lex = Lex::Between;
        let path = match self.str_path.take() {
            Some(path) => path,
            None => self.current_path(),
        };
        self.complete_value_at(path, Value::String(text), events);
        Ok(())
    }

    /// The decoded string; `text` is cleared but keeps a modest capacity for the next one.
    fn take_text(&mut self) -> String {
        if self.text.capacity() > 64 * 1024 {
            std::mem::take(&mut self.text)
        } else {
            let text = self.text.clone();
            self.text.clear();
            text
        }
    }

    /// Clears `text`, giving back the memory of an unusually long string.
    fn clear_text(&mut self) {
        if self.text.capacity() > 64 * 1024 {
            self.text = String::new();
        } else {
            self.text.clear();
        }
    }

    /// Ends an unquoted key (its ASCII text is in `buf`).
    fn end_bare_key(&mut self) {
        let key: String = self.buf.iter().map(|&b| b as char).collect();
        self.buf.clear();
        self.set_key(Arc::from(key));
        self.key_is_bare = true;
    }

    /// Stores the key on the top object, which then expects `:`.
    fn set_key(&mut self, key: Arc<str>) {
        self.lex = Lex::Between;
        self.key_is_bare = false;
        if let Some(frame) = self.stack.last_mut() {
            if let Container::Object { key: slot_key, .. } = &mut frame.container {
                *slot_key = Some(key);
            }
            frame.slot = Slot::Colon;
        }
    }

    fn invalid_utf8(&self) -> StreamingJsonError {
        StreamingJsonError::InvalidUtf8 {
            position: self.token_start,
        }
    }

    // ----------------------------------------------------------------------------------------
    // Numbers

    /// Completes the number in `buf`; at `finish`, an incomplete tail (`1.`, `2e-`) is dropped.
    fn end_number(
        &mut self,
        events: &mut Vec<JsonEvent>,
        at_end: bool,
    ) -> Result<(), StreamingJsonError> {
        self.lex = Lex::Between;
        if let Some(number) = parse_number(&self.buf) {
            self.complete_value(Value::Number(number), events);
            return Ok(());
        }
        if at_end {
            let trimmed_len = self
                .buf
                .iter()
                .rposition(u8::is_ascii_digit)
                .map_or(0, |last_digit| last_digit + 1);
            let trimmed = self.buf.get(..trimmed_len).unwrap_or_default();
            if trimmed_len < self.buf.len() {
                if let Some(number) = parse_number(trimmed) {
                    self.repair(RepairKind::TruncatedNumber, self.offset);
                    self.complete_value(Value::Number(number), events);
                    return Ok(());
                }
                if !trimmed.iter().any(u8::is_ascii_digit) {
                    self.repair(RepairKind::DroppedValue, self.offset);
                    self.drop_child();
                    return Ok(());
                }
            }
        }
        Err(self.syntax(self.token_start, "invalid number"))
    }

    // ----------------------------------------------------------------------------------------
    // End of input

    /// Completes the pending token and closes every open container.
    fn close_truncated(&mut self, events: &mut Vec<JsonEvent>) -> Result<(), StreamingJsonError> {
        let end = self.offset;
        match self.lex {
            Lex::Between => {}
            Lex::Str if self.is_key => {
                self.repair(RepairKind::DroppedKey, end);
                self.drop_child();
            }
            Lex::Str => {
                self.esc = Esc::None;
                self.high = None;
                // An incomplete UTF-8 sequence at the very end is dropped.
                self.pending_len = 0;
                self.repair(RepairKind::UnterminatedString, end);
                self.end_string(events)?;
            }
            Lex::Num => self.end_number(events, true)?,
            Lex::Lit { word, .. } => {
                self.repair(RepairKind::CompletedLiteral, end);
                self.lex = Lex::Between;
                self.complete_value(literal_value(word), events);
            }
            Lex::BareKey => {
                self.repair(RepairKind::DroppedKey, end);
                self.drop_child();
            }
        }
        self.lex = Lex::Between;
        while let Some(frame) = self.stack.last_mut() {
            match frame.slot {
                Slot::AfterComma => {
                    let comma = frame.comma_pos;
                    self.repair(RepairKind::TrailingComma, comma);
                }
                Slot::Colon | Slot::NeedValue => {
                    if let Container::Object { key, .. } = &mut frame.container {
                        *key = None;
                    }
                    self.repair(RepairKind::DroppedKey, end);
                }
                Slot::Open | Slot::InValue | Slot::AfterValue => {}
            }
            self.repair(RepairKind::ClosedContainer, end);
            self.close_container(events);
        }
        Ok(())
    }

    /// Forgets the child being read (and its key); the top frame continues after it.
    fn drop_child(&mut self) {
        self.lex = Lex::Between;
        self.buf.clear();
        if let Some(frame) = self.stack.last_mut() {
            if let Container::Object { key, .. } = &mut frame.container {
                *key = None;
            }
            frame.slot = Slot::AfterValue;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Helpers

    fn check_string_limit(&self) -> Result<(), StreamingJsonError> {
        if self.text.len() + self.pending_len > self.limits.max_string_bytes {
            return Err(StreamingJsonError::StringLimit {
                position: self.token_start,
                limit: self.limits.max_string_bytes,
            });
        }
        Ok(())
    }

    fn check_token_limit(&self) -> Result<(), StreamingJsonError> {
        if self.buf.len() > self.limits.max_string_bytes {
            return Err(StreamingJsonError::StringLimit {
                position: self.token_start,
                limit: self.limits.max_string_bytes,
            });
        }
        Ok(())
    }

    fn repair(&mut self, kind: RepairKind, position: usize) {
        self.repairs.push(Repair { kind, position });
    }

    fn syntax(&self, position: usize, message: &'static str) -> StreamingJsonError {
        StreamingJsonError::Syntax { position, message }
    }
}

/// Index of the first `quote` or `\` in `bytes` (`bytes.len()` if none).
///
/// String bodies are most of a model's answer, so they are scanned eight bytes at a time
/// (SWAR) instead of byte by byte, without a dependency or `unsafe`.
pub(super) fn find_quote_or_backslash(bytes: &[u8], quote: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    /// High bit set in each byte of `word` that is zero. Bytes above the first zero byte may
    /// be flagged spuriously (borrows), so only the lowest flag is exact, and only it is used.
    fn zero_bytes(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word & HIGHS
    }
    let quotes = ONES * u64::from(quote);
    let backslashes = ONES * u64::from(b'\\');
    let mut words = bytes.chunks_exact(8);
    let mut start = 0;
    for word in &mut words {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(word);
        let word = u64::from_le_bytes(lanes);
        let found = zero_bytes(word ^ quotes) | zero_bytes(word ^ backslashes);
        if found != 0 {
            return start + (found.trailing_zeros() / 8) as usize;
        }
        start += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&c| c == quote || c == b'\\')
        .map_or(bytes.len(), |n| start + n)
}

/// Length of the UTF-8 sequence a lead byte starts (1 for invalid leads).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

fn literal_value(word: &[u8]) -> Value {
    match word {
        b"true" => Value::Bool(true),
        b"false" => Value::Bool(false),
        _ => Value::Null,
    }
}

/// Parses a JSON number exactly like `serde_json` does (integers on a fast path).
fn parse_number(text: &[u8]) -> Option<Number> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if !digits.is_empty()
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits.first() != Some(&b'0'))
    {
        let magnitude = digits
            .iter()
            .fold(0i64, |acc, digit| acc * 10 + i64::from(digit - b'0'));
        if !negative {
            return Some(Number::from(magnitude));
        }
        if magnitude != 0 {
            return Some(Number::from(-magnitude));
        }
        // `-0` is a float in serde_json.
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Number(number)) => Some(number),
        _ => None,
    }
}

fn is_number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Whether `b` may directly follow `{` (if `is_object`) or `[` (whitespace skipped).
fn can_follow_open(is_object: bool, b: u8) -> bool {
    if is_object {
        matches!(b, b'"' | b'\'' | b'}') || is_bare_key_start(b)
    } else {
        b == b']' || is_value_start(b)
    }
}

fn is_value_start(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'\'' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    )
}

fn is_bare_key_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

fn is_bare_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-')
}
