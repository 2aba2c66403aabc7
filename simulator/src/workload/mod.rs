//! Workloads: the requests a simulation serves.
//!
//! INTERFACE CONTRACT (shared by the engine and the generators; keep it stable):
//! - [`RequestSpec`]: one generated request.
//! - [`WorkloadConfig`]: the serde/TOML configuration (section `[workload]` of `config.toml`).
//! - [`generate`]: a deterministic, arrival-ordered stream of requests for a config and seed.
//!
//! The generators themselves (synthetic arrivals and lengths, trace replay, shared-prefix workloads)
//! live in the submodules; `docs/workloads.md` is the user's guide to all of them.
//!
//! All randomness comes from the one seed given to [`generate`]: it seeds a master
//! [`StdRng`] that draws one seed per stream (arrivals, lengths, prefixes,
//! sessions), so changing the length law leaves the arrival times unchanged.

use rand::prelude::*;
use serde::{Deserialize, Serialize};

mod args;
mod arrival;
mod config;
mod error;
mod lengths;
mod mooncake;
mod pool;
mod prefix;
mod replay;
mod sessions;
mod synthetic;
mod trace_csv;
mod validate;
mod zipf;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;

pub use args::{ArrivalKind, LengthKind, WorkloadArgs};
pub use config::{
    ArrivalConfig, LengthConfig, PrefixConfig, PrefixLaw, RateStage, SessionConfig,
    SharedPrefixConfig, TraceConfig, TraceFormat, WorkloadConfig, DEFAULT_DECODE_TOKENS,
    DEFAULT_MAX_TOKENS, DEFAULT_NUM_REQUESTS, DEFAULT_PREFILL_TOKENS, DEFAULT_QPS,
    IMPLICIT_NUM_REQUESTS,
};
pub use error::WorkloadError;
pub use prefix::expected_prefix_hit_rate;

use arrival::ArrivalProcess;
use lengths::LengthSampler;
use prefix::PrefixSampler;
use synthetic::{Bounds, Synthetic};

/// A run of prompt tokens with one content identity: every request whose prompt contains segment
/// `id` has the same `tokens` tokens there (a system prompt, an earlier turn of a conversation, a
/// 512-token block of a Mooncake trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Segment {
    /// Content identity, unique across the workload.
    pub id: u64,
    /// Length in tokens.
    pub tokens: u32,
}

/// One request as generated, before simulation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// Arrival time, integer nanoseconds of simulated time.
    pub arrival_ns: u64,
    /// Prompt length in tokens (≥ 1).
    pub prefill_tokens: u32,
    /// Output length in tokens (≥ 1; the first one is produced by the prefill).
    pub decode_tokens: u32,
    /// The prompt's content as segments, in order. Their lengths sum to at most `prefill_tokens`;
    /// the tokens after them are unique to this request. Empty: the whole prompt is unique.
    pub segments: Vec<Segment>,
    /// Content identity of this request's output tokens, when a later request's prompt contains
    /// them (multi-turn sessions: the next turn's prompt lists this id as a segment).
    pub output_segment: Option<u64>,
    /// Conversation this request belongs to, if any.
    pub session_id: Option<u64>,
}

impl RequestSpec {
    /// A request with a unique prompt.
    pub fn simple(arrival_ns: u64, prefill_tokens: u32, decode_tokens: u32) -> Self {
        RequestSpec {
            arrival_ns,
            prefill_tokens,
            decode_tokens,
            segments: Vec::new(),
            output_segment: None,
            session_id: None,
        }
    }
}

/// A workload's request stream and what the user should be told about it.
pub struct Generated {
    /// The requests, in non-decreasing arrival order.
    pub requests: Box<dyn Iterator<Item = RequestSpec> + Send>,
    /// Notes for the run's summary (e.g. a trace shifted to start at 0).
    pub notes: Vec<String>,
}

/// [`generate`], with the notes for the summary.
pub fn generate_noted(cfg: &WorkloadConfig, seed: u64) -> Result<Generated, WorkloadError> {
    cfg.validate()?;
    let bounds = bounds(cfg);
    let Some(trace) = &cfg.trace else {
        return Ok(Generated {
            requests: synthetic(cfg, seed, bounds)?,
            notes: Vec::new(),
        });
    };
    let (requests, shift_s): (Box<dyn Iterator<Item = RequestSpec> + Send>, f64) =
        match trace.resolved_format() {
            TraceFormat::Mooncake => {
                let r = mooncake::MooncakeReplay::open(trace, cfg.max_tokens, bounds)?;
                let shift = r.shift_s;
                (Box::new(r), shift)
            }
            _ => {
                let r = replay::CsvReplay::open(trace, cfg.max_tokens, bounds)?;
                let shift = r.shift_s;
                (Box::new(r), shift)
            }
        };
    let mut notes = Vec::new();
    if shift_s != 0.0 {
        notes.push(format!(
            "the trace's arrival times were shifted by {} s so that its first request arrives at 0",
            -shift_s
        ));
    }
    Ok(Generated { requests, notes })
}

fn bounds(cfg: &WorkloadConfig) -> Bounds {
    let implicit = cfg.duration_s.is_none()
        && cfg.trace.is_none()
        && !matches!(
            cfg.arrival,
            ArrivalConfig::Trace { .. } | ArrivalConfig::Stages { .. }
        );
    Bounds {
        remaining: cfg
            .num_requests
            .or(implicit.then_some(IMPLICIT_NUM_REQUESTS)),
        duration_s: cfg.duration_s,
    }
}

/// The requests of `cfg`, in non-decreasing arrival order, drawn from `seed`.
///
/// The configuration is validated first. Synthetic workloads are generated lazily (memory stays
/// flat however many requests are drawn); trace files are read fully when this is called, so
/// every error in them is reported here, before the first request. Same `cfg` and `seed`, same
/// sequence, on every run and platform.
pub fn generate(
    cfg: &WorkloadConfig,
    seed: u64,
) -> Result<Box<dyn Iterator<Item = RequestSpec> + Send>, WorkloadError> {
    generate_noted(cfg, seed).map(|g| g.requests)
}

/// The synthetic generators' stream (no trace replay).
fn synthetic(
    cfg: &WorkloadConfig,
    seed: u64,
    bounds: Bounds,
) -> Result<Box<dyn Iterator<Item = RequestSpec> + Send>, WorkloadError> {
    // One seed per stream, drawn in a fixed order from the master generator.
    let mut master = StdRng::seed_from_u64(seed);
    let mut stream = || StdRng::seed_from_u64(master.random::<u64>());
    let (arrival_rng, length_rng, prefix_rng, session_rng) =
        (stream(), stream(), stream(), stream());
    let prefix_tokens = cfg.prefix.as_ref().map_or(0, |p| p.prefix_tokens);
    let arrivals = ArrivalProcess::new(&cfg.arrival, arrival_rng)?;
    if let Some(pool) = &cfg.shared_prefix {
        return Ok(Box::new(pool::PromptPool::new(
            pool, arrivals, prefix_rng, bounds,
        )));
    }
    let lengths = LengthSampler::new(&cfg.lengths, cfg.max_tokens - prefix_tokens, length_rng)?;
    let prefix = cfg
        .prefix
        .as_ref()
        .map(|p| PrefixSampler::new(p, prefix_rng));
    Ok(match &cfg.sessions {
        Some(sessions) => Box::new(sessions::Sessions::new(
            sessions,
            arrivals,
            lengths,
            prefix,
            session_rng,
            cfg.max_tokens,
            bounds,
            cfg.prefix.as_ref().map_or(0, |p| u64::from(p.num_prefixes)),
        )),
        None => Box::new(Synthetic {
            arrivals,
            lengths,
            prefix,
            bounds,
        }),
    })
}
