//! Errors of `simulator search`: each names the file or field and what to do.

use std::path::PathBuf;

use thiserror::Error;

/// Why a search could not start or its outputs could not be written.
#[derive(Debug, Error)]
pub enum SearchError {
    /// The space file cannot be read.
    #[error("cannot read the space file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The space file is not valid TOML or has an unknown or mistyped key.
    #[error("invalid space file {path}: {message}(docs/search.md lists every key)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value of the space file that cannot work.
    #[error("invalid space: {field}: {why}")]
    Space {
        /// The field, as `section.key[i]`.
        field: String,
        /// Why, and what to do.
        why: String,
    },
    /// A bad `--shard` value.
    #[error("invalid --shard {0}: expected I/N with 0 ≤ I < N, e.g. --shard 0/4")]
    Shard(String),
    /// Shard outputs that do not make one whole search.
    #[error("cannot merge: {0}")]
    Merge(String),
    /// An output file could not be written or read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl SearchError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        SearchError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
