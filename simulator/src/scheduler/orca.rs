//! Orca (docs/design.md §6.4): iteration-level batching. Every admitted request decodes each
//! iteration; new requests join with their whole prompt while the batch has room and a worst-case
//! (longest request) block reservation fits. No preemption.

use std::collections::VecDeque;

use super::{requeue_unfinished, BatchEntry, ReplicaScheduler, SchedCtx, SchedulerParams};
use crate::kv::KvError;
use crate::request::ReqId;

/// The Orca policy.
pub struct Orca {
    queue: VecDeque<ReqId>,
    running: VecDeque<ReqId>,
    max_batch: usize,
    reserve_blocks: u32,
}

impl Orca {
    /// Builds the policy.
    pub fn new(p: &SchedulerParams) -> Self {
        Orca {
            queue: VecDeque::new(),
            running: VecDeque::new(),
            max_batch: p.reservation_batch_size(),
            reserve_blocks: p.max_blocks_per_request,
        }
    }
}

/// Admits requests from `queue` into `batch` with a worst-case reservation each (Orca and
/// FasterTransformer).
pub(crate) fn admit_reserving(
    ctx: &mut SchedCtx<'_>,
    queue: &mut VecDeque<ReqId>,
    batch: &mut Vec<BatchEntry>,
    max_batch: usize,
    reserve_blocks: u32,
) -> Result<(), KvError> {
    while batch.len() < max_batch && ctx.kv.can_allocate(reserve_blocks as u64) {
        let Some(id) = queue.pop_front() else { break };
        ctx.allocate(id, reserve_blocks)?;
        let prompt = ctx.req(id).current_prefill_tokens;
        ctx.push(batch, id, prompt);
    }
    Ok(())
}

impl ReplicaScheduler for Orca {
    fn add_request(&mut self, id: ReqId, _ctx: &mut SchedCtx<'_>) {
        self.queue.push_back(id);
    }

    fn next_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        while batch.len() < self.max_batch {
            let Some(id) = self.running.pop_front() else {
                break;
            };
            ctx.push(batch, id, 1);
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
        requeue_unfinished(batch, ctx, &mut self.running);
    }

    fn num_queued(&self) -> usize {
        self.queue.len()
    }

    /// Every running request is in the batch (their blocks reserved at admission, so a decode
    /// takes none), and none is admitted: the queue is empty, the batch is full, or a
    /// reservation does not fit.
    fn repeats_decodes(&self, batch: &[BatchEntry], ctx: &SchedCtx<'_>) -> bool {
        self.running.is_empty()
            && (self.queue.is_empty()
                || batch.len() >= self.max_batch
                || !ctx.kv.can_allocate(u64::from(self.reserve_blocks)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[test]
    fn decodes_and_new_prefills_mix_with_full_reservation() {
        // 4096-token max requests: 256 blocks each; 600 blocks hold two reservations.
        let mut h = Harness::new("orca", 600, |_| {});
        h.add(100, 3);
        let b = h.next();
        assert_eq!(b, vec![(0, 100, true)]);
        assert_eq!(h.kv.allocated(), 256);
        h.add(50, 2);
        h.add(20, 2);
        h.end(&b);
        let b = h.next();
        // request 0 decodes, request 1 joins, request 2 waits for memory
        assert_eq!(b, vec![(0, 1, false), (1, 50, true)]);
        assert_eq!(h.kv.allocated(), 512);
    }
}
