//! # simulator
//!
//! servesim's discrete-event simulator of an LLM serving cluster (the third step of profile →
//! predict → **simulate**): requests from a [`workload`] are routed ([`router`]) to replicas, each
//! replica's policy ([`scheduler`]) forms batches within its KV cache ([`kv`], sized by [`memory`]),
//! and the [`engine`] times every batch on every pipeline stage with the predictor's execution
//! model. [`run::simulate`] ties it together from a [`config::SimConfig`]; [`metrics`] and
//! [`output`] turn the run into the files of `docs/outputs.md`, [`bench`] into the keys of
//! `vllm bench serve`, and [`report`] into `report.html`. [`compare`] puts runs side by side,
//! [`sweep`] runs one configuration at many offered rates, [`search`] finds capacities, and
//! [`calibrate`] fits the engine model's coefficients to measured serving runs.

pub mod bench;
pub mod calibrate;
pub mod compare;
pub mod config;
pub mod describe;
pub mod engine;
pub mod error;
pub mod kv;
pub mod memory;
pub mod metrics;
pub mod output;
pub mod pools;
pub mod prefix_cache;
pub mod progress;
pub mod report;
pub mod request;
pub mod router;
pub mod run;
pub mod scheduler;
pub mod search;
pub mod stamp;
pub mod sweep;
pub mod workload;

pub use config::SimConfig;
pub use error::SimError;
pub use metrics::summary::Summary;
pub use run::{simulate, RunOptions, SimOutcome};
