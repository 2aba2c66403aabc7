//! Command-line flags of `simulator run`, grouped by concern. Every flag is optional and overrides
//! the value from `--config` (or the default scenario).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use predictor::BackendChoice;

use simulator::bench::{GoodputMetric, Percentiles};
use simulator::config::SimConfig;
use simulator::router::RouterKind;
use simulator::workload::WorkloadArgs;

/// Backend choice on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Profiled when a profile of the model and device exists, else the engine model.
    Auto,
    /// The engine model of vLLM V1 with calibrated coefficients (--calibration).
    Engine,
    /// Profiled (an error without a profile).
    Profiled,
    /// The roofline.
    Roofline,
    /// Prediction tables (--tables).
    Tables,
}

/// `simulator run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Configuration file (TOML, as written to config.toml); flags override it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Seed of every random choice [default: 42]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop at this simulated time, seconds [default: run until every request finished]
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,
    /// Form every batch through the scheduling policy, without decode runs: the same outputs,
    /// more slowly (a check of the shortcut; docs/performance.md)
    #[arg(long)]
    pub step_by_step: bool,
    /// Threads for the run: replicas are split among them, with the same output files for every
    /// count (docs/performance.md, "Parallel runs"); runs that cannot be split use one [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub replica: ReplicaArgs,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    #[command(flatten, next_help_heading = "Workload")]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub predictor: PredictorArgs,
    #[command(flatten)]
    pub slo: SloArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Cluster flags.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// Number of replicas [default: 1]
    #[arg(long)]
    pub num_replicas: Option<u32>,
    /// Routing of requests to replicas [default: round_robin]
    #[arg(long, value_enum)]
    pub router: Option<RouterKind>,
    /// kv_aware router: cost of prefilling a whole prompt, paid in proportion to the share of its blocks a replica has not cached (≥ 0) [default: 16]
    #[arg(long, value_name = "W")]
    pub kv_overlap_weight: Option<f64>,
    /// kv_aware router: cost of each unfinished request on a replica (≥ 0) [default: 1]
    #[arg(long, value_name = "W")]
    pub kv_load_weight: Option<f64>,
}

impl ClusterArgs {
    /// The `kv_aware` weight flags given with another router are an error (they would do
    /// nothing); the message names the flag and the fix.
    pub fn check_router_flags(&self, router: RouterKind) -> anyhow::Result<()> {
        if router == RouterKind::KvAware {
            return Ok(());
        }
        for (flag, given) in [
            ("--kv-overlap-weight", self.kv_overlap_weight.is_some()),
            ("--kv-load-weight", self.kv_load_weight.is_some()),
        ] {
            if given {
                anyhow::bail!(
                    "{flag} applies only to the kv_aware router; add --router kv_aware or drop {flag}"
                );
            }
        }
        Ok(())
    }
}

/// Replica flags.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Replica")]
pub struct ReplicaArgs {
    /// Model: catalog name (e.g. meta-llama/Llama-2-7b-hf or Llama-2-7b-hf) or a HF config.json [default: meta-llama/Meta-Llama-3-8B]
    #[arg(long)]
    pub model: Option<String>,
    /// GPU: a100, a40, b200, h100, h200, l40s [default: h100]
    #[arg(long)]
    pub device: Option<String>,
    /// Node type (e.g. a100_pairwise_nvlink) [default: the device's DGX/HGX node]
    #[arg(long)]
    pub node: Option<String>,
    /// Tensor-parallel degree [default: 1]
    #[arg(long)]
    pub tp: Option<u32>,
    /// Pipeline stages [default: 1]
    #[arg(long)]
    pub pp: Option<u32>,
    /// Expert-parallel degree of MoE layers, dividing --tp (vLLM: --enable-expert-parallel) [default: 1]
    #[arg(long)]
    pub ep: Option<u32>,
    /// Activation and 16-bit weight type, as vLLM's --dtype [default: auto]
    #[arg(long, value_enum)]
    pub dtype: Option<predictor::precision::DType>,
    /// Weight quantization, as vLLM's --quantization (fp8: W8A8 on GPUs with FP8 tensor cores, weight-only elsewhere) [default: auto, as the checkpoint is published]
    #[arg(long, value_enum)]
    pub quantization: Option<predictor::precision::Quantization>,
    /// KV-cache element type, as vLLM's --kv-cache-dtype [default: auto]
    #[arg(long, value_enum)]
    pub kv_cache_dtype: Option<predictor::precision::KvCacheDType>,
    /// Fraction of GPU memory kept free of weights and KV cache [default: 0.1]
    #[arg(long)]
    pub memory_margin: Option<f64>,
}

/// Scheduler flags.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Scheduler")]
pub struct SchedulerArgs {
    /// Replica scheduler: vllm, orca, faster_transformer, sarathi, vllm_v1, lightllm [default: sarathi]
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Most requests admitted on a replica (and per batch) [default: 128]
    #[arg(long)]
    pub batch_size_cap: Option<u32>,
    /// Tokens per KV block (lightllm always uses 1) [default: 16]
    #[arg(long)]
    pub block_size: Option<u32>,
    /// Fraction of KV blocks kept free when admitting (vllm, sarathi) [default: 0.01]
    #[arg(long)]
    pub watermark_blocks_fraction: Option<f64>,
    /// KV blocks per replica [default: from the memory planner]
    #[arg(long)]
    pub num_blocks: Option<u64>,
    /// Token cap per batch (vllm, lightllm) [default: 4096]
    #[arg(long)]
    pub max_tokens_in_batch: Option<u32>,
    /// Token budget per batch (sarathi) [default: 512]
    #[arg(long)]
    pub chunk_size: Option<u32>,
    /// Decode iterations between admission attempts (lightllm) [default: 10]
    #[arg(long)]
    pub max_waiting_iters: Option<u32>,
    /// vllm_v1 and prefix-caching flags.
    #[command(flatten)]
    pub vllm_v1: crate::cli_v1::VllmV1Args,
}

/// Predictor flags.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Predictor")]
pub struct PredictorArgs {
    /// Execution-time backend [default: auto]
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Profile directory in Vidur's layout (repeatable; searched in order) [default: none]
    #[arg(long, value_name = "DIR")]
    pub profiles: Vec<PathBuf>,
    /// Prediction tables directory (with --backend tables)
    #[arg(long, value_name = "DIR")]
    pub tables: Option<PathBuf>,
    /// Cache directory for fitted models [default: no cache]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Engine-model calibration: a shipped engine version (vllm-0.15.1) or a calibration .toml from simulator calibrate [default: vllm-0.15.1]
    #[arg(long, value_name = "NAME|FILE.toml")]
    pub calibration: Option<String>,
    /// How requests are sampled (engine model): auto = the model's generation_config.json defaults, as vLLM applies them; plain = no top-p/top-k; filtered = top-p or top-k on every request [default: auto]
    #[arg(long, value_enum)]
    pub sampling: Option<predictor::exec::engine::SamplingChoice>,
}

/// SLO flags.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "SLOs (goodput)")]
pub struct SloArgs {
    /// Largest time to first token, s
    #[arg(long, value_name = "SECONDS")]
    pub slo_ttft: Option<f64>,
    /// Largest time per output token, s
    #[arg(long, value_name = "SECONDS")]
    pub slo_tpot: Option<f64>,
    /// Largest end-to-end latency, s
    #[arg(long, value_name = "SECONDS")]
    pub slo_e2e: Option<f64>,
    /// The same SLOs in vLLM's syntax: KEY:MILLISECONDS pairs, KEY one of ttft, tpot, e2el (e.g. --goodput ttft:500 tpot:50)
    #[arg(
        long,
        value_name = "KEY:MS",
        num_args = 1..,
        value_delimiter = ',',
        value_parser = simulator::bench::parse_goodput_pair,
        conflicts_with_all = ["slo_ttft", "slo_tpot", "slo_e2e"]
    )]
    pub goodput: Vec<(GoodputMetric, f64)>,
}

/// Output flags.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output directory [default: runs/<UTC date-time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not write batches.csv (one row per batch and stage; large for long runs)
    #[arg(long)]
    pub no_batches: bool,
    /// Do not write trace.json
    #[arg(long)]
    pub no_trace: bool,
    /// Write batches.csv even above 20,000 requests, where it is skipped unless asked for
    #[arg(long, conflicts_with = "no_batches")]
    pub write_batches: bool,
    /// Write trace.json even above 20,000 requests, where it is skipped unless asked for
    #[arg(long, conflicts_with = "no_trace")]
    pub write_trace: bool,
    /// Do not write the plots and report.html
    #[arg(long)]
    pub no_report: bool,
    /// Sampling interval of timeseries.csv, simulated seconds [default: 1]
    #[arg(long, value_name = "SECONDS")]
    pub timeseries_interval: Option<f64>,
    /// Percentiles reported in bench.json and by --json, comma-separated (vLLM's --metric-percentiles) [default: 99]
    #[arg(long, value_name = "P,...", value_parser = simulator::bench::Percentiles::parse)]
    pub metric_percentiles: Option<Percentiles>,
    /// Print the run's result in the JSON keys of `vllm bench serve --save-result` (bench.json) instead of the summary
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no summary
    #[arg(long, short)]
    pub quiet: bool,
}

fn set<T: Clone>(dst: &mut T, v: &Option<T>) {
    if let Some(v) = v {
        *dst = v.clone();
    }
}

impl RunArgs {
    /// Applies the flags given to `cfg`. A workload flag that has no effect on the chosen
    /// generators (e.g. `--cv` with Poisson arrivals) is an error.
    pub fn apply_to(&self, cfg: &mut SimConfig) -> Result<(), simulator::workload::WorkloadError> {
        set(&mut cfg.seed, &self.seed);
        if self.time_limit.is_some() {
            cfg.time_limit_s = self.time_limit;
        }
        set(&mut cfg.cluster.num_replicas, &self.cluster.num_replicas);
        set(&mut cfg.cluster.router, &self.cluster.router);
        set(
            &mut cfg.cluster.kv_aware.overlap_weight,
            &self.cluster.kv_overlap_weight,
        );
        set(
            &mut cfg.cluster.kv_aware.load_weight,
            &self.cluster.kv_load_weight,
        );
        let r = &self.replica;
        set(&mut cfg.replica.model, &r.model);
        set(&mut cfg.replica.device, &r.device);
        if r.node.is_some() {
            cfg.replica.node = r.node.clone();
        }
        set(&mut cfg.replica.tp, &r.tp);
        set(&mut cfg.replica.pp, &r.pp);
        set(&mut cfg.replica.ep, &r.ep);
        set(&mut cfg.replica.dtype, &r.dtype);
        set(&mut cfg.replica.quantization, &r.quantization);
        set(&mut cfg.replica.kv_cache_dtype, &r.kv_cache_dtype);
        set(&mut cfg.replica.memory_margin_fraction, &r.memory_margin);
        let s = &self.scheduler;
        set(&mut cfg.scheduler.name, &s.scheduler);
        set(&mut cfg.scheduler.batch_size_cap, &s.batch_size_cap);
        set(&mut cfg.scheduler.block_size, &s.block_size);
        set(
            &mut cfg.scheduler.watermark_blocks_fraction,
            &s.watermark_blocks_fraction,
        );
        if s.num_blocks.is_some() {
            cfg.scheduler.num_blocks = s.num_blocks;
        }
        set(
            &mut cfg.scheduler.max_tokens_in_batch,
            &s.max_tokens_in_batch,
        );
        set(&mut cfg.scheduler.chunk_size, &s.chunk_size);
        set(&mut cfg.scheduler.max_waiting_iters, &s.max_waiting_iters);
        s.vllm_v1.apply_to(&mut cfg.scheduler);
        self.workload.try_apply_to(&mut cfg.workload)?;
        let p = &self.predictor;
        if let Some(b) = p.backend {
            cfg.predictor.backend = match b {
                BackendArg::Auto => BackendChoice::Auto,
                BackendArg::Engine => BackendChoice::Engine,
                BackendArg::Profiled => BackendChoice::Profiled,
                BackendArg::Roofline => BackendChoice::Roofline,
                BackendArg::Tables => BackendChoice::Tables,
            };
        }
        if !p.profiles.is_empty() {
            cfg.predictor.profiles = p.profiles.clone();
        }
        if p.tables.is_some() {
            cfg.predictor.tables = p.tables.clone();
        }
        if p.cache_dir.is_some() {
            cfg.predictor.cache_dir = p.cache_dir.clone();
        }
        set(&mut cfg.predictor.calibration, &p.calibration);
        if let Some(s) = p.sampling {
            cfg.predictor.sampling = s;
        }
        if self.slo.slo_ttft.is_some() {
            cfg.slo.ttft_s = self.slo.slo_ttft;
        }
        if self.slo.slo_tpot.is_some() {
            cfg.slo.tpot_s = self.slo.slo_tpot;
        }
        if self.slo.slo_e2e.is_some() {
            cfg.slo.e2e_s = self.slo.slo_e2e;
        }
        simulator::bench::apply_goodput(&self.slo.goodput, &mut cfg.slo);
        if let Some(p) = &self.output.metric_percentiles {
            cfg.output.metric_percentiles = p.0.clone();
        }
        if self.output.no_batches {
            cfg.output.batches = false;
        }
        if self.output.no_trace {
            cfg.output.trace = false;
        }
        if self.output.write_batches {
            cfg.output.batches = true;
        }
        if self.output.write_trace {
            cfg.output.trace = true;
        }
        if self.output.no_report {
            cfg.output.report = false;
        }
        set(
            &mut cfg.output.timeseries_interval_s,
            &self.output.timeseries_interval,
        );
        Ok(())
    }
}
