//! servesim's simulator library: the parts of `simulator` that other code (and tests) use directly.

pub mod report;
