//! Sarathi-Serve (docs/design.md §6.6): every batch mixes the running decodes with prefill chunks
//! under a token budget (`chunk_size`); a prompt is processed in chunks over several iterations;
//! new requests are admitted while the budget, the micro-batch size and the watermark allow.
//!
//! Fixed against Vidur: ongoing prefill chunks count towards the micro-batch size (Vidur let them
//! bypass it), and decodes stop at the token budget (Vidur added them past it).

use std::collections::VecDeque;

use super::{
    can_admit_with_watermark, requeue_unfinished, secure_decode_block, BatchEntry,
    ReplicaScheduler, SchedCtx, SchedulerParams,
};
use crate::kv::KvError;
use crate::request::ReqId;

/// The Sarathi-Serve policy.
pub struct Sarathi {
    queue: VecDeque<ReqId>,
    running: VecDeque<ReqId>,
    max_micro_batch: usize,
    batch_size_cap: u32,
    chunk_size: u32,
    watermark_blocks: u64,
    partials: Vec<ReqId>,
    skipped: VecDeque<ReqId>,
}

impl Sarathi {
    /// Builds the policy.
    pub fn new(p: &SchedulerParams) -> Self {
        Sarathi {
            queue: VecDeque::new(),
            running: VecDeque::new(),
            max_micro_batch: p.max_micro_batch_size(),
            batch_size_cap: p.config.batch_size_cap,
            chunk_size: p.config.chunk_size,
            watermark_blocks: p.watermark_blocks(),
            partials: Vec::new(),
            skipped: VecDeque::new(),
        }
    }
}

impl ReplicaScheduler for Sarathi {
    fn add_request(&mut self, id: ReqId, _ctx: &mut SchedCtx<'_>) {
        self.queue.push_back(id);
    }

    /// A request prefilled elsewhere is running and decodes next.
    fn add_prefilled(&mut self, id: ReqId, _ctx: &mut SchedCtx<'_>) -> Result<(), String> {
        self.running.push_back(id);
        Ok(())
    }

    fn next_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        let mut budget = 0u32;
        self.running.make_contiguous().sort_unstable();
        self.partials.clear();
        self.skipped.clear();
        // 1. Running requests, oldest first: decodes now, ongoing prefills set aside.
        while batch.len() + self.partials.len() < self.max_micro_batch {
            let Some(id) = self.running.pop_front() else {
                break;
            };
            if !ctx.req(id).prefill_complete {
                self.partials.push(id);
                continue;
            }
            if budget >= self.chunk_size {
                self.skipped.push_back(id);
                continue;
            }
            if secure_decode_block(ctx, id, &mut self.running, &mut self.queue)? {
                ctx.push(batch, id, 1);
                budget += 1;
            }
        }
        // 2. Ongoing prefills take the budget left, in order.
        for &id in &self.partials {
            let chunk = ctx
                .req(id)
                .remaining_prefill_tokens()
                .min(self.chunk_size - budget);
            if chunk == 0 {
                self.skipped.push_back(id);
            } else {
                ctx.push(batch, id, chunk);
                budget += chunk;
            }
        }
        // 3. Requests not scheduled go back, oldest first.
        while let Some(id) = self.skipped.pop_back() {
            self.running.push_front(id);
        }
        self.running.make_contiguous().sort_unstable();
        // 4. New requests.
        while let Some(&id) = self.queue.front() {
            if ctx.kv.num_holders() >= self.batch_size_cap || batch.len() >= self.max_micro_batch {
                break;
            }
            // Prefix caching (off by default): cached blocks are reused, the rest is allocated.
            let hit = ctx.prefix_lookup(id);
            if hit.blocks == 0 {
                if !can_admit_with_watermark(ctx, id, self.watermark_blocks) {
                    break;
                }
            } else {
                let prompt = ctx.req(id).current_prefill_tokens;
                let need = (ctx.kv.blocks_for(prompt) - hit.blocks + hit.revived_blocks) as u64;
                if ctx.kv.free_blocks() < need + self.watermark_blocks {
                    break;
                }
            }
            let prompt = ctx.req(id).current_prefill_tokens;
            let chunk = (prompt - hit.tokens).min(self.chunk_size - budget);
            if chunk == 0 {
                break;
            }
            self.queue.pop_front();
            ctx.take_prefix_hit(id, hit)?;
            let need = ctx.blocks_missing(id, prompt);
            ctx.allocate(id, need)?;
            ctx.push(batch, id, chunk);
            budget += chunk;
        }
        Ok(())
    }

    fn on_batch_end(&mut self, batch: &[BatchEntry], ctx: &mut SchedCtx<'_>) {
        requeue_unfinished(batch, ctx, &mut self.running);
    }

    fn num_queued(&self) -> usize {
        self.queue.len()
    }

    /// Every running request is in the batch (decodes that the budget and micro-batch size held
    /// last step), and no new request is looked at: the queue is empty, or the replica holds
    /// `batch_size_cap` requests, or the micro-batch is full.
    fn repeats_decodes(&self, batch: &[BatchEntry], ctx: &SchedCtx<'_>) -> bool {
        self.running.is_empty()
            && (self.queue.is_empty()
                || ctx.kv.num_holders() >= self.batch_size_cap
                || batch.len() >= self.max_micro_batch)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn chunks_prompts_and_mixes_decodes() {
        let mut h = Harness::new("sarathi", 1000, |c| c.chunk_size = 8);
        h.add(10, 3);
        let b = h.next();
        assert_eq!(b, vec![(0, 8, true)]);
        h.add(4, 2);
        h.end(&b);
        let b = h.next();
        // the rest of request 0's prompt (2), then request 1's whole prompt (4)
        assert_eq!(b, vec![(0, 2, true), (1, 4, true)]);
        h.end(&b);
        let b = h.next();
        assert_eq!(b, vec![(0, 1, false), (1, 1, false)]);
    }

    #[test]
    fn partial_prefills_count_towards_the_micro_batch_size() {
        // cap 4 over 2 stages: micro-batches of 2 requests.
        let mut h = Harness::with_pp("sarathi", 1000, 2, |c| {
            c.chunk_size = 8;
            c.batch_size_cap = 4;
        });
        h.add(20, 5);
        h.add(1, 5);
        h.add(1, 5);
        let a = h.next();
        assert_eq!(a, vec![(0, 8, true)]);
        let b = h.next();
        assert_eq!(b, vec![(1, 1, true), (2, 1, true)]);
        h.end(&a);
        h.end(&b);
        // Request 0's ongoing prefill takes one of the two places: Vidur ran both decodes and the
        // chunk (3 requests).
        let c = h.next();
        assert_eq!(c, vec![(1, 1, false), (0, 7, true)]);
    }

    #[test]
    fn batch_size_cap_counts_requests_in_flight() {
        // cap 2, one token per batch: each call admits one request; the third finds two holders
        // (both in flight) and admits nobody, although its own batch is empty.
        let mut h = Harness::new("sarathi", 1000, |c| {
            c.chunk_size = 1;
            c.batch_size_cap = 2;
        });
        for _ in 0..3 {
            h.add(1, 4);
        }
        assert_eq!(h.next(), vec![(0, 1, true)]);
        assert_eq!(h.next(), vec![(1, 1, true)]);
        assert_eq!(h.next(), vec![]);
        assert_eq!(h.kv.num_holders(), 2);
    }

    #[test]
    fn decodes_stop_at_the_token_budget() {
        // Two micro-batches in flight admit four requests under a budget of 2 each; when both
        // return, the four decodes exceed one batch's budget: only two run (Vidur ran all four).
        let mut h = Harness::new("sarathi", 1000, |c| c.chunk_size = 2);
        for _ in 0..4 {
            h.add(1, 4);
        }
        let a = h.next();
        let b = h.next();
        assert_eq!(a, vec![(0, 1, true), (1, 1, true)]);
        assert_eq!(b, vec![(2, 1, true), (3, 1, true)]);
        h.end(&a);
        h.end(&b);
        let c = h.next();
        assert_eq!(c, vec![(0, 1, false), (1, 1, false)]);
        let d = h.next();
        assert_eq!(d, vec![(2, 1, false), (3, 1, false)]);
    }
}
