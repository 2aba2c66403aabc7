//! # predictor
//!
//! The middle of servesim's data flow (profile → **predict** → simulate), and the vocabulary all
//! three crates share:
//!
//! - [`catalog`]: models, devices and nodes (`data/catalog/`, embedded at build time);
//! - [`parallel`]: tensor/pipeline/expert-parallel layouts and their validation;
//! - [`precision`]: weight, activation and KV-cache data types (bf16, fp8);
//! - [`batch`]: the description of one batch that the execution model reads;
//! - [`ops`]: the timed operators and per-operator breakdowns;
//! - [`exec`]: the execution model (a batch on a pipeline stage → time with breakdown) and its
//!   backends;
//! - [`profile`]: readers for profile CSVs in Vidur's layout;
//! - [`fit`]: fitting operator models to profiles, model selection and held-out accuracy;
//! - [`table`]: dense prediction tables over Vidur's grids;
//! - [`setup`]: building the execution model for a replica (backend choice);
//! - [`errtext`]: error messages as one line, each cause once.

pub mod batch;
pub mod catalog;
pub mod errtext;
pub mod exec;
pub mod fit;
pub mod ops;
pub mod parallel;
pub mod precision;
pub mod profile;
pub mod setup;
pub mod table;

pub use batch::BatchShape;
pub use catalog::{Catalog, CatalogError, DeviceSpec, ModelSpec, NodeSpec};
pub use exec::{
    BackendInfo, BackendKind, ExecParams, ExecutionModel, OperatorTimes, StageModel, StageTime,
};
pub use ops::{Op, OpBreakdown};
pub use parallel::{Parallelism, ParallelismError};
pub use precision::{Precision, PrecisionConfig};
pub use setup::{build_execution_model, BackendChoice, ExecSetup, SetupError};
