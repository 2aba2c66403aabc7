//! Reading a Hugging Face `config.json` into a [`ModelSpec`].
//!
//! One reader covers the architectures of [`SUPPORTED_ARCHITECTURES`]: dense Llama-style decoders
//! (Llama, Mistral, Qwen2, Qwen3), mixture-of-experts decoders (Mixtral, Qwen3-MoE, the text model
//! of Llama-4) and DeepSeek-V3 (multi-head latent attention). Every missing or invalid field is an
//! error naming the file and the field; per-layer patterns (which layers are MoE, which attend
//! through a window) are checked layer by layer against what [`ModelSpec`] describes, and a
//! pattern it cannot describe is an error rather than an approximation.

mod fields;
mod generation;
mod layers;
mod quant;
mod vision;

#[cfg(test)]
mod tests;

use std::path::Path;

use serde_json::Value;

use self::fields::Fields;
use super::model::{MAX_LAYERS, TORCH_DTYPES};
use super::{CatalogError, LocalAttention, LocalAttentionKind, MlaSpec, ModelSpec, MoeSpec, Norm};

/// Architectures (`architectures[0]` of `config.json`) whose `config.json` servesim reads.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "MixtralForCausalLM",
    "Qwen3MoeForCausalLM",
    "Llama4ForConditionalGeneration",
    "DeepseekV3ForCausalLM",
];

/// Llama-4's chunk length when `attention_chunk_size` is absent (Transformers' default).
const LLAMA4_DEFAULT_CHUNK_TOKENS: u32 = 8192;
/// Llama-4's period of global (NoPE) layers when `no_rope_layer_interval` is absent.
const LLAMA4_DEFAULT_NOPE_INTERVAL: u32 = 4;
/// Qwen2/Qwen3's `max_window_layers` when absent (Transformers' default).
const QWEN_DEFAULT_MAX_WINDOW_LAYERS: u32 = 28;

/// The supported architectures, by how their `config.json` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Mixtral,
    Qwen3Moe,
    Llama4,
    DeepseekV3,
}

impl Family {
    fn of(arch: &str) -> Option<Family> {
        Some(match arch {
            "LlamaForCausalLM" => Family::Llama,
            "MistralForCausalLM" => Family::Mistral,
            "Qwen2ForCausalLM" => Family::Qwen2,
            "Qwen3ForCausalLM" => Family::Qwen3,
            "MixtralForCausalLM" => Family::Mixtral,
            "Qwen3MoeForCausalLM" => Family::Qwen3Moe,
            "Llama4ForConditionalGeneration" => Family::Llama4,
            "DeepseekV3ForCausalLM" => Family::DeepseekV3,
            _ => return None,
        })
    }
}

impl ModelSpec {
    /// Reads a Hugging Face `config.json` of one of the [`SUPPORTED_ARCHITECTURES`], and the
    /// sampling defaults of the `generation_config.json` beside it where there is one.
    pub fn from_hf_config(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut spec = Self::from_hf_config_str(&text, path)?;
        // Checked as it is read, with errors naming generation_config.json.
        spec.generation = generation::read_beside(path)?;
        Ok(spec)
    }

    /// Reads the text of a Hugging Face `config.json`; `path` names it in errors and becomes the
    /// model's name and source.
    pub fn from_hf_config_str(text: &str, path: &Path) -> Result<Self, CatalogError> {
        let parse_err = |why: String| CatalogError::Parse {
            path: path.to_path_buf(),
            why,
        };
        let map = &fields::json_object(text, path)?;
        let arch = match map.get("architectures") {
            Some(Value::Array(a)) if !a.is_empty() => a[0].as_str().ok_or_else(|| {
                parse_err(format!("field `architectures` holds {}, not a name", a[0]))
            })?,
            _ => {
                return Err(parse_err(format!(
                "field `architectures` is missing or empty; servesim reads the config.json of {}",
                SUPPORTED_ARCHITECTURES.join(", ")
            )))
            }
        };
        let family = Family::of(arch).ok_or_else(|| CatalogError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            architecture: arch.to_string(),
        })?;
        let top = Fields::new(map, path, arch);
        let text = match family {
            Family::Llama4 => top.required_object("text_config")?,
            _ => top.clone(),
        };
        let mut spec = base(&text, &top, family, arch)?;
        let layers = spec.num_hidden_layers;
        spec.local_attention = local_attention(&text, family, &spec)?;
        match family {
            Family::Mixtral => spec.moe = Some(mixtral_moe(&text, layers)?),
            Family::Qwen3Moe => spec.moe = Some(qwen3_moe(&text, layers)?),
            Family::Llama4 => {
                spec.moe = Some(llama4_moe(&text, layers)?);
                if let Some(v) = top.object("vision_config")? {
                    spec.extra_params = vision::llama4_vision_params(&v, spec.hidden_size)?;
                }
            }
            Family::DeepseekV3 => {
                spec.mla = Some(mla(&text)?);
                spec.moe = Some(deepseek_moe(&text, layers)?);
            }
            Family::Llama | Family::Mistral | Family::Qwen2 | Family::Qwen3 => {}
        }
        let q = quant::read(&top, layers)?;
        spec.quantization = q.method;
        spec.unquantized_attention = q.unquantized_attention;
        spec.validate()?;
        Ok(spec)
    }
}

/// The fields every architecture shares (`text` holds the language model's sizes; `top` is the
/// whole file, which multimodal configs use for a few of them).
fn base(
    text: &Fields,
    top: &Fields,
    family: Family,
    arch: &str,
) -> Result<ModelSpec, CatalogError> {
    let layers = text.size("num_hidden_layers")?;
    if layers > MAX_LAYERS {
        // Checked here, before anything is allocated per layer.
        return Err(text.err(
            "num_hidden_layers",
            format!("= {layers} is more than the {MAX_LAYERS} servesim accepts; check the sizes"),
        ));
    }
    let heads = text.size("num_attention_heads")?;
    let hidden = text.size("hidden_size")?;
    let dense_width = match family {
        Family::Llama4 => "intermediate_size_mlp",
        _ => "intermediate_size",
    };
    // An explicit head_dim is kept where it differs from hidden_size / num_attention_heads; MLA
    // describes its heads with its own sizes.
    let head_dim = match family {
        Family::DeepseekV3 => None,
        _ => text
            .opt_size("head_dim")?
            .filter(|&d| !hidden.is_multiple_of(heads) || d != hidden / heads),
    };
    let rope_theta = match text.opt_f64("rope_theta")? {
        Some(t) => Some(t),
        None => match text.object("rope_parameters")? {
            Some(r) => r.opt_f64("rope_theta")?,
            None => None,
        },
    };
    let dtype_of = |f: &Fields| -> Result<Option<String>, CatalogError> {
        Ok(match f.opt_str("torch_dtype")? {
            Some(d) => Some(d.to_string()),
            None => f.opt_str("dtype")?.map(str::to_string),
        })
    };
    let torch_dtype = match dtype_of(text)? {
        Some(d) => d,
        None => dtype_of(top)?.unwrap_or_else(|| "bfloat16".into()),
    };
    if !TORCH_DTYPES.contains(&torch_dtype.as_str()) {
        return Err(text.err(
            "torch_dtype",
            format!(
                "= `{torch_dtype}` is not supported; expected {}",
                TORCH_DTYPES.join(", ")
            ),
        ));
    }
    let tie = match text.opt_bool("tie_word_embeddings")? {
        Some(t) => t,
        None => top.opt_bool("tie_word_embeddings")?.unwrap_or(false),
    };
    let path = text.path().display().to_string();
    Ok(ModelSpec {
        name: path.clone(),
        architecture: arch.to_string(),
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: text.opt_size("num_key_value_heads")?.unwrap_or(heads),
        hidden_size: hidden,
        intermediate_size: text.size(dense_width)?,
        vocab_size: text.size("vocab_size")?,
        max_position_embeddings: text.size("max_position_embeddings")?,
        hidden_act: text.opt_str("hidden_act")?.unwrap_or("silu").to_string(),
        norm: Norm::RmsNorm,
        rope_theta: rope_theta.unwrap_or(10000.0),
        gated_mlp: true,
        attention_bias: text.opt_bool("attention_bias")?.unwrap_or(false),
        qkv_bias: family == Family::Qwen2,
        post_attn_norm: true,
        partial_rotary_factor: text.opt_f64("partial_rotary_factor")?.unwrap_or(1.0),
        tie_word_embeddings: tie,
        head_dim,
        moe: None,
        mla: None,
        qk_norm: match family {
            Family::Qwen3 | Family::Qwen3Moe => true,
            Family::Llama4 => text.opt_bool("use_qk_norm")?.unwrap_or(true),
            _ => false,
        },
        local_attention: None,
        torch_dtype,
        quantization: None,
        unquantized_attention: false,
        extra_params: 0,
        generation: None,
        source: path,
    })
}

/// Which layers attend locally, and through what window: from `layer_types` where the file gives
/// it, else from each architecture's own fields.
fn local_attention(
    text: &Fields,
    family: Family,
    spec: &ModelSpec,
) -> Result<Option<LocalAttention>, CatalogError> {
    let layers = spec.num_hidden_layers as usize;
    let (kind, key, flags) = if let Some(types) = text.opt_str_list("layer_types")? {
        if types.len() != layers {
            return Err(text.err(
                "layer_types",
                format!("has {} entries for {layers} layers", types.len()),
            ));
        }
        let mut kind = None;
        let mut flags = Vec::with_capacity(layers);
        for t in types {
            let k = match t {
                "full_attention" => None,
                "sliding_attention" => Some(LocalAttentionKind::SlidingWindow),
                "chunked_attention" => Some(LocalAttentionKind::Chunked),
                other => {
                    return Err(text.err(
                        "layer_types",
                        format!("holds `{other}`; servesim models full_attention, sliding_attention and chunked_attention layers"),
                    ))
                }
            };
            if let Some(k) = k {
                if kind.is_some_and(|seen| seen != k) {
                    return Err(text.err(
                        "layer_types",
                        "mixes sliding-window and chunked layers, which servesim does not model",
                    ));
                }
                kind = Some(k);
            }
            flags.push(k.is_some());
        }
        match kind {
            None => return Ok(None),
            Some(LocalAttentionKind::SlidingWindow) => {
                (LocalAttentionKind::SlidingWindow, "sliding_window", flags)
            }
            Some(LocalAttentionKind::Chunked) => {
                (LocalAttentionKind::Chunked, "attention_chunk_size", flags)
            }
        }
    } else {
        match family {
            Family::Mistral | Family::Mixtral => (
                LocalAttentionKind::SlidingWindow,
                "sliding_window",
                vec![text.get("sliding_window").is_some(); layers],
            ),
            Family::Qwen2 | Family::Qwen3 | Family::Qwen3Moe => {
                if !text.opt_bool("use_sliding_window")?.unwrap_or(false) {
                    return Ok(None);
                }
                // Layers from max_window_layers on use the window.
                let first = text
                    .opt_u32("max_window_layers")?
                    .unwrap_or(QWEN_DEFAULT_MAX_WINDOW_LAYERS) as usize;
                (
                    LocalAttentionKind::SlidingWindow,
                    "sliding_window",
                    (0..layers).map(|l| l >= first).collect(),
                )
            }
            Family::Llama4 => {
                if text.get("attention_chunk_size").is_none() && text.has("attention_chunk_size") {
                    return Ok(None);
                }
                // no_rope_layers[l] = 1: layer l uses RoPE and chunked attention; 0: a global
                // NoPE layer. Empty: every no_rope_layer_interval-th layer is global.
                let flags = match text.opt_u32_list("no_rope_layers")? {
                    Some(list) if !list.is_empty() => {
                        if list.len() != layers || list.iter().any(|&v| v > 1) {
                            return Err(text.err(
                                "no_rope_layers",
                                format!("must hold one 0 or 1 for each of the {layers} layers"),
                            ));
                        }
                        list.iter().map(|&v| v == 1).collect()
                    }
                    _ => {
                        let every = text
                            .opt_size("no_rope_layer_interval")?
                            .unwrap_or(LLAMA4_DEFAULT_NOPE_INTERVAL)
                            as usize;
                        (0..layers)
                            .map(|l| !(l + 1).is_multiple_of(every))
                            .collect()
                    }
                };
                (LocalAttentionKind::Chunked, "attention_chunk_size", flags)
            }
            Family::Llama | Family::DeepseekV3 => return Ok(None),
        }
    };
    let Some(global_every) = layers::fit_local_layers(&flags).map_err(|why| text.err(key, why))?
    else {
        return Ok(None);
    };
    let window_tokens = match (family, text.has(key)) {
        (Family::Llama4, false) => LLAMA4_DEFAULT_CHUNK_TOKENS,
        _ => text.size(key)?,
    };
    // A window no shorter than the longest context never limits attention.
    if window_tokens >= spec.max_position_embeddings {
        return Ok(None);
    }
    Ok(Some(LocalAttention {
        kind,
        window_tokens,
        global_every,
    }))
}

/// Checks `num_experts_per_tok` against the routed experts.
fn experts_per_token(text: &Fields, experts: u32) -> Result<u32, CatalogError> {
    let k = text.size("num_experts_per_tok")?;
    if k > experts {
        return Err(text.err(
            "num_experts_per_tok",
            format!("= {k} is more than the {experts} routed experts"),
        ));
    }
    Ok(k)
}

/// The MoE spec for routed experts `experts` of width `width`, with the MoE layers flagged in
/// `moe` (described by `field` in errors).
fn moe_spec(
    text: &Fields,
    field: &str,
    experts: u32,
    width: u32,
    moe: &[bool],
) -> Result<MoeSpec, CatalogError> {
    let (first_dense_layers, layer_step) =
        layers::fit_moe_layers(moe).map_err(|why| text.err(field, why))?;
    Ok(MoeSpec {
        num_experts: experts,
        experts_per_token: experts_per_token(text, experts)?,
        expert_intermediate_size: width,
        num_shared_experts: 0,
        shared_expert_intermediate_size: 0,
        first_dense_layers,
        layer_step,
    })
}

/// Mixtral: every layer routes to `num_experts_per_tok` of `num_local_experts` experts of
/// `intermediate_size`.
fn mixtral_moe(text: &Fields, layers: u32) -> Result<MoeSpec, CatalogError> {
    let experts = text.size("num_local_experts")?;
    let width = text.size("intermediate_size")?;
    moe_spec(
        text,
        "num_local_experts",
        experts,
        width,
        &vec![true; layers as usize],
    )
}

/// Qwen3-MoE: layer `l` is MoE unless listed in `mlp_only_layers`, when `(l + 1)` is a multiple of
/// `decoder_sparse_step`; experts of `moe_intermediate_size`, dense layers of `intermediate_size`.
fn qwen3_moe(text: &Fields, layers: u32) -> Result<MoeSpec, CatalogError> {
    let experts = text.size("num_experts")?;
    let width = text.size("moe_intermediate_size")?;
    let step = text.opt_size("decoder_sparse_step")?.unwrap_or(1);
    let dense = text.opt_u32_list("mlp_only_layers")?.unwrap_or_default();
    if let Some(&bad) = dense.iter().find(|&&l| l >= layers) {
        return Err(text.err(
            "mlp_only_layers",
            format!("names layer {bad}, but the model has {layers} layers (0..{layers})"),
        ));
    }
    let moe: Vec<bool> = (0..layers)
        .map(|l| !dense.contains(&l) && (l + 1).is_multiple_of(step))
        .collect();
    let field = if dense.is_empty() {
        "decoder_sparse_step"
    } else {
        "mlp_only_layers"
    };
    moe_spec(text, field, experts, width, &moe)
}

/// Llama-4: the layers of `moe_layers` (default: every `interleave_moe_layer_step`-th) route to
/// `num_experts_per_tok` of `num_local_experts` experts of `intermediate_size` plus one shared
/// expert of the same width; the others have a dense MLP of `intermediate_size_mlp`.
fn llama4_moe(text: &Fields, layers: u32) -> Result<MoeSpec, CatalogError> {
    let experts = text.size("num_local_experts")?;
    let width = text.size("intermediate_size")?;
    let (field, moe): (&str, Vec<bool>) = match text.opt_u32_list("moe_layers")? {
        Some(list) => {
            if let Some(&bad) = list.iter().find(|&&l| l >= layers) {
                return Err(text.err(
                    "moe_layers",
                    format!("names layer {bad}, but the model has {layers} layers (0..{layers})"),
                ));
            }
            (
                "moe_layers",
                (0..layers).map(|l| list.contains(&l)).collect(),
            )
        }
        None => {
            let step = text.opt_size("interleave_moe_layer_step")?.unwrap_or(1);
            (
                "interleave_moe_layer_step",
                (0..layers).map(|l| (l + 1).is_multiple_of(step)).collect(),
            )
        }
    };
    Ok(MoeSpec {
        num_shared_experts: 1,
        shared_expert_intermediate_size: width,
        ..moe_spec(text, field, experts, width, &moe)?
    })
}

/// DeepSeek-V3: layer `l` is MoE when `l >= first_k_dense_replace` and `l` is a multiple of
/// `moe_layer_freq`; `n_routed_experts` routed experts and `n_shared_experts` shared ones, all of
/// `moe_intermediate_size`.
fn deepseek_moe(text: &Fields, layers: u32) -> Result<MoeSpec, CatalogError> {
    let experts = text.size("n_routed_experts")?;
    let width = text.size("moe_intermediate_size")?;
    let shared = text.opt_u32("n_shared_experts")?.unwrap_or(0);
    let first = text.opt_u32("first_k_dense_replace")?.unwrap_or(0);
    let freq = text.opt_size("moe_layer_freq")?.unwrap_or(1);
    let moe: Vec<bool> = (0..layers)
        .map(|l| l >= first && l.is_multiple_of(freq))
        .collect();
    let field = if freq == 1 {
        "first_k_dense_replace"
    } else {
        "moe_layer_freq"
    };
    Ok(MoeSpec {
        num_shared_experts: shared,
        shared_expert_intermediate_size: if shared > 0 { width } else { 0 },
        ..moe_spec(text, field, experts, width, &moe)?
    })
}

/// DeepSeek's multi-head latent attention sizes.
fn mla(text: &Fields) -> Result<MlaSpec, CatalogError> {
    Ok(MlaSpec {
        q_lora_rank: text.opt_size("q_lora_rank")?,
        kv_lora_rank: text.size("kv_lora_rank")?,
        qk_nope_head_dim: text.size("qk_nope_head_dim")?,
        qk_rope_head_dim: text.size("qk_rope_head_dim")?,
        v_head_dim: text.size("v_head_dim")?,
    })
}
