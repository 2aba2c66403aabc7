//! The workload error type: every way a workload configuration or trace file can be wrong.

use std::path::PathBuf;

/// What went wrong while checking a workload configuration or reading a trace.
///
/// Every message names the field, file or line at fault and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A configuration field has a value the generators cannot use.
    #[error("workload: `{field}` {problem}; {fix}")]
    InvalidField {
        /// The field, as written in `config.toml` (e.g. `workload.arrival.qps`).
        field: &'static str,
        /// What is wrong with its value.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// Two settings cannot be used together.
    #[error("workload: {0}")]
    Conflict(String),
    /// A trace file could not be opened or read.
    #[error("workload: cannot read trace file {}: {source}; check the path (relative paths are taken from the working directory)", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A trace file lacks a column the chosen generator needs.
    #[error("workload: trace file {} has no column `{column}` (its columns: {found}); {fix}", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns the file has, comma-separated.
        found: String,
        /// How to fix it.
        fix: String,
    },
    /// A trace file has a malformed line or value.
    #[error("workload: trace file {}, line {line}: {problem}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number (the header of a CSV file is line 1).
        line: u64,
        /// What is wrong, and how to fix it.
        problem: String,
    },
    /// A trace file has no usable rows.
    #[error("workload: trace file {} has no data rows; give a trace with at least one request", path.display())]
    EmptyTrace {
        /// The file.
        path: PathBuf,
    },
}

impl WorkloadError {
    /// Shorthand for [`WorkloadError::InvalidField`].
    pub(crate) fn field(
        field: &'static str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        WorkloadError::InvalidField {
            field,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}
