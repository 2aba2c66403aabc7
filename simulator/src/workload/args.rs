//! Command-line flags for the workload (`simulator run … --qps 8 --lengths uniform …`), overlaid on
//! the `[workload]` section of a configuration file. `docs/workloads.md` documents each flag.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::config::{
    default_min_tokens, default_pd_ratio, default_zipf_theta, ArrivalConfig, LengthConfig,
    PrefixConfig, PrefixLaw, SessionConfig, TraceConfig, TraceFormat, WorkloadConfig,
    DEFAULT_DECODE_TOKENS, DEFAULT_PREFILL_TOKENS, DEFAULT_QPS,
};
use super::error::WorkloadError;

/// Arrival process named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArrivalKind {
    /// Poisson process (`--qps`).
    Poisson,
    /// Gamma inter-arrival times (`--qps`, `--cv`).
    Gamma,
    /// Everything at t = 0.
    Static,
    /// Arrival times from a CSV column (`--arrival-trace`).
    Trace,
    /// Poisson stages of constant rate (`--rate-stages`).
    Stages,
}

/// Length law named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LengthKind {
    /// Fixed lengths (`--prefill-tokens`, `--decode-tokens`).
    Fixed,
    /// Uniform total length (`--min-tokens`, `--length-max-tokens`, `--pd-ratio`).
    Uniform,
    /// Zipf total length (`--min-tokens`, `--length-max-tokens`, `--pd-ratio`, `--zipf-theta`).
    Zipf,
    /// Lengths from a CSV trace (`--length-trace`).
    Trace,
}

/// Default number of shared prompts when a prefix flag creates `[workload.prefix]`.
const FLAG_DEFAULT_PREFIXES: u32 = 16;
/// Default shared-prompt length when a prefix flag creates `[workload.prefix]`.
const FLAG_DEFAULT_PREFIX_TOKENS: u32 = 512;
/// Default coefficient of variation when `--arrival gamma` has no `--cv` (Vidur's default).
const FLAG_DEFAULT_CV: f64 = 0.5;

/// Workload flags. Each one given overrides the matching field of the `[workload]` section.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Workload")]
pub struct WorkloadArgs {
    /// Number of requests [default: 1000; a trace replay reads the whole file]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub num_requests: Option<u64>,
    /// Only generate requests arriving before this many simulated seconds
    #[arg(
        long = "duration",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub duration_s: Option<f64>,
    /// Longest request, prompt plus output tokens; bounds uniform/zipf lengths and clips traces [default: 4096]
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub max_tokens: Option<u32>,

    /// Arrival process [default: poisson]
    #[arg(long, value_enum, value_name = "KIND")]
    pub arrival: Option<ArrivalKind>,
    /// Mean arrival rate, requests (or sessions) per second, for poisson and gamma [default: 6]
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub qps: Option<f64>,
    /// Poisson stages, each RATE:SECONDS, comma-separated, e.g. 8:600,20:600 (implies --arrival stages)
    // (the type is spelled out so that clap takes the parsed list as one value, not as a list of
    // values: `Option<Vec<_>>` made clap panic on every use of the option)
    // (negative rates reach the range check, which names the field)
    #[arg(
        long,
        value_name = "RATE:SECONDS,...",
        value_parser = parse_stages,
        allow_hyphen_values = true
    )]
    pub rate_stages: Option<std::vec::Vec<super::config::RateStage>>,
    /// Coefficient of variation of gamma inter-arrival times (1 = Poisson, >1 bursty) [default: 0.5]
    #[arg(long, value_name = "CV", allow_negative_numbers = true)]
    pub cv: Option<f64>,
    /// CSV file whose column gives arrival times in seconds (implies --arrival trace)
    #[arg(long, value_name = "FILE")]
    pub arrival_trace: Option<PathBuf>,
    /// Column of --arrival-trace holding arrival times [default: arrived_at]
    #[arg(long, value_name = "NAME")]
    pub arrival_column: Option<String>,
    /// Multiply every traced arrival time by this factor (<1 compresses time) [default: 1]
    #[arg(
        long = "time-scale",
        value_name = "FACTOR",
        allow_negative_numbers = true
    )]
    pub time_scale_factor: Option<f64>,

    /// Length law [default: fixed]
    #[arg(long, value_enum, value_name = "KIND")]
    pub lengths: Option<LengthKind>,
    /// Prompt tokens of fixed lengths [default: 1024]
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub prefill_tokens: Option<u32>,
    /// Output tokens of fixed lengths [default: 256]
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub decode_tokens: Option<u32>,
    /// Smallest total length of uniform and zipf lengths [default: 1024]
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub min_tokens: Option<u32>,
    /// Largest total length of uniform and zipf lengths [default: --max-tokens, less any shared prefix]
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub length_max_tokens: Option<u32>,
    /// Prompt-to-output ratio of uniform and zipf lengths [default: 20]
    #[arg(long, value_name = "RATIO", allow_negative_numbers = true)]
    pub pd_ratio: Option<f64>,
    /// Skew of zipf lengths, strictly between 0 and 1 [default: 0.6]
    #[arg(long, value_name = "THETA", allow_negative_numbers = true)]
    pub zipf_theta: Option<f64>,
    /// Spread zipf's frequent lengths over the range by a seeded permutation
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub zipf_scramble: Option<bool>,
    /// CSV with num_prefill_tokens and num_decode_tokens to draw lengths from (implies --lengths trace)
    #[arg(long, value_name = "FILE")]
    pub length_trace: Option<PathBuf>,
    /// Multiply traced prompt lengths by this factor [default: 1]
    #[arg(
        long = "prefill-scale",
        value_name = "FACTOR",
        allow_negative_numbers = true
    )]
    pub prefill_scale_factor: Option<f64>,
    /// Multiply traced output lengths by this factor [default: 1]
    #[arg(
        long = "decode-scale",
        value_name = "FACTOR",
        allow_negative_numbers = true
    )]
    pub decode_scale_factor: Option<f64>,

    /// Replay this trace (Vidur CSV or Mooncake JSON lines) instead of a synthetic workload
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Format of --trace [default: auto, by extension: .jsonl/.json = mooncake, else csv; a .gz file is decompressed]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub trace_format: Option<TraceFormat>,
    /// Tokens per hash block of a Mooncake trace [default: 512]
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub block_tokens: Option<u32>,

    /// Number of shared system prompts (adds prefix groups; 0 removes them) [default when added: 16]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub prefix_groups: Option<u32>,
    /// Length of each shared system prompt, tokens [default when added: 512]
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub prefix_tokens: Option<u32>,
    /// How a request picks its shared prompt [default: uniform]
    #[arg(long, value_enum, value_name = "LAW")]
    pub prefix_law: Option<PrefixLaw>,
    /// Zipf exponent of --prefix-law zipf (≥ 0) [default: 1]
    #[arg(long, value_name = "THETA", allow_negative_numbers = true)]
    pub prefix_zipf_theta: Option<f64>,

    /// Fewest turns per multi-turn session (adds sessions) [default when added: 1]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub min_turns: Option<u32>,
    /// Most turns per multi-turn session (adds sessions) [default when added: 8]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_turns: Option<u32>,
    /// Mean think time between a session's turns, seconds (adds sessions) [default when added: 10]
    #[arg(
        long = "think-time",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub think_time_s: Option<f64>,
}

impl WorkloadArgs {
    /// Overlays the flags that were given on `cfg` (flags override the file). Flags that do not
    /// apply to the resulting workload (e.g. `--cv` with Poisson arrivals) are left out; use
    /// [`WorkloadArgs::try_apply_to`] to have them reported as an error.
    pub fn apply_to(&self, cfg: &mut WorkloadConfig) {
        let _unused = self.overlay(cfg);
    }

    /// As [`WorkloadArgs::apply_to`], then fails if a given flag does not apply to the resulting
    /// workload, naming the flags.
    pub fn try_apply_to(&self, cfg: &mut WorkloadConfig) -> Result<(), WorkloadError> {
        let unused = self.overlay(cfg);
        if unused.is_empty() {
            Ok(())
        } else {
            Err(WorkloadError::Conflict(format!(
                "{} {} not apply to this workload ({}); remove {} or choose a workload that uses {}",
                unused.join(", "),
                if unused.len() == 1 { "does" } else { "do" },
                describe(cfg),
                if unused.len() == 1 { "it" } else { "them" },
                if unused.len() == 1 { "it" } else { "them" },
            )))
        }
    }

    /// Applies the flags; returns the given flags that had nowhere to go.
    fn overlay(&self, cfg: &mut WorkloadConfig) -> Vec<&'static str> {
        let mut unused = Vec::new();
        if let Some(n) = self.num_requests {
            cfg.num_requests = Some(n);
        }
        if let Some(d) = self.duration_s {
            cfg.duration_s = Some(d);
        }
        if let Some(m) = self.max_tokens {
            cfg.max_tokens = m;
        }
        let synthetic_flags = self.arrival.is_some() || self.lengths.is_some();
        if let Some(file) = &self.trace {
            let mut trace = cfg.trace.take().unwrap_or_else(|| TraceConfig::new(file));
            trace.file = file.clone();
            trace.format = TraceFormat::Auto;
            cfg.trace = Some(trace);
            // The trace replaces the synthetic parts; explicit synthetic flags still apply (and
            // validation reports the conflict).
            cfg.arrival = ArrivalConfig::default();
            cfg.lengths = LengthConfig::default();
            cfg.prefix = None;
            cfg.sessions = None;
            if self.num_requests.is_none() {
                cfg.num_requests = None;
            }
        } else if synthetic_flags {
            cfg.trace = None;
        }
        self.overlay_arrival(cfg, &mut unused);
        self.overlay_lengths(cfg, &mut unused);
        self.overlay_trace(cfg, &mut unused);
        self.overlay_prefix(cfg);
        self.overlay_sessions(cfg);
        unused
    }

    fn overlay_arrival(&self, cfg: &mut WorkloadConfig, unused: &mut Vec<&'static str>) {
        let kind = self
            .arrival
            .or(self.arrival_trace.as_ref().map(|_| ArrivalKind::Trace))
            .or(self.rate_stages.as_ref().map(|_| ArrivalKind::Stages));
        let touched = kind.is_some()
            || self.qps.is_some()
            || self.cv.is_some()
            || self.arrival_column.is_some();
        if !touched {
            return;
        }
        let (old_qps, old_cv) = match &cfg.arrival {
            ArrivalConfig::Poisson { qps } => (Some(*qps), None),
            ArrivalConfig::Gamma { qps, cv } => (Some(*qps), Some(*cv)),
            _ => (None, None),
        };
        let kind = kind.unwrap_or(match cfg.arrival {
            ArrivalConfig::Poisson { .. } => ArrivalKind::Poisson,
            ArrivalConfig::Gamma { .. } => ArrivalKind::Gamma,
            ArrivalConfig::Static => ArrivalKind::Static,
            ArrivalConfig::Trace { .. } => ArrivalKind::Trace,
            ArrivalConfig::Stages { .. } => ArrivalKind::Stages,
        });
        let qps = self.qps.or(old_qps).unwrap_or(DEFAULT_QPS);
        let uses_qps = matches!(kind, ArrivalKind::Poisson | ArrivalKind::Gamma);
        if self.qps.is_some() && !uses_qps {
            unused.push("--qps");
        }
        if self.cv.is_some() && kind != ArrivalKind::Gamma {
            unused.push("--cv");
        }
        if self.arrival_column.is_some() && kind != ArrivalKind::Trace {
            unused.push("--arrival-column");
        }
        cfg.arrival = match kind {
            ArrivalKind::Poisson => ArrivalConfig::Poisson { qps },
            ArrivalKind::Gamma => ArrivalConfig::Gamma {
                qps,
                cv: self.cv.or(old_cv).unwrap_or(FLAG_DEFAULT_CV),
            },
            ArrivalKind::Static => ArrivalConfig::Static,
            ArrivalKind::Stages => ArrivalConfig::Stages {
                stages: match (&self.rate_stages, &cfg.arrival) {
                    (Some(s), _) => s.clone(),
                    (None, ArrivalConfig::Stages { stages }) => stages.clone(),
                    // An empty list is reported by validation ("give --rate-stages").
                    _ => Vec::new(),
                },
            },
            ArrivalKind::Trace => {
                let (old_file, old_column, old_scale) = match &cfg.arrival {
                    ArrivalConfig::Trace {
                        trace_file,
                        column,
                        time_scale_factor,
                    } => (
                        Some(trace_file.clone()),
                        Some(column.clone()),
                        Some(*time_scale_factor),
                    ),
                    _ => (None, None, None),
                };
                ArrivalConfig::Trace {
                    // An empty path is reported by validation ("give the CSV").
                    trace_file: self.arrival_trace.clone().or(old_file).unwrap_or_default(),
                    column: self
                        .arrival_column
                        .clone()
                        .or(old_column)
                        .unwrap_or_else(super::config::default_arrival_column),
                    time_scale_factor: old_scale.unwrap_or(1.0),
                }
            }
        };
        if self.arrival_trace.is_some() && kind != ArrivalKind::Trace {
            unused.push("--arrival-trace");
        }
        if self.rate_stages.is_some() && kind != ArrivalKind::Stages {
            unused.push("--rate-stages");
        }
    }

    fn overlay_lengths(&self, cfg: &mut WorkloadConfig, unused: &mut Vec<&'static str>) {
        let kind = self
            .lengths
            .or(self.length_trace.as_ref().map(|_| LengthKind::Trace));
        let touched = kind.is_some()
            || self.prefill_tokens.is_some()
            || self.decode_tokens.is_some()
            || self.min_tokens.is_some()
            || self.length_max_tokens.is_some()
            || self.pd_ratio.is_some()
            || self.zipf_theta.is_some()
            || self.zipf_scramble.is_some();
        if !touched {
            return;
        }
        let kind = kind.unwrap_or(match cfg.lengths {
            LengthConfig::Fixed { .. } => LengthKind::Fixed,
            LengthConfig::Uniform { .. } => LengthKind::Uniform,
            LengthConfig::Zipf { .. } => LengthKind::Zipf,
            LengthConfig::Trace { .. } => LengthKind::Trace,
        });
        let (mut old_p, mut old_d, mut old_min, mut old_ratio, mut old_theta, mut old_scramble) =
            (None, None, None, None, None, None);
        let (mut old_file, mut old_pscale, mut old_dscale) = (None, None, None);
        let mut old_max = None;
        match &cfg.lengths {
            LengthConfig::Fixed {
                prefill_tokens,
                decode_tokens,
            } => (old_p, old_d) = (Some(*prefill_tokens), Some(*decode_tokens)),
            LengthConfig::Uniform {
                min_tokens,
                max_tokens,
                pd_ratio,
            } => {
                (old_min, old_ratio) = (Some(*min_tokens), Some(*pd_ratio));
                old_max = *max_tokens;
            }
            LengthConfig::Zipf {
                min_tokens,
                max_tokens,
                pd_ratio,
                theta,
                scramble,
            } => {
                (old_min, old_ratio) = (Some(*min_tokens), Some(*pd_ratio));
                old_max = *max_tokens;
                (old_theta, old_scramble) = (Some(*theta), Some(*scramble));
            }
            LengthConfig::Trace {
                trace_file,
                prefill_scale_factor,
                decode_scale_factor,
            } => {
                old_file = Some(trace_file.clone());
                (old_pscale, old_dscale) =
                    (Some(*prefill_scale_factor), Some(*decode_scale_factor));
            }
        }
        let flag_unless =
            |given: bool, applies: bool, name: &'static str, unused: &mut Vec<&'static str>| {
                if given && !applies {
                    unused.push(name);
                }
            };
        let fixed = kind == LengthKind::Fixed;
        let ranged = matches!(kind, LengthKind::Uniform | LengthKind::Zipf);
        flag_unless(
            self.prefill_tokens.is_some(),
            fixed,
            "--prefill-tokens",
            unused,
        );
        flag_unless(
            self.decode_tokens.is_some(),
            fixed,
            "--decode-tokens",
            unused,
        );
        flag_unless(self.min_tokens.is_some(), ranged, "--min-tokens", unused);
        flag_unless(self.pd_ratio.is_some(), ranged, "--pd-ratio", unused);
        flag_unless(
            self.length_max_tokens.is_some(),
            ranged,
            "--length-max-tokens",
            unused,
        );
        flag_unless(
            self.zipf_theta.is_some(),
            kind == LengthKind::Zipf,
            "--zipf-theta",
            unused,
        );
        flag_unless(
            self.zipf_scramble.is_some(),
            kind == LengthKind::Zipf,
            "--zipf-scramble",
            unused,
        );
        flag_unless(
            self.length_trace.is_some(),
            kind == LengthKind::Trace,
            "--length-trace",
            unused,
        );
        let max_tokens = self.length_max_tokens.or(old_max);
        let min_tokens = self
            .min_tokens
            .or(old_min)
            .unwrap_or_else(default_min_tokens);
        let pd_ratio = self.pd_ratio.or(old_ratio).unwrap_or_else(default_pd_ratio);
        cfg.lengths = match kind {
            LengthKind::Fixed => LengthConfig::Fixed {
                prefill_tokens: self
                    .prefill_tokens
                    .or(old_p)
                    .unwrap_or(DEFAULT_PREFILL_TOKENS),
                decode_tokens: self
                    .decode_tokens
                    .or(old_d)
                    .unwrap_or(DEFAULT_DECODE_TOKENS),
            },
            LengthKind::Uniform => LengthConfig::Uniform {
                min_tokens,
                max_tokens,
                pd_ratio,
            },
            LengthKind::Zipf => LengthConfig::Zipf {
                min_tokens,
                max_tokens,
                pd_ratio,
                theta: self
                    .zipf_theta
                    .or(old_theta)
                    .unwrap_or_else(default_zipf_theta),
                scramble: self.zipf_scramble.or(old_scramble).unwrap_or(false),
            },
            LengthKind::Trace => LengthConfig::Trace {
                // An empty path is reported by validation ("give the CSV").
                trace_file: self.length_trace.clone().or(old_file).unwrap_or_default(),
                prefill_scale_factor: old_pscale.unwrap_or(1.0),
                decode_scale_factor: old_dscale.unwrap_or(1.0),
            },
        };
    }

    /// The factors and format that apply to a trace replay, an arrival trace or a length trace.
    fn overlay_trace(&self, cfg: &mut WorkloadConfig, unused: &mut Vec<&'static str>) {
        if let Some(trace) = &mut cfg.trace {
            if let Some(f) = self.trace_format {
                trace.format = f;
            }
            if let Some(t) = self.time_scale_factor {
                trace.time_scale_factor = t;
            }
            if let Some(p) = self.prefill_scale_factor {
                trace.prefill_scale_factor = p;
            }
            if let Some(d) = self.decode_scale_factor {
                trace.decode_scale_factor = d;
            }
            if let Some(b) = self.block_tokens {
                trace.block_tokens = b;
            }
            return;
        }
        if self.trace_format.is_some() {
            unused.push("--trace-format");
        }
        if self.block_tokens.is_some() {
            unused.push("--block-tokens");
        }
        match (&mut cfg.arrival, self.time_scale_factor) {
            (
                ArrivalConfig::Trace {
                    time_scale_factor, ..
                },
                Some(t),
            ) => *time_scale_factor = t,
            (_, Some(_)) => unused.push("--time-scale"),
            _ => {}
        }
        if let LengthConfig::Trace {
            prefill_scale_factor,
            decode_scale_factor,
            ..
        } = &mut cfg.lengths
        {
            if let Some(p) = self.prefill_scale_factor {
                *prefill_scale_factor = p;
            }
            if let Some(d) = self.decode_scale_factor {
                *decode_scale_factor = d;
            }
        } else {
            if self.prefill_scale_factor.is_some() {
                unused.push("--prefill-scale");
            }
            if self.decode_scale_factor.is_some() {
                unused.push("--decode-scale");
            }
        }
    }

    fn overlay_prefix(&self, cfg: &mut WorkloadConfig) {
        if self.prefix_groups == Some(0) {
            cfg.prefix = None;
            return;
        }
        let touched = self.prefix_groups.is_some()
            || self.prefix_tokens.is_some()
            || self.prefix_law.is_some()
            || self.prefix_zipf_theta.is_some();
        if !touched {
            return;
        }
        let prefix = cfg.prefix.get_or_insert(PrefixConfig {
            num_prefixes: FLAG_DEFAULT_PREFIXES,
            prefix_tokens: FLAG_DEFAULT_PREFIX_TOKENS,
            law: PrefixLaw::default(),
            zipf_theta: 1.0,
        });
        if let Some(n) = self.prefix_groups {
            prefix.num_prefixes = n;
        }
        if let Some(t) = self.prefix_tokens {
            prefix.prefix_tokens = t;
        }
        if let Some(law) = self.prefix_law {
            prefix.law = law;
        }
        if let Some(theta) = self.prefix_zipf_theta {
            prefix.zipf_theta = theta;
        }
    }

    fn overlay_sessions(&self, cfg: &mut WorkloadConfig) {
        if self.min_turns.is_none() && self.max_turns.is_none() && self.think_time_s.is_none() {
            return;
        }
        let sessions = cfg.sessions.get_or_insert_with(SessionConfig::default);
        if let Some(n) = self.min_turns {
            sessions.min_turns = n;
            if self.max_turns.is_none() {
                sessions.max_turns = sessions.max_turns.max(n);
            }
        }
        if let Some(n) = self.max_turns {
            sessions.max_turns = n;
            if self.min_turns.is_none() {
                sessions.min_turns = sessions.min_turns.min(n.max(1));
            }
        }
        if let Some(t) = self.think_time_s {
            sessions.think_time_s = t;
        }
    }
}

/// Parses `--rate-stages`: `RATE:SECONDS` pairs separated by commas.
fn parse_stages(text: &str) -> Result<Vec<super::config::RateStage>, String> {
    text.split(',')
        .map(|pair| {
            let (qps, d) = pair
                .split_once(':')
                .ok_or_else(|| format!("`{pair}` is not RATE:SECONDS (e.g. 8:600)"))?;
            let num = |v: &str, what: &str| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{v}` in `{pair}` is not a number of {what}"))
            };
            Ok(super::config::RateStage {
                qps: num(qps, "requests per second")?,
                duration_s: num(d, "seconds")?,
            })
        })
        .collect()
}

fn describe(cfg: &WorkloadConfig) -> String {
    if let Some(trace) = &cfg.trace {
        return format!("a replay of {}", trace.file.display());
    }
    let arrival = match cfg.arrival {
        ArrivalConfig::Poisson { .. } => "poisson",
        ArrivalConfig::Gamma { .. } => "gamma",
        ArrivalConfig::Static => "static",
        ArrivalConfig::Trace { .. } => "trace",
        ArrivalConfig::Stages { .. } => "staged",
    };
    let lengths = match cfg.lengths {
        LengthConfig::Fixed { .. } => "fixed",
        LengthConfig::Uniform { .. } => "uniform",
        LengthConfig::Zipf { .. } => "zipf",
        LengthConfig::Trace { .. } => "trace",
    };
    format!("{arrival} arrivals, {lengths} lengths")
}
