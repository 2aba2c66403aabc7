//! Automatic prefix caching for one replica's KV cache (the block table behind
//! [`KvCache`](crate::kv::KvCache) when caching is on), after vLLM V1's `KVCacheManager`.
//!
//! - Blocks are named (ids `0..capacity`) and reference-counted; a request holds a block table.
//! - A full block is identified by a 64-bit hash chained over its tokens' identities and its
//!   parent block's hash. Token identities come from the request's content
//!   ([`Request::segments`], the unique prompt tail, [`Request::output_segment`]), never from token
//!   arrays: a run of tokens is hashed as (kind, id, first offset, length).
//! - A block is registered in the hash map once the tokens filling it are scheduled (as vLLM V1
//!   does), so a request scheduled later can reuse it; the first block registered for a hash keeps
//!   it.
//! - Blocks with no reference sit in one free queue, least recently freed first. A freed request
//!   returns its blocks in reverse order (its last block is evicted first). Taking a block from the
//!   queue evicts its hash, if it has one (an *eviction*). A hit on a block with no reference takes
//!   it out of the queue (a *revival*).
//!
//! Counts: `used` (reference > 0) + `cached` (no reference, hashed) + `free` (no reference, no hash)
//! = capacity, always. Hash maps are only looked up, never iterated, so runs stay deterministic.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::request::{ReqId, Request};

const NIL: u32 = u32::MAX;
const NO_HASH: u64 = 0;
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

/// One request's blocks and content hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    blocks: Vec<u32>,
    /// Hashes of the request's full blocks, computed on demand (kept across preemptions).
    hashes: Vec<u64>,
    /// Leading blocks of `blocks` already registered (or reused) in the cache.
    registered: usize,
}

/// The block pool of one replica with prefix caching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixCache {
    block_size: u32,
    ref_count: Vec<u32>,
    hash: Vec<u64>,
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    queue_len: u64,
    cached_in_queue: u64,
    by_hash: IntMap<u64, u32>,
    tables: IntMap<ReqId, Table>,
    stats: PrefixCacheStats,
    /// Reused buffer of [`PrefixCache::allocate`].
    scratch: Vec<u32>,
}

/// Mixes one word into a running hash (multiply–rotate; not cryptographic, 64-bit collisions are
/// treated as identity, as vLLM does with its block hashes).
fn mix(h: u64, x: u64) -> u64 {
    (h ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .rotate_left(27)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Final avalanche of a block hash; never [`NO_HASH`].
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    if z == NO_HASH {
        1
    } else {
        z
    }
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
        let n = u32::try_from(num_blocks).expect("fewer than 2^32 KV blocks per replica") as usize;
        let prev = (0..n as u32)
            .map(|i| if i == 0 { NIL } else { i - 1 })
            .collect();
        let next = (0..n as u32)
            .map(|i| if i + 1 == n as u32 { NIL } else { i + 1 })
            .collect();
        PrefixCache {
            block_size: block_size.max(1),
            ref_count: vec![0; n],
            hash: vec![NO_HASH; n],
            prev,
            next,
            head: if n == 0 { NIL } else { 0 },
            tail: if n == 0 { NIL } else { n as u32 - 1 },
            queue_len: n as u64,
            cached_in_queue: 0,
            by_hash: IntMap::default(),
            tables: IntMap::default(),
            stats: PrefixCacheStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PrefixCacheStats {
        self.stats
    }

    /// Blocks with no reference (free or cached): what an allocation can take.
    pub fn reclaimable_blocks(&self) -> u64 {
        self.queue_len
    }

    /// Blocks with no reference that still hold a cached prefix.
    pub fn cached_blocks(&self) -> u64 {
        self.cached_in_queue
    }

    /// Blocks with no reference and no content.
    pub fn empty_blocks(&self) -> u64 {
        self.queue_len - self.cached_in_queue
    }

    /// Blocks referenced by at least one request.
    pub fn used_blocks(&self) -> u64 {
        self.ref_count.len() as u64 - self.queue_len
    }

    /// Reference count of block `b` (tests and invariant checks).
    pub fn ref_count(&self, b: u32) -> u32 {
        self.ref_count[b as usize]
    }

    /// Block ids held by request `id`, in order.
    pub fn block_table(&self, id: ReqId) -> &[u32] {
        self.tables.get(&id).map_or(&[], |t| &t.blocks)
    }

    /// Block ids in the free queue, next to be taken first (tests and invariant checks).
    pub fn free_queue(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.queue_len as usize);
        let mut b = self.head;
        while b != NIL {
            out.push(b);
            b = self.next[b as usize];
        }
        out
    }

    fn unlink(&mut self, b: u32) {
        let (p, n) = (self.prev[b as usize], self.next[b as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[b as usize] = NIL;
        self.next[b as usize] = NIL;
        self.queue_len -= 1;
        if self.hash[b as usize] != NO_HASH {
            self.cached_in_queue -= 1;
        }
    }

    fn push_back(&mut self, b: u32) {
        self.prev[b as usize] = self.tail;
        self.next[b as usize] = NIL;
        if self.tail == NIL {
            self.head = b;
        } else {
            self.next[self.tail as usize] = b;
        }
        self.tail = b;
        self.queue_len += 1;
        if self.hash[b as usize] != NO_HASH {
            self.cached_in_queue += 1;
        }
    }

    /// Gives request `req` `n` more blocks from the head of the free queue, evicting cached
    /// content. The caller has checked that `n` blocks are reclaimable.
    pub fn allocate(&mut self, req: ReqId, n: u32) {
        debug_assert!(u64::from(n) <= self.queue_len);
        let mut taken = std::mem::take(&mut self.scratch);
        taken.clear();
        for _ in 0..n {
            let b = self.head;
            self.unlink(b);
            let h = std::mem::replace(&mut self.hash[b as usize], NO_HASH);
            if h != NO_HASH {
                if let std::collections::hash_map::Entry::Occupied(e) = self.by_hash.entry(h) {
                    if *e.get() == b {
                        e.remove();
                    }
                }
                self.stats.evictions += 1;
            }
            self.ref_count[b as usize] = 1;
            taken.push(b);
        }
        self.tables
            .entry(req)
            .or_default()
            .blocks
            .extend_from_slice(&taken);
        self.scratch = taken;
    }

    /// Drops every reference of request `req`; blocks left with none join the free queue's tail,
    /// the request's last block first. Returns how many blocks were left with no reference.
    /// `forget` also drops the request's cached hashes (it completed).
    pub fn release(&mut self, req: ReqId, forget: bool) -> u64 {
        let Some(mut t) = self.tables.remove(&req) else {
            return 0;
        };
        let mut freed = 0;
        for &b in t.blocks.iter().rev() {
            let rc = &mut self.ref_count[b as usize];
            *rc = rc
                .checked_sub(1)
                .expect("a held block has a positive reference count");
            if *rc == 0 {
                self.push_back(b);
                freed += 1;
            }
        }
        if !forget {
            t.blocks.clear();
            t.registered = 0;
            self.tables.insert(req, t);
        }
        freed
    }

    /// The longest chain of cached blocks matching the prompt of `req`'s current attempt, at most
    /// `prompt − 1` tokens (the last prompt token is always computed, to produce the next token).
    pub fn lookup(&mut self, req: &Request) -> PrefixHit {
        let max_blocks = (req.current_prefill_tokens.saturating_sub(1) / self.block_size) as usize;
        let t = self.tables.entry(req.id).or_default();
        extend_hashes(req, self.block_size, max_blocks, &mut t.hashes);
        let mut hit = PrefixHit::default();
        for h in &t.hashes[..max_blocks] {
            let Some(&b) = self.by_hash.get(h) else {
                break;
            };
            hit.blocks += 1;
            if self.ref_count[b as usize] == 0 {
                hit.revived_blocks += 1;
            }
        }
        hit.tokens = hit.blocks * self.block_size;
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
        let mut t = self.tables.remove(&req.id).unwrap_or_default();
        debug_assert!(t.blocks.is_empty());
        let mut revived = 0;
        for i in 0..hit.blocks as usize {
            let b = self.by_hash[&t.hashes[i]];
            if self.ref_count[b as usize] == 0 {
                self.unlink(b);
                revived += 1;
            }
            self.ref_count[b as usize] += 1;
            t.blocks.push(b);
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
    /// so later requests can reuse them.
    pub fn register(&mut self, req: &Request, kv_tokens: u32) {
        let bs = self.block_size;
        let Some(t) = self.tables.get_mut(&req.id) else {
            return;
        };
        let full = ((kv_tokens / bs) as usize).min(t.blocks.len());
        if full <= t.registered {
            return;
        }
        extend_hashes(req, bs, full, &mut t.hashes);
        for i in t.registered..full {
            let (b, h) = (t.blocks[i], t.hashes[i]);
            if self.hash[b as usize] == NO_HASH {
                if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(h) {
                    e.insert(b);
                    self.hash[b as usize] = h;
                }
            }
        }
        t.registered = full;
    }

    /// Checks the pool's invariants: counts add up to capacity, every queued block has no
    /// reference and every referenced block is held by as many tables. Returns a description of
    /// the first violation.
    pub fn check(&self) -> Result<(), String> {
        let queue = self.free_queue();
        if queue.len() as u64 != self.queue_len {
            return Err(format!(
                "free queue holds {} blocks, counted {}",
                queue.len(),
                self.queue_len
            ));
        }
        let cached = queue
            .iter()
            .filter(|&&b| self.hash[b as usize] != NO_HASH)
            .count() as u64;
        if cached != self.cached_in_queue {
            return Err(format!(
                "{cached} cached blocks in the queue, counted {}",
                self.cached_in_queue
            ));
        }
        let mut holders = vec![0u32; self.ref_count.len()];
        for t in self.tables.values() {
            for &b in &t.blocks {
                holders[b as usize] += 1;
            }
        }
        if holders != self.ref_count {
            return Err("reference counts differ from the block tables".into());
        }
        if queue.iter().any(|&b| self.ref_count[b as usize] != 0) {
            return Err("a block in the free queue has a reference".into());
        }
        let used = self.ref_count.iter().filter(|&&r| r > 0).count() as u64;
        if used + self.cached_blocks() + self.empty_blocks() != self.ref_count.len() as u64 {
            return Err(format!(
                "used {used} + cached {} + free {} != capacity {}",
                self.cached_blocks(),
                self.empty_blocks(),
                self.ref_count.len()
            ));
        }
        for (&h, &b) in &self.by_hash {
            if self.hash[b as usize] != h {
                return Err(format!("hash map entry of block {b} is stale"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "prefix_cache_tests.rs"]
mod tests;
