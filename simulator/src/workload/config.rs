//! The `[workload]` section of `config.toml`: what requests a simulation serves.
//!
//! A workload is either *synthetic* (an arrival process, a length law, optionally shared prefixes
//! and multi-turn sessions) or a *trace replay* (`[workload.trace]`: arrival times and lengths read
//! from a file). `docs/workloads.md` documents every field; the defaults below are the documented
//! default workload.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Default arrival rate of the default workload, requests per second (see `docs/workloads.md`).
pub const DEFAULT_QPS: f64 = 6.0;
/// Default prompt length of the default workload, tokens.
pub const DEFAULT_PREFILL_TOKENS: u32 = 1024;
/// Default output length of the default workload, tokens.
pub const DEFAULT_DECODE_TOKENS: u32 = 256;
/// Default number of requests of the default workload.
pub const DEFAULT_NUM_REQUESTS: u64 = 1000;
/// Default longest request (prompt + output), tokens, as Vidur's `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Number of requests a synthetic workload has when neither `num_requests` nor `duration_s` is set.
pub const IMPLICIT_NUM_REQUESTS: u64 = DEFAULT_NUM_REQUESTS;

/// The `[workload]` section: which requests arrive, when, and how long they are.
///
/// `Default` is a Poisson workload of 1,000 requests at 6 requests/s, each with a 1,024-token
/// prompt and a 256-token output, capped at 4,096 tokens per request (a moderate load for
/// Meta-Llama-3-8B on one H100; `docs/workloads.md` explains the choice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Number of requests to generate. Absent (`None`): synthetic workloads generate 1,000
    /// requests unless `duration_s` bounds them, and trace replays read the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_requests: Option<u64>,
    /// Only requests arriving strictly before this many seconds are generated. With
    /// `num_requests` too, whichever bound is reached first ends the workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Longest request, prompt plus output tokens (Vidur's `max_tokens`). Every generator clips
    /// its requests to it, and the memory planner sizes a request slot with it.
    pub max_tokens: u32,
    /// When requests arrive (synthetic workloads).
    pub arrival: ArrivalConfig,
    /// How long prompts and outputs are (synthetic workloads).
    pub lengths: LengthConfig,
    /// Shared system prompts (synthetic workloads); absent: every prompt is unique.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<PrefixConfig>,
    /// Multi-turn conversations (synthetic workloads); absent: single requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionConfig>,
    /// A fixed pool of prompts sharing system prompts, cycled in a shuffled order
    /// (inference-perf's `shared_prefix` data); replaces `lengths` and `prefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixConfig>,
    /// Replay a trace file instead of generating synthetic requests. When set, `arrival` and
    /// `lengths` must stay at their defaults and `prefix` and `sessions` must be absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceConfig>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            num_requests: Some(DEFAULT_NUM_REQUESTS),
            duration_s: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            arrival: ArrivalConfig::default(),
            lengths: LengthConfig::default(),
            prefix: None,
            sessions: None,
            shared_prefix: None,
            trace: None,
        }
    }
}

/// The arrival process of a synthetic workload (`[workload.arrival]`, chosen by `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArrivalConfig {
    /// A Poisson process: exponential inter-arrival times with mean `1/qps`, untruncated.
    Poisson {
        /// Mean arrival rate, requests per second.
        qps: f64,
    },
    /// Gamma-distributed inter-arrival times with mean `1/qps` and coefficient of variation `cv`
    /// (shape `1/cv²`): `cv` > 1 is burstier than Poisson, `cv` < 1 more regular.
    Gamma {
        /// Mean arrival rate, requests per second.
        qps: f64,
        /// Coefficient of variation of the inter-arrival times (> 0; 1 is Poisson).
        cv: f64,
    },
    /// Every request arrives at time 0.
    Static,
    /// Poisson arrivals in consecutive stages of constant rate (a load ramp, as load generators
    /// run them); the workload ends with the last stage.
    Stages {
        /// The stages, in order.
        stages: Vec<RateStage>,
    },
    /// Arrival times read from a column of a CSV file (seconds), sorted, shifted so that the
    /// first is at 0, and multiplied by `time_scale_factor`. The workload ends with the file.
    Trace {
        /// The CSV file.
        trace_file: PathBuf,
        /// The column holding arrival times in seconds.
        #[serde(default = "default_arrival_column")]
        column: String,
        /// Multiplies every arrival time (< 1 compresses time: a higher rate).
        #[serde(default = "one")]
        time_scale_factor: f64,
    },
}

/// One stage of [`ArrivalConfig::Stages`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateStage {
    /// Mean arrival rate during the stage, requests per second.
    pub qps: f64,
    /// Length of the stage, seconds.
    pub duration_s: f64,
}

impl ArrivalConfig {
    /// The stages of a staged arrival process, as (start s, end s, qps); empty otherwise.
    pub fn stage_bounds(&self) -> Vec<(f64, f64, f64)> {
        let ArrivalConfig::Stages { stages } = self else {
            return Vec::new();
        };
        let mut t = 0.0;
        stages
            .iter()
            .map(|s| {
                let start = t;
                t += s.duration_s;
                (start, t, s.qps)
            })
            .collect()
    }
}

/// A pool of `num_groups × prompts_per_group` prompts (`[workload.shared_prefix]`), as
/// inference-perf's `shared_prefix` data generator builds it: each group has a system prompt of
/// `system_prompt_tokens`, each prompt adds its own question of `question_tokens` (plus
/// `extra_prompt_tokens` of template and BOS); the pool is shuffled once and requests cycle through
/// it, so every prompt recurs after `num_groups × prompts_per_group` requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefixConfig {
    /// System prompts.
    pub num_groups: u32,
    /// Prompts (questions) per system prompt.
    pub prompts_per_group: u32,
    /// Length of each system prompt, tokens.
    pub system_prompt_tokens: u32,
    /// Length of each question, tokens.
    pub question_tokens: u32,
    /// Tokens the serving stack adds to each prompt (template, BOS).
    #[serde(default)]
    pub extra_prompt_tokens: u32,
    /// Output tokens of every request (generated to the end, as with `ignore_eos`).
    pub output_tokens: u32,
}

impl SharedPrefixConfig {
    /// Prompt length of every request, tokens.
    pub fn prompt_tokens(&self) -> u32 {
        self.system_prompt_tokens + self.question_tokens + self.extra_prompt_tokens
    }
}

impl Default for ArrivalConfig {
    fn default() -> Self {
        ArrivalConfig::Poisson { qps: DEFAULT_QPS }
    }
}

/// The length law of a synthetic workload (`[workload.lengths]`, chosen by `kind`).
///
/// With `[workload.prefix]`, these lengths describe each request's unique part: the prompt is
/// the shared prefix plus the drawn prompt, and the law's upper bound is `max_tokens` minus the
/// prefix length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LengthConfig {
    /// Every request has the same prompt and output length.
    Fixed {
        /// Prompt length, tokens.
        prefill_tokens: u32,
        /// Output length, tokens.
        decode_tokens: u32,
    },
    /// Total length uniform on `[min_tokens, max_tokens]`, split by `pd_ratio` (Vidur's rule:
    /// `decode = ceil(total / (1 + pd_ratio))`, `prefill = total − decode`).
    Uniform {
        /// Smallest total length, tokens.
        #[serde(default = "default_min_tokens")]
        min_tokens: u32,
        /// Largest total length, tokens; absent: `workload.max_tokens` (minus the shared
        /// prefix). Useful for per-turn lengths of sessions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u32>,
        /// Prompt-to-output length ratio.
        #[serde(default = "default_pd_ratio")]
        pd_ratio: f64,
    },
    /// Total length from a YCSB-style Zipf law on `[min_tokens, max_tokens]` (short lengths most
    /// frequent), split by `pd_ratio` as Vidur does (`decode = ⌊total/(1+pd_ratio)⌋`).
    Zipf {
        /// Smallest total length, tokens.
        #[serde(default = "default_min_tokens")]
        min_tokens: u32,
        /// Largest total length, tokens; absent: `workload.max_tokens` (minus the shared
        /// prefix). Useful for per-turn lengths of sessions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_tokens: Option<u32>,
        /// Prompt-to-output length ratio.
        #[serde(default = "default_pd_ratio")]
        pd_ratio: f64,
        /// Skew, strictly between 0 and 1 (larger: more requests near `min_tokens`).
        #[serde(default = "default_zipf_theta")]
        theta: f64,
        /// Map ranks to lengths through a seeded random permutation, so the frequent lengths are
        /// spread over the range instead of sitting at `min_tokens`.
        #[serde(default)]
        scramble: bool,
    },
    /// Prompt and output lengths drawn from the rows of a CSV file (`num_prefill_tokens`,
    /// `num_decode_tokens`), in a seeded shuffled order that is reshuffled each time the rows run
    /// out; scaled, then clipped proportionally to `max_tokens` (Vidur's rule).
    Trace {
        /// The CSV file.
        trace_file: PathBuf,
        /// Multiplies every prompt length.
        #[serde(default = "one")]
        prefill_scale_factor: f64,
        /// Multiplies every output length.
        #[serde(default = "one")]
        decode_scale_factor: f64,
    },
}

impl Default for LengthConfig {
    fn default() -> Self {
        LengthConfig::Fixed {
            prefill_tokens: DEFAULT_PREFILL_TOKENS,
            decode_tokens: DEFAULT_DECODE_TOKENS,
        }
    }
}

/// How a request picks its shared prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PrefixLaw {
    /// Every prefix equally likely.
    #[default]
    Uniform,
    /// Prefix `k` (1-based rank) with probability proportional to `k^−zipf_theta`.
    Zipf,
}

/// Shared system prompts (`[workload.prefix]`): each request's prompt starts with one of
/// `num_prefixes` prompts of `prefix_tokens` tokens, followed by a unique part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixConfig {
    /// Number of distinct shared prompts.
    pub num_prefixes: u32,
    /// Length of each shared prompt, tokens.
    pub prefix_tokens: u32,
    /// How a request picks its prompt.
    #[serde(default)]
    pub law: PrefixLaw,
    /// Zipf exponent (≥ 0) when `law = "zipf"`; unused otherwise.
    #[serde(default = "one")]
    pub zipf_theta: f64,
}

/// Multi-turn conversations (`[workload.sessions]`).
///
/// Each session starts at an arrival of the arrival process and has a number of turns drawn
/// uniformly from `[min_turns, max_turns]`. A turn's prompt is the whole conversation so far
/// (the shared prefix if any, every earlier prompt and output) plus new tokens drawn from the
/// length law; the next turn arrives an exponential think time (mean `think_time_s`) after this
/// one (open loop: the generator does not wait for the simulated response). A session ends early
/// when its next turn would exceed `max_tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Fewest turns per session (≥ 1).
    #[serde(default = "default_min_turns")]
    pub min_turns: u32,
    /// Most turns per session (≥ `min_turns`).
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
    /// Mean think time between the arrivals of consecutive turns, seconds (≥ 0; 0: back to back).
    #[serde(default = "default_think_time_s")]
    pub think_time_s: f64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            min_turns: default_min_turns(),
            max_turns: default_max_turns(),
            think_time_s: default_think_time_s(),
        }
    }
}

/// The format of a replayed trace file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// By extension, after any `.gz`: `.jsonl`/`.json` → `mooncake`, anything else → `csv`.
    #[default]
    Auto,
    /// Vidur's CSV (`arrived_at`, `num_prefill_tokens`, `num_decode_tokens`; optional
    /// `session_id`, `prefix_id`, `prefix_tokens`).
    Csv,
    /// Mooncake JSON lines (`timestamp` ms, `input_length`, `output_length`, `hash_ids`).
    Mooncake,
}

/// Trace replay (`[workload.trace]`): one request per row of a file, at its recorded time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// The trace file.
    pub file: PathBuf,
    /// Its format.
    #[serde(default)]
    pub format: TraceFormat,
    /// Multiplies every arrival time (< 1 compresses time: a higher rate).
    #[serde(default = "one")]
    pub time_scale_factor: f64,
    /// Multiplies every prompt length (CSV traces only).
    #[serde(default = "one")]
    pub prefill_scale_factor: f64,
    /// Multiplies every output length (CSV traces only).
    #[serde(default = "one")]
    pub decode_scale_factor: f64,
    /// Tokens per hash block of a Mooncake trace.
    #[serde(default = "default_block_tokens")]
    pub block_tokens: u32,
}

impl TraceConfig {
    /// A replay of `file` with every factor at 1 and the format found from the extension.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        TraceConfig {
            file: file.into(),
            format: TraceFormat::Auto,
            time_scale_factor: 1.0,
            prefill_scale_factor: 1.0,
            decode_scale_factor: 1.0,
            block_tokens: default_block_tokens(),
        }
    }

    /// The format, with `auto` resolved from the file's extension.
    pub fn resolved_format(&self) -> TraceFormat {
        match self.format {
            TraceFormat::Auto => {
                let name = if super::trace_csv::is_gzip_name(&self.file) {
                    self.file.with_extension("")
                } else {
                    self.file.clone()
                };
                let ext = name.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext.eq_ignore_ascii_case("jsonl") || ext.eq_ignore_ascii_case("json") {
                    TraceFormat::Mooncake
                } else {
                    TraceFormat::Csv
                }
            }
            other => other,
        }
    }
}

pub(crate) fn one() -> f64 {
    1.0
}
pub(crate) fn default_arrival_column() -> String {
    "arrived_at".to_string()
}
pub(crate) fn default_min_tokens() -> u32 {
    1024
}
pub(crate) fn default_pd_ratio() -> f64 {
    20.0
}
pub(crate) fn default_zipf_theta() -> f64 {
    0.6
}
pub(crate) fn default_min_turns() -> u32 {
    1
}
pub(crate) fn default_max_turns() -> u32 {
    8
}
pub(crate) fn default_think_time_s() -> f64 {
    10.0
}
pub(crate) fn default_block_tokens() -> u32 {
    512
}
