//! The KV-cache block manager of one replica (docs/design.md §6.2).
//!
//! Blocks are counted, not named: each request records how many blocks it holds
//! ([`Request::kv_blocks`]) and the manager keeps the totals. Capacity is an invariant: an
//! allocation beyond it is a scheduler bug and is reported as [`KvError`].
//!
//! Automatic prefix caching ([`KvCache::with_prefix_caching`]) adds named, reference-counted
//! blocks ([`PrefixCache`]): `can_allocate`/`allocate`/`free` keep their meaning (blocks newly taken
//! from the pool of unreferenced blocks, cached ones evicted least recently freed first), `free`
//! keeps the content of the released blocks for later hits, and
//! [`KvCache::prefix_lookup`]/[`KvCache::take_prefix_hit`] let an admission reuse cached blocks.
//! Without caching the prefix calls do nothing and behaviour is unchanged.

use crate::prefix_cache::{PrefixCache, PrefixCacheStats, PrefixHit};
use crate::request::Request;

/// An allocation that the capacity does not allow (a scheduler bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("KV cache over capacity: request {request} asked for {asked} blocks with {free} of {total} free")]
pub struct KvError {
    /// The request.
    pub request: u32,
    /// Blocks asked for.
    pub asked: u64,
    /// Blocks free.
    pub free: u64,
    /// Capacity.
    pub total: u64,
}

/// Block accounting for one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvCache {
    num_blocks: u64,
    block_size: u32,
    allocated: u64,
    holders: u32,
    peak_allocated: u64,
    prefix: Option<Box<PrefixCache>>,
}

impl KvCache {
    /// A cache of `num_blocks` blocks of `block_size` tokens.
    pub fn new(num_blocks: u64, block_size: u32) -> Self {
        KvCache {
            num_blocks,
            block_size: block_size.max(1),
            allocated: 0,
            holders: 0,
            peak_allocated: 0,
            prefix: None,
        }
    }

    /// The same cache with automatic prefix caching on or off (call before any allocation).
    pub fn with_prefix_caching(mut self, on: bool) -> Self {
        self.prefix = on.then(|| Box::new(PrefixCache::new(self.num_blocks, self.block_size)));
        self
    }

    /// The prefix cache, when caching is on.
    pub fn prefix_cache(&self) -> Option<&PrefixCache> {
        self.prefix.as_deref()
    }

    /// Prefix-cache counters (all zero without caching).
    pub fn prefix_stats(&self) -> PrefixCacheStats {
        self.prefix.as_ref().map(|p| p.stats()).unwrap_or_default()
    }

    /// The cached blocks an admission of `req` (holding no blocks, nothing processed) could reuse;
    /// nothing without caching.
    pub fn prefix_lookup(&mut self, req: &Request) -> PrefixHit {
        match &mut self.prefix {
            Some(p) if req.kv_blocks == 0 && req.processed_tokens == 0 => p.lookup(req),
            _ => PrefixHit::default(),
        }
    }

    /// Admits `req` with the cached blocks of `hit` (from [`KvCache::prefix_lookup`] just before):
    /// it holds them, and their tokens count as processed and cached. Counts the admission in the
    /// cache statistics even when nothing hit. No-op without caching.
    pub fn take_prefix_hit(&mut self, req: &mut Request, hit: PrefixHit) -> Result<(), KvError> {
        let Some(p) = &mut self.prefix else {
            return Ok(());
        };
        if u64::from(hit.revived_blocks) > self.num_blocks - self.allocated {
            return Err(KvError {
                request: req.id,
                asked: u64::from(hit.revived_blocks),
                free: self.num_blocks - self.allocated,
                total: self.num_blocks,
            });
        }
        let revived = p.take_hit(req, hit);
        if hit.blocks > 0 {
            if req.kv_blocks == 0 {
                self.holders += 1;
            }
            req.kv_blocks += hit.blocks;
            req.processed_tokens += hit.tokens;
            req.cached_prefill_tokens += hit.tokens;
            self.allocated += revived;
            self.peak_allocated = self.peak_allocated.max(self.allocated);
        }
        Ok(())
    }

    /// Records that the first `kv_tokens` tokens of `req` are scheduled: its full blocks among them
    /// become reusable. No-op without caching.
    pub fn register_scheduled(&mut self, req: &Request, kv_tokens: u32) {
        if let Some(p) = &mut self.prefix {
            p.register(req, kv_tokens);
        }
    }

    /// Records that a decode of `req` is scheduled with `kv_tokens` tokens in its KV cache before
    /// it: a decode extends the sequence by one token, so it fills a block (which becomes
    /// reusable) only when those tokens end one. No-op without caching, which is tested first
    /// (the boundary test is a division, on every decode of every step).
    #[inline]
    pub fn register_decode(&mut self, req: &Request, kv_tokens: u32) {
        if let Some(p) = &mut self.prefix {
            if kv_tokens.is_multiple_of(self.block_size) {
                p.register(req, kv_tokens);
            }
        }
    }

    /// Capacity, blocks.
    pub fn num_blocks(&self) -> u64 {
        self.num_blocks
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Blocks in use.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Largest number of blocks in use at any time.
    pub fn peak_allocated(&self) -> u64 {
        self.peak_allocated
    }

    /// Blocks free.
    pub fn free_blocks(&self) -> u64 {
        self.num_blocks - self.allocated
    }

    /// Requests holding at least one block (Vidur's allocation-map size).
    pub fn num_holders(&self) -> u32 {
        self.holders
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.block_size)
    }

    /// True when `n` more blocks are free.
    pub fn can_allocate(&self, n: u64) -> bool {
        self.free_blocks() >= n
    }

    /// Gives `n` more blocks to `req`.
    pub fn allocate(&mut self, req: &mut Request, n: u32) -> Result<(), KvError> {
        if !self.can_allocate(n as u64) {
            return Err(KvError {
                request: req.id,
                asked: n as u64,
                free: self.free_blocks(),
                total: self.num_blocks,
            });
        }
        if n == 0 {
            return Ok(());
        }
        if req.kv_blocks == 0 {
            self.holders += 1;
        }
        if let Some(p) = &mut self.prefix {
            p.allocate(req.id, n);
        }
        req.kv_blocks += n;
        self.allocated += n as u64;
        self.peak_allocated = self.peak_allocated.max(self.allocated);
        Ok(())
    }

    /// Takes every block of `req` back; returns how many it held. With caching, shared blocks stay
    /// with their other holders and released blocks keep their content until evicted.
    pub fn free(&mut self, req: &mut Request) -> u32 {
        let n = req.kv_blocks;
        let released = match &mut self.prefix {
            // A request done here (completed, or prefilled and leaving for a decode replica)
            // never comes back: what is known of its content can go.
            Some(p) => p.release(req.id, req.done_here()),
            None => n as u64,
        };
        if n > 0 {
            self.holders -= 1;
            self.allocated -= released;
            req.kv_blocks = 0;
        }
        n
    }

    /// Fraction of blocks in use.
    pub fn usage(&self) -> f64 {
        if self.num_blocks == 0 {
            0.0
        } else {
            self.allocated as f64 / self.num_blocks as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::RequestSpec;

    #[test]
    fn a_prefix_hit_reviving_more_blocks_than_are_free_is_refused() {
        let mut kv = KvCache::new(4, 4).with_prefix_caching(true);
        let mut a = Request::new(0, 0, &RequestSpec::simple(0, 8, 1));
        let hit = PrefixHit {
            tokens: 8,
            blocks: 2,
            revived_blocks: 5,
        };
        let e = kv.take_prefix_hit(&mut a, hit).unwrap_err();
        assert_eq!((e.asked, e.free, e.total), (5, 4, 4));
        assert_eq!((kv.allocated(), kv.num_holders(), a.kv_blocks), (0, 0, 0));
        // the free blocks are those not allocated: 2 of 4 here
        let mut other = Request::new(1, 0, &RequestSpec::simple(0, 8, 1));
        kv.allocate(&mut other, 2).unwrap();
        let hit = PrefixHit {
            revived_blocks: 3,
            ..hit
        };
        let e = kv.take_prefix_hit(&mut a, hit).unwrap_err();
        assert_eq!((e.asked, e.free, e.total), (3, 2, 4));
    }

    /// A 9-token prompt whose first 8 tokens are shared segment 7, and 2 output tokens.
    fn shared_segment_spec() -> RequestSpec {
        RequestSpec {
            segments: vec![crate::workload::Segment { id: 7, tokens: 8 }],
            ..RequestSpec::simple(0, 9, 2)
        }
    }

    #[test]
    fn a_prefix_hit_reviving_exactly_the_free_blocks_is_taken() {
        // a caches an 8-token segment (blocks 0 and 1) plus its own block; once a is done, c takes
        // the 2 least recently freed blocks (the unused one and a's own), leaving exactly the 2
        // cached blocks free, and b revives both
        let shared = shared_segment_spec();
        let mut kv = KvCache::new(4, 4).with_prefix_caching(true);
        let mut a = Request::new(0, 0, &shared);
        kv.allocate(&mut a, 3).unwrap();
        kv.register_scheduled(&a, 9);
        kv.free(&mut a);
        let mut c = Request::new(1, 0, &RequestSpec::simple(0, 8, 1));
        kv.allocate(&mut c, 2).unwrap();
        let mut b = Request::new(2, 0, &shared);
        let hit = kv.prefix_lookup(&b);
        assert_eq!(
            (hit.blocks, hit.revived_blocks, kv.free_blocks()),
            (2, 2, 2)
        );
        kv.take_prefix_hit(&mut b, hit).unwrap();
        assert_eq!((kv.allocated(), b.kv_blocks, kv.free_blocks()), (4, 2, 0));
    }

    #[test]
    fn a_decode_registers_the_block_its_context_ends() {
        // a's 8-token shared segment, then its prompt's last token: with 4 of them in its KV
        // cache a decode fills block 0, with 5 or 7 none, with 8 block 1
        let spec = shared_segment_spec();
        let mut kv = KvCache::new(10, 4).with_prefix_caching(true);
        let mut a = Request::new(0, 0, &spec);
        kv.allocate(&mut a, 3).unwrap();
        let fresh = Request::new(1, 0, &spec);
        let mut cached = Vec::new();
        for kv_tokens in [4, 5, 7, 8] {
            kv.register_decode(&a, kv_tokens);
            cached.push(kv.prefix_lookup(&fresh).blocks);
        }
        assert_eq!(cached, [1, 1, 1, 2]);
    }

    #[test]
    fn a_lookup_for_a_request_holding_blocks_or_progress_finds_nothing() {
        // a's 8-token shared segment fills 2 cached blocks; b shares it
        let spec = shared_segment_spec();
        let mut kv = KvCache::new(10, 4).with_prefix_caching(true);
        let mut a = Request::new(0, 0, &spec);
        kv.allocate(&mut a, 3).unwrap();
        kv.register_scheduled(&a, 9);
        let fresh = Request::new(1, 0, &spec);
        assert_eq!(kv.prefix_lookup(&fresh).blocks, 2);
        // only an admission (no blocks, nothing processed) may reuse cached blocks
        let mut holding = Request::new(2, 0, &spec);
        kv.allocate(&mut holding, 1).unwrap();
        assert_eq!(kv.prefix_lookup(&holding), PrefixHit::default());
        let mut started = Request::new(3, 0, &spec);
        started.processed_tokens = 4;
        assert_eq!(kv.prefix_lookup(&started), PrefixHit::default());
    }

    #[test]
    fn allocate_free_and_capacity() {
        let mut kv = KvCache::new(10, 16);
        let mut a = Request::new(0, 0, &RequestSpec::simple(0, 33, 1));
        let mut b = Request::new(1, 0, &RequestSpec::simple(0, 1, 1));
        assert_eq!(kv.blocks_for(33), 3);
        kv.allocate(&mut a, 3).unwrap();
        kv.allocate(&mut b, 7).unwrap();
        assert_eq!(
            (kv.allocated(), kv.num_holders(), kv.free_blocks()),
            (10, 2, 0)
        );
        assert!(kv.allocate(&mut a, 1).is_err());
        assert!((kv.usage() - 1.0).abs() < 1e-12);
        assert_eq!(kv.free(&mut a), 3);
        assert!((kv.usage() - 0.7).abs() < 1e-12, "{}", kv.usage());
        assert_eq!(kv.free(&mut a), 0);
        assert_eq!(
            (kv.allocated(), kv.num_holders(), kv.peak_allocated()),
            (7, 1, 10)
        );
    }
}
