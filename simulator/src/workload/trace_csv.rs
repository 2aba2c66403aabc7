//! Reading CSV traces: Vidur's length traces and replay traces, and arrival-time columns.
//!
//! Files are read fully (traces are small next to a simulation's output). Every bad value is
//! reported with its file, line and column. A file whose name ends in `.gz` is decompressed as it
//! is read ([`open_text`], also used for Mooncake traces).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::error::WorkloadError;

/// Columns a length trace needs.
pub(crate) const LENGTH_COLUMNS: [&str; 2] = ["num_prefill_tokens", "num_decode_tokens"];
/// Columns a replay trace needs.
pub(crate) const REPLAY_COLUMNS: [&str; 3] =
    ["arrived_at", "num_prefill_tokens", "num_decode_tokens"];

/// One row of a replay trace, after scaling and clipping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplayRow {
    /// Arrival time, seconds (already multiplied by the time-scale factor).
    pub arrived_at_s: f64,
    /// Prompt tokens.
    pub prefill_tokens: u32,
    /// Output tokens.
    pub decode_tokens: u32,
    /// The `session_id` column, when present and not empty.
    pub session_id: Option<u64>,
    /// The `prefix_id` and `prefix_tokens` columns, when present and not empty.
    pub prefix: Option<(u64, u32)>,
    /// 1-based line of the row in its file.
    pub line: u64,
}

/// A trace file's text, buffered; gzip-decompressed when the name ends in `.gz`.
pub(crate) type TextReader = Box<dyn BufRead + Send>;

/// Opens a trace file for reading, decompressing it on the fly when its name ends in `.gz`.
pub(crate) fn open_text(path: &Path) -> Result<TextReader, WorkloadError> {
    let file = File::open(path).map_err(|source| WorkloadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(if is_gzip_name(path) {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    })
}

/// True when `path`'s name ends in `.gz` (any case).
pub(crate) fn is_gzip_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

fn open(path: &Path) -> Result<csv::Reader<TextReader>, WorkloadError> {
    Ok(csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(open_text(path)?))
}

fn csv_error(path: &Path, err: csv::Error) -> WorkloadError {
    let line = err.position().map(|p| p.line()).unwrap_or(0);
    match err.into_kind() {
        csv::ErrorKind::Io(source) => WorkloadError::Io {
            path: path.to_path_buf(),
            source,
        },
        kind => WorkloadError::BadLine {
            path: path.to_path_buf(),
            line,
            problem: format!("{kind:?}; fix the CSV syntax (comma-separated, one header row)"),
        },
    }
}

/// A CSV reader positioned after the header, with the indices of the named columns.
struct Columns {
    reader: csv::Reader<TextReader>,
    path: PathBuf,
}

impl Columns {
    fn open(path: &Path) -> Result<Self, WorkloadError> {
        Ok(Columns {
            reader: open(path)?,
            path: path.to_path_buf(),
        })
    }

    fn index(&mut self, column: &str, fix: &str) -> Result<usize, WorkloadError> {
        self.optional_index(column)?.ok_or_else(|| {
            let found = self
                .reader
                .headers()
                .map(|h| h.iter().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            WorkloadError::MissingColumn {
                path: self.path.clone(),
                column: column.to_string(),
                found: if found.is_empty() {
                    "none".to_string()
                } else {
                    found
                },
                fix: fix.to_string(),
            }
        })
    }

    fn optional_index(&mut self, column: &str) -> Result<Option<usize>, WorkloadError> {
        let headers = self
            .reader
            .headers()
            .map_err(|e| csv_error(&self.path, e))?;
        Ok(headers.iter().position(|h| h == column))
    }

    /// Every data row with its 1-based line number.
    fn rows(
        &mut self,
    ) -> impl Iterator<Item = Result<(u64, csv::StringRecord), WorkloadError>> + '_ {
        let path = self.path.clone();
        self.reader.records().map(move |r| match r {
            Ok(record) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                Ok((line, record))
            }
            Err(e) => Err(csv_error(&path, e)),
        })
    }
}

/// Checks that `path` opens, has every column of `columns`, and has at least one data row.
pub(crate) fn check_columns(path: &Path, columns: &[&str], fix: &str) -> Result<(), WorkloadError> {
    let mut file = Columns::open(path)?;
    for column in columns {
        file.index(column, fix)?;
    }
    let first = file.rows().next();
    match first {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e),
        None => Err(WorkloadError::EmptyTrace {
            path: path.to_path_buf(),
        }),
    }
}

fn number(
    path: &Path,
    line: u64,
    record: &csv::StringRecord,
    index: usize,
    column: &str,
) -> Result<f64, WorkloadError> {
    let text = record.get(index).unwrap_or("");
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(WorkloadError::BadLine {
            path: path.to_path_buf(),
            line,
            problem: format!(
                "column `{column}` is {text:?}, not a finite number ≥ 0; fix or remove the row"
            ),
        }),
    }
}

fn optional_id(
    path: &Path,
    line: u64,
    record: &csv::StringRecord,
    index: Option<usize>,
    column: &str,
) -> Result<Option<u64>, WorkloadError> {
    let Some(index) = index else { return Ok(None) };
    let text = record.get(index).unwrap_or("");
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<u64>().map(Some).map_err(|_| WorkloadError::BadLine {
        path: path.to_path_buf(),
        line,
        problem: format!("column `{column}` is {text:?}, not a non-negative integer id; fix it or leave it empty"),
    })
}

/// Scales a token count as Vidur does (multiply, truncate) and keeps it ≥ 1.
fn scaled_tokens(value: f64, scale: f64) -> u32 {
    let v = (value * scale).trunc();
    if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        (v as u32).max(1)
    }
}

/// Clips a request to `max_tokens` as Vidur's length-trace generator does: when `P + D` exceeds
/// the cap by `e`, `⌈e·P/(P+D)⌉` comes off the prompt and `⌈e·D/(P+D)⌉` off the output, each
/// kept ≥ 1. The result never exceeds `max_tokens` (for `max_tokens ≥ 2`).
pub(crate) fn clip_to_max(prefill: u32, decode: u32, max_tokens: u32) -> (u32, u32) {
    let (p, d, max) = (u64::from(prefill), u64::from(decode), u64::from(max_tokens));
    let total = p + d;
    if total <= max {
        return (prefill, decode);
    }
    let excess = total - max;
    let cut_p = (excess * p).div_ceil(total);
    let cut_d = (excess * d).div_ceil(total);
    let new_p = p.saturating_sub(cut_p).max(1);
    let new_d = d.saturating_sub(cut_d).max(1);
    debug_assert!(
        new_p + new_d <= max,
        "clip {p}+{d} to {max} gave {new_p}+{new_d}"
    );
    (new_p as u32, new_d as u32)
}

/// Reads a length trace: every row's (prompt, output) tokens, scaled and clipped to `max_tokens`.
pub(crate) fn read_lengths(
    path: &Path,
    prefill_scale: f64,
    decode_scale: f64,
    max_tokens: u32,
) -> Result<Vec<(u32, u32)>, WorkloadError> {
    let fix = "a length trace needs num_prefill_tokens and num_decode_tokens";
    let mut file = Columns::open(path)?;
    let p_index = file.index(LENGTH_COLUMNS[0], fix)?;
    let d_index = file.index(LENGTH_COLUMNS[1], fix)?;
    let mut rows = Vec::new();
    for row in file.rows() {
        let (line, record) = row?;
        let p = number(path, line, &record, p_index, LENGTH_COLUMNS[0])?;
        let d = number(path, line, &record, d_index, LENGTH_COLUMNS[1])?;
        rows.push(clip_to_max(
            scaled_tokens(p, prefill_scale),
            scaled_tokens(d, decode_scale),
            max_tokens,
        ));
    }
    if rows.is_empty() {
        return Err(WorkloadError::EmptyTrace {
            path: path.to_path_buf(),
        });
    }
    Ok(rows)
}

/// Reads a column of arrival times (seconds), sorted ascending.
pub(crate) fn read_arrival_times(path: &Path, column: &str) -> Result<Vec<f64>, WorkloadError> {
    let mut file = Columns::open(path)?;
    let index = file.index(
        column,
        "set workload.arrival.column to the column holding arrival times in seconds",
    )?;
    let mut times = Vec::new();
    for row in file.rows() {
        let (line, record) = row?;
        times.push(number(path, line, &record, index, column)?);
    }
    if times.is_empty() {
        return Err(WorkloadError::EmptyTrace {
            path: path.to_path_buf(),
        });
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Reads a replay trace: one row per request, scaled, clipped to `max_tokens` (both prompt and
/// output, proportionally), and stably sorted by arrival time.
pub(crate) fn read_replay(
    path: &Path,
    time_scale: f64,
    prefill_scale: f64,
    decode_scale: f64,
    max_tokens: u32,
) -> Result<Vec<ReplayRow>, WorkloadError> {
    let fix = "a replay trace needs arrived_at (seconds), num_prefill_tokens and num_decode_tokens";
    let mut file = Columns::open(path)?;
    let t_index = file.index(REPLAY_COLUMNS[0], fix)?;
    let p_index = file.index(REPLAY_COLUMNS[1], fix)?;
    let d_index = file.index(REPLAY_COLUMNS[2], fix)?;
    let session_index = file.optional_index("session_id")?;
    let prefix_index = file.optional_index("prefix_id")?;
    let prefix_tokens_index = file.optional_index("prefix_tokens")?;
    if prefix_index.is_some() && prefix_tokens_index.is_none() {
        return Err(WorkloadError::MissingColumn {
            path: path.to_path_buf(),
            column: "prefix_tokens".to_string(),
            found: "prefix_id but no prefix_tokens".to_string(),
            fix: "add prefix_tokens (the shared prefix's length in tokens) next to prefix_id"
                .to_string(),
        });
    }
    let mut rows = Vec::new();
    for row in file.rows() {
        let (line, record) = row?;
        let arrived_at_s = number(path, line, &record, t_index, REPLAY_COLUMNS[0])? * time_scale;
        let p = scaled_tokens(
            number(path, line, &record, p_index, REPLAY_COLUMNS[1])?,
            prefill_scale,
        );
        let d = scaled_tokens(
            number(path, line, &record, d_index, REPLAY_COLUMNS[2])?,
            decode_scale,
        );
        let (prefill_tokens, decode_tokens) = clip_to_max(p, d, max_tokens);
        let session_id = optional_id(path, line, &record, session_index, "session_id")?;
        let prefix = match optional_id(path, line, &record, prefix_index, "prefix_id")? {
            None => None,
            Some(id) => {
                let tokens =
                    optional_id(path, line, &record, prefix_tokens_index, "prefix_tokens")?;
                match tokens {
                    Some(t) if t >= 1 && t <= u64::from(u32::MAX) => Some((id, t as u32)),
                    _ => {
                        return Err(WorkloadError::BadLine {
                            path: path.to_path_buf(),
                            line,
                            problem: "prefix_id is set but prefix_tokens is empty or 0; give the prefix length in tokens".to_string(),
                        })
                    }
                }
            }
        };
        rows.push(ReplayRow {
            arrived_at_s,
            prefill_tokens,
            decode_tokens,
            session_id,
            prefix,
            line,
        });
    }
    if rows.is_empty() {
        return Err(WorkloadError::EmptyTrace {
            path: path.to_path_buf(),
        });
    }
    rows.sort_by(|a, b| a.arrived_at_s.total_cmp(&b.arrived_at_s));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_matches_vidur_rule_and_respects_the_cap() {
        // Under the cap: unchanged.
        assert_eq!(clip_to_max(3000, 1000, 4096), (3000, 1000));
        // 6000 + 2000 over 4096 by 3904: P loses ⌈3904·0.75⌉ = 2928, D loses ⌈3904·0.25⌉ = 976.
        assert_eq!(clip_to_max(6000, 2000, 4096), (3072, 1024));
        // Tiny output stays ≥ 1.
        let (p, d) = clip_to_max(14050, 1, 4096);
        assert!(d >= 1 && p + d <= 4096, "{p} {d}");
        for p in [1u32, 2, 7, 100, 4095, 4096, 9000, 100_000] {
            for d in [1u32, 3, 500, 4095, 70_000] {
                for max in [2u32, 3, 100, 4096] {
                    let (cp, cd) = clip_to_max(p, d, max);
                    assert!(
                        cp >= 1 && cd >= 1 && cp + cd <= max.max(p.min(max)),
                        "{p} {d} {max}"
                    );
                    assert!(cp + cd <= max || p + d <= max, "{p} {d} {max} -> {cp} {cd}");
                }
            }
        }
    }

    #[test]
    fn scaling_truncates_and_keeps_one_token() {
        assert_eq!(scaled_tokens(10.0, 0.25), 2);
        assert_eq!(scaled_tokens(1.0, 0.1), 1);
        assert_eq!(scaled_tokens(0.0, 1.0), 1);
    }
}
