//! The `quantization_config` of a `config.json`: which checkpoints servesim models as FP8 and
//! which layers such a checkpoint leaves in 16 bits.
//!
//! Accepted: `quant_method = "fp8"` (DeepSeek-V3's block-wise FP8, vLLM's own FP8 format) and
//! `quant_method = "compressed-tensors"` whose every group has 8-bit float weights and 8-bit float
//! input activations (W8A8, as in RedHatAI's `-FP8` and `-FP8-dynamic` checkpoints). Other methods
//! (AWQ, GPTQ, bitsandbytes, MXFP4, ...) and FP8 weight-only checkpoints are errors.

use super::fields::Fields;
use crate::catalog::CatalogError;

/// What the checkpoint's quantization means for the model description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct CheckpointQuantization {
    /// `Some("fp8")` for an FP8 checkpoint.
    pub method: Option<String>,
    /// The checkpoint leaves every attention projection of the language model in 16 bits.
    pub unquantized_attention: bool,
}

/// How an entry of a checkpoint's list of unquantized modules affects the model.
enum Skipped {
    /// A module servesim keeps 16-bit anyway (LM head, embeddings, routers, the vision tower).
    Modelled,
    /// The attention projections of one text layer, or of all (`None`, a regex).
    Attention(Option<u32>),
    /// Anything else (an MLP or expert matrix): a mixed-precision checkpoint we do not model.
    Other,
}

fn classify(name: &str) -> Skipped {
    let lower = name.to_ascii_lowercase();
    // Regex entries (`re:.*mlp.gate$`) end in an anchor.
    let core = lower.trim_end_matches('$');
    let modelled = [
        "lm_head",
        "embed",
        "router",
        "vision",
        "multi_modal_projector",
        "shared_expert_gate",
    ];
    if modelled.iter().any(|m| core.contains(m)) || core.ends_with(".gate") || core == "gate" {
        return Skipped::Modelled;
    }
    if lower.contains("attn") {
        if lower.starts_with("re:") {
            return Skipped::Attention(None);
        }
        let layer = lower
            .split("layers.")
            .nth(1)
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<u32>().ok());
        return match layer {
            Some(l) => Skipped::Attention(Some(l)),
            None => Skipped::Other,
        };
    }
    Skipped::Other
}

/// Reads the list of modules a checkpoint leaves unquantized (`key` of `q`); returns whether it
/// covers the attention of every one of `layers` text layers.
fn unquantized_attention(q: &Fields, key: &str, layers: u32) -> Result<bool, CatalogError> {
    let names = q.opt_str_list(key)?.unwrap_or_default();
    let mut covered = vec![false; layers as usize];
    let mut all = false;
    for name in names {
        match classify(name) {
            Skipped::Modelled => {}
            Skipped::Attention(None) => all = true,
            Skipped::Attention(Some(l)) if l < layers => covered[l as usize] = true,
            Skipped::Attention(Some(_)) => {
                return Err(q.err(
                    key,
                    format!("names `{name}`, but the model has only {layers} layers (0..{layers})"),
                ))
            }
            Skipped::Other => {
                return Err(q.err(
                    key,
                    format!(
                        "leaves `{name}` unquantized; servesim models FP8 checkpoints whose MLP \
                         and expert matrices are all FP8 (only the LM head, embeddings, routers, \
                         vision tower and, in every layer at once, the attention may stay 16-bit)"
                    ),
                ))
            }
        }
    }
    let n = covered.iter().filter(|&&c| c).count();
    if all || n == covered.len() {
        Ok(true)
    } else if n == 0 {
        Ok(false)
    } else {
        Err(q.err(
            key,
            format!(
                "leaves the attention of {n} of the {layers} layers unquantized; servesim models \
                 attention as FP8 in every layer or in none"
            ),
        ))
    }
}

/// Checks one compressed-tensors group: 8-bit float weights and input activations.
fn check_group(group: &Fields, name: &str) -> Result<(), CatalogError> {
    for (part, what) in [("weights", "weights"), ("input_activations", "activations")] {
        let Some(t) = group.object(part)? else {
            return Err(group.err(
                part,
                format!(
                    "is missing: group `{name}` quantizes weights only; servesim models FP8 \
                     checkpoints as W8A8 (8-bit float weights and activations)"
                ),
            ));
        };
        let kind = t.opt_str("type")?.unwrap_or("<none>");
        let bits = t.opt_u32("num_bits")?.unwrap_or(0);
        if kind != "float" || bits != 8 {
            return Err(t.err(
                "type",
                format!(
                    "= `{kind}` with num_bits = {bits}: {bits}-bit {kind} {what} are not supported; \
                     servesim models FP8 checkpoints (8-bit float weights and activations)"
                ),
            ));
        }
    }
    Ok(())
}

/// Reads `quantization_config` of the top-level object `top` for a model of `layers` layers.
pub(super) fn read(top: &Fields, layers: u32) -> Result<CheckpointQuantization, CatalogError> {
    let Some(q) = top.object("quantization_config")? else {
        return Ok(CheckpointQuantization::default());
    };
    let method = q.opt_str("quant_method")?.ok_or_else(|| {
        q.err(
            "quant_method",
            "is missing; servesim models `fp8` and compressed-tensors FP8 checkpoints",
        )
    })?;
    let unquantized_attention = match method {
        "fp8" => {
            let a = unquantized_attention(&q, "ignored_layers", layers)?;
            let b = unquantized_attention(&q, "modules_to_not_convert", layers)?;
            a || b
        }
        "compressed-tensors" => {
            let groups = q.required_object("config_groups")?;
            let names: Vec<&String> = groups.keys().collect();
            if names.is_empty() {
                return Err(q.err("config_groups", "is empty"));
            }
            for name in names {
                check_group(&groups.required_object(name)?, name)?;
            }
            unquantized_attention(&q, "ignore", layers)?
        }
        other => {
            return Err(q.err(
                "quant_method",
                format!(
                    "= `{other}` is not supported; servesim models FP8 checkpoints \
                     (quant_method `fp8`, or `compressed-tensors` with 8-bit float weights). \
                     Use the model's 16-bit checkpoint (optionally with --quantization fp8)"
                ),
            ))
        }
    };
    Ok(CheckpointQuantization {
        method: Some("fp8".into()),
        unquantized_attention,
    })
}
