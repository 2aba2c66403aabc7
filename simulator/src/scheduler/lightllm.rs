//! LightLLM (docs/design.md §6.7): KV blocks are single tokens; a new request is admitted only if
//! the projected peak token usage of all running requests plus it stays below capacity; prefill
//! batches (whole prompts, under a token cap) alternate with decode batches of every running
//! request, new prefills being tried again after `max_waiting_iters` decode iterations.
//!
//! Fixed against Vidur: a rejected candidate no longer stays in the projection of later candidates,
//! and when the decodes do not fit in memory the latest-arriving running requests are restarted
//! (recompute preemption) instead of aborting ("OOM handling not implemented").

use std::collections::VecDeque;

use super::{BatchEntry, ReplicaScheduler, SchedCtx, SchedulerParams};
use crate::kv::KvError;
use crate::request::ReqId;

/// The LightLLM policy.
pub struct LightLlm {
    queue: VecDeque<ReqId>,
    running: Vec<ReqId>,
    cap: usize,
    max_tokens_in_batch: u64,
    max_waiting_iters: u32,
    waiting_iters: u32,
    num_blocks: u64,
    /// (current tokens, tokens still to come) of the admitted requests, reused between calls.
    tuples: Vec<(u64, u64)>,
}

impl LightLlm {
    /// Builds the policy.
    pub fn new(p: &SchedulerParams) -> Self {
        LightLlm {
            queue: VecDeque::new(),
            running: Vec::new(),
            cap: p.config.batch_size_cap as usize,
            max_tokens_in_batch: p.config.max_tokens_in_batch as u64,
            max_waiting_iters: p.config.max_waiting_iters,
            waiting_iters: 0,
            num_blocks: p.num_blocks,
            tuples: Vec::new(),
        }
    }

    /// Peak tokens if every request in `tuples` runs to its end, largest remaining first.
    fn projected_peak(tuples: &mut [(u64, u64)]) -> u64 {
        tuples.sort_unstable_by_key(|t| std::cmp::Reverse(t.1));
        let mut cum = 0u64;
        let mut peak = 0u64;
        for (i, &(cur, rem)) in tuples.iter().enumerate() {
            cum += cur;
            peak = peak.max(rem * (i as u64 + 1) + cum);
        }
        peak
    }

    fn prefill_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        self.tuples.clear();
        for &id in &self.running {
            let r = ctx.req(id);
            let rem = r.remaining_tokens().saturating_sub(1) as u64;
            self.tuples.push((r.processed_tokens as u64, rem));
        }
        let mut tokens = 0u64;
        while let Some(&id) = self.queue.front() {
            let r = ctx.req(id);
            let prompt = r.current_prefill_tokens;
            if !batch.is_empty() && tokens + prompt as u64 > self.max_tokens_in_batch {
                break;
            }
            if ctx.kv.num_holders() as usize >= self.cap || batch.len() >= self.cap {
                break;
            }
            let rem = (r.total_tokens() - prompt).saturating_sub(2) as u64;
            self.tuples.push((prompt as u64 + 1, rem));
            let mut trial = self.tuples.clone();
            if Self::projected_peak(&mut trial) >= self.num_blocks
                || !ctx.kv.can_allocate(prompt as u64)
            {
                self.tuples.pop();
                break;
            }
            self.queue.pop_front();
            ctx.allocate(id, prompt)?;
            ctx.push(batch, id, prompt);
            tokens += prompt as u64;
        }
        Ok(())
    }

    fn decode_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        self.running.sort_unstable();
        loop {
            let need: u64 = self
                .running
                .iter()
                .map(|&id| ctx.blocks_missing(id, ctx.req(id).processed_tokens) as u64)
                .sum();
            if ctx.kv.can_allocate(need) {
                break;
            }
            // Restart the latest arrival and try again.
            let victim = self
                .running
                .pop()
                .expect("need > 0 implies a running request");
            ctx.restart(victim);
            self.queue.push_front(victim);
        }
        for id in self.running.drain(..) {
            let need = ctx.blocks_missing(id, ctx.req(id).processed_tokens);
            ctx.allocate(id, need)?;
            ctx.push(batch, id, 1);
        }
        Ok(())
    }
}

impl ReplicaScheduler for LightLlm {
    fn add_request(&mut self, id: ReqId, _ctx: &mut SchedCtx<'_>) {
        self.queue.push_back(id);
    }

    fn next_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        if self.running.is_empty() {
            self.prefill_batch(ctx, batch)?;
            if !batch.is_empty() {
                self.waiting_iters = 0;
            }
            return Ok(());
        }
        if self.waiting_iters >= self.max_waiting_iters {
            self.waiting_iters = 0;
            self.prefill_batch(ctx, batch)?;
            if !batch.is_empty() {
                return Ok(());
            }
        }
        self.waiting_iters += 1;
        self.decode_batch(ctx, batch)
    }

    fn on_batch_end(&mut self, batch: &[BatchEntry], ctx: &mut SchedCtx<'_>) {
        for e in batch {
            if !ctx.req(e.request).done_here() {
                self.running.push(e.request);
            }
        }
    }

    fn num_queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::LightLlm;
    use crate::request::Request;
    use crate::workload::RequestSpec;

    #[test]
    fn projected_peak_matches_hand_computation() {
        // remaining desc: (10, 5), (20, 3): peak = max(5·1 + 10, 3·2 + 30) = 36
        let mut t = vec![(20, 3), (10, 5)];
        assert_eq!(LightLlm::projected_peak(&mut t), 36);
    }

    #[test]
    fn a_rejected_candidate_leaves_the_projection() {
        use super::super::{ReplicaScheduler, SchedCtx, SchedulerConfig, SchedulerParams};
        use crate::kv::KvCache;
        let params = SchedulerParams {
            config: SchedulerConfig {
                name: "lightllm".into(),
                ..Default::default()
            },
            pp: 1,
            num_blocks: 100,
            max_blocks_per_request: 100,
        };
        let mut s = LightLlm::new(&params);
        let mut kv = KvCache::new(100, 1);
        let mut reqs = crate::request::RequestTable::new();
        for (i, &(p, d)) in [(60, 10), (50, 10)].iter().enumerate() {
            reqs.push(Request::new(i as u32, 0, &RequestSpec::simple(0, p, d)));
        }
        let mut ctx = SchedCtx {
            now_ns: 0,
            requests: &mut reqs,
            kv: &mut kv,
        };
        s.add_request(0, &mut ctx);
        s.add_request(1, &mut ctx);
        let mut batch = Vec::new();
        // request 0: peak 61 + 8 = 69 < 100; request 1 on top: 69 + 59 > 100, rejected
        s.next_batch(&mut ctx, &mut batch).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(
            s.tuples,
            vec![(61, 8)],
            "the rejected candidate is not kept"
        );
        assert_eq!(s.num_queued(), 1);
    }

    #[test]
    fn decodes_short_of_memory_restart_instead_of_aborting() {
        let mut h = Harness::new("lightllm", 20, |c| c.max_waiting_iters = 0);
        h.add(5, 4);
        let b = h.next();
        assert_eq!(b, vec![(0, 5, true)]);
        h.end(&b);
        h.add(5, 4); // projection with request 0: max(7 + 6, 2·2 + 12) = 16 < 20
        let b = h.next();
        assert_eq!(b, vec![(1, 5, true)]);
        h.end(&b);
        // Something else takes 9 of the 10 free blocks: the two decodes need 2.
        let mut other = Request::new(99, 0, &RequestSpec::simple(0, 1, 1));
        h.kv.allocate(&mut other, 9).unwrap();
        let b = h.next();
        assert_eq!(b, vec![(0, 1, false)]);
        let r1 = h.req(1);
        assert_eq!((r1.num_restarts, r1.kv_blocks), (1, 0));
    }
}
