//! agentry-workspace (under construction)
#![deny(missing_docs)]
