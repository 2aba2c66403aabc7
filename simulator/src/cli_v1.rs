//! Command-line flags of the `vllm_v1` scheduler and of prefix caching (vLLM's engine-argument
//! names), flattened into the scheduler flags of `simulator run`.

use clap::Args;

use simulator::scheduler::SchedulerConfig;

/// vLLM V1 and prefix-caching flags.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Scheduler: vllm_v1 and prefix caching")]
pub struct VllmV1Args {
    /// Automatic prefix caching (vllm_v1, sarathi) [default: on for vllm_v1, off otherwise]
    #[arg(long, overrides_with = "no_enable_prefix_caching")]
    pub enable_prefix_caching: bool,
    /// Turns automatic prefix caching off
    #[arg(long, overrides_with = "enable_prefix_caching")]
    pub no_enable_prefix_caching: bool,
    /// Token budget per step (vllm_v1) [default: 2048 with chunked prefill, max(max_model_len, 2048) without]
    #[arg(long)]
    pub max_num_batched_tokens: Option<u32>,
    /// Most requests running at once (vllm_v1) [default: 256]
    #[arg(long)]
    pub max_num_seqs: Option<u32>,
    /// Largest prefill chunk per request and step, 0 for none (vllm_v1) [default: 0]
    #[arg(long)]
    pub long_prefill_token_threshold: Option<u32>,
    /// Turns chunked prefill off (vllm_v1) [default: on]
    #[arg(long)]
    pub no_enable_chunked_prefill: bool,
    /// Longest request, tokens (vllm_v1) [default: the workload's max_tokens]
    #[arg(long)]
    pub max_model_len: Option<u32>,
    /// Fraction of GPU memory for weights, activations and KV cache; replaces --memory-margin
    /// with 1 − this value [default: 1 − memory margin = 0.9]
    #[arg(long)]
    pub gpu_memory_utilization: Option<f64>,
    /// Plan each step while the previous one runs, as vLLM's --async-scheduling (vllm_v1) [default: the calibrated engine's, on for vLLM 0.15.1 with the engine backend]
    #[arg(long, overrides_with = "no_async_scheduling")]
    pub async_scheduling: bool,
    /// Turns asynchronous scheduling off (vllm_v1)
    #[arg(long, overrides_with = "async_scheduling")]
    pub no_async_scheduling: bool,
}

impl VllmV1Args {
    /// Applies the flags given to `cfg`.
    pub fn apply_to(&self, cfg: &mut SchedulerConfig) {
        if self.enable_prefix_caching {
            cfg.enable_prefix_caching = Some(true);
        }
        if self.no_enable_prefix_caching {
            cfg.enable_prefix_caching = Some(false);
        }
        let v = &mut cfg.vllm_v1;
        if self.max_num_batched_tokens.is_some() {
            v.max_num_batched_tokens = self.max_num_batched_tokens;
        }
        if let Some(n) = self.max_num_seqs {
            v.max_num_seqs = n;
        }
        if let Some(n) = self.long_prefill_token_threshold {
            v.long_prefill_token_threshold = n;
        }
        if self.no_enable_chunked_prefill {
            v.enable_chunked_prefill = false;
        }
        if self.max_model_len.is_some() {
            v.max_model_len = self.max_model_len;
        }
        if self.gpu_memory_utilization.is_some() {
            v.gpu_memory_utilization = self.gpu_memory_utilization;
        }
        if self.async_scheduling {
            v.async_scheduling = Some(true);
        }
        if self.no_async_scheduling {
            v.async_scheduling = Some(false);
        }
    }
}
