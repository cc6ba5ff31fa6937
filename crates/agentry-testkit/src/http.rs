//! A minimal hand-written HTTP/1.1 server side on a raw `TcpStream`.
//!
//! Hand-written rather than a framework because fault injection needs byte-level control: stop after a
//! given SSE frame, reset the socket, or go silent with the connection open. It reads request line,
//! headers and a `Content-Length` or chunked body, supports keep-alive (reqwest pools connections), and
//! writes `Content-Length` or chunked answers through a small output buffer so an unpaced answer leaves in
//! one write.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest accepted request head (request line plus headers).
const MAX_HEAD: usize = 64 * 1024;
/// Largest accepted request body.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A request as read off the wire.
#[derive(Debug)]
pub(crate) struct RawRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One server-side connection: the socket, unread input, and buffered output.
#[derive(Debug)]
pub(crate) struct Conn {
    pub stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            input: Vec::with_capacity(8 * 1024),
            output: Vec::with_capacity(8 * 1024),
        }
    }

    /// Reads more input; returns the number of bytes read (0 at end of stream).
    async fn fill(&mut self) -> io::Result<usize> {
        if self.input.capacity() - self.input.len() < 4096 {
            self.input.reserve(8 * 1024);
        }
        self.stream.read_buf(&mut self.input).await
    }

    async fn fill_or_eof(&mut self) -> io::Result<()> {
        if self.fill().await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Reads the next request; `Ok(None)` when the client closed the connection between requests.
    pub(crate) async fn read_request(&mut self) -> io::Result<Option<RawRequest>> {
        let head_end = loop {
            // Tolerate stray CRLFs between requests (RFC 9112 §2.2).
            let leading = self
                .input
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            if leading > 0 {
                self.input.drain(..leading);
            }
            if let Some(end) = find(&self.input, b"\r\n\r\n") {
                break end;
            }
            if self.input.len() > MAX_HEAD {
                return Err(invalid("request head too large"));
            }
            if self.fill().await? == 0 {
                return if self.input.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        };
        let head = String::from_utf8_lossy(&self.input[..head_end]).into_owned();
        self.input.drain(..head_end + 4);

        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split_whitespace();
        let method = request_line
            .next()
            .ok_or_else(|| invalid("missing method"))?;
        let target = request_line
            .next()
            .ok_or_else(|| invalid("missing request target"))?;
        let version = request_line.next().unwrap_or("HTTP/1.1");
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid("malformed header line"))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let connection = header("connection").unwrap_or_default();
        let keep_alive = if version.eq_ignore_ascii_case("HTTP/1.0") {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        };
        let chunked = header("transfer-encoding").is_some_and(|te| te.contains("chunked"));
        let length = match header("content-length") {
            Some(value) => value
                .parse::<usize>()
                .map_err(|_| invalid("bad content-length"))?,
            None => 0,
        };
        if header("expect").is_some_and(|e| e == "100-continue") {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let body = if chunked {
            self.read_chunked_body().await?
        } else {
            self.read_sized_body(length).await?
        };
        Ok(Some(RawRequest {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body,
            keep_alive,
        }))
    }

    async fn read_sized_body(&mut self, length: usize) -> io::Result<Vec<u8>> {
        if length > MAX_BODY {
            return Err(invalid("request body too large"));
        }
        while self.input.len() < length {
            self.fill_or_eof().await?;
        }
        Ok(self.input.drain(..length).collect())
    }

    /// Reads up to the next CRLF and returns the line without it.
    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.input, b"\r\n") {
                let line = String::from_utf8_lossy(&self.input[..end]).into_owned();
                self.input.drain(..end + 2);
                return Ok(line);
            }
            if self.input.len() > MAX_HEAD {
                return Err(invalid("chunk line too long"));
            }
            self.fill_or_eof().await?;
        }
    }

    async fn read_chunked_body(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailer fields, up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("request body too large"));
            }
            while self.input.len() < size + 2 {
                self.fill_or_eof().await?;
            }
            body.extend_from_slice(&self.input[..size]);
            self.input.drain(..size + 2);
        }
    }

    /// Queues raw bytes for the next flush.
    pub(crate) fn queue(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Queues one chunk of a chunked body.
    pub(crate) fn queue_chunk(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.output
            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        self.output.extend_from_slice(data);
        self.output.extend_from_slice(b"\r\n");
    }

    /// Queues the terminating chunk of a chunked body.
    pub(crate) fn queue_last_chunk(&mut self) {
        self.output.extend_from_slice(b"0\r\n\r\n");
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        Ok(())
    }

    /// Flushes, then waits until the client closes the connection (or errors), reading and discarding
    /// anything it sends: a silent server that keeps the socket open.
    pub(crate) async fn hang(&mut self) -> io::Result<()> {
        self.flush().await?;
        let mut scratch = [0u8; 1024];
        loop {
            match self.stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    }

    /// Flushes, then sends `piece` as one chunk every `every` until the client goes away.
    pub(crate) async fn trickle(&mut self, piece: &[u8], every: Duration) -> io::Result<()> {
        self.flush().await?;
        let mut ticks = tokio::time::interval(every);
        let mut scratch = [0u8; 1024];
        loop {
            tokio::select! {
                read = self.stream.read(&mut scratch) => match read {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                },
                _ = ticks.tick() => {
                    self.queue_chunk(piece);
                    self.flush().await?;
                }
            }
        }
    }

    /// Aborts the connection with a TCP RST: linger zero, then close.
    pub(crate) fn reset(self) {
        if let Err(error) = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(%error, "mock server: could not set linger for reset");
        }
        drop(self.stream);
    }
}

/// The reason phrase for common statuses (clients ignore it, humans reading traces do not).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Builds a response head; `length` `Some(n)` gives `content-length`, `None` chunked encoding.
pub(crate) fn head(
    status: u16,
    content_type: &str,
    length: Option<usize>,
    request_id: &str,
    keep_alive: bool,
    extra: &[(String, String)],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\nx-request-id: {request_id}\r\n",
        reason(status)
    );
    match length {
        Some(n) => out.push_str(&format!("content-length: {n}\r\n")),
        None => out.push_str("transfer-encoding: chunked\r\n"),
    }
    if content_type.starts_with("text/event-stream") {
        out.push_str("cache-control: no-cache\r\n");
    }
    if !keep_alive {
        out.push_str("connection: close\r\n");
    }
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}
