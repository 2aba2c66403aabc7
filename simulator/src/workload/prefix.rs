//! Prefix groups: shared system prompts, and the hit rate they give a prefix cache.

use rand::prelude::*;

use super::config::{PrefixConfig, PrefixLaw};
use super::zipf::FiniteZipf;
use super::Segment;

impl PrefixConfig {
    /// The Zipf exponent of the prefix law (0 for `uniform`).
    fn law_theta(&self) -> f64 {
        match self.law {
            PrefixLaw::Uniform => 0.0,
            PrefixLaw::Zipf => self.zipf_theta,
        }
    }

    /// The probability that a request picks each prefix, in prefix-id order.
    pub fn prefix_probabilities(&self) -> Vec<f64> {
        FiniteZipf::probabilities(self.num_prefixes, self.law_theta())
    }

    /// Expected number of distinct prefixes among `num_requests` independent draws:
    /// `Σ_k 1 − (1 − p_k)^M`.
    pub fn expected_distinct_prefixes(&self, num_requests: u64) -> f64 {
        let m = num_requests as f64;
        self.prefix_probabilities()
            .iter()
            .map(|&p| 1.0 - (m * (-p).ln_1p()).exp())
            .sum()
    }

    /// Expected fraction of requests whose shared prefix is already in an infinite prefix cache
    /// when they arrive: every request but the first of each prefix hits, so the rate is
    /// `1 − E[distinct prefixes] / num_requests`.
    ///
    /// In tokens, a hit reuses the prefix's full KV blocks, `⌊prefix_tokens / block⌋ · block`
    /// tokens ([`PrefixConfig::expected_cached_tokens_per_request`]). The rate assumes each
    /// request's prefix is cached by the time the next request with that prefix is scheduled
    /// (true unless two requests with a new prefix are batched together).
    pub fn expected_hit_rate(&self, num_requests: u64) -> f64 {
        if num_requests == 0 {
            return 0.0;
        }
        1.0 - self.expected_distinct_prefixes(num_requests) / num_requests as f64
    }

    /// Expected prompt tokens per request served from an infinite block-granular prefix cache
    /// with `block_tokens`-token blocks.
    ///
    /// The expected token hit rate of a generated workload of `M` requests is
    /// `M · expected_cached_tokens_per_request(M, block) / Σ prefill_tokens` (prompt lengths are
    /// drawn independently of the prefix choice, so the ratio of the expectations applies).
    pub fn expected_cached_tokens_per_request(&self, num_requests: u64, block_tokens: u32) -> f64 {
        let cached_per_hit = self
            .prefix_tokens
            .checked_div(block_tokens)
            .map_or(0, |blocks| blocks * block_tokens);
        self.expected_hit_rate(num_requests) * f64::from(cached_per_hit)
    }
}

/// Expected fraction of the `num_requests` requests of a prefix-group workload whose prefix is
/// already cached (infinite cache): `1 − E[distinct prefixes]/num_requests`. See
/// [`PrefixConfig::expected_hit_rate`].
pub fn expected_prefix_hit_rate(prefix: &PrefixConfig, num_requests: u64) -> f64 {
    prefix.expected_hit_rate(num_requests)
}

/// Picks a shared prefix per request. Prefix `k` is [`Segment`] id `k`.
pub(crate) struct PrefixSampler {
    rng: StdRng,
    law: FiniteZipf,
    tokens: u32,
}

impl PrefixSampler {
    /// The sampler of `cfg` (already validated).
    pub(crate) fn new(cfg: &PrefixConfig, rng: StdRng) -> Self {
        PrefixSampler {
            rng,
            law: FiniteZipf::new(cfg.num_prefixes, cfg.law_theta()),
            tokens: cfg.prefix_tokens,
        }
    }

    /// The next request's prefix.
    pub(crate) fn next_segment(&mut self) -> Segment {
        Segment {
            id: u64::from(self.law.sample(&mut self.rng)),
            tokens: self.tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn cfg(law: PrefixLaw, n: u32, theta: f64) -> PrefixConfig {
        PrefixConfig {
            num_prefixes: n,
            prefix_tokens: 1000,
            law,
            zipf_theta: theta,
        }
    }

    #[test]
    fn hit_rate_formula_on_small_cases() {
        // One prefix: every request but the first hits.
        let one = cfg(PrefixLaw::Uniform, 1, 1.0);
        assert!((one.expected_hit_rate(10) - 0.9).abs() < 1e-12);
        // Two equally likely prefixes, two requests: E[distinct] = 2·(1 − 0.25) = 1.5 → 0.25.
        let two = cfg(PrefixLaw::Uniform, 2, 1.0);
        assert!((two.expected_hit_rate(2) - 0.25).abs() < 1e-12);
        // A single request never hits.
        assert_eq!(two.expected_hit_rate(1), 0.0);
        // Cached tokens: 1000-token prefix, 16-token blocks → 992 tokens per hit.
        assert!((one.expected_cached_tokens_per_request(10, 16) - 0.9 * 992.0).abs() < 1e-9);
    }

    #[test]
    fn measured_distinct_draws_match_the_expected_hit_rate() {
        for (law, n, theta, m) in [
            (PrefixLaw::Uniform, 200, 1.0, 300u64),
            (PrefixLaw::Zipf, 1000, 1.1, 500),
            (PrefixLaw::Zipf, 50, 0.5, 100),
        ] {
            let c = cfg(law, n, theta);
            let expected = c.expected_hit_rate(m);
            // Average over repeated workloads with different seeds.
            let trials = 200;
            let mut total = 0.0;
            for seed in 0..trials {
                let mut s = PrefixSampler::new(&c, StdRng::seed_from_u64(seed));
                let distinct: BTreeSet<u64> = (0..m).map(|_| s.next_segment().id).collect();
                total += 1.0 - distinct.len() as f64 / m as f64;
            }
            let measured = total / trials as f64;
            assert!(
                (measured - expected).abs() < 0.01,
                "{law:?} n={n}: {measured} vs {expected}"
            );
        }
    }
}
