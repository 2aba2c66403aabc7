//! A CSV file held in memory with its header, each row's line number and typed cell access whose
//! errors name the file, line and column.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ProfileError;

/// A whole CSV file (plain or `.gz`), read eagerly.
#[derive(Debug, Clone)]
pub struct CsvFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes as stored (compressed for `.gz`), lower-case hex.
    pub sha256: String,
    headers: Vec<String>,
    rows: Vec<(u64, csv::StringRecord)>,
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of the file at `path`, lower-case hex.
pub fn file_sha256(path: &Path) -> Result<String, ProfileError> {
    let bytes = std::fs::read(path).map_err(|e| ProfileError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(sha256_hex(&bytes))
}

impl CsvFile {
    /// Reads `path`; a name ending in `.gz` is decompressed first.
    pub fn open(path: &Path) -> Result<Self, ProfileError> {
        let io = |e| ProfileError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let raw = std::fs::read(path).map_err(io)?;
        let sha256 = sha256_hex(&raw);
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(io)?;
            out
        } else {
            raw
        };
        Self::parse(path, sha256, &text)
    }

    fn parse(path: &Path, sha256: String, text: &[u8]) -> Result<Self, ProfileError> {
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(ProfileError::bad(
                path,
                1,
                None,
                "the file is empty; expected a CSV header and data rows (re-run the profiler for it)",
            ));
        }
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(text);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| ProfileError::bad(path, 1, None, format!("unreadable header: {e}")))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                ProfileError::bad(path, line, None, format!("unreadable row: {e}"))
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            if rec.len() == 1 && rec.get(0).is_some_and(|c| c.trim().is_empty()) {
                continue; // blank line
            }
            if rec.len() < headers.len() {
                return Err(ProfileError::bad(
                    path,
                    line,
                    Some(&headers[rec.len()]),
                    format!(
                        "the row has {} fields but the header has {}: the row is truncated (an interrupted profiling run?); delete it or re-run the profiler",
                        rec.len(),
                        headers.len()
                    ),
                ));
            }
            if rec.len() > headers.len() {
                return Err(ProfileError::bad(
                    path,
                    line,
                    None,
                    format!(
                        "the row has {} fields but the header has {}",
                        rec.len(),
                        headers.len()
                    ),
                ));
            }
            rows.push((line, rec));
        }
        if rows.is_empty() {
            return Err(ProfileError::bad(
                path,
                2,
                None,
                "the file has a header but no data rows",
            ));
        }
        Ok(CsvFile {
            path: path.to_path_buf(),
            sha256,
            headers,
            rows,
        })
    }

    /// Parses CSV `text` as if read from `path` (for tests and in-memory data).
    pub fn from_text(path: &Path, text: &str) -> Result<Self, ProfileError> {
        Self::parse(path, sha256_hex(text.as_bytes()), text.as_bytes())
    }

    /// The header names.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Index of column `name`, if present.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// Index of column `name`, or an error naming the file and the column.
    pub fn column(&self, name: &str) -> Result<usize, ProfileError> {
        self.find(name).ok_or_else(|| {
            ProfileError::bad(
                &self.path,
                1,
                Some(name),
                format!(
                    "required column is missing from the header (it has {} columns); is this the right kind of profile file?",
                    self.headers.len()
                ),
            )
        })
    }

    /// The data rows.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> + '_ {
        self.rows.iter().map(move |(line, rec)| Row {
            file: self,
            line: *line,
            rec,
        })
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True without data rows (never, for a successfully read file).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One data row, with typed access to its cells.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    file: &'a CsvFile,
    /// 1-based line number in the file.
    pub line: u64,
    rec: &'a csv::StringRecord,
}

impl Row<'_> {
    fn cell(&self, col: usize) -> &str {
        self.rec.get(col).unwrap_or("").trim()
    }

    fn err(&self, col: usize, why: String) -> ProfileError {
        ProfileError::bad(
            &self.file.path,
            self.line,
            Some(&self.file.headers[col]),
            why,
        )
    }

    /// The cell as text.
    pub fn str(&self, col: usize) -> &str {
        self.cell(col)
    }

    /// The cell as a number; empty or non-numeric cells are errors.
    pub fn f64(&self, col: usize) -> Result<f64, ProfileError> {
        self.opt_f64(col)?
            .ok_or_else(|| self.err(col, "the cell is empty; expected a number".into()))
    }

    /// The cell as a number, `None` when empty or NaN (Vidur's non-applicable stats).
    pub fn opt_f64(&self, col: usize) -> Result<Option<f64>, ProfileError> {
        let c = self.cell(col);
        if c.is_empty() || c.eq_ignore_ascii_case("nan") {
            return Ok(None);
        }
        match c.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(self.err(col, format!("`{c}` is not a number"))),
        }
    }

    /// The cell as a non-negative integer (`4096` or `4096.0`).
    pub fn u64(&self, col: usize) -> Result<u64, ProfileError> {
        let c = self.cell(col);
        if let Ok(v) = c.parse::<u64>() {
            return Ok(v);
        }
        match c.parse::<f64>() {
            Ok(v) if v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 => Ok(v as u64),
            _ => Err(self.err(col, format!("`{c}` is not a non-negative whole number"))),
        }
    }

    /// The cell as a boolean (`True`/`False`, `true`/`false`, `1`/`0`).
    pub fn bool(&self, col: usize) -> Result<bool, ProfileError> {
        match self.cell(col) {
            "True" | "true" | "1" | "1.0" => Ok(true),
            "False" | "false" | "0" | "0.0" => Ok(false),
            c => Err(self.err(col, format!("`{c}` is not a boolean (True/False)"))),
        }
    }
}
