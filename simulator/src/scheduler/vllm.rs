//! vLLM v0 (docs/design.md §6.3): a batch is either all new prefills (whole prompts, admitted while
//! the blocks leave the watermark free and the tokens fit the cap) or, when no prefill could be
//! admitted, all decodes; a decode short of memory restarts the latest-arriving waiting request,
//! or itself.
//!
//! Fixed against Vidur: the token cap counts the batch's tokens (Vidur compared the padded size
//! `requests × longest prompt`), and a prompt longer than the cap still runs alone instead of
//! blocking the queue forever.

use std::collections::VecDeque;

use super::{
    can_admit_with_watermark, requeue_unfinished, secure_decode_block, BatchEntry,
    ReplicaScheduler, SchedCtx, SchedulerParams,
};
use crate::kv::KvError;
use crate::request::ReqId;

/// The vLLM v0 policy.
pub struct Vllm {
    queue: VecDeque<ReqId>,
    running: VecDeque<ReqId>,
    max_micro_batch: usize,
    batch_size_cap: u32,
    max_tokens_in_batch: u64,
    watermark_blocks: u64,
}

impl Vllm {
    /// Builds the policy.
    pub fn new(p: &SchedulerParams) -> Self {
        Vllm {
            queue: VecDeque::new(),
            running: VecDeque::new(),
            max_micro_batch: p.max_micro_batch_size(),
            batch_size_cap: p.config.batch_size_cap,
            max_tokens_in_batch: p.config.max_tokens_in_batch as u64,
            watermark_blocks: p.watermark_blocks(),
        }
    }
}

impl ReplicaScheduler for Vllm {
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
        // Prefill phase.
        let mut tokens = 0u64;
        while let Some(&id) = self.queue.front() {
            if !can_admit_with_watermark(ctx, id, self.watermark_blocks) {
                break;
            }
            let prompt = ctx.req(id).current_prefill_tokens;
            if !batch.is_empty() && tokens + prompt as u64 > self.max_tokens_in_batch {
                break;
            }
            if ctx.kv.num_holders() >= self.batch_size_cap || batch.len() >= self.max_micro_batch {
                break;
            }
            self.queue.pop_front();
            let need = ctx.blocks_missing(id, prompt);
            ctx.allocate(id, need)?;
            ctx.push(batch, id, prompt);
            tokens += prompt as u64;
        }
        if !batch.is_empty() {
            return Ok(());
        }
        // Decode phase: oldest first.
        self.running.make_contiguous().sort_unstable();
        while batch.len() < self.max_micro_batch {
            let Some(id) = self.running.pop_front() else {
                break;
            };
            if secure_decode_block(ctx, id, &mut self.running, &mut self.queue)? {
                ctx.push(batch, id, 1);
            }
        }
        Ok(())
    }

    fn on_batch_end(&mut self, batch: &[BatchEntry], ctx: &mut SchedCtx<'_>) {
        requeue_unfinished(batch, ctx, &mut self.running);
    }

    fn num_queued(&self) -> usize {
        self.queue.len()
    }

    /// Every running request is in the batch, and no prompt is admitted (a batch with prompts
    /// runs no decodes): the queue is empty, or its first request does not fit above the
    /// watermark, or the replica holds `batch_size_cap` requests.
    fn repeats_decodes(&self, _batch: &[BatchEntry], ctx: &SchedCtx<'_>) -> bool {
        self.running.is_empty()
            && self.queue.front().is_none_or(|&id| {
                !can_admit_with_watermark(ctx, id, self.watermark_blocks)
                    || ctx.kv.num_holders() >= self.batch_size_cap
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn token_cap_counts_tokens_not_padded_size() {
        // Prompts 300 and 100 with a 450-token cap: Vidur's padded size 2 × 300 = 600 would split
        // them; the real 400 tokens fit one batch.
        let mut h = Harness::new("vllm", 1000, |c| c.max_tokens_in_batch = 450);
        h.add(300, 2);
        h.add(100, 2);
        let b = h.next();
        assert_eq!(b, vec![(0, 300, true), (1, 100, true)]);
    }

    #[test]
    fn prompt_longer_than_the_cap_runs_alone() {
        let mut h = Harness::new("vllm", 1000, |c| c.max_tokens_in_batch = 64);
        h.add(100, 2);
        h.add(10, 2);
        assert_eq!(h.next(), vec![(0, 100, true)]);
    }

    #[test]
    fn decode_short_of_memory_restarts_the_latest_arrival() {
        // 4 blocks of 16 tokens, no watermark; two requests of 32-token prompts fill the cache.
        let mut h = Harness::new("vllm", 4, |c| c.watermark_blocks_fraction = 0.0);
        h.add(32, 10);
        h.add(32, 10);
        let b = h.next();
        assert_eq!(b.len(), 2);
        h.end(&b);
        // Both need a third block for their decode; request 1 (latest) is restarted.
        let b = h.next();
        assert_eq!(b, vec![(0, 1, false)]);
        let r1 = h.req(1);
        assert_eq!(
            (r1.num_restarts, r1.kv_blocks, r1.current_prefill_tokens),
            (1, 0, 33)
        );
        assert_eq!(h.kv.allocated(), 3);
    }

    #[test]
    fn the_watermark_does_not_block_an_empty_cache() {
        // 16 blocks, watermark 8: a 200-token prompt (13 blocks) would leave 3 free, below the
        // watermark; with nothing else in the cache it is admitted anyway.
        let mut h = Harness::new("vllm", 16, |c| c.watermark_blocks_fraction = 0.5);
        h.add(200, 2);
        h.add(10, 2);
        assert_eq!(h.next(), vec![(0, 200, true)]);
        assert_eq!(h.kv.allocated(), 13);
    }
}
