//! Run outputs (docs/outputs.md): files streamed during the run (`requests.csv`, `batches.csv`,
//! `timeseries.csv`, `trace.json`) and files written at the end (`summary.json`, `config.toml`).

pub mod itl;
pub mod requests;
pub mod staging;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use predictor::{Op, OpBreakdown};

use crate::error::SimError;

/// One batch on one stage, as written to `batches.csv` and `trace.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageRecord {
    /// Batch id (formation order).
    pub batch_id: u64,
    /// Replica.
    pub replica: u32,
    /// Pipeline stage.
    pub stage: u32,
    /// Start, ns.
    pub start_ns: u64,
    /// End, ns.
    pub end_ns: u64,
    /// Requests.
    pub size: u32,
    /// Requests with a prefill chunk.
    pub prefill_requests: u32,
    /// Requests decoding.
    pub decode_requests: u32,
    /// Prefill tokens.
    pub prefill_tokens: u64,
    /// Decode tokens.
    pub decode_tokens: u64,
    /// KV blocks allocated on the replica when the batch was formed.
    pub kv_blocks_used: u64,
}

/// One row of `timeseries.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeseriesRow {
    /// Sample time, ns.
    pub time_ns: u64,
    /// Replica.
    pub replica: u32,
    /// Requests waiting for admission.
    pub queued: u64,
    /// Requests admitted and not finished.
    pub running: u64,
    /// KV blocks in use.
    pub kv_used: u64,
    /// KV blocks in all.
    pub kv_total: u64,
    /// Requests finished in the interval.
    pub completed: u64,
    /// Batches finished in the interval.
    pub batches: u64,
    /// Fraction of the interval stage 0 was busy.
    pub busy_fraction: f64,
}

/// Most rows `timeseries.csv` may get (about 0.6 GB); a run that would write more stops with an
/// error before writing them (docs/outputs.md).
pub const MAX_TIMESERIES_ROWS: u64 = 10_000_000;

/// Smallest sampling interval of `timeseries.csv`, s (`--timeseries-interval`).
pub const MIN_TIMESERIES_INTERVAL_S: f64 = 1e-3;

/// Writes `ns` as seconds with nine decimals (exact).
pub fn fmt_s(out: &mut String, ns: u64) {
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(ns / 1_000_000_000));
    out.push('.');
    let frac = buf.format(ns % 1_000_000_000);
    for _ in frac.len()..9 {
        out.push('0');
    }
    out.push_str(frac);
}

/// Appends the integer `v` in decimal.
pub fn fmt_int(out: &mut String, v: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(v));
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct Out {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Out {
    fn create(dir: &Path, name: &str) -> Result<Self, SimError> {
        let path = dir.join(name);
        let f = File::create(&path).map_err(io_err(&path))?;
        Ok(Out {
            w: BufWriter::with_capacity(1 << 16, f),
            path,
        })
    }

    fn put(&mut self, s: &str) -> Result<(), SimError> {
        self.w.write_all(s.as_bytes()).map_err(io_err(&self.path))
    }

    fn finish(mut self) -> Result<(), SimError> {
        self.w.flush().map_err(io_err(&self.path))
    }
}

/// Thread id of the incoming-KV-transfer track of a replica in `trace.json`.
const TRANSFER_TID: u32 = 1000;

/// The files streamed during a run.
pub struct Sinks {
    requests: Out,
    batches: Option<Out>,
    timeseries: Out,
    trace: Option<Out>,
    line: String,
    /// The header row of `requests.csv` still lacks its line end (more columns may follow).
    header_open: bool,
    /// Disaggregated serving: `requests.csv` has the transfer columns, `trace.json` transfer spans.
    disaggregated: bool,
    num_replicas: u32,
}

impl Sinks {
    /// Opens the streamed files in `dir` (created if missing).
    pub fn create(
        dir: &Path,
        batches: bool,
        trace: bool,
        num_replicas: u32,
        pp: u32,
    ) -> Result<Self, SimError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut requests = Out::create(dir, "requests.csv")?;
        requests.put(requests::HEADER)?;
        let mut b = if batches {
            Some(Out::create(dir, "batches.csv")?)
        } else {
            None
        };
        if let Some(b) = &mut b {
            let mut h = String::from("batch_id,replica_id,stage,start_s,end_s,size,prefill_requests,decode_requests,prefill_tokens,decode_tokens,total_tokens,kv_blocks_used");
            for op in Op::ALL {
                h.push(',');
                h.push_str(op.name());
                h.push_str("_ms");
            }
            h.push('\n');
            b.put(&h)?;
        }
        let mut ts = Out::create(dir, "timeseries.csv")?;
        ts.put("time_s,replica_id,queued_requests,running_requests,kv_blocks_used,kv_blocks_total,completed_requests,batches,busy_fraction\n")?;
        let mut t = if trace {
            Some(Out::create(dir, "trace.json")?)
        } else {
            None
        };
        if let Some(t) = &mut t {
            let mut h = String::from("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
            for r in 0..num_replicas {
                if r > 0 {
                    h.push_str(",\n");
                }
                let _ = write!(h, "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{r},\"tid\":0,\"args\":{{\"name\":\"replica {r}\"}}}}");
                for s in 0..pp {
                    h.push_str(",\n");
                    let _ = write!(h, "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{r},\"tid\":{s},\"args\":{{\"name\":\"stage {s}\"}}}}");
                }
            }
            t.put(&h)?;
        }
        Ok(Sinks {
            requests,
            batches: b,
            timeseries: ts,
            trace: t,
            line: String::with_capacity(512),
            header_open: true,
            disaggregated: false,
            num_replicas,
        })
    }

    /// Disaggregated serving: `requests.csv` gets the transfer columns
    /// ([`requests::DISAGG_HEADER`]) and `trace.json` a track of incoming KV transfers per
    /// replica. Call before anything is written.
    pub fn with_disaggregation(mut self, on: bool) -> Result<Self, SimError> {
        self.disaggregated = on;
        if on {
            self.requests.put(requests::DISAGG_HEADER)?;
            if let Some(t) = &mut self.trace {
                for r in 0..self.num_replicas {
                    t.put(&format!(",\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{r},\"tid\":{TRANSFER_TID},\"args\":{{\"name\":\"KV transfers in\"}}}}"))?;
                }
            }
        }
        Ok(self)
    }

    fn close_header(&mut self) -> Result<(), SimError> {
        if self.header_open {
            self.header_open = false;
            self.requests.put("\n")?;
        }
        Ok(())
    }

    /// True when [`Sinks::stage`] writes anything (`batches.csv` or `trace.json` is open).
    pub fn writes_stages(&self) -> bool {
        self.batches.is_some() || self.trace.is_some()
    }

    /// Writes one batch-stage row and trace span.
    pub fn stage(&mut self, r: &StageRecord, ops: &OpBreakdown) -> Result<(), SimError> {
        if let Some(b) = &mut self.batches {
            let l = &mut self.line;
            l.clear();
            let _ = write!(l, "{},{},{},", r.batch_id, r.replica, r.stage);
            fmt_s(l, r.start_ns);
            l.push(',');
            fmt_s(l, r.end_ns);
            let _ = write!(
                l,
                ",{},{},{},{},{},{},{}",
                r.size,
                r.prefill_requests,
                r.decode_requests,
                r.prefill_tokens,
                r.decode_tokens,
                r.prefill_tokens + r.decode_tokens,
                r.kv_blocks_used
            );
            for (_, ms) in ops.iter() {
                let _ = write!(l, ",{ms}");
            }
            l.push('\n');
            b.put(l)?;
        }
        if let Some(t) = &mut self.trace {
            let l = &mut self.line;
            l.clear();
            l.push_str(",\n");
            let dur = r.end_ns - r.start_ns;
            let _ = write!(
                l,
                "{{\"name\":\"batch {}\",\"cat\":\"batch\",\"ph\":\"X\",\"ts\":{}.{:03},\"dur\":{}.{:03},\"pid\":{},\"tid\":{},\"args\":{{\"batch_id\":{},\"size\":{},\"prefill_tokens\":{},\"decode_tokens\":{},\"kv_blocks_used\":{}",
                r.batch_id,
                r.start_ns / 1000,
                r.start_ns % 1000,
                dur / 1000,
                dur % 1000,
                r.replica,
                r.stage,
                r.batch_id,
                r.size,
                r.prefill_tokens,
                r.decode_tokens,
                r.kv_blocks_used
            );
            for (op, ms) in ops.iter() {
                if ms != 0.0 {
                    let _ = write!(l, ",\"{}_ms\":{ms}", op.name());
                }
            }
            l.push_str("}}");
            t.put(l)?;
        }
        Ok(())
    }

    /// Writes one `requests.csv` row (requests come in id order).
    pub fn request(&mut self, r: &crate::request::Request) -> Result<(), SimError> {
        self.close_header()?;
        self.line.clear();
        requests::row(&mut self.line, r);
        if self.disaggregated {
            self.line.pop();
            requests::disagg_cells(&mut self.line, r);
            self.line.push('\n');
        }
        self.requests.put(&self.line)?;
        let (Some(t), Some(start), Some(end), Some(d)) = (
            &mut self.trace,
            r.kv_transfer_start_ns,
            r.kv_transfer_end_ns,
            r.decode_replica,
        ) else {
            return Ok(());
        };
        let l = &mut self.line;
        l.clear();
        let dur = end - start;
        let _ = write!(
            l,
            ",\n{{\"name\":\"KV request {}\",\"cat\":\"kv_transfer\",\"ph\":\"X\",\"ts\":{}.{:03},\"dur\":{}.{:03},\"pid\":{d},\"tid\":{TRANSFER_TID},\"args\":{{\"request_id\":{},\"from_replica\":{},\"bytes\":{}}}}}",
            r.id,
            start / 1000,
            start % 1000,
            dur / 1000,
            dur % 1000,
            r.id,
            r.replica,
            r.kv_transfer_bytes
        );
        t.put(l)
    }

    /// Writes one time-series row.
    pub fn timeseries(&mut self, r: &TimeseriesRow) -> Result<(), SimError> {
        let l = &mut self.line;
        l.clear();
        fmt_s(l, r.time_ns);
        let _ = writeln!(
            l,
            ",{},{},{},{},{},{},{},{}",
            r.replica,
            r.queued,
            r.running,
            r.kv_used,
            r.kv_total,
            r.completed,
            r.batches,
            r.busy_fraction
        );
        self.timeseries.put(l)
    }

    /// Closes every file.
    pub fn finish(mut self) -> Result<(), SimError> {
        self.close_header()?;
        self.requests.finish()?;
        if let Some(b) = self.batches {
            b.finish()?;
        }
        self.timeseries.finish()?;
        if let Some(mut t) = self.trace {
            t.put("\n]}\n")?;
            t.finish()?;
        }
        Ok(())
    }
}

/// Writes `text` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<(), SimError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(io_err(&path))
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn seconds_and_integers_are_written_as_the_standard_formatter_does() {
        for ns in [
            0u64,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            12_345_678_901_234,
            u64::MAX,
        ] {
            let mut got = String::from("x");
            fmt_s(&mut got, ns);
            let want = format!("x{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
            assert_eq!(got, want);
            let mut got = String::new();
            fmt_int(&mut got, ns);
            assert_eq!(got, ns.to_string());
        }
        let mut got = String::new();
        fmt_int(&mut got, u32::MAX);
        assert_eq!(got, "4294967295");
    }
}
