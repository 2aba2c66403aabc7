//! The prefix cache against a plain model of the same policy: every full block hashed (own content
//! too) into one map, a vector as the free queue, per-block reference counts. Random admissions
//! (shared segments, unique tails, output segments), growth, completions and preemptions followed
//! by re-admissions (which hit the request's own blocks) must give the same hits, evictions,
//! counts, block tables and free-queue order after every operation.

use std::collections::HashMap;

use proptest::prelude::*;

use super::hash::extend_hashes;
use super::{PrefixCache, PrefixCacheStats, PrefixHit};
use crate::request::{ReqId, Request};
use crate::workload::{RequestSpec, Segment};

/// The model: the cache as first written, with simple data structures.
struct Model {
    block_size: u32,
    refs: Vec<u32>,
    hash: Vec<Option<u64>>,
    queue: Vec<u32>,
    by_hash: HashMap<u64, u32>,
    /// Per request: blocks, registered blocks, every full block's hash.
    tables: HashMap<ReqId, (Vec<u32>, usize, Vec<u64>)>,
    stats: PrefixCacheStats,
}

impl Model {
    fn new(n: u32, block_size: u32) -> Self {
        Model {
            block_size,
            refs: vec![0; n as usize],
            hash: vec![None; n as usize],
            queue: (0..n).collect(),
            by_hash: HashMap::new(),
            tables: HashMap::new(),
            stats: PrefixCacheStats::default(),
        }
    }

    fn hashes(&mut self, req: &Request, upto: usize) -> Vec<u64> {
        let t = self.tables.entry(req.id).or_default();
        extend_hashes(req, self.block_size, upto, &mut t.2);
        t.2.clone()
    }

    fn lookup(&mut self, req: &Request) -> PrefixHit {
        let max = (req.current_prefill_tokens.saturating_sub(1) / self.block_size) as usize;
        let mut hit = PrefixHit::default();
        for h in &self.hashes(req, max)[..max] {
            let Some(&b) = self.by_hash.get(h) else { break };
            hit.blocks += 1;
            hit.revived_blocks += u32::from(self.refs[b as usize] == 0);
        }
        hit.tokens = hit.blocks * self.block_size;
        hit
    }

    fn take_hit(&mut self, req: &Request, hit: PrefixHit) -> u64 {
        let hashes = self.hashes(req, hit.blocks as usize);
        let mut revived = 0;
        let mut blocks = Vec::new();
        for h in &hashes[..hit.blocks as usize] {
            let b = self.by_hash[h];
            if self.refs[b as usize] == 0 {
                self.queue.retain(|&q| q != b);
                revived += 1;
            }
            self.refs[b as usize] += 1;
            blocks.push(b);
        }
        let t = self.tables.get_mut(&req.id).unwrap();
        (t.0, t.1) = (blocks, hit.blocks as usize);
        self.stats.count_admission(req, hit, self.block_size);
        revived
    }

    fn allocate(&mut self, id: ReqId, n: u32) {
        for _ in 0..n {
            let b = self.queue.remove(0);
            if let Some(h) = self.hash[b as usize].take() {
                self.by_hash.remove(&h);
                self.stats.evictions += 1;
            }
            self.refs[b as usize] = 1;
            self.tables.entry(id).or_default().0.push(b);
        }
    }

    fn register(&mut self, req: &Request, kv_tokens: u32) {
        let Some(t) = self.tables.get(&req.id) else {
            return;
        };
        let full = ((kv_tokens / self.block_size) as usize).min(t.0.len());
        let from = t.1;
        if full <= from {
            return;
        }
        let hashes = self.hashes(req, full);
        let t = self.tables.get_mut(&req.id).unwrap();
        for (&b, &h) in t.0[from..full].iter().zip(&hashes[from..full]) {
            if self.hash[b as usize].is_none() && !self.by_hash.contains_key(&h) {
                self.by_hash.insert(h, b);
                self.hash[b as usize] = Some(h);
            }
        }
        t.1 = full;
    }

    fn release(&mut self, id: ReqId, forget: bool) -> u64 {
        let Some(t) = self.tables.get_mut(&id) else {
            return 0;
        };
        let blocks = std::mem::take(&mut t.0);
        t.1 = 0;
        let mut freed = 0;
        for &b in blocks.iter().rev() {
            self.refs[b as usize] -= 1;
            if self.refs[b as usize] == 0 {
                self.queue.push(b);
                freed += 1;
            }
        }
        if forget {
            self.tables.remove(&id);
        }
        freed
    }

    fn cached(&self) -> u64 {
        self.queue
            .iter()
            .filter(|&&b| self.hash[b as usize].is_some())
            .count() as u64
    }
}

/// A request in a slot: running, or preempted and waiting to be re-admitted.
struct Slot {
    req: Request,
    running: bool,
}

#[derive(Debug, Clone)]
enum Op {
    /// Admit a new request in an empty slot (segments from a pool of 3, a unique tail, maybe an
    /// output segment), or re-admit a preempted one.
    Admit {
        slot: usize,
        segs: Vec<u64>,
        tail: u32,
        output_segment: Option<u64>,
    },
    /// A running request computes `n` more tokens.
    Grow { slot: usize, n: u32 },
    /// A running request completes (`finished`) or is preempted.
    Free { slot: usize, finished: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0usize..5,
            prop::collection::vec(0u64..3, 0..3),
            0u32..12,
            prop::option::of(0u64..2)
        )
            .prop_map(|(slot, segs, tail, out)| Op::Admit {
                slot,
                segs,
                tail,
                output_segment: out.map(|o| 100 + o),
            }),
        (0usize..5, 1u32..12).prop_map(|(slot, n)| Op::Grow { slot, n }),
        (0usize..5, any::<bool>()).prop_map(|(slot, finished)| Op::Free { slot, finished }),
    ]
}

/// Compares the two after an operation.
fn same(p: &PrefixCache, m: &Model, slots: &[Option<Slot>]) -> Result<(), TestCaseError> {
    prop_assert_eq!(p.check(), Ok(()));
    prop_assert_eq!(p.stats(), m.stats);
    prop_assert_eq!(p.free_queue(), m.queue.clone());
    prop_assert_eq!(p.cached_blocks(), m.cached());
    for s in slots.iter().flatten() {
        let model: &[u32] = m.tables.get(&s.req.id).map_or(&[], |t| &t.0);
        prop_assert_eq!(p.block_table(s.req.id), model);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_cache_behaves_as_the_plain_model(
        blocks in 4u32..40,
        block_size in 1u32..6,
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let mut p = PrefixCache::new(u64::from(blocks), block_size);
        let mut m = Model::new(blocks, block_size);
        let mut slots: Vec<Option<Slot>> = (0..5).map(|_| None).collect();
        let mut next_id = 0;
        let blocks_for = |tokens: u32| tokens.div_ceil(block_size);
        for op in ops {
            match op {
                Op::Admit { slot, segs, tail, output_segment } => {
                    if slots[slot].as_ref().is_some_and(|s| s.running) {
                        continue;
                    }
                    if slots[slot].is_none() {
                        let segments: Vec<Segment> =
                            segs.iter().map(|&id| Segment { id, tokens: 3 + 2 * id as u32 }).collect();
                        let shared: u32 = segments.iter().map(|s| s.tokens).sum();
                        let spec = RequestSpec {
                            segments,
                            output_segment,
                            ..RequestSpec::simple(0, (shared + tail).max(1), 64)
                        };
                        next_id += 1;
                        slots[slot] = Some(Slot { req: Request::new(next_id, 0, &spec), running: false });
                    }
                    let s = slots[slot].as_mut().expect("filled above");
                    let r = &mut s.req;
                    let hit = p.lookup(r);
                    prop_assert_eq!(hit, m.lookup(r));
                    let need = blocks_for(r.current_prefill_tokens) - hit.blocks + hit.revived_blocks;
                    if u64::from(need) > p.reclaimable_blocks() {
                        continue;
                    }
                    prop_assert_eq!(p.take_hit(r, hit), m.take_hit(r, hit));
                    let missing = blocks_for(r.current_prefill_tokens) - hit.blocks;
                    p.allocate(r.id, missing);
                    m.allocate(r.id, missing);
                    r.processed_tokens = r.current_prefill_tokens;
                    r.prefill_complete = true;
                    p.register(r, r.processed_tokens);
                    m.register(r, r.processed_tokens);
                    s.running = true;
                }
                Op::Grow { slot, n } => {
                    let Some(s) = slots[slot].as_mut().filter(|s| s.running) else { continue };
                    let r = &mut s.req;
                    let missing = blocks_for(r.processed_tokens + n).saturating_sub(p.block_table(r.id).len() as u32);
                    if u64::from(missing) > p.reclaimable_blocks() {
                        continue;
                    }
                    p.allocate(r.id, missing);
                    m.allocate(r.id, missing);
                    r.processed_tokens += n;
                    p.register(r, r.processed_tokens);
                    m.register(r, r.processed_tokens);
                }
                Op::Free { slot, finished } => {
                    let Some(s) = slots[slot].as_mut().filter(|s| s.running) else { continue };
                    let id = s.req.id;
                    prop_assert_eq!(p.release(id, finished), m.release(id, finished));
                    if finished {
                        slots[slot] = None;
                    } else {
                        s.req.restart();
                        s.running = false;
                    }
                }
            }
            same(&p, &m, &slots)?;
        }
        // Every shared block is where the model has its content.
        for (h, b) in &p.by_hash {
            prop_assert_eq!(m.by_hash.get(h), Some(b));
        }
    }
}
