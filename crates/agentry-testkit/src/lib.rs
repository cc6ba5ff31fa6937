//! agentry-testkit (under construction)
#![deny(missing_docs)]
