//! Readers for profile CSVs in Vidur's layout and schemas (docs/design.md §3): `mlp.csv`,
//! `attention.csv`, `all_reduce.csv` and `send_recv.csv`, plain or gzip-compressed (`.csv.gz`).
//!
//! Every reader reports a bad file with its path, line and column ([`ProfileError`]) and never
//! panics. Rows are selected as Vidur does (docs/design.md §3.5): by the model's dimensions and the TP degree for
//! compute profiles, by worker count and devices per node for network profiles. Unlike Vidur, the
//! compute selection does **not** filter on `vocab_size`: Vidur's Llama-2 files say 32768 where the
//! real vocabulary is 32000, and no profiled operator depends on the vocabulary.

pub mod attention;
mod csvfile;
pub mod layout;
pub mod mlp;
pub mod network;

use std::path::PathBuf;

pub use attention::{AttentionProfile, AttentionRow};
pub use csvfile::{file_sha256, sha256_hex, CsvFile, Row};
pub use layout::ProfileLayout;
pub use mlp::{MlpProfile, MlpRow};
pub use network::{Collective, NetworkProfile, NetworkRow};

/// What can go wrong when reading a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file was read but its contents are wrong at a given place.
    #[error("{path}:{line}{}: {why}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Bad {
        /// The file.
        path: PathBuf,
        /// 1-based line number (1 is the header).
        line: u64,
        /// The column, when one is to blame.
        column: Option<String>,
        /// What is wrong and how to fix it.
        why: String,
    },
    /// No row of the file matches what was asked for.
    #[error("{path}: {why}")]
    NoRows {
        /// The file.
        path: PathBuf,
        /// What was looked for and what the file has.
        why: String,
    },
}

impl ProfileError {
    /// A [`ProfileError::Bad`] at `line` (and `column`).
    pub fn bad(
        path: impl Into<PathBuf>,
        line: u64,
        column: Option<&str>,
        why: impl Into<String>,
    ) -> Self {
        ProfileError::Bad {
            path: path.into(),
            line,
            column: column.map(str::to_string),
            why: why.into(),
        }
    }
}
