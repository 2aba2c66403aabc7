//! `simulator`: simulates an LLM serving cluster (work in progress).

pub mod workload;
