//! Workloads: the requests a simulation serves.
//!
//! INTERFACE CONTRACT (shared by the engine and the generators; keep it stable):
//! - [`RequestSpec`]: one generated request.
//! - [`WorkloadConfig`]: the serde/TOML configuration (section `[workload]` of `config.toml`).
//! - [`generate`]: a deterministic, arrival-ordered stream of requests for a config and seed.
//!
//! The generators themselves (synthetic arrivals and lengths, trace replay, shared-prefix workloads)
//! live in the submodules.

use serde::{Deserialize, Serialize};

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

// TEMPORARY: the workload contract's minimal implementation until the generators are merged.
mod temp_contract;
pub use temp_contract::{generate, WorkloadArgs, WorkloadConfig, WorkloadError};
