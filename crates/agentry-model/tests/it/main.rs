//! Integration tests of the model providers against the mock OpenAI-compatible
//! server (127.0.0.1 only; no network).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cancel;
mod common;
mod faults;
mod offline;
mod retry;
mod schema_samples;
mod sent;
mod streaming;
mod timeouts;
