//! agentry-macros (under construction)
#![deny(missing_docs)]
