//! vLLM V1's scheduler (`vllm/v1/core/sched/scheduler.py`, the default engine since vLLM 0.8):
//! one queue-free step loop under a token budget.
//!
//! Each step:
//! 1. **Running requests first**, in admission order: each takes what it still needs (1 token for a
//!    decode, the rest of its prompt for an unfinished prefill), capped by
//!    `long_prefill_token_threshold` (when > 0) and the budget left. If the KV blocks for those
//!    tokens cannot be had, the most recently admitted running request is preempted (its blocks
//!    freed, back to the *front* of the waiting queue, recomputed later) and the allocation retried;
//!    when the victim is the request itself, the running pass stops.
//! 2. **Waiting requests**, in order, only when nothing was preempted in this step, while the
//!    budget lasts, fewer than `max_num_seqs` requests are running and the KV blocks for the first
//!    chunk can be had. A request first reuses its longest chain of cached prefix blocks (prefix
//!    caching), so only the rest of its prompt is computed. Without chunked prefill, a prompt that
//!    does not fit the budget left is skipped for this step (the ones behind it may go).
//!
//! KV blocks are allocated per chunk (for the tokens computed so far plus this step's), not for the
//! whole prompt at admission, and there is no watermark. With pipeline parallelism a request in a
//! batch still in flight is skipped, and is never chosen as a preemption victim; a request whose
//! only possible victim is itself while others are in flight keeps its blocks and waits (and so do
//! admissions) rather than preempting itself, so the oldest running request always progresses.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{BatchEntry, ReplicaScheduler, SchedCtx, SchedulerParams};
use crate::kv::KvError;
use crate::request::ReqId;

/// vLLM's default `max_num_batched_tokens` with chunked prefill (the `vllm serve` value).
pub const DEFAULT_MAX_NUM_BATCHED_TOKENS: u32 = 2048;

/// vLLM V1 engine arguments (section `[scheduler.vllm_v1]`); names and defaults as vLLM's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VllmV1Config {
    /// Token budget per step; unset: 2048 with chunked prefill, `max(max_model_len, 2048)`
    /// without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_num_batched_tokens: Option<u32>,
    /// Most requests running at once.
    pub max_num_seqs: u32,
    /// Largest prefill chunk of one request per step; 0: no limit beyond the budget.
    pub long_prefill_token_threshold: u32,
    /// Prompts may be split over steps.
    pub enable_chunked_prefill: bool,
    /// Longest request (prompt + output), tokens; unset: the workload's `max_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u32>,
    /// Fraction of GPU memory for weights, activations and KV cache; when set it replaces
    /// `replica.memory_margin_fraction` with `1 − gpu_memory_utilization` (the engine model's
    /// planner uses it as vLLM does, 0.9 when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_memory_utilization: Option<f64>,
    /// The scheduler plans the next step while the current one runs (vLLM's
    /// `--async-scheduling`), so a request arriving during a step waits for the step after next;
    /// unset: the calibrated engine's behaviour with the engine model (on for vLLM 0.15.1), off
    /// with the other backends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub async_scheduling: Option<bool>,
}

impl Default for VllmV1Config {
    fn default() -> Self {
        VllmV1Config {
            max_num_batched_tokens: None,
            max_num_seqs: 256,
            long_prefill_token_threshold: 0,
            enable_chunked_prefill: true,
            max_model_len: None,
            gpu_memory_utilization: None,
            async_scheduling: None,
        }
    }
}

impl VllmV1Config {
    /// The token budget per step for requests of at most `max_model_len` tokens.
    pub fn token_budget(&self, max_model_len: u32) -> u32 {
        self.max_num_batched_tokens
            .unwrap_or(if self.enable_chunked_prefill {
                DEFAULT_MAX_NUM_BATCHED_TOKENS
            } else {
                max_model_len.max(DEFAULT_MAX_NUM_BATCHED_TOKENS)
            })
    }

    /// Checks the values against the workload's longest request; the error names the field.
    pub fn validate(&self, max_request_tokens: u32) -> Result<(), (String, String)> {
        let field = |f: &str| format!("scheduler.vllm_v1.{f}");
        if self.max_num_seqs == 0 {
            return Err((
                field("max_num_seqs"),
                "must be at least 1 (--max-num-seqs)".into(),
            ));
        }
        if self.max_num_batched_tokens == Some(0) {
            return Err((
                field("max_num_batched_tokens"),
                "must be at least 1 (--max-num-batched-tokens)".into(),
            ));
        }
        if let Some(u) = self.gpu_memory_utilization {
            if !(u > 0.0 && u <= 1.0) {
                return Err((
                    field("gpu_memory_utilization"),
                    format!("{u} is not in (0, 1] (--gpu-memory-utilization)"),
                ));
            }
        }
        let max_len = self.max_model_len.unwrap_or(max_request_tokens);
        if max_len < max_request_tokens {
            return Err((field("max_model_len"), format!("{max_len} is shorter than the workload's longest request ({max_request_tokens} tokens, workload.max_tokens); raise --max-model-len or lower --max-tokens")));
        }
        let budget = self.token_budget(max_len);
        if !self.enable_chunked_prefill && budget < max_len {
            return Err((field("max_num_batched_tokens"), format!("{budget} is smaller than max_model_len {max_len}: without chunked prefill a prompt must fit one step; raise --max-num-batched-tokens or enable chunked prefill")));
        }
        Ok(())
    }
}

/// The vLLM V1 policy.
pub struct VllmV1 {
    waiting: VecDeque<ReqId>,
    /// Admitted requests, in admission order (in-flight ones included).
    running: Vec<ReqId>,
    skipped: Vec<ReqId>,
    token_budget: u32,
    max_num_seqs: usize,
    long_prefill_token_threshold: u32,
    chunked_prefill: bool,
}

impl VllmV1 {
    /// Builds the policy.
    pub fn new(p: &SchedulerParams) -> Self {
        let c = &p.config.vllm_v1;
        let max_len = c
            .max_model_len
            .unwrap_or(p.max_blocks_per_request * p.config.block_size);
        VllmV1 {
            waiting: VecDeque::new(),
            running: Vec::new(),
            skipped: Vec::new(),
            token_budget: c.token_budget(max_len),
            max_num_seqs: c.max_num_seqs as usize,
            long_prefill_token_threshold: c.long_prefill_token_threshold,
            chunked_prefill: c.enable_chunked_prefill,
        }
    }

    /// Makes room for request `id` in the per-request flags.
    fn cap_threshold(&self, n: u32) -> u32 {
        if self.long_prefill_token_threshold > 0 {
            n.min(self.long_prefill_token_threshold)
        } else {
            n
        }
    }

    /// Step 1: the running requests. Returns (budget left, admissions must wait: something was
    /// preempted, or a request waits for blocks held by requests in flight).
    fn schedule_running(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(u32, bool), KvError> {
        let mut budget = self.token_budget;
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let id = self.running[i];
            if ctx.req(id).in_flight {
                i += 1;
                continue;
            }
            let r = ctx.req(id);
            let prefill = !r.prefill_complete;
            let want = if prefill {
                r.remaining_prefill_tokens()
            } else {
                1
            };
            let n = self.cap_threshold(want).min(budget);
            let kv_tokens = if prefill {
                r.processed_tokens + n
            } else {
                r.processed_tokens
            };
            let mut scheduled = true;
            loop {
                let need = ctx.blocks_missing(id, kv_tokens);
                if ctx.kv.can_allocate(u64::from(need)) {
                    ctx.allocate(id, need)?;
                    break;
                }
                // The most recently admitted request not in flight and not yet scheduled in this
                // step (all of those sit after `i`); `id` itself qualifies.
                let pos = i + self.running[i..]
                    .iter()
                    .rposition(|&v| !ctx.req(v).in_flight)
                    .expect("the request being scheduled is not in flight");
                // Only `id` itself could go, while requests in flight hold blocks: it waits for
                // them with its blocks kept (admissions wait too), instead of losing its
                // progress. Preempting itself here lets the requests in flight and new
                // admissions take its place again and again, so that under pipeline parallelism
                // no request might ever finish; waiting keeps the oldest running request safe.
                if pos == i && self.running.iter().any(|&v| ctx.req(v).in_flight) {
                    preempted = true;
                    scheduled = false;
                    break;
                }
                let victim = self.running.remove(pos);
                ctx.restart(victim);
                self.waiting.push_front(victim);
                preempted = true;
                if victim == id {
                    scheduled = false;
                    break;
                }
            }
            if !scheduled {
                break;
            }
            ctx.push(batch, id, n);
            budget -= n;
            i += 1;
        }
        Ok((budget, preempted))
    }

    /// Step 2: admissions from the waiting queue.
    fn schedule_waiting(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
        mut budget: u32,
    ) -> Result<(), KvError> {
        while budget > 0 && self.running.len() < self.max_num_seqs {
            let Some(&id) = self.waiting.front() else {
                break;
            };
            let hit = ctx.prefix_lookup(id);
            let want = self.cap_threshold(ctx.req(id).current_prefill_tokens - hit.tokens);
            if !self.chunked_prefill && want > budget {
                self.waiting.pop_front();
                self.skipped.push(id);
                continue;
            }
            let n = want.min(budget);
            let need = ctx.kv.blocks_for(hit.tokens + n) - hit.blocks + hit.revived_blocks;
            if !ctx.kv.can_allocate(u64::from(need)) {
                break;
            }
            self.waiting.pop_front();
            ctx.take_prefix_hit(id, hit)?;
            let missing = ctx.blocks_missing(id, hit.tokens + n);
            ctx.allocate(id, missing)?;
            self.running.push(id);
            ctx.push(batch, id, n);
            budget -= n;
        }
        // Skipped requests keep their places at the front.
        while let Some(id) = self.skipped.pop() {
            self.waiting.push_front(id);
        }
        Ok(())
    }
}

impl ReplicaScheduler for VllmV1 {
    fn add_request(&mut self, id: ReqId, _ctx: &mut SchedCtx<'_>) {
        self.waiting.push_back(id);
    }

    /// A request prefilled elsewhere is admitted at once: it is running and decodes next.
    fn add_prefilled(&mut self, id: ReqId, _ctx: &mut SchedCtx<'_>) -> Result<(), String> {
        self.running.push(id);
        Ok(())
    }

    fn next_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        let (budget, preempted) = self.schedule_running(ctx, batch)?;
        if !preempted {
            self.schedule_waiting(ctx, batch, budget)?;
        }
        Ok(())
    }

    fn on_batch_end(&mut self, batch: &[BatchEntry], ctx: &mut SchedCtx<'_>) {
        let mut any_completed = false;
        for e in batch {
            any_completed |= ctx.req(e.request).done_here();
        }
        if any_completed {
            self.running.retain(|&id| !ctx.req(id).done_here());
        }
    }

    fn num_queued(&self) -> usize {
        self.waiting.len()
    }

    /// The running pass takes every running request again (all decodes, within the budget that
    /// held them last step): every running request is in the batch, or (pipeline parallelism) in
    /// another batch still in flight, which the pass skips; and the waiting pass admits none: the
    /// queue is empty, or full at `max_num_seqs`, or the decodes use the whole budget.
    fn repeats_decodes(&self, batch: &[BatchEntry], ctx: &SchedCtx<'_>) -> bool {
        // (equal lengths: every running request is the batch's, without reading them all)
        (self.running.len() == batch.len() || self.running.iter().all(|&id| ctx.req(id).in_flight))
            && (self.waiting.is_empty()
                || self.running.len() >= self.max_num_seqs
                || batch.len() >= self.token_budget as usize)
    }
}

#[cfg(test)]
#[path = "vllm_v1_tests.rs"]
mod tests;
