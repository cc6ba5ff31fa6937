//! agentry-model (under construction)
#![deny(missing_docs)]
