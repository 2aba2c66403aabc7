//! The one list of replica schedulers: name → constructor and constraints. Adding a policy means
//! one file and one entry here.

use super::{ReplicaScheduler, SchedulerParams};

/// A registered policy.
pub struct SchedulerEntry {
    /// Name used in configs and on the command line.
    pub name: &'static str,
    /// One line for `--help` and the docs.
    pub summary: &'static str,
    /// KV blocks hold one token each whatever `block_size` says (LightLLM).
    pub token_blocks: bool,
    /// Largest pipeline depth the policy supports, if limited.
    pub max_pipeline_stages: Option<u32>,
    /// Can serve a decode pool: takes requests prefilled on another replica
    /// ([`super::ReplicaScheduler::add_prefilled`]).
    pub takes_prefilled: bool,
    /// The `[scheduler]` knobs it reads, besides the memory ones every policy uses (`block_size`,
    /// `num_blocks`, `vllm_v1.gpu_memory_utilization`): a knob set for a policy that does not
    /// read it is an error ([`super::SchedulerConfig::ignored_knob`]).
    pub knobs: &'static [&'static str],
    /// Builds the policy.
    pub build: fn(&SchedulerParams) -> Box<dyn ReplicaScheduler>,
}

impl std::fmt::Debug for SchedulerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerEntry")
            .field("name", &self.name)
            .finish()
    }
}

/// Every policy, by name.
pub static SCHEDULERS: &[SchedulerEntry] = &[
    SchedulerEntry {
        name: "vllm",
        summary: "vLLM v0: prefill-prioritizing, whole prompts, recompute preemption",
        token_blocks: false,
        max_pipeline_stages: None,
        takes_prefilled: true,
        knobs: &["batch_size_cap", "max_tokens_in_batch", "watermark_blocks_fraction"],
        build: |p| Box::new(super::vllm::Vllm::new(p)),
    },
    SchedulerEntry {
        name: "orca",
        summary: "Orca: iteration-level batching, whole prompts, max-length reservation",
        token_blocks: false,
        max_pipeline_stages: None,
        takes_prefilled: false,
        knobs: &["batch_size_cap"],
        build: |p| Box::new(super::orca::Orca::new(p)),
    },
    SchedulerEntry {
        name: "faster_transformer",
        summary: "FasterTransformer: request-level static batches, max-length reservation",
        token_blocks: false,
        max_pipeline_stages: None,
        takes_prefilled: false,
        knobs: &["batch_size_cap"],
        build: |p| Box::new(super::faster_transformer::FasterTransformer::new(p)),
    },
    SchedulerEntry {
        name: "sarathi",
        summary: "Sarathi-Serve: chunked prefills mixed with decodes under a token budget",
        token_blocks: false,
        max_pipeline_stages: None,
        takes_prefilled: true,
        knobs: &["batch_size_cap", "chunk_size", "watermark_blocks_fraction"],
        build: |p| Box::new(super::sarathi::Sarathi::new(p)),
    },
    SchedulerEntry {
        name: "vllm_v1",
        summary: "vLLM V1: token budget over running then waiting requests, chunked prefill, recompute preemption, prefix caching",
        token_blocks: false,
        max_pipeline_stages: None,
        takes_prefilled: true,
        knobs: &[
            "vllm_v1.max_num_batched_tokens",
            "vllm_v1.max_num_seqs",
            "vllm_v1.long_prefill_token_threshold",
            "vllm_v1.enable_chunked_prefill",
            "vllm_v1.max_model_len",
        ],
        build: |p| Box::new(super::vllm_v1::VllmV1::new(p)),
    },
    SchedulerEntry {
        name: "lightllm",
        summary: "LightLLM: token-granular KV, admission by projected peak memory",
        token_blocks: true,
        max_pipeline_stages: Some(1),
        takes_prefilled: false,
        knobs: &["batch_size_cap", "max_tokens_in_batch", "max_waiting_iters"],
        build: |p| Box::new(super::lightllm::LightLlm::new(p)),
    },
];

/// The policy called `name`, or an error listing the known ones.
pub fn find(name: &str) -> Result<&'static SchedulerEntry, String> {
    SCHEDULERS.iter().find(|e| e.name == name).ok_or_else(|| {
        format!(
            "unknown replica scheduler `{name}`; known: {}",
            names().join(", ")
        )
    })
}

/// Whether policy `name` supports automatic prefix caching, and its default: `Some(true)` for
/// `vllm_v1` (on by default, as in vLLM V1), `Some(false)` for `sarathi` (off unless asked),
/// `None` for the policies that cannot use it.
pub fn prefix_caching_default(name: &str) -> Option<bool> {
    match name {
        "vllm_v1" => Some(true),
        "sarathi" => Some(false),
        _ => None,
    }
}

/// Names of every policy.
pub fn names() -> Vec<&'static str> {
    SCHEDULERS.iter().map(|e| e.name).collect()
}
