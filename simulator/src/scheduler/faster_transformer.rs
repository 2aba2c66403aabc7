//! FasterTransformer (docs/design.md §6.5): request-level static batching. A batch's membership is
//! fixed when it is formed (worst-case reservations, like Orca); it iterates until every member
//! finished, finished members dropping out; no request joins a running batch.
//!
//! Fixed against Vidur: members that finish before the rest of their batch have their blocks freed
//! when they finish (the engine frees every completed request), where Vidur leaked them.

use std::collections::VecDeque;

use super::orca::admit_reserving;
use super::{BatchEntry, ReplicaScheduler, SchedCtx, SchedulerParams};
use crate::kv::KvError;
use crate::request::ReqId;

/// The FasterTransformer policy.
pub struct FasterTransformer {
    queue: VecDeque<ReqId>,
    /// Unfinished static batches, oldest first, as their remaining members.
    batches: VecDeque<Vec<ReqId>>,
    max_batch: usize,
    reserve_blocks: u32,
}

impl FasterTransformer {
    /// Builds the policy.
    pub fn new(p: &SchedulerParams) -> Self {
        FasterTransformer {
            queue: VecDeque::new(),
            batches: VecDeque::new(),
            max_batch: p.reservation_batch_size(),
            reserve_blocks: p.max_blocks_per_request,
        }
    }
}

impl ReplicaScheduler for FasterTransformer {
    fn add_request(&mut self, id: ReqId, _ctx: &mut SchedCtx<'_>) {
        self.queue.push_back(id);
    }

    fn next_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        if let Some(members) = self.batches.pop_front() {
            for id in members {
                let r = ctx.req(id);
                let tokens = if r.prefill_complete {
                    1
                } else {
                    r.remaining_prefill_tokens()
                };
                ctx.push(batch, id, tokens);
            }
            return Ok(());
        }
        admit_reserving(
            ctx,
            &mut self.queue,
            batch,
            self.max_batch,
            self.reserve_blocks,
        )
    }

    fn on_batch_end(&mut self, batch: &[BatchEntry], ctx: &mut SchedCtx<'_>) {
        let left: Vec<ReqId> = batch
            .iter()
            .map(|e| e.request)
            .filter(|&id| !ctx.req(id).done_here())
            .collect();
        if !left.is_empty() {
            self.batches.push_back(left);
        }
    }

    fn num_queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn early_finishers_free_their_blocks_and_nobody_joins() {
        let mut h = Harness::new("faster_transformer", 1024, |_| {});
        h.add(10, 1);
        h.add(10, 3);
        let b = h.next();
        assert_eq!(b.len(), 2);
        assert_eq!(h.kv.allocated(), 512);
        h.add(5, 1);
        h.end(&b);
        // request 0 finished with its prefill: its reservation is back (Vidur leaked it)
        assert_eq!(h.kv.allocated(), 256);
        // the static batch continues without request 0 and without the newcomer
        let b = h.next();
        assert_eq!(b, vec![(1, 1, false)]);
        h.end(&b);
        let b = h.next();
        assert_eq!(b, vec![(1, 1, false)]);
        h.end(&b);
        assert_eq!(h.kv.allocated(), 0);
        assert_eq!(h.next(), vec![(2, 5, true)]);
    }
}
