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
        let lines = LineIndex::new(text);
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| lines.line_of(text, p.byte()));
                ProfileError::bad(path, line, None, format!("unreadable row: {e}"))
            })?;
            let line = rec.position().map_or(0, |p| lines.line_of(text, p.byte()));
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

    /// Indices of the columns `names`, in order; an error names the first one missing.
    pub fn columns<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N], ProfileError> {
        let mut out = [0usize; N];
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = self.column(name)?;
        }
        Ok(out)
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

/// 1-based line numbers from byte offsets. The csv crate's own line count skips blank lines and
/// counts a CRLF line end as one line less, so errors cited the wrong line.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<u64>,
}

impl LineIndex {
    /// The line starts of `text`.
    pub fn new(text: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i as u64 + 1),
        );
        LineIndex { starts }
    }

    /// The 1-based line of the record of `text` (the text indexed) that the csv crate places at
    /// byte `offset` (where it began reading, before the blank lines it skips).
    pub fn line_of(&self, text: &[u8], mut offset: u64) -> u64 {
        while matches!(text.get(offset as usize), Some(b'\r' | b'\n')) {
            offset += 1;
        }
        self.starts.partition_point(|s| *s <= offset) as u64
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

    /// The cell as a number; empty, NaN or non-numeric cells are errors.
    pub fn f64(&self, col: usize) -> Result<f64, ProfileError> {
        self.opt_f64(col)?.ok_or_else(|| {
            let what = if self.cell(col).is_empty() {
                "empty"
            } else {
                "NaN"
            };
            self.err(col, format!("the cell is {what}; expected a number"))
        })
    }

    /// The cell as a time or another quantity that cannot be negative: a finite number ≥ 0.
    pub fn non_negative_f64(&self, col: usize) -> Result<f64, ProfileError> {
        let v = self.f64(col)?;
        if v < 0.0 {
            return Err(self.err(col, format!("{v} is negative; a time is ≥ 0")));
        }
        Ok(v)
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

    /// The cell as a non-negative integer that fits in 32 bits (model dimensions, counts).
    pub fn u32(&self, col: usize) -> Result<u32, ProfileError> {
        let v = self.u64(col)?;
        u32::try_from(v).map_err(|_| self.err(col, format!("{v} is too large")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Collective, MlpProfile, NetworkProfile};

    const MLP_HEADER: &str = "time_stats.input_layernorm.median,time_stats.attn_pre_proj.median,time_stats.attn_rope.median,time_stats.attn_post_proj.median,time_stats.post_attention_layernorm.median,time_stats.mlp_up_proj.median,time_stats.mlp_act.median,time_stats.mlp_down_proj.median,time_stats.add.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers";
    const MLP_ROW: &str =
        "0.005,0.065,0.005,0.025,0.005,0.116,0.007,0.06,0.002,32,32,4096,11008,32768,True,1,1";

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn a_good_file_parses() {
        let (_d, p) = write("mlp.csv", &format!("{MLP_HEADER}\n{MLP_ROW}\n"));
        let m = MlpProfile::read(&p).unwrap();
        assert_eq!(m.rows.len(), 1);
        assert_eq!(m.rows[0].median_ms[0], Some(0.065)); // attn_pre_proj is TOKEN_OPS[0]
    }

    #[test]
    fn empty_file_names_the_file() {
        let (_d, p) = write("mlp.csv", "");
        let e = MlpProfile::read(&p).unwrap_err().to_string();
        assert!(e.contains("mlp.csv:1") && e.contains("empty"), "{e}");
        let (_d, p) = write("mlp.csv", &format!("{MLP_HEADER}\n"));
        let e = MlpProfile::read(&p).unwrap_err().to_string();
        assert!(e.contains("mlp.csv:2") && e.contains("no data rows"), "{e}");
    }

    #[test]
    fn truncated_row_names_line_and_first_missing_column() {
        let cut = &MLP_ROW[..MLP_ROW.rfind(',').unwrap()];
        let (_d, p) = write("mlp.csv", &format!("{MLP_HEADER}\n{MLP_ROW}\n{cut}\n"));
        let e = MlpProfile::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("mlp.csv:3")
                && e.contains("num_tensor_parallel_workers")
                && e.contains("truncated"),
            "{e}"
        );
    }

    #[test]
    fn missing_column_is_named() {
        let header = MLP_HEADER.replace("time_stats.mlp_act.median", "something_else");
        let (_d, p) = write("mlp.csv", &format!("{header}\n{MLP_ROW}\n"));
        let e = MlpProfile::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("mlp.csv:1")
                && e.contains("`time_stats.mlp_act.median`")
                && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn lines_are_counted_across_blank_lines_and_crlf_and_nan_is_named() {
        for (text, line) in [
            ("a,b\n1,2\nx,3\n", 3),
            ("a,b\n1,2\n\nx,3\n", 4),
            ("a,b\r\n1,2\r\nx,3\r\n", 3),
            ("a,b\r\n\r\n1,2\r\n\r\nx,3", 5),
        ] {
            let f = CsvFile::from_text(Path::new("t.csv"), text).unwrap();
            let e = f.rows().find_map(|r| r.f64(0).err()).unwrap().to_string();
            assert!(
                e.starts_with(&format!("t.csv:{line}, column `a`")),
                "{text:?}: {e}"
            );
        }
        let f = CsvFile::from_text(Path::new("t.csv"), "a,b\n1,NaN\n2,\n").unwrap();
        let errs: Vec<String> = f
            .rows()
            .map(|r| r.f64(1).unwrap_err().to_string())
            .collect();
        assert!(
            errs[0].contains("t.csv:2") && errs[0].contains("is NaN"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("t.csv:3") && errs[1].contains("is empty"),
            "{errs:?}"
        );
    }

    #[test]
    fn non_numeric_cell_names_line_and_column() {
        let row = MLP_ROW.replace("0.116", "fast");
        let (_d, p) = write("mlp.csv", &format!("{MLP_HEADER}\n{MLP_ROW}\n{row}\n"));
        let e = MlpProfile::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("mlp.csv:3")
                && e.contains("time_stats.mlp_up_proj.median")
                && e.contains("`fast` is not a number"),
            "{e}"
        );
        let row = MLP_ROW.replace("True", "maybe");
        let (_d, p) = write("mlp.csv", &format!("{MLP_HEADER}\n{row}\n"));
        let e = MlpProfile::read(&p).unwrap_err().to_string();
        assert!(e.contains("use_gated_mlp") && e.contains("boolean"), "{e}");
    }

    #[test]
    fn network_files_with_bad_cells_and_gzip() {
        let text = ",time_stats.all_reduce.median,rank,num_workers,size,collective,devices_per_node\n0,0.01,0,2,2048,all_reduce,2\n1,oops,0,2,4096,all_reduce,2\n";
        let (_d, p) = write("all_reduce.csv", text);
        let e = NetworkProfile::read(&p, Collective::AllReduce)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("all_reduce.csv:3") && e.contains("time_stats.all_reduce.median"),
            "{e}"
        );
        // The same good rows, gzip-compressed.
        let good = &text[..text.find("1,oops").unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("all_reduce.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, good.as_bytes()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let n = NetworkProfile::read(&gz, Collective::AllReduce).unwrap();
        assert_eq!(n.samples(2).unwrap(), vec![(2048, 0.01)]);
        let e = CsvFile::open(&dir.path().join("nope.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.csv"), "{e}");
    }
}
