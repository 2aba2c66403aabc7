//! A small harness driving one policy by hand, for unit tests.

use super::{find, BatchEntry, ReplicaScheduler, SchedCtx, SchedulerConfig, SchedulerParams};
use crate::kv::KvCache;
use crate::request::{ReqId, Request, RequestTable};
use crate::workload::RequestSpec;

/// One policy with its own request table and KV cache.
pub struct Harness {
    pub sched: Box<dyn ReplicaScheduler>,
    pub reqs: RequestTable,
    pub kv: KvCache,
    pub now_ns: u64,
    inflight: std::collections::VecDeque<Vec<BatchEntry>>,
}

impl Harness {
    /// Policy `name` with `num_blocks` blocks (block size 16 unless the policy uses token blocks),
    /// PP 1, max request length 4096, after `tweak` on the default knobs.
    pub fn new(name: &str, num_blocks: u64, tweak: impl FnOnce(&mut SchedulerConfig)) -> Self {
        Self::with_pp(name, num_blocks, 1, tweak)
    }

    /// As [`Harness::new`] with `pp` pipeline stages.
    pub fn with_pp(
        name: &str,
        num_blocks: u64,
        pp: u32,
        tweak: impl FnOnce(&mut SchedulerConfig),
    ) -> Self {
        let mut config = SchedulerConfig {
            name: name.into(),
            ..Default::default()
        };
        tweak(&mut config);
        let entry = find(name).unwrap();
        let block_size = if entry.token_blocks {
            1
        } else {
            config.block_size
        };
        let params = SchedulerParams {
            config,
            pp,
            num_blocks,
            max_blocks_per_request: 4096u32.div_ceil(block_size),
        };
        Harness {
            sched: (entry.build)(&params),
            reqs: RequestTable::new(),
            kv: KvCache::new(num_blocks, block_size).with_prefix_caching(params.prefix_caching()),
            now_ns: 0,
            inflight: Default::default(),
        }
    }

    /// Adds a request of `p` prompt and `d` output tokens; returns its id.
    pub fn add(&mut self, p: u32, d: u32) -> ReqId {
        self.add_spec(&RequestSpec::simple(0, p, d))
    }

    /// Adds the request `spec` (its content matters with prefix caching); returns its id.
    pub fn add_spec(&mut self, spec: &RequestSpec) -> ReqId {
        let id = self.reqs.len();
        self.reqs.push(Request::new(id, 0, spec));
        let mut ctx = SchedCtx {
            now_ns: self.now_ns,
            requests: &mut self.reqs,
            kv: &mut self.kv,
        };
        self.sched.add_request(id, &mut ctx);
        id
    }

    /// The next batch as (request, tokens, is_prefill).
    pub fn next(&mut self) -> Vec<(ReqId, u32, bool)> {
        let mut batch = Vec::new();
        let mut ctx = SchedCtx {
            now_ns: self.now_ns,
            requests: &mut self.reqs,
            kv: &mut self.kv,
        };
        self.sched.next_batch(&mut ctx, &mut batch).unwrap();
        for e in &batch {
            let r = &mut self.reqs[e.request];
            r.in_flight = true;
            r.on_schedule(self.now_ns);
        }
        self.inflight.push_back(batch.clone());
        batch
            .iter()
            .map(|e| (e.request, e.tokens, e.is_prefill))
            .collect()
    }

    /// Ends the oldest batch in flight (the argument is only a reminder of which).
    pub fn end(&mut self, _batch: &[(ReqId, u32, bool)]) {
        self.now_ns += 1;
        let batch = self.inflight.pop_front().expect("a batch in flight");
        for e in &batch {
            let r = &mut self.reqs[e.request];
            r.in_flight = false;
            let out = r.on_batch_end(self.now_ns, e.tokens, 1);
            if out.completed {
                self.kv.free(r);
            }
        }
        let mut ctx = SchedCtx {
            now_ns: self.now_ns,
            requests: &mut self.reqs,
            kv: &mut self.kv,
        };
        self.sched.on_batch_end(&batch, &mut ctx);
    }

    /// Request `id`.
    pub fn req(&self, id: ReqId) -> &Request {
        &self.reqs[id]
    }
}
