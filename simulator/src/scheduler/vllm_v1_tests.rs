//! Hand-computed step-by-step scenarios of the `vllm_v1` policy and of prefix caching: every batch
//! below was worked out on paper from the rules in `vllm_v1.rs` and `prefix_cache.rs`.

use super::super::testkit::Harness;
use super::super::SchedulerConfig;
use crate::workload::{RequestSpec, Segment};

/// `vllm_v1` with 4-token blocks, `blocks` blocks, a budget of `budget` tokens, caching `cache`.
fn v1(blocks: u64, budget: u32, cache: bool, tweak: impl FnOnce(&mut SchedulerConfig)) -> Harness {
    Harness::new("vllm_v1", blocks, |c| {
        c.block_size = 4;
        c.vllm_v1.max_num_batched_tokens = Some(budget);
        c.enable_prefix_caching = Some(cache);
        tweak(c);
    })
}

fn with_prefix(id: u64, prefix: u32, prompt: u32, output: u32) -> RequestSpec {
    RequestSpec {
        segments: vec![Segment { id, tokens: prefix }],
        ..RequestSpec::simple(0, prompt, output)
    }
}

#[test]
fn budget_exhausted_mid_prefill_then_decodes_and_chunks_mix() {
    let mut h = v1(100, 8, false, |_| {});
    h.add(10, 3);
    h.add(4, 2);
    // A's prompt takes the whole budget (8 of 10 tokens); B waits.
    let b = h.next();
    assert_eq!(b, vec![(0, 8, true)]);
    assert_eq!(h.kv.allocated(), 2);
    h.end(&b);
    // A's last 2 prompt tokens first (running), then B's whole prompt (4) from the waiting queue.
    let b = h.next();
    assert_eq!(b, vec![(0, 2, true), (1, 4, true)]);
    assert_eq!(h.kv.allocated(), 3 + 1);
    h.end(&b);
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 1, false)]);
    // Decodes need blocks for 11 and 5 tokens: 3 + 2.
    assert_eq!(h.kv.allocated(), 5);
}

#[test]
fn long_prefill_threshold_caps_each_chunk() {
    let mut h = v1(100, 8, false, |c| {
        c.vllm_v1.long_prefill_token_threshold = 3
    });
    h.add(10, 2);
    h.add(4, 2);
    h.add(1, 2);
    // 3 + 3 + 1 = 7 of 8 tokens.
    let b = h.next();
    assert_eq!(b, vec![(0, 3, true), (1, 3, true), (2, 1, true)]);
    h.end(&b);
    // Running: A 3 more, B its last 1, C decodes; budget 8 − 5 = 3 left, nobody waits.
    let b = h.next();
    assert_eq!(b, vec![(0, 3, true), (1, 1, true), (2, 1, false)]);
}

#[test]
fn without_chunked_prefill_a_prompt_over_the_budget_is_skipped() {
    let mut h = v1(100, 8, false, |c| c.vllm_v1.enable_chunked_prefill = false);
    h.add(10, 2);
    h.add(4, 2);
    h.add(6, 2);
    // A (10 > 8) is skipped, B (4) fits, C (6 > 4 left) is skipped.
    let b = h.next();
    assert_eq!(b, vec![(1, 4, true)]);
    assert_eq!(h.sched.num_queued(), 2);
    h.end(&b);
    // B decodes (1); A still needs 10 > 7, C fits (6).
    let b = h.next();
    assert_eq!(b, vec![(1, 1, false), (2, 6, true)]);
}

#[test]
fn sequence_cap_holds_back_admissions_until_a_request_finishes() {
    let mut h = v1(100, 100, false, |c| c.vllm_v1.max_num_seqs = 2);
    for _ in 0..3 {
        h.add(4, 3);
    }
    let b = h.next();
    assert_eq!(b, vec![(0, 4, true), (1, 4, true)]);
    h.end(&b);
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 1, false)]);
    h.end(&b);
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 1, false)]);
    h.end(&b);
    assert!(h.req(0).completed && h.req(1).completed);
    // Both finished: the third is admitted.
    let b = h.next();
    assert_eq!(b, vec![(2, 4, true)]);
}

#[test]
fn memory_pressure_preempts_the_most_recently_admitted_and_blocks_admission() {
    // 6 blocks of 4 tokens. A (8) 2 blocks, B (4) 1, C (8) 2: one block left.
    let mut h = v1(6, 100, false, |_| {});
    h.add(8, 10);
    h.add(4, 10);
    h.add(8, 10);
    let b = h.next();
    assert_eq!(b, vec![(0, 8, true), (1, 4, true), (2, 8, true)]);
    assert_eq!(h.kv.free_blocks(), 1);
    h.end(&b);
    h.add(1, 1);
    // A's decode needs a 3rd block (9 tokens): takes the last one. B's needs a 2nd (5 tokens):
    // C, the most recently admitted, is preempted (not A). Nothing is admitted in this step.
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 1, false)]);
    let c = h.req(2);
    assert_eq!(
        (c.num_preemptions, c.kv_blocks, c.processed_tokens),
        (1, 0, 0)
    );
    // C's prompt is now its 9 processed tokens, and it is first in line.
    assert_eq!(c.current_prefill_tokens, 9);
    assert_eq!(h.sched.num_queued(), 2);
    h.end(&b);
    // A 10 tokens (3 blocks), B 6 (2 blocks): 5 used, 1 free; C needs 3 for 9 tokens: it waits,
    // and so does the request behind it (FCFS).
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 1, false)]);
    assert_eq!(h.kv.free_blocks(), 1);
}

#[test]
fn a_request_that_cannot_grow_preempts_itself_when_it_is_the_latest() {
    // 2 blocks: A's decode at 9 tokens needs a 3rd block and A is the only running request.
    let mut h = v1(2, 100, false, |_| {});
    h.add(8, 4);
    let b = h.next();
    assert_eq!(b, vec![(0, 8, true)]);
    h.end(&b);
    let b = h.next();
    assert_eq!(b, Vec::<(u32, u32, bool)>::new());
    assert_eq!(h.req(0).num_preemptions, 1);
    assert_eq!(h.kv.allocated(), 0);
}

#[test]
fn a_request_waits_for_blocks_held_in_flight_instead_of_preempting_itself() {
    // PP 2, 6 blocks of 4 tokens, budget 8: A (8 prompt) and B (16 prompt) in separate batches.
    let mut h = Harness::with_pp("vllm_v1", 6, 2, |c| {
        c.block_size = 4;
        c.vllm_v1.max_num_batched_tokens = Some(8);
        c.enable_prefix_caching = Some(false);
    });
    h.add(8, 4);
    h.add(16, 4);
    let b1 = h.next();
    assert_eq!(b1, vec![(0, 8, true)]);
    // A is in flight; B's first chunk of 8 takes 2 more blocks: 4 of 6 used.
    let b2 = h.next();
    assert_eq!(b2, vec![(1, 8, true)]);
    h.end(&b1);
    // A's first decode (9 tokens) takes a 3rd block; B is in flight.
    let b3 = h.next();
    assert_eq!(b3, vec![(0, 1, false)]);
    h.add(1, 1);
    h.end(&b2);
    // B's last 8 prompt tokens need 2 more blocks, 1 is free, and the only request it could
    // preempt is itself while A (in flight) holds 2: B keeps its blocks and waits, and C is not
    // admitted to the free block either.
    let b4 = h.next();
    assert_eq!(b4, Vec::<(u32, u32, bool)>::new());
    let b = h.req(1);
    assert_eq!(
        (b.num_preemptions, b.kv_blocks, b.processed_tokens),
        (0, 2, 8)
    );
    assert_eq!(h.sched.num_queued(), 1);
    assert_eq!(h.kv.free_blocks(), 1);
    // With nothing in flight the usual rule applies: A (older) decodes its 10th token within its
    // 3 blocks, and B, the latest, cannot have 2 blocks for 7 more tokens and preempts itself.
    h.end(&b3);
    h.end(&b4);
    let b5 = h.next();
    assert_eq!(b5, vec![(0, 1, false)]);
    assert_eq!(h.req(1).num_preemptions, 1);
    assert_eq!(h.sched.num_queued(), 2);
}

#[test]
fn prefix_hit_on_a_second_request() {
    let mut h = v1(100, 100, true, |_| {});
    // Both share a 10-token system prompt (2 full blocks + 2 tokens); tails are unique.
    h.add_spec(&with_prefix(7, 10, 12, 2));
    h.add_spec(&with_prefix(7, 10, 14, 2));
    // A computes 12 tokens (3 blocks, registered when scheduled); B reuses the 2 full blocks of the
    // shared prefix (its 3rd block mixes the prefix with its own tail) and computes 14 − 8 = 6.
    let b = h.next();
    assert_eq!(b, vec![(0, 12, true), (1, 6, true)]);
    assert_eq!(h.req(1).cached_prefill_tokens, 8);
    assert_eq!(h.req(1).processed_tokens, 8);
    let cache = h.kv.prefix_cache().unwrap();
    let (ta, tb) = (cache.block_table(0).to_vec(), cache.block_table(1).to_vec());
    assert_eq!(&tb[..2], &ta[..2]);
    assert_eq!(cache.ref_count(ta[0]), 2);
    assert_eq!(cache.ref_count(ta[2]), 1);
    // 3 blocks for A, 2 new for B.
    assert_eq!(h.kv.allocated(), 5);
    let s = h.kv.prefix_stats();
    assert_eq!(
        (
            s.queried_tokens,
            s.hit_tokens,
            s.queried_blocks,
            s.hit_blocks
        ),
        (26, 8, 6, 2)
    );
    h.end(&b);
    assert_eq!(h.req(1).computed_prefill_tokens, 6);
    assert_eq!(h.req(0).computed_prefill_tokens, 12);
}

#[test]
fn a_fully_cached_prompt_still_computes_its_last_block() {
    let mut h = v1(100, 100, true, |_| {});
    h.add_spec(&with_prefix(9, 8, 8, 1));
    let b = h.next();
    assert_eq!(b, vec![(0, 8, true)]);
    h.end(&b);
    // Identical 8-token prompt: at most 7 tokens may hit, i.e. 1 block; 4 tokens computed.
    h.add_spec(&with_prefix(9, 8, 8, 1));
    let b = h.next();
    assert_eq!(b, vec![(1, 4, true)]);
    assert_eq!(h.req(1).cached_prefill_tokens, 4);
}

#[test]
fn freed_blocks_stay_cached_and_are_evicted_least_recently_freed_first() {
    let mut h = v1(4, 100, true, |_| {});
    let queue = |h: &Harness| h.kv.prefix_cache().unwrap().free_queue();
    // A: an 8-token shared prompt in blocks 0, 1; freed last block first.
    h.add_spec(&with_prefix(1, 8, 8, 1));
    let b = h.next();
    assert_eq!(b, vec![(0, 8, true)]);
    h.end(&b);
    assert_eq!(queue(&h), vec![2, 3, 1, 0]);
    assert_eq!(h.kv.prefix_cache().unwrap().cached_blocks(), 2);
    // B: another prefix, in the two never-used blocks 2, 3: no eviction.
    h.add_spec(&with_prefix(2, 8, 8, 1));
    let b = h.next();
    h.end(&b);
    assert_eq!(queue(&h), vec![1, 0, 3, 2]);
    assert_eq!(h.kv.prefix_stats().evictions, 0);
    // C (4 unique tokens) takes block 1: A's second block is evicted.
    h.add(4, 1);
    let b = h.next();
    h.end(&b);
    assert_eq!(h.kv.prefix_stats().evictions, 1);
    assert_eq!(queue(&h), vec![0, 3, 2, 1]);
    // D has A's prompt plus a token: A's first block still hits (revived from the queue), its
    // second was evicted, so 5 tokens are computed, in blocks 3 and 2: B's, freed before C's.
    h.add_spec(&with_prefix(1, 8, 9, 1));
    let b = h.next();
    assert_eq!(b, vec![(3, 5, true)]);
    assert_eq!(h.req(3).cached_prefill_tokens, 4);
    assert_eq!(h.kv.prefix_cache().unwrap().block_table(3), &[0, 3, 2]);
    assert_eq!(h.kv.prefix_stats().evictions, 3);
    assert_eq!(queue(&h), vec![1]);
    h.kv.prefix_cache().unwrap().check().unwrap();
}

#[test]
fn sarathi_reuses_cached_prefixes_when_asked() {
    let mut h = Harness::new("sarathi", 100, |c| {
        c.block_size = 4;
        c.chunk_size = 100;
        c.enable_prefix_caching = Some(true);
    });
    h.add_spec(&with_prefix(5, 12, 13, 2));
    let b = h.next();
    assert_eq!(b, vec![(0, 13, true)]);
    h.end(&b);
    h.add_spec(&with_prefix(5, 12, 16, 2));
    // Decode of A, then B reusing 3 blocks (12 tokens) and computing 4.
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 4, true)]);
    assert_eq!(h.req(1).cached_prefill_tokens, 12);
}

#[test]
fn sarathi_admits_a_cache_hit_when_the_blocks_it_lacks_are_free_exactly() {
    // A (12 shared + 1 own tokens) holds 4 of 5 blocks; B shares A's 3 full blocks and needs one
    // more (16 tokens): with one block free it is admitted, with none it waits (no watermark).
    for (num_blocks, admitted) in [(5, true), (4, false)] {
        let mut h = Harness::new("sarathi", num_blocks, |c| {
            c.block_size = 4;
            c.chunk_size = 100;
            c.watermark_blocks_fraction = 0.0;
            c.enable_prefix_caching = Some(true);
        });
        h.add_spec(&with_prefix(5, 12, 13, 4));
        let b = h.next();
        assert_eq!(b, vec![(0, 13, true)]);
        h.end(&b);
        h.add_spec(&with_prefix(5, 12, 16, 2));
        assert_eq!(h.sched.num_queued(), 1);
        let b = h.next();
        if admitted {
            assert_eq!(b, vec![(0, 1, false), (1, 4, true)], "{num_blocks} blocks");
            assert_eq!(h.sched.num_queued(), 0);
            assert_eq!(h.kv.free_blocks(), 0);
        } else {
            assert_eq!(b, vec![(0, 1, false)], "{num_blocks} blocks");
            assert_eq!(h.sched.num_queued(), 1);
        }
    }
}

#[test]
fn sarathi_and_the_vidur_policies_do_not_cache_by_default() {
    for name in ["sarathi", "vllm"] {
        let mut h = Harness::new(name, 100, |c| c.block_size = 4);
        h.add_spec(&with_prefix(5, 12, 13, 2));
        let b = h.next();
        h.end(&b);
        h.add_spec(&with_prefix(5, 12, 16, 2));
        let _ = h.next();
        assert!(h.kv.prefix_cache().is_none(), "{name}");
        assert_eq!(h.req(1).cached_prefill_tokens, 0, "{name}");
    }
}

#[test]
fn knobs_round_trip_through_toml_and_bad_values_name_their_field() {
    use crate::config::SimConfig;
    let mut c = SimConfig::default();
    c.scheduler.name = "vllm_v1".into();
    c.scheduler.vllm_v1.max_num_batched_tokens = Some(8192);
    c.scheduler.vllm_v1.max_num_seqs = 1024;
    c.scheduler.vllm_v1.gpu_memory_utilization = Some(0.8);
    let text = c.to_toml();
    assert!(text.contains("[scheduler.vllm_v1]"), "{text}");
    assert_eq!(SimConfig::from_toml(&text).unwrap(), c);
    assert!((c.memory_margin_fraction() - 0.2).abs() < 1e-12);
    // A larger memory share gives more blocks.
    let catalog = predictor::Catalog::builtin();
    let more = c.resolve(&catalog).unwrap().memory.num_blocks;
    c.scheduler.vllm_v1.gpu_memory_utilization = Some(0.5);
    assert!(c.resolve(&catalog).unwrap().memory.num_blocks < more);
    let e = SimConfig::from_toml("[scheduler.vllm_v1]\nmax_num_batched_token = 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_num_batched_token"), "{e}");
    let mut c = SimConfig::default();
    c.scheduler.name = "orca".into();
    c.scheduler.enable_prefix_caching = Some(true);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("scheduler.enable_prefix_caching"), "{e}");
    // Off is always allowed; on is the default for vllm_v1 only.
    c.scheduler.enable_prefix_caching = Some(false);
    c.validate().unwrap();
}

#[test]
fn default_budget_follows_vllm() {
    let mut v = super::VllmV1Config::default();
    assert_eq!((v.token_budget(4096), v.max_num_seqs), (2048, 256));
    v.enable_chunked_prefill = false;
    assert_eq!(v.token_budget(4096), 4096);
    assert_eq!(v.token_budget(1000), 2048);
    v.max_num_batched_tokens = Some(100);
    assert!(v.validate(4096).is_err());
    v.enable_chunked_prefill = true;
    assert!(v.validate(4096).is_ok());
}

/// The tokens of running requests come off the step's budget before later running chunks and
/// admissions (a budget that grew instead would give B and C more).
#[test]
fn running_requests_use_up_the_budget_for_later_chunks_and_admissions() {
    let mut h = v1(100, 8, false, |_| {});
    h.add(2, 5);
    h.add(20, 3);
    let b = h.next();
    assert_eq!(b, vec![(0, 2, true), (1, 6, true)]);
    h.end(&b);
    h.add(20, 3);
    // A decodes (1), B's chunk gets the 7 left, C waits
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 7, true)]);
    h.end(&b);
    // A decodes (1), B's last 7, nothing left for C
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 7, true)]);
    h.end(&b);
    // A and B decode (2), C's first chunk gets the 6 left
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 1, false), (2, 6, true)]);
}

/// An exhausted budget stops the running pass: no zero-token entries.
#[test]
fn the_running_pass_stops_at_an_exhausted_budget() {
    let mut h = v1(100, 2, false, |_| {});
    for _ in 0..3 {
        h.add(1, 5);
    }
    let b = h.next();
    assert_eq!(b, vec![(0, 1, true), (1, 1, true)]);
    h.end(&b);
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false), (1, 1, false)]);
    assert!(b.iter().all(|e| e.1 > 0));
}

/// Without chunked prefill a prompt exactly as long as the budget left is admitted.
#[test]
fn without_chunked_prefill_a_prompt_equal_to_the_budget_is_admitted() {
    let mut h = v1(100, 8, false, |c| c.vllm_v1.enable_chunked_prefill = false);
    h.add(8, 2);
    h.add(9, 2);
    let b = h.next();
    assert_eq!(b, vec![(0, 8, true)]);
    h.end(&b);
    // the 9-token prompt never fits a step beside a decode: it is skipped, keeping its place
    let b = h.next();
    assert_eq!(b, vec![(0, 1, false)]);
    assert_eq!(h.sched.num_queued(), 1);
}

#[test]
fn validation_bounds_are_inclusive_where_vllm_allows_them() {
    let ok = |tweak: &dyn Fn(&mut super::VllmV1Config)| {
        let mut v = super::VllmV1Config::default();
        tweak(&mut v);
        v.validate(4096)
    };
    // gpu_memory_utilization in (0, 1]
    for u in [1e-9, 0.5, 1.0] {
        assert!(ok(&|v| v.gpu_memory_utilization = Some(u)).is_ok(), "{u}");
    }
    for u in [0.0, -0.5, 1.0 + 1e-9, 1.5, f64::NAN] {
        let e = ok(&|v| v.gpu_memory_utilization = Some(u)).unwrap_err();
        assert_eq!(e.0, "scheduler.vllm_v1.gpu_memory_utilization", "{u}");
    }
    // max_model_len at least the longest request
    for len in [4096, 5000] {
        assert!(ok(&|v| v.max_model_len = Some(len)).is_ok(), "{len}");
    }
    let e = ok(&|v| v.max_model_len = Some(4095)).unwrap_err();
    assert!(e.1.starts_with("4095 is shorter than"), "{e:?}");
    // without chunked prefill, a budget equal to max_model_len fits every prompt
    let no_chunks = |budget: u32| {
        ok(&|v| {
            v.enable_chunked_prefill = false;
            v.max_num_batched_tokens = Some(budget);
        })
    };
    assert!(no_chunks(4096).is_ok());
    assert!(no_chunks(4095).is_err());
}

#[test]
fn an_exhausted_budget_ends_the_running_pass() {
    // A budget of 2 tokens with two batches in flight (pipeline parallelism): A and B fill the
    // first, C and D are admitted into the second while A and B are in flight. Once both end,
    // four requests run but only two decodes fit: C and D get no (empty) entries.
    let mut h = v1(100, 2, false, |_| {});
    h.add(1, 5);
    h.add(1, 5);
    let b1 = h.next();
    assert_eq!(b1, vec![(0, 1, true), (1, 1, true)]);
    h.add(1, 5);
    h.add(1, 5);
    let b2 = h.next();
    assert_eq!(b2, vec![(2, 1, true), (3, 1, true)]);
    h.end(&b1);
    h.end(&b2);
    assert_eq!(h.next(), vec![(0, 1, false), (1, 1, false)]);
}
