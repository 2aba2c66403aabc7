//! Automatic prefix caching for one replica's KV cache (the block table behind
//! [`KvCache`](crate::kv::KvCache) when caching is on), after vLLM V1's `KVCacheManager`.
//!
//! - Blocks are named (ids `0..capacity`) and reference-counted; a request holds a block table.
//! - A full block's content is the whole token sequence up to its end (chaining, as vLLM's parent
//!   hashes do), told by the request's content description, not token arrays.
//! - A block whose tokens all belong to shared runs from the sequence's start (workload segments,
//!   a session turn's output segment) can be reused by any request: it is identified by its
//!   64-bit chained hash (`prefix_cache_hash.rs`), looked up in a hash map, and counts its
//!   references. Any later block follows a token unique to its request (its prompt tail or
//!   output), so only that request can ever reuse it, after a preemption: it is identified exactly
//!   by (request, block index), with no hash, no map entry and no per-block record, and the
//!   request is its only holder. Those blocks are most of a run's blocks; keeping them off hashes,
//!   maps and scattered records is what keeps caching cheap (docs/vllm-v1.md, *Simulation speed*).
//! - A block is registered once the tokens filling it are scheduled (as vLLM V1 does), so a request
//!   scheduled later can reuse it; the first block registered for a content keeps it.
//! - Blocks with no reference sit in one free queue (`prefix_cache_queue.rs`), least recently freed
//!   first. A freed request returns its blocks in reverse order (its last block is evicted first).
//!   Taking a block from the queue evicts its content, if it has one (an *eviction*). A hit on a
//!   block with no reference takes it out of the queue (a *revival*).
//!
//! Counts: `used` (reference > 0) + `cached` (no reference, with content) + `free` (no reference,
//! no content) = capacity, always. Hash maps are only looked up, never iterated, so runs stay
//! deterministic.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

use crate::request::{ReqId, Request};

#[path = "prefix_cache_hash.rs"]
mod hash;
#[path = "prefix_cache_queue.rs"]
mod queue;

pub use hash::shared_prompt_block_hashes;
use hash::{extend_hashes, shared_block_count};
use queue::{FreeQueue, Kind};

/// No queue entry recorded (in [`Table::own`]).
const NO_SEQ: u64 = u64::MAX;

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

impl PrefixCacheStats {
    /// Counts the admission of `req` with `hit`, in a cache of `block_size`-token blocks.
    fn count_admission(&mut self, req: &Request, hit: PrefixHit, block_size: u32) {
        self.lookups += 1;
        self.queried_tokens += u64::from(req.current_prefill_tokens);
        self.hit_tokens += u64::from(hit.tokens);
        self.queried_blocks += u64::from(req.current_prefill_tokens / block_size);
        self.hit_blocks += u64::from(hit.blocks);
    }
}

/// One request's blocks and what is known of its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    blocks: Vec<u32>,
    /// Hashes of the request's leading shared blocks, computed on demand (kept across preemptions).
    hashes: Vec<u64>,
    /// How many leading blocks of its sequence can hold shared content
    /// (`hash::shared_block_count`), once known.
    shared: Option<usize>,
    /// Leading blocks of `blocks` reused from the cache at admission.
    hits: usize,
    /// Leading blocks of `blocks` registered (or reused) in the cache.
    registered: usize,
    /// After a preemption, per own block index (from `shared` on): the number of the free-queue
    /// entry of the block last registered for it, while it may still be queued there
    /// ([`NO_SEQ`]: none; in this attempt, also "registered by this attempt's block"). Empty while
    /// the request has not been preempted with own blocks.
    own: Vec<u64>,
}

impl Table {
    /// [`Table::shared`], computed once.
    fn shared(&mut self, req: &Request, block_size: u32) -> usize {
        *self
            .shared
            .get_or_insert_with(|| shared_block_count(req, block_size))
    }
}

/// What the pool records of a block with shared content (a block without has no hash here; its
/// other fields are stale and never read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Record {
    /// The content's hash; `None` for a block without shared content.
    hash: Option<NonZeroU64>,
    /// Requests holding it.
    refs: u32,
    /// While it has no reference: the number of its free-queue entry.
    seq: u64,
}

/// The block pool of one replica with prefix caching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixCache {
    block_size: u32,
    /// Blocks.
    capacity: u64,
    queue: FreeQueue,
    /// Per block id, up to the highest block that held shared content.
    records: Vec<Record>,
    /// Registered shared blocks by content hash (a bijection with the records holding a hash).
    by_hash: IntMap<u64, u32>,
    tables: IntMap<ReqId, Table>,
    /// Emptied tables of forgotten requests, reused so a request costs no allocation.
    spare: Vec<Table>,
    stats: PrefixCacheStats,
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

/// The number of the queued entry still holding own block `index` of the request whose table
/// records `own` ([`Table::own`]). Entry numbers are never reused, so an entry still queued under
/// that number is the one the request's block made when it was freed, with its content.
fn own_entry(queue: &FreeQueue, own: &[u64], index: usize) -> Option<u64> {
    let &seq = own.get(index)?;
    (seq != NO_SEQ && queue.get(seq)?.kind == Kind::Own).then_some(seq)
}

impl PrefixCache {
    /// A pool of `num_blocks` empty blocks of `block_size` tokens.
    pub fn new(num_blocks: u64, block_size: u32) -> Self {
        let n = u32::try_from(num_blocks)
            .ok()
            .filter(|&n| n < u32::MAX)
            .expect("fewer than 2^32 - 1 KV blocks per replica");
        PrefixCache {
            block_size: block_size.max(1),
            capacity: u64::from(n),
            queue: FreeQueue::new(n),
            records: Vec::new(),
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
        self.capacity - self.queue.len
    }

    /// Reference count of block `b`: the block tables holding it (tests and invariant checks; it
    /// scans every table).
    pub fn ref_count(&self, b: u32) -> u32 {
        self.tables
            .values()
            .map(|t| t.blocks.iter().filter(|&&x| x == b).count() as u32)
            .sum()
    }

    /// Block ids held by request `id`, in order.
    pub fn block_table(&self, id: ReqId) -> &[u32] {
        self.tables.get(&id).map_or(&[], |t| &t.blocks)
    }

    /// Block ids in the free queue, next to be taken first (tests and invariant checks).
    pub fn free_queue(&self) -> Vec<u32> {
        self.queue.iter().map(|e| e.block).collect()
    }

    /// Gives request `req` `n` more blocks from the head of the free queue, evicting cached
    /// content. The caller has checked that `n` blocks are reclaimable.
    pub fn allocate(&mut self, req: ReqId, n: u32) {
        debug_assert!(u64::from(n) <= self.queue.len);
        let t = table(&mut self.tables, &mut self.spare, req);
        t.blocks.reserve(n as usize);
        for _ in 0..n {
            let e = self.queue.pop_front();
            match e.kind {
                Kind::Empty => {}
                Kind::Shared => {
                    let h = self.records[e.block as usize]
                        .hash
                        .take()
                        .map(NonZeroU64::get);
                    let h = h.expect("a queued shared block's record holds its hash");
                    if let std::collections::hash_map::Entry::Occupied(m) = self.by_hash.entry(h) {
                        if *m.get() == e.block {
                            m.remove();
                        }
                    }
                    self.stats.evictions += 1;
                }
                Kind::Own => self.stats.evictions += 1,
            }
            t.blocks.push(e.block);
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
        let shared = t.shared.unwrap_or(usize::MAX);
        let mut freed = 0;
        for (i, &b) in t.blocks.iter().enumerate().rev() {
            let kind = if i < shared {
                if let Some(r) = self
                    .records
                    .get_mut(b as usize)
                    .filter(|r| r.hash.is_some())
                {
                    r.refs = r
                        .refs
                        .checked_sub(1)
                        .expect("a held block has a positive reference count");
                    if r.refs == 0 {
                        r.seq = self.queue.push_back(b, Kind::Shared);
                        freed += 1;
                    }
                    continue;
                }
                // Not registered (its content was cached in another block): this request's alone.
                Kind::Empty
            } else if i < t.hits || (i < t.registered && t.own.get(i).is_none_or(|&s| s == NO_SEQ))
            {
                // Revived, or registered by this attempt (see `register`).
                Kind::Own
            } else {
                // Not registered (scheduled tokens did not fill it, or an earlier attempt's block
                // still held its content).
                Kind::Empty
            };
            let seq = self.queue.push_back(b, kind);
            freed += 1;
            if !forget && kind == Kind::Own {
                if t.own.len() <= i {
                    t.own.resize(i + 1, NO_SEQ);
                }
                t.own[i] = seq;
            }
        }
        t.blocks.clear();
        t.hits = 0;
        t.registered = 0;
        if forget {
            t.hashes.clear();
            t.own.clear();
            t.shared = None;
            self.spare.push(t);
        } else {
            self.tables.insert(req, t);
        }
        freed
    }

    /// The cache's block for block `i` of the sequence of the request whose table is `t` (with
    /// its first `shared` hashes computed when `i < shared`): `Ok` for a shared block, `Err` with
    /// the queue entry's number for an own one.
    fn cached_block(&self, t: &Table, shared: usize, i: usize) -> Option<Result<u32, u64>> {
        if i < shared {
            self.by_hash.get(&t.hashes[i]).map(|&b| Ok(b))
        } else {
            own_entry(&self.queue, &t.own, i).map(Err)
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
            match self.cached_block(t, shared, i) {
                None => break,
                Some(Ok(b)) if self.records[b as usize].refs > 0 => {}
                // An unreferenced shared block, or an own block (always queued here).
                Some(_) => hit.revived_blocks += 1,
            }
            hit.blocks += 1;
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
                let cached = self.cached_block(&t, shared, i);
                let b = match cached.expect("a hit's blocks are cached") {
                    Ok(b) => {
                        let r = &mut self.records[b as usize];
                        if r.refs == 0 {
                            self.queue.remove(r.seq);
                            revived += 1;
                        }
                        r.refs += 1;
                        b
                    }
                    Err(seq) => {
                        revived += 1;
                        self.queue.remove(seq).block
                    }
                };
                t.blocks.push(b);
            }
        }
        t.hits = hit.blocks as usize;
        t.registered = hit.blocks as usize;
        self.tables.insert(req.id, t);
        self.stats.count_admission(req, hit, self.block_size);
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
        // Blocks past `registered` were taken empty by this attempt and are held by it alone.
        for i in t.registered..full.min(shared) {
            let (b, h) = (t.blocks[i], t.hashes[i]);
            if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(h) {
                e.insert(b);
                if self.records.len() <= b as usize {
                    self.records.resize(b as usize + 1, Record::default());
                }
                self.records[b as usize] = Record {
                    // A block hash is never 0.
                    hash: NonZeroU64::new(h),
                    refs: 1,
                    seq: 0,
                };
            }
        }
        // Own content matters only once the block is queued (only this request can reuse it, and
        // it holds no block when it looks up), so `release` writes it: a block registers unless an
        // earlier attempt's block still holds its content. Decided now, recorded as NO_SEQ.
        for i in t.registered.max(shared)..full.min(t.own.len()) {
            if own_entry(&self.queue, &t.own, i).is_none() {
                t.own[i] = NO_SEQ;
            }
        }
        t.registered = full;
    }

    /// Checks the pool's invariants: counts add up to capacity; every block is either queued once
    /// or held; a block without shared content has one holder; a shared block's record counts its
    /// holders and agrees with the hash map and its queue entry; no two requests claim one queued
    /// own block. Returns a description of the first violation.
    pub fn check(&self) -> Result<(), String> {
        self.queue.check()?;
        let n = self.capacity as usize;
        let mut holders = vec![0u32; n];
        for t in self.tables.values() {
            for &b in &t.blocks {
                holders[b as usize] += 1;
            }
        }
        let mut queued = vec![None; n];
        for e in self.queue.iter() {
            let b = e.block as usize;
            if queued[b].replace(e).is_some() {
                return Err(format!("block {b} is queued twice"));
            }
            if holders[b] > 0 {
                return Err(format!("block {b} is queued and held"));
            }
        }
        let record = |b: usize| self.records.get(b).copied().unwrap_or_default();
        for b in 0..n {
            let r = record(b);
            match (queued[b], r.hash) {
                (None, _) if holders[b] == 0 => {
                    return Err(format!("block {b} is neither queued nor held"))
                }
                (None, None) if holders[b] != 1 => {
                    return Err(format!(
                        "block {b} without shared content has {} holders",
                        holders[b]
                    ))
                }
                (None, Some(_)) if r.refs != holders[b] => {
                    return Err("reference counts differ from the block tables".into())
                }
                (Some(e), h) if (e.kind == Kind::Shared) != h.is_some() => {
                    return Err(format!("queued block {b}'s kind differs from its record"))
                }
                (Some(e), Some(_)) if r.refs != 0 || r.seq != e.seq => {
                    return Err(format!(
                        "queued shared block {b}'s record differs from its entry"
                    ))
                }
                _ => {}
            }
            if let Some(h) = r.hash.map(NonZeroU64::get) {
                if self.by_hash.get(&h) != Some(&(b as u32)) {
                    return Err(format!("shared block {b} is missing from the hash map"));
                }
            }
        }
        for (&h, &b) in &self.by_hash {
            if record(b as usize).hash.map(NonZeroU64::get) != Some(h) {
                return Err(format!("hash map entry of block {b} is stale"));
            }
        }
        let mut claimed = std::collections::BTreeSet::new();
        for t in self.tables.values() {
            for i in 0..t.own.len() {
                if let Some(seq) = own_entry(&self.queue, &t.own, i) {
                    if !claimed.insert(seq) {
                        return Err(format!("two requests claim the own block of entry {seq}"));
                    }
                }
            }
        }
        // (used + cached + empty = capacity holds exactly when this does: cached + empty is the
        // queue's length)
        let used = holders.iter().filter(|&&h| h > 0).count() as u64;
        if used != self.used_blocks() {
            return Err(format!(
                "used {used} (counted {}) + cached {} + free {} != capacity {n}",
                self.used_blocks(),
                self.cached_blocks(),
                self.empty_blocks(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "prefix_cache_model_tests.rs"]
mod model_tests;
#[cfg(test)]
#[path = "prefix_cache_tests.rs"]
mod tests;
