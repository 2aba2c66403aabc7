//! Routers (Vidur's global schedulers; docs/design.md §6.1): which replica a new request goes to.
//!
//! A router reads the replicas through [`ReplicaView`] (unfinished requests, KV blocks in use,
//! cached prompt prefixes), never the engine itself, and decides at arrival.
//!
//! Fixed against Vidur: least-outstanding-requests counts every request on a replica that has not
//! finished (queued, admitted or in a running batch), not only the queued ones.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::prefix_cache::shared_prompt_block_hashes;
use crate::request::Request;

/// Routing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RouterKind {
    /// Replica `i mod N` for the i-th request.
    #[default]
    #[value(name = "round_robin")]
    RoundRobin,
    /// A uniformly random replica (seeded).
    Random,
    /// The replica with the fewest unfinished requests (lowest id on ties).
    Lor,
    /// The lowest cost `overlap_weight × (share of the prompt's blocks not cached there) +
    /// load_weight × (unfinished requests there)` (lowest id on ties).
    #[value(name = "kv_aware")]
    KvAware,
    /// The replica with the lowest fraction of KV blocks in use (lowest id on ties).
    #[value(name = "least_kv")]
    LeastKv,
    /// Two distinct replicas drawn at random (seeded); the one with fewer unfinished requests
    /// (the lower id on ties).
    #[value(name = "power_of_two")]
    PowerOfTwo,
}

/// Weights of the `kv_aware` router's cost (`[cluster.kv_aware]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvAwareWeights {
    /// Cost of prefilling a whole prompt: a replica pays it times the share of the prompt's full
    /// blocks it does not have cached (`--kv-overlap-weight`).
    pub overlap_weight: f64,
    /// Cost of each unfinished request on a replica (`--kv-load-weight`).
    pub load_weight: f64,
}

impl Default for KvAwareWeights {
    fn default() -> Self {
        KvAwareWeights {
            overlap_weight: 16.0,
            load_weight: 1.0,
        }
    }
}

impl KvAwareWeights {
    /// Checks the weights; on failure returns the field (`overlap_weight`, `load_weight`) and why,
    /// with the fix.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (field, v, flag) in [
            ("overlap_weight", self.overlap_weight, "--kv-overlap-weight"),
            ("load_weight", self.load_weight, "--kv-load-weight"),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((
                    field,
                    format!("{v} is not a finite number ≥ 0 ({flag}); give e.g. 1"),
                ));
            }
        }
        if self.overlap_weight == 0.0 && self.load_weight == 0.0 {
            return Err((
                "load_weight",
                "overlap_weight and load_weight are both 0, which makes every replica cost the same; give at least one > 0 (--kv-load-weight 1)".into(),
            ));
        }
        Ok(())
    }
}

/// What a router may read of the replicas. Every method is a read: a query must not change a
/// replica (a prefix-cache lookup does not count as a use of the blocks it finds).
pub trait ReplicaView {
    /// Replicas (ids `0..num_replicas`).
    fn num_replicas(&self) -> u32;
    /// Requests routed to `replica` and not finished (queued, admitted or running).
    fn outstanding(&self, replica: u32) -> u32;
    /// KV blocks of `replica` in use, and its capacity in blocks.
    fn kv_blocks(&self, replica: u32) -> (u64, u64);
    /// Tokens per KV block when the replicas cache prefixes; `None` without prefix caching.
    fn prefix_block_size(&self) -> Option<u32>;
    /// How many leading blocks of a prompt, given by its chained block hashes
    /// ([`shared_prompt_block_hashes`]), `replica` has cached.
    fn cached_prefix_blocks(&self, replica: u32, hashes: &[u64]) -> u32;
}

/// Unfinished-request counts alone: empty KV caches, no prefix caching.
impl ReplicaView for [u32] {
    fn num_replicas(&self) -> u32 {
        self.len() as u32
    }
    fn outstanding(&self, replica: u32) -> u32 {
        self[replica as usize]
    }
    fn kv_blocks(&self, _replica: u32) -> (u64, u64) {
        (0, 1)
    }
    fn prefix_block_size(&self) -> Option<u32> {
        None
    }
    fn cached_prefix_blocks(&self, _replica: u32, _hashes: &[u64]) -> u32 {
        0
    }
}

/// A router with its state.
#[derive(Debug)]
pub struct Router {
    kind: RouterKind,
    weights: KvAwareWeights,
    num_replicas: u32,
    counter: u64,
    rng: StdRng,
    /// Reused buffer of prompt block hashes (`kv_aware`).
    hashes: Vec<u64>,
}

impl Router {
    /// A router over `num_replicas` replicas; `seed` drives the random policies.
    pub fn new(kind: RouterKind, num_replicas: u32, seed: u64) -> Self {
        Router {
            kind,
            weights: KvAwareWeights::default(),
            num_replicas: num_replicas.max(1),
            counter: 0,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_0f40_07e4),
            hashes: Vec::new(),
        }
    }

    /// The same router with these `kv_aware` weights (validated by the caller).
    pub fn with_weights(mut self, weights: KvAwareWeights) -> Self {
        self.weights = weights;
        self
    }

    /// The replica for the next request, given each replica's unfinished request count (no
    /// prompt and no KV information: `kv_aware` routes on load alone, `least_kv` sees empty
    /// caches).
    pub fn route(&mut self, outstanding: &[u32]) -> u32 {
        self.pick(None, outstanding)
    }

    /// The replica for `req`, reading the replicas through `view`.
    pub fn route_request<V: ReplicaView + ?Sized>(&mut self, req: &Request, view: &V) -> u32 {
        self.pick(Some(req), view)
    }

    fn pick<V: ReplicaView + ?Sized>(&mut self, req: Option<&Request>, view: &V) -> u32 {
        let n = view.num_replicas().min(self.num_replicas);
        match self.kind {
            RouterKind::RoundRobin => {
                let r = (self.counter % self.num_replicas as u64) as u32;
                self.counter += 1;
                r
            }
            RouterKind::Random => self.rng.random_range(0..self.num_replicas),
            RouterKind::Lor => lowest(n, |r| view.outstanding(r)),
            RouterKind::LeastKv => least_kv(n, view),
            RouterKind::PowerOfTwo => {
                if n < 2 {
                    return 0;
                }
                let a = self.rng.random_range(0..n);
                let mut b = self.rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let (lo, hi) = (a.min(b), a.max(b));
                if view.outstanding(hi) < view.outstanding(lo) {
                    hi
                } else {
                    lo
                }
            }
            RouterKind::KvAware => {
                self.hashes.clear();
                let mut prompt_blocks = 0;
                if let (Some(req), Some(bs)) = (req, view.prefix_block_size()) {
                    prompt_blocks = shared_prompt_block_hashes(req, bs, &mut self.hashes);
                }
                kv_aware(n, view, &self.weights, &self.hashes, prompt_blocks)
            }
        }
    }
}

/// The replica in `0..n` with the smallest `key`, the lowest id on ties.
fn lowest<K: PartialOrd>(n: u32, key: impl Fn(u32) -> K) -> u32 {
    if n == 0 {
        return 0;
    }
    let mut best = 0;
    let mut best_key = key(0);
    for r in 1..n {
        let k = key(r);
        if k < best_key {
            best = r;
            best_key = k;
        }
    }
    best
}

/// The replica with the lowest fraction of KV blocks in use, compared exactly
/// (`used_a × capacity_b < used_b × capacity_a`); the lowest id on ties.
fn least_kv<V: ReplicaView + ?Sized>(n: u32, view: &V) -> u32 {
    if n == 0 {
        return 0;
    }
    let mut best = 0;
    let (mut bu, mut bc) = view.kv_blocks(0);
    for r in 1..n {
        let (u, c) = view.kv_blocks(r);
        if u128::from(u) * u128::from(bc) < u128::from(bu) * u128::from(c) {
            best = r;
            (bu, bc) = (u, c);
        }
    }
    best
}

/// `kv_aware`: the replica with the lowest `overlap_weight × uncached / prompt_blocks +
/// load_weight × outstanding`, where `uncached` is how many of the prompt's `prompt_blocks` full
/// blocks the replica would prefill (all of them, less the cached leading blocks among `hashes`);
/// a prompt without a full block has no overlap term.
fn kv_aware<V: ReplicaView + ?Sized>(
    n: u32,
    view: &V,
    w: &KvAwareWeights,
    hashes: &[u64],
    prompt_blocks: u32,
) -> u32 {
    lowest(n, |r| {
        let miss = if prompt_blocks == 0 {
            0.0
        } else {
            let cached = view.cached_prefix_blocks(r, hashes).min(prompt_blocks);
            f64::from(prompt_blocks - cached) / f64::from(prompt_blocks)
        };
        w.overlap_weight * miss + w.load_weight * f64::from(view.outstanding(r))
    })
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
