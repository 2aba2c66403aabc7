//! Prefix caching end to end: the measured hit rate of a prefix-group workload against the
//! analytical infinite-cache rate, and the same workload with caching off.

use crate::config::SimConfig;
use crate::run::{simulate, RunOptions};
use crate::workload::{ArrivalConfig, LengthConfig, PrefixConfig, PrefixLaw};
use crate::Summary;

const REQUESTS: u64 = 1000;

/// Llama-3-8B on one H100 (roofline), `vllm_v1`; 1000 requests at 4 req/s, each a 256-token system
/// prompt out of 500 (Zipf θ = 1) plus 64 unique prompt tokens, 64 output tokens. All the content
/// of the run (500 × 256 + 1000 × 128 tokens ≈ 256k) fits the ≈ 430k-token KV cache, so nothing is
/// evicted and the infinite-cache formula applies.
fn config(seed: u64, caching: bool) -> SimConfig {
    let mut c = SimConfig {
        seed,
        ..Default::default()
    };
    c.scheduler.name = "vllm_v1".into();
    c.scheduler.enable_prefix_caching = Some(caching);
    c.workload.num_requests = Some(REQUESTS);
    c.workload.arrival = ArrivalConfig::Poisson { qps: 4.0 };
    c.workload.lengths = LengthConfig::Fixed {
        prefill_tokens: 64,
        decode_tokens: 64,
    };
    c.workload.prefix = Some(PrefixConfig {
        num_prefixes: 500,
        prefix_tokens: 256,
        law: PrefixLaw::Zipf,
        zipf_theta: 1.0,
    });
    c
}

fn run(seed: u64, caching: bool) -> Summary {
    simulate(&config(seed, caching), &RunOptions::default())
        .unwrap()
        .summary
}

#[test]
fn measured_hit_rate_matches_the_analytical_rate() {
    let prefix = config(0, true).workload.prefix.unwrap();
    let expected_requests = prefix.expected_hit_rate(REQUESTS);
    // Each hit reuses the 16 full blocks of the 256-token prefix; every prompt is 320 tokens.
    let expected_tokens = prefix.expected_cached_tokens_per_request(REQUESTS, 16) / (256.0 + 64.0);
    // Mean over three workloads (the formula is an expectation over draws).
    let seeds = [1, 2, 3];
    let (mut requests, mut tokens) = (0.0, 0.0);
    for seed in seeds {
        let s = run(seed, true);
        let p = &s.prefix_cache;
        assert!(p.enabled);
        assert_eq!(
            p.evictions, 0,
            "the cache must be large enough never to evict"
        );
        assert_eq!(s.preemptions.total, 0);
        assert_eq!(p.lookups, REQUESTS);
        assert_eq!(p.hit_tokens, p.cached_prefill_tokens);
        assert_eq!(
            p.computed_prefill_tokens + p.cached_prefill_tokens,
            REQUESTS * 320
        );
        requests += p.request_hit_rate;
        tokens += p.token_hit_rate;
    }
    let n = seeds.len() as f64;
    let (requests, tokens) = (requests / n, tokens / n);
    eprintln!("request hit rate {requests:.4} (analytical {expected_requests:.4}), token hit rate {tokens:.4} (analytical {expected_tokens:.4})");
    assert!(
        (requests - expected_requests).abs() < 0.02,
        "request hit rate {requests} vs analytical {expected_requests}"
    );
    assert!(
        (tokens - expected_tokens).abs() < 0.02,
        "token hit rate {tokens} vs analytical {expected_tokens}"
    );
}

#[test]
fn without_caching_nothing_hits_and_latency_rises() {
    let on = run(1, true);
    let off = run(1, false);
    let p = &off.prefix_cache;
    eprintln!(
        "caching on: token hit rate {:.4}, TTFT mean {:.4} s p99 {:.4} s, e2e mean {:.4} s; off: hit rate {:.4}, TTFT mean {:.4} s p99 {:.4} s, e2e mean {:.4} s",
        on.prefix_cache.token_hit_rate,
        on.latency.ttft_s.mean,
        on.latency.ttft_s.p99,
        on.latency.e2e_s.mean,
        p.token_hit_rate,
        off.latency.ttft_s.mean,
        off.latency.ttft_s.p99,
        off.latency.e2e_s.mean
    );
    assert!(!p.enabled);
    assert_eq!((p.hit_tokens, p.lookups, p.token_hit_rate), (0, 0, 0.0));
    assert_eq!(p.computed_prefill_tokens, REQUESTS * 320);
    assert!(on.prefix_cache.token_hit_rate > 0.3);
    assert!(
        off.latency.ttft_s.mean > on.latency.ttft_s.mean,
        "TTFT {} (off) vs {} (on)",
        off.latency.ttft_s.mean,
        on.latency.ttft_s.mean
    );
    assert!(off.latency.e2e_s.mean > on.latency.e2e_s.mean);
}
