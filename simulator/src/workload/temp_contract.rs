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
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            num_requests: 1000,
            qps: 4.0,
            prefill_tokens: 1024,
            decode_tokens: 256,
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
        Ok(())
    }

    /// The longest prompt plus output any request can have.
    pub fn max_request_tokens(&self) -> u32 {
        self.prefill_tokens + self.decode_tokens
    }
}

/// Command-line flags of the workload.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WorkloadArgs {
    /// Number of requests [default: 1000]
    #[arg(long)]
    pub num_requests: Option<u64>,
    /// Poisson arrival rate, requests per second [default: 4]
    #[arg(long)]
    pub qps: Option<f64>,
    /// Prompt tokens of every request [default: 1024]
    #[arg(long)]
    pub prefill_tokens: Option<u32>,
    /// Output tokens of every request [default: 256]
    #[arg(long)]
    pub decode_tokens: Option<u32>,
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
    }
}

/// The requests of `cfg`, in arrival order.
pub fn generate(
    cfg: &WorkloadConfig,
    seed: u64,
) -> Result<Box<dyn Iterator<Item = RequestSpec> + Send>, WorkloadError> {
    cfg.validate()?;
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
