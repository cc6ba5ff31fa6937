//! Integration tests of agentry-workspace: the conformance suite on SQLite and
//! PostgreSQL, process races and crashes, bad input, the facade, recall and the sink.
//!
//! PostgreSQL: `AGENTRY_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! every test uses its own schema and drops it. Unreachable ⇒ the tests fail, unless
//! `AGENTRY_SKIP_PG=1` is set explicitly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod common;
mod conformance;
mod facade;
mod integration;
mod processes;
