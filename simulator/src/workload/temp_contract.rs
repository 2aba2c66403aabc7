//! TEMPORARY stand-in for the workload generators (Poisson arrivals, fixed lengths only), written
//! to the workload contract so the engine builds and runs before the real generators are merged.
//! THE LEAD REPLACES THIS FILE AT MERGE with the workload helper's implementation.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::RequestSpec;

/// Errors in a workload configuration or its data.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A trace file that cannot be used.
    #[error("trace {path}: {why}")]
    Trace {
        /// The file.
        path: String,
        /// What is wrong, and what to do.
        why: String,
    },
    /// A field has a value that cannot work.
    #[error("workload: {field} = {value} is invalid: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why, and what to use instead.
        why: &'static str,
    },
}

/// The workload (section `[workload]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Number of requests.
    pub num_requests: u64,
    /// Poisson arrival rate, requests per second.
    pub qps: f64,
    /// Prompt tokens of every request.
    pub prefill_tokens: u32,
    /// Output tokens of every request.
    pub decode_tokens: u32,
    /// Longest request, prompt plus output tokens.
    pub max_tokens: u32,
    /// Replay this Vidur trace CSV (`arrived_at`, `num_prefill_tokens`, `num_decode_tokens`)
    /// instead of the synthetic requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<std::path::PathBuf>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            num_requests: 1000,
            qps: 6.0,
            prefill_tokens: 1024,
            decode_tokens: 256,
            max_tokens: 4096,
            trace: None,
        }
    }
}

impl WorkloadConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return Err(WorkloadError::Invalid {
                field: "qps",
                value: self.qps.to_string(),
                why: "the arrival rate must be a positive number of requests per second",
            });
        }
        if self.prefill_tokens == 0 || self.decode_tokens == 0 {
            return Err(WorkloadError::Invalid {
                field: "prefill_tokens/decode_tokens",
                value: format!("{}/{}", self.prefill_tokens, self.decode_tokens),
                why: "requests need at least one prompt and one output token",
            });
        }
        if self.trace.is_none() && self.prefill_tokens + self.decode_tokens > self.max_tokens {
            return Err(WorkloadError::Invalid {
                field: "max_tokens",
                value: self.max_tokens.to_string(),
                why: "prefill_tokens + decode_tokens exceed it",
            });
        }
        Ok(())
    }

    /// The longest prompt plus output any request can have.
    pub fn max_request_tokens(&self) -> u32 {
        self.max_tokens
    }
}

/// Command-line flags of the workload.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WorkloadArgs {
    /// Number of requests [default: 1000]
    #[arg(long)]
    pub num_requests: Option<u64>,
    /// Poisson arrival rate, requests per second [default: 6]
    #[arg(long)]
    pub qps: Option<f64>,
    /// Prompt tokens of every request [default: 1024]
    #[arg(long)]
    pub prefill_tokens: Option<u32>,
    /// Output tokens of every request [default: 256]
    #[arg(long)]
    pub decode_tokens: Option<u32>,
    /// Longest request, prompt plus output tokens [default: 4096]
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Replay a Vidur trace CSV (arrived_at, num_prefill_tokens, num_decode_tokens)
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
}

impl WorkloadArgs {
    /// Overrides the fields of `cfg` given on the command line.
    pub fn apply_to(&self, cfg: &mut WorkloadConfig) {
        if let Some(v) = self.num_requests {
            cfg.num_requests = v;
        }
        if let Some(v) = self.qps {
            cfg.qps = v;
        }
        if let Some(v) = self.prefill_tokens {
            cfg.prefill_tokens = v;
        }
        if let Some(v) = self.decode_tokens {
            cfg.decode_tokens = v;
        }
        if let Some(v) = self.max_tokens {
            cfg.max_tokens = v;
        }
        if self.trace.is_some() {
            cfg.trace = self.trace.clone();
        }
    }
}

/// The requests of `cfg`, in arrival order.
pub fn generate(
    cfg: &WorkloadConfig,
    seed: u64,
) -> Result<Box<dyn Iterator<Item = RequestSpec> + Send>, WorkloadError> {
    cfg.validate()?;
    if let Some(path) = &cfg.trace {
        return Ok(Box::new(read_trace(path, cfg.max_tokens)?.into_iter()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let qps = cfg.qps;
    let (p, d) = (cfg.prefill_tokens, cfg.decode_tokens);
    let mut t_s = 0.0f64;
    Ok(Box::new((0..cfg.num_requests).map(move |_| {
        let u: f64 = rng.random();
        t_s += -(1.0 - u).ln() / qps;
        RequestSpec::simple((t_s * 1e9).round() as u64, p, d)
    })))
}

fn read_trace(path: &std::path::Path, max_tokens: u32) -> Result<Vec<RequestSpec>, WorkloadError> {
    let err = |why: String| WorkloadError::Trace {
        path: path.display().to_string(),
        why,
    };
    let mut rd = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
    let headers = rd.headers().map_err(|e| err(e.to_string()))?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            err(format!(
                "missing column {name} (columns: {}); a trace needs arrived_at, num_prefill_tokens and num_decode_tokens",
                headers.iter().collect::<Vec<_>>().join(", ")
            ))
        })
    };
    let (a, p, d) = (
        col("arrived_at")?,
        col("num_prefill_tokens")?,
        col("num_decode_tokens")?,
    );
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| err(e.to_string()))?;
        let num = |c: usize| -> Result<f64, WorkloadError> {
            rec.get(c)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| {
                    err(format!(
                        "line {}: column {} is not a number",
                        i + 2,
                        headers.get(c).unwrap_or("")
                    ))
                })
        };
        let arrival_s = num(a)?;
        let mut pt = (num(p)? as u32).max(1);
        let dt = (num(d)? as u32).max(1);
        if pt + dt > max_tokens {
            pt = max_tokens.saturating_sub(dt).max(1);
        }
        out.push(RequestSpec::simple(
            (arrival_s * 1e9).round() as u64,
            pt,
            dt.min(max_tokens - pt),
        ));
    }
    if out.is_empty() {
        return Err(err("has no requests (only a header or nothing)".into()));
    }
    out.sort_by_key(|r| r.arrival_ns);
    Ok(out)
}
