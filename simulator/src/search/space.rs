//! The space file of `simulator search` (docs/search.md): what to vary, the workload, the SLOs and
//! the search knobs; [`SpaceFile::expand`] turns it into numbered [`Candidate`]s in a stable order.

use std::path::Path;

use predictor::precision::{KvCacheDType, Quantization};
use predictor::Catalog;
use serde::{Deserialize, Serialize};

use super::error::SearchError;
pub use super::slo::{default_slos, SloLimit, SloMetric, SLO_PERCENTILES};
use crate::config::{PredictorConfig, SimConfig};
use crate::engine::transfer::TransferMode;
use crate::pools::{PoolConfig, PoolRole, TransferLink};
use crate::router::RouterKind;
use crate::scheduler::{find, SchedulerConfig};
use crate::workload::WorkloadConfig;

/// The whole space file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceFile {
    /// Seed of every simulation.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Search knobs.
    #[serde(default)]
    pub search: SearchKnobs,
    /// What varies.
    pub space: Space,
    /// The workload (any `[workload]` of `simulator run`); its rate is what the search scales.
    #[serde(default)]
    pub workload: WorkloadConfig,
    /// The execution-time model (as in `simulator run`).
    #[serde(default)]
    pub predictor: PredictorConfig,
    /// Defaults of every scheduler knob (any key of `simulator run`'s `[scheduler]`); each
    /// `[[space.schedulers]]` entry sets the policy and the knobs it lists.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Percentile limits; absent: Vidur's defaults (TTFT p90 ≤ 2 s, TBT p99 ≤ 0.2 s, scheduling
    /// delay p99 ≤ 5 s).
    pub slo: Option<Vec<SloLimit>>,
}

fn default_seed() -> u64 {
    42
}

/// `[search]`: how the capacity of one configuration is searched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchKnobs {
    /// Stop bisecting when (fail rate − pass rate) ≤ tolerance × pass rate.
    pub tolerance: f64,
    /// Most simulations per configuration (the saturation probe included).
    pub max_evaluations: u32,
    /// Each evaluation stops at `time_limit_factor` × the expected arrival span (a run cut short
    /// misses the SLOs) ...
    pub time_limit_factor: f64,
    /// ... but never before this many simulated seconds.
    pub min_time_limit_s: f64,
    /// Most requests per simulation when the workload has no `num_requests` (a `duration_s`
    /// workload grows with the rate); a synthetic workload's `num_requests` is capped by it too.
    pub max_requests: u64,
}

impl Default for SearchKnobs {
    fn default() -> Self {
        SearchKnobs {
            tolerance: 0.025,
            max_evaluations: 30,
            time_limit_factor: 3.0,
            min_time_limit_s: 60.0,
            max_requests: 100_000,
        }
    }
}

/// `[space]`: the axes of the Cartesian product.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Space {
    /// Models (catalog names or HF `config.json` paths).
    pub models: Vec<String>,
    /// Devices, each with an optional node and price.
    pub devices: Vec<DeviceChoice>,
    /// Tensor-parallel degrees.
    #[serde(default = "one_u32")]
    pub tp: Vec<u32>,
    /// Pipeline depths.
    #[serde(default = "one_u32")]
    pub pp: Vec<u32>,
    /// Expert-parallel degrees of MoE layers (each dividing the TP degree; EP > 1 with a dense
    /// model or a TP it does not divide makes that configuration invalid).
    #[serde(default = "one_u32")]
    pub ep: Vec<u32>,
    /// Weight quantizations (`auto`, `none`, `fp8`; vLLM's `--quantization`).
    #[serde(default = "auto_quantization")]
    pub quantization: Vec<Quantization>,
    /// KV-cache element types (`auto`, `fp8`; vLLM's `--kv-cache-dtype`).
    #[serde(default = "auto_kv_cache_dtype")]
    pub kv_cache_dtype: Vec<KvCacheDType>,
    /// Replica counts (exclusive with `gpu_budget`); default `[1]`.
    pub replicas: Option<Vec<u32>>,
    /// GPUs per configuration: replicas = gpu_budget / (TP × PP) (Vidur's rule).
    pub gpu_budget: Option<u32>,
    /// Replica schedulers with their knobs.
    pub schedulers: Vec<SchedulerChoice>,
    /// Router between replicas.
    #[serde(default)]
    pub router: RouterKind,
    /// Fraction of GPU memory kept free of weights and KV cache.
    #[serde(default = "default_margin")]
    pub memory_margin_fraction: f64,
    /// Prefill/decode disaggregation as search dimensions; absent: colocated deployments only.
    pub disaggregation: Option<DisaggregationAxes>,
}

/// `[space.disaggregation]`: disaggregated deployments (one prefill and one decode pool, the KV
/// cache moving between them; docs/disaggregation.md) searched beside or instead of the
/// colocated ones. Both pools share the candidate's model, TP, PP, precision and scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisaggregationAxes {
    /// Keep the colocated deployments of the space as well (the baseline); default true.
    #[serde(default = "yes")]
    pub colocated: bool,
    /// Prefill replica counts. With `space.gpu_budget`: the prefill share of the budget, the
    /// decode pool taking the rest (absent: every split with at least one replica per pool).
    /// With `space.replicas` or neither: required, crossed with `decode_replicas`.
    pub prefill_replicas: Option<Vec<u32>>,
    /// Decode replica counts (not with `space.gpu_budget`, which sets them).
    pub decode_replicas: Option<Vec<u32>>,
    /// GPU of the decode pool, each entry as in `[[space.devices]]`; absent: the prefill pool's
    /// (the candidate's device).
    pub decode_devices: Option<Vec<DeviceChoice>>,
    /// How the KV cache moves (`after_prefill`, `layerwise`); default `["after_prefill"]`.
    #[serde(default = "default_transfer_modes")]
    pub transfer_modes: Vec<TransferMode>,
    /// The link (`auto`, `nvlink`, `network`), as `[cluster.kv_transfer]`'s `link`.
    #[serde(default)]
    pub link: TransferLink,
}

fn yes() -> bool {
    true
}
fn default_transfer_modes() -> Vec<TransferMode> {
    vec![TransferMode::AfterPrefill]
}

fn one_u32() -> Vec<u32> {
    vec![1]
}
fn auto_quantization() -> Vec<Quantization> {
    vec![Quantization::Auto]
}
fn auto_kv_cache_dtype() -> Vec<KvCacheDType> {
    vec![KvCacheDType::Auto]
}
fn default_margin() -> f64 {
    0.1
}

/// One entry of `[[space.devices]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceChoice {
    /// Catalog device name.
    pub device: String,
    /// Node type; absent: the device's default node.
    pub node: Option<String>,
    /// Price of one GPU-hour, USD; absent: the catalog's price.
    pub price_per_gpu_hour_usd: Option<f64>,
}

impl DeviceChoice {
    /// Checks the names against the catalog and the price; errors name `field`.
    fn check(&self, catalog: &Catalog, field: &str) -> Result<(), SearchError> {
        catalog
            .device(&self.device)
            .map_err(|e| bad(&format!("{field}.device"), e.to_string()))?;
        if let Some(n) = &self.node {
            catalog
                .node(n)
                .map_err(|e| bad(&format!("{field}.node"), e.to_string()))?;
        }
        if let Some(p) = self.price_per_gpu_hour_usd {
            if !(p.is_finite() && p > 0.0) {
                return Err(bad(
                    &format!("{field}.price_per_gpu_hour_usd"),
                    "must be a positive number of USD",
                ));
            }
        }
        Ok(())
    }
}

impl DisaggregationAxes {
    /// Checks the axes against the rest of the space.
    fn check(&self, catalog: &Catalog, sp: &Space) -> Result<(), SearchError> {
        const AT: &str = "space.disaggregation";
        for (name, v) in [
            ("prefill_replicas", &self.prefill_replicas),
            ("decode_replicas", &self.decode_replicas),
        ] {
            if let Some(v) = v {
                nonempty(&format!("{AT}.{name}"), v)?;
                if v.contains(&0) {
                    return Err(bad(
                        &format!("{AT}.{name}"),
                        "0 replicas is not a pool; every pool needs at least one replica",
                    ));
                }
            }
        }
        match (sp.gpu_budget, &self.prefill_replicas, &self.decode_replicas) {
            (Some(_), _, Some(_)) => {
                return Err(bad(
                    &format!("{AT}.decode_replicas"),
                    "is set by space.gpu_budget (the decode pool takes the GPUs the prefill pool leaves); remove it, or give space.replicas instead of a budget",
                ))
            }
            (None, None, _) | (None, _, None) => {
                return Err(bad(
                    AT,
                    "without space.gpu_budget, give both prefill_replicas and decode_replicas (their lists are crossed), or set space.gpu_budget to search every split of it",
                ))
            }
            _ => {}
        }
        if !self.colocated && sp.replicas.is_some() {
            return Err(bad(
                "space.replicas",
                "only sizes colocated deployments, and space.disaggregation.colocated = false leaves none; remove it or set colocated = true",
            ));
        }
        if let Some(ds) = &self.decode_devices {
            nonempty(&format!("{AT}.decode_devices"), ds)?;
            for (i, d) in ds.iter().enumerate() {
                d.check(catalog, &format!("{AT}.decode_devices[{i}]"))?;
            }
        }
        nonempty(&format!("{AT}.transfer_modes"), &self.transfer_modes)
    }
}

/// One entry of `[[space.schedulers]]`: a policy and lists of knob values (absent: the default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerChoice {
    /// Policy name (`simulator run --scheduler`).
    pub name: String,
    /// Values of `batch_size_cap`.
    pub batch_size_cap: Option<Vec<u32>>,
    /// Values of `chunk_size` (Sarathi's token budget).
    pub chunk_size: Option<Vec<u32>>,
    /// Values of `max_tokens_in_batch` (vLLM's token cap).
    pub max_tokens_in_batch: Option<Vec<u32>>,
}

/// One point of the space, before its capacity is known.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Position in the expansion order (stable: models, devices, TP, PP, EP, quantization,
    /// KV-cache type, deployments (replicas, then prefill/decode splits), schedulers).
    pub index: usize,
    /// Readable key, e.g. `Llama-2-7b-hf_a100_tp1_pp1_r1_vllm_bsz128`.
    pub key: String,
    /// The simulation configuration (its workload rate is set per evaluation).
    pub config: SimConfig,
    /// Price of one GPU-hour, USD (of the prefill pool's GPU when disaggregated).
    pub price_per_gpu_hour_usd: f64,
    /// Price of one GPU-hour of the decode pool's GPU, USD, when disaggregated.
    pub decode_price_per_gpu_hour_usd: Option<f64>,
    /// Why the configuration cannot run, if it cannot.
    pub invalid: Option<String>,
}

fn bad(field: &str, why: impl Into<String>) -> SearchError {
    SearchError::Space {
        field: field.to_string(),
        why: why.into(),
    }
}

fn nonempty<T>(field: &str, v: &[T]) -> Result<(), SearchError> {
    if v.is_empty() {
        return Err(bad(
            field,
            "is empty, so the space has no configuration; give at least one value",
        ));
    }
    Ok(())
}

impl SpaceFile {
    /// Reads and checks a space file.
    pub fn load(path: &Path) -> Result<SpaceFile, SearchError> {
        let text = std::fs::read_to_string(path).map_err(|e| SearchError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let f: SpaceFile = toml::from_str(&text).map_err(|e| SearchError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        f.check()?;
        Ok(f)
    }

    /// The SLOs in force.
    pub fn slos(&self) -> Vec<SloLimit> {
        self.slo.clone().unwrap_or_else(default_slos)
    }

    /// Checks what does not depend on one configuration.
    pub fn check(&self) -> Result<(), SearchError> {
        let k = &self.search;
        if !(k.tolerance.is_finite() && k.tolerance > 0.0 && k.tolerance < 1.0) {
            return Err(bad("search.tolerance", "must be in (0, 1), e.g. 0.025"));
        }
        if k.max_evaluations < 4 {
            return Err(bad("search.max_evaluations", "must be at least 4"));
        }
        if !(k.time_limit_factor.is_finite() && k.time_limit_factor >= 1.0) {
            return Err(bad("search.time_limit_factor", "must be at least 1"));
        }
        if !(k.min_time_limit_s.is_finite() && k.min_time_limit_s > 0.0) {
            return Err(bad("search.min_time_limit_s", "must be a positive number"));
        }
        if k.max_requests == 0 {
            return Err(bad("search.max_requests", "must be at least 1"));
        }
        let slos = self.slos();
        if slos.is_empty() {
            return Err(bad(
                "slo",
                "is empty: with no SLO every rate passes; give at least one [[slo]] or omit the key for Vidur's defaults",
            ));
        }
        for (i, s) in slos.iter().enumerate() {
            let field = format!("slo[{i}]");
            if !(s.max_s.is_finite() && s.max_s > 0.0) {
                return Err(bad(
                    &format!("{field}.max_s"),
                    format!("{} s is impossible to meet: a latency limit must be a positive number of seconds", s.max_s),
                ));
            }
            if !(s.percentile > 0.0 && s.percentile <= 100.0) {
                return Err(bad(
                    &format!("{field}.percentile"),
                    format!(
                        "{} is not a percentile: it must be in (0, 100]",
                        s.percentile
                    ),
                ));
            }
            if !SLO_PERCENTILES.contains(&s.percentile) {
                return Err(bad(
                    &format!("{field}.percentile"),
                    format!("{} is not reported by summary.json; use one of 50, 90, 95, 99 or 100 (the maximum)", s.percentile),
                ));
            }
        }
        let sp = &self.space;
        nonempty("space.models", &sp.models)?;
        nonempty("space.devices", &sp.devices)?;
        nonempty("space.tp", &sp.tp)?;
        nonempty("space.pp", &sp.pp)?;
        nonempty("space.ep", &sp.ep)?;
        nonempty("space.quantization", &sp.quantization)?;
        nonempty("space.kv_cache_dtype", &sp.kv_cache_dtype)?;
        if sp.ep.contains(&0) {
            return Err(bad(
                "space.ep",
                "0 is not an expert-parallel degree; use 1 (no expert parallelism) or a divisor of the TP degree",
            ));
        }
        nonempty("space.schedulers", &sp.schedulers)?;
        match (&sp.replicas, sp.gpu_budget) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "space.gpu_budget",
                    "give either space.replicas or space.gpu_budget, not both",
                ))
            }
            (Some(r), None) => {
                nonempty("space.replicas", r)?;
                if r.contains(&0) {
                    return Err(bad("space.replicas", "0 replicas is not a deployment"));
                }
            }
            (None, Some(0)) => return Err(bad("space.gpu_budget", "must be at least 1")),
            _ => {}
        }
        let catalog = Catalog::builtin();
        for (i, m) in sp.models.iter().enumerate() {
            catalog
                .model(m)
                .map_err(|e| bad(&format!("space.models[{i}]"), e.to_string()))?;
        }
        for (i, d) in sp.devices.iter().enumerate() {
            d.check(&catalog, &format!("space.devices[{i}]"))?;
        }
        if let Some(d) = &sp.disaggregation {
            d.check(&catalog, sp)?;
        }
        for (i, s) in sp.schedulers.iter().enumerate() {
            let field = format!("space.schedulers[{i}]");
            find(&s.name).map_err(|e| bad(&format!("{field}.name"), e))?;
            for (knob, v) in [
                ("batch_size_cap", &s.batch_size_cap),
                ("chunk_size", &s.chunk_size),
                ("max_tokens_in_batch", &s.max_tokens_in_batch),
            ] {
                if let Some(v) = v {
                    nonempty(&format!("{field}.{knob}"), v)?;
                }
            }
        }
        self.workload
            .validate()
            .map_err(|e| bad("workload", e.to_string()))?;
        super::rate::RateKnob::of(&self.workload, self.seed)?;
        Ok(())
    }

    /// Every configuration of the space, numbered in a stable order; invalid ones carry the reason.
    pub fn expand(&self) -> Vec<Candidate> {
        let catalog = Catalog::builtin();
        let sp = &self.space;
        let mut out = Vec::new();
        for model in &sp.models {
            for dev in &sp.devices {
                for &tp in &sp.tp {
                    for &pp in &sp.pp {
                        for layout in self.precision_layouts() {
                            for dep in self.deployments(tp.saturating_mul(pp)) {
                                for sched in &sp.schedulers {
                                    for knobs in scheduler_variants(&self.scheduler, sched) {
                                        let index = out.len();
                                        out.push(self.candidate(
                                            &catalog,
                                            index,
                                            model,
                                            dev,
                                            (tp, pp, layout),
                                            &dep,
                                            knobs,
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The deployments of a replica layout of `gpus_per_replica` GPUs, in order: the colocated
    /// replica counts (or the GPU budget's), then the disaggregated ones (prefill/decode split,
    /// decode device, transfer mode).
    fn deployments(&self, gpus_per_replica: u32) -> Vec<Deployment<'_>> {
        let sp = &self.space;
        let mut v = Vec::new();
        let colocated = sp.disaggregation.as_ref().is_none_or(|d| d.colocated);
        if colocated {
            match (sp.gpu_budget, &sp.replicas) {
                (Some(_), _) => v.push(Deployment::Colocated(None)),
                (None, Some(r)) => v.extend(r.iter().map(|&n| Deployment::Colocated(Some(n)))),
                (None, None) => v.push(Deployment::Colocated(Some(1))),
            }
        }
        let Some(d) = &sp.disaggregation else {
            return v;
        };
        let splits: Vec<(u32, u32)> = match sp.gpu_budget {
            Some(b) => {
                let n = b.checked_div(gpus_per_replica).unwrap_or(0);
                match &d.prefill_replicas {
                    Some(ps) => ps.iter().map(|&p| (p, n.saturating_sub(p))).collect(),
                    None => (1..n).map(|p| (p, n - p)).collect(),
                }
            }
            None => {
                let ps = d.prefill_replicas.as_deref().unwrap_or(&[]);
                let ds = d.decode_replicas.as_deref().unwrap_or(&[]);
                ps.iter()
                    .flat_map(|&p| ds.iter().map(move |&q| (p, q)))
                    .collect()
            }
        };
        let decode_devices: Vec<Option<&DeviceChoice>> = match &d.decode_devices {
            Some(ds) => ds.iter().map(Some).collect(),
            None => vec![None],
        };
        for &(prefill, decode) in &splits {
            for &decode_device in &decode_devices {
                for &mode in &d.transfer_modes {
                    v.push(Deployment::Disaggregated {
                        prefill,
                        decode,
                        decode_device,
                        mode,
                        link: d.link,
                    });
                }
            }
        }
        v
    }

    /// The (EP, quantization, KV-cache type) combinations, in the order of the space file.
    fn precision_layouts(&self) -> Vec<(u32, Quantization, KvCacheDType)> {
        let sp = &self.space;
        let mut v = Vec::new();
        for &ep in &sp.ep {
            for &q in &sp.quantization {
                for &kv in &sp.kv_cache_dtype {
                    v.push((ep, q, kv));
                }
            }
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn candidate(
        &self,
        catalog: &Catalog,
        index: usize,
        model: &str,
        dev: &DeviceChoice,
        (tp, pp, (ep, quantization, kv_cache_dtype)): (u32, u32, (u32, Quantization, KvCacheDType)),
        dep: &Deployment,
        knobs: (SchedulerConfig, String),
    ) -> Candidate {
        let (scheduler, sched_label) = knobs;
        let gpus_per_replica = tp.saturating_mul(pp);
        let budget = self.space.gpu_budget;
        let (num_replicas, mut invalid) = match *dep {
            Deployment::Colocated(Some(r)) => (r, None),
            Deployment::Colocated(None) => match budget {
                Some(b) if gpus_per_replica > 0 && b / gpus_per_replica > 0 => {
                    (b / gpus_per_replica, None)
                }
                b => (
                    1,
                    Some(format!(
                        "TP {tp} × PP {pp} = {gpus_per_replica} GPUs exceed the GPU budget of {}",
                        b.unwrap_or(0)
                    )),
                ),
            },
            Deployment::Disaggregated {
                prefill, decode, ..
            } => {
                let total = prefill.saturating_add(decode);
                let why = match budget {
                    Some(b) if decode == 0 => Some(format!(
                        "{prefill} prefill replicas of TP {tp} × PP {pp} leave none of the GPU budget of {b} for a decode replica"
                    )),
                    Some(b) if u64::from(total) * u64::from(gpus_per_replica) > u64::from(b) => {
                        Some(format!(
                            "{prefill} prefill + {decode} decode replicas of TP {tp} × PP {pp} need {} GPUs, over the GPU budget of {b}",
                            u64::from(total) * u64::from(gpus_per_replica)
                        ))
                    }
                    _ => None,
                };
                (total.max(1), why)
            }
        };
        let mut config = SimConfig {
            seed: self.seed,
            workload: self.workload.clone(),
            predictor: self.predictor.clone(),
            scheduler,
            ..SimConfig::default()
        };
        config.cluster.num_replicas = num_replicas;
        config.cluster.router = self.space.router;
        config.replica.model = model.to_string();
        config.replica.device = dev.device.clone();
        config.replica.node = dev.node.clone();
        config.replica.tp = tp;
        config.replica.pp = pp;
        config.replica.ep = ep;
        config.replica.quantization = quantization;
        config.replica.kv_cache_dtype = kv_cache_dtype;
        config.replica.memory_margin_fraction = self.space.memory_margin_fraction;
        config.output.batches = false;
        config.output.trace = false;
        let price_of = |d: &DeviceChoice| {
            d.price_per_gpu_hour_usd.unwrap_or_else(|| {
                catalog
                    .device(&d.device)
                    .map_or(0.0, |d| d.price_per_gpu_hour_usd)
            })
        };
        let price = price_of(dev);
        let mut decode_price = None;
        let mut deployment_label = format!("_r{num_replicas}");
        if let Deployment::Disaggregated {
            prefill,
            decode,
            decode_device,
            mode,
            link,
        } = *dep
        {
            let pool = |role, replicas| PoolConfig {
                role,
                replicas,
                device: None,
                node: None,
                tp: None,
                pp: None,
                router: None,
                scheduler: None,
            };
            let mut d = pool(PoolRole::Decode, decode);
            if let Some(dd) = decode_device {
                d.device = Some(dd.device.clone());
                d.node = dd.node.clone();
            }
            config.cluster.pools = vec![pool(PoolRole::Prefill, prefill), d];
            config.cluster.kv_transfer.mode = mode;
            config.cluster.kv_transfer.link = link;
            decode_price = Some(decode_device.map_or(price, price_of));
            deployment_label = format!(
                "_p{prefill}d{decode}{}_{}",
                decode_device.map(decode_label).unwrap_or_default(),
                match mode {
                    TransferMode::AfterPrefill => "ap",
                    TransferMode::Layerwise => "lw",
                }
            );
        }
        if invalid.is_none() {
            match config.resolve(catalog) {
                Ok(r) => {
                    config.replica.model = r.model.name.clone();
                    config.replica.node = Some(r.node.name.clone());
                    // the pools, each resolved as the cluster it describes
                    match config.disaggregated() {
                        Ok(Some(d)) => {
                            // name the decode pool's own GPU and node as resolved
                            let pool = &mut config.cluster.pools[1];
                            if pool.device.is_some() {
                                pool.device = Some(d.decode.resolved.device.name.clone());
                                pool.node = Some(d.decode.resolved.node.name.clone());
                            }
                        }
                        Ok(None) => {}
                        Err(e) => invalid = Some(e.to_string()),
                    }
                }
                Err(e) => invalid = Some(e.to_string()),
            }
        }
        let short_model = model.rsplit('/').next().unwrap_or(model);
        let node = dev
            .node
            .as_ref()
            .map(|n| format!("_{n}"))
            .unwrap_or_default();
        let key = format!(
            "{short_model}_{}{node}_tp{tp}_pp{pp}{}{deployment_label}_{sched_label}",
            dev.device,
            precision_label(ep, quantization, kv_cache_dtype)
        );
        Candidate {
            index,
            key,
            config,
            price_per_gpu_hour_usd: price,
            decode_price_per_gpu_hour_usd: decode_price,
            invalid,
        }
    }
}

/// How a candidate's replicas are deployed.
#[derive(Debug, Clone, Copy)]
enum Deployment<'a> {
    /// One colocated pool of this many replicas (`None`: as many as the GPU budget holds).
    Colocated(Option<u32>),
    /// A prefill and a decode pool.
    Disaggregated {
        /// Prefill replicas.
        prefill: u32,
        /// Decode replicas.
        decode: u32,
        /// GPU of the decode pool (`None`: the candidate's).
        decode_device: Option<&'a DeviceChoice>,
        /// How the KV cache moves.
        mode: TransferMode,
        /// The link it crosses.
        link: TransferLink,
    },
}

/// The key's part naming a decode pool's own GPU: `-a100`, `-a100_a100_pairwise_nvlink`.
fn decode_label(d: &DeviceChoice) -> String {
    match &d.node {
        Some(n) => format!("-{}_{n}", d.device),
        None => format!("-{}", d.device),
    }
}

/// The key's part for EP and precision: empty at the defaults (so keys of spaces without these
/// axes are unchanged), else `_ep2`, `_qfp8` / `_qnone`, `_kvfp8`.
fn precision_label(ep: u32, q: Quantization, kv: KvCacheDType) -> String {
    let mut s = String::new();
    if ep != 1 {
        s.push_str(&format!("_ep{ep}"));
    }
    match q {
        Quantization::Auto => {}
        Quantization::None => s.push_str("_qnone"),
        Quantization::Fp8 => s.push_str("_qfp8"),
    }
    if kv == KvCacheDType::Fp8 {
        s.push_str("_kvfp8");
    }
    s
}

/// The knob combinations of one scheduler entry, with a label naming the knobs that were listed.
fn scheduler_variants(
    base: &SchedulerConfig,
    s: &SchedulerChoice,
) -> Vec<(SchedulerConfig, String)> {
    let opt = |v: &Option<Vec<u32>>| -> Vec<Option<u32>> {
        match v {
            Some(v) => v.iter().copied().map(Some).collect(),
            None => vec![None],
        }
    };
    let mut out = Vec::new();
    for bsz in opt(&s.batch_size_cap) {
        for chunk in opt(&s.chunk_size) {
            for mtb in opt(&s.max_tokens_in_batch) {
                let mut c = SchedulerConfig {
                    name: s.name.clone(),
                    ..base.clone()
                };
                let mut label = s.name.clone();
                if let Some(b) = bsz {
                    c.batch_size_cap = b;
                    label.push_str(&format!("_bsz{b}"));
                }
                if let Some(ch) = chunk {
                    c.chunk_size = ch;
                    label.push_str(&format!("_cs{ch}"));
                }
                if let Some(m) = mtb {
                    c.max_tokens_in_batch = m;
                    label.push_str(&format!("_mtb{m}"));
                }
                out.push((c, label));
            }
        }
    }
    out
}
