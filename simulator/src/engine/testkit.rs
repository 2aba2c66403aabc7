//! Running the engine on hand-made request lists with a constant-time execution model (tests).

use std::sync::Arc;

use predictor::{BackendInfo, BackendKind, BatchShape, ExecutionModel, Op, StageTime};

use super::{Engine, EngineOutcome, EngineSetup, PoolSetup};
use crate::config::SloConfig;
use crate::metrics::FlopModel;
use crate::router::{KvAwareWeights, RouterKind};
use crate::scheduler::{find, SchedulerConfig, SchedulerParams};
use crate::workload::RequestSpec;

/// Every batch takes `base_ms` on every stage, plus `token_ms` per token it processes and
/// `kv_ms` per context token its decodes read (both 0: the same time for every batch), plus
/// `stage_skew_ms` times the stage's index (0: every stage takes the same time).
pub struct ConstExec {
    /// Time of every batch, ms.
    pub base_ms: f64,
    /// Time per token processed, ms.
    pub token_ms: f64,
    /// Time per context token of the decodes, ms.
    pub kv_ms: f64,
    /// Time added per pipeline stage index, ms (later stages slower, or faster when negative).
    pub stage_skew_ms: f64,
}

impl ExecutionModel for ConstExec {
    fn stage_time(&self, b: &BatchShape, stage: u32) -> StageTime {
        let mut t = StageTime::default();
        let ms = self.base_ms
            + self.token_ms * b.total_tokens() as f64
            + self.kv_ms * b.decode_kv_sum as f64
            + self.stage_skew_ms * f64::from(stage);
        t.ops_ms.set(Op::CpuOverhead, ms);
        t
    }
    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Roofline,
            source: "constant".into(),
            fallbacks: vec![],
        }
    }
    fn out_of_grid_lookups(&self) -> u64 {
        0
    }
}

/// A small cluster for tests.
#[derive(Debug, Clone)]
pub struct TestCluster {
    /// Policy knobs (name included).
    pub scheduler: SchedulerConfig,
    /// Replicas.
    pub replicas: u32,
    /// Stages.
    pub pp: u32,
    /// Router.
    pub router: RouterKind,
    /// Weights of the `kv_aware` router.
    pub router_weights: KvAwareWeights,
    /// KV blocks per replica.
    pub num_blocks: u64,
    /// Longest request, tokens.
    pub max_request_tokens: u32,
    /// Stage time, ms.
    pub stage_ms: f64,
    /// Stage time per token processed, ms (0: every batch takes `stage_ms`).
    pub token_ms: f64,
    /// Stage time per context token of the decodes, ms.
    pub kv_ms: f64,
    /// Stage time added per pipeline stage index, ms.
    pub stage_skew_ms: f64,
    /// Decode runs (the engine's default); off, every step goes through the policy.
    pub decode_runs: bool,
    /// Write the streamed files here.
    pub out_dir: Option<std::path::PathBuf>,
    /// Time-series interval, ms.
    pub timeseries_ms: u64,
    pub time_limit_ns: Option<u64>,
    pub max_timeseries_rows: Option<u64>,
    /// Asynchronous scheduling.
    pub async_scheduling: bool,
    /// Front-end time per request, ns.
    pub frontend_ns: u64,
    /// Disaggregated serving: the replicas above are the prefill pool, this is the decode pool.
    pub disagg: Option<TestDisagg>,
    /// Latency bounds the run stops at when certainly missed.
    pub miss_watch: Option<crate::metrics::MissWatch>,
    /// A policy of the test's own instead of the registered one named by `scheduler`.
    pub entry: Option<&'static crate::scheduler::SchedulerEntry>,
    /// Threads: more than one runs [`super::parallel::run`] (which needs `stage_records` off).
    pub threads: usize,
    /// Keep the stage log, and write `batches.csv` and `trace.json` with `out_dir`.
    pub stage_records: bool,
    /// FLOPs per batch (none by default).
    pub flops: FlopModel,
}

/// The decode pool of a disaggregated test cluster.
#[derive(Debug, Clone)]
pub struct TestDisagg {
    /// Policy knobs.
    pub scheduler: SchedulerConfig,
    /// Replicas.
    pub replicas: u32,
    /// Stages.
    pub pp: u32,
    /// Router.
    pub router: RouterKind,
    /// KV blocks per replica.
    pub num_blocks: u64,
    /// Stage time, ms.
    pub stage_ms: f64,
    /// The KV transfer.
    pub transfer: super::transfer::TransferModel,
}

impl TestDisagg {
    /// One `vllm_v1` decode replica, 10 ms per batch, 1000 blocks; transfers of 1 ms latency and
    /// 1 ms per prompt token (1 MB/token at 1 GB/s), streamed over 4 layers in `mode`.
    pub fn new(mode: super::transfer::TransferMode) -> Self {
        TestDisagg {
            scheduler: SchedulerConfig::default(),
            replicas: 1,
            pp: 1,
            router: RouterKind::RoundRobin,
            num_blocks: 1000,
            stage_ms: 10.0,
            transfer: super::transfer::TransferModel {
                mode,
                bandwidth_bytes_per_s: 1e9,
                latency_ns: 1_000_000,
                kv_bytes_per_token: 1_000_000,
                layers: 4,
            },
        }
    }
}

impl TestCluster {
    /// One replica, one stage, 10 ms per batch, 1000 blocks, requests up to 4096 tokens.
    pub fn new(scheduler: &str) -> Self {
        TestCluster {
            scheduler: SchedulerConfig {
                name: scheduler.into(),
                ..Default::default()
            },
            replicas: 1,
            pp: 1,
            router: RouterKind::RoundRobin,
            router_weights: KvAwareWeights::default(),
            num_blocks: 1000,
            max_request_tokens: 4096,
            stage_ms: 10.0,
            token_ms: 0.0,
            kv_ms: 0.0,
            stage_skew_ms: 0.0,
            decode_runs: true,
            out_dir: None,
            timeseries_ms: 1000,
            time_limit_ns: None,
            max_timeseries_rows: None,
            async_scheduling: false,
            frontend_ns: 0,
            disagg: None,
            miss_watch: None,
            entry: None,
            flops: FlopModel::default(),
            threads: 1,
            stage_records: true,
        }
    }

    /// Runs `specs` (in arrival order).
    pub fn run(&self, specs: Vec<RequestSpec>) -> EngineOutcome {
        self.try_run(specs).unwrap()
    }

    pub fn try_run(
        &self,
        specs: Vec<RequestSpec>,
    ) -> Result<EngineOutcome, crate::error::SimError> {
        self.try_run_with_progress(specs, &mut |_| {})
    }

    /// Runs `specs`, handing the engine's progress reports to `progress`.
    pub fn try_run_with_progress(
        &self,
        specs: Vec<RequestSpec>,
        progress: &mut dyn FnMut(super::Progress),
    ) -> Result<EngineOutcome, crate::error::SimError> {
        let (setup, arrivals) = self.setup(specs);
        if self.threads > 1 {
            let how = super::parallel::ParallelRun {
                threads: self.threads,
                decode_runs: self.decode_runs,
                max_timeseries_rows: self
                    .max_timeseries_rows
                    .unwrap_or(crate::output::MAX_TIMESERIES_ROWS),
            };
            return super::parallel::run(setup, arrivals, how, progress);
        }
        let mut engine = Engine::new(setup, arrivals).with_decode_runs(self.decode_runs);
        if let Some(rows) = self.max_timeseries_rows {
            engine = engine.with_max_timeseries_rows(rows);
        }
        engine.run(progress)
    }

    /// The engine set-up of this cluster serving `specs`, and its arrivals.
    #[allow(clippy::type_complexity)]
    pub fn setup(
        &self,
        specs: Vec<RequestSpec>,
    ) -> (EngineSetup, Box<dyn Iterator<Item = RequestSpec> + Send>) {
        let mut setup = EngineSetup {
            pool: pool(
                &self.scheduler,
                self.replicas,
                self.pp,
                self.router,
                self.num_blocks,
                ConstExec {
                    base_ms: self.stage_ms,
                    token_ms: self.token_ms,
                    kv_ms: self.kv_ms,
                    stage_skew_ms: self.stage_skew_ms,
                },
                self.max_request_tokens,
            ),
            router_weights: self.router_weights,
            async_scheduling: self.async_scheduling,
            frontend_ns: self.frontend_ns,
            stage_ends_ns: Vec::new(),
            seed: 1,
            time_limit_ns: self.time_limit_ns,
            max_request_tokens: self.max_request_tokens,
            flops: self.flops,
            slo: SloConfig::default(),
            timeseries_interval_ns: self.timeseries_ms * 1_000_000,
            sinks: self.out_dir.as_ref().map(|d| {
                let records = self.stage_records;
                crate::output::Sinks::create(d, records, records, self.replicas, self.pp).unwrap()
            }),
            keep_stage_log: self.stage_records,
            keep_requests: true,
            disagg: self.disagg.as_ref().map(|d| super::disagg::DisaggSetup {
                decode: pool(
                    &d.scheduler,
                    d.replicas,
                    d.pp,
                    d.router,
                    d.num_blocks,
                    ConstExec {
                        base_ms: d.stage_ms,
                        token_ms: 0.0,
                        kv_ms: 0.0,
                        stage_skew_ms: 0.0,
                    },
                    self.max_request_tokens,
                ),
                transfer: d.transfer,
            }),
            miss_watch: self.miss_watch.clone(),
        };
        if let Some(e) = self.entry {
            // a token-blocks policy would also need the pool's block size changed
            assert!(!e.token_blocks);
            setup.pool.scheduler = e;
        }
        (setup, Box::new(specs.into_iter()))
    }
}

/// A pool of `replicas` constant-time replicas.
fn pool(
    scheduler: &SchedulerConfig,
    replicas: u32,
    pp: u32,
    router: RouterKind,
    num_blocks: u64,
    exec: ConstExec,
    max_request_tokens: u32,
) -> PoolSetup {
    let entry = find(&scheduler.name).unwrap();
    let block_size = if entry.token_blocks {
        1
    } else {
        scheduler.block_size
    };
    PoolSetup {
        exec: Arc::new(exec),
        replicas,
        pp,
        scheduler: entry,
        scheduler_params: SchedulerParams {
            config: scheduler.clone(),
            pp,
            num_blocks,
            max_blocks_per_request: max_request_tokens.div_ceil(block_size),
        },
        block_size,
        router,
    }
}

/// A simulated-time limit that small test runs never reach (they end within seconds): set on a
/// run whose end is in question, so that a run that never ends stops there and its test fails,
/// instead of growing without bound.
pub const RUNAWAY_LIMIT_NS: u64 = 1_000_000_000_000;

/// `ms` milliseconds in ns.
pub fn ms(ms: u64) -> u64 {
    ms * 1_000_000
}

/// The stage log as (batch, stage, start ms, end ms, prefill tokens, decode tokens).
pub fn stages(o: &EngineOutcome) -> Vec<(u64, u32, u64, u64, u64, u64)> {
    o.stage_log
        .iter()
        .map(|r| {
            (
                r.batch_id,
                r.stage,
                r.start_ns / 1_000_000,
                r.end_ns / 1_000_000,
                r.prefill_tokens,
                r.decode_tokens,
            )
        })
        .collect()
}

/// Each request's (first token ms, completion ms).
pub fn times(o: &EngineOutcome) -> Vec<(u64, u64)> {
    o.requests
        .iter()
        .map(|r| {
            (
                r.first_token_at_ns.unwrap() / 1_000_000,
                r.completed_at_ns.unwrap() / 1_000_000,
            )
        })
        .collect()
}
