//! Streaming readers of a run directory's CSV files (schemas in `docs/outputs.md`).
//!
//! Each reader looks columns up by header name (extra columns are ignored, missing optional ones are
//! noted), reads the file one record at a time, and keeps only aggregates (per-request values for the
//! CDFs, time bins, a token histogram, per-operator sums), never the whole file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::binned::TimeBins;
use super::plots::Dist;
use super::ReportError;

/// Operator columns of `batches.csv` (`<op>_ms`), in the documented order.
pub const OP_NAMES: [&str; 15] = [
    "attn_pre_proj",
    "attn_post_proj",
    "attn_rope",
    "attn_kv_cache_save",
    "attn_prefill",
    "attn_decode",
    "input_layernorm",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
    "all_reduce",
    "send_recv",
    "cpu_overhead",
];

/// The per-request metrics of `requests.csv` that get a CDF: (column, title, short name).
/// (`tbt_mean_s` gets none: it equals `tpot_s` by definition; the every-gap distribution comes
/// from `itl_histogram.csv`.)
pub const REQUEST_METRICS: [(&str, &str, &str); 5] = [
    ("ttft_s", "Time to first token (TTFT)", "ttft"),
    ("tpot_s", "Time per output token (TPOT)", "tpot"),
    ("e2e_s", "End-to-end latency (E2E)", "e2e"),
    (
        "tbt_max_s",
        "Longest gap between tokens, per request (worst stall)",
        "tbt_max",
    ),
    ("scheduling_delay_s", "Scheduling delay", "scheduling_delay"),
];

/// A CSV file opened with its header, and the column indices looked up by name.
struct Table {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    headers: Vec<String>,
}

impl Table {
    fn open(path: &Path) -> Result<Table, ReportError> {
        let file = File::open(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let headers = reader
            .headers()
            .map_err(|e| csv_error(path, &e))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        Ok(Table {
            path: path.to_path_buf(),
            reader,
            headers,
        })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// Looks up required columns; a missing one is an error naming the file and the column.
    fn required(&self, names: &[&str]) -> Result<Vec<usize>, ReportError> {
        names
            .iter()
            .map(|n| {
                self.column(n).ok_or_else(|| ReportError::Csv {
                    path: self.path.clone(),
                    line: 1,
                    message: format!(
                        "missing column `{n}` (the header must name it; see docs/outputs.md)"
                    ),
                })
            })
            .collect()
    }

    /// Calls `row` for every record, with a parser of its fields.
    fn for_each(
        mut self,
        mut row: impl FnMut(&Fields<'_>) -> Result<(), ReportError>,
    ) -> Result<u64, ReportError> {
        let mut record = csv::ByteRecord::new();
        let mut rows = 0u64;
        loop {
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(csv_error(&self.path, &e)),
            }
            let line = record.position().map_or(0, |p| p.line());
            row(&Fields {
                path: &self.path,
                headers: &self.headers,
                record: &record,
                line,
            })?;
            rows += 1;
        }
        Ok(rows)
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> ReportError {
    ReportError::Csv {
        path: path.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    }
}

/// One record, with typed access to its fields.
struct Fields<'a> {
    path: &'a Path,
    headers: &'a [String],
    record: &'a csv::ByteRecord,
    line: u64,
}

impl Fields<'_> {
    fn raw(&self, idx: usize) -> &str {
        std::str::from_utf8(self.record.get(idx).unwrap_or(b"")).unwrap_or("\u{fffd}")
    }

    fn error(&self, idx: usize, what: &str) -> ReportError {
        ReportError::Csv {
            path: self.path.to_path_buf(),
            line: self.line,
            message: format!(
                "column `{}`: {what}, found {:?}",
                self.headers[idx],
                self.raw(idx)
            ),
        }
    }

    /// A number, or `None` for an empty field.
    fn opt_f64(&self, idx: usize) -> Result<Option<f64>, ReportError> {
        let s = self.raw(idx).trim();
        if s.is_empty() {
            return Ok(None);
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(self.error(idx, "expected a finite number or an empty field")),
        }
    }

    fn f64(&self, idx: usize) -> Result<f64, ReportError> {
        self.opt_f64(idx)?
            .ok_or_else(|| self.error(idx, "expected a number"))
    }

    fn u32(&self, idx: usize) -> Result<u32, ReportError> {
        self.raw(idx)
            .trim()
            .parse::<u32>()
            .map_err(|_| self.error(idx, "expected a non-negative integer"))
    }
}

/// What the report needs from `requests.csv`.
#[derive(Debug, Default)]
pub struct RequestData {
    /// Rows read.
    pub rows: u64,
    /// For each metric of [`REQUEST_METRICS`] present in the file: values per replica (empty fields,
    /// e.g. TBT of one-token requests, are skipped).
    pub metrics: BTreeMap<&'static str, BTreeMap<u32, Vec<f64>>>,
    /// Metric columns the file lacks.
    pub missing: Vec<&'static str>,
}

/// Reads `requests.csv`.
pub fn read_requests(path: &Path) -> Result<RequestData, ReportError> {
    let table = Table::open(path)?;
    let replica = table.required(&["replica_id"])?[0];
    let mut data = RequestData::default();
    let mut cols = Vec::new();
    for (name, _, _) in REQUEST_METRICS {
        match table.column(name) {
            Some(i) => {
                cols.push((name, i));
                data.metrics.insert(name, BTreeMap::new());
            }
            None => data.missing.push(name),
        }
    }
    let metrics = &mut data.metrics;
    data.rows = table.for_each(|f| {
        let r = f.u32(replica)?;
        for &(name, i) in &cols {
            if let Some(v) = f.opt_f64(i)? {
                metrics
                    .get_mut(name)
                    .expect("inserted above")
                    .entry(r)
                    .or_default()
                    .push(v);
            }
        }
        Ok(())
    })?;
    Ok(data)
}

/// What the report needs from `batches.csv`.
#[derive(Debug, Default)]
pub struct BatchData {
    /// Rows read (all stages).
    pub rows: u64,
    /// Batches (stage-0 rows).
    pub batches: u64,
    /// Per replica, binned by batch start time: [requests in the batch, tokens in the batch].
    pub bins: TimeBins<2>,
    /// Batches by token count (stage-0 rows).
    pub token_histogram: BTreeMap<u64, u64>,
    /// Per replica, milliseconds spent in each operator of [`OP_NAMES`] (summed over stages).
    pub op_ms: BTreeMap<u32, [f64; 15]>,
    /// Operator columns present in the file (indices into [`OP_NAMES`]).
    pub ops_present: Vec<usize>,
}

/// Reads `batches.csv`.
pub fn read_batches(path: &Path) -> Result<BatchData, ReportError> {
    let table = Table::open(path)?;
    let req = table.required(&["replica_id", "start_s", "size", "total_tokens"])?;
    let (replica, start, size, tokens) = (req[0], req[1], req[2], req[3]);
    let stage = table.column("stage");
    let ops: Vec<(usize, usize)> = OP_NAMES
        .iter()
        .enumerate()
        .filter_map(|(k, op)| table.column(&format!("{op}_ms")).map(|i| (k, i)))
        .collect();
    let mut data = BatchData {
        ops_present: ops.iter().map(|&(k, _)| k).collect(),
        ..BatchData::default()
    };
    let (bins, hist, op_ms, batches) = (
        &mut data.bins,
        &mut data.token_histogram,
        &mut data.op_ms,
        &mut data.batches,
    );
    data.rows = table.for_each(|f| {
        let r = f.u32(replica)?;
        let sums = op_ms.entry(r).or_insert([0.0; 15]);
        for &(k, i) in &ops {
            sums[k] += f.opt_f64(i)?.unwrap_or(0.0);
        }
        let first_stage = match stage {
            Some(i) => f.u32(i)? == 0,
            None => true,
        };
        if first_stage {
            let n_tokens = f.f64(tokens)?;
            bins.add(r, f.f64(start)?, [f.f64(size)?, n_tokens]);
            *hist.entry(n_tokens.max(0.0).round() as u64).or_default() += 1;
            *batches += 1;
        }
        Ok(())
    })?;
    Ok(data)
}

/// Reads `itl_histogram.csv` (columns `itl_s`, `gaps`).
pub fn read_itl(path: &Path) -> Result<Dist, ReportError> {
    let table = Table::open(path)?;
    let req = table.required(&["itl_s", "gaps"])?;
    let mut pts = Vec::new();
    table.for_each(|f| {
        let v = f.f64(req[0])?;
        let n = f
            .raw(req[1])
            .trim()
            .parse::<u64>()
            .map_err(|_| f.error(req[1], "expected a non-negative integer count"))?;
        pts.push((v, n));
        Ok(())
    })?;
    Ok(Dist::from_weighted(pts))
}

/// What the report needs from `timeseries.csv`.
#[derive(Debug, Default)]
pub struct TimeseriesData {
    /// Rows read.
    pub rows: u64,
    /// Sampling interval of the file, s (from `config.toml`, 1 s when unknown).
    pub interval_s: f64,
    /// Per replica, binned by sample time: [queued requests, running requests, KV use in %,
    /// completed requests per second, busy fraction in %]. Quantities whose column is missing stay
    /// empty.
    pub bins: TimeBins<5>,
    /// Which of the five quantities the file has.
    pub present: [bool; 5],
}

/// Reads `timeseries.csv`, sampled every `interval_s` (its bins are never narrower).
pub fn read_timeseries(path: &Path, interval_s: f64) -> Result<TimeseriesData, ReportError> {
    let table = Table::open(path)?;
    let req = table.required(&["time_s", "replica_id"])?;
    let (time, replica) = (req[0], req[1]);
    let queued = table.column("queued_requests");
    let running = table.column("running_requests");
    let kv = table
        .column("kv_blocks_used")
        .zip(table.column("kv_blocks_total"));
    let completed = table.column("completed_requests");
    let busy = table.column("busy_fraction");
    let mut data = TimeseriesData {
        present: [
            queued.is_some(),
            running.is_some(),
            kv.is_some(),
            completed.is_some(),
            busy.is_some(),
        ],
        interval_s,
        bins: TimeBins::with_width(interval_s),
        ..TimeseriesData::default()
    };
    let bins = &mut data.bins;
    let mut last_time: BTreeMap<u32, f64> = BTreeMap::new();
    data.rows = table.for_each(|f| {
        let t = f.f64(time)?;
        let r = f.u32(replica)?;
        let interval_s = t - last_time.insert(r, t).unwrap_or(0.0);
        let get = |c: Option<usize>| -> Result<f64, ReportError> {
            Ok(match c {
                Some(i) => f.opt_f64(i)?.unwrap_or(0.0),
                None => 0.0,
            })
        };
        let kv_pct = match kv {
            Some((u, tot)) => {
                let total = f.opt_f64(tot)?.unwrap_or(0.0);
                if total > 0.0 {
                    100.0 * f.opt_f64(u)?.unwrap_or(0.0) / total
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        let rate = if interval_s > 0.0 {
            get(completed)? / interval_s
        } else {
            0.0
        };
        // A sample covers the interval before it: binned at the interval's middle.
        bins.add(
            r,
            t - interval_s / 2.0,
            [
                get(queued)?,
                get(running)?,
                kv_pct,
                rate,
                100.0 * get(busy)?,
            ],
        );
        Ok(())
    })?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    #[test]
    fn requests_skip_empty_fields_and_ignore_extra_columns() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "requests.csv",
            "request_id,replica_id,extra,ttft_s,tpot_s,e2e_s\n0,0,x,0.5,,2.0\n1,1,y,0.25,0.01,1.0\n",
        );
        let r = read_requests(&p).unwrap();
        assert_eq!(r.rows, 2);
        assert_eq!(r.metrics["ttft_s"][&0], vec![0.5]);
        assert_eq!(r.metrics["ttft_s"][&1], vec![0.25]);
        assert!(!r.metrics["tpot_s"].contains_key(&0));
        assert_eq!(r.missing, vec!["tbt_max_s", "scheduling_delay_s"]);
    }

    #[test]
    fn bad_value_names_file_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "requests.csv",
            "request_id,replica_id,ttft_s\n0,0,0.5\n1,0,abc\n",
        );
        let e = read_requests(&p).unwrap_err().to_string();
        assert!(e.contains("requests.csv"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("ttft_s"), "{e}");
        assert!(e.contains("abc"), "{e}");
    }

    #[test]
    fn missing_required_column_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "batches.csv",
            "batch_id,replica_id,start_s\n0,0,1\n",
        );
        let e = read_batches(&p).unwrap_err().to_string();
        assert!(e.contains("missing column `size`"), "{e}");
    }

    #[test]
    fn batches_count_stage_zero_and_sum_ops_over_stages() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "batches.csv",
            "batch_id,replica_id,stage,start_s,end_s,size,total_tokens,mlp_up_proj_ms,add_ms\n\
             0,0,0,0.0,0.1,2,100,1.5,0.5\n0,0,1,0.1,0.2,2,100,1.5,0.5\n1,0,0,0.1,0.2,3,3,1.0,\n",
        );
        let b = read_batches(&p).unwrap();
        assert_eq!(b.rows, 3);
        assert_eq!(b.batches, 2);
        assert_eq!(b.token_histogram, BTreeMap::from([(3, 1), (100, 1)]));
        let up = OP_NAMES.iter().position(|o| *o == "mlp_up_proj").unwrap();
        let add = OP_NAMES.iter().position(|o| *o == "add").unwrap();
        assert_eq!(b.op_ms[&0][up], 4.0);
        assert_eq!(b.op_ms[&0][add], 1.0);
        assert_eq!(b.ops_present, vec![add.min(up), add.max(up)]);
    }

    #[test]
    fn timeseries_rates_and_kv_percent() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "timeseries.csv",
            "time_s,replica_id,queued_requests,running_requests,kv_blocks_used,kv_blocks_total,completed_requests,batches,busy_fraction\n\
             1,0,4,2,50,200,3,10,0.5\n2,0,0,1,100,200,6,10,1\n",
        );
        let t = read_timeseries(&p, 1.0).unwrap();
        assert_eq!(t.rows, 2);
        assert_eq!(t.bins.width_s(), 1.0, "bins no narrower than the sampling");
        assert_eq!(t.present, [true; 5]);
        let kv: Vec<f64> = t.bins.means(0, 2).into_iter().map(|p| p.1).collect();
        assert_eq!(kv, vec![25.0, 50.0]);
        let rate: Vec<f64> = t.bins.means(0, 3).into_iter().map(|p| p.1).collect();
        assert_eq!(rate, vec![3.0, 6.0]);
    }
}
