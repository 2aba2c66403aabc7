//! Measured serving runs: the measurements file's schema (`docs/calibration.md`) and the import
//! of `vllm bench serve --save-result [--save-detailed]` JSON.
//!
//! An experiment is one deployment (model, GPU, layout, engine arguments) serving one workload
//! (load stages of Poisson arrivals, prompt and output lengths), with measured latencies per stage
//! in milliseconds.

use std::collections::BTreeMap;
use std::path::Path;

use predictor::exec::engine::SamplingChoice;
use serde::{Deserialize, Serialize};

/// Why a measurements file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MeasurementError {
    /// Unreadable file.
    #[error("cannot read the measurements {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid JSON of either schema, or a value out of range.
    #[error("measurements {path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the field.
        why: String,
    },
}

/// A measurements file (the schema of `data/calibration/vllm-0.15.1-measured.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementFile {
    /// What the file holds.
    #[serde(default)]
    pub what: String,
    /// Where the numbers come from.
    #[serde(default)]
    pub source: String,
    /// Units of the measured values.
    #[serde(default)]
    pub units: String,
    /// What to keep in mind when using them.
    #[serde(default)]
    pub caveats: Vec<String>,
    /// The experiments.
    pub experiments: Vec<Experiment>,
}

/// One measured deployment and workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Unique name.
    pub id: String,
    /// Model: a catalog name (Hugging Face id).
    pub model: String,
    /// GPU catalog name (`h100`, `a100`, `l40s`).
    pub gpu: String,
    /// `FP16`/`BF16` (16-bit) or `FP8` (FP8 weights).
    pub precision: String,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Data-parallel engine replicas behind one endpoint.
    #[serde(default = "one")]
    pub dp: u32,
    /// Engine arguments.
    pub engine: EngineArgs,
    /// The engine's own GPU KV-block count, when recorded.
    #[serde(default)]
    pub kv_blocks_total_gpu: Option<u64>,
    /// The workload.
    pub workload: MeasuredWorkload,
    /// How the workload was known.
    #[serde(default)]
    pub workload_source: String,
    /// Measured latencies per stage (`stage_0`, `stage_1`, …; `summary` for the whole run), ms.
    pub measured_ms: BTreeMap<String, MeasuredStage>,
}

fn one() -> u32 {
    1
}

/// The engine arguments of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineArgs {
    /// Engine name (`vllm`).
    pub name: String,
    /// Engine version.
    pub version: String,
    /// `max_num_seqs`.
    pub max_num_seqs: u32,
    /// `max_num_batched_tokens`.
    pub max_num_batched_tokens: u32,
    /// `gpu_memory_utilization`.
    pub gpu_memory_utilization: f64,
    /// A KV offload connector to CPU memory was on (not modelled: it does not change the GPU
    /// cache the simulator sizes).
    #[serde(default)]
    pub kv_cpu_offload: Option<bool>,
    /// Chunked prefill.
    #[serde(default = "yes")]
    pub chunked_prefill: bool,
    /// Automatic prefix caching.
    #[serde(default = "yes")]
    pub prefix_caching: bool,
    /// KV block size, tokens.
    #[serde(default = "sixteen")]
    pub block_size: u32,
    /// `max_model_len`.
    pub max_model_len: u32,
    /// How the requests were sampled: `auto` (they set no sampling parameters, so vLLM applied the
    /// model's `generation_config.json` defaults), `plain` (greedy or temperature only) or
    /// `filtered` (top-p or top-k); absent: `auto`.
    #[serde(default, skip_serializing_if = "is_auto")]
    pub sampling: SamplingChoice,
}

fn is_auto(s: &SamplingChoice) -> bool {
    *s == SamplingChoice::Auto
}

fn yes() -> bool {
    true
}

fn sixteen() -> u32 {
    16
}

/// The workload of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredWorkload {
    /// How requests arrived (prose).
    #[serde(default)]
    pub arrivals: String,
    /// Load stages in order.
    pub stages: Vec<MeasuredStageLoad>,
    /// inference-perf's shared-prefix prompt pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixLoad>,
    /// Per-request prompt and output lengths (imports of `vllm bench serve --save-detailed`),
    /// replayed in a seeded shuffled order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lengths: Option<Vec<[u32; 2]>>,
    /// Gamma burstiness of `vllm bench serve` (1: Poisson).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
}

/// One load stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredStageLoad {
    /// Length, s.
    pub duration: f64,
    /// Mean arrival rate, requests per second.
    pub rate: f64,
}

/// inference-perf's `shared_prefix` data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefixLoad {
    /// System prompts.
    pub num_unique_system_prompts: u32,
    /// Questions per system prompt.
    pub num_users_per_system_prompt: u32,
    /// System prompt length, tokens.
    pub system_prompt_len: u32,
    /// Question length, tokens.
    pub question_len: u32,
    /// Output length, tokens.
    pub output_len: u32,
}

/// Measured latencies of one stage, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredStage {
    /// Mean E2E.
    pub e2e_mean: f64,
    /// 90th-percentile E2E.
    #[serde(default)]
    pub e2e_p90: Option<f64>,
    /// 99th-percentile E2E.
    #[serde(default)]
    pub e2e_p99: Option<f64>,
    /// Mean TTFT.
    pub ttft_mean: f64,
    /// 90th-percentile TTFT.
    #[serde(default)]
    pub ttft_p90: Option<f64>,
    /// 99th-percentile TTFT.
    #[serde(default)]
    pub ttft_p99: Option<f64>,
    /// Mean inter-token latency as reported.
    #[serde(default)]
    pub itl_mean: Option<f64>,
}

impl Experiment {
    /// The measured stages in order (`stage_0`, `stage_1`, …), without `summary`.
    pub fn stages(&self) -> Vec<(usize, MeasuredStage)> {
        let mut v: Vec<(usize, MeasuredStage)> = self
            .measured_ms
            .iter()
            .filter_map(|(k, s)| {
                k.strip_prefix("stage_")
                    .and_then(|i| i.parse().ok())
                    .map(|i| (i, *s))
            })
            .collect();
        v.sort_by_key(|&(i, _)| i);
        v
    }

    /// The model family, for leave-one-family-out cross-validation: the model name without its
    /// organisation, size and variant suffixes (`Mixtral-8x7B-v0.1` and `Mixtral-8x22B-Instruct`
    /// are both `mixtral`; `Llama-3.1-8B-Instruct` and `-70B-Instruct` are `llama-3.1`).
    pub fn family(&self) -> String {
        let name = self.model.rsplit('/').next().unwrap_or(&self.model);
        let lower = name.to_ascii_lowercase();
        let mut parts: Vec<&str> = Vec::new();
        for p in lower.split('-') {
            let size = p.ends_with('b')
                && p[..p.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == 'x' || c == '.');
            if size
                || p == "instruct"
                || p.starts_with('v') && p[1..].starts_with(|c: char| c.is_ascii_digit())
            {
                break;
            }
            parts.push(p);
        }
        if parts.is_empty() {
            lower
        } else {
            parts.join("-")
        }
    }

    /// Checks the values the simulation needs; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let f = |field: &str, why: String| format!("experiment `{}`: {field} {why}", self.id);
        if self.tp == 0 || self.dp == 0 {
            return Err(f("tp/dp", "must be at least 1".into()));
        }
        let e = &self.engine;
        if e.max_num_seqs == 0 || e.max_num_batched_tokens == 0 || e.block_size == 0 {
            return Err(f(
                "engine.max_num_seqs/max_num_batched_tokens/block_size",
                "must be at least 1".into(),
            ));
        }
        if !(e.gpu_memory_utilization > 0.0 && e.gpu_memory_utilization <= 1.0) {
            return Err(f(
                "engine.gpu_memory_utilization",
                format!("is {}, not in (0, 1]", e.gpu_memory_utilization),
            ));
        }
        if self.workload.stages.is_empty() {
            return Err(f("workload.stages", "is empty".into()));
        }
        for (i, s) in self.workload.stages.iter().enumerate() {
            if !(s.rate.is_finite() && s.rate > 0.0 && s.duration.is_finite() && s.duration > 0.0) {
                return Err(f(
                    &format!("workload.stages[{i}]"),
                    format!(
                        "has rate {} and duration {}: both must be positive",
                        s.rate, s.duration
                    ),
                ));
            }
        }
        if self.workload.shared_prefix.is_none() && self.workload.lengths.is_none() {
            return Err(f(
                "workload",
                "gives neither shared_prefix nor lengths: the simulator cannot regenerate its requests".into(),
            ));
        }
        for (k, s) in &self.measured_ms {
            let vals = [Some(s.e2e_mean), s.e2e_p90, Some(s.ttft_mean), s.ttft_p90];
            if vals.iter().flatten().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(f(
                    &format!("measured_ms.{k}"),
                    "has a latency that is not a positive number".into(),
                ));
            }
        }
        if self.stages().is_empty() {
            return Err(f("measured_ms", "has no stage_N entry".into()));
        }
        Ok(())
    }
}

/// Reads measurements: our schema (a file with `experiments`) or one `vllm bench serve` result.
/// `bench_defaults` fills what a bench result does not say (GPU, TP, engine arguments) when its
/// metadata does not either.
pub fn read_measurements(
    path: &Path,
    bench_defaults: &BenchDefaults,
) -> Result<Vec<Experiment>, MeasurementError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MeasurementError::Io {
        path: name.clone(),
        source: e,
    })?;
    let invalid = |why: String| MeasurementError::Invalid {
        path: name.clone(),
        why,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let experiments = if value.get("experiments").is_some() {
        let file: MeasurementFile = serde_json::from_value(value).map_err(|e| {
            invalid(format!(
                "does not follow the measurements schema (docs/calibration.md): {e}"
            ))
        })?;
        file.experiments
    } else if value.get("mean_ttft_ms").is_some() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bench".into());
        vec![super::bench::import_bench(&value, &stem, bench_defaults).map_err(invalid)?]
    } else {
        return Err(invalid(
            "is neither a measurements file (no `experiments`) nor a `vllm bench serve --save-result` JSON (no `mean_ttft_ms`)".into(),
        ));
    };
    if experiments.is_empty() {
        return Err(invalid("has no experiments".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in &experiments {
        e.validate().map_err(&invalid)?;
        if !seen.insert(e.id.clone()) {
            return Err(invalid(format!("experiment id `{}` appears twice", e.id)));
        }
    }
    Ok(experiments)
}

/// What a `vllm bench serve` result does not record, from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchDefaults {
    /// GPU catalog name.
    pub gpu: Option<String>,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Engine arguments.
    pub max_num_seqs: u32,
    /// `max_num_batched_tokens`.
    pub max_num_batched_tokens: u32,
    /// `gpu_memory_utilization`.
    pub gpu_memory_utilization: f64,
    /// `max_model_len`.
    pub max_model_len: u32,
}

impl Default for BenchDefaults {
    fn default() -> Self {
        BenchDefaults {
            gpu: None,
            tp: 1,
            max_num_seqs: 256,
            max_num_batched_tokens: 2048,
            gpu_memory_utilization: 0.9,
            max_model_len: 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(model: &str) -> Experiment {
        Experiment {
            id: "x".into(),
            model: model.into(),
            gpu: "h100".into(),
            precision: "FP16".into(),
            tp: 1,
            dp: 1,
            engine: EngineArgs {
                name: "vllm".into(),
                version: "0.15.1".into(),
                max_num_seqs: 128,
                max_num_batched_tokens: 2048,
                gpu_memory_utilization: 0.9,
                kv_cpu_offload: None,
                chunked_prefill: true,
                prefix_caching: true,
                block_size: 16,
                max_model_len: 4096,
                sampling: predictor::exec::engine::SamplingChoice::Auto,
            },
            kv_blocks_total_gpu: None,
            workload: MeasuredWorkload {
                arrivals: String::new(),
                stages: vec![MeasuredStageLoad {
                    duration: 60.0,
                    rate: 2.0,
                }],
                shared_prefix: None,
                lengths: Some(vec![[100, 10]]),
                burstiness: None,
            },
            workload_source: String::new(),
            measured_ms: [(
                "stage_0".to_string(),
                MeasuredStage {
                    e2e_mean: 100.0,
                    e2e_p90: Some(120.0),
                    e2e_p99: None,
                    ttft_mean: 10.0,
                    ttft_p90: None,
                    ttft_p99: None,
                    itl_mean: None,
                },
            )]
            .into(),
        }
    }

    #[test]
    fn families_group_sizes_and_variants() {
        for (m, fam) in [
            ("mistralai/Mixtral-8x7B-v0.1", "mixtral"),
            ("mistralai/Mixtral-8x22B-Instruct-v0.1", "mixtral"),
            ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1"),
            ("meta-llama/Llama-3.1-70B-Instruct", "llama-3.1"),
            ("Qwen/Qwen3-14B", "qwen3"),
            ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5"),
            ("01-ai/Yi-34B", "yi"),
            ("mistralai/Mistral-Nemo-Instruct-2407", "mistral-nemo"),
            (
                "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic",
                "llama-4-scout",
            ),
        ] {
            assert_eq!(exp(m).family(), fam, "{m}");
        }
    }

    #[test]
    fn bad_experiments_name_the_field() {
        let mut e = exp("Qwen/Qwen3-14B");
        e.validate().unwrap();
        e.workload.stages[0].rate = -1.0;
        assert!(e.validate().unwrap_err().contains("workload.stages[0]"));
        let mut e = exp("Qwen/Qwen3-14B");
        e.engine.gpu_memory_utilization = 1.5;
        assert!(e.validate().unwrap_err().contains("gpu_memory_utilization"));
        let mut e = exp("Qwen/Qwen3-14B");
        e.measured_ms.clear();
        assert!(e.validate().unwrap_err().contains("stage_N"));
        let mut e = exp("Qwen/Qwen3-14B");
        e.workload.lengths = None;
        assert!(e.validate().unwrap_err().contains("neither"));
    }

    #[test]
    fn files_that_are_neither_schema_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, "{\"hello\": 1}").unwrap();
        let e = read_measurements(&p, &BenchDefaults::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.json") && e.contains("neither"), "{e}");
        std::fs::write(&p, "{\"experiments\": [{\"id\": 3}]}").unwrap();
        let e = read_measurements(&p, &BenchDefaults::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema"), "{e}");
        std::fs::write(&p, "not json").unwrap();
        let e = read_measurements(&p, &BenchDefaults::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = read_measurements(&dir.path().join("missing.json"), &BenchDefaults::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
