//! agentry-actions (under construction)
#![deny(missing_docs)]
