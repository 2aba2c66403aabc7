//! Decode runs: consecutive decode-only steps of one batch, simulated without asking the policy
//! again or touching every request at every step (docs/performance.md).
//!
//! When a batch of decodes ends, no request of it completes and the policy says its next batch
//! would be the same requests again ([`ReplicaScheduler::repeats_decodes`]), the engine keeps the
//! batch: at the replica's schedule event it takes the KV blocks the step needs, as the policy
//! would, and starts the same batch one token further. With pipeline parallelism each
//! micro-batch runs on its own while the others are in flight (nothing that tells the policy
//! anything can happen between a batch's end and its schedule event at the same instant): a later
//! step's token gap is the time since the batch's last step ended, and its execution time the sum
//! of its stage times. The per-request effects (tokens, token times, execution time) wait until the
//! run stops, and are then applied all at once ([`Request::on_decode_run`]). Everything else
//! happens at the same simulated time and in the same event order as step by step: the batch
//! counters, the KV blocks and the prefix cache, FLOPs, batch ids and the stage records, the
//! time-between-tokens histogram (each later step's gap recorded for all requests as the step
//! ends). The outputs are byte-identical to simulating every step through the policy, which the
//! tests check.
//!
//! [`ReplicaScheduler::repeats_decodes`]: crate::scheduler::ReplicaScheduler::repeats_decodes
//! [`Request::on_decode_run`]: crate::request::Request::on_decode_run

use super::Engine;
use crate::error::SimError;
use crate::request::ReqId;

/// One request of a decode run.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunEntry {
    /// The request.
    id: ReqId,
    /// Tokens in its KV cache when the next step is formed (what the policy sees as processed).
    kv_tokens: u32,
    /// Tokens its KV blocks hold.
    cap_tokens: u64,
}

impl RunEntry {
    /// Blocks of `block_size` tokens the next step needs beyond those held, as
    /// [`SchedCtx::blocks_missing`] counts them for the context the policy would see.
    ///
    /// [`SchedCtx::blocks_missing`]: crate::scheduler::SchedCtx::blocks_missing
    fn blocks_missing(&self, block_size: u32) -> u32 {
        let kv = u64::from(self.kv_tokens);
        if kv > self.cap_tokens {
            (kv.div_ceil(u64::from(block_size)) - self.cap_tokens / u64::from(block_size)) as u32
        } else {
            0
        }
    }
}

/// The state of a batch that has run more than one step, or is about to.
#[derive(Debug)]
pub(super) struct DecodeRun {
    /// Steps started (the one in flight included).
    pub(super) steps: u32,
    /// The step at which the first of its requests completes.
    max_steps: u32,
    /// End of the first step, ns.
    first_end_ns: u64,
    /// End of the latest step that ended, ns.
    last_end_ns: u64,
    /// Longest gap between two of its steps that ended (after the first step), ns.
    later_max_ns: u64,
    /// Execution time of the steps that ended, ns.
    ended_exec_ns: u64,
    /// The requests, in batch order.
    entries: Vec<RunEntry>,
}

impl Engine {
    /// At the end of the batch in `slot` on replica `r`: when the batch can run one more step
    /// unchanged, records the step that ended, parks the batch for the replica's schedule event
    /// and returns true; otherwise returns false and leaves the batch to end as usual.
    pub(super) fn park_decode_run(&mut self, r: u32, slot: u32) -> Result<bool, SimError> {
        let now = self.now_ns;
        let rep = &mut self.replicas[r as usize];
        let b = self.batches[slot as usize].as_mut().expect("live batch");
        if b.shape.num_prefills > 0 {
            return Ok(false);
        }
        // The step's execution time over all pipeline stages.
        let step_exec_ns = b.exec_ns;
        if let Some(run) = &mut b.run {
            // A later step ended: its gap (the step's time with one stage; with more, the time
            // since the batch's last step ended) is the same for every request of the batch.
            let gap_ns = now - run.last_end_ns;
            self.metrics
                .tbt
                .record_n(gap_ns, u64::from(b.shape.num_decodes));
            run.later_max_ns = run.later_max_ns.max(gap_ns);
            run.last_end_ns = now;
            run.ended_exec_ns += step_exec_ns;
            if run.steps >= run.max_steps {
                return Ok(false);
            }
        }
        // Requests in the asynchronous-scheduling inbox reach the policy only after the next
        // step is formed, so they do not change it.
        let ctx = crate::scheduler::SchedCtx {
            now_ns: now,
            requests: &mut self.requests,
            kv: &mut rep.kv,
        };
        if !rep.scheduler.repeats_decodes(&b.entries, &ctx) {
            return Ok(false);
        }
        let bs = rep.kv.block_size();
        if b.run.is_none() {
            let mut entries = self.run_pool.pop().unwrap_or_default();
            entries.clear();
            let mut max_steps = u32::MAX;
            for e in &b.entries {
                let q = &self.requests[e.request];
                max_steps = max_steps.min(q.remaining_tokens());
                entries.push(RunEntry {
                    id: e.request,
                    kv_tokens: q.processed_tokens + 1,
                    cap_tokens: u64::from(q.kv_blocks) * u64::from(bs),
                });
            }
            if max_steps <= 1 {
                self.run_pool.push(entries);
                return Ok(false);
            }
            b.run = Some(DecodeRun {
                steps: 1,
                max_steps,
                first_end_ns: now,
                last_end_ns: now,
                later_max_ns: 0,
                ended_exec_ns: step_exec_ns,
                entries,
            });
        }
        let run = b.run.as_ref().expect("run set above");
        // The next step's blocks: the policy would take them request by request, and all are
        // there when their sum is free (nothing is freed in between).
        let need: u64 = run
            .entries
            .iter()
            .map(|e| u64::from(e.blocks_missing(bs)))
            .sum();
        if !rep.kv.can_allocate(need) {
            return Ok(false);
        }
        // What the end of a batch does when no request completes.
        rep.account_kv(now);
        rep.in_flight -= 1;
        rep.batches += 1;
        rep.ts_batches += 1;
        rep.parked_run = Some(slot);
        self.schedule_soon(r);
        Ok(true)
    }

    /// At replica `r`'s schedule event, starts the next step of the run parked in `slot`: takes
    /// and registers KV blocks as the policy would, then starts the batch one token further.
    pub(super) fn resume_decode_run(&mut self, r: u32, slot: u32) -> Result<(), SimError> {
        let rep = &mut self.replicas[r as usize];
        let b = self.batches[slot as usize].as_mut().expect("parked batch");
        let run = b.run.as_mut().expect("a parked batch runs");
        let bs = rep.kv.block_size();
        for e in &mut run.entries {
            let n = e.blocks_missing(bs);
            if n > 0 {
                rep.kv.allocate(&mut self.requests[e.id], n)?;
                e.cap_tokens += u64::from(n) * u64::from(bs);
            }
            rep.kv.register_decode(&self.requests[e.id], e.kv_tokens);
            e.kv_tokens += 1;
        }
        run.steps += 1;
        self.run_steps += 1;
        b.shape.decode_kv_sum += u64::from(b.shape.num_decodes);
        rep.flops += self.flops.flops(&b.shape);
        rep.in_flight += 1;
        rep.max_in_flight = rep.max_in_flight.max(rep.in_flight);
        b.id = self.next_batch_id;
        self.next_batch_id += 1;
        b.kv_blocks_used = rep.kv.allocated();
        b.exec_ns = 0;
        self.enqueue_stage(r, 0, slot);
        Ok(())
    }

    /// Applies the first `steps` steps of `run` (on replica `r`, the last of them ended at
    /// `run.last_end_ns`) to its requests, which stay `in_flight` or not, and hands each outcome
    /// to [`Engine::token_done`].
    fn apply_decode_run(&mut self, r: u32, run: &DecodeRun, steps: u32, in_flight: bool) {
        for e in &run.entries {
            let q = &mut self.requests[e.id];
            q.in_flight = in_flight;
            let out = q.on_decode_run(
                run.last_end_ns,
                steps,
                run.first_end_ns,
                run.later_max_ns,
                run.ended_exec_ns,
            );
            self.token_done(r, e.id, out);
        }
    }

    /// At the end of a run's last step on replica `r`, applies all its steps to its requests and
    /// returns the run's entries to the pool.
    pub(super) fn end_decode_run(&mut self, r: u32, run: DecodeRun) {
        self.apply_decode_run(r, &run, run.steps, false);
        let mut entries = run.entries;
        entries.clear();
        self.run_pool.push(entries);
    }

    /// When the run stops early (time limit, certain miss): applies the steps that ended to the
    /// requests of every run still live, as step-by-step simulation would have (none of them
    /// completes a request).
    pub(super) fn settle_decode_runs(&mut self) {
        for slot in 0..self.batches.len() {
            let Some(b) = self.batches[slot].as_mut() else {
                continue;
            };
            let Some(run) = b.run.take() else {
                continue;
            };
            let r = b.replica;
            let parked = self.replicas[r as usize].parked_run == Some(slot as u32);
            // the step in flight, if any, has not ended; its batch keeps its requests
            let ended = if parked { run.steps } else { run.steps - 1 };
            if ended > 0 {
                self.apply_decode_run(r, &run, ended, !parked);
            }
        }
    }
}
