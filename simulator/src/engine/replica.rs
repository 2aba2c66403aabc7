//! Per-replica engine state: the policy, the KV cache, the pipeline stages and the counters behind
//! the per-replica metrics.

use std::collections::VecDeque;
use std::sync::Arc;

use predictor::ExecutionModel;

use crate::kv::KvCache;
use crate::router::ReplicaView;
use crate::scheduler::ReplicaScheduler;

/// One pipeline stage: a single server with a FIFO of batches.
#[derive(Debug, Default)]
pub struct Stage {
    /// Batches waiting (slots in the engine's batch table).
    pub queue: VecDeque<u32>,
    /// The batch being executed.
    pub busy: Option<u32>,
    /// Time spent executing, ns.
    pub busy_ns: u64,
}

/// One replica.
pub struct ReplicaState {
    /// Batch times of this replica's layout (one per pool under disaggregation).
    pub exec: Arc<dyn ExecutionModel>,
    /// The policy.
    pub scheduler: Box<dyn ReplicaScheduler>,
    /// The KV cache.
    pub kv: KvCache,
    /// The pipeline stages.
    pub stages: Vec<Stage>,
    /// Batches formed and not yet through the last stage.
    pub in_flight: u32,
    /// Most batches ever in flight at once.
    pub max_in_flight: u32,
    /// Requests routed here and not finished.
    pub outstanding: u32,
    /// Requests routed here in all.
    pub requests: u64,
    /// A schedule event is pending at the current time.
    pub schedule_pending: bool,
    /// Requests that arrived during the current step under asynchronous scheduling, not yet
    /// handed to the policy.
    pub inbox: Vec<crate::request::ReqId>,
    /// Σ blocks × ns of KV occupancy.
    pub kv_area: u128,
    /// Time up to which `kv_area` is accounted.
    pub kv_accounted_ns: u64,
    /// Batches finished (last stage).
    pub batches: u64,
    /// Model FLOPs executed.
    pub flops: f64,
    /// Restarts (= preemptions) of requests on this replica.
    pub restarts: u64,
    /// Time-series interval counters: requests completed.
    pub ts_completed: u64,
    /// Time-series interval counters: batches finished.
    pub ts_batches: u64,
    /// Time-series interval counters: stage-0 busy time, ns.
    pub ts_busy_ns: u64,
    /// When stage 0 started its current batch.
    pub stage0_since_ns: Option<u64>,
    /// A decode run waiting for the replica's schedule event to start its next step (the slot
    /// of its batch).
    pub parked_run: Option<u32>,
}

impl ReplicaState {
    /// A replica with `pp` stages whose batches take the times of `exec`.
    pub fn new(
        scheduler: Box<dyn ReplicaScheduler>,
        kv: KvCache,
        pp: u32,
        exec: Arc<dyn ExecutionModel>,
    ) -> Self {
        ReplicaState {
            exec,
            scheduler,
            kv,
            stages: (0..pp).map(|_| Stage::default()).collect(),
            in_flight: 0,
            max_in_flight: 0,
            outstanding: 0,
            requests: 0,
            schedule_pending: false,
            inbox: Vec::new(),
            kv_area: 0,
            kv_accounted_ns: 0,
            batches: 0,
            flops: 0.0,
            restarts: 0,
            ts_completed: 0,
            ts_batches: 0,
            ts_busy_ns: 0,
            stage0_since_ns: None,
            parked_run: None,
        }
    }

    /// Pipeline stages.
    pub fn pp(&self) -> u32 {
        self.stages.len() as u32
    }

    /// Accounts KV occupancy up to `now_ns`.
    pub fn account_kv(&mut self, now_ns: u64) {
        self.kv_area += self.kv.allocated() as u128 * (now_ns - self.kv_accounted_ns) as u128;
        self.kv_accounted_ns = now_ns;
    }
}

/// The router's view of the replicas: unfinished requests, KV blocks in use and prefix-cache
/// queries, all reads.
impl ReplicaView for [ReplicaState] {
    fn num_replicas(&self) -> u32 {
        self.len() as u32
    }
    fn outstanding(&self, replica: u32) -> u32 {
        self[replica as usize].outstanding
    }
    fn kv_blocks(&self, replica: u32) -> (u64, u64) {
        let kv = &self[replica as usize].kv;
        (kv.allocated(), kv.num_blocks())
    }
    fn prefix_block_size(&self) -> Option<u32> {
        let kv = &self.first()?.kv;
        kv.prefix_cache().map(|_| kv.block_size())
    }
    fn cached_prefix_blocks(&self, replica: u32, hashes: &[u64]) -> u32 {
        self[replica as usize]
            .kv
            .prefix_cache()
            .map_or(0, |p| p.cached_prefix_blocks(hashes))
    }
}
