//! MCP adapter (under construction).
#![deny(missing_docs)]
