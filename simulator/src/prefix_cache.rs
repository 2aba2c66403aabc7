//! Automatic prefix caching for one replica's KV cache (the block table behind
//! [`KvCache`](crate::kv::KvCache) when caching is on), after vLLM V1's `KVCacheManager`.
//!
//! - Blocks are named (ids `0..capacity`) and reference-counted; a request holds a block table.
//! - A full block's content is the whole token sequence up to its end (chaining, as vLLM's parent
//!   hashes do). Token identities come from the request's content ([`Request::segments`], the
//!   unique prompt tail, [`Request::output_segment`]), never from token arrays.
//! - A block whose tokens all belong to shared runs from the sequence's start (workload segments,
//!   a session turn's output segment) can be reused by any request: it is identified by a 64-bit
//!   hash chained over its tokens' runs, hashed as (kind, id, first offset, length), and its
//!   parent block's hash, and looked up in a hash map. Any later block follows a token unique to
//!   its request (its prompt tail or output), so only that request can ever reuse it, after a
//!   preemption: it is identified exactly by (request, block index), with no hash and no map
//!   entry. Those blocks are most of a run's blocks; skipping their hashing and map traffic is
//!   what keeps caching cheap (docs/vllm-v1.md, *Simulation speed*).
//! - A block is registered once the tokens filling it are scheduled (as vLLM V1 does), so a request
//!   scheduled later can reuse it; the first block registered for a content keeps it.
//! - Blocks with no reference sit in one free queue, least recently freed first. A freed request
//!   returns its blocks in reverse order (its last block is evicted first). Taking a block from the
//!   queue evicts its content, if it has one (an *eviction*). A hit on a block with no reference
//!   takes it out of the queue (a *revival*).
//!
//! Counts: `used` (reference > 0) + `cached` (no reference, with content) + `free` (no reference,
//! no content) = capacity, always. Hash maps are only looked up, never iterated, so runs stay
//! deterministic.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::request::{ReqId, Request};

const NIL: u32 = u32::MAX;
/// Token-run kinds in the hash: shared content (a workload segment) or content unique to a request.
const KIND_SEGMENT: u64 = 1;
const KIND_UNIQUE: u64 = 2;
/// Parent hash of a request's first block.
const ROOT_HASH: u64 = 0x5345_5256_4553_494d;

/// A fast hasher for integer keys (request ids, block hashes): one multiply. Maps keyed by it are
/// only looked up, never iterated.
#[derive(Debug, Default, Clone, Copy)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// The longest chain of cached blocks matching a request's prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixHit {
    /// Cached blocks reused.
    pub blocks: u32,
    /// Prompt tokens they hold (`blocks × block_size`).
    pub tokens: u32,
    /// Of those blocks, how many have no reference now (they leave the free queue when reused).
    pub revived_blocks: u32,
}

/// Prefix-cache counters of one replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixCacheStats {
    /// Admissions that consulted the cache (a preempted request counts again when re-admitted).
    pub lookups: u64,
    /// Prompt tokens of those admissions.
    pub queried_tokens: u64,
    /// Of those, tokens served from the cache.
    pub hit_tokens: u64,
    /// Full prompt blocks of those admissions.
    pub queried_blocks: u64,
    /// Of those, blocks served from the cache.
    pub hit_blocks: u64,
    /// Cached blocks whose content was dropped to reuse the block.
    pub evictions: u64,
}

/// What a block holds for later reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Nothing (never filled and registered, or evicted).
    Empty,
    /// Shared content: its chained hash, the block's key in the hash map.
    Shared(u64),
    /// Block `index` of request `req`'s sequence, content only that request has.
    Own { req: ReqId, index: u32 },
}

/// One block: its links in the free queue (while it has no reference), references and content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    prev: u32,
    next: u32,
    refs: u32,
    content: Content,
}

/// The blocks and the queue of those with no reference, least recently freed first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FreeQueue {
    blocks: Vec<Block>,
    head: u32,
    tail: u32,
    /// Blocks in the queue.
    len: u64,
    /// Of those, blocks with content.
    cached: u64,
}

impl FreeQueue {
    /// `n` empty blocks, all queued in id order.
    fn new(n: u32) -> Self {
        let blocks = (0..n)
            .map(|i| Block {
                prev: if i == 0 { NIL } else { i - 1 },
                next: if i + 1 == n { NIL } else { i + 1 },
                refs: 0,
                content: Content::Empty,
            })
            .collect();
        FreeQueue {
            blocks,
            head: if n == 0 { NIL } else { 0 },
            tail: if n == 0 { NIL } else { n - 1 },
            len: u64::from(n),
            cached: 0,
        }
    }

    fn unlink(&mut self, b: u32) {
        let Block { prev, next, .. } = self.blocks[b as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.blocks[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.blocks[next as usize].prev = prev;
        }
        let blk = &mut self.blocks[b as usize];
        blk.prev = NIL;
        blk.next = NIL;
        self.len -= 1;
        if blk.content != Content::Empty {
            self.cached -= 1;
        }
    }

    fn push_back(&mut self, b: u32) {
        let tail = self.tail;
        let blk = &mut self.blocks[b as usize];
        blk.prev = tail;
        blk.next = NIL;
        if blk.content != Content::Empty {
            self.cached += 1;
        }
        if tail == NIL {
            self.head = b;
        } else {
            self.blocks[tail as usize].next = b;
        }
        self.tail = b;
        self.len += 1;
    }

    /// The block holding block `index` of request `req`'s own content, when `candidate` (the one
    /// last registered for it, or [`NIL`]) still does.
    fn own(&self, candidate: Option<&u32>, req: ReqId, index: usize) -> Option<u32> {
        let &b = candidate?;
        let expected = Content::Own {
            req,
            index: index as u32,
        };
        (b != NIL && self.blocks[b as usize].content == expected).then_some(b)
    }
}

/// One request's blocks and what is known of its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    blocks: Vec<u32>,
    /// Hashes of the request's leading shared blocks, computed on demand (kept across preemptions).
    hashes: Vec<u64>,
    /// How many leading blocks of its sequence can hold shared content ([`shared_block_count`]),
    /// once known.
    shared: Option<usize>,
    /// Leading blocks of `blocks` already registered (or reused) in the cache.
    registered: usize,
    /// After a preemption: per own block index, the block last registered for it ([`NIL`] if
    /// none); stale once that block's content changed, which a lookup checks.
    own: Vec<u32>,
}

impl Table {
    /// [`Table::shared`], computed once.
    fn shared(&mut self, req: &Request, block_size: u32) -> usize {
        *self
            .shared
            .get_or_insert_with(|| shared_block_count(req, block_size))
    }
}

/// The block pool of one replica with prefix caching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixCache {
    block_size: u32,
    queue: FreeQueue,
    /// Registered shared blocks by content hash (a bijection with the blocks of `Shared` content).
    by_hash: IntMap<u64, u32>,
    tables: IntMap<ReqId, Table>,
    /// Emptied tables of forgotten requests, reused so a request costs no allocation.
    spare: Vec<Table>,
    stats: PrefixCacheStats,
}

/// How many leading blocks of `req`'s token sequence hold only shared content: those before its
/// first unique token (its prompt tail, or its output when that has no segment id); every block of
/// the sequence when there is none.
fn shared_block_count(req: &Request, block_size: u32) -> usize {
    let seg_total: u64 = req.segments.iter().map(|s| u64::from(s.tokens)).sum();
    if req.output_segment.is_some() && u64::from(req.prefill_tokens) <= seg_total {
        usize::MAX
    } else {
        usize::try_from(seg_total / u64::from(block_size)).unwrap_or(usize::MAX)
    }
}

/// The table of request `req`, made (from a spare one if any) when it has none.
fn table<'a>(
    tables: &'a mut IntMap<ReqId, Table>,
    spare: &mut Vec<Table>,
    req: ReqId,
) -> &'a mut Table {
    tables
        .entry(req)
        .or_insert_with(|| spare.pop().unwrap_or_default())
}

/// Mixes one word into a running hash (multiply–rotate; not cryptographic, 64-bit collisions are
/// treated as identity, as vLLM does with its block hashes).
fn mix(h: u64, x: u64) -> u64 {
    (h ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .rotate_left(27)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Final avalanche of a block hash; never 0.
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.max(1)
}

/// A run of tokens with consecutive identities: (kind, id, offset of the first token, length).
#[derive(Clone, Copy)]
struct Run {
    kind: u64,
    id: u64,
    offset: u64,
    len: u64,
}

/// The runs of `req`'s token sequence (prompt, then output, unbounded), in order.
fn runs(req: &Request) -> impl Iterator<Item = Run> + '_ {
    let seg_total: u64 = req.segments.iter().map(|s| u64::from(s.tokens)).sum();
    let prompt = u64::from(req.prefill_tokens).max(seg_total);
    let segs = req.segments.iter().map(|s| Run {
        kind: KIND_SEGMENT,
        id: s.id,
        offset: 0,
        len: u64::from(s.tokens),
    });
    // The unique tail and unique output share one identity space: (request, absolute position).
    let tail = Run {
        kind: KIND_UNIQUE,
        id: u64::from(req.id),
        offset: seg_total,
        len: prompt - seg_total,
    };
    let output = match req.output_segment {
        Some(id) => Run {
            kind: KIND_SEGMENT,
            id,
            offset: 0,
            len: u64::MAX,
        },
        None => Run {
            kind: KIND_UNIQUE,
            id: u64::from(req.id),
            offset: prompt,
            len: u64::MAX,
        },
    };
    segs.chain([tail, output]).filter(|r| r.len > 0)
}

/// Appends to `out` the chained hashes of `req`'s full blocks `out.len()..upto`.
fn extend_hashes(req: &Request, block_size: u32, upto: usize, out: &mut Vec<u64>) {
    if out.len() >= upto {
        return;
    }
    let bs = u64::from(block_size);
    let start = out.len() as u64 * bs;
    let mut parent = out.last().copied().unwrap_or(ROOT_HASH);
    let mut it = runs(req);
    let mut run = it.next().expect("the output run is unbounded");
    // Skip to the run holding position `start`.
    let mut pos = 0u64;
    while run.len <= start - pos {
        pos += run.len;
        run = it.next().expect("the output run is unbounded");
    }
    let mut used = start - pos; // tokens of `run` before the cursor
    while out.len() < upto {
        let mut h = mix(parent, 0xB10C);
        let mut left = bs;
        while left > 0 {
            if used == run.len {
                run = it.next().expect("the output run is unbounded");
                used = 0;
            }
            let take = left.min(run.len - used);
            h = mix(mix(mix(mix(h, run.kind), run.id), run.offset + used), take);
            used += take;
            left -= take;
        }
        parent = finish(h);
        out.push(parent);
    }
}

/// Fills `out` (cleared first) with the chained hashes of `req`'s leading prompt blocks that hold
/// only shared content (workload segments): the only blocks another request can have cached
/// before `req` is admitted, since a block holding any token of `req`'s own prompt tail is unique
/// to it. They are the first hashes of the chain [`PrefixCache::lookup`] walks. Returns the number
/// of prompt blocks a lookup considers, `⌊(prompt − 1) / block_size⌋`, which bounds `out.len()`.
/// `block_size` is at least 1 (a [`KvCache`](crate::kv::KvCache)'s always is).
pub fn shared_prompt_block_hashes(req: &Request, block_size: u32, out: &mut Vec<u64>) -> u32 {
    let bs = block_size;
    let prompt_blocks = req.current_prefill_tokens.saturating_sub(1) / bs;
    let seg_tokens: u64 = req.segments.iter().map(|s| u64::from(s.tokens)).sum();
    let shared_blocks = (seg_tokens / u64::from(bs)).min(u64::from(prompt_blocks)) as usize;
    out.clear();
    extend_hashes(req, bs, shared_blocks, out);
    prompt_blocks
}

impl PrefixCache {
    /// A pool of `num_blocks` empty blocks of `block_size` tokens.
    pub fn new(num_blocks: u64, block_size: u32) -> Self {
        let n = u32::try_from(num_blocks)
            .ok()
            .filter(|&n| n != NIL)
            .expect("fewer than 2^32 - 1 KV blocks per replica");
        PrefixCache {
            block_size: block_size.max(1),
            queue: FreeQueue::new(n),
            by_hash: IntMap::default(),
            tables: IntMap::default(),
            spare: Vec::new(),
            stats: PrefixCacheStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PrefixCacheStats {
        self.stats
    }

    /// Blocks with no reference (free or cached): what an allocation can take.
    pub fn reclaimable_blocks(&self) -> u64 {
        self.queue.len
    }

    /// Blocks with no reference that still hold a cached prefix.
    pub fn cached_blocks(&self) -> u64 {
        self.queue.cached
    }

    /// Blocks with no reference and no content.
    pub fn empty_blocks(&self) -> u64 {
        self.queue.len - self.queue.cached
    }

    /// Blocks referenced by at least one request.
    pub fn used_blocks(&self) -> u64 {
        self.queue.blocks.len() as u64 - self.queue.len
    }

    /// Reference count of block `b` (tests and invariant checks).
    pub fn ref_count(&self, b: u32) -> u32 {
        self.queue.blocks[b as usize].refs
    }

    /// Block ids held by request `id`, in order.
    pub fn block_table(&self, id: ReqId) -> &[u32] {
        self.tables.get(&id).map_or(&[], |t| &t.blocks)
    }

    /// Block ids in the free queue, next to be taken first (tests and invariant checks).
    pub fn free_queue(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.queue.len as usize);
        let mut b = self.queue.head;
        while b != NIL {
            out.push(b);
            b = self.queue.blocks[b as usize].next;
        }
        out
    }

    /// Gives request `req` `n` more blocks from the head of the free queue, evicting cached
    /// content. The caller has checked that `n` blocks are reclaimable.
    pub fn allocate(&mut self, req: ReqId, n: u32) {
        debug_assert!(u64::from(n) <= self.queue.len);
        let t = table(&mut self.tables, &mut self.spare, req);
        t.blocks.reserve(n as usize);
        for _ in 0..n {
            let b = self.queue.head;
            self.queue.unlink(b);
            let blk = &mut self.queue.blocks[b as usize];
            blk.refs = 1;
            match std::mem::replace(&mut blk.content, Content::Empty) {
                Content::Empty => {}
                Content::Shared(h) => {
                    if let std::collections::hash_map::Entry::Occupied(e) = self.by_hash.entry(h) {
                        if *e.get() == b {
                            e.remove();
                        }
                    }
                    self.stats.evictions += 1;
                }
                Content::Own { .. } => self.stats.evictions += 1,
            }
            t.blocks.push(b);
        }
    }

    /// Drops every reference of request `req`; blocks left with none join the free queue's tail,
    /// the request's last block first. Returns how many blocks were left with no reference.
    /// `forget` also drops what is known of the request's content (it completed, or left the
    /// replica for good).
    pub fn release(&mut self, req: ReqId, forget: bool) -> u64 {
        let Some(mut t) = self.tables.remove(&req) else {
            return 0;
        };
        let mut freed = 0;
        for &b in t.blocks.iter().rev() {
            let rc = &mut self.queue.blocks[b as usize].refs;
            *rc = rc
                .checked_sub(1)
                .expect("a held block has a positive reference count");
            if *rc == 0 {
                self.queue.push_back(b);
                freed += 1;
            }
        }
        if forget {
            t.blocks.clear();
            t.hashes.clear();
            t.own.clear();
            t.shared = None;
            t.registered = 0;
            self.spare.push(t);
        } else {
            // Remember where its own blocks are, for the lookup of its next attempt.
            for (i, &b) in t.blocks.iter().enumerate() {
                if self.queue.own(Some(&b), req, i).is_some() {
                    if t.own.len() <= i {
                        t.own.resize(i + 1, NIL);
                    }
                    t.own[i] = b;
                }
            }
            t.blocks.clear();
            t.registered = 0;
            self.tables.insert(req, t);
        }
        freed
    }

    /// The block caching block `i` of request `req`'s sequence, whose table is `t` (with its
    /// first `shared` hashes computed when `i < shared`).
    fn cached_block(&self, t: &Table, shared: usize, req: ReqId, i: usize) -> Option<u32> {
        if i < shared {
            self.by_hash.get(&t.hashes[i]).copied()
        } else {
            self.queue.own(t.own.get(i), req, i)
        }
    }

    /// The longest chain of cached blocks matching the prompt of `req`'s current attempt, at most
    /// `prompt − 1` tokens (the last prompt token is always computed, to produce the next token).
    pub fn lookup(&mut self, req: &Request) -> PrefixHit {
        let bs = self.block_size;
        let max_blocks = (req.current_prefill_tokens.saturating_sub(1) / bs) as usize;
        let t = table(&mut self.tables, &mut self.spare, req.id);
        let shared = t.shared(req, bs);
        extend_hashes(req, bs, max_blocks.min(shared), &mut t.hashes);
        let t = &self.tables[&req.id];
        let mut hit = PrefixHit::default();
        for i in 0..max_blocks {
            let Some(b) = self.cached_block(t, shared, req.id, i) else {
                break;
            };
            hit.blocks += 1;
            if self.queue.blocks[b as usize].refs == 0 {
                hit.revived_blocks += 1;
            }
        }
        hit.tokens = hit.blocks * bs;
        hit
    }

    /// How many leading blocks of `hashes` (a prompt's chained block hashes, from
    /// [`shared_prompt_block_hashes`]) are cached here, referenced or not. A pure query: unlike
    /// [`PrefixCache::lookup`] it neither records the request nor moves a block in the free queue.
    pub fn cached_prefix_blocks(&self, hashes: &[u64]) -> u32 {
        hashes
            .iter()
            .take_while(|h| self.by_hash.contains_key(h))
            .count() as u32
    }

    /// Takes the blocks of `hit` (from [`PrefixCache::lookup`] on the same state) for `req`, which
    /// holds none, and counts the admission. Returns how many blocks left the free queue.
    pub fn take_hit(&mut self, req: &Request, hit: PrefixHit) -> u64 {
        let mut t = match self.tables.remove(&req.id) {
            Some(t) => t,
            None => self.spare.pop().unwrap_or_default(),
        };
        debug_assert!(t.blocks.is_empty());
        let mut revived = 0;
        if hit.blocks > 0 {
            let shared = t.shared(req, self.block_size);
            for i in 0..hit.blocks as usize {
                let b = self
                    .cached_block(&t, shared, req.id, i)
                    .expect("a hit's blocks are cached");
                if self.queue.blocks[b as usize].refs == 0 {
                    self.queue.unlink(b);
                    revived += 1;
                }
                self.queue.blocks[b as usize].refs += 1;
                t.blocks.push(b);
            }
        }
        t.registered = hit.blocks as usize;
        self.tables.insert(req.id, t);
        let s = &mut self.stats;
        s.lookups += 1;
        s.queried_tokens += u64::from(req.current_prefill_tokens);
        s.hit_tokens += u64::from(hit.tokens);
        s.queried_blocks += u64::from(req.current_prefill_tokens / self.block_size);
        s.hit_blocks += u64::from(hit.blocks);
        revived
    }

    /// Registers the full blocks among `req`'s first `kv_tokens` tokens (those scheduled so far),
    /// so later requests (or this one's next attempt) can reuse them.
    pub fn register(&mut self, req: &Request, kv_tokens: u32) {
        let bs = self.block_size;
        let Some(t) = self.tables.get_mut(&req.id) else {
            return;
        };
        let full = ((kv_tokens / bs) as usize).min(t.blocks.len());
        if full <= t.registered {
            return;
        }
        let shared = t.shared(req, bs);
        extend_hashes(req, bs, full.min(shared), &mut t.hashes);
        for i in t.registered..full {
            let b = t.blocks[i];
            if self.queue.blocks[b as usize].content != Content::Empty {
                continue;
            }
            if i < shared {
                let h = t.hashes[i];
                if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(h) {
                    e.insert(b);
                    self.queue.blocks[b as usize].content = Content::Shared(h);
                }
            } else if self.queue.own(t.own.get(i), req.id, i).is_none() {
                self.queue.blocks[b as usize].content = Content::Own {
                    req: req.id,
                    index: i as u32,
                };
            }
        }
        t.registered = full;
    }

    /// Checks the pool's invariants: counts add up to capacity, every queued block has no
    /// reference, every referenced block is held by as many tables, the hash map and the shared
    /// blocks agree and no two blocks hold the same content. Returns a description of the first
    /// violation.
    pub fn check(&self) -> Result<(), String> {
        let blocks = &self.queue.blocks;
        let queue = self.free_queue();
        if queue.len() as u64 != self.queue.len {
            return Err(format!(
                "free queue holds {} blocks, counted {}",
                queue.len(),
                self.queue.len
            ));
        }
        let cached = queue
            .iter()
            .filter(|&&b| blocks[b as usize].content != Content::Empty)
            .count() as u64;
        if cached != self.queue.cached {
            return Err(format!(
                "{cached} cached blocks in the queue, counted {}",
                self.queue.cached
            ));
        }
        let mut holders = vec![0u32; blocks.len()];
        for t in self.tables.values() {
            for &b in &t.blocks {
                holders[b as usize] += 1;
            }
        }
        if blocks.iter().zip(&holders).any(|(b, &h)| b.refs != h) {
            return Err("reference counts differ from the block tables".into());
        }
        if queue.iter().any(|&b| blocks[b as usize].refs != 0) {
            return Err("a block in the free queue has a reference".into());
        }
        let used = blocks.iter().filter(|b| b.refs > 0).count() as u64;
        if used + self.cached_blocks() + self.empty_blocks() != blocks.len() as u64 {
            return Err(format!(
                "used {used} + cached {} + free {} != capacity {}",
                self.cached_blocks(),
                self.empty_blocks(),
                blocks.len()
            ));
        }
        for (&h, &b) in &self.by_hash {
            if blocks[b as usize].content != Content::Shared(h) {
                return Err(format!("hash map entry of block {b} is stale"));
            }
        }
        let mut contents = std::collections::BTreeSet::new();
        for (b, blk) in blocks.iter().enumerate() {
            let key = match blk.content {
                Content::Empty => continue,
                Content::Shared(h) => {
                    if self.by_hash.get(&h) != Some(&(b as u32)) {
                        return Err(format!("shared block {b} is missing from the hash map"));
                    }
                    (0, h)
                }
                Content::Own { req, index } => (1 + u64::from(req), u64::from(index)),
            };
            if !contents.insert(key) {
                return Err(format!("block {b} holds content another block holds"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "prefix_cache_tests.rs"]
mod tests;
