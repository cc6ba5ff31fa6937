//! Execution resources and built-in actions (under construction).
#![deny(missing_docs)]
