//! Errors of a simulation run.

use std::path::PathBuf;

/// Anything that stops a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration value that cannot work.
    #[error("invalid configuration: {field}: {why}")]
    Config {
        /// The field, as `section.key`.
        field: String,
        /// Why, and what to do.
        why: String,
    },
    /// An unknown model, device or node.
    #[error(transparent)]
    Catalog(#[from] predictor::CatalogError),
    /// A TP/PP layout the model does not allow.
    #[error(transparent)]
    Parallelism(#[from] predictor::ParallelismError),
    /// The model does not fit in memory.
    #[error(transparent)]
    Memory(#[from] crate::memory::PlanError),
    /// A bad workload.
    #[error(transparent)]
    Workload(#[from] crate::workload::WorkloadError),
    /// The execution model could not be built.
    #[error("execution model: {0}")]
    Backend(#[from] predictor::SetupError),
    /// Requests were left unfinished with nothing left to run (a scheduler that cannot admit them).
    #[error(
        "simulation stalled at {time_s:.3} s with {unfinished} unfinished request(s): {detail}"
    )]
    Stalled {
        /// Simulated time, s.
        time_s: f64,
        /// Requests not finished.
        unfinished: u64,
        /// The first stuck request and why.
        detail: String,
    },
    /// An output file would grow past its size limit (checked before it is written).
    #[error("output too large: {0}")]
    OutputTooLarge(String),
    /// Simulated time would leave the clock's range ([`crate::engine::MAX_SIMULATED_NS`]).
    #[error("simulated time out of range: {0}")]
    TimeRange(String),
    /// A broken invariant (a bug).
    #[error("internal error: {0}")]
    Internal(String),
    /// The plots or `report.html` could not be written.
    #[error("report: {0}")]
    Report(#[from] crate::report::ReportError),
    /// Writing an output file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<crate::kv::KvError> for SimError {
    fn from(e: crate::kv::KvError) -> Self {
        SimError::Internal(e.to_string())
    }
}
