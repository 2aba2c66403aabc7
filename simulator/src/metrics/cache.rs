//! Prefix-cache and preemption figures of a run (`summary.json` sections `prefix_cache` and
//! `preemptions`).

use serde::{Deserialize, Serialize};

use crate::engine::EngineOutcome;
use crate::prefix_cache::PrefixCacheStats;
use crate::request::Request;

/// Per-request prefix-cache and preemption figures summed over finished requests (streamed: the
/// engine does not keep requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCacheTotals {
    /// Finished requests.
    pub requests: u64,
    /// Of those, requests that reused at least one cached block.
    pub requests_with_hit: u64,
    /// Σ `computed_prefill_tokens`.
    pub computed_prefill_tokens: u64,
    /// Σ `cached_prefill_tokens`.
    pub cached_prefill_tokens: u64,
    /// Σ `num_preemptions`.
    pub preemptions: u64,
    /// Requests preempted at least once.
    pub preempted_requests: u64,
    /// Most preemptions of one request.
    pub max_preemptions: u32,
}

impl RequestCacheTotals {
    /// Adds a finished request.
    pub fn record(&mut self, r: &Request) {
        self.requests += 1;
        self.requests_with_hit += u64::from(r.cached_prefill_tokens > 0);
        self.computed_prefill_tokens += u64::from(r.computed_prefill_tokens);
        self.cached_prefill_tokens += u64::from(r.cached_prefill_tokens);
        self.preemptions += u64::from(r.num_preemptions);
        self.preempted_requests += u64::from(r.num_preemptions > 0);
        self.max_preemptions = self.max_preemptions.max(r.num_preemptions);
    }

    /// Adds the totals of other requests.
    pub fn merge(&mut self, o: &RequestCacheTotals) {
        self.requests += o.requests;
        self.requests_with_hit += o.requests_with_hit;
        self.computed_prefill_tokens += o.computed_prefill_tokens;
        self.cached_prefill_tokens += o.cached_prefill_tokens;
        self.preemptions += o.preemptions;
        self.preempted_requests += o.preempted_requests;
        self.max_preemptions = self.max_preemptions.max(o.max_preemptions);
    }
}

/// Prefix caching over the whole cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefixCacheSummary {
    /// Prefix caching was on.
    pub enabled: bool,
    /// Admissions that consulted the cache (re-admissions after preemption included).
    pub lookups: u64,
    /// Prompt tokens of those admissions.
    pub queried_tokens: u64,
    /// Of those, tokens served from the cache.
    pub hit_tokens: u64,
    /// `hit_tokens / queried_tokens` (0 when nothing was queried).
    pub token_hit_rate: f64,
    /// Full prompt blocks of those admissions.
    pub queried_blocks: u64,
    /// Of those, blocks served from the cache.
    pub hit_blocks: u64,
    /// `hit_blocks / queried_blocks`.
    pub block_hit_rate: f64,
    /// Cached blocks dropped to make room.
    pub evictions: u64,
    /// Requests that reused at least one cached block.
    pub requests_with_hit: u64,
    /// `requests_with_hit / arrived requests`.
    pub request_hit_rate: f64,
    /// Prompt tokens computed, over all requests and attempts.
    pub computed_prefill_tokens: u64,
    /// Prompt tokens served from the cache, over all requests and attempts.
    pub cached_prefill_tokens: u64,
    /// Per replica, in replica order.
    pub replicas: Vec<PrefixCacheStats>,
}

/// Preemptions over all requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreemptionSummary {
    /// Preemptions in total.
    pub total: u64,
    /// Requests preempted at least once.
    pub preempted_requests: u64,
    /// Mean preemptions per arrived request.
    pub per_request_mean: f64,
    /// Most preemptions of one request.
    pub per_request_max: u32,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl PrefixCacheSummary {
    /// The figures of a finished run.
    pub fn build(o: &EngineOutcome) -> Self {
        let replicas: Vec<PrefixCacheStats> =
            o.replicas.iter().map(|r| r.kv.prefix_stats()).collect();
        let sum = |f: fn(&PrefixCacheStats) -> u64| replicas.iter().map(f).sum::<u64>();
        let (queried_tokens, hit_tokens) = (sum(|s| s.queried_tokens), sum(|s| s.hit_tokens));
        let (queried_blocks, hit_blocks) = (sum(|s| s.queried_blocks), sum(|s| s.hit_blocks));
        let t = &o.metrics.cache;
        PrefixCacheSummary {
            enabled: o.replicas.iter().any(|r| r.kv.prefix_cache().is_some()),
            lookups: sum(|s| s.lookups),
            queried_tokens,
            hit_tokens,
            token_hit_rate: ratio(hit_tokens, queried_tokens),
            queried_blocks,
            hit_blocks,
            block_hit_rate: ratio(hit_blocks, queried_blocks),
            evictions: sum(|s| s.evictions),
            requests_with_hit: t.requests_with_hit,
            request_hit_rate: ratio(t.requests_with_hit, t.requests),
            computed_prefill_tokens: t.computed_prefill_tokens,
            cached_prefill_tokens: t.cached_prefill_tokens,
            replicas,
        }
    }
}

impl PreemptionSummary {
    /// The figures of a finished run.
    pub fn build(o: &EngineOutcome) -> Self {
        let t = &o.metrics.cache;
        PreemptionSummary {
            total: t.preemptions,
            preempted_requests: t.preempted_requests,
            per_request_mean: ratio(t.preemptions, t.requests),
            per_request_max: t.max_preemptions,
        }
    }
}
