//! Disaggregated serving in the engine (docs/design.md §11): a prefill pool and a decode pool,
//! and the KV-cache transfer between them.
//!
//! Replicas `0 .. P` are the prefill pool (the engine's router chooses among them at arrival),
//! `P .. P + D` the decode pool (its own router chooses when the request is handed off). A request
//! whose prefill finishes on a prefill replica (its first token comes from there) leaves that
//! replica's policy ([`crate::request::Request::leaving`]) but keeps its KV blocks there; it waits
//! in its decode replica's FIFO of pending transfers until that replica has the blocks for its
//! prompt and a running slot; the transfer then starts (decode blocks allocated) and ends per
//! [`TransferModel::end_ns`]; at its end the prefill replica frees its blocks and the decode
//! replica's policy takes the request ([`crate::scheduler::ReplicaScheduler::add_prefilled`]).
//! In `layerwise` mode the handoff (routing, and the transfer's start when memory allows) happens
//! when the batch that completes the prefill is formed.

use std::collections::VecDeque;
use std::sync::Arc;

use predictor::ExecutionModel;

use super::event::EventKind;
use super::replica::ReplicaState;
use super::transfer::{TransferMode, TransferModel};
use super::Engine;
use crate::error::SimError;
use crate::kv::KvCache;
use crate::request::ReqId;
use crate::router::{KvAwareWeights, Router, RouterKind};
use crate::scheduler::{BatchEntry, SchedCtx, SchedulerEntry, SchedulerParams};

/// One pool's replicas: layout, policy and routing.
pub struct PoolSetup {
    /// Batch times of the pool's layout.
    pub exec: Arc<dyn ExecutionModel>,
    /// Replicas.
    pub replicas: u32,
    /// Pipeline stages per replica.
    pub pp: u32,
    /// The replica policy.
    pub scheduler: &'static SchedulerEntry,
    /// Its parameters (KV blocks included).
    pub scheduler_params: SchedulerParams,
    /// Tokens per KV block.
    pub block_size: u32,
    /// How a replica of the pool is chosen.
    pub router: RouterKind,
}

impl PoolSetup {
    /// The pool's replicas, ready to run.
    pub fn build(&self) -> Vec<ReplicaState> {
        (0..self.replicas)
            .map(|_| {
                ReplicaState::new(
                    (self.scheduler.build)(&self.scheduler_params),
                    KvCache::new(self.scheduler_params.num_blocks, self.block_size)
                        .with_prefix_caching(self.scheduler_params.prefix_caching()),
                    self.pp,
                    self.exec.clone(),
                )
            })
            .collect()
    }

    /// Most requests a replica of the pool runs at once (`max_num_seqs` for vLLM V1, else
    /// `batch_size_cap`).
    pub fn max_running(&self) -> u32 {
        let c = &self.scheduler_params.config;
        if c.name == "vllm_v1" {
            c.vllm_v1.max_num_seqs
        } else {
            c.batch_size_cap
        }
    }
}

/// What the engine needs beyond the prefill pool to serve disaggregated.
pub struct DisaggSetup {
    /// The decode pool.
    pub decode: PoolSetup,
    /// The transfer between the pools.
    pub transfer: TransferModel,
}

/// The state of disaggregated serving.
pub(super) struct Disagg {
    transfer: TransferModel,
    /// First decode replica (= prefill replicas).
    first_decode: u32,
    router: Router,
    max_running: u32,
    /// Per decode replica: requests routed there whose transfer has not started, in order.
    pending: Vec<VecDeque<ReqId>>,
}

impl Disagg {
    /// Adds the decode pool's replicas to `replicas` (the prefill pool's).
    pub(super) fn new(
        setup: &DisaggSetup,
        replicas: &mut Vec<ReplicaState>,
        seed: u64,
        weights: KvAwareWeights,
    ) -> Self {
        let first_decode = replicas.len() as u32;
        replicas.extend(setup.decode.build());
        Disagg {
            transfer: setup.transfer,
            first_decode,
            // a seed of its own, so the prefill router's random draws stay as they are
            router: Router::new(
                setup.decode.router,
                setup.decode.replicas,
                seed ^ 0xdeca_de00,
            )
            .with_weights(weights),
            max_running: setup.decode.max_running().max(1),
            pending: (0..setup.decode.replicas)
                .map(|_| VecDeque::new())
                .collect(),
        }
    }
}

impl Engine {
    /// Layerwise mode: a batch just formed on replica `r`; the requests whose prefill it completes
    /// are handed off now (routed, and their transfer started when decode memory allows).
    pub(super) fn after_batch_formed(
        &mut self,
        r: u32,
        entries: &[BatchEntry],
    ) -> Result<(), SimError> {
        let Some(d) = &self.disagg else {
            return Ok(());
        };
        if d.transfer.mode != TransferMode::Layerwise || r >= d.first_decode {
            return Ok(());
        }
        for e in entries {
            let q = &self.requests[e.request];
            // the prefill's last chunk of a request that decodes afterwards
            if q.handoff_pending
                && !q.prefill_complete
                && e.tokens == q.remaining_prefill_tokens()
                && q.current_prefill_tokens + 1 < q.total_tokens()
            {
                let dr = self.route_to_decode(e.request);
                self.start_transfers(dr)?;
            }
        }
        Ok(())
    }

    /// A batch ended on replica `r`: prefills that ended on a prefill replica are handed off;
    /// a decode replica that may have freed blocks starts the transfers waiting for it.
    pub(super) fn after_batch_end(
        &mut self,
        r: u32,
        entries: &[BatchEntry],
    ) -> Result<(), SimError> {
        let Some(d) = &self.disagg else {
            return Ok(());
        };
        let first_decode = d.first_decode;
        if r >= first_decode {
            return self.start_transfers(r);
        }
        let now = self.now_ns;
        for e in entries {
            let q = &self.requests[e.request];
            if !q.leaving {
                continue;
            }
            let bytes = q.kv_transfer_bytes;
            match (q.decode_replica, q.kv_transfer_start_ns) {
                // after_prefill: route now
                (None, _) => {
                    let dr = self.route_to_decode(e.request);
                    self.start_transfers(dr)?;
                }
                // layerwise, transfer already under way: its end is known now
                (Some(_), Some(start)) => {
                    let end = self.transfer_model().end_ns(start, now, bytes);
                    self.events
                        .push(end, EventKind::TransferEnd { request: e.request });
                }
                // layerwise, still waiting for decode memory
                (Some(_), None) => {}
            }
        }
        Ok(())
    }

    fn transfer_model(&self) -> TransferModel {
        self.disagg.as_ref().expect("disaggregated").transfer
    }

    /// Chooses the decode replica of request `id` and queues it there; returns the replica.
    fn route_to_decode(&mut self, id: ReqId) -> u32 {
        let d = self.disagg.as_mut().expect("disaggregated");
        let first = d.first_decode as usize;
        let dr = d.first_decode
            + d.router
                .route_request(&self.requests[id], &self.replicas[first..]);
        d.pending[dr as usize - first].push_back(id);
        self.replicas[dr as usize].outstanding += 1;
        self.requests[id].decode_replica = Some(dr);
        dr
    }

    /// Starts the transfers waiting for decode replica `dr`, in order, while it has the blocks and
    /// a running slot for the next one.
    fn start_transfers(&mut self, dr: u32) -> Result<(), SimError> {
        let now = self.now_ns;
        let d = self.disagg.as_mut().expect("disaggregated");
        let slot = (dr - d.first_decode) as usize;
        let transfer = d.transfer;
        while let Some(&id) = d.pending[slot].front() {
            let admitted = self.replicas[dr as usize].outstanding - d.pending[slot].len() as u32;
            let rep = &mut self.replicas[dr as usize];
            let q = &mut self.requests[id];
            let blocks = rep.kv.blocks_for(q.current_prefill_tokens);
            if admitted >= d.max_running || !rep.kv.can_allocate(u64::from(blocks)) {
                break;
            }
            d.pending[slot].pop_front();
            rep.account_kv(now);
            // the request's blocks become the decode replica's; the prefill replica's are
            // remembered until the transfer ends
            q.source_kv_blocks = std::mem::take(&mut q.kv_blocks);
            rep.kv.allocate(q, blocks)?;
            q.kv_transfer_start_ns = Some(now);
            q.kv_transfer_bytes = transfer.bytes(q.current_prefill_tokens);
            if q.prefill_complete {
                let prefill_end = q
                    .first_token_at_ns
                    .expect("a finished prefill's first token");
                let end = transfer.end_ns(now, prefill_end, q.kv_transfer_bytes);
                self.events
                    .push(end, EventKind::TransferEnd { request: id });
            }
        }
        Ok(())
    }

    /// The KV cache of request `id` has arrived: the prefill replica frees its blocks, the decode
    /// replica's policy takes the request.
    pub(super) fn on_transfer_end(&mut self, id: ReqId) -> Result<(), SimError> {
        let now = self.now_ns;
        let q = &mut self.requests[id];
        let (p, dr) = (q.replica, q.decode_replica.expect("routed"));
        let src = &mut self.replicas[p as usize];
        src.account_kv(now);
        let decode_blocks = std::mem::replace(&mut q.kv_blocks, q.source_kv_blocks);
        src.kv.free(q);
        q.kv_blocks = decode_blocks;
        q.source_kv_blocks = 0;
        q.leaving = false;
        q.handoff_pending = false;
        q.kv_transfer_end_ns = Some(now);
        src.outstanding -= 1;
        let rep = &mut self.replicas[dr as usize];
        let mut ctx = SchedCtx {
            now_ns: now,
            requests: &mut self.requests,
            kv: &mut rep.kv,
        };
        rep.scheduler
            .add_prefilled(id, &mut ctx)
            .map_err(|why| SimError::Internal(format!("decode replica {dr}: {why}")))?;
        self.schedule_soon(dr);
        self.schedule_soon(p);
        Ok(())
    }
}
