//! The free queue of a [`PrefixCache`](super::PrefixCache): the blocks with no reference, least
//! recently freed first, each with the kind of content it keeps for a later hit.
//!
//! The queue is an array of entries in order (a ring buffer), not a list linked through per-block
//! records, and each entry carries its block's kind of content. Taking blocks from the front reads
//! consecutive entries and freeing appends one, so neither touches a per-block record: with a
//! cluster's many replicas those records are rarely in the CPU cache, and a linked list waits for
//! one at every step. Entries are numbered in order (`seq`, never reused); a block leaving out of
//! order (a prefix hit on an unreferenced block) is found by its number and leaves a hole, which
//! the front skips; holes are squeezed out (numbers kept) when they pass an eighth of the queued
//! blocks (so the array stays within 9/8 of them, each squeeze paid for by as many holes).
//! Blocks never used are not stored: they are the queue's first blocks, in id order (block `i`
//! numbered `i`), until taken.

use std::collections::VecDeque;

/// No block: the block of a hole.
const HOLE: u32 = u32::MAX;
/// Holes tolerated in the queue before squeezing, at least (an eighth of the stored blocks when
/// more). Tests squeeze early, so that their small caches go through squeezes.
const MIN_HOLES: usize = if cfg!(test) { 2 } else { 1024 };

/// What a queued block keeps for later reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Nothing (never registered).
    Empty,
    /// Shared content (its hash is in the cache's record of the block).
    Shared,
    /// Content of one request only (the request's table knows the entry's number).
    Own,
}

/// One queued block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// Its number: entries are numbered in queue order and keep their numbers.
    pub seq: u64,
    /// The block ([`HOLE`] once it left out of order).
    pub block: u32,
    /// What it keeps.
    pub kind: Kind,
}

/// The queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FreeQueue {
    /// Blocks `fresh..capacity` were never taken: they come first, in id order.
    fresh: u32,
    capacity: u32,
    /// The other queued blocks, next to be taken first; holes where a block left out of order.
    order: VecDeque<Entry>,
    /// Number of the next entry appended.
    next_seq: u64,
    /// Blocks queued.
    pub len: u64,
    /// Of those, blocks with content.
    pub cached: u64,
}

impl FreeQueue {
    /// Blocks `0..n`, empty, queued in id order.
    pub fn new(n: u32) -> Self {
        FreeQueue {
            fresh: 0,
            capacity: n,
            order: VecDeque::new(),
            next_seq: u64::from(n),
            len: u64::from(n),
            cached: 0,
        }
    }

    /// Takes the entry at the front (the caller has checked that a block is queued).
    pub fn pop_front(&mut self) -> Entry {
        self.len -= 1;
        if self.fresh < self.capacity {
            let block = self.fresh;
            self.fresh += 1;
            return Entry {
                seq: u64::from(block),
                block,
                kind: Kind::Empty,
            };
        }
        let e = loop {
            let e = self.order.pop_front().expect("a queued block");
            if e.block != HOLE {
                break e;
            }
        };
        if e.kind != Kind::Empty {
            self.cached -= 1;
        }
        e
    }

    /// Queues block `b` at the back, keeping `kind`; returns the entry's number.
    pub fn push_back(&mut self, block: u32, kind: Kind) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if kind != Kind::Empty {
            self.cached += 1;
        }
        self.order.push_back(Entry { seq, block, kind });
        self.len += 1;
        seq
    }

    /// The queued entry numbered `seq` (not a never-used block's), if its block is still queued
    /// there.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        self.position(seq).map(|i| &self.order[i])
    }

    fn position(&self, seq: u64) -> Option<usize> {
        let front = self.order.front()?.seq;
        let guess = usize::try_from(seq.checked_sub(front)?).ok()?;
        // Numbers are consecutive until a squeeze; after one, search (they stay in order).
        let i = match self.order.get(guess) {
            Some(e) if e.seq == seq => guess,
            _ => self.order.binary_search_by_key(&seq, |e| e.seq).ok()?,
        };
        (self.order[i].block != HOLE).then_some(i)
    }

    /// Takes the queued entry numbered `seq` out of the queue, wherever it is (the caller knows
    /// it is queued: [`FreeQueue::get`]).
    pub fn remove(&mut self, seq: u64) -> Entry {
        let i = self.position(seq).expect("the block is queued");
        let e = self.order[i];
        self.order[i].block = HOLE;
        self.len -= 1;
        if e.kind != Kind::Empty {
            self.cached -= 1;
        }
        let live = self.len as usize - (self.capacity - self.fresh) as usize;
        let holes = self.order.len() - live;
        if holes > MIN_HOLES.max(live / 8) {
            self.order.retain(|e| e.block != HOLE);
        }
        e
    }

    /// Queued entries, next to be taken first.
    pub fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        let fresh = (self.fresh..self.capacity).map(|block| Entry {
            seq: u64::from(block),
            block,
            kind: Kind::Empty,
        });
        fresh.chain(self.order.iter().copied().filter(|e| e.block != HOLE))
    }

    /// Checks that numbers increase along the queue and the counts match the entries; returns
    /// the first violation.
    pub fn check(&self) -> Result<(), String> {
        let entries: Vec<Entry> = self.iter().collect();
        if entries
            .windows(2)
            .any(|w| w[0].seq >= w[1].seq || w[1].seq >= self.next_seq)
        {
            return Err("free-queue entries are out of order".into());
        }
        let cached = entries.iter().filter(|e| e.kind != Kind::Empty).count() as u64;
        if (entries.len() as u64, cached) != (self.len, self.cached) {
            return Err(format!(
                "free queue holds {} blocks ({cached} cached), counted {} ({})",
                entries.len(),
                self.len,
                self.cached
            ));
        }
        Ok(())
    }
}
