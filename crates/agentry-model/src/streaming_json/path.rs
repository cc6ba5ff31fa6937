//! Paths into a JSON value (`steps[2].detail`) and wildcard patterns (`items[*].name`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::error::StreamingJsonError;

/// One step of a [`JsonPath`]: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    /// A key of an object. Shared (`Arc`), because the parser puts the key into the path of
    /// every value below it: cloning a segment must not copy the text.
    Key(Arc<str>),
    /// A position in an array, starting at 0.
    Index(usize),
}

/// The location of a value inside the streamed JSON document.
///
/// Displayed as `title`, `tips[0]`, `steps[2].detail`; the root is the empty string. Keys that
/// are empty or contain `.`, `[`, `]`, `"`, `\`, `*` or whitespace are written in bracket form
/// with a JSON string, e.g. `meta["a.b"]`. [`FromStr`] accepts exactly what [`Display`](fmt::Display)
/// writes, so paths round-trip. The segments are shared: cloning a path is cheap.
///
/// ```
/// use agentry_model::streaming_json::{JsonPath, PathSegment};
/// let path: JsonPath = "steps[2].detail".parse().unwrap();
/// assert_eq!(path.segments(), &[
///     PathSegment::Key("steps".into()),
///     PathSegment::Index(2),
///     PathSegment::Key("detail".into()),
/// ]);
/// assert_eq!(path.to_string(), "steps[2].detail");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct JsonPath(Arc<[PathSegment]>);

impl JsonPath {
    /// The root path (the whole document), displayed as the empty string.
    pub fn root() -> Self {
        JsonPath(Arc::from([]))
    }

    /// Builds a path from its segments.
    pub fn from_segments(segments: Vec<PathSegment>) -> Self {
        JsonPath(Arc::from(segments))
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of segments (0 for the root).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the path has no segments (same as [`JsonPath::is_root`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns this path extended by one segment.
    pub fn child(&self, segment: PathSegment) -> Self {
        JsonPath(self.0.iter().cloned().chain([segment]).collect())
    }

    /// Whether `self` equals `other` or is an ancestor of it.
    pub fn is_prefix_of(&self, other: &JsonPath) -> bool {
        other.0.starts_with(&self.0)
    }

    /// Looks the path up in a value.
    pub fn lookup<'v>(&self, value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        let mut current = value;
        for segment in self.0.iter() {
            current = match segment {
                PathSegment::Key(key) => current.as_object()?.get(&**key)?,
                PathSegment::Index(index) => current.as_array()?.get(*index)?,
            };
        }
        Some(current)
    }

    /// Builds a path from an exact-size iterator with a single allocation.
    pub(crate) fn collect_exact(segments: impl ExactSizeIterator<Item = PathSegment>) -> Self {
        JsonPath(segments.collect())
    }
}

impl From<Vec<PathSegment>> for JsonPath {
    fn from(segments: Vec<PathSegment>) -> Self {
        JsonPath(Arc::from(segments))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) => write_key(f, key, position == 0)?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl FromStr for JsonPath {
    type Err = StreamingJsonError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let segments = parse_segments(input)?;
        let mut out = Vec::with_capacity(segments.len());
        for segment in segments {
            match segment {
                PatternSegment::Key(key) => out.push(PathSegment::Key(key.into())),
                PatternSegment::Index(index) => out.push(PathSegment::Index(index)),
                PatternSegment::AnyKey | PatternSegment::AnyIndex => {
                    return Err(path_error(
                        input,
                        "wildcards are only allowed in a PathPattern",
                    ));
                }
            }
        }
        Ok(JsonPath(Arc::from(out)))
    }
}

/// One step of a [`PathPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternSegment {
    /// Matches exactly this object key.
    Key(String),
    /// Matches exactly this array index.
    Index(usize),
    /// `*`: matches any object key.
    AnyKey,
    /// `[*]`: matches any array index.
    AnyIndex,
}

/// A path with wildcards, for selecting events: `items[*].name`, `meta.*`.
///
/// `[*]` matches any array index and a bare `*` segment matches any object key. A pattern
/// matches a path of exactly the same length (no recursive wildcard).
///
/// ```
/// use agentry_model::streaming_json::{JsonPath, PathPattern};
/// let pattern: PathPattern = "items[*].name".parse().unwrap();
/// assert!(pattern.matches(&"items[3].name".parse::<JsonPath>().unwrap()));
/// assert!(!pattern.matches(&"items[3].price".parse::<JsonPath>().unwrap()));
/// assert!(!pattern.matches(&"items[3]".parse::<JsonPath>().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathPattern(Vec<PatternSegment>);

impl PathPattern {
    /// The segments, outermost first.
    pub fn segments(&self) -> &[PatternSegment] {
        &self.0
    }

    /// Whether `path` has the same length and every segment matches.
    pub fn matches(&self, path: &JsonPath) -> bool {
        self.0.len() == path.0.len()
            && self
                .0
                .iter()
                .zip(path.0.iter())
                .all(|(pattern, segment)| match (pattern, segment) {
                    (PatternSegment::Key(want), PathSegment::Key(have)) => **want == **have,
                    (PatternSegment::Index(want), PathSegment::Index(have)) => want == have,
                    (PatternSegment::AnyKey, PathSegment::Key(_)) => true,
                    (PatternSegment::AnyIndex, PathSegment::Index(_)) => true,
                    _ => false,
                })
    }

    /// Whether `path` is a (strict or equal) ancestor of some path this pattern can match,
    /// i.e. events under `path` may still be of interest.
    pub fn may_match_below(&self, path: &JsonPath) -> bool {
        path.0.len() <= self.0.len()
            && PathPattern(self.0.get(..path.0.len()).unwrap_or_default().to_vec()).matches(path)
    }
}

impl From<JsonPath> for PathPattern {
    fn from(path: JsonPath) -> Self {
        PathPattern(
            path.0
                .iter()
                .map(|segment| match segment {
                    PathSegment::Key(key) => PatternSegment::Key(key.to_string()),
                    PathSegment::Index(index) => PatternSegment::Index(*index),
                })
                .collect(),
        )
    }
}

impl FromStr for PathPattern {
    type Err = StreamingJsonError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse_segments(input).map(PathPattern)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PatternSegment::Key(key) => write_key(f, key, position == 0)?,
                PatternSegment::Index(index) => write!(f, "[{index}]")?,
                PatternSegment::AnyKey if position == 0 => f.write_str("*")?,
                PatternSegment::AnyKey => f.write_str(".*")?,
                PatternSegment::AnyIndex => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

fn path_error(input: &str, message: &'static str) -> StreamingJsonError {
    StreamingJsonError::InvalidPath {
        input: input.chars().take(200).collect(),
        message,
    }
}

fn is_plain_key_char(c: char) -> bool {
    !matches!(c, '.' | '[' | ']' | '"' | '\\' | '*') && !c.is_whitespace() && !c.is_control()
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(is_plain_key_char)
}

fn write_key(f: &mut fmt::Formatter<'_>, key: &str, first: bool) -> fmt::Result {
    if is_plain_key(key) {
        if !first {
            f.write_str(".")?;
        }
        f.write_str(key)
    } else {
        f.write_str("[\"")?;
        for c in key.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"]")
    }
}

/// Parses the shared path/pattern syntax; wildcards are returned as wildcard segments.
fn parse_segments(input: &str) -> Result<Vec<PatternSegment>, StreamingJsonError> {
    let bytes = input.as_bytes();
    let mut segments = Vec::new();
    let mut i = 0usize;
    let mut first = true;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'[' => {
                i += 1;
                match bytes.get(i) {
                    Some(b'*') => {
                        if bytes.get(i + 1) != Some(&b']') {
                            return Err(path_error(input, "expected `]` after `[*`"));
                        }
                        segments.push(PatternSegment::AnyIndex);
                        i += 2;
                    }
                    Some(b'"') => {
                        let start = i;
                        i += 1;
                        loop {
                            match bytes.get(i) {
                                None => return Err(path_error(input, "unterminated quoted key")),
                                Some(b'\\') => i += 2,
                                Some(b'"') => break,
                                Some(_) => i += 1,
                            }
                        }
                        let quoted = input
                            .get(start..=i)
                            .ok_or_else(|| path_error(input, "invalid quoted key"))?;
                        let key: String = serde_json::from_str(quoted)
                            .map_err(|_| path_error(input, "invalid quoted key"))?;
                        i += 1;
                        if bytes.get(i) != Some(&b']') {
                            return Err(path_error(input, "expected `]` after quoted key"));
                        }
                        i += 1;
                        segments.push(PatternSegment::Key(key));
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let start = i;
                        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                            i += 1;
                        }
                        let digits = input
                            .get(start..i)
                            .ok_or_else(|| path_error(input, "invalid index"))?;
                        if digits.len() > 1 && digits.starts_with('0') {
                            return Err(path_error(input, "index has a leading zero"));
                        }
                        let index: usize = digits
                            .parse()
                            .map_err(|_| path_error(input, "index out of range"))?;
                        if bytes.get(i) != Some(&b']') {
                            return Err(path_error(input, "expected `]` after index"));
                        }
                        i += 1;
                        segments.push(PatternSegment::Index(index));
                    }
                    _ => {
                        return Err(path_error(
                            input,
                            "expected an index, `*` or a quoted key after `[`",
                        ));
                    }
                }
            }
            _ => {
                if !first {
                    if b != b'.' {
                        return Err(path_error(input, "expected `.` or `[` between segments"));
                    }
                    i += 1;
                }
                let start = i;
                let rest = input
                    .get(start..)
                    .ok_or_else(|| path_error(input, "invalid key"))?;
                if rest.starts_with('*') {
                    segments.push(PatternSegment::AnyKey);
                    i += 1;
                } else {
                    let len: usize = rest
                        .chars()
                        .take_while(|c| is_plain_key_char(*c))
                        .map(char::len_utf8)
                        .sum();
                    if len == 0 {
                        return Err(path_error(input, "empty key segment"));
                    }
                    let key = rest
                        .get(..len)
                        .ok_or_else(|| path_error(input, "invalid key"))?;
                    segments.push(PatternSegment::Key(key.to_owned()));
                    i += len;
                }
            }
        }
        first = false;
    }
    Ok(segments)
}
