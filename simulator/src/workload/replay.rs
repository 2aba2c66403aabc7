//! Replay of Vidur-format CSV traces, with our optional `session_id`, `prefix_id` and
//! `prefix_tokens` columns.

use std::collections::BTreeMap;
use std::path::Path;

use super::arrival::seconds_to_ns;
use super::config::TraceConfig;
use super::error::WorkloadError;
use super::synthetic::Bounds;
use super::trace_csv::{self, ReplayRow};
use super::{RequestSpec, Segment};

/// The conversation so far of a traced session.
struct History {
    segments: Vec<Segment>,
    tokens: u64,
}

/// A stream of replayed requests.
pub(crate) struct CsvReplay {
    rows: std::vec::IntoIter<ReplayRow>,
    bounds: Bounds,
    sessions: BTreeMap<u64, History>,
    next_segment_id: u64,
    /// Seconds subtracted from every arrival so that the first is at 0.
    pub(crate) shift_s: f64,
}

impl CsvReplay {
    /// Reads `trace.file` (fully) and checks that each `prefix_id` always has the same length.
    pub(crate) fn open(
        trace: &TraceConfig,
        max_tokens: u32,
        bounds: Bounds,
    ) -> Result<Self, WorkloadError> {
        let (rows, shift_s) = trace_csv::read_replay(
            &trace.file,
            trace.time_scale_factor,
            trace.prefill_scale_factor,
            trace.decode_scale_factor,
            max_tokens,
        )?;
        let max_prefix_id = check_prefixes(&trace.file, &rows)?;
        Ok(CsvReplay {
            rows: rows.into_iter(),
            bounds,
            sessions: BTreeMap::new(),
            // Fresh ids for session turns start after every prefix id of the file.
            next_segment_id: max_prefix_id.map_or(0, |m| m + 1),
            shift_s,
        })
    }

    fn fresh_segment_id(&mut self) -> u64 {
        let id = self.next_segment_id;
        self.next_segment_id += 1;
        id
    }

    fn request(&mut self, row: ReplayRow) -> RequestSpec {
        let mut request = RequestSpec::simple(
            seconds_to_ns(row.arrived_at_s),
            row.prefill_tokens,
            row.decode_tokens,
        );
        request.session_id = row.session_id;
        let prefill = u64::from(row.prefill_tokens);
        // A later turn whose prompt is at least the conversation so far repeats it.
        let history = row
            .session_id
            .and_then(|sid| self.sessions.get(&sid))
            .filter(|h| h.tokens <= prefill);
        if let Some(history) = history {
            request.segments = history.segments.clone();
        } else if let Some((id, tokens)) = row.prefix {
            // A prefix longer than the (clipped) prompt is dropped for this request.
            if u64::from(tokens) <= prefill {
                request.segments.push(Segment { id, tokens });
            }
        }
        if let Some(sid) = row.session_id {
            let known: u64 = request.segments.iter().map(|s| u64::from(s.tokens)).sum();
            let new_tokens = (prefill - known) as u32;
            if new_tokens > 0 {
                let id = self.fresh_segment_id();
                request.segments.push(Segment {
                    id,
                    tokens: new_tokens,
                });
            }
            let output_id = self.fresh_segment_id();
            request.output_segment = Some(output_id);
            let mut segments = request.segments.clone();
            segments.push(Segment {
                id: output_id,
                tokens: row.decode_tokens,
            });
            self.sessions.insert(
                sid,
                History {
                    segments,
                    tokens: prefill + u64::from(row.decode_tokens),
                },
            );
        }
        request
    }
}

/// Checks that every `prefix_id` has one `prefix_tokens`; returns the largest prefix id.
fn check_prefixes(path: &Path, rows: &[ReplayRow]) -> Result<Option<u64>, WorkloadError> {
    let mut lengths: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
    for row in rows {
        if let Some((id, tokens)) = row.prefix {
            let (first_tokens, first_line) = *lengths.entry(id).or_insert((tokens, row.line));
            if first_tokens != tokens {
                return Err(WorkloadError::BadLine {
                    path: path.to_path_buf(),
                    line: row.line,
                    problem: format!(
                        "prefix_id {id} has prefix_tokens {tokens}, but {first_tokens} on line {first_line}; \
                         a prefix id names one shared prompt, so give it one length (or use another id)"
                    ),
                });
            }
        }
    }
    Ok(lengths.keys().next_back().copied())
}

impl Iterator for CsvReplay {
    type Item = RequestSpec;

    fn next(&mut self) -> Option<RequestSpec> {
        if self.bounds.exhausted() {
            return None;
        }
        let row = self.rows.next()?;
        if self.bounds.too_late(row.arrived_at_s) {
            self.bounds.remaining = Some(0);
            return None;
        }
        self.bounds.take();
        Some(self.request(row))
    }
}
