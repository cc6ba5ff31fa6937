#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
mod dispatch;
mod loop_json;
mod loop_native;
mod macro_actions;
mod misc;
mod mock_server;
