//! The free queue of a [`PrefixCache`](super::PrefixCache): the blocks with no reference, least
//! recently freed first, each with the content it keeps for a later hit.
//!
//! The queue is an array of entries in order (a ring buffer), not a list linked through per-block
//! records, and each entry carries its block's content. Taking blocks from the front reads
//! consecutive entries and freeing appends one, so neither touches a per-block record: with a
//! cluster's many replicas those records are rarely in the CPU cache, and a linked list waits for
//! one at every step. Entries are numbered in order (`seq`); a block leaving out of order (a prefix
//! hit on an unreferenced block) is found by its number and leaves a hole, which the front skips;
//! holes are squeezed out (numbers kept) when they outnumber the queued blocks.

use std::collections::VecDeque;

use crate::request::ReqId;

/// No block: the block of a hole.
const HOLE: u32 = u32::MAX;
/// Holes tolerated in the queue before squeezing, at least (more when more blocks are queued).
const MIN_HOLES: usize = 1024;

/// What a block keeps for later reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Content {
    /// Nothing (never filled and registered, or not registered).
    Empty,
    /// Shared content: its chained hash, the block's key in the cache's hash map.
    Shared(u64),
    /// Block `index` of request `req`'s sequence, content only that request has.
    Own { req: ReqId, index: u32 },
}

/// One queued block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// Its number: entries are numbered in queue order, from 0, and keep their numbers.
    pub seq: u64,
    /// The block ([`HOLE`] once it left out of order).
    pub block: u32,
    /// What it keeps.
    pub content: Content,
}

/// The queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FreeQueue {
    /// Entries, next to be taken first; holes where a block left out of order.
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
            order: (0..n)
                .map(|block| Entry {
                    seq: u64::from(block),
                    block,
                    content: Content::Empty,
                })
                .collect(),
            next_seq: u64::from(n),
            len: u64::from(n),
            cached: 0,
        }
    }

    /// Takes the entry at the front (the caller has checked that a block is queued).
    pub fn pop_front(&mut self) -> Entry {
        let e = loop {
            let e = self.order.pop_front().expect("a queued block");
            if e.block != HOLE {
                break e;
            }
        };
        self.len -= 1;
        if e.content != Content::Empty {
            self.cached -= 1;
        }
        e
    }

    /// Queues block `b` at the back with `content`; returns the entry's number.
    pub fn push_back(&mut self, block: u32, content: Content) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if content != Content::Empty {
            self.cached += 1;
        }
        self.order.push_back(Entry {
            seq,
            block,
            content,
        });
        self.len += 1;
        seq
    }

    /// The queued entry numbered `seq`, if its block is still queued there.
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
        self.order[i].content = Content::Empty;
        self.len -= 1;
        if e.content != Content::Empty {
            self.cached -= 1;
        }
        if self.order.len() - self.len as usize > MIN_HOLES.max(self.len as usize) {
            self.order.retain(|e| e.block != HOLE);
        }
        e
    }

    /// Queued entries, next to be taken first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.order.iter().filter(|e| e.block != HOLE)
    }

    /// Checks that numbers increase along the queue and the counts match the entries; returns
    /// the first violation.
    pub fn check(&self) -> Result<(), String> {
        if self
            .order
            .iter()
            .zip(self.order.iter().skip(1))
            .any(|(a, b)| a.seq >= b.seq || b.seq >= self.next_seq)
        {
            return Err("free-queue entries are out of order".into());
        }
        let (len, cached) = self.iter().fold((0, 0), |(l, c), e| {
            (l + 1, c + u64::from(e.content != Content::Empty))
        });
        if (len, cached) != (self.len, self.cached) {
            return Err(format!(
                "free queue holds {len} blocks ({cached} cached), counted {} ({})",
                self.len, self.cached
            ));
        }
        Ok(())
    }
}
