//! Replay of Mooncake traces: JSON lines with `timestamp` (ms), `input_length`, `output_length`
//! and `hash_ids` (one id per `block_tokens`-token block of the prompt; equal ids, equal content).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use super::arrival::seconds_to_ns;
use super::config::TraceConfig;
use super::error::WorkloadError;
use super::synthetic::Bounds;
use super::trace_csv::{clip_to_max, open_text};
use super::{RequestSpec, Segment};

/// One line of a Mooncake trace (other fields are ignored).
#[derive(Debug, Deserialize)]
struct Line {
    timestamp: f64,
    input_length: u64,
    output_length: u64,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

fn parse(path: &Path, line_no: u64, text: &str) -> Result<Line, WorkloadError> {
    let line: Line = serde_json::from_str(text).map_err(|e| WorkloadError::BadLine {
        path: path.to_path_buf(),
        line: line_no,
        problem: format!(
            "{e}; a Mooncake line is a JSON object with timestamp (ms), input_length, output_length and hash_ids"
        ),
    })?;
    if !(line.timestamp.is_finite() && line.timestamp >= 0.0) {
        return Err(WorkloadError::BadLine {
            path: path.to_path_buf(),
            line: line_no,
            problem: format!("timestamp is {}, not a time in ms ≥ 0", line.timestamp),
        });
    }
    Ok(line)
}

/// Each line's lines as `(line number, text)`, skipping blank lines.
fn lines(
    path: &Path,
) -> Result<impl Iterator<Item = Result<(u64, String), WorkloadError>>, WorkloadError> {
    let reader = open_text(path)?;
    let path = path.to_path_buf();
    Ok(reader
        .lines()
        .enumerate()
        .filter_map(move |(i, l)| match l {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some(Ok((i as u64 + 1, text))),
            Err(source) => Some(Err(WorkloadError::Io {
                path: path.clone(),
                source,
            })),
        }))
}

/// Checks that `path` opens and that its first line is a Mooncake request.
pub(crate) fn check_file(path: &Path) -> Result<(), WorkloadError> {
    match lines(path)?.next() {
        None => Err(WorkloadError::EmptyTrace {
            path: path.to_path_buf(),
        }),
        Some(Err(e)) => Err(e),
        Some(Ok((line_no, text))) => parse(path, line_no, &text).map(|_| ()),
    }
}

/// Reads a Mooncake trace into requests, sorted by arrival (stable), clipped to `max_tokens`.
///
/// Prompt block `k` of a request becomes the segment with id `hash_ids[k]` and
/// `min(block_tokens, input_length − k·block_tokens)` tokens (so the last block may be partial);
/// blocks past a clipped prompt are dropped. Errors name the line of a malformed request, of a
/// request with more hash ids than blocks, or of a hash id seen with two different lengths.
pub(crate) fn read(
    trace: &TraceConfig,
    max_tokens: u32,
) -> Result<Vec<RequestSpec>, WorkloadError> {
    let path = trace.file.as_path();
    let block = u64::from(trace.block_tokens);
    let mut seen: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
    let mut requests = Vec::new();
    for item in lines(path)? {
        let (line_no, text) = item?;
        let line = parse(path, line_no, &text)?;
        let input = line.input_length.clamp(1, u64::from(u32::MAX)) as u32;
        let output = line.output_length.clamp(1, u64::from(u32::MAX)) as u32;
        let blocks_needed = u64::from(input).div_ceil(block);
        if line.hash_ids.len() as u64 > blocks_needed {
            return Err(WorkloadError::BadLine {
                path: path.to_path_buf(),
                line: line_no,
                problem: format!(
                    "{} hash_ids for an input of {input} tokens, which has only {blocks_needed} blocks of {block} tokens; \
                     check workload.trace.block_tokens",
                    line.hash_ids.len()
                ),
            });
        }
        let (prefill, decode) = clip_to_max(input, output, max_tokens);
        let mut segments = Vec::with_capacity(line.hash_ids.len());
        let mut covered = 0u64;
        for &id in &line.hash_ids {
            let tokens = block.min(u64::from(input) - covered) as u32;
            let (first_tokens, first_line) = *seen.entry(id).or_insert((tokens, line_no));
            if first_tokens != tokens {
                return Err(WorkloadError::BadLine {
                    path: path.to_path_buf(),
                    line: line_no,
                    problem: format!(
                        "hash id {id} is a {tokens}-token block here but a {first_tokens}-token block on line {first_line}; \
                         equal hash ids must be equal blocks"
                    ),
                });
            }
            covered += u64::from(tokens);
            if covered <= u64::from(prefill) {
                segments.push(Segment { id, tokens });
            }
        }
        let arrival_s = line.timestamp / 1e3 * trace.time_scale_factor;
        let mut request = RequestSpec::simple(seconds_to_ns(arrival_s), prefill, decode);
        request.segments = segments;
        requests.push(request);
    }
    if requests.is_empty() {
        return Err(WorkloadError::EmptyTrace {
            path: path.to_path_buf(),
        });
    }
    requests.sort_by_key(|r| r.arrival_ns);
    Ok(requests)
}

/// A stream of replayed Mooncake requests.
pub(crate) struct MooncakeReplay {
    requests: std::vec::IntoIter<RequestSpec>,
    bounds: Bounds,
}

impl MooncakeReplay {
    /// Reads the trace (fully).
    pub(crate) fn open(
        trace: &TraceConfig,
        max_tokens: u32,
        bounds: Bounds,
    ) -> Result<Self, WorkloadError> {
        Ok(MooncakeReplay {
            requests: read(trace, max_tokens)?.into_iter(),
            bounds,
        })
    }
}

impl Iterator for MooncakeReplay {
    type Item = RequestSpec;

    fn next(&mut self) -> Option<RequestSpec> {
        if self.bounds.exhausted() {
            return None;
        }
        let request = self.requests.next()?;
        if self.bounds.too_late(request.arrival_ns as f64 / 1e9) {
            self.bounds.remaining = Some(0);
            return None;
        }
        self.bounds.take();
        Some(request)
    }
}
