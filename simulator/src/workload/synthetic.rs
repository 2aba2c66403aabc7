//! Synthetic single-request workloads: an arrival process, a length law and optional shared
//! prefixes, streamed lazily.

use super::arrival::{seconds_to_ns, ArrivalProcess};
use super::lengths::LengthSampler;
use super::prefix::PrefixSampler;
use super::RequestSpec;

/// When a generated stream ends: after a number of requests, at a simulated time, or both.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Requests still to emit; `None`: unbounded by count.
    pub remaining: Option<u64>,
    /// Requests must arrive strictly before this time, seconds.
    pub duration_s: Option<f64>,
}

impl Bounds {
    /// True when no more requests may be emitted.
    pub(crate) fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// True when a request arriving at `t_s` is past the duration.
    pub(crate) fn too_late(&self, t_s: f64) -> bool {
        self.duration_s.is_some_and(|d| t_s >= d)
    }

    /// Counts one emitted request.
    pub(crate) fn take(&mut self) {
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
    }
}

/// A stream of independent requests.
pub(crate) struct Synthetic {
    pub arrivals: ArrivalProcess,
    pub lengths: LengthSampler,
    pub prefix: Option<PrefixSampler>,
    pub bounds: Bounds,
}

impl Iterator for Synthetic {
    type Item = RequestSpec;

    fn next(&mut self) -> Option<RequestSpec> {
        if self.bounds.exhausted() {
            return None;
        }
        let t_s = match self.arrivals.next_s() {
            Some(t) if !self.bounds.too_late(t) => t,
            _ => {
                self.bounds.remaining = Some(0);
                return None;
            }
        };
        let (prefill, decode) = self.lengths.next_pair();
        let mut request = RequestSpec::simple(seconds_to_ns(t_s), prefill, decode);
        if let Some(prefix) = &mut self.prefix {
            let segment = prefix.next_segment();
            request.prefill_tokens += segment.tokens;
            request.segments.push(segment);
        }
        self.bounds.take();
        Some(request)
    }
}
