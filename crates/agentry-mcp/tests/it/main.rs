//! Integration tests of agentry-mcp against real servers: our own (the
//! `agentry-mcp-test-server` binary over stdio, the library's HTTP server in process),
//! a stdio-to-legacy-SSE gateway in front of the former, a third-party server from npm
//! (stdio, Streamable HTTP and legacy SSE), and deliberately broken servers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod common;
mod http;
mod sse;
mod stdio;
mod third_party;
