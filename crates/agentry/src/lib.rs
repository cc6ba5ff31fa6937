//! agentry (under construction)
#![deny(missing_docs)]
