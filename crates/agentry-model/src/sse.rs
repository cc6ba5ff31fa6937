//! An incremental Server-Sent Events parser, shared by the model providers and the
//! MCP client's legacy SSE transport.
//!
//! Network chunks split SSE frames anywhere — inside a line, between `\r` and `\n`,
//! inside a multi-byte character — so the parser keeps unconsumed bytes and only
//! decodes complete lines. It accepts `\n`, `\r\n` and lone `\r` line endings,
//! a leading byte-order mark, `data:` with or without the space, multi-line data
//! (joined with `\n`), ignores comments (`:` keep-alives), `id:`, `retry:` and
//! unknown fields, and hands each complete event to a callback as borrowed text, so
//! no allocation happens per frame once the buffers have grown to the frame size.
//!
//! ```
//! use agentry_model::sse::{Flow, SseParser};
//! let mut parser = SseParser::new();
//! let mut seen = Vec::new();
//! for chunk in [&b"event: ping\ndata: {\"a\""[..], b": 1}\n\n"] {
//!     parser
//!         .feed(chunk, |ev| {
//!             seen.push((ev.event.to_owned(), ev.data.to_owned()));
//!             Ok::<_, std::convert::Infallible>(Flow::Continue)
//!         })
//!         .unwrap();
//! }
//! assert_eq!(seen, [("ping".to_owned(), "{\"a\": 1}".to_owned())]);
//! ```

/// Largest line or event (in bytes) accepted; beyond it the stream is treated as
/// broken instead of growing memory without bound.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One complete event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, empty when absent.
    pub event: &'a str,
    /// The data lines joined with `\n`.
    pub data: &'a str,
}

/// What the callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep parsing.
    Continue,
    /// Stop: the consumer saw the end of the response.
    Stop,
}

/// Why parsing failed.
#[derive(Debug)]
pub enum SseError<E> {
    /// A line or event exceeded the parser's limit ([`MAX_EVENT_BYTES`] unless
    /// set with [`SseParser::with_max_event_bytes`]).
    TooLarge,
    /// The callback failed.
    Callback(E),
}

/// The parser state. Reuse one per response.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes not yet forming a complete line.
    buf: Vec<u8>,
    /// The data of the event being built.
    data: Vec<u8>,
    /// Whether any `data:` line was seen for the current event (an event with an
    /// empty data line is still an event).
    has_data: bool,
    /// The `event:` field of the event being built.
    event: String,
    /// The previous chunk ended with `\r`; a `\n` starting the next one belongs to it.
    skip_lf: bool,
    /// The parser stopped (callback said so); further input is ignored.
    stopped: bool,
    /// No line completed yet (a leading byte-order mark is dropped from it).
    first_line: bool,
    /// Largest line or event accepted, in bytes.
    max: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_max_event_bytes(MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A fresh parser accepting lines and events up to [`MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh parser accepting lines and events up to `max` bytes.
    pub fn with_max_event_bytes(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event: String::new(),
            skip_lf: false,
            stopped: false,
            first_line: true,
            max: max.max(1),
        }
    }

    /// The largest line or event this parser accepts, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max
    }

    /// Feeds one network chunk and calls `on_event` for every complete event.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, SseError<E>> {
        if self.stopped {
            return Ok(Flow::Stop);
        }
        let mut chunk = chunk;
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if let Some((&b'\n', rest)) = chunk.split_first() {
                chunk = rest;
            }
        }
        if self.buf.is_empty() {
            // Fast path: parse straight from the chunk, keep only the tail.
            let consumed = self.parse_lines(chunk, &mut on_event)?;
            if self.stopped {
                return Ok(Flow::Stop);
            }
            let rest = chunk.get(consumed..).unwrap_or_default();
            self.keep_tail(rest)?;
        } else {
            self.buf.extend_from_slice(chunk);
            let buf = std::mem::take(&mut self.buf);
            let consumed = self.parse_lines(&buf, &mut on_event);
            self.buf = buf;
            let consumed = consumed?;
            if self.stopped {
                return Ok(Flow::Stop);
            }
            self.buf.drain(..consumed.min(self.buf.len()));
            if self.buf.len() > self.max {
                return Err(SseError::TooLarge);
            }
        }
        Ok(Flow::Continue)
    }

    /// Called at end of input: a last line without terminator and a last event
    /// without the blank line are still delivered, because many servers close the
    /// stream right after `data: [DONE]`.
    pub fn finish<E>(
        &mut self,
        mut on_event: impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, SseError<E>> {
        if self.stopped {
            return Ok(Flow::Stop);
        }
        let buf = std::mem::take(&mut self.buf);
        let line = self.strip_bom(&buf);
        if !line.is_empty() {
            self.line(line);
        }
        if self.has_data {
            return self.dispatch(&mut on_event);
        }
        Ok(Flow::Continue)
    }

    fn keep_tail<E>(&mut self, rest: &[u8]) -> Result<(), SseError<E>> {
        if rest.len() > self.max {
            return Err(SseError::TooLarge);
        }
        self.buf.extend_from_slice(rest);
        Ok(())
    }

    /// Parses complete lines of `input`; returns how many bytes were consumed.
    fn parse_lines<E>(
        &mut self,
        input: &[u8],
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<usize, SseError<E>> {
        let mut start = 0;
        // Almost every server ends lines with `\n` alone; searching one byte value
        // is much faster than two, so look for `\r` only when the input has one.
        let has_cr = input.contains(&b'\r');
        while let Some(offset) = input
            .get(start..)
            .and_then(|rest| find_line_end(rest, has_cr))
        {
            let end = start + offset;
            let line = input.get(start..end).unwrap_or_default();
            let terminator = input.get(end).copied();
            let mut next = end + 1;
            if terminator == Some(b'\r') {
                match input.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    // The `\n` may arrive with the next chunk.
                    None => self.skip_lf = true,
                }
            }
            start = next;
            let line = self.strip_bom(line);
            if line.is_empty() {
                if self.has_data {
                    if self.dispatch(on_event)? == Flow::Stop {
                        self.stopped = true;
                        return Ok(start);
                    }
                } else {
                    self.event.clear();
                }
            } else {
                self.line(line);
                if self.data.len() > self.max {
                    return Err(SseError::TooLarge);
                }
            }
        }
        Ok(start)
    }

    /// Drops a byte-order mark from the stream's first line.
    fn strip_bom<'l>(&mut self, line: &'l [u8]) -> &'l [u8] {
        if !self.first_line {
            return line;
        }
        self.first_line = false;
        line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
    }

    /// Interprets one non-empty line.
    fn line(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = line.get(colon + 1..).unwrap_or_default();
                let value = value.strip_prefix(b" ").unwrap_or(value);
                (line.get(..colon).unwrap_or_default(), value)
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
            }
            _ => {}
        }
    }

    fn dispatch<E>(
        &mut self,
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<Flow, E>,
    ) -> Result<Flow, SseError<E>> {
        // Validation with the fast path first; lossy conversion only for bad input.
        let data = match std::str::from_utf8(&self.data) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&self.data),
        };
        let flow = on_event(SseEvent {
            event: &self.event,
            data: &data,
        })
        .map_err(SseError::Callback)?;
        drop(data);
        self.data.clear();
        self.has_data = false;
        self.event.clear();
        Ok(flow)
    }
}

/// The position of the first `\n` (and `\r` when `cr`), eight bytes at a time:
/// SSE lines are mostly long JSON payloads, and a byte-by-byte scan was the
/// parser's main cost.
fn find_line_end(hay: &[u8], cr: bool) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LF: u64 = LO * b'\n' as u64;
    const CR: u64 = LO * b'\r' as u64;
    // Sets the high bit of the first zero byte (bits above it may be noise).
    let zero_byte = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut words = hay.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        if let Ok(bytes) = <[u8; 8]>::try_from(word) {
            let v = u64::from_le_bytes(bytes);
            let mut hits = zero_byte(v ^ LF);
            if cr {
                hits |= zero_byte(v ^ CR);
            }
            if hits != 0 {
                return Some(offset + (hits.trailing_zeros() / 8) as usize);
            }
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n' || (cr && b == b'\r'))
        .map(|p| offset + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_all(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed::<()>(c, |e| {
                out.push((e.event.to_owned(), e.data.to_owned()));
                Ok(Flow::Continue)
            })
            .unwrap();
        }
        p.finish::<()>(|e| {
            out.push((e.event.to_owned(), e.data.to_owned()));
            Ok(Flow::Continue)
        })
        .unwrap();
        out
    }

    const SAMPLE: &str = ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\ndata:{\"b\":\"é→\"}\n\nevent: response.created\ndata: line1\ndata:  line2\nid: 7\nretry: 10\nunknown\n\n:comment\ndata\n\ndata: x\rdata: y\r\rdata: [DONE]\n\n";

    fn expected() -> Vec<(String, String)> {
        vec![
            (String::new(), "{\"a\":1}".into()),
            (String::new(), "{\"b\":\"é→\"}".into()),
            ("response.created".into(), "line1\n line2".into()),
            (String::new(), String::new()),
            (String::new(), "x\ny".into()),
            (String::new(), "[DONE]".into()),
        ]
    }

    #[test]
    fn parses_whole_input() {
        assert_eq!(collect_all(&[SAMPLE.as_bytes()]), expected());
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let bytes = SAMPLE.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(collect_all(&[a, b]), expected(), "split at {i}");
        }
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let got = collect_all(&[&bytes[..i], &bytes[i..j], &bytes[j..]]);
                assert_eq!(got, expected(), "split at {i},{j}");
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let chunks: Vec<&[u8]> = SAMPLE.as_bytes().chunks(1).collect();
        assert_eq!(collect_all(&chunks), expected());
    }

    #[test]
    fn last_event_without_blank_line_is_delivered_at_eof() {
        assert_eq!(
            collect_all(&[b"data: {\"x\":1}\n\ndata: [DONE]"]),
            vec![
                (String::new(), "{\"x\":1}".into()),
                (String::new(), "[DONE]".into())
            ]
        );
        assert_eq!(
            collect_all(&[b"data: a\n"]),
            vec![(String::new(), "a".into())]
        );
        assert!(collect_all(&[b": only comments\n\n: more"]).is_empty());
    }

    #[test]
    fn crlf_split_exactly_between_cr_and_lf() {
        let got = collect_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(
            got,
            vec![(String::new(), "a".into()), (String::new(), "b".into())]
        );
    }

    #[test]
    fn stop_ends_parsing() {
        let mut p = SseParser::new();
        let mut seen = 0;
        let flow = p
            .feed::<()>(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", |_| {
                seen += 1;
                Ok(if seen == 2 {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })
            .unwrap();
        assert_eq!(flow, Flow::Stop);
        assert_eq!(seen, 2);
        assert_eq!(
            p.feed::<()>(b"data: 4\n\n", |_| Ok(Flow::Continue))
                .unwrap(),
            Flow::Stop
        );
    }

    #[test]
    fn callback_error_propagates() {
        let mut p = SseParser::new();
        let r = p.feed(b"data: 1\n\n", |_| Err("bad"));
        assert!(matches!(r, Err(SseError::Callback("bad"))));
    }

    #[test]
    fn oversized_line_is_refused() {
        let mut p = SseParser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        let r = p.feed::<()>(&big, |_| Ok(Flow::Continue));
        assert!(matches!(r, Err(SseError::TooLarge)));
    }

    #[test]
    fn line_end_search_matches_naive() {
        let samples: [&[u8]; 6] = [
            b"",
            b"abc",
            b"0123456789abcdef\n",
            b"01234567\r89\n",
            b"\x8a\x0a\xff\x0d\x00\x01\x0b\x09\x0a",
            b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x0b\x0d",
        ];
        for s in samples {
            for start in 0..s.len() {
                let hay = &s[start..];
                for cr in [false, true] {
                    let naive = hay.iter().position(|&b| b == b'\n' || (cr && b == b'\r'));
                    assert_eq!(find_line_end(hay, cr), naive, "{hay:?} cr={cr}");
                }
            }
        }
        let mut long = vec![b'x'; 100];
        for i in 0..100 {
            long[i] = b'\n';
            assert_eq!(find_line_end(&long, false), Some(i));
            long[i] = b'\r';
            assert_eq!(find_line_end(&long, true), Some(i));
            assert_eq!(find_line_end(&long, false), None);
            long[i] = b'x';
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let got = collect_all(&[b"data: \xff\xfe\n\n"]);
        assert_eq!(got[0].1, "\u{fffd}\u{fffd}");
    }
}
