//! Transformer model descriptions: the facts of a Hugging Face `config.json` that timing depends on.

use serde::{Deserialize, Serialize};

/// Normalisation layer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// RMSNorm (Llama, Mistral, Qwen).
    RmsNorm,
    /// LayerNorm with bias (GPT-2, Phi).
    LayerNorm,
}

/// A mixture-of-experts MLP (Mixtral, Qwen3-MoE, Llama-4, DeepSeek-V3): a router picks
/// `experts_per_token` of `num_experts` routed experts per token; shared experts see every token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeSpec {
    /// Routed experts per MoE layer (`num_local_experts`, `num_experts`, `n_routed_experts`).
    pub num_experts: u32,
    /// Routed experts each token is sent to (`num_experts_per_tok`).
    pub experts_per_token: u32,
    /// MLP width of one routed expert (`moe_intermediate_size`; Mixtral and Llama-4: `intermediate_size`).
    pub expert_intermediate_size: u32,
    /// Shared experts applied to every token (`n_shared_experts`; Llama-4: 1).
    #[serde(default)]
    pub num_shared_experts: u32,
    /// MLP width of one shared expert (0 without shared experts).
    #[serde(default)]
    pub shared_expert_intermediate_size: u32,
    /// The first layers keep a dense MLP of width `intermediate_size` (`first_k_dense_replace`).
    #[serde(default)]
    pub first_dense_layers: u32,
    /// After those, every `layer_step`-th layer is MoE and the others dense
    /// (`interleave_moe_layer_step`, `decoder_sparse_step`; 1: every layer).
    #[serde(default = "one_u32")]
    pub layer_step: u32,
}

/// Multi-head latent attention (DeepSeek-V2/V3): keys and values are cached as one compressed
/// latent vector per token plus a shared rotary key; decode absorbs the up-projections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlaSpec {
    /// Rank of the query compression (`q_lora_rank`); absent: queries are projected directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_lora_rank: Option<u32>,
    /// Rank of the key/value latent (`kv_lora_rank`), cached per token.
    pub kv_lora_rank: u32,
    /// Per-head query/key dimension without rotary embedding (`qk_nope_head_dim`).
    pub qk_nope_head_dim: u32,
    /// Per-head rotary query/key dimension (`qk_rope_head_dim`), cached once per token.
    pub qk_rope_head_dim: u32,
    /// Per-head value dimension (`v_head_dim`).
    pub v_head_dim: u32,
}

/// How a local attention layer limits what a token attends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalAttentionKind {
    /// The last `window_tokens` tokens (Mistral, Gemma).
    SlidingWindow,
    /// The tokens of the same `window_tokens`-aligned chunk (Llama-4).
    Chunked,
}

/// Local (windowed) attention on some or all layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalAttention {
    /// Sliding window or chunked.
    pub kind: LocalAttentionKind,
    /// Window or chunk length, tokens.
    pub window_tokens: u32,
    /// Every `global_every`-th layer (1-based) attends globally; 0: every layer is local.
    #[serde(default)]
    pub global_every: u32,
}

fn one_u32() -> u32 {
    1
}

/// A decoder-only transformer (dense or mixture-of-experts), as described by its Hugging Face
/// `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Catalog name, e.g. `meta-llama/Llama-2-7b-hf` (the Hugging Face repository id), or the path
    /// of the `config.json` it was read from.
    pub name: String,
    /// The `architectures[0]` entry of `config.json`.
    pub architecture: String,
    /// Transformer blocks (`L`).
    pub num_hidden_layers: u32,
    /// Query heads (`Hq`).
    pub num_attention_heads: u32,
    /// Key/value heads (`Hkv`; equal to `Hq` without grouped-query attention).
    pub num_key_value_heads: u32,
    /// Embedding width (`E`).
    pub hidden_size: u32,
    /// MLP hidden width per branch (`F`).
    pub intermediate_size: u32,
    /// Vocabulary size.
    pub vocab_size: u32,
    /// Longest supported context, in tokens.
    pub max_position_embeddings: u32,
    /// MLP activation (`silu`, `gelu`, `gelu_new`, ...).
    pub hidden_act: String,
    /// Normalisation layer type.
    pub norm: Norm,
    /// Rotary embedding base.
    pub rope_theta: f64,
    /// Gated MLP (gate and up projections, SwiGLU) rather than a plain two-layer MLP.
    pub gated_mlp: bool,
    /// Biases on all linear layers.
    pub attention_bias: bool,
    /// Biases on the QKV projection only (Qwen).
    pub qkv_bias: bool,
    /// A second norm between attention and MLP (false for parallel-attention models such as Phi-2).
    pub post_attn_norm: bool,
    /// Fraction of the head dimension that gets rotary embedding.
    pub partial_rotary_factor: f64,
    /// Whether the LM head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Head dimension, where `config.json` gives one that differs from `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u32>,
    /// Mixture-of-experts MLP; absent: every layer has a dense MLP of `intermediate_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<MoeSpec>,
    /// Multi-head latent attention; absent: standard (grouped-query) attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla: Option<MlaSpec>,
    /// RMSNorm on each head's queries and keys (Qwen3).
    #[serde(default, skip_serializing_if = "is_false")]
    pub qk_norm: bool,
    /// Windowed attention on some or all layers; absent: every layer attends globally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_attention: Option<LocalAttention>,
    /// Data type of the published weights (`torch_dtype`: `bfloat16`, `float16`, `float32`).
    #[serde(default = "default_torch_dtype")]
    pub torch_dtype: String,
    /// Quantization of the published checkpoint (`fp8` for FP8 checkpoints such as RedHatAI's
    /// `-FP8` models and DeepSeek-V3); absent: unquantized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// The FP8 checkpoint leaves the attention projections in 16 bits (RedHatAI's Llama-4 FP8
    /// checkpoints quantize only the MLPs and experts); only meaningful with `quantization`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unquantized_attention: bool,
    /// Parameters of modules served alongside the language model but not modelled per token
    /// (a vision encoder of a multimodal checkpoint), counted in the weights only.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub extra_params: u64,
    /// The sampling defaults of the checkpoint's `generation_config.json`, which vLLM applies to
    /// every request that does not set its own (`--generation-config auto`, its default since
    /// v0.8); absent: the checkpoint sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationDefaults>,
    /// Where the numbers come from.
    pub source: String,
}

/// Sampling defaults from a checkpoint's `generation_config.json` (table `[generation]` of a
/// catalog model). They decide what vLLM's sampler does for requests that set none: top-p or
/// top-k filtering sorts every request's logits each step, which plain sampling does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationDefaults {
    /// `temperature`; 0 means greedy decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `top_p` (nucleus sampling); 1 or absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// `top_k`; 0 or absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// `repetition_penalty`; 1 or absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f64>,
    /// Where the numbers come from (the `generation_config.json` address).
    pub source: String,
}

impl GenerationDefaults {
    /// Whether these defaults make the sampler filter the logits (top-p below 1 or top-k below the
    /// vocabulary, with a temperature above 0: greedy decoding takes the maximum and filters
    /// nothing).
    pub fn filters_logits(&self, vocab_size: u32) -> bool {
        let greedy = self.temperature.is_some_and(|t| t <= 0.0);
        let top_p = self.top_p.is_some_and(|p| p < 1.0);
        let top_k = self.top_k.is_some_and(|k| k > 0 && k < vocab_size);
        !greedy && (top_p || top_k)
    }

    /// Checks the values: `temperature` ≥ 0, `top_p` in (0, 1], `repetition_penalty` > 0, all
    /// finite; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                "temperature",
                self.temperature,
                "≥ 0",
                0.0,
                f64::INFINITY,
                true,
            ),
            ("top_p", self.top_p, "in (0, 1]", 0.0, 1.0, false),
            (
                "repetition_penalty",
                self.repetition_penalty,
                "> 0",
                0.0,
                f64::INFINITY,
                false,
            ),
        ];
        for (key, value, range, lo, hi, lo_included) in checks {
            let Some(v) = value else { continue };
            let above = if lo_included { v >= lo } else { v > lo };
            if !(v.is_finite() && above && v <= hi) {
                return Err(format!("`{key}` = {v} must be {range}"));
            }
        }
        Ok(())
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn default_torch_dtype() -> String {
    "bfloat16".into()
}

/// The `torch_dtype` values a model may have.
pub const TORCH_DTYPES: &[&str] = &["bfloat16", "float16", "float32"];

/// Most layers a model may have (far above any published model; guards against garbage sizes).
pub const MAX_LAYERS: u32 = 1 << 16;

/// Most parameters a model may have, about 1.1 · 10¹⁵ (a thousand times the largest published
/// models): every parameter and byte count derived from the sizes then fits in 64 bits.
pub const MAX_TOTAL_PARAMS: u64 = 1 << 50;

/// Most KV-cache bytes one token may take over all layers (1 GiB, at 16 bits and TP 1), so that
/// the cache of any context fits in 64 bits.
pub const MAX_KV_BYTES_PER_TOKEN: u64 = 1 << 30;

/// Bytes per parameter and per activation element: weights and KV cache are bf16/fp16.
pub const BYTES_PER_ELEMENT: u64 = 2;

impl ModelSpec {
    /// Per-head dimension `d`.
    pub fn head_dim(&self) -> u32 {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// True when the model uses grouped- or multi-query attention (`Hq > Hkv`).
    pub fn is_gqa(&self) -> bool {
        self.num_attention_heads > self.num_key_value_heads
    }

    /// Number of weight matrices in the MLP (3 gated, 2 plain).
    pub fn mlp_matrices(&self) -> u64 {
        if self.gated_mlp {
            3
        } else {
            2
        }
    }

    /// Weights of one transformer block on one device at tensor-parallel degree `tp`
    /// (QKV, output and MLP projections; norms and biases are negligible and left out).
    pub fn params_per_layer_per_device(&self, tp: u32) -> u64 {
        let e = self.hidden_size as u64;
        let d = self.head_dim() as u64;
        let tp64 = tp as u64;
        let q = (self.num_attention_heads / tp) as u64;
        let kv = self.num_key_value_heads.div_ceil(tp) as u64;
        let qkv = e * d * (q + 2 * kv);
        let out = e * d * q;
        let mlp = self.mlp_matrices() * e * (self.intermediate_size as u64 / tp64);
        qkv + out + mlp
    }

    /// Embedding plus LM-head weights on one device (vocabulary-parallel across `tp`; the LM head
    /// is a separate matrix unless tied).
    pub fn embedding_params_per_device(&self, tp: u32) -> u64 {
        let per = (self.vocab_size as u64).div_ceil(tp as u64) * self.hidden_size as u64;
        if self.tie_word_embeddings {
            per
        } else {
            2 * per
        }
    }

    /// KV-cache bytes per token on one device that holds `layers` layers at TP degree `tp`.
    pub fn kv_bytes_per_token(&self, tp: u32, layers: u32) -> u64 {
        2 * BYTES_PER_ELEMENT
            * self.head_dim() as u64
            * self.num_key_value_heads.div_ceil(tp) as u64
            * layers as u64
    }
}
