//! Invariants over random workloads, clusters and every scheduler.

use proptest::prelude::*;

use super::testkit::*;
use crate::router::RouterKind;
use crate::scheduler::SCHEDULERS;
use crate::workload::{RequestSpec, Segment};

/// Lengths of the shared segments 0..4 (a segment has one length across the workload).
const SEGMENT_TOKENS: [u32; 4] = [8, 20, 33, 64];

fn workload() -> impl Strategy<Value = Vec<RequestSpec>> {
    // Each request may start with up to two shared segments (prefix caching has something to
    // reuse); its prompt then has at least one unique token.
    prop::collection::vec(
        (
            0u64..40,
            1u32..200,
            1u32..40,
            prop::collection::vec(0usize..4, 0..3),
        ),
        1..40,
    )
    .prop_map(|v| {
        let mut t = 0;
        v.into_iter()
            .map(|(gap_ms, p, d, segs)| {
                t += gap_ms * 1_000_000;
                let segments: Vec<Segment> = segs
                    .into_iter()
                    .map(|k| Segment {
                        id: k as u64,
                        tokens: SEGMENT_TOKENS[k],
                    })
                    .collect();
                let shared: u32 = segments.iter().map(|s| s.tokens).sum();
                RequestSpec {
                    segments,
                    ..RequestSpec::simple(t, p.max(shared + 1), d)
                }
            })
            .collect()
    })
}

fn cluster() -> impl Strategy<Value = TestCluster> {
    (
        0..SCHEDULERS.len(),
        1u32..4,
        1u32..3,
        prop_oneof![
            Just(RouterKind::RoundRobin),
            Just(RouterKind::Random),
            Just(RouterKind::Lor)
        ],
        // from barely one longest request to plenty: exercises preemption and restarts
        16u64..80,
        (1u32..9, 1u32..300, 1u32..600, 0u32..4, 0u32..3),
        // vllm_v1: budget, sequence cap, long-prefill threshold, chunked prefill; prefix caching
        // on/off where the policy supports it
        (1u32..300, 1u32..9, 0u32..3, any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(s, replicas, pp, router, blocks, (cap, chunk, max_tokens, wait, mark), v1)| {
                let entry = &SCHEDULERS[s];
                let mut c = TestCluster::new(entry.name);
                c.replicas = replicas;
                c.pp = if entry.max_pipeline_stages == Some(1) {
                    1
                } else {
                    pp
                };
                c.router = router;
                c.max_request_tokens = 240;
                c.scheduler.block_size = 16;
                // token-granular policies need as many blocks as tokens
                c.num_blocks = if entry.token_blocks {
                    blocks * 16
                } else {
                    blocks
                };
                c.scheduler.batch_size_cap = cap * c.pp;
                c.scheduler.chunk_size = chunk;
                c.scheduler.max_tokens_in_batch = max_tokens;
                c.scheduler.max_waiting_iters = wait;
                c.scheduler.watermark_blocks_fraction = 0.05 * mark as f64;
                c.stage_ms = 3.0;
                let (budget, seqs, threshold, chunked, caching) = v1;
                let v = &mut c.scheduler.vllm_v1;
                v.enable_chunked_prefill = chunked;
                // without chunked prefill a whole prompt must fit one step
                v.max_num_batched_tokens = Some(if chunked { budget } else { budget.max(240) });
                v.max_num_seqs = seqs;
                v.long_prefill_token_threshold = [0, 7, 64][threshold as usize];
                if crate::scheduler::prefix_caching_default(entry.name).is_some() {
                    c.scheduler.enable_prefix_caching = Some(caching);
                }
                c
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn invariants_hold(c in cluster(), specs in workload()) {
        let n = specs.len();
        // Every case ends within seconds of simulated time (at most 40 requests of 240 tokens
        // at 3 ms a step); the limit turns a run that never ends (requests preempting each other
        // forever) into a failing case instead of unbounded work and memory.
        let mut c = c;
        c.time_limit_ns = Some(RUNAWAY_LIMIT_NS);
        let o = c.run(specs.clone());
        prop_assert!(!o.time_limited, "the run did not end within 1,000 simulated seconds");
        // every request completes exactly once, with all its output tokens
        prop_assert_eq!(o.completed as usize, n);
        prop_assert_eq!(o.requests.len(), n);
        let mut batch_tokens = 0u64;
        for (r, s) in o.requests.iter().zip(&specs) {
            prop_assert!(r.completed);
            prop_assert_eq!(r.emitted_tokens, s.decode_tokens);
            prop_assert_eq!(r.tbt_count, s.decode_tokens - 1);
            // arrival ≤ scheduled ≤ first token ≤ completion
            let sched = r.scheduled_at_ns.unwrap();
            let first = r.first_token_at_ns.unwrap();
            let done = r.completed_at_ns.unwrap();
            prop_assert!(r.arrived_at_ns <= sched && sched <= first && first <= done);
            // tokens: exactly prompt + output − 1 without restarts, more with recomputation;
            // prompt tokens served from the prefix cache are not processed in batches
            let need = (s.prefill_tokens + s.decode_tokens - 1) as u64;
            let cached = r.cached_prefill_tokens as u64;
            if r.num_restarts == 0 {
                prop_assert_eq!(r.batch_tokens + cached, need);
                prop_assert_eq!(r.computed_prefill_tokens as u64 + cached, s.prefill_tokens as u64);
            } else {
                prop_assert!(r.batch_tokens + cached > need);
            }
            // the last prompt token is always computed
            prop_assert!(r.computed_prefill_tokens >= 1);
            batch_tokens += r.batch_tokens;
        }
        // the batches processed exactly the requests' tokens (counted on the first stage)
        let logged: u64 = o
            .stage_log
            .iter()
            .filter(|s| s.stage == 0)
            .map(|s| s.prefill_tokens + s.decode_tokens)
            .sum();
        prop_assert_eq!(logged, batch_tokens);
        // KV: never over capacity, all returned at the end
        for rep in &o.replicas {
            prop_assert!(rep.kv.peak_allocated() <= rep.kv.num_blocks());
            prop_assert_eq!(rep.kv.allocated(), 0);
            // prefix cache: counts add up, no block referenced once every request finished
            if let Some(p) = rep.kv.prefix_cache() {
                prop_assert_eq!(p.check(), Ok(()));
                prop_assert_eq!(p.used_blocks(), 0);
                prop_assert_eq!(p.cached_blocks() + p.empty_blocks(), rep.kv.num_blocks());
                let st = p.stats();
                prop_assert!(st.hit_tokens <= st.queried_tokens && st.hit_blocks <= st.queried_blocks);
            } else {
                prop_assert_eq!(rep.kv.prefix_stats(), Default::default());
            }
            prop_assert!(rep.max_in_flight <= c.pp);
        }
        // the clock never goes back; each stage serves one batch at a time
        let mut last_end = 0;
        let mut busy_until = std::collections::BTreeMap::new();
        for s in &o.stage_log {
            prop_assert!(s.end_ns >= last_end && s.start_ns <= s.end_ns);
            last_end = s.end_ns;
            let b = busy_until.entry((s.replica, s.stage)).or_insert(0u64);
            prop_assert!(s.start_ns >= *b, "stage overlap at {:?}", s);
            *b = s.end_ns;
        }
        // at most PP batches between their first stage start and last stage end, per replica
        let mut spans: std::collections::BTreeMap<(u32, u64), (u64, u64)> = Default::default();
        for s in &o.stage_log {
            let e = spans.entry((s.replica, s.batch_id)).or_insert((u64::MAX, 0));
            e.0 = e.0.min(s.start_ns);
            e.1 = e.1.max(s.end_ns);
        }
        for r in 0..c.replicas {
            let mine: Vec<(u64, u64)> = spans.iter().filter(|(k, _)| k.0 == r).map(|(_, v)| *v).collect();
            for &(start, _) in &mine {
                let live = mine.iter().filter(|&&(a, b)| a <= start && start < b).count();
                prop_assert!(live as u32 <= c.pp);
            }
        }
    }
}

/// Checks that two runs of one case, with decode runs on and off, left the same everything.
pub(super) fn assert_same_outcome(
    fast: &super::EngineOutcome,
    slow: &super::EngineOutcome,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&fast.requests, &slow.requests);
    prop_assert_eq!(&fast.stage_log, &slow.stage_log);
    prop_assert_eq!(format!("{:?}", fast.metrics), format!("{:?}", slow.metrics));
    prop_assert_eq!(
        (fast.arrived, fast.completed, fast.end_ns, fast.time_limited),
        (slow.arrived, slow.completed, slow.end_ns, slow.time_limited)
    );
    prop_assert_eq!(&fast.certain_miss, &slow.certain_miss);
    for (a, b) in fast.replicas.iter().zip(&slow.replicas) {
        prop_assert_eq!(&a.kv, &b.kv);
        prop_assert_eq!(
            (a.batches, a.flops.to_bits(), a.kv_area, a.restarts),
            (b.batches, b.flops.to_bits(), b.kv_area, b.restarts)
        );
        prop_assert_eq!(
            (a.in_flight, a.max_in_flight, a.outstanding, a.requests),
            (b.in_flight, b.max_in_flight, b.outstanding, b.requests)
        );
        prop_assert_eq!(
            a.stages.iter().map(|s| s.busy_ns).collect::<Vec<_>>(),
            b.stages.iter().map(|s| s.busy_ns).collect::<Vec<_>>()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Decode runs are an optimisation only: with them on or off, every request, batch, latency
    /// and replica counter is the same, also when the run stops in the middle of a decode run (at
    /// a time limit, or at a certainly missed latency bound, which can fall between a run's step
    /// end and its next step), and under asynchronous scheduling. Batch times that grow with the batch's tokens
    /// and context check the shape of every step of a run.
    #[test]
    fn decode_runs_change_nothing(
        c in cluster(),
        specs in workload(),
        (token, kv, skew, async_scheduling) in (0usize..3, 0usize..3, 0usize..3, any::<bool>()),
        limit_ms in prop::option::of(1u64..3000),
        bound_ms in prop::option::of(10u64..400),
    ) {
        let mut c = c;
        c.token_ms = [0.0, 0.01, 0.037][token];
        c.kv_ms = [0.0, 0.001, 0.0007][kv];
        c.stage_skew_ms = [0.0, 3.3, -4.1][skew];
        c.async_scheduling = async_scheduling;
        c.time_limit_ns = Some(limit_ms.map_or(RUNAWAY_LIMIT_NS, ms));
        if let Some(b) = bound_ms {
            use crate::metrics::miss_watch::{BoundMetric, LatencyBound, MissWatch};
            let bounds = [LatencyBound {
                metric: BoundMetric::E2e,
                percentile: 50.0,
                max_s: b as f64 * 1e-3,
                label: "e2e_p50".into(),
            }];
            let multi = specs.iter().filter(|s| s.decode_tokens > 1).count() as u64;
            c.miss_watch = Some(MissWatch::new(&bounds, specs.len() as u64, multi));
        }
        let fast = c.run(specs.clone());
        c.decode_runs = false;
        let slow = c.run(specs);
        prop_assert!(!slow.time_limited || limit_ms.is_some());
        assert_same_outcome(&fast, &slow)?;
    }
}
