#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests: real processes, real bubblewrap (skipped with a note when the
//! machine cannot create namespaces), real SQLite files, real patches.

mod code;
mod coding;
mod common;
mod enable;
mod files;
mod isolation;
mod process;
mod resource;
mod shell;
mod sqlite;
