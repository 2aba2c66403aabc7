//! Replica schedulers: what each replica runs next (docs/design.md §6).
//!
//! Every policy implements [`ReplicaScheduler`] and is listed once in [`registry`]. A policy owns
//! its queues of request ids; requests themselves live in the engine's table and are reached through
//! [`SchedCtx`], together with the replica's [`KvCache`].
//!
//! Division of labour with the engine:
//! - the engine calls [`ReplicaScheduler::next_batch`] while fewer than PP batches are in flight on
//!   the replica, and never hands a request of an in-flight batch back to the policy before that
//!   batch ends;
//! - a batch is a list of (request, tokens) entries: prefill chunks (any size up to the remaining
//!   prompt) and single-token decodes, mixed freely;
//! - at a batch end the engine applies the tokens to each request and frees the KV blocks of the
//!   requests that completed, then calls [`ReplicaScheduler::on_batch_end`];
//! - a policy may preempt a waiting request (free its blocks and restart it) through
//!   [`SchedCtx::restart`].

pub mod faster_transformer;
pub mod lightllm;
pub mod orca;
pub mod registry;
pub mod sarathi;
pub mod vllm;
pub mod vllm_v1;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::kv::{KvCache, KvError};
use crate::prefix_cache::PrefixHit;
use crate::request::{ReqId, RequestTable};

pub use registry::{find, prefix_caching_default, SchedulerEntry, SCHEDULERS};
pub use vllm_v1::VllmV1Config;

/// One request's share of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry {
    /// The request.
    pub request: ReqId,
    /// Tokens it processes in this batch (a prefill chunk, or 1 for a decode).
    pub tokens: u32,
    /// True for a prefill chunk, false for a decode.
    pub is_prefill: bool,
}

/// What a policy sees of the replica while scheduling.
pub struct SchedCtx<'a> {
    /// Simulated time, ns.
    pub now_ns: u64,
    /// The requests of the simulation, indexed by id.
    pub requests: &'a mut RequestTable,
    /// The replica's KV cache.
    pub kv: &'a mut KvCache,
}

impl SchedCtx<'_> {
    /// The request `id`.
    pub fn req(&self, id: ReqId) -> &crate::request::Request {
        &self.requests[id]
    }

    /// The request `id`, mutably.
    pub fn req_mut(&mut self, id: ReqId) -> &mut crate::request::Request {
        &mut self.requests[id]
    }

    /// Gives `n` blocks to request `id`.
    pub fn allocate(&mut self, id: ReqId, n: u32) -> Result<(), KvError> {
        self.kv.allocate(&mut self.requests[id], n)
    }

    /// Preempts request `id` by recomputation: frees its blocks and restarts it.
    pub fn restart(&mut self, id: ReqId) {
        let r = &mut self.requests[id];
        self.kv.free(r);
        r.restart();
    }

    /// Blocks request `id` still needs to hold `tokens` tokens.
    pub fn blocks_missing(&self, id: ReqId, tokens: u32) -> u32 {
        let r = self.req(id);
        // fast path (no division): most decodes fit in the blocks already held
        if tokens as u64 <= r.kv_blocks as u64 * self.kv.block_size() as u64 {
            0
        } else {
            self.kv.blocks_for(tokens) - r.kv_blocks
        }
    }

    /// Adds a prefill chunk or a decode of request `id` to `batch`. With prefix caching, the full
    /// blocks this entry completes become reusable (as vLLM V1 registers them at scheduling).
    #[inline]
    pub fn push(&mut self, batch: &mut Vec<BatchEntry>, id: ReqId, tokens: u32) {
        let r = &self.requests[id];
        let is_prefill = !r.prefill_complete;
        if is_prefill {
            self.kv.register_scheduled(r, r.processed_tokens + tokens);
        } else {
            self.kv.register_decode(r, r.processed_tokens);
        }
        batch.push(BatchEntry {
            request: id,
            tokens,
            is_prefill,
        });
    }

    /// The cached blocks request `id` could reuse if admitted now (nothing without caching).
    pub fn prefix_lookup(&mut self, id: ReqId) -> PrefixHit {
        self.kv.prefix_lookup(&self.requests[id])
    }

    /// Admits request `id` with the cached blocks of `hit` (see [`KvCache::take_prefix_hit`]).
    pub fn take_prefix_hit(&mut self, id: ReqId, hit: PrefixHit) -> Result<(), KvError> {
        self.kv.take_prefix_hit(&mut self.requests[id], hit)
    }
}

/// A replica's batching policy.
pub trait ReplicaScheduler: Send {
    /// A request routed to this replica.
    fn add_request(&mut self, id: ReqId, ctx: &mut SchedCtx<'_>);
    /// Forms the next batch into `batch` (given empty); leaves it empty when there is nothing to run.
    fn next_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError>;
    /// A batch formed by this policy finished; its requests' tokens are applied and the blocks of
    /// completed requests freed.
    fn on_batch_end(&mut self, batch: &[BatchEntry], ctx: &mut SchedCtx<'_>);
    /// Requests waiting for admission (holding no KV blocks).
    fn num_queued(&self) -> usize;
    /// Decode runs (docs/performance.md): called when `batch`, a batch of decodes only, has just
    /// ended with no request completed, before [`ReplicaScheduler::on_batch_end`]; `ctx` is read
    /// only, and with pipeline parallelism other batches may still be in flight (their requests
    /// flagged `in_flight`). True when the policy's next batch is certain to be `batch` again, in
    /// the same order, each request one token further, with its KV blocks taken as
    /// [`secure_decode_block`] and vLLM V1 do (the blocks missing for the tokens computed so far,
    /// then the block a decode fills registered), and nothing else changing in the policy: the
    /// engine then forms that batch itself without calling [`ReplicaScheduler::next_batch`] or
    /// [`ReplicaScheduler::on_batch_end`] until the run stops. The default, false, always asks
    /// the policy.
    fn repeats_decodes(&self, batch: &[BatchEntry], ctx: &SchedCtx<'_>) -> bool {
        let _ = (batch, ctx);
        false
    }
    /// Disaggregated serving: request `id` arrives with its prefill done on another replica, holding
    /// its KV blocks here, and decodes next. A policy that cannot take such a request says so (the
    /// configuration check keeps it out of decode pools: [`SchedulerEntry::takes_prefilled`]).
    fn add_prefilled(&mut self, id: ReqId, ctx: &mut SchedCtx<'_>) -> Result<(), String> {
        let _ = ctx;
        Err(format!(
            "request {id} was prefilled elsewhere, and this policy cannot decode such a request"
        ))
    }
}

/// Knobs of the replica schedulers (section `[scheduler]`); each policy reads the ones it uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Policy name, one of [`SCHEDULERS`].
    pub name: String,
    /// Most requests admitted on a replica at once (and per batch).
    pub batch_size_cap: u32,
    /// Tokens per KV block (LightLLM always uses 1).
    pub block_size: u32,
    /// Fraction of blocks kept free when admitting a new request (vLLM, Sarathi).
    pub watermark_blocks_fraction: f64,
    /// KV blocks per replica; unset: from the memory planner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_blocks: Option<u64>,
    /// Token cap per batch (vLLM, LightLLM).
    pub max_tokens_in_batch: u32,
    /// Token budget per batch, prefill chunks included (Sarathi).
    pub chunk_size: u32,
    /// Decode iterations before LightLLM tries to admit new requests again.
    pub max_waiting_iters: u32,
    /// Automatic prefix caching (vLLM's `enable_prefix_caching`); unset: on for `vllm_v1`, off
    /// otherwise. Only `vllm_v1` and `sarathi` support it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_prefix_caching: Option<bool>,
    /// vLLM V1 engine arguments (section `[scheduler.vllm_v1]`), read by `vllm_v1`.
    pub vllm_v1: VllmV1Config,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            name: "vllm_v1".into(),
            batch_size_cap: 128,
            block_size: 16,
            watermark_blocks_fraction: 0.01,
            num_blocks: None,
            max_tokens_in_batch: 4096,
            chunk_size: 512,
            max_waiting_iters: 10,
            enable_prefix_caching: None,
            vllm_v1: VllmV1Config::default(),
        }
    }
}

impl SchedulerConfig {
    /// The first knob set away from its default that the chosen policy does not read, as
    /// (`scheduler.` key, why): such a setting would be silently ignored. The memory knobs
    /// (`num_blocks`, `block_size`, `vllm_v1.gpu_memory_utilization`) apply to every policy;
    /// prefix caching and asynchronous scheduling are checked by the configuration.
    pub fn ignored_knob(&self) -> Option<(String, String)> {
        let d = SchedulerConfig::default();
        let (v, dv) = (&self.vllm_v1, &d.vllm_v1);
        let knobs: [(&str, &str, bool); 10] = [
            (
                "batch_size_cap",
                "--batch-size-cap",
                self.batch_size_cap != d.batch_size_cap,
            ),
            (
                "chunk_size",
                "--chunk-size",
                self.chunk_size != d.chunk_size,
            ),
            (
                "max_tokens_in_batch",
                "--max-tokens-in-batch",
                self.max_tokens_in_batch != d.max_tokens_in_batch,
            ),
            (
                "max_waiting_iters",
                "--max-waiting-iters",
                self.max_waiting_iters != d.max_waiting_iters,
            ),
            (
                "watermark_blocks_fraction",
                "--watermark-blocks-fraction",
                self.watermark_blocks_fraction != d.watermark_blocks_fraction,
            ),
            (
                "vllm_v1.max_num_batched_tokens",
                "--max-num-batched-tokens",
                v.max_num_batched_tokens != dv.max_num_batched_tokens,
            ),
            (
                "vllm_v1.max_num_seqs",
                "--max-num-seqs",
                v.max_num_seqs != dv.max_num_seqs,
            ),
            (
                "vllm_v1.long_prefill_token_threshold",
                "--long-prefill-token-threshold",
                v.long_prefill_token_threshold != dv.long_prefill_token_threshold,
            ),
            (
                "vllm_v1.enable_chunked_prefill",
                "--no-enable-chunked-prefill",
                v.enable_chunked_prefill != dv.enable_chunked_prefill,
            ),
            (
                "vllm_v1.max_model_len",
                "--max-model-len",
                v.max_model_len != dv.max_model_len,
            ),
        ];
        // an unknown policy is reported by the name's own check
        let entry = find(&self.name).ok()?;
        let (key, flag, _) = knobs
            .into_iter()
            .find(|(key, _, set)| *set && !entry.knobs.contains(key))?;
        let users: Vec<&str> = SCHEDULERS
            .iter()
            .filter(|e| e.knobs.contains(&key))
            .map(|e| e.name)
            .collect();
        Some((
            format!("scheduler.{key}"),
            format!(
                "the {} scheduler does not use it (only {} do{}), so it would be ignored; drop \
                 {flag} (or the key), or choose a scheduler that uses it{}",
                self.name,
                match users.split_last() {
                    Some((last, rest)) if !rest.is_empty() =>
                        format!("{} and {last}", rest.join(", ")),
                    _ => users.join(""),
                },
                if users.len() == 1 { "es" } else { "" },
                match (self.name.as_str(), key) {
                    ("vllm_v1", "batch_size_cap") =>
                        "; vllm_v1 caps its running requests with --max-num-seqs",
                    ("vllm_v1", "chunk_size") =>
                        "; vllm_v1's step budget is --max-num-batched-tokens",
                    ("sarathi", "vllm_v1.max_num_batched_tokens") =>
                        "; sarathi's step budget is --chunk-size",
                    (_, "vllm_v1.max_num_seqs") =>
                        "; the other schedulers' cap is --batch-size-cap",
                    _ => "",
                }
            ),
        ))
    }
}

/// Everything a policy is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerParams {
    /// The knobs.
    pub config: SchedulerConfig,
    /// Pipeline stages of the replica.
    pub pp: u32,
    /// KV blocks of the replica.
    pub num_blocks: u64,
    /// Blocks a request of the longest possible length needs.
    pub max_blocks_per_request: u32,
}

impl SchedulerParams {
    /// Requests per micro-batch for policies that split the cap over pipeline stages.
    pub fn max_micro_batch_size(&self) -> usize {
        (self.config.batch_size_cap / self.pp).max(1) as usize
    }

    /// Whether the replica's KV cache does automatic prefix caching.
    pub fn prefix_caching(&self) -> bool {
        let default = prefix_caching_default(&self.config.name).unwrap_or(false);
        self.config.enable_prefix_caching.unwrap_or(default)
    }

    /// Vidur's `watermark_blocks`.
    pub fn watermark_blocks(&self) -> u64 {
        (self.config.watermark_blocks_fraction * self.num_blocks as f64) as u64
    }

    /// Batch size of the max-length-reservation policies (Orca, FasterTransformer): the requests
    /// whose worst case fits in one stage's share of the cache, capped by `batch_size_cap`.
    pub fn reservation_batch_size(&self) -> usize {
        let fit = self.num_blocks / self.max_blocks_per_request.max(1) as u64 / self.pp as u64;
        (fit.min(self.config.batch_size_cap as u64)).max(1) as usize
    }
}

/// vLLM's test for admitting a request: its prompt's blocks leave at least the watermark free.
/// The watermark does not apply to an empty cache (it would block for ever a request that fits).
pub fn can_admit_with_watermark(ctx: &SchedCtx<'_>, id: ReqId, watermark: u64) -> bool {
    let need = ctx.blocks_missing(id, ctx.req(id).current_prefill_tokens) as u64;
    let watermark = if ctx.kv.allocated() == 0 {
        0
    } else {
        watermark
    };
    ctx.kv.free_blocks() >= need + watermark
}

/// Secures the KV block that the decode of `id` needs (vLLM v0 / Sarathi): while memory is short,
/// restart the latest-arriving request left in `others` (taken from its back) and put it at the
/// front of `queue`; when `others` is empty, restart `id` itself. Returns true when `id` got its
/// block and can decode.
pub fn secure_decode_block(
    ctx: &mut SchedCtx<'_>,
    id: ReqId,
    others: &mut VecDeque<ReqId>,
    queue: &mut VecDeque<ReqId>,
) -> Result<bool, KvError> {
    loop {
        let processed = ctx.req(id).processed_tokens;
        let need = ctx.blocks_missing(id, processed);
        if ctx.kv.can_allocate(need as u64) {
            ctx.allocate(id, need)?;
            return Ok(true);
        }
        match others.pop_back() {
            Some(victim) => {
                ctx.restart(victim);
                queue.push_front(victim);
            }
            None => {
                ctx.restart(id);
                queue.push_front(id);
                return Ok(false);
            }
        }
    }
}

/// Returns the requests of a finished batch that did not complete to `running` (vLLM, Orca,
/// Sarathi).
pub fn requeue_unfinished(batch: &[BatchEntry], ctx: &SchedCtx<'_>, running: &mut VecDeque<ReqId>) {
    for e in batch {
        if !ctx.req(e.request).done_here() {
            running.push_back(e.request);
        }
    }
}

#[cfg(test)]
pub(crate) mod testkit;

#[cfg(test)]
mod knob_tests {
    use super::{SchedulerConfig, SCHEDULERS};

    #[test]
    fn a_knob_the_chosen_scheduler_ignores_is_named() {
        type Set = fn(&mut SchedulerConfig);
        let knobs: [(&str, Set, &[&str]); 10] = [
            (
                "batch_size_cap",
                |c| c.batch_size_cap = 7,
                &["vllm", "orca", "faster_transformer", "sarathi", "lightllm"],
            ),
            ("chunk_size", |c| c.chunk_size = 7, &["sarathi"]),
            (
                "max_tokens_in_batch",
                |c| c.max_tokens_in_batch = 7,
                &["vllm", "lightllm"],
            ),
            (
                "max_waiting_iters",
                |c| c.max_waiting_iters = 7,
                &["lightllm"],
            ),
            (
                "watermark_blocks_fraction",
                |c| c.watermark_blocks_fraction = 0.5,
                &["vllm", "sarathi"],
            ),
            (
                "vllm_v1.max_num_batched_tokens",
                |c| c.vllm_v1.max_num_batched_tokens = Some(7),
                &["vllm_v1"],
            ),
            (
                "vllm_v1.max_num_seqs",
                |c| c.vllm_v1.max_num_seqs = 7,
                &["vllm_v1"],
            ),
            (
                "vllm_v1.long_prefill_token_threshold",
                |c| c.vllm_v1.long_prefill_token_threshold = 7,
                &["vllm_v1"],
            ),
            (
                "vllm_v1.enable_chunked_prefill",
                |c| c.vllm_v1.enable_chunked_prefill = false,
                &["vllm_v1"],
            ),
            (
                "vllm_v1.max_model_len",
                |c| c.vllm_v1.max_model_len = Some(7),
                &["vllm_v1"],
            ),
        ];
        for entry in SCHEDULERS {
            let base = SchedulerConfig {
                name: entry.name.into(),
                ..Default::default()
            };
            assert_eq!(base.ignored_knob(), None, "{}: defaults", entry.name);
            for (key, set, users) in &knobs {
                let mut c = base.clone();
                set(&mut c);
                // the memory knobs apply to every policy
                c.num_blocks = Some(9);
                c.block_size = 8;
                c.vllm_v1.gpu_memory_utilization = Some(0.5);
                let got = c.ignored_knob();
                if users.contains(&entry.name) {
                    assert_eq!(got, None, "{} reads {key}", entry.name);
                } else {
                    let (k, why) = got.unwrap_or_else(|| panic!("{} ignores {key}", entry.name));
                    assert_eq!(k, format!("scheduler.{key}"));
                    assert!(
                        why.starts_with(&format!("the {} scheduler does not use it", entry.name)),
                        "{why}"
                    );
                }
            }
        }
        let c = SchedulerConfig {
            batch_size_cap: 8,
            ..Default::default()
        };
        assert_eq!(
            c.ignored_knob().unwrap().1,
            "the vllm_v1 scheduler does not use it (only vllm, orca, faster_transformer, sarathi and \
             lightllm do), so it would be ignored; drop --batch-size-cap (or the key), or choose a \
             scheduler that uses it; vllm_v1 caps its running requests with --max-num-seqs"
        );
    }
}
