//! Typed errors of the streaming JSON parser.

/// Why the streaming JSON parser (or a path parser) gave up.
///
/// Each variant has a stable dotted [`code`](StreamingJsonError::code). Positions are byte
/// offsets into everything fed so far, prose included. Once [`StreamingJsonParser::feed`]
/// returned an error, the parser keeps returning that error.
///
/// [`StreamingJsonParser::feed`]: super::StreamingJsonParser::feed
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamingJsonError {
    /// The input is not JSON and no repair applies.
    #[error("JSON syntax error at byte {position}: {message}")]
    Syntax {
        /// Byte offset of the offending input.
        position: usize,
        /// What was expected.
        message: &'static str,
    },
    /// Objects/arrays nest deeper than [`ParserLimits::max_depth`](super::ParserLimits::max_depth).
    #[error("JSON nesting deeper than {limit} at byte {position}")]
    DepthLimit {
        /// Byte offset of the bracket that went too deep.
        position: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A string, key or number is longer than
    /// [`ParserLimits::max_string_bytes`](super::ParserLimits::max_string_bytes).
    #[error("JSON string longer than {limit} bytes (started at byte {position})")]
    StringLimit {
        /// Byte offset where the string started.
        position: usize,
        /// The configured limit.
        limit: usize,
    },
    /// More input than [`ParserLimits::max_total_bytes`](super::ParserLimits::max_total_bytes).
    #[error("more than {limit} bytes of input")]
    SizeLimit {
        /// The configured limit.
        limit: usize,
    },
    /// The input ended without any `{` or `[` starting a JSON value.
    #[error("no JSON object or array found in the input")]
    NoJsonValue,
    /// A string contains bytes that are not UTF-8.
    #[error("invalid UTF-8 in a JSON string near byte {position}")]
    InvalidUtf8 {
        /// Byte offset near the invalid bytes.
        position: usize,
    },
    /// A [`JsonPath`](super::JsonPath) or [`PathPattern`](super::PathPattern) could not be parsed.
    #[error("invalid JSON path `{input}`: {message}")]
    InvalidPath {
        /// The rejected text (at most 200 characters).
        input: String,
        /// What was wrong.
        message: &'static str,
    },
}

impl StreamingJsonError {
    /// Stable machine-readable code, e.g. `streaming_json.syntax`. Never renamed once shipped.
    pub fn code(&self) -> &'static str {
        match self {
            StreamingJsonError::Syntax { .. } => "streaming_json.syntax",
            StreamingJsonError::DepthLimit { .. } => "streaming_json.depth_limit",
            StreamingJsonError::StringLimit { .. } => "streaming_json.string_limit",
            StreamingJsonError::SizeLimit { .. } => "streaming_json.size_limit",
            StreamingJsonError::NoJsonValue => "streaming_json.no_json_value",
            StreamingJsonError::InvalidUtf8 { .. } => "streaming_json.invalid_utf8",
            StreamingJsonError::InvalidPath { .. } => "streaming_json.invalid_path",
        }
    }
}
