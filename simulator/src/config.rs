//! The simulation's configuration: one serde struct with a TOML section per concern. `Default` is
//! the default scenario (Meta-Llama-3-8B on one H100, Sarathi-Serve, the default workload).
//! [`SimConfig::resolve`] checks everything against the catalog and plans memory.

use std::path::PathBuf;

use predictor::exec::engine::calibration::{Calibration, DEFAULT_ENGINE_VERSION};
use predictor::exec::engine::{EngineCoefficients, EngineSettings, SamplingChoice};
use predictor::exec::roofline::RooflineEfficiency;
use predictor::precision::{DType, KvCacheDType, Quantization};
use predictor::{
    BackendChoice, Catalog, DeviceSpec, ExecParams, ExecSetup, ModelSpec, NodeSpec, Parallelism,
    Precision, PrecisionConfig,
};
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::memory::{plan, plan_vllm, MemoryPlan};
use crate::output::MIN_TIMESERIES_INTERVAL_S;
use crate::router::{KvAwareWeights, RouterKind};
use crate::scheduler::{find, SchedulerConfig, SchedulerEntry};
use crate::workload::WorkloadConfig;

/// The whole configuration (`config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random choice (workload, random router).
    pub seed: u64,
    /// Stop at this simulated time, seconds; unset: run until every request finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<f64>,
    /// Replicas and routing.
    pub cluster: ClusterConfig,
    /// One replica: model, GPU and layout.
    pub replica: ReplicaConfig,
    /// Replica scheduler.
    pub scheduler: SchedulerConfig,
    /// Requests.
    pub workload: WorkloadConfig,
    /// Execution-time model.
    pub predictor: PredictorConfig,
    /// Output files.
    pub output: OutputConfig,
    /// Service-level objectives for goodput.
    pub slo: SloConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            time_limit_s: None,
            cluster: ClusterConfig::default(),
            replica: ReplicaConfig::default(),
            scheduler: SchedulerConfig::default(),
            workload: WorkloadConfig::default(),
            predictor: PredictorConfig::default(),
            output: OutputConfig::default(),
            slo: SloConfig::default(),
        }
    }
}

/// Section `[cluster]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Number of replicas.
    pub num_replicas: u32,
    /// Routing policy.
    pub router: RouterKind,
    /// Weights of the `kv_aware` router (`[cluster.kv_aware]`; ignored by the other routers).
    #[serde(default, skip_serializing_if = "is_default")]
    pub kv_aware: KvAwareWeights,
    /// Pools of replicas (`[[cluster.pool]]`): disaggregated prefill and decode; empty: one
    /// colocated pool of `num_replicas` replicas.
    #[serde(rename = "pool", skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<crate::pools::PoolConfig>,
    /// The KV transfer between a prefill and a decode pool.
    #[serde(skip_serializing_if = "is_default")]
    pub kv_transfer: crate::pools::KvTransferConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            num_replicas: 1,
            router: RouterKind::RoundRobin,
            kv_aware: KvAwareWeights::default(),
            pools: Vec::new(),
            kv_transfer: Default::default(),
        }
    }
}

/// Section `[replica]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicaConfig {
    /// Model: catalog name or path of a Hugging Face `config.json`.
    pub model: String,
    /// GPU (catalog name).
    pub device: String,
    /// Node type; unset: the device's default node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// Expert-parallel degree of MoE layers (divides `tp`).
    #[serde(default = "one_u32", skip_serializing_if = "is_one")]
    pub ep: u32,
    /// Activation and unquantized weight type (vLLM's `--dtype`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub dtype: DType,
    /// Weight quantization (vLLM's `--quantization`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub quantization: Quantization,
    /// KV-cache element type (vLLM's `--kv-cache-dtype`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub kv_cache_dtype: KvCacheDType,
    /// Fraction of GPU memory kept free of weights and KV cache (memory planner of the roofline,
    /// profiled and table backends; the engine model plans as vLLM does, from
    /// `scheduler.vllm_v1.gpu_memory_utilization`).
    pub memory_margin_fraction: f64,
}

fn one_u32() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl ReplicaConfig {
    /// The precision choices of the replica.
    pub fn precision(&self) -> PrecisionConfig {
        PrecisionConfig {
            dtype: self.dtype,
            quantization: self.quantization,
            kv_cache_dtype: self.kv_cache_dtype,
        }
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            model: "meta-llama/Meta-Llama-3-8B".into(),
            device: "h100".into(),
            node: None,
            tp: 1,
            pp: 1,
            ep: 1,
            dtype: DType::Auto,
            quantization: Quantization::Auto,
            kv_cache_dtype: KvCacheDType::Auto,
            memory_margin_fraction: 0.1,
        }
    }
}

/// Section `[predictor]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictorConfig {
    /// Backend: auto, profiled, roofline or tables.
    pub backend: BackendChoice,
    /// Profile directories in Vidur's layout, searched in order.
    pub profiles: Vec<PathBuf>,
    /// Prediction tables directory (backend `tables`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<PathBuf>,
    /// Cache of fitted models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// The engine model's calibration: a shipped one by engine name (`vllm-0.15.1`: the file for
    /// the device, or the H100 one transferred) or the path of a calibration TOML file.
    pub calibration: String,
    /// The engine model's coefficients, replacing the calibration's when set. A table must give
    /// every coefficient (a partial one would leave the rest at the uncalibrated priors).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "complete_coefficients"
    )]
    pub coefficients: Option<EngineCoefficients>,
    /// How the requests are sampled (engine model): `auto` (the model's generation defaults, as
    /// vLLM applies them), `plain` (no top-p/top-k) or `filtered` (top-p or top-k on every
    /// request).
    pub sampling: SamplingChoice,
    /// Stage-time formula knobs.
    pub params: ExecParams,
    /// Roofline efficiencies.
    pub roofline: RooflineEfficiency,
}

/// Reads `[predictor.coefficients]`: unknown keys are refused (by the type), and so is a table
/// that leaves any coefficient out.
fn complete_coefficients<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<EngineCoefficients>, D::Error> {
    use serde::de::Error;
    let table = toml::Table::deserialize(d)?;
    let coefficients: EngineCoefficients =
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                let message = e.message();
                D::Error::custom(
                    match predictor::exec::engine::coeffs::renamed_hint(message) {
                        Some(hint) => format!("{message}; {hint}"),
                        None => message.to_string(),
                    },
                )
            })?;
    let missing: Vec<&str> = predictor::exec::engine::coeffs::COEFFICIENTS
        .iter()
        .map(|c| c.name)
        .filter(|name| !table.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(D::Error::custom(format!(
            "[predictor.coefficients] leaves out {}: give every coefficient (copy the [coefficients] section of a calibration file, e.g. data/calibration/vllm-0.15.1/h100.toml), or pick a calibration with --calibration instead",
            missing.join(", ")
        )));
    }
    Ok(Some(coefficients))
}

impl Default for PredictorConfig {
    fn default() -> Self {
        PredictorConfig {
            backend: BackendChoice::Auto,
            profiles: Vec::new(),
            tables: None,
            cache_dir: None,
            calibration: DEFAULT_ENGINE_VERSION.into(),
            coefficients: None,
            sampling: SamplingChoice::Auto,
            params: ExecParams::default(),
            roofline: RooflineEfficiency::default(),
        }
    }
}

/// Section `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Write `batches.csv`.
    pub batches: bool,
    /// Write `trace.json`.
    pub trace: bool,
    /// Sampling interval of `timeseries.csv`, simulated seconds.
    pub timeseries_interval_s: f64,
    /// Write the plots and `report.html` (`simulator::report`).
    pub report: bool,
    /// Percentiles of `bench.json` (vLLM's `--metric-percentiles`), each in [0, 100].
    pub metric_percentiles: Vec<f64>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            batches: true,
            trace: true,
            timeseries_interval_s: 1.0,
            report: true,
            metric_percentiles: vec![99.0],
        }
    }
}

/// Section `[slo]`: a request meets the SLOs when each given bound holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SloConfig {
    /// Largest time to first token, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_s: Option<f64>,
    /// Largest time per output token, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_s: Option<f64>,
    /// Largest end-to-end latency, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_s: Option<f64>,
}

impl SloConfig {
    /// True when any bound is given.
    pub fn any(&self) -> bool {
        self.ttft_s.is_some() || self.tpot_s.is_some() || self.e2e_s.is_some()
    }

    /// Checks that every bound given is a finite number of seconds > 0.
    pub fn validate(&self) -> Result<(), SimError> {
        for (field, v, flag) in [
            ("slo.ttft_s", self.ttft_s, "--slo-ttft"),
            ("slo.tpot_s", self.tpot_s, "--slo-tpot"),
            ("slo.e2e_s", self.e2e_s, "--slo-e2e"),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(invalid(
                        field,
                        format!("{v} is not a finite number of seconds > 0 ({flag}); leave it unset for no bound"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A configuration checked against the catalog, with its memory plan.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The model.
    pub model: ModelSpec,
    /// The GPU.
    pub device: DeviceSpec,
    /// The node.
    pub node: NodeSpec,
    /// TP × PP.
    pub parallelism: Parallelism,
    /// The replica scheduler.
    pub scheduler: &'static SchedulerEntry,
    /// KV blocks and their size.
    pub memory: MemoryPlan,
    /// Longest request of the workload, tokens.
    pub max_request_tokens: u32,
    /// Weight, activation and KV-cache precision.
    pub precision: Precision,
    /// Everything the execution model is built from, with the backend resolved.
    pub exec: ExecSetup,
}

fn invalid(field: &str, why: impl Into<String>) -> SimError {
    SimError::Config {
        field: field.to_string(),
        why: why.into(),
    }
}

impl SimConfig {
    /// Checks every value (catalog names, layout, memory, workload).
    pub fn validate(&self) -> Result<(), SimError> {
        self.resolve(&Catalog::builtin())?;
        // pools: each checked as the cluster it describes
        self.disaggregated()?;
        if !self.cluster.pools.is_empty() {
            self.colocated()?.resolve(&Catalog::builtin())?;
        }
        Ok(())
    }

    /// Checks the values that need no catalog.
    pub fn validate_values(&self) -> Result<(), SimError> {
        if self.cluster.num_replicas == 0 {
            return Err(invalid(
                "cluster.num_replicas",
                "must be at least 1 (--num-replicas)",
            ));
        }
        self.cluster
            .kv_aware
            .validate()
            .map_err(|(key, why)| invalid(&format!("cluster.kv_aware.{key}"), why))?;
        if let Some(t) = self.time_limit_s {
            if !(t.is_finite() && t > 0.0) {
                return Err(invalid(
                    "time_limit_s",
                    format!("{t} is not a positive number of seconds (--time-limit)"),
                ));
            }
            if t < 1e-9 {
                return Err(invalid(
                    "time_limit_s",
                    format!("{t} s is shorter than the simulator's resolution of 1 ns: it would stop before anything happened (--time-limit)"),
                ));
            }
        }
        let s = &self.scheduler;
        find(&s.name).map_err(|e| invalid("scheduler.name", format!("{e} (--scheduler)")))?;
        for (field, v, flag) in [
            (
                "scheduler.batch_size_cap",
                s.batch_size_cap,
                "--batch-size-cap",
            ),
            ("scheduler.block_size", s.block_size, "--block-size"),
            ("scheduler.chunk_size", s.chunk_size, "--chunk-size"),
            (
                "scheduler.max_tokens_in_batch",
                s.max_tokens_in_batch,
                "--max-tokens-in-batch",
            ),
        ] {
            if v == 0 {
                return Err(invalid(
                    field,
                    format!("0 is not allowed: it must be at least 1 ({flag})"),
                ));
            }
        }
        if !(0.0..1.0).contains(&s.watermark_blocks_fraction) {
            return Err(invalid(
                "scheduler.watermark_blocks_fraction",
                "must be in [0, 1) (--watermark-blocks-fraction)",
            ));
        }
        if s.num_blocks == Some(0) {
            return Err(invalid(
                "scheduler.num_blocks",
                "must be at least 1, or unset to plan from memory (--num-blocks)",
            ));
        }
        if !(0.0..1.0).contains(&self.replica.memory_margin_fraction) {
            return Err(invalid(
                "replica.memory_margin_fraction",
                "must be in [0, 1) (--memory-margin)",
            ));
        }
        let interval = self.output.timeseries_interval_s;
        if !(interval.is_finite() && interval >= MIN_TIMESERIES_INTERVAL_S) {
            return Err(invalid(
                "output.timeseries_interval_s",
                format!("{interval} is not a number of seconds ≥ {MIN_TIMESERIES_INTERVAL_S} (--timeseries-interval)"),
            ));
        }
        crate::bench::check_percentiles(&self.output.metric_percentiles).map_err(|why| {
            invalid(
                "output.metric_percentiles",
                format!("{why} (--metric-percentiles)"),
            )
        })?;
        self.slo.validate()?;
        for dir in &self.predictor.profiles {
            if !dir.is_dir() {
                return Err(invalid(
                    "predictor.profiles",
                    format!("{} is not a directory (--profiles); give a profile directory in Vidur's layout (compute/<device>/<org>/<model>/, network/<node>/)", dir.display()),
                ));
            }
        }
        self.predictor
            .params
            .validate()
            .map_err(|(key, why)| invalid(&format!("predictor.params.{key}"), why))?;
        self.predictor
            .roofline
            .validate()
            .map_err(|(key, why)| invalid(&format!("predictor.roofline.{key}"), why))?;
        if let Some(c) = &self.predictor.coefficients {
            c.validate().map_err(|(key, why)| {
                invalid(
                    &format!("predictor.coefficients.{key}"),
                    format!("{why}; give a value in that range"),
                )
            })?;
        }
        self.workload.validate()?;
        // Prefix caching and the vLLM V1 knobs.
        if s.enable_prefix_caching == Some(true)
            && crate::scheduler::prefix_caching_default(&s.name).is_none()
        {
            return Err(invalid(
                "scheduler.enable_prefix_caching",
                format!("the {} scheduler does not support prefix caching; use --scheduler vllm_v1 or sarathi, or --no-enable-prefix-caching", s.name),
            ));
        }
        if s.vllm_v1.async_scheduling == Some(true) && s.name != "vllm_v1" {
            return Err(invalid(
                "scheduler.vllm_v1.async_scheduling",
                format!("asynchronous scheduling is vLLM V1's; the {} scheduler has none: use --scheduler vllm_v1, or drop --async-scheduling", s.name),
            ));
        }
        if let Some((key, why)) = s.ignored_knob() {
            return Err(invalid(&key, why));
        }
        s.vllm_v1
            .validate(self.workload.max_request_tokens())
            .map_err(|(field, why)| invalid(&field, why))?;
        Ok(())
    }

    /// The memory margin in force: `1 − scheduler.vllm_v1.gpu_memory_utilization` when that is set,
    /// else `replica.memory_margin_fraction`.
    pub fn memory_margin_fraction(&self) -> f64 {
        match self.scheduler.vllm_v1.gpu_memory_utilization {
            Some(u) => 1.0 - u,
            None => self.replica.memory_margin_fraction,
        }
    }

    /// Checks the configuration against `catalog` and plans each replica's KV cache.
    pub fn resolve(&self, catalog: &Catalog) -> Result<Resolved, SimError> {
        self.validate_values()?;
        let model = catalog.model(&self.replica.model)?;
        let device = catalog.device(&self.replica.device)?;
        let node = match &self.replica.node {
            Some(n) => catalog.node(n)?,
            None => catalog.default_node_for(&device.name).ok_or_else(|| {
                invalid(
                    "replica.node",
                    format!(
                        "the catalog has no node for device {}; name one with --node",
                        device.name
                    ),
                )
            })?,
        };
        if !node.device.eq_ignore_ascii_case(&device.name) {
            let fitting: Vec<String> = catalog
                .nodes()
                .filter(|n| n.device == device.name)
                .map(|n| n.name.clone())
                .collect();
            return Err(invalid(
                "replica.node",
                format!(
                    "node {} holds {} GPUs, not {}; use --node {} or leave it unset",
                    node.name,
                    node.device,
                    device.name,
                    if fitting.is_empty() {
                        "NAME".to_string()
                    } else {
                        fitting.join(" or --node ")
                    }
                ),
            ));
        }
        let parallelism =
            Parallelism::new(self.replica.tp, self.replica.pp).with_ep(self.replica.ep);
        parallelism.validate(&model, Some(&node))?;
        let precision = Precision::resolve(&model, &device, &self.replica.precision())
            .map_err(|e| invalid("replica.quantization", e.to_string()))?;
        let scheduler = find(&self.scheduler.name).map_err(|e| invalid("scheduler.name", e))?;
        if let Some(max_pp) = scheduler.max_pipeline_stages {
            if parallelism.pp > max_pp {
                return Err(invalid("replica.pp", format!("the {} scheduler supports at most {max_pp} pipeline stage(s); use --pp {max_pp} or another --scheduler", scheduler.name)));
            }
        }
        let block_size = if scheduler.token_blocks {
            1
        } else {
            self.scheduler.block_size
        };
        let max_request_tokens = self.workload.max_request_tokens();
        let mut exec = ExecSetup::new(model.clone(), device.clone(), node.clone(), parallelism);
        exec.params = self.predictor.params;
        exec.roofline = self.predictor.roofline;
        exec.backend = self.predictor.backend.clone();
        exec.profiles_dirs = self.predictor.profiles.clone();
        exec.tables_dir = self.predictor.tables.clone();
        exec.cache_dir = self.predictor.cache_dir.clone();
        exec.precision = precision;
        let v1 = &self.scheduler.vllm_v1;
        exec.engine = EngineSettings {
            max_num_seqs: if self.scheduler.name == "vllm_v1" {
                v1.max_num_seqs
            } else {
                self.scheduler.batch_size_cap
            },
            sampling: self.predictor.sampling,
            ..EngineSettings::default()
        };
        let engine_backend = exec.resolved_backend() == BackendChoice::Engine;
        // Without the engine backend, asynchronous scheduling defaults to off.
        let mut async_default = false;
        if engine_backend {
            let (cal, name) = self.calibration(&device)?;
            exec.engine_coefficients = cal.coefficients;
            exec.calibration = name;
            async_default = cal.engine.async_scheduling;
            if let Some(c) = &self.predictor.coefficients {
                exec.engine_coefficients = *c;
                exec.calibration =
                    "coefficients from the configuration ([predictor.coefficients])".into();
            }
        }
        // Asynchronous scheduling (vllm_v1 only): arrivals wait for the step after next
        // (engine/mod.rs), and the engine model hides the CPU behind the GPU.
        exec.engine.async_scheduling =
            self.scheduler.name == "vllm_v1" && v1.async_scheduling.unwrap_or(async_default);
        let memory = if engine_backend && self.scheduler.num_blocks.is_none() {
            plan_vllm(
                &model,
                &device,
                parallelism,
                &precision,
                &exec.engine_coefficients,
                predictor::exec::engine::memory::MemoryArgs {
                    gpu_memory_utilization: v1.gpu_memory_utilization.unwrap_or(0.9),
                    max_num_batched_tokens: v1
                        .token_budget(v1.max_model_len.unwrap_or(max_request_tokens)),
                    block_size,
                },
                max_request_tokens,
            )?
        } else {
            plan(
                &model,
                &device,
                parallelism,
                &precision,
                self.memory_margin_fraction(),
                block_size,
                max_request_tokens,
                self.scheduler.num_blocks,
            )?
        };
        Ok(Resolved {
            model,
            device,
            node,
            parallelism,
            scheduler,
            memory,
            max_request_tokens,
            precision,
            exec,
        })
    }

    /// The engine model's calibration for `device`, and its description for the user.
    fn calibration(&self, device: &DeviceSpec) -> Result<(Calibration, String), SimError> {
        let name = &self.predictor.calibration;
        if name.ends_with(".toml") || std::path::Path::new(name).is_file() {
            let cal = Calibration::read(std::path::Path::new(name))
                .map_err(|e| invalid("predictor.calibration", e.to_string()))?;
            let desc = format!("calibration {} from {name}", cal.name());
            return Ok((cal, desc));
        }
        match Calibration::builtin(name, &device.name) {
            Some((cal, true)) => {
                let desc = format!("calibration {}", cal.name());
                Ok((cal, desc))
            }
            Some((cal, false)) => {
                let desc = format!(
                    "calibration {} applied to {} (no {} calibration of {name})",
                    cal.name(),
                    device.name,
                    device.name
                );
                Ok((cal, desc))
            }
            None => Err(invalid(
                "predictor.calibration",
                format!(
                    "no shipped calibration named `{name}`; use {DEFAULT_ENGINE_VERSION} or the path of a calibration .toml (simulator calibrate writes one)"
                ),
            )),
        }
    }

    /// The configuration as written to `config.toml`: the node filled in, and catalog names in
    /// full (a model given as a `config.json` path stays a path).
    pub fn resolved_for_output(&self, r: &Resolved) -> SimConfig {
        let mut c = self.clone();
        c.replica.node = Some(r.node.name.clone());
        c.replica.device = r.device.name.clone();
        let given = std::path::Path::new(&self.replica.model);
        if !self.replica.model.ends_with(".json") && !given.exists() {
            c.replica.model = r.model.name.clone();
        }
        c
    }

    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<SimConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Writes the configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the configuration always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let c = SimConfig::default();
        let text = c.to_toml();
        assert_eq!(SimConfig::from_toml(&text).unwrap(), c);
        assert!(text.contains("[scheduler]"), "{text}");
    }

    #[test]
    fn default_resolves() {
        let r = SimConfig::default().resolve(&Catalog::builtin()).unwrap();
        assert_eq!(r.node.name, "h100_dgx");
        assert!(r.memory.num_blocks > 1000);
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut c = SimConfig::default();
        c.scheduler.chunk_size = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("scheduler.chunk_size") && e.contains("--chunk-size"),
            "{e}"
        );
        let mut c = SimConfig::default();
        c.replica.pp = 64;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("more than the 32 layers"), "{e}");
        let mut c = SimConfig::default();
        c.scheduler.name = "lightllm".into();
        c.replica.pp = 2;
        assert!(c.validate().unwrap_err().to_string().contains("at most 1"));
    }

    #[test]
    fn every_section_round_trips_and_names_resolve_in_full() {
        let mut c = SimConfig {
            time_limit_s: Some(30.0),
            ..Default::default()
        };
        c.cluster.num_replicas = 3;
        c.cluster.router = RouterKind::Lor;
        c.replica.model = "Llama-2-7b-hf".into();
        c.replica.device = "A100".into();
        c.scheduler.name = "vllm".into();
        c.scheduler.num_blocks = Some(5000);
        // (directories that exist: profile directories are checked)
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        c.predictor.profiles = vec![here.join("src"), here];
        c.predictor.backend = BackendChoice::Roofline;
        c.slo.ttft_s = Some(2.0);
        c.output.trace = false;
        let text = c.to_toml();
        assert_eq!(SimConfig::from_toml(&text).unwrap(), c);
        let r = c.resolve(&Catalog::builtin()).unwrap();
        let out = c.resolved_for_output(&r);
        assert_eq!(out.replica.model, "meta-llama/Llama-2-7b-hf");
        assert_eq!(out.replica.device, "a100");
        assert_eq!(out.replica.node.as_deref(), Some("a100_dgx"));
        assert_eq!(r.memory.num_blocks, 5000);
    }

    #[test]
    fn values_outside_their_range_name_their_key() {
        type Edit = fn(&mut SimConfig);
        let cases: [(&str, Edit); 13] = [
            ("slo.ttft_s", |c| c.slo.ttft_s = Some(0.0)),
            ("time_limit_s", |c| c.time_limit_s = Some(4e-10)),
            ("slo.tpot_s", |c| c.slo.tpot_s = Some(f64::NAN)),
            ("slo.e2e_s", |c| c.slo.e2e_s = Some(f64::INFINITY)),
            ("predictor.params.cpu_overhead_ms_per_request", |c| {
                c.predictor.params.cpu_overhead_ms_per_request = -1e-3
            }),
            ("predictor.roofline.attention_memory", |c| {
                c.predictor.roofline.attention_memory = 0.0
            }),
            ("output.timeseries_interval_s", |c| {
                c.output.timeseries_interval_s = 1e-4
            }),
            ("predictor.profiles", |c| {
                c.predictor.profiles = vec!["/no/such/dir".into()]
            }),
            ("replica.node", |c| c.replica.node = Some("a100_dgx".into())),
            ("predictor.coefficients.gemm_bandwidth", |c| {
                c.predictor.coefficients = Some(EngineCoefficients {
                    gemm_bandwidth: f64::NAN,
                    ..Default::default()
                })
            }),
            ("predictor.coefficients.cpu_step_us", |c| {
                c.predictor.coefficients = Some(EngineCoefficients {
                    cpu_step_us: -1.0,
                    ..Default::default()
                })
            }),
            ("predictor.coefficients.cpu_overlap", |c| {
                c.predictor.coefficients = Some(EngineCoefficients {
                    cpu_overlap: 1.5,
                    ..Default::default()
                })
            }),
            ("scheduler.vllm_v1.async_scheduling", |c| {
                c.scheduler.name = "sarathi".into();
                c.scheduler.vllm_v1.async_scheduling = Some(true);
            }),
        ];
        for (key, edit) in cases {
            let mut c = SimConfig::default();
            edit(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        // the bounds themselves are allowed
        let mut c = SimConfig::default();
        c.slo.ttft_s = Some(1e-9);
        c.time_limit_s = Some(1e-9);
        c.output.timeseries_interval_s = MIN_TIMESERIES_INTERVAL_S;
        c.predictor.roofline.link = 1.0;
        c.predictor.params.cpu_overhead_ms_per_batch = 0.0;
        c.replica.node = Some("h100_pairwise_nvlink".into());
        c.predictor.coefficients = Some(EngineCoefficients {
            cpu_overlap: 1.0,
            gemm_bandwidth: 0.05,
            ..Default::default()
        });
        c.scheduler.vllm_v1.async_scheduling = Some(false);
        c.validate().unwrap();
    }

    #[test]
    fn a_coefficients_table_gives_every_coefficient() {
        let full = SimConfig {
            predictor: PredictorConfig {
                coefficients: Some(EngineCoefficients::default()),
                ..Default::default()
            },
            ..Default::default()
        };
        let text = full.to_toml();
        assert!(text.contains("[predictor.coefficients]"), "{text}");
        assert_eq!(SimConfig::from_toml(&text).unwrap(), full);
        // one key left out: an error naming it (not the uncalibrated prior in its place)
        let partial = text.replace("frontend_ms = ", "# frontend_ms = ");
        let e = SimConfig::from_toml(&partial).unwrap_err().to_string();
        assert!(e.contains("leaves out frontend_ms"), "{e}");
        // an unknown key is named too
        let unknown = text.replace("frontend_ms = ", "front_end_ms = ");
        let e = SimConfig::from_toml(&unknown).unwrap_err().to_string();
        assert!(e.contains("front_end_ms"), "{e}");
        // a replaced key says how to convert it
        let old = text.replace("moe_bandwidth_ratio = ", "moe_bandwidth = ");
        let e = SimConfig::from_toml(&old).unwrap_err().to_string();
        assert!(
            e.contains("moe_bandwidth_ratio = moe_bandwidth / gemm_bandwidth"),
            "{e}"
        );
        // TOML's nan reaches the range check, which names the key
        let nan = SimConfig::from_toml(&text.replace("cpu_step_us = 600.0", "cpu_step_us = nan"))
            .unwrap();
        let e = nan.validate().unwrap_err().to_string();
        assert!(e.contains("predictor.coefficients.cpu_step_us"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = SimConfig::from_toml("[cluster]\nreplicas = 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("replicas"), "{e}");
    }
}
