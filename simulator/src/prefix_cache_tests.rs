//! Prefix-cache invariants under random admissions, growth and releases, checked after every
//! operation, and the hashing of token identities.

use proptest::prelude::*;

use crate::kv::KvCache;
use crate::request::Request;
use crate::workload::{RequestSpec, Segment};

/// One operation on request slot `slot` (of 6).
#[derive(Debug, Clone)]
enum Op {
    /// Admit with this many prompt tokens after shared segments `segs` (ids 0..3).
    Admit {
        slot: usize,
        segs: Vec<u64>,
        tail: u32,
    },
    /// Process `n` more tokens.
    Grow { slot: usize, n: u32 },
    /// Free its blocks, finished or preempted.
    Free { slot: usize, finished: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..6, prop::collection::vec(0u64..3, 0..3), 1u32..30)
            .prop_map(|(slot, segs, tail)| Op::Admit { slot, segs, tail }),
        (0usize..6, 1u32..20).prop_map(|(slot, n)| Op::Grow { slot, n }),
        (0usize..6, any::<bool>()).prop_map(|(slot, finished)| Op::Free { slot, finished }),
    ]
}

fn check(kv: &KvCache) -> Result<(), TestCaseError> {
    let p = kv.prefix_cache().unwrap();
    prop_assert_eq!(p.check(), Ok(()));
    prop_assert_eq!(
        p.used_blocks() + p.cached_blocks() + p.empty_blocks(),
        kv.num_blocks()
    );
    prop_assert_eq!(p.used_blocks(), kv.allocated());
    prop_assert_eq!(p.reclaimable_blocks(), kv.free_blocks());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn counts_and_references_stay_consistent(
        blocks in 4u64..40,
        block_size in 1u32..9,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut kv = KvCache::new(blocks, block_size).with_prefix_caching(true);
        let mut slots: Vec<Option<Request>> = vec![None; 6];
        let mut next_id = 0;
        for op in ops {
            match op {
                Op::Admit { slot, segs, tail } => {
                    if slots[slot].is_some() {
                        continue;
                    }
                    let segments: Vec<Segment> =
                        segs.iter().map(|&id| Segment { id, tokens: 5 + 7 * id as u32 }).collect();
                    let shared: u32 = segments.iter().map(|s| s.tokens).sum();
                    let spec = RequestSpec { segments, ..RequestSpec::simple(0, shared + tail, 4) };
                    let mut r = Request::new(next_id, 0, &spec);
                    next_id += 1;
                    let hit = kv.prefix_lookup(&r);
                    prop_assert!(hit.tokens < r.current_prefill_tokens);
                    let need = kv.blocks_for(r.current_prefill_tokens) - hit.blocks + hit.revived_blocks;
                    if !kv.can_allocate(u64::from(need)) {
                        continue;
                    }
                    let before = kv.allocated();
                    kv.take_prefix_hit(&mut r, hit).unwrap();
                    prop_assert_eq!(kv.allocated(), before + u64::from(hit.revived_blocks));
                    prop_assert_eq!(r.processed_tokens, hit.tokens);
                    let missing = kv.blocks_for(r.current_prefill_tokens) - r.kv_blocks;
                    kv.allocate(&mut r, missing).unwrap();
                    r.processed_tokens = r.current_prefill_tokens;
                    kv.register_scheduled(&r, r.processed_tokens);
                    slots[slot] = Some(r);
                }
                Op::Grow { slot, n } => {
                    let Some(r) = slots[slot].as_mut() else { continue };
                    let missing = kv.blocks_for(r.processed_tokens + n).saturating_sub(r.kv_blocks);
                    if !kv.can_allocate(u64::from(missing)) {
                        continue;
                    }
                    kv.allocate(r, missing).unwrap();
                    r.processed_tokens += n;
                    kv.register_scheduled(r, r.processed_tokens);
                }
                Op::Free { slot, finished } => {
                    let Some(mut r) = slots[slot].take() else { continue };
                    r.completed = finished;
                    let held = r.kv_blocks;
                    prop_assert_eq!(kv.free(&mut r), held);
                    if !finished {
                        // a preempted request finds (at least) the blocks it had registered
                        let mut again = r.clone();
                        again.restart();
                        let _ = kv.prefix_lookup(&again);
                    }
                }
            }
            check(&kv)?;
        }
        for r in slots.iter_mut().flatten() {
            r.completed = true;
            kv.free(r);
        }
        check(&kv)?;
        prop_assert_eq!(kv.allocated(), 0);
    }
}

#[test]
fn identical_content_hashes_alike_and_any_difference_breaks_the_chain() {
    // Two requests: shared 10-token segment, then unique tails; block size 4.
    let mut kv = KvCache::new(20, 4).with_prefix_caching(true);
    let spec = |id| RequestSpec {
        segments: vec![Segment { id, tokens: 10 }],
        ..RequestSpec::simple(0, 13, 2)
    };
    let mut a = Request::new(0, 0, &spec(1));
    let hit = kv.prefix_lookup(&a);
    kv.take_prefix_hit(&mut a, hit).unwrap();
    kv.allocate(&mut a, 4).unwrap();
    kv.register_scheduled(&a, 13);
    // Same segment: blocks 0 and 1 (tokens 0..8) hit, block 2 mixes in a's own tail.
    let b = Request::new(1, 0, &spec(1));
    assert_eq!(kv.prefix_lookup(&b).blocks, 2);
    // Another segment id: nothing.
    let c = Request::new(2, 0, &spec(2));
    assert_eq!(kv.prefix_lookup(&c).blocks, 0);
    // Multi-turn: turn 1 = segment 1 (10) + its new prompt, segment 60 (3); output segment 50.
    let turn1 = RequestSpec {
        segments: vec![Segment { id: 1, tokens: 10 }, Segment { id: 60, tokens: 3 }],
        output_segment: Some(50),
        ..RequestSpec::simple(0, 13, 8)
    };
    let mut d = Request::new(3, 0, &turn1);
    let hit = kv.prefix_lookup(&d);
    assert_eq!(hit.blocks, 2);
    kv.take_prefix_hit(&mut d, hit).unwrap();
    let missing = kv.blocks_for(13) - d.kv_blocks;
    kv.allocate(&mut d, missing).unwrap();
    kv.register_scheduled(&d, 13);
    // It decodes: 13 prompt + 7 output tokens with KV = 20 tokens = 5 full blocks.
    kv.allocate(&mut d, 1).unwrap();
    kv.register_scheduled(&d, 20);
    // Turn 2's prompt is the conversation so far (segments 1, 60, 50) plus 5 new tokens: its first
    // 20 tokens are turn 1's, so 5 blocks hit (at most (25 − 1) / 4 = 6 could).
    let turn2 = RequestSpec {
        segments: vec![
            Segment { id: 1, tokens: 10 },
            Segment { id: 60, tokens: 3 },
            Segment { id: 50, tokens: 7 },
            Segment { id: 61, tokens: 5 },
        ],
        ..RequestSpec::simple(0, 25, 2)
    };
    let e = Request::new(4, 0, &turn2);
    assert_eq!(kv.prefix_lookup(&e).blocks, 5);
    // A turn 2 naming another output segment matches only up to the end of turn 1's prompt:
    // blocks 0..2 cover tokens 0..12, block 3 (tokens 12..16) mixes in the output.
    let mut other = turn2.clone();
    other.segments[2].id = 51;
    assert_eq!(kv.prefix_lookup(&Request::new(5, 0, &other)).blocks, 3);
}

#[test]
fn the_routers_query_agrees_with_a_lookup_and_changes_nothing() {
    use crate::prefix_cache::shared_prompt_block_hashes;
    // Block size 4. Request a: shared segment 1 (10 tokens) + 3 unique, scheduled and finished,
    // so its blocks sit in the free queue, cached.
    let mut kv = KvCache::new(20, 4).with_prefix_caching(true);
    let spec = |seg: Vec<Segment>, prompt| RequestSpec {
        segments: seg,
        ..RequestSpec::simple(0, prompt, 2)
    };
    let mut a = Request::new(0, 0, &spec(vec![Segment { id: 1, tokens: 10 }], 13));
    kv.allocate(&mut a, 4).unwrap();
    kv.register_scheduled(&a, 13);
    a.completed = true;
    kv.free(&mut a);
    let p = kv.prefix_cache().unwrap();
    assert_eq!(p.cached_blocks(), 3);
    let mut hashes = vec![99];
    let query = |r: &Request, hashes: &mut Vec<u64>| {
        let prompt_blocks = shared_prompt_block_hashes(r, 4, hashes);
        let before = p.clone();
        let cached = p.cached_prefix_blocks(hashes);
        assert_eq!(&before, p, "the query changed the cache");
        let mut probe = p.clone();
        let hit = probe.lookup(r);
        assert_eq!(cached, hit.blocks, "query and lookup disagree");
        // The router's hashes are the first links of the lookup's chain.
        assert_eq!(hashes[..], probe.tables[&r.id].hashes[..hashes.len()]);
        (prompt_blocks, hashes.len(), cached)
    };
    // Same segment, 17-token prompt: a lookup considers ⌊16 / 4⌋ = 4 blocks, 2 of them shared
    // (tokens 0..8; block 2 mixes in the request's own tail); both cached.
    let b = Request::new(1, 0, &spec(vec![Segment { id: 1, tokens: 10 }], 17));
    assert_eq!(query(&b, &mut hashes), (4, 2, 2));
    // Another segment: nothing cached. No segment: nothing to hash.
    let c = Request::new(2, 0, &spec(vec![Segment { id: 2, tokens: 10 }], 17));
    assert_eq!(query(&c, &mut hashes), (4, 2, 0));
    let d = Request::new(3, 0, &spec(vec![], 17));
    assert_eq!(query(&d, &mut hashes), (4, 0, 0));
    // Segments 1 and 5 fill 16 tokens (4 blocks) of a 17-token prompt: 4 hashes, 2 cached.
    let e = Request::new(
        4,
        0,
        &spec(
            vec![Segment { id: 1, tokens: 10 }, Segment { id: 5, tokens: 6 }],
            17,
        ),
    );
    assert_eq!(query(&e, &mut hashes), (4, 4, 2));
    // A prompt made only of segment 1 (9 tokens): the lookup stops at ⌊8 / 4⌋ = 2 blocks.
    let f = Request::new(5, 0, &spec(vec![Segment { id: 1, tokens: 9 }], 9));
    assert_eq!(query(&f, &mut hashes), (2, 2, 2));
    // A cached block's reference is not taken: b's lookup-and-take afterwards still revives both.
    let hit = kv.prefix_lookup(&b);
    assert_eq!((hit.blocks, hit.revived_blocks), (2, 2));
}

/// A pool with shared blocks held twice (A and B share a prompt segment), own blocks held once,
/// and a finished request's shared and own blocks queued (C).
fn mixed_pool() -> (super::PrefixCache, [u32; 4]) {
    let mut p = super::PrefixCache::new(12, 4);
    let spec = |seg, tail| RequestSpec {
        segments: vec![Segment { id: seg, tokens: 8 }],
        ..RequestSpec::simple(0, 8 + tail, 2)
    };
    for (id, seg, tail, blocks) in [(0, 1, 5, 4), (1, 1, 3, 3), (2, 2, 5, 4)] {
        let r = Request::new(id, 0, &spec(seg, tail));
        let hit = p.lookup(&r);
        p.take_hit(&r, hit);
        p.allocate(id, blocks - hit.blocks);
        p.register(&r, 8 + tail);
    }
    p.release(2, true);
    assert_eq!(p.check(), Ok(()));
    let a = p.block_table(0).to_vec();
    (p, [a[0], a[1], a[2], a[3]])
}

/// A way to break a pool.
type Breakage = Box<dyn Fn(&mut super::PrefixCache)>;

#[test]
fn check_names_each_broken_invariant() {
    use super::queue::Kind;
    let (pool, [shared, _, _, own]) = mixed_pool();
    let queued = |kind: Kind| pool.queue.iter().find(|e| e.kind == kind).unwrap();
    let cached = queued(Kind::Shared);
    let cases: [(&str, Breakage); 7] = [
        (
            "is queued and held",
            Box::new(move |p| p.tables.get_mut(&0).unwrap().blocks.push(cached.block)),
        ),
        (
            "is neither queued nor held",
            Box::new(move |p| {
                p.tables.get_mut(&0).unwrap().blocks.pop();
            }),
        ),
        (
            "without shared content has 2 holders",
            Box::new(move |p| p.tables.get_mut(&1).unwrap().blocks.push(own)),
        ),
        (
            "reference counts differ from the block tables",
            Box::new(move |p| p.records[shared as usize].refs += 1),
        ),
        (
            "kind differs from its record",
            Box::new(move |p| p.records[cached.block as usize].hash = None),
        ),
        (
            "record differs from its entry",
            Box::new(move |p| p.records[cached.block as usize].refs = 1),
        ),
        (
            "record differs from its entry",
            Box::new(move |p| p.records[cached.block as usize].seq += 1000),
        ),
    ];
    for (want, break_it) in cases {
        let mut p = pool.clone();
        break_it(&mut p);
        let e = p.check().unwrap_err();
        assert!(e.contains(want), "want {want:?}, got {e:?}");
    }
}
