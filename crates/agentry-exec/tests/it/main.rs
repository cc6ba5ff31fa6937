#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests: real processes, real bubblewrap, real SQLite files.

mod common;
mod process;
mod code;
